"""Training phases: the eight base models one by one, then the stacked meta-learner.

Per base model: out-of-fold probabilities over the purged walk-forward folds, a refit on the
whole training period, holdout probabilities, the artifact (joblib, written atomically under
checkpoints/<run_id>/), metrics and predictions in SQLite, and only then the checkpoint. A run
killed inside a model retrains that model and the ones after it, nothing before it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from backend import store
from trainer import console
from trainer.crash_points import crash_point
from trainer.dataset import Dataset, Split, load_dataset, make_split
from trainer.metrics import evaluate
from trainer.models import ClassifierModel, make_meta_learner, make_model
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

META_LEARNER = "meta_learner"


@dataclass
class TrainingData:
    dataset: Dataset
    split: Split

    @property
    def oof_rows(self) -> np.ndarray:
        """Rows that are validation rows of some fold: where out-of-fold probabilities exist."""
        return np.unique(np.concatenate([val for _, val in self.split.folds]))

    def features(self, rows: np.ndarray) -> np.ndarray:
        return self.dataset.X[np.ix_(rows, self.split.kept_columns)]


def prepare_data(context: RunContext) -> TrainingData:
    """Load all samples and make the split (a pure function of config and data, so resumes agree)."""
    dataset = load_dataset(context.connection, context.run_id)
    training = context.config.training
    split = make_split(dataset, n_folds=training.n_folds, holdout_share=training.holdout_share,
                       min_feature_coverage=training.min_feature_coverage,
                       embargo_days=context.config.labels.horizon)
    return TrainingData(dataset, split)


def run_dataset_phase(context: RunContext) -> None:
    """Record the split and the dropped features for the report, then move on."""
    data = prepare_data(context)
    summary = data.split.summary()
    store.put_fact(context.connection, context.run_id, "split", json.dumps(summary))
    store.put_fact(context.connection, context.run_id, "dropped_features",
                   json.dumps(data.split.dropped_features))
    dropped = data.split.dropped_features
    console.info(f"Dataset: {len(data.dataset):,} samples, {len(data.split.kept_features)} features"
                 + (f" ({len(dropped)} dropped for low coverage: {', '.join(sorted(dropped))})" if dropped else "")
                 + f"; training {summary['train']['start']}..{summary['train']['end']} "
                 f"({len(data.split.train_idx):,}), holdout {summary['holdout']['start']}.."
                 f"{summary['holdout']['end']} ({len(data.split.holdout_idx):,}).")
    context.advance("dataset")


def artifact_path(context: RunContext, name: str) -> Path:
    return context.paths.artifacts(context.run_id) / f"{name}.joblib"


def save_artifact(path: Path, payload: dict[str, Any]) -> None:
    """joblib.dump to a temp file, fsync, os.replace: a kill never leaves half an artifact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    joblib.dump(payload, temp)
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


def load_artifact(context: RunContext, name: str) -> dict[str, Any]:
    return joblib.load(artifact_path(context, name))


def fold_importance(model: ClassifierModel, feature_names: list[str]) -> dict[str, float] | None:
    estimator = model.explainable_estimator()
    if estimator is None or not hasattr(estimator, "feature_importances_"):
        return None
    return {name: float(value) for name, value in zip(feature_names, estimator.feature_importances_, strict=True)}


def train_base_model(context: RunContext, name: str, data: TrainingData) -> dict[str, Any]:
    """OOF over the folds, refit on the training period, holdout probabilities."""
    seed = context.config.seed
    y = data.dataset.y
    oof = np.full((len(y), 3), np.nan)
    importances = []
    started = time.monotonic()
    folds = data.split.folds
    for number, (train_rows, val_rows) in enumerate(folds, start=1):
        fold_started = time.monotonic()
        model = make_model(name, seed).fit(data.features(train_rows), y[train_rows])
        oof[val_rows] = model.predict_proba(data.features(val_rows))
        crash_point("training.fold_fitted")
        importances.append(fold_importance(model, data.split.kept_features))
        console.info(f"  {name}: fold {number}/{len(folds)} in {time.monotonic() - fold_started:.1f} s")
    refit = make_model(name, seed).fit(data.features(data.split.train_idx), y[data.split.train_idx])
    holdout = refit.predict_proba(data.features(data.split.holdout_idx))
    return {"model": refit, "oof": oof, "holdout": holdout,
            "fold_importance": importances if all(i is not None for i in importances) else None,
            "fit_seconds": round(time.monotonic() - started, 2)}


def store_model_results(context: RunContext, name: str, data: TrainingData, holdout: np.ndarray,
                        oof: np.ndarray | None, fit_seconds: float | None) -> dict[str, Any]:
    """Holdout (and out-of-fold) metrics plus holdout predictions of one model, in one transaction."""
    dataset, rows = data.dataset, data.split.holdout_idx
    metrics = evaluate(dataset.y[rows], holdout, dataset.returns[rows])
    performance = [{"run_id": context.run_id, "model": name, "scope": "holdout", "segment": "all",
                    **metrics, "fit_seconds": fit_seconds}]
    if oof is not None:
        oof_rows = data.oof_rows
        performance.append({"run_id": context.run_id, "model": name, "scope": "cv", "segment": "all",
                            **evaluate(dataset.y[oof_rows], oof[oof_rows], dataset.returns[oof_rows]),
                            "fit_seconds": None})
    predictions = [{"run_id": context.run_id, "model": name, "symbol": symbol, "entry_date": str(day),
                    "p_sell": float(p[0]), "p_hold": float(p[1]), "p_buy": float(p[2])}
                   for symbol, day, p in zip(dataset.symbols[rows], dataset.entry_dates[rows], holdout,
                                             strict=True)]
    with store.transaction(context.connection) as connection:
        connection.execute("DELETE FROM model_performance WHERE run_id = ? AND model = ?",
                           (context.run_id, name))
        connection.execute("DELETE FROM model_predictions WHERE run_id = ? AND model = ?",
                           (context.run_id, name))
        store.write_rows(connection, "model_performance", performance)
        store.write_rows(connection, "model_predictions", predictions)
    return metrics


def run_base_models_phase(context: RunContext) -> None:
    data = prepare_data(context)
    training = context.state["training"]
    for name in context.config.training.models:
        if name in training["base_models_trained"] and artifact_path(context, name).exists():
            continue
        training["in_progress"] = name
        context.checkpoint.save()
        position = context.config.training.models.index(name) + 1
        console.info(f"Training {name} ({position}/{len(context.config.training.models)}) on "
                     f"{len(data.split.train_idx):,} samples, {len(data.split.folds)} folds + refit ...")
        log.info("training: %s start", name)
        result = train_base_model(context, name, data)
        save_artifact(artifact_path(context, name), result)
        metrics = store_model_results(context, name, data, result["holdout"], result["oof"],
                                      result["fit_seconds"])
        if name not in training["base_models_trained"]:
            training["base_models_trained"].append(name)
        training["model_seconds"][name] = result["fit_seconds"]
        training["in_progress"] = None
        context.checkpoint.save()
        log.info("training: %s done in %.1f s, holdout %s", name, result["fit_seconds"], metrics)
        console.info(f"  {name} done in {result['fit_seconds']:.1f} s: holdout directional AUC "
                     f"{_fmt(metrics['auc_directional'])}, one-vs-rest AUC {_fmt(metrics['auc_ovr'])}, "
                     f"log loss {_fmt(metrics['log_loss'])}")
    context.advance("training")


def run_meta_learner_phase(context: RunContext) -> None:
    """Stack on out-of-fold probabilities only; predict the holdout from the refit base models."""
    data = prepare_data(context)
    names = list(context.config.training.models)
    artifacts = {name: load_artifact(context, name) for name in names}
    rows = data.oof_rows
    stacked_oof = np.hstack([artifacts[name]["oof"][rows] for name in names])
    if np.isnan(stacked_oof).any():
        raise RuntimeError("Out-of-fold probabilities are incomplete; retrain with "
                           "'python reset_checkpoint.py --phase training'.")
    training = context.state["training"]
    training["in_progress"] = META_LEARNER
    context.checkpoint.save()
    started = time.monotonic()
    meta = make_meta_learner(context.config.seed).fit(stacked_oof, data.dataset.y[rows])
    stacked_holdout = np.hstack([artifacts[name]["holdout"] for name in names])
    holdout = meta.predict_proba(stacked_holdout)
    coefficients = meta.estimator[-1].coef_
    reliance = {name: float(np.abs(coefficients[:, 3 * i:3 * i + 3]).mean()) for i, name in enumerate(names)}
    save_artifact(artifact_path(context, META_LEARNER),
                  {"model": meta, "holdout": holdout, "base_models": names, "reliance": reliance,
                   "feature_names": data.split.kept_features, "fit_seconds": round(time.monotonic() - started, 2)})
    store.put_fact(context.connection, context.run_id, "meta_coefficients", json.dumps(reliance))
    training["meta_learner_trained"] = True
    training["in_progress"] = None
    console.info(f"Meta-learner trained on {len(rows):,} out-of-fold rows of {len(names)} models.")
    context.advance("meta_learner")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
