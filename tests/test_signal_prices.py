"""The signals' price update against recorded-shape yfinance responses on a real SQLite file: new
days are appended, a rewritten adjusted history (a dividend) is fetched again whole, and a rate
limit mid-update keeps what was updated and retries the rest on the next run."""

from __future__ import annotations

import pandas as pd
import pytest
import yfinance

from backend import store
from backend.prices.yfinance_source import YFinanceSource
from tests.test_prices_yfinance import FakeDownload, downloaded, history, logging_failures
from trainer.signals.prices import live_key, load_live, update_prices

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
LIMITED = "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"


def _training_cache(connection, symbol: str, closes: list[float], days: list[str]) -> None:
    """What a training run cached for its range: adjusted close = close here."""
    with store.transaction(connection):
        store.write_rows(connection, "price_data", [
            {"source": "yfinance", "symbol": symbol, "date": day, "open": c * 0.995, "high": c * 1.01,
             "low": c * 0.99, "close": c, "volume": 1e6, "raw_close": c, "dividend": 0.0, "split": 1.0, "is_demo": 0}
            for day, c in zip(days, closes, strict=True)])


@pytest.fixture
def connection(tmp_path):
    connection = store.connect(tmp_path / "trainer.db")
    _training_cache(connection, "AAPL", [100, 101, 102], DAYS[:3])
    _training_cache(connection, "MSFT", [300, 301, 302], DAYS[:3])
    yield connection
    connection.close()


def _source(sleeps: list[float]) -> YFinanceSource:
    return YFinanceSource(0.6, max_retries=1, sleep=sleeps.append)


def test_only_the_new_days_are_fetched_and_appended(monkeypatch, connection):
    fake = FakeDownload(downloaded(AAPL=history([102, 103, 104], dates=DAYS[2:]),
                                   MSFT=history([302, 303, 304], dates=DAYS[2:])))
    monkeypatch.setattr(yfinance, "download", fake)
    update = update_prices(connection, _source([]), ["AAPL", "MSFT"], training_key="yfinance")

    assert fake.calls[0][0] == ["AAPL", "MSFT"] and fake.calls[0][1]["start"] == "2024-01-04"
    assert update.appended == {"AAPL": 2, "MSFT": 2} and not update.refetched and not update.failed
    aapl = load_live(connection, live_key("yfinance"), "AAPL")
    assert aapl.index.strftime("%Y-%m-%d").tolist() == DAYS and aapl["close"].tolist() == [100, 101, 102, 103, 104]
    training = connection.execute("SELECT COUNT(*), MAX(date) FROM price_data WHERE source = 'yfinance'").fetchone()
    assert training == (6, "2024-01-04"), "the training cache is never changed"


def test_a_rewritten_adjusted_history_is_fetched_again_whole(monkeypatch, connection, caplog):
    """A dividend on 2024-01-05: Yahoo scales every earlier adjusted close, so the overlap day no
    longer matches the cache and the whole history is asked for again."""
    scale = 0.99
    first = downloaded(AAPL=history([102, 103, 104], dates=DAYS[2:]),
                       MSFT=history([302, 300, 301], dates=DAYS[2:], adj=[302 * scale, 300, 301],
                                    dividends=[0, 3.0, 0]))
    whole = downloaded(MSFT=history([300, 301, 302, 300, 301], dates=DAYS,
                                    adj=[300 * scale, 301 * scale, 302 * scale, 300, 301], dividends=[0, 0, 0, 3.0, 0]))
    fake = FakeDownload(first, whole)
    monkeypatch.setattr(yfinance, "download", fake)
    with caplog.at_level("INFO"):
        update = update_prices(connection, _source([]), ["AAPL", "MSFT"], training_key="yfinance")

    assert update.refetched == ["MSFT"] and fake.calls[1][0] == ["MSFT"] and fake.calls[1][1]["period"] == "max"
    msft = load_live(connection, live_key("yfinance"), "MSFT")
    assert msft["close"].tolist() == pytest.approx([300 * scale, 301 * scale, 302 * scale, 300, 301])
    assert msft["dividend"].tolist() == [0, 0, 0, 3.0, 0]
    assert "adjusted history was rewritten" in caplog.text and "MSFT" in caplog.text


def test_a_rate_limit_mid_update_keeps_what_was_updated_and_the_next_run_retries(monkeypatch, connection):
    _training_cache(connection, "MSFT", [303], DAYS[3:4])  # MSFT is a day ahead: asked in a second request
    limited = logging_failures(downloaded(MSFT=None), MSFT=LIMITED)
    fake = FakeDownload(downloaded(AAPL=history([102, 103], dates=DAYS[2:4])), limited, limited)
    monkeypatch.setattr(yfinance, "download", fake)
    sleeps: list[float] = []
    update = update_prices(connection, _source(sleeps), ["AAPL", "MSFT"], training_key="yfinance")

    assert update.appended == {"AAPL": 1} and "MSFT" in update.failed and "Rate limited" in update.failed["MSFT"]
    assert load_live(connection, live_key("yfinance"), "MSFT")["close"].tolist() == [300, 301, 302, 303]
    assert set(update.prices) == {"AAPL", "MSFT"}, "the cached MSFT prices are still used"

    # Both are now at 2024-01-05, so one request asks for both.
    retry = FakeDownload(downloaded(AAPL=history([103], dates=DAYS[3:4]), MSFT=history([303, 304], dates=DAYS[3:])))
    monkeypatch.setattr(yfinance, "download", retry)
    again = update_prices(connection, _source(sleeps), ["AAPL", "MSFT"], training_key="yfinance")
    assert again.appended == {"AAPL": 0, "MSFT": 1} and not again.failed
    assert load_live(connection, live_key("yfinance"), "MSFT").index[-1] == pd.Timestamp(DAYS[4])
