"""Market proxy, sector indices and point-in-time regimes; rows for the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import store
from backend.market import (
    EQUAL_WEIGHT,
    REGIMES,
    TREND_WINDOW,
    build_market,
    market_rows,
    regime_flags,
    regimes,
    sector_rows,
)

DAYS = pd.bdate_range("2021-03-01", periods=4, name="date")


def test_equal_weight_index_on_the_union_calendar() -> None:
    """A trades every day; B misses day 2, so its day-3 return spans the gap."""
    closes = {"A": pd.Series([10.0, 11.0, 11.0, 12.1], index=DAYS),
              "B": pd.Series([20.0, 18.0, 18.0], index=DAYS[[0, 2, 3]])}
    ctx = build_market(closes, {"A": "Tech", "B": "Tech"}, None)
    assert ctx.proxy_name == EQUAL_WEIGHT
    np.testing.assert_allclose(ctx.market["level"], [100.0, 110.0, 104.5, 109.725], rtol=1e-12)
    np.testing.assert_allclose(ctx.market["ret"].iloc[1:], [0.1, -0.05, 0.05], rtol=1e-12)
    pd.testing.assert_series_equal(ctx.sectors["Tech"], ctx.market["level"])
    assert ctx.market.index.equals(DAYS)


def test_proxy_close_is_the_market_when_given() -> None:
    spy = pd.Series([400.0, 404.0, 402.0, 410.0], index=DAYS)
    ctx = build_market({"A": pd.Series([1.0, 2.0, 3.0, 4.0], index=DAYS)}, {"A": "Tech"}, spy)
    assert ctx.proxy_name == "SPY"
    np.testing.assert_array_equal(ctx.market["level"], spy)
    assert ctx.market["ret"].iloc[1] == pytest.approx(0.01)
    assert list(ctx.sectors) == ["Tech"]


def test_sectors_group_their_members_only() -> None:
    closes = {"A": pd.Series([10.0, 11.0, 12.0, 13.0], index=DAYS),
              "B": pd.Series([10.0, 9.0, 9.0, 9.0], index=DAYS),
              "C": pd.Series([5.0, 5.0, 5.5, 5.5], index=DAYS)}
    ctx = build_market(closes, {"A": "Tech", "B": "Energy", "C": "Tech", "NOPRICES": "Utilities"}, None)
    assert sorted(ctx.sectors) == ["Energy", "Tech"]
    np.testing.assert_allclose(ctx.sectors["Energy"], [100.0, 90.0, 90.0, 90.0])
    np.testing.assert_allclose(ctx.sectors["Tech"], 100 * np.cumprod([1.0, 1.05, 1 + (1 / 11 + 0.1) / 2,
                                                                      1 + 1 / 12 / 2]))


def test_nothing_to_build_from_is_an_error() -> None:
    with pytest.raises(ValueError, match="proxy close or at least one"):
        build_market({}, {}, None)


def phases(*spec: tuple[int, float, float]) -> pd.Series:
    """A level from phases of (days, daily drift, alternating +-amplitude) log returns."""
    returns = np.concatenate([drift + amplitude * (-1.0) ** np.arange(days) for days, drift, amplitude in spec])
    return pd.Series(100 * np.exp(np.cumsum(returns)), index=pd.bdate_range("2000-01-03", periods=len(returns)))


def test_regimes_follow_trend_and_volatility() -> None:
    level = phases((300, 0.002, 0.02), (100, 0.002, 0.005), (40, 0.002, 0.05), (100, -0.01, 0.003),
                   (40, -0.01, 0.05))
    regime = regimes(level)
    assert regime.iloc[:TREND_WINDOW - 1].isna().all() and regime.iloc[TREND_WINDOW - 1:].notna().all()
    assert set(regime.dropna()) <= set(REGIMES)
    assert regime.iloc[395] == "up_low_vol"
    assert regime.iloc[435] == "up_high_vol"
    assert regime.iloc[530] == "down_low_vol"
    assert regime.iloc[575] == "down_high_vol"


def test_regime_flags_split_the_label() -> None:
    flags = regime_flags(pd.Series(["up_low_vol", "down_high_vol", None, np.nan], dtype=object))
    np.testing.assert_array_equal(flags["regime_trend_up"], [1.0, 0.0, np.nan, np.nan])
    np.testing.assert_array_equal(flags["regime_high_vol"], [0.0, 1.0, np.nan, np.nan])


@pytest.mark.parametrize("proxy", [False, True])
def test_market_context_is_point_in_time(proxy: bool) -> None:
    """Built from closes cut at t, every value up to t equals the full-history build."""
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2001-01-01", periods=900, name="date")
    closes = {f"S{i}": pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.02, 900))), index=dates).iloc[i * 150:]
              for i in range(4)}
    closes["S1"] = closes["S1"].drop(index=dates[400:410])
    sectors = {"S0": "A", "S1": "A", "S2": "B", "S3": "B"}
    spy = pd.Series(300 * np.exp(np.cumsum(rng.normal(0, 0.01, 900))), index=dates) if proxy else None
    full = build_market(closes, sectors, spy)
    for t in (0, 5, 150, 198, 199, 200, 404, 650, 899):
        date = dates[t]
        cut = build_market({s: c.loc[:date] for s, c in closes.items()}, sectors,
                           None if spy is None else spy.loc[:date])
        pd.testing.assert_frame_equal(cut.market, full.market.loc[:date], check_exact=False, rtol=1e-12)
        for sector, level in cut.sectors.items():
            pd.testing.assert_series_equal(level, full.sectors[sector].loc[:date], check_exact=False, rtol=1e-12)


def test_rows_fit_the_store_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2010-01-01", periods=300, name="date")
    closes = {"A": pd.Series(np.exp(np.cumsum(rng.normal(0, 0.01, 300))), index=dates)}
    ctx = build_market(closes, {"A": "Tech"}, None)
    market, sectors = market_rows("run1", ctx), sector_rows("run1", ctx)
    assert market[0] == {"run_id": "run1", "date": "2010-01-01", "proxy": EQUAL_WEIGHT, "level": 100.0,
                         "regime": None}
    assert market[-1]["regime"] in REGIMES and type(market[-1]["level"]) is float
    assert sectors[1]["sector"] == "Tech" and sectors[1]["date"] == "2010-01-04"
    connection = store.connect(tmp_path / "trainer.db")
    with store.transaction(connection):
        store.write_rows(connection, "market_data", market)
        store.write_rows(connection, "sector_indices", sectors)
    assert connection.execute("SELECT COUNT(*), COUNT(regime) FROM market_data").fetchone() == (300, 101)
    assert connection.execute("SELECT COUNT(*) FROM sector_indices").fetchone() == (300,)
    connection.close()
