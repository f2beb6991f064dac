"""The search space of every base model: which hyperparameters tuning may change, and over what range.

Names are those of the model's get_params()/set_params() (trainer.ml.models), so a tuned set is
applied with make_model(name, seed, params). Every range holds the model's default, because the
first trial of every search is the default set: the search then reports how far it moved from
the defaults, and can never choose something worse than them on the out-of-fold score it optimises.
What stays fixed and why: tree counts and round/epoch counts (early stopping chooses those),
thread counts and seeds (determinism), and choices whose default is not a number (the forests'
max_features="sqrt", the SVM kernel's gamma=None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only trials' methods are called: the report can read names without optuna
    import optuna


def short_name(name: str) -> str:
    """A parameter's name without its pipeline step ("logisticregression__C" -> "C")."""
    return name.rpartition("__")[2]


def shown(value: Any) -> str:
    """A parameter's value as the console and the report show it (floats to 4 digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    name: str  # as set_params takes it
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    @property
    def label(self) -> str:
        return short_name(self.name)


_RATE = Param("learning_rate", 0.01, 0.2, log=True)
_ROW_SHARE = Param("subsample", 0.5, 1.0)
_COLUMN_SHARE = Param("colsample_bytree", 0.3, 1.0)
_L2 = Param("reg_lambda", 1e-3, 100.0, log=True)

SPACES: dict[str, tuple[Param, ...]] = {
    "lightgbm": (_RATE, Param("num_leaves", 7, 127, log=True, integer=True),
                 Param("min_child_samples", 20, 1000, log=True, integer=True), _ROW_SHARE, _COLUMN_SHARE, _L2),
    "xgboost": (_RATE, Param("max_depth", 2, 8, integer=True), Param("min_child_weight", 1.0, 200.0, log=True),
                _ROW_SHARE, _COLUMN_SHARE, _L2),
    "gradient_boosting": (_RATE, Param("max_leaf_nodes", 7, 127, log=True, integer=True),
                          Param("min_samples_leaf", 20, 1000, log=True, integer=True),
                          Param("l2_regularization", 1e-3, 100.0, log=True)),
    "random_forest": (Param("min_samples_leaf", 10, 1000, log=True, integer=True),
                      Param("max_samples", 0.05, 0.8)),
    "extra_trees": (Param("min_samples_leaf", 10, 1000, log=True, integer=True), Param("max_samples", 0.1, 0.9)),
    "logistic_regression": (Param("logisticregression__C", 1e-4, 10.0, log=True),),
    "svm": (Param("linearsvc__C", 1e-4, 1.0, log=True),),
    "neural_network": (Param("mlpclassifier__alpha", 1e-6, 0.1, log=True),
                       Param("mlpclassifier__learning_rate_init", 1e-4, 1e-2, log=True)),
}


def suggest(trial: optuna.Trial, model: str) -> dict[str, Any]:
    """One parameter set for this model, drawn by the trial's sampler."""
    return {param.name: param.suggest(trial) for param in SPACES[model]}


def describe(model: str) -> str:
    """The space in one line, for the README and the report."""
    return ", ".join(f"{p.label} {p.low:g}..{p.high:g}{' (log)' if p.log else ''}" for p in SPACES[model])
