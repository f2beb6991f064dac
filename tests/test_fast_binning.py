"""The histogram booster's bin edges: found faster, and exactly the ones scikit-learn finds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning

from trainer.ml import fast_binning


@pytest.fixture(scope="module")
def replacement():
    if not fast_binning.install():
        pytest.skip("this scikit-learn's binning differs; the module keeps it (nothing to compare)")
    return binning._find_binning_thresholds


def _column(rng: np.random.Generator, rows: int) -> np.ndarray:
    values = rng.standard_t(3, size=rows)
    values[rng.random(rows) < 0.2] = np.round(values[rng.random(rows) < 0.2][0], 1)  # a heavy tie
    values[rng.random(rows) < 0.05] = np.nan
    values[rng.random(rows) < 0.02] = np.inf  # ties at infinity: inf - inf is NaN, not 0
    return values


@pytest.mark.parametrize("max_bins", [3, 63, 255])
def test_weighted_edges_equal_scikit_learns_own(replacement, max_bins: int) -> None:
    rng = np.random.default_rng(max_bins)
    for _ in range(5):
        column, weights = _column(rng, 20_000), rng.exponential(size=20_000)
        weights[rng.random(20_000) < 0.02] = 0.0
        expected = replacement.original(column, max_bins, sample_weight=weights)
        np.testing.assert_array_equal(replacement(column, max_bins, sample_weight=weights), expected)
        np.testing.assert_array_equal(replacement(column, max_bins), replacement.original(column, max_bins))


def test_a_weighted_booster_predicts_the_same_with_either_binning(replacement, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    X = np.column_stack([_column(rng, 6_000) for _ in range(6)])
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=6_000) > 0).astype(int) + (X[:, 1] > 1)
    weights = rng.exponential(size=6_000)

    def fitted():
        model = HistGradientBoostingClassifier(max_iter=20, max_bins=63, early_stopping=False, random_state=0)
        return model.fit(X, y, sample_weight=weights).predict_proba(X)

    fast = fitted()
    monkeypatch.setattr(binning, "_find_binning_thresholds", replacement.original)
    np.testing.assert_array_equal(fast, fitted())
