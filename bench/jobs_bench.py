"""Both cores busy: the whole pipeline on the 70 real symbols with --jobs 1 and then --jobs 2, one
after the other in this bench run, per phase, with the ratio, and a check that both stored the
same predictions (--jobs must never change a result).

    python bench/jobs_bench.py [--prices-dir DIR] [--config fast.toml] [--max-symbols N]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

from common import (
    REAL_DATA_DIR,
    ProgramFailed,
    open_database,
    progress,
    real_run_args,
    run_pipeline,
)

SHOWN = ("backtest", "tuning", "training", "benchmarks", "shap", "portfolio")


def predictions(connection: sqlite3.Connection) -> list[tuple]:
    return connection.execute("SELECT model, symbol, entry_date, p_sell, p_hold, p_buy FROM model_predictions "
                              "ORDER BY model, symbol, entry_date").fetchall()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jobs_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--prices-dir", type=Path, default=REAL_DATA_DIR)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--max-symbols", type=int)
    args = parser.parse_args(argv)
    run_args = real_run_args(args.prices_dir, args.config, args.max_symbols)
    if run_args is None:
        return 0
    runs, stored = {}, {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"trainer-jobs{jobs}-") as folder:
            progress(f"run_training.py {' '.join(run_args)} --jobs {jobs}")
            try:
                runs[jobs] = run_pipeline([*run_args, "--jobs", jobs], Path(folder))
            except ProgramFailed as error:
                print(f"\nThe program failed:\n{error}", file=sys.stderr)
                return 1
            with open_database(Path(folder)) as connection:
                stored[jobs] = predictions(connection)
    print(f"\n{'phase':<14}{'--jobs 1':>10}{'--jobs 2':>10}{'ratio':>8}")
    rows = [(phase, runs[1].phases.get(phase), runs[2].phases.get(phase)) for phase in SHOWN]
    rows.append(("whole (wall)", runs[1].wall_seconds, runs[2].wall_seconds))
    for phase, one, two in rows:
        if one is None or two is None:
            continue
        ratio = f"{two / one:.2f}" if one > 0.5 else "-"
        print(f"{phase:<14}{one:>9.1f}s{two:>9.1f}s{ratio:>8}")
    print(f"peak memory: {runs[1].peak_rss_mib or 0:.0f} MiB with --jobs 1, {runs[2].peak_rss_mib or 0:.0f} MiB "
          "with --jobs 2 (the run process; workers not counted)")
    same = stored[1] == stored[2] and len(stored[1]) > 0
    print(f"predictions identical: {same} ({len(stored[1]):,} rows)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
