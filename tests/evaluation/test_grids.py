"""Daily and 1m grids: calendars against pmc and hand-known CME facts, warm-up counts, dense sessions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pandas_market_calendars as pmc
import pytest

from dsl import Frequency
from runtime.contracts import UserError
from runtime.evaluation import daily_grid, first_data_date, minute_grid, trading_days

CT = ZoneInfo("America/Chicago")


def nyse_days(lo: str, hi: str) -> np.ndarray:
    """pmc's NYSE schedule, computed here on its own (the session labels are the trading days)."""
    sched = pmc.get_calendar("NYSE").schedule(start_date=lo, end_date=hi)
    return np.array([ts.date() for ts in sched.index], dtype="datetime64[D]")


def test_nyse_grid_is_pmcs_schedule() -> None:
    g = daily_grid("NYSE", dt.date(2024, 1, 1), dt.date(2024, 12, 31), 0)
    np.testing.assert_array_equal(g.index, nyse_days("2024-01-01", "2024-12-31"))
    assert g.frequency is Frequency.DAILY and g.name == "daily:NYSE" and g.start == 0 and g.rows == 252
    assert np.datetime64("2024-11-28") not in g.index and np.datetime64("2024-11-29") in g.index


def test_trading_days_and_calendar_names() -> None:
    np.testing.assert_array_equal(
        trading_days("nyse", dt.date(2023, 12, 20), dt.date(2024, 1, 10)),
        nyse_days("2023-12-20", "2024-01-10"),
    )
    g = daily_grid(" cme_equity ", dt.date(2018, 11, 19), dt.date(2018, 11, 30), 0)
    assert g.name == "daily:CME_EQUITY" and g.calendar == "CME_EQUITY"


def test_warmup_rows_are_trading_days_before_start() -> None:
    g = daily_grid("NYSE", dt.date(2024, 1, 2), dt.date(2024, 3, 1), 10)
    ref = nyse_days("2023-11-01", "2023-12-31")
    assert g.start == 10 and g.index[10] == np.datetime64("2024-01-02")
    np.testing.assert_array_equal(g.index[:10], ref[-10:])
    assert g.previous == ref[-11] and g.note == ""
    np.testing.assert_array_equal(g.index[10:], nyse_days("2024-01-02", "2024-03-01"))
    # grids of one name agree on every row they share
    h = daily_grid("NYSE", dt.date(2023, 6, 1), dt.date(2024, 2, 1), 0)
    shared = np.intersect1d(g.index, h.index)
    assert len(shared) > 30 and np.all(
        np.isin(np.arange(shared[0], shared[-1] + 1), h.index)
        == np.isin(np.arange(shared[0], shared[-1] + 1), g.index)
    )


def test_load_from_takes_every_day_since() -> None:
    g = daily_grid("NYSE", dt.date(2024, 2, 1), dt.date(2024, 2, 29), 5, load_from=dt.date(2024, 1, 2))
    jan = nyse_days("2024-01-02", "2024-01-31")
    assert g.start == len(jan) == 21 and g.index[0] == np.datetime64("2024-01-02")


def test_cme_equity_grid_uses_the_project_overrides() -> None:
    g = daily_grid("CME_EQUITY", dt.date(2018, 1, 1), dt.date(2025, 12, 31), 0)
    days = set(g.index.astype(dt.date))
    # hand-known CME facts (runtime/ingest/sessions.py OVERRIDES and holiday rules)
    assert dt.date(2018, 11, 22) not in days and dt.date(2018, 11, 23) in days  # Thanksgiving / its Friday
    assert dt.date(2018, 12, 5) in days  # day of mourning: a trade date with an 08:30 CT close
    assert (
        dt.date(2023, 4, 7) in days and dt.date(2024, 3, 29) not in days
    )  # Good Fridays: jobs report or not
    assert dt.date(2025, 1, 9) in days and dt.date(2025, 4, 18) not in days
    assert not any(d.weekday() >= 5 for d in days)
    # elsewhere it is pmc's CME_TradeDate calendar
    trade = pmc.get_calendar("CME_TradeDate").schedule("2018-01-01", "2025-12-31")
    pmc_days = {ts.date() for ts in trade.index}
    own = {dt.date(2021, 4, 2), dt.date(2023, 4, 7), dt.date(2025, 1, 9), dt.date(2018, 12, 5)}
    assert days - own <= pmc_days and pmc_days - days <= {dt.date(2024, 3, 29), dt.date(2025, 4, 18)}


def test_fewer_warmup_rows_when_the_calendar_starts_later() -> None:
    g = daily_grid("CME_EQUITY", dt.date(2012, 11, 26), dt.date(2012, 12, 31), 50)
    # 2012-11-19 (first modelled day) .. 11-23, without Thanksgiving 11-22: 4 trade dates
    assert g.start == 4 and g.index[0] == np.datetime64("2012-11-19") and g.previous is None
    assert "4 warm-up rows instead of 50" in g.note


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("LSE", dt.date(2024, 1, 1), dt.date(2024, 2, 1)), ["'LSE'", "NYSE", "CME_EQUITY"]),
        (("none", dt.date(2024, 1, 1), dt.date(2024, 2, 1)), ["'none'", "INSTRUMENTS.calendar"]),
        (("NYSE", dt.date(2024, 2, 1), dt.date(2024, 1, 1)), ["after end", "swap"]),
        (("NYSE", dt.date(2024, 1, 6), dt.date(2024, 1, 7)), ["no trading day", "2024-01-06..2024-01-07"]),
        (("CME_EQUITY", dt.date(2010, 1, 1), dt.date(2013, 1, 1)), ["2012-11-19"]),
    ],
)
def test_grid_errors_are_user_errors(args, fragments) -> None:
    with pytest.raises(UserError) as ei:
        daily_grid(*args, 0)
    for f in fragments:
        assert f in str(ei.value)


# ---- 1m grids on the derived workspace -------------------------------------------------------------------


def ct_minutes(day: dt.date, start: dt.time, end: dt.time, prev_day: bool = False) -> np.ndarray:
    """Every minute start of [start, end) CT (start on the evening before when prev_day), as UTC ns."""
    a = dt.datetime.combine(day - dt.timedelta(days=1) if prev_day else day, start, tzinfo=CT)
    b = dt.datetime.combine(day, end, tzinfo=CT)
    rng = pd.date_range(a, b, freq="1min", inclusive="left").tz_convert("UTC").tz_localize(None)
    return rng.to_numpy().astype("datetime64[ns]")


def test_rth_grid_has_390_bars_a_session_and_fewer_on_an_early_close(workspace) -> None:
    g = minute_grid("ES", "RTH", dt.date(2018, 11, 19), dt.date(2018, 11, 28), paths=workspace.paths)
    days, counts = np.unique(g.trade_date, return_counts=True)
    assert [str(x) for x in days] == [
        "2018-11-19",
        "2018-11-20",
        "2018-11-21",
        "2018-11-23",
        "2018-11-26",
        "2018-11-27",
        "2018-11-28",
    ]
    assert dict(zip(days.astype(str), counts.tolist(), strict=True)) == {
        "2018-11-19": 390,
        "2018-11-20": 390,
        "2018-11-21": 390,
        "2018-11-23": 225,  # early close 12:15 CT: 08:30-12:15 is 3 h 45 min
        "2018-11-26": 390,
        "2018-11-27": 390,
        "2018-11-28": 390,
    }
    np.testing.assert_array_equal(
        g.index[g.trade_date == np.datetime64("2018-11-26")],
        ct_minutes(dt.date(2018, 11, 26), dt.time(8, 30), dt.time(15, 0)),
    )
    assert g.name == "1m:ES:RTH" and g.frequency is Frequency.MINUTE and g.start == 0
    assert g.periods_per_year == 252 * 390


def test_full_grid_skips_the_halt(workspace) -> None:
    g = minute_grid("ES", "FULL", dt.date(2018, 11, 26), dt.date(2018, 11, 26), paths=workspace.paths)
    # Sun 17:00 CT .. Mon 16:00 CT is 23 h = 1380 minutes, minus the 15:15-15:30 CT halt (before 2021-06-28)
    want = np.setdiff1d(
        ct_minutes(dt.date(2018, 11, 26), dt.time(17, 0), dt.time(16, 0), prev_day=True),
        ct_minutes(dt.date(2018, 11, 26), dt.time(15, 15), dt.time(15, 30)),
    )
    assert len(want) == 1365
    np.testing.assert_array_equal(g.index, want)


def test_minute_warmup_is_whole_earlier_sessions(workspace) -> None:
    p = workspace.paths
    g = minute_grid("ES", "RTH", dt.date(2018, 11, 21), dt.date(2018, 11, 27), 400, 5, paths=p)
    assert g.start == 780  # 400 bars need two whole sessions (11-20, 11-19) of 390
    assert g.index[g.start] == ct_minutes(dt.date(2018, 11, 21), dt.time(8, 30), dt.time(8, 31))[0]
    assert g.trade_date[0] == np.datetime64("2018-11-19") and g.note == ""
    # the daily grid: 5 trading days before the first loaded session, start at the first output session
    assert g.daily.index[g.daily.start] == np.datetime64("2018-11-21")
    assert g.daily.start == 5 + 2 and g.daily.index[-1] == np.datetime64("2018-11-27")
    np.testing.assert_array_equal(
        g.daily.index[:5], daily_grid("CME_EQUITY", dt.date(2018, 11, 12), dt.date(2018, 11, 16), 0).index
    )
    one = minute_grid("ES", "RTH", dt.date(2018, 11, 21), dt.date(2018, 11, 27), 1, paths=p)
    assert one.start == 390  # at least one bar: one whole session
    none = minute_grid("ES", "RTH", dt.date(2018, 11, 21), dt.date(2018, 11, 27), 0, paths=p)
    assert none.start == 0 and none.rows == g.rows
    short = minute_grid("ES", "RTH", dt.date(2018, 11, 21), dt.date(2018, 11, 27), 5000, paths=p)
    assert short.start == 780 and "780 warm-up bars instead of 5000" in short.note
    stateful = minute_grid(
        "ES", "RTH", dt.date(2018, 11, 26), dt.date(2018, 11, 27), 0, load_from=dt.date(2018, 11, 20), paths=p
    )
    assert stateful.start == 390 * 2 + 225 and stateful.trade_date[0] == np.datetime64(
        "2018-11-20"
    )  # 11-20, 11-21, 11-23 (early)


def test_minute_grid_is_cut_to_the_derived_data(workspace) -> None:
    g = minute_grid("ES", "RTH", dt.date(2018, 11, 1), dt.date(2018, 12, 31), paths=workspace.paths)
    assert g.trade_date[0] == np.datetime64("2018-11-19") and g.trade_date[-1] == np.datetime64("2018-11-28")
    assert "covers 2018-11-19..2018-11-28" in g.note


def test_minute_grid_errors(workspace, tmp_path) -> None:
    p = workspace.paths
    with pytest.raises(UserError) as ei:
        minute_grid("ES", "RTH", dt.date(2019, 1, 2), dt.date(2019, 1, 31), paths=p)
    msg = str(ei.value)
    assert "2019-01-02..2019-01-31" in msg and "backtest derive --dataset ES --session RTH" in msg
    assert "2018-11-19..2018-11-28" in msg
    with pytest.raises(UserError, match="RTH, FULL"):
        minute_grid("ES", "ETH", dt.date(2018, 11, 19), dt.date(2018, 11, 28), paths=p)
    # a hole inside the range: copy the derived tree, remove one session
    derived = tmp_path / "derived"
    shutil.copytree(p.derived_dir, derived)
    shutil.rmtree(derived / "ES" / "session_stats" / "session=RTH" / "trade_date=2018-11-26")
    holed = dataclasses.replace(p, derived_dir=derived)
    with pytest.raises(UserError) as ei:
        minute_grid("ES", "RTH", dt.date(2018, 11, 19), dt.date(2018, 11, 28), paths=holed)
    assert "2018-11-26" in str(ei.value) and "backtest derive" in str(ei.value)
    # before the hole the sessions are contiguous: a grid there is fine, and warm-up stops at the hole
    ok = minute_grid("ES", "RTH", dt.date(2018, 11, 27), dt.date(2018, 11, 28), 400, paths=holed)
    assert ok.start == 0 and "0 warm-up bars instead of 400" in ok.note


def test_first_data_date(workspace) -> None:
    assert first_data_date(workspace.reg, ["ES"]) == dt.date(2018, 11, 19)
    assert first_data_date(workspace.reg, ["ES", "CREDIT"]) == dt.date(1990, 1, 31)  # Moody's from 1990
    assert first_data_date(workspace.reg, ["VIX"]) is None  # not ingested here
