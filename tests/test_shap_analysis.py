"""SHAP attributions on small real tree models, the ensemble weighting and fold stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from xgboost import XGBClassifier

from trainer.ml.shap_analysis import (
    ensemble_importance,
    importance_stability,
    sample_rows,
    shap_rows,
    tree_shap_importance,
)

FEATURES = ["signal", "noise_a", "noise_b", "gappy"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Label driven by 'signal' only; 'gappy' is mostly NaN, as raw features can be."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(FEATURES)))
    X[rng.random(600) < 0.3, 3] = np.nan
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=600), [-0.5, 0.5])  # 0 SELL, 1 HOLD, 2 BUY
    return X, y


@pytest.fixture(scope="module")
def models(data) -> dict[str, object]:
    """One thread each: OpenMP spinning on a busy shared machine makes these tiny fits crawl."""
    X, y = data
    return {"lightgbm": LGBMClassifier(n_estimators=30, num_leaves=8, n_jobs=1, verbose=-1,
                                       random_state=0).fit(X, y),
            "xgboost": XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0).fit(X, y)}


@pytest.mark.parametrize("name", ["lightgbm", "xgboost"])
def test_tree_shap_importance_shape_sign_and_all(data, models, name):
    X, _ = data
    frame = tree_shap_importance(models[name], X[:200], FEATURES)
    assert list(frame.columns) == ["feature", "class_label", "mean_abs_shap"]
    assert len(frame) == len(FEATURES) * 4
    assert set(frame["class_label"]) == {"SELL", "HOLD", "BUY", "all"}
    assert (frame["mean_abs_shap"] >= 0).all()
    wide = frame.pivot(index="feature", columns="class_label", values="mean_abs_shap")
    # documented aggregation: 'all' is the mean of the three per-class values
    np.testing.assert_allclose(wide["all"], wide[["SELL", "HOLD", "BUY"]].mean(axis=1))
    assert wide["all"].idxmax() == "signal"


def test_tree_shap_importance_binary_model_gets_rows_for_its_two_classes(data):
    X, y = data
    keep = y != 1  # a window without HOLD: the wrapper re-encodes SELL, BUY as 0, 1
    model = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X[keep], (y[keep] == 2).astype(int))
    frame = tree_shap_importance(model, X[:100], FEATURES, classes=(0, 2))
    assert set(frame["class_label"]) == {"SELL", "BUY", "all"}
    wide = frame.pivot(index="feature", columns="class_label", values="mean_abs_shap")
    np.testing.assert_allclose(wide["SELL"], wide["BUY"])


def test_tree_shap_importance_rejects_mismatched_names(data, models):
    X, _ = data
    with pytest.raises(ValueError, match="feature names"):
        tree_shap_importance(models["lightgbm"], X[:50], FEATURES[:3])


def test_sample_rows_is_bounded_deterministic_and_sorted():
    assert sample_rows(10, 2000).tolist() == list(range(10))
    picked = sample_rows(50_000, 2000, seed=3)
    assert len(picked) == 2000 and len(set(picked)) == 2000
    assert (np.diff(picked) > 0).all() and picked.max() < 50_000
    np.testing.assert_array_equal(picked, sample_rows(50_000, 2000, seed=3))
    assert not np.array_equal(picked, sample_rows(50_000, 2000, seed=4))
    assert len(sample_rows(50_000)) == 2000


def _frame(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"feature": f, "class_label": label, "mean_abs_shap": v}
                         for f, v in values.items() for label in ("SELL", "HOLD", "BUY", "all")])


def test_ensemble_importance_weights_normalised_shares_by_reliance():
    # different output scales (log-odds vs probability) must not matter, only the shares
    per_model = {"lightgbm": _frame({"a": 3.0, "b": 1.0}), "random_forest": _frame({"a": 0.001, "b": 0.003}),
                 "extra_trees": _frame({"a": 5.0, "b": 5.0})}
    reliance = {"lightgbm": 3.0, "random_forest": 1.0, "extra_trees": 0.0, "svm": 4.0}
    result = ensemble_importance(per_model, reliance)
    overall = result[result["class_label"] == "all"].set_index("feature")["mean_abs_shap"]
    assert overall["a"] == pytest.approx(0.75 * 0.75 + 0.25 * 0.25)
    assert overall["b"] == pytest.approx(0.75 * 0.25 + 0.25 * 0.75)
    assert result.groupby("class_label")["mean_abs_shap"].sum().tolist() == pytest.approx([1.0] * 4)


def test_ensemble_importance_refuses_zero_reliance():
    with pytest.raises(ValueError, match="no weight"):
        ensemble_importance({"lightgbm": _frame({"a": 1.0})}, {"svm": 1.0})


def test_importance_stability_identical_vs_shuffled():
    rng = np.random.default_rng(1)
    base = {f"f{i}": float(v) for i, v in enumerate(rng.random(30))}
    assert importance_stability([base, dict(base), dict(base)]) == pytest.approx(1.0)
    shuffled = [dict(zip(base, rng.permutation(list(base.values())), strict=True)) for _ in range(6)]
    assert abs(importance_stability(shuffled)) < 0.3
    assert importance_stability([base, {f: -v for f, v in base.items()}]) == pytest.approx(-1.0)
    # a feature missing from a fold counts as importance 0
    assert importance_stability([{"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 3.0, "b": 2.0}]) == pytest.approx(1.0)


def test_importance_stability_undefined_cases_are_nan():
    assert np.isnan(importance_stability([{"a": 1.0, "b": 2.0}]))
    assert np.isnan(importance_stability([{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 2.0}]))


def test_shap_rows_match_the_table(data):
    rows = shap_rows("run1", "ensemble", _frame({"a": 0.5}))
    assert rows[0] == {"run_id": "run1", "model": "ensemble", "feature": "a", "class_label": "SELL",
                       "mean_abs_shap": 0.5}
    assert len(rows) == 4
