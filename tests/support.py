"""Helpers for end-to-end tests: run the real entry points in subprocesses, read what they stored."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

# A small, fast configuration for end-to-end runs: two quick models, fewer bootstrap reps.
FAST_CONFIG = """
[training]
models = {models}

[gate]
bootstrap_reps = 100

[shap]
sample_rows = 300
"""


def write_fast_config(folder: Path, models: tuple[str, ...] = ("logistic_regression", "lightgbm")) -> Path:
    path = folder / "fast.toml"
    path.write_text(FAST_CONFIG.replace("{models}", json.dumps(list(models))), encoding="utf-8")
    return path


def program_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TRAINER_CRASH_AT"}
    env.update(extra)
    return env


def run_program(script: str, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600,
                input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run one of the three entry points as the user would, capturing its output.

    The default timeout is far above any run here (the small demo runs take 5-20 s): CI machines
    are shared, and a competing process makes the OpenMP boosters' spinning threads twice as slow
    (measured: lightgbm on 2,000 rows 0.64 s with two threads idle, 2.16 s beside one busy core).

    Python runs with -X faulthandler: if the program outlives `timeout`, SIGABRT makes it print
    every thread's stack before it dies, and the test fails with that stack and the whole output
    (a bare TimeoutExpired shows neither where it hung nor whether it was only slow)."""
    command = [sys.executable, "-X", "faulthandler", str(PROJECT_DIR / script), *map(str, args)]
    with subprocess.Popen(command, cwd=PROJECT_DIR, env=env or program_env(), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                          errors="replace") as process:
        try:
            stdout, stderr = process.communicate(input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(getattr(signal, "SIGABRT", signal.SIGTERM))
            try:
                stdout, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            raise AssertionError(f"{script} {' '.join(map(str, args))} still ran after {timeout:.0f} s; "
                                 f"its output:\n{stdout}\n--- stderr (with every thread's stack) ---\n"
                                 f"{stderr}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def start_program(script: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PROJECT_DIR / script), *map(str, args)], cwd=PROJECT_DIR,
                            env=env or program_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace")


def read_checkpoint(workdir: Path) -> dict | None:
    path = workdir / "checkpoints" / "training_checkpoint.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def database_snapshot(workdir: Path) -> dict[str, list[tuple]]:
    """Everything a run stored that must not depend on interruptions (timestamps left out)."""
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        queries = {
            "trades": "SELECT symbol, entry_date, exit_date, exit_reason, realised_return, label, regime "
                      "FROM trades ORDER BY symbol, entry_date",
            "features": "SELECT symbol, date, features FROM feature_store ORDER BY symbol, date",
            "summaries": "SELECT symbol, trades, buy, hold, sell, avg_win, avg_loss FROM backtest_results "
                         "ORDER BY symbol",
            "events": "SELECT symbol, date, kind, value FROM events ORDER BY symbol, date, kind",
            "market": "SELECT date, level, regime FROM market_data ORDER BY date",
            "performance": "SELECT model, scope, segment, n_samples, auc_ovr, auc_directional, log_loss, brier "
                           "FROM model_performance ORDER BY model, scope, segment",
            "predictions": "SELECT model, symbol, entry_date, p_sell, p_hold, p_buy FROM model_predictions "
                           "ORDER BY model, symbol, entry_date",
            "decisions": "SELECT decision FROM model_promotion_history ORDER BY id",
            "portfolio_daily": "SELECT strategy, date, nav, gross_return, net_return, exposure, turnover, costs "
                               "FROM portfolio_daily ORDER BY strategy, date",
            "portfolio_summary": "SELECT strategy, metric, value FROM portfolio_summary ORDER BY strategy, metric",
        }
        return {name: connection.execute(query).fetchall() for name, query in queries.items()}
    finally:
        connection.close()


def checkpoint_totals(state: dict) -> dict:
    backtest = state["backtest"]
    return {"phase": state["current_phase"], "completed": sorted(backtest["completed_symbols"]),
            "samples": backtest["total_samples"], "failed": backtest["failed_symbols"],
            "models": state["training"]["base_models_trained"],
            "ensemble": state["training"]["ensemble_trained"]}


# ---------------------------------------------------------------------------------------------
# Helpers for the end-to-end tests of bad inputs, config changes, damaged checkpoints, console
# encodings, parallel runs and the status/reset commands.
# ---------------------------------------------------------------------------------------------

CHECKPOINT_FILE = "training_checkpoint.json"
_SHARED_RUNS: dict[tuple, Path] = {}


def wide_env(**extra: str) -> dict[str, str]:
    """program_env with a wide console, so that rich does not fold long paths inside a message."""
    return program_env(COLUMNS="400", **extra)


def flat(result: subprocess.CompletedProcess) -> str:
    """stdout + stderr with every run of whitespace made one space: a message is found in one
    piece whatever the console's line wrapping."""
    return " ".join(f"{result.stdout}\n{result.stderr}".split())


def demo_args(workdir: Path, config: Path, symbols: int, *extra: str | Path) -> list[str | Path]:
    return ["--demo", "--max-symbols", str(symbols), "--config", config, "--workdir", workdir, "--no-open",
            *extra]


def shared_demo_run(tmp_path_factory, symbols: int, *extra: str) -> Path:
    """A finished demo run (fast config), made once per test session and shared by every module
    that asks for the same arguments. Treat it as read-only: copy_workdir() it to change anything."""
    key = (symbols, *extra)
    if key not in _SHARED_RUNS:
        workdir = tmp_path_factory.mktemp(f"shared-demo-{symbols}")
        config = write_fast_config(workdir)
        result = run_program("run_training.py", *demo_args(workdir, config, symbols, *extra))
        assert result.returncode == 0, result.stdout + result.stderr
        _SHARED_RUNS[key] = workdir
    return _SHARED_RUNS[key]


def copy_workdir(source: Path, target: Path) -> Path:
    """A private copy of a finished or interrupted work directory (database, checkpoint, models)."""
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.run.lock"))
    return target


def file_digests(workdir: Path) -> dict[str, str]:
    """sha256 of every file under data/ and checkpoints/ (the run lock aside, which holds a pid)."""
    import hashlib

    digests = {}
    for folder in ("data", "checkpoints"):
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_file() and path.name != ".run.lock":
                digests[str(path.relative_to(workdir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def query(workdir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def holds_run_lock(workdir: Path, process: subprocess.Popen) -> bool:
    """True once `process` holds the run lock: RunLock writes its pid into the lock file only after
    the OS lock is taken (probing the lock instead could itself make the starting run fail)."""
    try:
        return (workdir / "checkpoints" / ".run.lock").read_text(encoding="utf-8").strip() == str(process.pid)
    except FileNotFoundError:
        return False


def write_price_csv(path: Path, seed: int, rows: int, start: str = "2015-01-02"):
    """A random-walk price file in the yfinance layout (Date,Open,High,Low,Close,Adj Close,Volume),
    one row per business day, every row valid. Returns the pandas frame that was written."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 40.0 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, rows)))
    open_ = close * np.exp(rng.normal(0.0, 0.004, rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.01, rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.01, rows))
    frame = pd.DataFrame({
        "Date": pd.bdate_range(start, periods=rows).strftime("%Y-%m-%d"),
        "Open": open_.round(4), "High": high.round(4), "Low": low.round(4), "Close": close.round(4),
        "Adj Close": close.round(4), "Volume": rng.integers(100_000, 2_000_000, rows),
    })
    frame.to_csv(path, index=False)
    return frame


def shared_interrupted_run(tmp_path_factory, symbols: int = 3,
                           crash_at: str = "backtest.after_commit:2") -> Path:
    """A demo run (fast config) SIGKILLed at a crash point, made once per test session. With the
    default point the database holds two symbols and the checkpoint one (the second in progress).
    Treat it as read-only: copy_workdir() it before resuming or damaging it."""
    key = ("interrupted", symbols, crash_at)
    if key not in _SHARED_RUNS:
        workdir = tmp_path_factory.mktemp(f"shared-interrupted-{symbols}")
        config = write_fast_config(workdir)
        result = run_program("run_training.py", *demo_args(workdir, config, symbols),
                             env=program_env(TRAINER_CRASH_AT=crash_at))
        assert result.returncode == -getattr(signal, "SIGKILL", signal.SIGTERM), result.stdout + result.stderr
        _SHARED_RUNS[key] = workdir
    return _SHARED_RUNS[key]
