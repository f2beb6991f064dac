"""Trivial predictors the models must beat to claim skill, scored on the same split.

A directional AUC above 0.5 proves little by itself: volatility alone can look like direction
when labels are not neutral to it, and one well-known raw feature (distance from a moving average,
say) may carry all the signal there is. So the gate compares the ensemble with (a) the same
learner fitted on the volatility features only and (b) the best single raw feature, its sign
included, chosen on out-of-fold rows and never on the holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.ml.metrics import BUY, HOLD, N_CLASSES, SELL, _weighted_auc

# What the volatility-only benchmark sees: the stock's, its range's and the market's volatility.
VOLATILITY_FEATURES = frozenset({
    "vol_5d", "vol_10d", "vol_21d", "vol_63d", "vol_ratio_5_21", "vol_ratio_10_63", "vol_ratio_21_63",
    "atr_14", "bb_width", "range_1d", "market_vol_21d", "regime_high_vol",
})


@dataclass(frozen=True)
class OneFeatureRule:
    """'The higher (or lower) this feature, the likelier up': a probability from the feature's rank.

    q is the feature's (signed) empirical quantile among the training rows; a missing value is
    neutral (q = 0.5). P(HOLD) is the training HOLD share and BUY/SELL split the rest as the
    training priors weighted by q and 1 - q, so the directional score rises with q.
    """

    feature: str
    sign: int  # +1: higher means BUY; -1: lower means BUY
    reference: np.ndarray  # sorted signed training values (no NaN)
    prior: np.ndarray  # training shares of SELL, HOLD, BUY
    oof_auc_directional: float

    def quantile(self, values: np.ndarray) -> np.ndarray:
        signed = self.sign * np.asarray(values, dtype=np.float64)
        below = np.searchsorted(self.reference, signed, side="left")
        at_or_below = np.searchsorted(self.reference, signed, side="right")
        q = (below + at_or_below) / (2.0 * max(len(self.reference), 1))
        return np.where(np.isnan(signed), 0.5, q)

    def predict_proba(self, values: np.ndarray) -> np.ndarray:
        q = self.quantile(values)
        up, down = self.prior[BUY] * q, self.prior[SELL] * (1.0 - q)
        moving = 1.0 - self.prior[HOLD]
        proba = np.empty((len(q), N_CLASSES))
        proba[:, BUY] = moving * up / (up + down)
        proba[:, SELL] = moving * down / (up + down)
        proba[:, HOLD] = self.prior[HOLD]
        return proba

    def describe(self) -> dict[str, Any]:
        direction = "higher" if self.sign > 0 else "lower"
        return {"feature": self.feature, "sign": self.sign, "oof_auc_directional": self.oof_auc_directional,
                "text": f"{direction} {self.feature} -> more likely BUY (chosen as the best of all features and "
                        f"signs on the out-of-fold rows, where it scored directional AUC "
                        f"{self.oof_auc_directional:.4f}: an optimistic, in-selection score)"}


def choose_rule(X: np.ndarray, y: np.ndarray, names: list[str], *, reference: np.ndarray,
                y_reference: np.ndarray) -> OneFeatureRule:
    """The feature and sign with the best directional AUC on (X, y), the out-of-fold rows, scored
    exactly as the rule predicts (missing = neutral). reference: training rows for the quantiles
    and priors. Ties go to the earlier feature, so the choice is deterministic."""
    y = np.asarray(y)
    directional = (y == BUY) | (y == SELL)
    if not (np.any(y == BUY) and np.any(y == SELL)):
        raise ValueError("choose_rule needs both BUY and SELL samples among the out-of-fold rows.")
    prior = np.bincount(np.asarray(y_reference, dtype=np.int64), minlength=N_CLASSES) / len(y_reference)
    best: OneFeatureRule | None = None
    for column, name in enumerate(names):
        values = reference[:, column]
        ordered = np.sort(values[~np.isnan(values)])
        if ordered.size == 0:
            continue
        rule = OneFeatureRule(name, 1, ordered, prior, 0.5)
        auc = float(_weighted_auc(rule.quantile(X[directional, column]), y[directional] == BUY,
                                  np.ones((1, int(directional.sum()))))[0])
        sign = 1 if auc >= 0.5 else -1
        strength = max(auc, 1.0 - auc)
        if best is None or strength > best.oof_auc_directional:
            best = OneFeatureRule(name, sign, np.sort(sign * ordered), prior, strength)
    if best is None:
        raise ValueError("No feature has a value in the training rows; no one-feature rule can be made.")
    return best
