"""Kill the real program at several moments, resume, and demand the same result as an
uninterrupted run: the same samples, trades, summaries, models and metrics, nothing lost or
counted twice."""

from __future__ import annotations

import signal

import pytest

from tests.support import (
    checkpoint_totals,
    database_snapshot,
    program_env,
    read_checkpoint,
    run_program,
    start_program,
    wait_until,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = "5"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run that every interrupted run must reproduce exactly."""
    workdir = tmp_path_factory.mktemp("reference")
    config = write_fast_config(workdir)
    result = run_program("run_training.py", "--demo", "--max-symbols", SYMBOLS, "--config", config,
                         "--workdir", workdir, "--no-open")
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir, database_snapshot(workdir), checkpoint_totals(read_checkpoint(workdir))


def _started_with_symbols_done(workdir, config, symbols: int):
    """The program started in the background, once its checkpoint lists this many finished symbols."""
    process = start_program("run_training.py", *_args(workdir, config))
    wait_until(lambda: len(((read_checkpoint(workdir) or {}).get("backtest") or {}).get("completed_symbols", []))
               >= symbols, 120, f"{symbols} finished symbol(s)")
    return process


def _args(workdir, config):
    return ["--demo", "--max-symbols", SYMBOLS, "--config", config, "--workdir", workdir, "--no-open"]


@pytest.mark.parametrize("crash_at", [
    "backtest.before_commit:2",       # inside a symbol: computed, not yet committed
    "backtest.after_commit:3",        # committed to SQLite, not yet in the checkpoint
    "checkpoint.temp_written:9",      # during a checkpoint write: temp file fsynced, not renamed
    "training.fold_fitted:6",         # inside the second model's cross-validation
    "portfolio.after_commit:1",       # portfolio tables written, the phase not yet in the checkpoint
])
def test_sigkill_at_a_critical_moment_then_resume_matches_uninterrupted_run(tmp_path, reference, crash_at):
    _, expected_db, expected_totals = reference
    config = write_fast_config(tmp_path)
    killed = run_program("run_training.py", *_args(tmp_path, config), env=program_env(TRAINER_CRASH_AT=crash_at))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    resumed = run_program("run_training.py", *_args(tmp_path, config))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming run" in resumed.stdout
    assert database_snapshot(tmp_path) == expected_db
    assert checkpoint_totals(read_checkpoint(tmp_path)) == expected_totals


def test_external_sigkill_between_symbols_then_resume(tmp_path, reference):
    _, expected_db, expected_totals = reference
    config = write_fast_config(tmp_path)
    process = _started_with_symbols_done(tmp_path, config, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    resumed = run_program("run_training.py", *_args(tmp_path, config))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert database_snapshot(tmp_path) == expected_db
    assert checkpoint_totals(read_checkpoint(tmp_path)) == expected_totals


def test_sigint_saves_progress_says_how_to_resume_and_next_run_finishes(tmp_path, reference):
    _, expected_db, _ = reference
    config = write_fast_config(tmp_path)
    process = _started_with_symbols_done(tmp_path, config, 1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 4, output
    assert "Progress is saved" in output
    assert "Run the same command again to resume" in output

    resumed = run_program("run_training.py", *_args(tmp_path, config))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert database_snapshot(tmp_path) == expected_db


def test_completed_run_is_not_redone(tmp_path, reference):
    workdir, expected_db, _ = reference
    again = run_program("run_training.py", *_args(workdir, workdir / "fast.toml"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Backtest" not in again.stdout
    assert database_snapshot(workdir)["trades"] == expected_db["trades"]


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path, reference):
    """`run_training.py | head -1`: the pipe closes after the first line; the run still finishes."""
    _, expected_db, _ = reference
    config = write_fast_config(tmp_path)
    process = start_program("run_training.py", *_args(tmp_path, config))
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=300) == 0
    assert database_snapshot(tmp_path) == expected_db
    assert "the output stream was closed" in (tmp_path / "logs" / "training.log").read_text(encoding="utf-8")


def test_a_closed_terminal_sighup_saves_progress_and_says_so_in_the_log(tmp_path, reference):
    _, expected_db, _ = reference
    config = write_fast_config(tmp_path)
    process = _started_with_symbols_done(tmp_path, config, 1)
    process.send_signal(signal.SIGHUP)
    process.communicate(timeout=60)
    assert process.returncode == 4
    assert "interrupted during phase" in (tmp_path / "logs" / "training.log").read_text(encoding="utf-8")
    resumed = run_program("run_training.py", *_args(tmp_path, config))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert database_snapshot(tmp_path) == expected_db
