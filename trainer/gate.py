"""The promotion gate: explicit criteria from GateConfig, every one evaluated, stored and explained.

The predecessors promoted a leaky model (AUC 0.9989) and a coin flip (AUC 0.50). So the ensemble
is promoted only when it beats the class-prior baseline, its directional edge is above chance with
95% confidence under a block bootstrap, it is no worse than its best member, it does not collapse
in any large regime, its top BUY signals earn more than average, and no AUC is too good to be true.
All criteria are always evaluated (no short-circuit) so the report shows the whole picture.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from backend.store import transaction
from trainer.config import GateConfig
from trainer.metrics import block_bootstrap_ci, dates_spanning

ENSEMBLE = "ensemble"
BASELINE = "baseline"
CHANCE_AUC = 0.5
# Criterion (c): the ensemble may trail its best member by at most this much (absolute) and still
# count as "at least as good" - differences this small are within run-to-run noise.
COMPARE_TOLERANCE = 0.001
LOWER_IS_BETTER = {"log_loss": True, "auc_directional": False}
Metrics = Mapping[str, Any]


@dataclass(frozen=True)
class Criterion:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    message: str


@dataclass(frozen=True)
class GateDecision:
    criteria: list[Criterion]
    promoted: bool
    summary: str

    def to_json(self) -> str:
        """What model_promotion_history.criteria_json holds: every criterion and the summary."""
        return json.dumps({"promoted": self.promoted, "summary": self.summary,
                           "criteria": [asdict(criterion) for criterion in self.criteria]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> GateDecision:
        data = json.loads(text)
        return cls([Criterion(**item) for item in data["criteria"]], bool(data["promoted"]), data["summary"])


def evaluate_criteria(holdout: Mapping[str, Metrics], regimes: Mapping[str, Metrics],
                      ci: tuple[float, float], config: GateConfig, *,
                      ci_problem: str | None = None) -> GateDecision:
    """Pure core: holdout metrics per model (base models, 'ensemble', 'baseline'), the ensemble's
    metrics per regime, and the block-bootstrap CI of its directional AUC -> the decision.

    ci_problem: why the CI could not be computed (it is then (nan, nan)), shown in the criterion.
    """
    ensemble = holdout.get(ENSEMBLE)
    if ensemble is None:
        raise ValueError(f"no holdout metrics for '{ENSEMBLE}' (got {sorted(holdout)}); the gate needs them")
    criteria = [
        _leakage(holdout, config),
        _beats_baseline(ensemble, holdout.get(BASELINE)),
        _directional_confident(ci, config, ci_problem),
        _directional_minimum(ensemble, config),
        _vs_best_base(ensemble, holdout, config),
        _regimes(regimes, config),
        _top_decile(ensemble),
    ]
    failed = [criterion.name for criterion in criteria if not criterion.passed]
    if failed:
        summary = f"REJECTED: {len(failed)} of {len(criteria)} criteria failed ({', '.join(failed)})."
    else:
        summary = f"PROMOTED: all {len(criteria)} criteria passed."
    return GateDecision(criteria, not failed, summary)


def _number(value: Any) -> float | None:
    """A finite float, or None for missing/NaN metrics (which can never pass a criterion)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _leakage(holdout: Mapping[str, Metrics], config: GateConfig) -> Criterion:
    """Any holdout AUC >= leakage_auc (or as far below 0.5: an inverted model) fails the gate."""
    name = "leakage_alarm"
    aucs = [(value, model, metric) for model, metrics in holdout.items()
            for metric in ("auc_ovr", "auc_directional")
            if (value := _number(metrics.get(metric))) is not None]
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


def _beats_baseline(ensemble: Metrics, baseline: Metrics | None) -> Criterion:
    name = "beats_baseline_log_loss"
    value = _number(ensemble.get("log_loss"))
    threshold = _number(baseline.get("log_loss")) if baseline is not None else None
    if value is None or threshold is None:
        return Criterion(name, value, threshold, False, "Ensemble or class-prior baseline log loss is "
                         "missing, so the ensemble cannot show it beats guessing the class shares.")
    passed = value < threshold
    verdict = "beats" if passed else "does not beat"
    return Criterion(name, value, threshold, passed,
                     f"Ensemble holdout log loss {value:.4f} {verdict} the class-prior baseline "
                     f"{threshold:.4f} (lower is better; the baseline always predicts the training "
                     "class shares).")


def _directional_confident(ci: tuple[float, float], config: GateConfig, problem: str | None) -> Criterion:
    name = "directional_auc_above_chance"
    low, high = (_number(bound) for bound in ci)
    level = f"{config.confidence:.0%}"
    if low is None:
        return Criterion(name, None, CHANCE_AUC, False, f"The {level} block-bootstrap interval of the "
                         "ensemble's directional AUC could not be computed, so its edge over a coin flip "
                         f"is unproven: {problem or 'no interval was given'}")
    passed = low > CHANCE_AUC
    where = "above" if passed else "not above"
    return Criterion(name, low, CHANCE_AUC, passed,
                     f"The {level} block-bootstrap interval of the ensemble's directional AUC (BUY vs SELL) "
                     f"is [{low:.4f}, {_fmt(high)}]; its lower bound is {where} 0.5, so the directional "
                     f"edge is {'' if passed else 'not '}distinguishable from a coin flip. Blocks of holdout "
                     "dates span at least the label horizon, because overlapping trades are not "
                     "independent.")


def _directional_minimum(ensemble: Metrics, config: GateConfig) -> Criterion:
    name = "directional_auc_minimum"
    value = _number(ensemble.get("auc_directional"))
    threshold = config.min_directional_auc
    if value is None:
        return Criterion(name, None, threshold, False, "The ensemble's directional AUC is missing "
                         "(no holdout sample touched a barrier?), so its direction skill is unknown.")
    passed = value >= threshold
    return Criterion(name, value, threshold, passed,
                     f"Ensemble directional AUC (BUY vs SELL among samples that touched a barrier) is "
                     f"{value:.4f}, {'at or above' if passed else 'below'} the required {threshold:.4f}.")


def _vs_best_base(ensemble: Metrics, holdout: Mapping[str, Metrics], config: GateConfig) -> Criterion:
    name = "ensemble_vs_best_base"
    metric = config.compare_metric
    lower_better = LOWER_IS_BETTER[metric]
    value = _number(ensemble.get(metric))
    bases = {model: v for model, metrics in holdout.items() if model not in (ENSEMBLE, BASELINE)
             if (v := _number(metrics.get(metric))) is not None}
    if value is None or not bases:
        return Criterion(name, value, None, False, f"The ensemble's {metric} or every base model's is "
                         "missing, so the ensemble cannot be compared with its members.")
    best_model = (min if lower_better else max)(bases, key=bases.__getitem__)
    best = bases[best_model]
    threshold = best + COMPARE_TOLERANCE if lower_better else best - COMPARE_TOLERANCE
    passed = value <= threshold if lower_better else value >= threshold
    direction = "lower" if lower_better else "higher"
    verdict = "is at least as good as" if passed else "is worse than"
    return Criterion(name, value, threshold, passed,
                     f"Ensemble {metric} {value:.4f} {verdict} the best single model ({best_model}, "
                     f"{best:.4f}; {direction} is better, tolerance {COMPARE_TOLERANCE})."
                     + ("" if passed else " Stacking adds complexity without benefit; promote nothing "
                        "rather than a worse ensemble."))


def _regimes(regimes: Mapping[str, Metrics], config: GateConfig) -> Criterion:
    name = "no_weak_regime"
    floor = CHANCE_AUC
    large = {regime: metrics for regime, metrics in regimes.items()
             if (_number(metrics.get("n_samples")) or 0) >= config.min_regime_samples}
    judged = {regime: v for regime, metrics in large.items()
              if (v := _number(metrics.get("auc_directional"))) is not None}
    unjudged = sorted(set(large) - set(judged))
    note = f" Regimes without a directional AUC: {', '.join(unjudged)}." if unjudged else ""
    if not judged:
        return Criterion(name, None, floor, True,
                         f"No regime has both >= {config.min_regime_samples} holdout samples and a "
                         f"directional AUC, so no regime can show a collapse.{note}")
    weak = sorted(f"{regime} ({auc:.4f})" for regime, auc in judged.items() if auc < floor)
    worst = min(judged, key=judged.__getitem__)
    if weak:
        return Criterion(name, judged[worst], floor, False,
                         f"The ensemble's directional AUC is below 0.5 (worse than a coin flip) in "
                         f"regime(s) with >= {config.min_regime_samples} samples: {', '.join(weak)}.{note}")
    return Criterion(name, judged[worst], floor, True,
                     f"Every regime with >= {config.min_regime_samples} holdout samples has directional AUC "
                     f">= 0.5; the weakest is {worst} at {judged[worst]:.4f}.{note}")


def _top_decile(ensemble: Metrics) -> Criterion:
    name = "top_decile_return"
    value = _number(ensemble.get("top_decile_return"))
    threshold = _number(ensemble.get("all_mean_return"))
    if value is None or threshold is None:
        return Criterion(name, value, threshold, False, "Top-decile or all-sample mean return is missing, "
                         "so the BUY signals cannot show they pick better trades.")
    passed = value > threshold
    return Criterion(name, value, threshold, passed,
                     f"The ensemble's top-decile BUY signals returned {value:+.4%} on average, "
                     f"{'more' if passed else 'not more'} than the {threshold:+.4%} of all holdout samples.")


def decide_from_db(connection: sqlite3.Connection, run_id: str, gate_config: GateConfig, horizon: int,
                   *, seed: int = 0) -> GateDecision:
    """Read the run's holdout metrics and ensemble predictions, bootstrap the CI, decide.

    Bootstrap blocks are as many consecutive holdout entry dates as span the label horizon in
    trading days: trades that overlap share price moves and are resampled together.
    """
    performance = pd.read_sql_query("SELECT * FROM model_performance WHERE run_id = ?", connection,
                                    params=(run_id,))
    holdout = performance[(performance["scope"] == "holdout") & (performance["segment"] == "all")]
    regimes = performance[(performance["scope"] == "regime") & (performance["model"] == ENSEMBLE)]
    predictions = pd.read_sql_query(
        "SELECT t.label, p.p_sell, p.p_hold, p.p_buy, t.entry_date FROM model_predictions p "
        "JOIN trades t ON t.run_id = p.run_id AND t.symbol = p.symbol AND t.entry_date = p.entry_date "
        "WHERE p.run_id = ? AND p.model = ? ORDER BY t.entry_date, t.symbol", connection,
        params=(run_id, ENSEMBLE))
    if predictions.empty:
        raise ValueError(f"run {run_id} has no ensemble holdout predictions joined to trades; "
                         "run the evaluation phase before the gate")
    ci, problem = (math.nan, math.nan), None
    dates = predictions["entry_date"].to_numpy(dtype="datetime64[D]")
    try:
        ci = block_bootstrap_ci(predictions["label"].to_numpy(dtype=int),
                                predictions[["p_sell", "p_hold", "p_buy"]].to_numpy(dtype=float),
                                dates, metric="auc_directional",
                                block_days=dates_spanning(dates, horizon), reps=gate_config.bootstrap_reps,
                                confidence=gate_config.confidence, seed=seed)
    except ValueError as error:  # too few dates or samples: the criterion fails and says why
        problem = str(error)
    return evaluate_criteria(holdout.set_index("model").to_dict("index"),
                             regimes.set_index("segment").to_dict("index"), ci, gate_config, ci_problem=problem)


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
