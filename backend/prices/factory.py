"""Build the price source a run asks for: the one place that knows the source names."""

from __future__ import annotations

from pathlib import Path

from backend.prices.base import PriceSource

SOURCE_NAMES = ("yfinance", "csv", "demo")


def make_source(name: str, *, prices_dir: Path | None, max_daily_move: float, demo_seed: int,
                demo_symbols: int = 82) -> PriceSource:
    """The PriceSource for data.source; ValueError naming the setting when it cannot be built."""
    if name == "yfinance":
        from backend.prices.yfinance_source import YFinanceSource

        return YFinanceSource(max_daily_move)
    if name == "csv":
        if prices_dir is None:
            raise ValueError("--source csv needs --prices-dir DIR (the folder with SYM.csv files)")
        if not Path(prices_dir).is_dir():
            raise ValueError(f"--prices-dir {prices_dir} is not an existing folder: point it at the folder "
                             "with the SYM.csv files")
        from backend.prices.csv_source import CsvFolderSource

        return CsvFolderSource(Path(prices_dir), max_daily_move)
    if name == "demo":
        # Imported here so that a run on real data never loads the demo market (and vice versa).
        from backend.prices.demo_source import DemoMarketSource

        return DemoMarketSource(seed=demo_seed, max_daily_move=max_daily_move, size=demo_symbols)
    raise ValueError(f"unknown price source {name!r}: use one of {', '.join(SOURCE_NAMES)}")
