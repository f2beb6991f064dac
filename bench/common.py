"""What the bench scripts share: run the real entry points in subprocesses, read what a run stored,
and print each figure next to its target from DESIGN.md's performance budget.

The scripts are run as `python bench/<name>.py`, so Python puts bench/ (not the project) on
sys.path; this module adds the project so that `trainer` and `backend` import in the bench too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

REAL_DATA_DIR = PROJECT_DIR.parent / "shared" / "market-data" / "sp500-sample"
REAL_UNIVERSE_NAME = "constituents.csv"  # names and GICS sectors of the real symbols
MIB = 1024 * 1024
PHASE_LABELS = {"backtest": "prices+market+backtest"}  # run_data_phases is timed as one phase

# One quick base model and fewer bootstrap/SHAP rows: for smoke runs and runs timing the backtest only.
FAST_CONFIG = """\
[training]
models = ["{model}"]

[gate]
bootstrap_reps = 100

[shap]
sample_rows = 300
"""


class ProgramFailed(RuntimeError):
    """The program under measurement failed: the bench cannot report figures for it."""


@dataclass(frozen=True)
class Target:
    """An upper limit from the performance budget; a figure at or below it passes."""

    limit: float
    unit: str

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return "PASS" if value <= self.limit else "MISS"


TARGETS = {
    "backtest_per_symbol": Target(0.2, "s/symbol"),
    "pipeline": Target(180.0, "s"),
    "reference_ratio": Target(8.0, "x"),
    "peak_rss": Target(2048.0, "MiB"),
    "resume": Target(3.0, "s"),
    "check_checkpoint": Target(1.0, "s"),
    "scaling": Target(4.4, "x"),  # 4x the symbols: linear with 10 % slack
}


@dataclass
class Report:
    """Prints figures as they are measured and keeps them for --json, so both say the same."""

    figures: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    _section: str = "general"

    def section(self, key: str, title: str) -> None:
        self._section = key
        self.figures.setdefault(key, {})
        print(f"\n== {title} ==", flush=True)

    def note(self, text: str) -> None:
        self.notes.setdefault(self._section, []).append(text)
        print(f"   {text}", flush=True)

    def figure(self, label: str, value: float | None, unit: str = "", *, target: Target | None = None,
               digits: int = 2) -> None:
        shown = "n/a" if value is None else f"{value:,.{digits}f} {unit}".rstrip()
        line = f"   {label:<40} {shown:>18}"
        entry: dict[str, Any] = {"value": value, "unit": unit}
        if target is not None:
            verdict = target.verdict(value)
            line += f"   target <= {target.limit:g} {target.unit}   {verdict}"
            entry.update(limit=target.limit, verdict=verdict)
        self.figures[self._section][label] = entry
        print(line, flush=True)

    def judged(self) -> list[tuple[str, str, str]]:
        """(section, label, verdict) of every figure that has a target."""
        return [(section, label, entry["verdict"]) for section, figures in self.figures.items()
                for label, entry in figures.items() if "verdict" in entry]

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps({"figures": self.figures, "notes": self.notes}, indent=2), encoding="utf-8")


@dataclass(frozen=True)
class ProgramRun:
    wall_seconds: float
    returncode: int
    peak_rss_mib: float | None  # None where the OS does not report it (Windows)
    log_path: Path


def entry_command(script: str, *args: object) -> list[str]:
    """The command line of an entry point or bench script, run with this interpreter."""
    return [sys.executable, str(PROJECT_DIR / script), *map(str, args)]


def start_program(command: Sequence[str], log_path: Path) -> subprocess.Popen:
    """Start a child whose output goes to a file (a pipe nobody reads would stall it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def wait_with_peak_rss(process: subprocess.Popen) -> tuple[int, float | None]:
    """Exit code and peak RSS (MiB) of this one child and the descendants it waited for.

    os.wait4 returns the rusage of that child alone; getrusage(RUSAGE_CHILDREN) would be the
    maximum over every child this bench ever ran. ru_maxrss is KiB on Linux, bytes on macOS.
    """
    if not hasattr(os, "wait4"):
        return process.wait(), None
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024
    return process.returncode, usage.ru_maxrss * scale / MIB


def run_program(command: Sequence[str], log_path: Path) -> ProgramRun:
    """Run a child to the end and measure its wall time (start-up included) and peak memory."""
    started = time.perf_counter()
    process = start_program(command, log_path)
    returncode, peak = wait_with_peak_rss(process)
    return ProgramRun(time.perf_counter() - started, returncode, peak, log_path)


def log_tail(log_path: Path, lines: int = 25) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def require_success(run: ProgramRun, what: str) -> ProgramRun:
    if run.returncode != 0:
        raise ProgramFailed(f"{what} exited with code {run.returncode}; the end of its output "
                            f"({run.log_path}):\n{log_tail(run.log_path)}")
    return run


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str, log_path: Path,
               timeout: float = 900.0, interval: float = 0.01) -> None:
    """Poll until condition() holds. A child that exits first, or a timeout, is a failure."""
    started = time.perf_counter()
    while not condition():
        if process.poll() is not None:
            raise ProgramFailed(f"the program exited with code {process.returncode} before {what}:\n"
                                f"{log_tail(log_path)}")
        if time.perf_counter() - started > timeout:
            process.kill()
            process.wait()
            raise ProgramFailed(f"no {what} within {timeout:.0f} s:\n{log_tail(log_path)}")
        time.sleep(interval)


def read_checkpoint(workdir: Path) -> dict[str, Any] | None:
    """The run's JSON checkpoint, or None while there is none (it is replaced atomically)."""
    try:
        return json.loads((workdir / "checkpoints" / "training_checkpoint.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def completed_symbols(workdir: Path) -> int:
    state = read_checkpoint(workdir)
    return len(state["backtest"]["completed_symbols"]) if state else 0


@contextmanager
def open_database(workdir: Path) -> Iterator[sqlite3.Connection]:
    """The run's database, read-only, closed afterwards (an open file blocks deleting it on Windows)."""
    connection = sqlite3.connect(f"file:{(workdir / 'data' / 'trainer.db').as_posix()}?mode=ro", uri=True)
    try:
        yield connection
    finally:
        connection.close()


def phase_seconds(workdir: Path) -> dict[str, float]:
    """Seconds per phase, in pipeline order. The checkpoint's copy lacks the last phase (report):
    its time is set after the last checkpoint save, so the database fact fills it in."""
    state = read_checkpoint(workdir) or {}
    with open_database(workdir) as connection:
        row = connection.execute("SELECT value_json FROM run_facts WHERE key = 'phase_seconds'").fetchone()
    return {**(json.loads(row[0]) if row else {}), **state.get("phase_seconds", {})}


def write_fast_config(folder: Path, model: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fast-{model}.toml"
    path.write_text(FAST_CONFIG.format(model=model), encoding="utf-8")
    return path


def real_data_args(prices_dir: Path) -> list[str]:
    """Arguments for a run on the real folder, with its constituents file for names and sectors."""
    return ["--source", "csv", "--prices-dir", str(prices_dir), "--universe", str(prices_dir / REAL_UNIVERSE_NAME)]


def real_run_args(prices_dir: Path, config: Path | None, max_symbols: int | None) -> list[str] | None:
    """real_data_args plus an optional config and symbol limit; None (said) when the folder is missing."""
    if not (prices_dir / REAL_UNIVERSE_NAME).exists():
        print(f"No price folder with {REAL_UNIVERSE_NAME} at {prices_dir}: nothing to benchmark.")
        return None
    run_args = real_data_args(prices_dir)
    run_args += ["--config", str(config.resolve())] if config else []
    run_args += ["--max-symbols", str(max_symbols)] if max_symbols else []
    return run_args


@dataclass(frozen=True)
class PipelineRun:
    """The figures of one whole run_training.py run, from the process and what it stored."""

    wall_seconds: float
    peak_rss_mib: float | None
    phases: dict[str, float]
    symbols: int  # the universe: a skipped symbol costs its prices too
    symbols_done: int
    samples: int
    loop_seconds_per_symbol: float | None  # the backtest loop alone (checkpoint), prices excluded
    base_models: tuple[str, ...]  # in training order

    @property
    def data_seconds(self) -> float:
        """prices + market + backtest: the pipeline records them as one phase named backtest."""
        return self.phases.get("backtest", 0.0)

    @property
    def other_seconds(self) -> float:
        """Interpreter start-up, imports, opening the run and the verdict: outside every phase."""
        return self.wall_seconds - sum(self.phases.values())


def run_pipeline(args: Sequence[object], workdir: Path) -> PipelineRun:
    """run_training.py to the end in workdir; ProgramFailed if it does not complete."""
    command = entry_command("run_training.py", *args, "--workdir", workdir, "--no-open")
    run = require_success(run_program(command, workdir / "bench-output.log"), "run_training.py")
    state = read_checkpoint(workdir)
    if state is None:
        raise ProgramFailed(f"run_training.py completed but left no checkpoint in {workdir}")
    backtest = state["backtest"]
    return PipelineRun(run.wall_seconds, run.peak_rss_mib, phase_seconds(workdir), backtest["symbols_total"],
                       len(backtest["completed_symbols"]), backtest["total_samples"],
                       backtest.get("seconds_per_symbol"), tuple(state["training"]["base_models_trained"]))


def progress(text: str) -> None:
    """A line saying what runs now: the bench is silent for minutes otherwise (not a figure)."""
    print(f"   ... {text}", flush=True)


def report_pipeline(report: Report, runs: Sequence[PipelineRun]) -> float:
    """Per-phase and whole-run figures of one or more runs of the same universe (medians; the
    memory figure is the highest peak). Returns the median wall time."""
    for phase in runs[0].phases:
        report.figure(f"phase {PHASE_LABELS.get(phase, phase)}", median([run.phases[phase] for run in runs]), "s")
    report.figure("start-up and outside phases", median([run.other_seconds for run in runs]), "s")
    wall = median([run.wall_seconds for run in runs])
    data_seconds = median([run.data_seconds for run in runs])
    symbols, samples = runs[0].symbols, runs[0].samples
    report.figure("whole pipeline (wall)", wall, "s", target=TARGETS["pipeline"])
    report.figure("prices+market+backtest per symbol", data_seconds / symbols, "s/symbol",
                  target=TARGETS["backtest_per_symbol"], digits=3)
    loops = [run.loop_seconds_per_symbol for run in runs if run.loop_seconds_per_symbol is not None]
    report.figure("backtest loop per symbol (checkpoint)", median(loops) if loops else None, "s/symbol", digits=3)
    report.figure("symbols in the universe", symbols, digits=0)
    report.figure("symbols backtested", runs[0].symbols_done, digits=0)
    report.figure("samples", samples, digits=0)
    report.figure("backtest samples per second", samples / data_seconds, "/s", digits=0)
    report.figure("pipeline samples per second", samples / wall, "/s", digits=0)
    peaks = [run.peak_rss_mib for run in runs if run.peak_rss_mib is not None]
    report.figure("peak RSS (max over runs)", max(peaks) if peaks else None, "MiB", target=TARGETS["peak_rss"],
                  digits=0)
    return wall
