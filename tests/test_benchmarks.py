"""The one-feature rule: chosen on the rows it is given, sign included, neutral on missing values."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.ml.benchmarks import VOLATILITY_FEATURES, choose_rule
from trainer.ml.metrics import directional_score, evaluate


def _data(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    signal = -X[:, 2]  # the third feature, inverted, carries the direction
    touched = rng.random(n) < 0.4
    y = np.where(touched, np.where(rng.random(n) < 1 / (1 + np.exp(-1.5 * signal)), 2, 0), 1)
    return X, y


def test_the_best_feature_and_its_sign_are_chosen_and_predict_as_scored():
    X, y = _data()
    names = ["a", "b", "c", "d"]
    rule = choose_rule(X[:3000], y[:3000], names, reference=X[:3000], y_reference=y[:3000])
    assert (rule.feature, rule.sign) == ("c", -1)
    assert 0.65 < rule.oof_auc_directional < 0.85
    proba = rule.predict_proba(X[3000:, 2])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], np.mean(y[:3000] == 1))  # HOLD is the training share
    holdout = evaluate(y[3000:], proba, np.zeros(1000))["auc_directional"]
    assert holdout == pytest.approx(rule.oof_auc_directional, abs=0.05)
    # the directional score rises with the signed feature: lower c -> more BUY
    order = np.argsort(X[3000:, 2])
    assert np.all(np.diff(directional_score(proba[order])) <= 1e-12)
    assert "lower c" in rule.describe()["text"]


def test_missing_values_are_neutral_and_the_choice_never_sees_other_rows():
    X, y = _data(seed=1)
    X[::3, 2] = np.nan
    rule = choose_rule(X, y, ["a", "b", "c", "d"], reference=X, y_reference=y)
    proba = rule.predict_proba(np.array([np.nan]))
    assert directional_score(proba)[0] == pytest.approx(rule.prior[2] * 0.5 / (rule.prior[2] * 0.5
                                                                                + rule.prior[0] * 0.5))
    # choosing on rows whose labels are unrelated to c picks c only by chance, never by peeking
    noise_y = np.random.default_rng(2).permutation(y)
    blind = choose_rule(X, noise_y, ["a", "b", "c", "d"], reference=X, y_reference=noise_y)
    assert blind.oof_auc_directional < 0.56


def test_rule_needs_both_directions_and_the_volatility_set_is_known():
    X, y = _data()
    with pytest.raises(ValueError, match="both BUY and SELL"):
        choose_rule(X, np.where(y == 0, 1, y), ["a", "b", "c", "d"], reference=X, y_reference=y)
    from backend.features import FEATURE_NAMES
    assert VOLATILITY_FEATURES <= set(FEATURE_NAMES)
