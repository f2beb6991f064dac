"""The promotion gate: a set that passes, each criterion failing in turn, storage and the DB path."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from backend import store
from trainer import gate
from trainer.config import GateConfig
from trainer.gate import (
    COMPARE_TOLERANCE,
    GateDecision,
    decide_from_db,
    evaluate_criteria,
    latest_decision,
    record_decision,
)

CONFIG = GateConfig()
LOG_LOSS_CONFIG = replace(CONFIG, compare_metric="log_loss")
CI = (0.53, 0.59)
ALL_NAMES = {"leakage_alarm", "beats_baseline_log_loss", "directional_auc_above_chance",
             "directional_auc_minimum", "ensemble_vs_best_base", "no_weak_regime", "top_decile_return"}


def _metrics(**values: float) -> dict[str, float]:
    base = {"n_samples": 3000, "n_directional": 1800, "auc_ovr": 0.58, "auc_directional": 0.56,
            "log_loss": 1.05, "brier": 0.62, "balanced_accuracy": 0.38, "top_decile_buy_precision": 0.45,
            "top_decile_return": 0.012, "all_mean_return": 0.004}
    return {**base, **values}


def _holdout(**ensemble: float) -> dict[str, dict[str, float]]:
    return {"ensemble": _metrics(**ensemble),
            "lightgbm": _metrics(log_loss=1.055, auc_directional=0.555),
            "xgboost": _metrics(log_loss=1.06, auc_directional=0.55),
            "baseline": _metrics(auc_ovr=0.5, auc_directional=0.5, log_loss=1.09, top_decile_return=0.004)}


def _regimes(**worst: float) -> dict[str, dict[str, float]]:
    return {"bull_calm": _metrics(n_samples=1200, auc_directional=0.57),
            "bear_volatile": _metrics(n_samples=800, **({"auc_directional": 0.53} | worst)),
            "bull_volatile": _metrics(n_samples=120, auc_directional=0.41)}  # too small to judge


def _failed(decision: GateDecision) -> dict[str, str]:
    return {c.name: c.message for c in decision.criteria if not c.passed}


def test_a_good_ensemble_passes_every_criterion():
    decision = evaluate_criteria(_holdout(), _regimes(), CI, CONFIG)
    assert decision.promoted, decision.summary
    assert {c.name for c in decision.criteria} == ALL_NAMES
    assert all(c.passed and c.message for c in decision.criteria)
    assert decision.summary.startswith("PROMOTED")


@pytest.mark.parametrize(("holdout", "regimes", "ci", "config", "name", "words"), [
    (_holdout(log_loss=1.095), _regimes(), CI, CONFIG,
     "beats_baseline_log_loss", "does not beat"),
    (_holdout(), _regimes(), (0.49, 0.60), CONFIG, "directional_auc_above_chance", "not above 0.5"),
    (_holdout(auc_directional=0.515), _regimes(), CI, LOG_LOSS_CONFIG, "directional_auc_minimum",
     "below the required 0.5200"),
    (_holdout(log_loss=1.055 + 2 * COMPARE_TOLERANCE), _regimes(), CI, LOG_LOSS_CONFIG, "ensemble_vs_best_base",
     "worse than the best single model (lightgbm"),
    (_holdout(auc_directional=0.552), _regimes(), CI, CONFIG,
     "ensemble_vs_best_base", "worse than the best single model (lightgbm, 0.5550"),
    (_holdout(), _regimes(auc_directional=0.48), CI, CONFIG, "no_weak_regime", "bear_volatile (0.4800)"),
    (_holdout(top_decile_return=0.003), _regimes(), CI, CONFIG, "top_decile_return", "not more than"),
    (_holdout(auc_ovr=0.83), _regimes(), CI, CONFIG, "leakage_alarm", "almost certainly leakage"),
])
def test_each_criterion_fails_alone(holdout, regimes, ci, config, name, words):
    decision = evaluate_criteria(holdout, regimes, ci, config)
    failed = _failed(decision)
    assert list(failed) == [name]
    assert words in failed[name]
    assert not decision.promoted
    assert name in decision.summary and decision.summary.startswith("REJECTED")
    assert len(decision.criteria) == len(ALL_NAMES)  # every criterion is still evaluated and shown


def test_tolerance_lets_a_tie_pass():
    decision = evaluate_criteria(_holdout(log_loss=1.055 + COMPARE_TOLERANCE / 2), _regimes(), CI,
                                 LOG_LOSS_CONFIG)
    criterion = next(c for c in decision.criteria if c.name == "ensemble_vs_best_base")
    assert criterion.passed and f"tolerance {COMPARE_TOLERANCE}" in criterion.message
    assert criterion.threshold == pytest.approx(1.055 + COMPARE_TOLERANCE)


def test_leakage_alarm_names_the_model_and_what_to_check():
    holdout = _holdout()
    holdout["lightgbm"] = _metrics(auc_ovr=0.9989, auc_directional=0.97, log_loss=0.2)
    decision = evaluate_criteria(holdout, _regimes(), CI, CONFIG)
    alarm = next(c for c in decision.criteria if c.name == "leakage_alarm")
    assert not alarm.passed and not decision.promoted
    assert alarm.value == pytest.approx(0.9989) and alarm.threshold == CONFIG.leakage_auc
    for words in ("LEAKAGE ALARM", "lightgbm auc_ovr = 0.9989", "lightgbm auc_directional = 0.9700",
                  "almost certainly leakage", "sees the future", "not skill", "embargo"):
        assert words in alarm.message


def test_an_inverted_model_also_raises_the_alarm():
    holdout = _holdout()
    holdout["xgboost"] = _metrics(auc_directional=0.12)
    alarm = next(c for c in evaluate_criteria(holdout, _regimes(), CI, CONFIG).criteria
                 if c.name == "leakage_alarm")
    assert not alarm.passed and "xgboost auc_directional = 0.1200" in alarm.message


def test_coin_flip_is_rejected_and_missing_metrics_fail_not_crash():
    flip = _holdout(auc_directional=0.50, log_loss=1.09)
    decision = evaluate_criteria(flip, _regimes(auc_directional=0.5), (0.47, 0.53), CONFIG)
    assert not decision.promoted
    assert {"beats_baseline_log_loss", "directional_auc_above_chance", "directional_auc_minimum"} <= set(
        _failed(decision))
    missing = evaluate_criteria(_holdout(auc_directional=float("nan")), _regimes(), (float("nan"),) * 2, CONFIG)
    assert {"directional_auc_above_chance", "directional_auc_minimum"} <= set(_failed(missing))


def test_no_judgeable_regime_is_said_plainly():
    decision = evaluate_criteria(_holdout(), {"bull_calm": _metrics(n_samples=10, auc_directional=0.3)},
                                 CI, CONFIG)
    regime = next(c for c in decision.criteria if c.name == "no_weak_regime")
    assert regime.passed and regime.value is None and "No regime has" in regime.message


def test_record_decision_stores_every_criterion(tmp_path):
    connection = store.connect(tmp_path / "t.db")
    decision = evaluate_criteria(_holdout(), _regimes(), CI, CONFIG)
    record_decision(connection, "run1", decision, tmp_path / "models" / "production")
    row = connection.execute("SELECT decision, criteria_json, production_path FROM model_promotion_history "
                             "WHERE run_id = 'run1'").fetchone()
    assert row[0] == "promoted" and row[2].endswith("production")
    stored = json.loads(row[1])
    assert {c["name"] for c in stored["criteria"]} == ALL_NAMES
    assert all({"value", "threshold", "passed", "message"} <= set(c) for c in stored["criteria"])
    recorded, decided_at, path = latest_decision(connection, "run1")
    assert recorded == decision and decided_at and path == row[2]
    assert latest_decision(connection, "other") is None


def _fill_run(connection, n_dates: int) -> None:
    """Holdout metrics, regimes and ~2 x n_dates ensemble predictions with a real directional edge."""
    rows = []
    for model, metrics in _holdout().items():
        rows.append({"run_id": "run1", "model": model, "scope": "holdout", "segment": "all", **metrics})
    for regime, metrics in _regimes().items():
        rows.append({"run_id": "run1", "model": "ensemble", "scope": "regime", "segment": regime, **metrics})
    rows.append({"run_id": "run1", "model": "lightgbm", "scope": "regime", "segment": "bull_calm",
                 **_metrics(n_samples=900, auc_directional=0.2)})  # not the ensemble: ignored
    dates = pd.bdate_range("2022-01-03", periods=n_dates, freq="5B").strftime("%Y-%m-%d")
    rng = np.random.default_rng(0)
    trades, predictions = [], []
    for symbol in ("AAA", "BBB", "CCC"):
        for date in dates:
            label = int(rng.integers(0, 3))
            p_buy = float(np.clip(0.33 + 0.1 * (label - 1) + rng.normal(0, 0.1), 0.05, 0.9))
            trades.append({"run_id": "run1", "symbol": symbol, "entry_date": date, "exit_date": date,
                           "exit_reason": "time", "realised_return": 0.0, "label": label, "regime": "bull_calm"})
            predictions.append({"run_id": "run1", "model": "ensemble", "symbol": symbol, "entry_date": date,
                                "p_sell": (1 - p_buy) / 2, "p_hold": (1 - p_buy) / 2, "p_buy": p_buy})
    with store.transaction(connection):
        store.write_rows(connection, "model_performance", rows)
        store.write_rows(connection, "trades", trades)
        store.write_rows(connection, "model_predictions", predictions)


def test_decide_from_db_reads_metrics_and_bootstraps_over_dates(tmp_path, monkeypatch):
    connection = store.connect(tmp_path / "t.db")
    _fill_run(connection, n_dates=60)
    seen, real = {}, gate.block_bootstrap_ci

    def spy(y, proba, dates, **kwargs):  # records the arguments, computes the real interval
        seen.update(y=y, proba=proba, dates=dates, **kwargs)
        return real(y, proba, dates, **kwargs)

    monkeypatch.setattr(gate, "block_bootstrap_ci", spy)
    decision = decide_from_db(connection, "run1", replace(CONFIG, bootstrap_reps=200), horizon=20, seed=3)
    # samples every 5 business days: blocks of 4 sample dates span the 20-day horizon
    assert seen["metric"] == "auc_directional" and seen["block_days"] == 4 and seen["seed"] == 3
    assert seen["reps"] == 200 and seen["confidence"] == CONFIG.confidence
    assert len(seen["y"]) == 180 and seen["proba"].shape == (180, 3) and len(set(seen["dates"])) == 60
    above = next(c for c in decision.criteria if c.name == "directional_auc_above_chance")
    assert above.passed and 0.5 < above.value < 1.0, above.message
    regime = next(c for c in decision.criteria if c.name == "no_weak_regime")
    assert regime.value == pytest.approx(0.53)  # from the ensemble's regime rows only
    assert decision.promoted, decision.summary


def test_decide_from_db_fails_the_ci_criterion_when_the_holdout_is_too_short(tmp_path):
    connection = store.connect(tmp_path / "t.db")
    _fill_run(connection, n_dates=30)
    # dates 5 business days apart: blocks of 20 sample dates, so 30 dates cannot make two blocks
    decision = decide_from_db(connection, "run1", CONFIG, horizon=100)
    failed = _failed(decision)
    assert list(failed) == ["directional_auc_above_chance"]
    assert "could not be computed" in failed["directional_auc_above_chance"]
    assert "30 dates" in failed["directional_auc_above_chance"]


def test_decide_from_db_without_predictions_says_what_to_run(tmp_path):
    connection = store.connect(tmp_path / "t.db")
    with pytest.raises(ValueError, match="evaluation phase"):
        decide_from_db(connection, "run1", CONFIG, horizon=20)
