"""The built-in demo market as a PriceSource, so `--demo` runs with no network and no files.

Its rows take the same road as every other source's (prepare_prices), so a demo run exercises the
real validation and split/dividend adjustment instead of a shortcut.
"""

from __future__ import annotations

from collections.abc import Iterator

from backend.prices.base import FetchResult, PriceSource
from backend.prices.demo_market import (
    DEFAULT_SIZE,
    DEMO_END,
    DEMO_START,
    EXTENSION_END,
    DemoSymbol,
    demo_universe,
    extended_market,
    generate_market,
)
from backend.prices.prepare import prepare_prices, within_dates


class DemoMarketSource(PriceSource):
    """Generated prices for the demo universe; the seed is part of the cache key, so two seeds
    never share cached prices."""

    is_demo = True

    def __init__(self, seed: int, max_daily_move: float, *, extended: bool = False, size: int = DEFAULT_SIZE) -> None:
        self.seed = seed
        self.max_daily_move = max_daily_move
        self.size = size
        # Another size is another market (other draws): its prices never share the cache.
        self.key = f"demo:{seed}" if size == DEFAULT_SIZE else f"demo:{seed}:{size}"
        # extended: the market continues through EXTENSION_END (generate_signals' later days);
        # training never asks for it, so its data stays exactly as it was.
        self.extended = extended
        self.end = EXTENSION_END if extended else DEMO_END

    def fingerprints(self, symbols: list[str]) -> dict[str, str]:
        """The extended market is a version of its own: cached rows of the plain one are not it."""
        return {symbol: f"demo:{self.seed}:to:{self.end}" for symbol in symbols} if self.extended else {}

    def universe(self) -> list[DemoSymbol]:
        return demo_universe(self.size)

    def fetch(self, symbols: list[str], start: str | None, end: str | None) -> Iterator[FetchResult]:
        market = extended_market(self.seed, self.size) if self.extended else generate_market(self.seed, self.size)
        origin = f"demo market (seed {self.seed})"
        for symbol in symbols:
            raw = market.get(symbol)
            if raw is None:
                yield FetchResult(symbol, None, error=(
                    f"{symbol} is not in the demo market; the demo universe has {len(market)} symbols "
                    "(see the table in backend/prices/demo_market.py). Use those symbols with --demo."))
                continue
            rows = within_dates(raw, start, end)
            if rows.empty:
                yield FetchResult(symbol, None, error=(
                    f"{origin} has no prices for {symbol} between {start or 'the start'} and "
                    f"{end or 'the end'}: it covers {DEMO_START} to {self.end}. Widen data.start/data.end."))
                continue
            yield prepare_prices(rows, symbol, origin, self.max_daily_move)
