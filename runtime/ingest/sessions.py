"""CME equity-index (ES) trade dates, Globex trading segments and RTH windows, as UTC nanoseconds.

Why this module exists: a trade's CME *trade date* is not its calendar date. The Globex session that opens at
17:00 CT belongs to the next trade date, and an exchange holiday is not a trade date at all: its shortened
session (e.g. Thanksgiving 17:00 Wed -> 12:00 Thu) is traded "for trade date" Friday. Daily bars, CVD resets and
canonical partitions all hang off this, so it is computed once here from `pandas_market_calendars` (pmc):

* ``'CME Globex Equity'`` gives each Globex session's open/close (early closes at 12:15 CT, holiday halts at
  12:00 CT) but labels a holiday's shortened session with the holiday's own date;
* ``'CME_TradeDate'`` gives the trade dates (no holidays) but no hours.

A trade date owns every Globex session labelled after the previous trade date up to and including itself.
Known pmc errors are corrected by the documented ``OVERRIDES`` table below. All local times are converted with
zoneinfo America/Chicago (never fixed offsets), so DST weeks come out right.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pandas_market_calendars as pmc
from dateutil.easter import easter

from runtime.contracts import RTH_HOURS, TradeSession

CT = ZoneInfo("America/Chicago")
_UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS_PER_DAY = 86_400 * 1_000_000_000

#: pmc's Globex equity hours are only modelled for the 17:00-16:00 era (CME_EQUITY_MODERN_HOURS_START in pmc).
SUPPORTED_FROM = dt.date(2012, 11, 19)
#: first trade date without the 15:15-15:30 CT daily halt (CME moved to continuous 17:00-16:00 trading).
HALT_ABOLISHED = dt.date(2021, 6, 28)
HALT_START_CT = dt.time(15, 15)
HALT_END_CT = dt.time(15, 30)
NORMAL_CLOSE_CT = dt.time(16, 0)


@dataclass(frozen=True)
class SessionOverride:
    """One correction to pmc for a single date, with the reason and where the truth comes from.

    action "own_trade_date": the date IS a CME trade date (CME Clearing ran; other Globex products settled), but
    equity futures stopped early at ``close_ct``; pmc either drops the date from CME_TradeDate (which would fold
    the session into the next trade date) or shows a full session.
    action "closed": pmc invents a session that never traded; drop it.
    """

    day: dt.date
    action: Literal["own_trade_date", "closed"]
    close_ct: dt.time | None
    why: str
    source: str


OVERRIDES: tuple[SessionOverride, ...] = (
    SessionOverride(
        dt.date(2015, 4, 3),
        "own_trade_date",
        dt.time(8, 15),
        "Good Friday with the jobs report: ES traded the overnight session to 08:15 CT; pmc CME_TradeDate drops "
        "the date, which would wrongly fold the session into Mon 2015-04-06.",
        "CME Good Friday 2015 schedule (equities close 08:15 CT); pmc GoodFriday2015 special close.",
    ),
    SessionOverride(
        dt.date(2018, 12, 5),
        "own_trade_date",
        dt.time(8, 30),
        "National Day of Mourning (G.H.W. Bush): equity futures closed after the overnight session at 08:30 CT "
        "and reopened 17:00 'for a trade date of Dec. 6'; pmc shows a full 16:00 session.",
        "CME Group press release 2018-12-02 (PRNewswire).",
    ),
    SessionOverride(
        dt.date(2021, 4, 2),
        "own_trade_date",
        dt.time(8, 15),
        "Good Friday with the jobs report: abbreviated session to 08:15 CT (rates settled 10:00 CT that day, so "
        "it was a clearing day); pmc CME_TradeDate drops the date.",
        "CME 2021 Good Friday holiday schedule and settlement-times notice (pmc issue #132).",
    ),
    SessionOverride(
        dt.date(2023, 4, 7),
        "own_trade_date",
        dt.time(8, 15),
        "Good Friday with the jobs report: ES traded to 08:15 CT (09:15 ET); pmc CME_TradeDate drops the date.",
        "cmegroup.com trading hours for 2023-04-07 (pmc issue #244, PR #311); MarketWatch 2024-03-29.",
    ),
    SessionOverride(
        dt.date(2024, 3, 29),
        "closed",
        None,
        "Good Friday without a jobs report (PCE day): all CME futures were closed. pmc's GoodFridayAfter2022 rule "
        "invents an 08:15 CT session for every Good Friday from 2023 on.",
        "MarketWatch 2024-03-29: 'all CME futures trading set to be closed on Friday'.",
    ),
    SessionOverride(
        dt.date(2025, 1, 9),
        "own_trade_date",
        dt.time(8, 30),
        "National Day of Mourning (Carter): equity futures open only until 08:30 CT; rates/ags traded to 12:15 CT "
        "and FX/energy/metals normally, so Jan 9 was a CME trade date. CME: Globex reopens on Jan 9 'for a trade "
        "date of January 10', i.e. the overnight session before 08:30 was trade date Jan 9. pmc shows a full "
        "16:00 session and CME_TradeDate drops the date.",
        "CME Group press release 2024-12-30 (mondovisione); Bloomberg 2024-12-30.",
    ),
    SessionOverride(
        dt.date(2025, 4, 18),
        "closed",
        None,
        "Good Friday without a jobs report (that came on 2025-04-04): equity futures closed, as in 2024; pmc's "
        "GoodFridayAfter2022 rule invents an 08:15 CT session.",
        "BLS release calendar 2025 + the 2024 precedent; no CME notice checked - verify on real data.",
    ),
    SessionOverride(
        dt.date(2026, 4, 3),
        "own_trade_date",
        dt.time(8, 15),
        "Good Friday with the jobs report: abbreviated session to 08:15 CT, as in 2021 and 2023.",
        "pmc PR #456 (regression test for the 2026-04-03 window); pmc CME bond goodFridayOpen list.",
    ),
)
_OVERRIDE_BY_DAY = {o.day: o for o in OVERRIDES}


def _ct_ns(day: dt.date, t: dt.time) -> int:
    """UTC ns of a Chicago wall-clock time on ``day`` (zoneinfo handles CST/CDT)."""
    local = dt.datetime.combine(day, t, tzinfo=CT)
    return (local - _UTC_EPOCH) // dt.timedelta(microseconds=1) * 1000


def _to_ns(values: pd.Series) -> np.ndarray:
    """pmc returns datetime64[us, UTC] under pandas 3 (ns under pandas 2): normalise to int64 ns."""
    naive_utc = values.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns")
    return naive_utc.to_numpy().view(np.int64)


@lru_cache(maxsize=4)
def _calendar(name: str) -> pmc.MarketCalendar:
    return pmc.get_calendar(name)


def _parse_hhmm(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def _good_friday(year: int) -> dt.date:
    return easter(year) - dt.timedelta(days=2)


def _raw_globex(lo: dt.date, hi: dt.date) -> pd.DataFrame:
    """pmc 'CME Globex Equity' sessions labelled in [lo, hi], with our overrides applied.

    Good Fridays pmc shows as sessions are dropped unless an override declares them: CME opens equities on Good
    Friday only when the jobs report falls on it, while pmc assumes an 08:15 session every year from 2023 on.
    """
    sched = _calendar("CME Globex Equity").schedule(lo.isoformat(), hi.isoformat())
    labels = [ts.date() for ts in sched.index]
    frame = pd.DataFrame(
        {"label": labels, "open_ns": _to_ns(sched["market_open"]), "close_ns": _to_ns(sched["market_close"])}
    )
    keep = np.ones(len(frame), dtype=bool)
    for i, label in enumerate(labels):
        override = _OVERRIDE_BY_DAY.get(label)
        if override is None:
            if label == _good_friday(label.year):
                keep[i] = False
            continue
        if override.action == "closed":
            keep[i] = False
        else:
            assert override.close_ct is not None
            frame.loc[i, "close_ns"] = _ct_ns(label, override.close_ct)
    return frame.loc[keep].reset_index(drop=True)


def _trade_dates(lo: dt.date, hi: dt.date) -> list[dt.date]:
    """pmc CME_TradeDate trade dates in [lo, hi], plus 'own_trade_date' overrides, minus 'closed' ones."""
    sched = _calendar("CME_TradeDate").schedule(lo.isoformat(), hi.isoformat())
    days = {ts.date() for ts in sched.index}
    for o in OVERRIDES:
        if lo <= o.day <= hi:
            if o.action == "own_trade_date":
                days.add(o.day)
            else:
                days.discard(o.day)
    return sorted(days)


def _split_halt(trade_date: dt.date, label: dt.date, open_ns: int, close_ns: int) -> list[tuple[int, int]]:
    """Before 2021-06-28 ES halted 15:15-15:30 CT every day; the 16:00 close is unchanged."""
    if trade_date >= HALT_ABOLISHED:
        return [(open_ns, close_ns)]
    halt_start, halt_end = _ct_ns(label, HALT_START_CT), _ct_ns(label, HALT_END_CT)
    if open_ns < halt_start and close_ns > halt_end:
        return [(open_ns, halt_start), (halt_end, close_ns)]
    return [(open_ns, close_ns)]


@lru_cache(maxsize=256)
def _year_sessions(year: int, rth_start: dt.time, rth_end: dt.time) -> tuple[TradeSession, ...]:
    """All trade dates of one calendar year; cached because pmc schedules take ~0.1 s per call."""
    lo = max(dt.date(year - 1, 12, 1), SUPPORTED_FROM - dt.timedelta(days=14))
    hi = dt.date(year, 12, 31)
    globex = _raw_globex(lo, hi)
    tdates = _trade_dates(lo, hi)
    td_arr = np.array(tdates, dtype="datetime64[D]")
    label_arr = np.array(list(globex["label"]), dtype="datetime64[D]")
    owner = np.searchsorted(td_arr, label_arr, side="left")  # first trade date >= label

    sessions: list[TradeSession] = []
    for k, td in enumerate(tdates):
        if td.year != year or td < SUPPORTED_FROM:
            continue
        rows = globex.loc[owner == k]
        if rows.empty:
            raise RuntimeError(f"CME trade date {td} has no Globex session in pmc; add an override")
        segments: list[tuple[int, int]] = []
        labels: list[dt.date] = []
        for label, open_ns, close_ns in rows.itertuples(index=False):
            segments.extend(_split_halt(td, label, int(open_ns), int(close_ns)))
            labels.append(label)
        last_close = segments[-1][1]
        rth_close = min(_ct_ns(td, rth_end), last_close)
        rth_open = min(_ct_ns(td, rth_start), rth_close)
        early = last_close < _ct_ns(td, NORMAL_CLOSE_CT)
        notes: list[str] = []
        holidays = [lbl for lbl in labels if lbl != td]
        if holidays:
            notes.append("includes holiday session " + ", ".join(h.isoformat() for h in holidays))
        if early:
            close_local = dt.datetime.fromtimestamp(last_close // 1_000_000_000, tz=CT).strftime("%H:%M")
            notes.append(f"early close {close_local} CT")
        if rth_open == rth_close:
            notes.append("no RTH")
        if td in _OVERRIDE_BY_DAY:
            notes.append("override: " + _OVERRIDE_BY_DAY[td].why)
        if td < HALT_ABOLISHED and len(segments) > len(labels):
            notes.append("15:15-15:30 CT halt")
        sessions.append(
            TradeSession(
                trade_date=td,
                segments=tuple(segments),
                rth_open_ns=rth_open,
                rth_close_ns=rth_close,
                early_close=early,
                note="; ".join(notes),
            )
        )
    return tuple(sessions)


def cme_equity_sessions(
    start: dt.date, end: dt.date, rth_start: str = RTH_HOURS[0], rth_end: str = RTH_HOURS[1]
) -> tuple[TradeSession, ...]:
    """Every CME equity trade date in [start, end] with its Globex segments ([open, close) UTC ns) and RTH.

    RTH is ``rth_start``-``rth_end`` CT on the trade date, cut at an early close (12:15 CT on early-close days;
    empty on the 08:15/08:30 abbreviated days in OVERRIDES).
    """
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if start < SUPPORTED_FROM:
        raise ValueError(f"CME equity sessions are modelled from {SUPPORTED_FROM} on; got start {start}")
    t_open, t_close = _parse_hhmm(rth_start), _parse_hhmm(rth_end)
    if t_open >= t_close:
        raise ValueError(f"rth_start {rth_start} must be before rth_end {rth_end}")
    out: list[TradeSession] = []
    for year in range(start.year, end.year + 1):
        out.extend(s for s in _year_sessions(year, t_open, t_close) if start <= s.trade_date <= end)
    return tuple(out)


def _ct_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(int(ns) // 1_000_000_000, tz=CT).date()


def sessions_for_timestamps(
    min_ns: int, max_ns: int, margin_days: int = 7, rth_start: str = RTH_HOURS[0], rth_end: str = RTH_HOURS[1]
) -> tuple[TradeSession, ...]:
    """A session table covering [min_ns, max_ns] with a margin, ready for ``assign_sessions``."""
    margin = dt.timedelta(days=margin_days)
    lo, hi = _ct_date(min_ns) - margin, _ct_date(max_ns) + margin
    return cme_equity_sessions(max(lo, SUPPORTED_FROM), hi, rth_start, rth_end)


@dataclass(frozen=True, eq=False)
class SessionAssignment:
    """Per-timestamp results of ``assign_sessions`` (parallel numpy arrays)."""

    trade_date: np.ndarray  # datetime64[D]
    in_rth: np.ndarray  # bool
    in_session: np.ndarray  # bool: inside one of the trade date's segments


#: segment boundaries are all on CT quarter hours (17:00, 16:00, 15:15, 12:15, 08:15, ...), and Chicago's UTC
#: offset is whole hours, so a 15-minute bucket never straddles a boundary: one bucket lookup replaces a binary
#: search per timestamp (3x faster on unsorted input).
_BUCKET_NS = 15 * 60 * 1_000_000_000


@dataclass(frozen=True, eq=False)
class _SegmentTable:
    """Flat, sorted segment arrays; each segment knows its trade date and that date's RTH window."""

    seg_open: np.ndarray
    seg_close: np.ndarray
    seg_trade_date: np.ndarray  # datetime64[D]
    seg_rth_open: np.ndarray
    seg_rth_close: np.ndarray
    bucket_seg: np.ndarray | None  # index of the last segment opened at each bucket start, or None

    def locate(self, ts: np.ndarray) -> np.ndarray:
        """Index of the last segment whose open <= ts (-1 before the first)."""
        if self.bucket_seg is None:
            return np.searchsorted(self.seg_open, ts, side="right") - 1
        base = int(self.seg_open[0])
        bucket = (ts - base) // _BUCKET_NS
        np.clip(bucket, 0, self.bucket_seg.size - 1, out=bucket)
        j = self.bucket_seg[bucket].astype(np.intp)
        return np.where(ts < base, -1, j)


@lru_cache(maxsize=16)
def _segment_table(sessions: tuple[TradeSession, ...]) -> _SegmentTable:
    if not sessions:
        raise ValueError("empty session table")
    rows = [
        (o, c, np.datetime64(s.trade_date, "D"), s.rth_open_ns, s.rth_close_ns)
        for s in sessions
        for o, c in s.segments
    ]
    seg_open = np.array([r[0] for r in rows], dtype=np.int64)
    seg_close = np.array([r[1] for r in rows], dtype=np.int64)
    if np.any(seg_close <= seg_open) or np.any(seg_open[1:] < seg_close[:-1]):
        raise ValueError("sessions must be in trade-date order with ordered, non-overlapping segments")
    bucket_seg = None
    if not (np.any(seg_open % _BUCKET_NS) or np.any(seg_close % _BUCKET_NS)):
        starts = np.arange(seg_open[0], seg_close[-1], _BUCKET_NS, dtype=np.int64)
        bucket_seg = (np.searchsorted(seg_open, starts, side="right") - 1).astype(np.int32)
    return _SegmentTable(
        seg_open=seg_open,
        seg_close=seg_close,
        seg_trade_date=np.array([r[2] for r in rows], dtype="datetime64[D]"),
        seg_rth_open=np.array([r[3] for r in rows], dtype=np.int64),
        seg_rth_close=np.array([r[4] for r in rows], dtype=np.int64),
        bucket_seg=bucket_seg,
    )


def _as_int64_ns(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").view(np.int64)
    if arr.dtype == np.int64:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    raise TypeError(f"expected int64 ns or datetime64 timestamps, got {arr.dtype}")


def assign_sessions(ts_event_ns: np.ndarray, sessions: Sequence[TradeSession]) -> SessionAssignment:
    """Trade date, RTH and in-session flags for each timestamp (vectorised: two gathers per timestamp).

    Rule: the trade date is the first one whose close is > ts (a trade exactly at a close belongs to the next).
    A timestamp in the maintenance break, a halt or a holiday gap gets the next trade date with
    ``in_session`` False. Timestamps outside the table raise ValueError (build it with margin, e.g. via
    ``sessions_for_timestamps``).
    """
    ts = _as_int64_ns(ts_event_ns)
    tab = _segment_table(tuple(sessions))
    n_seg = tab.seg_open.size
    # Segment whose open <= ts; ts is inside it, or in the gap after it (which belongs to the next segment's
    # trade date: either the same trade date's next window or the next trade date).
    j = tab.locate(ts)
    jc = np.clip(j, 0, n_seg - 1)
    in_session = (j >= 0) & (ts < tab.seg_close[jc])
    owner = j + (~in_session).astype(np.intp)
    bad = (j < 0) | (owner >= n_seg)
    if bad.any():
        first, last = sessions[0], sessions[-1]
        lo = pd.Timestamp(first.open_ns, tz="UTC")
        hi = pd.Timestamp(last.close_ns, tz="UTC")
        got_lo, got_hi = pd.Timestamp(int(ts.min()), tz="UTC"), pd.Timestamp(int(ts.max()), tz="UTC")
        raise ValueError(
            f"{int(bad.sum())} timestamps outside the session table [{lo}, {hi}) (trade dates "
            f"{first.trade_date}..{last.trade_date}); got {got_lo}..{got_hi}; build the table with margin, e.g. "
            "sessions_for_timestamps(min_ns, max_ns)"
        )
    in_rth = in_session & (ts >= tab.seg_rth_open[jc]) & (ts < tab.seg_rth_close[jc])
    return SessionAssignment(trade_date=tab.seg_trade_date[owner], in_rth=in_rth, in_session=in_session)
