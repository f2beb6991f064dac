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

_SAMPLES_QUERY = """
SELECT t.entry_date, t.symbol, t.exit_date, t.label, t.realised_return, t.regime,
       COALESCE(s.sector, 'Unknown'), f.features
FROM trades AS t
LEFT JOIN feature_store AS f
       ON f.run_id = t.run_id AND f.symbol = t.symbol AND f.date = t.entry_date
LEFT JOIN symbols AS s ON s.symbol = t.symbol
WHERE t.run_id = ?
ORDER BY t.entry_date, t.symbol
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


_CHUNK_ROWS = 50_000  # samples decoded at a time


def load_dataset(connection: sqlite3.Connection, run_id: str) -> Dataset:
    """Read every labelled sample of a run in one query, decoding the feature blobs a chunk at a
    time, so that the rows are never all Python objects at once. At 500 symbols (a 207 MiB
    matrix) the process kept 568 MiB after the load instead of 771 MiB; the peak during the load
    (about 710 MiB above the start either way) lies elsewhere and is not found yet."""
    names = [row[0] for row in connection.execute(
        "SELECT name FROM feature_names WHERE run_id = ? ORDER BY position", (run_id,))]
    cursor = connection.execute(_SAMPLES_QUERY, (run_id,))
    columns: tuple[list, ...] = ([], [], [], [], [], [], [])  # entry, symbol, exit, label, return, regime, sector
    chunks, bad = [], _BadBlobs(len(names))
    while rows := cursor.fetchmany(_CHUNK_ROWS):
        *meta, blobs = zip(*rows, strict=True)
        for column, values in zip(columns, meta, strict=True):
            column.extend(values)
        chunks.append(bad.decode(blobs, meta[1], meta[0]))
    if not chunks:
        raise DatasetError(f"Run {run_id} has no trades in the database: the backtest produced no "
                           "samples. Check the universe and the date range.")
    if not names:
        raise DatasetError("The run has no feature names (table feature_names is empty for it).")
    bad.raise_if_any()
    entry, symbols, exits, labels, returns, regimes, sectors = columns
    return Dataset(
        X=np.concatenate(chunks) if len(chunks) > 1 else chunks[0],
        y=np.array(labels, dtype=np.int64),
        feature_names=names,
        entry_dates=np.array(entry, dtype="datetime64[D]"),
        exit_dates=np.array(exits, dtype="datetime64[D]"),
        symbols=np.array(symbols, dtype=str),
        sectors=np.array(sectors, dtype=str),
        regimes=np.array(regimes, dtype=object),
        returns=np.array(returns, dtype=np.float64),
    )


class _BadBlobs:
    """Decodes chunks of feature blobs into matrices and counts, over all chunks, the blobs whose
    length does not match the feature names, so that the error names the first and the total."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.width = n_features * FEATURE_DTYPE.itemsize
        self.count = 0
        self.first: str | None = None

    def decode(self, blobs: tuple[bytes | None, ...], symbols: tuple[str, ...],
               dates: tuple[str, ...]) -> np.ndarray:
        lengths = np.fromiter((-1 if blob is None else len(blob) for blob in blobs), dtype=np.int64,
                              count=len(blobs))
        wrong = np.flatnonzero(lengths != self.width)
        if wrong.size:
            if self.first is None:
                row = int(wrong[0])
                found = "no feature row" if lengths[row] < 0 else f"{lengths[row]} bytes"
                self.first = f"{symbols[row]} {dates[row]} has {found}"
            self.count += wrong.size
            return np.empty((0, self.n_features))
        matrix = np.frombuffer(bytearray().join(blobs), dtype=FEATURE_DTYPE).reshape(len(blobs), self.n_features)
        return matrix.astype(np.float64, copy=False)

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
