"""The final console verdict: one table with the ensemble's key metrics, the decision, the report."""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path

from trainer import console
from trainer.run_context import RunContext

VERDICT_METRICS = (("auc_directional", "Directional AUC (BUY vs SELL)"), ("auc_ovr", "One-vs-rest AUC"),
                   ("log_loss", "Log loss"))


def show_verdict(context: RunContext) -> None:
    """The one table the user reads in the morning."""
    results = context.state["evaluation"]["results"]
    ensemble, baseline = results.get("ensemble", {}), results.get("baseline", {})
    rows = [(label, _fmt(ensemble.get(key)), _fmt(baseline.get(key))) for key, label in VERDICT_METRICS]
    promotion = context.state["promotion"]
    rows.append(("Gate decision", (promotion.get("decision") or "not decided").upper(), ""))
    title = "Verdict" + (" (DEMO DATA)" if context.state.get("is_demo") else "")
    console.print_table(title, ["Holdout", "Ensemble", "Class-prior baseline"], rows)
    accounts = context.state.get("portfolio", {}).get("results", {})
    if accounts:
        console.print_table("Account after costs (holdout)", ["Account", "Sharpe", "Annual return", "Max drawdown"], [
            (label, _fmt(figures.get("sharpe"), "{:.2f}"), _fmt(figures.get("annual_return"), "{:+.1%}"),
             _fmt(figures.get("max_drawdown"), "{:.1%}"))
            for label, figures in (("Strategy (top-ranked stocks)", accounts.get("ensemble", {})),
                                   ("Equal weight, all stocks", accounts.get("benchmark_equal_weight", {})))])
    if promotion.get("summary"):
        console.info(promotion["summary"])
    if promotion.get("explanation"):
        console.info(promotion["explanation"])
    report = context.state["report"].get("path")
    if report:
        console.info(f"Report: {report}")
        if os.name == "nt" and context.options.open_report:
            webbrowser.open(Path(report).as_uri())


def _fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "n/a" if value is None or value != value else pattern.format(value)
