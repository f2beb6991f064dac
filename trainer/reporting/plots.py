"""The report's PNG figures, drawn from plain arrays so they can be tested without a database.

matplotlib.figure.Figure is used directly (no pyplot): no GUI backend, no global figure state,
so plotting works on a headless machine and never leaks figures between calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from trainer.ml.metrics import BUY, SELL, directional_score
from trainer.tuning.spaces import short_name

CLASS_NAMES = ("SELL", "HOLD", "BUY")
DPI = 110


def roc_curves(y: np.ndarray, probas: Mapping[str, np.ndarray], path: Path) -> Path:
    """Directional ROC (BUY vs SELL among barrier-touching samples) beside the three one-vs-rest ROCs.

    Shown together because one-vs-rest AUC rewards predicting volatility (HOLD vs not) while only the
    directional curve shows whether the models tell up from down.
    """
    y = np.asarray(y)
    figure = Figure(figsize=(11, 9), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    directional = (y == BUY) | (y == SELL)
    panels = [("Directional: BUY vs SELL (barrier-touching samples)",
               lambda p: (y[directional] == BUY, directional_score(p)[directional]))]
    panels += [(f"One-vs-rest: {name}", lambda p, k=k: (y == k, p[:, k]))
               for k, name in enumerate(CLASS_NAMES)]
    for ax, (title, select) in zip(axes, panels, strict=True):
        for model, proba in probas.items():
            truth, score = select(np.asarray(proba))
            if truth.all() or not truth.any():
                continue
            fpr, tpr, _ = roc_curve(truth, score)
            ax.plot(fpr, tpr, lw=2.2 if model == "ensemble" else 1.2,
                    label=f"{model} (AUC {roc_auc_score(truth, score):.3f})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (0.500)")
        ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def calibration_plot(y: np.ndarray, p_buy: Mapping[str, np.ndarray], path: Path, bins: int = 10) -> Path:
    """Reliability of the BUY probability: observed BUY share per predicted-probability bin.

    Bins are quantiles of each model's predictions, so every point rests on the same number of
    samples even when the probabilities crowd around the class prior.
    """
    is_buy = np.asarray(y) == BUY
    figure = Figure(figsize=(7, 8), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1])
    for model, p in p_buy.items():
        p = np.asarray(p, dtype=float)
        table = pd.DataFrame({"p": p, "buy": is_buy, "bin": _quantile_bins(p, bins)}).groupby("bin").mean()
        top.plot(table["p"], table["buy"], marker="o", lw=2.2 if model == "ensemble" else 1.2, label=model)
        bottom.hist(p, bins=np.linspace(0, 1, 51), histtype="step", label=model)
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.set(title="Calibration of P(BUY) on the holdout", xlabel="mean predicted P(BUY) in bin",
            ylabel="observed BUY share in bin", xlim=(0, 1), ylim=(0, 1))
    top.legend(fontsize=8)
    # log counts: the class-prior baseline is one spike that would flatten every other histogram
    bottom.set(xlabel="predicted P(BUY)", ylabel="samples (log scale)", xlim=(0, 1), yscale="log")
    return _save(figure, path)


def _quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index per value from quantile edges; a constant predictor (the baseline) is one bin."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(len(edges) - 2, 0))


def nav_and_drawdown(navs: Mapping[str, pd.Series], path: Path) -> Path:
    """Each account's NAV on a log scale, and underneath each one's drawdown from its running peak."""
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    for number, (name, nav) in enumerate(navs.items()):
        width = 2.2 if number == 0 else 1.2
        top.plot(nav.index, nav.to_numpy(), lw=width, label=name)
        peaks = np.maximum.accumulate(np.r_[1.0, nav.to_numpy()])[1:]
        bottom.plot(nav.index, nav.to_numpy() / peaks - 1.0, lw=width, label=name)
    top.set_yscale("log")
    top.yaxis.set_major_formatter(lambda value, _: f"{value:g}")
    top.yaxis.set_minor_formatter(lambda value, _: f"{value:g}")
    top.axhline(1.0, color="black", lw=0.6)
    top.set(title="Account value after costs (start = 1, log scale)", ylabel="value")
    top.legend()
    bottom.set(ylabel="drawdown", xlabel="date")
    bottom.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    return _save(figure, path)


def monthly_returns(daily_returns: pd.Series) -> pd.DataFrame:
    """Compounded net return per calendar month: years as rows, months 1-12 as columns (NaN: no days)."""
    months = (1.0 + daily_returns).groupby([daily_returns.index.year, daily_returns.index.month]).prod() - 1.0
    table = months.unstack()
    return table.reindex(columns=range(1, 13))


def monthly_heatmap(daily_returns: pd.Series, path: Path, title: str) -> Path:
    table = monthly_returns(daily_returns)
    figure = Figure(figsize=(10, 0.5 * len(table) + 1.6), layout="constrained")
    ax = figure.subplots()
    limit = max(float(np.nanmax(np.abs(table.to_numpy()))) if table.size else 0.01, 0.01)
    image = ax.imshow(table.to_numpy(), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for (row, column), value in np.ndenumerate(table.to_numpy()):
        if np.isfinite(value):
            ax.text(column, row, f"{value:+.1%}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(12), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
    ax.set_yticks(range(len(table)), [str(year) for year in table.index])
    ax.set(title=title)
    figure.colorbar(image, ax=ax, format=lambda value, _: f"{value:.0%}")
    return _save(figure, path)


def rolling_sharpe(returns: Mapping[str, pd.Series], path: Path, window: int = 126) -> Path:
    """Annualised Sharpe ratio of the last `window` trading days (126: six months), per account."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    for name, series in returns.items():
        rolling = series.rolling(window)
        ax.plot(series.index, rolling.mean() / rolling.std() * np.sqrt(252), lw=1.5, label=name)
    ax.axhline(0, color="black", lw=0.6)
    ax.set(title=f"Rolling Sharpe ratio over {window} trading days (after costs)", xlabel="date", ylabel="Sharpe")
    ax.legend()
    return _save(figure, path)


def shap_bar(importance: pd.DataFrame, path: Path, top: int = 20) -> Path:
    """Horizontal bars of the ensemble's top features (rows with columns feature, mean_abs_shap)."""
    best = importance.nlargest(top, "mean_abs_shap").iloc[::-1]
    figure = Figure(figsize=(8, 0.3 * len(best) + 1.5), layout="constrained")
    ax = figure.subplots()
    ax.barh(best["feature"], best["mean_abs_shap"], color="#3b6ea5")
    ax.set(title=f"Ensemble SHAP: top {len(best)} features", xlabel="mean |SHAP| (share of attribution)")
    return _save(figure, path)


def stability_chart(stability: Mapping[str, float], path: Path) -> Path:
    """One bar per model: mean pairwise Spearman correlation of feature importance across CV folds."""
    models = list(stability)
    values = [stability[model] for model in models]
    figure = Figure(figsize=(8, 0.4 * len(models) + 1.5), layout="constrained")
    ax = figure.subplots()
    bars = ax.barh(models, np.nan_to_num(values), color="#5a9e6f")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values], padding=3)
    ax.axvline(0, color="black", lw=0.6)
    ax.set(title="Feature-importance stability across CV folds", xlim=(-1.0, 1.15),
           xlabel="mean pairwise Spearman rank correlation (1 = same ranking in every fold)")
    return _save(figure, path)


def tuning_history(histories: Mapping[str, list[dict]], metric: str, maximise: bool, path: Path) -> Path:
    """Per tuned model: each trial's out-of-fold score (pruned trials at their last reported fold,
    hollow) and the best so far, so a search that only wandered shows a flat line."""
    figure = Figure(figsize=(8, 3.2 * len(histories) + 0.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(histories), 1, squeeze=False)[:, 0])
    for ax, (model, history) in zip(axes, histories.items(), strict=True):
        shown = [trial for trial in history if trial["value"] is not None]
        complete = [(t["number"] + 1, t["value"]) for t in shown if t["state"] == "complete"]
        pruned = [(t["number"] + 1, t["value"]) for t in shown if t["state"] == "pruned"]
        if complete:
            x, y = zip(*complete, strict=True)
            ax.scatter(x, y, color="#3b6ea5", s=18, label="trial")
            best = np.maximum.accumulate(y) if maximise else np.minimum.accumulate(y)
            ax.step(x, best, where="post", color="#b31d28", label="best so far")
            if history[0]["state"] == "complete" and history[0]["value"] is not None:
                ax.axhline(history[0]["value"], color="grey", lw=0.8, ls="--", label="default parameters (trial 1)")
        if pruned:
            x, y = zip(*pruned, strict=True)
            ax.scatter(x, y, facecolors="none", edgecolors="#999999", s=18, label="pruned (last fold reported)")
        ax.set(title=f"{model}: optimisation history", xlabel="trial", ylabel=f"out-of-fold {metric}")
        ax.legend(fontsize=8, loc="best")
    return _save(figure, path)


def parameter_importances(importances: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """fANOVA importance of each hyperparameter for the out-of-fold score, one panel per model."""
    figure = Figure(figsize=(8, sum(0.35 * len(values) + 1.0 for values in importances.values()) + 0.5),
                    layout="constrained")
    axes = figure.subplots(len(importances), 1, squeeze=False)[:, 0]
    for ax, (model, values) in zip(axes, importances.items(), strict=True):
        names = list(values)[::-1]
        ax.barh([short_name(name) for name in names], [values[name] for name in names], color="#5a9e6f")
        ax.set(title=f"{model}: parameter importance (fANOVA)", xlabel="share of the score's variance", xlim=(0, 1))
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path
