"""Triple-barrier labels: what a trade entered at the close of t would have done over H days.

This module is the only place that looks forward in time, on purpose: it produces the targets.
Barriers scale with the volatility known at t, so a quiet and a wild stock are judged alike, and
they are symmetric in LOG returns: +/- b around log(close_t). Barriers symmetric in simple returns
(+/- b) are not: log(1 + b) < -log(1 - b), so the upper one is nearer, and on a driftless random
walk a volatile stock then hits it first more often (P(BUY | touched) 0.60 at 2% daily volatility,
0.75 at 5%). A model could score "direction" by knowing only volatility. With log barriers the
take-profit price is close_t * exp(b) and the stop-loss price close_t * exp(-b).
Neutral means: on a price whose LOG is driftless. On a fair game in simple returns (log drift
-sigma^2 / 2) volatile stocks now hit the lower barrier a little more often (P(BUY | touched)
about 0.47 at 2% daily volatility), so volatility can still carry some "direction"; that is why
the gate also requires an edge over a volatility-only model.

Closes only: the path is the closes of t+1..t+H, so an intraday touch that reverts by the close
does not count (daily highs/lows would need an assumption about which barrier was hit first).
A barrier counts as touched when the close is strictly beyond it; a flat path is a HOLD even when
sigma is 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

SELL, HOLD, BUY = 0, 1, 2
LABEL_COLUMNS = ("entry_date", "exit_date", "exit_reason", "realised_return", "label", "barrier")


def rows_needed(*, horizon: int, vol_window: int) -> int:
    """Fewest price rows that yield one labelled sample: vol_window returns for sigma, then H closes."""
    return vol_window + horizon + 1


def triple_barrier(close: pd.Series, *, horizon: int, barrier_k: float, vol_window: int,
                   stride: int) -> pd.DataFrame:
    """One row per sampled entry: entry_date, exit_date, exit_reason ('upper'|'lower'|'time'),
    realised_return (close_exit / close_entry - 1), label (SELL 0, HOLD 1, BUY 2) and barrier.

    sigma_t is the std (ddof 1) of the daily log returns over the vol_window days up to and
    including t; barrier = barrier_k * sigma_t * sqrt(horizon) in log-return units, compared with
    the log return log(close_{t+j} / close_t) (upper: > barrier, lower: < -barrier); the simple
    returns of the barriers are exp(+/-barrier) - 1 (see barrier_prices). Entries every `stride`
    rows from row vol_window, the first with a sigma (close has no gaps: the price frame contract);
    only entries with all H future closes are labelled (no partial horizons)."""
    values = close.to_numpy(dtype="float64")
    sigma = np.log(close).diff().rolling(vol_window, min_periods=vol_window).std().to_numpy()
    entries = np.arange(vol_window, len(values) - horizon, stride)
    if entries.size == 0:
        none = np.empty(0)
        return _frame(close.index[:0], close.index[:0], none, none, none, none)
    barrier = barrier_k * sigma[entries] * np.sqrt(horizon)
    paths = sliding_window_view(values[1:], horizon)[entries]  # closes entries+1 .. entries+H
    returns = np.log(paths / values[entries, None])
    first_upper = _first_true(returns > barrier[:, None])
    first_lower = _first_true(returns < -barrier[:, None])
    upper = first_upper < first_lower
    lower = first_lower < first_upper
    steps = np.where(upper, first_upper, np.where(lower, first_lower, horizon - 1))
    exits = entries + 1 + steps
    reason = np.where(upper, "upper", np.where(lower, "lower", "time"))
    label = np.where(upper, BUY, np.where(lower, SELL, HOLD))
    return _frame(close.index[entries], close.index[exits], reason,
                  values[exits] / values[entries] - 1.0, label, barrier)


def trade_outcome(close: pd.Series, entry_date: pd.Timestamp, *, horizon: int, barrier_k: float,
                  vol_window: int) -> dict | None:
    """The trade entered at the close of entry_date, judged on the closes known so far: a dict like
    a triple_barrier row (exit_date, exit_reason, realised_return, label, barrier) once a barrier
    was passed or `horizon` closes have followed, else None (not matured yet). The same sigma,
    barrier and comparisons as triple_barrier, on however many later closes exist, so a matured
    trade equals the backtest's trade from that date (a test checks every entry)."""
    return outcome_at_row(close, int(close.index.get_indexer([entry_date])[0]), horizon=horizon,
                          barrier_k=barrier_k, vol_window=vol_window)


def outcome_at_row(close: pd.Series, row: int, *, horizon: int, barrier_k: float, vol_window: int) -> dict | None:
    """trade_outcome of the entry at position `row` of close, for callers that already know the row
    (the portfolio's exits ask for the last closes of every symbol). None before vol_window (no
    sigma yet), on the last close (no later close: nothing known yet) and off the series (-1 is
    what a date lookup gives for a date close does not have)."""
    if not vol_window <= row < len(close) - 1:
        return None
    values = close.to_numpy(dtype="float64")
    sigma = float(np.log(close.iloc[row - vol_window:row + 1]).diff().std())
    barrier = barrier_k * sigma * np.sqrt(horizon)
    path = values[row + 1:row + 1 + horizon]
    returns = np.log(path / values[row])[None, :]
    first_upper = int(_first_true(returns > barrier)[0])
    first_lower = int(_first_true(returns < -barrier)[0])
    if first_upper < first_lower:
        step, reason, label = first_upper, "upper", BUY
    elif first_lower < first_upper:
        step, reason, label = first_lower, "lower", SELL
    elif len(path) == horizon:
        step, reason, label = horizon - 1, "time", HOLD
    else:
        return None
    exit_row = row + 1 + step
    return {"exit_date": close.index[exit_row], "exit_reason": reason,
            "realised_return": float(values[exit_row] / values[row] - 1.0), "label": int(label),
            "barrier": float(barrier)}


def barrier_prices(entry_close: np.ndarray | float, barrier: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(take-profit, stop-loss) closes of a trade entered at entry_close with this log barrier."""
    entry_close, barrier = np.asarray(entry_close, dtype="float64"), np.asarray(barrier, dtype="float64")
    return entry_close * np.exp(barrier), entry_close * np.exp(-barrier)


def _first_true(hits: np.ndarray) -> np.ndarray:
    """Index of the first True per row, or the row length when there is none."""
    return np.where(hits.any(axis=1), hits.argmax(axis=1), hits.shape[1])


def _frame(entry: pd.Index, exit_: pd.Index, reason: np.ndarray, realised: np.ndarray,
           label: np.ndarray, barrier: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"entry_date": entry, "exit_date": exit_, "exit_reason": reason.astype(str),
                         "realised_return": realised.astype("float64"), "label": label.astype("int64"),
                         "barrier": barrier.astype("float64")}, columns=list(LABEL_COLUMNS))
