"""Corporate and price events per symbol (dividends, splits, price shocks) and features from them.

Events are stored for the report and turned into point-in-time features: how many happened
recently and how long ago the last one was. A shock is judged against the volatility BEFORE the
move, so a crash cannot hide itself by inflating its own yardstick.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_KINDS = ("dividend", "split", "shock")
# Windows in trading days (rows), about a week, a month and a quarter; counting rows instead of
# calendar days keeps the windows exact rolling sums and independent of holidays.
EVENT_WINDOWS = (5, 21, 63)
SHOCK_LOOKBACK = 60
EVENT_FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{kind}_count_{window}d" for kind in EVENT_KINDS for window in EVENT_WINDOWS)
    + tuple(f"days_since_{kind}" for kind in EVENT_KINDS)
)


def detect_events(prices: pd.DataFrame, shock_sigma: float) -> pd.DataFrame:
    """Columns date, kind, value: dividend (cash amount), split (coefficient) and shock (the day's
    simple return, where |log return| > shock_sigma x the trailing 60-day sigma up to t-1)."""
    log_return = np.log(prices["close"]).diff()
    found = {
        "dividend": (prices["dividend"] > 0, prices["dividend"]),
        "split": (prices["split"].notna() & (prices["split"] != 1.0), prices["split"]),
        "shock": (log_return.abs() > shock_sigma * _sigma_before(log_return), prices["close"].pct_change()),
    }
    frames = [pd.DataFrame({"date": prices.index[mask.to_numpy()], "kind": kind,
                            "value": value[mask].to_numpy(dtype="float64")})
              for kind, (mask, value) in found.items()]
    events = pd.concat(frames, ignore_index=True)
    return events.sort_values(["date", "kind"], kind="stable", ignore_index=True)


def event_features(prices: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """For each kind: event counts over the last 5/21/63 rows (NaN until a full window exists, and
    for shocks until shocks are detectable) and rows since the last event (NaN before the first)."""
    rows = len(prices)
    position = np.arange(rows)
    at = prices.index.get_indexer(events["date"])
    detectable = _sigma_before(np.log(prices["close"]).diff()).notna()
    columns: dict[str, pd.Series] = {}
    since: dict[str, np.ndarray] = {}
    for kind in EVENT_KINDS:
        hit = np.zeros(rows, dtype=bool)
        hit[at[(events["kind"] == kind).to_numpy() & (at >= 0)]] = True
        flags = pd.Series(hit.astype("float64"), index=prices.index)
        if kind == "shock":
            flags = flags.where(detectable)
        for window in EVENT_WINDOWS:
            columns[f"{kind}_count_{window}d"] = flags.rolling(window, min_periods=window).sum()
        last = np.maximum.accumulate(np.where(hit, position, -1))
        since[f"days_since_{kind}"] = np.where(last >= 0, position - last, np.nan)
    frame = pd.DataFrame(columns | since, index=prices.index, dtype="float64")
    return frame[list(EVENT_FEATURE_NAMES)]


def _sigma_before(log_return: pd.Series) -> pd.Series:
    """Std of daily log returns over the SHOCK_LOOKBACK days ending at t-1."""
    return log_return.rolling(SHOCK_LOOKBACK, min_periods=SHOCK_LOOKBACK).std().shift(1)
