"""The account simulation and its figures on hand-built prices whose right answer is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backend.labels import triple_barrier
from trainer.portfolio.performance import (
    deflated_sharpe_ratio,
    excess_return,
    expected_max_sharpe,
    max_drawdown,
    probabilistic_sharpe_ratio,
    sharpe_statistics,
    summarise,
)
from trainer.portfolio.simulation import Panel, Rules, buy_and_hold, exit_rows, simulate, weights

DAYS = pd.bdate_range("2020-01-01", periods=60)


def panel_of(**closes: np.ndarray) -> tuple[Panel, dict[str, pd.Series]]:
    series = {symbol: pd.Series(values, index=DAYS[:len(values)]) for symbol, values in closes.items()}
    return Panel.from_closes(series), series


def every(step: int, panel: Panel, start: int = 0) -> np.ndarray:
    return np.arange(start, len(panel.dates) - 1, step)


def horizon_exits(panel: Panel, horizon: int) -> np.ndarray:
    """Every position ends `horizon` rows after its entry (at the last row near the end)."""
    last = len(panel.dates) - 1
    rows = np.minimum(np.arange(len(panel.dates))[:, None] + horizon, last)
    exits = np.where(np.arange(len(panel.dates))[:, None] < last, rows, -1)
    return np.repeat(exits, panel.close.shape[1], axis=1)


def test_a_stock_with_constant_drift_compounds_exactly_without_costs():
    growth = 0.001
    panel, _ = panel_of(A=100 * (1 + growth) ** np.arange(60))
    rebalance = every(10, panel)
    result = simulate(panel, horizon_exits(panel, 10), rebalance, np.zeros((len(rebalance), 1)),
                      Rules(top=1, cost=0.0, tranches=1), last_row=59)
    expected = (1 + growth) ** np.arange(60)
    np.testing.assert_allclose(result.daily["nav"], expected, rtol=1e-12)
    np.testing.assert_allclose(result.daily["net_return"].iloc[1:], growth, rtol=1e-9)
    figures = summarise(result.daily, result.trades)
    assert figures["total_return"] == pytest.approx((1 + growth) ** 59 - 1, rel=1e-12)
    assert figures["annual_return"] == pytest.approx((1 + growth) ** (59 * 252 / 60) - 1, rel=1e-9)
    # invested every day but the last, when the last position's horizon (clamped to the data) ends
    assert figures["max_drawdown"] == 0.0 and figures["exposure"] == pytest.approx(59 / 60)
    assert figures["hit_rate"] == 1.0 and figures["avg_holding_days"] == pytest.approx((5 * 10 + 9) / 6)


def test_sharpe_sortino_and_volatility_of_a_known_return_sequence():
    moves = np.tile([0.02, -0.01, 0.005], 20)[:59]
    panel, _ = panel_of(A=100 * np.cumprod(np.r_[1.0, 1 + moves]))
    rebalance = every(10, panel)
    result = simulate(panel, horizon_exits(panel, 10), rebalance, np.zeros((len(rebalance), 1)),
                      Rules(top=1, cost=0.0, tranches=1), last_row=59)
    returns = np.r_[0.0, moves]  # the first day is the entry at its close: no move yet
    np.testing.assert_allclose(result.daily["net_return"], returns, atol=1e-12)
    figures = summarise(result.daily, result.trades)
    assert figures["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert figures["annual_volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(252), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert figures["sortino"] == pytest.approx(returns.mean() / downside * math.sqrt(252), rel=1e-9)


def test_a_stock_that_doubles_then_halves_draws_down_fifty_percent_between_the_right_dates():
    path = np.r_[np.geomspace(100, 200, 21), np.geomspace(200, 100, 21)[1:], np.full(19, 100.0)]
    panel, _ = panel_of(A=path)
    rebalance = every(10, panel)
    result = simulate(panel, horizon_exits(panel, 10), rebalance, np.zeros((len(rebalance), 1)),
                      Rules(top=1, cost=0.0, tranches=1), last_row=59)
    drawdown, peak, trough = max_drawdown(result.daily["nav"])
    assert drawdown == pytest.approx(-0.5, rel=1e-12)
    assert peak == DAYS[20] and trough == DAYS[40]
    figures = summarise(result.daily, result.trades)
    assert figures["calmar"] == pytest.approx(figures["annual_return"] / 0.5)


def test_costs_on_a_known_turnover():
    """Flat prices, the account switches all of its money between two stocks at every rebalance:
    the first buy costs c, each switch sells and buys the whole account (2c)."""
    cost, switches = 0.001, 5
    panel, _ = panel_of(A=np.full(60, 50.0), B=np.full(60, 80.0))
    rebalance = every(10, panel)[:switches + 1]
    scores = np.array([[1.0, 0.0] if number % 2 == 0 else [0.0, 1.0] for number in range(len(rebalance))])
    result = simulate(panel, horizon_exits(panel, 10), rebalance, scores, Rules(top=1, cost=cost, tranches=1),
                      last_row=55)
    expected_nav = (1 - cost) * (1 - 2 * cost) ** switches
    assert result.daily["nav"].iloc[-1] == pytest.approx(expected_nav, rel=1e-12)
    figures = summarise(result.daily, result.trades)
    expected_costs = cost + sum(2 * cost * (1 - cost) * (1 - 2 * cost) ** k for k in range(switches))
    assert figures["costs"] == pytest.approx(expected_costs, rel=1e-12)
    turnover = 1 + sum(2 * (1 - cost) * (1 - 2 * cost) ** k / ((1 - cost) * (1 - 2 * cost) ** k)
                       for k in range(switches))
    assert result.daily["turnover"].sum() == pytest.approx(turnover, rel=1e-12)
    assert figures["n_trades"] == switches + 1
    assert np.allclose(result.daily["gross_return"], 0.0, atol=1e-15), "flat prices: before costs nothing changes"


def test_a_name_kept_from_one_turn_to_the_next_pays_no_cost_again():
    cost = 0.002
    panel, _ = panel_of(A=np.full(60, 10.0), B=np.full(60, 20.0))
    rebalance = every(10, panel)
    scores = np.tile([1.0, 0.0], (len(rebalance), 1))
    result = simulate(panel, horizon_exits(panel, 10), rebalance, scores, Rules(top=1, cost=cost, tranches=1),
                      last_row=55)
    assert result.daily["costs"].sum() == pytest.approx(cost)
    assert result.daily["nav"].iloc[-1] == pytest.approx(1 - cost)


def test_a_barrier_exit_waits_in_cash_until_the_tranches_next_turn():
    path = np.r_[np.full(5, 100.0), np.full(55, 120.0)]
    panel, _ = panel_of(A=path)
    exits = horizon_exits(panel, 10)
    exits[0, 0] = 5  # the trade entered on day 0 hits its upper barrier on day 5
    rebalance = np.array([0])
    result = simulate(panel, exits, rebalance, np.zeros((1, 1)), Rules(top=1, cost=0.001, tranches=1),
                      last_row=20)
    nav = result.daily["nav"].to_numpy()
    expected = (1 - 0.001) * 1.2 * (1 - 0.001)
    assert nav[5] == pytest.approx(expected) and np.allclose(nav[5:], expected)
    assert result.daily["exposure"].iloc[4] == pytest.approx(1.0) and (result.daily["exposure"].iloc[5:] == 0).all()
    assert result.trades["exit_date"].tolist() == [DAYS[5]] and result.trades["return"].iloc[0] == pytest.approx(0.2)


def test_tranches_never_hold_more_than_the_capital():
    rng = np.random.default_rng(3)
    closes = {f"S{i}": 50 * np.exp(np.cumsum(rng.normal(0, 0.03, 60))) for i in range(20)}
    panel, series = panel_of(**closes)
    exits = exit_rows(panel, series, horizon=10, barrier_k=1.0, vol_window=5, exits="barriers")
    rebalance = np.arange(5, 45, 5)
    scores = rng.normal(size=(len(rebalance), 20))
    result = simulate(panel, exits, rebalance, scores, Rules(top=0.2, cost=0.001, tranches=2))
    assert (result.daily["exposure"] <= 1.0 + 1e-12).all()
    assert result.daily["exposure"].max() > 0.5, "both tranches invested at times"
    assert len(result.trades) == 4 * len(rebalance)


def test_long_short_holds_half_the_capital_on_each_side():
    target = weights(np.arange(10.0), np.ones(10, dtype=bool), Rules(top=2, long_short=True))
    assert target[[8, 9]].tolist() == [0.25, 0.25] and target[[0, 1]].tolist() == [-0.25, -0.25]
    assert target.sum() == 0 and np.abs(target).sum() == 1.0
    assert weights(np.arange(10.0), np.ones(10, dtype=bool), Rules(top=0.1)).tolist().count(1.0) == 1
    assert np.count_nonzero(weights(np.zeros(3), np.array([True, False, True]), Rules(top=None))) == 2


def test_a_short_position_earns_when_the_stock_falls():
    panel, _ = panel_of(A=np.r_[100.0, np.full(20, 90.0)], B=np.r_[100.0, np.full(20, 110.0)])
    result = simulate(panel, horizon_exits(panel, 10), np.array([0]), np.array([[0.0, 1.0]]),
                      Rules(top=1, long_short=True, cost=0.0, tranches=1), last_row=5)
    # +0.5 in B (+10%) and -0.5 in A (-10%): +5% + 5%
    assert result.daily["nav"].iloc[-1] == pytest.approx(1.10)


def test_exit_rows_end_each_position_where_the_backtests_trade_from_that_date_ends():
    rng = np.random.default_rng(5)
    closes = {"A": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 60))),
              "B": 30 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))}
    panel, series = panel_of(**closes)
    exits = exit_rows(panel, series, horizon=8, barrier_k=1.0, vol_window=5, exits="barriers")
    for column, symbol in enumerate(panel.symbols):
        trades = triple_barrier(series[symbol], horizon=8, barrier_k=1.0, vol_window=5, stride=3)
        rows = panel.rows_of(trades["entry_date"].to_numpy(dtype="datetime64[D]"))
        assert (panel.dates[exits[rows, column]] == trades["exit_date"].to_numpy(dtype="datetime64[D]")).all()
    assert (exits[:5] == -1).all(), "no volatility estimate before vol_window returns"
    # B stops after 50 rows: an entry without a full horizon ends at a barrier or B's last close
    # (whom to buy must not depend on knowing that it stops); no entry on or after its last price
    assert (exits[49:, 1] == -1).all() and (exits[42:49, 1] <= 49).all() and (exits[42:49, 1] > np.arange(42, 49)).all()
    assert 49 in exits[42:49, 1], "some of them reach the last close"
    fixed = exit_rows(panel, series, horizon=8, barrier_k=1.0, vol_window=5, exits="horizon")
    assert fixed[10, 0] == 18


def test_buy_and_hold_pays_one_entry_cost():
    level = pd.Series(np.linspace(100, 150, 60), index=DAYS)
    daily = buy_and_hold(level, DAYS[10].to_datetime64(), DAYS[50].to_datetime64(), 0.001)
    assert daily["nav"].iloc[-1] == pytest.approx(0.999 * level.iloc[50] / level.iloc[10])
    assert daily["costs"].sum() == pytest.approx(0.001) and len(daily) == 41


def test_deflated_sharpe_ratio_reproduces_the_worked_example_of_bailey_and_lopez_de_prado_2014():
    """The paper's numerical example: N = 100 trials whose annualised Sharpe ratios vary with
    variance 1/2, T = 1250 daily returns, skewness -3, kurtosis 10, annualised SR 2.5 (250 days a
    year): SR0 = 0.1132 a day, DSR = 0.9004; 0.9505 with N = 46; normal returns need N = 88."""
    sharpe, variance = 2.5 / math.sqrt(250), 0.5 / 250
    benchmark = expected_max_sharpe(variance, 100)
    assert benchmark == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe_ratio(sharpe, benchmark, 1250, -3, 10) == pytest.approx(0.9004, abs=5e-5)
    assert probabilistic_sharpe_ratio(sharpe, expected_max_sharpe(variance, 46), 1250, -3, 10) == \
        pytest.approx(0.9505, abs=5e-5)
    assert probabilistic_sharpe_ratio(sharpe, expected_max_sharpe(variance, 88), 1250, 0, 3) == \
        pytest.approx(0.9505, abs=5e-5)
    trials = np.random.default_rng(0).normal(size=100)
    trials = (trials - trials.mean()) / trials.std(ddof=1) * math.sqrt(variance)
    assert deflated_sharpe_ratio(sharpe, trials, 1250, -3, 10) == pytest.approx(0.9004, abs=5e-5)


def test_probabilistic_sharpe_ratio_reproduces_the_example_of_bailey_and_lopez_de_prado_2012():
    """Monthly SR 1.585/sqrt(12) over 24 months, skewness -2.448, kurtosis 10.164: PSR(0) = 0.913;
    with normal returns 0.982."""
    sharpe = 1.585 / math.sqrt(12)
    assert probabilistic_sharpe_ratio(sharpe, 0.0, 24, -2.448, 10.164) == pytest.approx(0.913, abs=5e-4)
    assert probabilistic_sharpe_ratio(sharpe, 0.0, 24, 0.0, 3.0) == pytest.approx(0.982, abs=5e-4)


def test_more_trials_make_the_same_sharpe_ratio_less_credible():
    rng = np.random.default_rng(1)
    daily = pd.DataFrame({"net_return": rng.normal(0.0008, 0.01, 500)})
    few = sharpe_statistics(daily, rng.normal(0, 0.03, 3))["dsr"]
    many = sharpe_statistics(daily, rng.normal(0, 0.03, 300))["dsr"]
    psr = sharpe_statistics(daily, [])["psr"]
    assert many < few < psr


def test_excess_return_and_its_interval():
    dates = pd.bdate_range("2021-01-01", periods=200)
    rng = np.random.default_rng(2)
    base = pd.DataFrame({"net_return": rng.normal(0, 0.01, 200)}, index=dates)
    better = pd.DataFrame({"net_return": base["net_return"] + 0.0001}, index=dates)
    point, low, high = excess_return(better, base, block_days=20, reps=200, confidence=0.95, seed=0)
    assert point == pytest.approx(0.0252) and low == pytest.approx(0.0252) and high == pytest.approx(0.0252)
    noisy = pd.DataFrame({"net_return": rng.normal(0, 0.01, 200)}, index=dates)
    point, low, high = excess_return(noisy, base, block_days=20, reps=500, confidence=0.95, seed=0)
    assert low < point < high and low < 0 < high


def _random_walk_panel(symbols: int, days: int, seed: int) -> tuple[Panel, dict[str, pd.Series], np.ndarray]:
    """Driftless LOG random walks with daily volatilities from 1% to 6%: no direction to find."""
    rng = np.random.default_rng(seed)
    sigma = np.linspace(0.01, 0.06, symbols)
    dates = pd.bdate_range("2010-01-01", periods=days)
    paths = 100 * np.exp(np.cumsum(rng.normal(0, 1, (days, symbols)) * sigma, axis=0))
    closes = {f"S{i:03d}": pd.Series(paths[:, i], index=dates) for i in range(symbols)}
    return Panel.from_closes(closes), closes, sigma


def test_holding_volatile_stocks_beats_equal_weight_on_a_random_walk_but_not_its_volatility_twin():
    """The convexity trap: on driftless log prices a volatile stock's simple return has mean
    exp(sigma^2 / 2) - 1 > 0, so an account that just holds the most volatile stocks out-earns
    equal weight with no knowledge of direction; the twin holding other stocks of the same
    volatility earns the same, so the excess over the twin is nothing."""
    from trainer.portfolio.simulation import trailing_volatility

    panel, closes, _ = _random_walk_panel(300, 3000, seed=11)
    exits = exit_rows(panel, closes, horizon=20, barrier_k=1.5, vol_window=20, exits="barriers")
    held = exit_rows(panel, closes, horizon=20, barrier_k=1.5, vol_window=20, exits="horizon")
    volatility = trailing_volatility(panel, closes, 20)
    rebalance = np.arange(25, 2970, 5)
    scores = volatility[rebalance]  # the most volatile first
    rules = Rules(top=0.1, cost=0.001, tranches=4)
    strategy = simulate(panel, exits, rebalance, scores, rules, last_row=2974).daily
    equal = simulate(panel, held, rebalance, np.zeros_like(scores), rules.holding(), last_row=2974).daily
    twin = simulate(panel, exits, rebalance, scores, rules, last_row=2974, match_volatility=volatility).daily
    _, low, _ = excess_return(strategy, equal, block_days=20, reps=500, confidence=0.95, seed=0)
    assert low > 0.03, "precondition: volatility alone beats equal weight on a random walk"
    point, low, high = excess_return(strategy, twin, block_days=20, reps=500, confidence=0.95, seed=0)
    assert low < 0 < high and abs(point) < 0.05, (point, low, high)


def test_the_volatility_twin_holds_other_stocks_of_the_nearest_volatility():
    from trainer.portfolio.simulation import volatility_matched

    target = np.array([0.5, 0.0, 0.0, 0.5, 0.0, 0.0])
    volatility = np.array([0.030, 0.029, 0.0095, 0.011, 0.012, np.nan])
    matched = volatility_matched(target, np.ones(6, dtype=bool), volatility)
    assert matched.tolist() == [0.0, 0.5, 0.0, 0.0, 0.5, 0.0]
    short = volatility_matched(np.array([0.5, -0.5, 0, 0]), np.ones(4, dtype=bool), np.array([1.0, 2.0, 1.1, 2.2]))
    assert short.tolist() == [0, 0, 0.5, -0.5]


def test_a_planted_direction_signal_still_beats_its_volatility_twin():
    from trainer.portfolio.simulation import trailing_volatility

    panel, closes, _ = _random_walk_panel(300, 1500, seed=12)
    exits = exit_rows(panel, closes, horizon=20, barrier_k=1.5, vol_window=20, exits="barriers")
    volatility = trailing_volatility(panel, closes, 20)
    rebalance = np.arange(25, 1470, 5)
    future = np.log(panel.close[rebalance + 20] / panel.close[rebalance])
    noise = np.random.default_rng(0).normal(0, 1, future.shape)
    scores = future / volatility[rebalance] + 40 * noise  # a faint view of the next 20 days
    rules = Rules(top=0.1, cost=0.001, tranches=4)
    strategy = simulate(panel, exits, rebalance, scores, rules, last_row=1474).daily
    twin = simulate(panel, exits, rebalance, scores, rules, last_row=1474, match_volatility=volatility).daily
    _, low, _ = excess_return(strategy, twin, block_days=20, reps=500, confidence=0.95, seed=0)
    assert low > 0


def test_exit_rows_refuse_a_symbol_with_a_date_twice():
    panel, series = panel_of(A=100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 40))))
    twice = {"A": pd.concat([series["A"], series["A"].iloc[[10]]])}
    with pytest.raises(ValueError, match="A: its prices hold a date twice"):
        exit_rows(panel, twice, horizon=8, barrier_k=1.0, vol_window=5, exits="barriers")
