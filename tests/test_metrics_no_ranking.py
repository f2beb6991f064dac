"""A prediction that gives every sample the same P(BUY) has no top decile.

The class-prior baseline is such a prediction. A stable sort of equal scores used to make its
"top decile" the first tenth of the rows - the earliest holdout dates - and the report then showed
a top-decile return for the baseline (in one regime higher than the ensemble's) that measured the
calendar, not a ranking.
"""

from __future__ import annotations

import numpy as np
import pytest

from trainer.ml.metrics import class_prior_baseline, evaluate, segment_metrics


def test_the_class_prior_baseline_has_no_top_decile():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400)
    returns = np.linspace(0.05, -0.05, 400)  # the first rows (earliest dates) earn the most
    metrics = evaluate(y, class_prior_baseline(y, 400), returns)
    assert metrics["top_decile_buy_precision"] is None and metrics["top_decile_return"] is None
    assert metrics["all_mean_return"] == pytest.approx(np.mean(returns))
    assert metrics["auc_directional"] == 0.5 and metrics["log_loss"] > 0
    segments = segment_metrics(y, class_prior_baseline(y, 400), returns, np.array(["a", "b"] * 200), 30)
    assert all(m["top_decile_return"] is None for m in segments.values())


def test_a_model_that_ranks_keeps_its_top_decile():
    y = np.array([2, 0, 1, 2, 0, 1, 2, 0, 1, 0] * 2)
    proba = np.full((20, 3), 1 / 3)
    proba[[3, 15]] = [0.05, 0.05, 0.9]
    metrics = evaluate(y, proba, np.arange(20) / 100)
    assert metrics["top_decile_buy_precision"] == 0.5
    assert metrics["top_decile_return"] == pytest.approx(0.09)
