"""The universe: which symbols a run trades, with the sector (and cap bucket) used in the report.

A universe file is edited by hand, so every mistake is reported with the file and line number
before any price is fetched, rather than as a confusing failure hours into a run.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("symbol", "name", "sector")
CAP_BUCKETS = ("large", "mid", "small")
# Letters, digits and the punctuation real tickers use (BRK-B, BF.B, ^GSPC); no spaces or commas.
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=]*$")


class UniverseError(ValueError):
    """The universe cannot be used; the message names the file, the line and what to do."""


@dataclass(frozen=True)
class UniverseEntry:
    symbol: str
    name: str
    sector: str
    cap: str | None = None


def load_universe(path: Path) -> list[UniverseEntry]:
    """Entries of a `symbol,name,sector[,cap]` CSV (any header case or spacing), in file order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UniverseError(f"Universe file {path} does not exist. Check the --universe path.") from None
    except OSError as error:
        raise UniverseError(f"Universe file {path} cannot be read ({error}). Check its permissions.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV (Comma delimited)" in the ANSI code page, cp1252 in the West:
        # company names like "Nestlé" are then not UTF-8. Every byte is a cp1252 character.
        text = data.decode("cp1252", errors="replace")
    if not text.strip():
        raise UniverseError(f"Universe file {path} is empty. It needs a header line symbol,name,sector[,cap] "
                            "and one line per stock.")
    reader = csv.reader(text.splitlines())
    header = [cell.strip().lower() for cell in next(reader)]
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise UniverseError(f"Universe file {path} line 1: missing column(s) {', '.join(missing)} "
                            f"(found {', '.join(header)}). The header must be symbol,name,sector and "
                            "optionally cap.")
    position = {column: header.index(column) for column in (*REQUIRED, "cap") if column in header}
    entries: list[UniverseEntry] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {column: cells[index].strip() if index < len(cells) else ""
                  for column, index in position.items()}
        entry = _entry(values, f"Universe file {path} line {line}")
        if entry.symbol in first_line:
            raise UniverseError(f"Universe file {path}: {entry.symbol} is listed twice, on line "
                                f"{first_line[entry.symbol]} and line {line}. Keep one of them.")
        first_line[entry.symbol] = line
        entries.append(entry)
    if not entries:
        raise UniverseError(f"Universe file {path} has a header but no stocks. Add one line per stock.")
    return entries


def folder_universe(symbols: list[str]) -> tuple[list[UniverseEntry], list[str]]:
    """A universe from bare symbols (a CSV folder's files): no names or sectors are known. File
    names that are no ticker symbol ('AAPL (1)', 'MY STOCK'), which a universe file would refuse,
    are left out and returned second, so the caller can say so."""
    cleaned = [symbol.strip().upper() for symbol in symbols]
    return ([UniverseEntry(symbol, symbol, "Unknown", None) for symbol in cleaned if _SYMBOL.match(symbol)],
            [symbol for symbol in cleaned if not _SYMBOL.match(symbol)])


def _entry(values: dict[str, str], where: str) -> UniverseEntry:
    symbol = values["symbol"].upper()
    if not symbol:
        raise UniverseError(f"{where}: the symbol is empty. Fill it in or delete the line.")
    if not _SYMBOL.match(symbol):
        raise UniverseError(f"{where}: {values['symbol']!r} is not a ticker symbol (letters, digits and "
                            ". - ^ = only). Fix the symbol.")
    if not values["sector"]:
        raise UniverseError(f"{where}: {symbol} has no sector. Fill it in (e.g. Information Technology, "
                            "or Unknown).")
    cap = values.get("cap", "").lower() or None
    if cap is not None and cap not in CAP_BUCKETS:
        raise UniverseError(f"{where}: {symbol} has cap {values['cap']!r}; use one of "
                            f"{', '.join(CAP_BUCKETS)} or leave it empty.")
    return UniverseEntry(symbol, values["name"], values["sector"], cap)
