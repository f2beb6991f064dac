"""check_checkpoint.py: what the current or last run has done, is doing and has left.

Reads only the JSON checkpoint (never the database), so it answers in well under a second even
while a run is writing, and it cannot disturb that run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer import console
from trainer.app import exit_codes
from trainer.app.run_lock import is_running
from trainer.checkpoint import CheckpointError, CheckpointManager, read_checkpoint
from trainer.paths import WorkPaths


def load_for_reading(manager: CheckpointManager, attempts: int = 5) -> dict[str, Any] | None:
    """The checkpoint, or its backup when the main file is mid-replace or damaged."""
    for _ in range(attempts):
        try:
            return read_checkpoint(manager.path)
        except FileNotFoundError:
            break
        except (CheckpointError, PermissionError):
            time.sleep(0.05)
    try:
        return read_checkpoint(manager.backup_path)
    except (FileNotFoundError, CheckpointError):
        return None


def summarise(state: dict[str, Any], running: bool) -> dict[str, Any]:
    """Derived figures: counts, remaining work, elapsed and ETA from the measured pace."""
    backtest, training = state["backtest"], state["training"]
    done = len(backtest["completed_symbols"])
    failed = backtest["failed_symbols"]
    skipped = backtest["skipped_symbols"]
    remaining = max(0, backtest["symbols_total"] - done - len(skipped) - len(failed))
    if backtest.get("in_progress") in failed:
        remaining += 1
    updated = datetime.fromisoformat(state["last_update"])
    since_update = max(0.0, (datetime.now(UTC) - updated).total_seconds())
    eta, rough = None, False
    pace = backtest.get("seconds_per_symbol")
    if state["current_phase"] in ("prices", "market", "backtest"):
        if pace is not None:
            eta = remaining * pace + _training_left(state, running, 0.0)[0]
            rough = True  # the models' share is estimated from their usual cost
    elif state["current_phase"] != "complete":
        eta, rough = _training_left(state, running, since_update)
    tuning = _tuning(state, running, since_update)
    if eta is not None and state["current_phase"] in ("prices", "market", "backtest", "dataset", "tuning"):
        eta += sum(entry["eta_seconds"] or 0.0 for entry in tuning.values())
        rough = rough or any(entry["eta_seconds"] is None for entry in tuning.values())
    return {
        "running": running,
        "phase": state["current_phase"],
        "symbols_done": done,
        "symbols_failed": len(failed),
        "symbols_skipped": len(skipped),
        "symbols_remaining": remaining,
        "symbols_total": backtest["symbols_total"],
        "samples": backtest["total_samples"],
        "models_done": len(training["base_models_trained"]),
        "models_total": training["models_total"],
        # while it runs, the time since the last save is working time too
        "elapsed_seconds": round(state.get("active_seconds", 0.0) + (since_update if running else 0.0), 1),
        "eta_seconds": (None if eta is None else round(eta, 1)) if state["current_phase"] != "complete" else 0.0,
        "eta_rough": rough,
        "seconds_since_update": round(since_update, 1),
        "tuning": tuning,
    }


def _tuning(state: dict[str, Any], running: bool, since_update: float) -> dict[str, dict[str, Any]]:
    """Per tuned model: trials done of planned, the best out-of-fold score so far and the time left
    at the measured seconds per trial (None before a trial of that model has finished)."""
    config = state.get("config", {})
    planned = config.get("tuning.trials") or 0
    if not planned:
        return {}
    progress = state.get("tuning", {})
    working = [model for model in config.get("tuning.models", []) if
               progress.get(model, {}).get("trials_done", 0) < planned]
    current = working[0] if running and state["current_phase"] == "tuning" and working else None
    result = {}
    for model in config.get("tuning.models", []):
        entry = progress.get(model, {})
        done, pace = entry.get("trials_done", 0), entry.get("seconds_per_trial")
        eta = None if pace is None else max(0.0, (planned - done) * pace - (since_update if model == current else 0.0))
        minutes = config.get("tuning.minutes") or 0
        if eta is not None and minutes:  # the time limit ends it sooner (its share per model, plus one trial)
            eta = min(eta, max(0.0, minutes * 60 / len(config.get("tuning.models") or [model])
                               - entry.get("seconds", 0.0)) + pace)
        result[model] = {"trials_done": done, "trials_planned": planned, "best_value": entry.get("best_value"),
                         "stopped_by_time": done < planned and state["current_phase"] not in (
                             "prices", "market", "backtest", "dataset", "tuning"),
                         "metric": config.get("tuning.metric"), "eta_seconds": None if eta is None else round(eta, 1)}
    return result


def _tuning_line(entry: dict[str, Any]) -> str:
    best = "-" if entry["best_value"] is None else f"{entry['best_value']:.4f}"
    left = ("done" if entry["trials_done"] >= entry["trials_planned"] else
            "stopped by the time limit" if entry["stopped_by_time"] else f"ETA {_duration(entry['eta_seconds'])}")
    return (f"{entry['trials_done']}/{entry['trials_planned']} trials, best out-of-fold {entry['metric']} {best}, "
            f"{left}")


# Seconds per 10,000 training rows for each model (4 folds + refit, 2 cores), measured on the demo
# and the real data; the ratio of the models' measured times to these scales them to the machine.
MODEL_COST = {"random_forest": 2.0, "xgboost": 6.0, "lightgbm": 4.0, "extra_trees": 2.5, "gradient_boosting": 8.0,
              "neural_network": 1.8, "logistic_regression": 1.0, "svm": 6.5}
TRAINING_SHARE = 0.8  # of the samples, before the holdout


def _training_left(state: dict[str, Any], running: bool, since_update: float) -> tuple[float, bool]:
    """Seconds the models still need, and whether that is a rough guess (no model timed yet).

    Each model's cost is its usual share (MODEL_COST) scaled by the samples and by how much slower
    or faster the models finished so far were than that; the model in progress has been working
    since the last save. The benchmark learner (lightgbm on a few features) counts half a lightgbm."""
    training = state["training"]
    names = list(state.get("config", {}).get("training.models") or MODEL_COST)
    rows = max(1.0, state["backtest"].get("total_samples", 0) * TRAINING_SHARE / 10_000)
    predicted = {name: MODEL_COST.get(name, 4.0) * rows for name in names}
    measured = {name: seconds for name, seconds in training["model_seconds"].items() if name in predicted}
    scale = sum(measured.values()) / sum(predicted[name] for name in measured) if measured else 1.0
    left = sum(predicted[name] * scale for name in names if name not in training["base_models_trained"])
    current = training.get("in_progress")
    if running and current in predicted and current not in training["base_models_trained"]:
        left -= min(predicted[current] * scale, since_update)
    if not training.get("benchmarks_trained"):
        left += 0.5 * MODEL_COST["lightgbm"] * rows * scale
    return max(left, 0.0), not measured


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown yet"
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _ensemble_line(training: dict[str, Any]) -> str:
    """'lightgbm 0.44, random_forest 0.32, ...' once the weights are chosen."""
    if not training.get("ensemble_trained"):
        return "not yet"
    weights = sorted(training.get("ensemble_weights", {}).items(), key=lambda item: -item[1])
    return "weights: " + ", ".join(f"{name} {weight:.2f}" for name, weight in weights)


def render(state: dict[str, Any], summary: dict[str, Any]) -> None:
    backtest, training = state["backtest"], state["training"]
    activity = "running" if summary["running"] else "not running"
    demo = "  [DEMO DATA]" if state.get("is_demo") else ""
    console.info(f"Run {state['run_id']}{demo} - {activity}, phase: {summary['phase']} "
                 f"(last update {summary['seconds_since_update']:.0f} s ago)")
    in_progress = f", now: {backtest['in_progress']}" if backtest.get("in_progress") else ""
    trained = training["base_models_trained"]
    model_line = (f"{summary['models_done']}/{summary['models_total']} trained"
                  + (f" ({', '.join(trained)})" if trained else "")
                  + (f", now: {training['in_progress']}" if training.get("in_progress") else ""))
    rows = [
        ("Symbols", f"{summary['symbols_done']} done, {summary['symbols_failed']} failed, "
                    f"{summary['symbols_skipped']} skipped, {summary['symbols_remaining']} remaining "
                    f"of {summary['symbols_total']}{in_progress}"),
        ("Samples", f"{summary['samples']:,}"),
        *[(f"Tuning {model}", _tuning_line(entry)) for model, entry in summary.get("tuning", {}).items()],
        ("Base models", model_line),
        ("Ensemble", _ensemble_line(training)),
        ("Benchmarks", "trained" if training.get("benchmarks_trained") else "not yet"),
        ("Evaluation", "done" if state["evaluation"]["completed"] else "not yet"),
        ("Portfolio", "simulated" if state.get("portfolio", {}).get("completed") else "not yet"),
        ("SHAP", "done" if state.get("shap", {}).get("completed") else "not yet"),
        ("Promotion", state["promotion"].get("decision") or "not decided yet"),
        ("Elapsed", _duration(summary["elapsed_seconds"])),
        ("ETA", "finished" if summary["phase"] == "complete" else _duration(summary["eta_seconds"])
         + (" (rough: from the models' usual cost, no model timed yet)" if summary.get("eta_rough")
            and summary["eta_seconds"] is not None else "")),
    ]
    if state.get("report", {}).get("path"):
        rows.append(("Report", state["report"]["path"]))
    console.print_table("Training progress", ["Item", "Status"], rows)
    for symbol, failure in backtest["failed_symbols"].items():
        console.warn(f"{symbol} failed (attempt {failure['attempts']}): {failure['reason']}")
    for symbol, reason in backtest["skipped_symbols"].items():
        console.info(f"{symbol} skipped: {reason}")


def show_status(workdir: Path | None, *, watch: bool, as_json: bool, interval: float) -> int:
    paths = WorkPaths.at(workdir)
    manager = CheckpointManager(paths.checkpoints)
    try:
        while True:
            state = load_for_reading(manager)
            damaged = state is None and (manager.path.exists() or manager.backup_path.exists())
            if state is None:
                message = (f"The checkpoint and its backup in {paths.checkpoints} are both damaged, so the progress "
                           "cannot be shown. The next 'python run_training.py' rebuilds it from the database "
                           "(finished symbols are kept, the models are retrained)." if damaged else
                           f"No checkpoint in {paths.checkpoints}: no run has started yet. "
                           "Start one with: python run_training.py --demo")
                if as_json:
                    print(json.dumps({"checkpoint": None, "damaged": damaged, "message": message}), flush=True)
                elif damaged:
                    console.warn(message)
                else:  # through the console: a path it cannot encode must not crash it
                    console.info(message)
                if damaged and not watch:
                    return exit_codes.DATA_ERROR
            else:
                summary = summarise(state, is_running(paths.checkpoints))
                if as_json:
                    # One line per document: with --watch the output is JSON Lines, one state per refresh.
                    print(json.dumps({"checkpoint": state, "summary": summary}), flush=True)
                else:
                    render(state, summary)
            if not watch:
                return 0
            time.sleep(interval)
            if not as_json:
                console.get_console().clear()
    except KeyboardInterrupt:
        return 0
