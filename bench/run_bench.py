"""Benchmark the whole program against DESIGN.md's performance budget, on this machine, now.

Every run happens in a fresh temporary work directory, as a subprocess started the way a user
starts it, so start-up and imports count. Because a shared or slow machine moves every figure, the
whole pipeline is also compared with a reference (load, ten features, one LightGBM model) measured
in the same bench run. Targets that are missed are reported, not raised: this is a measurement.
Exit code 0 when everything could be measured, 1 when the program itself failed.

    python bench/run_bench.py                      # everything: 10-25 minutes on 2 cores
    python bench/run_bench.py --quick --skip-real  # small universes, one model: a smoke run
    python bench/run_bench.py --config one.toml    # the pipeline with these settings, same reference
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from common import (
    REAL_DATA_DIR,
    REAL_UNIVERSE_NAME,
    TARGETS,
    PipelineRun,
    ProgramFailed,
    Report,
    completed_symbols,
    entry_command,
    open_database,
    progress,
    read_checkpoint,
    real_data_args,
    report_pipeline,
    require_success,
    run_pipeline,
    run_program,
    start_program,
    wait_until,
    write_fast_config,
)

QUICK_SYMBOLS = 10  # --quick: universes cut to this many symbols per demo seed, and one model
QUICK_MODEL = "random_forest"  # stayed quick on a busy machine, where OpenMP/BLAS models slowed 10-50x
SCALING_MODEL = "logistic_regression"  # one quick model, so that training stays small beside the backtest
RESUME_KILL_AFTER = 20  # symbols completed before the SIGKILL (3 with --quick)
STATUS_REPEATS = 5
SCALING_COPIES = 4  # demo seeds stacked into the large universe of the scaling test
# yfinance's CSV layout, which backend.prices.prepare.COLUMN_ALIASES reads: demo column -> header.
YFINANCE_HEADERS = {"date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                    "adj_close": "Adj Close", "volume": "Volume", "dividend": "Dividends", "split": "Stock Splits"}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=_positive, default=1, help="whole-pipeline runs per universe (median)")
    parser.add_argument("--reference-repeats", type=_positive, default=3,
                        help="reference runs per universe (median)")
    parser.add_argument("--skip-real", action="store_true", help="skip the 70 real symbols")
    parser.add_argument("--skip-demo", action="store_true",
                        help="skip the demo market: its pipeline, the resume and the check_checkpoint timings")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the 82 vs 328 symbol backtest")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--quick", action="store_true",
                       help=f"smoke run: {QUICK_SYMBOLS} symbols per universe and one quick model; the "
                            "figures are not the benchmark")
    shape.add_argument("--config", type=Path,
                       help="run the pipeline with this config file (fewer models, say); the reference "
                            "stays the same, so the ratio shows what that setting buys")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.config is not None and not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    return args


def label_settings() -> dict[str, object]:
    """The settings the pipeline samples and labels with, so the reference sees the same data size."""
    from trainer.config import DataConfig, LabelConfig

    settings = {"start": DataConfig().start, "stride": LabelConfig().stride, "horizon": LabelConfig().horizon}
    return {name: value for name, value in settings.items() if value is not None}


def price_file(folder: Path, symbol: str) -> Path:
    return next(path for suffix in (".csv.gz", ".csv") if (path := folder / f"{symbol}{suffix}").exists())


def write_demo_folder(folder: Path, copies: int, per_copy: int | None) -> list[Path]:
    """The demo generator's market as CSV files, `copies` seeds stacked (QVTL, QVTL_2, ...).

    Written in yfinance's layout because the CSV reader does not know the generator's own column
    names (adj_close, dividend, split). The first copy is the seed --demo uses, so the files of one
    copy hold exactly the data of a --demo run.
    """
    from backend.prices.demo_market import generate_market
    from trainer.config import DataConfig

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for copy in range(1, copies + 1):
        market = generate_market(DataConfig().demo_seed + copy - 1)
        for symbol, frame in list(market.items())[:per_copy]:
            path = folder / f"{symbol if copy == 1 else f'{symbol}_{copy}'}.csv"
            frame.rename(columns=YFINANCE_HEADERS)[list(YFINANCE_HEADERS.values())].to_csv(
                path, index=False, date_format="%Y-%m-%d")
            files.append(path)
    return files


def run_reference(files: list[Path], log_path: Path) -> dict[str, float]:
    """One reference run: its wall time (start-up included, as for the pipeline) and its steps."""
    options = [f"--{name}={value}" for name, value in label_settings().items()]
    run = require_success(run_program(entry_command("bench/reference.py", *options, *files), log_path),
                          "bench/reference.py")
    steps = json.loads(log_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    return {"wall_seconds": run.wall_seconds, **steps}


def bench_universe(report: Report, key: str, title: str, args: list[str], files: list[Path], root: Path,
                   repeats: int, reference_repeats: int) -> None:
    """Whole pipeline and reference, interleaved so that both see the same machine load."""
    report.section(key, title)
    pipelines: list[PipelineRun] = []
    references: list[dict[str, float]] = []
    for attempt in range(max(repeats, reference_repeats)):
        if attempt < reference_repeats:
            progress(f"reference run {attempt + 1} of {reference_repeats}")
            references.append(run_reference(files, root / f"{key}-reference-{attempt}.log"))
        if attempt < repeats:
            progress(f"pipeline run {attempt + 1} of {repeats}")
            pipelines.append(run_pipeline(args, root / f"{key}-run-{attempt}"))
    wall = report_pipeline(report, pipelines)
    reference_wall = median([reference["wall_seconds"] for reference in references])
    report.figure("reference wall (start-up included)", reference_wall, "s")
    for step in ("load", "features", "fit"):
        report.figure(f"reference {step}", median([reference[f"{step}_seconds"] for reference in references]), "s")
    report.figure("reference rows", references[0]["rows"], digits=0)
    report.figure("ratio pipeline / reference", wall / reference_wall, "x", target=TARGETS["reference_ratio"])
    report.note(f"medians of {repeats} pipeline and {reference_repeats} reference run(s)")


def committed_symbols(workdir: Path) -> int:
    """Symbols committed to SQLite: a kill between commit and checkpoint save leaves one more here
    than in the JSON, and the resumed run's reconcile lists it without doing any new work."""
    with open_database(workdir) as connection:
        return connection.execute("SELECT COUNT(*) FROM backtest_results").fetchone()[0]


def time_status(workdir: Path) -> float:
    """Median wall time of check_checkpoint.py --json, Python start-up included."""
    command = entry_command("check_checkpoint.py", "--workdir", workdir, "--json")
    seconds = []
    for _ in range(STATUS_REPEATS):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, check=False)
        seconds.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise ProgramFailed(f"check_checkpoint.py exited with code {result.returncode}:\n"
                                f"{result.stderr.decode(errors='replace')}")
    return median(seconds)


def stop(process: subprocess.Popen) -> None:
    """Ctrl+C-like stop (SIGTERM; the program saves its progress), a kill if it does not end."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bench_resume_and_status(report: Report, args: list[str], root: Path, kill_after: int) -> None:
    """SIGKILL a demo run mid-backtest, restart it, and time until it completes a new symbol;
    time check_checkpoint.py with no run and while the resumed run works."""
    workdir = root / "resume"
    command = entry_command("run_training.py", *args, "--workdir", workdir, "--no-open")
    first_log, resumed_log = workdir / "first.log", workdir / "resumed.log"
    progress(f"demo run until {kill_after} symbols are done, SIGKILL, check_checkpoint, restart")
    first = start_program(command, first_log)
    try:
        wait_until(lambda: completed_symbols(workdir) >= kill_after, first, f"{kill_after} completed symbols",
                   first_log)
    finally:
        first.kill()  # SIGKILL on POSIX: no chance to save anything, as in a crash
        first.wait()
    before = max(completed_symbols(workdir), committed_symbols(workdir))
    idle = time_status(workdir)
    started = time.perf_counter()
    resumed = start_program(command, resumed_log)
    try:
        wait_until(lambda: completed_symbols(workdir) > before, resumed, "a new completed symbol", resumed_log)
        resume_seconds = time.perf_counter() - started
        busy = time_status(workdir)
        phase = (read_checkpoint(workdir) or {}).get("current_phase")
        still_running = resumed.poll() is None
    finally:
        stop(resumed)
    report.section("resume", f"Resume after SIGKILL (demo, killed at >= {kill_after} completed symbols)")
    report.figure("symbols committed when killed", before, digits=0)
    report.figure("resume: process start to new symbol", resume_seconds, "s", target=TARGETS["resume"])
    report.section("check_checkpoint", f"check_checkpoint.py --json, start-up included (median of {STATUS_REPEATS})")
    report.figure("check_checkpoint, no run", idle, "s", target=TARGETS["check_checkpoint"], digits=3)
    report.figure("check_checkpoint, mid-run", busy, "s", target=TARGETS["check_checkpoint"], digits=3)
    report.note(f"mid-run timing taken while the resumed run was in phase {phase}"
                + ("" if still_running else "; it had finished by the end of the timing"))


def bench_scaling(report: Report, root: Path, per_copy: int | None) -> None:
    """Prices+market+backtest on one demo copy vs SCALING_COPIES copies: cost should grow linearly."""
    config = write_fast_config(root, SCALING_MODEL)
    runs = {}
    for copies in (1, SCALING_COPIES):
        folder = root / f"scaling-{copies}"
        progress(f"writing {copies} demo market(s) as CSV and running the pipeline on them")
        files = write_demo_folder(folder, copies, per_copy)
        run = run_pipeline(["--source", "csv", "--prices-dir", folder, "--config", config],
                           root / f"scaling-{copies}-run")
        runs[copies] = (len(files), run)
    (small, small_run), (large, large_run) = runs[1], runs[SCALING_COPIES]
    report.section("scaling", f"Scaling: {small} vs {large} symbols (demo seeds as CSV, one {SCALING_MODEL} model)")
    for symbols, run in runs.values():
        report.figure(f"{symbols} symbols: prices+market+backtest", run.data_seconds, "s")
        report.figure(f"{symbols} symbols: per symbol", run.data_seconds / run.symbols, "s/symbol",
                      target=TARGETS["backtest_per_symbol"], digits=3)
        report.figure(f"{symbols} symbols: whole run", run.wall_seconds, "s")
        report.figure(f"{symbols} symbols: peak RSS", run.peak_rss_mib, "MiB", target=TARGETS["peak_rss"], digits=0)
    report.figure(f"backtest ratio {large}/{small} symbols", large_run.data_seconds / small_run.data_seconds, "x",
                  target=TARGETS["scaling"])
    report.figure(f"whole-run ratio {large}/{small} symbols", large_run.wall_seconds / small_run.wall_seconds, "x")


def load_average() -> str:
    """The machine's load, printed beside the figures: they mean little on a busy machine."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def summarise(report: Report) -> None:
    judged = report.judged()
    counts = {verdict: sum(1 for *_, seen in judged if seen == verdict) for verdict in ("PASS", "MISS", "n/a")}
    print(f"\n== Targets: {counts['PASS']} PASS, {counts['MISS']} MISS, {counts['n/a']} n/a ==")
    for section, label, verdict in judged:
        if verdict != "PASS":
            print(f"   {verdict}: {section} / {label}")


def bench_real(report: Report, root: Path, extra: list[str], quick: bool, repeats: tuple[int, int]) -> None:
    """The 70 real symbols, when the shared data folder sits beside the repository."""
    universe = REAL_DATA_DIR / REAL_UNIVERSE_NAME
    if not universe.exists():
        print(f"\nReal market data not found at {REAL_DATA_DIR}: skipping the real-symbol benchmark.")
        return
    from backend.universe import load_universe

    symbols = [entry.symbol for entry in load_universe(universe)][: QUICK_SYMBOLS if quick else None]
    bench_universe(report, "real", f"Real market: {len(symbols)} symbols from {REAL_DATA_DIR}",
                   [*real_data_args(REAL_DATA_DIR), *extra], [price_file(REAL_DATA_DIR, symbol) for symbol in symbols],
                   root, *repeats)


def run_all(args: argparse.Namespace, report: Report, root: Path) -> None:
    per_copy = QUICK_SYMBOLS if args.quick else None
    extra = []
    if args.quick:
        extra = ["--max-symbols", str(QUICK_SYMBOLS), "--config", str(write_fast_config(root, QUICK_MODEL))]
    elif args.config is not None:
        extra = ["--config", str(args.config.resolve())]
    repeats = (args.repeats, args.reference_repeats)
    if not args.skip_real:
        bench_real(report, root, extra, args.quick, repeats)
    if not args.skip_demo:
        files = write_demo_folder(root / "demo-prices", 1, per_copy)
        bench_universe(report, "demo", f"Demo market: {len(files)} symbols", ["--demo", *extra], files, root,
                       *repeats)
        bench_resume_and_status(report, ["--demo", *extra], root, 3 if args.quick else RESUME_KILL_AFTER)
    if not args.skip_scaling:
        bench_scaling(report, root, per_copy)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = Report()
    print(f"Benchmark on {os.cpu_count()} CPU(s), load average {load_average()} (1, 5, 15 min)"
          + ("; QUICK smoke run: small universes and one model, not the benchmark" if args.quick else ""))
    report.notes["machine"] = [f"cpus {os.cpu_count()}", f"load at start {load_average()}"]
    if args.config is not None:
        print(f"Pipeline settings from {args.config.resolve()} (the reference and the scaling part are unchanged)")
        report.notes["config"] = [str(args.config.resolve()), args.config.read_text(encoding="utf-8")]
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as folder:
        try:
            run_all(args, report, Path(folder))
        except ProgramFailed as error:
            print(f"\nThe program failed, so the benchmark is incomplete:\n{error}", file=sys.stderr)
            return 1
    report.notes["machine"].append(f"load at end {load_average()}")
    print(f"\nLoad average at the end: {load_average()}")
    summarise(report)
    if args.json is not None:
        report.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
