"""reset_checkpoint.py: delete progress so the next run starts over (or retrains only).

It lists exactly what it will delete and asks first. The shared price cache is kept unless
--prices (re-downloading 82 symbols is slow and rate-limited); promoted production models,
reports and logs are always kept.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from backend import store
from trainer import console
from trainer.app import exit_codes
from trainer.app.run_lock import is_running, unwritable
from trainer.checkpoint import CheckpointManager
from trainer.paths import WorkPaths
from trainer.run_context import clear_training


def _row_counts(connection: sqlite3.Connection, tables: tuple[str, ...]) -> dict[str, int]:
    return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables}


def reset(workdir: Path | None, *, assume_yes: bool, phase: str | None, include_prices: bool) -> int:
    paths = WorkPaths.at(workdir)
    if (paths.checkpoints.exists() or paths.database.exists()) and unwritable(paths.checkpoints.parent):
        console.error(f"The work folder {paths.root} cannot be written ({unwritable(paths.checkpoints.parent)}), "
                      "so nothing can be reset there. Nothing was changed.")
        return exit_codes.CONFIG_ERROR
    if is_running(paths.checkpoints):
        console.error("A training run is active in this folder. Stop it first (Ctrl+C in its window), "
                      "then reset.")
        return exit_codes.ALREADY_RUNNING
    manager = CheckpointManager(paths.checkpoints)
    outcome = manager.load()
    try:
        connection = store.connect(paths.database) if paths.database.exists() else None
    except store.StoreError as error:
        console.error(f"{error} Nothing was reset: a damaged database is never deleted by this command, so "
                      "that it can still be inspected or restored from a backup.")
        return exit_codes.DATA_ERROR
    try:
        plan = _plan(paths, manager, outcome.state, connection, phase, include_prices)
        if not plan:
            console.info("Nothing to reset: no checkpoint and no saved run data.")
            return 0
        console.info("This will delete:")
        for line in plan:
            console.info(f"  {console.glyph('bullet')} {line}")
        console.info("Kept: promoted models in models/, reports/, logs/"
                     + ("" if include_prices else ", and the price cache (add --prices to delete it)") + ".")
        if not assume_yes and not _confirm():
            console.info("Nothing was deleted.")
            return 0
        _apply(paths, manager, outcome.state, connection, phase, include_prices)
    finally:
        if connection is not None:
            connection.close()
    console.info("Done. The next 'python run_training.py' starts "
                 + ("training again from the saved backtest." if phase == "training" else "from the beginning."))
    return 0


def _confirm() -> bool:
    try:
        answer = input("Continue? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _plan(paths: WorkPaths, manager: CheckpointManager, state: dict[str, Any] | None,
          connection: sqlite3.Connection | None, phase: str | None, include_prices: bool) -> list[str]:
    lines = []
    if phase == "training":
        if state is None:
            return []
        lines.append(f"models, evaluation, SHAP and gate results of run {state['run_id']} "
                     f"(and {paths.artifacts(state['run_id'])}); the backtest is kept, and so are the "
                     f"hyperparameter search's trials in {paths.tuning_database.name} (not redone on the same data)")
    else:
        files = [p for p in (manager.path, manager.backup_path, paths.tuning_database) if p.exists()]
        lines += [str(p) for p in files]
        lines += [str(p) for p in sorted(paths.checkpoints.glob("*")) if p.is_dir()]
        if connection is not None:
            counts = _row_counts(connection, store.RUN_TABLES)
            rows = sum(count for table, count in counts.items() if table != "model_promotion_history")
            if rows:
                lines.append(f"{rows:,} rows of run data in {paths.database} (backtest, features, models)")
    if include_prices and connection is not None:
        counts = _row_counts(connection, store.PRICE_TABLES)
        if sum(counts.values()):
            lines.append(f"the price cache: {counts['price_data']:,} price rows, "
                         f"{counts['data_issues']:,} quarantined-row records")
    return lines


def _apply(paths: WorkPaths, manager: CheckpointManager, state: dict[str, Any] | None,
           connection: sqlite3.Connection | None, phase: str | None, include_prices: bool) -> None:
    if phase == "training":
        assert state is not None and connection is not None
        clear_training(connection, state, paths.artifacts(state["run_id"]))
        manager.start(state)
    else:
        manager.delete()
        for suffix in ("", "-journal", "-wal", "-shm"):  # a journal left by a kill must not meet a new file
            paths.tuning_database.with_name(paths.tuning_database.name + suffix).unlink(missing_ok=True)
        for folder in paths.checkpoints.glob("*"):
            if folder.is_dir():
                shutil.rmtree(folder)
        if connection is not None:
            with store.transaction(connection):
                for table in store.RUN_TABLES:
                    if table != "model_promotion_history":
                        connection.execute(f"DELETE FROM {table}")
    if include_prices and connection is not None:
        with store.transaction(connection):
            for table in store.PRICE_TABLES:
                connection.execute(f"DELETE FROM {table}")
    if connection is not None:
        connection.execute("VACUUM")
