"""A feature with no value at all in a training window must not stop training.

With a short history (about six years with the default split) the first walk-forward fold ends
before the 252-day features have their first value, so those columns are NaN in every training
row of that fold while the later folds and the holdout have them. sklearn 1.9's
HistGradientBoosting crashed on such a column ("window shape cannot be larger than input array
shape"), which stopped the whole run in phase 'training'.
"""

from __future__ import annotations

import numpy as np
import pytest

import trainer.ml.models
from trainer.config import BASE_MODELS
from trainer.ml.models import make_model


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setattr(trainer.ml.models, "MAX_THREADS", 1)


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")  # imputer drops it
@pytest.mark.filterwarnings("ignore:Got `batch_size` less than 1 or larger than sample size")
@pytest.mark.parametrize("name", BASE_MODELS)
def test_a_column_empty_in_training_is_ignored(name):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(700, 5))
    y = np.where(X[:, 0] > 0.5, 2, np.where(X[:, 0] < -0.5, 0, 1))
    X[:500, 3] = np.nan  # e.g. ret_252d: no value before the first year is complete
    model = make_model(name, seed=3).fit(X[:500], y[:500])
    proba = model.predict_proba(X[500:])
    assert proba.shape == (200, 3) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    shifted = X[500:].copy()
    shifted[:, 3] += 100.0  # a column the model never saw a value of cannot move its predictions
    np.testing.assert_allclose(model.predict_proba(shifted), proba)
