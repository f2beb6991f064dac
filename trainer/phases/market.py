"""Market phase: the market proxy, sector indices and regimes, built once per run and stored.

Every run, the first included, backtests against the stored context (load_market), never the
freshly built one: every symbol of a run, whenever it was processed, sees exactly the same
market series.
"""

from __future__ import annotations

import logging

import pandas as pd

from backend import store
from backend.features import FEATURE_NAMES
from backend.market import MarketContext, build_market, market_rows, sector_rows
from trainer import console
from trainer.run_context import RunContext

log = logging.getLogger(__name__)


def build_and_store_market(context: RunContext, closes: dict[str, pd.Series],
                           proxy: pd.DataFrame | None) -> None:
    """Build the market context from the universe's closes (or the proxy) and store it, once."""
    sectors = {symbol: context.sector_of(symbol) for symbol in closes}
    built = build_market(closes, sectors, None if proxy is None else proxy["close"])
    with store.transaction(context.connection) as connection:
        for table in ("market_data", "sector_indices", "feature_names"):
            connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (context.run_id,))
        store.write_rows(connection, "market_data", market_rows(context.run_id, built))
        store.write_rows(connection, "sector_indices", sector_rows(context.run_id, built))
        store.write_rows(connection, "feature_names", [
            {"run_id": context.run_id, "position": i, "name": name} for i, name in enumerate(FEATURE_NAMES)])
        connection.execute("INSERT OR REPLACE INTO run_facts VALUES (?, 'proxy', ?)",
                           (context.run_id, f'"{built.proxy_name}"'))
    log.info("market: proxy %s, %d sectors, %d dates", built.proxy_name, len(built.sectors), len(built.market))
    console.info(f"Market: proxy {built.proxy_name}, {len(built.sectors)} sector indices, "
                 f"{len(built.market)} trading days.")
    context.advance("market")


def load_market(context: RunContext) -> MarketContext:
    """The stored market context of this run."""
    market = pd.read_sql_query(
        "SELECT date, proxy, level, regime FROM market_data WHERE run_id = ? ORDER BY date",
        context.connection, params=[context.run_id], parse_dates=["date"]).set_index("date")
    proxy_name = str(market["proxy"].iloc[0])
    market = market.drop(columns="proxy")
    market["ret"] = market["level"].pct_change()
    market = market[["level", "ret", "regime"]]
    sectors_frame = pd.read_sql_query(
        "SELECT sector, date, level FROM sector_indices WHERE run_id = ? ORDER BY sector, date",
        context.connection, params=[context.run_id], parse_dates=["date"])
    sectors = {str(sector): group.set_index("date")["level"]
               for sector, group in sectors_frame.groupby("sector", sort=True)}
    return MarketContext(proxy_name=proxy_name, market=market, sectors=sectors)
