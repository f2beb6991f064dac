"""Point-in-time features per symbol and date: the model's whole view of the world at the close of t.

Every feature at t uses only rows up to and including t (trailing rolling windows, recursive
averages, positive shifts); market and sector series are aligned to the symbol's dates by carrying
the latest PAST value forward. A feature without enough history is NaN, never back-filled, and a
ratio with a zero denominator is NaN rather than infinite. tests/test_point_in_time.py checks all of
this by recomputing on histories cut at t.

Absolute price levels are avoided: adjusted closes are back-adjusted with later dividends and
splits, so only ratios of them are point-in-time. Dollar volume and dividend yield use the raw
(as-traded) close where the source gives it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.events import EVENT_FEATURE_NAMES, detect_events, event_features
from backend.market import regime_flags

RETURN_WINDOWS = (1, 2, 3, 5, 10, 21, 63, 126, 252)
VOL_WINDOWS = (5, 10, 21, 63)
VOL_RATIOS = ((5, 21), (10, 63), (21, 63))
SMA_WINDOWS = (20, 50, 200)
RELATIVE_WINDOWS = (21, 63)
YEAR = 252
SLOPE_LAG = 5
WILDER = 14

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{n}d" for n in RETURN_WINDOWS),
    "mom_12_1",
    *(f"vol_{n}d" for n in VOL_WINDOWS),
    *(f"vol_ratio_{short}_{long}" for short, long in VOL_RATIOS),
    "rsi_14", "macd_line", "macd_signal", "macd_hist", "bb_pct_b", "bb_width", "atr_14",
    "gap_1d", "range_1d", "close_location",
    "volume_z_20d", "volume_ratio_5_20", "log_dollar_volume_20d",
    *(f"dist_sma_{n}" for n in SMA_WINDOWS),
    *(f"slope_sma_{n}" for n in SMA_WINDOWS),
    "dist_52w_high", "dist_52w_low", "drawdown_252d",
    "beta_63d", "corr_63d",
    *(f"rs_market_{n}d" for n in RELATIVE_WINDOWS),
    "market_ret_21d", "market_vol_21d", "market_dist_sma_200",
    "sector_ret_21d",
    *(f"rs_sector_{n}d" for n in RELATIVE_WINDOWS),
    "regime_trend_up", "regime_high_vol",
    "dividend_yield_252d",
    *EVENT_FEATURE_NAMES,
)


def compute_features(prices: pd.DataFrame, market: pd.DataFrame, sector_level: pd.Series | None, *,
                     shock_sigma: float) -> pd.DataFrame:
    """FEATURE_NAMES columns (float64) for every row of `prices` (the price frame contract).
    market: MarketContext.market (level, regime by date); sector_level: the symbol's sector index."""
    close = prices["close"]
    log_return = np.log(close).diff()
    columns: dict[str, pd.Series] = {
        **_returns(close, log_return),
        **_oscillators(prices),
        **_volume(prices),
        **_trend(prices),
        **_relative(close, log_return, market, sector_level),
        "dividend_yield_252d": prices["dividend"].rolling(YEAR, min_periods=YEAR).sum() / _raw_close(prices),
        **event_features(prices, detect_events(prices, shock_sigma)),
    }
    frame = pd.DataFrame(columns, index=prices.index)
    if tuple(frame.columns) != FEATURE_NAMES:
        raise RuntimeError(f"compute_features built {list(frame.columns)}, not FEATURE_NAMES")
    values = frame.to_numpy(dtype="float64", copy=True)
    values[~np.isfinite(values)] = np.nan
    return pd.DataFrame(values, index=prices.index, columns=list(FEATURE_NAMES))


def _returns(close: pd.Series, log_return: pd.Series) -> dict[str, pd.Series]:
    columns = {f"ret_{n}d": close.pct_change(n) for n in RETURN_WINDOWS}
    columns["mom_12_1"] = close.shift(21) / close.shift(YEAR) - 1.0
    vol = {n: _rolling(log_return, n).std() for n in VOL_WINDOWS}
    columns |= {f"vol_{n}d": vol[n] for n in VOL_WINDOWS}
    columns |= {f"vol_ratio_{short}_{long}": vol[short] / vol[long] for short, long in VOL_RATIOS}
    return columns


def _oscillators(prices: pd.DataFrame) -> dict[str, pd.Series]:
    """RSI, MACD (normalised by the close), Bollinger bands, ATR and the day's bar shape."""
    close, high, low = prices["close"], prices["high"], prices["low"]
    change = close.diff()
    gain = _wilder(change.clip(lower=0.0))
    loss = _wilder(-change.clip(upper=0.0))
    macd = _ema(close, 12) - _ema(close, 26)
    signal = _ema(macd, 9)
    band_mean, band_std = _rolling(close, 20).mean(), _rolling(close, 20).std()
    previous = close.shift(1)
    true_range = np.fmax(high - low, np.fmax((high - previous).abs(), (low - previous).abs()))
    return {
        "rsi_14": 100.0 * gain / (gain + loss),
        "macd_line": macd / close,
        "macd_signal": signal / close,
        "macd_hist": (macd - signal) / close,
        "bb_pct_b": (close - (band_mean - 2.0 * band_std)) / (4.0 * band_std),
        "bb_width": 4.0 * band_std / band_mean,
        "atr_14": _wilder(true_range) / close,
        "gap_1d": prices["open"] / previous - 1.0,
        "range_1d": (high - low) / close,
        "close_location": (close - low) / (high - low),
    }


def _volume(prices: pd.DataFrame) -> dict[str, pd.Series]:
    """Volume in adjusted-share units (dollar volume / adjusted close): a split then neither doubles
    the volume (CSV and demo sources give raw traded shares) nor leaves it alone (yfinance gives
    split-adjusted shares) - both come out the same."""
    dollar_volume = _raw_close(prices) * prices["volume"]
    volume = dollar_volume / prices["close"]
    mean_20 = _rolling(volume, 20).mean()
    return {
        "volume_z_20d": (volume - mean_20) / _rolling(volume, 20).std(),
        "volume_ratio_5_20": _rolling(volume, 5).mean() / mean_20,
        "log_dollar_volume_20d": np.log(_rolling(dollar_volume, 20).mean()),
    }


def _trend(prices: pd.DataFrame) -> dict[str, pd.Series]:
    """Distance to moving averages and their slopes, the 52-week range and the drawdown."""
    close = prices["close"]
    sma = {n: _rolling(close, n).mean() for n in SMA_WINDOWS}
    return {
        **{f"dist_sma_{n}": close / sma[n] - 1.0 for n in SMA_WINDOWS},
        **{f"slope_sma_{n}": sma[n] / sma[n].shift(SLOPE_LAG) - 1.0 for n in SMA_WINDOWS},
        "dist_52w_high": close / _rolling(prices["high"], YEAR).max() - 1.0,
        "dist_52w_low": close / _rolling(prices["low"], YEAR).min() - 1.0,
        "drawdown_252d": close / _rolling(close, YEAR).max() - 1.0,
    }


def _relative(close: pd.Series, log_return: pd.Series, market: pd.DataFrame,
              sector_level: pd.Series | None) -> dict[str, pd.Series]:
    """Beta, correlation and relative strength against the market proxy and the sector index, plus
    the market's own state. Market-side statistics are computed on the market's calendar and then
    aligned, so every symbol sees the same market value on a date."""
    dates = close.index
    market_level = _align(market["level"], dates)
    market_return = np.log(market_level).diff()
    market_log_return = np.log(market["level"]).diff()
    market_state = pd.DataFrame({
        "market_ret_21d": market["level"].pct_change(21),
        "market_vol_21d": _rolling(market_log_return, 21).std(),
        "market_dist_sma_200": market["level"] / _rolling(market["level"], 200).mean() - 1.0,
    }).join(regime_flags(market["regime"]))
    aligned_state = market_state.reindex(dates, method="ffill")
    if sector_level is None:
        sector_level = pd.Series(np.nan, index=dates)
    sector_aligned = _align(sector_level, dates)
    log_close = np.log(close)
    return {
        "beta_63d": _rolling(log_return, 63).cov(market_return) / _rolling(market_return, 63).var(),
        "corr_63d": _rolling(log_return, 63).corr(market_return),
        **{f"rs_market_{n}d": log_close.diff(n) - np.log(market_level).diff(n) for n in RELATIVE_WINDOWS},
        **{name: aligned_state[name] for name in ("market_ret_21d", "market_vol_21d", "market_dist_sma_200")},
        "sector_ret_21d": _align(sector_level.pct_change(21), dates),
        **{f"rs_sector_{n}d": log_close.diff(n) - np.log(sector_aligned).diff(n) for n in RELATIVE_WINDOWS},
        "regime_trend_up": aligned_state["regime_trend_up"],
        "regime_high_vol": aligned_state["regime_high_vol"],
    }


def _align(series: pd.Series, dates: pd.DatetimeIndex) -> pd.Series:
    """The latest value at or before each date (never a later one)."""
    return series.reindex(dates, method="ffill")


def _raw_close(prices: pd.DataFrame) -> pd.Series:
    """The as-traded close, or the adjusted close where the source does not give it."""
    return prices["raw_close"].fillna(prices["close"])


def _rolling(series: pd.Series, window: int) -> pd.api.typing.Rolling:
    """A trailing window that yields NaN until it is full."""
    return series.rolling(window, min_periods=window)


def _ema(series: pd.Series, span: int) -> pd.Series:
    return series.ewm(span=span, adjust=False, min_periods=span).mean()


def _wilder(series: pd.Series) -> pd.Series:
    """Wilder's smoothing (RSI, ATR): an exponential average with alpha 1/14."""
    return series.ewm(alpha=1.0 / WILDER, adjust=False, min_periods=WILDER).mean()
