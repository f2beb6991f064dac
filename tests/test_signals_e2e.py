"""generate_signals.py as the user runs it: after a demo training run, and in a time-travel on real
prices where every scored outcome is recomputed independently from the price files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import copy_workdir, demo_args, flat, query, run_program, wide_env, write_fast_config

pytestmark = pytest.mark.slow
MARKET_DATA = Path(__file__).resolve().parents[2] / "shared" / "market-data" / "sp500-sample"
DEMO_SYMBOLS = 6


def _signals(workdir: Path, *args: str) -> tuple[int, str, dict | None]:
    result = run_program("generate_signals.py", "--workdir", workdir, *args, env=wide_env())
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    payload = json.loads(result.stdout) if "--json" in args and result.returncode == 0 else None
    return result.returncode, flat(result), payload


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("signals-demo")
    result = run_program("run_training.py", *demo_args(workdir, write_fast_config(workdir), DEMO_SYMBOLS))
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


def test_without_a_promoted_model_it_refuses_and_says_how_to_get_one(demo_workdir, tmp_path):
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    production = workdir / "models" / "production"
    if production.exists():  # the small demo may have been promoted; this test needs none
        import shutil

        shutil.rmtree(production)
    code, output, _ = _signals(workdir)
    assert code == 6
    assert "No model has been promoted yet" in output and "--model candidate" in output


def test_a_first_release_production_model_is_refused(demo_workdir, tmp_path):
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    production = workdir / "models" / "production"
    production.mkdir(parents=True, exist_ok=True)
    (production / "manifest.json").write_text(json.dumps({"run_id": "old", "feature_names": ["ret_5d"]}),
                                              encoding="utf-8")
    code, output, _ = _signals(workdir)
    assert code == 6 and "earlier release" in output and "run_training.py" in output


def test_demo_signals_one_row_per_symbol_rerun_idempotent_and_later_runs_score_them(demo_workdir, tmp_path):
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    code, output, first = _signals(workdir, "--model", "candidate", "--as-of", "2025-03-31", "--json")
    assert code == 0, output
    assert first["as_of"] == "2025-03-31" and not first["promoted"]
    signals = first["signals"]
    assert len(signals) == DEMO_SYMBOLS and sorted(s["rank"] for s in signals) == list(range(1, DEMO_SYMBOLS + 1))
    for row in signals:
        assert math.isclose(row["p_sell"] + row["p_hold"] + row["p_buy"], 1.0, abs_tol=1e-9)
        assert row["action"] in ("BUY", "HOLD", "SELL") and row["stop_loss"] < row["take_profit"]
    csv = Path(first["csv"])
    assert csv.name == "2025-03-31-candidate.csv" and csv.with_suffix(".html").is_file()
    text = csv.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ("symbol,as_of,p_sell,p_hold,p_buy,score,rank,action,take_profit,stop_loss,"
                                    "horizon_end,model_version")
    assert "NOT PROMOTED" in csv.with_suffix(".html").read_text(encoding="utf-8")

    code, output, again = _signals(workdir, "--model", "candidate", "--as-of", "2025-03-31", "--json")
    assert code == 0 and csv.read_text(encoding="utf-8") == text, "the same as-of date writes the same file"
    assert query(workdir, "SELECT COUNT(*) FROM signals")[0][0] == DEMO_SYMBOLS

    code, output, later = _signals(workdir, "--model", "candidate")  # the newest day of the extended demo
    assert code == 0, output
    assert "2025-12-31" in output and "earlier signals matured and were scored" in output
    outcomes = query(workdir, "SELECT as_of, exit_date, exit_reason, label FROM signal_outcomes")
    assert len(outcomes) == DEMO_SYMBOLS and all(row[0] == "2025-03-31" and row[1] > row[0] for row in outcomes)
    status = run_program("check_checkpoint.py", "--workdir", workdir, "--signals", env=wide_env())
    assert status.returncode == 0 and "Track record of model" in flat(status) and "Matured and scored" in flat(status)
    # Re-making the early day from the same source keeps its outcomes, and its page shows the
    # record as it stood that day (nothing had matured yet).
    code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", "2025-03-31")
    assert code == 0, output
    assert query(workdir, "SELECT COUNT(*) FROM signal_outcomes")[0][0] == DEMO_SYMBOLS
    page = (workdir / "signals" / "2025-03-31-candidate.html").read_text(encoding="utf-8")
    assert f"<td>{DEMO_SYMBOLS}</td><td>0</td>" in page, "the past page shows what was known then"


def _independent_outcome(close: pd.Series, as_of: pd.Timestamp, horizon: int, k: float, window: int) -> tuple:
    """The triple barrier written out longhand: entry at the as-of close, sigma of the last
    `window` daily log returns, barriers at +/- k sigma sqrt(horizon) in log return."""
    position = close.index.get_loc(as_of)
    logs = [math.log(close.iloc[i] / close.iloc[i - 1]) for i in range(position - window + 1, position + 1)]
    mean = sum(logs) / window
    sigma = math.sqrt(sum((x - mean) ** 2 for x in logs) / (window - 1))
    barrier = k * sigma * math.sqrt(horizon)
    for step in range(1, horizon + 1):
        move = math.log(close.iloc[position + step] / close.iloc[position])
        if move > barrier:
            return close.index[position + step], "upper"
        if move < -barrier:
            return close.index[position + step], "lower"
    return close.index[position + horizon], "time"


@pytest.mark.skipif(not MARKET_DATA.is_dir(), reason=f"real market data not found at {MARKET_DATA}")
def test_time_travel_on_real_prices_every_outcome_recomputed_from_the_files(tmp_path):
    workdir = tmp_path / "work"
    config = write_fast_config(tmp_path)
    trained = run_program("run_training.py", "--source", "csv", "--prices-dir", MARKET_DATA, "--end", "2018-12-31",
                          "--max-symbols", "8", "--config", config, "--workdir", workdir, "--no-open")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    month_ends = pd.date_range("2019-01-01", "2020-12-31", freq="BME")
    for month_end in month_ends:
        code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", str(month_end.date()), "--json")
        assert code == 0, output
    code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", "2021-04-21")  # scores the rest
    assert code == 0, output
    signals = query(workdir, "SELECT as_of, symbol FROM signals WHERE as_of < '2021-01-01'")
    outcomes = {(a, s): (e, r) for a, s, e, r in query(workdir, "SELECT as_of, symbol, exit_date, exit_reason "
                                                                "FROM signal_outcomes")}
    assert len(signals) >= 8 * 20 and set(outcomes) == set(signals), "every 2019-2020 signal has matured"
    for as_of, symbol in signals:
        frame = pd.read_csv(MARKET_DATA / f"{symbol}.csv.gz", parse_dates=["timestamp"]).sort_values("timestamp")
        close = frame.set_index("timestamp")["adjusted_close"]
        exit_date, reason = _independent_outcome(close, pd.Timestamp(as_of), 20, 1.5, 20)
        assert outcomes[(as_of, symbol)] == (str(exit_date.date()), reason), (as_of, symbol)
    later = query(workdir, "SELECT COUNT(*) FROM signals WHERE as_of > '2018-12-31'")[0][0]
    assert later == len(query(workdir, "SELECT as_of, symbol FROM signals"))
    # Training data untouched: the run's cached prices still end at its --end date.
    assert query(workdir, "SELECT MAX(date) FROM price_data WHERE source NOT LIKE '%#live'")[0][0] <= "2018-12-31"


def test_a_training_run_scores_the_matured_signals_from_the_cached_prices(demo_workdir, tmp_path):
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", "2025-06-30")
    assert code == 0, output
    assert query(workdir, "SELECT COUNT(*) FROM signal_outcomes")[0][0] == 0
    again = run_program("run_training.py", *demo_args(workdir, workdir / "fast.toml", DEMO_SYMBOLS), env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{DEMO_SYMBOLS} earlier signals matured and were scored" in flat(again)
    assert query(workdir, "SELECT COUNT(*) FROM signal_outcomes")[0][0] == DEMO_SYMBOLS


def test_a_run_killed_after_its_rows_is_completed_by_the_next_and_training_files_never_change(demo_workdir,
                                                                                            tmp_path):
    from tests.support import file_digests, program_env

    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    training_files = file_digests(workdir)
    killed = run_program("generate_signals.py", "--workdir", workdir, "--model", "candidate", "--as-of",
                         "2025-02-28", env=program_env(TRAINER_CRASH_AT="signals.rows_written:1", COLUMNS="400"))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    csv = workdir / "signals" / "2025-02-28-candidate.csv"
    assert not csv.exists() and not list((workdir / "signals").glob("*.tmp"))
    code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", "2025-02-28")
    assert code == 0 and csv.is_file(), output
    assert len(csv.read_text(encoding="utf-8").splitlines()) == DEMO_SYMBOLS + 1
    assert query(workdir, "SELECT COUNT(*) FROM signals")[0][0] == DEMO_SYMBOLS
    after = file_digests(workdir)
    assert {name: digest for name, digest in after.items() if name != "data/trainer.db"} == \
        {name: digest for name, digest in training_files.items() if name != "data/trainer.db"}, \
        "the checkpoint and its backup are untouched by signals runs"


def test_a_smaller_universe_keeps_the_days_other_signals_and_the_models_market(demo_workdir, tmp_path):
    """Review finding: --universe rebuilt the market from its own symbols (12 features changed)
    and deleted the day's other signals."""
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    code, output, full = _signals(workdir, "--model", "candidate", "--as-of", "2025-06-30", "--json")
    assert code == 0, output
    chosen = full["signals"][0]["symbol"]
    universe = tmp_path / "one.csv"
    universe.write_text(f"symbol,name,sector\n{chosen},x,Unknown\nZZZZ,unknown,Unknown\n", encoding="utf-8")
    code, output, one = _signals(workdir, "--model", "candidate", "--as-of", "2025-06-30", "--universe", universe,
                                 "--json")
    assert code == 0, output
    assert [row["symbol"] for row in one["signals"]] == [chosen] and "ZZZZ" in one["skipped"]
    before = next(row for row in full["signals"] if row["symbol"] == chosen)
    assert one["signals"][0]["p_buy"] == pytest.approx(before["p_buy"], abs=1e-12), "same features, same market"
    assert query(workdir, "SELECT COUNT(*) FROM signals WHERE as_of = '2025-06-30'")[0][0] == DEMO_SYMBOLS


def test_signals_are_scored_only_on_the_prices_of_their_own_source(demo_workdir, tmp_path):
    """Review finding: demo signals were scored with another source's (CSV) prices."""
    workdir = copy_workdir(demo_workdir, tmp_path / "work")
    code, output, demo = _signals(workdir, "--model", "candidate", "--as-of", "2025-03-31", "--json")
    assert code == 0, output
    folder = tmp_path / "csv"
    folder.mkdir()
    for row in demo["signals"]:  # the same symbols, from a folder whose prices rise 1% a day
        rows = query(workdir, "SELECT date, open, high, low, close, volume FROM price_data WHERE source = "
                              "'demo:7#live' AND symbol = ? ORDER BY date", (row["symbol"],))
        frame = pd.DataFrame(rows, columns=["Date", "Open", "High", "Low", "Close", "Volume"])
        later = (frame["Date"] > "2025-03-31").to_numpy()
        growth = np.where(later, 1.01 ** np.cumsum(later), 1.0)
        for column in ("Open", "High", "Low", "Close"):
            frame[column] = frame[column] * growth
        frame.to_csv(folder / f"{row['symbol']}.csv", index=False)
    code, output, _ = _signals(workdir, "--model", "candidate", "--source", "csv", "--prices-dir", folder,
                               "--as-of", "2025-09-30")
    assert code == 0, output
    assert query(workdir, "SELECT COUNT(*) FROM signal_outcomes WHERE as_of = '2025-03-31'")[0][0] == 0
    code, output, _ = _signals(workdir, "--model", "candidate", "--as-of", "2025-09-30")
    assert code == 0, output
    reasons = {row[0] for row in query(workdir, "SELECT exit_reason FROM signal_outcomes WHERE as_of = '2025-03-31'")}
    assert query(workdir, "SELECT COUNT(*) FROM signal_outcomes WHERE as_of = '2025-03-31'")[0][0] == DEMO_SYMBOLS
    assert reasons != {"upper"}, "scored on the demo's own prices, not the rising CSV copy"
