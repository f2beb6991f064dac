"""Greedy ensemble selection on hand-made predictions: never worse than the best member, deterministic, convex."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.ml.ensemble_selection import METRICS, EnsembleSelection, score, select_ensemble
from trainer.ml.metrics import evaluate

BETTER = {"auc_directional": np.greater, "log_loss": np.less}


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice([0, 1, 2], n, p=[0.3, 0.4, 0.3])


def informative(y: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Softmax of strength x one-hot(label) plus unit Gaussian noise: larger strength, better model."""
    return softmax(strength * np.eye(3)[y] + rng.normal(size=(len(y), 3)))


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return softmax(rng.normal(size=(n, 3)))


def check_convex(result: EnsembleSelection, names: list[str]) -> None:
    assert result.names == names and list(result.weights) == names
    assert all(weight >= 0 for weight in result.weights.values())
    assert sum(result.weights.values()) == pytest.approx(1.0)
    # Weights are pick counts over the kept prefix.
    counts = np.array(list(result.weights.values())) * len(result.trajectory)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)


@pytest.mark.parametrize("metric", METRICS)
def test_first_pick_is_the_best_single_model(metric: str) -> None:
    rng = np.random.default_rng(1)
    y = labels(400, rng)
    probabilities = {"weak": informative(y, 0.3, rng), "strong": informative(y, 1.5, rng),
                     "noise": noise(len(y), rng), "medium": informative(y, 0.8, rng)}
    alone = {name: score(y, proba, metric) for name, proba in probabilities.items()}
    best = "strong"
    assert all(BETTER[metric](alone[best], value) for name, value in alone.items() if name != best)
    first = select_ensemble(probabilities, y, metric=metric, size=1)
    assert first.weights == {"weak": 0.0, "strong": 1.0, "noise": 0.0, "medium": 0.0}
    assert first.trajectory == [first.score] and first.score == alone[best]
    full = select_ensemble(probabilities, y, metric=metric)
    assert full.member_scores == alone
    assert full.trajectory[0] == alone[best]
    assert full.weights[best] > 0 and full.best_member == best
    check_convex(full, list(probabilities))


@pytest.mark.parametrize("metric", METRICS)
def test_never_worse_than_the_best_member(metric: str) -> None:
    improved = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        y = labels(int(rng.integers(60, 300)), rng)
        probabilities = {f"m{i}": (informative(y, rng.uniform(0.2, 1.5), rng) if i % 2 else noise(len(y), rng))
                         for i in range(5)}
        result = select_ensemble(probabilities, y, metric=metric, size=int(rng.integers(1, 30)))
        check_convex(result, list(probabilities))
        best_member = (max if metric == "auc_directional" else min)(result.member_scores.values())
        assert not BETTER[metric](best_member, result.score), seed
        improved += BETTER[metric](result.score, best_member)
        assert result.score == result.trajectory[-1]
        assert result.score == pytest.approx(score(y, result.combine(probabilities), metric), abs=1e-9)
        assert result.member_scores == {name: score(y, proba, metric) for name, proba in probabilities.items()}
    assert improved >= 25  # averaging informative models usually helps: the test is not vacuous


@pytest.mark.parametrize("metric", METRICS)
def test_dominated_noise_model_gets_no_weight(metric: str) -> None:
    rng = np.random.default_rng(7)
    y = labels(300, rng)
    # The good model ranks every BUY above every SELL (directional AUC 1, which nothing can beat) and
    # puts 0.5-0.7 on the true class, more than noise does on average: mixing in any share of noise
    # raises the log loss (the mean log loss is convex in the share, with a positive slope at 0).
    confidence = rng.uniform(0.5, 0.7, len(y))
    good = np.where(np.eye(3, dtype=bool)[y], confidence[:, None], ((1 - confidence) / 2)[:, None])
    bad = noise(len(y), rng)
    true_class = np.arange(len(y))
    assert np.mean((bad[true_class, y] - good[true_class, y]) / good[true_class, y]) < 0
    result = select_ensemble({"noise": bad, "good": good}, y, metric=metric)
    assert result.weights == {"noise": 0.0, "good": 1.0}
    assert result.trajectory == [result.member_scores["good"]]


def complementary(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two models, each knowing one half of the rows and guessing on the other."""
    half = np.arange(len(y)) < len(y) // 2
    first = np.where(half[:, None], informative(y, 2.0, rng), noise(len(y), rng))
    second = np.where(half[:, None], noise(len(y), rng), informative(y, 2.0, rng))
    return first, second


@pytest.mark.parametrize("metric", METRICS)
def test_complementary_models_beat_both(metric: str) -> None:
    rng = np.random.default_rng(11)
    y = labels(600, rng)
    first, second = complementary(y, rng)
    result = select_ensemble({"first": first, "second": second}, y, metric=metric)
    assert result.weights["first"] > 0 and result.weights["second"] > 0
    for member in result.member_scores.values():
        assert BETTER[metric](result.score, member)
    assert result.score == pytest.approx(score(y, result.combine({"first": first, "second": second}), metric))


@pytest.mark.parametrize("metric", METRICS)
def test_best_prefix_cuts_a_worse_tail(metric: str) -> None:
    rng = np.random.default_rng(11)
    y = labels(600, rng)
    first, second = complementary(y, rng)
    even = score(y, (first + second) / 2, metric)
    # Precondition: a third pick (2/3 - 1/3 either way) is worse than the even mix, so the greedy
    # trajectory of size 3 ends worse than its second step and the best prefix drops that step.
    for lopsided in ((2 * first + second) / 3, (first + 2 * second) / 3):
        assert BETTER[metric](even, score(y, lopsided, metric))
    result = select_ensemble({"first": first, "second": second}, y, metric=metric, size=3)
    assert len(result.trajectory) == 2 and result.weights == {"first": 0.5, "second": 0.5}
    assert result.score == pytest.approx(even)
    for size in (1, 2, 5, 25):
        trajectory = np.array(select_ensemble({"first": first, "second": second}, y, metric=metric,
                                              size=size).trajectory)
        assert len(trajectory) <= size
        assert BETTER[metric](trajectory[-1], trajectory[:-1]).all()  # the last is the first best


def test_duplicates_and_repeat_calls_are_deterministic() -> None:
    rng = np.random.default_rng(5)
    y = labels(300, rng)
    strong, other = informative(y, 1.2, rng), informative(y, 0.9, rng)
    probabilities = {"copy_a": strong, "other": other, "copy_b": strong.copy()}
    for metric in METRICS:
        first = select_ensemble(probabilities, y, metric=metric)
        again = select_ensemble(probabilities, y, metric=metric)
        assert first == again
        assert first.weights["copy_b"] == 0.0 and first.weights["copy_a"] > 0  # the lowest index, never split
        swapped = select_ensemble({"copy_b": strong.copy(), "other": other, "copy_a": strong}, y, metric=metric)
        assert swapped.weights["copy_a"] == 0.0 and swapped.weights["copy_b"] == first.weights["copy_a"]


def reference_selection(probabilities: dict[str, np.ndarray], y: np.ndarray, size: int,
                        prefer_members: bool = True) -> dict[str, float]:
    """The specification written plainly with score(): AUC, ties to a member, then the lowest index; best prefix."""
    names = list(probabilities)
    chosen: list[int] = []
    trajectory: list[float] = []
    for _ in range(size):
        scores = [score(y, (sum(probabilities[names[k]] for k in chosen) + probabilities[name]) / (len(chosen) + 1),
                        "auc_directional") for name in names]
        tied = [j for j, value in enumerate(scores) if value == max(scores)]
        members = [j for j in tied if j in chosen]
        chosen.append((members if members and prefer_members else tied)[0])
        trajectory.append(max(scores))
    kept = chosen[:trajectory.index(max(trajectory)) + 1]
    return {name: kept.count(j) / len(kept) for j, name in enumerate(names)}


def test_matches_the_plain_specification_including_ties() -> None:
    # Eight rows and a rank metric: candidates often tie, so the tie rules decide many picks.
    rule_mattered = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        y = np.array([0, 0, 0, 2, 2, 2, 1, 1])
        probabilities = {f"m{i}": rng.dirichlet([1, 1, 1], len(y)) for i in range(4)}
        result = select_ensemble(probabilities, y, size=6)
        assert result.weights == reference_selection(probabilities, y, 6), seed
        rule_mattered += result.weights != reference_selection(probabilities, y, 6, prefer_members=False)
    assert rule_mattered > 0  # the preference for members is exercised, not just the lowest index


def test_combine_reproduces_the_selection_average() -> None:
    rng = np.random.default_rng(8)
    y = labels(250, rng)
    probabilities = {f"m{i}": informative(y, 0.4 + 0.3 * i, rng) for i in range(4)}
    probabilities["unnormalised"] = 3.0 * informative(y, 1.0, rng)  # rows summing to 3 are renormalised
    result = select_ensemble(probabilities, y, metric="log_loss", size=10)
    combined = result.combine(probabilities)
    np.testing.assert_allclose(combined.sum(axis=1), 1.0)
    expected = sum(weight * probabilities[name] / probabilities[name].sum(axis=1, keepdims=True)
                   for name, weight in result.weights.items())
    np.testing.assert_allclose(combined, expected)
    assert score(y, combined, "log_loss") == pytest.approx(result.score, rel=1e-12)
    # Models with no weight need not be given.
    used = {name: proba for name, proba in probabilities.items() if result.weights[name] > 0}
    assert len(used) < len(probabilities)
    np.testing.assert_array_equal(result.combine(used), combined)
    missing = next(iter(used))
    with pytest.raises(ValueError, match=f"missing: {missing}"):
        result.combine({name: proba for name, proba in used.items() if name != missing})


def test_score_agrees_with_evaluate_and_sample_weight_selects_rows() -> None:
    rng = np.random.default_rng(9)
    y = labels(400, rng)
    probabilities = {f"m{i}": informative(y, 0.3 + 0.4 * i, rng) for i in range(3)}
    metrics = evaluate(y, probabilities["m1"], np.zeros(len(y)))
    assert score(y, probabilities["m1"], "log_loss") == pytest.approx(metrics["log_loss"])
    assert score(y, probabilities["m1"], "auc_directional") == pytest.approx(metrics["auc_directional"])
    keep = rng.random(len(y)) < 0.5
    for metric in METRICS:
        weighted = select_ensemble(probabilities, y, metric=metric, sample_weight=keep.astype(float))
        subset = select_ensemble({name: proba[keep] for name, proba in probabilities.items()}, y[keep], metric=metric)
        assert weighted.weights == subset.weights
        assert weighted.score == pytest.approx(subset.score)


def test_bad_inputs() -> None:
    rng = np.random.default_rng(2)
    y = labels(100, rng)
    good = {"a": informative(y, 1.0, rng), "b": noise(len(y), rng)}
    with pytest.raises(ValueError, match="Unknown ensemble metric 'brier'"):
        select_ensemble(good, y, metric="brier")
    with pytest.raises(ValueError, match="Unknown ensemble metric"):
        score(y, good["a"], "accuracy")
    with pytest.raises(ValueError, match="at least one model"):
        select_ensemble({}, y)
    with pytest.raises(ValueError, match="same rows"):
        select_ensemble({"a": good["a"], "b": good["b"][:-1]}, y)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        select_ensemble({"a": good["a"][:, :2]}, y)
    with pytest.raises(ValueError, match="one label per probability row"):
        select_ensemble(good, y[:-1])
    with pytest.raises(ValueError, match="Labels must be"):
        select_ensemble(good, np.where(y == 2, 3, y))
    nan = good["b"].copy()
    nan[7, 1] = np.nan
    with pytest.raises(ValueError, match="'b' contain NaN"):
        select_ensemble({"a": good["a"], "b": nan}, y)
    with pytest.raises(ValueError, match="non-negative"):
        select_ensemble({"a": good["a"] - 0.5}, y)
    for size in (0, -3, 2.5):
        with pytest.raises(ValueError, match="size must be an integer >= 1"):
            select_ensemble(good, y, size=size)
    no_buy = np.where(y == 2, 1, y)
    with pytest.raises(ValueError, match="auc_directional is undefined.*BUY and one SELL"):
        select_ensemble(good, no_buy)
    with pytest.raises(ValueError, match="auc_directional is undefined"):
        score(no_buy, good["a"], "auc_directional")
    assert np.isfinite(select_ensemble(good, no_buy, metric="log_loss").score)  # log loss needs no direction
    only_buy_weighted = np.where(y == 2, 1.0, 0.0)
    with pytest.raises(ValueError, match="auc_directional is undefined"):
        select_ensemble(good, y, sample_weight=only_buy_weighted)
    with pytest.raises(ValueError, match="sample_weight"):
        select_ensemble(good, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="sample_weight"):
        select_ensemble(good, y, sample_weight=np.ones(3))
