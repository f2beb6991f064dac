"""check_checkpoint.py --signals: the live track record of every model version that made signals.

Unlike the progress view this reads the database (read-only): the signals, their scored
outcomes, the manifests' holdout promises and, for the drift check, each model's training
features.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from backend import store
from trainer import console
from trainer.paths import WorkPaths
from trainer.promotion.production import current_production
from trainer.signals.track_record import VersionRecord, record_json, track_record, training_features


def show_signal_record(workdir: Path | None, *, as_json: bool) -> int:
    paths = WorkPaths.at(workdir)
    if not paths.database.exists():
        console.info(f"No database in {paths.root}: no signals have been made there yet. "
                     "Train a model, then run: python generate_signals.py")
        return 0
    connection = store.connect(paths.database, readonly=True)
    try:
        if store.schema_version(connection) < 3 or not connection.execute("SELECT 1 FROM signals LIMIT 1").fetchone():
            console.info("No signals have been made in this folder yet. Run: python generate_signals.py")
            return 0
        promises = _promises(connection, paths)
        records = track_record(connection, promises, lambda version: training_features(connection, version))
    finally:
        connection.close()
    if as_json:
        print(record_json(records))
        return 0
    for record in records:
        _render(record)
    return 0


def _promises(connection: sqlite3.Connection, paths: WorkPaths) -> dict[str, dict[str, Any]]:
    """version -> the holdout's promise: from the production manifest, and for any other version
    (an older production or a candidate) recomputed from its run's stored holdout predictions."""
    from trainer.signals.model import build_manifest

    promises: dict[str, dict[str, Any]] = {}
    production = current_production(paths.production) or {}
    if production.get("holdout_promise"):
        promises[str(production["run_id"])] = production["holdout_promise"]
    for (version,) in connection.execute("SELECT DISTINCT model_version FROM signals"):
        run_id = str(version).removesuffix("-candidate")
        if version in promises:
            continue
        row = connection.execute("SELECT config_json, is_demo, source FROM training_runs WHERE run_id = ?",
                                 (run_id,)).fetchone()
        if row is not None:
            manifest = build_manifest(connection, run_id, json.loads(row[0]), ensemble_weights={}, metrics={},
                                      is_demo=bool(row[1]), source=row[2])
            promises[str(version)] = manifest["holdout_promise"]
    return promises


def _render(record: VersionRecord) -> None:
    def pct(value: Any) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    def ret(value: Any) -> str:
        return "n/a" if value is None else f"{value:+.2%}"

    auc = "n/a (fewer than 20 matured BUY/SELL outcomes)" if record.auc is None else (
        f"{record.auc:.3f}" + ("" if record.auc_low is None else f" [{record.auc_low:.3f}, {record.auc_high:.3f}]"))
    rows = [("Signals made", str(record.signals)), ("Matured and scored", str(record.matured)),
            ("Directional AUC (live)", auc)]
    for action in ("BUY", "SELL"):
        live = record.actions.get(action) or {}
        promised = record.promise.get(action.lower()) or {}
        rows.append((f"{action} signals: hit rate / mean return",
                     f"live {pct(live.get('hit_rate'))} / {ret(live.get('mean_return'))} over {live.get('n', 0)}; "
                     f"holdout promised {pct(promised.get('hit_rate'))} / {ret(promised.get('mean_return'))}"))
    rows.append(("Alarms", "; ".join(record.drift) or "none"))
    marker = " (NOT PROMOTED)" if record.model_version.endswith("-candidate") else ""
    console.print_table(f"Track record of model {record.model_version}{marker}", ["Item", "Value"], rows)
    for alarm in record.drift:
        console.warn(f"{record.model_version}: {alarm}")
