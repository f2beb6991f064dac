"""Print what a finished run measured: every model's holdout and out-of-fold scores, the ensemble's
weights, the benchmarks, every gate criterion with its interval, and each model's directional AUC
per walk-forward fold (the evidence for training.ensemble_min_train_years).

    python bench/holdout_table.py --workdir DIR [--run RUN_ID]

It reads the run's database and artifacts only; nothing is recomputed except the per-fold AUCs.
The notes on the issues quote its output, so before/after comparisons use one format.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import joblib  # noqa: E402
import numpy as np  # noqa: E402

from trainer.ml.metrics import evaluate  # noqa: E402


def latest_run(connection: sqlite3.Connection) -> str:
    row = connection.execute("SELECT run_id FROM training_runs ORDER BY created_at DESC LIMIT 1").fetchone()
    if row is None:
        raise SystemExit("No run in this work directory's database.")
    return row[0]


def _fmt(value: object, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def print_models(connection: sqlite3.Connection, run_id: str) -> None:
    rows = connection.execute(
        "SELECT model, scope, auc_directional, auc_ovr, log_loss, top_decile_return, fit_seconds "
        "FROM model_performance WHERE run_id = ? AND segment = 'all' AND scope IN ('holdout', 'cv')",
        (run_id,)).fetchall()
    table: dict[str, dict[str, tuple]] = {}
    for model, scope, *values in rows:
        table.setdefault(model, {})[scope] = tuple(values)
    print(f"{'model':<22}{'AUC dir':>9}{'AUC ovr':>9}{'log loss':>9}{'OOF dir':>9}{'OOF ll':>9}{'fit s':>8}")
    order = sorted(table, key=lambda m: (m in ("benchmark_vol_only", "benchmark_rule", "baseline"),
                                         m != "ensemble", -(table[m].get("holdout", (0,))[0] or 0)))
    for model in order:
        holdout = table[model].get("holdout", (None,) * 5)
        cv = table[model].get("cv", (None,) * 5)
        print(f"{model:<22}{_fmt(holdout[0]):>9}{_fmt(holdout[1]):>9}{_fmt(holdout[2]):>9}"
              f"{_fmt(cv[0]):>9}{_fmt(cv[2]):>9}{_fmt(holdout[4], 1):>8}")


def print_facts(connection: sqlite3.Connection, run_id: str) -> None:
    facts = dict(connection.execute("SELECT key, value_json FROM run_facts WHERE run_id = ?", (run_id,)))
    ensemble = json.loads(facts.get("ensemble", "{}"))
    if ensemble:
        weights = ", ".join(f"{m} {w:.2f}" for m, w in sorted(ensemble["weights"].items(), key=lambda i: -i[1])
                            if w > 0)
        print(f"\nensemble weights ({ensemble['metric']}, folds {ensemble['voting_folds']}, "
              f"{ensemble['voting_rows']} OOF rows, OOF score {ensemble['oof_score']:.4f}): {weights}")
    for key in ("benchmark_rule", "meta_coefficients"):
        if key in facts:
            print(f"{key}: {json.loads(facts[key])}")


def print_gate(connection: sqlite3.Connection, run_id: str, *, messages: bool = False) -> None:
    """The run's latest gate decision: each criterion's value, interval and threshold (and message)."""
    row = connection.execute("SELECT criteria_json FROM model_promotion_history WHERE run_id = ? "
                             "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    if row is None:
        print("\n(no gate decision)")
        return
    decision = json.loads(row[0])
    print(f"\ngate: {decision['summary']}")
    for criterion in decision["criteria"]:
        low, high = criterion.get("low"), criterion.get("high")
        interval = f"[{_fmt(low)}, {_fmt(high)}]" if low is not None else ""
        print(f"  {'PASS' if criterion['passed'] else 'FAIL'} {criterion['name']:<34}{_fmt(criterion['value']):>9} "
              f"{interval:<20} threshold {_fmt(criterion['threshold'])}")
        if messages:
            print(f"       {criterion['message']}")


def print_folds(connection: sqlite3.Connection, run_id: str, workdir: Path) -> None:
    """Directional AUC of each model's out-of-fold predictions, fold by fold."""
    split = json.loads(connection.execute("SELECT value_json FROM run_facts WHERE run_id = ? AND key = 'split'",
                                          (run_id,)).fetchone()[0])
    trades = connection.execute("SELECT entry_date, label, realised_return FROM trades WHERE run_id = ? "
                                "ORDER BY entry_date, symbol", (run_id,)).fetchall()
    dates = np.array([t[0] for t in trades])
    y = np.array([t[1] for t in trades])
    returns = np.array([t[2] for t in trades])
    folds = split["folds"]
    print("\nout-of-fold directional AUC per fold (training window in years)")
    spans = []
    for fold in folds:
        start, end = np.datetime64(fold["train"]["start"]), np.datetime64(fold["train"]["end"])
        spans.append(float((end - start).astype(int)) / 365.25)
    print(f"{'model':<22}" + "".join(f"{f'fold {i + 1} ({s:.1f}y)':>16}" for i, s in enumerate(spans)))
    for path in sorted((workdir / "checkpoints" / run_id).glob("*.joblib")):
        artifact = joblib.load(path)
        oof = artifact.get("oof") if isinstance(artifact, dict) else None
        if oof is None:
            continue
        cells = []
        for fold in folds:
            rows = (dates >= fold["validation"]["start"]) & (dates <= fold["validation"]["end"]) & \
                ~np.isnan(oof[:, 0])
            cells.append(evaluate(y[rows], oof[rows], returns[rows])["auc_directional"] if rows.any() else None)
        print(f"{path.stem:<22}" + "".join(f"{_fmt(c):>16}" for c in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--run", help="run id (default: the newest)")
    parser.add_argument("--no-folds", action="store_true", help="skip the per-fold table (loads artifacts)")
    args = parser.parse_args()
    connection = sqlite3.connect(args.workdir / "data" / "trainer.db")
    run_id = args.run or latest_run(connection)
    print(f"run {run_id}")
    print_models(connection, run_id)
    print_facts(connection, run_id)
    print_gate(connection, run_id)
    if not args.no_folds:
        print_folds(connection, run_id, args.workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
