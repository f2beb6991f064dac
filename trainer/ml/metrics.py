"""Holdout metrics that tell direction from volatility, and intervals that respect overlapping labels.

One-vs-rest AUC rewards a model for knowing WHICH trades touch a barrier (volatility), which even
a random walk allows; the directional AUC (BUY vs SELL among trades that touched one) measures
direction. Samples close in time share price paths, so the confidence interval resamples blocks
of consecutive dates instead of single rows. An AUC that looks too good is an alarm, not a win.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

SELL, HOLD, BUY = 0, 1, 2
N_CLASSES = 3
LEAKAGE_AUC = 0.80  # a holdout AUC at or above this is almost certainly leakage on daily stock data
TOP_SHARE = 0.10
PROBABILITY_FLOOR = float(np.finfo(np.float64).eps)  # as sklearn: a confident miss costs ~36, not inf
METRIC_KEYS = ("n_samples", "n_directional", "auc_ovr", "auc_directional", "log_loss", "brier",
               "balanced_accuracy", "top_decile_buy_precision", "top_decile_return", "all_mean_return")
_DATE_BLOCK = 256  # dates per column block of the date-pair table (its memory: dates x this x 8 bytes)


def directional_score(proba: np.ndarray) -> np.ndarray:
    """p_buy / (p_buy + p_sell): the model's view on direction with HOLD taken out (0.5 if both 0)."""
    up, down = proba[:, BUY], proba[:, SELL]
    total = up + down
    return np.divide(up, total, out=np.full(len(total), 0.5), where=total > 0)


def evaluate(y: np.ndarray, proba: np.ndarray, returns: np.ndarray, *,
             min_directional: int = 20) -> dict[str, Any]:
    """The model_performance columns for one set of predictions (plain Python numbers or None)."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    returns = np.asarray(returns, dtype=np.float64)
    if len(y) == 0:
        raise ValueError("evaluate needs at least one sample.")
    ones = np.ones((1, len(y)))
    present = np.unique(y)
    directional = (y == BUY) | (y == SELL)
    both_directions = np.isin([BUY, SELL], y).all()
    top = np.argsort(-proba[:, BUY], kind="stable")[:max(1, int(np.ceil(TOP_SHARE * len(y))))]
    ranked = bool(np.ptp(proba[:, BUY]) > 0)  # one P(BUY) for all (the baseline) ranks nothing: no top decile
    predicted = proba.argmax(axis=1)
    return {
        "n_samples": len(y),
        "n_directional": int(directional.sum()),
        "auc_ovr": float(_auc_ovr(y, proba, ones)[0]) if present.size >= 2 else None,
        "auc_directional": (float(_auc_directional(y, proba, ones)[0])
                            if both_directions and directional.sum() >= min_directional else None),
        "log_loss": float(_log_loss(y, proba, ones)[0]),
        "brier": float(_brier(y, proba, ones)[0]),
        "balanced_accuracy": float(np.mean([np.mean(predicted[y == c] == c) for c in present])),
        "top_decile_buy_precision": float(np.mean(y[top] == BUY)) if ranked else None,
        "top_decile_return": float(np.mean(returns[top])) if ranked else None,
        "all_mean_return": float(np.mean(returns)),
    }


def class_prior_baseline(y_train: np.ndarray, n: int) -> np.ndarray:
    """The training class frequencies for every one of n rows: the score any model must beat."""
    prior = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=N_CLASSES) / len(y_train)
    return np.tile(prior, (n, 1))


def _weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of weights (k x n, one row per weighting of the samples, usually one: the
    sample weights of a point estimate): P(score_pos > score_neg), ties counted half. The
    bootstrap counts pairs per two dates instead (_resampled_auc)."""
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # groups of tied scores
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    negatives_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (negatives_below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _auc_directional(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    keep = (y == BUY) | (y == SELL)
    return _weighted_auc(directional_score(proba[keep]), y[keep] == BUY, weights[:, keep])


def _auc_ovr(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest AUC over the classes present in y (sklearn's value when all three are)."""
    return np.mean([_weighted_auc(proba[:, c], y == c, weights) for c in np.unique(y)], axis=0)


def _row_log_losses(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(proba[np.arange(len(y)), y], PROBABILITY_FLOOR, 1.0))


def _row_brier(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Multiclass Brier per row: squared distance to the one-hot label, summed over classes."""
    return ((proba - np.eye(N_CLASSES)[y]) ** 2).sum(axis=1)


def _log_loss(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    losses = _row_log_losses(y, proba)
    return weights @ losses / weights.sum(axis=1)


def _brier(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Multiclass Brier: squared distance to the one-hot label, summed over classes (0 best, 2 worst)."""
    losses = _row_brier(y, proba)
    return weights @ losses / weights.sum(axis=1)


def bootstrap_date_counts(dates: np.ndarray, *, block_days: int, reps: int,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, day): counts[r, d] is how many times resample r draws unique date d, in a circular
    block bootstrap of dates; day[i] is the index of sample i's date among the unique dates.

    Each resample strings together ceil(D / block_days) blocks of block_days consecutive unique
    dates (wrapping around) and takes every sample of each drawn date, so labels that overlap in
    time stay together. The resamples depend only on the dates, block_days, reps and seed: every
    statistic computed from the same call is paired (the same resamples for every model).
    """
    unique_dates, day = np.unique(np.asarray(dates), return_inverse=True)
    n_days = len(unique_dates)
    if block_days < 1 or reps < 1 or n_days < 2 * block_days:
        raise ValueError(f"A block bootstrap needs block_days >= 1, reps >= 1 and at least two blocks of "
                         f"dates; got block_days={block_days}, reps={reps}, {n_days} dates.")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_days, size=(reps, int(np.ceil(n_days / block_days))))
    drawn = ((starts[:, :, None] + np.arange(block_days)) % n_days).reshape(reps, -1)
    flat = (drawn + n_days * np.arange(reps)[:, None]).ravel()
    return np.bincount(flat, minlength=reps * n_days).reshape(reps, n_days), day.ravel()


def _resampled_auc(score: np.ndarray, positive: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The AUC of every resample (rows of counts), ties counted half, from pair counts per two dates.

    A resample repeats whole dates, so it holds c_d copies of every sample of date d, and its count
    of (positive, negative) pairs ranked right is the sum over date pairs of c_d * c_e * pairs[d, e]
    (pairs[d, e]: positives of date d scored above negatives of date e, ties half). That table is
    counted once (D x D), not once per resample and row: at 2,400 symbols (408,000 holdout rows,
    170 dates) the gate's bootstraps took minutes the other way. Every sum is of integers and
    halves far below 2**52, so the value is exact, the same bit for bit as resampling rows. The
    cost grows with reps x dates^2, so it loses where dates are many and rows per date few
    (measured at 1,000 resamples: 20,000 dates of 2 rows 19.8 s against 1.4 s weighting rows;
    5,000 dates of 70 rows 6.3 s against 13.3 s; a holdout of 70 symbols on 1,260 dates 0.6 s
    against 1.9 s): the gate and the track record have tens to thousands of rows per date.
    """
    n_days = counts.shape[1]
    scores = np.asarray(score, dtype=np.float64)
    if np.isnan(scores).any():  # no ranking is defined for a missing score
        return np.full(len(counts), np.nan)
    by_score = np.argsort(scores[positive], kind="stable")  # sorted queries search faster
    pos_scores, pos_days = scores[positive][by_score], day[positive][by_score]
    negative = ~positive
    order = np.lexsort((scores[negative], day[negative]))  # negatives by date, then score
    neg_scores, neg_days = scores[negative][order], day[negative][order]
    bounds = np.searchsorted(neg_days, np.arange(n_days + 1))
    right = np.zeros(len(counts))
    for first in range(0, n_days, _DATE_BLOCK):
        columns = range(first, min(first + _DATE_BLOCK, n_days))
        pairs = np.empty((n_days, len(columns)))
        for column, date in enumerate(columns):
            below = neg_scores[bounds[date]:bounds[date + 1]]  # this date's negatives, sorted
            ranked = np.searchsorted(below, pos_scores, "left") + np.searchsorted(below, pos_scores, "right")
            pairs[:, column] = np.bincount(pos_days, weights=ranked, minlength=n_days) / 2.0
        right += ((counts @ pairs) * counts[:, first:first + len(columns)]).sum(axis=1)
    total_pos = counts @ np.bincount(pos_days, minlength=n_days)
    total_neg = counts @ np.bincount(day[negative], minlength=n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / (total_pos * total_neg)


def _resampled_directional(y: np.ndarray, proba: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    keep = (y == BUY) | (y == SELL)
    return _resampled_auc(directional_score(proba[keep]), y[keep] == BUY, day[keep], counts)


def _resampled_ovr(y: np.ndarray, proba: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.mean([_resampled_auc(proba[:, c], y == c, day, counts) for c in np.unique(y)], axis=0)


def _resampled_mean(losses: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of one value per row on every resample, from each date's sum and size."""
    n_days = counts.shape[1]
    return (counts @ np.bincount(day, weights=losses, minlength=n_days)) / (counts @ np.bincount(day, minlength=n_days))


def _resampled_log_loss(y: np.ndarray, proba: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return _resampled_mean(_row_log_losses(y, proba), day, counts)


def _resampled_brier(y: np.ndarray, proba: np.ndarray, day: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return _resampled_mean(_row_brier(y, proba), day, counts)


# The metrics a block bootstrap can give, each computed on every resample at once.
_RESAMPLED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "auc_directional": _resampled_directional,
    "auc_ovr": _resampled_ovr,
    "log_loss": _resampled_log_loss,
    "brier": _resampled_brier,
}


def bootstrap_means(values: np.ndarray, dates: np.ndarray, *, block_days: int, reps: int, seed: int) -> np.ndarray:
    """The mean of one value per date (a daily excess return, a date's top-decile excess) on
    `reps` circular block-bootstrap resamples of those dates (see bootstrap_date_counts)."""
    counts, day = bootstrap_date_counts(dates, block_days=block_days, reps=reps, seed=seed)
    return _resampled_mean(np.asarray(values, dtype=np.float64), day, counts.astype(np.float64))


def paired_bootstrap(y: np.ndarray, probabilities: Mapping[str, np.ndarray], dates: np.ndarray, *,
                     metric: str = "auc_directional", block_days: int, reps: int,
                     seed: int) -> dict[str, np.ndarray]:
    """The metric of every model on the same `reps` block-bootstrap resamples (NaN where undefined),
    so that differences between models are paired: name -> array of length reps."""
    if metric not in _RESAMPLED_METRICS:
        raise ValueError(f"Unknown bootstrap metric {metric!r}; choose from {', '.join(_RESAMPLED_METRICS)}.")
    y = np.asarray(y, dtype=np.int64)
    compute = _RESAMPLED_METRICS[metric]
    counts, day = bootstrap_date_counts(dates, block_days=block_days, reps=reps, seed=seed)
    counts = counts.astype(np.float64)  # for the matrix products; integers, so still exact
    return {name: compute(y, np.asarray(proba, dtype=np.float64), day, counts)
            for name, proba in probabilities.items()}


def block_bootstrap_distribution(y: np.ndarray, proba: np.ndarray, dates: np.ndarray, *,
                                 metric: str = "auc_directional", block_days: int, reps: int,
                                 seed: int) -> np.ndarray:
    """The metric on `reps` circular block-bootstrap resamples of the unique dates (see
    bootstrap_date_counts); resamples in which it is undefined (a class missing from every
    drawn date) are left out. Two models scored with the same seed see the same resamples."""
    if metric not in _RESAMPLED_METRICS:
        raise ValueError(f"Unknown bootstrap metric {metric!r}; choose from {', '.join(_RESAMPLED_METRICS)}.")
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    whole = np.zeros(len(y), dtype=np.int64), np.ones((1, 1))  # every row once: one date drawn once
    if np.isnan(proba).any():
        raise ValueError(f"{metric} needs a probability for every sample; some are missing (NaN).")
    if not np.isfinite(_RESAMPLED_METRICS[metric](y, proba, *whole)[0]):
        raise ValueError(f"{metric} is undefined on these samples (a class it needs is missing).")
    result = paired_bootstrap(y, {"model": proba}, dates, metric=metric, block_days=block_days, reps=reps,
                              seed=seed)["model"]
    return result[np.isfinite(result)]


def within_date_top_excess(score: np.ndarray, returns: np.ndarray, dates: np.ndarray,
                           share: float = TOP_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(unique dates, excess per date): on each date, the mean realised return of the top `share` of
    that date's samples ranked by score (at least one) minus the mean of all that date's samples.

    Ranking within a date compares stocks on the same market day, so what a random pick of dates
    would earn (a pooled top decile mostly picks dates) cancels out."""
    dates = np.asarray(dates)
    score, returns = np.asarray(score, dtype=np.float64), np.asarray(returns, dtype=np.float64)
    order = np.lexsort((-score, dates))  # by date, then best score first (stable for ties)
    unique, starts, counts = np.unique(dates[order], return_index=True, return_counts=True)
    ranked = returns[order]
    position = np.arange(len(order)) - np.repeat(starts, counts)
    top = position < np.repeat(np.maximum(1, np.ceil(share * counts)).astype(int), counts)
    sums = np.add.reduceat(ranked, starts)
    top_sums = np.add.reduceat(np.where(top, ranked, 0.0), starts)
    top_counts = np.add.reduceat(top.astype(np.float64), starts)
    return unique, top_sums / top_counts - sums / counts


def dates_spanning(dates: np.ndarray, business_days: int) -> int:
    """How many consecutive unique sample dates cover at least `business_days` trading days.

    Samples are taken every `stride` days, so a block of `horizon` sample dates would span
    horizon x stride trading days; blocks must span the label horizon in trading days, no more.
    """
    unique = np.unique(np.asarray(dates, dtype="datetime64[D]"))
    if unique.size < 2:
        return 1
    typical_gap = max(1.0, float(np.median(np.busday_count(unique[:-1], unique[1:]))))
    return max(1, int(np.ceil(business_days / typical_gap)))


def block_bootstrap_ci(y: np.ndarray, proba: np.ndarray, dates: np.ndarray, *,
                       metric: str = "auc_directional", block_days: int, reps: int, confidence: float,
                       seed: int) -> tuple[float, float]:
    """Percentile interval of the metric under a block bootstrap over dates (see the distribution)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1; got {confidence}.")
    values = block_bootstrap_distribution(y, proba, dates, metric=metric, block_days=block_days,
                                          reps=reps, seed=seed)
    if values.size < reps / 2:
        raise ValueError(f"{metric} was undefined in {reps - values.size} of {reps} resamples: "
                         "too few samples of some class for an interval.")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def suspicious_metrics(metrics: Mapping[str, Any], threshold: float = LEAKAGE_AUC) -> list[str]:
    """One warning per AUC at or above threshold (or as far below 0.5: a perfectly inverted model)."""
    warnings = []
    for key, value in metrics.items():
        if not key.startswith("auc") or value is None:
            continue
        if value >= threshold or value <= 1.0 - threshold:
            warnings.append(f"{key} = {value:.3f} is beyond the leakage alarm ({threshold:.2f}): this is "
                            "almost certainly leakage (a feature or a split that sees the label's "
                            "future), not skill. Check features and split before trusting any result.")
    return warnings


def segment_metrics(y: np.ndarray, proba: np.ndarray, returns: np.ndarray, segments: np.ndarray,
                    min_samples: int) -> dict[str, dict[str, Any]]:
    """evaluate() per segment (regime, sector) with at least min_samples rows; None segments skipped."""
    segments = np.asarray(segments, dtype=object)
    y, proba, returns = np.asarray(y), np.asarray(proba), np.asarray(returns)
    labelled = np.not_equal(segments, None)
    results = {}
    for segment in sorted(set(segments[labelled].tolist())):
        rows = segments == segment
        if rows.sum() >= min_samples:
            results[segment] = evaluate(y[rows], proba[rows], returns[rows])
    return results
