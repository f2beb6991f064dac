"""Average uniqueness against a brute-force count over business days, and class-balanced training weights."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trainer.ml.sample_weights import average_uniqueness, training_weights

MONDAY = np.datetime64("2024-01-01", "D")  # a Monday


def brute_force_uniqueness(symbols: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """Day by day and label by label, straight from the definition (no grid, no cumsum)."""
    def life(i: int) -> list[np.datetime64]:
        days = [day for day in np.arange(entry[i] + 1, exit_[i] + 1) if np.is_busday(day)]
        return days or [np.busday_offset(exit_[i], 0, roll="backward")]

    lives = [set(life(i)) for i in range(len(symbols))]
    result = np.empty(len(symbols))
    for i in range(len(symbols)):
        inverse = []
        for day in sorted(lives[i]):
            concurrency = sum(1 for j in range(len(symbols)) if symbols[j] == symbols[i] and day in lives[j])
            inverse.append(1.0 / concurrency)
        result[i] = np.mean(inverse)
    return result


@pytest.mark.parametrize("seed", range(12))
def test_uniqueness_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    symbols = rng.choice(np.array(["AAA", "BB", "C", "DDDD"]), n)
    # Calendar days, weekends included, in a window short enough for many overlaps; some far away ones
    # do not overlap at all, some exit the day they enter, and rows come in random order.
    entry = MONDAY + rng.integers(0, 45, n)
    entry[:4] = MONDAY + rng.integers(200, 400, 4)
    exit_ = entry + rng.integers(0, 15, n)
    exit_[4:7] = entry[4:7]
    u = average_uniqueness(symbols, entry, exit_)
    np.testing.assert_allclose(u, brute_force_uniqueness(symbols, entry, exit_), rtol=1e-12)
    assert ((u > 0) & (u <= 1 + 1e-12)).all()
    assert (u < 1).any() and np.isclose(u, 1).any()  # the data has both shared and unshared lives


def test_uniqueness_matches_brute_force_on_business_days_only() -> None:
    rng = np.random.default_rng(99)
    n = 60
    symbols = rng.choice(np.array(["X", "Y", "Z"]), n)
    entry = np.busday_offset(MONDAY, rng.integers(0, 50, n))
    exit_ = np.busday_offset(entry, rng.integers(1, 11, n))
    np.testing.assert_allclose(average_uniqueness(symbols, entry, exit_),
                               brute_force_uniqueness(symbols, entry, exit_), rtol=1e-12)


def test_single_isolated_label_is_fully_unique() -> None:
    u = average_uniqueness(np.array(["AAA"]), np.array([MONDAY]), np.array([MONDAY + 10]))
    np.testing.assert_array_equal(u, [1.0])
    far = average_uniqueness(np.array(["AAA", "AAA"]), np.array([MONDAY, MONDAY + 100]),
                             np.array([MONDAY + 3, MONDAY + 103]))
    np.testing.assert_allclose(far, [1.0, 1.0])


def test_identical_labels_share_and_other_symbols_do_not_count() -> None:
    entry, exit_ = np.array([MONDAY, MONDAY, MONDAY]), np.array([MONDAY + 7, MONDAY + 7, MONDAY + 7])
    np.testing.assert_allclose(average_uniqueness(np.array(["AAA", "AAA", "BBB"]), entry, exit_), [0.5, 0.5, 1.0])


def test_hand_made_overlap() -> None:
    # A lives Tue, Wed; B lives Wed, Thu: concurrency 1, 2, 1 -> both (1 + 1/2) / 2.
    u = average_uniqueness(np.array(["S", "S"]), np.array([MONDAY, MONDAY + 1]), np.array([MONDAY + 2, MONDAY + 3]))
    np.testing.assert_allclose(u, [0.75, 0.75])
    # Friday to Monday lives on Monday alone (the weekend is not business days).
    u = average_uniqueness(np.array(["S", "S"]), np.array([MONDAY + 4, MONDAY + 6]),
                           np.array([MONDAY + 7, MONDAY + 8]))
    np.testing.assert_allclose(u, [0.5, 0.75])


def test_label_exiting_on_entry_lives_one_day() -> None:
    u = average_uniqueness(np.array(["S"]), np.array([MONDAY + 2]), np.array([MONDAY + 2]))
    np.testing.assert_array_equal(u, [1.0])
    # The one-day label (Wednesday) sits inside a label living Tue..Thu.
    u = average_uniqueness(np.array(["S", "S"]), np.array([MONDAY + 2, MONDAY]), np.array([MONDAY + 2, MONDAY + 3]))
    np.testing.assert_allclose(u, [0.5, (1 + 0.5 + 1) / 3])


def test_uniqueness_is_fast_at_full_scale() -> None:
    rng = np.random.default_rng(0)
    n, n_days = 70_000, 4_000
    symbols = np.array([f"SYM{i:02d}" for i in range(80)])[rng.integers(0, 80, n)]
    entry = np.busday_offset(np.datetime64("2008-01-01", "D"), rng.integers(0, n_days - 30, n), roll="forward")
    exit_ = np.busday_offset(entry, rng.integers(1, 21, n))
    started = time.perf_counter()
    u = average_uniqueness(symbols, entry, exit_)
    elapsed = time.perf_counter() - started
    assert u.shape == (n,) and ((u > 0) & (u <= 1 + 1e-9)).all()
    assert elapsed < 2.0, f"average_uniqueness took {elapsed:.2f} s"  # ~0.05 s on a quiet machine


def test_uniqueness_errors() -> None:
    one = np.array([MONDAY])
    with pytest.raises(ValueError, match="one length"):
        average_uniqueness(np.array(["A", "B"]), one, one + 1)
    with pytest.raises(ValueError, match="exit before it enters"):
        average_uniqueness(np.array(["A"]), one + 3, one)
    with pytest.raises(ValueError, match="NaT"):
        average_uniqueness(np.array(["A"]), one, np.array(["NaT"], dtype="datetime64[D]"))
    assert average_uniqueness(np.array([], dtype=str), one[:0], one[:0]).shape == (0,)


def test_training_weights_balance_classes_and_keep_mean_one() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice([0, 1, 2], 500, p=[0.2, 0.65, 0.15])
    u = rng.uniform(0.05, 1.0, 500)
    w = training_weights(y, u)
    totals = np.bincount(y, weights=w)
    np.testing.assert_allclose(totals, len(y) / 3)
    assert w.sum() == pytest.approx(len(y))
    # Inside a class the weights keep the labels' relative uniqueness.
    for c in range(3):
        np.testing.assert_allclose(w[y == c] / u[y == c], (w[y == c] / u[y == c])[0])
    # Two classes present: each carries half.
    w2 = training_weights(y[y != 1], u[y != 1])
    np.testing.assert_allclose(np.bincount(y[y != 1], weights=w2)[[0, 2]], np.sum(y != 1) / 2)


def test_training_weights_reduce_to_balanced() -> None:
    y = np.random.default_rng(4).choice([0, 1, 2], 301, p=[0.1, 0.7, 0.2])
    expected = np.array([len(y) / (3 * np.sum(y == label)) for label in y])
    np.testing.assert_allclose(training_weights(y, None), expected)
    np.testing.assert_array_equal(training_weights(y, np.ones(len(y))), training_weights(y, None))
    assert training_weights(y, None).sum() == pytest.approx(len(y))


def test_training_weights_errors() -> None:
    y = np.array([0, 1, 2, 2])
    with pytest.raises(ValueError, match="one value per label"):
        training_weights(y, np.ones(3))
    for bad in (0.0, -0.5, np.nan):
        with pytest.raises(ValueError, match="finite and positive"):
            training_weights(y, np.array([1.0, 0.5, bad, 0.2]))
