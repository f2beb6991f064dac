"""Per-feature SHAP attributions for tree models, their ensemble weighting and fold stability.

SHAP runs on a bounded, deterministic sample of holdout rows: TreeExplainer is exact but its cost
grows with rows x trees, and a few thousand rows are enough to rank features by mean |SHAP|.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

CLASS_NAMES: tuple[str, ...] = ("SELL", "HOLD", "BUY")  # label 0, 1, 2
ALL_CLASSES = "all"
COLUMNS = ["feature", "class_label", "mean_abs_shap"]


def sample_rows(n_rows: int, max_rows: int = 2000, seed: int = 0) -> np.ndarray:
    """Sorted row indices: all rows when they fit, else a seeded sample without replacement."""
    if n_rows < 0 or max_rows < 1:
        raise ValueError(f"need n_rows >= 0 and max_rows >= 1, got {n_rows} and {max_rows}")
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_rows, replace=False))


def tree_shap_importance(estimator: Any, X_sample: np.ndarray | pd.DataFrame, feature_names: Sequence[str],
                         classes: Sequence[int] = (0, 1, 2)) -> pd.DataFrame:
    """Mean |SHAP| per feature and class, plus 'all' = the mean of the per-class values.

    classes: the labels behind the estimator's outputs, in order (ClassifierModel.classes_; a model
    trained on a window without HOLD outputs only SELL and BUY, and gets rows for those two).
    'all' weights each class equally, so a feature that only separates SELL still shows up; it is
    in the model's own output units (log-odds for boosters, probability for forests), which is why
    ensemble_importance normalises before combining models.
    """
    import shap

    values = _as_rows_features_classes(shap.TreeExplainer(estimator).shap_values(X_sample), len(classes))
    if values.shape[1] != len(feature_names):
        raise ValueError(f"SHAP returned {values.shape[1]} features for {len(feature_names)} feature names")
    per_class = np.abs(values).mean(axis=0)  # features x classes
    frames = [pd.DataFrame({"feature": list(feature_names), "class_label": CLASS_NAMES[int(label)],
                            "mean_abs_shap": per_class[:, k]}) for k, label in enumerate(classes)]
    frames.append(pd.DataFrame({"feature": list(feature_names), "class_label": ALL_CLASSES,
                                "mean_abs_shap": per_class.mean(axis=1)}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _as_rows_features_classes(values: Any, n_classes: int) -> np.ndarray:
    """One (rows, features, classes) array from whatever shap returned.

    shap < 0.45 returns a list with one (rows, features) array per class, 0.45+ (0.51 here) one 3-D
    array; a binary booster returns a single (rows, features) log-odds array for the second class,
    whose negation explains the first.
    """
    if isinstance(values, list):
        values = np.stack([np.asarray(v) for v in values], axis=-1)
    values = np.asarray(values, dtype=float)
    if values.ndim == 2 and n_classes == 2:
        values = np.stack([-values, values], axis=-1)
    if values.ndim != 3 or values.shape[2] != n_classes:
        raise ValueError(f"expected SHAP values for {n_classes} classes, got shape {values.shape}; "
                         "pass the labels the model was trained on as `classes`")
    return values


def ensemble_importance(per_model: Mapping[str, pd.DataFrame], reliance: Mapping[str, float]) -> pd.DataFrame:
    """Ensemble attribution = base-model SHAP shares weighted by the ensemble's weights.

    This is the method (not permutation importance of the ensemble): each explained model's
    mean |SHAP| is normalised to shares summing to 1 per class label (forests and boosters speak
    in different units), then averaged with the model's ensemble weight (`reliance`), renormalised
    over the models that could be explained (tree models; the others have no TreeExplainer). The
    result is a share of attribution per class label: it sums to 1.
    """
    weights = {model: float(reliance.get(model, 0.0)) for model in per_model}
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"the ensemble puts no weight on any explained model ({sorted(per_model)}); "
                         "an ensemble attribution would be meaningless")
    parts = []
    for model, frame in per_model.items():
        shares = frame[COLUMNS].copy()
        sums = shares.groupby("class_label")["mean_abs_shap"].transform("sum")
        shares["mean_abs_shap"] = np.where(sums > 0, shares["mean_abs_shap"] / sums.where(sums > 0, 1), 0.0)
        shares["mean_abs_shap"] *= weights[model] / total
        parts.append(shares)
    combined = pd.concat(parts).groupby(["feature", "class_label"], as_index=False, sort=False)
    return (combined["mean_abs_shap"].sum()[COLUMNS]
            .sort_values(["class_label", "mean_abs_shap"], ascending=[True, False], ignore_index=True))


def importance_stability(fold_importances: Sequence[Mapping[str, float]]) -> float:
    """Mean pairwise Spearman rank correlation of feature importances across CV folds.

    Near 1: the model leans on the same features in every period; near 0: the ranking is noise and
    the SHAP chart should not be read as an explanation. A feature missing from a fold counts as 0.
    A pair where one fold has all-equal importances has no rank correlation and is left out; with
    fewer than two folds, or no defined pair, the result is NaN.
    """
    features = sorted({name for fold in fold_importances for name in fold})
    ranks = [pd.Series([float(fold.get(name, 0.0)) for name in features]).rank().to_numpy()
             for fold in fold_importances]
    correlations = [np.corrcoef(a, b)[0, 1] for a, b in combinations(ranks, 2)
                    if np.ptp(a) > 0 and np.ptp(b) > 0]
    return float(np.mean(correlations)) if correlations else float("nan")


def shap_rows(run_id: str, model: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the shap_analysis table (write with backend.store.write_rows)."""
    return [{"run_id": run_id, "model": model, "feature": str(row.feature),
             "class_label": str(row.class_label), "mean_abs_shap": float(row.mean_abs_shap)}
            for row in frame[COLUMNS].itertuples(index=False)]
