"""One signals run: update prices, score what matured, compute the as-of features, predict, and
write signals/<as-of>.csv, .html and the signals table. Nothing about training changes.

The steps are functions of their inputs; reading and writing happen in generate_signals only, so
the data path is visible: live prices -> (track record) -> as-of features -> model -> signal rows.
A second run on the same as-of date rewrites the same files and rows; a run killed midway leaves
the earlier files whole (each is written to a temporary file and renamed) and the next run
completes it.
"""

from __future__ import annotations

import html
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend import store
from backend.labels import barrier_prices
from backend.prices.base import PriceSource
from backend.prices.factory import make_source
from backend.universe import load_universe
from trainer import console
from trainer.checkpoint import CheckpointManager, atomic_write_text
from trainer.crash_points import crash_point
from trainer.ml.metrics import directional_score
from trainer.options import SignalOptions
from trainer.paths import WorkPaths
from trainer.signals.features import as_of_rows
from trainer.signals.model import ModelError, SignalModel, candidate_model, production_model
from trainer.signals.prices import live_key, load_live, update_prices
from trainer.signals.track_record import (
    label_settings,
    record_json,
    score_matured,
    track_record,
    training_features,
)

log = logging.getLogger(__name__)

CSV_COLUMNS = ("symbol", "as_of", "p_sell", "p_hold", "p_buy", "score", "rank", "action", "take_profit",
               "stop_loss", "horizon_end", "model_version")
PROXY = "SPY"


class SignalsError(RuntimeError):
    """The signals cannot be made; the message names the cause and what to do."""


@dataclass
class SignalsResult:
    as_of: pd.Timestamp
    rows: pd.DataFrame  # CSV_COLUMNS, best score first
    skipped: dict[str, str]
    model: SignalModel
    csv_path: Path
    html_path: Path
    scored: int
    warnings: list[str] = field(default_factory=list)


def generate_signals(options: SignalOptions) -> SignalsResult:
    paths = WorkPaths.at(options.workdir)
    if not paths.database.exists():
        raise SignalsError(f"There is no database in {paths.root} ({paths.database} does not exist): train a model "
                           "there first with run_training.py, or give --workdir of the folder you trained in.")
    connection = store.connect(paths.database)
    try:
        return _generate(connection, paths, options)
    finally:
        connection.close()


def _generate(connection: sqlite3.Connection, paths: WorkPaths, options: SignalOptions) -> SignalsResult:
    model = _model(connection, paths, options.model)
    manifest = model.manifest
    recorded = connection.execute("SELECT config_hash FROM training_runs WHERE run_id = ?",
                                  (manifest["run_id"],)).fetchone()
    if recorded is not None and manifest.get("config_hash") not in (None, recorded[0]):
        raise ModelError(f"The model's manifest says run {manifest['run_id']} had settings {manifest['config_hash']}, "
                         f"but this folder's database recorded {recorded[0]} for that run: the model folder belongs "
                         "to another work folder. Use --workdir of the folder it was trained in, or train here.")
    source = _source(manifest, options)
    if options.as_of is not None:
        _parse_as_of(options.as_of)  # a typo is refused before any download
    universe = _universe(manifest, options)
    market_universe = dict(manifest.get("universe") or universe)  # what the model's market features were built from
    symbols = sorted(universe)
    sectors = {**universe, **market_universe}  # a symbol the model knows keeps the sector it was trained with
    wanted = sorted(set(symbols) | set(market_universe))
    wanted += [PROXY] if manifest.get("proxy") == PROXY and PROXY not in wanted else []
    console.info(f"Signals with model {model.version}" + ("" if model.promoted else " (NOT PROMOTED)")
                 + f": updating the prices of {len(wanted)} symbols from {source.key} ...")
    update = update_prices(connection, source, wanted, training_key=str(manifest.get("source", source.key)))
    warnings = []
    for symbol in update.refetched:
        warnings.append(f"{symbol}: its adjusted history changed (a dividend or split), so all of it was "
                        "fetched again.")
    by_reason: dict[str, list[str]] = {}
    for symbol, reason in update.failed.items():
        by_reason.setdefault(reason, []).append(symbol)
    for reason, failed in by_reason.items():  # one line per cause: offline is one warning, not 82
        cached = [symbol for symbol in failed if symbol in update.prices]
        names = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        warnings.append(f"{names}: prices not updated ({reason}); "
                        + (f"cached prices used for {len(cached)} of them." if cached else "no signal."))
    prices = {symbol: update.prices[symbol] for symbol in wanted if symbol in update.prices and symbol != PROXY}
    if not any(symbol in prices for symbol in symbols):
        raise SignalsError(f"No prices for any of the {len(symbols)} symbols from {source.key}; check the source "
                           "(network, --prices-dir) and run again.")
    newest = max(prices[symbol].index[-1] for symbol in symbols if symbol in prices)
    as_of = _as_of(options.as_of, newest)
    proxy = update.prices.get(PROXY) if manifest.get("proxy") == PROXY else None
    if manifest.get("proxy") == PROXY and (proxy is None or pd.Timestamp(as_of) not in proxy.index):
        last = "none cached" if proxy is None else f"its last is {proxy.index[-1].date()}"
        last += f"; {update.failed[PROXY]}" if PROXY in update.failed else ""
        raise SignalsError(f"The model was trained with {PROXY} as the market, but {PROXY} has no price on "
                           f"{as_of.date()} ({last}). Signals "
                           "without it would rest on a market the model never saw: try again when its prices are "
                           "updated, or give --as-of a day it has.")
    labels = manifest["labels"]
    scored = score_matured(connection, source.key,
                           lambda symbol: None if symbol not in update.prices else update.prices[symbol]["close"],
                           lambda version: labels if version == model.version else label_settings(connection, version),
                           as_of)
    rows = as_of_rows(prices, {symbol: sectors[symbol] for symbol in prices}, proxy, as_of,
                      shock_sigma=float(manifest["shock_sigma"]), vol_window=int(labels["vol_window"]),
                      min_history_days=int(manifest["config"]["data"]["min_history_days"]),
                      market_symbols=list(market_universe), symbols=symbols)
    skipped = {**{symbol: f"no prices ({update.failed.get(symbol, 'not cached')})" for symbol in symbols
                  if symbol not in prices}, **rows.skipped}
    if rows.features.empty:
        raise SignalsError(f"None of the {len(symbols)} symbols has a price on {as_of.date()} with enough history "
                           f"({'; '.join(f'{s}: {r}' for s, r in list(skipped.items())[:3])}). Choose another "
                           "--as-of date.")
    age = int(np.busday_count(as_of.date(), date.today()))
    if options.as_of is None and age > options.max_age_days and not source.is_demo:
        warnings.append(f"The newest price is from {as_of.date()}, {age} business days ago: these signals are "
                        "stale. Check the source (network, updated files) before trading on them.")
    table = signal_table(model, rows, as_of)
    csv_path, html_path = _write_outputs(connection, paths, table, rows, model, source, skipped, warnings, as_of)
    return SignalsResult(as_of, table, skipped, model, csv_path, html_path, scored, warnings)


def signal_table(model: SignalModel, rows: Any, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per symbol: probabilities, directional score, rank (1 = the strongest BUY), action
    by the holdout thresholds, the barrier prices and the end of the horizon."""
    manifest, labels = model.manifest, model.manifest["labels"]
    proba = model.predict_proba(rows.features.to_numpy())
    score = directional_score(proba)
    thresholds = manifest["thresholds"]
    action = np.where(score >= thresholds["buy"], "BUY", np.where(score <= thresholds["sell"], "SELL", "HOLD"))
    barrier = labels["barrier_k"] * rows.sigma.reindex(rows.features.index).to_numpy() * np.sqrt(labels["horizon"])
    take_profit, stop_loss = barrier_prices(rows.close.reindex(rows.features.index).to_numpy(), barrier)
    horizon_end = str(np.busday_offset(np.datetime64(as_of.date(), "D"), int(labels["horizon"]), roll="forward"))
    table = pd.DataFrame({
        "symbol": rows.features.index, "as_of": str(as_of.date()), "p_sell": proba[:, 0], "p_hold": proba[:, 1],
        "p_buy": proba[:, 2], "score": score, "action": action, "take_profit": take_profit, "stop_loss": stop_loss,
        "horizon_end": horizon_end, "model_version": model.version})
    table = table.sort_values(["score", "symbol"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table.loc[:, list(CSV_COLUMNS)]


def _model(connection: sqlite3.Connection, paths: WorkPaths, which: str) -> SignalModel:
    if which == "production":
        return production_model(paths.production)
    state = CheckpointManager(paths.checkpoints).load()
    return candidate_model(connection, paths.checkpoints, None if state is None else state.state)


def _source(manifest: dict[str, Any], options: SignalOptions) -> PriceSource:
    """The source asked for, else the one the model was trained on ('demo:7', 'csv:/folder',
    'yfinance'); the demo market is the extended one (later days exist)."""
    name, folder, seed = options.source, options.prices_dir, 7
    trained = str(manifest.get("source", ""))
    if name is None:
        name = trained.split(":", 1)[0] or "yfinance"
        if name == "csv" and folder is None:
            folder = Path(trained.split(":", 1)[1])
    size = int(manifest["config"]["data"].get("demo_symbols", 82))
    if trained.startswith("demo:"):
        seed = int(trained.split(":")[1])
    max_move = float(manifest["config"]["data"]["max_daily_move"])
    try:
        if name == "demo":
            from backend.prices.demo_source import DemoMarketSource

            return DemoMarketSource(seed=seed, max_daily_move=max_move, extended=True, size=size)
        return make_source(name, prices_dir=folder, max_daily_move=max_move, demo_seed=seed)
    except ValueError as error:
        raise SignalsError(str(error)) from None


def _universe(manifest: dict[str, Any], options: SignalOptions) -> dict[str, str]:
    if options.universe is not None:
        return {entry.symbol: entry.sector for entry in load_universe(options.universe)}
    universe = manifest.get("universe") or {}
    if not universe:
        raise SignalsError("The model does not list the symbols it was trained on; give --universe CSV.")
    return dict(universe)


def _parse_as_of(asked: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(date.fromisoformat(asked))
    except ValueError:
        raise SignalsError(f"--as-of {asked!r} is not a date; use YYYY-MM-DD, e.g. 2024-06-28.") from None


def _as_of(asked: str | None, newest: pd.Timestamp) -> pd.Timestamp:
    if asked is None:
        return newest
    as_of = _parse_as_of(asked)
    if as_of > newest:
        raise SignalsError(f"--as-of {as_of.date()} is after the newest price ({newest.date()}); choose a date up to "
                           "it, or leave --as-of out for the newest.")
    return as_of


def _write_outputs(connection: sqlite3.Connection, paths: WorkPaths, table: pd.DataFrame, rows: Any,
                   model: SignalModel, source: PriceSource, skipped: dict[str, str], warnings: list[str],
                   as_of: pd.Timestamp) -> tuple[Path, Path]:
    folder = paths.root / "signals"
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    features = rows.features
    records = [{**{key: _plain(value) for key, value in record.items() if key != "model_version"},
                "model_version": model.version, "close": float(rows.close[record["symbol"]]),
                "promoted": int(model.promoted), "source": source.key, "generated_at": now,
                "features": features.loc[record["symbol"]].to_numpy(dtype="<f8").tobytes()}
               for record in table.to_dict("records")]
    with store.transaction(connection):
        # Only the symbols written now: a run for a smaller --universe keeps the day's other signals.
        # A signal rewritten from another source loses its outcome (scored again from the new
        # source); rewritten from the same source, the same prices give the same outcome: kept.
        for record in records:
            key = (record["as_of"], record["symbol"], model.version)
            connection.execute("DELETE FROM signal_outcomes WHERE as_of = ? AND symbol = ? AND model_version = ? AND "
                               "EXISTS (SELECT 1 FROM signals s WHERE s.as_of = signal_outcomes.as_of AND s.symbol = "
                               "signal_outcomes.symbol AND s.model_version = signal_outcomes.model_version AND "
                               "s.source != ?)", (*key, source.key))
            connection.execute("DELETE FROM signals WHERE as_of = ? AND symbol = ? AND model_version = ?", key)
        store.write_rows(connection, "signals", records)
    crash_point("signals.rows_written")
    csv_path = folder / f"{as_of.date()}{'' if model.promoted else '-candidate'}.csv"
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    html_path = csv_path.with_suffix(".html")
    atomic_write_text(html_path, signals_html(connection, table, model, skipped, warnings, as_of))
    return csv_path, html_path


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def signals_html(connection: sqlite3.Connection, table: pd.DataFrame, model: SignalModel, skipped: dict[str, str],
                 warnings: list[str], as_of: pd.Timestamp) -> str:
    """A small self-contained page: the banner (NOT PROMOTED, demo), the signals, what was skipped
    and the track record of every model version."""
    esc = html.escape
    banner = "" if model.promoted else ('<p class="banner">NOT PROMOTED: this model did not pass the promotion '
                                        "gate. These signals are shown for study only.</p>")
    if model.manifest.get("is_demo"):
        banner += '<p class="banner">DEMO DATA: generated prices, not a real market.</p>'
    head = "".join(f"<th>{esc(column)}</th>" for column in CSV_COLUMNS)
    body = "".join("<tr class='{}'>{}</tr>".format(
        esc(record["action"].lower()), "".join(f"<td>{esc(_cell(record[column]))}</td>" for column in CSV_COLUMNS))
        for record in table.to_dict("records"))
    records = track_record(connection, {model.version: model.manifest.get("holdout_promise", {})},
                           lambda version: training_features(connection, version), up_to=as_of)
    record_rows = "".join(
        f"<tr><td>{esc(r.model_version)}</td><td>{r.signals}</td><td>{r.matured}</td>"
        f"<td>{esc(_cell(r.auc))} [{esc(_cell(r.auc_low))}, {esc(_cell(r.auc_high))}]</td>"
        f"<td>{esc(_action_text(r.actions.get('BUY')))}</td><td>{esc(_action_text(r.actions.get('SELL')))}</td>"
        f"<td>{esc('; '.join(r.drift) or 'none')}</td></tr>" for r in records)
    skipped_html = "".join(f"<li>{esc(symbol)}: {esc(reason)}</li>" for symbol, reason in skipped.items())
    warning_html = "".join(f"<li>{esc(text)}</li>" for text in warnings)
    style = ("body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:2rem;color:#1d1d1f}"
             "table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .4rem}"
             "tr.buy td{background:#eaf7ea}tr.sell td{background:#fbeaea}"
             ".banner{background:#fff3cd;border:2px solid #d4a017;padding:.6rem;font-weight:600}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Signals {as_of.date()}</title>"
            f"<style>{style}</style></head><body><h1>Signals for {as_of.date()} (model {esc(model.version)})</h1>"
            f"{banner}<p>BUY: the model's directional score is in the top tenth of what it gave on its holdout; "
            "SELL: the bottom tenth; take-profit and stop-loss are the label barriers from the as-of close; "
            "the horizon ends about "
            f"{model.manifest['labels']['horizon']} trading days later.</p>"
            + (f"<h2>Warnings</h2><ul>{warning_html}</ul>" if warnings else "")
            + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<h2>Skipped</h2><ul>{skipped_html}</ul>" if skipped else "")
            + "<h2>Track record</h2><table><thead><tr><th>model</th><th>signals</th><th>matured</th>"
            "<th>directional AUC [interval]</th><th>BUY: n, hit rate, mean return</th>"
            "<th>SELL: n, hit rate, mean return</th><th>alarms</th></tr></thead><tbody>"
            f"{record_rows}</tbody></table><pre hidden>{esc(record_json(records))}</pre></body></html>\n")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _action_text(figures: dict[str, Any] | None) -> str:
    if not figures or not figures.get("n"):
        return "none matured"
    return f"{figures['n']}, {figures['hit_rate']:.0%}, {figures['mean_return']:+.2%}"


def print_signals(result: SignalsResult, top: int = 10) -> None:
    table = result.rows
    marker = "" if result.model.promoted else " - NOT PROMOTED"
    for action, rows in (("BUY", table[table["action"] == "BUY"].head(top)),
                         ("SELL", table[table["action"] == "SELL"].sort_values("score").head(top))):
        console.print_table(f"Top {action} signals for {result.as_of.date()}{marker}",
                            ["Symbol", "P(BUY)", "P(SELL)", "Score", "Take-profit", "Stop-loss", "Until about"],
                            [(r.symbol, f"{r.p_buy:.2f}", f"{r.p_sell:.2f}", f"{r.score:.3f}", f"{r.take_profit:.2f}",
                              f"{r.stop_loss:.2f}", r.horizon_end) for r in rows.itertuples()])
    counts = table["action"].value_counts()
    console.info(f"{len(table)} symbols: {counts.get('BUY', 0)} BUY, {counts.get('SELL', 0)} SELL, "
                 f"{counts.get('HOLD', 0)} HOLD. Written to {result.csv_path} and {result.html_path}.")
    if result.scored:
        console.info(f"{result.scored} earlier signals matured and were scored (python check_checkpoint.py --signals).")


__all__ = ["ModelError", "SignalsError", "generate_signals", "print_signals", "live_key", "load_live"]
