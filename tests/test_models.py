"""Every base model behind the one wrapper: shape, determinism, missing classes, and no fake skill."""

from __future__ import annotations

import io
import warnings

import joblib
import numpy as np
import pytest

import trainer.ml.models
from trainer.config import BASE_MODELS
from trainer.ml.metrics import evaluate, suspicious_metrics
from trainer.ml.models import (
    EARLY_STOPPING_SHARE,
    ClassifierModel,
    _StoppingEstimator,
    make_model,
)
from trainer.ml.sample_weights import training_weights

TREE_MODELS = {"random_forest", "xgboost", "lightgbm", "extra_trees"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Fit with one thread: results do not depend on it (tested below), and on a busy shared
    machine OpenMP threads waiting for each other make tiny fits up to 30x slower."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer.ml.models, "MAX_THREADS", 1)
        yield


def small_data(n: int = 600, n_features: int = 6, seed: int = 0,
               with_hold: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Signal in the first two features, 15% missing values everywhere; optionally no HOLD at all."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    score = X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=n)
    y = np.where(score > 0.5, 2, np.where(score < -0.5, 0, 1)) if with_hold else np.where(score > 0, 2, 0)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[ClassifierModel, np.ndarray]]:
    X, y = small_data()
    return {name: (make_model(name, seed=3).fit(X[:500], y[:500]), X[500:]) for name in BASE_MODELS}


@pytest.mark.parametrize("name", BASE_MODELS)
def test_model_predicts_three_probabilities_per_row(fitted, name) -> None:
    model, X_test = fitted[name]
    proba = model.predict_proba(X_test)
    assert model.name == name
    assert proba.shape == (len(X_test), 3)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", BASE_MODELS)
def test_same_seed_gives_identical_probabilities_and_pickles(fitted, name) -> None:
    model, X_test = fitted[name]
    X, y = small_data()
    again = make_model(name, seed=3).fit(X[:500], y[:500])
    np.testing.assert_array_equal(again.predict_proba(X_test), model.predict_proba(X_test))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict_proba(X_test), model.predict_proba(X_test))


@pytest.mark.parametrize("name", BASE_MODELS)
def test_tree_models_expose_an_estimator_for_shap_on_raw_features(fitted, name) -> None:
    model, X_test = fitted[name]
    estimator = model.explainable_estimator()
    if name not in TREE_MODELS:
        assert estimator is None
        return
    import shap

    values = np.asarray(shap.TreeExplainer(estimator).shap_values(X_test[:20]))  # NaNs included
    assert values.shape == (20, X_test.shape[1], 3)


@pytest.mark.parametrize("name", BASE_MODELS)
def test_a_class_missing_from_training_gets_zero_probability(name) -> None:
    X, y = small_data(n=400, with_hold=False)
    model = make_model(name, seed=1).fit(X[:300], y[:300])
    proba = model.predict_proba(X[300:])
    assert list(model.classes_) == [0, 2]
    assert proba.shape == (100, 3)
    assert (proba[:, 1] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", ["random_forest", "xgboost", "lightgbm", "gradient_boosting"])
def test_thread_count_does_not_change_results(monkeypatch, name) -> None:
    X, y = small_data(n=500)
    single = make_model(name, seed=2).fit(X[:400], y[:400]).predict_proba(X[400:])
    monkeypatch.setattr(trainer.ml.models, "MAX_THREADS", 2)
    np.testing.assert_array_equal(make_model(name, seed=2).fit(X[:400], y[:400]).predict_proba(X[400:]),
                                  single)


def test_clear_errors_for_unknown_models_and_single_class_labels() -> None:
    with pytest.raises(ValueError, match="Unknown model"):
        make_model("kernel_svc", seed=0)
    X, _ = small_data(n=50)
    with pytest.raises(ValueError, match="at least two"):
        make_model("logistic_regression", seed=0).fit(X, np.full(50, 2))
    with pytest.raises(RuntimeError, match="before fit"):
        make_model("svm", seed=0).predict_proba(X)


def test_balanced_weights_give_every_class_the_same_total() -> None:
    y = np.array([0] * 10 + [1] * 30 + [2] * 60)
    weights = training_weights(y, None)
    totals = [weights[y == c].sum() for c in range(3)]
    np.testing.assert_allclose(totals, [100 / 3] * 3)


class _Recorder(_StoppingEstimator):
    """A stand-in stopping estimator that remembers what the wrapper passed to each stage."""

    def fit_stopping(self, X, y, w, X_stop, y_stop, w_stop):
        self.fit_rows, self.stop_rows = X[:, 0].copy(), X_stop[:, 0].copy()
        return 7

    def fit_final(self, X, y, w):
        self.final_rows = X[:, 0].copy()


def test_early_stopping_judges_on_the_most_recent_rows_purged_then_refits_on_all() -> None:
    n = 100
    X = np.column_stack([np.arange(n, dtype=float), np.zeros(n)])  # column 0 = row number
    y = np.tile([0, 1, 2, 2], 25)
    entry = np.datetime64("2020-01-01") + np.arange(n)
    exits = entry + 5  # every label lives five days
    recorder = _Recorder()
    model = ClassifierModel("recorder", recorder).fit(X, y, entry_dates=entry, exit_dates=exits)
    cut = n - round(n * EARLY_STOPPING_SHARE)
    np.testing.assert_array_equal(recorder.stop_rows, np.arange(cut, n))
    # rows whose label reaches into the slice are purged from fitting: their exit is before its start
    np.testing.assert_array_equal(recorder.fit_rows, np.arange(cut - 5))
    assert (exits[recorder.fit_rows.astype(int)] < entry[cut]).all()
    np.testing.assert_array_equal(recorder.final_rows, np.arange(n))  # the final fit uses every row
    assert model.stopped_at_ == 7


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "gradient_boosting", "neural_network"])
def test_the_final_fit_uses_the_chosen_number_of_rounds_on_all_rows(name) -> None:
    X, y = small_data(n=800)
    model = make_model(name, seed=0).fit(X, y)
    final = model.estimator.final_
    rounds = {"xgboost": lambda: final.n_estimators, "lightgbm": lambda: final.n_estimators,
              "gradient_boosting": lambda: final.n_iter_, "neural_network": lambda: final[-1].t_ // 800}[name]()
    assert model.stopped_at_ >= 1 and rounds == model.stopped_at_


@pytest.mark.parametrize("name", BASE_MODELS)
def test_probabilities_are_corrected_to_the_training_class_frequencies(name) -> None:
    """Balanced fitting would make every model predict about a third for each class; corrected,
    the mean probability of each class is near its share in the training labels."""
    rng = np.random.default_rng(8)
    n = 3000
    X = rng.normal(size=(n, 5))
    y = rng.choice(3, size=n, p=[0.12, 0.7, 0.18])
    y[X[:, 0] > 1.5] = 2  # a little signal so that every model has something to fit
    model = make_model(name, seed=0).fit(X[:2400], y[:2400])
    shares = np.bincount(y[:2400], minlength=3) / 2400
    np.testing.assert_allclose(model.predict_proba(X[2400:]).mean(axis=0), shares, atol=0.08)


@pytest.fixture(scope="module")
def random_walk() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20k date-ordered samples whose labels are independent of the features."""
    rng = np.random.default_rng(11)
    n = 20_000
    X = rng.normal(size=(n, 8)).cumsum(axis=0) / 50 + rng.normal(size=(n, 8))  # drifting, like prices
    X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.choice(3, size=n, p=[0.35, 0.3, 0.35])
    returns = np.where(y == 2, 0.05, np.where(y == 0, -0.05, 0.0))
    return X, y, returns


@pytest.mark.parametrize("name", BASE_MODELS)
def test_no_model_finds_direction_in_labels_independent_of_features(random_walk, name) -> None:
    X, y, returns = random_walk
    model = make_model(name, seed=0).fit(X[:16_000], y[:16_000])
    metrics = evaluate(y[16_000:], model.predict_proba(X[16_000:]), returns[16_000:])
    assert metrics["auc_directional"] == pytest.approx(0.5, abs=0.04)
    assert suspicious_metrics(metrics) == []


@pytest.mark.parametrize("name", BASE_MODELS)
def test_a_leaky_feature_gives_near_perfect_auc_and_is_flagged(name) -> None:
    X, y = small_data(n=2000, seed=5)
    rng = np.random.default_rng(5)
    X[:, 3] = y + rng.normal(0, 0.2, len(y))  # the label itself, barely disguised
    model = make_model(name, seed=0).fit(X[:1500], y[:1500])
    metrics = evaluate(y[1500:], model.predict_proba(X[1500:]), np.zeros(500))
    assert metrics["auc_directional"] > 0.95
    flags = suspicious_metrics(metrics)
    assert any(flag.startswith("auc_directional") and "leakage" in flag for flag in flags)


def test_the_svm_fits_at_most_its_row_cap_evenly_spaced_in_time(monkeypatch) -> None:
    X, y = small_data(n=600)
    uncapped = make_model("svm", seed=3).fit(X[:500], y[:500])
    assert uncapped.rows_fitted_ is None
    monkeypatch.setattr(trainer.ml.models, "SVM_MAX_ROWS", 200)
    capped = make_model("svm", seed=3).fit(X[:500], y[:500])
    assert capped.rows_fitted_ == (200, 500)
    assert not np.array_equal(capped.predict_proba(X[500:]), uncapped.predict_proba(X[500:]))
    rows = trainer.ml.models.evenly_spaced(500, 200)
    assert rows[0] == 0 and rows[-1] == 499 and np.unique(rows).size == 200
    assert np.abs(np.diff(rows) - 2.5).max() <= 1  # spread over the whole period, not its start


def test_forests_say_how_many_rows_each_tree_drew() -> None:
    X, y = small_data(n=600)
    forest = make_model("random_forest", seed=3).fit(X[:500], y[:500])
    assert forest.tree_rows_ == (125, 500)  # max_samples 0.25
    assert forest.estimator.estimators_samples_[0].size == 125  # what scikit-learn drew
    assert make_model("extra_trees", seed=3).fit(X[:500], y[:500]).tree_rows_ == (250, 500)
    assert make_model("lightgbm", seed=3).fit(X[:500], y[:500]).tree_rows_ is None
    assert make_model("random_forest", 3, {"max_samples": 100}).fit(X[:500], y[:500]).tree_rows_ == (100, 500)


def test_forest_trees_draw_at_most_their_row_cap(monkeypatch) -> None:
    X, y = small_data(n=600)
    monkeypatch.setattr(trainer.ml.models, "FOREST_MAX_TREE_ROWS", 200)
    random_forest = make_model("random_forest", seed=3).fit(X[:500], y[:500])
    assert random_forest.tree_rows_ == (125, 500)  # 25% is below the cap
    extra_trees = make_model("extra_trees", seed=3).fit(X[:500], y[:500])
    assert extra_trees.tree_rows_ == (200, 500)  # 50% would be 250
    assert {tree.size for tree in extra_trees.estimator.estimators_samples_} == {200}


def test_an_svm_whose_calibration_slice_lacks_a_class_says_the_window_is_too_short() -> None:
    X, y = small_data(n=400)
    y[-80:] = np.where(y[-80:] == 1, 2, y[-80:])  # the most recent rows (the slice) hold no HOLD
    with pytest.raises(ValueError, match="calibration slice does not hold every training class"):
        make_model("svm", seed=3).fit(X, y)


@pytest.mark.parametrize("n_rows", [1, 2, 7, 1000, 1001])
def test_the_column_median_imputer_gives_sklearns_medians_bit_for_bit(n_rows) -> None:
    """The linear model, the network and the SVM impute with a per-column median (4x less memory
    than strategy="median"); it must be the same imputation, ties, repeats, odd and even counts
    and columns without a value included."""
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(n_rows)
    X = rng.normal(size=(n_rows, 6))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 2] = np.round(X[:, 2], 1)  # many ties
    X[:, 3] = np.nan  # never observed: dropped by both
    X[:, 4] = 7.0
    new = rng.normal(size=(50, 6))
    new[rng.random(new.shape) < 0.3] = np.nan
    with warnings.catch_warnings(record=True) as said_by_sklearn:
        warnings.simplefilter("always")
        reference = SimpleImputer(strategy="median").fit(X)
        expected = reference.transform(new)
    with warnings.catch_warnings(record=True) as said_by_lean:
        warnings.simplefilter("always")
        lean = trainer.ml.models._median_imputer().fit(X)
        imputed = lean.transform(new)
    np.testing.assert_array_equal(lean.statistics_, reference.statistics_)
    np.testing.assert_array_equal(imputed, expected)
    assert imputed.shape == (50, 5)
    # the warning about the empty column reads as sklearn's (it names the strategy)
    assert [str(w.message) for w in said_by_lean] == [str(w.message) for w in said_by_sklearn]
    assert any("without any observed values: [3]" in str(w.message) for w in said_by_lean)
