"""Prices from Yahoo Finance through yfinance, in batches, with retries for network trouble.

yfinance.download catches each ticker's exception itself and only logs it (an empty column block
comes back instead), so a rate limit would look like a delisted symbol. This source listens to
yfinance's log during each download to tell the two apart: a rate limit or network failure is
retried with exponential backoff, an unknown symbol becomes that symbol's error at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pandas as pd
import yfinance
from yfinance.exceptions import YFRateLimitError

from backend.prices.base import DataIssue, FetchResult, PriceSource
from backend.prices.prepare import PriceFormatError, prepare_prices, standardise_columns, within_dates

# Exceptions worth another try: Yahoo's rate limit, and network errors (requests and curl_cffi
# both derive theirs from OSError).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (YFRateLimitError, OSError)
# The same, as yfinance writes them into its log ("['AAPL']: YFRateLimitError('Too Many ...')").
_TRANSIENT_TEXT = re.compile(r"rate ?limit|too many requests|connection|timeout|timed out|curl|"
                             r"currently down|temporar", re.IGNORECASE)
_LOGGED_FAILURE = re.compile(r"^\[(?P<tickers>[^\]]*)\]: (?P<message>.*)$", re.DOTALL)
# What yfinance logs (as warnings or errors, in its own words) when Yahoo cannot be reached at all;
# the per-ticker line it logs after that ("possibly delisted; no timezone found") is then a lie.
_UNREACHABLE_TEXT = re.compile(r"could not resolve host|dnserror|name or service not known|network is unreachable|"
                               r"failed to establish a new connection|connection refused|no route to host|"
                               r"failed to connect to|could not connect to server", re.IGNORECASE)


class YFinanceSource(PriceSource):
    """max_retries: further attempts, after the first, for the symbols a rate limit or a network
    failure hit; the waits before them are backoff_seconds * 1, 2, 4, ... (sleep is injectable so
    tests do not wait)."""

    key = "yfinance"
    #: a download can ask for the new days only (generate_signals updates its cache that way)
    incremental = True

    def __init__(self, max_daily_move: float, batch_size: int = 20, max_retries: int = 3,
                 backoff_seconds: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        if batch_size < 1 or max_retries < 0:
            raise ValueError(f"batch_size must be >= 1 and max_retries >= 0 "
                             f"(got {batch_size}, {max_retries})")
        self.max_daily_move = max_daily_move
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def fetch(self, symbols: list[str], start: str | None, end: str | None) -> Iterator[FetchResult]:
        unique = list(dict.fromkeys(symbols))
        for first in range(0, len(unique), self.batch_size):
            yield from self._fetch_batch(unique[first: first + self.batch_size], start, end)

    def _fetch_batch(self, batch: list[str], start: str | None, end: str | None) -> Iterator[FetchResult]:
        """Results as soon as they are known; symbols hit by a transient failure are asked again."""
        pending, reason, offline = batch, "", False
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                frame, failures, unreachable = _download(pending, start, end)
            except TRANSIENT_ERRORS as error:
                reason = f"{type(error).__name__}: {error}"
                offline = _UNREACHABLE_TEXT.search(reason) is not None
                continue
            except Exception as error:  # a yfinance bug or a Yahoo format change: no retry helps
                for symbol in pending:
                    yield FetchResult(symbol, None, error=(
                        f"yfinance failed for {symbol} ({type(error).__name__}: {error}); try updating "
                        "yfinance (pip install -U yfinance) or use --source csv"))
                return
            retry = []
            offline = unreachable is not None
            for symbol in pending:
                failure = failures.get(symbol.upper())
                rows = _symbol_rows(frame, symbol, single=len(pending) == 1)
                if rows is None and unreachable is not None:
                    retry.append(symbol)
                    reason = unreachable
                elif rows is None and failure is not None and _TRANSIENT_TEXT.search(failure):
                    retry.append(symbol)
                    reason = failure
                else:
                    yield self._result(symbol, rows, failure, start, end)
            pending = retry
            if not pending:
                return
        for symbol in pending:
            if offline:
                yield FetchResult(symbol, None, unreachable=True, error=(
                    f"Yahoo could not be reached ({reason}). Check the internet connection, then run again: "
                    "symbols already fetched are kept, and this does not count as a failed attempt."))
                continue
            yield FetchResult(symbol, None, error=(
                f"Yahoo did not answer for {symbol} after {self.max_retries + 1} attempts ({reason}). Check "
                "the internet connection or wait a few minutes (Yahoo limits requests), then run again: "
                "symbols already fetched are kept."))

    def _result(self, symbol: str, rows: pd.DataFrame | None, failure: str | None,
                start: str | None, end: str | None) -> FetchResult:
        if rows is None:
            said = f": Yahoo said {failure}" if failure else ""
            return FetchResult(symbol, None, error=(
                f"no data returned by Yahoo for {symbol} (delisted or wrong symbol?){said}. Check the symbol "
                "on finance.yahoo.com or remove it from the universe."))
        origin = f"Yahoo data for {symbol}"
        try:
            table = standardise_columns(rows.rename_axis("date").reset_index(), origin)
            raw = within_dates(table, start, end)
            if raw.empty:
                return FetchResult(symbol, None, error=(
                    f"Yahoo has no prices for {symbol} between {start or 'the start'} and {end or 'today'}. "
                    "Widen data.start/data.end or remove the symbol from the universe."))
            result = prepare_prices(raw, symbol, origin, self.max_daily_move)
        except PriceFormatError as error:
            return FetchResult(symbol, None, error=f"{error} (has Yahoo's response format changed? try "
                                                   "updating yfinance: pip install -U yfinance)")
        if failure:
            result.issues.append(DataIssue(symbol, None, "source_warning",
                                           f"{origin}: yfinance logged {failure}"))
        return result


def _download(symbols: list[str], start: str | None,
              end: str | None) -> tuple[pd.DataFrame | None, dict[str, str], str | None]:
    """One yfinance.download call, the per-ticker failures it logged (UPPER ticker -> message) and
    the first sign that Yahoo could not be reached at all (None if there was none).
    Yahoo's `end` is exclusive, the contract's is inclusive; no start means all history."""
    options: dict[str, object] = {"period": "max"} if start is None else {"start": start}
    if end is not None:
        options["end"] = (date.fromisoformat(end) + timedelta(days=1)).isoformat()
    with _logged_failures() as collector:
        frame = yfinance.download(symbols, auto_adjust=False, actions=True, group_by="ticker",
                                  progress=False, threads=False, **options)
    return frame, collector.failures, collector.unreachable


class _FailureCollector(logging.Handler):
    """Keeps the "['T1', 'T2']: message" lines yfinance.download logs for the tickers that failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failures: dict[str, str] = {}
        self.unreachable: str | None = None  # why Yahoo could not be reached, if it could not
        self._error_seen = False  # an ERROR record gave the reason (better than a warning's)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        found = _UNREACHABLE_TEXT.search(message)
        if found and (self.unreachable is None or (record.levelno >= logging.ERROR and not self._error_seen)):
            # from the cause on ("Could not resolve host: ..."), without curl's "See https://..." tail
            self.unreachable = message[found.start():].split(". See ")[0].strip()[:200]
            self._error_seen = record.levelno >= logging.ERROR
        if record.levelno < logging.ERROR:
            return
        match = _LOGGED_FAILURE.match(message)
        if match:
            for ticker in re.findall(r"'([^']+)'", match["tickers"]):
                self.failures[ticker.upper()] = match["message"].strip()


@contextmanager
def _logged_failures() -> Iterator[_FailureCollector]:
    """What yfinance logs while the block runs: per-ticker failures and network trouble."""
    logger = logging.getLogger("yfinance")
    collector = _FailureCollector()
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)


def _symbol_rows(frame: pd.DataFrame | None, symbol: str, single: bool) -> pd.DataFrame | None:
    """The symbol's own columns (Open ... Stock Splits) without the all-empty rows that aligning
    several tickers on one date index adds; None when Yahoo sent nothing for it."""
    if frame is None or frame.empty:
        return None
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        ticker = symbol.upper()
        level = next((n for n in range(columns.nlevels) if ticker in columns.get_level_values(n)), None)
        if level is None:
            return None
        rows = frame.xs(ticker, axis=1, level=level)
    elif single:
        rows = frame
    else:
        return None
    prices = [column for column in rows.columns if str(column).lower() in ("open", "high", "low", "close")]
    rows = rows.dropna(how="all", subset=prices)
    return rows if len(rows) else None
