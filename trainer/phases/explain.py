"""SHAP phase: which features the tree models (and so the ensemble) lean on, and how stable that is.

Bounded: SHAP runs on a seeded sample of holdout rows (shap.sample_rows, default 2,000) for the
boosted models, and on a smaller sample for the forests, whose full-depth trees make TreeSHAP
far slower per row.
"""

from __future__ import annotations

import json
import logging
import math
import time

from backend import store
from trainer import console
from trainer.ml.shap_analysis import (
    ensemble_importance,
    importance_stability,
    sample_rows,
    shap_rows,
    tree_shap_importance,
)
from trainer.phases.training import ENSEMBLE, load_artifact, prepare_data
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

# Explained models and the share of the configured sample each gets (forests cost more per row).
EXPLAINED_MODELS = {"lightgbm": 1.0, "xgboost": 1.0, "random_forest": 0.1, "extra_trees": 0.1}
STABILITY_MODEL = "lightgbm"


def run_shap_phase(context: RunContext) -> None:
    data = prepare_data(context)
    holdout_rows = data.split.holdout_idx
    features = data.split.kept_features
    per_model = {}
    fold_importances = {}
    for name, share in EXPLAINED_MODELS.items():
        if name not in context.config.training.models:
            continue
        artifact = load_artifact(context, name)
        if artifact["fold_importance"]:
            fold_importances[name] = artifact["fold_importance"]
        estimator = artifact["model"].explainable_estimator()
        size = max(50, int(context.config.shap.sample_rows * share))
        rows = holdout_rows[sample_rows(len(holdout_rows), size, context.config.seed)]
        started = time.monotonic()
        per_model[name] = tree_shap_importance(estimator, data.features(rows), features,
                                               classes=tuple(artifact["model"].classes_))
        console.info(f"SHAP {name}: {len(rows):,} holdout rows in {time.monotonic() - started:.1f} s")
    weights = load_artifact(context, ENSEMBLE)["weights"]
    rows_out = [row for name, frame in per_model.items() for row in shap_rows(context.run_id, name, frame)]
    explained_weight = sum(weights.get(name, 0.0) for name in per_model)
    if per_model and explained_weight > 0:
        rows_out += shap_rows(context.run_id, "ensemble", ensemble_importance(per_model, weights))
    elif per_model:
        console.info("No ensemble SHAP attribution: the ensemble gives no weight to a tree model "
                     f"({', '.join(sorted(per_model))}), the only ones SHAP explains here.")
    stability = (importance_stability(fold_importances[STABILITY_MODEL])
                 if STABILITY_MODEL in fold_importances else float("nan"))
    with store.transaction(context.connection) as connection:
        connection.execute("DELETE FROM shap_analysis WHERE run_id = ?", (context.run_id,))
        store.write_rows(connection, "shap_analysis", rows_out)
    store.put_fact(context.connection, context.run_id, "fold_feature_importance", json.dumps(fold_importances))
    store.put_fact(context.connection, context.run_id, "shap_stability", json.dumps(
        {"model": STABILITY_MODEL, "spearman": None if math.isnan(stability) else stability,
         "ensemble_method": "base-model SHAP shares weighted by the ensemble weights"}))
    context.state["shap"] = {"completed": True, "models": sorted(per_model),
                             "stability": None if math.isnan(stability) else round(stability, 4)}
    if not math.isnan(stability):
        console.info(f"Feature-importance stability ({STABILITY_MODEL}, rank correlation across CV folds): "
                     f"{stability:.2f}")
    context.advance("shap")
