"""The truncation test: a feature at t computed on history cut at t equals the full-history value.

Everything is cut at t: the symbol's prices AND every close the market context is built from, as a
live run at the close of t would see them. Near the start, NaN must stay NaN (equal_nan). Run on a
synthetic universe, on the demo market and on the real S&P 500 sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import make_prices

from backend.events import detect_events
from backend.features import FEATURE_NAMES, compute_features
from backend.market import build_market

SHOCK_SIGMA = 4.0
# Rows where warm-ups end (returns, events, shocks, SMA 200, regime, 52 weeks) and a few later ones.
EARLY_ROWS = (0, 1, 2, 20, 61, 65, 199, 200, 251, 252, 253)
REAL_SYMBOLS = ("AAPL", "MSFT", "INTC", "XOM", "HAL", "CARR", "OTIS")


def assert_point_in_time(universe: dict[str, pd.DataFrame], sectors: dict[str, str], symbol: str,
                         rows: list[int]) -> None:
    prices = universe[symbol]
    full_market = build_market({s: p["close"] for s, p in universe.items()}, sectors, None)
    full = compute_features(prices, full_market.market, full_market.sectors.get(sectors[symbol]),
                            shock_sigma=SHOCK_SIGMA)
    full_events = detect_events(prices, SHOCK_SIGMA)
    assert full.iloc[-1].notna().sum() >= 0.9 * len(FEATURE_NAMES), "too few features to test at the end"
    for row in rows:
        date = prices.index[row]
        cut = {s: p.loc[:date] for s, p in universe.items()}
        market = build_market({s: p["close"] for s, p in cut.items()}, sectors, None)
        got = compute_features(cut[symbol], market.market, market.sectors.get(sectors[symbol]),
                               shock_sigma=SHOCK_SIGMA)
        assert got.index[-1] == date
        actual, expected = got.iloc[-1].to_numpy(), full.loc[date].to_numpy()
        differ = ~np.isclose(actual, expected, rtol=1e-9, atol=0.0, equal_nan=True)
        np.testing.assert_allclose(
            actual, expected, rtol=1e-9, atol=0.0, equal_nan=True,
            err_msg=f"{symbol} row {row} ({date:%Y-%m-%d}): {list(np.array(FEATURE_NAMES)[differ])} "
                    "differ between history cut at t and full history")
        pd.testing.assert_frame_equal(detect_events(cut[symbol], SHOCK_SIGMA),
                                      full_events[full_events["date"] <= date].reset_index(drop=True))


def spread_rows(prices: pd.DataFrame, *dates: str | None) -> list[int]:
    """The warm-up rows, rows at the given dates (events worth crossing), the middle and the end."""
    rows = len(prices)
    at_dates = [int(prices.index.searchsorted(pd.Timestamp(d))) for d in dates if d is not None]
    return sorted({r for r in EARLY_ROWS if r < rows} | set(at_dates) | {rows // 2, rows - 2, rows - 1})


def to_contract(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw rows (date, open, high, low, close, adj_close, volume, dividend, split) -> the price frame
    contract: OHLC scaled by adj_close / close, the traded close kept as raw_close."""
    raw = raw.sort_values("date").set_index("date")
    factor = raw["adj_close"] / raw["close"]
    frame = pd.DataFrame({name: raw[name] * factor for name in ("open", "high", "low")})
    return frame.assign(close=raw["adj_close"], volume=raw["volume"].astype("float64"), raw_close=raw["close"],
                        dividend=raw["dividend"], split=raw["split"]).astype("float64")


def test_synthetic_universe() -> None:
    """Symbols starting at different dates, one with missing days, a split, a shock and dividends."""
    universe = {
        "A": make_prices(1, rows=1400, split_row=300, shock_row=500),
        "B": make_prices(2, rows=1400).iloc[250:],
        "C": make_prices(3, rows=1400).drop(index=make_prices(3, rows=1400).index[600:605]),
        "D": make_prices(4, rows=1400, shock_row=700),
    }
    sectors = {"A": "Tech", "B": "Tech", "C": "Energy", "D": "Energy"}
    assert_point_in_time(universe, sectors, "A", spread_rows(universe["A"]) + [300, 301, 500, 501, 602])
    assert_point_in_time(universe, sectors, "B", spread_rows(universe["B"]))
    assert_point_in_time(universe, sectors, "C", [598, 599, 600, 601, 1000])


def test_demo_market() -> None:
    try:
        from backend.prices.demo_market import demo_universe, generate_market
    except ImportError as error:
        pytest.skip(f"demo market not available: {error}")
    universe = {symbol: to_contract(raw) for symbol, raw in generate_market(7).items()}
    sectors = {entry.symbol: entry.sector for entry in demo_universe()}
    symbol = next(s for s, p in universe.items() if (p["split"] != 1).any() and (p["dividend"] > 0).any())
    split_date = universe[symbol].index[(universe[symbol]["split"] != 1).to_numpy()][0]
    assert_point_in_time(universe, sectors, symbol, spread_rows(universe[symbol], str(split_date.date())))


def read_alphavantage(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, parse_dates=["timestamp"])
    return to_contract(raw.rename(columns={"timestamp": "date", "adjusted_close": "adj_close",
                                           "dividend_amount": "dividend", "split_coefficient": "split"}))


def test_real_sp500_sample(real_data_dir: Path) -> None:
    constituents = pd.read_csv(real_data_dir / "constituents.csv")
    sector_of = dict(zip(constituents["Symbol"], constituents["Sector"], strict=True))
    universe = {symbol: read_alphavantage(real_data_dir / f"{symbol}.csv.gz") for symbol in REAL_SYMBOLS}
    sectors = {symbol: sector_of[symbol] for symbol in universe}
    assert_point_in_time(universe, sectors, "AAPL", spread_rows(universe["AAPL"], "2005-02-28", "2008-10-10",
                                                                "2014-06-09", "2020-08-31"))
    assert_point_in_time(universe, sectors, "MSFT", spread_rows(universe["MSFT"], "2003-02-18"))
    assert_point_in_time(universe, sectors, "CARR", spread_rows(universe["CARR"]))
