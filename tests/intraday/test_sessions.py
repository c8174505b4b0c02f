"""CME ES trade dates, segments and RTH, checked against hand-worked cases from CME's published schedules.

Every expected value is written as Chicago wall-clock time (converted here with zoneinfo, independently of the
module) or as a literal UTC time worked out by hand (CST = UTC-6, CDT = UTC-5).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import databento as db
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.ingest.sessions import (
    OVERRIDES,
    SUPPORTED_FROM,
    assign_sessions,
    cme_equity_sessions,
    sessions_for_timestamps,
)
from tests.conftest import SAMPLES

CHICAGO = ZoneInfo("America/Chicago")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ct(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, ns: int = 0) -> int:
    """UTC ns of a Chicago wall-clock time."""
    local = dt.datetime(y, mo, d, h, mi, s, tzinfo=CHICAGO)
    return (local - EPOCH) // dt.timedelta(microseconds=1) * 1000 + ns


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return (dt.datetime(y, mo, d, h, mi, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(microseconds=1) * 1000


@pytest.fixture(scope="module")
def table():
    return cme_equity_sessions(dt.date(2020, 12, 1), dt.date(2025, 12, 31))


@pytest.fixture(scope="module")
def by_date(table):
    return {s.trade_date: s for s in table}


def one(table, ts: int) -> tuple[dt.date, bool, bool]:
    a = assign_sessions(np.array([ts], dtype=np.int64), table)
    return a.trade_date[0].astype(dt.date), bool(a.in_session[0]), bool(a.in_rth[0])


# --------------------------------------------------------------------------------------------------
# the real Databento samples
# --------------------------------------------------------------------------------------------------


def test_real_sunday_evening_sample_is_monday_trade_date_outside_rth(table):
    recs = db.DBNStore.from_file(SAMPLES / "GLBX_test_data.trades.dbn.zst").to_ndarray()
    # 2020-12-28 00:00 UTC = Sunday 2020-12-27 18:00 CST: the Globex evening session of Monday's trade date
    assert recs["ts_event"].min() >= ct(2020, 12, 27, 18) and recs["ts_event"].max() < ct(2020, 12, 27, 18, 1)
    a = assign_sessions(recs["ts_event"], table)  # uint64 straight from DBN
    assert (a.trade_date == np.datetime64("2020-12-28")).all()
    assert a.in_session.all() and not a.in_rth.any()


def test_real_monday_morning_sample_is_pre_rth(table):
    recs = db.DBNStore.from_file(SAMPLES / "test_data.trades.v3.dbn.zst").to_ndarray()
    a = assign_sessions(recs["ts_event"], table)  # 13:00 UTC = 07:00 CST Monday
    assert (a.trade_date == np.datetime64("2020-12-28")).all()
    assert a.in_session.all() and not a.in_rth.any()


# --------------------------------------------------------------------------------------------------
# ordinary days: RTH edges, the maintenance break
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (ct(2024, 12, 2, 8, 29, 59, 999_999_999), (dt.date(2024, 12, 2), True, False)),
        (ct(2024, 12, 2, 8, 30), (dt.date(2024, 12, 2), True, True)),
        (ct(2024, 12, 2, 14, 59, 59), (dt.date(2024, 12, 2), True, True)),
        (ct(2024, 12, 2, 15, 0), (dt.date(2024, 12, 2), True, False)),
        (ct(2024, 12, 3, 15, 59, 59, 999_999_999), (dt.date(2024, 12, 3), True, False)),
        # a trade exactly at the 16:00 close belongs to the next trade date; the break is out of session
        (ct(2024, 12, 3, 16, 0), (dt.date(2024, 12, 4), False, False)),
        (ct(2024, 12, 3, 16, 59, 59), (dt.date(2024, 12, 4), False, False)),
        (ct(2024, 12, 3, 17, 0), (dt.date(2024, 12, 4), True, False)),
        # Friday after the close and Saturday belong to Monday, outside any session
        (ct(2024, 12, 6, 16, 30), (dt.date(2024, 12, 9), False, False)),
        (ct(2024, 12, 7, 12, 0), (dt.date(2024, 12, 9), False, False)),
        (ct(2024, 12, 8, 16, 59), (dt.date(2024, 12, 9), False, False)),
        (ct(2024, 12, 8, 17, 0), (dt.date(2024, 12, 9), True, False)),
    ],
)
def test_rth_edges_and_maintenance_break(table, ts, expected):
    assert one(table, ts) == expected


def test_normal_day_layout(by_date):
    s = by_date[dt.date(2024, 12, 3)]
    assert s.segments == ((ct(2024, 12, 2, 17), ct(2024, 12, 3, 16)),)
    assert (s.rth_open_ns, s.rth_close_ns) == (ct(2024, 12, 3, 8, 30), ct(2024, 12, 3, 15))
    assert not s.early_close and s.note == ""


# --------------------------------------------------------------------------------------------------
# holidays and early closes
# --------------------------------------------------------------------------------------------------


def test_thanksgiving_2024(by_date, table):
    assert dt.date(2024, 11, 28) not in by_date
    fri = by_date[dt.date(2024, 11, 29)]
    assert fri.segments == (
        (ct(2024, 11, 27, 17), ct(2024, 11, 28, 12)),
        (ct(2024, 11, 28, 17), ct(2024, 11, 29, 12, 15)),
    )
    assert fri.early_close and fri.rth_close_ns == ct(2024, 11, 29, 12, 15)
    assert one(table, ct(2024, 11, 28, 10)) == (dt.date(2024, 11, 29), True, False)
    assert one(table, ct(2024, 11, 28, 13)) == (dt.date(2024, 11, 29), False, False)  # holiday gap
    assert one(table, ct(2024, 11, 29, 12, 14)) == (dt.date(2024, 11, 29), True, True)
    assert one(table, ct(2024, 11, 29, 12, 15)) == (dt.date(2024, 12, 2), False, False)


def test_christmas_eve_and_christmas_2024(by_date, table):
    eve = by_date[dt.date(2024, 12, 24)]
    assert eve.segments == ((ct(2024, 12, 23, 17), ct(2024, 12, 24, 12, 15)),)
    assert eve.early_close and (eve.rth_open_ns, eve.rth_close_ns) == (
        ct(2024, 12, 24, 8, 30),
        ct(2024, 12, 24, 12, 15),
    )
    assert dt.date(2024, 12, 25) not in by_date
    assert by_date[dt.date(2024, 12, 26)].segments == ((ct(2024, 12, 25, 17), ct(2024, 12, 26, 16)),)
    assert one(table, ct(2024, 12, 24, 12, 14, 59)) == (dt.date(2024, 12, 24), True, True)
    assert one(table, ct(2024, 12, 24, 12, 15)) == (dt.date(2024, 12, 26), False, False)
    assert one(table, ct(2024, 12, 25, 10)) == (dt.date(2024, 12, 26), False, False)
    assert one(table, ct(2024, 12, 25, 17)) == (dt.date(2024, 12, 26), True, False)


def test_mlk_2024(by_date, table):
    assert dt.date(2024, 1, 15) not in by_date
    tue = by_date[dt.date(2024, 1, 16)]
    assert tue.segments == (
        (ct(2024, 1, 14, 17), ct(2024, 1, 15, 12)),
        (ct(2024, 1, 15, 17), ct(2024, 1, 16, 16)),
    )
    assert not tue.early_close and "holiday session 2024-01-15" in tue.note
    assert one(table, ct(2024, 1, 14, 17, 30)) == (dt.date(2024, 1, 16), True, False)
    assert one(table, ct(2024, 1, 15, 11)) == (dt.date(2024, 1, 16), True, False)
    assert one(table, ct(2024, 1, 15, 13)) == (dt.date(2024, 1, 16), False, False)
    assert one(table, ct(2024, 1, 16, 9)) == (dt.date(2024, 1, 16), True, True)


def test_new_year_2025(by_date, table):
    assert dt.date(2025, 1, 1) not in by_date
    assert by_date[dt.date(2024, 12, 31)].segments == ((ct(2024, 12, 30, 17), ct(2024, 12, 31, 16)),)
    assert by_date[dt.date(2025, 1, 2)].segments == ((ct(2025, 1, 1, 17), ct(2025, 1, 2, 16)),)
    assert one(table, ct(2024, 12, 31, 10)) == (dt.date(2024, 12, 31), True, True)
    assert one(table, ct(2024, 12, 31, 16, 30)) == (dt.date(2025, 1, 2), False, False)
    assert one(table, ct(2025, 1, 1, 10)) == (dt.date(2025, 1, 2), False, False)
    assert one(table, ct(2025, 1, 1, 17)) == (dt.date(2025, 1, 2), True, False)


@pytest.mark.parametrize(
    "day",
    # day after Thanksgiving, Christmas Eve and a weekday July 3: equity futures halt at 12:15 CT (not 12:00)
    [
        "2021-11-26",
        "2022-11-25",
        "2023-07-03",
        "2024-07-03",
        "2024-11-29",
        "2024-12-24",
        "2025-07-03",
        "2025-12-24",
    ],
)
def test_early_closes_are_1215_ct(by_date, day):
    d = dt.date.fromisoformat(day)
    s = by_date[d]
    assert s.close_ns == ct(d.year, d.month, d.day, 12, 15)
    assert s.early_close and s.rth_close_ns == s.close_ns


def test_july_4th_2024_holiday_halt_is_1200_ct(by_date):
    fri = by_date[dt.date(2024, 7, 5)]
    assert fri.segments == (
        (ct(2024, 7, 3, 17), ct(2024, 7, 4, 12)),
        (ct(2024, 7, 4, 17), ct(2024, 7, 5, 16)),
    )


# --------------------------------------------------------------------------------------------------
# DST (hand-worked UTC: CST = UTC-6, CDT = UTC-5)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "rth_open_utc", "globex_open_utc"),
    [
        # week before the 2024-03-10 switch: CST
        ("2024-03-04", (2024, 3, 4, 14, 30), (2024, 3, 3, 23, 0)),
        ("2024-03-08", (2024, 3, 8, 14, 30), (2024, 3, 7, 23, 0)),
        # Sunday 2024-03-10 17:00 CDT open = 22:00 UTC; RTH 13:30 UTC from Monday
        ("2024-03-11", (2024, 3, 11, 13, 30), (2024, 3, 10, 22, 0)),
        ("2024-03-15", (2024, 3, 15, 13, 30), (2024, 3, 14, 22, 0)),
        # week before the 2024-11-03 switch back: CDT
        ("2024-10-28", (2024, 10, 28, 13, 30), (2024, 10, 27, 22, 0)),
        ("2024-11-01", (2024, 11, 1, 13, 30), (2024, 10, 31, 22, 0)),
        # Sunday 2024-11-03 17:00 CST open = 23:00 UTC; RTH 14:30 UTC from Monday
        ("2024-11-04", (2024, 11, 4, 14, 30), (2024, 11, 3, 23, 0)),
        ("2024-11-08", (2024, 11, 8, 14, 30), (2024, 11, 7, 23, 0)),
    ],
)
def test_dst_weeks(by_date, table, day, rth_open_utc, globex_open_utc):
    s = by_date[dt.date.fromisoformat(day)]
    assert s.rth_open_ns == utc(*rth_open_utc)
    assert s.rth_close_ns == s.rth_open_ns + int(6.5 * 3600e9)
    assert s.open_ns == utc(*globex_open_utc)
    assert s.close_ns == s.rth_open_ns + int(7.5 * 3600e9)  # 16:00 local either way
    assert one(table, s.rth_open_ns - 1)[2] is False
    assert one(table, s.rth_open_ns)[2] is True


# --------------------------------------------------------------------------------------------------
# the pre-2021-06-28 15:15-15:30 CT halt
# --------------------------------------------------------------------------------------------------


def test_pre_2021_halt(by_date, table):
    fri = by_date[dt.date(2021, 6, 25)]
    assert fri.segments == (
        (ct(2021, 6, 24, 17), ct(2021, 6, 25, 15, 15)),
        (ct(2021, 6, 25, 15, 30), ct(2021, 6, 25, 16)),
    )
    assert one(table, ct(2021, 6, 25, 14, 59)) == (dt.date(2021, 6, 25), True, True)
    assert one(table, ct(2021, 6, 25, 15, 14)) == (dt.date(2021, 6, 25), True, False)
    assert one(table, ct(2021, 6, 25, 15, 20)) == (dt.date(2021, 6, 25), False, False)
    assert one(table, ct(2021, 6, 25, 15, 30)) == (dt.date(2021, 6, 25), True, False)
    mon = by_date[dt.date(2021, 6, 28)]
    assert mon.segments == ((ct(2021, 6, 27, 17), ct(2021, 6, 28, 16)),)
    assert one(table, ct(2021, 6, 28, 15, 20)) == (dt.date(2021, 6, 28), True, False)


# --------------------------------------------------------------------------------------------------
# overrides of pandas_market_calendars
# --------------------------------------------------------------------------------------------------


def test_carter_day_of_mourning_2025_01_09_is_its_own_short_trade_date(by_date, table):
    s = by_date[dt.date(2025, 1, 9)]
    assert s.segments == ((ct(2025, 1, 8, 17), ct(2025, 1, 9, 8, 30)),)
    assert s.rth_open_ns == s.rth_close_ns == ct(2025, 1, 9, 8, 30)  # no RTH that day
    assert s.early_close and "Carter" in s.note
    assert by_date[dt.date(2025, 1, 10)].segments == ((ct(2025, 1, 9, 17), ct(2025, 1, 10, 16)),)
    assert one(table, ct(2025, 1, 9, 8, 29)) == (dt.date(2025, 1, 9), True, False)
    assert one(table, ct(2025, 1, 9, 8, 30)) == (dt.date(2025, 1, 10), False, False)
    assert one(table, ct(2025, 1, 9, 10)) == (dt.date(2025, 1, 10), False, False)
    assert one(table, ct(2025, 1, 9, 17)) == (dt.date(2025, 1, 10), True, False)


def test_bush_day_of_mourning_2018_12_05():
    s = {x.trade_date: x for x in cme_equity_sessions(dt.date(2018, 12, 4), dt.date(2018, 12, 6))}
    assert s[dt.date(2018, 12, 5)].segments == ((ct(2018, 12, 4, 17), ct(2018, 12, 5, 8, 30)),)
    assert s[dt.date(2018, 12, 6)].segments[0] == (ct(2018, 12, 5, 17), ct(2018, 12, 6, 15, 15))


@pytest.mark.parametrize(("thursday", "monday"), [("2024-03-28", "2024-04-01"), ("2025-04-17", "2025-04-21")])
def test_good_friday_without_jobs_report_is_closed(thursday, monday):
    thu, mon = dt.date.fromisoformat(thursday), dt.date.fromisoformat(monday)
    fri, sun = thu + dt.timedelta(days=1), mon - dt.timedelta(days=1)
    days = {s.trade_date: s for s in cme_equity_sessions(thu, mon)}
    assert sorted(days) == [thu, mon]
    assert days[thu].close_ns == ct(thu.year, thu.month, thu.day, 16)
    assert days[mon].segments == (
        (ct(sun.year, sun.month, sun.day, 17), ct(mon.year, mon.month, mon.day, 16)),
    )
    got = one(tuple(days.values()), ct(fri.year, fri.month, fri.day, 8))
    assert got == (mon, False, False)


@pytest.mark.parametrize("friday", ["2015-04-03", "2021-04-02", "2023-04-07", "2026-04-03"])
def test_good_friday_with_jobs_report_is_a_short_trade_date(friday):
    fri = dt.date.fromisoformat(friday)
    thu, sun, mon = (fri + dt.timedelta(days=k) for k in (-1, 2, 3))
    days = {s.trade_date: s for s in cme_equity_sessions(thu, mon)}
    assert sorted(days) == [thu, fri, mon]
    assert days[fri].segments == (
        (ct(thu.year, thu.month, thu.day, 17), ct(fri.year, fri.month, fri.day, 8, 15)),
    )
    assert days[fri].rth_open_ns == days[fri].rth_close_ns
    # Monday owns only Sunday evening on (split by the 15:15-15:30 halt before mid-2021)
    assert days[mon].open_ns == ct(sun.year, sun.month, sun.day, 17)
    assert days[mon].close_ns == ct(mon.year, mon.month, mon.day, 16)
    assert len(days[mon].segments) == (1 if mon.year >= 2022 else 2)


def test_future_good_friday_without_override_is_closed():
    # pmc schedules an 08:15 session on every Good Friday from 2023; 2027-03-26 has no jobs report (due 04-02)
    days = {s.trade_date: s for s in cme_equity_sessions(dt.date(2027, 3, 25), dt.date(2027, 3, 29))}
    assert sorted(days) == [dt.date(2027, 3, 25), dt.date(2027, 3, 29)]
    assert days[dt.date(2027, 3, 29)].segments == ((ct(2027, 3, 28, 17), ct(2027, 3, 29, 16)),)


def test_every_override_is_applied():
    for o in OVERRIDES:
        assert o.why and o.source
        days = {s.trade_date: s for s in cme_equity_sessions(o.day - dt.timedelta(days=4), o.day)}
        if o.action == "closed":
            assert o.day not in days
        else:
            assert o.close_ct is not None
            s = days[o.day]
            assert s.close_ns == ct(o.day.year, o.day.month, o.day.day, o.close_ct.hour, o.close_ct.minute)
            assert "override" in s.note


# --------------------------------------------------------------------------------------------------
# table-wide properties, parameters, errors, speed
# --------------------------------------------------------------------------------------------------


@settings(max_examples=14, deadline=None)
@given(st.integers(min_value=2013, max_value=2026))
def test_every_trade_date_of_a_year_is_well_formed(year):
    sessions = cme_equity_sessions(dt.date(year, 1, 1), dt.date(year, 12, 31))
    assert 245 <= len(sessions) <= 255
    previous_close = None
    for s in sessions:
        assert s.trade_date.weekday() < 5
        for open_ns, close_ns in s.segments:
            assert open_ns < close_ns
            assert previous_close is None or open_ns >= previous_close
            previous_close = close_ns
        d = s.trade_date
        assert s.close_ns <= ct(d.year, d.month, d.day, 16)
        assert s.open_ns >= ct(d.year, d.month, d.day) - 4 * 86_400 * 10**9
        assert s.rth_open_ns <= s.rth_close_ns
        if s.rth_open_ns < s.rth_close_ns:
            assert any(o <= s.rth_open_ns and s.rth_close_ns <= c for o, c in s.segments)
            assert s.rth_open_ns == ct(d.year, d.month, d.day, 8, 30)
    dates = [s.trade_date for s in sessions]
    assert dates == sorted(set(dates))


def test_assign_matches_plain_reference(table):
    rng = np.random.default_rng(11)
    ts = rng.integers(table[0].open_ns, table[-1].close_ns, 3000)
    ts[:300] = np.array([c for s in table for _, c in s.segments])[:300]  # exact closes
    a = assign_sessions(ts, table)
    for k, t in enumerate(ts.tolist()):
        owner = next(s for s in table if s.close_ns > t)
        inside = any(o <= t < c for o, c in owner.segments)
        assert a.trade_date[k].astype(dt.date) == owner.trade_date
        assert bool(a.in_session[k]) == inside
        assert bool(a.in_rth[k]) == (inside and owner.rth_open_ns <= t < owner.rth_close_ns)


def test_custom_rth_window():
    s = cme_equity_sessions(dt.date(2024, 12, 3), dt.date(2024, 12, 3), rth_start="08:00", rth_end="15:15")[0]
    assert (s.rth_open_ns, s.rth_close_ns) == (ct(2024, 12, 3, 8), ct(2024, 12, 3, 15, 15))


def test_accepts_datetime64_and_uint64(table):
    ts = np.array([ct(2024, 12, 2, 9)], dtype=np.int64)
    for arr in (ts.astype(np.uint64), ts.view("datetime64[ns]")):
        a = assign_sessions(arr, table)
        assert a.trade_date[0] == np.datetime64("2024-12-02") and a.in_rth[0]


def test_out_of_range_raises_naming_the_range(table):
    with pytest.raises(ValueError, match=r"outside the session table .*2020-12-01"):
        assign_sessions(np.array([ct(2019, 6, 3, 10)]), table)
    with pytest.raises(ValueError, match="sessions_for_timestamps"):
        assign_sessions(np.array([ct(2026, 6, 3, 10)]), table)
    with pytest.raises(ValueError, match="modelled from"):
        cme_equity_sessions(SUPPORTED_FROM - dt.timedelta(days=1), dt.date(2013, 1, 1))


def test_sessions_for_timestamps_covers_with_margin():
    lo, hi = ct(2024, 11, 29, 12, 14), ct(2024, 12, 24, 12, 14)
    table = sessions_for_timestamps(lo, hi)
    assert table[0].open_ns < lo and table[-1].close_ns > hi
    a = assign_sessions(np.array([lo, hi]), table)
    assert a.in_rth.all()


def test_many_timestamps_match_a_brute_force_reference(table):
    """Vectorised assignment equals a plain scan (first session whose close is after ts) on random stamps."""
    rng = np.random.default_rng(3)
    ts = np.sort(rng.integers(table[0].open_ns, table[-1].close_ns, 1_000_000))
    a = assign_sessions(ts, table)
    assert a.trade_date.size == 1_000_000
    for k in rng.choice(ts.size, 2000, replace=False):
        t = int(ts[k])
        s = next(x for x in table if x.close_ns > t)
        assert a.trade_date[k] == np.datetime64(s.trade_date, "D")
        assert a.in_session[k] == any(o <= t < c for o, c in s.segments)
        assert a.in_rth[k] == (s.rth_open_ns <= t < s.rth_close_ns)
