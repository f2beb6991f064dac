"""Evaluation phase: holdout metrics of every base model, the ensemble, the two benchmarks and a
class-prior baseline, overall, per market regime and per sector; the leakage alarm is raised here
first."""

from __future__ import annotations

import logging

import numpy as np

from backend import store
from trainer import console
from trainer.ml.metrics import class_prior_baseline, segment_metrics, suspicious_metrics
from trainer.phases.training import (
    BENCHMARK_RULE,
    BENCHMARK_VOL_ONLY,
    ENSEMBLE,
    TrainingData,
    load_artifact,
    prepare_data,
    store_model_results,
)
from trainer.run_context import RunContext

log = logging.getLogger(__name__)

BASELINE = "baseline"
STORED_DURING_TRAINING = (BENCHMARK_VOL_ONLY, BENCHMARK_RULE)
MIN_SEGMENT_SAMPLES = 30


def holdout_probabilities(context: RunContext, data: TrainingData) -> dict[str, np.ndarray]:
    """Holdout probabilities of every base model, the ensemble, the benchmarks and the class-prior
    baseline."""
    names = [*context.config.training.models, ENSEMBLE, *STORED_DURING_TRAINING]
    probabilities = {name: load_artifact(context, name)["holdout"] for name in names}
    train_labels = data.dataset.y[data.split.train_idx]
    probabilities[BASELINE] = class_prior_baseline(train_labels, len(data.split.holdout_idx))
    return probabilities


def run_evaluation_phase(context: RunContext) -> None:
    data = prepare_data(context)
    probabilities = holdout_probabilities(context, data)
    rows = data.split.holdout_idx
    dataset = data.dataset
    regimes = np.array([r if isinstance(r, str) else "unknown" for r in dataset.regimes[rows]], dtype=object)
    regime_rows, sector_rows = [], []
    results = {}
    for name, proba in probabilities.items():
        if name in (ENSEMBLE, BASELINE):
            results[name] = store_model_results(context, name, data, proba, None, None)
        else:
            results[name] = _stored_holdout(context, name)
        for segment, metrics in segment_metrics(dataset.y[rows], proba, dataset.returns[rows], regimes,
                                                MIN_SEGMENT_SAMPLES).items():
            regime_rows.append({"run_id": context.run_id, "model": name, "scope": "regime",
                                "segment": str(segment), **metrics, "fit_seconds": None})
        for segment, metrics in segment_metrics(dataset.y[rows], proba, dataset.returns[rows],
                                                dataset.sectors[rows], MIN_SEGMENT_SAMPLES).items():
            sector_rows.append({"run_id": context.run_id, "model": name, "sector": str(segment), **metrics})
    with store.transaction(context.connection) as connection:
        connection.execute("DELETE FROM model_performance WHERE run_id = ? AND scope = 'regime'",
                           (context.run_id,))
        connection.execute("DELETE FROM sector_performance WHERE run_id = ?", (context.run_id,))
        store.write_rows(connection, "model_performance", regime_rows)
        store.write_rows(connection, "sector_performance", sector_rows)
    alarms = [f"{name}: {line}" for name, metrics in results.items()
              for line in suspicious_metrics({"model": name, **metrics}, context.config.gate.leakage_auc)]
    for line in alarms:
        console.error(line)
        log.warning("leakage alarm: %s", line)
    context.state["evaluation"] = {"completed": True, "results": {
        name: {key: metrics[key] for key in ("auc_directional", "auc_ovr", "log_loss")}
        for name, metrics in results.items()}, "leakage_alarms": alarms}
    context.advance("evaluation")


def _stored_holdout(context: RunContext, name: str) -> dict:
    cursor = context.connection.execute(
        "SELECT * FROM model_performance WHERE run_id = ? AND model = ? AND scope = 'holdout' AND segment = 'all'",
        (context.run_id, name))
    columns = [column[0] for column in cursor.description]
    return dict(zip(columns, cursor.fetchone(), strict=True))
