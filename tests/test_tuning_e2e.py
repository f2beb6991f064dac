"""The real program tuning, killed by SIGKILL in the middle of trials three times, resumed each time:
it must end with exactly the trials, the chosen parameters and the models of a run never killed."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.support import (
    database_snapshot,
    demo_args,
    flat,
    program_env,
    query,
    read_checkpoint,
    run_program,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = 5
TRIALS = "6"


def _tuned_config(folder):
    path = write_fast_config(folder)
    path.write_text(path.read_text(encoding="utf-8")
                    + '\n[tuning]\nmodels = ["logistic_regression", "lightgbm"]\n', encoding="utf-8")
    return path


def _counted_trials(workdir) -> list[tuple]:
    """Every trial that counts (all but those a kill cut short), with its parameters and value."""
    connection = sqlite3.connect(workdir / "data" / "tuning.db")
    try:
        trials = connection.execute(
            "SELECT t.trial_id, s.study_name, t.state, v.value FROM trials t JOIN studies s USING (study_id) "
            "LEFT JOIN trial_values v USING (trial_id) WHERE t.trial_id NOT IN (SELECT trial_id FROM "
            "trial_system_attributes WHERE key = 'orphaned') ORDER BY t.trial_id").fetchall()
        params = {}
        for trial_id, name, value in connection.execute(
                "SELECT trial_id, param_name, param_value FROM trial_params"):
            params.setdefault(trial_id, []).append((name, value))
        return [(study.split("/", 1)[1], state, value, sorted(params.get(trial_id, [])))
                for trial_id, study, state, value in trials]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tuned")
    result = run_program("run_training.py", *demo_args(workdir, _tuned_config(workdir), SYMBOLS,
                                                       "--tune-trials", TRIALS))
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


def test_killed_three_times_mid_trial_ends_like_an_uninterrupted_tuning_run(tmp_path, uninterrupted):
    config = _tuned_config(tmp_path)
    args = demo_args(tmp_path, config, SYMBOLS, "--tune-trials", TRIALS)
    # The 1st fold of the default trial, a later logistic trial, then inside lightgbm's search: each
    # process counts its own passes, so every kill lands in the middle of a different trial.
    for crash_at in ("tuning.fold_fitted:1", "tuning.fold_fitted:5", "tuning.fold_fitted:14"):
        killed = run_program("run_training.py", *args, env=program_env(TRAINER_CRASH_AT=crash_at))
        assert killed.returncode in (-9, 137), killed.stdout + killed.stderr
        assert read_checkpoint(tmp_path)["current_phase"] == "tuning"
    finished = run_program("run_training.py", *args)
    assert finished.returncode == 0, finished.stdout + finished.stderr

    connection = sqlite3.connect(tmp_path / "data" / "tuning.db")
    orphans = connection.execute("SELECT COUNT(*) FROM trial_system_attributes WHERE key = 'orphaned'").fetchone()[0]
    connection.close()
    assert orphans == 3
    assert _counted_trials(tmp_path) == _counted_trials(uninterrupted)
    assert len(_counted_trials(tmp_path)) == 2 * int(TRIALS)

    def facts(workdir):
        return json.loads(query(workdir, "SELECT value_json FROM run_facts WHERE key = 'tuned_params'")[0][0])
    assert facts(tmp_path) == facts(uninterrupted) and "lightgbm" in facts(tmp_path)
    assert database_snapshot(tmp_path) == database_snapshot(uninterrupted)
    tuning = read_checkpoint(tmp_path)["tuning"]
    assert tuning["lightgbm"]["trials_done"] == int(TRIALS)

    # The tuned lightgbm's out-of-fold score in training is the search's best score: the same folds
    # and rows, so tuning and training agree to the last digit.
    best = json.loads(query(tmp_path, "SELECT value_json FROM run_facts WHERE key = 'tuning'")[0][0])
    cv = query(tmp_path, "SELECT auc_directional FROM model_performance WHERE model = 'lightgbm' AND scope = 'cv'")
    assert cv[0][0] == pytest.approx(best["models"]["lightgbm"]["best_value"], abs=1e-12)

    status = run_program("check_checkpoint.py", "--workdir", tmp_path, env=wide_env())
    assert "Tuning lightgbm" in flat(status) and f"{TRIALS}/{TRIALS} trials, best out-of-fold" in flat(status)
    shown = json.loads(run_program("check_checkpoint.py", "--workdir", tmp_path, "--json").stdout)
    assert shown["summary"]["tuning"]["lightgbm"]["trials_done"] == int(TRIALS)
    assert shown["summary"]["tuning"]["lightgbm"]["best_value"] == pytest.approx(
        best["models"]["lightgbm"]["best_value"])


def test_the_time_limit_stops_the_search_and_says_so(tmp_path):
    config = _tuned_config(tmp_path)
    args = demo_args(tmp_path, config, SYMBOLS, "--tune-trials", "200", "--tune-minutes", "0.05")
    result = run_program("run_training.py", *args, env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped by the time limit after" in flat(result)
    tuning = json.loads(query(tmp_path, "SELECT value_json FROM run_facts WHERE key = 'tuning'")[0][0])
    assert tuning["stopped_by_time"]
    for model in tuning["models"].values():
        assert 1 <= model["counted"] < 200, "the budget is shared: every model gets trials"
        # A trial starts only while the model's share (3 s / 2 models) lasts; the last one may run past it.
        assert sum(trial["seconds"] for trial in model["history"][:-1]) < 1.5
    status = run_program("check_checkpoint.py", "--workdir", tmp_path, env=wide_env())
    assert "stopped by the time limit" in flat(status)
    report = next((tmp_path / "reports").glob("*/report.html")).read_text(encoding="utf-8")
    assert "The time limit stopped the search before every trial ran." in report


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: --jobs 2 runs one worker")
def test_two_jobs_tune_and_train_exactly_like_one(tmp_path, uninterrupted):
    """--jobs 2 fits a trial's folds, and each model's folds and refit, in two worker processes with
    one thread each; trials, chosen parameters, models and metrics are the same, bit for bit."""
    result = run_program("run_training.py", *demo_args(tmp_path, _tuned_config(tmp_path), SYMBOLS,
                                                       "--tune-trials", TRIALS, "--jobs", "2"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _counted_trials(tmp_path) == _counted_trials(uninterrupted)
    assert database_snapshot(tmp_path) == database_snapshot(uninterrupted)
