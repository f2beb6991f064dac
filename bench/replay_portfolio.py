"""Re-simulate a finished run's accounts with other [portfolio] settings, without retraining, and
show what the gate's portfolio criterion would say. Nothing is written.

    python bench/replay_portfolio.py --workdir DIR [--run RUN_ID] [--top 0.2] [--cost-bps 20]
                                     [--exits horizon] [--long-short]

It reads the run's samples, model artifacts and cached prices exactly as the portfolio phase
does (trainer.phases.portfolio.build_tables) and prints the holdout table; the notes use it to
choose the defaults on the demo, the random walk and the real data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import joblib  # noqa: E402
import pandas as pd  # noqa: E402

from trainer.config import flatten, load_config  # noqa: E402
from trainer.phases.portfolio import ENSEMBLE, build_tables, searched_trials, spy_level  # noqa: E402
from trainer.phases.training import BENCHMARK_RULE, BENCHMARK_VOL_ONLY, load_training_data  # noqa: E402
from trainer.promotion.gate import PORTFOLIO_CRITERION, decide, load_evidence  # noqa: E402

SHOWN = ("ensemble", "benchmark_equal_weight", "benchmark_spy", "benchmark_vol_only", "benchmark_rule",
         "benchmark_vol_matched")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--run")
    parser.add_argument("--top", type=float)
    parser.add_argument("--cost-bps", type=float)
    parser.add_argument("--exits", choices=("barriers", "horizon"))
    parser.add_argument("--long-short", action="store_true")
    args = parser.parse_args()
    connection = sqlite3.connect(f"file:{(args.workdir / 'data' / 'trainer.db').as_posix()}?mode=ro", uri=True)
    run_id = args.run or connection.execute(
        "SELECT run_id FROM training_runs WHERE finished_at IS NOT NULL ORDER BY created_at DESC").fetchone()[0]
    source, stored = connection.execute("SELECT source, config_json FROM training_runs WHERE run_id = ?",
                                        (run_id,)).fetchone()
    overrides = {key: value for key, value in flatten(json.loads(stored)).items() if not key.startswith("run.")}
    for key, value in (("portfolio.top", args.top), ("portfolio.cost_bps", args.cost_bps),
                       ("portfolio.exits", args.exits), ("portfolio.long_short", args.long_short or None)):
        if value is not None:
            overrides[key] = value
    config = load_config(None, overrides)
    data = load_training_data(connection, run_id, config)
    names = [*config.training.models, ENSEMBLE, BENCHMARK_VOL_ONLY, BENCHMARK_RULE]
    artifacts = {name: joblib.load(args.workdir / "checkpoints" / run_id / f"{name}.joblib") for name in names}
    closes = {}
    for symbol in sorted(set(data.dataset.symbols.tolist())):
        rows = connection.execute("SELECT date, close FROM price_data WHERE source = ? AND symbol = ? ORDER BY date",
                                  (source, symbol)).fetchall()
        dates, values = zip(*rows, strict=True)
        closes[symbol] = pd.Series(values, index=pd.DatetimeIndex(dates), dtype="float64")
    tables = build_tables(run_id, config, data, artifacts, closes, spy_level(connection, run_id),
                          searched_trials(connection, run_id))
    print(f"run {run_id}: {dataclasses.asdict(config.portfolio)}")
    print(f"{'strategy':<26}{'ann.ret':>9}{'Sharpe':>8}{'maxDD':>8}{'turn':>7}{'excess':>9}{'low':>8}{'high':>8}"
          f"{'DSR':>6}")
    for name in SHOWN:
        figures = tables.figures(name)
        if not figures:
            continue

        def show(key: str, pattern: str, width: int, figures: dict = figures) -> str:
            value = figures.get(key)
            return f"{'n/a' if value is None else pattern.format(value):>{width}}"

        print(f"{name:<26}" + show("annual_return", "{:+.1%}", 9) + show("sharpe", "{:.2f}", 8)
              + show("max_drawdown", "{:.1%}", 8) + show("turnover", "{:.1f}", 7)
              + show("excess_return", "{:+.1%}", 9) + show("excess_return_low", "{:+.1%}", 8)
              + show("excess_return_high", "{:+.1%}", 8) + show("dsr", "{:.2f}", 6))
    evidence = dataclasses.replace(load_evidence(connection, run_id), portfolio=tables.figures(ENSEMBLE))
    decision = decide(evidence, config.gate, horizon=config.labels.horizon, seed=config.seed)
    criterion = next(c for c in decision.criteria if c.name == PORTFOLIO_CRITERION)
    print(f"\n{'PASS' if criterion.passed else 'FAIL'} {criterion.name}: {criterion.message}")
    print(decision.summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
