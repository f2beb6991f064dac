"""Training phases: the eight base models one by one, the weighted ensemble, then the benchmarks.

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
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from backend import store
from trainer import console
from trainer.crash_points import crash_point
from trainer.ml.benchmarks import VOLATILITY_FEATURES, choose_rule
from trainer.ml.ensemble_selection import select_ensemble
from trainer.ml.fitting import FitTask, TrainingData, fitted_in_order, load_training_data
from trainer.ml.metrics import evaluate
from trainer.ml.models import ClassifierModel
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

ENSEMBLE = "ensemble"
BENCHMARK_VOL_ONLY = "benchmark_vol_only"
BENCHMARK_RULE = "benchmark_rule"
BENCHMARK_LEARNER = "lightgbm"  # the learner of the volatility-only benchmark


def prepare_data(context: RunContext) -> TrainingData:
    """All samples and the split (a pure function of config and data, so resumes agree).

    Read once per process: from the dataset phase on, no phase changes the samples, so every phase
    shares one copy (each read cost 0.4 s on the 70 real symbols, seven times a run). Its arrays
    are read-only, so a phase that tried to change them would fail at once instead of leaking
    into the next."""
    data = context.derived.get("training_data")
    if data is None:
        data = load_training_data(context.connection, context.run_id, context.config)
        for values in vars(data.dataset).values():
            if isinstance(values, np.ndarray):
                values.flags.writeable = False
        context.derived["training_data"] = data
    return data


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
    try:
        joblib.dump(payload, temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError:  # a full disk: no half-written temp file is left behind
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, path)


def load_artifact(context: RunContext, name: str) -> dict[str, Any]:
    return joblib.load(artifact_path(context, name))


def fold_importance(model: ClassifierModel, feature_names: list[str]) -> dict[str, float] | None:
    estimator = model.explainable_estimator()
    if estimator is None or not hasattr(estimator, "feature_importances_"):
        return None
    return {name: float(value) for name, value in zip(feature_names, estimator.feature_importances_, strict=True)}


def train_base_model(context: RunContext, name: str, data: TrainingData, *, columns: np.ndarray | None = None,
                     label: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """OOF over the folds, refit on the training period, holdout probabilities (all prior-corrected).
    columns: a subset of the dataset's columns (the volatility-only benchmark); label: console name;
    params: tuned hyperparameters (None: the defaults). The folds and the refit are independent:
    with --jobs they are fitted side by side, and collected here in order."""
    seed, uniqueness = context.config.seed, context.config.training.uniqueness_weights
    names = data.split.kept_features if columns is None else [data.dataset.feature_names[c] for c in columns]
    oof = np.full((len(data.dataset), 3), np.nan)
    importances, stopped = [], []
    started = time.monotonic()
    folds = data.split.folds
    tasks = [FitTask(name, seed, train_rows, val_rows, uniqueness, columns, params) for train_rows, val_rows in folds]
    tasks.append(FitTask(name, seed, data.split.train_idx, data.split.holdout_idx, uniqueness, columns, params))
    fitted = fitted_in_order(data, tasks, context.config.run.jobs, context.config.run.cluster)
    for number, (_, val_rows) in enumerate(folds, start=1):
        model, oof[val_rows], seconds = next(fitted)
        crash_point("training.fold_fitted")
        importances.append(fold_importance(model, names))
        stopped.append(model.stopped_at_)
        console.info(f"  {label or name}: fold {number}/{len(folds)} in {seconds:.1f} s")
    refit, holdout, _ = next(fitted)
    stopped.append(refit.stopped_at_)
    return {"model": refit, "oof": oof, "holdout": holdout, "feature_names": names, "params": params or {},
            "rows_fitted": refit.rows_fitted_, "tree_rows": refit.tree_rows_,
            "fold_importance": importances if all(i is not None for i in importances) else None,
            "stopped_at": stopped, "fit_seconds": round(time.monotonic() - started, 2)}


def store_model_results(context: RunContext, name: str, data: TrainingData, holdout: np.ndarray,
                        oof: np.ndarray | None, fit_seconds: float | None) -> dict[str, Any]:
    """Holdout (and out-of-fold, over the voting folds) metrics plus holdout predictions of one
    model, in one transaction."""
    dataset, rows = data.dataset, data.split.holdout_idx
    metrics = evaluate(dataset.y[rows], holdout, dataset.returns[rows])
    performance = [{"run_id": context.run_id, "model": name, "scope": "holdout", "segment": "all",
                    **metrics, "fit_seconds": fit_seconds}]
    if oof is not None:
        oof_rows = data.voting_rows(context.config.training.ensemble_min_train_years)
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


def record_rows_used(context: RunContext, name: str, rows_fitted: tuple[int, int] | None,
                     tree_rows: tuple[int, int] | None) -> None:
    """Run facts the report states: row_caps (model -> [rows its refit used, training rows], for a
    model that a row cap thinned) and tree_rows (forest -> [rows each tree of its refit drew,
    training rows]). A model refit without either is taken out of that fact again."""
    if rows_fitted is not None:
        console.info(f"  {name} was fitted on {rows_fitted[0]:,} of {rows_fitted[1]:,} training rows, evenly "
                     "spaced in time (its row cap).")
    for key, rows in (("row_caps", rows_fitted), ("tree_rows", tree_rows)):
        entries = json.loads(store.get_fact(context.connection, context.run_id, key) or "{}")
        if rows is None:
            entries.pop(name, None)
        else:
            entries[name] = list(rows)
        store.put_fact(context.connection, context.run_id, key, json.dumps(entries))


def tuned_params(context: RunContext) -> dict[str, dict[str, Any]]:
    """model -> the hyperparameters the tuning phase chose (empty without tuning)."""
    stored = store.get_fact(context.connection, context.run_id, "tuned_params")
    return json.loads(stored) if stored else {}


def run_base_models_phase(context: RunContext) -> None:
    data = prepare_data(context)
    training = context.state["training"]
    tuned = tuned_params(context)
    for name in context.config.training.models:
        if name in training["base_models_trained"] and artifact_path(context, name).exists():
            continue
        training["in_progress"] = name
        context.checkpoint.save()
        position = context.config.training.models.index(name) + 1
        console.info(f"Training {name} ({position}/{len(context.config.training.models)}) on "
                     f"{len(data.split.train_idx):,} samples, {len(data.split.folds)} folds + refit"
                     f"{' with tuned parameters' if name in tuned else ''} ...")
        log.info("training: %s start (parameters %s)", name, tuned.get(name, "default"))
        result = train_base_model(context, name, data, params=tuned.get(name))
        save_artifact(artifact_path(context, name), result)
        metrics = store_model_results(context, name, data, result["holdout"], result["oof"],
                                      result["fit_seconds"])
        log.info("training: %s stopped at %s (rounds/epochs per fold and refit)", name, result["stopped_at"])
        record_rows_used(context, name, result["rows_fitted"], result["tree_rows"])
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


def run_ensemble_phase(context: RunContext) -> None:
    """Choose non-negative weights summing to one over the base models (Caruana selection with
    replacement and best prefix) on the voting folds' out-of-fold predictions; the holdout
    prediction is the same weighted average of the refit models' holdout probabilities."""
    data = prepare_data(context)
    training_config = context.config.training
    names = list(training_config.models)
    artifacts = {name: load_artifact(context, name) for name in names}
    rows = data.voting_rows(training_config.ensemble_min_train_years)
    oof = {name: artifacts[name]["oof"][rows] for name in names}
    if any(np.isnan(values).any() for values in oof.values()):
        raise RuntimeError("Out-of-fold probabilities are incomplete; retrain with "
                           "'python reset_checkpoint.py --phase training'.")
    training = context.state["training"]
    training["in_progress"] = ENSEMBLE
    context.checkpoint.save()
    started = time.monotonic()
    selection = select_ensemble(oof, data.dataset.y[rows], metric=training_config.ensemble_metric,
                                size=training_config.ensemble_size)
    holdout = selection.combine({name: artifacts[name]["holdout"] for name in names})
    folds = [number + 1 for number in data.voting_folds(training_config.ensemble_min_train_years)]
    summary = {"weights": selection.weights, "metric": selection.metric, "oof_score": selection.score,
               "member_scores": selection.member_scores, "trajectory": selection.trajectory,
               "voting_folds": folds, "voting_rows": int(rows.size)}
    save_artifact(artifact_path(context, ENSEMBLE),
                  {"selection": selection, "holdout": holdout, "base_models": names, **summary,
                   "feature_names": data.split.kept_features, "fit_seconds": round(time.monotonic() - started, 2)})
    store.put_fact(context.connection, context.run_id, "ensemble", json.dumps(summary))
    training["ensemble_trained"] = True
    training["ensemble_weights"] = {name: weight for name, weight in selection.weights.items() if weight > 0}
    training["in_progress"] = None
    weights = ", ".join(f"{name} {weight:.2f}" for name, weight in
                        sorted(training["ensemble_weights"].items(), key=lambda item: -item[1]))
    best = selection.best_member
    console.info(f"Ensemble chosen on {rows.size:,} out-of-fold rows (folds {', '.join(map(str, folds))}): "
                 f"{weights}; OOF {selection.metric} {selection.score:.4f} (best member {best} "
                 f"{selection.member_scores[best]:.4f}).")
    context.advance("ensemble")


def run_benchmarks_phase(context: RunContext) -> None:
    """What a trivial model scores on the same split: the benchmark learner on the volatility
    features alone (what barrier geometry and volatility can fake) and the best one-feature rule
    chosen on the voting out-of-fold rows. Both are stored like models."""
    data = prepare_data(context)
    training = context.state["training"]
    training["in_progress"] = "benchmarks"
    context.checkpoint.save()
    columns = np.array([position for position in data.split.kept_columns
                        if data.dataset.feature_names[position] in VOLATILITY_FEATURES])
    console.info(f"Benchmarks: {BENCHMARK_LEARNER} on {len(columns)} volatility features, and the best "
                 "one-feature rule ...")
    vol_only = train_base_model(context, BENCHMARK_LEARNER, data, columns=columns, label=BENCHMARK_VOL_ONLY)
    save_artifact(artifact_path(context, BENCHMARK_VOL_ONLY), vol_only)
    store_model_results(context, BENCHMARK_VOL_ONLY, data, vol_only["holdout"], vol_only["oof"],
                        vol_only["fit_seconds"])
    rows = data.voting_rows(context.config.training.ensemble_min_train_years)
    dataset, train = data.dataset, data.split.train_idx
    rule = choose_rule(data.features(rows), dataset.y[rows], data.split.kept_features,
                       reference=data.features(train), y_reference=dataset.y[train])
    column = data.split.kept_features.index(rule.feature)
    oof = np.full((len(dataset), 3), np.nan)
    oof[data.oof_rows] = rule.predict_proba(data.features(data.oof_rows)[:, column])
    holdout = rule.predict_proba(data.features(data.split.holdout_idx)[:, column])
    save_artifact(artifact_path(context, BENCHMARK_RULE), {"model": rule, "oof": oof, "holdout": holdout})
    store_model_results(context, BENCHMARK_RULE, data, holdout, oof, None)
    store.put_fact(context.connection, context.run_id, "benchmark_rule", json.dumps(rule.describe()))
    training["benchmarks_trained"] = True
    training["in_progress"] = None
    console.info(f"  one-feature rule: {rule.describe()['text']}")
    context.advance("benchmarks")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
