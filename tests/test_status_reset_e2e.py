"""check_checkpoint.py and reset_checkpoint.py as a user meets them: before any run, after a run,
and while a run is writing; every kind of reset, what it keeps and what the next run then does;
and the one-run-per-folder lock."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.support import (
    CHECKPOINT_FILE,
    copy_workdir,
    database_snapshot,
    demo_args,
    file_digests,
    flat,
    holds_run_lock,
    query,
    read_checkpoint,
    run_program,
    shared_demo_run,
    shared_interrupted_run,
    start_program,
    wait_until,
    wide_env,
    write_fast_config,
)
from trainer.checkpoint import PHASES

pytestmark = pytest.mark.slow

SYMBOLS = 3
RUN_TABLES_WITHOUT_HISTORY = ("training_runs", "market_data", "sector_indices", "events", "feature_names",
                              "feature_store", "trades", "backtest_results", "model_performance",
                              "sector_performance", "model_predictions", "shap_analysis", "run_facts")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-symbol demo run; read it, or copy it before changing anything."""
    return shared_demo_run(tmp_path_factory, SYMBOLS)


def count(workdir, table):
    return query(workdir, f"SELECT COUNT(*) FROM {table}")[0][0]


def stop(process: subprocess.Popen) -> str:
    """Ctrl+C the run and collect its output (it saves progress and exits 4)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


# --- check_checkpoint.py ------------------------------------------------------------------------

def test_status_without_a_checkpoint_says_so_and_writes_nothing(tmp_path):
    text = run_program("check_checkpoint.py", "--workdir", tmp_path, env=wide_env())
    assert text.returncode == 0, text.stderr
    assert f"No checkpoint in {tmp_path / 'checkpoints'}: no run has started yet." in flat(text)
    as_json = run_program("check_checkpoint.py", "--workdir", tmp_path, "--json")
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["checkpoint"] is None and "no run has started yet" in payload["message"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interval", ["-1", "0", "nan", "soon"])
def test_a_refresh_interval_below_half_a_second_is_refused_not_a_busy_loop(tmp_path, interval):
    result = run_program("check_checkpoint.py", "--workdir", tmp_path, "--watch", "--interval", interval, timeout=20)
    assert result.returncode == 2
    assert "argument --interval: must be" in result.stderr and "Traceback" not in result.stderr


def test_status_after_a_complete_run_shows_the_phase_and_the_models(finished):
    text = run_program("check_checkpoint.py", "--workdir", finished, env=wide_env())
    assert text.returncode == 0, text.stderr
    output = flat(text)
    state = read_checkpoint(finished)
    assert f"Run {state['run_id']} [DEMO DATA] - not running, phase: complete" in output
    assert "3 done, 0 failed, 0 skipped, 0 remaining of 3" in output
    assert "2/2 trained (logistic_regression, lightgbm)" in output
    assert "Ensemble" in output and "weights:" in output and "Report" in output and "finished" in output

    as_json = run_program("check_checkpoint.py", "--workdir", finished, "--json")
    assert as_json.stdout.count("\n") == 1, "one line: scripts read it line by line (JSON Lines with --watch)"
    summary = json.loads(as_json.stdout)["summary"]
    assert summary["phase"] == "complete" and summary["running"] is False
    assert (summary["symbols_done"], summary["models_done"], summary["models_total"]) == (3, 2, 2)
    assert summary["samples"] == count(finished, "trades") and summary["eta_seconds"] == 0.0


def test_status_while_a_run_is_writing_is_always_valid_and_never_goes_backwards(tmp_path):
    config = write_fast_config(tmp_path)
    process = start_program("run_training.py", *demo_args(tmp_path, config, 8), env=wide_env())
    try:
        wait_until(lambda: holds_run_lock(tmp_path, process) or process.poll() is not None, 120, "the run lock")
        observed = []
        while True:
            alive_before = process.poll() is None
            result = run_program("check_checkpoint.py", "--workdir", tmp_path, "--json", timeout=60)
            assert result.returncode == 0, result.stderr
            payload = json.loads(result.stdout)  # never half a file, even mid-replace
            observed.append((alive_before, payload))
            if not alive_before:
                break
            time.sleep(0.3)  # a user's --watch polls every few seconds; leave the run its CPU
    finally:
        output = stop(process)
    assert process.returncode == 0, output

    summaries = [(alive, payload["summary"]) for alive, payload in observed if payload["checkpoint"]]
    assert len(summaries) >= 5, f"only {len(summaries)} status calls saw the run"
    keys = ("symbols_done", "samples", "models_done")
    for (_, earlier), (_, later) in zip(summaries, summaries[1:], strict=False):
        for key in keys:
            assert later[key] >= earlier[key], (key, earlier, later)
        assert PHASES.index(later["phase"]) >= PHASES.index(earlier["phase"]), (earlier, later)
    for alive, summary in summaries:
        if summary["phase"] != "complete":  # the lock is held until the run has finished
            assert alive and summary["running"] is True, summary
    assert summaries[-1][1]["running"] is False and summaries[-1][1]["phase"] == "complete"
    assert summaries[-1][1]["symbols_done"] == 8
    assert any(summary["running"] and summary["phase"] != "complete" for _, summary in summaries), \
        "the status calls should have seen the run at work"


# --- one run per folder -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def active_run(tmp_path_factory):
    """A long run (40 symbols) that holds the run lock and has written its first checkpoint."""
    workdir = tmp_path_factory.mktemp("active-run")
    config = write_fast_config(workdir)
    args = demo_args(workdir, config, 40)
    process = start_program("run_training.py", *args, env=wide_env())
    try:
        wait_until(lambda: (holds_run_lock(workdir, process) and read_checkpoint(workdir) is not None)
                   or process.poll() is not None, 120, "the run to take its lock")
        assert process.poll() is None, process.communicate()[0]
        yield workdir, args, process
    finally:
        process.kill()  # like closing the window; the OS releases the lock
        process.communicate(timeout=60)


def test_reset_refuses_while_a_run_is_active(active_run):
    workdir, _, process = active_run
    result = run_program("reset_checkpoint.py", "--workdir", workdir, "--yes", env=wide_env())
    assert result.returncode == 5, result.stdout + result.stderr
    assert "A training run is active in this folder. Stop it first" in flat(result)
    assert (workdir / "checkpoints" / CHECKPOINT_FILE).exists()
    assert process.poll() is None, "the run carries on"


def test_second_run_in_the_same_folder_exits_5_with_a_message(active_run):
    workdir, args, process = active_run
    result = run_program("run_training.py", *args, env=wide_env())
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"Another training run is already working in {workdir}" in flat(result)
    assert "check_checkpoint.py" in flat(result)
    assert process.poll() is None, "the first run carries on"


# --- reset_checkpoint.py ------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["n\n", "\n", ""], ids=["n", "enter", "end-of-input"])
def test_reset_answered_no_deletes_nothing(finished, tmp_path, answer):
    workdir = copy_workdir(finished, tmp_path / "work")
    before = file_digests(workdir)
    result = run_program("reset_checkpoint.py", "--workdir", workdir, env=wide_env(), input_text=answer)
    assert result.returncode == 0, result.stdout + result.stderr
    output = flat(result)
    assert "This will delete:" in output and str(workdir / "checkpoints" / CHECKPOINT_FILE) in output
    assert "rows of run data" in output and "Continue? [y/N]" in output
    assert "Nothing was deleted." in output
    assert file_digests(workdir) == before


def test_reset_yes_keeps_the_price_cache_and_the_next_run_starts_over_without_fetching(finished, tmp_path):
    workdir = copy_workdir(finished, tmp_path / "work")
    old = read_checkpoint(workdir)
    prices_before = query(workdir, "SELECT * FROM price_data ORDER BY source, symbol, date")
    decisions_before = count(workdir, "model_promotion_history")

    result = run_program("reset_checkpoint.py", "--workdir", workdir, "--yes", env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done. The next 'python run_training.py' starts from the beginning." in flat(result)
    assert not (workdir / "checkpoints" / CHECKPOINT_FILE).exists()
    assert not (workdir / "checkpoints" / f"{CHECKPOINT_FILE}.bak").exists()
    assert not (workdir / "checkpoints" / old["run_id"]).exists(), "the run's model files are deleted"
    for table in RUN_TABLES_WITHOUT_HISTORY:
        assert count(workdir, table) == 0, table
    assert count(workdir, "model_promotion_history") == decisions_before, "decisions stay as history"
    assert query(workdir, "SELECT * FROM price_data ORDER BY source, symbol, date") == prices_before
    assert (workdir / "reports" / old["run_id"] / "report.html").exists(), "reports are kept"

    # The next run starts a new run from the cached prices; it is stopped after its first symbol.
    again = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS),
                        env=wide_env(TRAINER_CRASH_AT="backtest.after_commit:1"))
    assert again.returncode == -signal.SIGKILL, again.stdout + again.stderr
    output = flat(again)
    assert "Starting run" in output and "Resuming" not in output
    assert f"Prices: all {SYMBOLS} symbols already in the cache." in output
    assert query(workdir, "SELECT * FROM price_data ORDER BY source, symbol, date") == prices_before
    [(new_run, symbol)] = query(workdir, "SELECT run_id, symbol FROM backtest_results")
    assert new_run != old["run_id"] and new_run.endswith(old["run_id"].rsplit("-", 1)[1]), "same settings"
    assert symbol == old["backtest"]["completed_symbols"][0]
    trades = "SELECT entry_date, exit_date, label, realised_return FROM trades WHERE symbol = ? ORDER BY entry_date"
    assert query(workdir, trades, (symbol,)) == query(finished, trades, (symbol,))


def test_reset_phase_training_keeps_the_backtest_and_the_next_run_retrains_only(finished, tmp_path):
    workdir = copy_workdir(finished, tmp_path / "work")
    old = read_checkpoint(workdir)
    trades_before = database_snapshot(workdir)["trades"]

    result = run_program("reset_checkpoint.py", "--workdir", workdir, "--phase", "training", "--yes",
                         env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the backtest is kept" in flat(result)
    state = read_checkpoint(workdir)
    assert state["current_phase"] == "dataset"
    assert state["backtest"] == old["backtest"]
    assert state["training"]["base_models_trained"] == [] and state["training"]["ensemble_trained"] is False
    assert database_snapshot(workdir)["trades"] == trades_before
    assert count(workdir, "model_performance") == 0 and count(workdir, "model_predictions") == 0
    assert not (workdir / "checkpoints" / old["run_id"]).exists()

    again = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS),
                        env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
    output = flat(again)
    assert f"Resuming run {old['run_id']}" in output and "phase: dataset" in output
    assert "Backtest" not in output and "Prices" not in output, "nothing before the models is redone"
    assert "Training logistic_regression (1/2)" in output and "Training lightgbm (2/2)" in output
    expected, actual = database_snapshot(finished), database_snapshot(workdir)
    assert actual["trades"] == trades_before
    for table in ("features", "summaries", "market", "performance", "predictions"):
        assert actual[table] == expected[table], table
    assert read_checkpoint(workdir)["current_phase"] == "complete"


def test_reset_phase_training_before_the_backtest_finished_lets_the_backtest_finish(finished, tmp_path_factory,
                                                                                    tmp_path):
    """Regression: it used to move an unfinished run forward to the dataset phase, so every later
    run failed (no market data) until a full reset."""
    workdir = copy_workdir(shared_interrupted_run(tmp_path_factory, SYMBOLS), tmp_path / "work")
    result = run_program("reset_checkpoint.py", "--workdir", workdir, "--phase", "training", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_checkpoint(workdir)["current_phase"] == "backtest"

    again = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS),
                        env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert database_snapshot(workdir) == database_snapshot(finished)


def test_reset_with_prices_also_empties_the_price_cache(finished, tmp_path):
    workdir = copy_workdir(finished, tmp_path / "work")
    rows = count(workdir, "price_data")
    result = run_program("reset_checkpoint.py", "--workdir", workdir, "--prices", "--yes", env=wide_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the price cache: {rows:,} price rows" in flat(result)
    for table in ("price_data", "price_fetches", "data_issues", *RUN_TABLES_WITHOUT_HISTORY):
        assert count(workdir, table) == 0, table
    assert not (workdir / "checkpoints" / CHECKPOINT_FILE).exists()


def test_reset_on_a_damaged_database_refuses_and_deletes_nothing(tmp_path):
    database = tmp_path / "data" / "trainer.db"
    database.parent.mkdir(parents=True)
    damaged = b"SQLite format 3\x00" + bytes(range(256)) * 40
    database.write_bytes(damaged)
    result = run_program("reset_checkpoint.py", "--workdir", tmp_path, "--yes", env=wide_env())
    assert result.returncode == 3, result.stdout + result.stderr
    output = flat(result)
    assert f"The database {database} cannot be opened" in output and "Nothing was reset" in output
    assert "Traceback" not in output
    assert database.read_bytes() == damaged


@pytest.mark.parametrize("loss", ["deleted", "emptied"])
def test_a_lost_database_restarts_the_run_from_the_prices_with_the_same_results(finished, tmp_path, loss):
    """Regression (issue 15, case 2): 'move the damaged database aside and run again' used to end in
    an IndexError in the backtest phase on every later run."""
    workdir = copy_workdir(finished, tmp_path / "work")
    database = workdir / "data" / "trainer.db"
    for path in database.parent.glob("trainer.db*"):
        path.unlink()
    if loss == "emptied":
        database.write_bytes(b"")
    again = run_program("run_training.py", *demo_args(workdir, write_fast_config(tmp_path), SYMBOLS), env=wide_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "holds none of run" in flat(again) and "starts again from the prices" in flat(again)
    assert database_snapshot(workdir) == database_snapshot(finished)
    assert read_checkpoint(workdir)["current_phase"] == "complete"


def test_a_database_deleted_during_the_run_is_reported_not_a_success(tmp_path):
    config = write_fast_config(tmp_path)
    process = start_program("run_training.py", *demo_args(tmp_path / "work", config, SYMBOLS), env=wide_env())
    wait_until(lambda: (read_checkpoint(tmp_path / "work") or {}).get("current_phase") in ("dataset", "training"),
               120, "the run to reach its training")
    for path in (tmp_path / "work" / "data").glob("trainer.db*"):
        path.unlink()
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 3, output
    assert "was deleted while the run was working" in " ".join(output.split())
    again = run_program("run_training.py", *demo_args(tmp_path / "work", config, SYMBOLS), env=wide_env())
    assert again.returncode == 0 and "starts again from the prices" in flat(again), again.stdout + again.stderr


def _small_disk(folder, megabytes: int) -> bool:
    """A real full disk: a tmpfs of this size at folder (root only; False where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_full_disk_stops_cleanly_resumes_cleanly_while_full_and_finishes_once_there_is_room(finished, tmp_path):
    """Issue 15, case 7: resuming while the disk was still full gave a raw traceback, and half-written
    temp files were left behind (one was copied into models/production)."""
    disk = tmp_path / "small"
    if not _small_disk(disk, 3):
        pytest.skip("mounting a small tmpfs (a real full disk) needs root in a container that allows mount")
    try:
        workdir, config = disk / "work", write_fast_config(tmp_path)
        for attempt in range(2):  # the first failure, then a resume while the disk is still full
            result = run_program("run_training.py", *demo_args(workdir, config, SYMBOLS), env=wide_env())
            assert result.returncode == 3, result.stdout + result.stderr
            assert "is full" in flat(result) and "Free some space there" in flat(result), attempt
            assert "Traceback" not in result.stdout + result.stderr
        status = run_program("check_checkpoint.py", "--workdir", workdir)
        assert status.returncode == 0, status.stdout + status.stderr
        subprocess.run(["mount", "-o", "remount,size=80m", str(disk)], check=True)
        again = run_program("run_training.py", *demo_args(workdir, config, SYMBOLS), env=wide_env())
        assert again.returncode == 0, again.stdout + again.stderr
        assert database_snapshot(workdir) == database_snapshot(finished)
        assert not list(workdir.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_read_only_work_folder_is_read_and_refused_in_one_sentence(finished, tmp_path):
    """Issue 15, case 6: raw tracebacks ('--- Logging error ---', OSError on checkpoints/.run.lock),
    and check_checkpoint.py, which only reads, failed too."""
    workdir, view = copy_workdir(finished, tmp_path / "work"), tmp_path / "read-only"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(workdir), str(view)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("a read-only bind mount needs root in a container that allows mount (chmod does not stop root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        before = file_digests(workdir)
        status = run_program("check_checkpoint.py", "--workdir", view, env=wide_env())
        assert status.returncode == 0 and "phase: complete" in flat(status), status.stdout + status.stderr
        as_json = run_program("check_checkpoint.py", "--workdir", view, "--json")
        assert as_json.returncode == 0 and json.loads(as_json.stdout)["summary"]["phase"] == "complete"
        record = run_program("check_checkpoint.py", "--workdir", view, "--signals", env=wide_env())
        assert record.returncode == 0 and "No signals have been made" in flat(record)
        for script, extra in (("run_training.py", demo_args(view, write_fast_config(tmp_path), SYMBOLS)),
                              ("reset_checkpoint.py", ["--workdir", view, "--yes"]),
                              ("generate_signals.py", ["--workdir", view])):
            result = run_program(script, *extra, env=wide_env())
            output = result.stdout + result.stderr
            assert result.returncode == 2, (script, output)
            assert f"The work folder {view} cannot be written (Read-only file system)" in flat(result), script
            assert "Traceback" not in output and "Logging error" not in output, script
        assert file_digests(workdir) == before
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)
