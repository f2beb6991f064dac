"""--jobs 2 computes the backtest in worker processes; the parent alone writes, in universe order,
so the database ends exactly as with --jobs 1: same samples, features, market, models and metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import (
    checkpoint_totals,
    database_snapshot,
    demo_args,
    read_checkpoint,
    run_program,
    shared_demo_run,
    start_program,
    wait_until,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = 5


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: --jobs 2 runs one worker")
def test_two_jobs_store_exactly_what_one_job_stores(tmp_path_factory, tmp_path):
    serial = shared_demo_run(tmp_path_factory, SYMBOLS)
    result = run_program("run_training.py", *demo_args(tmp_path, write_fast_config(tmp_path), SYMBOLS, "--jobs", "2"),
                         env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr

    expected, actual = database_snapshot(serial), database_snapshot(tmp_path)
    assert len(expected["trades"]) > 1000 and expected["performance"]
    for table in expected:
        assert actual[table] == expected[table], f"{table} differs between --jobs 2 and --jobs 1"
    assert checkpoint_totals(read_checkpoint(tmp_path)) == checkpoint_totals(read_checkpoint(serial))
    assert read_checkpoint(tmp_path)["backtest"]["completed_symbols"] == \
        read_checkpoint(serial)["backtest"]["completed_symbols"], "symbols are recorded in universe order"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc (Linux)")
def test_worker_processes_leave_when_the_run_is_killed(tmp_path):
    """Issue 15, case 13: after a SIGKILL of the run, joblib's workers stayed for minutes."""
    import signal
    import time

    process = start_program("run_training.py", *demo_args(tmp_path, write_fast_config(tmp_path), 40, "--jobs", "2"))
    wait_until(lambda: len(((read_checkpoint(tmp_path) or {}).get("backtest") or {}).get("completed_symbols", []))
               >= 2, 120, "two symbols backtested by the workers")
    children = {int(pid) for task in Path(f"/proc/{process.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()}
    assert children, "the backtest runs in worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.2)
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert not left, f"worker processes still alive 15 s after the run was killed: {left}"
