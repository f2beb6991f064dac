"""Metrics on hand-made cases, agreement with sklearn, the date-block bootstrap and the leakage alarm."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

from trainer.ml.metrics import (
    LEAKAGE_AUC,
    METRIC_KEYS,
    block_bootstrap_ci,
    block_bootstrap_distribution,
    bootstrap_date_counts,
    bootstrap_means,
    class_prior_baseline,
    directional_score,
    evaluate,
    paired_bootstrap,
    segment_metrics,
    suspicious_metrics,
)


def labels(n: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, n)


def noisy_proba(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([2, 2, 2], n)


def test_perfect_predictions() -> None:
    y = labels()
    returns = np.where(y == 2, 0.1, np.where(y == 0, -0.1, 0.0))
    metrics = evaluate(y, np.eye(3)[y], returns)
    assert tuple(metrics) == METRIC_KEYS
    assert metrics["auc_ovr"] == metrics["auc_directional"] == metrics["balanced_accuracy"] == 1.0
    assert metrics["log_loss"] == pytest.approx(0.0) and metrics["brier"] == 0.0
    assert metrics["top_decile_buy_precision"] == 1.0 and metrics["top_decile_return"] == pytest.approx(0.1)
    assert metrics["n_samples"] == 300 and metrics["n_directional"] == int(np.sum(y != 1))
    json.dumps(metrics)  # plain Python numbers, ready for SQLite and the report


def test_inverted_direction_gives_zero_directional_auc() -> None:
    y = labels()
    inverted = np.eye(3)[2 - y]  # BUY predicted for SELL and the other way round
    metrics = evaluate(y, inverted, np.zeros(len(y)))
    assert metrics["auc_directional"] == 0.0
    assert metrics["brier"] == pytest.approx(2 * np.mean(y != 1))


def test_random_predictions_score_one_half_and_agree_with_sklearn() -> None:
    y, proba = labels(20_000), noisy_proba(20_000)
    metrics = evaluate(y, proba, np.zeros(len(y)))
    assert metrics["auc_ovr"] == pytest.approx(0.5, abs=0.02)
    assert metrics["auc_directional"] == pytest.approx(0.5, abs=0.02)
    assert metrics["auc_ovr"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    directional = y != 1
    assert metrics["auc_directional"] == pytest.approx(
        roc_auc_score(y[directional] == 2, directional_score(proba[directional])))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba, labels=[0, 1, 2]))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, proba.argmax(axis=1)))
    assert metrics["brier"] == pytest.approx(np.mean(np.sum((proba - np.eye(3)[y]) ** 2, axis=1)))


def test_ties_count_half_like_sklearn() -> None:
    y = np.array([0, 2, 0, 2, 2, 0, 1, 1])
    proba = np.array([[0.2, 0.6, 0.2]] * 4 + [[0.1, 0.1, 0.8], [0.5, 0.2, 0.3], [0.3, 0.4, 0.3],
                                               [0.6, 0.2, 0.2]])
    metrics = evaluate(y, proba, np.zeros(8), min_directional=1)
    directional = y != 1
    assert metrics["auc_directional"] == pytest.approx(
        roc_auc_score(y[directional] == 2, directional_score(proba[directional])))


def test_undefined_aucs_are_none() -> None:
    proba = noisy_proba(50)
    only_buy = evaluate(np.full(50, 2), proba, np.zeros(50))
    assert only_buy["auc_ovr"] is None and only_buy["auc_directional"] is None
    few_directional = np.array([1] * 45 + [0, 2, 0, 2, 0])
    assert evaluate(few_directional, proba, np.zeros(50))["auc_directional"] is None
    assert evaluate(few_directional, proba, np.zeros(50), min_directional=5)["auc_directional"] is not None


def test_top_decile_takes_the_highest_buy_probabilities() -> None:
    y = np.array([2, 0, 1, 2, 0, 1, 2, 0, 1, 0] * 2)
    returns = np.arange(20, dtype=float) / 100
    proba = np.full((20, 3), 0.3)
    proba[[3, 15], 2] = 0.9  # one BUY (return 0.03) and one SELL (0.15) get the top scores
    proba /= proba.sum(axis=1, keepdims=True)
    metrics = evaluate(y, proba, returns)
    assert metrics["top_decile_buy_precision"] == 0.5
    assert metrics["top_decile_return"] == pytest.approx(0.09)
    assert metrics["all_mean_return"] == pytest.approx(returns.mean())


def test_class_prior_baseline_repeats_training_frequencies() -> None:
    baseline = class_prior_baseline(np.array([0, 0, 2, 2, 2, 2]), 4)
    np.testing.assert_allclose(baseline, [[1 / 3, 0.0, 2 / 3]] * 4)


def dated(n_days: int, per_day: int) -> np.ndarray:
    return np.repeat(np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + n_days), per_day)


def test_block_bootstrap_interval_contains_one_half_on_noise_and_excludes_it_on_signal() -> None:
    dates = dated(300, 20)
    y = labels(len(dates), seed=3)
    noise = block_bootstrap_ci(y, noisy_proba(len(dates), seed=4), dates, block_days=20, reps=300,
                               confidence=0.95, seed=0)
    assert noise[0] < 0.5 < noise[1]
    signal = noisy_proba(len(dates), seed=4)
    signal[:, 2] += 0.3 * (y == 2)
    signal /= signal.sum(axis=1, keepdims=True)
    low, high = block_bootstrap_ci(y, signal, dates, block_days=20, reps=300, confidence=0.95, seed=0)
    assert 0.5 < low < high


def test_block_bootstrap_widens_when_errors_persist_across_dates() -> None:
    """Persistent market swings in outcomes and in a model's bias make neighbouring dates move
    together (as overlapping labels do): blocks of dates see that spread, single dates do not."""
    rng = np.random.default_rng(8)
    dates = dated(400, 25)
    outcome_swing = np.repeat(rng.normal(size=400).cumsum() * 0.3, 25)
    model_swing = np.repeat(rng.normal(size=400).cumsum() * 0.3, 25)
    y = np.where(rng.normal(size=len(dates)) + outcome_swing > 0, 2, 0)
    p_buy = 1 / (1 + np.exp(-(rng.normal(size=len(dates)) + model_swing)))
    proba = np.column_stack([1 - p_buy, np.zeros(len(dates)), p_buy])
    settings = {"reps": 200, "confidence": 0.9, "seed": 1}
    single = block_bootstrap_ci(y, proba, dates, block_days=1, **settings)
    blocks = block_bootstrap_ci(y, proba, dates, block_days=20, **settings)
    assert blocks[1] - blocks[0] > 2 * (single[1] - single[0])
    assert single[0] > 0.5 and blocks[0] < 0.5 < blocks[1]  # "skill" from two unrelated random walks


def test_same_seed_gives_the_same_resamples_for_paired_comparisons() -> None:
    dates = dated(200, 10)
    y, proba = labels(len(dates)), noisy_proba(len(dates))
    first = block_bootstrap_distribution(y, proba, dates, block_days=10, reps=50, seed=5)
    again = block_bootstrap_distribution(y, proba, dates, block_days=10, reps=50, seed=5)
    np.testing.assert_array_equal(first, again)
    other = block_bootstrap_distribution(y, proba, dates, block_days=10, reps=50, seed=6)
    assert not np.array_equal(first, other)
    losses = block_bootstrap_distribution(y, proba, dates, metric="log_loss", block_days=10, reps=50, seed=5)
    assert losses.shape == (50,) and (losses > 0).all()


def test_each_resample_scores_as_its_rows_would_materialised() -> None:
    """The bootstrap counts pairs per two dates instead of resampling rows: on every resample it
    must give what sklearn gives on the resampled rows themselves (dates drawn c times repeated c
    times), ties in the scores and a date with one class included."""
    rng = np.random.default_rng(3)
    dates = np.datetime64("2021-01-04") + np.sort(rng.integers(0, 40, 900))
    y = rng.integers(0, 3, len(dates))
    y[dates == dates[0]] = 2  # the first date holds BUY samples only
    proba = rng.dirichlet([1, 1, 1], len(dates)).round(2)  # rounded: many tied scores
    proba /= proba.sum(axis=1, keepdims=True)
    models = {"model": proba, "other": proba[::-1].copy()}
    settings = {"block_days": 3, "reps": 40, "seed": 9}
    counts, day = bootstrap_date_counts(dates, **settings)
    auc = paired_bootstrap(y, models, dates, **settings)
    ovr = paired_bootstrap(y, models, dates, metric="auc_ovr", **settings)
    loss = paired_bootstrap(y, models, dates, metric="log_loss", **settings)
    for rep in range(settings["reps"]):
        rows = np.repeat(np.arange(len(dates)), counts[rep, day])
        for name, values in models.items():
            kept = rows[y[rows] != 1]
            expected = roc_auc_score(y[kept] == 2, directional_score(values[kept]))
            assert auc[name][rep] == pytest.approx(expected, abs=1e-12)
            assert ovr[name][rep] == pytest.approx(roc_auc_score(y[rows], values[rows], multi_class="ovr"),
                                                   abs=1e-12)
            assert loss[name][rep] == pytest.approx(log_loss(y[rows], values[rows], labels=[0, 1, 2]), rel=1e-9)
    daily = rng.normal(size=40)
    means = bootstrap_means(daily, np.unique(dates), **settings)
    np.testing.assert_allclose(means, counts @ daily / counts.sum(axis=1), rtol=1e-12)


def test_a_resample_without_both_classes_has_no_auc() -> None:
    dates = dated(4, 25)
    y = np.where(np.arange(len(dates)) < 50, 2, 0)  # BUY on the first two dates, SELL on the last two
    auc = paired_bootstrap(y, {"model": noisy_proba(len(dates))}, dates, block_days=2, reps=200, seed=0)["model"]
    # A resample of the first block twice (1 in 16) holds BUY alone: undefined, not 0 or 1.
    assert 0 < np.isnan(auc).sum() < 50 and np.isfinite(auc).sum() > 150
    only_hold = paired_bootstrap(np.ones(len(dates), dtype=int), {"m": noisy_proba(len(dates))}, dates,
                                 block_days=2, reps=10, seed=0)["m"]
    assert np.isnan(only_hold).all()  # no BUY and no SELL: undefined everywhere (it used to raise IndexError)
    sign = np.where(y == 2, np.inf, -np.inf)  # infinite scores still rank: a perfect separation
    ovr = paired_bootstrap(y, {"m": np.column_stack([-sign, np.zeros(len(y)), sign])}, dates, metric="auc_ovr",
                           block_days=2, reps=20, seed=0)["m"]
    assert np.isfinite(ovr).any() and (ovr[np.isfinite(ovr)] == 1.0).all()
    nan_scores = noisy_proba(len(dates))
    nan_scores[3] = np.nan
    assert np.isnan(paired_bootstrap(y, {"m": nan_scores}, dates, metric="auc_ovr", block_days=2, reps=10,
                                    seed=0)["m"]).all()  # a missing score ranks nowhere


def test_block_bootstrap_is_fast_enough_for_the_gate() -> None:
    dates = dated(750, 20)
    y, proba = labels(len(dates)), noisy_proba(len(dates))
    started = time.perf_counter()
    block_bootstrap_ci(y, proba, dates, block_days=20, reps=500, confidence=0.95, seed=0)
    assert time.perf_counter() - started < 10.0  # ~0.2 s when the machine is idle


def test_block_bootstrap_rejects_impossible_requests() -> None:
    dates = dated(30, 5)
    y, proba = labels(len(dates)), noisy_proba(len(dates))
    missing = proba.copy()
    missing[7, 0] = np.nan
    with pytest.raises(ValueError, match="some are missing"):
        block_bootstrap_ci(y, missing, dates, block_days=5, reps=10, confidence=0.9, seed=0)
    with pytest.raises(ValueError, match="two blocks"):
        block_bootstrap_ci(y, proba, dates, block_days=20, reps=10, confidence=0.9, seed=0)
    with pytest.raises(ValueError, match="undefined"):
        block_bootstrap_ci(np.full(len(dates), 2), proba, dates, block_days=5, reps=10, confidence=0.9, seed=0)
    with pytest.raises(ValueError, match="Unknown bootstrap metric"):
        block_bootstrap_ci(y, proba, dates, metric="accuracy", block_days=5, reps=10, confidence=0.9, seed=0)


def test_suspicious_metrics_flags_every_auc_beyond_the_alarm() -> None:
    flags = suspicious_metrics({"auc_ovr": 0.83, "auc_directional": 0.91, "log_loss": 0.95, "brier": 0.9})
    assert [flag.split(" ")[0] for flag in flags] == ["auc_ovr", "auc_directional"]
    assert all("almost certainly leakage" in flag for flag in flags)
    assert suspicious_metrics({"auc_ovr": 0.62, "auc_directional": None}) == []
    assert suspicious_metrics({"auc_directional": 0.1}) != []  # perfectly wrong is leakage too
    assert suspicious_metrics({"auc_directional": 0.75}, threshold=0.7) != []
    assert LEAKAGE_AUC == 0.80


def test_segment_metrics_skip_small_and_unlabelled_segments() -> None:
    y, proba = labels(300), noisy_proba(300)
    segments = np.array(["bull"] * 150 + ["bear"] * 100 + ["crash"] * 20 + [None] * 30, dtype=object)
    result = segment_metrics(y, proba, np.zeros(300), segments, min_samples=50)
    assert list(result) == ["bear", "bull"]
    assert result["bull"]["n_samples"] == 150
    assert result["bear"] == evaluate(y[150:250], proba[150:250], np.zeros(100))


def test_bootstrap_blocks_span_the_horizon_in_trading_days_not_in_sample_dates():
    from trainer.ml.metrics import dates_spanning

    daily = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-12-31"))
    daily = daily[np.is_busday(daily)]
    assert dates_spanning(daily, 20) == 20
    assert dates_spanning(daily[::5], 20) == 4
    assert dates_spanning(daily[::5], 22) == 5
    assert dates_spanning(daily[:1], 20) == 1
