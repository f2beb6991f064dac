"""CheckpointManager: atomic saves, the .bak copy, and recovery from damaged files."""

from __future__ import annotations

import json
import os

import pytest

from trainer import checkpoint as checkpoint_module
from trainer.checkpoint import CheckpointError, CheckpointManager, new_state, read_checkpoint


def _state(run_id: str = "run-1") -> dict:
    return new_state(run_id, "abc123", {"labels.horizon": 20}, symbols_total=3, models_total=8, is_demo=True)


def test_save_then_load_round_trips_and_keeps_previous_copy_as_backup(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.start(_state())
    manager.state["backtest"]["completed_symbols"].append("AAA")
    manager.save()

    loaded = CheckpointManager(tmp_path).load()
    assert loaded.recovered_from is None
    assert loaded.state["backtest"]["completed_symbols"] == ["AAA"]
    backup = json.loads(manager.backup_path.read_text(encoding="utf-8"))
    assert backup["backtest"]["completed_symbols"] == []
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["", '{"version": 2, "run_id": "run-1", "config_h', "[1, 2]", "not json"])
def test_truncated_or_corrupt_checkpoint_is_recovered_from_backup(tmp_path, damage):
    manager = CheckpointManager(tmp_path)
    manager.start(_state())
    manager.state["backtest"]["completed_symbols"].append("AAA")
    manager.save()
    manager.path.write_text(damage, encoding="utf-8")

    outcome = CheckpointManager(tmp_path).load()
    assert outcome.recovered_from == "backup"
    assert outcome.problem
    assert outcome.state["run_id"] == "run-1"


def test_both_files_damaged_reports_the_problem_and_no_state(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.start(_state())
    manager.save()
    manager.path.write_text("{", encoding="utf-8")
    manager.backup_path.write_text("", encoding="utf-8")

    outcome = CheckpointManager(tmp_path).load()
    assert outcome.state is None
    assert "not valid JSON" in outcome.problem


def test_a_damaged_main_file_never_becomes_the_backup(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.start(_state())
    manager.state["backtest"]["completed_symbols"].append("AAA")
    manager.save()
    manager.path.write_text("garbage", encoding="utf-8")
    manager.state["backtest"]["completed_symbols"].append("BBB")
    manager.save()
    assert read_checkpoint(manager.backup_path)["backtest"]["completed_symbols"] == ["AAA"]
    assert read_checkpoint(manager.path)["backtest"]["completed_symbols"] == ["AAA", "BBB"]


def test_unknown_version_and_phase_are_rejected_with_the_file_named(tmp_path):
    path = tmp_path / "training_checkpoint.json"
    state = _state()
    state["version"] = 99
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(path)
    state["version"], state["current_phase"] = 2, "dancing"
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\") + ".*unknown phase"):
        read_checkpoint(path)


def test_replace_is_retried_while_another_process_holds_the_file(tmp_path, monkeypatch):
    """Windows raises PermissionError from os.replace while check_checkpoint has the file open."""
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(source, target):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise PermissionError("[WinError 5] Access is denied")
        real_replace(source, target)

    monkeypatch.setattr(checkpoint_module.os, "replace", flaky_replace)
    monkeypatch.setattr(checkpoint_module.time, "sleep", lambda _seconds: None)
    target = tmp_path / "file.json"
    checkpoint_module.atomic_write_text(target, '{"ok": true}')
    assert json.loads(target.read_text(encoding="utf-8")) == {"ok": True}
    assert calls["n"] == 3


def test_active_seconds_accumulate_across_sessions(tmp_path):
    manager = CheckpointManager(tmp_path)
    state = _state()
    state["active_seconds"] = 100.0
    manager.start(state)
    reloaded = CheckpointManager(tmp_path)
    reloaded.load()
    assert reloaded.active_seconds() >= 100.0
