"""The HTML report, read back with html.parser and checked against the database it came from."""

from __future__ import annotations

import json
import math
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import store
from trainer.config import Config, GateConfig
from trainer.promotion.gate import decide_from_db, record_decision
from trainer.reporting.report import write_report

RUN = "run-demo-1"
SECTIONS = ("summary", "symbols", "labels", "models", "roc", "calibration", "portfolio", "regimes", "sectors",
            "shap", "gate")
STRATEGIES = ("ensemble", "benchmark_equal_weight", "benchmark_vol_only", "benchmark_rule")
MODELS = ("lightgbm", "xgboost", "ensemble", "baseline")
SYMBOLS = {"AAA": "Technology", "BBB": "Technology", "CCC": "Energy", "DDD": "Energy", "EEE": "Utilities",
           "FFF": "Utilities"}
REGIMES = ("bull_calm", "bull_volatile", "bear_calm", "bear_volatile")
FEATURES = [f"feature_{i:02d}" for i in range(25)]
METRIC_COLUMNS = ("n_samples", "n_directional", "auc_ovr", "auc_directional", "log_loss", "brier",
                  "balanced_accuracy", "top_decile_buy_precision", "top_decile_return", "all_mean_return")


class _Page(HTMLParser):
    """Title, section texts, image sources and every <td> with its attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.banner = ""
        self.sections: dict[str, str] = {}
        self.images: dict[str, list[str]] = {}
        self.cells: list[tuple[dict[str, str], str]] = []
        self.tags: list[str] = []
        self._stack: list[str] = []
        self._section: str | None = None
        self._cell: dict[str, str] | None = None
        self._in_banner = False
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = ""
        elif tag == "img" and self._section:
            self.images.setdefault(self._section, []).append(attrs["src"])
        elif tag == "td":
            self._cell, self._text = attrs, ""
        self._in_banner = self._in_banner or attrs.get("class") == "banner"
        if tag not in ("img", "meta"):
            self._stack.append(tag)

    def handle_endtag(self, tag):
        self._stack.pop()
        self._in_banner = self._in_banner and tag != "p"
        if tag == "section":
            self._section = None
        elif tag == "td":
            self.cells.append((self._cell, self._text))
            self._cell = None

    def handle_data(self, data):
        if self._stack and self._stack[-1] == "title":
            self.title += data
        if self._in_banner:
            self.banner += data
        if self._section:
            self.sections[self._section] += data
        if self._cell is not None:
            self._text += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _metric_record(rng: np.random.Generator, n: int, model: str) -> dict:
    directional = 0.5 if model == "baseline" else float(rng.uniform(0.5, 0.58))
    return {"n_samples": n, "n_directional": int(n * 0.6), "auc_ovr": float(rng.uniform(0.5, 0.62)),
            "auc_directional": directional, "log_loss": float(rng.uniform(1.0, 1.1)),
            "brier": float(rng.uniform(0.6, 0.66)), "balanced_accuracy": float(rng.uniform(0.33, 0.4)),
            "top_decile_buy_precision": float(rng.uniform(0.3, 0.5)),
            "top_decile_return": float(rng.normal(0.01, 0.01)), "all_mean_return": float(rng.normal(0.004, 0.002))}


@pytest.fixture
def filled_db(tmp_path) -> tuple:
    """A realistic finished demo run: 2 base models + ensemble + baseline on ~300 holdout samples."""
    rng = np.random.default_rng(7)
    connection = store.connect(tmp_path / "trainer.db")
    config = Config().to_dict() | {"data": Config().data.__dict__ | {"source": "demo"}}
    dates = pd.bdate_range("2023-01-02", periods=50, freq="5B")
    trades, predictions = [], []
    for symbol in SYMBOLS:
        for i, date in enumerate(dates):
            label = int(rng.choice(3, p=[0.3, 0.35, 0.35]))
            realised = float({0: -0.05, 1: 0.002, 2: 0.05}[label] + rng.normal(0, 0.01))
            entry = date.strftime("%Y-%m-%d")
            trades.append({"run_id": RUN, "symbol": symbol, "entry_date": entry,
                           "exit_date": (date + pd.Timedelta(days=28)).strftime("%Y-%m-%d"),
                           "exit_reason": {0: "lower", 1: "time", 2: "upper"}[label], "realised_return": realised,
                           "label": label, "regime": REGIMES[i * 4 // len(dates)]})
            for model in MODELS:
                if model == "baseline":
                    proba = np.array([0.3, 0.35, 0.35])
                else:
                    logits = rng.normal(0, 0.4, 3) + 0.6 * np.eye(3)[label]
                    proba = np.exp(logits) / np.exp(logits).sum()
                predictions.append({"run_id": RUN, "model": model, "symbol": symbol, "entry_date": entry,
                                    "p_sell": proba[0], "p_hold": proba[1], "p_buy": proba[2]})
    performance, sectors = [], []
    for model in MODELS:
        record = _metric_record(rng, len(trades), model)
        performance.append({"run_id": RUN, "model": model, "scope": "holdout", "segment": "all", **record,
                            "fit_seconds": None if model in ("ensemble", "baseline") else 12.345})
        for regime in REGIMES:
            performance.append({"run_id": RUN, "model": model, "scope": "regime", "segment": regime,
                                **_metric_record(rng, len(trades) // 4, model), "fit_seconds": None})
        for sector in sorted(set(SYMBOLS.values())):
            sectors.append({"run_id": RUN, "model": model, "sector": sector,
                            **_metric_record(rng, len(trades) // 3, model)})
    performance[0]["auc_ovr"] = None  # a metric that could not be computed shows as n/a
    shap = [{"run_id": RUN, "model": model, "feature": feature, "class_label": label,
             "mean_abs_shap": float(rng.uniform(0, 0.2))}
            for model in ("lightgbm", "xgboost", "ensemble") for feature in FEATURES
            for label in ("SELL", "HOLD", "BUY", "all")]
    backtest = [{"run_id": RUN, "symbol": s, "trades": 400, "buy": 140, "hold": 140, "sell": 120,
                 "buy_share": 0.35, "hold_share": 0.35, "sell_share": 0.3, "avg_win": 0.045, "avg_loss": -0.041,
                 "first_date": "2005-01-03", "last_date": "2024-06-28", "completed_at": "2024-07-01T10:00:00"}
                for s in SYMBOLS]
    facts = {
        "failed_symbols": {"ZZZ": "no prices <script>alert(1)</script>",
                           "XXX": {"reason": "HTTP 404", "attempts": 3}},
        "skipped_symbols": {"YYY": "only 120 clean rows (need 300)"},
        "dropped_features": {"earnings_surprise": 0.12},
        "split": {"train": {"start": "2005-03-01", "end": "2022-11-30", "n_samples": 21000},
                  "embargo": {"start": "2022-12-01", "end": "2022-12-30", "n_samples": 120},
                  "holdout": {"start": "2023-01-02", "end": "2023-12-15", "n_samples": len(trades)},
                  "n_purged": 96, "folds": [{}] * 4, "kept_features": FEATURES},
        "fold_feature_importance": {m: [{f: float(v) for f, v in zip(FEATURES, rng.random(25), strict=True)}
                                        for _ in range(4)] for m in ("lightgbm", "xgboost")},
        "ensemble": {"weights": {"lightgbm": 0.56, "xgboost": 0.44}, "metric": "auc_directional",
                     "oof_score": 0.571, "member_scores": {"lightgbm": 0.566, "xgboost": 0.561},
                     "trajectory": [0.566, 0.571], "voting_folds": [2, 3, 4], "voting_rows": 12000},
        "benchmark_rule": {"feature": "feature_03", "sign": -1, "oof_auc_directional": 0.55,
                           "text": "lower feature_03 -> more likely BUY (out-of-fold directional AUC 0.5500)"},
        "phase_seconds": {"prices": 3.2, "backtest": 11.0, "training": 95.5, "report": 2.1},
        "data_span": {"first_date": "2005-01-03", "last_date": "2023-12-29"},
        "proxy": "equal-weight",
        "portfolio": {"settings": {"top": 0.1, "long_short": False, "exits": "barriers", "cost_bps": 10.0,
                                   "slippage_bps": 0.0, "cash_rate": 0.0, "tranches": 4, "stride": 5},
                      "trials": 5,
                      "ensemble": {"start": "2023-01-02", "end": "2023-12-15", "max_drawdown_peak": "2023-03-01",
                                   "max_drawdown_trough": "2023-05-02"}},
    }
    portfolio_daily, portfolio_summary = _portfolio_rows(rng)
    with store.transaction(connection):
        store.write_rows(connection, "training_runs", [{
            "run_id": RUN, "config_hash": "abc123", "config_json": json.dumps(config), "source": "demo:7",
            "is_demo": 1, "created_at": "2024-07-01T09:00:00", "finished_at": "2024-07-01T09:03:00"}])
        store.write_rows(connection, "symbols", [{"symbol": s, "name": s, "sector": sec, "cap": "large"}
                                                 for s, sec in SYMBOLS.items()])
        store.write_rows(connection, "trades", trades)
        store.write_rows(connection, "model_predictions", predictions)
        store.write_rows(connection, "model_performance", performance)
        store.write_rows(connection, "sector_performance", sectors)
        store.write_rows(connection, "shap_analysis", shap)
        store.write_rows(connection, "portfolio_daily", portfolio_daily)
        store.write_rows(connection, "portfolio_summary", portfolio_summary)
        store.write_rows(connection, "backtest_results", backtest)
        store.write_rows(connection, "run_facts", [{"run_id": RUN, "key": k, "value_json": json.dumps(v)}
                                                   for k, v in facts.items()])
        store.write_rows(connection, "data_issues", [
            {"source": "demo:7", "symbol": "AAA", "date": "2010-05-06", "kind": "extreme_move", "detail": "x"},
            {"source": "demo:7", "symbol": "BBB", "date": "2011-05-06", "kind": "extreme_move", "detail": "x"},
            {"source": "demo:7", "symbol": "BBB", "date": "2012-01-02", "kind": "non_positive_price",
             "detail": "x"},
            {"source": "yfinance", "symbol": "AAA", "date": "2012-01-02", "kind": "other_source", "detail": "x"}])
    decision = decide_from_db(connection, RUN, GateConfig(bootstrap_reps=200), horizon=5)
    record_decision(connection, RUN, decision, None)
    return connection, decision, tmp_path / "reports" / RUN


def _portfolio_rows(rng) -> tuple[list[dict], list[dict]]:
    """A year of daily account values per strategy (and out-of-fold twins) and a value per metric."""
    days = pd.bdate_range("2023-01-02", periods=240)
    daily, summary = [], []
    for strategy in [*STRATEGIES, *(name + "_oof" for name in STRATEGIES)]:
        returns = rng.normal(0.0004, 0.01, len(days))
        nav = np.cumprod(1 + returns)
        daily += [{"run_id": RUN, "strategy": strategy, "date": day.strftime("%Y-%m-%d"), "nav": float(v),
                   "gross_return": float(r) + 0.0001, "net_return": float(r), "exposure": 0.9, "turnover": 0.05,
                   "costs": 0.0001} for day, v, r in zip(days, nav, returns, strict=True)]
        metrics = ["total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown",
                   "calmar", "turnover", "hit_rate", "exposure", "n_trades", "costs", "avg_holding_days", "psr",
                   "dsr", "excess_return", "excess_return_low", "excess_return_high"]
        summary += [{"run_id": RUN, "strategy": strategy, "metric": metric,
                     "value": float(rng.integers(10, 500)) if metric == "n_trades" else float(rng.normal(0.1, 0.3))}
                    for metric in metrics
                    if not (strategy.startswith("benchmark_equal_weight") and metric.startswith("excess"))]
    return daily, summary


def _close(text: str, value) -> bool:
    """Does the displayed text equal the stored value, rounded the way the report shows it?"""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return text == "n/a"
    if text.endswith("%"):
        return abs(float(text[:-1]) / 100 - value) <= 0.00005 + 1e-12
    decimals = len(text.partition(".")[2])
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12


def test_report_sections_demo_title_and_images(filled_db):
    connection, _, out_dir = filled_db
    page = _parse(write_report(connection, RUN, out_dir))
    assert "DEMO DATA" in page.title
    assert "generated" in page.banner
    for section in SECTIONS:
        assert section in page.sections, section
        heading_and_text = page.sections[section].strip()
        assert len(heading_and_text) > 40, f"section {section} is empty"
        assert "not run" not in heading_and_text and "not recorded" not in heading_and_text, section
    for section in ("roc", "calibration", "portfolio", "shap"):
        assert page.images.get(section), f"no figure in {section}"
    assert len(page.images["portfolio"]) == 3
    for sources in page.images.values():
        for source in sources:
            assert (out_dir / source).stat().st_size > 5000
    assert "script" not in page.tags  # the failed-symbol reason is escaped text, not markup
    assert "<script>alert(1)</script>" in page.sections["symbols"]
    assert "extreme_move" in page.sections["symbols"] and "other_source" not in page.sections["symbols"]
    assert "HTTP 404 (after 3 attempts)" in page.sections["symbols"]
    assert "2023-01-02 to 2023-12-15 (300 samples)" in page.sections["summary"]
    assert "never holds more than its capital" in page.sections["portfolio"]
    assert "2023-03-01 to 2023-05-02" in page.sections["portfolio"]
    assert "counts 5 candidates" in page.sections["portfolio"]


def test_every_portfolio_cell_equals_the_database(filled_db):
    connection, _, out_dir = filled_db
    page = _parse(write_report(connection, RUN, out_dir))
    shown = assert_portfolio_cells_equal(page, connection, RUN)
    assert shown == {*STRATEGIES, *(name + "_oof" for name in STRATEGIES)}


def assert_portfolio_cells_equal(page: _Page, connection: sqlite3.Connection, run_id: str) -> set[str]:
    """Every cell of the portfolio tables equals portfolio_summary at the displayed rounding (the
    excess return with its interval); returns the strategies shown."""
    stored = {(strategy, metric): value for strategy, metric, value in connection.execute(
        "SELECT strategy, metric, value FROM portfolio_summary WHERE run_id = ?", (run_id,))}
    cells = [(a["data-strategy"], a["data-metric"], text) for a, text in page.cells
             if a.get("data-table") == "portfolio_summary"]
    assert cells, "no portfolio cells on the page"
    for strategy, metric, text in cells:
        shown, value = text.partition(" [")[0], stored.get((strategy, metric))  # None: not stored, shown n/a
        assert _close(shown, value) if metric != "n_trades" or value is None else int(shown) == value, \
            (strategy, metric, text)
        if metric == "excess_return" and value is not None:
            low, high = text.partition(" [")[2].rstrip("]").split(", ")
            assert _close(low, stored[(strategy, "excess_return_low")]), (strategy, text)
            assert _close(high, stored[(strategy, "excess_return_high")]), (strategy, text)
    return {strategy for strategy, _, _ in cells}


def test_flat_split_fact_is_shown_too(filled_db):
    connection, _, out_dir = filled_db
    store.put_fact(connection, RUN, "split", json.dumps({
        "train_start": "2005-03-01", "train_end": "2022-11-30", "holdout_start": "2023-01-02",
        "holdout_end": "2023-12-15", "n_train": 21000, "n_holdout": 300, "n_folds": 4, "embargo_days": 20}))
    summary = _parse(write_report(connection, RUN, out_dir)).sections["summary"]
    assert "2023-01-02 to 2023-12-15" in summary and "21000" in summary


TABLE_KEYS = {"model_performance": ("model", "scope", "segment"), "sector_performance": ("model", "sector")}


def metric_tables(connection: sqlite3.Connection) -> dict[str, pd.DataFrame]:
    return {table: pd.read_sql_query(f"SELECT * FROM {table}", connection) for table in TABLE_KEYS}


def assert_metric_cells_equal(page: _Page, tables: dict[str, pd.DataFrame]) -> None:
    """Every metric cell equals its database row at the displayed rounding, and every stored
    metric is on the page."""
    seen = set()
    for attrs, text in page.cells:
        table = attrs.get("data-table")
        if table is None or table == "portfolio_summary":  # see assert_portfolio_cells_equal
            continue
        frame, metric = tables[table], attrs["data-metric"]
        match = frame
        for key in TABLE_KEYS[table]:
            match = match[match[key] == attrs[f"data-{key}"]]
        assert len(match) == 1, attrs
        value = match.iloc[0][metric]
        assert _close(text.strip(), None if pd.isna(value) else float(value)), (attrs, text, value)
        seen.add((table, *(attrs[f"data-{key}"] for key in TABLE_KEYS[table]), metric))
    for table, frame in tables.items():
        for record in frame.to_dict("records"):
            for metric in METRIC_COLUMNS:
                assert (table, *(record[key] for key in TABLE_KEYS[table]), metric) in seen, (table, record, metric)


def test_every_metric_cell_equals_the_database(filled_db):
    connection, _, out_dir = filled_db
    page = _parse(write_report(connection, RUN, out_dir))
    assert_metric_cells_equal(page, metric_tables(connection))
    holdout_headers = [a.get("data-metric") for a, _ in page.cells
                       if a.get("data-model") == "lightgbm" and a.get("data-scope") == "holdout"]
    assert holdout_headers.index("auc_directional") == holdout_headers.index("auc_ovr") + 1


def test_gate_section_shows_every_criterion_and_the_decision(filled_db):
    connection, decision, out_dir = filled_db
    path = write_report(connection, RUN, out_dir)
    page = _parse(path)
    shown = {(a["data-criterion"], a["data-field"]): t for a, t in page.cells if "data-criterion" in a}
    for criterion in decision.criteria:
        assert shown[(criterion.name, "passed")] == ("PASS" if criterion.passed else "FAIL")
        assert _close(shown[(criterion.name, "value")], criterion.value)
        assert _close(shown[(criterion.name, "threshold")], criterion.threshold)
        if criterion.low is not None:
            low, high = shown[(criterion.name, "interval")].strip("[]").split(", ")
            assert _close(low, criterion.low) and _close(high, criterion.high)
        assert criterion.message in page.sections["gate"]
    assert decision.summary in page.sections["gate"]
    assert decision.explanation and decision.explanation in page.sections["gate"]
    outcome = "promoted" if decision.promoted else "rejected"
    assert f'data-decision="{outcome}"' in path.read_text(encoding="utf-8")


def test_a_run_without_results_says_so_in_every_section(tmp_path):
    connection = store.connect(tmp_path / "trainer.db")
    with store.transaction(connection):
        store.write_rows(connection, "training_runs", [{
            "run_id": "bare", "config_hash": "h", "config_json": json.dumps(Config().to_dict()),
            "source": "yfinance", "is_demo": 0, "created_at": "2024-07-01T09:00:00", "finished_at": None}])
    page = _parse(write_report(connection, "bare", tmp_path / "out"))
    assert "DEMO" not in page.title
    for section in SECTIONS:
        assert len(page.sections[section].strip()) > 20, section
    assert "SHAP was not run" in page.sections["shap"]
    assert "has not decided" in page.sections["gate"]
    assert "No holdout metrics" in page.sections["models"]


def test_models_section_shows_the_ensemble_weights_and_the_rule(filled_db):
    connection, _, out_dir = filled_db
    page = _parse(write_report(connection, RUN, out_dir))
    weights = {a["data-model"]: t for a, t in page.cells if a.get("data-field") == "weight"}
    assert weights == {"lightgbm": "0.56", "xgboost": "0.44"}
    assert "lower feature_03 -> more likely BUY" in page.sections["models"]
    assert "folds 2, 3, 4" in page.sections["models"]


def test_models_section_states_the_row_caps(filled_db):
    connection, _, out_dir = filled_db
    page = _parse(write_report(connection, RUN, out_dir))
    assert "No row cap applied: every model was fitted on every training row." in page.sections["models"]
    store.put_fact(connection, RUN, "row_caps", json.dumps({"svm": [100000, 337634]}))
    page = _parse(write_report(connection, RUN, out_dir))
    assert "100,000" in page.sections["models"] and "337,634" in page.sections["models"]
    assert "29.6%" in page.sections["models"] and "No row cap applied" not in page.sections["models"]
    assert "Rows per tree" not in page.sections["models"]
    store.put_fact(connection, RUN, "tree_rows", json.dumps({"random_forest": [84409, 337634]}))
    page = _parse(write_report(connection, RUN, out_dir))
    assert "Rows per tree" in page.sections["models"] and "84,409" in page.sections["models"]
    assert "25.0%" in page.sections["models"]


def test_unknown_run_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not in training_runs"):
        write_report(store.connect(tmp_path / "trainer.db"), "nope", tmp_path / "out")
