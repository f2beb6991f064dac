"""prepare_prices: the shared validate/quarantine/adjust step every price source goes through."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from backend.prices.base import PRICE_COLUMNS
from backend.prices.prepare import (
    RAW_COLUMNS,
    PriceFormatError,
    prepare_prices,
    standardise_columns,
    within_dates,
)

MAX_MOVE = 0.6


def raw_frame(closes: list[float], *, dates: list[str] | None = None, adj: list[float] | None = None,
              split: list[float] | None = None, dividend: list[float] | None = None,
              volume: list[float] | None = None, line_numbers: bool = False) -> pd.DataFrame:
    """A standard raw frame with a consistent day range around each close (high 1% above, low 1% below)."""
    closes_array = np.asarray(closes, dtype=float)
    dates = dates or [day.strftime("%Y-%m-%d") for day in pd.bdate_range("2020-01-01", periods=len(closes))]
    frame = pd.DataFrame({
        "date": pd.to_datetime(dates),
        "open": closes_array,
        "high": closes_array * 1.01,
        "low": closes_array * 0.99,
        "close": closes_array,
        "volume": volume if volume is not None else [1000.0] * len(closes),
        "adj_close": adj if adj is not None else [np.nan] * len(closes),
        "dividend": dividend if dividend is not None else [0.0] * len(closes),
        "split": split if split is not None else [1.0] * len(closes),
    })
    if line_numbers:
        frame.index = pd.RangeIndex(2, 2 + len(frame), name="line")
    return frame


def kinds(result) -> list[tuple[str | None, str]]:
    return [(issue.date, issue.kind) for issue in result.issues]


def test_clean_rows_come_out_in_the_contract_shape():
    result = prepare_prices(raw_frame([10, 11, 12]), "ABC", "ABC.csv", MAX_MOVE)

    assert result.error is None and result.issues == []
    prices = result.prices
    assert list(prices.columns) == list(PRICE_COLUMNS)
    assert isinstance(prices.index, pd.DatetimeIndex) and prices.index.name == "date"
    assert prices.index.tz is None and prices.index.is_monotonic_increasing and prices.index.is_unique
    assert set(prices.dtypes) == {np.dtype("float64")}
    assert prices["close"].tolist() == [10, 11, 12] and prices["raw_close"].tolist() == [10, 11, 12]


def test_adjusted_close_scales_open_high_low_close_and_keeps_the_traded_close():
    raw = raw_frame([10, 12], adj=[5, 6])
    prices = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE).prices

    assert prices["close"].tolist() == [5, 6]
    assert prices["open"].tolist() == [5, 6]
    assert prices["high"].tolist() == pytest.approx([5.05, 6.06])
    assert prices["raw_close"].tolist() == [10, 12]


def test_timezone_aware_and_intraday_dates_become_plain_days():
    raw = raw_frame([10, 11])
    raw["date"] = pd.to_datetime(["2020-01-02 09:30", "2020-01-03 09:30"]).tz_localize("America/New_York")
    prices = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE).prices

    assert prices.index.tz is None
    assert list(prices.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]


@pytest.mark.parametrize(("column", "value", "kind", "words"), [
    ("close", np.nan, "missing_price", "close missing"),
    ("open", "null", "missing_price", "open missing or not a number"),
    ("low", 0.0, "non_positive_price", "low 0: prices must be above 0"),
    ("adj_close", -1.0, "non_positive_price", "adj_close -1"),
    ("high", 5.0, "high_below_low", "high 5 is below low 10.89"),
    ("volume", -5.0, "negative_volume", "volume -5 is negative"),
])
def test_bad_rows_are_quarantined_with_a_reason(column, value, kind, words):
    raw = raw_frame([10, 11, 12], adj=[10, 11, 12], line_numbers=True)
    raw[column] = raw[column].astype(object)
    raw.loc[3, column] = value
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-02", kind)]
    assert result.issues[0].detail.startswith("ABC.csv line 3: ")
    assert words in result.issues[0].detail
    assert result.prices.index.strftime("%Y-%m-%d").tolist() == ["2020-01-01", "2020-01-03"]


def test_close_outside_the_range_is_quarantined_but_rounding_is_tolerated():
    raw = raw_frame([10, 11, 12, 13])
    raw.loc[1, "close"] = raw.loc[1, "high"] * 1.05
    raw.loc[2, "close"] = raw.loc[2, "high"] * (1 + 1e-6)
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-02", "close_outside_range")]
    assert "outside the day's range [low 10.89, high 11.11]" in result.issues[0].detail
    assert len(result.prices) == 3


def test_a_missing_adjusted_close_is_only_a_problem_when_the_source_has_adjusted_closes():
    partly = prepare_prices(raw_frame([10, 11], adj=[10, np.nan]), "ABC", "x", MAX_MOVE)
    none_at_all = prepare_prices(raw_frame([10, 11]), "ABC", "x", MAX_MOVE)

    assert kinds(partly) == [("2020-01-02", "missing_price")]
    assert none_at_all.issues == [] and len(none_at_all.prices) == 2


def test_duplicate_dates_keep_the_first_row():
    raw = raw_frame([10, 11, 99, 12], dates=["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-02", "duplicate_date")]
    assert "second row for 2020-01-02; the first one is kept" in result.issues[0].detail
    assert result.prices["close"].tolist() == [10, 11, 12]


def test_a_row_dated_before_its_predecessor_is_quarantined():
    raw = raw_frame([10, 11, 12, 13, 14],
                    dates=["2020-01-01", "2020-01-02", "2020-01-06", "2020-01-03", "2020-01-07"])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert [issue.kind for issue in result.issues] == ["unordered_date"]
    assert result.prices.index.is_monotonic_increasing and len(result.prices) == 4


def test_a_lone_typo_far_in_the_future_does_not_take_the_rest_of_the_file_with_it():
    dates = ["2012-01-02", "2012-01-03", "2102-01-04", "2012-01-05", "2012-01-06"]
    result = prepare_prices(raw_frame([10, 11, 12, 13, 14], dates=dates), "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2102-01-04", "unordered_date")]
    assert "before a row dated 2012-01-05" in result.issues[0].detail
    assert result.prices["close"].tolist() == [10, 11, 13, 14]


def test_a_typo_in_the_first_row_does_not_take_the_rest_of_the_file_with_it():
    dates = ["2102-01-02", "2012-01-03", "2012-01-04", "2012-01-05"]
    result = prepare_prices(raw_frame([10, 11, 12, 13], dates=dates), "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2102-01-02", "unordered_date")]
    assert result.prices["close"].tolist() == [11, 12, 13]


def test_when_every_row_is_bad_the_result_is_empty_but_well_formed():
    raw = raw_frame([10, 11])
    raw["close"] = np.nan
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert [issue.kind for issue in result.issues] == ["missing_price", "missing_price"]
    assert result.prices.empty and list(result.prices.columns) == list(PRICE_COLUMNS)
    assert result.prices.index.name == "date" and result.error is None


def test_a_file_written_newest_first_is_read_oldest_first_without_issues():
    raw = raw_frame([13, 12, 11, 10], dates=["2020-01-06", "2020-01-03", "2020-01-02", "2020-01-01"])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert result.issues == []
    assert result.prices["close"].tolist() == [10, 11, 12, 13]


def test_an_unexplained_jump_is_quarantined_on_the_adjusted_close():
    raw = raw_frame([10, 10.5, 30, 31], adj=[10, 10.5, 30, 31], line_numbers=True)
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-03", "unexplained_move")]
    assert "ABC.csv line 4: adjusted close moved +185.7% in one day (10.5 on 2020-01-02 -> 30)" in \
        result.issues[0].detail
    assert "data.max_daily_move = 0.6" in result.issues[0].detail


def test_a_raw_split_gap_is_fine_when_the_adjusted_close_is_continuous():
    """AlphaVantage style: raw prices halve on a 2:1 split, adjusted_close does not."""
    raw = raw_frame([100, 102, 51, 52], adj=[50, 51, 51, 52], split=[1, 1, 2, 1])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert result.issues == []
    assert result.prices["close"].tolist() == [50, 51, 51, 52]
    assert result.prices["raw_close"].tolist() == [100, 102, 51, 52]
    assert result.prices["split"].tolist() == [1, 1, 2, 1]


def test_without_adjusted_close_a_split_explains_the_gap_and_earlier_rows_are_adjusted():
    raw = raw_frame([100, 102, 51, 52, 26.5], split=[1, 1, 2, 1, 2])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert result.issues == []
    assert result.prices["close"].tolist() == pytest.approx([25, 25.5, 25.5, 26, 26.5])
    assert result.prices["high"].iloc[0] == pytest.approx(25.25)
    assert result.prices["raw_close"].tolist() == [100, 102, 51, 52, 26.5]


def test_a_split_the_prices_do_not_show_is_not_applied_again():
    """yfinance exports: Close is already split-adjusted, Stock Splits still names the day."""
    raw = raw_frame([50, 51, 51.5, 52], split=[1, 1, 2, 1])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert result.issues == []
    assert result.prices["close"].tolist() == [50, 51, 51.5, 52]


def test_an_adjusted_close_that_missed_a_split_is_corrected_by_the_split():
    raw = raw_frame([100, 102, 51, 52], adj=[100, 102, 51, 52], split=[1, 1, 2, 1])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert result.issues == []
    assert result.prices["close"].tolist() == pytest.approx([50, 51, 51, 52])


def test_a_gap_without_a_split_is_unexplained_when_there_is_no_adjusted_close():
    result = prepare_prices(raw_frame([100, 102, 34, 35]), "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-03", "unexplained_move")]
    assert "-66.7%" in result.issues[0].detail


def test_a_split_on_a_quarantined_row_is_moved_to_the_next_clean_row():
    raw = raw_frame([100, 102, 50, 51, 52], split=[1, 1, 2, 1, 1], dividend=[0, 0, 0.5, 0, 0])
    raw.loc[2, "close"] = np.nan
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-03", "missing_price")]
    assert result.prices["split"].tolist() == [1, 1, 2, 1]
    assert result.prices["dividend"].tolist() == [0, 0, 0.5, 0]
    assert result.prices["close"].tolist() == pytest.approx([50, 51, 51, 52])


def test_a_bad_print_quarantines_the_spike_but_keeps_the_day_that_returns():
    result = prepare_prices(raw_frame([10, 10.2, 100, 10.3, 10.4]), "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [("2020-01-03", "unexplained_move")]
    assert result.prices["close"].tolist() == [10, 10.2, 10.3, 10.4]


def test_missing_volume_counts_as_zero_and_is_recorded_once_per_symbol():
    raw = raw_frame([10, 11, 12, 13], volume=[100, np.nan, np.nan, 400])
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)

    assert kinds(result) == [(None, "missing_volume")]
    assert result.issues[0].detail == "ABC.csv: 2 row(s) have no volume; they count as volume 0"
    assert result.prices["volume"].tolist() == [100, 0, 0, 400]


def test_blank_events_mean_none_and_a_zero_split_means_no_split():
    raw = raw_frame([10, 11], split=[0.0, np.nan], dividend=[np.nan, 0.25])
    prices = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE).prices

    assert prices["split"].tolist() == [1, 1]
    assert prices["dividend"].tolist() == [0, 0.25]


def test_every_rule_runs_vectorised_on_long_histories():
    """A per-row Python loop would take tens of seconds on 200,000 rows."""
    count = 200_000
    rng = np.random.default_rng(1)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    dates = pd.date_range("1500-01-01", periods=count, freq="D").strftime("%Y-%m-%d").tolist()
    raw = raw_frame(closes.tolist(), dates=dates, adj=(closes * 0.9).tolist())
    raw.loc[raw.index[::1000], "close"] = np.nan

    began = time.perf_counter()
    result = prepare_prices(raw, "ABC", "ABC.csv", MAX_MOVE)
    elapsed = time.perf_counter() - began

    assert len(result.issues) == 200 and len(result.prices) == count - 200
    assert elapsed < 5, f"prepare_prices took {elapsed:.1f} s for {count} rows"


def test_a_frame_without_the_standard_columns_is_a_format_error():
    with pytest.raises(PriceFormatError, match="x.csv: prepare_prices needs the columns .*adj_close"):
        prepare_prices(raw_frame([10]).drop(columns="adj_close"), "ABC", "x.csv", MAX_MOVE)


def test_standardise_columns_reads_every_supported_header_spelling():
    frame = pd.DataFrame(columns=[" Date ", "OPEN", "High", "low", "Close", "Adj Close", "Volume",
                                  "Dividends", "Stock Splits", "Capital Gains"])
    assert list(standardise_columns(frame, "x")) == list(RAW_COLUMNS)
    alphavantage = pd.DataFrame(columns=["timestamp", "open", "high", "low", "close", "adjusted_close",
                                         "volume", "dividend_amount", "split_coefficient"])
    assert list(standardise_columns(alphavantage, "x")) == list(RAW_COLUMNS)


def test_standardise_columns_adds_the_optional_columns_with_their_defaults():
    frame = pd.DataFrame({"Date": ["2020-01-01"], "Open": [1.0], "High": [1.0], "Low": [1.0],
                          "Close": [1.0], "Volume": [5]})
    standard = standardise_columns(frame, "x")

    assert standard["adj_close"].isna().all()
    assert standard.loc[0, "dividend"] == 0 and standard.loc[0, "split"] == 1


def test_standardise_columns_names_what_is_missing_and_what_was_found():
    frame = pd.DataFrame(columns=["Symbol", "Name", "Sector"])
    with pytest.raises(PriceFormatError) as caught:
        standardise_columns(frame, "SP.csv")
    assert "SP.csv is not a price table: it lacks date, open, high, low, close, volume" in str(caught.value)
    assert "(found 'Symbol', 'Name', 'Sector')" in str(caught.value)


def test_standardise_columns_refuses_two_columns_for_the_same_field():
    frame = pd.DataFrame(columns=["Date", "Open", "High", "Low", "Close", "Volume", "Adj Close",
                                  "adjusted_close"])
    with pytest.raises(PriceFormatError, match="two columns for adj_close: 'Adj Close' and 'adjusted_close'"):
        standardise_columns(frame, "x")


def test_within_dates_is_inclusive_on_both_ends_and_open_on_none():
    raw = raw_frame([1, 2, 3, 4], dates=["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06"])
    raw.loc[1, "date"] = pd.Timestamp("2020-01-02 16:00")

    assert within_dates(raw, "2020-01-02", "2020-01-03")["close"].tolist() == [2, 3]
    assert within_dates(raw, None, "2020-01-02")["close"].tolist() == [1, 2]
    assert within_dates(raw, "2020-01-03", None)["close"].tolist() == [3, 4]
    raw["date"] = raw["date"].dt.tz_localize("America/New_York")
    assert within_dates(raw, "2020-01-02", "2020-01-03")["close"].tolist() == [2, 3]
