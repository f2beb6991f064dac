"""Helpers for end-to-end tests: run the real entry points in subprocesses, read what they stored."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

# A small, fast configuration for end-to-end runs: two quick models, fewer bootstrap reps.
FAST_CONFIG = """
[training]
models = ["logistic_regression", "lightgbm"]

[gate]
bootstrap_reps = 100

[shap]
sample_rows = 300
"""


def write_fast_config(folder: Path) -> Path:
    path = folder / "fast.toml"
    path.write_text(FAST_CONFIG, encoding="utf-8")
    return path


def program_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TRAINER_CRASH_AT"}
    env.update(extra)
    return env


def run_program(script: str, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300,
                input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run one of the three entry points as the user would, capturing its output."""
    return subprocess.run([sys.executable, str(PROJECT_DIR / script), *map(str, args)], cwd=PROJECT_DIR,
                          env=env or program_env(), capture_output=True, text=True, timeout=timeout,
                          input=input_text, encoding="utf-8", errors="replace")


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
        }
        return {name: connection.execute(query).fetchall() for name, query in queries.items()}
    finally:
        connection.close()


def checkpoint_totals(state: dict) -> dict:
    backtest = state["backtest"]
    return {"phase": state["current_phase"], "completed": sorted(backtest["completed_symbols"]),
            "samples": backtest["total_samples"], "failed": backtest["failed_symbols"],
            "models": state["training"]["base_models_trained"],
            "meta": state["training"]["meta_learner_trained"]}
