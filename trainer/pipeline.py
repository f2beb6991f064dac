"""One run from start (or resume) to its last phase: phases in order, each checkpointed.

This is the core the shell (trainer/app/run.py) drives: it knows phases, not exit codes, locks
or keep-awake. A KeyboardInterrupt may arrive anywhere; that is safe because every unit of work
is atomic: a symbol is one transaction, a model is one artifact written with os.replace, and the
checkpoint is written atomically after each. Whatever was cut short is simply redone next run.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable

from backend import store
from trainer import console
from trainer.ml.memory import give_back_freed_memory
from trainer.phases import backtest, market, prices
from trainer.run_context import RunContext, clear_training
from trainer.workers import connect

log = logging.getLogger(__name__)


class DataError(RuntimeError):
    """No usable data for the run; the message names the symbols or files and what to do."""


def progress_line(context: RunContext) -> str:
    backtest_state = context.state["backtest"]
    training = context.state["training"]
    return (f"{len(backtest_state['completed_symbols'])}/{backtest_state['symbols_total']} symbols, "
            f"{len(training['base_models_trained'])}/{training['models_total']} models")


def execute(context: RunContext) -> None:
    state = context.state
    kind = "Resuming" if context.resumed else "Starting"
    console.info(f"{kind} run {context.run_id} ({context.source.key}, {len(context.universe)} symbols, "
                 f"phase: {state['current_phase']}).")
    for notice in context.notices:
        console.warn(notice)
    if context.config.run.cluster:
        describe_cluster(context.config.run.cluster)
    warn_exhausted(context)
    if context.phase_done("backtest"):
        retry_failed_symbols(context)
    for phase, action in phase_actions():
        if context.phase_done(phase):
            continue
        started = time.monotonic()
        log.info("phase %s: start", phase)
        action(context)
        give_back_freed_memory()  # the phase's peak, kept by the allocator otherwise (see the module)
        seconds = round(time.monotonic() - started, 2)
        context.state.setdefault("phase_seconds", {})[phase] = seconds
        store.put_fact(context.connection, context.run_id, "phase_seconds",
                       json.dumps(context.state["phase_seconds"]))
        log.info("phase %s: end (%.1f s)", phase, seconds)
    score_signals(context)


def describe_cluster(address: str) -> None:
    """Connect before any work, so a wrong address stops the run at once, and say what is there."""
    client = connect(address)
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    threads = sum(worker.get("nthreads", 0) for worker in workers.values())
    console.info(f"Dask cluster at {address}: {len(workers)} worker(s), {threads} thread(s); the backtest and the "
                 "model fits run there, this computer keeps the database and the checkpoint.")
    if not workers:
        console.warn(f"The scheduler at {address} has no workers yet; the work waits until one connects "
                     "(python -m dask worker ADDRESS).")


def score_signals(context: RunContext) -> None:
    """Score the signals of earlier generate_signals runs that have matured on the prices cached
    so far. Never allowed to fail a training run: a problem is logged and the run goes on."""
    from trainer.signals.track_record import score_with_cached_prices

    try:
        scored = score_with_cached_prices(context.connection)
    except Exception:  # noqa: BLE001 - the track record must not cost the user a finished training run
        log.exception("scoring matured signals failed; the track record is scored again next time")
        console.warn("The matured signals could not be scored this time (details in the log).")
        return
    if scored:
        console.info(f"{scored} earlier signals matured and were scored (python check_checkpoint.py --signals).")


# Each phase after the backtest and the function that runs it, imported only when the phase
# runs: the machine-learning and plotting libraries take seconds to import, and a resumed
# backtest or a configuration error should not wait for them.
LATER_PHASES = (
    ("dataset", "trainer.phases.training", "run_dataset_phase"),
    ("tuning", "trainer.phases.tuning", "run_tuning_phase"),
    ("training", "trainer.phases.training", "run_base_models_phase"),
    ("ensemble", "trainer.phases.training", "run_ensemble_phase"),
    ("benchmarks", "trainer.phases.training", "run_benchmarks_phase"),
    ("evaluation", "trainer.phases.evaluation", "run_evaluation_phase"),
    ("portfolio", "trainer.phases.portfolio", "run_portfolio_phase"),
    ("shap", "trainer.phases.explain", "run_shap_phase"),
    ("promotion", "trainer.phases.decision", "run_promotion_phase"),
    ("report", "trainer.phases.reporting", "run_report_phase"),
)


def phase_actions() -> list[tuple[str, Callable[[RunContext], None]]]:
    """Each phase and what does it; a finished phase is skipped on resume."""
    return [("backtest", run_data_phases)] + [
        (phase, _deferred(module, function)) for phase, module, function in LATER_PHASES]


def _deferred(module: str, function: str) -> Callable[[RunContext], None]:
    def run(context: RunContext) -> None:
        getattr(importlib.import_module(module), function)(context)
    return run


def warn_exhausted(context: RunContext) -> None:
    """Say which symbols are no longer retried, and how to get them tried again."""
    limit = context.config.run.max_attempts
    exhausted = sorted(symbol for symbol, failure in context.state["backtest"]["failed_symbols"].items()
                       if failure["attempts"] >= limit)
    if exhausted:
        console.warn(f"{len(exhausted)} symbol(s) failed {limit} times and are not tried again: "
                     f"{', '.join(exhausted)}. After fixing them, set a higher run.max_attempts in a "
                     "--config file, or start over with reset_checkpoint.py.")


def retry_failed_symbols(context: RunContext) -> None:
    """After the backtest closed: failed symbols with attempts left get another try; if any now
    succeeds the dataset changed, so the models are retrained from it."""
    retryable = prices.pending_symbols(context)
    if not retryable:
        return
    console.info(f"Retrying {len(retryable)} symbol(s) that failed before: {', '.join(retryable)}.")
    completed_before = len(context.state["backtest"]["completed_symbols"])
    run_data_phases(context)
    if len(context.state["backtest"]["completed_symbols"]) > completed_before:
        console.info("New symbols were added to the backtest; the models will be retrained.")
        clear_training(context.connection, context.state, context.paths.artifacts(context.run_id))
        context.checkpoint.save()


def run_data_phases(context: RunContext) -> None:
    """prices -> market -> backtest for every symbol still to do."""
    pending = prices.pending_symbols(context)
    wanted = context.symbols if not context.phase_done("market") else pending
    try:
        prices.fetch_missing(context, wanted)
    except prices.SourceUnreachable as error:
        raise DataError(str(error)) from None
    available = prices.available_symbols(context, wanted)
    failures = prices.failed_fetches(context)
    for symbol in pending:
        if symbol not in available:
            backtest.record_failure(context, symbol, failures.get(symbol, "no prices"))
    context.advance("prices")
    if not available and not context.state["backtest"]["completed_symbols"]:
        listed = "; ".join(f"{symbol}: {reason}" for symbol, reason in list(failures.items())[:5])
        where = {"csv": "the files in --prices-dir", "yfinance": "the internet connection and the symbols",
                 "demo": "the date range (--start/--end)"}[context.config.data.source]
        raise DataError(f"None of the {len(wanted)} symbols has usable prices ({listed}). Check {where}, "
                        "then run again.")
    if not context.phase_done("market"):
        closes = {symbol: prices.load_symbol(context, symbol)["close"] for symbol in available}
        market.build_and_store_market(context, closes, prices.proxy_prices(context))
    market_context = market.load_market(context)
    todo = [symbol for symbol in pending if symbol in available]
    if todo:
        backtest.run_backtest(context, todo, lambda symbol: prices.load_symbol(context, symbol), market_context)
    if not context.state["backtest"]["completed_symbols"]:
        raise DataError("No symbol could be backtested (see the reasons above); there is nothing to "
                        "train on.")
    backtest.record_backtest_facts(context)
    context.advance("backtest")
