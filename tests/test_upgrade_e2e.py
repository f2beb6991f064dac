"""A work folder made by the first release (commit 83644a1, today's released main) opens in this
release: the first release's own code makes the folder, this one upgrades it in place."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import tarfile

import pytest

from tests.support import PROJECT_DIR, flat, run_program, wide_env, write_fast_config

pytestmark = pytest.mark.slow
FIRST_RELEASE = "83644a1"


def _first_release(target) -> bool:
    """The first release's files from git (no worktree: the repository is left as it is)."""
    archive = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", "--format=tar", FIRST_RELEASE],
                             capture_output=True)
    if archive.returncode != 0:
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return True


def test_a_first_release_work_folder_upgrades_in_place_with_everything_kept(tmp_path):
    old_code, workdir = tmp_path / "release-1", tmp_path / "work"
    if not _first_release(old_code):
        pytest.skip(f"commit {FIRST_RELEASE} (the first release) is not in this clone's history")
    config = write_fast_config(tmp_path)
    made = subprocess.run([sys.executable, str(old_code / "run_training.py"), "--demo", "--max-symbols", "3",
                           "--config", str(config), "--workdir", str(workdir), "--no-open"], cwd=old_code,
                          capture_output=True, text=True, timeout=600, env=wide_env())
    assert made.returncode == 0, made.stdout + made.stderr
    database = workdir / "data" / "trainer.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone() == ("1",)
        (old_run,) = connection.execute("SELECT run_id FROM training_runs").fetchone()
        before = {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("price_data", "trades", "model_performance", "model_promotion_history")}
    old_report = workdir / "reports" / old_run / "report.html"
    assert old_report.is_file()
    report_text = old_report.read_bytes()

    upgraded = run_program("run_training.py", "--demo", "--max-symbols", "3", "--config", config,
                           "--workdir", workdir, "--no-open", env=wide_env())
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    shown = flat(upgraded)
    assert "earlier release" in shown and "kept" in shown and "already in the cache" in shown
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone() == ("3",)
        runs = [row[0] for row in connection.execute("SELECT run_id FROM training_runs ORDER BY created_at")]
        assert runs[0] == old_run and len(runs) == 2
        for table, count in before.items():
            kept = connection.execute(f"SELECT COUNT(*) FROM {table} WHERE "
                                      + ("1" if table == "price_data" else "run_id = ?"),
                                      () if table == "price_data" else (old_run,)).fetchone()[0]
            assert kept == count, table
    assert old_report.read_bytes() == report_text
    assert (workdir / "checkpoints" / "archive" / old_run / "training_checkpoint.json").is_file()
