"""A run with other settings than the saved progress must stop before touching anything: exit 2,
every changed setting named with its old and new value, and both ways out. The checkpoint, its
backup, the model files and the database stay byte-for-byte the same, and the saved run still
resumes with its old settings."""

from __future__ import annotations

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


def test_changed_settings_after_a_complete_run_touch_nothing_and_old_settings_still_work(tmp_path_factory,
                                                                                          tmp_path):
    workdir = copy_workdir(shared_demo_run(tmp_path_factory, SYMBOLS), tmp_path / "work")
    before = file_digests(workdir)
    config = write_fast_config(tmp_path)

    refused = run_program("run_training.py", *demo_args(workdir, horizon_config(tmp_path, 10), SYMBOLS + 1),
                          env=wide_env())
    assert_refused(refused, workdir, ["labels.horizon: 20 -> 10", "data.max_symbols: 3 -> 4"])
    assert file_digests(workdir) == before

    # Way out 2: the old settings resume the saved run (here: it is complete, nothing is redone).
    # --jobs does not change results, so it is not part of the identity and may differ.
    resumed = run_program("run_training.py", *demo_args(workdir, config, SYMBOLS, "--jobs", "2"), env=wide_env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming run" in resumed.stdout and "Backtest" not in resumed.stdout
    assert "different settings" not in flat(resumed)
    assert read_checkpoint(workdir)["current_phase"] == "complete"

