"""How the whole pipeline scales with the universe: demo markets of several sizes, one after the
other in this bench run, each in a fresh work folder, started as a user starts it.

    python bench/scale_bench.py [--symbols 82,500,2400] [--jobs 2] [--config fast.toml]

Prints per size: samples, seconds per phase, the whole wall time, and peak memory: the resident
set of the run process, and the run with its worker processes as the sum of their proportional
set sizes (PSS, shared pages counted once; sampled every half second from /proc; Linux only).
The targets of issue 14 (500 symbols: 15 minutes, 3 GB; 2,400 symbols: 8 GB) are shown beside
the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    ProgramFailed,
    ProgramRun,
    entry_command,
    phase_seconds,
    read_checkpoint,
    require_success,
    start_program,
    wait_with_peak_rss,
)

PHASES = ("backtest", "dataset", "tuning", "training", "ensemble", "benchmarks", "evaluation", "portfolio", "shap",
          "promotion", "report")
TARGETS = {500: (15 * 60, 3 * 1024), 2400: (None, 8 * 1024)}  # seconds, MiB


def _kib(path: str, field: str) -> int:
    with open(path, encoding="ascii") as lines:
        return next((int(line.split()[1]) for line in lines if line.startswith(field)), 0)


def tree_pss_mib(pid: int) -> float:
    """Proportional memory (PSS) of a process and all its descendants now: a page shared by k
    processes (the memory-mapped training matrix, the libraries) counts 1/k in each, so the sum
    is what the run takes from the machine. Falls back to the resident set where the kernel has
    no smaps_rollup; 0 when /proc is not there."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            try:
                total += _kib(f"/proc/{current}/smaps_rollup", "Pss:") / 1024
            except FileNotFoundError:
                total += _kib(f"/proc/{current}/status", "VmRSS:") / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run_size(symbols: int, jobs: int, config: Path | None,
             folder: Path) -> tuple[ProgramRun, float, dict[str, float]]:
    """The run, the peak PSS of it with its workers, and that peak per phase (the checkpoint's
    current phase at each sample: where the memory goes)."""
    args = ["--demo-symbols", symbols, "--jobs", jobs, "--workdir", folder, "--no-open"]
    args += ["--config", config.resolve()] if config else []
    started = time.perf_counter()
    process = start_program(entry_command("run_training.py", *args), folder / "bench-output.log")
    by_phase: dict[str, float] = {}

    def sample() -> None:
        while process.poll() is None:
            phase = (read_checkpoint(folder) or {}).get("current_phase", "start-up")
            by_phase[phase] = max(by_phase.get(phase, 0.0), tree_pss_mib(process.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode, main_peak = wait_with_peak_rss(process)
    sampler.join(timeout=2)
    run = ProgramRun(time.perf_counter() - started, returncode, main_peak, folder / "bench-output.log")
    run = require_success(run, f"run_training.py --demo-symbols {symbols}")
    return run, max(by_phase.values(), default=0.0), by_phase


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scale_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="82,500", help="comma-separated demo market sizes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for symbols in (int(part) for part in args.symbols.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"trainer-scale-{symbols}-") as folder:
            print(f"   ... run_training.py --demo-symbols {symbols} --jobs {args.jobs}", flush=True)
            try:
                run, tree_peak, by_phase = run_size(symbols, args.jobs, args.config, Path(folder))
            except ProgramFailed as error:
                print(f"\nThe program failed:\n{error}", file=sys.stderr)
                return 1
            state = read_checkpoint(Path(folder)) or {}
            rows.append((symbols, state.get("backtest", {}).get("total_samples", 0), phase_seconds(Path(folder)),
                         run.wall_seconds, run.peak_rss_mib, tree_peak))
            print(f"   {symbols} symbols, peak PSS of the run and its workers by phase (MiB): "
                  + ", ".join(f"{phase} {mib:,.0f}" for phase, mib in by_phase.items()), flush=True)
    shown = [phase for phase in PHASES if any(phases.get(phase, 0) >= 0.5 for _, _, phases, *_ in rows)]
    print(f"\n{'symbols':>8}{'samples':>10}" + "".join(f"{phase[:10]:>11}" for phase in shown)
          + f"{'whole':>9}{'run MiB':>9}{'all PSS':>9}  target")
    for symbols, samples, phases, wall, main_peak, tree_peak in rows:
        seconds, memory = TARGETS.get(symbols, (None, None))
        target = ", ".join(part for part in (f"<= {seconds / 60:.0f} min" if seconds else "",
                                             f"<= {memory / 1024:.0f} GB" if memory else "") if part)
        print(f"{symbols:>8}{samples:>10,}" + "".join(f"{phases.get(phase, 0.0):>10.1f}s" for phase in shown)
              + f"{wall:>8.0f}s{main_peak or 0:>9.0f}{tree_peak:>9.0f}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
