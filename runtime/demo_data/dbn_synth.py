"""Genuine synthetic Databento DBN trade files for ES (GLBX.MDP3), deterministic by seed.

Why: the ingest, sessions and order-flow code must be exercised on the real file format (DBN v3 metadata + raw
C-struct records, zstd-compressed, one file per UTC date as Databento delivers them) at realistic scale, without
shipping licensed data. Records are built as numpy structured arrays with the client's own dtypes, so the real
``databento.DBNStore`` reads them back.

What the synthetic market has: Globex hours from ``cme_equity_sessions`` (daily break, weekends, holiday sessions,
early closes, DST), nothing outside a session segment; a U-shaped RTH intensity with spikes at 08:30 CT and the
15:00 close, thin overnight; sizes mostly 1-2 lots with a heavy tail and occasional 50-300-lot blocks/sweeps;
multi-level sweeps (same ts_event and side, consecutive prices); 'N' prints at each reopen auction; two
quarterly contracts around each roll (volume moves to the back month ~8 days before the third-Friday expiry)
plus calendar-spread prints; the back month over the front by the year's cost of carry (``_CARRY_BY_YEAR``).

Prices follow the real S&P 500 (arch.data.sp500, daily OHLC to 2018-12-31): ES = S&P x scale x (1 + the front
month's carry premium), scale = 1 unless ``start_price`` asks for another level. Each RTH session is a Brownian
bridge from the day's real open to its real close, drawn in "activity time" (variance per second proportional
to the trade intensity, so the open is busy and midday calm) and fitted to the real high/low; the overnight is a
bridge from the previous session's last price to the next open, after the close a free walk, both scaled by the
day's whole range (a trend day's overnight still moves). Days arch does not
have (after 2018) are synthetic S&P-like days continuing from the last close.

Calibration targets (tests/intraday/test_dbn_synth.py checks them on files read back with the databento
client; design/DECISIONS.md section 7):
  * daily RTH close-to-close returns: correlation with the real S&P 500 > 0.9 (it is ~0.9999); closes within
    1 % of the index; RTH high-low within 0.85-1.2x of the real day's (median);
  * 1-minute RTH high-low of the front month at 300k trades/day: median 1-3 points (~2 in Nov-Dec 2018);
    overnight minutes quieter;
  * prints: 45-65 % 1-lots (~56 %), 10-25 % 2-lots, max 500, 50-300-lot multi-level sweeps ~0.1 % of events;
  * volume per minute: first and last RTH half hours above midday (~3x, ~2x), overnight < 0.3x the RTH mean;
  * the night before (00:00-08:30 CT) ranges 0.15-0.8x the RTH range (median, ~0.4);
  * roll: ESH9 ~5 points over ESZ8 in Dec 2018 (2018 carry ~0.8 %), ~55 points for ESH5 over ESZ4 (2024).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import zstandard

from runtime.contracts import TradeSession
from runtime.ingest.roll import contract_symbol, third_friday
from runtime.ingest.sessions import CT, cme_equity_sessions

TICK = 250_000_000  # 0.25 index points in DBN fixed-point units (1e-9)
SPREAD_TICK = 50_000_000  # ES calendar spreads trade in 0.05 index points
F_LAST = int(dbn.F_LAST)
PUBLISHER_GLBX_MDP3 = 1
NS = 1_000_000_000
DAY_NS = 86_400 * NS

_RECORD_TYPES: dict[str, tuple[type, int]] = {
    "trades": (dbn.TradeMsg, 0),
    "tbbo": (dbn.MBP1Msg, 1),
    "mbp-1": (dbn.MBP1Msg, 1),
    "ohlcv-1s": (dbn.OHLCVMsg, 32),
    "ohlcv-1m": (dbn.OHLCVMsg, 33),
    "ohlcv-1h": (dbn.OHLCVMsg, 34),
    "ohlcv-1d": (dbn.OHLCVMsg, 35),
}


# --------------------------------------------------------------------------------------------------
# Writing DBN
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingInterval:
    """Duck-typed for ``databento_dbn.Metadata``: UTC dates, end exclusive; symbol is the instrument_id text."""

    start_date: dt.date
    end_date: dt.date
    symbol: str


@dataclass(frozen=True)
class SymbolMapping:
    """Duck-typed for ``databento_dbn.Metadata`` (mappings must be objects with attributes, not dicts)."""

    raw_symbol: str
    intervals: tuple[MappingInterval, ...]


def record_dtype(schema: str) -> np.dtype:
    """The client's own C-struct dtype for a schema (trades, tbbo, mbp-1, ohlcv-1s/1m/1h/1d)."""
    return np.dtype(_record_type(schema)[0]._dtypes)


def _record_type(schema: str) -> tuple[type, int]:
    try:
        return _RECORD_TYPES[schema]
    except KeyError:
        raise ValueError(f"unsupported schema {schema!r}; one of {sorted(_RECORD_TYPES)}") from None


def new_records(schema: str, n: int) -> np.ndarray:
    """n zeroed records of ``schema`` with the header filled (length in 4-byte words, rtype, publisher)."""
    dtype = record_dtype(schema)
    recs = np.zeros(n, dtype=dtype)
    recs["length"] = dtype.itemsize // 4
    recs["rtype"] = _record_type(schema)[1]
    recs["publisher_id"] = PUBLISHER_GLBX_MDP3
    if "action" in dtype.names:
        recs["action"] = b"T"
        recs["side"] = b"N"
    return recs


def _utc_date(ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(ns) // DAY_NS)


def _utc_midnight_ns(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_NS


def encode_dbn(
    records: np.ndarray,
    *,
    schema: str = "trades",
    symbols: Mapping[str, int] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    dataset: str = "GLBX.MDP3",
    mappings: Sequence[SymbolMapping] | None = None,
) -> bytes:
    """Uncompressed DBN bytes: v3 metadata (raw_symbol -> instrument_id) followed by the raw records.

    ``symbols`` maps raw symbol -> instrument_id; unless ``mappings`` is given, each symbol gets one interval
    covering every UTC date in [start_ns, end_ns). start/end default to the UTC midnights around ts_event.
    Slice the result to make a truncated fixture.
    """
    dtype = record_dtype(schema)
    if records.dtype != dtype:
        raise ValueError(f"records dtype does not match schema {schema!r}: use new_records({schema!r}, n)")
    symbols = dict(symbols or {})
    if start_ns is None or end_ns is None:
        if records.size == 0:
            raise ValueError("start_ns and end_ns are required for an empty file")
        first = _utc_midnight_ns(_utc_date(int(records["ts_event"].min())))
        last = _utc_midnight_ns(_utc_date(int(records["ts_event"].max()))) + DAY_NS
        start_ns = first if start_ns is None else start_ns
        end_ns = last if end_ns is None else end_ns
    if mappings is None:
        first_day, end_day = _utc_date(start_ns), _utc_date(end_ns - 1) + dt.timedelta(days=1)
        mappings = [
            SymbolMapping(sym, (MappingInterval(first_day, end_day, str(iid)),))
            for sym, iid in sorted(symbols.items())
        ]
    meta = dbn.Metadata(
        dataset=dataset,
        start=int(start_ns),
        end=int(end_ns),
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.from_str(schema),
        symbols=sorted(symbols),
        partial=[],
        not_found=[],
        mappings=list(mappings),
    )
    return bytes(meta.encode()) + np.ascontiguousarray(records).tobytes()


def write_dbn(
    path: Path,
    records: np.ndarray,
    *,
    schema: str = "trades",
    symbols: Mapping[str, int] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    dataset: str = "GLBX.MDP3",
    mappings: Sequence[SymbolMapping] | None = None,
    level: int = 3,
) -> Path:
    """Write ``records`` as a DBN file (metadata as in ``encode_dbn``); zstd-compressed when the name ends .zst."""
    payload = encode_dbn(
        records,
        schema=schema,
        symbols=symbols,
        start_ns=start_ns,
        end_ns=end_ns,
        dataset=dataset,
        mappings=mappings,
    )
    if path.name.endswith(".zst"):
        payload = zstandard.ZstdCompressor(level=level).compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------------------------------
# The synthetic market
# --------------------------------------------------------------------------------------------------

DEFAULT_START_PRICE = 6000.0  # first price of a window that starts after arch's S&P data ends (2018-12-31)
_ROLL_WINDOW_DAYS = 21  # back month and spreads are generated this many calendar days before front expiry
_SWEEP_PROB = 0.05  # share of aggressive events that take more than one price level
_BLOCK_PROB = 0.002  # share of events that are 50-300-lot blocks (the big-trade bubbles)
_N_SIDE_PROB = 0.003
_CANDIDATES = 4  # RTH bridges drawn per day; the one whose high/low best fit the real day is kept

#: Approximate cost of carry (3-month USD rate minus the S&P 500 dividend yield), annualised, by year. It sets
#: the basis of ES over the index and the calendar spread (back minus front): 2018 ~ +0.8 % -> ESH9 ~5 points
#: over ESZ8; 2024 ~ +3.7 % -> ESH5 ~55 points over ESZ4; 2013-2016 ~ -1.5 % (zero rates) -> back under front.
_CARRY_BY_YEAR = {2012: -1.6, 2013: -1.7, 2014: -1.7, 2015: -1.5, 2016: -1.1, 2017: -0.4, 2018: 0.8}
_CARRY_BY_YEAR |= {2019: 0.4, 2020: -1.2, 2021: -1.2, 2022: 1.5, 2023: 3.7, 2024: 3.7, 2025: 2.9}


def _carry(year: int) -> float:
    """Annualised carry of ES over the index for a year (the table above; its nearest year outside it)."""
    known = min(_CARRY_BY_YEAR, key=lambda y: abs(y - year))
    return _CARRY_BY_YEAR[known] / 100.0


def instrument_id(symbol: str) -> int:
    """Stable synthetic instrument_id (CME SecurityIDs are arbitrary integers, so any stable map will do)."""
    return 10_000_000 + zlib.crc32(symbol.encode()) % 90_000_000


def _intensity(local_sec: np.ndarray) -> np.ndarray:
    """Relative trade intensity by Chicago wall-clock second: thin overnight, U-shaped RTH with open/close spikes."""
    t = local_sec.astype(np.float64) / 60.0  # minutes since local midnight
    w = np.full(t.shape, 1.0)
    w[(t >= 120) & (t < 240)] = 1.6  # European morning
    w[(t >= 420) & (t < 510)] = 2.4  # pre-market
    after = t - 450  # 07:30 data releases
    w += np.where(after >= 0, 8.0 * np.exp(-np.clip(after, 0, None) / 3.0), 0.0)
    rth = (t >= 510) & (t < 900)
    since_open, to_close = t - 510, 900 - t
    u_shape = (
        7.0
        + 40.0 * np.exp(-since_open / 8.0)
        + 6.0 * np.exp(-since_open / 60.0)
        + 25.0 * np.exp(-to_close / 6.0)
        + 6.0 * np.exp(-to_close / 45.0)
    )
    w = np.where(rth, u_shape, w)
    post = (t >= 900) & (t < 960)
    w = np.where(post, 1.5 + 2.0 * np.exp(-(t - 900) / 15.0), w)
    reopen = t >= 1020  # 17:00 reopen burst
    return np.where(reopen, 1.0 + 6.0 * np.exp(-(t - 1020) / 4.0), w)


@cache
def _reference_day_weight() -> float:
    """Total intensity of a normal 17:00-16:00 session, to scale shortened and holiday trade dates."""
    secs = np.concatenate([np.arange(17 * 3600, 86_400), np.arange(0, 16 * 3600)])
    return float(_intensity(secs).sum())


def _expiries(trade_date: dt.date) -> tuple[dt.date, dt.date]:
    """(front, back) quarterly expiries for a trade date: the front is the first one on or after it."""
    year, month = trade_date.year, (trade_date.month - 1) // 3 * 3 + 3
    front_exp = third_friday(year, month)
    if front_exp < trade_date:
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)
        front_exp = third_friday(year, month)
    back_exp = third_friday(year + 1, 3) if month == 12 else third_friday(year, month + 3)
    return front_exp, back_exp


def _premium(trade_date: dt.date) -> float:
    """Front month over the index, as a fraction: carry times the time left to its expiry (0 on expiry)."""
    front_exp, _ = _expiries(trade_date)
    return _carry(trade_date.year) * (front_exp - trade_date).days / 365.0


@dataclass(frozen=True)
class _DayPlan:
    """Which contracts trade on one trade date and how volume splits between them."""

    front: str
    back: str | None
    back_share: float
    spread_share: float
    front_stop_ns: int | None  # the front stops trading here on its expiry day (08:30 CT)
    basis_ticks: int


def _day_plan(trade_date: dt.date, price_ticks: float) -> _DayPlan:
    front_exp, back_exp = _expiries(trade_date)
    basis = round(price_ticks * _carry(trade_date.year) * (back_exp - front_exp).days / 365)
    front, back = contract_symbol(front_exp), contract_symbol(back_exp)
    if (front_exp - trade_date).days > _ROLL_WINDOW_DAYS:
        return _DayPlan(front, None, 0.0, 0.0, None, basis)
    roll_date = front_exp - dt.timedelta(days=8)  # CME roll Thursday
    t = (
        float(np.busday_count(roll_date, trade_date))
        if trade_date >= roll_date
        else -float(np.busday_count(trade_date, roll_date))
    )
    back_share = 0.03 + 0.94 / (1.0 + np.exp(-(t + 0.3) / 0.7))
    spread_share = 0.004 + 0.03 * np.exp(-((t + 1.0) ** 2) / 8.0)
    stop = None
    if trade_date == front_exp:
        stop = int(dt.datetime.combine(trade_date, dt.time(8, 30), tzinfo=CT).timestamp()) * NS
    return _DayPlan(front, back, float(back_share), float(spread_share), stop, basis)


# ---- the daily anchor: real S&P 500 days from arch, synthetic ones where arch has none --------------------


@dataclass(frozen=True)
class _Anchor:
    """One RTH session's open/high/low/close of the front month, in ticks; real = taken from the S&P 500."""

    open: float
    high: float
    low: float
    close: float
    real: bool


@cache
def _spx_daily() -> dict[dt.date, tuple[float, float, float, float]]:
    """Real S&P 500 daily OHLC shipped in arch (1999-2018), by date."""
    import arch.data.sp500

    df = arch.data.sp500.load()
    return {
        d.date(): (float(o), float(h), float(lo), float(c))
        for d, o, h, lo, c in zip(df.index, df["Open"], df["High"], df["Low"], df["Close"], strict=True)
    }


def _synthetic_day(level: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """An S&P-like day after arch's data ends: ~0.3 % overnight gap, ~0.8 % fat-tailed move, ~0.8 % range."""
    o = level * float(np.exp(rng.normal(0.0, 0.003)))
    c = o * float(np.exp(0.0003 + 0.008 * rng.standard_t(4) / np.sqrt(2.0)))
    h = max(o, c) * (1.0 + abs(float(rng.normal(0.0, 0.0025))))
    lo = min(o, c) * (1.0 - abs(float(rng.normal(0.0, 0.0025))))
    return o, h, lo, c


def _anchors(
    sessions: Sequence[TradeSession], start_price: float | None, seed: int
) -> tuple[list[_Anchor | None], float]:
    """Each session's RTH anchor (None without RTH) and the first price, both in front-month ticks.

    ES = S&P x scale x (1 + front premium). ``scale`` makes the first session start at ``start_price`` (the
    real index level when None, so ESZ8 ~ SPX). Days arch does not have continue synthetically from the last
    close, from their own random stream (seeded by ``seed``) so the intraday draws do not depend on them.
    """
    spx = _spx_daily()
    first = sessions[0].trade_date
    prior = [d for d in spx if d < first]
    prem0 = _premium(first)
    if prior and first <= max(spx):
        base = spx[max(prior)][3]
        scale = 1.0 if start_price is None else start_price / (base * (1.0 + prem0))
        level = base * scale
    else:
        scale, level = 1.0, (DEFAULT_START_PRICE if start_price is None else start_price) / (1.0 + prem0)
    start_ticks = level * (1.0 + prem0) * 4.0
    rng = np.random.default_rng([seed, 2018])
    out: list[_Anchor | None] = []
    for s in sessions:
        if s.rth_close_ns - s.rth_open_ns < 60 * NS:
            out.append(None)  # no RTH (a day of mourning): the session is an overnight-only walk
            continue
        real = s.trade_date in spx
        o, h, lo, c = (v * scale for v in spx[s.trade_date]) if real else _synthetic_day(level, rng)
        m = 4.0 * (1.0 + _premium(s.trade_date))
        out.append(_Anchor(o * m, max(h, o, c) * m, min(lo, o, c) * m, c * m, real))
        level = c
    return out, start_ticks


# ---- the intraday path: Brownian bridges on the session's seconds, variance proportional to activity ------


def _bridge(a: float, b: float, var: np.ndarray, rng: np.random.Generator, k: int = 1) -> np.ndarray:
    """k Brownian bridges (rows) from ``a`` (before the first step) to ``b`` (exactly, at the last step).

    Steps have variance ``var``; the bridge pins the end in variance-time, so busy seconds move more.
    """
    z = rng.standard_normal((k, var.size), dtype=np.float32)  # float32 draws: half the cost, ample precision
    w = np.cumsum(z * np.sqrt(var).astype(np.float32), axis=1, dtype=np.float64)
    v = np.cumsum(var)
    return a + w - (v / v[-1]) * (w[:, -1:] - (b - a))


def _fit_high_low(paths: np.ndarray, anchor: _Anchor) -> np.ndarray:
    """Pick the candidate whose excursions best fit the real high/low, then stretch it onto them.

    The stretch is a monotone map of price levels fixed between open and close (so both stay exact), scaling
    what lies above max(open, close) onto the high and below min(open, close) onto the low, by at most 2.5x.
    """
    top, bottom = max(anchor.open, anchor.close), min(anchor.open, anchor.close)
    want_up, want_dn = anchor.high - top, bottom - anchor.low
    up = np.maximum(paths.max(axis=1) - top, 0.0)
    dn = np.maximum(bottom - paths.min(axis=1), 0.0)
    score = np.abs(np.log((up + 1.0) / (want_up + 1.0))) + np.abs(np.log((dn + 1.0) / (want_dn + 1.0)))
    best = int(np.argmin(score))
    x = paths[best]
    f_up = float(np.clip(want_up / up[best], 0.4, 2.5)) if up[best] > 0 else 1.0
    f_dn = float(np.clip(want_dn / dn[best], 0.4, 2.5)) if dn[best] > 0 else 1.0
    return np.where(x > top, top + (x - top) * f_up, np.where(x < bottom, bottom - (bottom - x) * f_dn, x))


def _variance_scale(anchor: _Anchor, rth_weight: float) -> float:
    """Tick^2 per unit of intensity so the RTH bridge's expected range is the real day's high - low."""
    rng_ticks, move = anchor.high - anchor.low, abs(anchor.close - anchor.open)
    excursion = np.sqrt(max(rng_ticks**2 - move**2, (0.3 * rng_ticks) ** 2))
    return max(float((excursion / 1.25) ** 2 / rth_weight), 1e-6)  # E[range of a bridge] ~ 1.25 sd


def _session_path(
    grid_ns: np.ndarray,
    intensity: np.ndarray,
    session: TradeSession,
    anchor: _Anchor | None,
    state: _State,
    rng: np.random.Generator,
) -> np.ndarray:
    """The latent front-month bid (ticks, float) for every second of the session's grid.

    Overnight: a bridge from the previous session's last price to the RTH open; RTH: a bridge open -> close
    fitted to the day's high/low; after the cash close: a free walk (the next session bridges from it).
    """
    p0 = state.price_ticks
    if anchor is None:
        steps = rng.standard_normal(grid_ns.size) * np.sqrt(state.var_scale * intensity)
        return p0 + np.cumsum(steps)
    i_open = int(np.searchsorted(grid_ns, session.rth_open_ns, side="left"))
    i_close = int(np.searchsorted(grid_ns, session.rth_close_ns, side="left"))
    rth_weight = float(intensity[i_open + 1 : i_close].sum())
    k = _variance_scale(anchor, rth_weight)
    # outside RTH the scale follows the day's whole range: on a trend day the RTH excursions (hence k) are
    # small, yet the overnight still moves (typically ~half the RTH range, quieter per minute)
    k_out = max(k, ((anchor.high - anchor.low) / 1.6) ** 2 / rth_weight)
    state.var_scale = k_out
    x = np.empty(grid_ns.size)
    x[: i_open + 1] = _bridge(p0, anchor.open, k_out * intensity[: i_open + 1], rng)[0]
    rth = _bridge(anchor.open, anchor.close, k * intensity[i_open + 1 : i_close], rng, _CANDIDATES)
    x[i_open + 1 : i_close] = _fit_high_low(rth, anchor)
    post = rng.standard_normal(grid_ns.size - i_close) * np.sqrt(k_out * intensity[i_close:])
    x[i_close:] = anchor.close + np.cumsum(post)
    return x


def _sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lots per print: 56 % 1-lots, 18 % 2-lots, the rest 3-49 from a discrete Pareto (tail index 1.5).

    Blocks of 50-300 lots are added per event in ``_generate_day`` (they are the big-trade bubbles).
    """
    u = rng.random(n)
    out = np.where(u < 0.56, 1, 2).astype(np.uint32)
    tail = u >= 0.74
    pareto = np.floor(3.0 * (1.0 - rng.random(int(tail.sum()))) ** (-1.0 / 1.5))
    out[tail] = np.minimum(pareto, 49).astype(np.uint32)
    return out


def _strictly_increasing(ts: np.ndarray) -> np.ndarray:
    """Nudge sorted timestamps so no two events share a nanosecond (sweeps are the only shared ts_event)."""
    idx = np.arange(ts.size, dtype=np.int64)
    return np.maximum.accumulate(ts - idx) + idx


def _session_grid(segments: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Start (UTC ns) and Chicago second-of-day of every whole second inside the segments."""
    starts, local = [], []
    for open_ns, close_ns in segments:
        n_sec = (close_ns - open_ns) // NS
        offset = dt.datetime.fromtimestamp(open_ns // NS, tz=CT).utcoffset()
        assert offset is not None
        sec = np.arange(n_sec, dtype=np.int64)
        starts.append(open_ns + sec * NS)
        local.append((open_ns // NS + int(offset.total_seconds()) + sec) % 86_400)
    return np.concatenate(starts), np.concatenate(local)


@dataclass
class _State:
    """What carries over from one trade date to the next."""

    price_ticks: float  # the front month's latent bid
    spread_units: int | None
    sequence: int
    front: str | None = None
    basis_ticks: int = 0
    var_scale: float = 0.1  # tick^2 per unit of intensity of the last anchored day


def _generate_day(
    session: TradeSession,
    plan: _DayPlan,
    anchor: _Anchor | None,
    rng: np.random.Generator,
    n_target: int,
    state: _State,
) -> np.ndarray:
    """All trade records of one trade date, time-ordered (vectorised over events)."""
    segments = session.segments
    if state.front is not None and plan.front != state.front:
        state.price_ticks += state.basis_ticks  # the old back month is the new front: keep its price level
    state.front, state.basis_ticks = plan.front, plan.basis_ticks
    grid_ns, grid_local = _session_grid(segments)
    intensity = _intensity(grid_local)
    path = _session_path(grid_ns, intensity, session, anchor, state, rng)
    weight = np.cumsum(intensity)
    mean_levels = 1.0 + _SWEEP_PROB * 1.4 + _BLOCK_PROB * 1.5
    day_factor = rng.lognormal(0.0, 0.15)  # busy and quiet days
    n_events = int(rng.poisson(n_target * day_factor * weight[-1] / _reference_day_weight() / mean_levels))
    n_events = max(n_events, 1)
    # sorted uniforms (normalised exponential spacings) make the bin lookup a cheap merge, not a random search
    spacings = np.cumsum(rng.exponential(1.0, n_events + 1))
    bins = np.searchsorted(weight, spacings[:-1] / spacings[-1] * weight[-1], side="right")
    # offsets stay inside their second, so sorting keeps each event aligned with its (sorted) grid second
    ts = np.sort(grid_ns[bins] + rng.integers(0, NS - 1_000_000, n_events))
    # reopen auction at every segment open: one 'N' print a few microseconds after the bell
    seg_open = np.array([o for o, _ in segments], dtype=np.int64)
    seg_close = np.array([c for _, c in segments], dtype=np.int64)
    auction_ts = seg_open + rng.integers(1_000, 900_000, len(segments))
    ts = np.concatenate([auction_ts, ts])
    sec = np.concatenate([np.searchsorted(grid_ns, seg_open), bins])  # grid second of each event
    is_auction = np.zeros(ts.size, dtype=bool)
    is_auction[: len(segments)] = True
    order = np.argsort(ts, kind="stable")
    ts, is_auction, sec = _strictly_increasing(ts[order]), is_auction[order], sec[order]
    seg = np.searchsorted(seg_open, ts, side="right") - 1
    keep = ts < seg_close[seg]  # guard: never let the nudge push a print past a close
    ts, is_auction, sec = ts[keep], is_auction[keep], sec[keep]
    n = ts.size

    # instrument per event: 0 front, 1 back, 2 calendar spread
    inst = np.zeros(n, dtype=np.int8)
    if plan.back is not None:
        u = rng.random(n)
        inst[u < plan.back_share] = 1
        inst[(u >= plan.back_share) & (u < plan.back_share + plan.spread_share)] = 2
        inst[is_auction] = 0
        if plan.front_stop_ns is not None:  # expiry day: the front's last trade is at 08:30 CT
            inst[(inst == 0) & (ts >= plan.front_stop_ns)] = 1
    outright = inst < 2

    # the bid of each event is the latent path at its second, on the tick grid
    bid = np.floor(path[sec]).astype(np.int64)
    # aggressor side follows the move: upticks are mostly buyer-initiated ('B'), downticks seller ('A')
    move = np.zeros(n, dtype=np.int64)
    move[1:] = np.diff(bid)
    p_buy = np.where(move > 0, 0.8, np.where(move < 0, 0.2, 0.5))
    buy = rng.random(n) < p_buy
    side = np.where(buy, ord("B"), ord("A")).astype(np.uint8)
    none = is_auction | (rng.random(n) < _N_SIDE_PROB)
    side[none] = ord("N")
    direction = np.where(side == ord("B"), 1, np.where(side == ord("A"), -1, 0)).astype(np.int64)
    levels = np.ones(n, dtype=np.int64)
    aggressive = outright & ~none
    u_ev = rng.random(n)
    sweep = aggressive & (u_ev < _SWEEP_PROB)
    levels[sweep] = 1 + np.minimum(rng.geometric(0.7, int(sweep.sum())), 3)
    block = aggressive & (u_ev >= _SWEEP_PROB) & (u_ev < _SWEEP_PROB + _BLOCK_PROB)
    n_block = int(block.sum())
    levels[block] = rng.choice([1, 2, 3, 4], n_block, p=[0.3, 0.35, 0.25, 0.1])
    first_px = np.where(side == ord("A"), bid, bid + 1)  # 'B' lifts the ask, 'A' hits the bid, 'N' at the ask
    first_px = first_px + np.where(inst == 1, plan.basis_ticks, 0)

    # calendar spreads: back minus front in 0.05 points, wandering a little around the carry
    spread_units = state.spread_units if state.spread_units is not None else plan.basis_ticks * 5
    is_spread = inst == 2
    n_spread = int(is_spread.sum())
    spread_path = spread_units + np.cumsum(rng.integers(-1, 2, n_spread) * (rng.random(n_spread) < 0.2))
    spread_path = np.clip(spread_path, plan.basis_ticks * 5 - 40, plan.basis_ticks * 5 + 40)

    # events -> records: a sweep is several records with the same ts_event/side at consecutive prices
    ev = np.repeat(np.arange(n), levels)
    starts = np.cumsum(levels) - levels
    level_idx = np.arange(ev.size) - starts[ev]
    recs = new_records("trades", ev.size)
    symbols = [plan.front, plan.back or plan.front, f"{plan.front}-{plan.back}"]
    ids = np.array([instrument_id(s) for s in symbols], dtype=np.uint32)
    recs["instrument_id"] = ids[inst[ev]]
    recs["ts_event"] = ts[ev]
    latency = rng.integers(150_000, 400_000, n)
    recv = np.maximum.accumulate(ts + latency)
    recs["ts_recv"] = recv[ev]
    recs["ts_in_delta"] = rng.integers(12_000, 30_000, n).astype(np.int32)[ev]
    px_ticks = first_px[ev] + direction[ev] * level_idx
    price = px_ticks * TICK
    if n_spread:
        spread_price = np.zeros(n, dtype=np.int64)
        spread_price[is_spread] = spread_path * SPREAD_TICK
        price = np.where(is_spread[ev], spread_price[ev], price)
    recs["price"] = price
    sizes = _sizes(rng, ev.size)
    if n_block:  # a block's 50-300 lots are shared out over its price levels
        in_block = block[ev]
        share = rng.uniform(0.5, 1.5, int(in_block.sum()))
        block_ev = ev[in_block]
        total = np.exp(rng.uniform(np.log(50), np.log(300), n))[block_ev]
        denom = np.bincount(block_ev, weights=share, minlength=n)[block_ev]
        sizes[in_block] = np.maximum(np.round(total * share / denom), 1).astype(np.uint32)
    auction_size = rng.integers(20, 400, n).astype(np.uint32)
    recs["size"] = np.where(is_auction[ev], auction_size[ev], sizes)
    recs["side"] = side[ev].view("S1")
    last = np.zeros(ev.size, dtype=bool)
    last[np.cumsum(levels) - 1] = True
    recs["flags"] = np.where(last, F_LAST, 0).astype(np.uint8)
    seq = state.sequence + np.cumsum(1 + rng.poisson(8, n))  # one venue message per match event
    recs["sequence"] = seq[ev].astype(np.uint32)

    state.price_ticks = float(path[-1])
    state.spread_units = int(spread_path[-1]) if n_spread else state.spread_units
    state.sequence = int(seq[-1])
    if plan.back is None or plan.front_stop_ns is not None:
        state.spread_units = None  # a new contract pair starts from its own carry
    return recs


class _DailyFiles:
    """Buffers time-ordered records and writes one .dbn.zst per UTC date of ts_recv (Databento's daily split)."""

    def __init__(self, out_dir: Path, id_to_symbol: Mapping[int, str], level: int = 3):
        self.out_dir = out_dir
        self.id_to_symbol = id_to_symbol
        self.compressor = zstandard.ZstdCompressor(level=level)
        self.pending: list[np.ndarray] = []
        self.paths: list[Path] = []

    def add(self, recs: np.ndarray) -> None:
        if recs.size:
            self.pending.append(recs)

    def flush_before(self, cutoff_ns: int | None) -> None:
        """Write every UTC date that ends at or before ``cutoff_ns`` (a UTC midnight; None = everything)."""
        while self.pending:
            first_day = int(self.pending[0]["ts_recv"][0]) // DAY_NS
            day_end = (first_day + 1) * DAY_NS
            if cutoff_ns is not None and day_end > cutoff_ns:
                return
            pieces, rest = [], []
            for recs in self.pending:  # each buffer is sorted by ts_recv: cut with a binary search, no masks
                cut = int(np.searchsorted(recs["ts_recv"], day_end, side="left"))
                pieces.append(recs[:cut])
                if cut < recs.size:
                    rest.append(recs[cut:])
            self._write(first_day, np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
            self.pending = rest

    def _write(self, day_index: int, recs: np.ndarray) -> None:
        day = dt.date(1970, 1, 1) + dt.timedelta(days=day_index)
        ids = np.unique(recs["instrument_id"])
        symbols = {self.id_to_symbol[int(i)]: int(i) for i in ids}
        start = day_index * DAY_NS
        payload = encode_dbn(recs, symbols=symbols, start_ns=start, end_ns=start + DAY_NS)
        path = self.out_dir / f"glbx-mdp3-{day:%Y%m%d}.trades.dbn.zst"
        path.write_bytes(self.compressor.compress(payload))
        self.paths.append(path)


def write_synthetic_trades(
    out_dir: Path,
    start: dt.date,
    n_days: int,
    trades_per_day: int = 300_000,
    seed: int = 7,
    start_price: float | None = None,
) -> list[Path]:
    """Write ``n_days`` CME trade dates of synthetic ES trades from the first trade date >= ``start``.

    One ``glbx-mdp3-YYYYMMDD.trades.dbn.zst`` per UTC date (of ts_recv); dataset GLBX.MDP3, stype_in
    RAW_SYMBOL -> INSTRUMENT_ID, mappings per file. ``trades_per_day`` is the record count of a normal full
    session (shortened days get fewer). ``start_price`` is the first front-month price (rounded to the tick);
    None = the real S&P level when the window starts inside arch's data (1999-2018), else DEFAULT_START_PRICE.
    Each RTH session follows the real S&P 500 day (open, high, low, close, scaled; module docstring). Same
    arguments -> byte-identical files.
    """
    if n_days < 1:
        raise ValueError("n_days must be >= 1")
    sessions = cme_equity_sessions(start, start + dt.timedelta(days=2 * n_days + 30))[:n_days]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    anchors, start_ticks = _anchors(sessions, start_price, seed)
    start_ticks = float(round(start_ticks))
    state = _State(price_ticks=start_ticks, spread_units=None, sequence=1_000_000)
    plans = [_day_plan(s.trade_date, start_ticks) for s in sessions]
    names: set[str] = set()
    for p in plans:
        names.update([p.front] + ([p.back, f"{p.front}-{p.back}"] if p.back else []))
    id_to_symbol = {instrument_id(s): s for s in names}
    if len(id_to_symbol) != len(names):
        raise RuntimeError(f"synthetic instrument_id collision among {sorted(names)}")
    files = _DailyFiles(out_dir, id_to_symbol)
    for i, (session, plan, anchor) in enumerate(zip(sessions, plans, anchors, strict=True)):
        files.add(_generate_day(session, plan, anchor, rng, trades_per_day, state))
        next_open = sessions[i + 1].open_ns if i + 1 < len(sessions) else None
        files.flush_before(None if next_open is None else next_open // DAY_NS * DAY_NS)
    return sorted(files.paths)
