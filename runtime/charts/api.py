"""Chart data API: pure functions from the derived tables to pandas frames, separate from any UI.

Why separate: the notebook widget, the static HTML charts and a later web app all ask the same questions
("10-minute candles of RTH on this day", "footprint in 1-minute buckets", "big trades above the trailing 99.9th
percentile"); answering them here, from the small per-day derived files, keeps every UI thin and testable.

Conventions (also in the docstrings below):
* `start`/`end`: a `datetime.date` is a CME trade date (both ends inclusive); a timestamp selects rows with
  start <= ts < end (tz-naive timestamps are UTC). None = the first/last trade date available.
* `interval`: whole minutes (1, 2, 5, 13, 60, ...) or "session" (one bucket per trade date). Buckets are aligned
  to the start of each trading window of the session: RTH 08:30 CT; FULL the 17:00 CT open the evening before
  (a trade date that owns a holiday session has two windows, e.g. Wed 17:00-Thu 12:00 and Thu 17:00-Fri 12:15
  for the Friday after Thanksgiving, and each starts its own buckets; a pause under 30 minutes, i.e. the
  pre-2021-06-28 15:15-15:30 CT halt, does not). The windows come from the CME calendar in exchange time
  (DST-correct) and are stored per trade date in `session_stats`, so no fixed UTC offset is used anywhere.
  A bucket never spans a trading gap; `ts` is its start and `ts_end` its end, cut at the window's close.
* Buckets without trades are not rows (like the 1-minute tables); plots show the gap.
* Frames carry UTC timestamps (`datetime64[ns, UTC]`); converting to exchange time is the UI's job.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime.derive.layout import (
    BARS_SCHEMA,
    FRONT,
    MINUTE_NS,
    available_dates,
    check_series,
    check_session,
    partition_file,
)

When = dt.date | dt.datetime | pd.Timestamp | str | None
Interval = int | Literal["session"]
#: gaps inside a trade date shorter than this (the 15-minute halt before 2021-06-28) do not re-anchor buckets
HALT_GAP_NS = 30 * MINUTE_NS


@dataclass(frozen=True)
class ChartSource:
    """Where the derived tables of one dataset and series are (passed in explicitly; no globals)."""

    derived_root: Path
    dataset_id: str
    series: str = FRONT

    def __post_init__(self) -> None:
        check_series(self.series)


# ---- reading -------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _read_file(path: str, mtime_ns: int, size: int) -> pa.Table:
    """One derived file; cached by (path, mtime, size), so a rebuilt file is read again, an unchanged one never."""
    return pq.read_table(path)


def _read(src: ChartSource, table: str, session: str, dates: Sequence[dt.date]) -> pa.Table | None:
    tables = []
    for d in dates:
        p = partition_file(src.derived_root, src.dataset_id, src.series, table, session, d)
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        tables.append(_read_file(str(p), st.st_mtime_ns, st.st_size))
    if not tables:
        return None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _frame(tbl: pa.Table | None, columns: Sequence[str], ts_cols: Sequence[str] = ()) -> pd.DataFrame:
    """Arrow -> pandas with timestamps as int64 ns (fast numpy maths; converted back on output)."""
    if tbl is None or tbl.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ts_cols else "float64") for c in columns})
    data = {}
    for c in columns:
        col = tbl.column(c)
        if c in ts_cols:
            data[c] = col.cast(pa.int64()).to_numpy()
        elif c == "trade_date":
            data[c] = col.cast(pa.int32()).to_numpy()  # days since epoch
        else:
            data[c] = col.to_numpy(zero_copy_only=False) if col.num_chunks else np.array([])
    return pd.DataFrame(data)


def trade_dates(src: ChartSource, session: str) -> list[dt.date]:
    """Trade dates with derived data for this session (directory listing only)."""
    return available_dates(
        src.derived_root, src.dataset_id, src.series, "session_stats", check_session(session)
    )


def _to_ns(x: dt.datetime | pd.Timestamp) -> int:
    ts = pd.Timestamp(x)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


@dataclass(frozen=True)
class _Window:
    dates: tuple[dt.date, ...]
    lo_ns: int | None
    hi_ns: int | None


def _parse_when(x: When) -> dt.date | pd.Timestamp | None:
    """'YYYY-MM-DD' is a trade date; any other string is a timestamp (tz-naive = UTC)."""
    if isinstance(x, str):
        text = x.strip()
        return dt.date.fromisoformat(text) if len(text) == 10 else pd.Timestamp(text)
    if isinstance(x, dt.datetime):  # before the date check: a datetime is also a date
        return pd.Timestamp(x)
    return x


def _window(src: ChartSource, session: str, start: When, end: When) -> _Window:
    """Trade dates to read and an optional [lo, hi) timestamp cut."""
    start, end = _parse_when(start), _parse_when(end)
    days = trade_dates(src, session)
    if not days:
        return _Window((), None, None)
    lo_ns = hi_ns = None
    if isinstance(start, dt.datetime | pd.Timestamp):
        lo_ns = _to_ns(start)
        first = pd.Timestamp(lo_ns, tz="UTC").date() - dt.timedelta(days=4)
    else:
        first = start if start is not None else days[0]
    if isinstance(end, dt.datetime | pd.Timestamp):
        hi_ns = _to_ns(end)
        last = pd.Timestamp(hi_ns, tz="UTC").date() + dt.timedelta(days=4)
    else:
        last = end if end is not None else days[-1]
    picked = [d for d in days if first <= d <= last]
    if lo_ns is not None or hi_ns is not None:  # keep the dates whose session overlaps [lo, hi)
        st = _frame(
            _read(src, "session_stats", session, picked),
            ["trade_date", "open_ts", "close_ts"],
            ("open_ts", "close_ts"),
        )
        keep = np.ones(len(st), dtype=bool)
        if lo_ns is not None:
            keep &= st["close_ts"].to_numpy() > lo_ns
        if hi_ns is not None:
            keep &= st["open_ts"].to_numpy() < hi_ns
        ok = set(st.loc[keep, "trade_date"].tolist())
        picked = [d for d in picked if (d - dt.date(1970, 1, 1)).days in ok]
    return _Window(tuple(picked), lo_ns, hi_ns)


def _cut(df: pd.DataFrame, w: _Window, col: str) -> pd.DataFrame:
    if w.lo_ns is None and w.hi_ns is None:
        return df
    m = np.ones(len(df), dtype=bool)
    if w.lo_ns is not None:
        m &= df[col].to_numpy() >= w.lo_ns
    if w.hi_ns is not None:
        m &= df[col].to_numpy() < w.hi_ns
    return df.loc[m]


# ---- session windows and bucketing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sessions:
    """session_stats of the selected dates, flattened for vectorised bucketing (all UTC ns)."""

    table: pd.DataFrame  # trade_date (days since epoch), open_ts, close_ts, n_trades, n_events, ...
    seg_open: np.ndarray
    seg_close: np.ndarray
    seg_day: np.ndarray


def sessions(src: ChartSource, session: str, dates: Sequence[dt.date]) -> Sessions:
    """The stored session windows and counts of these trade dates (what bucketing and thresholds need)."""
    tbl = _read(src, "session_stats", check_session(session), dates)
    cols = ["trade_date", "open_ts", "close_ts", "n_trades", "n_events", "volume", "big_trade_floor"]
    df = _frame(tbl, cols, ("open_ts", "close_ts"))
    if tbl is None or tbl.num_rows == 0:
        empty = np.array([], dtype=np.int64)
        return Sessions(df, empty, empty, empty)
    so = tbl.column("segment_open").combine_chunks()
    sc = tbl.column("segment_close").combine_chunks()
    lengths = np.diff(so.offsets.to_numpy())
    seg_open = so.flatten().cast(pa.int64()).to_numpy()
    seg_close = sc.flatten().cast(pa.int64()).to_numpy()
    seg_day = np.repeat(df["trade_date"].to_numpy(), lengths)
    order = np.argsort(seg_open, kind="stable")
    seg_open, seg_close, seg_day = seg_open[order], seg_close[order], seg_day[order]
    # a short pause (the pre-2021 15:15-15:30 CT halt) does not start a new window; a holiday gap does
    joined = np.zeros(len(seg_open), dtype=bool)
    joined[1:] = (seg_day[1:] == seg_day[:-1]) & (seg_open[1:] - seg_close[:-1] < HALT_GAP_NS)
    keep = ~joined
    last_close = np.maximum.reduceat(seg_close, np.flatnonzero(keep)) if len(seg_open) else seg_close
    return Sessions(df, seg_open[keep], last_close, seg_day[keep])


def _step_ns(interval: Interval) -> int | None:
    if interval == "session":
        return None
    if isinstance(interval, bool) or not isinstance(interval, int | np.integer) or int(interval) < 1:
        raise ValueError(f"interval must be a whole number of minutes >= 1 or 'session', got {interval!r}")
    return int(interval) * MINUTE_NS


def bucket_starts(
    ts_ns: np.ndarray, day: np.ndarray, sess: Sessions, interval: Interval
) -> tuple[np.ndarray, np.ndarray]:
    """(bucket start, bucket end) per timestamp: aligned to the start of its trading window, end cut at its close.

    A timestamp before its trade date's first window (a print in the maintenance break) is anchored to that
    first window; "session" gives one bucket per trade date, [open_ts, close_ts).
    """
    step = _step_ns(interval)
    if len(ts_ns) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    days = sess.table["trade_date"].to_numpy()
    pos = np.searchsorted(days, day)
    pos = np.clip(pos, 0, max(len(days) - 1, 0))
    if step is None:
        return sess.table["open_ts"].to_numpy()[pos], sess.table["close_ts"].to_numpy()[pos]
    if len(sess.seg_open) == 0:  # no windows known: align to UTC minutes
        start = ts_ns // step * step
        return start, start + step
    j = np.clip(np.searchsorted(sess.seg_open, ts_ns, side="right") - 1, 0, len(sess.seg_open) - 1)
    first_of_day = np.searchsorted(sess.seg_day, day, side="left")
    first_of_day = np.clip(first_of_day, 0, len(sess.seg_open) - 1)
    j = np.where(sess.seg_day[j] == day, j, first_of_day)
    anchor = sess.seg_open[j]
    start = anchor + np.floor_divide(ts_ns - anchor, step) * step
    end = np.minimum(start + step, np.maximum(sess.seg_close[j], start + MINUTE_NS))
    return start, end


def _utc(ns: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True))


def _dates(days: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(days, dtype=np.int64), unit="D")).dt.date


# ---- candles and volume -------------------------------------------------------------------------------

CANDLE_COLUMNS = [
    "trade_date",
    "ts",
    "ts_end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "buy_volume",
    "sell_volume",
    "delta",
    "n_trades",
    "vwap",
]


def _group_ends(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end index of each run of equal consecutive key tuples (rows are sorted by the keys)."""
    n = len(keys[0])
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in keys:
        change |= k[1:] != k[:-1]
    brk = np.flatnonzero(change) + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [n]])
    return starts, ends


def candles(
    src: ChartSource, session: str, start: When = None, end: When = None, interval: Interval = 1
) -> pd.DataFrame:
    """OHLC candles with volume, buy/sell volume, delta (buy - sell), trade count and VWAP per bucket."""
    session = check_session(session)
    w = _window(src, session, start, end)
    cols = [n for n in BARS_SCHEMA.names if n not in ("session", "symbol")]  # the derived table's own columns
    bars = _cut(_frame(_read(src, "bars_1m", session, w.dates), cols, ("ts",)), w, "ts")
    if bars.empty:
        return _empty(CANDLE_COLUMNS)
    sess = sessions(src, session, w.dates)
    ts = bars["ts"].to_numpy()
    day = bars["trade_date"].to_numpy()
    b0, b1 = bucket_starts(ts, day, sess, interval)
    order = np.lexsort((ts, b0, day))
    ts, day, b0, b1 = ts[order], day[order], b0[order], b1[order]
    bars = bars.iloc[order]
    s, e = _group_ends(day, b0)
    vol = bars["volume"].to_numpy()
    vwap = np.nan_to_num(bars["vwap"].to_numpy(dtype=np.float64)) * vol
    buy = np.add.reduceat(bars["buy_volume"].to_numpy(), s)
    sell = np.add.reduceat(bars["sell_volume"].to_numpy(), s)
    v = np.add.reduceat(vol, s)
    out = pd.DataFrame(
        {
            "trade_date": _dates(day[s]),
            "ts": _utc(b0[s]),
            "ts_end": _utc(b1[s]),
            "open": bars["open"].to_numpy()[s],
            "high": np.maximum.reduceat(bars["high"].to_numpy(), s),
            "low": np.minimum.reduceat(bars["low"].to_numpy(), s),
            "close": bars["close"].to_numpy()[e - 1],
            "volume": v,
            "buy_volume": buy,
            "sell_volume": sell,
            "delta": buy - sell,
            "n_trades": np.add.reduceat(bars["n_trades"].to_numpy(), s),
            "vwap": np.where(v > 0, np.add.reduceat(vwap, s) / np.where(v > 0, v, 1), np.nan),
        }
    )
    return out


def volume(
    src: ChartSource, session: str, start: When = None, end: When = None, interval: Interval = 1
) -> pd.DataFrame:
    """Volume per bucket split by aggressor: buy, sell and other (side 0), plus delta and trade count."""
    c = candles(src, session, start, end, interval)
    out = c[["trade_date", "ts", "ts_end", "volume", "buy_volume", "sell_volume", "delta", "n_trades"]].copy()
    out.insert(6, "other_volume", out["volume"] - out["buy_volume"] - out["sell_volume"])
    return out


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})


# ---- footprint ----------------------------------------------------------------------------------------

FOOTPRINT_COLUMNS = [
    "trade_date",
    "ts",
    "ts_end",
    "price",
    "bid_volume",
    "ask_volume",
    "other_volume",
    "volume",
    "delta",
    "n_trades",
    "buy_imbalance",
    "sell_imbalance",
    "poc",
]


def footprint(
    src: ChartSource,
    session: str,
    start: When = None,
    end: When = None,
    interval: Interval = 1,
    *,
    ratio: float = 3.0,
    min_volume: int = 10,
    tick: float = 0.25,
) -> pd.DataFrame:
    """Volume at price per bucket split by aggressor (bid x ask), with diagonal imbalances and the POC.

    Diagonal imbalance (ATAS/Quantower convention): buy imbalance at P when ask[P] >= ratio * bid[P - tick];
    sell imbalance at P when bid[P] >= ratio * ask[P + tick]; in both cases the imbalanced side must also be at
    least `min_volume` (and > 0). Zero-opposite rule: a missing or zero opposite level counts as 0, so the
    level is an imbalance exactly when its own side passes `min_volume`.
    POC = the price with the largest total volume in the bucket; ties go to the price nearest the bucket's VWAP,
    then to the lower price (deterministic).
    The footprint interval is independent of the candles' (e.g. 1-minute buckets inside 10-minute candles).
    """
    session = check_session(session)
    if ratio <= 0 or tick <= 0:
        raise ValueError("ratio and tick must be > 0")
    w = _window(src, session, start, end)
    cols = ["trade_date", "ts", "price", "bid_volume", "ask_volume", "other_volume", "n_trades"]
    fp = _cut(_frame(_read(src, "footprint_base_1m", session, w.dates), cols, ("ts",)), w, "ts")
    if fp.empty:
        return _empty(FOOTPRINT_COLUMNS)
    sess = sessions(src, session, w.dates)
    b0, b1 = bucket_starts(fp["ts"].to_numpy(), fp["trade_date"].to_numpy(), sess, interval)
    lvl = np.rint(fp["price"].to_numpy() / tick).astype(np.int64)
    g = (
        pd.DataFrame(
            {
                "trade_date": fp["trade_date"].to_numpy(),
                "b0": b0,
                "b1": b1,
                "lvl": lvl,
                "price": fp["price"].to_numpy(),
                "bid_volume": fp["bid_volume"].to_numpy(),
                "ask_volume": fp["ask_volume"].to_numpy(),
                "other_volume": fp["other_volume"].to_numpy(),
                "n_trades": fp["n_trades"].to_numpy(),
            }
        )
        .groupby(["b0", "lvl"], sort=True)
        .agg(
            trade_date=("trade_date", "first"),
            b1=("b1", "max"),
            price=("price", "first"),
            bid_volume=("bid_volume", "sum"),
            ask_volume=("ask_volume", "sum"),
            other_volume=("other_volume", "sum"),
            n_trades=("n_trades", "sum"),
        )
        .reset_index()
    )
    bid, ask = g["bid_volume"].to_numpy(), g["ask_volume"].to_numpy()
    vol = bid + ask + g["other_volume"].to_numpy()
    b0a, lv = g["b0"].to_numpy(), g["lvl"].to_numpy()
    # rows are sorted by (bucket, level): the neighbour one tick away is found by binary search on the pair
    rank = np.unique(b0a, return_inverse=True)[1]
    lmin = int(lv.min())
    code = _pair_code(rank, lv, lmin)
    bid_below = _lookup(code, _pair_code(rank, lv - 1, lmin), bid)
    ask_above = _lookup(code, _pair_code(rank, lv + 1, lmin), ask)
    buy_imb = (ask > 0) & (ask >= min_volume) & (ask >= ratio * bid_below)
    sell_imb = (bid > 0) & (bid >= min_volume) & (bid >= ratio * ask_above)
    # POC with its tie-break
    s, _ = _group_ends(b0a)  # rows are sorted by (bucket, level)
    seg = np.repeat(np.arange(len(s)), np.diff(np.concatenate([s, [len(b0a)]])))
    price = g["price"].to_numpy()
    vwap = np.add.reduceat(price * vol, s) / np.maximum(np.add.reduceat(vol, s), 1)
    dist = np.abs(price - vwap[seg])
    order = np.lexsort((price, dist, -vol, seg))
    first = np.ones(len(order), dtype=bool)
    first[1:] = seg[order][1:] != seg[order][:-1]
    poc = np.zeros(len(g), dtype=bool)
    poc[order[first]] = True
    return pd.DataFrame(
        {
            "trade_date": _dates(g["trade_date"].to_numpy()),
            "ts": _utc(b0a),
            "ts_end": _utc(g["b1"].to_numpy()),
            "price": price,
            "bid_volume": bid,
            "ask_volume": ask,
            "other_volume": g["other_volume"].to_numpy(),
            "volume": vol,
            "delta": ask - bid,
            "n_trades": g["n_trades"].to_numpy(),
            "buy_imbalance": buy_imb,
            "sell_imbalance": sell_imb,
            "poc": poc,
        }
    )


def _pair_code(bucket_rank: np.ndarray, level: np.ndarray, lvl_min: int) -> np.ndarray:
    """One int64 per (bucket, price level) that sorts like the pair (levels offset to stay positive)."""
    return (bucket_rank.astype(np.int64) << 32) | (level - lvl_min + 1)


def _lookup(keys: np.ndarray, want: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values at `want` where it exists among the sorted `keys`, else 0."""
    idx = np.searchsorted(keys, want)
    idx_c = np.clip(idx, 0, len(keys) - 1)
    hit = (idx < len(keys)) & (keys[idx_c] == want)
    return np.where(hit, values[idx_c], 0)


# ---- big trades ---------------------------------------------------------------------------------------

BIG_TRADE_COLUMNS = [
    "trade_date",
    "ts_event",
    "symbol",
    "price",
    "min_price",
    "max_price",
    "size",
    "side",
    "n_fills",
    "kind",
    "threshold",
]


def _mode_mask(tbl: pa.Table, mode: str) -> pa.Array:
    """Rows of big_trade_events that are events in this mode (computed in Arrow: no string columns in pandas)."""
    kind = tbl.column("kind")
    if mode == "print":
        return pc.equal(kind, "print")
    if mode == "sweep":
        return pc.or_(
            pc.equal(kind, "sweep"), pc.and_(pc.equal(kind, "print"), pc.invert(tbl.column("sweep_fill")))
        )
    raise ValueError(f"mode must be 'print' or 'sweep', got {mode!r}")


@lru_cache(maxsize=1024)
def _event_sizes(path: str, mtime_ns: int, size: int, mode: str) -> np.ndarray:
    """Sorted event sizes of one stored day in one mode (the trailing-percentile input; cached per file)."""
    tbl = pq.read_table(path, columns=["size", "kind", "sweep_fill"])
    return np.sort(tbl.filter(_mode_mask(tbl, mode)).column("size").to_numpy())


def _day_sizes(src: ChartSource, session: str, day: dt.date, mode: str) -> np.ndarray:
    p = partition_file(src.derived_root, src.dataset_id, src.series, "big_trade_events", session, day)
    try:
        st = p.stat()
    except FileNotFoundError:
        return np.array([], dtype=np.int64)
    return _event_sizes(str(p), st.st_mtime_ns, st.st_size, mode)


def big_trades(
    src: ChartSource,
    session: str,
    start: When = None,
    end: When = None,
    mode: str = "sweep",
    min_size: int | None = None,
    percentile: float | None = None,
    lookback_sessions: int = 20,
) -> pd.DataFrame:
    """Big trades: mode "print" = every canonical record on its own; "sweep" = one row per aggressor event
    (all records with the same ts_event and side; a single record is an event of one fill).

    Threshold per trade date = the largest of: the build's floor (stored events only), `min_size`, and the
    `percentile` (nearest rank) of the event sizes of the same mode over the previous `lookback_sessions` trade
    dates of the same session type (RTH or FULL) and series, never the date itself (no lookahead). The
    percentile counts every event of those sessions, not only the stored ones (session_stats has the counts);
    when it falls below the floor it is clamped to the floor. A date without any earlier session has no
    percentile threshold and shows nothing. The threshold used is in the `threshold` column.
    """
    session = check_session(session)
    if mode not in ("print", "sweep"):
        raise ValueError(f"mode must be 'print' or 'sweep', got {mode!r}")
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError("percentile must be in (0, 100]")
    if lookback_sessions < 1:
        raise ValueError("lookback_sessions must be >= 1")
    w = _window(src, session, start, end)
    if not w.dates:
        return _empty(BIG_TRADE_COLUMNS)
    need = set(w.dates)
    prev: dict[dt.date, list[dt.date]] = {}
    if percentile is not None:
        all_days = trade_dates(src, session)
        for d in w.dates:
            i = all_days.index(d)
            prev[d] = all_days[max(0, i - lookback_sessions) : i]
            need.update(prev[d])
    stats = sessions(src, session, sorted(need)).table.set_index("trade_date")
    n_all = stats["n_trades" if mode == "print" else "n_events"]
    floor = stats["big_trade_floor"]
    thresholds: dict[int, float] = {}
    for d in w.dates:
        k = _days(d)
        base = float(floor.get(k, 1))
        if min_size is not None:
            base = max(base, float(min_size))
        if percentile is not None:
            sizes = {_days(p): _day_sizes(src, session, p, mode) for p in prev[d]}
            pct = _trailing_percentile(list(sizes), sizes, n_all, floor, percentile)
            base = max(base, pct) if not math.isnan(pct) else math.nan
        thresholds[k] = base
    tbl = _read(src, "big_trade_events", session, list(w.dates))
    if tbl is None:
        return _empty(BIG_TRADE_COLUMNS)
    tbl = tbl.filter(_mode_mask(tbl, mode))
    day = tbl.column("trade_date").cast(pa.int32()).to_numpy()
    keys = np.array(sorted(thresholds), dtype=np.int32)
    vals = np.array([thresholds[k] for k in keys], dtype=np.float64)
    thr = (
        vals[np.clip(np.searchsorted(keys, day), 0, len(keys) - 1)]
        if len(keys)
        else np.full(len(day), np.nan)
    )
    size = tbl.column("size").to_numpy()
    keep = ~np.isnan(thr) & (size >= np.nan_to_num(thr, nan=np.inf))
    ts = tbl.column("ts_event").cast(pa.int64()).to_numpy()
    if w.lo_ns is not None:
        keep &= ts >= w.lo_ns
    if w.hi_ns is not None:
        keep &= ts < w.hi_ns
    kept = tbl.filter(pa.array(keep))
    out = kept.select([c for c in BIG_TRADE_COLUMNS if c != "threshold"]).to_pandas()
    out["threshold"] = thr[keep]
    return out[BIG_TRADE_COLUMNS]


def _days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _trailing_percentile(
    days: Sequence[int], sizes_by_day: dict[int, np.ndarray], n_all: pd.Series, floor: pd.Series, q: float
) -> float:
    """Nearest-rank q-th percentile of all event sizes of `days`, from the stored (>= floor) sizes and counts."""
    if not days:
        return math.nan
    f = max(int(floor.get(d, 1)) for d in days)
    stored = [s[s >= f] for d in days if (s := sizes_by_day.get(d)) is not None and len(s)]
    big = np.sort(np.concatenate(stored)) if stored else np.array([], dtype=np.int64)
    n = int(sum(int(n_all.get(d, 0)) for d in days))
    if n == 0:
        return math.nan
    k = max(1, math.ceil(q / 100.0 * n))  # rank of the threshold among all n events
    below = n - len(big)  # events under the floor: their sizes are not stored, only counted
    if k <= below:
        return float(f)
    return float(big[k - below - 1])


# ---- CVD ----------------------------------------------------------------------------------------------

CVD_COLUMNS = ["trade_date", "ts", "ts_end", "delta", "cvd_open", "cvd_high", "cvd_low", "cvd"]


def cvd(
    src: ChartSource,
    session: str,
    start: When = None,
    end: When = None,
    interval: Interval = 1,
    reset: Literal["session", "continuous"] = "session",
) -> pd.DataFrame:
    """Cumulative delta per bucket as OHLC (Sierra style): open = the previous close, high/low = extremes of the
    1-minute closes inside the bucket (and the open), close = open + the bucket's delta.

    reset="session": restarts at 0 at every session start (FULL 17:00 CT, RTH 08:30 CT), as stored;
    reset="continuous": one running sum over the requested window, starting at 0 at its first minute (anchored
    at `start`, so the same window always gives the same numbers).
    """
    session = check_session(session)
    if reset not in ("session", "continuous"):
        raise ValueError(f"reset must be 'session' or 'continuous', got {reset!r}")
    w = _window(src, session, start, end)
    c = _cut(
        _frame(_read(src, "cvd_1m", session, w.dates), ["trade_date", "ts", "delta", "cvd"], ("ts",)), w, "ts"
    )
    if c.empty:
        return _empty(CVD_COLUMNS)
    c = c.sort_values(["trade_date", "ts"], kind="stable")
    delta = c["delta"].to_numpy()
    close_1m = np.cumsum(delta) if reset == "continuous" else c["cvd"].to_numpy()
    sess = sessions(src, session, w.dates)
    day = c["trade_date"].to_numpy()
    b0, b1 = bucket_starts(c["ts"].to_numpy(), day, sess, interval)
    order = np.lexsort((c["ts"].to_numpy(), b0, day))
    delta, close_1m, day, b0, b1 = delta[order], close_1m[order], day[order], b0[order], b1[order]
    s, e = _group_ends(day, b0)
    d = np.add.reduceat(delta, s)
    close = close_1m[e - 1]
    open_ = close - d
    hi = np.maximum(np.maximum.reduceat(close_1m, s), open_)
    lo = np.minimum(np.minimum.reduceat(close_1m, s), open_)
    return pd.DataFrame(
        {
            "trade_date": _dates(day[s]),
            "ts": _utc(b0[s]),
            "ts_end": _utc(b1[s]),
            "delta": d,
            "cvd_open": open_,
            "cvd_high": hi,
            "cvd_low": lo,
            "cvd": close,
        }
    )
