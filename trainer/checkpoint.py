"""The JSON checkpoint: the source of truth for progress (SQLite is the source of truth for data).

Every save is atomic (temp file in the same folder, flush, fsync, os.replace) and keeps the
previous good copy as `.bak`, so a crash, reboot or kill during a save leaves either the old or
the new checkpoint, never half of one. A file that is corrupt anyway is recovered from `.bak` or
rebuilt from the database by the caller, which then says which it did.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.crash_points import crash_point

CHECKPOINT_VERSION = 3
CHECKPOINT_NAME = "training_checkpoint.json"

# Phases in pipeline order; `current_phase` is the first one not yet finished.
PHASES = ("prices", "market", "backtest", "dataset", "tuning", "training", "ensemble", "benchmarks", "evaluation",
          "portfolio", "shap", "promotion", "report", "complete")
_REQUIRED_KEYS = ("version", "run_id", "config_hash", "current_phase", "backtest", "training")


class CheckpointError(RuntimeError):
    """The checkpoint cannot be read; the message names the file and the problem."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_state(run_id: str, config_hash: str, identity: dict[str, Any], symbols_total: int,
              models_total: int, is_demo: bool) -> dict[str, Any]:
    """A fresh checkpoint for a new run (schema of DESIGN.md, extended with attempts and pace)."""
    created = now_iso()
    return {
        "version": CHECKPOINT_VERSION,
        "run_id": run_id,
        "config_hash": config_hash,
        "config": identity,
        "is_demo": is_demo,
        "created_at": created,
        "last_update": created,
        "current_phase": "prices",
        "active_seconds": 0.0,
        "backtest": {
            "symbols_total": symbols_total,
            "completed_symbols": [],
            "failed_symbols": {},  # symbol -> {"reason": str, "attempts": int}
            "skipped_symbols": {},  # symbol -> reason (not enough history; not retried)
            "total_samples": 0,
            "in_progress": None,
            "seconds_per_symbol": None,
        },
        "training": {
            "models_total": models_total,
            "base_models_trained": [],
            "in_progress": None,
            "model_seconds": {},
            "ensemble_trained": False,
            "ensemble_weights": {},
            "benchmarks_trained": False,
        },
        "tuning": {},  # model -> where its hyperparameter search stands (trainer/phases/tuning.py)
        "evaluation": {"completed": False, "results": {}},
        "portfolio": {"completed": False, "results": {}},
        "shap": {"completed": False},
        "promotion": {"decided": False, "decision": None},
        "report": {"path": None},
    }


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Parse and sanity-check one checkpoint file; CheckpointError says what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error
    if not text.strip():
        raise CheckpointError(f"{path} is empty (probably cut off by a crash during a write)")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
                              "it was probably truncated") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint object")
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    if state["version"] == 2:
        state = _from_version_2(state)
    if state["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}; this program "
                              f"reads version {CHECKPOINT_VERSION}")
    if state["current_phase"] not in PHASES:
        raise CheckpointError(f"{path} names an unknown phase {state['current_phase']!r}")
    wrong = [f"{section}.{key}" for section, keys in _SECTION_TYPES.items() for key, kind in keys.items()
             if not isinstance(state.get(section), dict) or not isinstance(state[section].get(key), kind)]
    if wrong:
        raise CheckpointError(f"{path} lacks or garbles {', '.join(wrong)}")
    return state


# What every reader of a checkpoint relies on, with its type; anything else is optional.
_SECTION_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "backtest": {"symbols_total": int, "completed_symbols": list, "failed_symbols": dict, "skipped_symbols": dict,
                 "total_samples": int},
    "training": {"models_total": int, "base_models_trained": list, "model_seconds": dict},
}


def _from_version_2(state: dict[str, Any]) -> dict[str, Any]:
    """Version 2 (first release) had a stacked 'meta_learner' phase where version 3 has 'ensemble'
    and 'benchmarks'. Only the names move, so the run's config check then says what changed."""
    if state["current_phase"] == "meta_learner":
        state["current_phase"] = "ensemble"
    training = state["training"]
    training["ensemble_trained"] = bool(training.pop("meta_learner_trained", False))
    training.setdefault("ensemble_weights", {})
    training.setdefault("benchmarks_trained", training["ensemble_trained"])
    state["version"] = CHECKPOINT_VERSION
    return state


def atomic_write_text(path: Path, text: str, *, attempts: int = 20, delay: float = 0.05) -> None:
    """Write via a temp file in the same folder, fsync, then os.replace.

    On Windows os.replace raises PermissionError while another process (check_checkpoint.py)
    has the target open, so it is retried briefly before giving up.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:  # a full disk: no half-written temp file is left behind
        temp.unlink(missing_ok=True)
        raise
    crash_point("checkpoint.temp_written")
    for attempt in range(attempts):
        try:
            os.replace(temp, path)
            break
        except PermissionError:
            if attempt == attempts - 1:
                temp.unlink(missing_ok=True)
                raise
            time.sleep(delay)
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable where the platform allows (POSIX); Windows cannot open dirs."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class LoadOutcome:
    """What load() found: the state (None if there is no checkpoint) and how it was obtained."""

    state: dict[str, Any] | None
    recovered_from: str | None = None  # None, "backup"
    problem: str | None = None  # why the main file was unusable


class CheckpointManager:
    """Owns checkpoints/training_checkpoint.json and its .bak."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINT_NAME
        self.backup_path = self.folder / (CHECKPOINT_NAME + ".bak")
        self.state: dict[str, Any] | None = None
        self._previous_text: str | None = None
        self._session_started = time.monotonic()
        self._active_base = 0.0

    def load(self) -> LoadOutcome:
        """Read the checkpoint; fall back to .bak when the main file is corrupt or truncated.

        When both are unusable the outcome has state None and a problem: the caller rebuilds
        from the database and says so.
        """
        try:
            state = read_checkpoint(self.path)
            outcome = LoadOutcome(state)
        except FileNotFoundError:
            if not self.backup_path.exists():
                return LoadOutcome(None)
            outcome = self._from_backup(f"{self.path} is missing")
        except CheckpointError as error:
            outcome = self._from_backup(str(error))
        self._adopt(outcome.state)
        return outcome

    def _from_backup(self, problem: str) -> LoadOutcome:
        try:
            return LoadOutcome(read_checkpoint(self.backup_path), "backup", problem)
        except (FileNotFoundError, CheckpointError):
            return LoadOutcome(None, None, problem)

    def start(self, state: dict[str, Any]) -> None:
        """Adopt a new or rebuilt state and save it."""
        self._adopt(state)
        self.save()

    def _adopt(self, state: dict[str, Any] | None) -> None:
        self.state = state
        self._previous_text = json.dumps(state, indent=2) if state is not None else None
        self._session_started = time.monotonic()
        self._active_base = float(state.get("active_seconds", 0.0)) if state else 0.0

    def active_seconds(self) -> float:
        """Working time summed over all sessions of this run (excludes time while not running)."""
        return self._active_base + (time.monotonic() - self._session_started)

    def save(self) -> None:
        """Persist the current state atomically, keeping the previous good copy as .bak."""
        if self.state is None:
            raise CheckpointError("no checkpoint state to save")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state["last_update"] = now_iso()
        self.state["active_seconds"] = round(self.active_seconds(), 3)
        text = json.dumps(self.state, indent=2, sort_keys=False)
        # The backup is the previous state this manager wrote or loaded, known to be good: the
        # file on disk is not trusted (a damaged main file must never become the backup).
        if self._previous_text is not None:
            atomic_write_text(self.backup_path, self._previous_text)
        atomic_write_text(self.path, text)
        self._previous_text = text

    def archive(self, run_id: str) -> Path:
        """Move the checkpoint and its backup to archive/<run_id>/ (a run this release cannot resume,
        kept for the record); return that folder."""
        target = self.folder / "archive" / run_id
        number = 1
        while target.exists():  # the same run archived again (settings A, B, A, B): keep every copy
            number += 1
            target = self.folder / "archive" / f"{run_id}-{number}"
        target.mkdir(parents=True)
        for candidate in (self.path, self.backup_path):
            if candidate.exists():
                os.replace(candidate, target / candidate.name)
        self.state, self._previous_text = None, None
        return target

    def delete(self) -> list[Path]:
        """Remove the checkpoint, its backup and stray temp files; return what was removed."""
        removed = []
        for candidate in [self.path, self.backup_path, *self.folder.glob(f".{CHECKPOINT_NAME}.*.tmp")]:
            if candidate.exists():
                candidate.unlink()
                removed.append(candidate)
        self.state = None
        return removed
