"""--jobs 2 computes the backtest in worker processes; the parent alone writes, in universe order,
so the database ends exactly as with --jobs 1: same samples, features, market, models and metrics."""

from __future__ import annotations

import pytest

from tests.support import (
    checkpoint_totals,
    database_snapshot,
    demo_args,
    read_checkpoint,
    run_program,
    shared_demo_run,
    wide_env,
    write_fast_config,
)

pytestmark = pytest.mark.slow

SYMBOLS = 5


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
