"""The promotion gate: every criterion a statistical test on the holdout, evaluated, stored and explained.

The predecessors promoted a leaky model (AUC 0.9989) and a coin flip (AUC 0.50), and a first
version of this gate compared point estimates: a random walk passed two criteria and the demo's
real signal failed on noise. So every criterion here is decided on an interval from a block
bootstrap over holdout dates (blocks at least the label horizon long, because overlapping trades
share price moves), and every comparison between two predictors is PAIRED: both are scored on the
same resamples, so the interval is that of their difference. The ensemble is promoted only when

- its directional edge is above chance and above a model that knows only volatility,
- it is not clearly worse than its best member nor than the best one-feature rule,
- its probabilities beat always guessing the class shares (log loss),
- its top-ranked stocks out-earn the other stocks of the same day,
- no market regime (with enough barrier touches to judge) is clearly worse than a coin flip,
- the account that follows its signals earns more after costs than holding every stock equally
  and than the same account driven by volatility alone (from the portfolio phase's bootstrap),
- and no AUC is too good to be true.

All criteria are always evaluated (no short-circuit) so the report shows the whole picture.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.store import transaction
from trainer.config import GateConfig
from trainer.ml.metrics import (
    BUY,
    SELL,
    _auc_directional,
    bootstrap_means,
    dates_spanning,
    directional_score,
    paired_bootstrap,
    within_date_top_excess,
)

ENSEMBLE = "ensemble"
BASELINE = "baseline"
VOL_ONLY = "benchmark_vol_only"
RULE = "benchmark_rule"
NOT_BASE_MODELS = (ENSEMBLE, BASELINE, VOL_ONLY, RULE)
CHANCE_AUC = 0.5
MIN_REGIME_BLOCKS = 10  # a regime is judged only on at least this many bootstrap blocks of dates
Metrics = Mapping[str, Any]

# What each failed criterion means, for someone who does not read statistics.
PLAIN_FAILURES = {
    "leakage_alarm": "a result looks too good to be true, which almost always means a data leak",
    "beats_baseline_log_loss": "its probabilities are not more accurate than always guessing the usual mix "
                               "of BUY, HOLD and SELL",
    "directional_edge_over_chance": "its up/down calls cannot be told apart from a coin flip",
    "directional_edge_over_volatility": "it does no better than a model that only knows how volatile "
                                        "each stock is",
    "not_worse_than_best_base": "it is clearly worse than one of its own member models",
    "not_worse_than_rule": "it is clearly worse than a simple one-feature rule",
    "top_decile_excess_return": "the stocks it ranks highest did not earn more than the other stocks "
                                "on the same days",
    "no_weak_regime": "it is clearly worse than a coin flip in some market regime",
    "strategy_beats_benchmarks_after_costs": "after trading costs, following its signals did not clearly earn "
                                             "more than holding every stock equally, than the same strategy run "
                                             "on volatility alone, or than holding other stocks just as volatile",
}
PORTFOLIO_CRITERION = "strategy_beats_benchmarks_after_costs"


@dataclass(frozen=True)
class Criterion:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    message: str
    low: float | None = None  # the interval of value, when it is a bootstrap statistic
    high: float | None = None


@dataclass(frozen=True)
class GateDecision:
    criteria: list[Criterion]
    promoted: bool
    summary: str
    explanation: str = ""  # the decision in plain words

    def to_json(self) -> str:
        """What model_promotion_history.criteria_json holds: every criterion, the summary and explanation."""
        return json.dumps({"promoted": self.promoted, "summary": self.summary, "explanation": self.explanation,
                           "criteria": [asdict(criterion) for criterion in self.criteria]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> GateDecision:
        data = json.loads(text)
        return cls([Criterion(**item) for item in data["criteria"]], bool(data["promoted"]), data["summary"],
                   data.get("explanation", ""))


@dataclass(frozen=True)
class HoldoutEvidence:
    """The holdout as the gate sees it: one row per sample, aligned across models."""

    y: np.ndarray  # 0 SELL, 1 HOLD, 2 BUY
    returns: np.ndarray  # realised trade return
    dates: np.ndarray  # entry dates (datetime64[D])
    regimes: np.ndarray  # object: regime name or None
    probabilities: dict[str, np.ndarray]  # model -> (n, 3); must hold ENSEMBLE
    metrics: dict[str, Metrics] = field(default_factory=dict)  # model -> stored holdout metrics
    # The ensemble strategy's holdout portfolio_summary (metric -> value); None: not simulated.
    portfolio: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class _Resamples:
    """Paired bootstrap values of the directional AUC per model, and the top-decile statistic."""

    auc: dict[str, np.ndarray]
    top_excess: np.ndarray
    log_loss_difference: np.ndarray


def decide(evidence: HoldoutEvidence, config: GateConfig, *, horizon: int, seed: int = 0) -> GateDecision:
    """Pure core: the holdout evidence -> every criterion -> the decision."""
    if ENSEMBLE not in evidence.probabilities:
        raise ValueError(f"no holdout predictions for '{ENSEMBLE}' (got {sorted(evidence.probabilities)})")
    block_days = dates_spanning(evidence.dates, horizon)
    top_by_date = _top_excess_by_date(evidence)
    problem, resamples = None, None
    try:
        resamples = _resample(evidence, top_by_date, block_days, config.bootstrap_reps, seed)
    except ValueError as error:  # too few dates or samples: the statistical criteria fail and say why
        problem = str(error)
    tail = (1.0 - config.confidence) / 2.0
    criteria = [
        _leakage(evidence.metrics, config),
        _log_loss_vs_baseline(evidence, resamples, tail, problem),
        _edge_over_chance(evidence, resamples, tail, problem),
        _edge_over(evidence, resamples, tail, problem, VOL_ONLY),
        _not_worse(evidence, resamples, tail, problem, config, best_base=True),
        _not_worse(evidence, resamples, tail, problem, config, best_base=False),
        _top_decile(top_by_date[1], resamples, tail, problem),
        _regimes(evidence, config, block_days, tail, seed),
        _portfolio(evidence.portfolio, config),
    ]
    return _decision(criteria, config)


def _decision(criteria: list[Criterion], config: GateConfig) -> GateDecision:
    failed = [criterion.name for criterion in criteria if not criterion.passed]
    level = f"{config.confidence:.0%}"
    if failed:
        summary = f"REJECTED: {len(failed)} of {len(criteria)} criteria failed ({', '.join(failed)})."
        reasons = "; ".join(PLAIN_FAILURES.get(name, name) for name in failed)
        explanation = (f"No usable edge was proven, so nothing is promoted and the production model (if any) "
                       f"is unchanged. On the holdout, the period the models never saw: {reasons}. Do not "
                       "trade on this run's signals.")
    else:
        summary = f"PROMOTED: all {len(criteria)} criteria passed."
        explanation = (f"The ensemble showed a directional edge on the holdout, the period it never saw, that "
                       f"holds with {level} confidence against chance, against volatility alone and against "
                       "simple rules, and following it earned more after costs than holding every stock "
                       "equally, with no sign of leakage. It is now the production model. An edge "
                       "in the past is no promise of future returns: start small and watch the live record.")
    return GateDecision(criteria, not failed, summary, explanation)


def _top_excess_by_date(evidence: HoldoutEvidence) -> tuple[np.ndarray, np.ndarray]:
    """(dates, excess): each date's top tenth by the ensemble's directional score against the day's
    average, in LOG returns: in simple returns a coin flip on a volatile stock has a positive mean
    (convexity), so ranking by volatility alone would out-earn the day's average."""
    return within_date_top_excess(directional_score(evidence.probabilities[ENSEMBLE]),
                                  np.log1p(evidence.returns), evidence.dates)


def _resample(evidence: HoldoutEvidence, top_by_date: tuple[np.ndarray, np.ndarray], block_days: int,
              reps: int, seed: int) -> _Resamples:
    y, dates = evidence.y, evidence.dates
    auc = paired_bootstrap(y, evidence.probabilities, dates, block_days=block_days, reps=reps, seed=seed)
    day_dates, excess = top_by_date
    top = bootstrap_means(excess, day_dates, block_days=block_days, reps=reps, seed=seed)
    difference = np.full(reps, np.nan)
    if BASELINE in evidence.probabilities:
        losses = paired_bootstrap(y, {ENSEMBLE: evidence.probabilities[ENSEMBLE],
                                      BASELINE: evidence.probabilities[BASELINE]}, dates,
                                  metric="log_loss", block_days=block_days, reps=reps, seed=seed)
        difference = losses[ENSEMBLE] - losses[BASELINE]
    return _Resamples(auc, top, difference)


def _interval(values: np.ndarray, tail: float) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size < max(10, values.size // 2):
        return None
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def _number(value: Any) -> float | None:
    """A finite float, or None for missing/NaN metrics (which can never pass a criterion)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _point_auc(evidence: HoldoutEvidence, name: str) -> float | None:
    y = evidence.y
    keep = (y == BUY) | (y == SELL)
    if not (np.any(y[keep] == BUY) and np.any(y[keep] == SELL)):
        return None
    return _number(_auc_directional(y, evidence.probabilities[name], np.ones((1, len(y))))[0])


def _unproven(name: str, threshold: float | None, what: str, problem: str | None) -> Criterion:
    return Criterion(name, None, threshold, False,
                     f"{what} could not be measured, so it is unproven: {problem or 'no holdout predictions'}.")


def _leakage(metrics: Mapping[str, Metrics], config: GateConfig) -> Criterion:
    """Any holdout AUC >= leakage_auc (or as far below 0.5: an inverted model) fails the gate."""
    name = "leakage_alarm"
    aucs = [(value, model, metric) for model, values in metrics.items()
            for metric in ("auc_ovr", "auc_directional")
            if (value := _number(values.get(metric))) is not None]
    if not aucs:
        return Criterion(name, None, config.leakage_auc, False, "No holdout AUC is available, so leakage "
                         "cannot be ruled out. Check that evaluation ran and wrote model_performance.")
    value, model, metric = max(aucs, key=lambda item: abs(item[0] - CHANCE_AUC))
    low = 1.0 - config.leakage_auc
    if low < value < config.leakage_auc:
        return Criterion(name, value, config.leakage_auc, True,
                         f"The holdout AUC farthest from 0.5 is {model} {metric} = {value:.4f}, inside the "
                         f"leakage alarm band ({low:.2f}, {config.leakage_auc:.2f}): nothing looks too good "
                         "to be true.")
    alarmed = sorted(f"{m} {k} = {v:.4f}" for v, m, k in aucs if not low < v < config.leakage_auc)
    return Criterion(name, value, config.leakage_auc, False,
                     f"LEAKAGE ALARM: {'; '.join(alarmed)} (alarm at >= {config.leakage_auc:.2f}, or "
                     f"<= {low:.2f} for an inverted model). Stock direction over weeks is not predictable "
                     "this well; this is almost certainly leakage - a feature that sees the future - not "
                     "skill. Check: features computed with data after the entry date (unshifted or centred "
                     "windows, full-history normalisation, back-filled values), the label, exit date or "
                     "realised return (or anything derived from them) among the features, and the "
                     "purge/embargo between training and holdout (a sample's exit date must not reach "
                     "past the split).")


def _log_loss_vs_baseline(evidence: HoldoutEvidence, resamples: _Resamples | None, tail: float,
                          problem: str | None) -> Criterion:
    name = "beats_baseline_log_loss"
    ensemble, baseline = evidence.metrics.get(ENSEMBLE, {}), evidence.metrics.get(BASELINE, {})
    value = (None if _number(ensemble.get("log_loss")) is None or _number(baseline.get("log_loss")) is None
             else float(ensemble["log_loss"]) - float(baseline["log_loss"]))
    interval = None if resamples is None else _interval(resamples.log_loss_difference, tail)
    if value is None or interval is None:
        return _unproven(name, 0.0, "The ensemble's log loss against the class-prior baseline", problem)
    low, high = interval
    passed = high < 0.0
    return Criterion(name, value, 0.0, passed,
                     f"Ensemble minus class-prior baseline holdout log loss is {value:+.4f} (interval "
                     f"[{low:+.4f}, {high:+.4f}]; below 0 is better). "
                     + ("The whole interval is below 0: its probabilities beat always guessing the training "
                        "class shares." if passed else "The interval reaches 0 or above: its probabilities "
                        "are not proven better than always guessing the training class shares."), low, high)


def _edge_over_chance(evidence: HoldoutEvidence, resamples: _Resamples | None, tail: float,
                      problem: str | None) -> Criterion:
    name = "directional_edge_over_chance"
    value = _point_auc(evidence, ENSEMBLE)
    interval = None if resamples is None else _interval(resamples.auc[ENSEMBLE], tail)
    if value is None or interval is None:
        return _unproven(name, CHANCE_AUC, "The ensemble's directional AUC", problem)
    low, high = interval
    passed = low > CHANCE_AUC
    return Criterion(name, value, CHANCE_AUC, passed,
                     f"Ensemble directional AUC (BUY vs SELL among barrier-touching samples) is {value:.4f}, "
                     f"interval [{low:.4f}, {high:.4f}]: its lower bound is {'above' if passed else 'not above'} "
                     f"0.5, so the edge is {'' if passed else 'not '}distinguishable from a coin flip.", low, high)


def _difference(resamples: _Resamples, other: str, tail: float) -> tuple[float, float] | None:
    if other not in resamples.auc:
        return None
    return _interval(resamples.auc[ENSEMBLE] - resamples.auc[other], tail)


def _edge_over(evidence: HoldoutEvidence, resamples: _Resamples | None, tail: float, problem: str | None,
               other: str) -> Criterion:
    name = "directional_edge_over_volatility"
    ensemble, benchmark = _point_auc(evidence, ENSEMBLE), (
        _point_auc(evidence, other) if other in evidence.probabilities else None)
    interval = None if resamples is None else _difference(resamples, other, tail)
    if ensemble is None or benchmark is None or interval is None:
        return _unproven(name, 0.0, "The ensemble's edge over the volatility-only benchmark",
                         problem or f"no holdout predictions of {other}")
    low, high = interval
    passed = low > 0.0
    return Criterion(name, ensemble - benchmark, 0.0, passed,
                     f"Ensemble minus volatility-only benchmark ({benchmark:.4f}) directional AUC is "
                     f"{ensemble - benchmark:+.4f}, paired interval [{low:+.4f}, {high:+.4f}]: "
                     + ("wholly above 0, so the ensemble knows more than how volatile a stock is."
                        if passed else "not wholly above 0, so what the ensemble knows may be only volatility."),
                     low, high)


def _not_worse(evidence: HoldoutEvidence, resamples: _Resamples | None, tail: float, problem: str | None,
               config: GateConfig, *, best_base: bool) -> Criterion:
    name = "not_worse_than_best_base" if best_base else "not_worse_than_rule"
    threshold = -config.max_shortfall
    if best_base:
        scores = {model: auc for model in evidence.probabilities if model not in NOT_BASE_MODELS
                  if (auc := _point_auc(evidence, model)) is not None}
        other = max(scores, key=scores.__getitem__) if scores else None
        label = f"the best base model on the holdout ({other})"
    else:
        other = RULE if RULE in evidence.probabilities else None
        label = "the one-feature rule"
    ensemble = _point_auc(evidence, ENSEMBLE)
    rival = None if other is None else _point_auc(evidence, other)
    interval = None if resamples is None or other is None else _difference(resamples, other, tail)
    if ensemble is None or rival is None or interval is None:
        return _unproven(name, threshold, f"The ensemble against {label}", problem or "nothing to compare")
    low, high = interval
    passed = high > threshold
    return Criterion(name, ensemble - rival, threshold, passed,
                     f"Ensemble minus {label} ({rival:.4f}) directional AUC is {ensemble - rival:+.4f}, paired "
                     f"interval [{low:+.4f}, {high:+.4f}]; it fails only if the whole interval is below "
                     f"{threshold:+.4f}. " + ("Not significantly worse." if passed else
                                              "Significantly worse: promote nothing rather than a worse model."),
                     low, high)


def _top_decile(excess: np.ndarray, resamples: _Resamples | None, tail: float,
                problem: str | None) -> Criterion:
    name = "top_decile_excess_return"
    value = _number(excess.mean()) if excess.size else None
    interval = None if resamples is None else _interval(resamples.top_excess, tail)
    if value is None or interval is None:
        return _unproven(name, 0.0, "The top decile's excess return", problem)
    low, high = interval
    passed = low > 0.0
    return Criterion(name, value, 0.0, passed,
                     f"On each holdout date, the top 10% of stocks by the ensemble's directional score earned "
                     f"{value:+.2%} (log return) per trade more than that date's average (mean over dates; interval "
                     f"[{low:+.2%}, {high:+.2%}]): "
                     + ("wholly above 0." if passed else "not wholly above 0, so its top picks are not proven "
                        "better than the rest."), low, high)


def _portfolio(summary: Mapping[str, float | None] | None, config: GateConfig) -> Criterion:
    """The simulated account after costs: its excess over equal weight, over the volatility-only
    strategy AND over its volatility twin must have interval lower bounds above 0 (on a log random
    walk, holding volatile names earns the convexity premium in simple returns, so beating equal
    weight alone proves nothing; see trainer/phases/portfolio.py for what was measured); the DSR
    is shown, and judged when gate.min_dsr > 0."""
    name = PORTFOLIO_CRITERION
    figures = {key: _number(value) for key, value in (summary or {}).items()}
    needed = ("excess_return", "excess_return_low", "excess_return_high", "excess_vs_vol_only",
              "excess_vs_vol_only_low", "excess_vs_vol_only_high", "excess_vs_vol_matched",
              "excess_vs_vol_matched_low", "excess_vs_vol_matched_high")
    if any(figures.get(key) is None for key in needed):
        return _unproven(name, 0.0, "The simulated account's excess return after costs",
                         "the portfolio phase stored no excess returns with intervals for this run "
                         "(too short a holdout for two bootstrap blocks, or not simulated)")
    dsr = figures.get("dsr")
    beats_equal = figures["excess_return_low"] > 0.0
    beats_vol = figures["excess_vs_vol_only_low"] > 0.0
    beats_twin = figures["excess_vs_vol_matched_low"] > 0.0
    dsr_ok = config.min_dsr <= 0.0 or (dsr is not None and dsr >= config.min_dsr)
    passed = beats_equal and beats_vol and beats_twin and dsr_ok
    dsr_text = "n/a" if dsr is None else f"{dsr:.2f}"
    text = (f"After costs, the strategy earned {figures['excess_return']:+.1%} a year more than the equal-weight "
            f"universe (interval [{figures['excess_return_low']:+.1%}, {figures['excess_return_high']:+.1%}]), "
            f"{figures['excess_vs_vol_only']:+.1%} more than the same strategy on the volatility-only model "
            f"([{figures['excess_vs_vol_only_low']:+.1%}, {figures['excess_vs_vol_only_high']:+.1%}]) and "
            f"{figures['excess_vs_vol_matched']:+.1%} more than its volatility twin, which holds stocks of the "
            f"same volatility ([{figures['excess_vs_vol_matched_low']:+.1%}, "
            f"{figures['excess_vs_vol_matched_high']:+.1%}]); Deflated "
            f"Sharpe Ratio {dsr_text}" + (f" (required >= {config.min_dsr:.2f})" if config.min_dsr > 0 else
                                          " (shown, not judged: gate.min_dsr = 0)") + ": ")
    if passed:
        text += "all three lower bounds above 0."
    else:
        reasons = [what for what, ok in (("the excess over equal weight is not wholly above 0", beats_equal),
                                         ("the excess over the volatility-only strategy is not wholly above 0",
                                          beats_vol),
                                         ("the excess over its volatility twin is not wholly above 0", beats_twin),
                                         ("the DSR is below the threshold", dsr_ok)) if not ok]
        text += "; ".join(reasons) + "."
    return Criterion(name, figures["excess_return"], 0.0, passed, text, figures["excess_return_low"],
                     figures["excess_return_high"])


def _regimes(evidence: HoldoutEvidence, config: GateConfig, block_days: int, tail: float,
             seed: int) -> Criterion:
    """Each regime with enough barrier-touching samples on enough distinct dates gets its own
    interval; a regime fails only when its interval lies wholly below 0.5."""
    name = "no_weak_regime"
    y = evidence.y
    directional = (y == BUY) | (y == SELL)
    regimes = np.array([r if isinstance(r, str) else "unknown" for r in evidence.regimes], dtype=object)
    judged: dict[str, tuple[float, float, float]] = {}
    small = []
    # Enough dates for MIN_REGIME_BLOCKS bootstrap blocks: with two or three blocks an interval is
    # far too narrow, and a coin flip would fail a regime several times as often as it should.
    min_dates = max(config.min_regime_dates, MIN_REGIME_BLOCKS * block_days)
    for regime in sorted(set(regimes.tolist()) - {"unknown"}):
        rows = regimes == regime
        touching = rows & directional
        n_dates = np.unique(evidence.dates[touching]).size
        if touching.sum() < config.min_regime_directional or n_dates < min_dates:
            small.append(f"{regime} ({int(touching.sum())} touches on {n_dates} dates)")
            continue
        proba = {ENSEMBLE: evidence.probabilities[ENSEMBLE][rows]}
        sub = HoldoutEvidence(y[rows], evidence.returns[rows], evidence.dates[rows], regimes[rows], proba)
        point = _point_auc(sub, ENSEMBLE)
        try:
            values = paired_bootstrap(y[rows], proba, evidence.dates[rows], block_days=block_days,
                                      reps=config.bootstrap_reps, seed=seed)[ENSEMBLE]
        except ValueError:
            small.append(f"{regime} (too few dates for two bootstrap blocks)")
            continue
        interval = _interval(values, tail)
        if point is None or interval is None:
            small.append(f"{regime} (no interval)")
            continue
        judged[regime] = (point, *interval)
    note = (f" Too small to judge (fewer than {config.min_regime_directional} barrier touches or "
            f"{min_dates} dates): {', '.join(small)}." if small else "")
    if not judged:
        return Criterion(name, None, CHANCE_AUC, True, f"No regime has enough barrier-touching holdout samples "
                         f"to judge, so none can show a collapse.{note}")
    worst = min(judged, key=lambda regime: judged[regime][2])
    point, low, high = judged[worst]
    weak = sorted(f"{regime} ({p:.4f}, interval [{lo:.4f}, {hi:.4f}])"
                  for regime, (p, lo, hi) in judged.items() if hi < CHANCE_AUC)
    shown = ", ".join(f"{regime} {p:.4f} [{lo:.4f}, {hi:.4f}]" for regime, (p, lo, hi) in sorted(judged.items()))
    if weak:
        return Criterion(name, point, CHANCE_AUC, False,
                         f"The ensemble is significantly worse than a coin flip (interval wholly below 0.5) in: "
                         f"{', '.join(weak)}. Judged regimes: {shown}.{note}", low, high)
    return Criterion(name, point, CHANCE_AUC, True,
                     f"No judged regime's directional AUC interval lies wholly below 0.5: {shown}.{note}",
                     low, high)


def decide_from_db(connection: sqlite3.Connection, run_id: str, gate_config: GateConfig, horizon: int,
                   *, seed: int = 0) -> GateDecision:
    """Read the run's holdout predictions of every model (joined with the trades) and decide; say
    so when other runs in this database were already judged on the same holdout."""
    decision = decide(load_evidence(connection, run_id), gate_config, horizon=horizon, seed=seed)
    earlier = earlier_judgements(connection, run_id)
    if not earlier:
        return decision
    return replace(decision, explanation=decision.explanation + (
        f" Note: this holdout was already judged for {len(earlier)} other run(s) in this folder "
        f"({', '.join(earlier[:3])}{' ...' if len(earlier) > 3 else ''}). Every retry on the same holdout "
        "(another seed or setting) raises the chance that noise passes by luck; confirm on newer data."))


def earlier_judgements(connection: sqlite3.Connection, run_id: str) -> list[str]:
    """Other runs with a gate decision whose holdout covers exactly the same dates as this run's."""
    rows = dict(connection.execute("SELECT run_id, value_json FROM run_facts WHERE key = 'split'"))
    if run_id not in rows:
        return []
    def span(text: str) -> tuple:
        holdout = json.loads(text).get("holdout") or {}
        return holdout.get("start"), holdout.get("end")

    decided = {row[0] for row in connection.execute("SELECT DISTINCT run_id FROM model_promotion_history")}
    return sorted(other for other, text in rows.items()
                  if other != run_id and other in decided and span(text) == span(rows[run_id]))


def load_evidence(connection: sqlite3.Connection, run_id: str) -> HoldoutEvidence:
    performance = pd.read_sql_query(
        "SELECT * FROM model_performance WHERE run_id = ? AND scope = 'holdout' AND segment = 'all'",
        connection, params=(run_id,))
    # The ensemble's rows with their trades, then every model's probabilities one model at a time:
    # at 2,400 symbols one query of every model joined to its trades (4.9 million rows) took
    # gigabytes as Python rows before it became a DataFrame.
    ensemble = pd.read_sql_query(
        "SELECT t.symbol, t.entry_date, t.label, t.realised_return, t.regime FROM model_predictions p "
        "JOIN trades t ON t.run_id = p.run_id AND t.symbol = p.symbol AND t.entry_date = p.entry_date "
        "WHERE p.run_id = ? AND p.model = ? ORDER BY t.entry_date, t.symbol", connection, params=(run_id, ENSEMBLE))
    if ensemble.empty:
        raise ValueError(f"run {run_id} has no ensemble holdout predictions joined to trades; "
                         "run the evaluation phase before the gate")
    keys = ensemble[["symbol", "entry_date"]].reset_index(drop=True)
    probabilities = {}
    models = [row[0] for row in connection.execute(
        "SELECT DISTINCT model FROM model_predictions WHERE run_id = ? ORDER BY model", (run_id,))]
    for model in models:
        rows = pd.read_sql_query(
            "SELECT symbol, entry_date, p_sell, p_hold, p_buy FROM model_predictions "
            "WHERE run_id = ? AND model = ? ORDER BY entry_date, symbol", connection, params=(run_id, model))
        if not (len(rows) == len(keys) and (rows["symbol"].to_numpy() == keys["symbol"].to_numpy()).all()
                and (rows["entry_date"].to_numpy() == keys["entry_date"].to_numpy()).all()):
            rows = keys.merge(rows, on=["symbol", "entry_date"], how="left")  # a model without every row
        values = rows[["p_sell", "p_hold", "p_buy"]].to_numpy(dtype=float)
        if not np.isnan(values).any():
            probabilities[str(model)] = values
    regimes = ensemble["regime"].astype(object)
    portfolio = dict(connection.execute("SELECT metric, value FROM portfolio_summary WHERE run_id = ? AND "
                                        "strategy = ?", (run_id, ENSEMBLE)).fetchall())
    return HoldoutEvidence(
        y=ensemble["label"].to_numpy(dtype=int), returns=ensemble["realised_return"].to_numpy(dtype=float),
        dates=ensemble["entry_date"].to_numpy(dtype="datetime64[D]"),
        regimes=regimes.where(regimes.notna(), None).to_numpy(dtype=object), probabilities=probabilities,
        metrics=performance.set_index("model").to_dict("index"), portfolio=portfolio or None)


def record_decision(connection: sqlite3.Connection, run_id: str, decision: GateDecision,
                    production_path: Path | str | None) -> None:
    """Append the decision with every criterion to model_promotion_history (history is kept)."""
    with transaction(connection):
        connection.execute(
            "INSERT INTO model_promotion_history "
            "(run_id, decided_at, criteria_json, decision, production_path) VALUES (?, ?, ?, ?, ?)",
            (run_id, datetime.now(UTC).isoformat(timespec="seconds"), decision.to_json(),
             "promoted" if decision.promoted else "rejected",
             None if production_path is None else str(production_path)))


def latest_decision(connection: sqlite3.Connection,
                    run_id: str) -> tuple[GateDecision, str, str | None] | None:
    """The run's most recent decision, when it was made and where it was promoted to (or None)."""
    row = connection.execute("SELECT criteria_json, decided_at, production_path FROM model_promotion_history "
                             "WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    return None if row is None else (GateDecision.from_json(row[0]), row[1], row[2])
