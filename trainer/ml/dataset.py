"""The training samples of a run as arrays, and the time-ordered split that keeps them honest.

Every sample is a trade whose label is only known at its exit date, so a random split (or a
walk-forward split without purging) lets the model train on labels that overlap the period it is
scored on. `make_split` purges those samples and leaves an embargo gap, so the scores it enables
measure prediction of the future and not memory of it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURE_DTYPE = np.dtype("<f8")  # feature_store.features: little-endian float64, NaN = missing

# Both queries read the trades in their primary key's order (symbol, entry date), which SQLite
# walks without sorting. ORDER BY entry date instead made SQLite sort every row, feature blobs
# included, in a temporary B-tree: that sort was most of the peak while loading.
_SAMPLES_QUERY = """
SELECT t.symbol, t.entry_date, t.exit_date, t.label, t.realised_return, t.regime, COALESCE(s.sector, 'Unknown')
FROM trades AS t
LEFT JOIN symbols AS s ON s.symbol = t.symbol
WHERE t.run_id = ?
ORDER BY t.symbol, t.entry_date
"""
_FEATURES_QUERY = """
SELECT t.symbol, t.entry_date, f.features
FROM trades AS t
LEFT JOIN feature_store AS f
       ON f.run_id = t.run_id AND f.symbol = t.symbol AND f.date = t.entry_date
WHERE t.run_id = ?
ORDER BY t.symbol, t.entry_date
"""


class DatasetError(ValueError):
    """The stored samples cannot form a dataset or a split; the message says what is wrong."""


@dataclass(frozen=True)
class Dataset:
    """All samples of a run, one row per trade, sorted by (entry_date, symbol)."""

    X: np.ndarray  # float64, n x f, NaN = missing
    y: np.ndarray  # int64: 0 SELL, 1 HOLD, 2 BUY
    feature_names: list[str]
    entry_dates: np.ndarray  # datetime64[D]
    exit_dates: np.ndarray  # datetime64[D]
    symbols: np.ndarray  # str
    sectors: np.ndarray  # str ('Unknown' when the symbol has no sector row)
    regimes: np.ndarray  # object: str, or None where the backtest recorded no regime
    returns: np.ndarray  # float64 realised trade return

    def __len__(self) -> int:
        return len(self.y)


_CHUNK_ROWS = 10_000  # samples turned into arrays at a time


def load_dataset(connection: sqlite3.Connection, run_id: str) -> Dataset:
    """Every labelled sample of a run, sorted by (entry date, symbol), in two passes over the
    trades in key order: the first reads the small columns and gives each sample its row in the
    sorted matrix; the second decodes the feature blobs a chunk at a time straight into those rows.
    So neither SQLite (no sort) nor Python (no list of every row's values, no second matrix for
    sorting) holds much more than the result."""
    names = [row[0] for row in connection.execute(
        "SELECT name FROM feature_names WHERE run_id = ? ORDER BY position", (run_id,))]
    meta = _columns_in_key_order(connection, run_id)
    if meta is None:
        raise DatasetError(f"Run {run_id} has no trades in the database: the backtest produced no "
                           "samples. Check the universe and the date range.")
    if not names:
        raise DatasetError("The run has no feature names (table feature_names is empty for it).")
    symbols, entry = meta["symbols"], meta["entry_dates"]
    order = np.lexsort((symbols, entry))  # by entry date, then symbol
    row_of = np.empty_like(order)
    row_of[order] = np.arange(order.size)  # key-order position -> row of the sorted matrix
    X = np.empty((order.size, len(names)), dtype=np.float64)
    bad, done = _BadBlobs(len(names)), 0
    cursor = connection.execute(_FEATURES_QUERY, (run_id,))
    while rows := cursor.fetchmany(_CHUNK_ROWS):
        chunk_symbols, chunk_dates, blobs = zip(*rows, strict=True)
        stop = done + len(rows)
        if not (np.array_equal(symbols[done:stop], chunk_symbols)  # also False past the end (shapes differ)
                and np.array_equal(entry[done:stop], np.array(chunk_dates, "datetime64[D]"))):
            raise DatasetError(f"The trades of run {run_id} changed while they were read; run again.")
        matrix = bad.decode(blobs, chunk_symbols, chunk_dates)
        if matrix is not None:
            X[row_of[done:stop]] = matrix
        done = stop
    if done != order.size:
        raise DatasetError(f"The trades of run {run_id} changed while they were read; run again.")
    bad.raise_if_any()
    return Dataset(X=X, feature_names=names, **{key: values[order] for key, values in meta.items()})


def _columns_in_key_order(connection: sqlite3.Connection, run_id: str) -> dict[str, np.ndarray] | None:
    """Every column of the samples but the features, as arrays in key order (None if there is no
    trade), converted a chunk at a time."""
    keys = ("symbols", "entry_dates", "exit_dates", "y", "returns", "regimes", "sectors")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    distinct: dict[str | None, str | None] = {}
    cursor = connection.execute(_SAMPLES_QUERY, (run_id,))
    while rows := cursor.fetchmany(_CHUNK_ROWS):
        symbols, entry, exits, labels, returns, regimes, sectors = zip(*rows, strict=True)
        parts["symbols"].append(np.array(symbols, dtype=str))
        parts["entry_dates"].append(np.array(entry, dtype="datetime64[D]"))
        parts["exit_dates"].append(np.array(exits, dtype="datetime64[D]"))
        parts["y"].append(np.array(labels, dtype=np.int64))
        parts["returns"].append(np.array(returns, dtype=np.float64))
        # one object per distinct regime: a string per row would pin Python's memory arenas after the load
        parts["regimes"].append(np.array([distinct.setdefault(regime, regime) for regime in regimes], dtype=object))
        parts["sectors"].append(np.array(sectors, dtype=str))
    if not parts["y"]:
        return None
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


class _BadBlobs:
    """Decodes chunks of feature blobs into matrices and counts, over all chunks, the blobs whose
    length does not match the feature names, so that the error names the first and the total."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.width = n_features * FEATURE_DTYPE.itemsize
        self.count = 0
        self.first: str | None = None

    def decode(self, blobs: tuple[bytes | None, ...], symbols: tuple[str, ...],
               dates: tuple[str, ...]) -> np.ndarray | None:
        lengths = np.fromiter((-1 if blob is None else len(blob) for blob in blobs), dtype=np.int64,
                              count=len(blobs))
        wrong = np.flatnonzero(lengths != self.width)
        if wrong.size:
            if self.first is None:
                row = int(wrong[0])
                found = "no feature row" if lengths[row] < 0 else f"{lengths[row]} bytes"
                self.first = f"{symbols[row]} {dates[row]} has {found}"
            self.count += wrong.size
            return None
        return np.frombuffer(b"".join(blobs), dtype=FEATURE_DTYPE).reshape(len(blobs), self.n_features)

    def raise_if_any(self) -> None:
        if self.count:
            raise DatasetError(f"{self.count} samples have features that do not match the {self.n_features} "
                               f"feature names (first: {self.first}, expected {self.width} bytes). Reset the "
                               "backtest phase and run again.")


@dataclass(frozen=True)
class Period:
    """A stretch of dates and how many samples it holds, for the report (ISO dates, None if empty)."""

    start: str | None
    end: str | None
    n_samples: int


@dataclass(frozen=True)
class Split:
    """Row indices (into the Dataset) of every part of the time-ordered evaluation design."""

    folds: list[tuple[np.ndarray, np.ndarray]]  # (train_idx, val_idx), walking forward
    train_idx: np.ndarray  # the whole training period, purged against the holdout
    holdout_idx: np.ndarray
    kept_features: list[str]
    kept_columns: np.ndarray  # column positions of kept_features in Dataset.X
    dropped_features: dict[str, float]  # name -> coverage on the training period
    fold_periods: list[tuple[Period, Period]]  # (train, validation) per fold
    train_period: Period
    embargo_period: Period  # dates between training and holdout that neither uses
    holdout_period: Period
    n_purged: int  # training-period samples dropped because their exit reaches the holdout

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (dates, counts, dropped features) for run facts and the report."""
        return {
            "train": vars(self.train_period),
            "embargo": vars(self.embargo_period),
            "holdout": vars(self.holdout_period),
            "n_purged": self.n_purged,
            "folds": [{"train": vars(train), "validation": vars(val)} for train, val in self.fold_periods],
            "kept_features": list(self.kept_features),
            "dropped_features": dict(self.dropped_features),
        }


def make_split(dataset: Dataset, *, n_folds: int, holdout_share: float, min_feature_coverage: float,
               embargo_days: int) -> Split:
    """Purged, embargoed walk-forward folds on the training period and a holdout at the end.

    The holdout is the last `holdout_share` of the unique entry dates. The embargo is counted in
    business days (Mon-Fri, close to trading days; not in sample dates, which are `stride` days
    apart): samples entered within `embargo_days` business days before the holdout are used by
    nobody, and training samples whose exit date reaches the holdout are purged. The training
    period's dates form n_folds + 1 consecutive blocks: fold i trains on blocks 0..i, minus the
    embargo before block i + 1 and minus samples whose exit date reaches it, and validates on
    block i + 1.
    """
    if n_folds < 1 or embargo_days < 0 or not 0.0 < holdout_share < 1.0:
        raise DatasetError(f"Invalid split settings: n_folds={n_folds} (>= 1), embargo_days="
                           f"{embargo_days} (>= 0), holdout_share={holdout_share} (between 0 and 1).")
    dates = np.unique(dataset.entry_dates)
    day = np.searchsorted(dates, dataset.entry_dates)  # position of each sample's date
    n_holdout_days = int(np.ceil(holdout_share * len(dates)))
    holdout_day = len(dates) - n_holdout_days
    train_days = int(np.searchsorted(dates, embargo_start(dates[holdout_day], embargo_days)))
    if train_days < 2 * (n_folds + 1):
        raise DatasetError(
            f"Only {len(dates)} sample dates: after a holdout of {n_holdout_days} dates and an embargo "
            f"of {embargo_days} business days, {max(train_days, 0)} remain for {n_folds + 1} walk-forward "
            "blocks. Use fewer folds or a longer date range.")

    train_mask = (day < train_days) & (dataset.exit_dates < dates[holdout_day])
    train_idx = np.flatnonzero(train_mask)
    holdout_idx = np.flatnonzero(day >= holdout_day)
    blocks = np.array_split(np.arange(train_days), n_folds + 1)
    folds, fold_periods = [], []
    for block in blocks[1:]:
        first_val_day = int(block[0])
        fold_train = np.flatnonzero(train_mask
                                    & (dataset.entry_dates < embargo_start(dates[first_val_day], embargo_days))
                                    & (dataset.exit_dates < dates[first_val_day]))
        fold_val = np.flatnonzero(train_mask & (day >= first_val_day) & (day <= block[-1]))
        if fold_train.size == 0 or fold_val.size == 0:
            raise DatasetError(f"Walk-forward fold {len(folds) + 1} has no training or no validation "
                               "samples after purging. Use fewer folds or a shorter label horizon.")
        folds.append((fold_train, fold_val))
        fold_periods.append((_period(dataset, fold_train), _period(dataset, fold_val)))

    coverage = 1.0 - np.isnan(dataset.X[train_idx]).mean(axis=0)
    kept = coverage >= min_feature_coverage
    embargo_idx = np.flatnonzero((day >= train_days) & (day < holdout_day))
    return Split(
        folds=folds,
        train_idx=train_idx,
        holdout_idx=holdout_idx,
        kept_features=[name for name, keep in zip(dataset.feature_names, kept, strict=True) if keep],
        kept_columns=np.flatnonzero(kept),
        dropped_features={name: float(share) for name, share, keep
                          in zip(dataset.feature_names, coverage, kept, strict=True) if not keep},
        fold_periods=fold_periods,
        train_period=_period(dataset, train_idx),
        embargo_period=_period(dataset, embargo_idx),
        holdout_period=_period(dataset, holdout_idx),
        n_purged=int(np.count_nonzero(day < train_days) - train_idx.size),
    )


def embargo_start(first_date: np.datetime64, embargo_days: int) -> np.datetime64:
    """The first entry date inside the embargo before `first_date`: embargo_days business days back."""
    return np.busday_offset(np.datetime64(first_date, "D"), -embargo_days, roll="backward")


def _period(dataset: Dataset, idx: np.ndarray) -> Period:
    if idx.size == 0:
        return Period(None, None, 0)
    entry = dataset.entry_dates[idx]
    return Period(str(entry.min()), str(entry.max()), int(idx.size))


def purged_recent_slice(entry_dates: np.ndarray, exit_dates: np.ndarray,
                        share: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, stopping rows) for early stopping and calibration inside one training set.

    The stopping slice is the most recent `share` of the rows (rows come sorted by entry date):
    every row entered on or after the cut date. Fit rows are those whose label is known before
    the cut (exit date strictly before it), so no fitted label shares a price path with the
    slice that judges it. A shuffled or unpurged split would stop on rows the model has, in
    effect, already seen, and stop too late.
    """
    entry = np.asarray(entry_dates, dtype="datetime64[D]")
    exits = np.asarray(exit_dates, dtype="datetime64[D]")
    if entry.size < 2:
        raise DatasetError("Early stopping needs at least two training rows.")
    if np.any(entry[1:] < entry[:-1]):
        raise DatasetError("Training rows must be sorted by entry date for a recent stopping slice.")
    cut_date = entry[entry.size - max(1, round(entry.size * share))]
    stop = np.flatnonzero(entry >= cut_date)
    fit = np.flatnonzero(exits < cut_date)
    if fit.size == 0:
        raise DatasetError(f"No training row's label ends before {cut_date}, the start of the early-stopping "
                           "slice: the training window is too short for the label horizon.")
    return fit, stop
