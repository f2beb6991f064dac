"""The one road from a source's raw rows to clean prices: standardise -> validate/quarantine -> adjust.

Every source (CSV folder, yfinance, demo market) hands its rows to `prepare_prices`, so a bad row
is judged the same way wherever it came from and the pipeline sees one shape of data. Bad rows
are left out and recorded as DataIssue rows with a reason instead of stopping the symbol.

A "standard raw frame" has the columns RAW_COLUMNS: date (datetime64), open, high, low, close,
volume, adj_close (all NaN when the source has none), dividend (0 = none) and split (1 = none).
Its index labels rows in messages: a frame whose index is named "line" is cited as "FILE line N".
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from backend.prices.base import PRICE_COLUMNS, DataIssue, FetchResult

RAW_COLUMNS = ("date", "open", "high", "low", "close", "volume", "adj_close", "dividend", "split")
OHLC = ("open", "high", "low", "close")
REQUIRED_COLUMNS = ("date", "open", "high", "low", "close", "volume")

# Header spellings of the layouts we read, after lower-casing and turning runs of spaces and
# underscores into one space: yfinance (Date, Adj Close, Dividends, Stock Splits), AlphaVantage
# (timestamp, adjusted_close, dividend_amount, split_coefficient) and plain Date,Open,...,Volume.
COLUMN_ALIASES = {
    "date": "date", "timestamp": "date",
    "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
    "adj close": "adj_close", "adjusted close": "adj_close",
    "dividends": "dividend", "dividend": "dividend", "dividend amount": "dividend",
    "stock splits": "split", "split": "split", "split coefficient": "split",
}

# close may sit this far (relative) outside [low, high]: providers round the four prices separately.
RANGE_TOLERANCE = 1e-4
# No share trades above this (the dearest, Berkshire A, is below 1e6): a larger number is a broken
# value (1e308, a price in another unit), and left in it would overflow the features of every stock.
ABSURD_PRICE = 1e7
# A jump and a jump back to the earlier level at most this many rows later: a block of bad prints.
PLATEAU_ROWS = 30


class PriceFormatError(ValueError):
    """The rows are not a price table; the message names the file or source and what was found."""


def standard_name(header: object) -> str | None:
    """The RAW_COLUMNS name a header stands for in any supported layout, or None."""
    return COLUMN_ALIASES.get(re.sub(r"[\s_]+", " ", str(header).strip().lower()))


def standardise_columns(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Rename the known headers of any supported layout to RAW_COLUMNS, drop the rest and add the
    optional columns a layout lacks, so every source feeds prepare_prices the same frame."""
    renames: dict[str, str] = {}
    for column in frame.columns:
        standard = standard_name(column)
        if standard is None:
            continue
        clash = next((seen for seen, name in renames.items() if name == standard), None)
        if clash is not None:
            raise PriceFormatError(f"{origin} has two columns for {standard}: {clash!r} and {column!r}. "
                                   "Keep one of them.")
        renames[column] = standard
    missing = [name for name in REQUIRED_COLUMNS if name not in renames.values()]
    if missing:
        found = ", ".join(repr(str(column)) for column in frame.columns) or "no columns"
        raise PriceFormatError(
            f"{origin} is not a price table: it lacks {', '.join(missing)} (found {found}). A price file "
            "needs Date (or timestamp), Open, High, Low, Close and Volume columns; Adj Close, Dividends "
            "and Stock Splits are optional.")
    standard = frame.loc[:, list(renames)].rename(columns=renames)
    defaults = {"adj_close": np.nan, "dividend": 0.0, "split": 1.0}
    for name, value in defaults.items():
        if name not in standard.columns:
            standard[name] = value
    return standard.loc[:, list(RAW_COLUMNS)]


def within_dates(raw: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    """Rows of a standard raw frame dated within [start, end], both inclusive; None leaves a side open."""
    dates = pd.to_datetime(raw["date"])
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    keep = pd.Series(True, index=raw.index)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates < pd.Timestamp(end) + pd.Timedelta(days=1)
    return raw.loc[keep]


def prepare_prices(raw: pd.DataFrame, symbol: str, origin: str, max_daily_move: float) -> FetchResult:
    """Validate a standard raw frame, quarantine bad rows with a reason and split/dividend-adjust the
    rest. Raises PriceFormatError only when the frame breaks the standard-raw-frame contract."""
    frame = _oldest_first(_clean_values(raw, origin))
    issues: list[DataIssue] = []
    frame = _quarantine(frame, _date_problems(frame), symbol, origin, issues)
    price_problems = _price_problems(frame)
    frame = _carry_events(frame, dropped=price_problems["kind"].notna().to_numpy())
    frame = _quarantine(frame, price_problems, symbol, origin, issues)
    factor = _adjustment_factor(frame, max_daily_move)
    frame = _quarantine(frame, _move_problems(frame, factor, max_daily_move), symbol, origin, issues)
    factor = factor.loc[frame.index]

    missing_volume = int(frame["volume"].isna().sum())
    if missing_volume:
        issues.append(DataIssue(symbol, None, "missing_volume",
                                f"{origin}: {missing_volume} row(s) have no volume; they count as volume 0"))
    prices = pd.DataFrame({
        **{name: frame[name] * factor for name in OHLC},
        "volume": frame["volume"].fillna(0.0),
        "raw_close": frame["close"],
        "dividend": frame["dividend"],
        "split": frame["split"],
    })
    prices.index = pd.DatetimeIndex(frame["date"], name="date")
    return FetchResult(symbol, prices.loc[:, list(PRICE_COLUMNS)].astype(np.float64), issues)


def _clean_values(raw: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Numbers as float64 (text such as 'null' becomes NaN and is quarantined later), dates as
    tz-naive days, blank events as 'none'. yfinance writes 0 for 'no split'."""
    missing = [name for name in RAW_COLUMNS if name not in raw.columns]
    if missing:
        raise PriceFormatError(f"{origin}: prepare_prices needs the columns {', '.join(RAW_COLUMNS)}; "
                               f"{', '.join(missing)} missing (use standardise_columns first)")
    if not raw.index.is_unique:
        raw = raw.reset_index(drop=True)
    frame = pd.DataFrame({name: pd.to_numeric(raw[name], errors="coerce").astype(np.float64)
                          for name in RAW_COLUMNS[1:]}, index=raw.index)
    dates = pd.DatetimeIndex(pd.to_datetime(raw["date"]))
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    if dates.isna().any():
        first = raw.index[np.flatnonzero(dates.isna())[0]]
        raise PriceFormatError(f"{origin}: {int(dates.isna().sum())} row(s) have no date "
                               f"(first at {_where(raw.index, first, origin)})")
    frame.insert(0, "date", dates.normalize())
    frame["dividend"] = frame["dividend"].fillna(0.0)
    frame["split"] = frame["split"].fillna(1.0).replace(0.0, 1.0)
    return frame


def _oldest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Some providers (AlphaVantage's API among them) write the newest row first: that is a layout,
    not an error, so a frame mostly in descending order is turned round before the order check."""
    steps = np.diff(frame["date"].to_numpy())
    if (steps < np.timedelta64(0)).sum() > (steps > np.timedelta64(0)).sum():
        return frame.iloc[::-1]
    return frame


def _date_problems(frame: pd.DataFrame) -> pd.DataFrame:
    """Duplicated dates (the first row is kept) and rows out of date order. A lone row dated after
    its successor while its neighbours are in order (a typo such as 2102 for 2012) is the stray
    one; otherwise a row dated before an earlier row is."""
    dates = frame["date"]
    previous, following = dates.shift(1), dates.shift(-1)
    duplicate = dates.duplicated(keep="first").to_numpy()
    stray = ~duplicate & ((dates > following) & ((following > previous) | previous.isna())).to_numpy()
    latest_before = dates.where(~stray).cummax().shift(1)
    late = ~duplicate & ~stray & (dates < latest_before).to_numpy()
    detail = pd.Series(None, index=frame.index, dtype=object)
    detail[duplicate] = [f"second row for {_day(day)}; the first one is kept" for day in dates[duplicate]]
    detail[stray] = [f"dated {_day(day)}, out of date order (before a row dated {_day(after)})"
                     for day, after in zip(dates[stray], following[stray], strict=True)]
    detail[late] = [f"dated {_day(day)}, out of date order (after a row dated {_day(before)})"
                    for day, before in zip(dates[late], latest_before[late], strict=True)]
    return _problem_table(np.select([duplicate, stray | late], ["duplicate_date", "unordered_date"], ""),
                          detail)


def _price_problems(frame: pd.DataFrame) -> pd.DataFrame:
    """One reason per bad row (the first that applies): prices missing, <= 0 or inconsistent."""
    prices = [*OHLC, "adj_close"] if frame["adj_close"].notna().any() else list(OHLC)
    values = frame[prices]
    high, low, close = frame["high"], frame["low"], frame["close"]
    checks = {
        "missing_price": (values.isna().any(axis=1), lambda row: ", ".join(
            name for name in prices if pd.isna(row[name])) + " missing or not a number"),
        "non_positive_price": ((values <= 0).any(axis=1), lambda row: ", ".join(
            f"{name} {row[name]:g}" for name in prices if row[name] <= 0) + ": prices must be above 0"),
        "absurd_price": ((values > ABSURD_PRICE).any(axis=1), lambda row: ", ".join(
            f"{name} {row[name]:g}" for name in prices if row[name] > ABSURD_PRICE)
            + f": no share trades above {ABSURD_PRICE:g}; a broken value"),
        "high_below_low": (high < low, lambda row: f"high {row['high']:g} is below low {row['low']:g}"),
        "close_outside_range": (
            (close > high * (1 + RANGE_TOLERANCE)) | (close < low * (1 - RANGE_TOLERANCE)),
            lambda row: f"close {row['close']:g} is outside the day's range "
                        f"[low {row['low']:g}, high {row['high']:g}]"),
        "negative_volume": (frame["volume"] < 0, lambda row: f"volume {row['volume']:g} is negative"),
        "negative_event": ((frame["dividend"] < 0) | (frame["split"] < 0), lambda row:
                           f"dividend {row['dividend']:g} / split {row['split']:g}: neither can be negative"),
    }
    kind = np.select([mask.to_numpy() for mask, _ in checks.values()], list(checks), "")
    detail = pd.Series(None, index=frame.index, dtype=object)
    for name, (_, describe) in checks.items():
        rows = frame.loc[kind == name]
        if len(rows):
            detail[kind == name] = [describe(row) for _, row in rows.iterrows()]
    return _problem_table(kind, detail)


def _carry_events(frame: pd.DataFrame, dropped: np.ndarray) -> pd.DataFrame:
    """A split or dividend on a quarantined row still happened: move it to the next clean row, or
    the split would be missing from the adjustment and the next day would look like a crash."""
    if not (dropped & ((frame["split"] != 1.0) | (frame["dividend"] != 0.0)).to_numpy()).any():
        return frame
    next_kept = pd.Series(np.where(dropped, np.nan, np.arange(len(frame)))).bfill().to_numpy()
    carried = frame[["split", "dividend"]].groupby(next_kept).agg({"split": "prod", "dividend": "sum"})
    frame = frame.copy()
    frame.loc[~dropped, ["split", "dividend"]] = carried.to_numpy()
    return frame


def _adjustment_factor(frame: pd.DataFrame, max_daily_move: float) -> pd.Series:
    """Multiplier from traded to adjusted prices: adj_close / close when the source gives an adjusted
    close, times 1/split for every row before a split that the series still shows (a day whose ratio
    is close to 1/split, e.g. raw prices, or an adjusted close that missed the split)."""
    has_adjusted = frame["adj_close"].notna().any()
    base_factor = frame["adj_close"] / frame["close"] if has_adjusted else pd.Series(1.0, index=frame.index)
    base = frame["close"] * base_factor
    ratio = (base / base.shift(1)).to_numpy()
    split = frame["split"].to_numpy()
    corrected_move = np.abs(ratio * split - 1)
    shown = (split != 1.0) & (corrected_move <= max_daily_move) & (corrected_move < np.abs(ratio - 1))
    step = np.where(shown, 1.0 / split, 1.0)
    # A row is scaled by every shown split after it: reverse cumulative product, shifted by one row.
    after = np.ones(len(step))
    after[:-1] = np.cumprod(step[::-1])[::-1][1:]
    return base_factor * after


def _move_problems(frame: pd.DataFrame, factor: pd.Series, max_daily_move: float) -> pd.DataFrame:
    """Adjusted one-day moves beyond max_daily_move. A bad print shows as a jump and a jump back:
    when the jump back (to within max_daily_move of the level before the jump) comes within
    PLATEAU_ROWS rows, every row from the jump to the day before the return is quarantined (one
    bad day, or a block of them: a week of prices x 100); the day that returns is kept. A jump
    that never comes back (a real re-pricing no split explains) loses only its own day."""
    adjusted = (frame["close"] * factor).to_numpy()
    move = np.r_[np.nan, adjusted[1:] / adjusted[:-1] - 1]
    big = np.abs(move) > max_daily_move
    kind = np.full(len(frame), "", dtype=object)
    detail = pd.Series(None, index=frame.index, dtype=object)
    days = frame["date"].to_numpy()
    row = 1
    while row < len(frame):
        if not big[row]:
            row += 1
            continue
        level = adjusted[row - 1]
        ahead = np.arange(row + 1, min(row + 1 + PLATEAU_ROWS, len(frame)))
        back = ahead[big[ahead] & (np.abs(adjusted[ahead] / level - 1) <= max_daily_move)]
        last = int(back[0]) - 1 if back.size else row
        span = (f"{_day(pd.Timestamp(days[row]))}" if last == row else
                f"{_day(pd.Timestamp(days[row]))} to {_day(pd.Timestamp(days[last]))} ({last - row + 1} rows)")
        what = (f"adjusted close moved {move[row]:+.1%} in one day ({level:.4g} on {_day(pd.Timestamp(days[row - 1]))} "
                f"-> {adjusted[row]:.4g})")
        if back.size:
            message = (f"{what} and came back to the earlier level on {_day(pd.Timestamp(days[last + 1]))}: the "
                       f"prices of {span} are bad prints (limit data.max_daily_move = {max_daily_move:g})")
        else:
            message = f"{what} and no split explains it (limit data.max_daily_move = {max_daily_move:g})"
        kind[row:last + 1] = "unexplained_move"
        detail.iloc[row:last + 1] = message
        row = last + 2 if back.size else row + 1
    return _problem_table(kind.astype(str), detail)


def _problem_table(kind: np.ndarray, detail: pd.Series) -> pd.DataFrame:
    """kind per row ('' = no problem, stored as NaN) with its detail, aligned to the checked frame."""
    kinds = pd.Series(kind, index=detail.index, dtype=object)
    return pd.DataFrame({"kind": kinds.where(kinds != ""), "detail": detail})


def _quarantine(frame: pd.DataFrame, problems: pd.DataFrame, symbol: str, origin: str,
                issues: list[DataIssue]) -> pd.DataFrame:
    """Record a DataIssue for every row with a problem and return the rows without one."""
    bad = problems["kind"].notna().to_numpy()
    for label, day, kind, detail in zip(frame.index[bad], frame["date"][bad], problems["kind"][bad],
                                        problems["detail"][bad], strict=True):
        issues.append(DataIssue(symbol, _day(day), kind, f"{_where(frame.index, label, origin)}: {detail}"))
    return frame.loc[~bad]


def _where(index: pd.Index, label: object, origin: str) -> str:
    return f"{origin} line {label}" if index.name == "line" else origin


def _day(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")
