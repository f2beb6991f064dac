"""Performance figures of a simulated account: returns, risk, costs, PSR and DSR, excess with an interval.

Sharpe ratios are of daily net returns with a zero risk-free rate, annualised with sqrt(252). The
Probabilistic Sharpe Ratio (Bailey and Lopez de Prado, 2012) is the probability that the true
Sharpe ratio exceeds a benchmark given the track record's length, skewness and kurtosis; the
Deflated Sharpe Ratio (2014) is the PSR against the Sharpe ratio the best of N unskilled trials
would be expected to reach, N being every candidate this run tried (each base model, the
ensemble and the benchmarks): a run that tries more candidates must clear a higher bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, norm, skew

from trainer.ml.metrics import bootstrap_means

TRADING_DAYS = 252
EULER_GAMMA = 0.5772156649015329
METRICS = ("total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
           "turnover", "hit_rate", "exposure", "n_trades", "costs", "avg_holding_days")


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, observations: int, skewness: float,
                               raw_kurtosis: float) -> float:
    """PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)); every Sharpe ratio
    per observation (not annualised), g4 the raw kurtosis (3 for normal returns)."""
    variance = 1.0 - skewness * sharpe + (raw_kurtosis - 1.0) / 4.0 * sharpe ** 2
    if observations < 2 or not variance > 0 or not math.isfinite(sharpe):
        return float("nan")
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(variance)))


def expected_max_sharpe(trial_variance: float, trials: int) -> float:
    """SR0: the expected largest of `trials` Sharpe ratios of unskilled strategies whose estimates
    vary with this variance (per observation): sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e)))."""
    if trials < 2:
        return 0.0
    return math.sqrt(max(trial_variance, 0.0)) * (
        (1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / trials) + EULER_GAMMA * norm.ppf(1.0 - 1.0 / (trials * math.e)))


def deflated_sharpe_ratio(sharpe: float, trial_sharpes: Sequence[float], observations: int, skewness: float,
                          raw_kurtosis: float, unscored_trials: int = 0) -> float:
    """DSR: the PSR against expected_max_sharpe over the trials (the variance of their per-observation
    Sharpe ratios, ddof 1, and their number). unscored_trials: candidates that were tried but have
    no account of their own (the hyperparameter search's trials): they raise the number of trials,
    and their Sharpe ratios are taken to vary as the scored ones do."""
    trials = np.asarray([value for value in trial_sharpes if math.isfinite(value)], dtype=np.float64)
    variance = float(trials.var(ddof=1)) if trials.size > 1 else 0.0
    return probabilistic_sharpe_ratio(sharpe, expected_max_sharpe(variance, int(trials.size) + unscored_trials),
                                      observations, skewness, raw_kurtosis)


def daily_sharpe(returns: np.ndarray) -> float:
    returns = np.asarray(returns, dtype=np.float64)
    deviation = returns.std(ddof=1) if returns.size > 1 else 0.0
    return float(returns.mean() / deviation) if deviation > 0 else float("nan")


def max_drawdown(nav: pd.Series) -> tuple[float, pd.Timestamp | None, pd.Timestamp | None]:
    """(deepest fall from a running peak as a negative fraction, the peak's date, the trough's date);
    the starting capital of 1 counts as the first peak (None as its date)."""
    values = nav.to_numpy(dtype=np.float64)
    peaks = np.maximum.accumulate(np.r_[1.0, values])[1:]
    drawdown = values / peaks - 1.0
    trough = int(np.argmin(drawdown))
    if drawdown[trough] >= 0:
        return 0.0, None, None
    before = np.r_[1.0, values[:trough + 1]]
    peak = int(np.argmax(before)) - 1  # -1: the starting capital
    return float(drawdown[trough]), (nav.index[peak] if peak >= 0 else None), nav.index[trough]


def summarise(daily: pd.DataFrame, trades: pd.DataFrame | None) -> dict[str, float]:
    """Every METRICS figure of one account (NaN where it has no meaning, e.g. no trades)."""
    net = daily["net_return"].to_numpy(dtype=np.float64)
    nav = daily["nav"]
    years = len(daily) / TRADING_DAYS
    total = float(nav.iloc[-1] - 1.0)
    annual = (1.0 + total) ** (1.0 / years) - 1.0 if years > 0 and total > -1 else float("nan")
    volatility = float(net.std(ddof=1) * math.sqrt(TRADING_DAYS)) if net.size > 1 else float("nan")
    sharpe = daily_sharpe(net) * math.sqrt(TRADING_DAYS)
    downside = math.sqrt(float(np.mean(np.minimum(net, 0.0) ** 2))) if net.size else 0.0
    sortino = float(net.mean() / downside * math.sqrt(TRADING_DAYS)) if downside > 0 else float("nan")
    drawdown, _, _ = max_drawdown(nav)
    has_trades = trades is not None and len(trades) > 0
    return {
        "total_return": total,
        "annual_return": annual,
        "annual_volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": drawdown,
        "calmar": annual / abs(drawdown) if drawdown < 0 else float("nan"),
        "turnover": float(daily["turnover"].sum() / years) if years > 0 else float("nan"),
        "hit_rate": float((trades["return"] > 0).mean()) if has_trades else float("nan"),
        "exposure": float(daily["exposure"].mean()),
        "n_trades": float(len(trades)) if trades is not None else float("nan"),
        "costs": float(daily["costs"].sum()),
        "avg_holding_days": float(trades["holding_days"].mean()) if has_trades else float("nan"),
    }


def sharpe_statistics(daily: pd.DataFrame, trial_sharpes: Sequence[float],
                      unscored_trials: int = 0) -> dict[str, float]:
    """psr (against a Sharpe ratio of 0) and dsr (against the best of the trials by luck)."""
    net = daily["net_return"].to_numpy(dtype=np.float64)
    if net.size < 3 or not net.std() > 0:
        return {"psr": float("nan"), "dsr": float("nan")}
    sharpe, skewness, raw = daily_sharpe(net), float(skew(net)), float(kurtosis(net, fisher=False))
    return {"psr": probabilistic_sharpe_ratio(sharpe, 0.0, net.size, skewness, raw),
            "dsr": deflated_sharpe_ratio(sharpe, trial_sharpes, net.size, skewness, raw, unscored_trials)}


def excess_return(strategy: pd.DataFrame, benchmark: pd.DataFrame, *, block_days: int, reps: int,
                  confidence: float, seed: int) -> tuple[float, float, float]:
    """Annualised mean daily excess net return (strategy minus benchmark on their common dates) and
    its circular block-bootstrap interval over dates (blocks of block_days trading days, because
    positions held for weeks make consecutive days' returns depend on each other)."""
    joined = strategy["net_return"].to_frame("a").join(benchmark["net_return"].to_frame("b"), how="inner")
    excess = (joined["a"] - joined["b"]).to_numpy(dtype=np.float64)
    point = float(excess.mean() * TRADING_DAYS) if excess.size else float("nan")
    try:
        resampled = bootstrap_means(excess, joined.index.to_numpy(dtype="datetime64[D]"), block_days=block_days,
                                    reps=reps, seed=seed)
    except ValueError:  # fewer than two blocks of dates: no interval
        return point, float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled * TRADING_DAYS, [tail, 1.0 - tail])
    return point, float(low), float(high)
