"""The real program on a price folder a user might really have: good files next to an empty file,
an HTML page, an API's JSON error, a table with the wrong columns, a symbol with too little history
and a file with a few bad rows. The run must finish with the good symbols, say what is wrong with
each bad file, keep the bad rows out, and retry the failed symbols on the next run without losing
anything already saved. Plus the inputs that stop a run before it starts (exit 2 / exit 3)."""

from __future__ import annotations

import json

import pytest

from tests.support import (
    copy_workdir,
    flat,
    query,
    read_checkpoint,
    run_program,
    wide_env,
    write_fast_config,
    write_price_csv,
)

pytestmark = pytest.mark.slow

ROWS = 1200
GOOD = ["AAA", "BBB", "CCC", "DDD"]
WITH_BAD_ROWS = "EEE"
SHORT = "SHORT"
BROKEN = {  # symbol -> what the program must say about its file
    "EMPTY": "EMPTY.csv is empty",
    "HTML": "HTML.csv looks like an HTML page, not a price file",
    "JSONX": "JSONX.csv holds a JSON message, not prices (Note: Thank you for using Alpha Vantage!",
    "WRONG": "WRONG.csv is not a price table: it lacks open, high, low, close, volume "
             "(found 'Date', 'Price', 'Shares')",
}
ALPHAVANTAGE_NOTE = {"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per "
                             "minute and 500 calls per day."}
# 0-based data row -> file line (the header is line 1)
HIGH_BELOW_LOW_ROW, NEGATIVE_ROW, DUPLICATED_ROW = 100, 200, 299


def write_broken_files(folder):
    (folder / "EMPTY.csv").write_text("", encoding="utf-8")
    (folder / "HTML.csv").write_text("<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>"
                                     "<body>Rate limited</body></html>\n", encoding="utf-8")
    (folder / "JSONX.csv").write_text(json.dumps(ALPHAVANTAGE_NOTE), encoding="utf-8")
    (folder / "WRONG.csv").write_text("Date,Price,Shares\n2020-01-02,10.5,1000\n2020-01-03,10.7,1200\n",
                                      encoding="utf-8")


def write_file_with_bad_rows(path):
    """A good file whose row 100 has high < low, row 200 a negative close, and row 299 repeated."""
    import pandas as pd

    frame = write_price_csv(path, seed=5, rows=ROWS)
    frame.loc[HIGH_BELOW_LOW_ROW, "High"] = round(frame.loc[HIGH_BELOW_LOW_ROW, "Low"] * 0.9, 4)
    frame.loc[NEGATIVE_ROW, "Close"] = -5.0
    frame = pd.concat([frame.iloc[:DUPLICATED_ROW + 1], frame.iloc[[DUPLICATED_ROW]],
                       frame.iloc[DUPLICATED_ROW + 1:]])
    frame.to_csv(path, index=False)
    return frame


def csv_args(prices, workdir, config):
    return ["--source", "csv", "--prices-dir", prices, "--workdir", workdir, "--config", config, "--no-open"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """The price folder and one finished run over it (max_attempts 2: run.* is not in the identity)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    prices = root / "prices"
    prices.mkdir()
    for seed, symbol in enumerate(GOOD):
        write_price_csv(prices / f"{symbol}.csv", seed=seed, rows=ROWS)
    bad_rows = write_file_with_bad_rows(prices / f"{WITH_BAD_ROWS}.csv")
    write_price_csv(prices / f"{SHORT}.csv", seed=9, rows=100)
    write_broken_files(prices)
    config = write_fast_config(root)
    config.write_text(config.read_text(encoding="utf-8") + "\n[run]\nmax_attempts = 2\n", encoding="utf-8")
    workdir = root / "work"
    result = run_program("run_training.py", *csv_args(prices, workdir, config), env=wide_env())
    return {"prices": prices, "workdir": workdir, "config": config, "result": result, "bad_rows": bad_rows}


def test_run_completes_and_names_every_broken_file_with_what_was_found(folder_run):
    result = folder_run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    output = flat(result)
    for symbol, message in BROKEN.items():
        assert f"{symbol}: {message}" in output
    assert "re-download it" in output
    assert "Traceback" not in output


def test_every_good_symbol_is_backtested_and_the_short_one_skipped_with_the_rows_needed(folder_run):
    workdir = folder_run["workdir"]
    summaries = dict(query(workdir, "SELECT symbol, trades FROM backtest_results"))
    assert sorted(summaries) == sorted([*GOOD, WITH_BAD_ROWS])
    assert all(trades > 100 for trades in summaries.values()), summaries
    expected_skip = f"{SHORT} has 100 clean trading days; at least 300 are needed (data.min_history_days)"
    assert f"Skipped {expected_skip}" in flat(folder_run["result"])
    state = read_checkpoint(workdir)
    assert state["backtest"]["skipped_symbols"] == {SHORT: expected_skip}
    assert state["current_phase"] == "complete"


def test_bad_rows_are_quarantined_in_data_issues_with_kind_line_and_date(folder_run):
    workdir, frame = folder_run["workdir"], folder_run["bad_rows"]
    issues = query(workdir, "SELECT symbol, date, kind, detail FROM data_issues ORDER BY symbol, date")
    assert {row[0] for row in issues} == {WITH_BAD_ROWS}, "the good files have no bad rows"
    found = {row[2]: row for row in issues}
    assert sorted(found) == ["duplicate_date", "high_below_low", "non_positive_price"]

    def expect(kind, row, line, text):
        _, date, _, detail = found[kind]
        assert date == frame.iloc[row]["Date"]
        assert detail.startswith(f"{WITH_BAD_ROWS}.csv line {line}: "), detail
        assert text in detail

    expect("high_below_low", HIGH_BELOW_LOW_ROW, HIGH_BELOW_LOW_ROW + 2, "is below low")
    expect("non_positive_price", NEGATIVE_ROW, NEGATIVE_ROW + 2, "close -5: prices must be above 0")
    expect("duplicate_date", DUPLICATED_ROW + 1, DUPLICATED_ROW + 3, "the first one is kept")
    stored = query(workdir, "SELECT COUNT(*) FROM price_data WHERE symbol = ?", (WITH_BAD_ROWS,))[0][0]
    assert stored == ROWS - 2, "the two bad rows are left out; the duplicate keeps its first row"


def test_check_checkpoint_json_lists_failed_symbols_with_reasons_and_attempts(folder_run):
    status = run_program("check_checkpoint.py", "--workdir", folder_run["workdir"], "--json")
    assert status.returncode == 0, status.stderr
    payload = json.loads(status.stdout)
    failed = payload["checkpoint"]["backtest"]["failed_symbols"]
    assert sorted(failed) == sorted(BROKEN)
    for symbol, message in BROKEN.items():
        assert failed[symbol]["attempts"] == 1
        assert message.split(" (")[0] in failed[symbol]["reason"]
    summary = payload["summary"]
    assert (summary["symbols_done"], summary["symbols_failed"], summary["symbols_skipped"],
            summary["symbols_remaining"], summary["symbols_total"]) == (5, 4, 1, 0, 10)
    assert summary["running"] is False and summary["phase"] == "complete"

    text = run_program("check_checkpoint.py", "--workdir", folder_run["workdir"], env=wide_env())
    assert text.returncode == 0
    for symbol in BROKEN:
        assert f"{symbol} failed (attempt 1): {BROKEN[symbol].split(' (')[0]}" in flat(text)


def _saved_work(workdir, symbols):
    """Everything the first run saved for these symbols, plus the market it was built on."""
    marks = ", ".join("?" for _ in symbols)
    return {
        table: query(workdir, f"SELECT * FROM {table} WHERE symbol IN ({marks}) ORDER BY {order}", tuple(symbols))
        for table, order in [("trades", "symbol, entry_date"), ("feature_store", "symbol, date"),
                             ("events", "symbol, date, kind"), ("price_data", "symbol, date"),
                             ("data_issues", "id")]
    } | {
        "backtest_results": query(workdir, "SELECT run_id, symbol, trades, buy, hold, sell, first_date, last_date "
                                           "FROM backtest_results ORDER BY symbol"),
        "market_data": query(workdir, "SELECT * FROM market_data ORDER BY date"),
    }


def test_fixed_file_is_retried_backtested_and_models_retrained_without_losing_saved_work(folder_run, tmp_path):
    workdir = copy_workdir(folder_run["workdir"], tmp_path / "work")
    prices, config = folder_run["prices"], folder_run["config"]
    before = read_checkpoint(workdir)
    saved = _saved_work(workdir, [*GOOD, WITH_BAD_ROWS])
    decisions_before = query(workdir, "SELECT run_id, decided_at, decision FROM model_promotion_history")
    holdout_before = query(workdir, "SELECT n_samples FROM model_performance WHERE model = 'ensemble' AND "
                                    "scope = 'holdout'")[0][0]
    write_price_csv(prices / "HTML.csv", seed=21, rows=ROWS)  # the user re-downloads the HTML page

    second = run_program("run_training.py", *csv_args(prices, workdir, config), env=wide_env())
    assert second.returncode == 0, second.stdout + second.stderr
    output = flat(second)
    assert "Retrying 4 symbol(s) that failed before: EMPTY, HTML, JSONX, WRONG." in output
    assert "New symbols were added to the backtest; the models will be retrained." in output
    for symbol in ("EMPTY", "JSONX", "WRONG"):
        assert f"{symbol}: {BROKEN[symbol]}" in output, "a file still broken is named again"

    state = read_checkpoint(workdir)
    assert state["run_id"] == before["run_id"]
    assert state["current_phase"] == "complete"
    assert state["backtest"]["completed_symbols"] == [*before["backtest"]["completed_symbols"], "HTML"]
    assert {symbol: failure["attempts"] for symbol, failure in state["backtest"]["failed_symbols"].items()} == \
        {"EMPTY": 2, "JSONX": 2, "WRONG": 2}
    assert state["training"]["base_models_trained"] == before["training"]["base_models_trained"]
    assert state["training"]["ensemble_trained"] is True
    # Nothing saved for the other symbols changed, and the run keeps its market series.
    after = _saved_work(workdir, [*GOOD, WITH_BAD_ROWS])
    for table, rows in saved.items():
        if table == "backtest_results":
            assert [row for row in after[table] if row[1] != "HTML"] == rows
        else:
            assert after[table] == rows, table
    assert query(workdir, "SELECT COUNT(*) FROM trades WHERE symbol = 'HTML'")[0][0] > 100
    assert state["backtest"]["total_samples"] == query(workdir, "SELECT COUNT(*) FROM trades")[0][0]
    # The models were retrained on the larger dataset; the first decision stays as history.
    holdout_after = query(workdir, "SELECT n_samples FROM model_performance WHERE model = 'ensemble' AND "
                                   "scope = 'holdout'")[0][0]
    assert holdout_after > holdout_before
    decisions_after = query(workdir, "SELECT run_id, decided_at, decision FROM model_promotion_history")
    assert decisions_after[:len(decisions_before)] == decisions_before
    assert len(decisions_after) == len(decisions_before) + 1
    for model in state["training"]["base_models_trained"]:
        assert (workdir / "checkpoints" / state["run_id"] / f"{model}.joblib").exists()

    # max_attempts = 2 is used up: the next run does not try the broken files again.
    third = run_program("run_training.py", *csv_args(prices, workdir, config), env=wide_env())
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Retrying" not in third.stdout
    final = read_checkpoint(workdir)
    assert final["backtest"]["failed_symbols"] == state["backtest"]["failed_symbols"]
    assert final["backtest"]["completed_symbols"] == state["backtest"]["completed_symbols"]
    assert query(workdir, "SELECT COUNT(*) FROM model_promotion_history")[0][0] == len(decisions_after)


def test_folder_where_every_file_is_broken_is_a_data_error_naming_the_files(tmp_path):
    prices = tmp_path / "prices"
    prices.mkdir()
    write_broken_files(prices)
    config = write_fast_config(tmp_path)
    result = run_program("run_training.py", *csv_args(prices, tmp_path / "work", config), env=wide_env())
    assert result.returncode == 3, result.stdout + result.stderr
    output = flat(result)
    assert "None of the 4 symbols has usable prices" in output
    for symbol, message in BROKEN.items():
        assert f"{symbol}: {message.split(' (')[0]}" in output
    assert "Traceback" not in output


def _assert_stopped_before_any_work(workdir):
    assert not (workdir / "data" / "trainer.db").exists()
    assert not (workdir / "checkpoints" / "training_checkpoint.json").exists()


def test_universe_with_a_duplicate_symbol_is_a_config_error_naming_file_and_both_lines(tmp_path):
    prices = tmp_path / "prices"
    prices.mkdir()
    for seed, symbol in enumerate(GOOD):
        write_price_csv(prices / f"{symbol}.csv", seed=seed, rows=400)
    universe = tmp_path / "my universe.csv"
    universe.write_text("symbol,name,sector\nAAA,Alpha,Tech\nBBB,Beta,Energy\n\nCCC,Gamma,Tech\naaa,Alpha again,Tech\n",
                        encoding="utf-8")
    workdir = tmp_path / "work"
    result = run_program("run_training.py", *csv_args(prices, workdir, write_fast_config(tmp_path)),
                         "--universe", universe, env=wide_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Universe file {universe}: AAA is listed twice, on line 2 and line 6. Keep one of them." in flat(result)
    _assert_stopped_before_any_work(workdir)


@pytest.mark.parametrize("case", ["csv_without_prices_dir", "missing_config", "invalid_toml", "unknown_setting"])
def test_bad_arguments_and_config_files_are_config_errors_naming_the_problem(tmp_path, case):
    workdir = tmp_path / "work"
    args: list = ["--workdir", workdir, "--no-open"]
    if case == "csv_without_prices_dir":
        args += ["--source", "csv"]
        expected = ["--source csv needs --prices-dir DIR"]
    elif case == "missing_config":
        missing = tmp_path / "no such.toml"
        args += ["--demo", "--config", missing]
        expected = [f"Config file {missing} does not exist. Check the --config path."]
    elif case == "invalid_toml":
        broken = tmp_path / "broken.toml"
        broken.write_text('[training]\nmodels = ["lightgbm"]\n\n[labels\nhorizon = 10\n', encoding="utf-8")
        args += ["--demo", "--config", broken]
        expected = [f"Config file {broken} is not valid TOML", "line 4", "Fix the line it names."]
    else:
        typo = tmp_path / "typo.toml"
        typo.write_text("[labels]\nhorizn = 10\n", encoding="utf-8")
        args += ["--demo", "--config", typo]
        expected = [f"{typo}: unknown setting 'labels.horizn'", "Known settings in [labels]:", "horizon"]
    result = run_program("run_training.py", *args, env=wide_env())
    assert result.returncode == 2, result.stdout + result.stderr
    output = flat(result)
    for text in expected:
        assert text in output
    assert "Traceback" not in output
    _assert_stopped_before_any_work(workdir)


def test_without_network_the_default_command_says_so_once_and_counts_no_attempt(tmp_path):
    """Issue 15, case 3: offline, every symbol used to be 'delisted or wrong symbol', and each
    double-click burnt one of run.max_attempts. The network is 'pulled' by a proxy that refuses."""
    workdir = tmp_path / "work"
    offline = wide_env(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
                       HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9")
    config = write_fast_config(tmp_path)
    for _ in range(2):
        result = run_program("run_training.py", "--max-symbols", "2", "--config", config, "--workdir", workdir,
                             "--no-open", env=offline)
        shown = flat(result)
        assert result.returncode == 3, shown
        assert shown.count("Yahoo could not be reached") == 1 and "2 of 2 symbols could not be fetched" in shown
        assert "delisted" not in shown and "Traceback" not in shown
        state = read_checkpoint(workdir)
        assert state["current_phase"] == "prices" and state["backtest"]["failed_symbols"] == {}
    assert query(workdir, "SELECT COUNT(*) FROM price_fetches")[0][0] == 0, "no failure is cached"


def test_a_folder_of_spreadsheets_says_to_save_them_as_csv(tmp_path):
    prices = tmp_path / "prices"
    prices.mkdir()
    for name in ("AAPL.xlsx", "MSFT.xlsx"):
        (prices / name).write_bytes(b"PK\x03\x04 not really a workbook")
    result = run_program("run_training.py", "--source", "csv", "--prices-dir", prices, "--workdir",
                         tmp_path / "work", "--no-open", env=wide_env())
    assert result.returncode == 2
    assert "holds spreadsheets (AAPL.xlsx, MSFT.xlsx) but no price files: save each as CSV" in flat(result)


def test_an_unfinished_run_is_not_resumed_with_another_prices_folder(tmp_path):
    """Issue 15, case 13: changing --prices-dir mid-run silently mixed two folders' prices."""
    import shutil

    from tests.support import program_env

    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        for symbol, seed in (("AAA", 1), ("BBB", 2), ("CCC", 3)):
            write_price_csv(folder / f"{symbol}.csv", seed=seed + (10 if folder == second else 0), rows=ROWS)
    workdir, config = tmp_path / "work", write_fast_config(tmp_path)
    killed = run_program("run_training.py", "--source", "csv", "--prices-dir", first, "--config", config,
                         "--workdir", workdir, "--no-open", env=program_env(TRAINER_CRASH_AT="backtest.after_commit:2"))
    assert killed.returncode == -9
    other = run_program("run_training.py", "--source", "csv", "--prices-dir", second, "--config", config,
                        "--workdir", workdir, "--no-open", env=wide_env())
    assert other.returncode == 2 and f"was started with the prices in {first}" in flat(other)
    assert f'Run with --prices-dir "{first}" to resume it' in flat(other)
    resumed = run_program("run_training.py", "--source", "csv", "--prices-dir", first, "--config", config,
                          "--workdir", workdir, "--no-open", env=wide_env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    notices = flat(resumed)
    assert "marked done, not recomputed" in notices and "redone from scratch" not in notices, \
        "one notice per symbol, not two that contradict each other"
    shutil.rmtree(first)  # the run is complete now; a finished run is never blocked by the folder
    again = run_program("run_training.py", "--source", "csv", "--prices-dir", second, "--config", config,
                        "--workdir", workdir, "--no-open", env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
