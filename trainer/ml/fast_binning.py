"""scikit-learn's weighted bin edges for the histogram booster, one sort per feature instead of 62.

With sample weights and fewer than 200,000 rows, HistGradientBoostingClassifier finds each
feature's bin edges by calling `_weighted_percentile` once per edge, and every call sorts the
column again: on the 70 real symbols that was 12 of the model's 19.6 s (cProfile: the binning
threads' `time.sleep` in joblib). `_weighted_percentile` itself accepts every percentile at once,
with the same sort and the same cumulative weights, so the edges come out bit for bit the same;
scikit-learn merged the same idea upstream (PR 34248) after 1.9.

`install()` swaps the module function only after checking, on a small sample with ties, missing
values and zero weights, that the result equals the installed scikit-learn's own; any other
version keeps its own code (logged), so this can only ever change the speed.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_installed: list[bool] = []  # once per process


def install() -> bool:
    """Use the one-sort edges in sklearn's binning if they equal sklearn's own here; True if in use."""
    if _installed:
        return _installed[0]
    try:
        from sklearn.ensemble._hist_gradient_boosting import binning
        from sklearn.utils.stats import _weighted_percentile

        original = binning._find_binning_thresholds
        clip_at = binning.ALMOST_INF
    except (ImportError, AttributeError) as error:  # another scikit-learn layout: its own code stays
        log.info("histogram booster binning left as scikit-learn has it (%s)", error)
        _installed.append(False)
        return False

    def thresholds(col_data, max_bins, sample_weight=None):
        if sample_weight is None:
            return original(col_data, max_bins)
        keep = ~np.isnan(col_data) & (sample_weight != 0)
        order = np.argsort(col_data[keep])
        values, weights = col_data[keep][order], sample_weight[keep][order]
        if np.count_nonzero(values[1:] != values[:-1]) + 1 <= max_bins:  # few distinct values: cheap as it is
            return original(col_data, max_bins, sample_weight)
        ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        edges = np.unique(np.asarray(_weighted_percentile(values, weights, ranks, average=True)))
        np.clip(edges, a_min=None, a_max=clip_at, out=edges)
        return edges

    if not _same_as(original, thresholds):
        log.info("histogram booster binning left as scikit-learn has it (this version's edges differ)")
        _installed.append(False)
        return False
    thresholds.original = original  # for the tests, which compare the two
    binning._find_binning_thresholds = thresholds
    _installed.append(True)
    return True


def _same_as(original, replacement) -> bool:
    """Both give identical edges on samples with ties, missing values, zero weights, few values."""
    rng = np.random.default_rng(0)
    column = np.round(rng.normal(size=3000), 2)
    column[rng.random(3000) < 0.1] = np.nan
    column[rng.random(3000) < 0.03] = np.inf  # ties at +-inf (inf - inf is NaN: count with !=)
    column[rng.random(3000) < 0.03] = -np.inf
    weights = rng.random(3000)
    weights[rng.random(3000) < 0.05] = 0.0
    samples = [(column, weights), (np.floor(column * 3), weights), (column, np.ones(3000))]
    try:
        for values, sample_weight in samples:
            for max_bins in (63, 255):
                expected = original(values, max_bins, sample_weight=sample_weight)
                if not np.array_equal(expected, replacement(values, max_bins, sample_weight)):
                    return False
    except Exception as error:  # noqa: BLE001 - any failure of the check keeps sklearn's own code
        log.info("histogram booster binning check failed (%s)", error)
        return False
    return True
