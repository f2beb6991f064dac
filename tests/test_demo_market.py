"""The demo market must be deterministic, well-formed for prepare_prices and statistically believable,
with a planted signal that is detectable but weak (module docstring of backend/prices/demo_market)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from backend.prices import demo_market
from backend.prices.base import PRICE_COLUMNS, PriceSource
from backend.prices.demo_market import DEMO_END, DEMO_START, demo_universe, generate_market
from backend.prices.demo_source import DemoMarketSource
from backend.prices.prepare import RAW_COLUMNS

SEED = 7


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    return generate_market(SEED)


@pytest.fixture(scope="module")
def log_returns(market: dict[str, pd.DataFrame]) -> np.ndarray:
    """Daily total-return log returns, (days - 1) x symbols."""
    adjusted = np.column_stack([frame["adj_close"].to_numpy() for frame in market.values()])
    return np.diff(np.log(adjusted), axis=0)


def _digest(market: dict[str, pd.DataFrame]) -> str:
    digest = hashlib.sha256()
    for symbol, frame in market.items():
        digest.update(symbol.encode())
        for column in frame.columns:
            digest.update(column.encode())
            digest.update(frame[column].to_numpy().tobytes())
    return digest.hexdigest()


def test_same_seed_gives_byte_identical_frames_and_another_seed_a_different_market() -> None:
    first = _digest(generate_market(SEED))
    demo_market._cached_market.cache_clear()  # force a second generation, not a cache hit
    assert _digest(generate_market(SEED)) == first
    assert _digest(generate_market(SEED + 1)) != first


def test_a_caller_editing_its_frame_does_not_change_the_cached_market() -> None:
    frame = generate_market(SEED)["GRDL"]
    frame.loc[0, "close"] = -1.0
    assert generate_market(SEED)["GRDL"].loc[0, "close"] > 0


def test_universe_has_82_distinct_companies_in_11_sectors_and_3_caps() -> None:
    universe = demo_universe()
    assert len(universe) == 82
    assert len({entry.symbol for entry in universe}) == 82
    assert len({entry.name for entry in universe}) == 82
    assert {entry.sector for entry in universe} == {
        "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials",
        "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities"}
    assert {entry.cap for entry in universe} == {"large", "mid", "small"}
    assert all(entry.symbol.isupper() and 3 <= len(entry.symbol) <= 4 for entry in universe)


def test_every_frame_is_a_standard_raw_frame_over_the_fixed_calendar(market: dict[str, pd.DataFrame]) -> None:
    assert list(market) == [entry.symbol for entry in demo_universe()]
    dates = market["GRDL"]["date"]
    for frame in market.values():
        assert tuple(frame.columns) == RAW_COLUMNS
        assert frame["date"].equals(dates)
    assert pd.api.types.is_datetime64_dtype(dates)
    assert dates.iloc[0] == pd.Timestamp(DEMO_START) and dates.iloc[-1] == pd.Timestamp(DEMO_END)
    assert (dates.iloc[-1] - dates.iloc[0]).days >= 15 * 365
    assert 4200 <= len(dates) <= 4350  # ~252 trading days a year
    assert dates.is_monotonic_increasing and dates.is_unique
    assert (dates.dt.day_of_week < 5).all()
    assert not ((dates.dt.month == 12) & (dates.dt.day == 25)).any()


def test_prices_are_positive_and_ohlc_consistent(market: dict[str, pd.DataFrame]) -> None:
    for symbol, frame in market.items():
        low, high = frame["low"], frame["high"]
        body_low = np.minimum(frame["open"], frame["close"])
        body_high = np.maximum(frame["open"], frame["close"])
        assert (low > 0).all() and (frame["adj_close"] > 0).all(), symbol
        assert (low <= body_low).all() and (body_high <= high).all(), symbol
        assert (frame["volume"] > 0).all(), symbol


def test_daily_moves_stay_inside_the_default_max_daily_move(log_returns: np.ndarray) -> None:
    assert np.abs(np.expm1(log_returns)).max() < 0.6


def test_a_few_symbols_split_with_a_raw_jump_and_a_smooth_adjusted_close(
        market: dict[str, pd.DataFrame]) -> None:
    splits = {symbol: frame.index[frame["split"] != 1.0] for symbol, frame in market.items()}
    splits = {symbol: rows for symbol, rows in splits.items() if len(rows)}
    assert 5 <= len(splits) <= 8
    for symbol, rows in splits.items():
        frame = market[symbol]
        for row in rows:
            ratio = frame.loc[row, "split"]
            assert ratio in (2.0, 3.0, 4.0)
            raw_move = frame.loc[row, "close"] / frame.loc[row - 1, "close"]
            adjusted_move = frame.loc[row, "adj_close"] / frame.loc[row - 1, "adj_close"]
            assert abs(raw_move * ratio - 1) < 0.3, symbol  # the raw price fell by about the ratio
            assert abs(adjusted_move - 1) < 0.3, symbol
            assert abs(raw_move - 1) > 0.35, symbol


def test_dividends_are_quarterly_for_income_sectors_and_most_large_caps(
        market: dict[str, pd.DataFrame]) -> None:
    universe = demo_universe()
    payers = {entry.symbol for entry in universe if (market[entry.symbol]["dividend"] > 0).any()}
    income = {e.symbol for e in universe if e.sector in ("Utilities", "Consumer Staples", "Real Estate")}
    large = {e.symbol for e in universe if e.cap == "large"}
    assert income <= payers
    assert len(large & payers) > 0.6 * len(large)
    for symbol in payers:
        assert (market[symbol]["dividend"] > 0).sum() == 4 * 17, symbol


def test_adjusted_close_takes_the_dividend_back_like_a_data_vendor(market: dict[str, pd.DataFrame]) -> None:
    frame = market["GRDL"]
    close, adjusted, dividend = frame["close"], frame["adj_close"], frame["dividend"]
    ex_days = frame.index[dividend > 0]
    assert len(ex_days) > 0
    # Vendor convention: earlier adjusted prices are multiplied by (1 - dividend / previous close).
    vendor = close[ex_days].to_numpy() / (close[ex_days - 1].to_numpy() - dividend[ex_days].to_numpy())
    ours = adjusted[ex_days].to_numpy() / adjusted[ex_days - 1].to_numpy()
    np.testing.assert_allclose(ours, vendor, rtol=1e-5)
    assert adjusted.iloc[-1] == pytest.approx(close.iloc[-1])


def test_returns_have_fat_tails_and_volatility_clustering(log_returns: np.ndarray) -> None:
    kurtosis = pd.DataFrame(log_returns).kurt() + 3  # pandas gives excess kurtosis
    assert kurtosis.median() > 3.5
    index = pd.Series(np.abs(log_returns.mean(axis=1)))
    for lag in range(1, 6):
        assert index.autocorr(lag) > 0.05
        per_symbol = [pd.Series(np.abs(log_returns[:, i])).autocorr(lag) for i in range(log_returns.shape[1])]
        assert np.median(per_symbol) > 0.02


def test_small_caps_are_more_volatile_and_volume_rises_with_the_move(
        market: dict[str, pd.DataFrame], log_returns: np.ndarray) -> None:
    caps = np.array([entry.cap for entry in demo_universe()])
    volatility = log_returns.std(axis=0)
    assert np.median(volatility[caps == "small"]) > 1.4 * np.median(volatility[caps == "large"])
    volumes = [frame["volume"].to_numpy()[1:] for frame in market.values()]
    correlations = [np.corrcoef(np.abs(log_returns[:, i]), np.log(v))[0, 1] for i, v in enumerate(volumes)]
    assert np.median(correlations) > 0.2


def test_planted_momentum_is_detectable_in_calm_markets_but_weak(log_returns: np.ndarray) -> None:
    """Seed 7 measures 52.8 % sign agreement in calm markets and 50.6 % in turbulent ones."""
    horizon = 10
    log_price = np.vstack([np.zeros(log_returns.shape[1]), np.cumsum(log_returns, axis=0)])
    trailing = log_price[horizon:-horizon] - log_price[:-2 * horizon]
    forward = log_price[2 * horizon:] - log_price[horizon:-horizon]
    market_vol = pd.Series(log_returns.mean(axis=1)).rolling(20).std().to_numpy()
    vol_at_entry = np.concatenate(([np.nan], market_vol))[horizon:-horizon]  # known at the entry close
    known = ~np.isnan(vol_at_entry)
    calm = known & (vol_at_entry <= np.nanmedian(vol_at_entry))
    agree = np.sign(trailing) == np.sign(forward)
    calm_rate, turbulent_rate = agree[calm].mean(), agree[known & ~calm].mean()
    assert 0.52 < calm_rate < 0.60
    assert turbulent_rate < calm_rate - 0.01


def test_demo_source_prepares_prices_within_the_requested_dates() -> None:
    source = DemoMarketSource(seed=SEED, max_daily_move=0.6)
    assert isinstance(source, PriceSource)
    assert source.key == "demo:7" and source.is_demo
    assert [entry.symbol for entry in source.universe()] == [entry.symbol for entry in demo_universe()]
    split_symbol = next(s for s, frame in generate_market(SEED).items() if (frame["split"] != 1.0).any())
    results = {result.symbol: result for result in source.fetch([split_symbol, "GRDL"], "2010-01-04", "2020-12-31")}
    for result in results.values():
        assert result.error is None and result.issues == []
        prices = result.prices
        assert tuple(prices.columns) == PRICE_COLUMNS
        assert prices.index[0] == pd.Timestamp("2010-01-04") and prices.index[-1] == pd.Timestamp("2020-12-31")
    # Adjusted close is smooth across the split, raw_close is not.
    split_prices = generate_market(SEED)[split_symbol]
    split_day = split_prices.loc[split_prices["split"] != 1.0, "date"].iloc[0]
    prices = next(source.fetch([split_symbol], None, None)).prices
    assert prices["close"].pct_change().abs().max() < 0.6
    assert prices.loc[split_day, "raw_close"] < 0.7 * prices["raw_close"].shift(1).loc[split_day]


def test_demo_source_explains_unknown_symbols_and_empty_date_ranges() -> None:
    source = DemoMarketSource(seed=SEED, max_daily_move=0.6)
    unknown, empty = list(source.fetch(["XYZ", "GRDL"], "2030-01-01", None))
    assert unknown.prices is None and unknown.error.startswith("XYZ is not in the demo market")
    assert "82 symbols" in unknown.error
    assert empty.prices is None and "2008-01-02 to 2024-12-31" in empty.error


def test_other_market_sizes_span_the_sectors_and_caps_and_keep_the_default_unchanged():
    from backend.prices.demo_market import DEFAULT_SIZE, demo_universe

    assert DEFAULT_SIZE == 82 and demo_universe() == demo_universe(82)
    small = demo_universe(22)
    assert len({entry.sector for entry in small}) == 11 and len(small) == 22
    big = demo_universe(500)
    assert big[:82] == demo_universe() and len({entry.symbol for entry in big}) == 500
    assert {entry.cap for entry in big[82:]} == {"large", "mid", "small"}
    assert all(entry.symbol.isalpha() and entry.symbol.isupper() for entry in big)
    with pytest.raises(ValueError):
        demo_universe(0)


def test_another_size_is_another_market_with_its_own_cache_key():
    from backend.prices.demo_market import generate_market

    bigger = generate_market(SEED, 100)
    assert len(bigger) == 100 and set(generate_market(SEED)) < set(bigger)
    assert DemoMarketSource(seed=SEED, max_daily_move=0.6).key == f"demo:{SEED}"
    assert DemoMarketSource(seed=SEED, max_daily_move=0.6, size=100).key == f"demo:{SEED}:100"
    assert [entry.symbol for entry in DemoMarketSource(seed=SEED, max_daily_move=0.6, size=100).universe()] == \
        list(bigger)
