"""Signals: the trade outcome of one signal equals the backtest's trade, as-of features equal the
backtest's features (on real prices), and the drift statistic behaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.backtest import backtest_symbol
from backend.labels import trade_outcome, triple_barrier
from backend.market import build_market
from trainer.signals.features import as_of_rows
from trainer.signals.track_record import population_stability_index

MARKET_DATA = Path(__file__).resolve().parents[2] / "shared" / "market-data" / "sp500-sample"


def test_a_matured_trade_equals_the_backtests_trade_from_that_date():
    rng = np.random.default_rng(4)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 400))), index=pd.bdate_range("2020-01-01",
                                                                                              periods=400))
    trades = triple_barrier(close, horizon=20, barrier_k=1.5, vol_window=20, stride=1)
    for row in trades.itertuples():
        outcome = trade_outcome(close, row.entry_date, horizon=20, barrier_k=1.5, vol_window=20)
        assert outcome is not None
        assert (outcome["exit_date"], outcome["exit_reason"], outcome["label"]) == \
            (row.exit_date, row.exit_reason, row.label)
        assert outcome["realised_return"] == pytest.approx(row.realised_return, rel=1e-12)
        assert outcome["barrier"] == pytest.approx(row.barrier, rel=1e-12)


def test_a_trade_is_not_matured_before_a_barrier_or_the_horizon():
    history = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 30)))
    close = pd.Series(np.r_[history, history[-1] * 1.001, history[-1] * 0.999],
                      index=pd.bdate_range("2021-01-01", periods=32))
    entry = close.index[29]
    assert trade_outcome(close, entry, horizon=20, barrier_k=1.5, vol_window=20) is None
    jumped = close.copy()
    jumped.iloc[31] = 150.0  # far above the upper barrier two days after entry
    outcome = trade_outcome(jumped, entry, horizon=20, barrier_k=1.5, vol_window=20)
    assert outcome["exit_reason"] == "upper" and outcome["exit_date"] == close.index[31]
    assert trade_outcome(close, close.index[5], horizon=20, barrier_k=1.5, vol_window=20) is None  # no sigma yet
    # A signal made on the newest close has no later close yet: not matured (it used to raise).
    assert trade_outcome(close, close.index[-1], horizon=20, barrier_k=1.5, vol_window=20) is None
    assert trade_outcome(close, pd.Timestamp("2030-01-01"), horizon=20, barrier_k=1.5, vol_window=20) is None


@pytest.mark.skipif(not MARKET_DATA.is_dir(), reason=f"real market data not found at {MARKET_DATA}")
def test_as_of_features_equal_the_backtests_features_on_real_prices():
    from backend.prices.csv_source import CsvFolderSource

    symbols = ["AAPL", "AES", "AVY", "CARR", "INTC", "C"]
    source = CsvFolderSource(MARKET_DATA, 0.6)
    prices = {result.symbol: result.prices for result in source.fetch(symbols, None, None)
              if result.prices is not None}
    assert set(prices) == set(symbols)
    sectors = {symbol: ("Utilities" if symbol == "AES" else "Technology") for symbol in symbols}
    market = build_market({s: f["close"] for s, f in prices.items()}, sectors, None)
    checked = 0
    for as_of in ("2015-06-30", "2020-06-30", "2021-03-22"):
        day = pd.Timestamp(as_of)
        rows = as_of_rows(prices, sectors, None, day, shock_sigma=4.0, vol_window=20, min_history_days=250)
        for symbol, frame in prices.items():
            if symbol in rows.skipped:
                assert symbol == "CARR" and as_of != "2021-04-21", rows.skipped  # starts in 2020
                continue
            full = backtest_symbol(symbol, frame, market, sectors[symbol], horizon=20, barrier_k=1.5,
                                   vol_window=20, stride=1, shock_sigma=4.0)
            if day in full.features.index:  # the backtest labels only dates with a full horizon after them
                np.testing.assert_array_equal(rows.features.loc[symbol].to_numpy(),
                                              full.features.loc[day].to_numpy(dtype=float), err_msg=f"{symbol} {as_of}")
                checked += 1
            sigma = np.log(frame["close"].loc[:day]).diff().iloc[-20:].std()
            assert rows.sigma[symbol] == pytest.approx(sigma)
    assert checked == 16


def test_population_stability_index():
    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)
    assert population_stability_index(base, rng.normal(size=2000)) < 0.02
    assert population_stability_index(base, rng.normal(1.0, 1.0, 2000)) > 0.25
    assert population_stability_index(base, np.full(5, np.nan)) is None
