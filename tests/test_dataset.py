"""Loading samples from SQLite, and the properties that make the time-ordered split leak-free."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend import store
from trainer.ml import dataset as dataset_module
from trainer.ml.dataset import Dataset, DatasetError, Split, load_dataset, make_split, purged_recent_slice

HORIZON = 5  # label horizon in unique-date steps for the synthetic datasets


def synthetic_dataset(n_dates: int = 300, n_symbols: int = 6, n_features: int = 4, seed: int = 0) -> Dataset:
    """Symbols with staggered histories; every trade exits 1..HORIZON dates after entry."""
    rng = np.random.default_rng(seed)
    calendar = np.arange(np.datetime64("2010-01-04"), np.datetime64("2010-01-04") + 2 * n_dates)
    calendar = calendar[np.is_busday(calendar)][: n_dates + HORIZON]
    rows = []
    for s in range(n_symbols):
        for position in range(s * 3, n_dates):  # later symbols start later
            rows.append((calendar[position], f"S{s}", calendar[position + rng.integers(1, HORIZON + 1)]))
    rows.sort(key=lambda row: (row[0], row[1]))
    n = len(rows)
    return Dataset(
        X=rng.normal(size=(n, n_features)),
        y=rng.integers(0, 3, n),
        feature_names=[f"f{i}" for i in range(n_features)],
        entry_dates=np.array([row[0] for row in rows], dtype="datetime64[D]"),
        exit_dates=np.array([row[2] for row in rows], dtype="datetime64[D]"),
        symbols=np.array([row[1] for row in rows]),
        sectors=np.array(["Tech"] * n),
        regimes=np.array([None] * n, dtype=object),
        returns=rng.normal(0, 0.05, n),
    )


def split(dataset: Dataset, **overrides: float) -> Split:
    settings = {"n_folds": 4, "holdout_share": 0.2, "min_feature_coverage": 0.4, "embargo_days": HORIZON}
    settings.update(overrides)
    return make_split(dataset, **settings)


def dates_between(dataset: Dataset, earlier_idx: np.ndarray, later_idx: np.ndarray) -> int:
    """Unique dates strictly between the last entry of one part and the first entry of the next."""
    dates = np.unique(dataset.entry_dates)
    last = np.searchsorted(dates, dataset.entry_dates[earlier_idx].max())
    first = np.searchsorted(dates, dataset.entry_dates[later_idx].min())
    return int(first - last - 1)


def test_no_training_label_reaches_its_validation_fold_or_the_holdout() -> None:
    dataset = synthetic_dataset()
    result = split(dataset)
    first_holdout = dataset.entry_dates[result.holdout_idx].min()
    assert dataset.exit_dates[result.train_idx].max() < first_holdout
    for train, val in result.folds:
        assert dataset.exit_dates[train].max() < dataset.entry_dates[val].min()
        assert dataset.exit_dates[val].max() < first_holdout


def test_embargo_separates_training_from_validation_and_holdout() -> None:
    dataset = synthetic_dataset()
    result = split(dataset, embargo_days=7)
    assert dates_between(dataset, result.train_idx, result.holdout_idx) >= 7
    for train, val in result.folds:
        assert dates_between(dataset, train, val) >= 7
    embargo = result.embargo_period
    assert embargo.n_samples > 0 and embargo.end < result.holdout_period.start


def test_purging_drops_labels_that_exit_inside_the_holdout_without_an_embargo() -> None:
    dataset = synthetic_dataset()
    result = split(dataset, embargo_days=0)
    assert result.n_purged > 0
    assert dataset.exit_dates[result.train_idx].max() < dataset.entry_dates[result.holdout_idx].min()
    for train, val in result.folds:
        assert dataset.exit_dates[train].max() < dataset.entry_dates[val].min()
        assert dates_between(dataset, train, val) < HORIZON  # purging alone, not a wide gap


def test_folds_walk_forward_and_training_windows_grow() -> None:
    dataset = synthetic_dataset()
    result = split(dataset)
    assert len(result.folds) == 4
    previous_train, previous_val_end = np.array([], dtype=int), None
    for train, val in result.folds:
        assert dataset.entry_dates[train].max() < dataset.entry_dates[val].min()
        if previous_val_end is not None:
            assert dataset.entry_dates[val].min() > previous_val_end
        assert np.isin(previous_train, train).all()
        assert np.isin(val, result.train_idx).all() and np.isin(train, result.train_idx).all()
        previous_train, previous_val_end = train, dataset.entry_dates[val].max()


def test_holdout_is_the_last_share_of_unique_dates() -> None:
    dataset = synthetic_dataset()
    result = split(dataset, holdout_share=0.25)
    dates = np.unique(dataset.entry_dates)
    holdout_dates = np.unique(dataset.entry_dates[result.holdout_idx])
    assert len(holdout_dates) == int(np.ceil(0.25 * len(dates)))
    assert (holdout_dates == dates[-len(holdout_dates):]).all()
    assert np.intersect1d(result.holdout_idx, result.train_idx).size == 0


def test_split_is_deterministic_and_summary_is_json() -> None:
    dataset = synthetic_dataset()
    first, second = split(dataset), split(dataset)
    assert np.array_equal(first.train_idx, second.train_idx)
    assert np.array_equal(first.holdout_idx, second.holdout_idx)
    for (train_a, val_a), (train_b, val_b) in zip(first.folds, second.folds, strict=True):
        assert np.array_equal(train_a, train_b) and np.array_equal(val_a, val_b)
    assert json.loads(json.dumps(first.summary())) == second.summary()


def test_coverage_filter_uses_the_training_period_only() -> None:
    dataset = synthetic_dataset()
    rng = np.random.default_rng(1)
    train_rows = split(dataset).train_idx
    dataset.X[train_rows[rng.random(train_rows.size) < 0.7], 1] = np.nan  # ~30% coverage in training
    dataset.X[split(dataset).holdout_idx, 2] = np.nan  # missing only in the holdout
    result = split(dataset)
    assert result.kept_features == ["f0", "f2", "f3"]
    assert list(result.kept_columns) == [0, 2, 3]
    assert list(result.dropped_features) == ["f1"]
    assert result.dropped_features["f1"] == pytest.approx(0.3, abs=0.05)


def test_too_few_dates_for_the_folds_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="fewer folds"):
        split(synthetic_dataset(n_dates=40), n_folds=6, embargo_days=5)


def make_store(tmp_path, rows, n_features=3):
    connection = store.connect(tmp_path / "trainer.db")
    with store.transaction(connection):
        store.write_rows(connection, "feature_names", [
            {"run_id": "run", "position": i, "name": f"feat{i}"} for i in range(n_features)])
        connection.execute("INSERT INTO symbols VALUES ('AAA', 'A Inc', 'Tech', NULL)")
        for symbol, entry, exit_, label, ret, regime, features in rows:
            connection.execute("INSERT INTO trades VALUES ('run', ?, ?, ?, 'time', ?, ?, ?)",
                               (symbol, entry, exit_, ret, label, regime))
            if features is not None:
                connection.execute("INSERT INTO feature_store VALUES ('run', ?, ?, ?)",
                                   (symbol, entry, np.asarray(features, dtype="<f8").tobytes()))
    return connection


def test_load_dataset_decodes_sorts_and_fills_sectors(tmp_path) -> None:
    rows = [
        ("BBB", "2020-01-03", "2020-01-20", 2, 0.04, "bull_calm", [1.0, np.nan, 3.0]),
        ("AAA", "2020-01-03", "2020-01-21", 0, -0.03, None, [4.0, 5.0, 6.0]),
        ("AAA", "2020-01-02", "2020-01-15", 1, 0.01, "bear_volatile", [7.0, 8.0, np.nan]),
    ]
    dataset = load_dataset(make_store(tmp_path, rows), "run")
    assert dataset.feature_names == ["feat0", "feat1", "feat2"]
    assert list(dataset.symbols) == ["AAA", "AAA", "BBB"]
    assert dataset.entry_dates.dtype == np.dtype("datetime64[D]")
    assert str(dataset.entry_dates[0]) == "2020-01-02" and str(dataset.exit_dates[2]) == "2020-01-20"
    np.testing.assert_array_equal(dataset.X, [[7.0, 8.0, np.nan], [4.0, 5.0, 6.0], [1.0, np.nan, 3.0]])
    assert dataset.X.dtype == np.float64 and dataset.X.flags.writeable
    assert list(dataset.y) == [1, 0, 2]
    assert list(dataset.sectors) == ["Tech", "Tech", "Unknown"]
    assert list(dataset.regimes) == ["bear_volatile", None, "bull_calm"]
    np.testing.assert_allclose(dataset.returns, [0.01, -0.03, 0.04])


@pytest.mark.parametrize("features, message", [([1.0, 2.0], "16 bytes"), (None, "no feature row")])
def test_load_dataset_rejects_features_that_do_not_match(tmp_path, features, message) -> None:
    rows = [("AAA", "2020-01-02", "2020-01-15", 1, 0.0, None, [1.0, 2.0, 3.0]),
            ("AAA", "2020-01-03", "2020-01-16", 1, 0.0, None, features)]
    with pytest.raises(DatasetError, match=message):
        load_dataset(make_store(tmp_path, rows), "run")


def test_load_dataset_decodes_in_chunks_the_same_matrix_and_counts_bad_rows_across_them(tmp_path,
                                                                                    monkeypatch) -> None:
    rng = np.random.default_rng(3)
    days = np.datetime64("2020-01-01") + np.arange(11)
    rows = [(symbol, str(day), str(day + 20), int(rng.integers(3)), float(rng.normal()),
             str(rng.choice(["bull_calm", "bear_volatile"])), rng.normal(size=3))
            for symbol in ("CCC", "AAA", "BBB") for day in days[rng.random(days.size) < 0.8]]
    whole = load_dataset(make_store(tmp_path / "a", rows), "run")
    monkeypatch.setattr(dataset_module, "_CHUNK_ROWS", 4)  # chunks of 4 rows, crossing symbols
    chunked = load_dataset(make_store(tmp_path / "b", rows), "run")
    for name, value in vars(whole).items():
        np.testing.assert_array_equal(getattr(chunked, name), value)
    # rows sorted by (entry date, symbol), each with its own features, labels and regime
    expected = sorted(rows, key=lambda row: (row[1], row[0]))
    read = zip(chunked.entry_dates, chunked.symbols, strict=True)
    assert [(str(date), symbol) for date, symbol in read] == [(row[1], row[0]) for row in expected]
    np.testing.assert_array_equal(chunked.X, [row[6] for row in expected])
    assert list(chunked.y) == [row[3] for row in expected]
    assert list(chunked.regimes) == [row[5] for row in expected]
    bad = [row[:6] + (None if number in (5, 9) else row[6],) for number, row in enumerate(rows)]
    first_bad = sorted(bad[5:6] + bad[9:10], key=lambda row: (row[0], row[1]))[0]  # read in key order
    with pytest.raises(DatasetError, match=rf"^2 samples .*\(first: {first_bad[0]} {first_bad[1]} has no feature row"):
        load_dataset(make_store(tmp_path / "c", bad), "run")


def test_load_dataset_refuses_trades_that_change_between_its_two_passes(tmp_path, monkeypatch) -> None:
    rows = [(symbol, "2020-01-02", "2020-01-15", 1, 0.0, None, [1.0, 2.0, 3.0]) for symbol in ("AAA", "BBB")]
    connection = make_store(tmp_path, rows)
    monkeypatch.setattr(dataset_module, "_FEATURES_QUERY",
                        dataset_module._FEATURES_QUERY.replace("ORDER BY t.symbol", "ORDER BY t.symbol DESC"))
    with pytest.raises(DatasetError, match="changed while they were read"):
        load_dataset(connection, "run")


def test_load_dataset_of_an_empty_run_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DatasetError, match="no trades"):
        load_dataset(make_store(tmp_path, []), "run")


def test_embargo_counts_business_days_not_sample_dates_when_samples_are_strided() -> None:
    """Samples every 5 business days: an embargo of 20 must cost ~20 business days, not 100."""
    daily = synthetic_dataset(n_dates=600)
    keep = np.isin(daily.entry_dates, np.unique(daily.entry_dates)[::5])
    strided = Dataset(**{name: (value[keep] if isinstance(value, np.ndarray) else value)
                         for name, value in vars(daily).items()})
    result = split(strided, embargo_days=20)
    last_train = strided.entry_dates[result.train_idx].max()
    first_holdout = strided.entry_dates[result.holdout_idx].min()
    gap = int(np.busday_count(last_train, first_holdout))
    assert 20 < gap <= 20 + 5
    for train, val in result.folds:
        gap = int(np.busday_count(strided.entry_dates[train].max(), strided.entry_dates[val].min()))
        assert gap > 20


def test_purged_recent_slice_never_fits_a_label_that_reaches_into_the_slice() -> None:
    rng = np.random.default_rng(12)
    entry = np.sort(np.datetime64("2015-01-01") + rng.integers(0, 2000, 5000))
    exits = entry + rng.integers(1, 40, 5000)
    fit, stop = purged_recent_slice(entry, exits, 0.15)
    assert stop.size == pytest.approx(750, abs=10)  # the most recent 15% of rows (whole dates)
    assert entry[stop].min() > entry[fit].max()
    assert (exits[fit] < entry[stop].min()).all()  # no fitted label reaches into the slice
    purged = np.setdiff1d(np.arange(5000), np.concatenate([fit, stop]))
    assert purged.size > 0 and (exits[purged] >= entry[stop].min()).all()  # only those are left out
    with pytest.raises(DatasetError, match="sorted"):
        purged_recent_slice(entry[::-1], exits[::-1], 0.15)
