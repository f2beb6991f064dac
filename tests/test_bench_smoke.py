"""bench/run_bench.py still runs end to end and prints every figure beside its target: the smallest
run that covers the demo, resume and check_checkpoint parts (real and scaling reuse the same code)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support import PROJECT_DIR

pytestmark = pytest.mark.slow

# Figures judged against a target: printed as "label ... target <= X unit   PASS|MISS|n/a".
TARGETED = {
    "demo": ["whole pipeline (wall)", "prices+market+backtest per symbol", "peak RSS (max over runs)",
             "ratio pipeline / reference"],
    "resume": ["resume: process start to new symbol"],
    "check_checkpoint": ["check_checkpoint, no run", "check_checkpoint, mid-run"],
}
PLAIN = ["backtest samples per second", "pipeline samples per second", "reference wall (start-up included)",
         "phase training"]


def test_quick_bench_prints_every_figure_and_exits_0(tmp_path):
    figures_path = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench" / "run_bench.py"), "--quick", "--skip-real", "--skip-scaling",
         "--reference-repeats", "1", "--json", str(figures_path)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600, encoding="utf-8", errors="replace")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(figures_path.read_text(encoding="utf-8"))["figures"]
    for section, labels in TARGETED.items():
        for label in labels:
            assert re.search(rf"{re.escape(label)} .* target <= .* (PASS|MISS|n/a)$", result.stdout, re.MULTILINE), (
                f"{label!r} not printed with its target:\n{result.stdout}")
            assert figures[section][label]["verdict"] in ("PASS", "MISS", "n/a")
    for label in PLAIN:
        assert label in result.stdout, f"{label!r} not printed:\n{result.stdout}"
    assert "== Targets:" in result.stdout


def test_bench_config_is_checked_before_anything_runs(tmp_path):
    """--config runs the pipeline with another setting against the same reference; a missing file
    or --config beside --quick (which brings its own) is refused at once, naming the problem."""
    bench = [sys.executable, str(PROJECT_DIR / "bench" / "run_bench.py")]
    missing = subprocess.run([*bench, "--config", str(tmp_path / "none.toml")], cwd=PROJECT_DIR,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "none.toml: no such file" in missing.stderr
    config = tmp_path / "one.toml"
    config.write_text('[training]\nmodels = ["logistic_regression"]\n', encoding="utf-8")
    both = subprocess.run([*bench, "--quick", "--config", str(config)], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
