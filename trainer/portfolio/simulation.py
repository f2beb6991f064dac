"""A compounded account that follows ranked signals after costs, in tranches, marked to market daily.

The report's first "equity curve" was a running sum of per-date mean returns of overlapping
trades: no one could hold it. This is an account one could: on every rebalance date (every
`stride` trading days) one tranche of the capital buys the top-ranked names in equal weights;
there are ceil(horizon / stride) tranches, so a tranche's positions (held at most `horizon`
trading days) are over before its next turn and the overlapping holdings of consecutive dates
never add up to more than the capital (no leverage). A position ends when its label's trade does
(the upper or lower barrier, or the horizon; computed by the backtest's own label code from the
entry date), or at the horizon with `exits = "horizon"`; its proceeds wait in the tranche's cash.

Costs are charged per side on the traded value: a rebalance trades only the difference between
the tranche's holdings and its targets, so a name kept from one turn to the next pays nothing.
Target weights are computed from the tranche value before that rebalance's cost, then scaled to
the value after it (costs are a small fraction, so this is the usual first-order treatment).

Pure numpy on arrays (no database, no files): the portfolio phase builds the panel and the scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.labels import outcome_at_row, triple_barrier
from trainer.config import LabelConfig, PortfolioConfig

TRADING_DAYS = 252


@dataclass(frozen=True)
class Rules:
    """What the account does; from PortfolioConfig and the label settings."""

    top: float | None  # a share (< 1) or a count (>= 1) of the candidates; None = all of them
    long_short: bool = False
    cost: float = 0.001  # per side, as a fraction of the traded value (10 bps)
    cash_rate_daily: float = 0.0
    tranches: int = 1

    @classmethod
    def from_config(cls, portfolio: PortfolioConfig, labels: LabelConfig) -> Rules:
        return cls(top=portfolio.top, long_short=portfolio.long_short,
                   cost=(portfolio.cost_bps + portfolio.slippage_bps) / 10_000.0,
                   cash_rate_daily=(1.0 + portfolio.cash_rate) ** (1.0 / TRADING_DAYS) - 1.0,
                   tranches=tranches(labels.horizon, labels.stride))

    def holding(self) -> Rules:
        """The same account holding every candidate long (the equal-weight benchmark)."""
        return Rules(top=None, long_short=False, cost=self.cost, cash_rate_daily=self.cash_rate_daily,
                     tranches=self.tranches)


def tranches(horizon: int, stride: int) -> int:
    """Enough tranches that a position (at most `horizon` days) ends before its tranche's next turn."""
    return max(1, math.ceil(horizon / stride))


@dataclass(frozen=True)
class Panel:
    """Adjusted closes of the universe on one trading calendar (the union of the symbols' dates).

    `close` is carried forward over a symbol's missing days inside its history (a day without a
    price is a day without a move) and NaN before its first and after its last price."""

    dates: np.ndarray  # (D,) datetime64[D], ascending
    symbols: tuple[str, ...]
    close: np.ndarray  # (D, n)

    @classmethod
    def from_closes(cls, closes: dict[str, pd.Series]) -> Panel:
        frame = pd.DataFrame({symbol: series for symbol, series in closes.items()}).sort_index()
        inside = frame.ffill().notna() & frame.bfill().notna()
        filled = frame.ffill().where(inside)
        return cls(frame.index.to_numpy(dtype="datetime64[D]"), tuple(frame.columns),
                   filled.to_numpy(dtype=np.float64))

    def rows_of(self, dates: np.ndarray) -> np.ndarray:
        """Calendar rows of the given dates (each must be in the calendar)."""
        rows = np.searchsorted(self.dates, np.asarray(dates, dtype="datetime64[D]"))
        if rows.size and (rows.max() >= len(self.dates) or (self.dates[rows] != dates).any()):
            raise ValueError("a date is not in the price calendar")
        return rows


def exit_rows(panel: Panel, closes: dict[str, pd.Series], *, horizon: int, barrier_k: float,
              vol_window: int, exits: str) -> np.ndarray:
    """(D, n) calendar row at which a position entered at each row's close ends; -1 where no trade
    can start (no volatility estimate yet, or the symbol's last price).

    The label code itself (stride 1) on each symbol's own dates, so a position exits exactly when
    the backtest's trade from that date would; with exits="horizon" at the horizon regardless. An
    entry with fewer than `horizon` later closes (the symbol stops: delisted, or the data end)
    exits at a barrier passed before that, else at the symbol's last close: choosing whom to buy
    must not depend on knowing that a stock will stop trading."""
    result = np.full(panel.close.shape, -1, dtype=np.int64)
    for column, symbol in enumerate(panel.symbols):
        close = closes[symbol].dropna().sort_index()
        if not close.index.is_unique:
            raise ValueError(f"{symbol}: its prices hold a date twice; one close per date is needed to "
                             "simulate its trades.")
        trades = triple_barrier(close, horizon=horizon, barrier_k=barrier_k, vol_window=vol_window, stride=1)
        if trades.empty:
            continue
        entry = panel.rows_of(trades["entry_date"].to_numpy(dtype="datetime64[D]"))
        if exits == "horizon":
            own = np.arange(len(close))
            own_entry = own[vol_window:len(close) - horizon]
            exit_dates = close.index[own_entry + horizon].to_numpy(dtype="datetime64[D]")
        else:
            exit_dates = trades["exit_date"].to_numpy(dtype="datetime64[D]")
        result[entry, column] = panel.rows_of(exit_dates)
        last = len(close) - 1
        tail = np.arange(max(vol_window, last - horizon + 1), last)  # entries with too few later closes
        outcomes = [None if exits == "horizon" else outcome_at_row(
            close, int(own), horizon=horizon, barrier_k=barrier_k, vol_window=vol_window) for own in tail]
        tail_exits = [close.index[last] if outcome is None else outcome["exit_date"] for outcome in outcomes]
        if tail.size:
            result[panel.rows_of(close.index[tail].to_numpy(dtype="datetime64[D]")), column] = \
                panel.rows_of(pd.DatetimeIndex(tail_exits).to_numpy(dtype="datetime64[D]"))
    return result


def trailing_volatility(panel: Panel, closes: dict[str, pd.Series], vol_window: int) -> np.ndarray:
    """(D, n) the labels' sigma: std (ddof 1) of the last vol_window daily log returns on each
    symbol's own dates, up to and including each date (NaN before there are enough)."""
    result = np.full(panel.close.shape, np.nan)
    for column, symbol in enumerate(panel.symbols):
        close = closes[symbol].dropna().sort_index()
        sigma = np.log(close).diff().rolling(vol_window, min_periods=vol_window).std()
        result[panel.rows_of(close.index.to_numpy(dtype="datetime64[D]")), column] = sigma.to_numpy()
    return result


def volatility_matched(target: np.ndarray, candidates: np.ndarray, volatility: np.ndarray) -> np.ndarray:
    """The same weights moved to other stocks of the same volatility: each held stock (largest
    weight first) hands its weight to the not-held candidate whose trailing volatility is nearest
    (each used once; when they run out, the nearest candidate again). An account holding these
    earns what the strategy's volatility exposure alone earns, e.g. the convexity premium
    sigma^2/2 of simple returns, which a strategy can collect without knowing any direction."""
    matched = np.zeros_like(target)
    held = np.flatnonzero(target)
    pool = np.flatnonzero(candidates & np.isfinite(volatility) & (target == 0))
    if held.size == 0 or pool.size == 0:
        return matched
    available = np.ones(pool.size, dtype=bool)
    for column in held[np.argsort(-np.abs(target[held]), kind="stable")]:
        own = volatility[column] if np.isfinite(volatility[column]) else np.nanmedian(volatility[pool])
        distance = np.abs(volatility[pool] - own)
        choice = np.argmin(np.where(available, distance, np.inf)) if available.any() else np.argmin(distance)
        available[choice] = False
        matched[pool[choice]] += target[column]
    return matched


@dataclass(frozen=True)
class Simulation:
    """daily: per calendar date nav, gross_return, net_return, exposure, turnover, costs.
    trades: one row per position (symbol, side, entry_date, exit_date, holding_days, return),
    return being the position's price return in its direction, before costs; a position still
    open on the last day is there with that day as its exit."""

    daily: pd.DataFrame
    trades: pd.DataFrame


def weights(scores: np.ndarray, candidates: np.ndarray, rules: Rules) -> np.ndarray:
    """Target weights (n,) for one rebalance: equal weights on the top (and, long-short, the
    bottom) candidates by score; ties broken by position so the result is deterministic."""
    result = np.zeros(scores.shape[0])
    chosen = np.flatnonzero(candidates)
    if chosen.size == 0:
        return result
    if rules.top is None:
        result[chosen] = 1.0 / chosen.size
        return result
    count = int(rules.top) if rules.top >= 1 else int(math.floor(rules.top * chosen.size + 0.5))
    count = max(1, count)
    if rules.long_short:
        count = min(count, chosen.size // 2)
        if count == 0:
            return result
    count = min(count, chosen.size)
    order = chosen[np.lexsort((chosen, -scores[chosen]))]  # best first; equal scores by position
    if rules.long_short:
        result[order[:count]] = 0.5 / count
        result[order[-count:]] = -0.5 / count
    else:
        result[order[:count]] = 1.0 / count
    return result


def simulate(panel: Panel, exits: np.ndarray, rebalance_rows: np.ndarray, scores: np.ndarray,
             rules: Rules, *, last_row: int | None = None, match_volatility: np.ndarray | None = None) -> Simulation:
    """Run the account from the first rebalance row to last_row (default: the last calendar row).

    scores: (R, n), the directional score of each symbol at each rebalance (NaN: not a candidate).
    A symbol is a candidate only when it has a score, a price and a trade that can start that day.
    Holdings are signed values per tranche; a tranche's equity is its cash plus its holdings.
    match_volatility (D, n trailing volatility): hold, instead of each pick, the candidate of the
    nearest volatility that was not picked (see volatility_matched): the strategy's volatility twin."""
    rebalance_rows = np.asarray(rebalance_rows, dtype=np.int64)
    if rebalance_rows.size == 0:
        raise ValueError("no rebalance dates: there are no signals in this period")
    first = int(rebalance_rows[0])
    last = len(panel.dates) - 1 if last_row is None else int(last_row)
    n_tranches, n_symbols = rules.tranches, panel.close.shape[1]
    cash = np.full(n_tranches, 1.0 / n_tranches)
    hold = np.zeros((n_tranches, n_symbols))
    exit_at = np.full((n_tranches, n_symbols), -1, dtype=np.int64)
    entry_row = np.zeros((n_tranches, n_symbols), dtype=np.int64)
    close = panel.close
    growth = np.ones_like(close)
    growth[1:] = close[1:] / close[:-1]
    growth[~np.isfinite(growth)] = 1.0
    turn = {int(row): number for number, row in enumerate(rebalance_rows)}
    trades: list[tuple[int, int, int, int]] = []  # symbol column, side, entry row, exit row
    days = last - first + 1
    nav, costs, traded, exposure = np.zeros(days), np.zeros(days), np.zeros(days), np.zeros(days)

    def close_positions(tranche: int, columns: np.ndarray, row: int) -> None:
        for column in columns:
            trades.append((int(column), int(np.sign(hold[tranche, column])), int(entry_row[tranche, column]), row))

    for day, row in enumerate(range(first, last + 1)):
        if day:
            hold *= growth[row]
            cash *= 1.0 + rules.cash_rate_daily
        rebalancing = turn.get(row)
        tranche = None if rebalancing is None else rebalancing % n_tranches
        ending = exit_at == row
        if tranche is not None:
            ending[tranche] = False  # the rebalance below settles this tranche's positions
        if ending.any():
            for number in np.flatnonzero(ending.any(axis=1)):
                columns = np.flatnonzero(ending[number])
                close_positions(number, columns, row)
                value = hold[number, columns]
                fee = rules.cost * np.abs(value).sum()
                cash[number] += value.sum() - fee
                costs[day] += fee
                traded[day] += np.abs(value).sum()
                hold[number, columns] = 0.0
                exit_at[number, columns] = -1
        if tranche is not None:
            held = np.flatnonzero(hold[tranche] != 0.0)
            close_positions(tranche, held, row)
            equity = cash[tranche] + hold[tranche].sum()
            candidates = np.isfinite(scores[rebalancing]) & np.isfinite(close[row]) & (exits[row] > row)
            target = weights(scores[rebalancing], candidates, rules)
            if match_volatility is not None:
                target = volatility_matched(target, candidates, match_volatility[row])
            change = np.abs(target * equity - hold[tranche]).sum()
            fee = rules.cost * change
            equity -= fee
            hold[tranche] = target * equity
            cash[tranche] = equity - hold[tranche].sum()
            exit_at[tranche] = np.where(target != 0.0, exits[row], -1)
            entry_row[tranche] = row
            costs[day] += fee
            traded[day] += change
        nav[day] = cash.sum() + hold.sum()
        exposure[day] = np.abs(hold).sum() / nav[day]
    for number in range(n_tranches):  # still open at the end: recorded as marked on the last day
        close_positions(number, np.flatnonzero(hold[number] != 0.0), last)
    previous = np.r_[1.0, nav[:-1]]
    dates = pd.DatetimeIndex(panel.dates[first:last + 1])
    daily = pd.DataFrame({"nav": nav, "gross_return": (nav + costs) / previous - 1.0,
                          "net_return": nav / previous - 1.0, "exposure": exposure,
                          "turnover": traded / previous, "costs": costs}, index=dates)
    daily.index.name = "date"
    return Simulation(daily, _trade_frame(panel, trades))


def _trade_frame(panel: Panel, trades: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    if not trades:
        return pd.DataFrame(columns=["symbol", "side", "entry_date", "exit_date", "holding_days", "return"])
    column, side, entry, exit_ = (np.array(values) for values in zip(*trades, strict=True))
    price_return = panel.close[exit_, column] / panel.close[entry, column] - 1.0
    return pd.DataFrame({"symbol": np.array(panel.symbols, dtype=object)[column], "side": side,
                         "entry_date": pd.DatetimeIndex(panel.dates[entry]),
                         "exit_date": pd.DatetimeIndex(panel.dates[exit_]),
                         "holding_days": exit_ - entry, "return": side * price_return})


def buy_and_hold(level: pd.Series, start: np.datetime64, end: np.datetime64, cost: float) -> pd.DataFrame:
    """One index (SPY) bought at the close of `start` (paying one side of cost) and held to `end`,
    in the same daily columns as Simulation.daily."""
    series = level.sort_index()
    series = series[(series.index >= pd.Timestamp(start)) & (series.index <= pd.Timestamp(end))].dropna()
    nav = (1.0 - cost) * series.to_numpy(dtype=np.float64) / float(series.iloc[0])
    previous = np.r_[1.0, nav[:-1]]
    costs = np.zeros(len(nav))
    costs[0] = cost
    traded = np.zeros(len(nav))
    traded[0] = 1.0
    daily = pd.DataFrame({"nav": nav, "gross_return": (nav + costs) / previous - 1.0,
                          "net_return": nav / previous - 1.0, "exposure": np.ones(len(nav)),
                          "turnover": traded, "costs": costs}, index=pd.DatetimeIndex(series.index))
    daily.index.name = "date"
    return daily
