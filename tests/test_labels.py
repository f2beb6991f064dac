"""Triple-barrier labels on hand-made paths, the sampling grid, and a slow reference implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features import make_prices

from backend.labels import BUY, HOLD, LABEL_COLUMNS, SELL, barrier_prices, rows_needed, triple_barrier

VOL_WINDOW, HORIZON, K = 4, 5, 1.0
# Four log returns +a, -a, +a, -a before the entry: sigma = a * sqrt(4/3), entry close = 100.
A = 0.01
BARRIER = K * A * np.sqrt(4 / 3) * np.sqrt(HORIZON)  # ~0.0258


def one_entry(path_returns: list[float]) -> pd.DataFrame:
    """A series whose only labelled entry is row 4 (close 100); path_returns are close/100 - 1."""
    warm_up = 100.0 * np.exp(np.cumsum([0.0, A, -A, A, -A]))
    closes = np.concatenate([warm_up, 100.0 * (1.0 + np.asarray(path_returns))])
    close = pd.Series(closes, index=pd.bdate_range("2020-01-01", periods=len(closes), name="date"))
    trades = triple_barrier(close, horizon=HORIZON, barrier_k=K, vol_window=VOL_WINDOW, stride=1)
    assert len(trades) == 1 and trades["entry_date"].iloc[0] == close.index[4]
    assert trades["barrier"].iloc[0] == pytest.approx(BARRIER, rel=1e-12)
    return trades.assign(exit_row=close.index.get_indexer(trades["exit_date"]))


@pytest.mark.parametrize(("path", "reason", "label", "exit_row", "realised"), [
    ([0.01, 0.04, -0.05, 0.0, 0.0], "upper", BUY, 6, 0.04),          # upper first, lower later
    ([-0.01, -0.04, 0.05, 0.0, 0.0], "lower", SELL, 6, -0.04),       # lower first, upper later
    ([0.01, -0.01, 0.02, -0.02, 0.015], "time", HOLD, 9, 0.015),     # neither: exit at t+H
    ([0.0, 0.0, 0.0, 0.0, 0.03], "upper", BUY, 9, 0.03),             # touched on the last day
    ([0.0, 0.0, 0.0, 0.0, 0.0], "time", HOLD, 9, 0.0),               # flat path
])
def test_hand_made_paths(path: list[float], reason: str, label: int, exit_row: int, realised: float) -> None:
    trade = one_entry(path).iloc[0]
    assert (trade["exit_reason"], trade["label"], trade["exit_row"]) == (reason, label, exit_row)
    assert trade["realised_return"] == pytest.approx(realised, rel=1e-12, abs=1e-15)


def test_a_close_must_go_beyond_the_barrier() -> None:
    just_inside = BARRIER * (1 - 1e-9)  # in log returns, both ways
    trade = one_entry([np.expm1(just_inside), np.expm1(-just_inside), 0.0, 0.0, 0.0]).iloc[0]
    assert trade["exit_reason"] == "time"


def test_barriers_are_symmetric_in_log_returns() -> None:
    """A simple-return gain just past BARRIER stays inside (simple-return barriers would call it a
    BUY): the upper barrier is at exp(BARRIER) - 1, farther than BARRIER, the lower at exp(-BARRIER) - 1."""
    assert one_entry([BARRIER * (1 + 1e-6), 0.0, 0.0, 0.0, 0.0]).iloc[0]["exit_reason"] == "time"
    assert one_entry([np.expm1(-BARRIER) * (1 + 1e-6), 0.0, 0.0, 0.0, 0.0]).iloc[0]["exit_reason"] == "lower"
    take_profit, stop_loss = barrier_prices(100.0, BARRIER)
    assert take_profit * stop_loss == pytest.approx(100.0 ** 2)  # equal distance in log space
    assert one_entry([take_profit / 100 - 1 + 1e-9, 0, 0, 0, 0]).iloc[0]["label"] == BUY
    assert one_entry([stop_loss / 100 - 1 - 1e-9, 0, 0, 0, 0]).iloc[0]["label"] == SELL


def _random_walk_closes(rng: np.random.Generator, daily_vol: float, paths: int, days: int) -> np.ndarray:
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, daily_vol, size=(paths, days)), axis=1))


def test_mirrored_path_swaps_buy_and_sell_exactly() -> None:
    """Mirroring every log return (close -> c0^2 / close) turns each BUY into a SELL and back."""
    closes = _random_walk_closes(np.random.default_rng(3), 0.03, 1, 3000)[0]
    index = pd.bdate_range("2000-01-03", periods=closes.size)
    settings = {"horizon": 20, "barrier_k": 1.5, "vol_window": 20, "stride": 1}
    up = triple_barrier(pd.Series(closes, index=index), **settings)
    down = triple_barrier(pd.Series(100.0 ** 2 / closes, index=index), **settings)
    mirrored = up["label"].map({BUY: SELL, SELL: BUY, HOLD: HOLD})
    np.testing.assert_array_equal(mirrored.to_numpy(), down["label"].to_numpy())
    assert (up["label"] == BUY).sum() > 100


@pytest.mark.parametrize("daily_vol", [0.005, 0.01, 0.02, 0.03, 0.05])
def test_driftless_random_walk_is_neutral_at_every_volatility(daily_vol: float) -> None:
    """P(BUY | a barrier was touched) = 0.50 +/- 0.01 whatever the volatility: labels do not reward
    volatility. (Simple-return barriers gave 0.55 at 1% and 0.75 at 5% on the same paths.)"""
    closes = _random_walk_closes(np.random.default_rng(11), daily_vol, 1000, 4000)
    index = pd.bdate_range("2000-01-03", periods=closes.shape[1])
    buy = sell = 0
    for path in closes:
        labels = triple_barrier(pd.Series(path, index=index), horizon=20, barrier_k=1.5, vol_window=20,
                                stride=20)["label"].to_numpy()
        buy, sell = buy + int((labels == BUY).sum()), sell + int((labels == SELL).sum())
    assert buy + sell > 40_000  # standard error of the share about 0.0025
    assert buy / (buy + sell) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(("rows", "stride"), [(40, 3), (38, 3), (10, 1), (60, 5), (41, 7)])
def test_entries_every_stride_rows_from_first_sigma_without_partial_horizons(rows: int, stride: int) -> None:
    close = make_prices(0, rows=rows)["close"]
    trades = triple_barrier(close, horizon=HORIZON, barrier_k=K, vol_window=VOL_WINDOW, stride=stride)
    entry_rows = close.index.get_indexer(trades["entry_date"])
    exit_rows = close.index.get_indexer(trades["exit_date"])
    expected = np.arange(VOL_WINDOW, rows, stride)
    np.testing.assert_array_equal(entry_rows, expected[expected + HORIZON <= rows - 1])
    assert (exit_rows > entry_rows).all() and (exit_rows <= entry_rows + HORIZON).all()
    assert (exit_rows[trades["exit_reason"] == "time"] == entry_rows[trades["exit_reason"] == "time"] + HORIZON).all()


def test_too_short_history_gives_no_samples_and_exactly_enough_gives_one() -> None:
    needed = rows_needed(horizon=HORIZON, vol_window=VOL_WINDOW)
    short = triple_barrier(make_prices(0, rows=needed - 1)["close"], horizon=HORIZON, barrier_k=K,
                           vol_window=VOL_WINDOW, stride=1)
    assert list(short.columns) == list(LABEL_COLUMNS) and short.empty
    enough = triple_barrier(make_prices(0, rows=needed)["close"], horizon=HORIZON, barrier_k=K,
                            vol_window=VOL_WINDOW, stride=1)
    assert len(enough) == 1


def reference(close: pd.Series, horizon: int, barrier_k: float, vol_window: int, stride: int) -> pd.DataFrame:
    """The definition, one entry at a time (slow on purpose: an independent check)."""
    values = close.to_numpy()
    rows = []
    for entry in range(vol_window, len(values) - horizon, stride):
        sigma = np.std(np.diff(np.log(values[entry - vol_window:entry + 1])), ddof=1)
        barrier = barrier_k * sigma * np.sqrt(horizon)
        exit_, reason = entry + horizon, "time"
        for step in range(entry + 1, entry + horizon + 1):
            move = np.log(values[step] / values[entry])
            if move > barrier or move < -barrier:
                exit_, reason = step, "upper" if move > barrier else "lower"
                break
        rows.append((close.index[entry], close.index[exit_], reason, values[exit_] / values[entry] - 1,
                     {"upper": BUY, "lower": SELL, "time": HOLD}[reason], barrier))
    return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))


@pytest.mark.parametrize(("horizon", "barrier_k", "vol_window", "stride"), [(20, 1.5, 20, 5), (10, 0.5, 60, 1),
                                                                          (1, 1.0, 2, 3)])
def test_matches_the_reference_definition(horizon: int, barrier_k: float, vol_window: int, stride: int) -> None:
    close = make_prices(5, rows=900)["close"]
    got = triple_barrier(close, horizon=horizon, barrier_k=barrier_k, vol_window=vol_window, stride=stride)
    want = reference(close, horizon, barrier_k, vol_window, stride)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=False, rtol=1e-9)
    assert set(got["label"]) == {BUY, HOLD, SELL}


def test_barrier_uses_only_data_up_to_the_entry() -> None:
    close = make_prices(6, rows=300)["close"]
    full = triple_barrier(close, horizon=20, barrier_k=1.5, vol_window=20, stride=5).set_index("entry_date")
    changed = close.copy()
    changed.iloc[151:] *= np.linspace(1.0, 3.0, len(changed) - 151)
    moved = triple_barrier(changed, horizon=20, barrier_k=1.5, vol_window=20, stride=5).set_index("entry_date")
    assert full.index.equals(moved.index)
    np.testing.assert_array_equal(full.loc[:close.index[150], "barrier"], moved.loc[:close.index[150], "barrier"])
