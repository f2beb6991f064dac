"""Universe files: what a hand-edited CSV may look like, every mistake named with file and line,
and the shipped default universe."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from backend.universe import UniverseEntry, UniverseError, folder_universe, load_universe

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "universe.csv"
GICS_SECTORS = {"Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy",
                "Financials", "Health Care", "Industrials", "Information Technology", "Materials",
                "Real Estate", "Utilities"}


def universe_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "universe.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_headers_in_any_case_and_spacing_and_symbols_are_normalised(tmp_path):
    path = universe_file(tmp_path, "\ufeff Symbol , NAME,Sector ,Cap\n"
                                   " aapl ,Apple Inc.,Information Technology,Large\n"
                                   "\n"
                                   "brk-b,\"Berkshire Hathaway, Class B\",Financials,\n")
    assert load_universe(path) == [
        UniverseEntry("AAPL", "Apple Inc.", "Information Technology", "large"),
        UniverseEntry("BRK-B", "Berkshire Hathaway, Class B", "Financials", None),
    ]


def test_the_cap_column_is_optional_and_columns_may_come_in_any_order(tmp_path):
    path = universe_file(tmp_path, "sector,symbol,name\nEnergy,XOM,Exxon Mobil\n")
    assert load_universe(path) == [UniverseEntry("XOM", "Exxon Mobil", "Energy", None)]


@pytest.mark.parametrize(("text", "message"), [
    ("", "universe.csv is empty. It needs a header line symbol,name,sector[,cap]"),
    ("symbol,name,sector\n", "universe.csv has a header but no stocks"),
    ("ticker,name\nAAPL,Apple\n",
     "universe.csv line 1: missing column(s) symbol, sector (found ticker, name)"),
    ("symbol,name,sector\nAAPL,Apple,Information Technology\n ,Nameless,Energy\n",
     "universe.csv line 3: the symbol is empty. Fill it in or delete the line."),
    ("symbol,name,sector\nAAPL,Apple,Information Technology\nMSFT,Microsoft,Information Technology\n"
     "aapl,Apple again,Information Technology\n",
     "universe.csv: AAPL is listed twice, on line 2 and line 4. Keep one of them."),
    ("symbol,name,sector\nAAPL,Apple,\n", "universe.csv line 2: AAPL has no sector."),
    ("symbol,name,sector,cap\nAAPL,Apple,Information Technology,mega\n",
     "universe.csv line 2: AAPL has cap 'mega'; use one of large, mid, small or leave it empty."),
    ("symbol,name,sector\nAPPLE INC,Apple,Information Technology\n",
     "universe.csv line 2: 'APPLE INC' is not a ticker symbol"),
])
def test_mistakes_are_named_with_file_and_line(tmp_path, text, message):
    path = universe_file(tmp_path, text)
    with pytest.raises(UniverseError) as caught:
        load_universe(path)
    assert str(caught.value).startswith(f"Universe file {path}")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_missing_file_says_to_check_the_path(tmp_path):
    with pytest.raises(UniverseError, match="nope.csv does not exist. Check the --universe path."):
        load_universe(tmp_path / "nope.csv")


def test_folder_universe_knows_only_the_symbols():
    assert folder_universe([" msft", "AAPL"])[0] == [UniverseEntry("MSFT", "MSFT", "Unknown", None),
                                                 UniverseEntry("AAPL", "AAPL", "Unknown", None)]


def test_the_shipped_universe_covers_every_sector_and_cap_bucket():
    entries = load_universe(SHIPPED)
    caps = Counter(entry.cap for entry in entries)

    assert len(entries) == 82
    assert {entry.sector for entry in entries} == GICS_SECTORS
    assert set(caps) == {"large", "mid", "small"}
    assert caps["large"] >= 30 and caps["mid"] >= 20 and caps["small"] >= 12
    assert all(entry.name for entry in entries)


def test_a_windows_excel_csv_in_cp1252_is_read(tmp_path):
    """Issue 15, case 13: Excel on Windows saves CSV in cp1252; 'Nestlé' used to be refused."""
    path = tmp_path / "universe.csv"
    path.write_bytes("symbol,name,sector\r\nNSRGY,Nestlé S.A.,Consumer Staples\r\n".encode("cp1252"))
    [entry] = load_universe(path)
    assert (entry.symbol, entry.name, entry.sector) == ("NSRGY", "Nestlé S.A.", "Consumer Staples")


def test_prices_folder_files_that_are_no_symbol_are_left_out_and_named():
    entries, left_out = folder_universe(["AAPL", "my stock", "AAPL (1)"])
    assert [entry.symbol for entry in entries] == ["AAPL"] and left_out == ["MY STOCK", "AAPL (1)"]
