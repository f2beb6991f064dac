"""One model's hyperparameter search: an Optuna study in its own SQLite file, that resumes and
ends the same however often it is killed.

Why these choices:
- The objective is the score the ensemble judges models by: out-of-fold predictions of the voting
  folds of the purged walk-forward split, on the training period only. The holdout rows are never
  read here, so tuning cannot learn from them (tests/test_tuning.py poisons them to check).
- Deterministic: trials run one at a time, the first is the model's default parameters, and the
  n-th counted trial is drawn by a TPE sampler seeded from (run seed, n) over the trials finished
  before it. So a trial cut short by a kill is redrawn with exactly the same parameters, and a
  search killed any number of times ends with the trials of an uninterrupted one.
- A kill leaves its trial RUNNING in the storage. Optuna's heartbeats would fail such a trial only
  after a grace period; here the run lock (trainer/app/run_lock.py) already proves that no other
  process works in this folder, so every RUNNING trial found at the start is an orphan: it is
  failed at once (marked "orphaned") and not counted. A trial stopped by Ctrl+C or any other
  interruption (Optuna records those as failed) is marked "interrupted" and not counted either.
  Trials failed by an error raised in Python (a ValueError, a MemoryError, a booster's error:
  parameters that cannot be fitted on this data) are counted, so such a set is not retried
  forever; one that gets the run or a cluster's workers killed is drawn again on the next run.
- Pruning: after each voting fold but the last the score of the folds so far is reported, and
  Optuna's median pruner stops a trial below the median of the finished trials at that fold. At
  --jobs > 1 the trial's other folds are already running, so pruning saves little there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from backend.store import StoreError
from trainer.crash_points import crash_point
from trainer.ml.fitting import FitTask, TrainingData, fitted_in_order
from trainer.ml.metrics import evaluate
from trainer.ml.models import default_parameters
from trainer.tuning.spaces import SPACES, suggest
from trainer.workers import ClusterError, worker_count

log = logging.getLogger(__name__)

ORPHANED = "orphaned"  # system attribute of a trial a killed process left RUNNING
INTERRUPTED = "interrupted"  # user attribute of a trial stopped by Ctrl+C, a signal or a full disk
DEFAULT = "default"  # user attribute of the trial with the model's default parameters
MAXIMISE = {"auc_directional": True, "log_loss": False}
# Part of the study name: a changed space or changed models never continue an old study (2: the
# SVM's components, solver and row cap, logistic regression's solver and the patience changed).
SPACE_VERSION = 2


class TuningStorageError(StoreError):
    """The tuning file cannot be opened; the message names it and what to do (exit code 3, as for
    the trainer database)."""


@dataclass
class SearchSettings:
    model: str
    trials: int  # counted trials to reach
    metric: str
    seed: int
    uniqueness: bool
    min_train_years: float
    pruning: bool = True  # bench/tuning_pruning.py measures the search without it
    jobs: int = 1  # worker processes for a trial's folds (--jobs; the trials stay identical)
    cluster: str | None = None  # or a Dask scheduler for them (--cluster)


@dataclass
class SearchResult:
    """Where one model's search stands: enough for the checkpoint, the report and the training."""

    model: str
    study: str
    planned: int
    counted: int = 0
    pruned: int = 0
    failed: int = 0
    orphaned: int = 0  # cut short by a kill or an interruption, and run again
    seconds: float = 0.0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    default_value: float | None = None
    default_params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # counted trials in order

    @property
    def finished(self) -> bool:
        return self.counted >= self.planned

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in (
            "model", "study", "planned", "counted", "pruned", "failed", "orphaned", "seconds", "best_value",
            "best_params", "default_value", "default_params", "history")}


def open_storage(path: Path) -> optuna.storages.RDBStorage:
    """The study storage, a SQLite file beside (not inside) the trainer database: Optuna manages its
    own schema, and the trainer database keeps only versioned migrations of its own."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # Optuna's messages go to the log file, not the screen
    optuna.logging.enable_propagation()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A long busy timeout, should another program (a viewer such as optuna-dashboard) read the file.
        return optuna.storages.RDBStorage(f"sqlite:///{path.resolve().as_posix()}",
                                          engine_kwargs={"connect_args": {"timeout": 30}})
    except Exception as error:  # noqa: BLE001 - SQLAlchemy/alembic raise many kinds; all mean "cannot use it"
        log.exception("opening the tuning storage %s failed", path)
        raise TuningStorageError(
            f"The tuning file {path} cannot be used ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            "If it is damaged, move it aside (only the search is redone; prices, runs and models are "
            "not in it) and run again.") from error


def study_name(run_id: str, settings: SearchSettings, data: TrainingData) -> str:
    """Run, model, metric and a fingerprint of the training rows and folds: retraining on a
    changed dataset (a symbol retried later) starts a fresh study instead of reusing old scores."""
    digest = hashlib.sha256()
    dataset = data.dataset
    for part in (dataset.y, dataset.entry_dates.astype("datetime64[D]").astype(np.int64), data.split.train_idx,
                 *[rows for fold in data.split.folds for rows in fold], np.asarray(data.split.kept_columns)):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(f"{settings.metric}|{settings.seed}|{settings.uniqueness}|{settings.min_train_years}|"
                  f"{SPACE_VERSION}".encode())
    return f"{run_id}/{settings.model}/{digest.hexdigest()[:12]}"


def load_study(storage: optuna.storages.RDBStorage, name: str, metric: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                               direction="maximize" if MAXIMISE[metric] else "minimize")


def fail_orphans(study: optuna.Study) -> int:
    """Fail every RUNNING trial (a killed process's; the run lock rules out a live one) and mark it
    so it is not counted; its parameters are drawn again by the next trial."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    storage = study._storage  # noqa: SLF001 - Optuna's public API has no "fail this trial" for a foreign trial
    for trial in orphans:
        storage.set_trial_system_attr(trial._trial_id, ORPHANED, True)  # noqa: SLF001
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # noqa: SLF001
        log.info("tuning: trial %d of %s was cut short by the last run's end; it is run again",
                 trial.number, study.study_name)
    return len(orphans)


def cut_short(trial: optuna.trial.FrozenTrial) -> bool:
    """Ended by a kill or an interruption rather than by its parameters: it is run again."""
    return bool(trial.system_attrs.get(ORPHANED) or trial.user_attrs.get(INTERRUPTED))


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Finished trials that count toward the planned number, in order (not those cut short)."""
    return [trial for trial in study.get_trials(deepcopy=False)
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (trial.state == TrialState.FAIL and not cut_short(trial))]


def summarise(study: optuna.Study, settings: SearchSettings) -> SearchResult:
    """What the storage says about one model's search."""
    counted = counted_trials(study)
    result = SearchResult(settings.model, study.study_name, settings.trials, counted=len(counted))
    every = study.get_trials(deepcopy=False)
    result.orphaned = sum(1 for trial in every if cut_short(trial))
    result.pruned = sum(1 for trial in counted if trial.state == TrialState.PRUNED)
    result.failed = sum(1 for trial in counted if trial.state == TrialState.FAIL)
    result.seconds = round(trial_seconds(counted), 2)
    complete = [trial for trial in counted if trial.state == TrialState.COMPLETE]
    if complete:
        best = (max if MAXIMISE[settings.metric] else min)(complete, key=lambda trial: trial.value)
        result.best_value, result.best_params = float(best.value), dict(best.params)
    for trial in counted:
        if trial.user_attrs.get(DEFAULT):
            result.default_params = dict(trial.params)
            if trial.state == TrialState.COMPLETE:
                result.default_value = float(trial.value)
        value = trial.value if trial.state == TrialState.COMPLETE else _last_intermediate(trial)
        result.history.append({"number": len(result.history), "state": trial.state.name.lower(),
                               "value": value, "params": dict(trial.params), "seconds": trial_seconds([trial])})
    return result


def trial_seconds(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Wall time of these trials (pass the counted ones: an orphan's "end" is when the next run
    failed it, so its span would include the time the computer was off)."""
    return sum((trial.datetime_complete - trial.datetime_start).total_seconds() for trial in trials
               if trial.datetime_complete is not None and trial.datetime_start is not None)


def _last_intermediate(trial: optuna.trial.FrozenTrial) -> float | None:
    values = trial.intermediate_values
    return float(values[max(values)]) if values else None


def search(study: optuna.Study, settings: SearchSettings, data: TrainingData, *,
           out_of_time: Callable[[], bool], after_trial: Callable[[SearchResult], None]) -> SearchResult:
    """Run trials one at a time until the planned number is counted or out_of_time() says stop
    (asked before each trial, so the running trial always finishes)."""
    fail_orphans(study)
    objective = make_objective(settings, data)
    while True:
        counted = counted_trials(study)
        if len(counted) >= settings.trials or out_of_time():
            return summarise(study, settings)
        if not counted and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.enqueue_trial(_defaults(settings.model), user_attrs={DEFAULT: True})
        study.sampler = optuna.samplers.TPESampler(
            seed=(settings.seed * 1_000_003 + len(counted)) % 2**32, multivariate=True, constant_liar=False,
            n_startup_trials=min(10, max(2, settings.trials // 3)))
        study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0) if settings.pruning
                        else optuna.pruners.NopPruner())
        study.optimize(objective, n_trials=1, catch=(ValueError,))
        after_trial(summarise(study, settings))


def _defaults(model: str) -> dict[str, Any]:
    params = default_parameters(model, [param.name for param in SPACES[model]])
    return {param.name: (int(params[param.name]) if param.integer else float(params[param.name]))
            for param in SPACES[model]}


def make_objective(settings: SearchSettings, data: TrainingData) -> Callable[[optuna.Trial], float]:
    """The out-of-fold score over the voting folds, reported fold by fold for the pruner."""
    folds = data.voting_folds(settings.min_train_years)
    dataset = data.dataset

    def objective(trial: optuna.Trial) -> float:
        try:
            return score_folds(trial)
        except (optuna.TrialPruned, ValueError):
            raise
        except (KeyboardInterrupt, SystemExit, ClusterError, OSError):
            # Ctrl+C, SIGTERM, a lost cluster, a full disk: not the parameters' fault, so run it again.
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except Exception as error:  # noqa: BLE001 - e.g. MemoryError or a booster's own error
            # Most likely these parameters (a huge tree on a big universe): a failed trial that counts,
            # so a resumed search does not hit the same wall forever.
            log.warning("tuning %s: trial %d failed (%s: %s); it counts as failed", settings.model, trial.number,
                        type(error).__name__, error)
            raise ValueError(f"{type(error).__name__}: {error}") from error

    def score_folds(trial: optuna.Trial) -> float:
        params = suggest(trial, settings.model)
        tasks = [FitTask(settings.model, settings.seed, *data.split.folds[number], settings.uniqueness, None, params)
                 for number in folds]
        oof = np.full((len(dataset), 3), np.nan)
        scored: list[np.ndarray] = []
        value = float("nan")
        fitted = fitted_in_order(data, tasks, settings.jobs, settings.cluster)
        try:
            for step, task in enumerate(tasks):
                _, oof[task.predict_rows], _ = next(fitted)
                crash_point("tuning.fold_fitted")
                scored.append(task.predict_rows)
                rows = np.unique(np.concatenate(scored))
                value = _score(settings.metric, dataset.y[rows], oof[rows], dataset.returns[rows])
                trial.report(value, step)
                if step < len(tasks) - 1 and trial.should_prune():  # a trial scored on every fold completes
                    if not settings.cluster and worker_count(settings.jobs, len(tasks)) > 1:
                        # The other folds already run in the worker processes; closing joblib's stream
                        # early would end those processes, and every pruned trial would pay to start them.
                        for _ in fitted:
                            pass
                    raise optuna.TrialPruned()
        finally:
            fitted.close()  # on a cluster, the pruned trial's remaining fits are cancelled
        return value

    return objective


def _score(metric: str, y: np.ndarray, proba: np.ndarray, returns: np.ndarray) -> float:
    value = evaluate(y, proba, returns)[metric]
    if value is None:
        raise ValueError(f"the out-of-fold {metric} cannot be computed (too few BUY and SELL samples)")
    return float(value)
