"""Print a finished run's simulated accounts after costs: every strategy's figures from
portfolio_summary, holdout first, then the out-of-fold period.

    python bench/portfolio_table.py --workdir DIR [--run RUN_ID] [--all]

--all adds the base models' own accounts (the Deflated Sharpe Ratio's trials). Reads the
database only; the notes on the issues quote its output.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

MAIN = ("ensemble", "benchmark_equal_weight", "benchmark_spy", "benchmark_vol_only", "benchmark_rule",
        "benchmark_vol_matched")
COLUMNS = (("annual_return", "ann.ret", "pct"), ("annual_volatility", "ann.vol", "pct"), ("sharpe", "Sharpe", "f2"),
           ("sortino", "Sortino", "f2"), ("max_drawdown", "maxDD", "pct"), ("calmar", "Calmar", "f2"),
           ("turnover", "turn/yr", "f1"), ("hit_rate", "hit", "pct"), ("exposure", "expo", "pct"),
           ("n_trades", "trades", "int"), ("costs", "costs", "pct"), ("excess_return", "excess/yr", "pct"),
           ("excess_return_low", "low", "pct"), ("excess_return_high", "high", "pct"), ("psr", "PSR", "f2"),
           ("dsr", "DSR", "f2"))


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return {"pct": f"{value:+.1%}", "f2": f"{value:.2f}", "f1": f"{value:.1f}", "int": f"{value:.0f}"}[kind]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--run")
    parser.add_argument("--all", action="store_true", help="also the base models' accounts")
    args = parser.parse_args()
    database = args.workdir / "data" / "trainer.db"
    if not database.is_file():
        print(f"No database at {database}.", file=sys.stderr)
        return 2
    connection = sqlite3.connect(f"file:{database.as_posix()}?mode=ro", uri=True)
    latest = connection.execute(
        "SELECT run_id FROM portfolio_summary GROUP BY run_id ORDER BY MAX(rowid) DESC LIMIT 1").fetchone()
    if latest is None and not args.run:
        print(f"No portfolio simulation in {database} yet (the portfolio phase has not run).", file=sys.stderr)
        return 2
    run_id = args.run or latest[0]
    values = {(strategy, metric): value for strategy, metric, value in connection.execute(
        "SELECT strategy, metric, value FROM portfolio_summary WHERE run_id = ?", (run_id,))}
    strategies = sorted({strategy for strategy, _ in values})
    print(f"run {run_id}")
    for suffix, title in (("", "holdout"), ("_oof", "out-of-fold (voting folds; less trustworthy)")):
        names = [name + suffix for name in MAIN if name + suffix in strategies]
        if args.all:
            names += [name for name in strategies if name.endswith(suffix) and name not in names
                      and (suffix or not name.endswith("_oof")) and name.removesuffix(suffix) not in MAIN]
        print(f"\n{title}")
        print(f"{'strategy':<30}" + "".join(f"{header:>10}" for _, header, _ in COLUMNS))
        for name in names:
            print(f"{name:<30}" + "".join(f"{_fmt(values.get((name, metric)), kind):>10}"
                                          for metric, _, kind in COLUMNS))
        for key, what in (("excess_vs_vol_only", "the volatility-only account"),
                          ("excess_vs_vol_matched", "its volatility twin")):
            if ("ensemble" + suffix, key) in values:
                print(f"ensemble{suffix} over {what}: {_fmt(values[('ensemble' + suffix, key)], 'pct')} a year "
                      f"[{_fmt(values.get(('ensemble' + suffix, key + '_low')), 'pct')}, "
                      f"{_fmt(values.get(('ensemble' + suffix, key + '_high')), 'pct')}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
