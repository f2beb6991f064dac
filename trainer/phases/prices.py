"""Prices phase: fetch what the cache lacks, store it validated, load what the run needs.

Each symbol's prices, quarantined rows and fetch outcome are written in one transaction, so a
resumed run never downloads a symbol again and never sees half a symbol.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from backend import store
from backend.prices.base import PRICE_COLUMNS, FetchResult
from trainer import console
from trainer.checkpoint import now_iso
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

PROXY_SYMBOL = "SPY"


def pending_symbols(context: RunContext) -> list[str]:
    """Universe symbols the backtest still has to do (not done, skipped or out of attempts)."""
    backtest = context.state["backtest"]
    done = set(backtest["completed_symbols"]) | set(backtest["skipped_symbols"])
    exhausted = {symbol for symbol, failure in backtest["failed_symbols"].items()
                 if failure["attempts"] >= context.config.run.max_attempts}
    return [symbol for symbol in context.symbols if symbol not in done and symbol not in exhausted]


def _cached_ok(context: RunContext, symbols: list[str], stamps: dict[str, str]) -> set[str]:
    """Symbols whose prices are cached from an 'ok' fetch of the same range and the same file version."""
    data = context.config.data
    rows = context.connection.execute(
        "SELECT symbol, fingerprint FROM price_fetches WHERE source = ? AND status = 'ok' "
        "AND requested_start IS ? AND requested_end IS ?", (context.source.key, data.start, data.end))
    return {symbol for symbol, stamp in rows if symbol in symbols and stamp == stamps.get(symbol)}


def _store_result(context: RunContext, result: FetchResult, stamp: str | None) -> None:
    data = context.config.data
    source_key, symbol = context.source.key, result.symbol
    with store.transaction(context.connection) as connection:
        connection.execute("DELETE FROM price_data WHERE source = ? AND symbol = ?", (source_key, symbol))
        connection.execute("DELETE FROM data_issues WHERE source = ? AND symbol = ?", (source_key, symbol))
        store.write_issues(connection, source_key, result.issues)
        rows = 0
        if result.prices is not None:
            rows = store.write_prices(connection, source_key, symbol, result.prices, context.source.is_demo)
        store.write_rows(connection, "price_fetches", [{
            "source": source_key, "symbol": symbol, "status": "failed" if result.error else "ok",
            "detail": result.error, "rows": rows, "is_demo": int(context.source.is_demo),
            "requested_start": data.start, "requested_end": data.end, "fingerprint": stamp,
            "fetched_at": now_iso()}])


class SourceUnreachable(RuntimeError):
    """The price source could not be reached at all (no network); nothing was counted against
    the symbols. The message says so once, with the reason."""


def fetch_missing(context: RunContext, wanted: list[str]) -> None:
    """Fetch every wanted symbol that has no cached outcome for this range (failures are retried).

    Raises SourceUnreachable after the fetch when the source could not be reached for some of
    them: what was fetched is kept (cached), the unreached symbols get no failed attempt."""
    stamps = context.source.fingerprints(wanted)
    cached = _cached_ok(context, wanted, stamps)
    to_fetch = [symbol for symbol in wanted if symbol not in cached]
    if not to_fetch:
        console.info(f"Prices: all {len(wanted)} symbols already in the cache.")
        return
    log.info("prices: fetching %d symbols from %s", len(to_fetch), context.source.key)
    with console.make_progress(console.get_console()) as progress:
        task = progress.add_task("Prices", total=len(to_fetch))
        unreached: list[FetchResult] = []
        for result in context.source.fetch(to_fetch, context.config.data.start, context.config.data.end):
            if result.unreachable:
                unreached.append(result)
                log.warning("prices: %s: source unreachable: %s", result.symbol, result.error)
                progress.advance(task)
                continue
            _store_result(context, result, stamps.get(result.symbol))
            if result.error:
                log.warning("prices: %s failed: %s", result.symbol, result.error)
                console.warn(f"{result.symbol}: {result.error}")
            elif result.issues:
                kinds = Counter(issue.kind for issue in result.issues)
                listed = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
                log.info("prices: %s: quarantined %s", result.symbol, listed)
                console.warn(f"{result.symbol}: data problems: {listed}; bad rows are left out "
                             "(details in the data_issues table and the report)")
            progress.advance(task)
    if unreached:
        fetched = len(to_fetch) - len(unreached)
        raise SourceUnreachable(f"{unreached[0].error} {len(unreached)} of {len(to_fetch)} symbols could not be "
                                f"fetched" + (f"; the other {fetched} are saved in the cache." if fetched else "."))


def failed_fetches(context: RunContext) -> dict[str, str]:
    """symbol -> reason for symbols whose last fetch for this range failed."""
    data = context.config.data
    rows = context.connection.execute(
        "SELECT symbol, detail FROM price_fetches WHERE source = ? AND status = 'failed' "
        "AND requested_start IS ? AND requested_end IS ?", (context.source.key, data.start, data.end))
    return dict(rows.fetchall())


def available_symbols(context: RunContext, symbols: list[str]) -> list[str]:
    """The given symbols whose prices for this range are in the cache, in the given order."""
    data = context.config.data
    rows = context.connection.execute(
        "SELECT symbol FROM price_fetches WHERE source = ? AND status = 'ok' AND requested_start IS ? "
        "AND requested_end IS ?", (context.source.key, data.start, data.end))
    cached = {row[0] for row in rows}
    return [symbol for symbol in symbols if symbol in cached]


def load_symbol(context: RunContext, symbol: str) -> pd.DataFrame | None:
    """One symbol's cached prices as a PRICE_COLUMNS frame (None if not cached).

    One symbol at a time (a primary-key range scan), so memory and time grow linearly with the
    universe and a resumed run starts its first symbol without reading all the others. It opens
    its own read-only connection: with --jobs, joblib asks for the next task from another thread,
    and a SQLite connection belongs to the thread that made it.
    """
    connection = store.connect(context.paths.database, readonly=True)
    try:
        frame = pd.read_sql_query(
            f"SELECT date, {', '.join(PRICE_COLUMNS)} FROM price_data WHERE source = ? AND symbol = ? "
            "ORDER BY date", connection, params=[context.source.key, symbol])
    finally:
        connection.close()
    if frame.empty:
        return None
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.set_index("date").astype(np.float64)


def proxy_prices(context: RunContext) -> pd.DataFrame | None:
    """SPY when the source has it (fetched like any symbol, not traded), else None."""
    if context.source.is_demo:
        return None
    if context.config.data.source == "csv" and PROXY_SYMBOL not in context.source.list_symbols():
        return None
    if PROXY_SYMBOL not in context.symbols:
        fetch_missing(context, [PROXY_SYMBOL])
    proxy = load_symbol(context, PROXY_SYMBOL)
    if proxy is None:
        console.warn(f"{PROXY_SYMBOL} is not available; the market proxy is the equal-weight index instead.")
    return proxy
