"""Bring the signals' prices up to date: only what is new, in a copy of the cache of their own.

The signals keep their rows under the training source's key plus '#live' ('yfinance#live',
'csv:/folder#live', 'demo:7#live'), so a signals run never changes the data of a training run
(which caches exactly its own date range) and training never removes the newer days.

- Downloads (yfinance) are incremental: a symbol without live rows starts from the training
  cache's copy; then only the days from its newest cached day on are asked for. That day is asked
  again on purpose: Yahoo rewrites the whole adjusted history after every dividend and split, so
  when the overlap day's adjusted close no longer matches the cache, the symbol's whole history
  is fetched again (and the log says so). A failure (rate limit, network) keeps what is cached;
  the symbol is retried on the next run.
- Files (CSV folders) are re-read when they changed (size and modification time) and only then.
- The demo market is extended by later days (the same path up to its training end).
Every new row goes through the same validation and quarantine as the training prices.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from backend import store
from backend.prices.base import PRICE_COLUMNS, FetchResult, PriceSource

log = logging.getLogger(__name__)
LIVE = "#live"
OVERLAP_TOLERANCE = 1e-6  # relative difference of the overlap day's adjusted close that means "rewritten"


def live_key(source_key: str) -> str:
    return source_key + LIVE


@dataclass
class PriceUpdate:
    prices: dict[str, pd.DataFrame]  # symbol -> PRICE_COLUMNS frame, oldest first
    refetched: list[str] = field(default_factory=list)  # whole history fetched again (adjustments changed)
    appended: dict[str, int] = field(default_factory=dict)  # symbol -> new rows
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> why (cached rows kept)


def update_prices(connection: sqlite3.Connection, source: PriceSource, symbols: list[str],
                  training_key: str) -> PriceUpdate:
    key = live_key(source.key)
    update = PriceUpdate({})
    if getattr(source, "incremental", False):
        _seed_from_training(connection, key, training_key, symbols)
        _incremental(connection, source, key, symbols, update)
    else:
        stamps = source.fingerprints(symbols)
        known = dict(connection.execute("SELECT symbol, fingerprint FROM price_fetches WHERE source = ? AND "
                                        "status = 'ok'", (key,)).fetchall())
        stale = [symbol for symbol in symbols if symbol not in known or known[symbol] != stamps.get(symbol)]
        for result in (source.fetch(stale, None, None) if stale else []):
            if result.error:
                update.failed[result.symbol] = result.error
                continue
            _replace(connection, key, result, stamps.get(result.symbol), source.is_demo)
            update.appended[result.symbol] = len(result.prices)
    for symbol in symbols:
        frame = load_live(connection, key, symbol)
        if frame is not None:
            update.prices[symbol] = frame
        elif symbol not in update.failed:
            update.failed[symbol] = "no prices are cached for it"
    return update


def load_live(connection: sqlite3.Connection, key: str, symbol: str) -> pd.DataFrame | None:
    frame = pd.read_sql_query(f"SELECT date, {', '.join(PRICE_COLUMNS)} FROM price_data WHERE source = ? AND "
                              "symbol = ? ORDER BY date", connection, params=[key, symbol])
    if frame.empty:
        return None
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.set_index("date").astype(np.float64)


def _seed_from_training(connection: sqlite3.Connection, key: str, training_key: str, symbols: list[str]) -> None:
    """A symbol without live rows starts from the training cache (no need to download it twice)."""
    have = {row[0] for row in connection.execute("SELECT DISTINCT symbol FROM price_data WHERE source = ?", (key,))}
    missing = [symbol for symbol in symbols if symbol not in have]
    if not missing or training_key == key:
        return
    with store.transaction(connection):
        for symbol in missing:
            connection.execute(
                f"INSERT OR IGNORE INTO price_data (source, symbol, date, {', '.join(PRICE_COLUMNS)}, is_demo) "
                f"SELECT ?, symbol, date, {', '.join(PRICE_COLUMNS)}, is_demo FROM price_data "
                "WHERE source = ? AND symbol = ?", (key, training_key, symbol))


def _incremental(connection: sqlite3.Connection, source: PriceSource, key: str, symbols: list[str],
                 update: PriceUpdate) -> None:
    newest = dict(connection.execute("SELECT symbol, MAX(date) FROM price_data WHERE source = ? GROUP BY symbol",
                                      (key,)).fetchall())
    full = [symbol for symbol in symbols if symbol not in newest]
    by_start: dict[str, list[str]] = {}
    for symbol in symbols:
        if symbol in newest:
            by_start.setdefault(newest[symbol], []).append(symbol)
    for start, group in sorted(by_start.items()):
        for result in source.fetch(group, start, None):
            if result.error:
                update.failed[result.symbol] = result.error
                continue
            cached = connection.execute("SELECT close FROM price_data WHERE source = ? AND symbol = ? AND date = ?",
                                        (key, result.symbol, start)).fetchone()
            overlap = result.prices["close"].get(pd.Timestamp(start))
            if cached is None or overlap is None or abs(overlap / cached[0] - 1.0) > OVERLAP_TOLERANCE:
                log.info("signals prices: %s: the adjusted close of %s changed (%s -> %s): the adjusted history "
                         "was rewritten (a dividend or split); fetching its whole history again",
                         result.symbol, start, None if cached is None else cached[0], overlap)
                full.append(result.symbol)
                continue
            new = result.prices[result.prices.index > pd.Timestamp(start)]
            _append(connection, key, result, new, source.is_demo)
            update.appended[result.symbol] = len(new)
    for result in (source.fetch(full, None, None) if full else []):
        if result.error:
            update.failed[result.symbol] = result.error
            continue
        _replace(connection, key, result, None, source.is_demo)
        if result.symbol in newest:
            update.refetched.append(result.symbol)
        update.appended[result.symbol] = len(result.prices)


def _append(connection: sqlite3.Connection, key: str, result: FetchResult, frame: pd.DataFrame,
            is_demo: bool) -> None:
    with store.transaction(connection):
        store.write_prices(connection, key, result.symbol, frame, is_demo)
        store.write_issues(connection, key, [issue for issue in result.issues
                                             if issue.date is None or issue.date > str(frame.index.min().date())])
        _record_fetch(connection, key, result.symbol, None, is_demo)


def _replace(connection: sqlite3.Connection, key: str, result: FetchResult, stamp: str | None, is_demo: bool) -> None:
    with store.transaction(connection):
        connection.execute("DELETE FROM price_data WHERE source = ? AND symbol = ?", (key, result.symbol))
        connection.execute("DELETE FROM data_issues WHERE source = ? AND symbol = ?", (key, result.symbol))
        store.write_issues(connection, key, result.issues)
        store.write_prices(connection, key, result.symbol, result.prices, is_demo)
        _record_fetch(connection, key, result.symbol, stamp, is_demo)


def _record_fetch(connection: sqlite3.Connection, key: str, symbol: str, stamp: str | None, is_demo: bool) -> None:
    rows = connection.execute("SELECT COUNT(*) FROM price_data WHERE source = ? AND symbol = ?",
                              (key, symbol)).fetchone()[0]
    store.write_rows(connection, "price_fetches", [{
        "source": key, "symbol": symbol, "status": "ok", "detail": None, "rows": rows, "is_demo": int(is_demo),
        "requested_start": None, "requested_end": None, "fingerprint": stamp,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}])
