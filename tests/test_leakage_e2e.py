"""A feature that sees the future must set off the leakage alarm, not win a promotion.

No test hooks in the product: a small demo run is made, one feature column in the database is
overwritten with each sample's own future (its trade's realised return, plus a little noise),
`reset_checkpoint.py --phase training` keeps the backtest and forgets the models, and the program
runs again on the poisoned features exactly as it would after any other retrain.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tests.support import run_program, write_fast_config
from trainer.promotion.gate import GateDecision

pytestmark = pytest.mark.slow

FEATURE_DTYPE = np.dtype("<f8")  # feature_store.features: little-endian float64 in feature_names order


def _connect(workdir) -> sqlite3.Connection:
    return sqlite3.connect(workdir / "data" / "trainer.db")


def leak_future_return(workdir, seed: int = 0) -> tuple[str, int]:
    """Overwrite the run's first feature with realised_return + N(0, 0.001) for every sample that has
    a trade; returns the feature's name and the number of rows changed."""
    rng = np.random.default_rng(seed)
    connection = _connect(workdir)
    try:
        (run_id,) = connection.execute("SELECT DISTINCT run_id FROM trades").fetchone()
        names = [name for (name,) in connection.execute(
            "SELECT name FROM feature_names WHERE run_id = ? ORDER BY position", (run_id,))]
        rows = connection.execute(
            "SELECT f.symbol, f.date, f.features, t.realised_return FROM feature_store f JOIN trades t "
            "ON t.run_id = f.run_id AND t.symbol = f.symbol AND t.entry_date = f.date WHERE f.run_id = ?",
            (run_id,)).fetchall()
        updates = []
        for symbol, date, blob, realised in rows:
            features = np.frombuffer(blob, dtype=FEATURE_DTYPE).copy()
            assert len(features) == len(names)
            features[0] = realised + rng.normal(0.0, 0.001)
            updates.append((features.astype(FEATURE_DTYPE).tobytes(), run_id, symbol, date))
        with connection:
            connection.executemany("UPDATE feature_store SET features = ? WHERE run_id = ? AND symbol = ? "
                                   "AND date = ?", updates)
        return names[0], len(updates)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("leakage")
    config = write_fast_config(workdir)
    args = ("--demo", "--max-symbols", "6", "--config", config, "--workdir", workdir, "--no-open")
    clean = run_program("run_training.py", *args)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    feature, changed = leak_future_return(workdir)
    assert changed > 1000
    reset = run_program("reset_checkpoint.py", "--workdir", workdir, "--phase", "training", "--yes")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    leaky = run_program("run_training.py", *args)
    assert leaky.returncode == 0, leaky.stdout + leaky.stderr
    return workdir, feature, clean.stdout + clean.stderr, leaky.stdout + leaky.stderr


def _holdout_aucs(workdir) -> dict[str, tuple[float, float]]:
    connection = _connect(workdir)
    try:
        return {model: (directional, ovr) for model, directional, ovr in connection.execute(
            "SELECT model, auc_directional, auc_ovr FROM model_performance "
            "WHERE scope = 'holdout' AND segment = 'all'")}
    finally:
        connection.close()


def _decisions(workdir) -> list[tuple[str, str | None, GateDecision]]:
    connection = _connect(workdir)
    try:
        return [(decision, path, GateDecision.from_json(criteria)) for decision, path, criteria in connection.execute(
            "SELECT decision, production_path, criteria_json FROM model_promotion_history ORDER BY id")]
    finally:
        connection.close()


def test_the_leaked_feature_is_what_the_models_learn(leaky_run):
    workdir, feature, _, _ = leaky_run
    aucs = _holdout_aucs(workdir)
    print(f"\nleaked feature: {feature}")
    for model, (directional, ovr) in sorted(aucs.items()):
        print(f"{model:<22} directional {directional:.4f}  one-vs-rest {ovr:.4f}")
    assert max(max(pair) for model, pair in aucs.items() if model != "baseline") >= 0.80, aucs


def test_the_gate_raises_the_leakage_alarm_and_promotes_nothing(leaky_run):
    workdir, _, clean_output, leaky_output = leaky_run
    decisions = _decisions(workdir)
    # Both runs were decided and kept as history; the clean one did not trip the alarm.
    assert len(decisions) == 2, decisions
    assert decisions[0][0] == "rejected", "precondition: the clean run promoted nothing either"
    clean_gate = {c.name: c for c in decisions[0][2].criteria}
    assert clean_gate["leakage_alarm"].passed, clean_gate["leakage_alarm"].message
    decision, production_path, gate = decisions[-1]
    assert (decision, production_path, gate.promoted) == ("rejected", None, False)
    leakage = {c.name: c for c in gate.criteria}["leakage_alarm"]
    assert not leakage.passed
    assert leakage.value >= 0.80
    assert "almost certainly leakage" in leakage.message
    assert "leakage_alarm" in gate.summary
    production = workdir / "models" / "production"
    assert not production.exists() or not any(production.iterdir())
    # The console says so twice: the evaluation's alarm and the gate's failed criterion.
    shown = " ".join(leaky_output.split())
    assert "almost certainly leakage" in shown
    for model, (directional, _) in _holdout_aucs(workdir).items():  # each alarm names its model
        if directional >= 0.80:
            assert f"{model}: auc_directional = {directional:.3f} is beyond the leakage alarm" in shown
    assert f"leakage_alarm: {leakage.message}" in shown
    assert "REJECTED" in shown and gate.summary in shown
    assert "almost certainly leakage" not in " ".join(clean_output.split())
