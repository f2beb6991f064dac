"""Feature matrix contract, known values, alignment without look-ahead, events, and the speed budget.

make_prices is the synthetic price frame the other feature/label/backtest tests share.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.events import EVENT_FEATURE_NAMES, detect_events, event_features
from backend.features import FEATURE_NAMES, compute_features
from backend.labels import triple_barrier
from backend.market import build_market

BACKEND = Path(__file__).resolve().parents[1] / "backend"


def make_prices(seed: int = 0, rows: int = 1500, start: str = "2005-01-03", *, daily_vol: float = 0.015,
                split_row: int | None = None, shock_row: int | None = None) -> pd.DataFrame:
    """A random walk in the price frame contract: dividends every 60 rows, an optional 2:1 split and an
    optional +30% one-day shock."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=rows, name="date")
    log_returns = rng.normal(0.0003, daily_vol, rows)
    if shock_row is not None:
        log_returns[shock_row] = np.log(1.3)
    close = 40.0 * np.exp(np.cumsum(log_returns))
    open_ = close * np.exp(rng.normal(0.0, daily_vol / 3, rows))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, rows))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, rows))
    dividend = np.where(np.arange(rows) % 60 == 30, 0.25, 0.0)
    split = np.ones(rows)
    if split_row is not None:
        split[split_row] = 2.0
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(1e5, 1e6, rows), "raw_close": close * 1.1,
                         "dividend": dividend, "split": split}, index=dates)


def features_for(prices: pd.DataFrame, market_closes: dict[str, pd.Series] | None = None,
                 sector_level: pd.Series | None = None) -> pd.DataFrame:
    ctx = build_market(market_closes or {"X": prices["close"]}, {}, None)
    return compute_features(prices, ctx.market, sector_level, shock_sigma=4.0)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return make_prices(1)


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return {f"S{seed}": make_prices(seed, split_row=900, shock_row=1000) for seed in range(1, 5)}


@pytest.fixture(scope="module")
def features(universe: dict[str, pd.DataFrame]) -> pd.DataFrame:
    ctx = build_market({s: p["close"] for s, p in universe.items()}, {s: "Tech" for s in universe}, None)
    return compute_features(universe["S1"], ctx.market, ctx.sectors["Tech"], shock_sigma=4.0)


def test_columns_are_feature_names_in_order_as_float64(features: pd.DataFrame, prices: pd.DataFrame) -> None:
    assert 40 <= len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert tuple(features.columns) == FEATURE_NAMES
    assert (features.dtypes == "float64").all()
    assert features.index.equals(prices.index)


def test_every_feature_is_informative_and_finite(features: pd.DataFrame) -> None:
    values = features.to_numpy()
    assert not np.isinf(values).any()
    later = features.iloc[300:]
    always_missing = [name for name in FEATURE_NAMES if later[name].isna().all()]
    assert always_missing == []
    assert [name for name in FEATURE_NAMES if later[name].nunique() < 2] == []


@pytest.mark.parametrize(("name", "first_valid"), [
    ("ret_1d", 1), ("ret_252d", 252), ("mom_12_1", 252), ("vol_21d", 21), ("dist_sma_200", 199),
    ("slope_sma_200", 204), ("dist_52w_high", 251), ("rsi_14", 14), ("beta_63d", 63),
    ("dividend_count_63d", 62), ("shock_count_5d", 65), ("regime_trend_up", 199),
])
def test_warm_up_is_nan_never_back_filled(features: pd.DataFrame, name: str, first_valid: int) -> None:
    column = features[name]
    assert column.iloc[:first_valid].isna().all()
    assert column.iloc[first_valid:first_valid + 50].notna().all()


def test_known_values(prices: pd.DataFrame) -> None:
    got = features_for(prices)
    close = prices["close"].to_numpy()
    log_returns = np.diff(np.log(close))
    t = 700
    assert got["ret_5d"].iloc[t] == pytest.approx(close[t] / close[t - 5] - 1, rel=1e-12)
    assert got["mom_12_1"].iloc[t] == pytest.approx(close[t - 21] / close[t - 252] - 1, rel=1e-12)
    assert got["vol_21d"].iloc[t] == pytest.approx(np.std(log_returns[t - 21:t], ddof=1), rel=1e-9)
    assert got["dist_sma_50"].iloc[t] == pytest.approx(close[t] / close[t - 49:t + 1].mean() - 1, rel=1e-9)
    assert got["drawdown_252d"].iloc[t] == pytest.approx(close[t] / close[t - 251:t + 1].max() - 1, rel=1e-12)
    assert got["dividend_yield_252d"].iloc[t] == pytest.approx(5 * 0.25 / (close[t] * 1.1), rel=1e-12)
    assert got["rsi_14"].dropna().between(0, 100).all()
    assert got["days_since_dividend"].iloc[30] == 0 and got["days_since_dividend"].iloc[40] == 10


def test_symbol_that_is_the_market_has_beta_one_and_no_relative_strength(prices: pd.DataFrame) -> None:
    got = features_for(prices, sector_level=prices["close"]).iloc[300:]
    np.testing.assert_allclose(got["beta_63d"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(got["corr_63d"], 1.0, rtol=1e-6)
    for name in ("rs_market_21d", "rs_market_63d", "rs_sector_21d", "rs_sector_63d"):
        np.testing.assert_allclose(got[name], 0.0, atol=1e-12)


def test_without_a_sector_only_sector_features_are_missing(universe: dict[str, pd.DataFrame],
                                                           features: pd.DataFrame) -> None:
    ctx = build_market({s: p["close"] for s, p in universe.items()}, {}, None)
    got = compute_features(universe["S1"], ctx.market, None, shock_sigma=4.0)
    sector_names = ["sector_ret_21d", "rs_sector_21d", "rs_sector_63d"]
    assert got[sector_names].isna().all().all()
    pd.testing.assert_frame_equal(got.drop(columns=sector_names), features.drop(columns=sector_names))


def test_market_rows_after_a_date_never_change_it(prices: pd.DataFrame) -> None:
    """Future market rows (here one absurd extra date) and market dates the symbol lacks only
    ever act through the latest PAST value."""
    ctx = build_market({"X": prices["close"]}, {}, None)
    base = compute_features(prices, ctx.market, None, shock_sigma=4.0)
    future = pd.DataFrame({"level": [1e9], "ret": [1e7], "regime": ["down_high_vol"]},
                          index=pd.DatetimeIndex([prices.index[-1] + pd.Timedelta(days=1)], name="date"))
    extended = pd.concat([ctx.market, future])
    pd.testing.assert_frame_equal(compute_features(prices, extended, None, shock_sigma=4.0), base)

    gappy = compute_features(prices, ctx.market.drop(index=prices.index[800]), None, shock_sigma=4.0)
    level, close = ctx.market["level"].to_numpy(), prices["close"].to_numpy()
    assert gappy["market_ret_21d"].iloc[800] == base["market_ret_21d"].iloc[799]
    assert gappy["rs_market_21d"].iloc[800] == pytest.approx(
        np.log(close[800] / close[779]) - np.log(level[799] / level[779]), rel=1e-12)


def test_market_that_starts_later_is_missing_before_not_back_filled(prices: pd.DataFrame) -> None:
    ctx = build_market({"X": prices["close"].iloc[400:]}, {}, None)
    got = compute_features(prices, ctx.market, None, shock_sigma=4.0)
    assert got["rs_market_21d"].iloc[:421].isna().all()
    assert got["rs_market_21d"].iloc[421:].notna().all()


def test_volume_features_ignore_how_the_source_counts_shares_across_a_split(prices: pd.DataFrame) -> None:
    """Raw traded shares double at a 2:1 split while the raw close halves; a split-adjusted source
    shows neither. Both give the same volume features."""
    halving = np.where(np.arange(len(prices)) < 700, 1.0, 0.5)
    raw = prices.assign(raw_close=prices["raw_close"] * halving, volume=prices["volume"] / halving)
    names = ["volume_z_20d", "volume_ratio_5_20", "log_dollar_volume_20d"]
    np.testing.assert_allclose(features_for(raw)[names], features_for(prices)[names], rtol=1e-9)


def test_flat_bar_gives_missing_not_infinite(prices: pd.DataFrame) -> None:
    flat = prices.copy()
    flat.iloc[500, flat.columns.get_indexer(["open", "high", "low"])] = flat["close"].iloc[500]
    got = features_for(flat)
    assert np.isnan(got["close_location"].iloc[500])
    assert got["range_1d"].iloc[500] == 0.0


@pytest.mark.parametrize("module", ["features.py", "events.py", "market.py"])
def test_no_negative_shift_in_point_in_time_code(module: str) -> None:
    assert not re.search(r"shift\(\s*-", (BACKEND / module).read_text(encoding="utf-8"))


def test_features_and_labels_fit_the_per_symbol_budget() -> None:
    """About 17 years of one symbol. Budget 0.1 s; asserted with headroom for a busy machine."""
    prices = make_prices(3, rows=4300)
    ctx = build_market({"X": prices["close"]}, {"X": "Tech"}, None)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        compute_features(prices, ctx.market, ctx.sectors["Tech"], shock_sigma=4.0)
        triple_barrier(prices["close"], horizon=20, barrier_k=1.5, vol_window=20, stride=5)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.25, f"features + labels took {min(timings):.3f} s for 4,300 rows"


# --- events: dividends, splits and price shocks judged against the volatility before the move ---
def quiet_prices(rows: int = 200) -> pd.DataFrame:
    """A calm walk (0.5% daily) with a dividend at row 70, a 4:1 split at row 90 and a +50% jump
    at row 120 (close multiplied from there on)."""
    prices = make_prices(2, rows=rows, daily_vol=0.005).assign(dividend=0.0)
    prices.iloc[70, prices.columns.get_loc("dividend")] = 0.5
    prices.iloc[90, prices.columns.get_loc("split")] = 4.0
    close = prices["close"].to_numpy().copy()
    close[120:] *= 1.5
    return prices.assign(close=close)


def test_detects_each_kind_with_its_value() -> None:
    prices = quiet_prices()
    events = detect_events(prices, shock_sigma=8.0)
    assert list(events.columns) == ["date", "kind", "value"]
    found = {(prices.index.get_loc(date), kind): value for date, kind, value in events.itertuples(index=False)}
    assert found.keys() == {(70, "dividend"), (90, "split"), (120, "shock")}
    assert found[70, "dividend"] == 0.5 and found[90, "split"] == 4.0
    assert found[120, "shock"] == pytest.approx(prices["close"].iloc[120] / prices["close"].iloc[119] - 1)


def test_a_shock_is_measured_against_sigma_before_it() -> None:
    """With the move inside its own 60-day window its z-score could never exceed sqrt(59) < 8."""
    events = detect_events(quiet_prices(), shock_sigma=8.0)
    assert (events["kind"] == "shock").sum() == 1


def test_no_shock_before_sixty_returns_of_history() -> None:
    prices = quiet_prices()
    close = prices["close"].to_numpy().copy()
    close[40:] *= 1.5
    events = detect_events(prices.assign(close=close), shock_sigma=4.0)
    assert prices.index[40] not in set(events.loc[events["kind"] == "shock", "date"])


def test_no_events_gives_an_empty_frame_and_zero_counts() -> None:
    prices = make_prices(3, rows=100).assign(dividend=0.0)
    events = detect_events(prices, shock_sigma=100.0)
    assert events.empty and list(events.columns) == ["date", "kind", "value"]
    features = event_features(prices, events)
    assert (features["dividend_count_21d"].iloc[20:] == 0).all()
    assert features[["days_since_dividend", "days_since_split", "days_since_shock"]].isna().all().all()


def test_event_features_count_recent_events_and_days_since() -> None:
    prices = quiet_prices()
    features = event_features(prices, detect_events(prices, shock_sigma=8.0))
    assert tuple(features.columns) == EVENT_FEATURE_NAMES
    assert (features.dtypes == "float64").all()
    dividends_5d = features["dividend_count_5d"]
    assert dividends_5d.iloc[:4].isna().all()
    assert dividends_5d.iloc[69] == 0 and dividends_5d.iloc[70:75].eq(1).all() and dividends_5d.iloc[75] == 0
    assert features["dividend_count_63d"].iloc[70 + 62] == 1 and features["dividend_count_63d"].iloc[70 + 63] == 0
    since = features["days_since_split"]
    assert since.iloc[:90].isna().all() and since.iloc[90] == 0 and since.iloc[150] == 60
    # shocks are only countable once a sigma exists (row 61), then for a full window
    assert features["shock_count_5d"].iloc[:65].isna().all() and features["shock_count_5d"].iloc[65] == 0
    assert features["shock_count_21d"].iloc[120] == 1 and features["days_since_shock"].iloc[125] == 5
    np.testing.assert_array_equal(features["split_count_21d"].iloc[90:111], 1.0)
