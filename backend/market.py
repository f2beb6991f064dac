"""Market context: the market proxy, sector indices and a point-in-time regime per date.

Features compare a stock with its market and sector, and the evaluation slices results by regime.
Every value at date t uses data up to t only: the volatility threshold is a trailing median, never a
full-sample statistic (a full-sample median would tell an early date what the later years look like).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SPY = "SPY"
EQUAL_WEIGHT = "equal-weight"
BASE_LEVEL = 100.0
REGIMES = ("up_low_vol", "up_high_vol", "down_low_vol", "down_high_vol")

# Trend: proxy above its trailing 200-day mean. No shorter fallback before 200 days: a regime whose
# definition changes at day 200 would make early and late regimes incomparable; the regime is NaN
# for the first 199 proxy dates instead (the proxy usually spans the longest history of the universe).
TREND_WINDOW = 200
# Volatility: 20-day realised vol (std of daily log returns) above its trailing 252-day median.
# The median needs at least 126 vol values (half a year), so it is known from proxy row 146 on,
# before the trend is, and the regime starts at row 200 either way.
VOL_WINDOW = 20
VOL_MEDIAN_WINDOW = 252
VOL_MEDIAN_MIN_PERIODS = 126


@dataclass
class MarketContext:
    """proxy_name: 'SPY' or 'equal-weight'. market: indexed by date, columns level, ret, regime
    (one of REGIMES, NaN before enough history). sectors: sector name -> equal-weight level."""

    proxy_name: str
    market: pd.DataFrame
    sectors: dict[str, pd.Series] = field(default_factory=dict)


def build_market(closes: dict[str, pd.Series], sectors: dict[str, str],
                 proxy_close: pd.Series | None) -> MarketContext:
    """The market proxy (SPY when given, else the universe's equal-weight index), sector indices and
    regimes. closes: symbol -> adjusted close; sectors: symbol -> sector name."""
    if proxy_close is not None:
        level, name = proxy_close.dropna().astype("float64"), SPY
    elif closes:
        level, name = equal_weight_index(closes.values()), EQUAL_WEIGHT
    else:
        raise ValueError("build_market needs a proxy close or at least one symbol's closes")
    level = level.rename("level").rename_axis("date")
    market = pd.DataFrame({"level": level, "ret": level.pct_change(), "regime": regimes(level)})
    members: dict[str, list[pd.Series]] = {}
    for symbol, sector in sectors.items():
        if symbol in closes:
            members.setdefault(sector, []).append(closes[symbol])
    return MarketContext(name, market,
                         {sector: equal_weight_index(series) for sector, series in sorted(members.items())})


def equal_weight_index(closes: Iterable[pd.Series]) -> pd.Series:
    """Daily-rebalanced equal weight: the mean of the available symbols' simple returns per date of
    the union calendar, compounded from 100. A symbol that did not trade on a date simply is not
    in that date's mean; its next return spans the gap."""
    returns = pd.concat([close.dropna().pct_change() for close in closes], axis=1, sort=True)
    daily = returns.mean(axis=1).fillna(0.0)
    return (BASE_LEVEL * (1.0 + daily).cumprod()).rename("level").rename_axis("date")


def regimes(level: pd.Series) -> pd.Series:
    """Trend x volatility label per date from trailing windows only; NaN before enough history."""
    trend_mean = level.rolling(TREND_WINDOW, min_periods=TREND_WINDOW).mean()
    vol = np.log(level).diff().rolling(VOL_WINDOW, min_periods=VOL_WINDOW).std()
    vol_median = vol.rolling(VOL_MEDIAN_WINDOW, min_periods=VOL_MEDIAN_MIN_PERIODS).median()
    trend = pd.Series(np.where(level > trend_mean, "up", "down"), index=level.index)
    label = trend + np.where(vol > vol_median, "_high_vol", "_low_vol")
    return label.where(trend_mean.notna() & vol_median.notna()).rename("regime")


def regime_flags(regime: pd.Series) -> pd.DataFrame:
    """regime_trend_up and regime_high_vol as 1.0/0.0 (NaN where the regime is unknown), so that
    models see the two halves of the label as numbers."""
    trend_up = {label: float(label.startswith("up")) for label in REGIMES}
    high_vol = {label: float(label.endswith("high_vol")) for label in REGIMES}
    return pd.DataFrame({"regime_trend_up": regime.map(trend_up).astype("float64"),
                         "regime_high_vol": regime.map(high_vol).astype("float64")})


def market_rows(run_id: str, ctx: MarketContext) -> list[dict[str, Any]]:
    """Rows for the market_data table (ISO dates; regime None before enough history)."""
    market = ctx.market
    regime = market["regime"].astype(object)
    return [{"run_id": run_id, "date": date, "proxy": ctx.proxy_name, "level": level, "regime": label}
            for date, level, label in zip(_iso(market.index), market["level"].tolist(),
                                          regime.where(regime.notna(), None).tolist(), strict=True)]


def sector_rows(run_id: str, ctx: MarketContext) -> list[dict[str, Any]]:
    """Rows for the sector_indices table (ISO dates)."""
    return [{"run_id": run_id, "sector": sector, "date": date, "level": level}
            for sector, series in ctx.sectors.items()
            for date, level in zip(_iso(series.index), series.tolist(), strict=True)]


def _iso(index: pd.Index) -> list[str]:
    return list(pd.DatetimeIndex(index).strftime("%Y-%m-%d"))
