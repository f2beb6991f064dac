"""CsvFolderSource on real files: every supported layout, every kind of bad file, the real data set,
and the factory that builds it from the command-line options."""

from __future__ import annotations

import gzip
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.prices.base import PRICE_COLUMNS
from backend.prices.csv_source import CsvFolderSource
from backend.prices.factory import make_source

MAX_MOVE = 0.6

YFINANCE_LAYOUT = """Date,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits
2020-01-02 00:00:00-05:00,74.06,75.15,73.80,75.09,73.15,135480400,0.0,0.0
2020-01-03 00:00:00-05:00,74.29,75.14,74.13,74.36,72.44,146322800,0.0,0.0
2020-01-06 00:00:00-05:00,73.45,74.99,73.19,74.95,73.01,118387200,0.0,0.0
2020-01-07 00:00:00-05:00,74.96,75.22,74.37,74.60,72.68,108872000,0.0,0.0
"""

ALPHAVANTAGE_LAYOUT = """timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient
2014-06-05,646.20,649.37,642.61,647.35,20.86,50608000,0.0,1.0
2014-06-06,649.90,651.26,644.47,645.57,20.80,87484600,0.0,1.0
2014-06-09,92.70,93.88,91.75,93.70,21.11,75414997,0.0,7.0
2014-06-10,94.73,95.05,93.57,94.25,21.23,62777000,0.0,1.0
"""

PLAIN_LAYOUT = """ date , OPEN ,High,  low  ,CLOSE,Volume
2021-03-01,10.0,10.5,9.8,10.2,5000
2021-03-02,10.2,10.9,10.1,10.8,6100
2021-03-03,10.8,11.0,10.4,10.5,4300
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    """A real file; names ending in .gz are really gzip-compressed."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    path = folder / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def fetch_one(folder: Path, symbol: str, start: str | None = None, end: str | None = None):
    [result] = CsvFolderSource(folder, MAX_MOVE).fetch([symbol], start, end)
    return result


def test_yfinance_layout_is_read_and_adjusted(tmp_path):
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    result = fetch_one(tmp_path, "AAPL")

    assert result.error is None and result.issues == []
    prices = result.prices
    assert list(prices.columns) == list(PRICE_COLUMNS)
    assert prices.index[0] == pd.Timestamp("2020-01-02") and prices.index.tz is None
    assert prices["close"].iloc[0] == pytest.approx(73.15)
    assert prices["open"].iloc[0] == pytest.approx(74.06 * 73.15 / 75.09)
    assert prices["raw_close"].iloc[0] == 75.09
    assert prices["split"].tolist() == [1, 1, 1, 1]


def test_alphavantage_layout_in_a_gz_file_keeps_the_split_out_of_the_adjusted_close(tmp_path):
    write(tmp_path, "AAPL.csv.gz", ALPHAVANTAGE_LAYOUT)
    result = fetch_one(tmp_path, "AAPL")

    assert result.error is None and result.issues == []
    assert result.prices["close"].pct_change().abs().max() < 0.02
    assert result.prices["raw_close"].pct_change().min() < -0.85
    assert result.prices.loc["2014-06-09", "split"] == 7.0


def test_plain_layout_with_odd_header_case_and_spaces(tmp_path):
    write(tmp_path, "XYZ.csv", PLAIN_LAYOUT)
    result = fetch_one(tmp_path, "XYZ")

    assert result.error is None
    assert result.prices["close"].tolist() == [10.2, 10.8, 10.5]
    assert result.prices["raw_close"].tolist() == [10.2, 10.8, 10.5]
    assert result.prices["volume"].tolist() == [5000, 6100, 4300]


def test_yfinance_multi_level_export_is_read(tmp_path):
    """What `yf.download("MSFT").to_csv()` writes with yfinance >= 0.2.51: three header lines."""
    columns = pd.MultiIndex.from_product([["Adj Close", "Close", "High", "Low", "Open", "Volume"], ["MSFT"]],
                                         names=["Price", "Ticker"])
    frame = pd.DataFrame([[150.0, 160.0, 161.0, 158.0, 159.0, 2.0e7],
                          [151.0, 161.0, 162.0, 159.0, 160.0, 2.1e7]],
                         index=pd.DatetimeIndex(["2020-01-02", "2020-01-03"], name="Date"), columns=columns)
    write(tmp_path, "MSFT.csv", frame.to_csv())
    result = fetch_one(tmp_path, "MSFT")

    assert result.error is None
    assert result.prices["close"].tolist() == [150, 151] and result.prices["raw_close"].tolist() == [160, 161]


@pytest.mark.parametrize("days", [
    ("2020-03-06 00:00:00-05:00", "2020-03-09 00:00:00-04:00"),  # yfinance export across a DST change
    ("3/6/2020", "3/9/2020"),  # US spreadsheet
    ("20200306", "20200309"),
])
def test_dates_in_other_spellings_are_read_as_days(tmp_path, days):
    write(tmp_path, "XYZ.csv", f"Date,Open,High,Low,Close,Volume\n{days[0]},1,2,0.5,1.5,100\n"
                               f"{days[1]},1,2,0.5,1.5,100\n")
    result = fetch_one(tmp_path, "XYZ")
    assert result.prices.index.strftime("%Y-%m-%d").tolist() == ["2020-03-06", "2020-03-09"]


def test_a_file_written_newest_first_loads_oldest_first(tmp_path):
    header, *rows = ALPHAVANTAGE_LAYOUT.strip().splitlines()
    write(tmp_path, "AAPL.csv", "\n".join([header, *reversed(rows)]) + "\n")
    result = fetch_one(tmp_path, "AAPL")

    assert result.issues == [] and result.prices.index.is_monotonic_increasing


def test_symbol_lookup_ignores_letter_case_and_excel_byte_order_marks(tmp_path):
    write(tmp_path, "msft.CSV", "\ufeff" + PLAIN_LAYOUT)
    assert fetch_one(tmp_path, "MSFT").error is None
    assert fetch_one(tmp_path, "msft").error is None


def test_rows_are_filtered_to_the_inclusive_range(tmp_path):
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    result = fetch_one(tmp_path, "AAPL", "2020-01-03", "2020-01-06")
    assert result.prices.index.strftime("%Y-%m-%d").tolist() == ["2020-01-03", "2020-01-06"]


def test_a_range_outside_the_file_says_what_the_file_covers(tmp_path):
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    result = fetch_one(tmp_path, "AAPL", "2021-01-01", None)
    assert result.error == ("AAPL.csv has no rows between 2021-01-01 and the end: it covers 2020-01-02 to "
                            "2020-01-07. Widen data.start/data.end.")


def test_quarantined_rows_name_the_file_and_line(tmp_path):
    text = PLAIN_LAYOUT.replace("2021-03-02,10.2,10.9,10.1,10.8", "2021-03-02,10.2,9.0,10.1,10.8")
    write(tmp_path, "XYZ.csv", text)
    result = fetch_one(tmp_path, "XYZ")

    assert [(issue.date, issue.kind) for issue in result.issues] == [("2021-03-02", "high_below_low")]
    assert result.issues[0].detail == "XYZ.csv line 3: high 9 is below low 10.1"
    assert len(result.prices) == 2


BAD_FILES = [
    ("AAPL.csv", "", "AAPL.csv is empty: re-download it"),
    ("AAPL.csv", "\n  \n", "AAPL.csv is empty: re-download it"),
    ("AAPL.csv", "<!DOCTYPE html>\n<html><body>Service unavailable</body></html>\n",
     "AAPL.csv looks like an HTML page, not a price file: re-download it"),
    ("AAPL.csv", '{\n  "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 '
                 'calls per minute."\n}',
     "AAPL.csv holds a JSON message, not prices (Note: Thank you for using Alpha Vantage! Our standard API "
     "call frequency is 5 calls per minute.): re-download it"),
    ("AAPL.csv", '{"Error Message": "Invalid API call."}',
     "AAPL.csv holds a JSON message, not prices (Error Message: Invalid API call.)"),
    ("AAPL.csv", "Symbol,Name,Sector\nAAPL,Apple,IT\n",
     "AAPL.csv is not a price table: it lacks date, open, high, low, close, volume (found 'Symbol', 'Name', "
     "'Sector')"),
    ("AAPL.csv", "Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n",
     "AAPL.csv is not a price table: it lacks volume (found 'Date', 'Open', 'High', 'Low', 'Close')"),
    ("AAPL.csv", "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,100\nyesterday,1,2,0.5,1.5,100\n",
     "AAPL.csv line 3: 'yesterday' is not a date (1 of 2 rows have no readable date): fix the file or "
     "re-download it"),
    ("AAPL.csv", "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,100\n,1,2,0.5,1.5,100\n",
     "AAPL.csv line 3: an empty cell is not a date"),
    ("AAPL.csv", "Date,Open,High,Low,Close,Volume\n",
     "AAPL.csv has a header but no price rows: re-download it"),
    ("AAPL.csv", "Date;Open;High;Low;Close;Volume\n2020-01-02;1;2;0.5;1.5;100\n",
     "AAPL.csv separates its columns with ';' (found header 'Date;Open;High;Low;Close;Volume'): save it "
     "with ',' as the separator"),
    ("AAPL.csv", "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,100\n"
                 "2020-01-03,1,2,0.5,1.5,100,7,8\n",
     "AAPL.csv cannot be read as a CSV table (Error tokenizing data."),
    ("AAPL.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
     "AAPL.csv is not a text file (byte 0 is not UTF-8 text): export it again as CSV (UTF-8)"),
    ("AAPL.csv.gz", None, "AAPL.csv.gz is not a readable gzip file ("),
]


BAD_FILE_IDS = ["empty", "blank-lines", "html", "json-note", "json-error", "other-table", "no-volume",
                "bad-date", "empty-date", "header-only", "semicolons", "ragged-rows", "binary", "not-gzip"]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=BAD_FILE_IDS)
def test_a_file_that_is_not_prices_is_an_error_for_that_symbol_only(tmp_path, name, content, message):
    if content is None:
        (tmp_path / name).write_bytes(b"Date,Open,High,Low,Close,Volume\n")  # named .gz, not compressed
    else:
        write(tmp_path, name, content)
    write(tmp_path, "MSFT.csv.gz", ALPHAVANTAGE_LAYOUT)

    results = {r.symbol: r for r in CsvFolderSource(tmp_path, MAX_MOVE).fetch(["AAPL", "MSFT"], None, None)}

    assert results["AAPL"].prices is None
    assert results["AAPL"].error.startswith(message), results["AAPL"].error
    assert results["MSFT"].error is None and len(results["MSFT"].prices) == 4


def test_a_missing_file_names_the_file_names_it_looked_for(tmp_path):
    write(tmp_path, "MSFT.csv", PLAIN_LAYOUT)
    results = list(CsvFolderSource(tmp_path, MAX_MOVE).fetch(["ZZZ", "MSFT"], None, None))

    assert results[0].error == (f"no price file for ZZZ in {tmp_path} (looked for ZZZ.csv and ZZZ.csv.gz, "
                                "any letter case): add the file or remove the symbol from the universe")
    assert results[1].error is None


def test_two_files_for_one_symbol_are_an_ambiguity_not_a_guess(tmp_path):
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    write(tmp_path, "aapl.csv.gz", ALPHAVANTAGE_LAYOUT)
    result = fetch_one(tmp_path, "AAPL")
    assert result.error == f"AAPL has 2 price files in {tmp_path} (AAPL.csv and aapl.csv.gz): keep only one"


def test_list_symbols_lists_price_files_and_broken_ones_but_not_other_tables(tmp_path):
    write(tmp_path, "msft.csv.gz", ALPHAVANTAGE_LAYOUT)
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    write(tmp_path, "BAD.csv", "<html>oops</html>")
    write(tmp_path, "constituents.csv", "Symbol,Name,Sector\nAAPL,Apple,IT\n")
    write(tmp_path, "notes.txt", "not a csv")
    (tmp_path / "sub.csv").mkdir()

    source = CsvFolderSource(tmp_path, MAX_MOVE)
    assert source.list_symbols() == ["AAPL", "BAD", "MSFT"]
    assert source.key == f"csv:{tmp_path.resolve()}"


def test_the_real_aapl_splits_do_not_show_in_the_adjusted_close(real_data_dir):
    result = fetch_one(real_data_dir, "AAPL")
    adjusted = result.prices["close"].pct_change()
    raw = result.prices["raw_close"].pct_change()

    for split_day, ratio in (("2014-06-09", 7), ("2020-08-31", 4)):
        assert abs(adjusted.loc[split_day]) < 0.1
        assert raw.loc[split_day] == pytest.approx(1 / ratio - 1, abs=0.05)
        assert result.prices.loc[split_day, "split"] == pytest.approx(ratio, rel=1e-5)


def test_all_real_files_load_without_errors(real_data_dir):
    source = CsvFolderSource(real_data_dir, MAX_MOVE)
    symbols = source.list_symbols()
    results = list(source.fetch(symbols, None, None))

    assert len(symbols) == 70 and "CONSTITUENTS" not in symbols
    assert [r.error for r in results if r.error] == []
    quarantined = Counter(issue.kind for r in results for issue in r.issues)
    # Five real one-day moves above 60% (CBRE, LVS and UAL in 2008-09, WMB twice in 2002), no bad rows.
    assert quarantined == Counter({"unexplained_move": 5})
    assert min(len(r.prices) for r in results) >= 270  # CARR and OTIS start in 2020


def test_factory_builds_the_csv_source(tmp_path):
    source = make_source("csv", prices_dir=tmp_path, max_daily_move=MAX_MOVE, demo_seed=7)
    assert isinstance(source, CsvFolderSource) and source.key == f"csv:{tmp_path.resolve()}"


def test_factory_csv_needs_an_existing_prices_dir(tmp_path):
    expected = r"^--source csv needs --prices-dir DIR \(the folder with SYM.csv files\)$"
    with pytest.raises(ValueError, match=expected):
        make_source("csv", prices_dir=None, max_daily_move=MAX_MOVE, demo_seed=7)
    with pytest.raises(ValueError, match=f"--prices-dir {tmp_path / 'nope'} is not an existing folder"):
        make_source("csv", prices_dir=tmp_path / "nope", max_daily_move=MAX_MOVE, demo_seed=7)


def test_factory_builds_yfinance_and_demo_and_rejects_unknown_names(monkeypatch):
    assert make_source("yfinance", prices_dir=None, max_daily_move=MAX_MOVE, demo_seed=7).key == "yfinance"

    class FakeDemo:
        def __init__(self, seed: int, max_daily_move: float, size: int) -> None:
            self.seed, self.max_daily_move, self.size = seed, max_daily_move, size

    module = types.ModuleType("backend.prices.demo_source")
    module.DemoMarketSource = FakeDemo
    monkeypatch.setitem(sys.modules, "backend.prices.demo_source", module)
    demo = make_source("demo", prices_dir=None, max_daily_move=0.5, demo_seed=11)
    assert isinstance(demo, FakeDemo) and (demo.seed, demo.max_daily_move, demo.size) == (11, 0.5, 82)
    assert make_source("demo", prices_dir=None, max_daily_move=0.5, demo_seed=11, demo_symbols=500).size == 500

    with pytest.raises(ValueError, match="unknown price source 'stooq': use one of yfinance, csv, demo"):
        make_source("stooq", prices_dir=None, max_daily_move=MAX_MOVE, demo_seed=7)


def test_a_zip_renamed_to_csv_fails_only_its_own_symbol(tmp_path):
    """A first line with a bare carriage return made the csv module raise while the folder was
    listed, which ended the whole run; now it is a symbol whose fetch says what is wrong."""
    write(tmp_path, "AAPL.csv", YFINANCE_LAYOUT)
    write(tmp_path, "MSFT.csv", b"PK\x03\x04\r\x00junk\n")
    write(tmp_path, "IBM.csv", bytes(range(256)) * 4)
    source = CsvFolderSource(tmp_path, MAX_MOVE)
    assert source.list_symbols() == ["AAPL", "IBM", "MSFT"]
    results = {result.symbol: result for result in source.fetch(["AAPL", "IBM", "MSFT"], None, None)}
    assert results["AAPL"].error is None
    assert "MSFT.csv is not a price table" in results["MSFT"].error
    assert "IBM.csv is not a text file" in results["IBM"].error


def test_intraday_bars_are_refused_not_stored_as_a_wrong_daily_close(tmp_path):
    """Issue 15, case 5: 09:30/12:00/16:00 bars were stored with the 09:30 bar as the day's close."""
    lines = ["Date,Open,High,Low,Close,Volume"]
    for day in pd.bdate_range("2020-01-02", periods=30):
        for time, price in (("09:30", 100.0), ("12:00", 101.0), ("16:00", 102.0)):
            lines.append(f"{day:%Y-%m-%d} {time}:00,{price},{price + 1},{price - 1},{price},1000")
    write(tmp_path, "MSFT.csv", "\n".join(lines) + "\n")
    result = fetch_one(tmp_path, "MSFT")
    assert result.prices is None
    assert result.error == ("MSFT.csv holds intraday bars: 30 days have rows at several times (for example "
                            "2020-01-02 at 09:30, 12:00, 16:00). One row per trading day is needed: export daily "
                            "bars (interval 1d) and replace the file.")


def test_daily_bars_stamped_with_one_time_of_day_are_daily(tmp_path):
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f"{day:%Y-%m-%d} 16:00:00-05:00,{100 + i},{101 + i},{99 + i},{100 + i},1000"
        for i, day in enumerate(pd.bdate_range("2020-01-02", periods=30))]
    write(tmp_path, "AAPL.csv", "\n".join(lines) + "\n")
    result = fetch_one(tmp_path, "AAPL")
    assert result.error is None and len(result.prices) == 30


def _steady_file(rows: int = 60) -> pd.DataFrame:
    days = pd.bdate_range("2020-01-02", periods=rows)
    close = 50 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, rows)))
    return pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Open": close, "High": close * 1.01,
                         "Low": close * 0.99, "Close": close, "Volume": 1000})


def test_a_week_of_prices_times_100_is_quarantined_whole_not_just_its_edges(tmp_path):
    """Issue 15, case 4: 8 days x 100 used to lose only the jump in and the jump out."""
    frame = _steady_file()
    frame.loc[20:27, ["Open", "High", "Low", "Close"]] *= 100
    write(tmp_path, "BAD.csv", frame.to_csv(index=False))
    result = fetch_one(tmp_path, "BAD")
    bad_days = frame["Date"][20:28].tolist()
    assert [(issue.date, issue.kind) for issue in result.issues] == [(day, "unexplained_move") for day in bad_days]
    assert "came back to the earlier level on " + frame["Date"][28] in result.issues[0].detail
    assert "2020-01-30 to 2020-02-10 (8 rows) are bad prints" in result.issues[0].detail
    assert len(result.prices) == 52 and result.prices["close"].max() < 100, "no x100 price is kept"


def test_absurd_magnitudes_are_quarantined_per_row(tmp_path):
    frame = _steady_file()
    frame.loc[[10, 40], ["Open", "High", "Low", "Close"]] = 1e308
    write(tmp_path, "HUGE.csv", frame.to_csv(index=False))
    result = fetch_one(tmp_path, "HUGE")
    assert [issue.kind for issue in result.issues] == ["absurd_price", "absurd_price"]
    assert "no share trades above 1e+07" in result.issues[0].detail
    assert len(result.prices) == 58 and np.isfinite(result.prices.to_numpy()).all()


def test_a_lasting_repricing_loses_only_its_own_day(tmp_path):
    frame = _steady_file()
    frame.loc[30:, ["Open", "High", "Low", "Close"]] *= 3  # never comes back
    write(tmp_path, "JUMP.csv", frame.to_csv(index=False))
    result = fetch_one(tmp_path, "JUMP")
    assert [(issue.date, issue.kind) for issue in result.issues] == [(frame["Date"][30], "unexplained_move")]


def test_day_first_dates_thousands_separators_and_utf16_files_are_read(tmp_path):
    """Issue 15, case 13: DD/MM/YYYY dates, "1,389,500" volumes and UTF-16 files (Excel's
    'Unicode text') used to lose every row or the whole file."""
    days = pd.bdate_range("2020-01-02", periods=40)
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f'{day:%d/%m/%Y},{10 + i},{11 + i},{9 + i},{10 + i},"1,389,{500 + i}"' for i, day in enumerate(days)]
    write(tmp_path, "DMY.csv", "\n".join(lines) + "\n")
    result = fetch_one(tmp_path, "DMY")
    assert result.error is None and len(result.prices) == 40
    assert result.prices.index[12] == days[12] and result.prices["volume"].iloc[0] == 1_389_500
    (tmp_path / "WIDE.csv").write_bytes("\n".join(lines).encode("utf-16"))
    wide = fetch_one(tmp_path, "WIDE")
    assert wide.error is None and len(wide.prices) == 40
