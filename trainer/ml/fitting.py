"""The training data of a run and how one model is fitted on part of it.

TrainingData holds every sample and the purged walk-forward split; a FitTask is one fit (a
fold, or the refit on the whole training period) with the rows it predicts. The training and
tuning phases run their tasks through fitted_in_order, serially or (--jobs) in worker processes,
and always get the results back in task order, the same bit for bit.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.config import Config
from trainer.ml.dataset import Dataset, Split, load_dataset, make_split
from trainer.ml.memory import give_back_freed_memory
from trainer.ml.models import MAX_THREADS, ClassifierModel, make_model, use_threads
from trainer.ml.sample_weights import average_uniqueness
from trainer.workers import in_order, leave_with_the_run, worker_count


@dataclass
class TrainingData:
    dataset: Dataset
    split: Split

    @property
    def oof_rows(self) -> np.ndarray:
        """Rows that are validation rows of some fold: where out-of-fold probabilities exist."""
        return np.unique(np.concatenate([val for _, val in self.split.folds]))

    def features(self, rows: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        return self.dataset.X[np.ix_(rows, self.split.kept_columns if columns is None else columns)]

    def voting_folds(self, min_train_years: float) -> list[int]:
        """Folds (0-based) whose training window spans at least min_train_years; the last fold always
        votes, so there is something to choose on even with a short history."""
        years = [_years(train) for train, _ in self.split.fold_periods]
        chosen = [number for number, span in enumerate(years) if span >= min_train_years]
        return chosen or [len(years) - 1]

    def voting_rows(self, min_train_years: float) -> np.ndarray:
        """The out-of-fold rows that choose the ensemble weights and the one-feature rule."""
        folds = self.voting_folds(min_train_years)
        return np.unique(np.concatenate([self.split.folds[number][1] for number in folds]))

    def fit(self, name: str, seed: int, rows: np.ndarray, *, uniqueness: bool,
            columns: np.ndarray | None = None, params: dict[str, Any] | None = None) -> ClassifierModel:
        """One model fitted on these rows (sorted by date), weighted by uniqueness when asked, with
        its default hyperparameters except `params` (tuned ones)."""
        dataset = self.dataset
        weights = (average_uniqueness(dataset.symbols[rows], dataset.entry_dates[rows], dataset.exit_dates[rows])
                   if uniqueness else None)
        return make_model(name, seed, params).fit(self.features(rows, columns), dataset.y[rows],
                                          entry_dates=dataset.entry_dates[rows],
                                          exit_dates=dataset.exit_dates[rows], uniqueness=weights)


def _years(period) -> float:
    if period.start is None:
        return 0.0
    return float((np.datetime64(period.end) - np.datetime64(period.start)).astype(int)) / 365.25


def load_training_data(connection: sqlite3.Connection, run_id: str, config: Config) -> TrainingData:
    dataset = load_dataset(connection, run_id)
    training = config.training
    split = make_split(dataset, n_folds=training.n_folds, holdout_share=training.holdout_share,
                       min_feature_coverage=training.min_feature_coverage, embargo_days=config.labels.horizon)
    return TrainingData(dataset, split)


@dataclass(frozen=True)
class FitTask:
    """One fit of a model (a fold, or the refit on the whole training period) and the rows it predicts."""

    name: str
    seed: int
    train_rows: np.ndarray
    predict_rows: np.ndarray
    uniqueness: bool
    columns: np.ndarray | None = None
    params: dict[str, Any] | None = None
    threads: int = MAX_THREADS  # set by fitted_in_order: the share of the cores this fit may use


def fit_and_predict(data: TrainingData, task: FitTask,
                    run_pid: int | None = None) -> tuple[ClassifierModel, np.ndarray, float]:
    """Fit one task and predict its rows: here, in a --jobs worker or on a cluster worker, with the
    task's share of the threads."""
    leave_with_the_run(run_pid)
    use_threads(task.threads)
    started = time.monotonic()
    model = data.fit(task.name, task.seed, task.train_rows, uniqueness=task.uniqueness, columns=task.columns,
                     params=task.params)
    probabilities = model.predict_proba(data.features(task.predict_rows, task.columns))
    give_back_freed_memory()  # what the fit needed at its peak, or the process keeps it
    return model.use_all_threads(), probabilities, time.monotonic() - started


def fitted_in_order(data: TrainingData, tasks: list[FitTask], jobs: int,
                    cluster: str | None = None) -> Iterator[tuple[ClassifierModel, np.ndarray, float]]:
    """Every task's (model, probabilities, seconds), in the order of the tasks. With jobs > 1 the
    fits run in worker processes, each with its share of MAX_THREADS; on a cluster each task uses
    one thread (start the workers with one thread each, see the README). Either way what comes back
    is the same as a serial fit, bit for bit (tree models fit alike at any thread count)."""
    jobs = 1 if cluster else worker_count(jobs, len(tasks))
    threads = 1 if cluster else max(1, MAX_THREADS // jobs)
    tasks = [dataclasses.replace(task, threads=threads) for task in tasks]
    yield from in_order(fit_and_predict, data, tasks, jobs=jobs, cluster=cluster)
