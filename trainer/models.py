"""The eight base models and the meta-learner behind one wrapper, so the pipeline treats them alike.

Every model sees raw features with NaN for missing values, is balanced against the class mix,
uses at most MAX_THREADS threads and is deterministic from its seed. The wrapper always answers
with three probability columns in the order SELL, HOLD, BUY, so stacking, metrics and storage
never depend on which classes happened to be present in a training window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

# The reference machine has 2 cores. Tree models give identical results at any thread count;
# BLAS-based ones (MLP, SVM) differ in the ~12th digit, so this stays fixed instead of following --jobs.
MAX_THREADS = 2
N_CLASSES = 3  # 0 SELL, 1 HOLD, 2 BUY
EARLY_STOPPING_SHARE = 0.15  # the most recent share of the rows passed to fit
EARLY_STOPPING_ROUNDS = 50
META_PROBABILITY_FLOOR = 1e-6

def _thread_limits() -> threadpool_limits:
    """OpenMP (the tree boosters) may use MAX_THREADS; BLAS (the linear, neural and SVM models)
    uses one thread. At these matrix sizes a second BLAS thread gains little on an idle machine,
    and when other programs load the cores its spin-waiting made fits 3-6x slower (measured: the
    neural network 6.7 s with one thread, 38.8 s with two, at load 8 on 2 cores)."""
    return threadpool_limits(limits={"blas": 1, "openmp": MAX_THREADS})


EvalArgs = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, Any]]


def balanced_sample_weights(y: np.ndarray) -> np.ndarray:
    """n / (k * count(class)) per row: every present class carries the same total weight.

    One helper for all models (instead of each library's own class_weight option), so every
    model, including the early-stopping slices, is balanced in exactly the same way.
    """
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    return (len(y) / (len(classes) * counts))[inverse]


class ClassifierModel:
    """A fitted-or-not classifier with SELL/HOLD/BUY probability columns; picklable with joblib."""

    def __init__(self, name: str, estimator: BaseEstimator, *, eval_args: EvalArgs | None = None,
                 explainable: bool = False, balanced: bool = True) -> None:
        self.name = name
        self.estimator = estimator
        self.classes_: np.ndarray | None = None  # labels present in the training y, ascending
        self._eval_args = eval_args
        self._explainable = explainable
        self._balanced = balanced

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClassifierModel:
        """Fit on rows sorted by date; early-stopping models hold out the most recent rows.

        Labels are re-encoded to 0..k-1 over the classes present, because xgboost and
        lightgbm refuse label sets with gaps (a window without HOLD, say).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        classes = np.unique(y)
        if classes.size < 2 or not np.isin(classes, np.arange(N_CLASSES)).all():
            raise ValueError(f"{self.name}: training labels must be at least two of 0, 1, 2 "
                             f"(SELL, HOLD, BUY); got {classes.tolist()}.")
        encoded = np.searchsorted(classes, y)
        weights = balanced_sample_weights(encoded) if self._balanced else np.ones(len(y))
        eval_args: dict[str, Any] = {}
        if self._eval_args is not None:
            cut = _recent_cut(len(y))
            if not np.isin(encoded[cut:], encoded[:cut]).all():
                raise ValueError(f"{self.name}: a class appears only in the most recent "
                                 f"{EARLY_STOPPING_SHARE:.0%} of the rows (the early-stopping slice); "
                                 "the training window is too short.")
            eval_args = self._eval_args(X[cut:], encoded[cut:], weights[cut:])
            X, encoded, weights = X[:cut], encoded[:cut], weights[:cut]
        with _thread_limits():
            self.estimator.fit(X, encoded, **{_weight_parameter(self.estimator): weights}, **eval_args)
        if isinstance(self.estimator, RandomForestClassifier | ExtraTreesClassifier):
            # Forests add up tree votes in thread-completion order, so parallel predictions differ
            # in the last bit from run to run; one job makes them identical (and costs ~0.1 s).
            self.estimator.set_params(n_jobs=1)
        self.classes_ = classes
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities for SELL, HOLD, BUY; a class absent from training gets 0."""
        if self.classes_ is None:
            raise RuntimeError(f"{self.name}: predict_proba called before fit.")
        with _thread_limits():
            present = self.estimator.predict_proba(np.asarray(X, dtype=np.float64))
        proba = np.zeros((present.shape[0], N_CLASSES))
        proba[:, self.classes_] = present
        return proba / proba.sum(axis=1, keepdims=True)

    def explainable_estimator(self) -> BaseEstimator | None:
        """The fitted tree model for shap.TreeExplainer on raw X (outputs follow `classes_`), or None."""
        if not self._explainable:
            return None
        if self.classes_ is None:
            raise RuntimeError(f"{self.name}: explainable_estimator called before fit.")
        return self.estimator


def _recent_cut(n_rows: int) -> int:
    """Rows before this index fit; the rest, the most recent (rows come sorted by date), validate."""
    return n_rows - max(1, round(n_rows * EARLY_STOPPING_SHARE))


class _RecentSlice:
    """A one-split cross-validator: calibrate on the most recent rows, as early stopping does.

    A shuffled or stratified split would calibrate on labels that overlap the training rows.
    """

    def split(self, X: np.ndarray, y: np.ndarray | None = None,
              groups: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cut = _recent_cut(len(X))
        yield np.arange(cut), np.arange(cut, len(X))

    def get_n_splits(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
                     groups: np.ndarray | None = None) -> int:
        return 1


def _weight_parameter(estimator: BaseEstimator) -> str:
    """The fit keyword that carries sample weights (a Pipeline routes it to its last step)."""
    if isinstance(estimator, Pipeline):
        return f"{estimator.steps[-1][0]}__sample_weight"
    return "sample_weight"


def _xgboost_eval(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    return {"eval_set": [(X, y)], "sample_weight_eval_set": [w], "verbose": False}


def _lightgbm_eval(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    return {"eval_X": X, "eval_y": y, "eval_sample_weight": [w]}


def _sklearn_eval(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    return {"X_val": X, "y_val": y, "sample_weight_val": w}


def _random_forest(seed: int) -> BaseEstimator:
    # Native NaN support in sklearn trees (>= 1.4) keeps raw X explainable by TreeExplainer.
    # Exact split search is the slowest of the eight: small bootstrap samples keep it in budget.
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=100, max_features="sqrt",
                                  max_samples=0.25, n_jobs=MAX_THREADS, random_state=seed)


def _extra_trees(seed: int) -> BaseEstimator:
    return ExtraTreesClassifier(n_estimators=200, min_samples_leaf=50, max_features="sqrt",
                                bootstrap=True, max_samples=0.5, n_jobs=MAX_THREADS, random_state=seed)


def _xgboost(seed: int) -> BaseEstimator:
    # No explicit objective: xgboost picks multi:softprob for 3 classes and binary:logistic for a
    # window with 2 (an explicit multi:softprob fails there).
    return XGBClassifier(tree_method="hist", n_estimators=1000, learning_rate=0.05, max_depth=4,
                         min_child_weight=20, subsample=0.8, colsample_bytree=0.8, reg_lambda=1.0,
                         early_stopping_rounds=EARLY_STOPPING_ROUNDS, n_jobs=MAX_THREADS,
                         random_state=seed)


def _lightgbm(seed: int) -> BaseEstimator:
    return LGBMClassifier(n_estimators=1000, learning_rate=0.05, num_leaves=31, min_child_samples=100,
                          subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                          early_stopping_round=EARLY_STOPPING_ROUNDS, deterministic=True,
                          force_row_wise=True, n_jobs=MAX_THREADS, random_state=seed, verbose=-1)


class _HistGradientBoosting(HistGradientBoostingClassifier):
    """HistGradientBoostingClassifier that accepts a column without a single value.

    sklearn (1.9) fails to bin a column that is NaN in every training row ("window shape cannot be
    larger than input array shape"). A short history makes that happen: the first walk-forward fold
    can end before a 252-day feature has its first value. Such a column says nothing, so it is 0
    for fitting: one bin, never split on, ignored by every prediction.
    """

    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        empty = np.isnan(X).all(axis=0)
        if empty.any():
            X = np.where(empty, 0.0, X)
        return super().fit(X, y, sample_weight, X_val=X_val, y_val=y_val, sample_weight_val=sample_weight_val)


def _gradient_boosting(seed: int) -> BaseEstimator:
    # 63 bins, not 255: with sample weights sklearn computes every bin edge as a separate weighted
    # percentile, which at 255 bins costs more than the boosting itself.
    return _HistGradientBoosting(max_iter=1000, learning_rate=0.05, max_leaf_nodes=31, max_bins=63,
                                 min_samples_leaf=100, l2_regularization=1.0,
                                 early_stopping=True, n_iter_no_change=EARLY_STOPPING_ROUNDS,
                                 random_state=seed)


def _neural_network(seed: int) -> BaseEstimator:
    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, batch_size=512, learning_rate_init=1e-3,
                      max_iter=100, early_stopping=True, validation_fraction=0.15, n_iter_no_change=8,
                      random_state=seed))


def _logistic_regression(seed: int) -> BaseEstimator:
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(C=0.1, max_iter=1000, random_state=seed))


def _svm(seed: int) -> BaseEstimator:
    # An RBF kernel approximated with 300 Nystroem components and a linear SVM: kernel SVC is
    # quadratic in the rows and would take hours on the full set.
    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(),
        Nystroem(kernel="rbf", n_components=300, random_state=seed),
        CalibratedClassifierCV(LinearSVC(C=0.01, dual=False, random_state=seed), method="sigmoid",
                               cv=_RecentSlice()))


@dataclass(frozen=True)
class _Recipe:
    build: Callable[[int], BaseEstimator]
    eval_args: EvalArgs | None = None
    explainable: bool = False


_RECIPES: dict[str, _Recipe] = {
    "random_forest": _Recipe(_random_forest, explainable=True),
    "xgboost": _Recipe(_xgboost, eval_args=_xgboost_eval, explainable=True),
    "lightgbm": _Recipe(_lightgbm, eval_args=_lightgbm_eval, explainable=True),
    "extra_trees": _Recipe(_extra_trees, explainable=True),
    "gradient_boosting": _Recipe(_gradient_boosting, eval_args=_sklearn_eval),
    "neural_network": _Recipe(_neural_network),
    "logistic_regression": _Recipe(_logistic_regression),
    "svm": _Recipe(_svm),
}


def make_model(name: str, seed: int) -> ClassifierModel:
    """An unfitted base model by its config name (one of config.BASE_MODELS)."""
    if name not in _RECIPES:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(_RECIPES)}.")
    recipe = _RECIPES[name]
    return ClassifierModel(name, recipe.build(seed), eval_args=recipe.eval_args,
                           explainable=recipe.explainable)


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """Log of stacked probabilities, floored so a confident 0 does not become -inf."""
    return np.log(np.clip(proba, META_PROBABILITY_FLOOR, 1.0))


def make_meta_learner(seed: int) -> ClassifierModel:
    """Multinomial logistic regression on the base models' concatenated OOF probabilities.

    Log-probabilities, not raw ones: a softmax over a weighted sum of log-probabilities is a
    weighted geometric pooling of the base models, so one coefficient of 1 reproduces a base
    model exactly and confident disagreements near 0 or 1 keep their weight, which raw
    probabilities squash. Unweighted (not balanced), so the ensemble's probabilities estimate
    the real class frequencies.
    """
    estimator = make_pipeline(FunctionTransformer(log_probabilities), StandardScaler(),
                              LogisticRegression(C=0.5, max_iter=1000, random_state=seed))
    return ClassifierModel("meta_learner", estimator, balanced=False)
