"""Prices from a folder of the user's own files: SYM.csv or SYM.csv.gz, one symbol per file.

Users bring files from many places (yfinance exports, AlphaVantage downloads, spreadsheets), and
some of them are not price files at all (an HTML error page, an API's JSON rate-limit note saved
as .csv). Each file is judged on its own: a bad one becomes that symbol's error naming the file
and what to do, and the other symbols load as usual.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from backend.prices.base import FetchResult, PriceSource
from backend.prices.prepare import (
    REQUIRED_COLUMNS,
    PriceFormatError,
    prepare_prices,
    standard_name,
    standardise_columns,
    within_dates,
)

log = logging.getLogger(__name__)

SUFFIXES = (".csv.gz", ".csv")
_ISO_DAY = r"^\d{4}-\d{2}-\d{2}"
# Keys of the JSON messages AlphaVantage sends instead of prices (rate limit, bad symbol, bad key).
_JSON_MESSAGE_KEYS = ("Note", "Information", "Error Message", "error", "message")


class CsvFolderSource(PriceSource):
    """PriceSource over a folder; `list_symbols` is the universe when no universe file is given."""

    def __init__(self, folder: Path, max_daily_move: float) -> None:
        self.folder = Path(folder)
        self.max_daily_move = max_daily_move
        self.key = f"csv:{self.folder.resolve()}"

    def list_symbols(self) -> list[str]:
        """Every symbol with a price file in the folder, upper-case, sorted. A table of something
        else kept beside the prices (e.g. constituents.csv) is not a symbol."""
        symbols = []
        for symbol, paths in self._files().items():
            others = [(path, _other_table(path)) for path in paths]
            if all(header for _, header in others):
                log.info("%s is not a price file (columns %s): not taken as a symbol", *others[0])
            else:
                symbols.append(symbol)
        return sorted(symbols)

    def fetch(self, symbols: list[str], start: str | None, end: str | None) -> Iterator[FetchResult]:
        try:
            files = self._files()
        except OSError as error:
            for symbol in symbols:
                yield FetchResult(symbol, None, error=f"cannot read the folder {self.folder} ({error}): "
                                                      "check that it is still there")
            return
        for symbol in symbols:
            yield self._load(symbol, files.get(symbol.strip().upper(), []), start, end)

    def fingerprints(self, symbols: list[str]) -> dict[str, str]:
        """Size and modification time of each symbol's file: a fixed or replaced file is read again."""
        files = self._files()
        stamps = {}
        for symbol in symbols:
            paths = files.get(symbol.strip().upper(), [])
            stamps[symbol] = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
        return stamps

    def _files(self) -> dict[str, list[Path]]:
        """UPPER symbol -> its files (more than one is an ambiguity reported on fetch)."""
        files: dict[str, list[Path]] = {}
        for path in sorted(self.folder.iterdir()):
            suffix = next((s for s in SUFFIXES if path.name.lower().endswith(s)), None)
            if suffix is not None and path.is_file():
                files.setdefault(path.name[: -len(suffix)].upper(), []).append(path)
        return files

    def _load(self, symbol: str, paths: list[Path], start: str | None, end: str | None) -> FetchResult:
        if not paths:
            return FetchResult(symbol, None, error=(
                f"no price file for {symbol} in {self.folder} (looked for {symbol}.csv and {symbol}.csv.gz, "
                "any letter case): add the file or remove the symbol from the universe"))
        if len(paths) > 1:
            names = " and ".join(path.name for path in paths)
            return FetchResult(symbol, None, error=(
                f"{symbol} has {len(paths)} price files in {self.folder} ({names}): keep only one"))
        path = paths[0]
        try:
            table = read_price_file(path)
            raw = within_dates(table, start, end)
            if raw.empty:
                first, last = table["date"].min(), table["date"].max()
                return FetchResult(symbol, None, error=(
                    f"{path.name} has no rows between {start or 'the start'} and {end or 'the end'}: it "
                    f"covers {first:%Y-%m-%d} to {last:%Y-%m-%d}. Widen data.start/data.end."))
            return prepare_prices(raw, symbol, path.name, self.max_daily_move)
        except PriceFormatError as error:
            return FetchResult(symbol, None, error=str(error))


def _other_table(path: Path) -> str | None:
    """The header of a CSV table that is plainly something else (a constituents list kept beside the
    prices: two or more columns, none of them a price column), else None. A broken file (empty,
    HTML, JSON, bad gzip) stays a symbol so that fetching it says what is wrong."""
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")) as handle:
            first = handle.readline(65536).decode("utf-8-sig", errors="replace").strip()
    except (OSError, EOFError, zlib.error):
        return None
    if first.startswith(("<", "{", "[")):
        return None
    try:
        cells = next(csv.reader([first]), [])
    except csv.Error:  # binary junk (a zip or xlsx renamed to .csv): a broken file, not a table
        return None
    if len(cells) < 2 or any(standard_name(cell) in REQUIRED_COLUMNS for cell in cells):
        return None
    return ", ".join(cells)


def read_price_file(path: Path) -> pd.DataFrame:
    """A standard raw frame (see prepare.py) indexed by file line number, or PriceFormatError
    saying what the file holds instead of prices."""
    text = _read_text(path)
    name = path.name
    _reject_non_csv(text, name)
    header_lines = 1
    first_cells = [line.split(",", 1)[0].strip().strip('"').lower() for line in text.split("\n", 3)[:3]]
    if first_cells[:2] == ["price", "ticker"]:
        # yfinance >= 0.2.51 writes a MultiIndex frame as "Price,...", "Ticker,AAPL,...", "Date,,,".
        header_lines = 3 if first_cells[2:] == ["date"] else 2
    try:
        # thousands=",": a spreadsheet's "1,389,500" (quoted, so the comma is not a column break)
        table = pd.read_csv(io.StringIO(text), skiprows=range(1, header_lines), skip_blank_lines=False,
                            thousands=",")
    except ValueError as error:  # pandas' ParserError and friends
        raise PriceFormatError(f"{name} cannot be read as a CSV table ({str(error).strip()}): re-download or "
                               "re-export it as comma-separated values") from error
    if header_lines > 1:
        table = table.rename(columns={table.columns[0]: "Date"})
    if len(table.columns) == 1 and ";" in str(table.columns[0]):
        raise PriceFormatError(f"{name} separates its columns with ';' (found header {table.columns[0]!r}): "
                               "save it with ',' as the separator")
    table.index = pd.RangeIndex(header_lines + 1, header_lines + 1 + len(table), name="line")
    raw = standardise_columns(table.dropna(how="all"), name)
    if raw.empty:
        raise PriceFormatError(f"{name} has a header but no price rows: re-download it")
    raw["date"] = _parse_dates(raw["date"], name)
    return raw


def _read_text(path: Path) -> str:
    """The file's text, unzipped when it ends in .gz; a UTF-8 byte-order mark (Excel) is dropped."""
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise PriceFormatError(f"{path.name} is not a readable gzip file ({error}): re-download it, or unzip "
                               f"it and save it as {path.name[:-3]}") from error
    except OSError as error:
        raise PriceFormatError(f"{path.name} cannot be read ({error}): check the file's "
                               "permissions") from error
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark (Excel "Unicode text")
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PriceFormatError(f"{path.name} is not a text file (byte {error.start} is not UTF-8 text): "
                               "export it again as CSV (UTF-8)") from error


def _reject_non_csv(text: str, name: str) -> None:
    """Recognise what people end up saving as SYM.csv instead of prices, to say so plainly."""
    head = text.lstrip()
    if not head:
        raise PriceFormatError(f"{name} is empty: re-download it")
    if head.startswith("<"):
        raise PriceFormatError(f"{name} looks like an HTML page, not a price file: re-download it")
    if head.startswith(("{", "[")):
        raise PriceFormatError(f"{name} holds a JSON message, not prices ({_json_summary(head)}): "
                               "re-download it (an API sends this when its request limit is reached or "
                               "the symbol is unknown)")


def _json_summary(text: str) -> str:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return f"starts with {text[:80]!r}"
    if isinstance(message, dict):
        for key in _JSON_MESSAGE_KEYS:
            if key in message:
                return f"{key}: {str(message[key])[:200]}"
        return f"keys: {', '.join(map(str, list(message)[:8]))}"
    return f"a JSON list of {len(message)} item(s)"


_NUMERIC_DAY = r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$"


def _day_month_order(text: pd.Series) -> str | None:
    """The format of dates like 13/02/2020 or 02/13/2020 when the file itself settles the order (a
    first number above 12 means day first, a second one above 12 month first); None otherwise."""
    parts = text.str.extract(_NUMERIC_DAY)
    if parts.isna().any(axis=None) or parts.empty:
        return None
    first, separator, second = parts[0].astype(int), parts[1].iloc[0], parts[2].astype(int)
    if (first > 12).any() and not (second > 12).any():
        return f"%d{separator}%m{separator}%Y"
    if (second > 12).any() and not (first > 12).any():
        return f"%m{separator}%d{separator}%Y"
    return None


def _parse_dates(values: pd.Series, name: str) -> pd.Series:
    """Days from ISO dates (a time or UTC offset after the day is ignored: a daily bar belongs to its
    exchange day) and, for other spellings, the one format pandas infers from the first of them
    (month first when ambiguous), so that a file cannot mix 1/2 = Jan 2 with 13/2 = Feb 13."""
    text = values.astype("string").str.strip()
    iso = text.str.match(_ISO_DAY).fillna(False).to_numpy()
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    dates[iso] = pd.to_datetime(text[iso].str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    if not iso.all():
        try:
            dates[~iso] = pd.to_datetime(text[~iso], errors="coerce", format=_day_month_order(text[~iso]))
        except ValueError as error:  # e.g. dates with different UTC offsets in a non-ISO spelling
            raise PriceFormatError(f"{name}: the dates cannot be read ({error}): write them as "
                                   "YYYY-MM-DD") from error
    bad = dates.isna()
    if bad.any():
        line = bad.idxmax()
        shown = "an empty cell" if pd.isna(values[line]) else repr(values[line])
        raise PriceFormatError(f"{name} line {line}: {shown} is not a date ({int(bad.sum())} of "
                               f"{len(values)} rows have no readable date): fix the file or re-download it")
    _refuse_intraday(text, dates, name)
    return dates


def _refuse_intraday(text: pd.Series, days: pd.Series, name: str) -> None:
    """Several rows of one day at different times are intraday bars: taking one of them as the
    day's close would be silently wrong, so the file is refused with what was found."""
    times = text.str.extract(r"[T ](\d{1,2}:\d{2})", expand=False)
    if times.isna().all():
        return
    per_day = pd.DataFrame({"day": days, "time": times}).dropna().groupby("day")["time"].nunique()
    intraday = per_day[per_day > 1]
    if intraday.empty:
        return
    day = intraday.index[0]
    seen = ", ".join(sorted(set(times[days == day].dropna()))[:3])
    raise PriceFormatError(f"{name} holds intraday bars: {len(intraday)} days have rows at several times (for "
                           f"example {day:%Y-%m-%d} at {seen}). One row per trading day is needed: export "
                           "daily bars (interval 1d) and replace the file.")
