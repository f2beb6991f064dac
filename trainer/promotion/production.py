"""Copy a promoted ensemble into models/production without ever losing or half-writing a model.

The new model is written completely into a staging folder beside production first; only then is
the old production folder renamed to models/previous/<its run_id> and the staging folder renamed
into place. A crash while copying leaves the old production untouched; a crash between the two
renames leaves no production folder but both models intact (previous/ and the staging folder),
never a mixture of two models.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PREVIOUS = "previous"
STAGING_PREFIX = ".staging-"


class PromotionError(RuntimeError):
    """The production folder cannot be read or replaced; the message says what to do."""


def promote(run_id: str, artifacts_dir: Path, production_dir: Path, manifest: dict[str, Any]) -> Path:
    """Install artifacts_dir (base models, ensemble, benchmarks) as production with a manifest.

    manifest carries what the caller knows (feature list, config, metrics, data span); run_id,
    the promotion time and a sha256 per copied file are added so a reader can verify the copy.
    Returns the production folder.
    """
    artifacts_dir, production_dir = Path(artifacts_dir), Path(production_dir)
    if not artifacts_dir.is_dir():
        raise PromotionError(f"model artifacts folder {artifacts_dir} does not exist; "
                             "train the models before promoting")
    staging = production_dir.parent / f"{STAGING_PREFIX}{run_id}"
    if staging.exists():
        shutil.rmtree(staging)  # left by an earlier crash; production was never touched by it
    # A temp file left by a killed or disk-full write is not part of the model.
    shutil.copytree(artifacts_dir, staging, ignore=shutil.ignore_patterns("*.tmp"))
    files = {path.relative_to(staging).as_posix(): _sha256(path)
             for path in sorted(staging.rglob("*")) if path.is_file()}
    full_manifest = {**manifest, "run_id": run_id, "files": files,
                     "promoted_at": datetime.now(UTC).isoformat(timespec="seconds")}
    _write_durably(staging / MANIFEST, json.dumps(full_manifest, indent=2, sort_keys=True, default=str))
    if production_dir.exists():
        os.replace(production_dir, _previous_slot(production_dir))
    os.replace(staging, production_dir)
    return production_dir


def current_production(production_dir: Path) -> dict[str, Any] | None:
    """The production manifest, or None when nothing has been promoted yet."""
    path = Path(production_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PromotionError(f"{path} is not valid JSON ({error}); the production model cannot be "
                             "identified. Restore it from models/previous or promote a run again.") from error


def _previous_slot(production_dir: Path) -> Path:
    """models/previous/<old run_id>, with a numeric suffix if that run was promoted before."""
    old = current_production(production_dir) or {}
    name = str(old.get("run_id") or f"unknown-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    root = production_dir.parent / PREVIOUS
    root.mkdir(parents=True, exist_ok=True)
    slot, number = root / name, 1
    while slot.exists():
        number += 1
        slot = root / f"{name}-{number}"
    return slot


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_durably(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
