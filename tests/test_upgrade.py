"""A work folder of the first release opens in this one: its checkpoint reads, its run is kept.

The first release wrote checkpoint version 2 with a stacked 'meta_learner' phase, and labelled
with barriers symmetric in simple returns. Such a run can never be resumed (its labels are no
longer made), and resetting would delete it, so opening the folder archives the checkpoint and
starts a new run beside the old one: price cache, past runs and promoted model stay as they were.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from backend import store
from trainer.checkpoint import CHECKPOINT_VERSION, CheckpointManager, read_checkpoint
from trainer.options import RunOptions
from trainer.run_context import open_run

# What the first release wrote at the end of a demo run (trimmed to the keys that matter).
FIRST_RELEASE_STATE = {
    "version": 2, "run_id": "20261201-223537-30cdcda5", "config_hash": "30cdcda5aaaaaaaa",
    "config": {"labels.horizon": 20, "labels.barrier_k": 1.5, "gate.min_directional_auc": 0.52},
    "is_demo": True, "created_at": "2026-12-01T22:35:37+00:00", "last_update": "2026-12-01T22:38:40+00:00",
    "current_phase": "meta_learner", "active_seconds": 183.0,
    "backtest": {"symbols_total": 2, "completed_symbols": ["AAA"], "failed_symbols": {}, "skipped_symbols": {},
                 "total_samples": 3, "in_progress": None, "seconds_per_symbol": 0.1},
    "training": {"models_total": 8, "base_models_trained": ["random_forest"], "in_progress": None,
                 "model_seconds": {"random_forest": 9.5}, "meta_learner_trained": False},
    "evaluation": {"completed": False, "results": {}}, "shap": {"completed": False},
    "promotion": {"decided": False, "decision": None}, "report": {"path": None},
}


def _write_first_release_folder(workdir):
    folder = workdir / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "training_checkpoint.json").write_text(json.dumps(FIRST_RELEASE_STATE), encoding="utf-8")
    connection = _first_release_database(workdir / "data" / "trainer.db")
    run_id = FIRST_RELEASE_STATE["run_id"]
    with store.transaction(connection):
        store.write_rows(connection, "price_data", [{
            "source": "demo:7", "symbol": "AAA", "date": "2020-01-02", "open": 1.0, "high": 1.0, "low": 1.0,
            "close": 1.0, "volume": 10.0, "raw_close": 1.0, "dividend": 0.0, "split": 1.0, "is_demo": 1}])
        store.write_rows(connection, "model_promotion_history", [{
            "run_id": "earlier", "decided_at": "2026-11-30T10:00:00+00:00", "criteria_json": "{}",
            "decision": "promoted", "production_path": "models/production"}])
        store.write_rows(connection, "training_runs", [{
            "run_id": run_id, "config_hash": FIRST_RELEASE_STATE["config_hash"], "config_json": "{}",
            "source": "demo:7", "is_demo": 1, "created_at": FIRST_RELEASE_STATE["created_at"]}])
        store.write_rows(connection, "trades", [
            {"run_id": run_id, "symbol": "AAA", "entry_date": f"2020-01-0{day}", "exit_date": "2020-01-20",
             "exit_reason": "time", "realised_return": 0.01, "label": 1, "regime": None} for day in (2, 3, 6)])
    connection.close()
    models = workdir / "models" / "production"
    models.mkdir(parents=True)
    (models / "manifest.json").write_text(json.dumps({"run_id": "earlier"}), encoding="utf-8")


def _first_release_database(path) -> sqlite3.Connection:
    """What the first release's store made: its schema script (unchanged since, as version 1's base)
    and schema version 1."""
    path.parent.mkdir(parents=True)
    connection = sqlite3.connect(path)
    connection.executescript(store.SCHEMA)
    with connection:
        connection.execute("INSERT INTO schema_info VALUES ('version', '1')")
    return connection


def test_a_first_release_database_is_migrated_with_everything_it_held(tmp_path):
    workdir = tmp_path / "work"
    _write_first_release_folder(workdir)
    database = workdir / "data" / "trainer.db"
    connection = store.connect(database)
    try:
        assert store.schema_version(connection) == store.SCHEMA_VERSION == 3
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"portfolio_daily", "portfolio_summary", "signals", "signal_outcomes"} <= tables
        for table, rows in (("price_data", 1), ("model_promotion_history", 1), ("trades", 3), ("training_runs", 1)):
            assert connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == rows, table
    finally:
        connection.close()
    again = store.connect(database)  # idempotent: nothing runs twice
    assert store.schema_version(again) == 3
    again.close()


def test_a_migration_that_fails_leaves_the_database_at_its_old_version(tmp_path, monkeypatch):
    database = tmp_path / "data" / "trainer.db"
    _first_release_database(database).close()
    broken = (4, "broken", "CREATE TABLE half_done (x INTEGER); CREATE TABLE half_done (x INTEGER)")
    monkeypatch.setattr(store, "MIGRATIONS", (*store.MIGRATIONS, broken))
    monkeypatch.setattr(store, "SCHEMA_VERSION", 4)
    with pytest.raises(store.StoreError, match="upgraded to schema version 4 .broken.*unchanged .still version 3"):
        store.connect(database)
    connection = sqlite3.connect(database)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert store.schema_version(connection) == 3 and "half_done" not in tables and "signals" in tables
    connection.close()


def test_a_database_from_a_newer_release_is_refused_by_name(tmp_path):
    database = tmp_path / "data" / "trainer.db"
    connection = _first_release_database(database)
    with connection:
        connection.execute("UPDATE schema_info SET value = '99'")
    connection.close()
    with pytest.raises(store.StoreError, match="newer version"):
        store.connect(database)


def test_a_version_2_checkpoint_reads_with_the_new_phase_names(tmp_path):
    path = tmp_path / "training_checkpoint.json"
    path.write_text(json.dumps(FIRST_RELEASE_STATE), encoding="utf-8")
    state = read_checkpoint(path)
    assert state["version"] == CHECKPOINT_VERSION
    assert state["current_phase"] == "ensemble"
    assert state["training"]["ensemble_trained"] is False and "meta_learner_trained" not in state["training"]
    assert state["training"]["base_models_trained"] == ["random_forest"]


def test_opening_a_first_release_folder_keeps_its_run_and_starts_a_new_one(tmp_path):
    workdir = tmp_path / "work"
    _write_first_release_folder(workdir)
    options = RunOptions(workdir=workdir, config_path=None, source="demo", prices_dir=None, universe=None,
                         max_symbols=2, start=None, end=None, jobs=None, allow_sleep=False, open_report=False)
    context = open_run(options)
    try:
        old = FIRST_RELEASE_STATE["run_id"]
        assert context.run_id != old and context.state["current_phase"] == "prices"
        assert any("earlier release" in notice and "kept" in notice for notice in context.notices)
        archived = workdir / "checkpoints" / "archive" / old / "training_checkpoint.json"
        assert json.loads(archived.read_text(encoding="utf-8"))["run_id"] == old
        runs = {row[0] for row in context.connection.execute("SELECT run_id FROM training_runs")}
        assert runs == {old, context.run_id}
        assert context.connection.execute("SELECT COUNT(*) FROM trades WHERE run_id = ?", (old,)).fetchone()[0] == 3
    finally:
        context.connection.close()
    assert json.loads((workdir / "models" / "production" / "manifest.json").read_text()) == {"run_id": "earlier"}
    # The new run's checkpoint is the current one; opening again resumes it, no second archive.
    assert CheckpointManager(workdir / "checkpoints").load().state["run_id"] == context.run_id
    again = open_run(options)
    try:
        assert again.run_id == context.run_id and not any("earlier release" in n for n in again.notices)
    finally:
        again.connection.close()
