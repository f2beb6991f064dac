"""Backtest phase: symbol by symbol, one SQLite transaction each, then the checkpoint.

Workers (joblib, --jobs) only compute; this process alone writes the database and the
checkpoint, in universe order, so a parallel run stores exactly what a serial run stores.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from backend import store
from backend.backtest import InsufficientHistory, SymbolBacktest, backtest_symbol
from backend.market import MarketContext
from trainer import console
from trainer.checkpoint import now_iso
from trainer.crash_points import crash_point
from trainer.run_context import RunContext
from trainer.workers import in_order, leave_with_the_run, worker_count

log = logging.getLogger(__name__)


@dataclass
class SymbolOutcome:
    symbol: str
    result: SymbolBacktest | None = None
    skipped: str | None = None  # not enough history: permanent, not retried
    failed: str | None = None  # unexpected error: retried on the next run
    trace: str | None = None


@dataclass(frozen=True)
class BacktestSettings:
    """What every symbol's backtest shares (sent once to each cluster worker)."""

    market: MarketContext
    min_history_days: int
    label_settings: dict
    shock_sigma: float


def compute_symbol(settings: BacktestSettings, item: tuple[str, pd.DataFrame, str],
                   run_pid: int | None = None) -> SymbolOutcome:
    """Features and labels of one symbol (item: symbol, prices, sector); runs in a worker, touches
    no file. run_pid: the run's process; a local worker leaves when that process is gone."""
    leave_with_the_run(run_pid)
    symbol, prices, sector = item
    min_history_days, shock_sigma = settings.min_history_days, settings.shock_sigma
    if len(prices) < min_history_days:
        return SymbolOutcome(symbol, skipped=f"{symbol} has {len(prices)} clean trading days; at least "
                                             f"{min_history_days} are needed (data.min_history_days)")
    try:
        result = backtest_symbol(symbol, prices, settings.market, sector, shock_sigma=shock_sigma,
                                 **settings.label_settings)
    except InsufficientHistory as error:
        return SymbolOutcome(symbol, skipped=str(error))
    except Exception as error:  # noqa: BLE001 - recorded as a failed symbol with its traceback
        return SymbolOutcome(symbol, failed=f"{type(error).__name__}: {error}", trace=traceback.format_exc())
    return SymbolOutcome(symbol, result=result)


def record_failure(context: RunContext, symbol: str, reason: str) -> None:
    failures = context.state["backtest"]["failed_symbols"]
    attempts = failures.get(symbol, {}).get("attempts", 0) + 1
    failures[symbol] = {"reason": reason, "attempts": attempts}


def run_backtest(context: RunContext, todo: list[str], load_prices: Callable[[str], pd.DataFrame],
                 market: MarketContext) -> None:
    """Backtest the given symbols (which all have cached prices), saving progress after each one.

    Prices are loaded one symbol at a time as the workers ask for work, never all at once."""
    backtest = context.state["backtest"]
    labels = context.config.labels
    label_settings = {"horizon": labels.horizon, "barrier_k": labels.barrier_k,
                      "vol_window": labels.vol_window, "stride": labels.stride}
    settings = BacktestSettings(market, context.config.data.min_history_days, label_settings,
                                context.config.features.shock_sigma)
    items = ((symbol, load_prices(symbol), context.sector_of(symbol)) for symbol in todo)
    cluster = context.config.run.cluster
    jobs = 1 if cluster else worker_count(context.config.run.jobs, len(todo))
    started = time.monotonic()
    done_here = 0
    with console.make_progress(console.get_console()) as progress:
        task = progress.add_task("Backtest", total=len(todo))
        outcomes = in_order(compute_symbol, settings, items, jobs=jobs, cluster=cluster)
        backtest["in_progress"] = todo[0]
        context.checkpoint.save()
        for position, symbol in enumerate(todo):
            outcome = next(outcomes)
            assert outcome.symbol == symbol
            _store_outcome(context, outcome)
            done_here += 1
            backtest["seconds_per_symbol"] = round((time.monotonic() - started) / done_here, 4)
            # One save per symbol: this one's result and the next one now in progress.
            backtest["in_progress"] = todo[position + 1] if position + 1 < len(todo) else None
            context.checkpoint.save()
            progress.update(task, completed=position + 1)


def record_backtest_facts(context: RunContext) -> None:
    """What the report needs about the backtest: failures with reasons and the span of the data."""
    backtest = context.state["backtest"]
    first, last = context.connection.execute(
        "SELECT MIN(first_date), MAX(last_date) FROM backtest_results WHERE run_id = ?",
        (context.run_id,)).fetchone()
    with store.transaction(context.connection) as connection:
        store.write_rows(connection, "run_facts", [
            {"run_id": context.run_id, "key": key, "value_json": json.dumps(value)} for key, value in (
                ("failed_symbols", backtest["failed_symbols"]),
                ("skipped_symbols", backtest["skipped_symbols"]),
                ("data_span", {"first_date": first, "last_date": last}))])


def _store_outcome(context: RunContext, outcome: SymbolOutcome) -> None:
    backtest = context.state["backtest"]
    symbol = outcome.symbol
    if outcome.result is not None:
        rows = outcome.result.rows(context.run_id, completed_at=now_iso())
        crash_point("backtest.before_commit")
        store.write_symbol(context.connection, context.run_id, symbol, rows)
        crash_point("backtest.after_commit")
        # Only after the commit is the symbol done in the checkpoint.
        backtest["completed_symbols"].append(symbol)
        backtest["failed_symbols"].pop(symbol, None)
        backtest["total_samples"] += len(rows["trades"])
        log.info("backtest: %s done, %d samples", symbol, len(rows["trades"]))
    elif outcome.skipped is not None:
        backtest["skipped_symbols"][symbol] = outcome.skipped
        log.info("backtest: %s skipped: %s", symbol, outcome.skipped)
        console.warn(f"Skipped {outcome.skipped}")
    else:
        record_failure(context, symbol, outcome.failed or "unknown error")
        log.error("backtest: %s failed: %s\n%s", symbol, outcome.failed, outcome.trace)
        console.error(f"{symbol} failed: {outcome.failed} (traceback in the log; retried on the next run)")
