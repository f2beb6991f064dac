"""The three entry points on consoles that cannot show Unicode (Windows cp1252, plain ASCII), in a
work directory whose path has a space and an accent: right exit codes, readable output, and never
a UnicodeEncodeError or a traceback (a predecessor died after an hour printing a check mark)."""

from __future__ import annotations

import json

import pytest

from tests.support import (
    demo_args,
    flat,
    read_checkpoint,
    run_program,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow


def assert_clean(result, expected_code, what):
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == expected_code, f"{what}: exit {result.returncode}\n{output}"
    assert "UnicodeEncodeError" not in output, what
    assert "Traceback" not in output, what


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_every_entry_point_works_on_a_console_without_unicode(tmp_path, encoding):
    workdir = tmp_path / "Données de José"
    config = write_fast_config(tmp_path)
    env = wide_env(PYTHONIOENCODING=encoding)

    run = run_program("run_training.py", *demo_args(workdir, config, 3), env=env)
    assert_clean(run, 0, "run_training.py")
    assert "Report:" in run.stdout and "Verdict" in run.stdout and "Account after costs" in run.stdout
    assert read_checkpoint(workdir)["current_phase"] == "complete"
    if encoding == "ascii":
        assert run.stdout.isascii() and run.stderr.isascii()
    log = (workdir / "logs" / "training.log").read_text(encoding="utf-8")
    assert "UnicodeEncodeError" not in log and "Traceback" not in log

    status = run_program("check_checkpoint.py", "--workdir", workdir, env=env)
    assert_clean(status, 0, "check_checkpoint.py")
    assert "phase: complete" in flat(status)

    as_json = run_program("check_checkpoint.py", "--workdir", workdir, "--json", env=env)
    assert_clean(as_json, 0, "check_checkpoint.py --json")
    assert json.loads(as_json.stdout)["summary"]["phase"] == "complete"

    declined = run_program("reset_checkpoint.py", "--workdir", workdir, env=env, input_text="n\n")
    assert_clean(declined, 0, "reset_checkpoint.py answered n")
    assert "Nothing was deleted." in declined.stdout
    assert read_checkpoint(workdir) is not None

    confirmed = run_program("reset_checkpoint.py", "--workdir", workdir, "--yes", env=env)
    assert_clean(confirmed, 0, "reset_checkpoint.py --yes")
    assert "Done." in confirmed.stdout
    assert not (workdir / "checkpoints" / "training_checkpoint.json").exists()

    empty = run_program("check_checkpoint.py", "--workdir", workdir, env=env)
    assert_clean(empty, 0, "check_checkpoint.py without a checkpoint")
    assert "No checkpoint in" in empty.stdout
