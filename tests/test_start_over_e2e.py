"""Small mistakes on the command line cost nothing: a wrong date does not lock its settings in, a
file given as --workdir is refused before anything is written, and --jobs never exceeds the cores."""

from __future__ import annotations

import os

import pytest

from tests.support import flat, read_checkpoint, run_program, wide_env, write_fast_config

pytestmark = pytest.mark.slow


def test_a_wrong_date_does_not_lock_in_its_settings(tmp_path):
    workdir, config = tmp_path / "work", write_fast_config(tmp_path)
    args = ("--demo", "--max-symbols", "2", "--config", config, "--workdir", workdir, "--no-open")
    wrong = run_program("run_training.py", *args, "--start", "2205-01-01", env=wide_env())
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr
    assert "Check the date range (--start/--end)" in flat(wrong)
    first = read_checkpoint(workdir)["run_id"]

    jobs = (os.cpu_count() or 1) + 6
    fixed = run_program("run_training.py", *args, "--jobs", str(jobs), env=wide_env())
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    output = flat(fixed)
    assert f"The last run ({first}) had not finished a single symbol" in output
    assert "data.start: '2205-01-01' -> '2005-01-01'" in output and "different settings" not in output
    assert f"--jobs {jobs} is more than this computer's {os.cpu_count()} cores" in output
    assert read_checkpoint(workdir)["current_phase"] == "complete"
    assert (workdir / "checkpoints" / "archive" / first / "training_checkpoint.json").is_file()


@pytest.mark.parametrize("script", ["run_training.py", "check_checkpoint.py", "reset_checkpoint.py"])
def test_a_file_given_as_workdir_is_refused_before_anything_is_written(tmp_path, script):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine", encoding="utf-8")
    result = run_program(script, "--workdir", not_a_folder, env=wide_env())
    assert result.returncode == 2
    assert f"argument --workdir: {not_a_folder} is a file; give a folder" in result.stderr
    assert "Traceback" not in result.stderr and not_a_folder.read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
