"""Training weights: López de Prado's average uniqueness (AFML ch. 4) times class balance.

Labels of one symbol whose lives overlap share the same price path, so a model trained with one
weight per row counts that information several times. Weighting each label by its average
uniqueness (the mean over its life of 1 / number of that symbol's labels alive that day) gives a
stretch of overlapping labels about the weight of the non-overlapping ones it could be replaced
by. Labels of different symbols are never counted as concurrent: their paths are different prices.
On top of that, every present class gets the same total weight, so the rare BUY and SELL rows are
not drowned by HOLD (the same balance every model used before uniqueness was added).
"""

from __future__ import annotations

import numpy as np


def average_uniqueness(symbols: np.ndarray, entry_dates: np.ndarray, exit_dates: np.ndarray) -> np.ndarray:
    """u_i = mean over the business days t of label i's life of 1 / c_t, c_t = its symbol's labels alive on t.

    A label lives on the business days (numpy busday: Monday to Friday) strictly after its entry
    date up to and including its exit date: it is decided by the closes after entry. A life that
    holds no business day (exit equal to entry, which should not happen, or a life inside a weekend)
    is the one business day on or before the exit, so every label has a life of at least one day
    and a uniqueness in (0, 1]. Rows may be in any order.

    Vectorised as difference arrays on a symbol x business-day grid: +1 at each life's first day,
    -1 after its last, a cumulative sum gives c_t, and a cumulative sum of 1 / c_t gives every
    label's sum over its life as a difference of two grid cells (70,000 labels, 80 symbols and
    4,000 business days take a few tens of milliseconds).
    """
    symbols = np.asarray(symbols)
    entry = np.asarray(entry_dates, dtype="datetime64[D]")
    exit_ = np.asarray(exit_dates, dtype="datetime64[D]")
    if not symbols.ndim == entry.ndim == exit_.ndim == 1 or not len(symbols) == len(entry) == len(exit_):
        raise ValueError(f"symbols, entry_dates and exit_dates must be 1-D arrays of one length; got shapes "
                         f"{symbols.shape}, {entry.shape}, {exit_.shape}.")
    if len(symbols) == 0:
        return np.empty(0)
    if np.isnat(entry).any() or np.isnat(exit_).any():
        raise ValueError("entry_dates and exit_dates must not contain NaT.")
    if (exit_ < entry).any():
        row = int(np.flatnonzero(exit_ < entry)[0])
        raise ValueError(f"A label cannot exit before it enters: row {row} ({symbols[row]}) enters {entry[row]} "
                         f"and exits {exit_[row]}.")
    origin = np.busday_offset(entry.min(), 0, roll="backward")
    start = np.busday_count(origin, entry + 1)  # index of the first business day after entry
    stop = np.busday_count(origin, exit_ + 1)  # one past the index of the last business day <= exit
    start = np.where(stop == start, stop - 1, start)  # an empty life: the business day on or before exit
    names, symbol = np.unique(symbols, return_inverse=True)
    days = int(stop.max()) + 1
    flat = symbol * days
    changes = (np.bincount(flat + start, minlength=len(names) * days)
               - np.bincount(flat + stop, minlength=len(names) * days))
    concurrency = np.cumsum(changes.reshape(len(names), days), axis=1)
    inverse = np.divide(1.0, concurrency, out=np.zeros(concurrency.shape), where=concurrency > 0)
    cumulative = np.concatenate([np.zeros((len(names), 1)), np.cumsum(inverse, axis=1)], axis=1)
    return (cumulative[symbol, stop] - cumulative[symbol, start]) / (stop - start)


def training_weights(y: np.ndarray, uniqueness: np.ndarray | None) -> np.ndarray:
    """Per-row weights in which every present class carries the same total weight.

    Without uniqueness: n / (k * count(class)), k the number of classes present (each class sums
    to n / k, all to n). With uniqueness u: w_i = u_i * n / (k * sum of u over i's class), so rows
    keep their relative uniqueness inside a class and, as without it, each present class sums to
    n / k and all weights to n (mean 1): settings in units of weight, such as xgboost's
    min_child_weight, mean the same with and without uniqueness. With u all ones this is exactly
    the first case.
    One helper for all models, so every model is weighted in exactly the same way.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels; got shape {y.shape}.")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if uniqueness is None:
        return (len(y) / (len(classes) * counts))[inverse]
    u = np.asarray(uniqueness, dtype=np.float64)
    if u.shape != y.shape:
        raise ValueError(f"uniqueness must have one value per label ({len(y)}); got shape {u.shape}.")
    if not np.isfinite(u).all() or (u <= 0).any():
        raise ValueError("uniqueness must be finite and positive for every label (average uniqueness is in (0, 1]).")
    class_totals = np.bincount(inverse, weights=u, minlength=len(classes))
    return u * (len(y) / (len(classes) * class_totals))[inverse]
