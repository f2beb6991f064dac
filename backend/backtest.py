"""One symbol's backtest: point-in-time features at the sampled entry dates and the triple-barrier
trade that labels each of them, plus the symbol's events and summary.

A pure function of its arguments (no database, no files), so it can run in a joblib worker
process; rows() turns the result into the store's per-symbol tables, written in one transaction
by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from backend.events import detect_events
from backend.features import compute_features
from backend.labels import BUY, HOLD, SELL, rows_needed, triple_barrier
from backend.market import MarketContext

LABEL_NAMES = (("buy", BUY), ("hold", HOLD), ("sell", SELL))


class InsufficientHistory(ValueError):
    """Too few price rows for one labelled sample; the message names the symbol and the counts."""


@dataclass
class SymbolBacktest:
    """features: indexed by entry date, FEATURE_NAMES columns. trades: triple_barrier's columns
    plus regime (the market regime at entry, NaN before it is known). events: detect_events."""

    symbol: str
    features: pd.DataFrame
    trades: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any]

    def rows(self, run_id: str, completed_at: str) -> dict[str, list[dict[str, Any]]]:
        """Table name -> rows for feature_store, trades, events and backtest_results."""
        key = {"run_id": run_id, "symbol": self.symbol}
        trades, events = self.trades, self.events
        vectors = self.features.to_numpy(dtype="<f8")
        return {
            "feature_store": _records(key, {"date": _iso(self.features.index),
                                            "features": [vector.tobytes() for vector in vectors]}),
            "trades": _records(key, {
                "entry_date": _iso(trades["entry_date"]), "exit_date": _iso(trades["exit_date"]),
                "exit_reason": trades["exit_reason"].tolist(),
                "realised_return": trades["realised_return"].tolist(), "label": trades["label"].tolist(),
                "regime": _none_if_missing(trades["regime"])}),
            "events": _records(key, {"date": _iso(events["date"]), "kind": events["kind"].tolist(),
                                     "value": events["value"].tolist()}),
            "backtest_results": [key | self.summary | {"completed_at": completed_at}],
        }


def backtest_symbol(symbol: str, prices: pd.DataFrame, market: MarketContext, sector: str, *,
                    horizon: int, barrier_k: float, vol_window: int, stride: int,
                    shock_sigma: float) -> SymbolBacktest:
    """Features and triple-barrier trades for one symbol's price frame (the price frame contract).
    Raises InsufficientHistory when not even one sample with a full horizon can be made."""
    needed = rows_needed(horizon=horizon, vol_window=vol_window)
    if len(prices) < needed:
        raise InsufficientHistory(
            f"{symbol} has {len(prices)} price rows; one labelled sample needs at least {needed} "
            f"(vol_window {vol_window} + horizon {horizon} + 1)")
    trades = triple_barrier(prices["close"], horizon=horizon, barrier_k=barrier_k,
                            vol_window=vol_window, stride=stride)
    entry = pd.DatetimeIndex(trades["entry_date"])
    regime = market.market["regime"].reindex(entry, method="ffill")
    trades = trades.assign(regime=regime.to_numpy())
    features = compute_features(prices, market.market, market.sectors.get(sector), shock_sigma=shock_sigma)
    return SymbolBacktest(symbol=symbol, features=features.loc[entry], trades=trades,
                          events=detect_events(prices, shock_sigma), summary=summarise(trades))


def summarise(trades: pd.DataFrame) -> dict[str, Any]:
    """The backtest_results columns: label counts and shares, average win and loss, date range of
    the samples (first and last entry date). Plain Python values, ready for SQLite."""
    count = len(trades)
    labels = trades["label"].value_counts()
    returns = trades["realised_return"]
    entries = _iso(trades["entry_date"])
    counts = {name: int(labels.get(value, 0)) for name, value in LABEL_NAMES}
    return {
        "trades": count,
        **counts,
        **{f"{name}_share": number / count for name, number in counts.items()},
        "avg_win": _mean_or_none(returns[returns > 0]),
        "avg_loss": _mean_or_none(returns[returns < 0]),
        "first_date": entries[0],
        "last_date": entries[-1],
    }


def _records(key: dict[str, Any], columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Column lists of plain Python values -> one dict per row, each starting with key."""
    return [key | dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _mean_or_none(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _none_if_missing(values: pd.Series) -> list[Any]:
    as_objects = values.astype(object)
    return as_objects.where(as_objects.notna(), None).tolist()


def _iso(dates: pd.Series | pd.Index) -> list[str]:
    return list(pd.DatetimeIndex(dates).strftime("%Y-%m-%d"))

