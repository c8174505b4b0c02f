"""Genuine synthetic Databento DBN trade files for ES (GLBX.MDP3), deterministic by seed.

Why: the ingest, sessions and order-flow code must be exercised on the real file format (DBN v3 metadata + raw
C-struct records, zstd-compressed, one file per UTC date as Databento delivers them) at realistic scale, without
shipping licensed data. Records are built as numpy structured arrays with the client's own dtypes, so the real
``databento.DBNStore`` reads them back.

What the synthetic market has: Globex hours from ``cme_equity_sessions`` (daily break, weekends, holiday sessions,
early closes, DST), nothing outside a session segment; a tick-grid random walk (~1 % daily vol); a U-shaped RTH
intensity with spikes at 08:30 CT and the 15:00 close, thin overnight; heavy-tailed sizes; multi-level sweeps
(same ts_event and side, consecutive prices); 'N' prints at each reopen auction; two quarterly contracts around
each roll (volume moves to the back month ~8 days before the third-Friday expiry) plus calendar-spread prints.
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

_START_PRICE_TICKS = 6000 * 4  # 6000.00
_DAILY_VOL = 0.01
_CARRY = 0.035  # rates minus dividends, annualised: back month trades ~50 points over the front
_ROLL_WINDOW_DAYS = 21  # back month and spreads are generated this many calendar days before front expiry
_SWEEP_PROB = 0.05
_N_SIDE_PROB = 0.003


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


@dataclass(frozen=True)
class _DayPlan:
    """Which contracts trade on one trade date and how volume splits between them."""

    front: str
    back: str | None
    back_share: float
    spread_share: float
    front_stop_ns: int | None  # the front stops trading here on its expiry day (08:30 CT)
    basis_ticks: int


def _day_plan(trade_date: dt.date, price_ticks: int) -> _DayPlan:
    year, month = trade_date.year, (trade_date.month - 1) // 3 * 3 + 3
    front_exp = third_friday(year, month)
    if front_exp < trade_date:
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)
        front_exp = third_friday(year, month)
    back_exp = third_friday(year + 1, 3) if month == 12 else third_friday(year, month + 3)
    basis = round(price_ticks * _CARRY * (back_exp - front_exp).days / 365)
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


def _sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Heavy-tailed lots: ~90 % 1-5ish (geometric), ~9 % 5-50, ~1 % block-like 50-500 (log-uniform)."""
    out = rng.geometric(0.45, n).astype(np.uint32)
    u = rng.random(n)
    mid, big = (u >= 0.90) & (u < 0.99), u >= 0.99
    out[mid] = np.exp(rng.uniform(np.log(5), np.log(50), int(mid.sum()))).astype(np.uint32)
    out[big] = np.exp(rng.uniform(np.log(50), np.log(500), int(big.sum()))).astype(np.uint32)
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

    price_ticks: int  # the front month's bid
    spread_units: int | None
    sequence: int
    front: str | None = None
    basis_ticks: int = 0


def _generate_day(
    segments: Sequence[tuple[int, int]],
    plan: _DayPlan,
    rng: np.random.Generator,
    n_target: int,
    state: _State,
) -> np.ndarray:
    """All trade records of one trade date, time-ordered (vectorised over events)."""
    if state.front is not None and plan.front != state.front:
        state.price_ticks += state.basis_ticks  # the old back month is the new front: keep its price level
    state.front, state.basis_ticks = plan.front, plan.basis_ticks
    grid_ns, grid_local = _session_grid(segments)
    weight = np.cumsum(_intensity(grid_local))
    mean_levels = 1.0 + _SWEEP_PROB * 2.0
    day_factor = rng.lognormal(0.0, 0.15)  # busy and quiet days
    n_events = int(rng.poisson(n_target * day_factor * weight[-1] / _reference_day_weight() / mean_levels))
    n_events = max(n_events, 1)
    # sorted uniforms (normalised exponential spacings) make the bin lookup a cheap merge, not a random search
    spacings = np.cumsum(rng.exponential(1.0, n_events + 1))
    bins = np.searchsorted(weight, spacings[:-1] / spacings[-1] * weight[-1], side="right")
    ts = np.sort(grid_ns[bins] + rng.integers(0, NS - 1_000_000, n_events))
    # reopen auction at every segment open: one 'N' print a few microseconds after the bell
    auction_ts = np.array([o for o, _ in segments], dtype=np.int64) + rng.integers(
        1_000, 900_000, len(segments)
    )
    ts = np.concatenate([auction_ts, ts])
    is_auction = np.zeros(ts.size, dtype=bool)
    is_auction[: len(segments)] = True
    order = np.argsort(ts, kind="stable")
    ts, is_auction = _strictly_increasing(ts[order]), is_auction[order]
    seg_close = np.array([c for _, c in segments], dtype=np.int64)
    seg_open = np.array([o for o, _ in segments], dtype=np.int64)
    seg = np.searchsorted(seg_open, ts, side="right") - 1
    keep = ts < seg_close[seg]  # guard: never let the nudge push a print past a close
    ts, is_auction = ts[keep], is_auction[keep]
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

    # latent bid path (ticks) driven by the outright events; fat-tailed steps give ~1 % daily vol
    n_out = int(outright.sum())
    step_sd = _DAILY_VOL * state.price_ticks / np.sqrt(max(n_out, 1))
    steps = np.zeros(n, dtype=np.int64)
    steps[outright] = np.round(rng.standard_t(4, n_out) / np.sqrt(2.0) * step_sd).astype(np.int64)
    # aggressor side follows the move: upticks are mostly buyer-initiated ('B'), downticks seller ('A')
    p_buy = np.where(steps > 0, 0.8, np.where(steps < 0, 0.2, 0.5))
    buy = rng.random(n) < p_buy
    side = np.where(buy, ord("B"), ord("A")).astype(np.uint8)
    none = is_auction | (rng.random(n) < _N_SIDE_PROB)
    side[none] = ord("N")
    direction = np.where(side == ord("B"), 1, np.where(side == ord("A"), -1, 0)).astype(np.int64)
    levels = np.ones(n, dtype=np.int64)
    sweep = outright & ~none & (rng.random(n) < _SWEEP_PROB)
    levels[sweep] = 1 + np.minimum(rng.geometric(0.5, int(sweep.sum())), 7)
    impact = (levels - 1) * direction  # a sweep moves the book for the next event
    bid = state.price_ticks + np.cumsum(steps) + np.concatenate([[0], np.cumsum(impact)[:-1]])
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
    auction_size = rng.integers(20, 400, n).astype(np.uint32)
    recs["size"] = np.where(is_auction[ev], auction_size[ev], sizes)
    recs["side"] = side[ev].view("S1")
    last = np.zeros(ev.size, dtype=bool)
    last[np.cumsum(levels) - 1] = True
    recs["flags"] = np.where(last, F_LAST, 0).astype(np.uint8)
    seq = state.sequence + np.cumsum(1 + rng.poisson(8, n))  # one venue message per match event
    recs["sequence"] = seq[ev].astype(np.uint32)

    state.price_ticks = int(bid[outright][-1]) if n_out else state.price_ticks
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
    start_price: float = _START_PRICE_TICKS / 4,
) -> list[Path]:
    """Write ``n_days`` CME trade dates of synthetic ES trades from the first trade date >= ``start``.

    One ``glbx-mdp3-YYYYMMDD.trades.dbn.zst`` per UTC date (of ts_recv); dataset GLBX.MDP3, stype_in
    RAW_SYMBOL -> INSTRUMENT_ID, mappings per file. ``trades_per_day`` is the record count of a normal full
    session (shortened days get fewer). ``start_price`` is the first front-month price (rounded to the tick).
    Same arguments -> byte-identical files.
    """
    if n_days < 1:
        raise ValueError("n_days must be >= 1")
    sessions = cme_equity_sessions(start, start + dt.timedelta(days=2 * n_days + 30))[:n_days]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start_ticks = round(start_price * 4)
    state = _State(price_ticks=start_ticks, spread_units=None, sequence=1_000_000)
    plans = [_day_plan(s.trade_date, start_ticks) for s in sessions]
    names: set[str] = set()
    for p in plans:
        names.update([p.front] + ([p.back, f"{p.front}-{p.back}"] if p.back else []))
    id_to_symbol = {instrument_id(s): s for s in names}
    if len(id_to_symbol) != len(names):
        raise RuntimeError(f"synthetic instrument_id collision among {sorted(names)}")
    files = _DailyFiles(out_dir, id_to_symbol)
    for i, (session, plan) in enumerate(zip(sessions, plans, strict=True)):
        files.add(_generate_day(session.segments, plan, rng, trades_per_day, state))
        next_open = sessions[i + 1].open_ns if i + 1 < len(sessions) else None
        files.flush_before(None if next_open is None else next_open // DAY_NS * DAY_NS)
    return sorted(files.paths)
