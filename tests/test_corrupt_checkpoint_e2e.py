"""A damaged or missing checkpoint after an interrupted run: the next run says what it found and
what it did (recovered from the backup, or rebuilt progress from the database), keeps the run and
its finished symbols, and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import pytest

from tests.support import (
    CHECKPOINT_FILE,
    checkpoint_totals,
    copy_workdir,
    database_snapshot,
    demo_args,
    flat,
    query,
    read_checkpoint,
    run_program,
    shared_demo_run,
    shared_interrupted_run,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = shared_demo_run(tmp_path_factory, SYMBOLS)
    return database_snapshot(workdir), checkpoint_totals(read_checkpoint(workdir))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Killed right after the second symbol's transaction committed: the database holds two
    symbols, the checkpoint one (and the second as in progress)."""
    workdir = shared_interrupted_run(tmp_path_factory, SYMBOLS)
    state = read_checkpoint(workdir)
    assert len(state["backtest"]["completed_symbols"]) == 1
    assert len(query(workdir, "SELECT symbol FROM backtest_results")) == 2
    return workdir


def damage(workdir, how):
    folder = workdir / "checkpoints"
    main, backup = folder / CHECKPOINT_FILE, folder / f"{CHECKPOINT_FILE}.bak"
    assert main.exists() and backup.exists()
    if how == "truncated":
        data = main.read_bytes()
        main.write_bytes(data[: len(data) // 2])
    elif how == "both_corrupt":
        main.write_bytes(b"\x00" * 300)  # what a power cut can leave on some file systems
        backup.write_text('{"version": 2, "run_id": "20', encoding="utf-8")
    elif how == "both_deleted":
        main.unlink()
        backup.unlink()


def resume(workdir, tmp_path):
    result = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS),
                         env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_ends_like_uninterrupted_run(workdir, reference, run_id):
    expected_db, expected_totals = reference
    assert database_snapshot(workdir) == expected_db
    assert checkpoint_totals(read_checkpoint(workdir)) == expected_totals
    assert read_checkpoint(workdir)["run_id"] == run_id
    assert query(workdir, "SELECT DISTINCT run_id FROM trades") == [(run_id,)], "one run, no second copy"


def test_truncated_checkpoint_is_recovered_from_the_backup(interrupted, reference, tmp_path):
    workdir = copy_workdir(interrupted, tmp_path / "work")
    run_id = read_checkpoint(workdir)["run_id"]
    damage(workdir, "truncated")

    result = resume(workdir, tmp_path)
    output = flat(result)
    assert f"Resuming run {run_id}" in output
    assert "The checkpoint was unusable (" in output and "is not valid JSON" in output
    assert f"recovered it from {CHECKPOINT_FILE}.bak." in output
    assert "were committed to the database but not yet recorded in the checkpoint" in output
    assert_ends_like_uninterrupted_run(workdir, reference, run_id)


def test_checkpoint_and_backup_both_corrupt_progress_is_rebuilt_from_the_database(interrupted, reference, tmp_path):
    workdir = copy_workdir(interrupted, tmp_path / "work")
    run_id = read_checkpoint(workdir)["run_id"]
    damage(workdir, "both_corrupt")
    status = run_program("check_checkpoint.py", "--workdir", workdir, env=wide_env())
    assert status.returncode == 3, "damaged is not 'no run has started yet'"
    assert "are both damaged" in flat(status) and "rebuilds it from the database" in flat(status)

    result = resume(workdir, tmp_path)
    output = flat(result)
    assert "The checkpoint and its backup were unusable (" in output
    assert f"rebuilt progress from the database (run {run_id}). Finished symbols are kept" in output
    assert "2 symbol(s) were committed to the database but not yet recorded in the checkpoint" in output
    assert "marked done, not recomputed" in output
    assert_ends_like_uninterrupted_run(workdir, reference, run_id)


def test_deleted_checkpoint_and_backup_with_the_database_kept_rebuilds_the_same_run(interrupted, reference,
                                                                                    tmp_path):
    """The user deleted only checkpoints/*.json (not with reset_checkpoint.py, which also empties
    the run's tables). The database still holds the run with these settings, so its finished
    symbols are taken from there instead of starting a second run beside it."""
    workdir = copy_workdir(interrupted, tmp_path / "work")
    run_id = read_checkpoint(workdir)["run_id"]
    damage(workdir, "both_deleted")

    result = resume(workdir, tmp_path)
    output = flat(result)
    assert f"There was no checkpoint in {workdir / 'checkpoints'}, but the database holds run {run_id}" in output
    assert f"rebuilt progress from the database (run {run_id})" in output
    assert "marked done, not recomputed" in output
    assert_ends_like_uninterrupted_run(workdir, reference, run_id)
    assert query(workdir, "SELECT run_id FROM training_runs") == [(run_id,)]


def test_a_checkpoint_with_an_emptied_section_is_recovered_from_the_backup(interrupted, reference, tmp_path):
    """Issue 15, case 12: '"backtest": {}' raised KeyError: 'completed_symbols' in every command."""
    import json

    workdir = copy_workdir(interrupted, tmp_path / "work")
    run_id = read_checkpoint(workdir)["run_id"]
    path = workdir / "checkpoints" / "training_checkpoint.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["backtest"] = {}
    path.write_text(json.dumps(state), encoding="utf-8")
    status = run_program("check_checkpoint.py", "--workdir", workdir, env=wide_env())
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr
    result = resume(workdir, tmp_path)
    assert "lacks or garbles backtest.symbols_total" in flat(result) and "Traceback" not in result.stdout
    assert_ends_like_uninterrupted_run(workdir, reference, run_id)
