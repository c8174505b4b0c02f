"""The figure and the files a trader gets: which day, what is drawn where, the zoom rule, file names, shared JS.

Expected values are hand-worked (exchange hours, the synth calendar: 2018-12-05 is the day of mourning, RTH
closed; 2018-12-08 a Saturday; the data end 2018-12-19) or come from the chart data API, whose own tests
check it against an independent recomputation; here the drawing is under test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from runtime.charts.api import ChartSource, big_trades, candles, footprint
from runtime.charts.command import ChartOptions, run_charts, state_changes
from runtime.charts.render import (
    CELL_BUCKETS,
    TEXT_BUCKETS,
    ChartState,
    build_figure,
    chart_file_name,
    chart_html,
    figure_data,
    footprint_mode,
    merge_rows,
    resolve_day,
    row_ticks,
    write_chart_html,
)
from runtime.contracts import UserError
from tests.charts.rows import rows_of, ticks_per_row
from tests.derive.conftest import Derived

DAY = dt.date(2018, 12, 14)  # a Friday with RTH and FULL
MOURNING = dt.date(2018, 12, 5)  # equity futures closed at 08:30 CT: FULL has trades, RTH none
SATURDAY = dt.date(2018, 12, 8)
GREEN, RED = "#1a9850", "#d73027"


def src(d: Derived) -> ChartSource:
    return ChartSource(d.env.paths.derived_dir, "ES")


def trace(fig: go.Figure, name: str) -> go.BaseTraceType:
    return next(t for t in fig.data if t.name == name)


def names(fig: go.Figure) -> set[str]:
    return {t.name for t in fig.data}


def utc(local: str) -> pd.Timestamp:
    return pd.Timestamp(local, tz="America/Chicago").tz_convert("UTC")


# ---- which day -------------------------------------------------------------------------------------------


def test_a_day_with_the_session_is_itself(synth: Derived) -> None:
    assert resolve_day(src(synth), "RTH", DAY) == DAY
    assert resolve_day(src(synth), "FULL", MOURNING) == MOURNING  # the overnight session traded
    assert resolve_day(src(synth), "RTH", None) == dt.date(2018, 12, 19)  # the latest with trades


@pytest.mark.parametrize(
    ("day", "why", "nearest"),
    [
        (SATURDAY, "weekend", "Fri 2018-12-07, Mon 2018-12-10"),
        (MOURNING, "no RTH trading that day", "Tue 2018-12-04, Thu 2018-12-06"),
        (dt.date(2019, 1, 2), "cover 2018-11-01 .. 2018-12-19", "Wed 2018-12-19"),
    ],
)
def test_a_day_without_the_session_is_an_error_naming_the_nearest(
    synth: Derived, day: dt.date, why: str, nearest: str
) -> None:
    with pytest.raises(UserError) as e:
        resolve_day(src(synth), "RTH", day)
    msg = str(e.value)
    assert (
        f"no RTH session on {day:%a} {day}" in msg
        and why in msg
        and f"Nearest RTH sessions: {nearest}" in msg
    )
    fix = re.search(r"fix: --day (\S+)", msg)
    assert fix is not None and resolve_day(src(synth), "RTH", dt.date.fromisoformat(fix.group(1)))


def test_title_names_the_day_shown_and_a_closed_day_says_so(synth: Derived) -> None:
    fig = build_figure(ChartState(session="RTH", day=DAY), src(synth))
    assert fig.layout.title.text.startswith("RTH Fri 2018-12-14 |")
    closed = figure_data(ChartState(session="RTH", day=MOURNING), src(synth))
    assert closed.dates[-1] == MOURNING and any("exchange was closed" in n for n in closed.notes)
    assert "exchange was closed" in build_figure(closed.state, src(synth)).layout.title.text


# ---- what is drawn where -----------------------------------------------------------------------------------


def test_bars_at_their_start_in_exchange_time(synth: Derived) -> None:
    fig = build_figure(ChartState(session="RTH", day=DAY, interval=5), src(synth))
    x = pd.to_datetime(pd.Series(trace(fig, "candles").x))
    assert x.iloc[0] == pd.Timestamp("2018-12-14 08:30")  # the RTH open, Chicago wall clock (CST)
    assert (x.dt.minute % 5 == 0).all() and (x.dt.second == 0).all()  # never a midpoint like 13:02:30
    assert (x.diff().dropna() >= pd.Timedelta(minutes=5)).all()
    assert x.iloc[-1] <= pd.Timestamp("2018-12-14 14:55")
    vol = pd.to_datetime(pd.Series(trace(fig, "volume (candle colour)").x))
    assert vol.tolist() == x.tolist()


def test_volume_is_coloured_like_its_candle(synth: Derived) -> None:
    fig = build_figure(ChartState(session="RTH", day=DAY, interval=5), src(synth))
    c = candles(src(synth), "RTH", DAY, DAY, 5)
    want = [GREEN if cl >= op else RED for op, cl in zip(c["open"], c["close"], strict=True)]
    assert list(trace(fig, "volume (candle colour)").marker.color) == want
    # the case the old colouring got wrong exists in this data: a rising candle with negative delta
    assert ((c["close"] > c["open"]) & (c["delta"] < 0)).any()


def test_bubbles_sit_on_their_candle_behind_it(synth: Derived) -> None:
    fig = build_figure(ChartState(session="RTH", day=DAY, interval=5, big_min_size=50), src(synth))
    bt = big_trades(src(synth), "RTH", DAY, DAY, mode="sweep", min_size=50)
    assert len(bt) > 0
    xs, ts = [], []
    for name, side in (("big buys", 1), ("big sells", -1)):
        if name in names(fig):
            t = trace(fig, name)
            xs += list(pd.to_datetime(pd.Series(t.x)))
            ts += list(bt.loc[bt["side"] == side, "ts_event"])
            assert t.marker.opacity < 0.5 and t.yaxis == "y"
    # independent rule: the 5-minute bucket counted from the 08:30 CT open, in Chicago wall-clock time
    open_ = pd.Timestamp("2018-12-14 08:30")
    local = [pd.Timestamp(t).tz_convert("America/Chicago").tz_localize(None) for t in ts]
    want = [open_ + (t - open_) // pd.Timedelta(minutes=5) * pd.Timedelta(minutes=5) for t in local]
    assert xs == want
    candle_x = set(pd.to_datetime(pd.Series(trace(fig, "candles").x)))
    assert set(xs) <= candle_x
    # layer order: bubbles on the base price axis, candles on an overlay drawn above it, same range
    assert trace(fig, "candles").yaxis == "y4"
    assert fig.layout.yaxis4.overlaying == "y" and fig.layout.yaxis4.matches == "y"
    assert trace(fig, "candles").increasing.fillcolor == GREEN  # solid at a whole-day view


def test_full_chart_shades_rth(synth: Derived) -> None:
    fig = build_figure(ChartState(session="FULL", day=DAY, interval=15), src(synth))
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 3  # one per pane (price, volume, CVD), all the same window
    assert {(pd.Timestamp(s.x0), pd.Timestamp(s.x1)) for s in rects} == {
        (pd.Timestamp("2018-12-14 08:30"), pd.Timestamp("2018-12-14 15:00"))
    }
    x = [pd.Timestamp(v) for v in fig.layout.xaxis.range]
    half = pd.Timedelta(minutes=7.5)
    assert x == [pd.Timestamp("2018-12-13 17:00") - half, pd.Timestamp("2018-12-14 16:00") + half]
    assert not build_figure(ChartState(session="RTH", day=DAY), src(synth)).layout.shapes


def test_price_axis_fits_the_visible_window(synth: Derived) -> None:
    view = (utc("2018-12-14 10:00"), utc("2018-12-14 10:45"))
    fig = build_figure(ChartState(session="RTH", day=DAY, view=view), src(synth))
    c = candles(src(synth), "RTH", DAY, DAY, 5)
    seen = c[(c["ts_end"] > view[0]) & (c["ts"] < view[1])]
    lo, hi = fig.layout.yaxis.range
    assert lo < seen["low"].min() and hi > seen["high"].max()
    assert hi - lo <= 1.2 * (seen["high"].max() - seen["low"].min()) + 2 * 0.75
    day_lo, day_hi = build_figure(ChartState(session="RTH", day=DAY), src(synth)).layout.yaxis.range
    assert day_lo <= c["low"].min() and day_hi >= c["high"].max()
    vol_hi = fig.layout.yaxis2.range[1]
    assert seen["volume"].max() < vol_hi <= 1.1 * seen["volume"].max()


# ---- footprint by zoom level ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "interval", "mode"),
    [(45, 5, "text"), (120, 5, "text"), (121, 5, "cells"), (45, 1, "cells"), (24, 1, "text"), (61, 1, "off")],
)
def test_footprint_mode_rule(minutes: int, interval: int, mode: str) -> None:
    assert (TEXT_BUCKETS, CELL_BUCKETS) == (24, 60)
    assert footprint_mode(pd.Timedelta(minutes=minutes), interval) == mode


def test_whole_day_hides_the_footprint_and_a_45_minute_zoom_shows_bid_x_ask(synth: Derived) -> None:
    day = build_figure(ChartState(session="RTH", day=DAY), src(synth))
    assert "footprint" not in names(day) and "bid x ask" not in names(day)
    hint = next(a for a in day.layout.annotations if a.name == "fp-hint")
    assert "zoom to <= 300 min" in hint.text
    view = (utc("2018-12-14 10:00"), utc("2018-12-14 10:45"))
    fig = build_figure(ChartState(session="RTH", day=DAY, view=view), src(synth))
    per_tick = footprint(src(synth), "RTH", view[0], view[1], 5)
    assert len(per_tick) > 20
    k = ticks_per_row(fig.layout.yaxis.range)
    want = rows_of(per_tick, k)
    text = trace(fig, "bid x ask")
    assert list(text.text) == [
        f"<b>{b} x {a}</b>" if p else f"{b} x {a}"
        for b, a, p in zip(want["bid"], want["ask"], want["poc"], strict=True)
    ]
    assert list(text.y) == (want["row"] + (k - 1) * 0.125).tolist()  # centred on the row's ticks
    assert text.yaxis == "y5" and fig.layout.yaxis5.overlaying == "y"  # numbers above the candles
    cells = trace(fig, "footprint")
    assert list(cells.base) == (want["row"] - 0.125).tolist() and set(cells.y) == {k * 0.25}
    poc_w = np.asarray(cells.marker.line.width)
    assert (poc_w > 0).tolist() == want["poc"].tolist()
    assert int(want["poc"].sum()) == per_tick["ts"].nunique()  # one POC row per bucket
    fills = np.asarray(cells.marker.color)
    assert all("26,152,80" in f for f in fills[want["buy"] & ~want["sell"]])
    assert all("215,48,39" in f for f in fills[want["sell"] & ~want["buy"]])
    assert trace(fig, "candles").increasing.fillcolor == "rgba(0,0,0,0)"  # hollow over the cells
    hint = next(a for a in fig.layout.annotations if a.name == "fp-hint").text
    assert hint.startswith(f"footprint 5m{f', {k} ticks per row' if k > 1 else ''}: bid x ask")


def test_row_merging_hand_worked() -> None:
    fp = pd.DataFrame(
        {
            "trade_date": [DAY] * 5,
            "ts": [utc("2018-12-14 10:00")] * 4 + [utc("2018-12-14 10:05")],
            "ts_end": [utc("2018-12-14 10:05")] * 4 + [utc("2018-12-14 10:10")],
            "price": [2500.00, 2500.25, 2500.50, 2501.00, 2500.25],
            "bid_volume": [1, 2, 3, 4, 5],
            "ask_volume": [10, 20, 30, 40, 50],
            "other_volume": [0] * 5,
            "volume": [11, 22, 33, 44, 55],
            "delta": [9, 18, 27, 36, 45],
            "n_trades": [1] * 5,
            "buy_imbalance": [False, True, False, False, False],
            "sell_imbalance": [False] * 5,
            "poc": [False, False, False, True, True],
        }
    )
    got = merge_rows(fp, 2, 0.25)  # rows [2500.00, 2500.25], [2500.50, 2500.75], [2501.00, 2501.25]
    assert got["price"].tolist() == [2500.0, 2500.5, 2501.0, 2500.0]
    assert got["bid_volume"].tolist() == [3, 3, 4, 5] and got["ask_volume"].tolist() == [30, 30, 40, 50]
    assert got["buy_imbalance"].tolist() == [True, False, False, False]
    assert got["poc"].tolist() == [False, False, True, True]
    assert merge_rows(fp, 1, 0.25) is fp
    # on 560 px: 40 points = 3.5 px per tick -> 4 ticks (14 px) per row; 20 points = 7 px -> 2 ticks;
    # 12 points = 11.7 px -> 1 tick; 5 points = 28 px -> 1 tick
    assert [row_ticks(p, 0.25) for p in (40.0, 20.0, 12.0, 5.0)] == [4, 2, 1, 1]


# ---- files -------------------------------------------------------------------------------------------------


def test_file_names_differ_when_the_chart_differs() -> None:
    base = ChartState(session="RTH", day=DAY)
    name = chart_file_name("ES", DAY, base)
    assert name == "ES_2018-12-14_RTH_5m.html"
    others = [
        base.with_(interval=1, footprint_interval=1),
        base.with_(footprint_interval=1),
        base.with_(big_min_size=100),
        base.with_(big_by="percentile"),
        base.with_(show_cvd=False),
        base.with_(n_days=3),
        base.with_(session="FULL"),
    ]
    all_names = [name] + [chart_file_name("ES", DAY, s) for s in others]
    assert len(set(all_names)) == len(all_names)
    assert (
        chart_file_name("ES", DAY, base.with_(view=(utc("2018-12-14 10:00"), utc("2018-12-14 11:00"))))
        == name
    )


def test_charts_share_one_plotly_js(synth: Derived, tmp_path: Path) -> None:
    out = tmp_path / "charts"
    a = write_chart_html(src(synth), "RTH", DAY, out / "a.html")
    b = write_chart_html(src(synth), "FULL", DAY, out / "b.html", interval=15, footprint_interval=15)
    bundle = get_plotlyjs()
    assert (out / "plotly.min.js").read_text(encoding="utf-8") == bundle
    for page in (a, b):
        html = page.read_text(encoding="utf-8")
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
        assert page.stat().st_size < 1_000_000 and bundle[:2000] not in html
    assert sorted(p.name for p in out.iterdir()) == ["a.html", "b.html", "plotly.min.js"]  # no temp files


def test_page_script_holds_the_whole_footprint(synth: Derived) -> None:
    html = chart_html(ChartState(session="RTH", day=DAY), src(synth))
    m = re.search(r"var P = (\{.*?\});\n", html)
    assert m is not None
    payload = json.loads(m.group(1))
    want = footprint(src(synth), "RTH", DAY, DAY, 5)
    assert len(payload["fp"]["x0"]) == len(want) and payload["fp"]["price"] == want["price"].tolist()
    assert payload["fp"]["step"] == 5 * 60_000 and payload["textBuckets"] == TEXT_BUCKETS


def test_unwritable_out_folder_is_a_user_error_and_writes_nothing(synth: Derived, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in (Path("/proc/x"), blocker / "sub"):
        with pytest.raises(UserError, match=r"cannot write the chart to .*fix: pass --out"):
            write_chart_html(src(synth), "RTH", DAY, bad / "c.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---- options -----------------------------------------------------------------------------------------------


def test_options_map_to_the_state() -> None:
    ch = state_changes(
        ChartOptions(
            interval="1",
            big_percentile=99.5,
            lookback=10,
            big_mode="print",
            layers="candles,footprint",
            imbalance_ratio=4,
            imbalance_min=20,
            days=2,
            cvd_reset="continuous",
        )
    )
    assert ch == {
        "interval": 1,
        "footprint_interval": 1,
        "big_by": "percentile",
        "big_percentile": 99.5,
        "lookback_sessions": 10,
        "big_mode": "print",
        "show_candles": True,
        "show_footprint": True,
        "show_bubbles": False,
        "show_volume": False,
        "show_cvd": False,
        "ratio": 4,
        "min_volume": 20,
        "n_days": 2,
        "cvd_reset": "continuous",
    }
    assert state_changes(ChartOptions(interval="session"))["interval"] == "session"
    assert state_changes(ChartOptions(interval="15", footprint_interval=5))["footprint_interval"] == 5
    assert state_changes(ChartOptions(big_size=200)) == {"big_by": "contracts", "big_min_size": 200}


@pytest.mark.parametrize(
    ("opts", "option"),
    [
        (ChartOptions(interval="0"), "--interval"),
        (ChartOptions(interval="5x"), "--interval"),
        (ChartOptions(footprint_interval=0), "--footprint-interval"),
        (ChartOptions(big_size=10, big_percentile=99.0), "--big-size and --big-percentile"),
        (ChartOptions(big_size=0), "--big-size"),
        (ChartOptions(big_percentile=0.0), "--big-percentile"),
        (ChartOptions(lookback=5), "--lookback"),
        (ChartOptions(big_mode="huge"), "--big-mode"),
        (ChartOptions(layers="candles,heatmap"), "--layers"),
        (ChartOptions(layers=","), "--layers"),
        (ChartOptions(imbalance_ratio=0.5), "--imbalance-ratio"),
        (ChartOptions(imbalance_min=-1), "--imbalance-min"),
        (ChartOptions(days=0), "--days"),
        (ChartOptions(cvd_reset="weekly"), "--cvd-reset"),
    ],
)
def test_bad_option_is_named(opts: ChartOptions, option: str) -> None:
    with pytest.raises(UserError) as e:
        state_changes(opts)
    assert str(e.value).startswith(option)


def test_run_charts_checks_before_writing(synth: Derived, tmp_path: Path) -> None:
    out = tmp_path / "charts"
    for opts in (
        ChartOptions(day="2018-12-08"),
        ChartOptions(session="NIGHT"),
        ChartOptions(day="14/12/2018"),
    ):
        with pytest.raises(UserError):
            run_charts(src(synth), out, opts)
    assert not out.exists()
    files = run_charts(src(synth), out, ChartOptions(session="full", day="2018-12-14"))
    assert [f.name for f in files] == ["ES_2018-12-14_FULL_15m.html"]  # FULL defaults to 15-minute candles
