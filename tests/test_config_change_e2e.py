"""An UNFINISHED run with other settings than the saved progress must stop before touching
anything: exit 2, every changed setting named with its old and new value, and both ways out; the
checkpoint, its backup, the model files and the database stay byte-for-byte the same. A FINISHED
run never blocks the next one: new settings start a new run beside it, and its results are kept."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support import (
    copy_workdir,
    demo_args,
    file_digests,
    flat,
    read_checkpoint,
    run_program,
    shared_demo_run,
    shared_interrupted_run,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = 3


def horizon_config(folder, horizon):
    base = write_fast_config(folder)
    path = folder / f"horizon{horizon}.toml"
    path.write_text(base.read_text(encoding="utf-8") + f"\n[labels]\nhorizon = {horizon}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run killed (SIGKILL, like a power cut) right after its second symbol committed."""
    return shared_interrupted_run(tmp_path_factory, SYMBOLS)


def assert_refused(result, workdir, changes):
    assert result.returncode == 2, result.stdout + result.stderr
    output = flat(result)
    state = read_checkpoint(workdir)
    assert f"The saved progress (run {state['run_id']}) was made with different settings" in output
    for change in changes:
        assert f"- {change}" in output
    assert "Nothing was changed." in output
    assert f'1. start over with these settings: python reset_checkpoint.py --workdir "{workdir}"' in output
    assert "2. or resume the saved run by running again with its old settings" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("change", ["more_symbols", "horizon"])
def test_changed_settings_after_an_interruption_stop_with_exit_2_and_touch_nothing(interrupted, tmp_path, change):
    workdir = copy_workdir(interrupted, tmp_path / "work")
    state = read_checkpoint(workdir)
    assert len(state["backtest"]["completed_symbols"]) == 1, "the second symbol is only in the database"
    universe = state["config"]["universe"]
    before = file_digests(workdir)
    assert "data/trainer.db" in before and "checkpoints/training_checkpoint.json.bak" in before

    symbols, config, changes = SYMBOLS, write_fast_config(tmp_path), []
    if change == "more_symbols":
        symbols = SYMBOLS + 1
        changes += ["data.max_symbols: 3 -> 4", "universe: 3 -> 4 symbols (added "]
    if change == "horizon":
        config = horizon_config(tmp_path, 10)
        changes += ["labels.horizon: 20 -> 10"]
    result = run_program("run_training.py", *demo_args(workdir, config, symbols), env=wide_env())

    assert_refused(result, workdir, changes)
    if change == "horizon":
        assert "max_symbols" not in flat(result) and "universe" not in flat(result)
    else:
        assert "removed none)" in flat(result)
        assert not any(f"added {symbol}" in flat(result) for symbol in universe)
    assert file_digests(workdir) == before


def _rows_of(workdir, run_id: str) -> dict[str, int]:
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
                for table in ("trades", "feature_store", "model_predictions", "model_promotion_history")}
    finally:
        connection.close()


def test_a_finished_run_never_blocks_new_settings_and_its_results_are_kept(tmp_path_factory, tmp_path):
    workdir = copy_workdir(shared_demo_run(tmp_path_factory, SYMBOLS), tmp_path / "work")
    old = read_checkpoint(workdir)
    kept = _rows_of(workdir, old["run_id"])
    assert kept["trades"] and kept["model_predictions"]

    new = run_program("run_training.py", *demo_args(workdir, horizon_config(tmp_path, 10), SYMBOLS + 1),
                      env=wide_env())
    assert new.returncode == 0, new.stdout + new.stderr
    output = flat(new)
    assert f"The last run ({old['run_id']}) is finished and had other settings" in output
    assert "labels.horizon: 20 -> 10" in output and "Starting a run with these settings." in output
    state = read_checkpoint(workdir)
    assert state["run_id"] != old["run_id"] and state["current_phase"] == "complete"
    assert (workdir / "checkpoints" / "archive" / old["run_id"] / "training_checkpoint.json").is_file()
    assert _rows_of(workdir, old["run_id"]) == kept

    # The old settings again: the database still holds that run, so its backtest is reused (only the
    # models are retrained). --jobs does not change results, so it is not part of the identity.
    again = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS, "--jobs", "2"),
                        env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"The database holds run {old['run_id']} with these settings; rebuilt progress" in flat(again)
    assert "different settings" not in flat(again) and "Backtest" not in again.stdout
    assert read_checkpoint(workdir)["run_id"] == old["run_id"]
    assert _rows_of(workdir, old["run_id"])["trades"] == kept["trades"]
