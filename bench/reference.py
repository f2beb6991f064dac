"""The reference for run_bench.py: the floor any such pipeline pays on this machine, right now.

Read the given price files with pandas, compute ten simple vectorised features per symbol and fit
one LightGBM model (fixed 200 rounds) on a sample every `stride` days labelled by the sign of the
`horizon`-day forward return. Measured in the same bench run as the pipeline, so that the ratio of
the two stays meaningful on a busy or a slow machine. Uses no project code on purpose.

Prints one JSON line: the seconds of each step and the size of the data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

# Header spellings of the layouts the bench feeds in: AlphaVantage (real folder), yfinance (demo).
DATE_COLUMNS = ("timestamp", "date")
PRICE_COLUMNS = ("adjusted_close", "adj_close", "close")  # first present wins: adjusted before raw
THREADS = 2  # as the product's models (trainer.ml.models.MAX_THREADS)
ROUNDS = 300  # as the issue that set the 8x target describes it


def load_prices(path: Path) -> pd.DataFrame:
    """date, close (adjusted when the file has it) and volume, oldest first."""
    table = pd.read_csv(path)
    table.columns = [str(column).strip().lower().replace(" ", "_") for column in table.columns]
    date = next(name for name in DATE_COLUMNS if name in table.columns)
    price = next(name for name in PRICE_COLUMNS if name in table.columns)
    frame = pd.DataFrame({"date": pd.to_datetime(table[date]), "close": table[price], "volume": table["volume"]})
    return frame.sort_values("date", ignore_index=True)


def features(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Ten trailing features and the forward-return label of one symbol, all vectorised."""
    close, volume = frame["close"], frame["volume"]
    daily = close.pct_change()
    table = pd.DataFrame({f"return_{days}": close.pct_change(days) for days in (1, 5, 20, 60)})
    for days in (20, 60):
        table[f"volatility_{days}"] = daily.rolling(days).std()
    for days in (20, 50, 200):
        table[f"sma_distance_{days}"] = close / close.rolling(days).mean() - 1
    table["volume_ratio_20"] = volume / volume.rolling(20).mean() - 1
    table["date"] = frame["date"]
    table["label"] = (close.shift(-horizon) > close).astype(np.int8)
    return table.iloc[: len(table) - horizon]  # the last rows have no forward return yet


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="price files (.csv or .csv.gz)")
    parser.add_argument("--start", help="first date used, as the pipeline's data.start")
    parser.add_argument("--stride", type=int, default=5, help="sample every N trading days (labels.stride)")
    parser.add_argument("--horizon", type=int, default=20, help="forward-return days (labels.horizon)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frames = [load_prices(path) for path in args.files]
    if args.start:
        frames = [frame[frame["date"] >= pd.Timestamp(args.start)].reset_index(drop=True) for frame in frames]
    loaded = time.perf_counter()
    samples = pd.concat([features(frame, args.horizon).iloc[:: args.stride] for frame in frames], ignore_index=True)
    X = samples.drop(columns=["date", "label"]).to_numpy(dtype=np.float64)
    y = samples["label"].to_numpy()
    computed = time.perf_counter()
    LGBMClassifier(n_estimators=ROUNDS, learning_rate=0.05, num_leaves=31, n_jobs=THREADS, deterministic=True,
                   force_row_wise=True, random_state=0, verbose=-1).fit(X, y)
    fitted = time.perf_counter()
    print(json.dumps({"files": len(frames), "rows": len(y), "features": X.shape[1],
                      "load_seconds": loaded - started, "features_seconds": computed - loaded,
                      "fit_seconds": fitted - computed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
