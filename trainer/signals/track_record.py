"""What past signals did: each one scored once it matured, by the backtest's own label code, and
a record per model version that compares the live results with what the holdout promised.

A signal matures when its upper or lower barrier was passed, or `horizon` trading days went by,
on the prices known at scoring time (a signals run scores with the prices up to its as-of date,
so a run "in the past" never sees later prices). Scoring is idempotent: a matured signal's row
is written once and rewritten identically.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from backend import store
from backend.features import FEATURE_NAMES
from backend.labels import BUY, SELL, trade_outcome
from trainer.ml.metrics import _auc_directional, block_bootstrap_ci, dates_spanning

PSI_ALARM = 0.25  # population stability index above which a feature has clearly moved
PSI_BINS = 10
MIN_FOR_AUC = 20  # matured BUY/SELL outcomes before a live directional AUC is shown
# Signal dates before feature drift is judged: market-wide features take one value per date, so a
# handful of dates always looks "moved" against a training period of thousands.
MIN_DRIFT_DATES = 20


def score_matured(connection: sqlite3.Connection, source: str, closes: Callable[[str], pd.Series | None],
                  settings: Callable[[str], dict[str, Any] | None], up_to: pd.Timestamp) -> int:
    """Score every unscored signal made from `source`'s prices with as_of < up_to that has matured
    on closes up to up_to (a signal is only ever judged on the prices it was made from).
    closes(symbol): its adjusted closes from that source; settings(model_version): the model's
    label settings (horizon, barrier_k, vol_window) or None when unknown. Returns how many."""
    pending = connection.execute(
        "SELECT s.as_of, s.symbol, s.model_version FROM signals s LEFT JOIN signal_outcomes o ON "
        "o.as_of = s.as_of AND o.symbol = s.symbol AND o.model_version = s.model_version "
        "WHERE o.as_of IS NULL AND s.source = ? AND s.as_of < ? ORDER BY s.symbol, s.as_of",
        (source, str(up_to.date()))).fetchall()
    rows, cache, known = [], {}, {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for as_of, symbol, version in pending:
        if version not in known:
            known[version] = settings(version)
        labels = known[version]
        if labels is None:
            continue
        if symbol not in cache:
            series = closes(symbol)
            cache[symbol] = None if series is None else series.loc[:up_to]
        series = cache[symbol]
        if series is None or pd.Timestamp(as_of) not in series.index:
            continue
        outcome = trade_outcome(series, pd.Timestamp(as_of), horizon=labels["horizon"],
                                barrier_k=labels["barrier_k"], vol_window=labels["vol_window"])
        if outcome is None:
            continue
        rows.append({"as_of": as_of, "symbol": symbol, "model_version": version,
                     "exit_date": str(outcome["exit_date"].date()), "exit_reason": outcome["exit_reason"],
                     "realised_return": outcome["realised_return"], "label": outcome["label"], "scored_at": now})
    if rows:
        with store.transaction(connection):
            store.write_rows(connection, "signal_outcomes", rows)
    return len(rows)


@dataclass(frozen=True)
class VersionRecord:
    model_version: str
    signals: int
    matured: int
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    actions: dict[str, dict[str, float | int | None]]  # BUY/SELL -> n, hit_rate, mean_return (live)
    promise: dict[str, Any]  # what the holdout promised (from the manifest), may be empty
    drift: list[str]  # alarms in words

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def track_record(connection: sqlite3.Connection, promises: dict[str, dict[str, Any]],
                 training_features: Callable[[str], np.ndarray | None], *, reps: int = 1000,
                 confidence: float = 0.95, horizon: int = 20, seed: int = 0,
                 up_to: pd.Timestamp | None = None) -> list[VersionRecord]:
    """One record per model version that made signals. promises: version -> the manifest's
    holdout_promise; training_features(version): its training-period feature matrix for the
    population stability index (None: not available). up_to: the record as it stood on that day
    (signals made and outcomes known by then): what a signals page for a past day shows."""
    day = "9999-12-31" if up_to is None else str(up_to.date())
    frame = pd.read_sql_query(
        "SELECT s.as_of, s.symbol, s.model_version, s.p_sell, s.p_hold, s.p_buy, s.action, s.features, "
        "o.realised_return, o.label "
        "FROM signals s LEFT JOIN signal_outcomes o ON o.as_of = s.as_of AND o.symbol = s.symbol AND "
        "o.model_version = s.model_version AND o.exit_date <= ? WHERE s.as_of <= ? ORDER BY s.as_of",
        connection, params=(day, day))
    records = []
    for version, rows in frame.groupby("model_version", sort=True):
        matured = rows[rows["label"].notna()]
        auc, low, high = _live_auc(matured, reps, confidence, horizon, seed)
        actions = {}
        for action, sign in (("BUY", 1.0), ("SELL", -1.0)):
            chosen = matured[matured["action"] == action]
            returns = chosen["realised_return"].to_numpy(dtype=float)
            actions[action] = {"n": int(len(chosen)),
                               "hit_rate": float(np.mean(sign * returns > 0)) if len(chosen) else None,
                               "mean_return": float(returns.mean()) if len(chosen) else None}
        drift = []
        if high is not None and high < 0.5:
            drift.append(f"the live directional AUC's interval [{low:.3f}, {high:.3f}] lies wholly below 0.5: "
                         "the signals point the wrong way")
        moved = (_moved_features(rows["features"], training_features(str(version)))
                 if rows["as_of"].nunique() >= MIN_DRIFT_DATES else [])
        if moved:
            drift.append("features have moved away from the training period (population stability index "
                         f"above {PSI_ALARM}): " + ", ".join(f"{name} {value:.2f}" for name, value in moved[:5]))
        records.append(VersionRecord(str(version), int(len(rows)), int(len(matured)), auc, low, high, actions,
                                     promises.get(str(version), {}), drift))
    return records


def _live_auc(matured: pd.DataFrame, reps: int, confidence: float, horizon: int,
              seed: int) -> tuple[float | None, float | None, float | None]:
    """The directional AUC of the matured signals' scores, with a block bootstrap over as-of dates
    (blocks span the label horizon: signals of nearby dates share price moves)."""
    directional = matured[matured["label"].isin([BUY, SELL])]
    if len(directional) < MIN_FOR_AUC or directional["label"].nunique() < 2:
        return None, None, None
    y = directional["label"].to_numpy(dtype=np.int64)
    proba = directional[["p_sell", "p_hold", "p_buy"]].to_numpy(dtype=float)
    point = float(_auc_directional(y, proba, np.ones((1, len(y))))[0])
    dates = pd.to_datetime(directional["as_of"]).to_numpy(dtype="datetime64[D]")
    try:
        low, high = block_bootstrap_ci(y, proba, dates, block_days=dates_spanning(dates, horizon), reps=reps,
                                       confidence=confidence, seed=seed)
    except ValueError:  # too few dates for two blocks, or too few of a class
        return point, None, None
    return point, low, high


def _moved_features(blobs: pd.Series, training: np.ndarray | None) -> list[tuple[str, float]]:
    """(feature, PSI) for every feature whose live values' population stability index against the
    training period's exceeds PSI_ALARM, worst first."""
    live = [np.frombuffer(blob, dtype="<f8") for blob in blobs if blob is not None]
    if training is None or len(live) < 30 or len(training) < 100:
        return []
    live_matrix = np.vstack(live)
    moved = []
    for column, name in enumerate(FEATURE_NAMES):
        value = population_stability_index(training[:, column], live_matrix[:, column])
        if value is not None and value > PSI_ALARM:
            moved.append((name, value))
    return sorted(moved, key=lambda item: -item[1])


def population_stability_index(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """sum over decile bins of the expected (training) values of (a - e) ln(a / e), shares floored
    at 1e-4; None when either side has fewer than `bins` finite values."""
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if expected.size < bins or actual.size < bins:
        return None
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if edges.size < 3:
        return None
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.maximum(np.histogram(expected, edges)[0] / expected.size, 1e-4)
    a = np.maximum(np.histogram(actual, edges)[0] / actual.size, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def record_json(records: list[VersionRecord]) -> str:
    return json.dumps([record.to_dict() for record in records], indent=1,
                      default=lambda value: None if isinstance(value, float) and math.isnan(value) else str(value))


def training_features(connection: sqlite3.Connection, version: str) -> np.ndarray | None:
    """The model's training-period feature vectors (every sample up to its training end), for
    the population stability index; None when its run's samples are not in this database."""
    run_id = version.removesuffix("-candidate")
    split = connection.execute("SELECT value_json FROM run_facts WHERE run_id = ? AND key = 'split'",
                               (run_id,)).fetchone()
    if split is None:
        return None
    end = (json.loads(split[0]).get("train") or {}).get("end")
    blobs = connection.execute("SELECT features FROM feature_store WHERE run_id = ? AND date <= ?",
                               (run_id, end)).fetchall()
    if not blobs:
        return None
    return np.frombuffer(b"".join(blob for (blob,) in blobs), dtype="<f8").reshape(len(blobs), -1)


def label_settings(connection: sqlite3.Connection, version: str) -> dict[str, Any] | None:
    """The label settings (horizon, barrier_k, vol_window, stride) of the run a model version came
    from, or None when that run is not in this database."""
    row = connection.execute("SELECT config_json FROM training_runs WHERE run_id = ?",
                             (version.removesuffix("-candidate"),)).fetchone()
    return None if row is None else json.loads(row[0])["labels"]


def score_with_cached_prices(connection: sqlite3.Connection) -> int:
    """Score what matured using the signals' cached prices only (no download): what a training
    run does at its end, so the record moves on even on days no signals are made."""
    from trainer.signals.prices import live_key, load_live

    scored = 0
    sources = [row[0] for row in connection.execute("SELECT DISTINCT source FROM signals")]
    for source in sources:
        key = live_key(source)
        newest = connection.execute("SELECT MAX(date) FROM price_data WHERE source = ?", (key,)).fetchone()[0]
        if newest is None:
            continue

        def closes(symbol: str, key: str = key) -> pd.Series | None:
            frame = load_live(connection, key, symbol)
            return None if frame is None else frame["close"]

        scored += score_matured(connection, source, closes, lambda version: label_settings(connection, version),
                                pd.Timestamp(newest) + pd.Timedelta(days=1))
    return scored
