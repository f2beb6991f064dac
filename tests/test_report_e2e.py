"""The report of a real run, read back like a person would and checked against the database.

tests/test_report.py checks the report writer on a hand-filled database; this runs the real
program on a small demo and checks that what it wrote is complete: every section filled, the
demo warning in the title, every figure a real PNG, and every metric cell equal to the row of
model_performance / sector_performance it names, at the displayed rounding.
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from tests.support import read_checkpoint, run_program, write_fast_config
from tests.test_report import (
    SECTIONS,
    TABLE_KEYS,
    _close,
    _parse,
    assert_metric_cells_equal,
    assert_portfolio_cells_equal,
)
from trainer.promotion.gate import latest_decision

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The sentences a section shows instead of its content when it has no data.
NO_DATA = ("No holdout metrics", "No ensemble holdout predictions", "No per-regime metrics",
           "No per-sector metrics", "No backtest results", "SHAP was not run", "has not decided",
           "were not recorded", "No ensemble attribution", "The time split was not recorded",
           "No phase timings were recorded", "No portfolio simulation")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    # Two tree models, so the ensemble always has a SHAP attribution whatever its weights.
    config = write_fast_config(workdir, ("random_forest", "lightgbm"))
    result = run_program("run_training.py", "--demo", "--max-symbols", "6", "--config", config,
                         "--workdir", workdir, "--no-open")
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_checkpoint(workdir)
    path = workdir / "reports" / state["run_id"] / "report.html"
    assert state["report"]["path"] == str(path)
    connection = sqlite3.connect(workdir / "data" / "trainer.db")
    try:
        tables = {table: pd.read_sql_query(f"SELECT * FROM {table} WHERE run_id = ?", connection,
                                           params=(state["run_id"],)) for table in TABLE_KEYS}
        decision = latest_decision(connection, state["run_id"])
        page = _parse(path)
        strategies = assert_portfolio_cells_equal(page, connection, state["run_id"])
    finally:
        connection.close()
    assert {"ensemble", "benchmark_equal_weight", "benchmark_vol_only", "benchmark_rule"} <= strategies
    return path, page, tables, decision


def test_every_section_is_there_and_filled(demo_report):
    _, page, _, _ = demo_report
    assert "DEMO DATA" in page.title
    assert "generated" in page.banner
    assert list(page.sections) == list(SECTIONS)
    for section, text in page.sections.items():
        assert len(text.strip()) > 80, f"section {section} is nearly empty: {text!r}"
        empty = [sentence for sentence in NO_DATA if sentence in text]
        assert not empty, f"section {section} says it has no data: {empty}"
    assert "script" not in page.tags


def test_every_figure_is_a_real_png(demo_report):
    path, page, _, _ = demo_report
    for section in ("roc", "calibration", "portfolio", "shap"):
        assert page.images.get(section), f"no figure in {section}"
    for section, sources in page.images.items():
        for source in sources:
            image = path.parent / source
            assert image.is_file(), f"{section}: {source} is referenced but missing"
            data = image.read_bytes()
            assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, f"{section}: {source} is not a PNG"


def test_every_metric_cell_equals_the_database(demo_report):
    _, page, tables, _ = demo_report
    assert not tables["model_performance"].empty and not tables["sector_performance"].empty
    assert_metric_cells_equal(page, tables)
    models = set(tables["model_performance"]["model"])
    assert {"random_forest", "lightgbm", "ensemble", "benchmark_vol_only", "benchmark_rule", "baseline"} <= models


def test_the_gate_section_shows_the_stored_decision(demo_report):
    path, page, _, recorded = demo_report
    assert recorded is not None
    decision, _, _ = recorded
    shown = {(a["data-criterion"], a["data-field"]): t for a, t in page.cells if "data-criterion" in a}
    assert {name for name, _ in shown} == {c.name for c in decision.criteria}
    for criterion in decision.criteria:
        assert shown[(criterion.name, "passed")] == ("PASS" if criterion.passed else "FAIL")
        assert _close(shown[(criterion.name, "value")], criterion.value), criterion.name
        assert _close(shown[(criterion.name, "threshold")], criterion.threshold), criterion.name
        assert criterion.message in page.sections["gate"]
    assert decision.summary in page.sections["gate"]
    outcome = "promoted" if decision.promoted else "rejected"
    assert f'data-decision="{outcome}"' in path.read_text(encoding="utf-8")
