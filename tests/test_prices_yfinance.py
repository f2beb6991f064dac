"""YFinanceSource offline: yfinance.download is replaced by frames shaped the way yfinance 1.7 shapes
them (per-ticker column blocks on one date index, failed tickers as all-NaN blocks, failures only
logged), plus one run of the real yfinance.download with its network layer (Ticker) replaced."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import yfinance
import yfinance.multi
from yfinance.exceptions import YFRateLimitError, YFTzMissingError

from backend.prices.base import PRICE_COLUMNS
from backend.prices.yfinance_source import YFinanceSource

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


def history(closes: list[float], *, dates: list[str] = DAYS, adj: list[float] | None = None,
            splits: list[float] | None = None, dividends: list[float] | None = None) -> pd.DataFrame:
    """One ticker as Ticker.history(auto_adjust=False, actions=True) returns it for daily bars."""
    close = np.asarray(closes, dtype=float)
    return pd.DataFrame({
        "Open": close * 0.995, "High": close * 1.01, "Low": close * 0.99, "Close": close,
        "Adj Close": adj if adj is not None else close,
        "Volume": np.full(len(close), 1_000_000, dtype=np.int64),
        "Dividends": dividends if dividends is not None else 0.0,
        "Stock Splits": splits if splits is not None else 0.0,
    }, index=pd.DatetimeIndex(pd.to_datetime(dates[: len(close)]), name="Date"))


def downloaded(**tickers: pd.DataFrame | None) -> pd.DataFrame:
    """yfinance.download(group_by="ticker") in 1.7: blocks keyed (Ticker, Price) on the union of the
    dates; a ticker that failed is yfinance's own empty frame (six columns), all NaN after alignment."""
    frames = {name: frame if frame is not None else yfinance.utils.empty_df()
              for name, frame in tickers.items()}
    index = None
    for frame in frames.values():
        if not frame.empty:
            index = frame.index if index is None else index.union(frame.index)
    index = index if index is not None else pd.DatetimeIndex([])
    frames = {name: frame.reindex(index) for name, frame in frames.items()}
    return pd.concat(frames.values(), axis=1, sort=True, keys=frames.keys(), names=["Ticker", "Price"])


def logging_failures(frame: pd.DataFrame, **failures: str):
    """A response that, like yfinance 1.7, logs the tickers it failed on instead of raising."""
    def respond(tickers: list[str]) -> pd.DataFrame:
        logger = logging.getLogger("yfinance")
        logger.error("\n%.f Failed download%s:", len(failures), "s" if len(failures) > 1 else "")
        for ticker, message in failures.items():
            logger.error(f"{[ticker]}: " + message)
        return frame
    return respond


class FakeDownload:
    """Stands in for yfinance.download: answers from a script and records every call."""

    def __init__(self, *responses) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, tickers, **options):
        self.calls.append((list(tickers), options))
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        return response(tickers) if callable(response) else response


@pytest.fixture
def sleeps() -> list[float]:
    return []


def source(sleeps: list[float], **options) -> YFinanceSource:
    return YFinanceSource(0.6, sleep=sleeps.append, **options)


def fetch(monkeypatch, fake: FakeDownload, symbols: list[str], sleeps: list[float], start="2024-01-01",
          end="2024-01-05", **options) -> dict:
    monkeypatch.setattr(yfinance, "download", fake)
    return {result.symbol: result for result in source(sleeps, **options).fetch(symbols, start, end)}


def test_a_normal_batch_is_adjusted_and_asks_yahoo_the_right_way(monkeypatch, sleeps):
    fake = FakeDownload(downloaded(
        AAPL=history([100, 101, 102, 103], adj=[99, 100, 101, 102], dividends=[0, 0.24, 0, 0]),
        MSFT=history([300, 301, 302, 303], splits=[0, 0, 2.0, 0])))
    results = fetch(monkeypatch, fake, ["AAPL", "MSFT"], sleeps)

    assert results["AAPL"].error is None and results["MSFT"].error is None
    aapl = results["AAPL"].prices
    assert list(aapl.columns) == list(PRICE_COLUMNS) and aapl.index.name == "date"
    assert aapl["close"].tolist() == [99, 100, 101, 102]
    assert aapl["raw_close"].tolist() == [100, 101, 102, 103]
    assert aapl["dividend"].tolist() == [0, 0.24, 0, 0]
    assert results["MSFT"].prices["split"].tolist() == [1, 1, 2, 1]
    tickers, options = fake.calls[0]
    assert tickers == ["AAPL", "MSFT"]
    assert options == {"start": "2024-01-01", "end": "2024-01-06", "auto_adjust": False, "actions": True,
                       "group_by": "ticker", "progress": False, "threads": False}
    assert sleeps == []


def test_without_a_start_all_history_is_asked_for(monkeypatch, sleeps):
    fake = FakeDownload(downloaded(AAPL=history([100, 101])))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps, start=None, end=None)

    assert results["AAPL"].error is None
    assert fake.calls[0][1]["period"] == "max"
    assert "start" not in fake.calls[0][1] and "end" not in fake.calls[0][1]


def test_rows_outside_the_inclusive_range_are_dropped(monkeypatch, sleeps):
    fake = FakeDownload(downloaded(AAPL=history([100, 101, 102, 103])))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps, start="2024-01-03", end="2024-01-04")
    assert results["AAPL"].prices.index.strftime("%Y-%m-%d").tolist() == ["2024-01-03", "2024-01-04"]


def test_rows_only_outside_the_range_are_an_error_naming_the_range(monkeypatch, sleeps):
    fake = FakeDownload(downloaded(AAPL=history([100, 101])))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps, start="2024-01-04", end="2024-01-05")
    assert results["AAPL"].error == ("Yahoo has no prices for AAPL between 2024-01-04 and 2024-01-05. Widen "
                                     "data.start/data.end or remove the symbol from the universe.")


def test_a_single_ticker_with_flat_columns_is_read(monkeypatch, sleeps):
    """yfinance.download(..., multi_level_index=False) and older versions return plain columns."""
    fake = FakeDownload(history([100, 101, 102]))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps)
    assert results["AAPL"].prices["close"].tolist() == [100, 101, 102]


def test_an_empty_frame_is_a_per_symbol_error(monkeypatch, sleeps):
    fake = FakeDownload(pd.DataFrame())
    results = fetch(monkeypatch, fake, ["XYZ"], sleeps)

    assert results["XYZ"].prices is None
    assert results["XYZ"].error.startswith("no data returned by Yahoo for XYZ (delisted or wrong symbol?)")
    assert sleeps == []


def test_one_all_nan_ticker_fails_alone_and_its_alignment_rows_do_not_leak(monkeypatch, sleeps):
    fake = FakeDownload(downloaded(AAPL=history([100, 101]), GONE=None,
                                   MSFT=history([300, 301, 302], dates=DAYS[:1] + DAYS[2:])))
    results = fetch(monkeypatch, fake, ["AAPL", "GONE", "MSFT"], sleeps)

    assert results["GONE"].error.startswith("no data returned by Yahoo for GONE (delisted or wrong symbol?)")
    assert len(results["AAPL"].prices) == 2 and results["AAPL"].issues == []
    assert len(results["MSFT"].prices) == 3 and results["MSFT"].issues == []


def test_a_connection_error_is_retried_with_backoff(monkeypatch, sleeps):
    fake = FakeDownload(ConnectionError("Connection reset by peer"), downloaded(AAPL=history([100, 101])))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps)

    assert results["AAPL"].error is None
    assert sleeps == [2.0] and len(fake.calls) == 2


def test_a_permanent_network_failure_becomes_per_symbol_errors_never_an_exception(monkeypatch, sleeps):
    fake = FakeDownload(*[TimeoutError("timed out")] * 4)
    results = fetch(monkeypatch, fake, ["AAPL", "MSFT"], sleeps)

    assert sleeps == [2.0, 4.0, 8.0]
    for symbol in ("AAPL", "MSFT"):
        assert results[symbol].prices is None
        assert results[symbol].error.startswith(
            f"Yahoo did not answer for {symbol} after 4 attempts (TimeoutError: timed out). Check the "
            "internet connection or wait a few minutes")


def test_a_raised_rate_limit_error_is_retried(monkeypatch, sleeps):
    fake = FakeDownload(YFRateLimitError(), YFRateLimitError(), downloaded(AAPL=history([100, 101])))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps, backoff_seconds=1.0)

    assert results["AAPL"].error is None and sleeps == [1.0, 2.0]


def test_a_rate_limit_that_yfinance_only_logs_is_retried_for_the_hit_symbols(monkeypatch, sleeps):
    """yfinance 1.7 catches the error per ticker and returns an empty block: not a delisting."""
    limited = "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"
    fake = FakeDownload(logging_failures(downloaded(AAPL=history([100, 101]), MSFT=None), MSFT=limited),
                        downloaded(MSFT=history([300, 301])))
    results = fetch(monkeypatch, fake, ["AAPL", "MSFT"], sleeps)

    assert results["AAPL"].error is None and results["MSFT"].error is None
    assert [tickers for tickers, _ in fake.calls] == [["AAPL", "MSFT"], ["MSFT"]]
    assert sleeps == [2.0]


def test_a_rate_limit_that_never_ends_names_the_reason(monkeypatch, sleeps):
    limited = "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"
    fake = FakeDownload(*[logging_failures(downloaded(MSFT=None), MSFT=limited)] * 2)
    results = fetch(monkeypatch, fake, ["MSFT"], sleeps, max_retries=1)

    assert results["MSFT"].error.startswith(f"Yahoo did not answer for MSFT after 2 attempts ({limited}).")


def test_a_logged_unknown_symbol_is_not_retried_and_quotes_yahoo(monkeypatch, sleeps):
    fake = FakeDownload(logging_failures(downloaded(AAPL=history([100, 101]), XYZ=None),
                                         XYZ="YFTzMissingError('possibly delisted; no timezone found')"))
    results = fetch(monkeypatch, fake, ["AAPL", "XYZ"], sleeps)

    assert results["XYZ"].error == (
        "no data returned by Yahoo for XYZ (delisted or wrong symbol?): Yahoo said "
        "YFTzMissingError('possibly delisted; no timezone found'). Check the symbol on finance.yahoo.com or "
        "remove it from the universe.")
    assert results["AAPL"].error is None and sleeps == [] and len(fake.calls) == 1


def test_an_unexpected_yfinance_failure_is_reported_per_symbol(monkeypatch, sleeps):
    fake = FakeDownload(KeyError("chart"))
    results = fetch(monkeypatch, fake, ["AAPL"], sleeps)

    assert results["AAPL"].error.startswith(
        "yfinance failed for AAPL (KeyError: 'chart'); try updating yfinance")
    assert sleeps == []


def test_symbols_are_fetched_in_batches(monkeypatch, sleeps):
    symbols = ["A", "B", "C", "D", "E"]
    fake = FakeDownload(*[lambda tickers: downloaded(**{t: history([10, 11]) for t in tickers})] * 3)
    results = fetch(monkeypatch, fake, symbols, sleeps, batch_size=2)

    assert [tickers for tickers, _ in fake.calls] == [["A", "B"], ["C", "D"], ["E"]]
    assert all(results[s].error is None for s in symbols)


class FakeTicker:
    """Replaces yfinance's network layer only: the real yfinance.download shapes the frame, catches
    the errors and logs them."""

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self._price_history = None

    def history(self, **options) -> pd.DataFrame:
        if self.ticker == "LIMITED":
            raise YFRateLimitError()
        if self.ticker == "GONE":
            raise YFTzMissingError(self.ticker)
        frame = history([100, 101, 102], splits=[0, 4.0, 0])
        frame.index = frame.index.tz_localize("America/New_York")
        return frame


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.rename")  # inside yfinance 1.7
def test_the_real_yfinance_download_is_understood(monkeypatch, sleeps):
    monkeypatch.setattr(yfinance.multi, "Ticker", FakeTicker)
    monkeypatch.setattr(logging.getLogger("yfinance"), "propagate", False)
    results = {result.symbol: result for result in
               source(sleeps, max_retries=1).fetch(["AAPL", "GONE", "LIMITED"], "2024-01-01", "2024-01-05")}

    assert results["AAPL"].error is None
    assert results["AAPL"].prices["split"].tolist() == [1, 4, 1]
    assert results["AAPL"].prices.index.tz is None
    assert results["GONE"].error.startswith(
        "no data returned by Yahoo for GONE (delisted or wrong symbol?): "
        "Yahoo said YFTzMissingError('possibly delisted; no timezone found')")
    assert results["LIMITED"].error.startswith("Yahoo did not answer for LIMITED after 2 attempts "
                                               "(YFRateLimitError('Too Many Requests.")
    assert sleeps == [2.0]


def test_no_network_is_reported_as_unreachable_not_as_a_delisted_symbol(monkeypatch, sleeps):
    """Offline, yfinance 1.7 logs the curl error, then claims every ticker is 'possibly delisted'."""
    def offline(tickers: list[str]) -> pd.DataFrame:
        logger = logging.getLogger("yfinance")
        logger.warning("Cookie/crumb fetch failed (DNSError), continuing without crumb")
        for ticker in tickers:
            logger.error(f"Failed to get ticker '{ticker}' reason: Failed to perform, curl: (6) Could not resolve "
                         "host: query2.finance.yahoo.com. See https://curl.se/libcurl/c/libcurl-errors.html first")
        logger.error(f"{tickers}: possibly delisted; no timezone found")
        return downloaded(**{ticker: None for ticker in tickers})

    fake = FakeDownload(*[offline] * 4)
    results = fetch(monkeypatch, fake, ["AAPL", "MSFT"], sleeps)

    assert sleeps == [2.0, 4.0, 8.0], "a short outage is waited out first"
    for symbol in ("AAPL", "MSFT"):
        assert results[symbol].unreachable and results[symbol].prices is None
        assert results[symbol].error.startswith("Yahoo could not be reached (Could not resolve host: "
                                                "query2.finance.yahoo.com)")
        assert "delisted" not in results[symbol].error
