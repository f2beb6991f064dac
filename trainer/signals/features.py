"""The features of one date for every symbol, with exactly the code the backtest uses.

Each symbol's prices are cut at the as-of date, the market context (proxy, sector indices,
regimes) is built from the universe's cut closes as the market phase builds it, and
backend.features.compute_features runs on the whole cut history; the as-of row is the last one.
Every feature is point in time, so this row equals the backtest's row for that date (a test
compares them on real data), and nothing after the as-of date can reach a signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.features import FEATURE_NAMES, compute_features
from backend.market import build_market


@dataclass(frozen=True)
class AsOfRows:
    """features: one FEATURE_NAMES row per usable symbol (index: symbol); close and sigma (the
    labels' volatility) at the as-of date; skipped: symbol -> why it has no signal."""

    as_of: pd.Timestamp
    features: pd.DataFrame
    close: pd.Series
    sigma: pd.Series
    skipped: dict[str, str]


def as_of_rows(prices: dict[str, pd.DataFrame], sectors: dict[str, str], proxy: pd.DataFrame | None,
               as_of: pd.Timestamp, *, shock_sigma: float, vol_window: int, min_history_days: int,
               market_symbols: list[str] | None = None, symbols: list[str] | None = None) -> AsOfRows:
    """market_symbols: whose closes make the market context (the model's training universe, so
    the market features mean what they meant in training); symbols: who gets a row (default:
    every symbol with prices)."""
    cut = {symbol: frame.loc[:as_of] for symbol, frame in prices.items()}
    wanted = set(cut) if symbols is None else set(symbols)
    in_market = set(cut) if market_symbols is None else set(market_symbols)
    skipped: dict[str, str] = {}
    usable = {}
    for symbol, frame in cut.items():
        if symbol not in wanted:
            continue
        if frame.empty:
            skipped[symbol] = f"no prices on or before {as_of.date()}"
        elif frame.index[-1] != as_of:
            skipped[symbol] = f"no price on {as_of.date()} (its last price is from {frame.index[-1].date()})"
        elif len(frame) < min_history_days:
            skipped[symbol] = (f"only {len(frame)} trading days of history up to {as_of.date()}; at least "
                               f"{min_history_days} are needed (data.min_history_days)")
        else:
            usable[symbol] = frame
    closes = {symbol: frame["close"] for symbol, frame in cut.items() if not frame.empty and symbol in in_market}
    if not closes:
        return AsOfRows(as_of, pd.DataFrame(columns=list(FEATURE_NAMES)), pd.Series(dtype=float),
                        pd.Series(dtype=float), skipped)
    market = build_market(closes, {symbol: sectors[symbol] for symbol in closes},
                          None if proxy is None else proxy["close"].loc[:as_of])
    rows, close, sigma = {}, {}, {}
    for symbol, frame in usable.items():
        features = compute_features(frame, market.market, market.sectors.get(sectors[symbol]), shock_sigma=shock_sigma)
        rows[symbol] = features.iloc[-1].to_numpy(dtype=np.float64)
        close[symbol] = float(frame["close"].iloc[-1])
        returns = np.log(frame["close"]).diff().iloc[-vol_window:]
        sigma[symbol] = float(returns.std(ddof=1)) if returns.notna().sum() == vol_window else float("nan")
    features = pd.DataFrame.from_dict(rows, orient="index", columns=list(FEATURE_NAMES))
    return AsOfRows(as_of, features, pd.Series(close), pd.Series(sigma), skipped)
