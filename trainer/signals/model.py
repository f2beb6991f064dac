"""The model that makes signals: the production ensemble, or the last run's unpromoted candidate.

A model is a folder of joblib artifacts (every base model refitted on the training period, and
the ensemble's weights) plus a manifest that says what it expects: the feature list and its
order, the class order, the label settings, the run and configuration it came from, and the
thresholds and holdout figures its signals are judged against. Everything is checked before
anything is predicted, because a model applied to features it was not trained on predicts
confidently and wrongly.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from backend.features import FEATURE_NAMES
from trainer.config import LABEL_DESIGN
from trainer.ml.metrics import directional_score
from trainer.promotion.production import MANIFEST, PromotionError, current_production

MANIFEST_FORMAT = 2  # the first release's manifests had no format and its pickles cannot be loaded
CLASS_ORDER = ("SELL", "HOLD", "BUY")
ENSEMBLE = "ensemble"
SIGNAL_SHARE = 0.1  # BUY above the holdout's top tenth of directional scores, SELL below its bottom tenth


class ModelError(RuntimeError):
    """No usable model; the message says which and what to do."""


def build_manifest(connection: sqlite3.Connection, run_id: str, config: dict[str, Any], *,
                   ensemble_weights: dict[str, float], metrics: dict[str, Any], is_demo: bool,
                   source: str) -> dict[str, Any]:
    """What a model folder must say about itself (the promotion phase writes it; a candidate gets
    the same from the database). Thresholds and the holdout's promise come from the run's stored
    ensemble holdout predictions joined to their trades."""
    split = _fact(connection, run_id, "split") or {}
    config_hash = connection.execute("SELECT config_hash FROM training_runs WHERE run_id = ?",
                                     (run_id,)).fetchone()
    holdout = pd.read_sql_query(
        "SELECT p.p_sell, p.p_hold, p.p_buy, t.realised_return, t.label FROM model_predictions p JOIN trades t "
        "ON t.run_id = p.run_id AND t.symbol = p.symbol AND t.entry_date = p.entry_date "
        "WHERE p.run_id = ? AND p.model = ?", connection, params=(run_id, ENSEMBLE))
    thresholds, promise = _thresholds_and_promise(holdout)
    skipped = _fact(connection, run_id, "skipped_symbols") or {}
    universe = dict(connection.execute(
        "SELECT b.symbol, s.sector FROM backtest_results b JOIN symbols s ON s.symbol = b.symbol WHERE b.run_id = ?",
        (run_id,)).fetchall())
    for symbol in skipped:  # had prices, so they were part of the market context
        row = connection.execute("SELECT sector FROM symbols WHERE symbol = ?", (symbol,)).fetchone()
        if row is not None:
            universe.setdefault(symbol, row[0])
    return {
        "format": MANIFEST_FORMAT,
        "run_id": run_id,
        "config_hash": None if config_hash is None else config_hash[0],
        "label_design": LABEL_DESIGN,
        "class_order": list(CLASS_ORDER),
        "all_feature_names": list(FEATURE_NAMES),
        "feature_names": split.get("kept_features", []),
        "base_models": list(config["training"]["models"]),
        "ensemble_weights": ensemble_weights,
        # model -> the hyperparameters its search chose ({} without tuning: every model's defaults)
        "tuned_params": _fact(connection, run_id, "tuned_params") or {},
        "labels": {key: config["labels"][key] for key in ("horizon", "barrier_k", "vol_window", "stride")},
        "shock_sigma": config["features"]["shock_sigma"],
        "config": config,
        "metrics": metrics,
        "data_span": {"train": split.get("train"), "holdout": split.get("holdout")},
        "is_demo": is_demo,
        "source": source,
        "thresholds": thresholds,
        "holdout_promise": promise,
        "universe": dict(sorted(universe.items())),  # symbol -> sector: the symbols signals are made for
        "proxy": _fact(connection, run_id, "proxy"),  # "SPY" or "equal-weight"
    }


def _thresholds_and_promise(holdout: pd.DataFrame) -> tuple[dict[str, float], dict[str, Any]]:
    if holdout.empty:
        return {"buy": 1.0, "sell": 0.0, "share": SIGNAL_SHARE}, {}
    score = directional_score(holdout[["p_sell", "p_hold", "p_buy"]].to_numpy(dtype=float))
    buy, sell = np.quantile(score, 1.0 - SIGNAL_SHARE), np.quantile(score, SIGNAL_SHARE)
    returns = holdout["realised_return"].to_numpy(dtype=float)
    promise: dict[str, Any] = {"n_holdout": int(len(holdout))}
    for name, chosen, sign in (("buy", score >= buy, 1.0), ("sell", score <= sell, -1.0)):
        promise[name] = {"n": int(chosen.sum()), "hit_rate": float(np.mean(sign * returns[chosen] > 0)),
                         "mean_return": float(returns[chosen].mean())} if chosen.any() else None
    return {"buy": float(buy), "sell": float(sell), "share": SIGNAL_SHARE}, promise


def _fact(connection: sqlite3.Connection, run_id: str, key: str) -> Any:
    row = connection.execute("SELECT value_json FROM run_facts WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
    return None if row is None else json.loads(row[0])


@dataclass
class SignalModel:
    """A loaded, checked model: predict_proba on full FEATURE_NAMES rows gives (n, 3) SELL/HOLD/BUY."""

    manifest: dict[str, Any]
    models: dict[str, Any]  # base model name -> ClassifierModel
    selection: Any  # EnsembleSelection
    promoted: bool

    @property
    def version(self) -> str:
        return str(self.manifest["run_id"]) + ("" if self.promoted else "-candidate")

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """features: (n, len(FEATURE_NAMES)) in FEATURE_NAMES order; rows with NaN are allowed where
        the models allow them (the trees); the ensemble weights the base models' probabilities."""
        columns = [FEATURE_NAMES.index(name) for name in self.manifest["feature_names"]]
        X = np.asarray(features, dtype=np.float64)[:, columns]
        return self.selection.combine({name: model.predict_proba(X) for name, model in self.models.items()})


def load_model(folder: Path, manifest: dict[str, Any], *, promoted: bool) -> SignalModel:
    """Check the manifest against this program, then load the ensemble and its base models."""
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"The model in {folder} was made by an earlier release of this program (its manifest has "
                         "no signal format), and its model files cannot be loaded by this one. Run "
                         "run_training.py again; when the gate promotes the new model, signals can be made.")
    problems = []
    if manifest.get("label_design") != LABEL_DESIGN:
        problems.append(f"its labels are '{manifest.get('label_design')}', this program makes '{LABEL_DESIGN}'")
    if manifest.get("class_order") != list(CLASS_ORDER):
        problems.append(f"its class order is {manifest.get('class_order')}, expected {list(CLASS_ORDER)}")
    if manifest.get("all_feature_names") != list(FEATURE_NAMES):
        problems.append("it was trained on another feature set than this program computes")
    missing = [name for name in manifest.get("feature_names", []) if name not in FEATURE_NAMES]
    if missing or not manifest.get("feature_names"):
        problems.append(f"its features {missing or '(none listed)'} are not computed by this program")
    if problems:
        raise ModelError(f"The model in {folder} (run {manifest.get('run_id')}) does not fit this program: "
                         + "; ".join(problems) + ". Train again with run_training.py.")
    try:
        ensemble = joblib.load(folder / f"{ENSEMBLE}.joblib")
        models = {name: joblib.load(folder / f"{name}.joblib")["model"] for name in manifest["base_models"]
                  if ensemble["selection"].weights.get(name, 0) > 0}
    except (OSError, KeyError, EOFError, ValueError, AttributeError, ModuleNotFoundError) as error:
        raise ModelError(f"The model files in {folder} cannot be loaded ({type(error).__name__}: {error}). "
                         "Restore the folder from models/previous or train again.") from error
    if list(ensemble.get("feature_names", [])) != list(manifest["feature_names"]):
        raise ModelError(f"The manifest in {folder} lists other features than its ensemble was trained on; the "
                         "folder is inconsistent. Restore it from models/previous or train again.")
    return SignalModel(manifest, models, ensemble["selection"], promoted)


def production_model(production: Path) -> SignalModel:
    try:
        manifest = current_production(production)
    except PromotionError as error:
        raise ModelError(str(error)) from error
    if manifest is None:
        raise ModelError(f"No model has been promoted yet ({production / MANIFEST} does not exist), so there is "
                         "nothing to make signals with. Run run_training.py until the gate promotes a model, or "
                         "use --model candidate to see the last run's unpromoted model (marked NOT PROMOTED).")
    return load_model(production, manifest, promoted=True)


def candidate_model(connection: sqlite3.Connection, checkpoints: Path, state: dict[str, Any] | None) -> SignalModel:
    """The last training run's ensemble, promoted or not, from its own artifacts."""
    if not state or state.get("current_phase") != "complete":
        raise ModelError("There is no finished training run to take a candidate model from (the checkpoint "
                         f"in {checkpoints} is missing or its run has not finished). Finish a run first.")
    run_id = state["run_id"]
    row = connection.execute("SELECT config_json, is_demo, source FROM training_runs WHERE run_id = ?",
                             (run_id,)).fetchone()
    if row is None:
        raise ModelError(f"Run {run_id} is not in the database; its candidate model cannot be described.")
    config = json.loads(row[0])
    manifest = build_manifest(connection, run_id, config,
                              ensemble_weights=state["training"].get("ensemble_weights", {}),
                              metrics=state.get("evaluation", {}).get("results", {}), is_demo=bool(row[1]),
                              source=row[2])
    return load_model(checkpoints / run_id, manifest, promoted=False)
