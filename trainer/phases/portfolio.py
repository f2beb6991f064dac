"""Portfolio phase: the account each predictor's signals would have made after costs, on the
holdout and (less trustworthy: the ensemble weights and the rule were chosen there) on the
voting folds' out-of-fold period, against equal-weight buy-and-hold of the same universe, SPY
when the source has it, the same account driven by the two trivial benchmarks, and the
strategy's volatility twin (each pick swapped for the unpicked stock of nearest volatility).

Why the twin: on the 40-symbol log random walk the ensemble's account beat equal weight by 14%
a year (interval -0.3% to +28%) and the neural network's by 28% (+11% to +46%) without any
direction to find, by holding volatile stocks, whose simple returns carry the convexity premium
sigma^2/2; the volatility-only model's account did not reproduce that (its directional score
does not rank by volatility), so only a twin with the same volatility exposure controls for it.

I/O lives here; trainer/portfolio does the arithmetic. The tables are deleted and rewritten in
one transaction, from stored artifacts and prices only, so a resumed run rebuilds them identically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend import store
from trainer import console
from trainer.config import Config
from trainer.crash_points import crash_point
from trainer.ml.metrics import directional_score
from trainer.phases.prices import load_symbol
from trainer.phases.training import (
    BENCHMARK_RULE,
    BENCHMARK_VOL_ONLY,
    ENSEMBLE,
    TrainingData,
    load_artifact,
    prepare_data,
)
from trainer.portfolio.performance import daily_sharpe, excess_return, max_drawdown, sharpe_statistics, summarise
from trainer.portfolio.simulation import (
    Panel,
    Rules,
    Simulation,
    buy_and_hold,
    exit_rows,
    simulate,
    trailing_volatility,
)
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

EQUAL_WEIGHT = "benchmark_equal_weight"
VOL_MATCHED = "benchmark_vol_matched"
SPY = "benchmark_spy"
OOF_SUFFIX = "_oof"
# The strategies the report and the gate read; every base model is simulated too, as a trial of
# the Deflated Sharpe Ratio, and stored under its own name.
SIGNAL_STRATEGIES = (ENSEMBLE, BENCHMARK_VOL_ONLY, BENCHMARK_RULE)


@dataclass(frozen=True)
class Period:
    """The signals of one evaluation period: per predictor, a directional score per sample row."""

    name: str  # "holdout" or "oof"
    rows: np.ndarray  # dataset rows
    scores: dict[str, np.ndarray]  # predictor -> score per row (NaN: no prediction)


@dataclass(frozen=True)
class PortfolioTables:
    """What the phase stores: portfolio_daily and portfolio_summary rows, the 'portfolio' fact, and
    the holdout figures the verdict shows (strategy -> sharpe, max_drawdown, annual_return)."""

    daily_rows: list[dict]
    summary_rows: list[dict]
    facts: dict
    results: dict[str, dict[str, float]]

    def figures(self, strategy: str) -> dict[str, float | None]:
        return {row["metric"]: row["value"] for row in self.summary_rows if row["strategy"] == strategy}


def run_portfolio_phase(context: RunContext) -> None:
    data = prepare_data(context)
    names = [*context.config.training.models, ENSEMBLE, BENCHMARK_VOL_ONLY, BENCHMARK_RULE]
    artifacts = {name: load_artifact(context, name) for name in names}
    closes = _closes(context, np.unique(data.dataset.symbols))
    tables = build_tables(context.run_id, context.config, data, artifacts, closes,
                          spy_level(context.connection, context.run_id),
                          searched_trials(context.connection, context.run_id))
    with store.transaction(context.connection) as connection:
        for table in ("portfolio_daily", "portfolio_summary"):
            connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (context.run_id,))
        store.write_rows(connection, "portfolio_daily", tables.daily_rows)
        store.write_rows(connection, "portfolio_summary", tables.summary_rows)
        store.write_rows(connection, "run_facts", [{"run_id": context.run_id, "key": "portfolio",
                                                    "value_json": json.dumps(tables.facts)}])
    crash_point("portfolio.after_commit")
    _report(tables)
    context.state["portfolio"] = {"completed": True, "results": tables.results}
    context.advance("portfolio")


def searched_trials(connection: sqlite3.Connection, run_id: str) -> int:
    """Parameter sets the hyperparameter search tried beyond the one per model that is scored here."""
    stored = store.get_fact(connection, run_id, "tuning")
    if not stored:
        return 0
    return sum(max(0, model["counted"] - 1) for model in json.loads(stored)["models"].values())


def build_tables(run_id: str, config: Config, data: TrainingData, artifacts: Mapping[str, dict],
                 closes: dict[str, pd.Series], spy: pd.Series | None, searched: int = 0) -> PortfolioTables:
    """Every account of both periods and its figures: a pure function of the stored samples,
    artifacts and prices (bench/replay_portfolio.py calls it with other settings). searched: the
    hyperparameter search's other trials, which the Deflated Sharpe Ratio counts as candidates."""
    labels = config.labels
    panel = Panel.from_closes(closes)
    barrier_exits = exit_rows(panel, closes, horizon=labels.horizon, barrier_k=labels.barrier_k,
                              vol_window=labels.vol_window, exits=config.portfolio.exits)
    held_exits = exit_rows(panel, closes, horizon=labels.horizon, barrier_k=labels.barrier_k,
                           vol_window=labels.vol_window, exits="horizon")
    volatility = trailing_volatility(panel, closes, labels.vol_window)
    rules = Rules.from_config(config.portfolio, labels)
    daily_rows, summary_rows, facts, results = [], [], {}, {}
    for period in _periods(config, data, artifacts):
        suffix = "" if period.name == "holdout" else OOF_SUFFIX
        rebalance, candidates = _rebalance_rows(panel, data, period.rows, labels.stride)
        last_row = min(int(rebalance[-1]) + labels.stride - 1, len(panel.dates) - 1)
        accounts: dict[str, Simulation] = {}
        for name, score in period.scores.items():
            matrix = _score_matrix(panel, data, period.rows, score, rebalance, labels.stride)
            accounts[name] = simulate(panel, barrier_exits, rebalance, matrix, rules, last_row=last_row)
            if name == ENSEMBLE:
                accounts[VOL_MATCHED] = simulate(panel, barrier_exits, rebalance, matrix, rules, last_row=last_row,
                                                 match_volatility=volatility)
        accounts[EQUAL_WEIGHT] = simulate(panel, held_exits, rebalance, candidates, rules.holding(),
                                          last_row=last_row)
        daily = {name: account.daily for name, account in accounts.items()}
        if spy is not None and spy.index.min() <= pd.Timestamp(panel.dates[rebalance[0]]):
            daily[SPY] = buy_and_hold(spy, panel.dates[rebalance[0]], panel.dates[last_row], rules.cost)
        trials = [daily_sharpe(daily[name]["net_return"].to_numpy()) for name in period.scores]
        for name, frame in daily.items():
            figures = summarise(frame, accounts[name].trades if name in accounts else None)
            figures.update(sharpe_statistics(frame, trials, searched))
            if name != EQUAL_WEIGHT:
                figures.update(_excess(frame, daily[EQUAL_WEIGHT], "excess_return", config))
            if name == ENSEMBLE:
                figures.update(_excess(frame, daily[BENCHMARK_VOL_ONLY], "excess_vs_vol_only", config))
                figures.update(_excess(frame, daily[VOL_MATCHED], "excess_vs_vol_matched", config))
            strategy = name + suffix
            summary_rows += [{"run_id": run_id, "strategy": strategy, "metric": metric,
                              "value": None if not math.isfinite(value) else float(value)}
                             for metric, value in figures.items()]
            daily_rows += _daily_rows(run_id, strategy, frame)
            _, peak, trough = max_drawdown(frame["nav"])
            facts[strategy] = {"start": str(frame.index[0].date()), "end": str(frame.index[-1].date()),
                               "max_drawdown_peak": None if peak is None else str(peak.date()),
                               "max_drawdown_trough": None if trough is None else str(trough.date())}
            if period.name == "holdout" and name in (ENSEMBLE, EQUAL_WEIGHT):
                results[name] = {key: figures[key] for key in ("sharpe", "max_drawdown", "annual_return")}
        facts["trials"] = len(trials) + searched
        facts["searched_trials"] = searched
    facts["settings"] = {**dataclasses.asdict(config.portfolio), "tranches": rules.tranches, "stride": labels.stride}
    return PortfolioTables(daily_rows, summary_rows, facts, results)


def _closes(context: RunContext, symbols: np.ndarray) -> dict[str, pd.Series]:
    closes = {}
    for symbol in symbols:
        frame = load_symbol(context, str(symbol))
        if frame is None:
            raise RuntimeError(f"The prices of {symbol} are no longer in the cache, so the portfolio cannot be "
                               "simulated; run 'python reset_checkpoint.py --phase training' after the prices "
                               "are back, or start over.")
        closes[str(symbol)] = frame["close"]
    return closes


def spy_level(connection: sqlite3.Connection, run_id: str) -> pd.Series | None:
    """The run's market proxy level when it is SPY (the demo and sources without SPY have none)."""
    rows = connection.execute("SELECT date, level FROM market_data WHERE run_id = ? AND proxy = 'SPY' "
                              "ORDER BY date", (run_id,)).fetchall()
    if not rows:
        return None
    dates, levels = zip(*rows, strict=True)
    return pd.Series(levels, index=pd.DatetimeIndex(dates), dtype=np.float64)


def _periods(config: Config, data: TrainingData, artifacts: Mapping[str, dict]) -> list[Period]:
    names = list(config.training.models)
    holdout_rows = data.split.holdout_idx
    holdout = {name: directional_score(artifacts[name]["holdout"]) for name in [*SIGNAL_STRATEGIES, *names]}
    voting = data.voting_rows(config.training.ensemble_min_train_years)
    base_oof = {name: artifacts[name]["oof"][voting] for name in names}
    oof = {ENSEMBLE: artifacts[ENSEMBLE]["selection"].combine(base_oof)}
    for name in (BENCHMARK_VOL_ONLY, BENCHMARK_RULE, *names):
        values = base_oof[name] if name in base_oof else artifacts[name]["oof"][voting]
        oof[name] = values
    return [Period("holdout", holdout_rows, holdout),
            Period("oof", voting, {name: _score_or_nan(values) for name, values in oof.items()})]


def _score_or_nan(proba: np.ndarray) -> np.ndarray:
    score = np.full(len(proba), np.nan)
    known = np.isfinite(proba).all(axis=1)
    score[known] = directional_score(proba[known])
    return score


def _rebalance_rows(panel: Panel, data: TrainingData, rows: np.ndarray, stride: int) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """Every `stride`-th calendar row from the period's first signal date to its last, and the
    equal-weight benchmark's candidates there (a zero score for every symbol with a signal)."""
    signal_rows = panel.rows_of(data.dataset.entry_dates[rows].astype("datetime64[D]"))
    rebalance = np.arange(signal_rows.min(), signal_rows.max() + 1, stride)
    candidates = _score_matrix(panel, data, rows, np.zeros(len(rows)), rebalance, stride)
    return rebalance, candidates


def _score_matrix(panel: Panel, data: TrainingData, rows: np.ndarray, score: np.ndarray, rebalance: np.ndarray,
                  stride: int) -> np.ndarray:
    """(R, n): each symbol's latest score dated within the `stride` rows up to each rebalance row
    (a signal is never used before its date; symbols whose dates fall between rebalances use
    theirs at the next one); NaN where a symbol has none."""
    signal_rows = panel.rows_of(data.dataset.entry_dates[rows].astype("datetime64[D]"))
    turn = np.searchsorted(rebalance, signal_rows, side="left")
    inside = turn < len(rebalance)
    inside[inside] &= rebalance[turn[inside]] - signal_rows[inside] < stride
    inside &= np.isfinite(score)
    column = {symbol: number for number, symbol in enumerate(panel.symbols)}
    columns = np.array([column[str(symbol)] for symbol in data.dataset.symbols[rows]], dtype=np.int64)
    matrix = np.full((len(rebalance), len(panel.symbols)), np.nan)
    order = np.argsort(signal_rows, kind="stable")  # later signals overwrite earlier ones
    order = order[inside[order]]
    matrix[turn[order], columns[order]] = score[order]
    return matrix


def _excess(frame: pd.DataFrame, benchmark: pd.DataFrame, key: str, config: Config) -> dict[str, float]:
    gate = config.gate
    point, low, high = excess_return(frame, benchmark, block_days=config.labels.horizon,
                                     reps=gate.bootstrap_reps, confidence=gate.confidence, seed=config.seed)
    return {key: point, f"{key}_low": low, f"{key}_high": high}


def _daily_rows(run_id: str, strategy: str, frame: pd.DataFrame) -> list[dict]:
    dates = frame.index.strftime("%Y-%m-%d")
    return [{"run_id": run_id, "strategy": strategy, "date": date, "nav": float(nav), "gross_return": float(gross),
             "net_return": float(net), "exposure": float(exposure), "turnover": float(turnover), "costs": float(cost)}
            for date, nav, gross, net, exposure, turnover, cost in zip(
                dates, frame["nav"], frame["gross_return"], frame["net_return"], frame["exposure"],
                frame["turnover"], frame["costs"], strict=True)]


def _report(tables: PortfolioTables) -> None:
    results, excess = tables.results, tables.figures(ENSEMBLE)

    def pct(value: float | None) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1%}"

    for name, label in ((ENSEMBLE, "Strategy"), (EQUAL_WEIGHT, "Equal weight")):
        figures = results.get(name, {})
        console.info(f"{label} after costs on the holdout: Sharpe {figures.get('sharpe', float('nan')):.2f}, "
                     f"{pct(figures.get('annual_return'))} a year, max drawdown {pct(figures.get('max_drawdown'))}.")
    console.info(f"Excess over equal weight {pct(excess.get('excess_return'))} a year "
                 f"[{pct(excess.get('excess_return_low'))}, {pct(excess.get('excess_return_high'))}]; over the "
                 f"volatility-only strategy {pct(excess.get('excess_vs_vol_only'))} "
                 f"[{pct(excess.get('excess_vs_vol_only_low'))}, {pct(excess.get('excess_vs_vol_only_high'))}]; "
                 f"over its volatility twin {pct(excess.get('excess_vs_vol_matched'))} "
                 f"[{pct(excess.get('excess_vs_vol_matched_low'))}, {pct(excess.get('excess_vs_vol_matched_high'))}].")
