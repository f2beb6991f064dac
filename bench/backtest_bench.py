"""Time prices + market + backtest on the 70 real symbols, in-process and without any training.

Runs the pipeline's own data phases (trainer.pipeline.run_data_phases) on a fresh temporary work
directory, then reads what they stored: seconds per symbol against the 0.2 s budget, the label
shares and average win / loss of the triple-barrier trades, and the quarantined rows by kind, so
a faster backtest can be checked to still produce the same kind of samples.

    python bench/backtest_bench.py [--max-symbols N] [--jobs N] [--prices-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from common import REAL_DATA_DIR, REAL_UNIVERSE_NAME, TARGETS, Report, real_data_args

if TYPE_CHECKING:
    from trainer.run_context import RunContext

LABELS = {2: "BUY", 1: "HOLD", 0: "SELL"}  # trades.label, as in store.SCHEMA


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="backtest_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--prices-dir", type=Path, default=REAL_DATA_DIR,
                        help=f"folder of price files with its {REAL_UNIVERSE_NAME} (default: the shared real data)")
    parser.add_argument("--max-symbols", type=int, help="only the first N symbols (a quick check)")
    parser.add_argument("--jobs", type=int, help="parallel backtest workers (run.jobs; default 1)")
    return parser.parse_args(argv)


def report_figures(report: Report, context: RunContext, open_seconds: float, data_seconds: float) -> None:
    connection = context.connection
    backtest = context.state["backtest"]
    done, samples = len(backtest["completed_symbols"]), backtest["total_samples"]
    report.section("backtest", f"prices + market + backtest: {done} of {backtest['symbols_total']} symbols done, "
                               f"{len(backtest['skipped_symbols'])} skipped, {len(backtest['failed_symbols'])} failed")
    report.figure("open run (config, universe, database)", open_seconds, "s")
    report.figure("prices+market+backtest", data_seconds, "s")
    report.figure("per symbol", data_seconds / backtest["symbols_total"], "s/symbol",
                  target=TARGETS["backtest_per_symbol"], digits=3)
    report.figure("backtest loop per symbol (checkpoint)", backtest["seconds_per_symbol"], "s/symbol", digits=3)
    report.figure("samples", samples, digits=0)
    report.figure("samples per second", samples / data_seconds, "/s", digits=0)

    report.section("labels", "Triple-barrier labels (trades table)")
    counts = dict(connection.execute("SELECT label, COUNT(*) FROM trades GROUP BY label").fetchall())
    for code, name in LABELS.items():
        report.figure(f"{name} share", 100 * counts.get(code, 0) / samples, "%", digits=1)
    average_win, average_loss = connection.execute(
        "SELECT SUM(avg_win * trades) / SUM(CASE WHEN avg_win IS NULL THEN 0 ELSE trades END), "
        "SUM(avg_loss * trades) / SUM(CASE WHEN avg_loss IS NULL THEN 0 ELSE trades END) "
        "FROM backtest_results").fetchone()
    report.figure("average win (per symbol, trade-weighted)", 100 * average_win, "%", digits=2)
    report.figure("average loss (per symbol, trade-weighted)", 100 * average_loss, "%", digits=2)
    report.figure("win / |loss|", average_win / -average_loss, "x")

    report.section("quarantine", "Price rows quarantined (data_issues) by kind")
    issues = connection.execute("SELECT kind, COUNT(*), COUNT(DISTINCT symbol) FROM data_issues WHERE source = ? "
                                "GROUP BY kind ORDER BY kind", (context.source.key,)).fetchall()
    for kind, rows, symbols in issues:
        report.figure(f"{kind} ({symbols} symbols)", rows, "rows", digits=0)
    if not issues:
        report.note("no row was quarantined")
    if any(kind == "missing_volume" for kind, *_ in issues):
        report.note("missing_volume is one note per symbol, not a quarantined row: those rows are kept")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.prices_dir / REAL_UNIVERSE_NAME).exists():
        print(f"No price folder with {REAL_UNIVERSE_NAME} at {args.prices_dir}: nothing to benchmark.")
        return 0
    from trainer.app.cli import parse_run_options
    from trainer.app.logging_setup import setup_logging
    from trainer.paths import WorkPaths
    from trainer.pipeline import run_data_phases
    from trainer.run_context import open_run

    report = Report()
    with tempfile.TemporaryDirectory(prefix="trainer-backtest-bench-") as folder:
        run_argv = [*real_data_args(args.prices_dir), "--workdir", folder, "--no-open"]
        run_argv += ["--max-symbols", str(args.max_symbols)] if args.max_symbols else []
        run_argv += ["--jobs", str(args.jobs)] if args.jobs else []
        options = parse_run_options(run_argv)
        setup_logging(WorkPaths.at(options.workdir).logs)  # logs to the file, as run_training.py does
        started = time.perf_counter()
        context = open_run(options)
        opened = time.perf_counter()
        try:
            run_data_phases(context)
            report_figures(report, context, opened - started, time.perf_counter() - opened)
        finally:
            context.connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
