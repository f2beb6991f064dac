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

from trainer.ml.metrics import BUY, SELL, TOP_SHARE, directional_score

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


def equity_series(dates: np.ndarray, score: np.ndarray, returns: np.ndarray) -> pd.DataFrame:
    """Per entry date: mean realised return of that date's top-decile-by-score samples (at least
    one) and of all that date's samples, plus their running sums.

    Running sums, not compounded wealth: trades entered on nearby dates overlap in time, so this
    is a comparison of signal quality, not the account balance of a tradable strategy.
    """
    frame = pd.DataFrame({"date": pd.to_datetime(np.asarray(dates)), "p": np.asarray(score, dtype=float),
                          "r": np.asarray(returns, dtype=float)})
    frame = frame.sort_values(["date", "p"], ascending=[True, False], kind="stable")
    rank = frame.groupby("date").cumcount()
    size = frame.groupby("date")["p"].transform("size")
    top = frame[rank < np.maximum(1, np.ceil(size * TOP_SHARE))]
    series = pd.DataFrame({"top_decile": top.groupby("date")["r"].mean(),
                           "all": frame.groupby("date")["r"].mean()})
    series["cum_top_decile"] = series["top_decile"].cumsum()
    series["cum_all"] = series["all"].cumsum()
    return series


def equity_curve(dates: np.ndarray, score: np.ndarray, returns: np.ndarray, path: Path) -> Path:
    """Running sum of per-date mean returns: top decile by the directional score vs all samples (see equity_series)."""
    series = equity_series(dates, score, returns)
    figure = Figure(figsize=(10, 5), layout="constrained")
    ax = figure.subplots()
    ax.plot(series.index, series["cum_top_decile"], lw=2, label="top tenth of each date by directional score")
    ax.plot(series.index, series["cum_all"], lw=1.5, color="grey", label="all samples of each date")
    ax.axhline(0, color="black", lw=0.6)
    ax.set(title="Holdout: running sum of per-entry-date mean realised returns",
           xlabel="entry date", ylabel="sum of per-date mean returns")
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
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


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path
