"""The one SQLite file: connection settings, idempotent schema, and per-symbol transactions.

SQLite is the source of truth for data; the JSON checkpoint is the source of truth for progress.
Everything one symbol produces is written in one transaction, so a symbol is either fully there
or not there at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY, name TEXT, sector TEXT NOT NULL, cap TEXT
);

-- Shared price cache: keyed by source (e.g. 'yfinance', 'csv:/abs/folder', 'demo:7'), not by run.
CREATE TABLE IF NOT EXISTS price_data (
    source TEXT NOT NULL, symbol TEXT NOT NULL, date TEXT NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume REAL NOT NULL, raw_close REAL, dividend REAL NOT NULL DEFAULT 0,
    split REAL NOT NULL DEFAULT 1, is_demo INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, symbol, date)
) WITHOUT ROWID;

-- The last fetch outcome per (source, symbol): an 'ok' row for the same requested range is a cache hit.
CREATE TABLE IF NOT EXISTS price_fetches (
    source TEXT NOT NULL, symbol TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    detail TEXT, rows INTEGER NOT NULL DEFAULT 0, is_demo INTEGER NOT NULL DEFAULT 0,
    requested_start TEXT, requested_end TEXT, fingerprint TEXT, fetched_at TEXT NOT NULL,
    PRIMARY KEY (source, symbol)
);

CREATE TABLE IF NOT EXISTS data_issues (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, symbol TEXT NOT NULL, date TEXT,
    kind TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS data_issues_symbol ON data_issues (source, symbol);

CREATE TABLE IF NOT EXISTS training_runs (
    run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, config_json TEXT NOT NULL,
    source TEXT NOT NULL, is_demo INTEGER NOT NULL, created_at TEXT NOT NULL, finished_at TEXT
);

-- Market proxy level and regime per date ('regime' is one of the four trend x volatility labels).
CREATE TABLE IF NOT EXISTS market_data (
    run_id TEXT NOT NULL, date TEXT NOT NULL, proxy TEXT NOT NULL, level REAL NOT NULL,
    regime TEXT, PRIMARY KEY (run_id, date)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sector_indices (
    run_id TEXT NOT NULL, sector TEXT NOT NULL, date TEXT NOT NULL, level REAL NOT NULL,
    PRIMARY KEY (run_id, sector, date)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, symbol TEXT NOT NULL, date TEXT NOT NULL, kind TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, symbol, date, kind)
) WITHOUT ROWID;

-- Feature names of a run, in the column order of feature_store.features.
CREATE TABLE IF NOT EXISTS feature_names (
    run_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (run_id, position)
);

-- One row per sample: the feature vector as little-endian float64 bytes (NaN = missing).
CREATE TABLE IF NOT EXISTS feature_store (
    run_id TEXT NOT NULL, symbol TEXT NOT NULL, date TEXT NOT NULL, features BLOB NOT NULL,
    PRIMARY KEY (run_id, symbol, date)
) WITHOUT ROWID;

-- One row per sample: the triple-barrier trade that labels it. label: 0 SELL, 1 HOLD, 2 BUY.
CREATE TABLE IF NOT EXISTS trades (
    run_id TEXT NOT NULL, symbol TEXT NOT NULL, entry_date TEXT NOT NULL, exit_date TEXT NOT NULL,
    exit_reason TEXT NOT NULL CHECK (exit_reason IN ('upper', 'lower', 'time')),
    realised_return REAL NOT NULL, label INTEGER NOT NULL CHECK (label IN (0, 1, 2)),
    regime TEXT,
    PRIMARY KEY (run_id, symbol, entry_date)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS backtest_results (
    run_id TEXT NOT NULL, symbol TEXT NOT NULL, trades INTEGER NOT NULL,
    buy INTEGER NOT NULL, hold INTEGER NOT NULL, sell INTEGER NOT NULL,
    buy_share REAL, hold_share REAL, sell_share REAL, avg_win REAL, avg_loss REAL,
    first_date TEXT, last_date TEXT, completed_at TEXT NOT NULL,
    PRIMARY KEY (run_id, symbol)
);

-- Holdout metrics. scope: 'holdout' (segment 'all') or 'regime' (segment = regime label);
-- model: a base model name, 'ensemble' or 'baseline'. CV scores use scope 'cv'.
CREATE TABLE IF NOT EXISTS model_performance (
    run_id TEXT NOT NULL, model TEXT NOT NULL, scope TEXT NOT NULL, segment TEXT NOT NULL,
    n_samples INTEGER NOT NULL, n_directional INTEGER,
    auc_ovr REAL, auc_directional REAL, log_loss REAL, brier REAL, balanced_accuracy REAL,
    top_decile_buy_precision REAL, top_decile_return REAL, all_mean_return REAL, fit_seconds REAL,
    PRIMARY KEY (run_id, model, scope, segment)
);

CREATE TABLE IF NOT EXISTS sector_performance (
    run_id TEXT NOT NULL, model TEXT NOT NULL, sector TEXT NOT NULL,
    n_samples INTEGER NOT NULL, n_directional INTEGER,
    auc_ovr REAL, auc_directional REAL, log_loss REAL, brier REAL, balanced_accuracy REAL,
    top_decile_buy_precision REAL, top_decile_return REAL, all_mean_return REAL,
    PRIMARY KEY (run_id, model, sector)
);

CREATE TABLE IF NOT EXISTS model_predictions (
    run_id TEXT NOT NULL, model TEXT NOT NULL, symbol TEXT NOT NULL, entry_date TEXT NOT NULL,
    p_sell REAL NOT NULL, p_hold REAL NOT NULL, p_buy REAL NOT NULL,
    PRIMARY KEY (run_id, model, symbol, entry_date)
) WITHOUT ROWID;

-- Mean |SHAP| per feature; class_label 'SELL'/'HOLD'/'BUY' or 'all'; model may be 'ensemble'.
CREATE TABLE IF NOT EXISTS shap_analysis (
    run_id TEXT NOT NULL, model TEXT NOT NULL, feature TEXT NOT NULL, class_label TEXT NOT NULL,
    mean_abs_shap REAL NOT NULL, PRIMARY KEY (run_id, model, feature, class_label)
);

-- Facts about a run that are one value each (dropped features, SHAP stability, ...), as JSON.
CREATE TABLE IF NOT EXISTS run_facts (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT NOT NULL, PRIMARY KEY (run_id, key)
);

CREATE TABLE IF NOT EXISTS model_promotion_history (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, decided_at TEXT NOT NULL,
    criteria_json TEXT NOT NULL, decision TEXT NOT NULL CHECK (decision IN ('promoted', 'rejected')),
    production_path TEXT
);
"""

# Versioned changes after the first release's SCHEMA (version 1), applied in order, each in one
# transaction with its version number, so a work folder of an earlier release opens with its
# price cache, past runs and promotion history intact. Append; never edit a released step.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (2, "portfolio simulation tables", """
-- The simulated account of each strategy per date (strategy: 'ensemble', 'benchmark_equal_weight',
-- ..., with an '_oof' twin for the out-of-fold period). Returns are fractions, nav starts at 1.
CREATE TABLE IF NOT EXISTS portfolio_daily (
    run_id TEXT NOT NULL, strategy TEXT NOT NULL, date TEXT NOT NULL, nav REAL NOT NULL,
    gross_return REAL NOT NULL, net_return REAL NOT NULL, exposure REAL NOT NULL,
    turnover REAL NOT NULL, costs REAL NOT NULL,
    PRIMARY KEY (run_id, strategy, date)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS portfolio_summary (
    run_id TEXT NOT NULL, strategy TEXT NOT NULL, metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, strategy, metric)
);
"""),
    (3, "signals and their track record", """
-- One row per symbol per signals run: what the model said on the as-of date and what it implies.
-- model_version: the model's run id (with '-candidate' for an unpromoted one); features: the
-- as-of feature vector (little-endian float64 bytes, FEATURE_NAMES order) for drift checks.
CREATE TABLE IF NOT EXISTS signals (
    as_of TEXT NOT NULL, symbol TEXT NOT NULL, model_version TEXT NOT NULL,
    p_sell REAL NOT NULL, p_hold REAL NOT NULL, p_buy REAL NOT NULL, score REAL NOT NULL,
    rank INTEGER NOT NULL, action TEXT NOT NULL CHECK (action IN ('BUY', 'HOLD', 'SELL')),
    close REAL NOT NULL, take_profit REAL, stop_loss REAL, horizon_end TEXT NOT NULL,
    promoted INTEGER NOT NULL, source TEXT NOT NULL, features BLOB, generated_at TEXT NOT NULL,
    PRIMARY KEY (as_of, symbol, model_version)
) WITHOUT ROWID;

-- A signal's outcome once it matured (a barrier passed or the horizon over), by the label code.
CREATE TABLE IF NOT EXISTS signal_outcomes (
    as_of TEXT NOT NULL, symbol TEXT NOT NULL, model_version TEXT NOT NULL, exit_date TEXT NOT NULL,
    exit_reason TEXT NOT NULL CHECK (exit_reason IN ('upper', 'lower', 'time')),
    realised_return REAL NOT NULL, label INTEGER NOT NULL CHECK (label IN (0, 1, 2)), scored_at TEXT NOT NULL,
    PRIMARY KEY (as_of, symbol, model_version)
) WITHOUT ROWID;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Tables whose rows belong to one run (deleted by a reset); price cache tables are shared.
RUN_TABLES = ("training_runs", "market_data", "sector_indices", "events", "feature_names",
              "feature_store", "trades", "backtest_results", "model_performance",
              "sector_performance", "model_predictions", "shap_analysis", "run_facts",
              "model_promotion_history", "portfolio_daily", "portfolio_summary")
PER_SYMBOL_TABLES = ("events", "feature_store", "trades", "backtest_results")
TRAINING_TABLES = ("model_performance", "sector_performance", "model_predictions", "shap_analysis",
                   "model_promotion_history", "portfolio_daily", "portfolio_summary")
PRICE_TABLES = ("price_data", "price_fetches", "data_issues")


class StoreError(RuntimeError):
    """The database file cannot be used; the message names the file and what to do."""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database with WAL, foreign keys and a busy timeout; create the schema if needed."""
    path = Path(path)
    try:
        if readonly:
            # A folder that cannot be written (read-only media): SQLite cannot make the WAL's shared
            # memory file there, so the file is opened as immutable (nothing writes it anyway).
            immutable = "&immutable=1" if not os.access(path.parent, os.W_OK) else ""
            connection = sqlite3.connect(f"file:{path.as_posix()}?mode=ro{immutable}", uri=True, timeout=5.0)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=30.0)
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        if not readonly:
            connection.execute("PRAGMA synchronous=NORMAL")
            create_schema(connection)
    except sqlite3.DatabaseError as error:
        raise StoreError(f"The database {path} cannot be opened ({error}). If it is damaged, move it "
                         "aside and run again; prices will be fetched again.") from error
    return connection


def create_schema(connection: sqlite3.Connection) -> None:
    """Idempotent: safe on every start. Brings an earlier version up to SCHEMA_VERSION one migration
    at a time; refuses a database from a newer program version."""
    connection.executescript(SCHEMA)
    row = connection.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone()
    if row is None:
        with connection:
            connection.execute("INSERT INTO schema_info VALUES ('version', '1')")
        version = 1
    else:
        version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"The database was written by a newer version (schema {version}, this program "
                         f"knows {SCHEMA_VERSION}). Update the program or reset with --prices.")
    for number, name, script in MIGRATIONS:
        if number > version:
            try:
                _migrate(connection, number, script)
            except sqlite3.Error as error:
                raise StoreError(f"The database could not be upgraded to schema version {number} ({name}): "
                                 f"{error}. It is unchanged (still version {version}), so an earlier release "
                                 "can still open it; see the log and report this.") from error
            version = number


def schema_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone()[0])


def _migrate(connection: sqlite3.Connection, number: int, script: str) -> None:
    """One migration and its version number in one transaction: a kill or an error leaves the old
    version (SQLite's schema changes are transactional). Comment lines are dropped, then the
    statements are split at ';'."""
    code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    statements = [part.strip() for part in code.split(";") if part.strip()]
    with transaction(connection):
        for statement in statements:
            connection.execute(statement)
        connection.execute("UPDATE schema_info SET value = ? WHERE key = 'version'", (str(number),))


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (which is re-raised)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def write_rows(connection: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """INSERT OR REPLACE rows (dicts with the same keys) into table; call inside a transaction."""
    rows = list(rows)
    if not rows:
        return 0
    columns = list(rows[0])
    placeholders = ", ".join("?" for _ in columns)
    connection.executemany(
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        [tuple(row[column] for column in columns) for row in rows],
    )
    return len(rows)


def write_symbol(connection: sqlite3.Connection, run_id: str, symbol: str,
                 rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
    """Replace everything one symbol has in a run, in ONE transaction: all of it or none of it."""
    with transaction(connection):
        for table in PER_SYMBOL_TABLES:
            connection.execute(f"DELETE FROM {table} WHERE run_id = ? AND symbol = ?", (run_id, symbol))
        for table, rows in rows_by_table.items():
            write_rows(connection, table, rows)


def write_prices(connection: sqlite3.Connection, source: str, symbol: str, prices: Any, is_demo: bool) -> int:
    """Insert (or replace) one symbol's rows of a PRICE_COLUMNS frame (DatetimeIndex 'date') into the
    price cache under `source`; call inside a transaction. Returns the number of rows."""
    from backend.prices.base import PRICE_COLUMNS

    records = prices.loc[:, list(PRICE_COLUMNS)].reset_index()
    records["date"] = records["date"].dt.strftime("%Y-%m-%d")
    records = records.astype(object).where(records.notna(), None)
    values = [(source, symbol, *row, int(is_demo)) for row in records.itertuples(index=False, name=None)]
    connection.executemany(
        f"INSERT OR REPLACE INTO price_data (source, symbol, date, {', '.join(PRICE_COLUMNS)}, is_demo) "
        f"VALUES (?, ?, ?, {', '.join('?' for _ in PRICE_COLUMNS)}, ?)", values)
    return len(values)


def write_issues(connection: sqlite3.Connection, source: str, issues: Iterable[Any]) -> None:
    """Record DataIssue objects (symbol, date, kind, detail) under `source`; call inside a transaction."""
    write_rows(connection, "data_issues", [
        {"source": source, "symbol": issue.symbol, "date": issue.date, "kind": issue.kind, "detail": issue.detail}
        for issue in issues])


def committed_symbols(connection: sqlite3.Connection, run_id: str) -> set[str]:
    """Symbols whose backtest transaction committed (their summary row exists)."""
    rows = connection.execute("SELECT symbol FROM backtest_results WHERE run_id = ?", (run_id,))
    return {row[0] for row in rows}


def put_fact(connection: sqlite3.Connection, run_id: str, key: str, value_json: str) -> None:
    """Store one JSON fact about a run (replacing an older value)."""
    with transaction(connection):
        connection.execute("INSERT OR REPLACE INTO run_facts VALUES (?, ?, ?)", (run_id, key, value_json))


def get_fact(connection: sqlite3.Connection, run_id: str, key: str) -> str | None:
    row = connection.execute("SELECT value_json FROM run_facts WHERE run_id = ? AND key = ?",
                             (run_id, key)).fetchone()
    return row[0] if row else None
