"""Tuning phase: a resumable hyperparameter search for each model of [tuning] models, before training.

Between the dataset and the training: the search (trainer/tuning/search.py) scores parameter sets
on the training period's out-of-fold rows, and the training phase then fits the chosen set like
any other. The checkpoint records each model's progress after every trial (what
check_checkpoint.py shows); the trials themselves live in data/tuning.db, so a kill costs at most
the trial that was running. Tuning off (trials 0) makes this phase a no-op.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import optuna

from backend import store
from trainer import console
from trainer.ml.fitting import TrainingData
from trainer.ml.metrics import evaluate
from trainer.phases.training import prepare_data
from trainer.run_context import RunContext
from trainer.tuning.search import (
    SearchResult,
    SearchSettings,
    counted_trials,
    load_study,
    open_storage,
    search,
    study_name,
    summarise,
    trial_seconds,
)
from trainer.tuning.spaces import short_name, shown

log = logging.getLogger(__name__)


def run_tuning_phase(context: RunContext) -> None:
    tuning = context.config.tuning
    if tuning.trials == 0:
        context.advance("tuning")
        return
    data = prepare_data(context)
    storage = open_storage(context.paths.tuning_database)
    try:
        _tune(context, data, storage)
    finally:
        storage.engine.dispose()  # the file is not held open after the phase (Windows locks open files)
    context.advance("tuning")


def _tune(context: RunContext, data: TrainingData, storage: optuna.storages.RDBStorage) -> None:
    tuning = context.config.tuning
    settings = {model: SearchSettings(model, tuning.trials, tuning.metric, context.config.seed,
                                      context.config.training.uniqueness_weights,
                                      context.config.training.ensemble_min_train_years, jobs=context.config.run.jobs,
                                      cluster=context.config.run.cluster)
                for model in tuning.models}
    studies = {model: load_study(storage, study_name(context.run_id, settings[model], data), tuning.metric)
               for model in tuning.models}

    def out_of_time(model: str) -> bool:
        """The budget is shared equally by the tuned models (a later model is never left without
        trials), counted from the stored trials' durations so that a resumed search continues it."""
        if tuning.minutes <= 0:
            return False
        return trial_seconds(counted_trials(studies[model])) >= tuning.minutes * 60 / len(tuning.models)

    state = context.state.setdefault("tuning", {})
    results: dict[str, SearchResult] = {}
    console.info(f"Tuning {', '.join(tuning.models)}: {tuning.trials} trials each on the training period's "
                 f"out-of-fold {tuning.metric}" + (f", at most {tuning.minutes:g} minutes" if tuning.minutes else "")
                 + f" (trials kept in {context.paths.tuning_database}).")
    with console.make_progress(console.get_console()) as progress:
        for model in tuning.models:
            before = summarise(studies[model], settings[model])
            task = progress.add_task(_description(model, before, tuning.metric), total=tuning.trials,
                                     completed=before.counted)

            def after_trial(result: SearchResult, model: str = model, task: Any = task) -> None:
                _record(context, result)
                progress.update(task, completed=result.counted, description=_description(model, result, tuning.metric))
                last = result.history[-1] if result.history else None
                log.info("tuning %s: trial %d/%d %s value %s", model, result.counted, result.planned,
                         last and last["state"], last and last["value"])

            _record(context, before)
            results[model] = search(studies[model], settings[model], data,
                                    out_of_time=lambda model=model: out_of_time(model), after_trial=after_trial)
            _record(context, results[model])
    for model, result in results.items():
        if "default_holdout" not in state[model]:
            state[model]["default_holdout"] = _default_holdout(context, data, model, tuning.metric)
            context.checkpoint.save()
        _say(result, tuning.metric)
    chosen = {model: result.best_params for model, result in results.items() if result.best_params}
    summary = {model: {**result.to_dict(), "default_holdout": state[model]["default_holdout"],
                       "importances": _importances(studies[model], context.config.seed)}
               for model, result in results.items()}
    with store.transaction(context.connection) as connection:
        store.write_rows(connection, "run_facts", [
            {"run_id": context.run_id, "key": "tuned_params", "value_json": json.dumps(chosen)},
            {"run_id": context.run_id, "key": "tuning", "value_json": json.dumps(
                {"settings": {"trials": tuning.trials, "minutes": tuning.minutes, "metric": tuning.metric},
                 "stopped_by_time": any(not result.finished for result in results.values()),
                 "models": summary})}])


def _record(context: RunContext, result: SearchResult) -> None:
    """The model's progress in the checkpoint (check_checkpoint.py reads it), saved atomically."""
    entry = context.state.setdefault("tuning", {}).setdefault(result.model, {})
    entry.update(trials_done=result.counted, trials_planned=result.planned, best_value=result.best_value,
                 default_value=result.default_value, pruned=result.pruned, seconds=result.seconds)
    if result.counted:
        entry["seconds_per_trial"] = round(result.seconds / result.counted, 2)
    context.checkpoint.save()


def _description(model: str, result: SearchResult, metric: str) -> str:
    best = "-" if result.best_value is None else f"{result.best_value:.4f}"
    return f"Tuning {model} (best {metric} {best})"


def _default_holdout(context: RunContext, data: TrainingData, model: str, metric: str) -> float | None:
    """The holdout score of the default parameters, for the report's selection-bias table only:
    fitted after the search is over, so nothing in the search ever saw a holdout row."""
    config = context.config
    fitted = data.fit(model, config.seed, data.split.train_idx, uniqueness=config.training.uniqueness_weights)
    rows = data.split.holdout_idx
    return evaluate(data.dataset.y[rows], fitted.predict_proba(data.features(rows)), data.dataset.returns[rows])[metric]


def _importances(study: optuna.Study, seed: int) -> dict[str, float] | None:
    """fANOVA importance of each parameter for the score (None with fewer than two distinct finished trials)."""
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError) as error:
        log.info("tuning: no parameter importances for %s (%s)", study.study_name, error)
        return None
    return {name: float(value) for name, value in values.items()}


def _say(result: SearchResult, metric: str) -> None:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"
    extra = f", {result.pruned} pruned" if result.pruned else ""
    extra += f", {result.failed} failed" if result.failed else ""
    stopped = "" if result.finished else f" (stopped by the time limit after {result.counted} of {result.planned})"
    chosen = ", ".join(f"{short_name(name)}={shown(value)}" for name, value in result.best_params.items())
    console.info(f"  {result.model}: {result.counted} trials{extra} in {result.seconds:.0f} s{stopped}; "
                 f"out-of-fold {metric} {fmt(result.default_value)} with the defaults, {fmt(result.best_value)} "
                 f"with the best set ({chosen})")

