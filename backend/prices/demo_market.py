"""A seeded, offline stock market: `--demo` runs end to end without a network, and its models have
something real but weak to find, so a demo run shows neither coin-flip models nor leakage-level AUCs.

Everything below comes from one numpy Generator seeded with `seed`; the universe and the calendar
are fixed (82 fictional companies, 11 GICS sectors, large/mid/small caps, NYSE-like trading days
2008-01-02 .. 2024-12-31), so the same seed gives byte-identical frames on any date.

Daily log total return of symbol i on day t:

    r[t,i] = mu_i + beta_i * m[t] + gamma_i * s[t, sector(i)] + calm[t] * d[t,i]
             + idio[t,i] + jump[t,i] + rebound[t,i]

- m, the market: stochastic volatility (log-volatility AR(1), half-life ~46 days, ~17 % a year)
  with a leverage effect (a down day raises tomorrow's volatility) and Student-t(5) shocks, so
  volatility clusters and tails are fat. s, one factor per sector, shares the market's turbulence.
- idio: Student-t(4) noise whose volatility depends on the cap bucket (small caps ~2x large caps),
  follows the market's turbulence and wanders on its own.
- jump: a few overnight gaps per symbol over the history (more for small caps), log size 0.04-0.35, enough to be
  "price shocks". Daily log returns beyond +/-0.25 are squeezed smoothly towards +/-0.45 (+57 % /
  -36 %), so no move reaches the default max_daily_move (0.6) and none is quarantined.

PLANTED SIGNAL - the only predictability in the data; this is what the models should find:
1. Short-term momentum in calm markets. d[t,i] is a hidden drift per symbol (AR(1), half-life ~14
   trading days, size 0.1 x the symbol's idiosyncratic volatility), multiplied by
   calm[t] = 2 / (1 + (market volatility / its median)^2): 1 at median volatility, up to 2 in the
   calmest markets, 0.4 at twice the median. A trailing 5-20 day return is a noisy estimate of d, so
   it predicts the sign of the next weeks' return - weakly. Measured on seed 7 (the default; see
   tests/test_demo_market.py): the sign of the trailing 10-day return agrees with the sign of the
   next 10 days' return on 52.8 % of symbol-days when the equal-weight index's 20-day volatility is
   below its median, 50.6 % above it (53.8 % / 50.5 % for 20 days). Predicting 20-day
   triple-barrier labels (k=1.5, stride 5) by the sign of the trailing 20-day return is right on
   55.0 % of barrier touches (50.4 % with the planted terms switched off); seeds 1-3 give 54-57 %,
   partly from their bull-market drift.
2. Gap reversal. After a jump, a random 0-40 % of it (20 % on average) is given back evenly over
   the next 10 trading days.

Prices are produced as traded (RAW) plus a total-return adjusted close, like Yahoo's Adj Close:
- dividends: most large caps and every Utilities, Consumer Staples and Real Estate company pay
  quarterly; the cash amount is set once a year from a sector-typical yield (so crashes raise the
  yield for the rest of the year) and the raw price drops by it on the ex-date;
- splits: 5-8 of the biggest risers split 2:1, 3:1 or 4:1 at the top of their run-up; raw prices
  divide by the ratio and raw volume multiplies by it on that day;
- adj_close follows the total return exactly and equals close on the last day.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)
from pandas.tseries.offsets import CustomBusinessDay
from scipy.signal import lfilter

DEMO_START = "2008-01-02"
DEMO_END = "2024-12-31"
# generate_signals' demo source continues the market through this date (extended_market).
EXTENSION_START = "2025-01-02"
EXTENSION_END = "2025-12-31"
_EXTENSION_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class DemoSymbol:
    symbol: str
    name: str
    sector: str
    cap: str  # "large", "mid" or "small"


_UNIVERSE_TABLE = """
QVTL|Quillvale Media|Communication Services|large
NWTK|Northwake Telecom|Communication Services|large
LMRA|Lumara Networks|Communication Services|mid
PXBR|Pixbright Studios|Communication Services|mid
VCMT|Vocamint Wireless|Communication Services|mid
HLWV|Hollowave Broadcasting|Communication Services|small
TRLK|Threadlink Social|Communication Services|small
MRDL|Meridale Stores|Consumer Discretionary|large
KSTR|Kestrel Motors|Consumer Discretionary|large
FNBL|Fenbell Apparel|Consumer Discretionary|mid
RDHV|Redhaven Hotels|Consumer Discretionary|mid
BKWD|Brookwood Leisure|Consumer Discretionary|mid
OTLN|Outline Home Goods|Consumer Discretionary|small
GLMR|Glimmer Toys|Consumer Discretionary|small
ZPHR|Zephyr Cycles|Consumer Discretionary|small
HRVG|Harvestgate Foods|Consumer Staples|large
PRLF|Purleaf Beverages|Consumer Staples|large
BLSM|Blossom Personal Care|Consumer Staples|large
CNDW|Candlewick Household|Consumer Staples|mid
MLBR|Millbrook Dairy|Consumer Staples|mid
SPRV|Sproutvale Grocers|Consumer Staples|small
TWNF|Twinfield Farms|Consumer Staples|small
PTRX|Petrolux Energy|Energy|large
BSNR|Basinridge Oil|Energy|large
DRLC|Drillcrest Services|Energy|mid
FLRG|Flarego Midstream|Energy|mid
GSTP|Gaspoint Pipelines|Energy|mid
SHLW|Shalewood Resources|Energy|small
KNDL|Kindleton Refining|Energy|small
ASHB|Ashbury Bancorp|Financials|large
GRNL|Granite Ledger Financial|Financials|large
CVRT|Coverton Insurance|Financials|large
TLMK|Tallmark Capital|Financials|mid
PNBR|Pinebark Savings|Financials|mid
LDGR|Ledgerline Payments|Financials|mid
QRSV|Quarry Reserve Trust|Financials|small
MSTB|Mistbank Financial|Financials|small
VTLX|Vitalux Pharma|Health Care|large
CRDN|Cardena Devices|Health Care|large
SRNC|Serenic Health Plans|Health Care|large
MDPT|Medipath Labs|Health Care|mid
OSTM|Osteum Orthopedics|Health Care|mid
GNVR|Genavira Biotech|Health Care|small
HLXA|Helixa Therapeutics|Health Care|small
NVRB|Novarib Biologics|Health Care|small
IRNW|Ironwell Industries|Industrials|large
AXLF|Axleforge Machinery|Industrials|large
SKRL|Skyrail Aerospace|Industrials|large
CRGV|Cargovia Logistics|Industrials|mid
BLTM|Boltmark Tools|Industrials|mid
TRSL|Trestle Engineering|Industrials|mid
PLWN|Plowden Equipment|Industrials|small
FTHR|Featherline Airways|Industrials|small
QBTX|Qubitex Systems|Information Technology|large
SLCN|Silicona Semiconductor|Information Technology|large
CLDV|Cloudvane Software|Information Technology|large
DTFL|Datafield Analytics|Information Technology|mid
PXLR|Pixelar Displays|Information Technology|mid
NTRM|Netrium Security|Information Technology|mid
VRTQ|Vertiq Devices|Information Technology|small
CDFR|Codeforge Labs|Information Technology|small
OPTK|Optika Photonics|Information Technology|small
CPRK|Copperkey Metals|Materials|large
ALKM|Alkemi Chemicals|Materials|large
STNB|Stonebridge Aggregates|Materials|mid
PYMR|Polymira Plastics|Materials|mid
FRRO|Ferrox Steel|Materials|mid
LMBR|Lumberline Paper|Materials|small
GLDV|Goldvein Mining|Materials|small
TWRK|Towerkeep REIT|Real Estate|large
HBRP|Harborpoint Properties|Real Estate|mid
OFCS|Officestead Realty|Real Estate|mid
RSDL|Residale Apartments|Real Estate|mid
STRG|Storagrove Trust|Real Estate|small
MLPT|Mallpoint Retail REIT|Real Estate|small
GRDL|Gridline Power|Utilities|large
HYDV|Hydrovale Utilities|Utilities|large
VLTN|Voltane Electric|Utilities|large
SLRW|Solarwind Renewables|Utilities|mid
WTRB|Waterbrook Water|Utilities|mid
GSLT|Gaslight Distribution|Utilities|small
WNDB|Windbreak Energy Partners|Utilities|small
"""
_UNIVERSE = tuple(DemoSymbol(*line.split("|")) for line in _UNIVERSE_TABLE.strip().splitlines())


DEFAULT_SIZE = len(_UNIVERSE)  # 82
MAX_SIZE = DEFAULT_SIZE + 26**3  # the generated tickers are "Y" and three letters


def demo_universe(size: int = DEFAULT_SIZE) -> list[DemoSymbol]:
    """The demo companies; the same for every seed so a run's universe never depends on it.

    82 (the default) are the named companies above. Fewer are taken in turn from each sector, so
    a small market still spans the sectors; more add generated companies ("YAAA", "YAAB", ...)
    that cycle through the 11 sectors and the three cap sizes, for scale tests."""
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"the demo market has between 1 and {MAX_SIZE} symbols; got {size}")
    if size <= DEFAULT_SIZE:
        if size == DEFAULT_SIZE:
            return list(_UNIVERSE)
        by_sector: dict[str, list[DemoSymbol]] = {}
        for entry in _UNIVERSE:
            by_sector.setdefault(entry.sector, []).append(entry)
        turns = [entry for rank in range(max(map(len, by_sector.values())))
                 for members in by_sector.values() if rank < len(members) for entry in members[rank:rank + 1]]
        return turns[:size]
    sectors = list(_SECTORS)
    extra = []
    for number in range(size - DEFAULT_SIZE):
        letters = "".join(chr(ord("A") + number // 26**power % 26) for power in (2, 1, 0))
        sector = sectors[number % len(sectors)]
        cap = ("large", "mid", "small")[number // len(sectors) % 3]
        extra.append(DemoSymbol(f"Y{letters}", f"Demo {sector} {number + 1}", sector, cap))
    return [*_UNIVERSE, *extra]


class _Sector(NamedTuple):
    beta: float  # typical market beta
    factor_vol: float  # daily volatility of the sector factor in a median market
    idio_scale: float  # multiplier on the cap bucket's idiosyncratic volatility
    dividend_yield: float  # typical annual yield of a payer
    always_pays: bool  # income sectors: every company pays a dividend


_SECTORS = {
    "Communication Services": _Sector(1.00, 0.006, 1.00, 0.015, False),
    "Consumer Discretionary": _Sector(1.15, 0.006, 1.05, 0.012, False),
    "Consumer Staples": _Sector(0.60, 0.004, 0.75, 0.028, True),
    "Energy": _Sector(1.10, 0.011, 1.10, 0.032, False),
    "Financials": _Sector(1.25, 0.008, 1.00, 0.025, False),
    "Health Care": _Sector(0.80, 0.006, 1.15, 0.015, False),
    "Industrials": _Sector(1.10, 0.005, 0.90, 0.018, False),
    "Information Technology": _Sector(1.25, 0.007, 1.10, 0.010, False),
    "Materials": _Sector(1.10, 0.008, 1.00, 0.022, False),
    "Real Estate": _Sector(0.90, 0.007, 0.85, 0.040, True),
    "Utilities": _Sector(0.50, 0.005, 0.70, 0.036, True),
}


class _Cap(NamedTuple):
    idio_vol: float  # daily idiosyncratic volatility in a median market
    beta_scale: float
    jumps: float  # expected overnight gaps over the whole history
    jump_scale: float  # mean size of a gap beyond the 4 % minimum (log return)
    price: float  # typical share price
    volume: float  # typical daily share volume
    pays_dividend: float  # chance a company outside the income sectors pays


_CAPS = {
    "large": _Cap(0.011, 0.95, 2.0, 0.04, 90.0, 6e6, 0.85),
    "mid": _Cap(0.016, 1.05, 3.5, 0.06, 45.0, 1.5e6, 0.30),
    "small": _Cap(0.024, 1.15, 5.0, 0.08, 18.0, 3.5e5, 0.10),
}

_BURN_IN = 500  # days simulated and dropped so every AR process starts in its stationary state
_MARKET_DRIFT = 0.065 / 252  # daily log drift of the market factor
_MARKET_LOG_VOL = np.log(0.0095)  # median daily market volatility
_MARKET_VOL_PERSISTENCE = 0.985
_MARKET_VOL_SPREAD = 0.45  # stationary std of log market volatility
_LEVERAGE = -0.5  # correlation of today's market shock with the change in tomorrow's log volatility
_IDIO_VOL_PERSISTENCE = 0.98
_IDIO_VOL_SPREAD = 0.25
_DRIFT_PERSISTENCE = 0.95  # hidden momentum drift: half-life ~14 trading days
_DRIFT_SIZE = 0.10  # stationary std of the hidden drift, in units of the symbol's idiosyncratic vol
_REBOUND_DAYS = 10
_REBOUND_MAX = 0.4  # largest share of a gap given back over the following days
_SQUEEZE_FROM, _SQUEEZE_TO = 0.25, 0.45  # daily log returns beyond the first tend to the second
_MIN_PRICE = 2.0  # the lowest raw price before dividends, so prices stay meaningful at 4 decimals


class _NyseLikeHolidays(AbstractHolidayCalendar):
    """Full-day NYSE holidays (without one-off closures): a realistic ~252 trading days a year."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


def _trading_days(start: str = DEMO_START, end: str = DEMO_END) -> pd.DatetimeIndex:
    days = pd.date_range(start, end, freq=CustomBusinessDay(calendar=_NyseLikeHolidays()))
    return days.rename("date")


def generate_market(seed: int, size: int = DEFAULT_SIZE) -> dict[str, pd.DataFrame]:
    """Raw daily frames per demo symbol, in the standard raw layout of backend.prices.prepare.

    Generated once per seed and process; each call returns shallow copies so a caller that edits
    its frame cannot change what the next caller gets (copy-on-write keeps this free).
    """
    return {symbol: frame.copy(deep=False) for symbol, frame in _cached_market(seed, size=size).items()}


def extended_market(seed: int, size: int = DEFAULT_SIZE) -> dict[str, pd.DataFrame]:
    """generate_market(seed) continued by the trading days of EXTENSION_START..EXTENSION_END: the
    same frames up to DEMO_END (only adj_close is rescaled by a constant per symbol, as a vendor
    rescales the adjusted history after later dividends), then a year drawn from another seed
    with the same dynamics and planted signal, joined without a jump (the first new day has no
    move). Deterministic, so signals after the training data exist without a network."""
    base = _cached_market(seed, size=size)
    later = _cached_market(seed + _EXTENSION_SEED_OFFSET, EXTENSION_START, EXTENSION_END, size)
    joined = {}
    for symbol, frame in base.items():
        extra = later[symbol].copy()
        last = frame.iloc[-1]
        scale = last["close"] / extra["close"].iloc[0]
        for column in ("open", "high", "low", "close", "adj_close", "dividend"):
            extra[column] = extra[column] * scale
        head = frame.copy()
        head["adj_close"] = head["adj_close"] * (extra["adj_close"].iloc[0] / last["adj_close"])
        joined[symbol] = pd.concat([head, extra], ignore_index=True)
    return joined


@functools.lru_cache(maxsize=4)
def _cached_market(seed: int, start: str = DEMO_START, end: str = DEMO_END,
                   size: int = DEFAULT_SIZE) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    days = _trading_days(start, end)
    universe = tuple(demo_universe(size))
    paths = _simulate_returns(rng, len(days), universe)
    ex_rows, payers = _dividend_calendar(rng, days, universe)
    split = _splits(rng, paths.log_return, ex_rows, payers)
    prices = _raw_prices(rng, paths.log_return, split, ex_rows, payers, universe)
    bars = _bars(rng, paths, prices.close, split, universe)
    return {
        entry.symbol: pd.DataFrame({
            "date": days,
            "open": bars.open[:, i],
            "high": bars.high[:, i],
            "low": bars.low[:, i],
            "close": prices.close[:, i],
            "volume": bars.volume[:, i],
            "adj_close": prices.adj_close[:, i],
            "dividend": prices.dividend[:, i],
            "split": split[:, i],
        })
        for i, entry in enumerate(universe)
    }


def _student_t(rng: np.random.Generator, df: float, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Student-t draws: fat tails without changing the volatility scale."""
    return rng.standard_t(df, shape) / np.sqrt(df / (df - 2.0))


def _ar1(shocks: np.ndarray, persistence: float) -> np.ndarray:
    """x[t] = persistence * x[t-1] + shocks[t] along axis 0, for every column at once."""
    return lfilter([1.0], [1.0, -persistence], shocks, axis=0)


class _Paths(NamedTuple):
    log_return: np.ndarray  # (days, symbols) total log return
    jump: np.ndarray  # (days, symbols) overnight gap part of log_return
    vol: np.ndarray  # (days, symbols) today's expected daily volatility


def _simulate_returns(rng: np.random.Generator, n_days: int, universe: tuple[DemoSymbol, ...]) -> _Paths:
    """The factor model of the module docstring, one (days x symbols) array per term."""
    n_sym, total = len(universe), n_days + _BURN_IN
    sectors = list(_SECTORS)
    sector_of = np.array([sectors.index(e.sector) for e in universe])
    profile = [(_SECTORS[e.sector], _CAPS[e.cap]) for e in universe]
    idio_base = np.array([cap.idio_vol * sec.idio_scale for sec, cap in profile])
    idio_base *= np.exp(rng.normal(0.0, 0.15, n_sym))
    beta = np.array([sec.beta * cap.beta_scale for sec, cap in profile]) * np.exp(rng.normal(0, 0.15, n_sym))
    gamma = np.exp(rng.normal(0.0, 0.2, n_sym))
    mu = rng.normal(0.0, 0.03, n_sym) / 252

    # Market: yesterday's shock (with leverage) sets today's log volatility.
    market_shock = _student_t(rng, 5.0, (total,))
    vol_noise = _LEVERAGE * market_shock + np.sqrt(1 - _LEVERAGE**2) * rng.standard_normal(total)
    vol_of_vol = _MARKET_VOL_SPREAD * np.sqrt(1 - _MARKET_VOL_PERSISTENCE**2)
    log_vol = _ar1(vol_of_vol * vol_noise, _MARKET_VOL_PERSISTENCE)
    turbulence = np.exp(np.concatenate(([0.0], log_vol[:-1])))[_BURN_IN:]  # market vol / its median
    market_vol = np.exp(_MARKET_LOG_VOL) * turbulence
    market = _MARKET_DRIFT + market_vol * market_shock[_BURN_IN:]

    sector_vol = np.array([_SECTORS[s].factor_vol for s in sectors]) * turbulence[:, None] ** 0.7
    sector = sector_vol * _student_t(rng, 5.0, (n_days, len(sectors)))

    own_vol = _ar1(rng.standard_normal((total, n_sym)) * _IDIO_VOL_SPREAD
                   * np.sqrt(1 - _IDIO_VOL_PERSISTENCE**2), _IDIO_VOL_PERSISTENCE)[_BURN_IN:]
    idio_vol = idio_base * np.sqrt(turbulence)[:, None] * np.exp(own_vol)
    idio = idio_vol * _student_t(rng, 4.0, (n_days, n_sym))

    drift_noise = rng.standard_normal((total, n_sym)) * np.sqrt(1 - _DRIFT_PERSISTENCE**2)
    drift = _ar1(drift_noise, _DRIFT_PERSISTENCE)[_BURN_IN:] * (_DRIFT_SIZE * idio_base)
    calm = 2.0 / (1.0 + turbulence**2)

    jump, rebound = _jumps(rng, n_days, universe)
    log_return = (mu + beta * market[:, None] + gamma * sector[:, sector_of] + calm[:, None] * drift
                  + idio + jump + rebound)
    vol = np.sqrt((beta * market_vol[:, None]) ** 2 + (gamma * sector_vol[:, sector_of]) ** 2 + idio_vol**2)
    return _Paths(_squeeze(log_return), jump, vol)


def _squeeze(log_return: np.ndarray) -> np.ndarray:
    """Bend extreme moves smoothly under a bound (a hard clip would print identical record days)."""
    excess = np.abs(log_return) - _SQUEEZE_FROM
    room = _SQUEEZE_TO - _SQUEEZE_FROM
    squeezed = np.sign(log_return) * (_SQUEEZE_FROM + room * np.tanh(np.maximum(excess, 0.0) / room))
    return np.where(excess > 0, squeezed, log_return)


def _jumps(rng: np.random.Generator, n_days: int, universe: tuple[DemoSymbol, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rare overnight gaps, and the share of each given back evenly over the next days."""
    caps = [_CAPS[e.cap] for e in universe]
    rate = np.array([cap.jumps for cap in caps]) / n_days
    scale = np.array([cap.jump_scale for cap in caps])
    happens = rng.random((n_days, len(caps))) < rate
    size = np.minimum(0.04 + rng.exponential(1.0, happens.shape) * scale, 0.35)
    sign = np.where(rng.random(happens.shape) < 0.55, -1.0, 1.0)
    jump = np.where(happens, sign * size, 0.0)
    daily_giveback = -jump * rng.uniform(0.0, _REBOUND_MAX, happens.shape) / _REBOUND_DAYS
    steps = np.zeros((n_days + _REBOUND_DAYS + 1, len(caps)))
    steps[1:n_days + 1] += daily_giveback
    steps[_REBOUND_DAYS + 1:] -= daily_giveback
    return jump, np.cumsum(steps, axis=0)[:n_days]


def _dividend_calendar(rng: np.random.Generator, days: pd.DatetimeIndex,
                       universe: tuple[DemoSymbol, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ex-dividend rows (quarters x payers) and the payers' column numbers.

    Each payer keeps its own months (e.g. Feb/May/Aug/Nov) and day of month, like real companies.
    """
    pays = np.array([_SECTORS[e.sector].always_pays or rng.random() < _CAPS[e.cap].pays_dividend
                     for e in universe])
    payers = np.flatnonzero(pays)
    first_month = rng.integers(1, 4, payers.size)
    day_of_month = rng.integers(5, 25, payers.size)
    n_quarters = 4 * (days[-1].year - days[0].year + 1)
    months = np.datetime64(f"{days[0].year}-01", "M") + 3 * np.arange(n_quarters)[:, None] + first_month - 1
    ex_dates = months.astype("datetime64[D]") + day_of_month - 1
    rows = np.searchsorted(days.values.astype("datetime64[D]"), ex_dates)
    return rows, payers


def _splits(rng: np.random.Generator, log_return: np.ndarray, ex_rows: np.ndarray,
            payers: np.ndarray) -> np.ndarray:
    """Split coefficients (days x symbols, 1.0 when none): some big risers split at their peak."""
    n_days, n_sym = log_return.shape
    split = np.ones((n_days, n_sym))
    if n_days <= 3 * 252:  # the one-year extension (extended_market) has no splits
        return split
    window = slice(252, n_days - 252)  # not in the first or last year
    growth = np.cumsum(log_return, axis=0)[window]
    risers = np.argsort(-growth.max(axis=0), kind="stable")[:16]
    chosen = np.sort(rng.choice(risers, size=int(rng.integers(5, 9)), replace=False))
    ratios = rng.choice([2.0, 3.0, 4.0], size=chosen.size, p=[0.5, 0.25, 0.25])
    for symbol, ratio in zip(chosen, ratios, strict=True):
        row = window.start + int(np.argmax(growth[:, symbol]))
        ex_days = ex_rows[:, payers == symbol]
        if np.isin(row, ex_days):
            row += 1  # one event per day keeps the vendor-style adjustment unambiguous
        split[row, symbol] = ratio
    return split


class _Prices(NamedTuple):
    close: np.ndarray  # raw, as traded
    adj_close: np.ndarray
    dividend: np.ndarray


def _raw_prices(rng: np.random.Generator, log_return: np.ndarray, split: np.ndarray,
                ex_rows: np.ndarray, payers: np.ndarray, universe: tuple[DemoSymbol, ...]) -> _Prices:
    """Raw closes that drop by each dividend and split, and the total-return adjusted close.

    A dividend D on ex-day t takes the factor (1 - D / close[t-1]) out of the raw price, exactly
    the factor a data vendor puts back, so adj_close follows the simulated total return.
    """
    growth = np.exp(np.cumsum(log_return, axis=0)) / np.cumprod(split, axis=0)
    target = np.array([_CAPS[e.cap].price for e in universe]) * np.exp(rng.normal(0.0, 0.3, len(universe)))
    start = np.maximum(target / np.median(growth, axis=0), _MIN_PRICE / growth.min(axis=0))
    undivided = start * growth

    yields = np.array([_SECTORS[universe[p].sector].dividend_yield for p in payers])
    yields *= np.exp(rng.normal(0.0, 0.25, payers.size))
    split_level = np.cumprod(split, axis=0)[:, payers]
    dividend = np.zeros_like(undivided)
    kept = np.zeros_like(undivided)  # log of the share of the price left after each dividend
    kept_so_far = np.zeros(payers.size)
    columns = np.arange(payers.size)
    # 17 years x 4 quarters; each amount depends on the prices left by the earlier dividends.
    for year in ex_rows.reshape(-1, 4, payers.size):
        first = year[0]
        # Set once a year from the yield, in pre-split money so a split within the year divides it.
        pre_split_amount = yields / 4 * undivided[first - 1, payers] * np.exp(kept_so_far) * split_level[first, columns]
        for rows in year:
            before = undivided[rows - 1, payers] * np.exp(kept_so_far)
            amount = np.maximum(np.round(pre_split_amount / split_level[rows, columns], 2), 0.01)
            share_left = np.log1p(-amount / before)
            dividend[rows, payers] = amount
            kept[rows, payers] = share_left
            kept_so_far += share_left
    close = (undivided * np.exp(np.cumsum(kept, axis=0))).round(4)
    adj_close = close[-1] * np.exp(np.cumsum(log_return, axis=0) - np.sum(log_return, axis=0))
    return _Prices(close, adj_close.round(6), dividend)


class _Bars(NamedTuple):
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray


def _bars(rng: np.random.Generator, paths: _Paths, close: np.ndarray, split: np.ndarray,
          universe: tuple[DemoSymbol, ...]) -> _Bars:
    """Open/high/low around the raw close, and volume that rises on big moves.

    Gaps (jumps, dividends, splits) happen overnight, so they sit between yesterday's close and
    today's open; the open-to-close part is the rest of the day's diffusion plus noise.
    """
    shape, vol = close.shape, paths.vol
    overnight = paths.jump + 0.25 * (paths.log_return - paths.jump) + 0.3 * vol * rng.standard_normal(shape)
    intraday = paths.log_return - overnight
    open_ = close * np.exp(-intraday)
    high = np.maximum(open_, close) * np.exp(0.5 * vol * np.abs(rng.standard_normal(shape)))
    low = np.minimum(open_, close) * np.exp(-0.5 * vol * np.abs(rng.standard_normal(shape)))

    level = np.array([_CAPS[e.cap].volume for e in universe]) * np.exp(rng.normal(0.0, 0.4, len(universe)))
    surprise = np.abs(paths.log_return) / vol
    persistent = _ar1(rng.standard_normal((shape[0] + _BURN_IN, shape[1])) * 0.25, 0.7)[_BURN_IN:]
    log_volume = np.log(level * np.cumprod(split, axis=0)) + 0.3 * (surprise - 0.8) + persistent
    return _Bars(open_.round(4), high.round(4), low.round(4), np.exp(log_volume).round())
