"""check_checkpoint.py's elapsed time and ETA while a model trains (issue 15, case 9: it used to
show the finished model's pace, 'ETA 0m 01s', and a frozen 'Elapsed')."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainer.app.status import summarise
from trainer.checkpoint import new_state

MODELS = ["lightgbm", "xgboost", "svm"]


def _training_state(seconds_ago: float, measured: dict[str, float]) -> dict:
    state = new_state("run", "hash", {"training.models": MODELS}, 10, len(MODELS), False)
    state.update(current_phase="training", active_seconds=100.0,
                 last_update=(datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat())
    state["backtest"].update(completed_symbols=[f"S{i}" for i in range(10)], total_samples=50_000)
    state["training"].update(base_models_trained=list(measured), model_seconds=measured, in_progress="xgboost")
    return state


def test_the_eta_counts_the_model_in_progress_and_scales_with_the_measured_models():
    """lightgbm took 40 s where its usual cost on 40,000 training rows is 16 s: everything is
    2.5x slower here. xgboost (usually 24 s, so 60 s) has worked 30 s; svm 65 s; the benchmark
    learner 20 s: 115 s left."""
    summary = summarise(_training_state(30, {"lightgbm": 40.0}), running=True)
    assert summary["eta_seconds"] == pytest.approx(115, abs=1.5) and not summary["eta_rough"]
    assert summary["elapsed_seconds"] == pytest.approx(130, abs=1.5), "elapsed keeps counting while it runs"
    later = summarise(_training_state(50, {"lightgbm": 40.0}), running=True)
    assert later["eta_seconds"] == pytest.approx(95, abs=1.5)


def test_before_any_model_is_timed_the_eta_is_marked_rough():
    summary = summarise(_training_state(0, {}), running=True)
    assert summary["eta_rough"] and summary["eta_seconds"] > 60
    stopped = summarise(_training_state(600, {}), running=False)
    assert stopped["elapsed_seconds"] == 100.0, "a stopped run's clock does not run on"


def test_tuning_shows_trials_best_and_time_left_per_model():
    """lightgbm has done 4 of 10 trials at 12 s each and its 5th has run 5 s: 67 s left; xgboost has
    not finished a trial, so its time is unknown and the whole ETA is rough."""
    identity = {"training.models": MODELS, "tuning.trials": 10, "tuning.models": ["lightgbm", "xgboost"],
                "tuning.metric": "auc_directional"}
    state = new_state("run", "hash", identity, 10, len(MODELS), False)
    state.update(current_phase="tuning", last_update=(datetime.now(UTC) - timedelta(seconds=5)).isoformat())
    state["backtest"].update(completed_symbols=[f"S{i}" for i in range(10)], total_samples=50_000)
    state["tuning"] = {"lightgbm": {"trials_done": 4, "trials_planned": 10, "best_value": 0.53,
                                    "seconds_per_trial": 12.0}}
    summary = summarise(state, running=True)
    assert summary["tuning"]["lightgbm"]["eta_seconds"] == pytest.approx(67, abs=1.5)
    assert summary["tuning"]["lightgbm"]["best_value"] == 0.53
    assert summary["tuning"]["xgboost"] == {"trials_done": 0, "trials_planned": 10, "best_value": None,
                                            "stopped_by_time": False, "metric": "auc_directional",
                                            "eta_seconds": None}
    assert summary["eta_rough"] and summary["eta_seconds"] > 67
    state["current_phase"] = "training"
    assert summarise(state, running=True)["tuning"]["xgboost"]["stopped_by_time"]


def test_without_tuning_nothing_about_it_is_shown():
    assert summarise(_training_state(0, {}), running=True)["tuning"] == {}
