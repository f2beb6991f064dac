"""The hyperparameter search on a real stored dataset: it never reads the holdout, it resumes after
a trial was cut short with exactly the trials of an uninterrupted search, and its settings are part
of a run's identity only when it is on."""

from __future__ import annotations

import dataclasses
import sqlite3

import numpy as np
import optuna
import pytest

from tests.support import shared_demo_run
from trainer.config import Config, ConfigError, load_config
from trainer.ml.fitting import TrainingData, load_training_data
from trainer.tuning.search import SearchSettings, load_study, open_storage, search, study_name

TRIALS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TrainingData:
    workdir = shared_demo_run(tmp_path_factory, 5)
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        run_id = connection.execute("SELECT run_id FROM training_runs").fetchone()[0]
        return load_training_data(connection, run_id, Config())
    finally:
        connection.close()


def _settings(model: str = "lightgbm") -> SearchSettings:
    return SearchSettings(model, TRIALS, "auc_directional", seed=42, uniqueness=True, min_train_years=4.0)


def _search(folder, data: TrainingData, settings: SearchSettings, name: str = "run/lightgbm"):
    study = load_study(open_storage(folder / "tuning.db"), name, settings.metric)
    return search(study, settings, data, out_of_time=lambda: False, after_trial=lambda result: None)


def _trials(result) -> list[tuple]:
    return [(trial["state"], trial["value"], tuple(sorted(trial["params"].items()))) for trial in result.history]


def test_poisoned_holdout_labels_change_nothing_in_the_search(tmp_path, data):
    holdout = data.split.holdout_idx
    assert holdout.size > 100 and np.isin(data.dataset.y[holdout], [0, 2]).any()
    rng = np.random.default_rng(0)
    y, returns = data.dataset.y.copy(), data.dataset.returns.copy()
    y[holdout] = rng.permutation(2 - y[holdout])  # SELL <-> BUY, then shuffled across the rows
    returns[holdout] = -returns[holdout] * 7.0
    poisoned = TrainingData(dataclasses.replace(data.dataset, y=y, returns=returns), data.split)
    assert not np.array_equal(poisoned.dataset.y[holdout], data.dataset.y[holdout])

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean = _search(tmp_path / "a", data, _settings())
    dirty = _search(tmp_path / "b", poisoned, _settings())
    assert clean.counted == dirty.counted == TRIALS
    assert _trials(clean) == _trials(dirty)
    assert clean.best_params == dirty.best_params and clean.best_value == dirty.best_value


def test_first_trial_is_the_default_set_and_the_best_is_never_worse(tmp_path, data):
    result = _search(tmp_path, data, _settings())
    assert result.history[0]["params"] == result.default_params
    assert result.default_params["num_leaves"] == 31 and result.default_params["learning_rate"] == 0.05
    assert result.default_value is not None and result.best_value >= result.default_value
    assert len({tuple(sorted(trial["params"].items())) for trial in result.history}) == TRIALS


def test_a_trial_left_running_by_a_kill_is_failed_and_drawn_again(tmp_path, data):
    """What a SIGKILL leaves behind: a RUNNING trial in the storage (here made with ask(), as the
    killed process had). The resumed search fails it, does not count it, and ends like a search
    that was never interrupted."""
    settings = _settings("logistic_regression")
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()
    whole = _search(tmp_path / "whole", data, settings, "run/logistic_regression")

    partial = dataclasses.replace(settings, trials=3)
    _search(tmp_path / "cut", data, partial, "run/logistic_regression")
    study = load_study(open_storage(tmp_path / "cut" / "tuning.db"), "run/logistic_regression", settings.metric)
    left_running = study.ask()  # the next trial had started when the process died
    left_running.suggest_float("logisticregression__C", 1e-4, 10.0, log=True)
    resumed = _search(tmp_path / "cut", data, settings, "run/logistic_regression")

    assert resumed.orphaned == 1 and resumed.counted == TRIALS
    assert _trials(resumed) == _trials(whole)
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and optuna.trial.TrialState.RUNNING not in states


def test_the_study_name_follows_the_training_rows(data):
    poisoned_train = data.dataset.y.copy()
    poisoned_train[data.split.train_idx[:10]] = 2
    other = TrainingData(dataclasses.replace(data.dataset, y=poisoned_train), data.split)
    assert study_name("r", _settings(), data) == study_name("r", _settings(), data)
    assert study_name("r", _settings(), data) != study_name("r", _settings(), other)


def test_tuning_settings_are_part_of_the_identity_only_when_tuning_is_on():
    off = load_config(None, {"tuning.minutes": 0.0})
    assert not any(key.startswith("tuning.") for key in off.identity(["A"]))
    assert off.hash(["A"]) == Config().hash(["A"])
    on = load_config(None, {"tuning.trials": 20})
    assert on.identity(["A"])["tuning.trials"] == 20 and on.hash(["A"]) != off.hash(["A"])
    assert load_config(None, {"tuning.trials": 30}).hash(["A"]) != on.hash(["A"])


@pytest.mark.parametrize(("overrides", "words"), [
    ({"tuning.minutes": 5.0}, "--tune-minutes (tuning.minutes) limits a search that is off: also give the number "
                               "of trials (--tune-trials 50"),
    ({"tuning.trials": 5, "training.models": ("svm",)}, "tuning.models has ['lightgbm', 'xgboost']; list models "
                                                       "that training.models trains (svm)"),
    ({"tuning.trials": 5, "tuning.metric": "accuracy"}, "tuning.metric is 'accuracy'"),
    ({"tuning.trials": -1}, "--tune-trials (tuning.trials) is -1"),
])
def test_wrong_tuning_settings_are_refused_by_name(overrides, words):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert words in str(error.value)


class _InterruptedOnce(TrainingData):
    """The user presses Ctrl+C during the n-th fit."""

    def __init__(self, data: TrainingData, at: int) -> None:
        super().__init__(data.dataset, data.split)
        self.calls, self.at = 0, at

    def fit(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().fit(*args, **kwargs)


def test_a_trial_stopped_by_ctrl_c_is_run_again(tmp_path, data):
    """Optuna records a trial that raised KeyboardInterrupt as FAIL; it must not count as a failed
    parameter set, or the resumed search would draw different trials."""
    settings = _settings("logistic_regression")
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()
    whole = _search(tmp_path / "whole", data, settings, "run/logistic_regression")
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "cut", _InterruptedOnce(data, at=5), settings, "run/logistic_regression")
    resumed = _search(tmp_path / "cut", data, settings, "run/logistic_regression")
    assert resumed.orphaned == 1 and _trials(resumed) == _trials(whole)


def test_the_time_limit_is_asked_before_each_trial(tmp_path, data):
    asked = []

    def out_of_time() -> bool:
        asked.append(1)
        return len(asked) > 2

    study = load_study(open_storage(tmp_path / "tuning.db"), "run/lr", "auc_directional")
    result = search(study, _settings("logistic_regression"), data, out_of_time=out_of_time,
                    after_trial=lambda result: None)
    assert result.counted == 2 and not result.finished and result.seconds > 0


class _FailsOnce(_InterruptedOnce):
    """A fit runs out of memory (as a huge tree on a big universe would)."""

    def fit(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise MemoryError("cannot allocate 12 GB")
        return TrainingData.fit(self, *args, **kwargs)


def test_a_trial_that_fails_from_its_parameters_counts_and_the_search_goes_on(tmp_path, data):
    study = load_study(open_storage(tmp_path / "tuning.db"), "run/lr", "auc_directional")
    result = search(study, _settings("logistic_regression"), _FailsOnce(data, at=5), out_of_time=lambda: False,
                    after_trial=lambda result: None)
    assert result.counted == TRIALS and result.failed == 1 and result.orphaned == 0
    assert [trial["state"] for trial in result.history].count("fail") == 1
