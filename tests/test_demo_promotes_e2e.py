"""The demo proves the product works: its planted signal is real, so the default run must promote.

This is the run a new user makes first (`make demo`): the default settings on the 82-symbol demo
market, all eight models. An honest pipeline must find the planted signal with every gate
criterion passing, install the ensemble with its weights in the manifest, and say so in words.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.support import read_checkpoint, run_program
from trainer.promotion.gate import GateDecision

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = run_program("run_training.py", "--demo", "--workdir", workdir, "--no-open", timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir, result.stdout + result.stderr


def test_the_default_demo_is_promoted_on_every_criterion(demo_run):
    workdir, output = demo_run
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        (criteria,) = connection.execute("SELECT criteria_json FROM model_promotion_history").fetchone()
        models = {row[0] for row in connection.execute(
            "SELECT model FROM model_performance WHERE scope = 'holdout' AND segment = 'all'")}
    finally:
        connection.close()
    decision = GateDecision.from_json(criteria)
    print("\n" + "\n".join(f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.value} [{c.low}, {c.high}]"
                           for c in decision.criteria))
    assert decision.promoted, decision.summary
    assert {"ensemble", "benchmark_vol_only", "benchmark_rule", "baseline"} <= models
    shown = " ".join(output.split())
    assert "PROMOTED" in shown and "It is now the production model" in shown


def test_the_production_manifest_and_the_status_show_the_weights(demo_run):
    workdir, _ = demo_run
    manifest = json.loads((workdir / "models" / "production" / "manifest.json").read_text(encoding="utf-8"))
    weights = manifest["ensemble_weights"]
    assert weights and all(w > 0 for w in weights.values()) and sum(weights.values()) == pytest.approx(1.0)
    assert weights == read_checkpoint(workdir)["training"]["ensemble_weights"]
    status = run_program("check_checkpoint.py", "--workdir", workdir)
    shown = " ".join(status.stdout.split())
    assert status.returncode == 0 and "weights:" in shown
    best = max(weights, key=weights.__getitem__)
    assert f"{best} {weights[best]:.2f}" in shown


def test_tomorrows_signals_come_from_the_promoted_model(demo_run):
    """make demo, then generate_signals.py --demo: one row per demo symbol from the production model,
    for the newest day of the continued demo market."""
    workdir, _ = demo_run
    result = run_program("generate_signals.py", "--workdir", workdir, "--demo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert payload["promoted"] and payload["as_of"] == "2025-12-31" and not payload["skipped"]
    rows = payload["signals"]
    assert len(rows) == 82 and {row["model_version"] for row in rows} == {read_checkpoint(workdir)["run_id"]}
    assert all(abs(row["p_sell"] + row["p_hold"] + row["p_buy"] - 1) < 1e-9 for row in rows)
    actions = [row["action"] for row in rows]
    assert 0 < actions.count("BUY") < 30 and 0 < actions.count("SELL") < 30
