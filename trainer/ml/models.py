"""The eight base models behind one wrapper, so the pipeline treats them alike.

Every model sees raw features with NaN for missing values, is fitted with class-balanced weights
(times each label's uniqueness when given), uses at most MAX_THREADS threads and is deterministic
from its seed. The wrapper always answers with three probability columns in the order SELL, HOLD,
BUY, so ensembles, metrics and storage never depend on which classes a training window held, and
those probabilities are corrected back to the training class frequencies: balanced fitting makes
a model act as if the classes were equally common, so its raw outputs are not frequencies (a
random forest averaged [0.33, 0.34, 0.33] against shares [0.11, 0.72, 0.17]).

Models that stop early (the boosters, the neural network) or calibrate (the SVM) judge on the
most recent rows of their training set, purged of rows whose labels reach into them; once the
number of rounds or epochs is known, the final fit uses every training row with that number, so
the newest data, the closest to what is predicted, is never left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from trainer.ml import fast_binning
from trainer.ml.dataset import purged_recent_slice
from trainer.ml.sample_weights import training_weights

# The reference machine has 2 cores. Tree models give identical results at any thread count;
# BLAS-based ones (MLP, SVM) differ in the ~12th digit, so this stays fixed instead of following --jobs.
MAX_THREADS = 2
N_CLASSES = 3  # 0 SELL, 1 HOLD, 2 BUY
EARLY_STOPPING_SHARE = 0.15  # the most recent share of the training rows judges early stopping
# Patience: was 50 rounds (8 epochs). With 20 (4) every stopping fit on the 70 real symbols and
# the demo chose the same round (epoch) but one (a lightgbm fold of the demo: 85 -> 54 rounds, its
# out-of-fold AUC 0.5489 -> 0.5511); every refit, so every holdout figure, stayed the same, and
# the boosters and the network trained about 30% faster.
EARLY_STOPPING_ROUNDS = 20
MAX_EPOCHS = 100
EPOCH_PATIENCE = 4
DUAL_MAX_C = 0.1  # the SVM solves its dual up to this C, its primal above (measured, see _CalibratedSVM)
# The SVM fits at most this many rows (evenly spaced in time), because liblinear holds its kernel
# features as 16-byte (index, value) pairs: at 500 symbols (337,634 training rows) one refit
# peaked at 2,433 MiB, the most of any model. The 70 real symbols and the demo stay below it.
SVM_MAX_ROWS = 100_000
# Each forest tree draws at most this many rows (its max_samples share applies below that). Exact
# split search costs about rows x log(rows) per tree: at 2,400 symbols the random forest's last
# fold (about 1.3 million rows, 25% per tree) took 367 s, 88 s with this cap. The 70 real symbols,
# the demo and, for the random forest, 500 symbols stay below it.
FOREST_MAX_TREE_ROWS = 100_000


_budget = [MAX_THREADS]  # threads per fit in this process (1 in a --jobs worker beside another)


def use_threads(count: int) -> None:
    """The threads each later fit of this process may use: a worker process running beside others
    takes its share of the cores, so --jobs never oversubscribes them. Tree models fit the same at
    any count (checked: lightgbm, xgboost, sklearn's boosters and forests, bit for bit)."""
    _budget[0] = max(1, min(MAX_THREADS, count))


def _threads() -> int:
    return _budget[0]


def _thread_limits() -> threadpool_limits:
    """OpenMP (the tree boosters) may use MAX_THREADS; BLAS (the linear, neural and SVM models)
    uses one thread. At these matrix sizes a second BLAS thread gains little on an idle machine,
    and when other programs load the cores its spin-waiting made fits 3-6x slower (measured: the
    neural network 6.7 s with one thread, 38.8 s with two, at load 8 on 2 cores)."""
    return threadpool_limits(limits={"blas": 1, "openmp": _threads()})


class ClassifierModel:
    """A fitted-or-not classifier with SELL/HOLD/BUY probability columns; picklable with joblib."""

    def __init__(self, name: str, estimator: BaseEstimator, *, explainable: bool = False) -> None:
        self.name = name
        self.estimator = estimator
        self.classes_: np.ndarray | None = None  # labels present in the training y, ascending
        self.prior_: np.ndarray | None = None  # their shares in the training y
        self.stopped_at_: int | None = None  # rounds or epochs chosen on the stopping slice
        self.rows_fitted_: tuple[int, int] | None = None  # (rows used, rows given) when a row cap applied
        self.tree_rows_: tuple[int, int] | None = None  # forests: (rows drawn per tree, rows given)
        self._explainable = explainable

    def fit(self, X: np.ndarray, y: np.ndarray, *, entry_dates: np.ndarray | None = None,
            exit_dates: np.ndarray | None = None, uniqueness: np.ndarray | None = None) -> ClassifierModel:
        """Fit on rows sorted by entry date.

        entry_dates/exit_dates (datetime64[D]) place each label in time for the purged stopping
        slice; without them each row is its own day and labels do not overlap. uniqueness (one
        value in (0, 1] per row, see sample_weights) multiplies the class-balanced weights.
        Labels are re-encoded to 0..k-1 over the classes present, because xgboost and lightgbm
        refuse label sets with gaps (a window without HOLD, say).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        classes = np.unique(y)
        if classes.size < 2 or not np.isin(classes, np.arange(N_CLASSES)).all():
            raise ValueError(f"{self.name}: training labels must be at least two of 0, 1, 2 "
                             f"(SELL, HOLD, BUY); got {classes.tolist()}.")
        encoded = np.searchsorted(classes, y)
        weights = training_weights(encoded, uniqueness)
        forest = isinstance(self.estimator, RandomForestClassifier | ExtraTreesClassifier)
        with _thread_limits():
            if isinstance(self.estimator, _StoppingEstimator):
                if entry_dates is None or exit_dates is None:
                    entry_dates = exit_dates = np.datetime64("2000-01-01") + np.arange(len(y))
                fit, stop = purged_recent_slice(entry_dates, exit_dates, EARLY_STOPPING_SHARE)
                if not np.isin(encoded[stop], encoded[fit]).all() or np.unique(encoded[fit]).size < 2:
                    raise ValueError(f"{self.name}: a class appears only in the most recent "
                                     f"{EARLY_STOPPING_SHARE:.0%} of the rows (the early-stopping slice); "
                                     "the training window is too short.")
                self.stopped_at_ = self.estimator.fit_stopping(
                    X[fit], encoded[fit], training_weights(encoded[fit], _part(uniqueness, fit)),
                    X[stop], encoded[stop], training_weights(encoded[stop], _part(uniqueness, stop)))
                self.estimator.fit_final(X, encoded, weights)
                self.rows_fitted_ = getattr(self.estimator, "rows_fitted_", None)
            else:
                if forest:
                    _cap_tree_rows(self.estimator, len(y))
                self.estimator.fit(X, encoded, **{_weight_parameter(self.estimator): weights})
        if forest:
            self.tree_rows_ = (_rows_per_tree(self.estimator, len(y)), len(y))
            # Forests add up tree votes in thread-completion order, so parallel predictions differ
            # in the last bit from run to run; one job makes them identical (and costs ~0.1 s).
            self.estimator.set_params(n_jobs=1)
        self.classes_ = classes
        self.prior_ = np.bincount(encoded, minlength=classes.size) / len(encoded)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities for SELL, HOLD, BUY as frequencies; a class absent from training gets 0.

        The fitted model saw balanced classes, so p_balanced(c | x) is proportional to
        p(c | x) / prior(c): multiplying by the training prior and renormalising undoes it. Any
        ranking within a class, and the ratio p_buy / p_sell up to a constant, is unchanged."""
        if self.classes_ is None or self.prior_ is None:
            raise RuntimeError(f"{self.name}: predict_proba called before fit.")
        with _thread_limits():
            present = self.estimator.predict_proba(np.asarray(X, dtype=np.float64))
        present = present * self.prior_
        proba = np.zeros((present.shape[0], N_CLASSES))
        proba[:, self.classes_] = present
        return proba / proba.sum(axis=1, keepdims=True)

    def use_all_threads(self) -> ClassifierModel:
        """Predict with MAX_THREADS again after a fit in a worker that had fewer (boosters keep their
        thread count as a parameter), so a model is the same object whatever --jobs fitted it."""
        final = getattr(self.estimator, "final_", None)
        if final is not None and "n_jobs" in final.get_params():
            final.set_params(n_jobs=MAX_THREADS)
        template = getattr(self.estimator, "estimator", None)
        if template is not None and "n_jobs" in template.get_params():
            template.set_params(n_jobs=MAX_THREADS)
        return self

    def explainable_estimator(self) -> BaseEstimator | None:
        """The fitted tree model for shap.TreeExplainer on raw X (outputs follow `classes_`, before the
        prior correction), or None."""
        if not self._explainable:
            return None
        if self.classes_ is None:
            raise RuntimeError(f"{self.name}: explainable_estimator called before fit.")
        if isinstance(self.estimator, _StoppingEstimator):
            return self.estimator.final_
        return self.estimator


def evenly_spaced(n_rows: int, cap: int) -> np.ndarray | None:
    """At most `cap` row positions spread evenly over 0..n_rows-1 (rows are in time order, so every
    period keeps its share), or None when all rows fit."""
    if n_rows <= cap:
        return None
    return np.linspace(0, n_rows - 1, cap).round().astype(np.int64)


class _ColumnMedian:
    """SimpleImputer's median, one column at a time (a callable strategy gets each column's observed
    values). strategy="median" builds a masked copy of the whole matrix and sorts it: at 400,000 x
    63 its fit peaked 840 MiB above the input (4.4x the matrix) against 192 MiB this way, and took
    4.0 s against 0.8 s, with the same medians bit for bit (checked by a test). A column without
    one value gets NaN, which SimpleImputer drops, as it does with "median"."""

    def __call__(self, values: np.ndarray) -> float:
        return float(np.median(values)) if values.size else np.nan

    def __repr__(self) -> str:  # shown in sklearn's warning about a column without values
        return "median"


def _median_imputer() -> SimpleImputer:
    return SimpleImputer(strategy=_ColumnMedian())


def _rows_per_tree(forest: RandomForestClassifier | ExtraTreesClassifier, n_rows: int) -> int:
    """How many rows each tree of a fitted forest drew (with replacement; all rows without
    bootstrap), as scikit-learn computes it from max_samples: this subsampling is what keeps the
    exact-split forests affordable at scale, so the report states it."""
    share = forest.max_samples if forest.bootstrap else None
    if share is None:
        return n_rows
    return int(share) if isinstance(share, int | np.integer) else max(round(n_rows * share), 1)


def _cap_tree_rows(forest: RandomForestClassifier | ExtraTreesClassifier, n_rows: int) -> None:
    """At most FOREST_MAX_TREE_ROWS rows per tree (a forest without bootstrap uses every row and
    is left alone)."""
    if forest.bootstrap and _rows_per_tree(forest, n_rows) > FOREST_MAX_TREE_ROWS:
        forest.set_params(max_samples=FOREST_MAX_TREE_ROWS)


def _part(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[rows]


def _weight_parameter(estimator: BaseEstimator) -> str:
    """The fit keyword that carries sample weights (a Pipeline routes it to its last step)."""
    if isinstance(estimator, Pipeline):
        return f"{estimator.steps[-1][0]}__sample_weight"
    return "sample_weight"


def _weighted_log_loss(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> float:
    picked = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-(weights * np.log(picked)).sum() / weights.sum())


class _StoppingEstimator:
    """Learns a count (rounds, epochs) or a calibration on (fit, stopping slice), then trains on all
    rows with it. `final_` is the estimator that predicts. get_params/set_params reach the
    scikit-learn estimator inside (names as its set_params takes them), so tuning treats every
    model alike."""

    final_: Any = None

    def _template(self) -> BaseEstimator:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return self._template().get_params()

    def set_params(self, **params: Any) -> _StoppingEstimator:
        self._template().set_params(**params)  # fails here, at once, on a name the estimator lacks
        self.params.update(params)
        return self

    def fit_stopping(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, X_stop: np.ndarray,
                     y_stop: np.ndarray, w_stop: np.ndarray) -> int:
        raise NotImplementedError

    def fit_final(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.final_.predict_proba(X)


class _Booster(_StoppingEstimator):
    """xgboost, lightgbm or sklearn's histogram booster: rounds chosen on the slice (weighted log
    loss, EARLY_STOPPING_ROUNDS patience), then the same number of rounds on every row."""

    def __init__(self, kind: str, estimator: BaseEstimator) -> None:
        self.kind = kind
        self.estimator = estimator
        self.params: dict[str, Any] = {}
        self.rounds_: int | None = None

    def _template(self) -> BaseEstimator:
        return self.estimator

    def fit_stopping(self, X, y, w, X_stop, y_stop, w_stop) -> int:
        model = clone(self.estimator)
        if self.kind == "xgboost":
            model.set_params(early_stopping_rounds=EARLY_STOPPING_ROUNDS)
            model.fit(X, y, sample_weight=w, eval_set=[(X_stop, y_stop)], sample_weight_eval_set=[w_stop],
                      verbose=False)
            rounds = int(model.best_iteration) + 1
        elif self.kind == "lightgbm":
            model.set_params(early_stopping_round=EARLY_STOPPING_ROUNDS)
            model.fit(X, y, sample_weight=w, eval_X=X_stop, eval_y=y_stop, eval_sample_weight=[w_stop])
            rounds = int(model.best_iteration_) or int(model.n_estimators)
        else:
            model.set_params(early_stopping=True, n_iter_no_change=EARLY_STOPPING_ROUNDS)
            model.fit(X, y, sample_weight=w, X_val=X_stop, y_val=y_stop, sample_weight_val=w_stop)
            stopped = model.n_iter_ < model.max_iter
            rounds = model.n_iter_ - EARLY_STOPPING_ROUNDS if stopped else model.n_iter_
        self.rounds_ = max(1, rounds)
        return self.rounds_

    def fit_final(self, X, y, w) -> None:
        model = clone(self.estimator)
        size = {"xgboost": "n_estimators", "lightgbm": "n_estimators"}.get(self.kind, "max_iter")
        model.set_params(**{size: self.rounds_})
        self.final_ = model.fit(X, y, sample_weight=w)


class _EpochNetwork(_StoppingEstimator):
    """Median-impute, scale, then an MLP trained one epoch at a time (partial_fit keeps the Adam
    state): epochs chosen on the slice's weighted log loss, then that many epochs on every row."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.params: dict[str, Any] = {}
        self.epochs_: int | None = None

    def _network(self) -> Pipeline:
        return make_pipeline(_median_imputer(), StandardScaler(copy=False),
                             MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, batch_size=512,
                                           learning_rate_init=1e-3, random_state=self.seed)).set_params(**self.params)

    _template = _network

    def fit_stopping(self, X, y, w, X_stop, y_stop, w_stop) -> int:
        network, classes = self._network(), np.unique(np.concatenate([y, y_stop]))
        scaled = network[:-1].fit_transform(X)  # once, not per epoch: the same values, 2x less memory
        scaled_stop = network[:-1].transform(X_stop)
        best, best_epoch = np.inf, 1
        for epoch in range(1, MAX_EPOCHS + 1):
            network[-1].partial_fit(scaled, y, sample_weight=w, classes=classes)
            loss = _weighted_log_loss(np.searchsorted(network[-1].classes_, y_stop),
                                      network[-1].predict_proba(scaled_stop), w_stop)
            if loss < best - 1e-4:
                best, best_epoch = loss, epoch
            elif epoch - best_epoch >= EPOCH_PATIENCE:
                break
        self.epochs_ = best_epoch
        return best_epoch

    def fit_final(self, X, y, w) -> None:
        network, classes = self._network(), np.unique(y)
        scaled = network[:-1].fit_transform(X)
        for _ in range(self.epochs_ or 1):
            network[-1].partial_fit(scaled, y, sample_weight=w, classes=classes)
        self.final_ = network


class _CalibratedSVM(_StoppingEstimator):
    """An RBF kernel approximated with 200 Nystroem components and a linear SVM (kernel SVC is
    quadratic in the rows and would take hours), made probabilistic by a multinomial logistic map
    of its decision values learnt on the slice from a model that never saw it. The final SVM is
    refit on every row and keeps that map, as CalibratedClassifierCV(ensemble=False) does. Either
    fit uses at most SVM_MAX_ROWS rows, evenly spaced in time; rows_fitted_ says when it did."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.params: dict[str, Any] = {}
        self.calibration_: LogisticRegression | None = None
        self.rows_fitted_: tuple[int, int] | None = None

    def _svm(self) -> Pipeline:
        # tol 1e-2 instead of liblinear's 1e-4: on the demo's training period one fit took 6.7 s
        # instead of 12.1 s with the holdout directional AUC of its decision values 0.6050 vs 0.6051.
        svm = make_pipeline(_median_imputer(), StandardScaler(copy=False),
                            # 200 components, not 300: 5 fits 10.0 s instead of 15.0 s on the demo, 10.3
                            # instead of 13.2 s on the 70 real symbols; holdout directional AUC 0.5894 vs
                            # 0.5901 and 0.5240 vs 0.5244, out-of-fold 0.5303 vs 0.5289 and 0.5425 vs 0.5401.
                            Nystroem(kernel="rbf", n_components=200, random_state=self.seed),
                            LinearSVC(C=0.01, tol=1e-2, random_state=self.seed)).set_params(**self.params)
        # The same convex problem, solved on the side that converges faster: dual coordinate descent
        # for small C, primal Newton for large. 70 real symbols, 5 fits: C 0.01 11.4 s vs 21.7 s,
        # C 0.1 27.9 vs 43.1 s (holdout AUC equal to 4 digits); C 1: 176.8 vs 65.5 s.
        return svm.set_params(linearsvc__dual=bool(svm[-1].C <= DUAL_MAX_C))

    _template = _svm

    @staticmethod
    def _decision(svm: Pipeline, X: np.ndarray) -> np.ndarray:
        values = svm.decision_function(X)
        return values[:, None] if values.ndim == 1 else values

    def fit_stopping(self, X, y, w, X_stop, y_stop, w_stop) -> int:
        svm = self._fitted(X, y, w)
        self.calibration_ = LogisticRegression(C=1.0, max_iter=1000).fit(
            self._decision(svm, X_stop), y_stop, sample_weight=w_stop)
        return 1

    def fit_final(self, X, y, w) -> None:
        self.final_ = self._fitted(X, y, w)
        if self.calibration_ is None or not np.array_equal(self.calibration_.classes_, np.unique(y)):
            raise ValueError("svm: the calibration slice does not hold every training class; "
                             "the training window is too short.")

    def _fitted(self, X, y, w) -> Pipeline:
        """The SVM fitted on every row, or on SVM_MAX_ROWS evenly spaced ones beyond that (recorded
        in rows_fitted_: the last call is the final fit)."""
        rows = evenly_spaced(len(y), SVM_MAX_ROWS)
        self.rows_fitted_ = None if rows is None else (rows.size, len(y))
        if rows is not None:
            X, y, w = X[rows], y[rows], w[rows]
        return self._svm().fit(X, y, linearsvc__sample_weight=w)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.calibration_.predict_proba(self._decision(self.final_, X))


def _random_forest(seed: int) -> BaseEstimator:
    # Native NaN support in sklearn trees (>= 1.4) keeps raw X explainable by TreeExplainer.
    # Exact split search is the slowest of the eight: small bootstrap samples keep it in budget.
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=100, max_features="sqrt",
                                  max_samples=0.25, n_jobs=_threads(), random_state=seed)


def _extra_trees(seed: int) -> BaseEstimator:
    return ExtraTreesClassifier(n_estimators=200, min_samples_leaf=50, max_features="sqrt",
                                bootstrap=True, max_samples=0.5, n_jobs=_threads(), random_state=seed)


def _xgboost(seed: int) -> BaseEstimator:
    # No explicit objective: xgboost picks multi:softprob for 3 classes and binary:logistic for a
    # window with 2 (an explicit multi:softprob fails there).
    return _Booster("xgboost", XGBClassifier(
        tree_method="hist", n_estimators=1000, learning_rate=0.05, max_depth=4, min_child_weight=20,
        subsample=0.8, colsample_bytree=0.8, reg_lambda=1.0, n_jobs=_threads(), random_state=seed))


def _lightgbm(seed: int) -> BaseEstimator:
    return _Booster("lightgbm", LGBMClassifier(
        n_estimators=1000, learning_rate=0.05, num_leaves=31, min_child_samples=100, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, deterministic=True, force_row_wise=True,
        n_jobs=_threads(), random_state=seed, verbose=-1))


class _HistGradientBoosting(HistGradientBoostingClassifier):
    """HistGradientBoostingClassifier that accepts a column without a single value.

    sklearn (1.9) fails to bin a column that is NaN in every training row ("window shape cannot be
    larger than input array shape"). A short history makes that happen: the first walk-forward fold
    can end before a 252-day feature has its first value. Such a column says nothing, so it is 0
    for fitting: one bin, never split on, ignored by every prediction.
    """

    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        fast_binning.install()  # the same bin edges, found 10x faster (see the module)
        empty = np.isnan(X).all(axis=0)
        if empty.any():
            X = np.where(empty, 0.0, X)
        return super().fit(X, y, sample_weight, X_val=X_val, y_val=y_val, sample_weight_val=sample_weight_val)


def _gradient_boosting(seed: int) -> BaseEstimator:
    # 63 bins, not 255: chosen when sklearn's weighted bin edges cost more than the boosting
    # (fast_binning has since made them cheap); kept so that the model stays the same.
    return _Booster("gradient_boosting", _HistGradientBoosting(
        max_iter=1000, learning_rate=0.05, max_leaf_nodes=31, max_bins=63, min_samples_leaf=100,
        l2_regularization=1.0, early_stopping=False, random_state=seed))


def _neural_network(seed: int) -> BaseEstimator:
    return _EpochNetwork(seed)


def _logistic_regression(seed: int) -> BaseEstimator:
    return make_pipeline(_median_imputer(), StandardScaler(copy=False),
                         # Newton-Cholesky: 63 features make the Hessian small, and it converges in a few
                         # steps where lbfgs stopped short of the optimum at its tolerance (5 fits on the 70
                         # real symbols 1.8 s instead of 3.9 s, holdout directional AUC 0.5132 vs 0.5130).
                         LogisticRegression(C=0.1, solver="newton-cholesky", max_iter=1000, random_state=seed))


def _svm(seed: int) -> BaseEstimator:
    return _CalibratedSVM(seed)


@dataclass(frozen=True)
class _Recipe:
    build: Callable[[int], BaseEstimator]
    explainable: bool = False


_RECIPES: dict[str, _Recipe] = {
    "random_forest": _Recipe(_random_forest, explainable=True),
    "xgboost": _Recipe(_xgboost, explainable=True),
    "lightgbm": _Recipe(_lightgbm, explainable=True),
    "extra_trees": _Recipe(_extra_trees, explainable=True),
    "gradient_boosting": _Recipe(_gradient_boosting),
    "neural_network": _Recipe(_neural_network),
    "logistic_regression": _Recipe(_logistic_regression),
    "svm": _Recipe(_svm),
}


def make_model(name: str, seed: int, params: Mapping[str, Any] | None = None) -> ClassifierModel:
    """An unfitted base model by its config name (one of config.BASE_MODELS), with its default
    hyperparameters except those in params (names as get_params() gives them, e.g. tuned ones)."""
    if name not in _RECIPES:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(_RECIPES)}.")
    recipe = _RECIPES[name]
    estimator = recipe.build(seed)
    if params:
        estimator.set_params(**params)
    return ClassifierModel(name, estimator, explainable=recipe.explainable)


def default_parameters(name: str, keys: Iterable[str]) -> dict[str, Any]:
    """The default values of these hyperparameters of a model (the seed does not matter for them)."""
    values = _RECIPES[name].build(0).get_params()
    return {key: values[key] for key in keys}
