"""Promotion keeps the previous production model and never leaves a half-written one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer.promotion import production as promotion
from trainer.promotion.production import PromotionError, current_production, promote


def _artifacts(root: Path, run_id: str) -> Path:
    folder = root / "checkpoints" / run_id
    (folder / "base").mkdir(parents=True)
    for name in ("lightgbm", "xgboost"):
        (folder / "base" / f"{name}.joblib").write_bytes(f"{run_id}-{name}".encode())
    (folder / "ensemble.joblib").write_bytes(f"{run_id}-ensemble".encode())
    return folder


def _manifest(run_id: str) -> dict:
    return {"features": ["ret_20", "vol_20"], "config": {"seed": 42}, "metrics": {"auc_directional": 0.55},
            "data_span": {"first_date": "2005-01-03", "last_date": "2024-12-31"}, "base_models": ["lightgbm"],
            "note": run_id}


def test_promote_writes_artifacts_and_manifest(tmp_path):
    production = tmp_path / "models" / "production"
    assert current_production(production) is None
    path = promote("run1", _artifacts(tmp_path, "run1"), production, _manifest("run1"))
    assert path == production
    manifest = current_production(production)
    assert manifest["run_id"] == "run1" and manifest["features"] == ["ret_20", "vol_20"]
    assert manifest["data_span"]["last_date"] == "2024-12-31" and manifest["promoted_at"]
    assert set(manifest["files"]) == {"base/lightgbm.joblib", "base/xgboost.joblib", "ensemble.joblib"}
    assert (production / "base" / "lightgbm.joblib").read_bytes() == b"run1-lightgbm"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["production"]  # no staging left


def test_promoting_twice_keeps_the_first_as_previous(tmp_path):
    production = tmp_path / "models" / "production"
    promote("run1", _artifacts(tmp_path, "run1"), production, _manifest("run1"))
    promote("run2", _artifacts(tmp_path, "run2"), production, _manifest("run2"))
    assert current_production(production)["run_id"] == "run2"
    previous = tmp_path / "models" / "previous" / "run1"
    assert current_production(previous)["run_id"] == "run1"
    assert (previous / "ensemble.joblib").read_bytes() == b"run1-ensemble"
    assert (production / "ensemble.joblib").read_bytes() == b"run2-ensemble"
    # the same run promoted again does not overwrite its earlier copy in previous/
    promote("run1", tmp_path / "checkpoints" / "run1", production, _manifest("run1"))
    promote("run3", _artifacts(tmp_path, "run3"), production, _manifest("run3"))
    kept = sorted(p.name for p in (tmp_path / "models" / "previous").iterdir())
    assert kept == ["run1", "run1-2", "run2"]


def test_crash_mid_copy_leaves_old_production_intact(tmp_path, monkeypatch):
    production = tmp_path / "models" / "production"
    promote("run1", _artifacts(tmp_path, "run1"), production, _manifest("run1"))
    before = {p.relative_to(production): p.read_bytes() for p in production.rglob("*") if p.is_file()}
    copied = []

    def crash_after_first_file(source, destination, *args, **kwargs):
        if copied:
            raise OSError("disk full")
        copied.append(source)
        return shutil.copy2(source, destination)

    monkeypatch.setattr(promotion.shutil, "copytree", _copytree_with(crash_after_first_file))
    with pytest.raises(OSError, match="disk full"):
        promote("run2", _artifacts(tmp_path, "run2"), production, _manifest("run2"))
    assert len(copied) == 1  # it really stopped half-way through the copy
    after = {p.relative_to(production): p.read_bytes() for p in production.rglob("*") if p.is_file()}
    assert after == before and current_production(production)["run_id"] == "run1"
    assert not (tmp_path / "models" / "previous").exists()
    monkeypatch.undo()
    promote("run2", tmp_path / "checkpoints" / "run2", production, _manifest("run2"))  # the retry cleans up
    assert current_production(production)["run_id"] == "run2"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["previous", "production"]


def _copytree_with(copy_function):
    """shutil.copytree using copy_function for files (its recursive calls pass arguments by position)."""
    real = shutil.copytree

    def copytree(source, destination, *args, **kwargs):
        if args:
            return real(source, destination, *args, **kwargs)
        return real(source, destination, copy_function=copy_function, **kwargs)

    return copytree


def test_missing_artifacts_and_corrupt_manifest_are_clear_errors(tmp_path):
    production = tmp_path / "models" / "production"
    with pytest.raises(PromotionError, match="does not exist"):
        promote("run1", tmp_path / "nothing", production, {})
    production.mkdir(parents=True)
    (production / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PromotionError, match="not valid JSON"):
        current_production(production)


def test_a_leftover_temp_file_is_not_part_of_the_promoted_model(tmp_path):
    """Issue 15, case 7: a half-written '.<name>.<pid>.tmp' from a full disk was copied and listed."""
    artifacts = _artifacts(tmp_path, "run1")
    (artifacts / ".svm.joblib.4242.tmp").write_bytes(b"half")
    production = promote("run1", artifacts, tmp_path / "models" / "production", _manifest("run1"))
    assert not list(production.rglob("*.tmp"))
    assert not any(name.endswith(".tmp") for name in current_production(production)["files"])
