"""One symbol's backtest: features at the sampled entries, trades, summary and store rows."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import make_prices

from backend import store
from backend.backtest import InsufficientHistory, SymbolBacktest, backtest_symbol
from backend.features import FEATURE_NAMES, compute_features
from backend.labels import rows_needed
from backend.market import MarketContext, build_market

SETTINGS = {"horizon": 20, "barrier_k": 1.5, "vol_window": 20, "stride": 5, "shock_sigma": 4.0}


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return {f"S{seed}": make_prices(seed, split_row=700, shock_row=800) for seed in range(3)}


@pytest.fixture(scope="module")
def market(universe: dict[str, pd.DataFrame]) -> MarketContext:
    return build_market({s: p["close"] for s, p in universe.items()}, {s: "Tech" for s in universe}, None)


@pytest.fixture(scope="module")
def result(universe: dict[str, pd.DataFrame], market: MarketContext) -> SymbolBacktest:
    return backtest_symbol("S1", universe["S1"], market, "Tech", **SETTINGS)


def test_features_are_the_point_in_time_rows_at_the_entries(result: SymbolBacktest, universe, market) -> None:
    assert tuple(result.features.columns) == FEATURE_NAMES
    assert list(result.features.index) == list(result.trades["entry_date"])
    full = compute_features(universe["S1"], market.market, market.sectors["Tech"], shock_sigma=4.0)
    pd.testing.assert_frame_equal(result.features, full.loc[result.features.index])


def test_trades_carry_the_regime_at_entry(result: SymbolBacktest, market: MarketContext) -> None:
    regime = market.market["regime"].loc[result.trades["entry_date"]].reset_index(drop=True)
    pd.testing.assert_series_equal(result.trades["regime"], regime, check_names=False)
    assert result.trades["regime"].isna().iloc[0] and result.trades["regime"].notna().iloc[-1]


def test_summary(result: SymbolBacktest) -> None:
    summary, trades = result.summary, result.trades
    assert summary["trades"] == len(trades) == summary["buy"] + summary["hold"] + summary["sell"]
    assert summary["buy"] == (trades["label"] == 2).sum() and summary["sell"] == (trades["label"] == 0).sum()
    assert summary["buy_share"] + summary["hold_share"] + summary["sell_share"] == pytest.approx(1.0)
    returns = trades["realised_return"]
    assert summary["avg_win"] == pytest.approx(returns[returns > 0].mean())
    assert summary["avg_loss"] == pytest.approx(returns[returns < 0].mean())
    assert (summary["first_date"], summary["last_date"]) == (
        trades["entry_date"].iloc[0].strftime("%Y-%m-%d"), trades["entry_date"].iloc[-1].strftime("%Y-%m-%d"))


def test_events_are_the_symbols_events(result: SymbolBacktest, universe: dict[str, pd.DataFrame]) -> None:
    kinds = set(result.events["kind"])
    assert {"dividend", "split", "shock"} <= kinds
    assert universe["S1"].index[800] in set(result.events.loc[result.events["kind"] == "shock", "date"])


def test_rows_round_trip_through_the_store(result: SymbolBacktest, tmp_path: Path) -> None:
    rows = result.rows("run1", completed_at="2024-05-01T10:00:00")
    assert set(rows) == {"feature_store", "trades", "events", "backtest_results"}
    first = rows["feature_store"][0]
    decoded = np.frombuffer(first["features"], dtype="<f8")
    np.testing.assert_array_equal(decoded, result.features.iloc[0].to_numpy())
    assert first["date"] == result.features.index[0].strftime("%Y-%m-%d")
    trade = rows["trades"][0]
    assert trade["regime"] is None and type(trade["label"]) is int and type(trade["realised_return"]) is float
    assert rows["backtest_results"][0]["completed_at"] == "2024-05-01T10:00:00"

    connection = store.connect(tmp_path / "trainer.db")
    store.write_symbol(connection, "run1", "S1", rows)
    counts = [connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("feature_store", "trades", "events", "backtest_results")]
    assert counts == [len(result.features), len(result.trades), len(result.events), 1]
    blob = connection.execute("SELECT features FROM feature_store ORDER BY date LIMIT 1").fetchone()[0]
    np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f8"), decoded)
    assert connection.execute("SELECT COUNT(regime) FROM trades").fetchone()[0] == result.trades["regime"].notna().sum()
    connection.close()


def test_is_pure_and_picklable(universe: dict[str, pd.DataFrame], market: MarketContext,
                               result: SymbolBacktest) -> None:
    """It runs in joblib workers: no input is modified, and the result crosses process borders."""
    before = universe["S1"].copy(), market.market.copy()
    again = backtest_symbol("S1", universe["S1"], market, "Tech", **SETTINGS)
    pd.testing.assert_frame_equal(universe["S1"], before[0])
    pd.testing.assert_frame_equal(market.market, before[1])
    restored = pickle.loads(pickle.dumps(again))
    pd.testing.assert_frame_equal(restored.features, result.features)
    assert restored.summary == result.summary


def test_unknown_sector_only_loses_sector_features(universe, market) -> None:
    got = backtest_symbol("S1", universe["S1"], market, "Unknown", **SETTINGS)
    assert got.features[["sector_ret_21d", "rs_sector_21d", "rs_sector_63d"]].isna().all().all()


def test_too_little_history_names_symbol_and_counts(market: MarketContext) -> None:
    needed = rows_needed(horizon=20, vol_window=20)
    with pytest.raises(InsufficientHistory, match=rf"NEWCO has {needed - 1} price rows.*at least {needed}"):
        backtest_symbol("NEWCO", make_prices(9, rows=needed - 1), market, "Tech", **SETTINGS)
    assert issubclass(InsufficientHistory, ValueError)
    just_enough = backtest_symbol("NEWCO", make_prices(9, rows=needed), market, "Tech", **SETTINGS)
    assert just_enough.summary["trades"] == 1 and len(just_enough.rows("r", "now")["feature_store"]) == 1
