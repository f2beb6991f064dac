"""Caruana greedy ensemble selection: a weighted average of the base models chosen on out-of-fold predictions.

As AutoGluon's EnsembleSelection (Caruana et al. 2004): start from an empty ensemble and, `size`
times, add (with replacement) the model whose probabilities, averaged into the ensemble so far,
score best; then keep only the prefix of picks that ends at the first occurrence of the best
score. The weights are how often each model was picked in that prefix, divided by its length.

Why this and not a stacker: the weights are non-negative and sum to one, and there are only
`size` discrete steps of 1/size, so the combination is a convex average of the members. It cannot
learn large opposite-signed coefficients that fit the noise of the out-of-fold rows the way a
meta-learner can. And it cannot score worse than the best single model on those rows: the first
pick is, by construction, the best member alone (an ensemble of one is that model), and the
best-prefix cut never keeps a trajectory whose best is below its first value. Ties are broken
without randomness (a model already in the ensemble first, then the lowest input index), so the
same predictions always give the same weights, and identical duplicate models never split weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from trainer.ml.metrics import BUY, HOLD, N_CLASSES, SELL, _auc_directional, _log_loss

METRICS = ("auc_directional", "log_loss")
_SCORERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "auc_directional": _auc_directional,
    "log_loss": _log_loss,
}
_GREATER_IS_BETTER = {"auc_directional": True, "log_loss": False}


@dataclass(frozen=True)
class EnsembleSelection:
    """The selected convex combination, how it was reached and what each member scored alone."""

    names: list[str]  # model names in input order
    weights: dict[str, float]  # name -> weight; every input name present, >= 0, summing to 1
    trajectory: list[float]  # score after each kept iteration (the best prefix), in the metric's own units
    member_scores: dict[str, float]  # each model's score alone on the same rows
    score: float  # the selected ensemble's score (== trajectory[-1])
    metric: str

    @property
    def best_member(self) -> str:
        """The member that scored best alone (the first pick), in the metric's own direction."""
        pick = max if _GREATER_IS_BETTER[self.metric] else min
        return pick(self.member_scores, key=self.member_scores.__getitem__)

    def combine(self, probabilities: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted average of the members' (n, 3) probabilities, rows renormalised to sum to one.

        Only members with a positive weight are needed (and read), so models the selection dropped
        need not be refitted or predicted; every row is normalised first, exactly as in selection.
        """
        used = [name for name in self.names if self.weights[name] > 0]
        missing = [name for name in used if name not in probabilities]
        if missing:
            raise ValueError("combine needs the probabilities of every weighted member; "
                             f"missing: {', '.join(missing)}.")
        _, stack = _stacked({name: probabilities[name] for name in used})
        weights = np.array([self.weights[name] for name in used])
        return _normalised(np.tensordot(weights, stack, axes=1))


def score(y: np.ndarray, proba: np.ndarray, metric: str, sample_weight: np.ndarray | None = None) -> float:
    """One model's metric on (y, proba): higher is better for auc_directional, lower for log_loss.

    Rows are renormalised to sum to one first, as select_ensemble does, so score() of a model
    equals its member score there. Raises ValueError when the metric is undefined on y.
    """
    _check_metric(metric)
    _, stack = _stacked({"proba": proba})
    y = _checked_labels(y, stack.shape[1])
    weights = _checked_sample_weight(sample_weight, len(y))
    _check_defined(y, weights, metric)
    return float(_SCORERS[metric](y, _normalised(stack[0]), weights)[0])  # an ensemble of one, bit for bit


def select_ensemble(probabilities: Mapping[str, np.ndarray], y: np.ndarray, *, metric: str = "auc_directional",
                    size: int = 25, sample_weight: np.ndarray | None = None) -> EnsembleSelection:
    """Greedy forward selection with replacement of `size` picks, cut to the best prefix (see the module).

    probabilities: name -> (n, 3) out-of-fold probabilities (SELL, HOLD, BUY) on the same n rows
    as y. At step s (s members so far) each candidate is tried as (sum of members + candidate) / (s + 1),
    rows renormalised; the best-scoring candidate is appended, ties going to a model already in the
    ensemble and then to the lowest input index.
    """
    _check_metric(metric)
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"Ensemble size must be an integer >= 1; got {size!r}.")
    names, stack = _stacked(probabilities)
    y = _checked_labels(y, stack.shape[1])
    weights = _checked_sample_weight(sample_weight, len(y))
    _check_defined(y, weights, metric)
    compute = _SCORERS[metric]
    sign = 1.0 if _GREATER_IS_BETTER[metric] else -1.0

    running = np.zeros(stack.shape[1:])  # sum of the members' probabilities so far
    counts = np.zeros(len(names), dtype=np.int64)
    picks: list[int] = []
    trajectory: list[float] = []
    member_scores = np.empty(0)
    for members in range(size):
        candidates = _normalised((running + stack) / (members + 1))
        scores = np.array([compute(y, candidate, weights)[0] for candidate in candidates])
        if members == 0:
            member_scores = scores  # an ensemble of one is that model: the same rows, the same arithmetic
        goodness = sign * scores
        best = np.flatnonzero(goodness == goodness.max())
        in_ensemble = best[counts[best] > 0]
        pick = int((in_ensemble if in_ensemble.size else best)[0])
        running += stack[pick]
        counts[pick] += 1
        picks.append(pick)
        trajectory.append(float(scores[pick]))

    keep = int(np.argmax(sign * np.array(trajectory))) + 1  # argmax: the first occurrence of the best
    kept = np.bincount(picks[:keep], minlength=len(names))
    return EnsembleSelection(
        names=names,
        weights={name: float(count / keep) for name, count in zip(names, kept, strict=True)},
        trajectory=trajectory[:keep],
        member_scores={name: float(value) for name, value in zip(names, member_scores, strict=True)},
        score=trajectory[keep - 1],
        metric=metric,
    )


def _check_metric(metric: str) -> None:
    if metric not in _SCORERS:
        raise ValueError(f"Unknown ensemble metric {metric!r}; choose from {', '.join(METRICS)}.")


def _normalised(proba: np.ndarray) -> np.ndarray:
    """Rows (last axis) scaled to sum to one: averaging and float rounding must not drift from a distribution."""
    return proba / proba.sum(axis=-1, keepdims=True)


def _stacked(probabilities: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Names in input order and a (models, n, 3) array of row-normalised probabilities, after validation."""
    if not probabilities:
        raise ValueError("Ensemble selection needs the probabilities of at least one model; got none.")
    names = list(probabilities)
    arrays = [np.asarray(probabilities[name], dtype=np.float64) for name in names]
    expected = arrays[0].shape
    for name, proba in zip(names, arrays, strict=True):
        if proba.ndim != 2 or proba.shape[1] != N_CLASSES or proba.shape[0] == 0:
            raise ValueError(f"Probabilities of {name!r} must be a non-empty (n, {N_CLASSES}) array with columns "
                             f"SELL, HOLD, BUY; got shape {proba.shape}.")
        if proba.shape != expected:
            raise ValueError(f"All models must predict the same rows: {names[0]!r} has shape {expected}, "
                             f"{name!r} has {proba.shape}.")
        if not np.isfinite(proba).all():
            raise ValueError(f"Probabilities of {name!r} contain NaN or infinite values.")
        if (proba < 0).any() or not (proba.sum(axis=1) > 0).all():
            raise ValueError(f"Probabilities of {name!r} must be non-negative with a positive sum in every row.")
    return names, _normalised(np.stack(arrays))


def _checked_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must be a 1-D array with one label per probability row ({n}); got shape {y.shape}.")
    if not np.isin(y, (SELL, HOLD, BUY)).all():
        raise ValueError(f"Labels must be {SELL} (SELL), {HOLD} (HOLD) or {BUY} (BUY); got {np.unique(y)}.")
    return y.astype(np.int64)


def _checked_sample_weight(sample_weight: np.ndarray | None, n: int) -> np.ndarray:
    """A (1, n) weights matrix as trainer.ml.metrics expects (ones when no sample weight is given)."""
    if sample_weight is None:
        return np.ones((1, n))
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"sample_weight must have one value per row ({n}); got shape {weights.shape}.")
    if not np.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("sample_weight must be finite and non-negative with a positive sum.")
    return weights[None, :]


def _check_defined(y: np.ndarray, weights: np.ndarray, metric: str) -> None:
    """The metric's definedness depends only on the labels and weights, so a uniform prediction tells."""
    uniform = np.full((len(y), N_CLASSES), 1.0 / N_CLASSES)
    if not np.isfinite(_SCORERS[metric](y, uniform, weights)[0]):
        need = "at least one BUY and one SELL row" if metric == "auc_directional" else "rows"
        raise ValueError(f"{metric} is undefined on these labels: it needs {need} with positive sample weight.")
