"""Run the whole pipeline on the 70 real symbols and show what training cost and what it bought.

Per base model its training time (fit_seconds: out-of-fold folds plus refit) beside its holdout
metrics, then the ensemble and the class-prior baseline, all from model_performance; then the
promotion gate's decision with every criterion. A speed-up that costs accuracy shows here.

    python bench/train_bench.py [--config fast.toml] [--max-symbols N] [--prices-dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import (
    REAL_DATA_DIR,
    REAL_UNIVERSE_NAME,
    ProgramFailed,
    Report,
    open_database,
    progress,
    real_run_args,
    report_pipeline,
    run_pipeline,
)
from holdout_table import latest_run, print_gate

# model_performance columns shown per model: (column, header, format).
COLUMNS = (
    ("fit_seconds", "fit s", "{:.1f}"),
    ("auc_directional", "AUC dir", "{:.4f}"),
    ("auc_ovr", "AUC ovr", "{:.4f}"),
    ("log_loss", "log loss", "{:.4f}"),
    ("brier", "Brier", "{:.4f}"),
    ("balanced_accuracy", "bal acc", "{:.4f}"),
    ("top_decile_return", "top-10% ret", "{:+.3%}"),
    ("all_mean_return", "all mean ret", "{:+.3%}"),
    ("n_samples", "n", "{:,}"),
)
SUMMARY_ROWS = ("ensemble", "baseline")  # after the base models, in this order


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--prices-dir", type=Path, default=REAL_DATA_DIR,
                        help=f"folder of price files with its {REAL_UNIVERSE_NAME} (default: the shared real data)")
    parser.add_argument("--config", type=Path, help="TOML overriding the defaults, e.g. fewer models for a quick check")
    parser.add_argument("--max-symbols", type=int, help="only the first N symbols (a quick check)")
    return parser.parse_args(argv)


def print_models(connection: sqlite3.Connection, base_models: Sequence[str]) -> None:
    """One line per base model (in training order), then the ensemble and the baseline."""
    cursor = connection.execute("SELECT model, " + ", ".join(column for column, *_ in COLUMNS) + " FROM "
                                "model_performance WHERE scope = 'holdout' AND segment = 'all'")
    rows = {row[0]: row[1:] for row in cursor.fetchall()}
    order = [model for model in (*base_models, *SUMMARY_ROWS) if model in rows]
    print("\n== Holdout metrics (model_performance, scope 'holdout'; top-10% ret: mean return of the top "
          "decile of BUY scores) ==")
    print(f"   {'model':<20}" + "".join(f"{header:>14}" for _, header, _ in COLUMNS))
    for model in order:
        values = zip(rows[model], (fmt for *_, fmt in COLUMNS), strict=True)
        cells = ["-" if value is None else fmt.format(value) for value, fmt in values]
        print(f"   {model:<20}" + "".join(f"{cell:>14}" for cell in cells))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run_args = real_run_args(args.prices_dir, args.config, args.max_symbols)
    if run_args is None:
        return 0
    report = Report()
    with tempfile.TemporaryDirectory(prefix="trainer-train-bench-") as folder:
        workdir = Path(folder)
        report.section("pipeline", f"Whole pipeline on {args.prices_dir}")
        progress("run_training.py " + " ".join(run_args))
        try:
            run = run_pipeline(run_args, workdir)
        except ProgramFailed as error:
            print(f"\nThe program failed:\n{error}", file=sys.stderr)
            return 1
        report_pipeline(report, [run])
        with open_database(workdir) as connection:
            print_models(connection, run.base_models)
            print_gate(connection, latest_run(connection), messages=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
