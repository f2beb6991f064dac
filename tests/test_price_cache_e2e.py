"""The shared price cache: a CSV file the user fixed is read again, an untouched one is not."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support import flat, query, run_program, write_fast_config, write_price_csv

pytestmark = pytest.mark.slow


def test_an_edited_csv_is_read_again_after_a_reset_and_untouched_files_come_from_the_cache(tmp_path):
    prices, workdir = tmp_path / "prices", tmp_path / "work"
    prices.mkdir()
    for seed, symbol in enumerate(("AAA", "BBB", "CCC")):
        write_price_csv(prices / f"{symbol}.csv", seed=seed, rows=1300)
    broken = pd.read_csv(prices / "BBB.csv")
    broken.loc[700, "High"] = broken.loc[700, "Low"] / 2  # high below low: quarantined
    broken.to_csv(prices / "BBB.csv", index=False)
    args = ["--source", "csv", "--prices-dir", prices, "--workdir", workdir,
            "--config", write_fast_config(tmp_path), "--no-open"]

    first = run_program("run_training.py", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "BBB: data problems: 1 high_below_low" in flat(first)
    assert query(workdir, "SELECT symbol, kind FROM data_issues") == [("BBB", "high_below_low")]
    fetched_before = dict(query(workdir, "SELECT symbol, fetched_at FROM price_fetches"))

    write_price_csv(prices / "BBB.csv", seed=1, rows=1300)  # the user repairs the file
    assert run_program("reset_checkpoint.py", "--workdir", workdir, "--yes").returncode == 0
    second = run_program("run_training.py", *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert query(workdir, "SELECT symbol, kind FROM data_issues") == []
    fetched_after = dict(query(workdir, "SELECT symbol, fetched_at FROM price_fetches"))
    assert fetched_after["AAA"] == fetched_before["AAA"] and fetched_after["CCC"] == fetched_before["CCC"]
    assert query(workdir, "SELECT COUNT(*) FROM price_data WHERE symbol = 'BBB'") == [(1300,)]
