"""The rows an expression is evaluated on, built from a real DATA_ROOT (design/DSL.md section 4b "Grids").

Daily grids are the trading days of a calendar: NYSE from pandas_market_calendars, CME_EQUITY from the
project's own trade-date logic and override table (runtime/ingest/sessions.py), so a daily ES grid agrees
with the trade dates ingest and derive assign. 1m grids are every minute of every derived session of an
intraday dataset (dense: a minute without trades is a row), with the CME_EQUITY daily grid of those
sessions for `asof` / `to_daily`. Warm-up rows come before `start`; when the calendar or the data begin
later than the warm-up asks, the grid has fewer and says so in `note`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np

from compiler.contracts import Grid
from dsl import Frequency
from runtime.contracts import ResolvedPaths, UserError
from runtime.derive.layout import FRONT, MINUTE_NS, SESSIONS, available_dates, partition_file
from runtime.ingest.sessions import SUPPORTED_FROM, _trade_dates
from runtime.storage.registry import Registry

#: INSTRUMENTS.calendar values a grid can be built for, and the first day each is modelled from
CALENDARS: dict[str, dt.date] = {
    "NYSE": dt.date(1885, 1, 1),  # pmc's NYSE calendar starts there
    "CME_EQUITY": SUPPORTED_FROM,  # runtime/ingest/sessions.py models the 17:00-16:00 era only
}
TRADING_DAYS_PER_YEAR = 252.0
#: bars per normal session, for the annualisation of a 1m grid (RTH 08:30-15:00 CT; FULL 17:00-16:00 CT)
BARS_PER_SESSION = {"RTH": 390, "FULL": 1380}
_SHOWN = 5


@dataclass(frozen=True, eq=False)
class DailyGrid(Grid):
    """A daily Grid that knows its calendar and the trading day before its first row.

    `previous` is the lower bound for placing row 0 (compiler.placement.place_daily `lower`): a value
    stamped on the weekend before the first row lands on it exactly as it would on a longer grid.
    `note` says when fewer warm-up rows were available than asked (the calendar starts later).
    """

    calendar: str = ""
    previous: np.datetime64 | None = None
    note: str = ""


@dataclass(frozen=True, eq=False)
class MinuteGrid(Grid):
    """A 1m Grid of one intraday dataset, series and session (what WorkspaceSources reads for it)."""

    dataset_id: str = ""
    session: str = ""
    series: str = FRONT
    note: str = ""

    @property
    def sessions(self) -> np.ndarray:
        """The trade dates that have rows, in order (warm-up sessions first)."""
        td = np.asarray(self.trade_date)
        if len(td) == 0:
            return td
        return td[np.r_[True, td[1:] != td[:-1]]]


@dataclass(frozen=True, eq=False)
class SessionGrid(DailyGrid):
    """The daily grid of an intraday instrument: one row per derived session (CME trade date), carrying the
    1m grid of those sessions, from which the daily prices come and through which `to_daily` aggregates
    (compiler.evaluate `minute=`). Its index is exactly `minute.daily.index`."""

    minute: MinuteGrid | None = None


def session_grid(
    dataset_id: str,
    session: str,
    start: dt.date,
    end: dt.date,
    daily_warmup_rows: int = 0,
    minute_warmup_bars: int = 0,
    *,
    paths: ResolvedPaths,
    load_from: dt.date | None = None,
) -> SessionGrid:
    """The sessions of `dataset_id` with trade date in [start, end] as daily rows (minute_grid's rules:
    the range is cut to the derived data, a hole is a UserError). Warm-up: `daily_warmup_rows` whole
    derived sessions of 1m bars (so to_daily has data there) and as many CME_EQUITY days again before them
    for daily datasets, plus `minute_warmup_bars` for 1m nodes under to_daily."""
    bars = BARS_PER_SESSION[(session or "").strip().upper() or "RTH"]
    mg = minute_grid(
        dataset_id,
        session,
        start,
        end,
        warmup_bars=minute_warmup_bars + daily_warmup_rows * bars,
        daily_warmup_rows=daily_warmup_rows,
        paths=paths,
        load_from=load_from,
    )
    d = mg.daily
    assert isinstance(d, DailyGrid)
    return SessionGrid(
        frequency=Frequency.DAILY,
        index=d.index,
        name=d.name,
        start=d.start,
        periods_per_year=TRADING_DAYS_PER_YEAR,
        calendar=d.calendar,
        previous=d.previous,
        note=mg.note,
        minute=mg,
    )


def known_calendar(calendar: str | None) -> str:
    """The canonical calendar name, or a UserError naming the known ones."""
    key = (calendar or "").strip().upper()
    if key not in CALENDARS:
        raise UserError(
            f"calendar '{calendar}' has no trading-day grid; known calendars: {', '.join(CALENDARS)}; fix: set "
            "INSTRUMENTS.calendar to one of them (and run `backtest config export`) or pass --calendar NYSE"
        )
    return key


@lru_cache(maxsize=8)
def _calendar_days(calendar: str, last_year: int) -> np.ndarray:
    """Every trading day of `calendar` from its first modelled day to the end of `last_year` (cached)."""
    lo, hi = CALENDARS[calendar], dt.date(last_year, 12, 31)
    if calendar == "CME_EQUITY":
        days = _trade_dates(lo, hi)
        return np.array(days, dtype="datetime64[D]")
    import pandas_market_calendars as pmc

    valid = pmc.get_calendar("NYSE").valid_days(lo.isoformat(), hi.isoformat())
    return valid.tz_localize(None).to_numpy().astype("datetime64[D]")


def trading_days(calendar: str, start: dt.date, end: dt.date) -> np.ndarray:
    """The calendar's trading days in [start, end] (datetime64[D])."""
    cal = known_calendar(calendar)
    days = _calendar_days(cal, max(end.year, dt.date.today().year) + 1)
    lo = np.searchsorted(days, np.datetime64(start, "D"), side="left")
    hi = np.searchsorted(days, np.datetime64(end, "D"), side="right")
    return days[lo:hi]


def daily_grid(
    calendar: str,
    start: dt.date,
    end: dt.date,
    warmup_rows: int = 0,
    *,
    name: str | None = None,
    load_from: dt.date | None = None,
) -> DailyGrid:
    """The trading days of `calendar` in [start, end] plus `warmup_rows` trading days before `start`.

    Grid.start = warmup_rows, or fewer when the calendar starts later (then `note` says so). `load_from`
    (for stateful graphs, e.g. first_data_date(...)) loads every trading day from that date on as warm-up
    when that is more. Name "daily:<CALENDAR>": grids of one calendar agree on every row they share.
    """
    cal = known_calendar(calendar)
    if warmup_rows < 0:
        raise ValueError(f"warmup_rows must be >= 0, got {warmup_rows}")
    if start > end:
        raise UserError(
            f"daily grid {cal}: start {start} is after end {end}, so the range holds no trading day; swap them"
        )
    first_day = CALENDARS[cal]
    if end < first_day or start < first_day:
        raise UserError(
            f"daily grid {cal}: the calendar is modelled from {first_day} on, got {start}..{end}; fix: start "
            f"on {first_day} or later"
        )
    days = _calendar_days(cal, max(end.year, dt.date.today().year) + 1)
    i0 = int(np.searchsorted(days, np.datetime64(start, "D"), side="left"))
    i1 = int(np.searchsorted(days, np.datetime64(end, "D"), side="right"))
    if i0 >= i1:
        raise UserError(
            f"daily grid {cal}: no trading day in {start}..{end} (weekend or holiday); fix: widen the range"
        )
    want = warmup_rows
    if load_from is not None and load_from < start:
        want = max(want, i0 - int(np.searchsorted(days, np.datetime64(load_from, "D"), side="left")))
    lo = max(0, i0 - want)
    got = i0 - lo
    note = ""
    if got < want:
        note = (
            f"{got} warm-up rows instead of {want}: the {cal} calendar starts on {first_day}, so values "
            "in the first rows may be missing"
        )
    return DailyGrid(
        frequency=Frequency.DAILY,
        index=days[lo:i1].copy(),
        name=name or f"daily:{cal}",
        start=got,
        periods_per_year=TRADING_DAYS_PER_YEAR,
        calendar=cal,
        previous=days[lo - 1] if lo > 0 else None,
        note=note,
    )


# ----------------------------------------------------------------------------------------------------------
# 1m grids
# ----------------------------------------------------------------------------------------------------------


def _derive_hint(dataset_id: str, session: str, start: dt.date, end: dt.date) -> str:
    return f"`backtest derive --dataset {dataset_id} --session {session} --start {start} --end {end}`"


def _listed(days: Iterable[np.datetime64]) -> str:
    d = [str(x) for x in days]
    return ", ".join(d[:_SHOWN]) + (f", ... ({len(d)} in all)" if len(d) > _SHOWN else "")


def _segments(paths: ResolvedPaths, dataset_id: str, series: str, session: str, days: np.ndarray):
    """(trade_date per segment, open ns, close ns) of the derived session_stats of `days`, in time order."""
    files = [
        partition_file(paths.derived_dir, dataset_id, series, "session_stats", session, d.astype(dt.date))
        for d in days
    ]
    if not files:
        return np.zeros(0, "datetime64[D]"), np.zeros(0, np.int64), np.zeros(0, np.int64)
    lst = ", ".join(f"'{Path(f).as_posix()}'" for f in files)
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"""SELECT trade_date, epoch_ns(o) AS o, epoch_ns(c) AS c FROM (
                    SELECT trade_date, unnest(segment_open) AS o, unnest(segment_close) AS c
                    FROM read_parquet([{lst}], hive_partitioning = false))
                ORDER BY o"""
        ).fetchnumpy()
    finally:
        con.close()
    td = np.asarray(rows["trade_date"]).astype("datetime64[D]")
    return td, np.asarray(rows["o"], dtype=np.int64), np.asarray(rows["c"], dtype=np.int64)


def _minutes(td: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every minute start of the segments [open, close) and its trade date (vectorised, no row loop)."""
    counts = np.maximum((closes - opens) // MINUTE_NS, 0)
    total = int(counts.sum())
    seg = np.repeat(np.arange(len(counts)), counts)
    first_row = np.cumsum(counts) - counts
    offset = np.arange(total, dtype=np.int64) - np.repeat(first_row, counts)
    ts = opens[seg] + offset * MINUTE_NS
    return ts.astype("datetime64[ns]"), td[seg]


def minute_grid(
    dataset_id: str,
    session: str,
    start: dt.date,
    end: dt.date,
    warmup_bars: int = 0,
    daily_warmup_rows: int = 0,
    *,
    paths: ResolvedPaths,
    series: str = FRONT,
    name: str | None = None,
    load_from: dt.date | None = None,
) -> MinuteGrid:
    """Dense 1m bars of every derived `session` (RTH | FULL) of `dataset_id` with trade date in [start, end].

    Rows: each minute of the session's trading windows (session_stats segment_open/segment_close of the
    derived data): a minute without trades is a row; a halt inside a session (15:15-15:30 CT before
    2021-06-28) is not. Warm-up: whole earlier derived sessions until at least `warmup_bars` bars (all
    derived sessions from `load_from` on, for stateful graphs); fewer when the data starts later (`note`).
    `daily` is the CME_EQUITY grid from `daily_warmup_rows` trading days before the first loaded session to
    the last session, its start at the first output session. The range is cut to the derived data; a CME
    trade date inside it without derived data, or no derived session at all, is a UserError naming the
    `backtest derive` command that builds it.
    """
    sess = (session or "").strip().upper()
    if sess not in SESSIONS:
        raise UserError(f"session '{session}' is not one of {', '.join(SESSIONS)}; fix: --session RTH")
    if warmup_bars < 0 or daily_warmup_rows < 0:
        raise ValueError("warm-up counts must be >= 0")
    if start > end:
        raise UserError(f"1m grid {dataset_id}: start {start} is after end {end}; swap them")
    derived = np.array(
        available_dates(paths.derived_dir, dataset_id, series, "session_stats", sess), dtype="datetime64[D]"
    )
    s64, e64 = np.datetime64(start, "D"), np.datetime64(end, "D")
    inside = derived[(derived >= s64) & (derived <= e64)]
    hint = _derive_hint(dataset_id, sess, start, end)
    if len(inside) == 0:
        have = (
            f"derived {sess} sessions: {derived[0]}..{derived[-1]}" if len(derived) else "nothing derived yet"
        )
        raise UserError(
            f"1m grid {dataset_id} {sess}: no derived session with trade date in {start}..{end} ({have}); "
            f"fix: ingest the trades of those dates and run {hint}"
        )
    cal = _calendar_days("CME_EQUITY", max(end.year, dt.date.today().year) + 1)
    off_cal = inside[~np.isin(inside, cal)]
    if len(off_cal):
        raise UserError(
            f"1m grid {dataset_id} {sess}: derived trade date(s) {_listed(off_cal)} are not CME_EQUITY trade "
            "dates (runtime/ingest/sessions.py); fix: check the session calendar overrides, then re-derive"
        )
    span = cal[(cal >= inside[0]) & (cal <= inside[-1])]
    holes = span[~np.isin(span, inside)]
    if len(holes):
        raise UserError(
            f"1m grid {dataset_id} {sess}: trade date(s) {_listed(holes)} in {start}..{end} have no derived "
            f"data, so the grid would skip them; fix: ingest their trades and run "
            f"{_derive_hint(dataset_id, sess, holes[0].astype(dt.date), holes[-1].astype(dt.date))}"
        )
    notes = []
    if inside[0] > s64 or inside[-1] < e64:
        notes.append(f"derived data covers {inside[0]}..{inside[-1]} of the asked {start}..{end}")

    # warm-up: whole earlier sessions, contiguous in the calendar and derived, newest first
    k0 = int(np.searchsorted(cal, inside[0]))
    prior = cal[:k0][::-1]
    derived_set = np.isin(prior, derived)
    contiguous = int(np.argmin(derived_set)) if not derived_set.all() else len(prior)
    prior = prior[:contiguous]
    if load_from is not None:
        prior = prior[prior >= np.datetime64(load_from, "D")]
    td_o, op_o, cl_o = _segments(paths, dataset_id, series, sess, inside)
    warm: list[np.ndarray] = []
    warm_bars = 0
    want_all = load_from is not None
    i = 0
    chunk = max(2, -(-warmup_bars // 200) + 1)
    while i < len(prior) and (want_all or warm_bars < warmup_bars):
        take = prior[i:] if want_all else prior[i : i + chunk]
        td_w, op_w, cl_w = _segments(paths, dataset_id, series, sess, np.sort(take))
        per = np.zeros(len(take), dtype=np.int64)
        if len(td_w):
            day_of = np.searchsorted(np.sort(take), td_w)
            np.add.at(per, day_of, (cl_w - op_w) // MINUTE_NS)
        per_newest_first = per[::-1]
        for j, day in enumerate(take):
            if not want_all and warm_bars >= warmup_bars:
                break
            warm.append(day)
            warm_bars += int(per_newest_first[j])
        i += len(take)
    if warm_bars < warmup_bars:
        notes.append(
            f"{warm_bars} warm-up bars instead of {warmup_bars}: derived {sess} data starts "
            f"{(warm[-1] if warm else inside[0])}, so values in the first bars may be missing"
        )
    warm_days = np.sort(np.array(warm, dtype="datetime64[D]"))
    if len(warm_days):
        td_w, op_w, cl_w = _segments(paths, dataset_id, series, sess, warm_days)
        td_all = np.concatenate([td_w, td_o])
        op_all, cl_all = np.concatenate([op_w, op_o]), np.concatenate([cl_w, cl_o])
    else:
        td_all, op_all, cl_all = td_o, op_o, cl_o
    index, trade_date = _minutes(td_all, op_all, cl_all)
    n_warm = int(np.sum(trade_date < inside[0]))
    first_loaded = warm_days[0] if len(warm_days) else inside[0]
    k_first = int(np.searchsorted(cal, first_loaded))
    k_out = int(np.searchsorted(cal, inside[0]))
    daily = daily_grid(
        "CME_EQUITY",
        inside[0].astype(dt.date),
        inside[-1].astype(dt.date),
        (k_out - k_first) + daily_warmup_rows,
    )
    if daily.note:
        notes.append(daily.note)
    label = dataset_id if series == FRONT else f"{dataset_id}@{series}"
    return MinuteGrid(
        frequency=Frequency.MINUTE,
        index=index,
        name=name or f"1m:{label}:{sess}",
        start=n_warm,
        trade_date=trade_date,
        daily=daily,
        periods_per_year=TRADING_DAYS_PER_YEAR * BARS_PER_SESSION[sess],
        dataset_id=dataset_id,
        session=sess,
        series=series,
        note="; ".join(notes),
    )


# ----------------------------------------------------------------------------------------------------------
# where the data begins (stateful graphs load from there)
# ----------------------------------------------------------------------------------------------------------


def first_data_date(reg: Registry, dataset_ids: Iterable[str], *, series: str = FRONT) -> dt.date | None:
    """The earliest date any of `dataset_ids` has data for: daily ingests' first_date, intraday derived
    trade dates (session_stats manifests). None when none of them has data yet.

    Why: a stateful node (`hold`, `bars_since`, unbounded `ffill`) depends on all history, so its grid is
    loaded from here (daily_grid / minute_grid `load_from`) and its cache key names that first row.
    """
    ids = sorted(set(dataset_ids))
    if not ids:
        return None
    marks = ", ".join("?" for _ in ids)
    daily = reg.query(f"SELECT min(first_date) AS d FROM ingests WHERE dataset_id IN ({marks})", ids)
    intraday = reg.query(
        f"SELECT min(trade_date) AS d FROM derived_manifests WHERE dataset_id IN ({marks}) "
        "AND table_name = 'session_stats' AND series = ?",
        [*ids, series],
    )
    found = [r["d"] for r in (*daily, *intraday) if r["d"] is not None]
    return min(found) if found else None
