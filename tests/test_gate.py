"""The promotion gate on hand-made holdouts: a set that passes, each criterion failing on its own,
intervals instead of point estimates, storage and the database path."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from backend import store
from trainer.config import GateConfig
from trainer.ml.metrics import evaluate
from trainer.promotion.gate import (
    BASELINE,
    ENSEMBLE,
    RULE,
    VOL_ONLY,
    GateDecision,
    HoldoutEvidence,
    decide,
    decide_from_db,
    latest_decision,
    record_decision,
)

CONFIG = GateConfig(bootstrap_reps=300)
HORIZON = 20
ALL_NAMES = ["leakage_alarm", "beats_baseline_log_loss", "directional_edge_over_chance",
             "directional_edge_over_volatility", "not_worse_than_best_base", "not_worse_than_rule",
             "top_decile_excess_return", "no_weak_regime", "strategy_beats_benchmarks_after_costs"]
# What the portfolio phase stores for an ensemble whose account beats both benchmarks after costs.
GOOD_PORTFOLIO = {"excess_return": 0.06, "excess_return_low": 0.01, "excess_return_high": 0.11,
                  "excess_vs_vol_only": 0.08, "excess_vs_vol_only_low": 0.02, "excess_vs_vol_only_high": 0.14,
                  "excess_vs_vol_matched": 0.05, "excess_vs_vol_matched_low": 0.005,
                  "excess_vs_vol_matched_high": 0.1,
                  "dsr": 0.97, "sharpe": 1.1}
PRIOR = np.array([0.2, 0.6, 0.2])


def _proba(direction: np.ndarray, hold: float | np.ndarray = PRIOR[1]) -> np.ndarray:
    """Probabilities whose directional score p_buy / (p_buy + p_sell) is `direction`."""
    moving = 1.0 - np.asarray(hold, dtype=float) * np.ones(len(direction))
    return np.column_stack([moving * (1 - direction), 1 - moving, moving * direction])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_evidence(*, n_dates: int = 150, n_symbols: int = 40, seed: int = 0, signal: float = 1.2,
                  ensemble_noise: float = 1.0, base_noise: float = 1.4, rule_noise: float = 2.5,
                  vol_noise: float | None = None, returns_follow_labels: bool = True,
                  inverted_regime: str | None = None) -> HoldoutEvidence:
    """A holdout with a real, moderate directional signal s: among barrier-touching samples
    P(BUY) = sigmoid(signal * s). The ensemble sees s + noise, base models and the rule more noise,
    the volatility benchmark nothing (or s + vol_noise). Regimes alternate by blocks of dates."""
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2021-01-04", periods=n_dates, freq="5B").to_numpy("datetime64[D]"),
                      n_symbols)
    n = len(dates)
    s = rng.normal(size=n)
    touched = rng.random(n) < 0.4
    up = rng.random(n) < _sigmoid(signal * s)
    y = np.where(touched, np.where(up, 2, 0), 1)
    day = np.searchsorted(np.unique(dates), dates)
    regimes = np.where((day // 25) % 2 == 0, "up_low_vol", "down_high_vol").astype(object)
    seen = s.copy()
    if inverted_regime is not None:
        seen = np.where(regimes == inverted_regime, -s, s)
    if returns_follow_labels:
        returns = np.where(y == 2, 0.05, np.where(y == 0, -0.05, rng.normal(0, 0.01, n)))
    else:
        returns = rng.normal(0.0, 0.05, n)

    def informed(truth: np.ndarray, noise: float) -> np.ndarray:
        """A calibrated guess from truth + noise: the slope shrinks as the noise grows."""
        return _proba(_sigmoid(signal / (1 + noise**2) * (truth + rng.normal(0, noise, n))))

    probabilities = {
        ENSEMBLE: informed(seen, ensemble_noise),
        "lightgbm": informed(s, base_noise),
        "random_forest": informed(s, base_noise * 1.2),
        RULE: informed(s, rule_noise),
        VOL_ONLY: _proba(np.full(n, 0.5) + rng.normal(0, 0.01, n)) if vol_noise is None else informed(s, vol_noise),
        BASELINE: np.tile(PRIOR, (n, 1)),
    }
    metrics = {name: evaluate(y, proba, returns) for name, proba in probabilities.items()}
    return HoldoutEvidence(y, returns, dates, regimes, probabilities, metrics, GOOD_PORTFOLIO)


def _with(evidence: HoldoutEvidence, **probabilities: np.ndarray) -> HoldoutEvidence:
    merged = {**evidence.probabilities, **probabilities}
    metrics = {name: evaluate(evidence.y, proba, evidence.returns) for name, proba in merged.items()}
    return replace(evidence, probabilities=merged, metrics=metrics)


def _failed(decision: GateDecision) -> dict[str, str]:
    return {c.name: c.message for c in decision.criteria if not c.passed}


@pytest.fixture(scope="module")
def good() -> HoldoutEvidence:
    return make_evidence()


def test_a_real_edge_passes_every_criterion_with_intervals(good):
    decision = decide(good, CONFIG, horizon=HORIZON)
    assert [c.name for c in decision.criteria] == ALL_NAMES
    assert decision.promoted, _failed(decision)
    assert decision.summary.startswith("PROMOTED")
    assert "It is now the production model" in decision.explanation
    for criterion in decision.criteria:
        assert criterion.message
        if criterion.name != "leakage_alarm":
            assert criterion.low is not None and criterion.low <= criterion.high, criterion.name


def _only_failure(evidence: HoldoutEvidence, name: str, words: str, config: GateConfig = CONFIG) -> GateDecision:
    decision = decide(evidence, config, horizon=HORIZON)
    failed = _failed(decision)
    assert list(failed) == [name], failed
    assert words in failed[name]
    assert not decision.promoted and name in decision.summary
    assert "No usable edge" in decision.explanation and "production model (if any) is unchanged" in \
        decision.explanation
    return decision


def test_leakage_alarm_fails_alone_and_names_the_model(good):
    leaky = replace(good, metrics={**good.metrics, "lightgbm": {**good.metrics["lightgbm"], "auc_ovr": 0.9989}})
    decision = _only_failure(leaky, "leakage_alarm", "lightgbm auc_ovr = 0.9989")
    alarm = decision.criteria[0]
    for words in ("LEAKAGE ALARM", "almost certainly leakage", "sees the future", "embargo"):
        assert words in alarm.message


def test_overconfident_probabilities_fail_the_log_loss_test_alone(good):
    # Same direction ranking (so every directional criterion is unchanged), HOLD almost never predicted.
    direction = good.probabilities[ENSEMBLE][:, 2] / (1 - good.probabilities[ENSEMBLE][:, 1])
    decision = _only_failure(_with(good, ensemble=_proba(direction, hold=0.05)), "beats_baseline_log_loss",
                             "not proven better")
    log_loss = decision.criteria[1]
    assert log_loss.value > 0 and log_loss.low > 0


def test_a_coin_flip_ensemble_is_not_above_chance():
    rng = np.random.default_rng(5)
    evidence = make_evidence(seed=5)
    flip = _with(evidence, ensemble=_proba(rng.random(len(evidence.y))))
    decision = decide(flip, CONFIG, horizon=HORIZON)
    failed = _failed(decision)
    assert {"directional_edge_over_chance", "not_worse_than_best_base", "top_decile_excess_return"} <= set(failed)
    chance = next(c for c in decision.criteria if c.name == "directional_edge_over_chance")
    assert chance.low < 0.5 < chance.high and "not distinguishable from a coin flip" in chance.message


def test_knowing_only_volatility_fails_the_volatility_test_alone(good):
    _only_failure(_with(good, benchmark_vol_only=good.probabilities[ENSEMBLE]), "directional_edge_over_volatility",
                  "may be only volatility")


def test_a_clearly_better_member_fails_the_best_base_test_alone():
    evidence = make_evidence(seed=1, ensemble_noise=2.0, base_noise=0.2, rule_noise=4.0)
    decision = _only_failure(evidence, "not_worse_than_best_base", "Significantly worse")
    criterion = next(c for c in decision.criteria if c.name == "not_worse_than_best_base")
    assert "(lightgbm)" in criterion.message and criterion.high < -CONFIG.max_shortfall


def test_a_member_as_good_as_the_ensemble_passes(good):
    decision = decide(_with(good, xgboost=good.probabilities[ENSEMBLE]), CONFIG, horizon=HORIZON)
    criterion = next(c for c in decision.criteria if c.name == "not_worse_than_best_base")
    assert criterion.passed and criterion.value == pytest.approx(0.0, abs=1e-12)


def test_a_clearly_better_rule_fails_the_rule_test_alone():
    evidence = make_evidence(seed=2, ensemble_noise=2.0, base_noise=2.5, rule_noise=0.2)
    _only_failure(evidence, "not_worse_than_rule", "one-feature rule")


def test_top_picks_that_earn_nothing_fail_the_top_decile_test_alone():
    evidence = make_evidence(seed=3, returns_follow_labels=False)
    decision = _only_failure(evidence, "top_decile_excess_return", "not wholly above 0")
    top = next(c for c in decision.criteria if c.name == "top_decile_excess_return")
    assert top.low < 0 < top.high


def test_an_inverted_regime_fails_the_regime_test():
    evidence = make_evidence(seed=4, signal=2.0, ensemble_noise=0.5, inverted_regime="down_high_vol")
    decision = decide(evidence, CONFIG, horizon=HORIZON)
    regime = next(c for c in decision.criteria if c.name == "no_weak_regime")
    assert not regime.passed and "down_high_vol" in regime.message and regime.high < 0.5


def test_a_regime_needs_ten_bootstrap_blocks_of_dates():
    # 30 dates per regime with 4-date blocks: fewer than 10 blocks, so it is not judged at all.
    evidence = make_evidence(seed=0, n_dates=60, n_symbols=15, signal=1.2, ensemble_noise=2.5,
                             inverted_regime="down_high_vol")
    decision = decide(evidence, replace(CONFIG, min_regime_directional=50, min_regime_dates=10), horizon=HORIZON)
    regime = next(c for c in decision.criteria if c.name == "no_weak_regime")
    assert "or 40 dates): down_high_vol" in regime.message and regime.passed


def test_regimes_are_sized_by_barrier_touches_and_dates(good):
    # 150 dates x 40 symbols x 40% touches: about 1,200 touches on 75 dates per regime.
    strict = replace(CONFIG, min_regime_directional=5_000)
    regime = next(c for c in decide(good, strict, horizon=HORIZON).criteria if c.name == "no_weak_regime")
    assert regime.passed and regime.value is None and "Too small to judge" in regime.message
    assert "touches on 75 dates" in regime.message
    few_dates = replace(CONFIG, min_regime_dates=76)
    regime = next(c for c in decide(good, few_dates, horizon=HORIZON).criteria if c.name == "no_weak_regime")
    assert regime.value is None


def test_a_regime_below_half_with_a_wide_interval_is_not_a_failure():
    # A small inverted regime: below 0.5 at this seed, but its interval still reaches above 0.5.
    evidence = make_evidence(seed=0, n_dates=100, n_symbols=10, signal=1.2, ensemble_noise=2.5,
                             inverted_regime="down_high_vol")
    decision = decide(evidence, replace(CONFIG, min_regime_directional=50, min_regime_dates=10), horizon=HORIZON)
    regime = next(c for c in decision.criteria if c.name == "no_weak_regime")
    assert regime.value < 0.5 < regime.high and regime.passed
    assert "down_high_vol" in regime.message and "up_low_vol" in regime.message
    # Another draw of the same design (seed 1) has its interval wholly below 0.5: that fails.
    clearer = make_evidence(seed=1, n_dates=100, n_symbols=10, signal=1.2, ensemble_noise=2.5,
                            inverted_regime="down_high_vol")
    regime = next(c for c in decide(clearer, replace(CONFIG, min_regime_directional=50, min_regime_dates=10),
                                    horizon=HORIZON).criteria if c.name == "no_weak_regime")
    assert regime.high < 0.5 and not regime.passed


def test_a_holdout_too_short_for_blocks_fails_every_statistical_criterion(good):
    short = make_evidence(n_dates=6, n_symbols=40)
    decision = decide(short, CONFIG, horizon=HORIZON * 5)
    failed = _failed(decision)
    for name in ALL_NAMES[1:7]:
        assert name in failed and "could not be measured" in failed[name], name
    assert "6 dates" in failed["directional_edge_over_chance"]


@pytest.mark.parametrize(("change", "words"), [
    ({"excess_return_low": -0.01}, "the excess over equal weight is not wholly above 0"),
    ({"excess_vs_vol_only_low": -0.001}, "the excess over the volatility-only strategy is not wholly above 0"),
    ({"excess_vs_vol_matched_low": -0.02}, "the excess over its volatility twin is not wholly above 0"),
    ({"excess_return_low": None}, "could not be measured"),
])
def test_an_account_that_does_not_beat_both_benchmarks_after_costs_fails(good, change, words):
    evidence = replace(good, portfolio={**GOOD_PORTFOLIO, **change})
    decision = _only_failure(evidence, "strategy_beats_benchmarks_after_costs", words)
    assert "holding every stock equally" in decision.explanation


def test_the_deflated_sharpe_ratio_is_judged_only_with_a_threshold(good):
    weak = replace(good, portfolio={**GOOD_PORTFOLIO, "dsr": 0.6})
    shown = next(c for c in decide(weak, CONFIG, horizon=HORIZON).criteria if c.name == ALL_NAMES[-1])
    assert shown.passed and "shown, not judged" in shown.message and "0.60" in shown.message
    _only_failure(weak, ALL_NAMES[-1], "the DSR is below the threshold", replace(CONFIG, min_dsr=0.9))
    assert decide(weak, replace(CONFIG, min_dsr=0.5), horizon=HORIZON).promoted


def test_a_run_without_a_portfolio_simulation_is_not_promoted(good):
    _only_failure(replace(good, portfolio=None), ALL_NAMES[-1], "could not be measured")


def test_decisions_are_deterministic_for_a_seed(good):
    assert decide(good, CONFIG, horizon=HORIZON, seed=3) == decide(good, CONFIG, horizon=HORIZON, seed=3)


def test_record_decision_stores_every_criterion_with_its_interval(tmp_path, good):
    connection = store.connect(tmp_path / "t.db")
    decision = decide(good, CONFIG, horizon=HORIZON)
    record_decision(connection, "run1", decision, tmp_path / "models" / "production")
    row = connection.execute("SELECT decision, criteria_json, production_path FROM model_promotion_history "
                             "WHERE run_id = 'run1'").fetchone()
    assert row[0] == "promoted" and row[2].endswith("production")
    stored = json.loads(row[1])
    assert [c["name"] for c in stored["criteria"]] == ALL_NAMES
    assert all({"value", "threshold", "passed", "message", "low", "high"} <= set(c) for c in stored["criteria"])
    assert stored["explanation"] == decision.explanation
    recorded, decided_at, path = latest_decision(connection, "run1")
    assert recorded == decision and decided_at and path == row[2]
    assert latest_decision(connection, "other") is None


def test_decisions_of_the_first_release_still_read():
    old = json.dumps({"promoted": False, "summary": "REJECTED: 1 of 7 criteria failed (x).",
                      "criteria": [{"name": "x", "value": 0.5, "threshold": 0.52, "passed": False, "message": "m"}]})
    decision = GateDecision.from_json(old)
    assert decision.criteria[0].low is None and decision.explanation == ""


def _fill_run(connection, evidence: HoldoutEvidence) -> None:
    symbols = np.tile([f"S{i:02d}" for i in range(40)], len(evidence.y) // 40)
    entry = [str(d) for d in evidence.dates]
    trades = [{"run_id": "run1", "symbol": s, "entry_date": d, "exit_date": d, "exit_reason": "time",
               "realised_return": float(r), "label": int(label), "regime": regime}
              for s, d, r, label, regime in zip(symbols, entry, evidence.returns, evidence.y, evidence.regimes,
                                                 strict=True)]
    performance, predictions = [], []
    for model, proba in evidence.probabilities.items():
        performance.append({"run_id": "run1", "model": model, "scope": "holdout", "segment": "all",
                            **evidence.metrics[model]})
        predictions += [{"run_id": "run1", "model": model, "symbol": s, "entry_date": d, "p_sell": float(p[0]),
                         "p_hold": float(p[1]), "p_buy": float(p[2])}
                        for s, d, p in zip(symbols, entry, proba, strict=True)]
    with store.transaction(connection):
        store.write_rows(connection, "trades", trades)
        store.write_rows(connection, "model_performance", performance)
        store.write_rows(connection, "model_predictions", predictions)
        store.write_rows(connection, "portfolio_summary", [
            {"run_id": "run1", "strategy": "ensemble", "metric": metric, "value": value}
            for metric, value in (evidence.portfolio or {}).items()])


def test_decide_from_db_equals_the_pure_decision(tmp_path):
    evidence = make_evidence(n_dates=60)
    connection = store.connect(tmp_path / "t.db")
    _fill_run(connection, evidence)
    from_db = decide_from_db(connection, "run1", CONFIG, horizon=HORIZON, seed=3)
    direct = decide(evidence, CONFIG, horizon=HORIZON, seed=3)
    assert [(c.name, c.passed) for c in from_db.criteria] == [(c.name, c.passed) for c in direct.criteria]
    for a, b in zip(from_db.criteria, direct.criteria, strict=True):
        assert a.value == pytest.approx(b.value) and a.low == pytest.approx(b.low), a.name


def test_a_holdout_judged_before_for_another_run_is_pointed_out(tmp_path):
    evidence = make_evidence(n_dates=60)
    connection = store.connect(tmp_path / "t.db")
    _fill_run(connection, evidence)
    split = {"holdout": {"start": "2021-01-04", "end": "2022-02-04", "n_samples": 2400}}
    assert "already judged" not in decide_from_db(connection, "run1", CONFIG, horizon=HORIZON).explanation
    with store.transaction(connection):
        store.write_rows(connection, "run_facts", [
            {"run_id": run, "key": "split", "value_json": json.dumps(split)} for run in ("run0", "run1")])
    earlier = decide(evidence, CONFIG, horizon=HORIZON)
    record_decision(connection, "run0", earlier, None)
    explanation = decide_from_db(connection, "run1", CONFIG, horizon=HORIZON).explanation
    assert "this holdout was already judged for 1 other run(s) in this folder (run0)" in explanation


def test_decide_from_db_without_predictions_says_what_to_run(tmp_path):
    connection = store.connect(tmp_path / "t.db")
    with pytest.raises(ValueError, match="evaluation phase"):
        decide_from_db(connection, "run1", CONFIG, horizon=20)


def test_ranking_by_volatility_earns_no_top_decile_excess_in_log_returns():
    """On driftless log prices a volatile stock's mean SIMPLE return is positive (convexity,
    about sigma^2 / 2), so picking the most volatile names out-earns the day's average in simple
    returns without knowing direction. The criterion measures log returns: no excess."""
    rng = np.random.default_rng(21)
    base = make_evidence(seed=21)
    n = len(base.y)
    sigma = rng.uniform(0.01, 0.05, n) * np.sqrt(20)  # horizon volatility per trade
    log_returns = rng.normal(0.0, sigma)
    returns = np.expm1(log_returns)
    volatility_ranker = _proba(0.5 + 0.4 * (sigma - sigma.min()) / np.ptp(sigma))
    evidence = replace(_with(base, ensemble=volatility_ranker), returns=returns)
    top = next(c for c in decide(evidence, CONFIG, horizon=HORIZON).criteria if c.name == "top_decile_excess_return")
    assert not top.passed and top.low < 0 < top.high
    from trainer.ml.metrics import within_date_top_excess
    _, simple_excess = within_date_top_excess(sigma, returns, evidence.dates)
    assert simple_excess.mean() > 0.01  # what the simple-return version would have credited


def test_load_evidence_aligns_every_model_to_the_ensembles_rows_and_leaves_out_an_incomplete_one(tmp_path):
    from trainer.promotion.gate import load_evidence

    evidence = make_evidence(n_dates=60)
    connection = store.connect(tmp_path / "t.db")
    _fill_run(connection, evidence)
    complete = load_evidence(connection, "run1")
    assert set(complete.probabilities) == set(evidence.probabilities)
    for model, proba in evidence.probabilities.items():  # the rows come back in the evidence's order
        np.testing.assert_allclose(complete.probabilities[model], proba)
    np.testing.assert_array_equal(complete.y, evidence.y)
    incomplete = next(model for model in evidence.probabilities if model != ENSEMBLE)
    with store.transaction(connection):
        connection.execute("DELETE FROM model_predictions WHERE model = ? AND entry_date = ? AND symbol = 'S00'",
                           (incomplete, str(evidence.dates[0])))
    assert set(load_evidence(connection, "run1").probabilities) == set(evidence.probabilities) - {incomplete}
