"""The contract every price source fulfils.

A source turns symbols + a date range into validated, split/dividend-adjusted daily prices per
symbol. One symbol's failure is a FetchResult with an error, never an exception that stops the
run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

# Columns of FetchResult.prices. open/high/low/close are adjusted (scaled by adjusted close / close
# when the source gives an adjusted close); raw_close is the close as traded (NaN if unknown);
# dividend is the cash amount paid that day (0 if none); split is the split coefficient (1 if none).
PRICE_COLUMNS = ("open", "high", "low", "close", "volume", "raw_close", "dividend", "split")


@dataclass(frozen=True)
class DataIssue:
    """A quarantined row (date set) or a whole-symbol problem (date None)."""

    symbol: str
    date: str | None
    kind: str
    detail: str


@dataclass
class FetchResult:
    """prices: DatetimeIndex named 'date' (tz-naive, ascending, unique), float columns
    PRICE_COLUMNS, only clean rows. error: why the symbol is unusable (names the file or symbol
    and what to do); then prices is None."""

    symbol: str
    prices: pd.DataFrame | None
    issues: list[DataIssue] = field(default_factory=list)
    error: str | None = None
    # The source could not be reached at all (no network, DNS, refused): not the symbol's fault,
    # so it is not counted as one of the symbol's attempts and the run stops to say so once.
    unreachable: bool = False


class PriceSource(ABC):
    #: cache key in price_data.source, e.g. "yfinance", "csv:/abs/folder", "demo:7"
    key: str
    #: True for generated data; stored with the prices and shown in the report
    is_demo: bool = False

    def fingerprints(self, symbols: list[str]) -> dict[str, str]:
        """A version stamp per symbol of data the user can edit; a changed stamp makes the cached
        prices stale. Downloads and generated data have none (an empty dict)."""
        return {}

    @abstractmethod
    def fetch(self, symbols: list[str], start: str | None, end: str | None) -> Iterator[FetchResult]:
        """Yield one FetchResult per requested symbol (in any order), rows within [start, end]."""
