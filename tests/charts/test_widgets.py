"""The widget without a browser: change a control, check the figure changed the way the API says it should."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import pytest

from runtime.charts.api import ChartSource, big_trades, candles, footprint, trade_dates
from runtime.charts.render import ChartState, build_figure, figure_data
from runtime.charts.widgets import ChartWidget, chart_source_for
from tests.derive.conftest import Derived

DAY = dt.date(2018, 11, 6)


def src(d: Derived) -> ChartSource:
    return ChartSource(d.env.paths.derived_dir, "ES")


def traces(fig: go.Figure) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in fig.data:
        out[t.name] = out.get(t.name, 0) + (len(t.x) if t.x is not None else 0)
    return out


def bubbles(fig: go.Figure) -> int:
    return sum(n for name, n in traces(fig).items() if name.startswith("big"))


@pytest.fixture
def widget(synth: Derived) -> ChartWidget:
    return ChartWidget(src(synth), ChartState(day=DAY, interval=5, big_min_size=50))


def _need_anywidget() -> None:
    try:
        import anywidget  # noqa: F401 - plotly >= 6 builds FigureWidget on it
    except ImportError:
        pytest.fail(
            "plotly's FigureWidget needs anywidget: add 'anywidget>=0.9,<1' to the pyproject dependencies"
        )


def test_widget_is_a_figure_widget_with_all_panes(widget: ChartWidget) -> None:
    _need_anywidget()
    assert isinstance(widget.fig, go.FigureWidget)
    names = traces(widget.fig)
    assert {"candles", "volume (candle colour)", "cvd"} <= set(names)
    assert "footprint" not in names  # a whole day: the footprint waits for a zoom (see test_zoom_...)
    assert widget.state.day == DAY and widget.state.session == "RTH"
    assert widget.ui is not None


def test_interval_control_changes_the_candle_count(widget: ChartWidget, synth: Derived) -> None:
    n5 = traces(widget.fig)["candles"]
    assert n5 == len(candles(src(synth), "RTH", DAY, DAY, 5))
    widget.controls["interval"].value = 1
    n1 = traces(widget.fig)["candles"]
    assert n1 == len(candles(src(synth), "RTH", DAY, DAY, 1)) > n5
    assert traces(widget.fig)["cvd"] == n1 and traces(widget.fig)["volume (candle colour)"] == n1
    widget.controls["interval"].value = "session"
    assert traces(widget.fig)["candles"] == 1


def test_big_trade_threshold_and_mode_change_the_bubbles(widget: ChartWidget, synth: Derived) -> None:
    s = src(synth)
    at50 = bubbles(widget.fig)
    assert at50 == len(big_trades(s, "RTH", DAY, DAY, mode="sweep", min_size=50)) > 0
    widget.controls["big_min_size"].value = 200
    at200 = bubbles(widget.fig)
    assert at200 == len(big_trades(s, "RTH", DAY, DAY, mode="sweep", min_size=200)) < at50
    widget.controls["big_mode"].value = "print"
    assert bubbles(widget.fig) == len(big_trades(s, "RTH", DAY, DAY, mode="print", min_size=200))
    widget.controls["lookback_sessions"].value = 3
    widget.controls["big_percentile"].value = 99.0
    widget.controls["big_by"].value = "percentile"
    want = big_trades(s, "RTH", DAY, DAY, mode="print", percentile=99.0, lookback_sessions=3)
    assert bubbles(widget.fig) == len(want)
    sizes = sorted(x for t in widget.fig.data if t.name.startswith("big") for x in t.marker.size)
    assert sizes == sorted(want["size"])
    assert all(t.marker.sizemode == "area" for t in widget.fig.data if t.name.startswith("big"))


def test_session_switch_changes_the_x_range(widget: ChartWidget) -> None:
    half = pd.Timedelta(minutes=2.5)  # half a 5-minute candle of margin: bars are drawn at their start
    rth = [pd.Timestamp(x) for x in widget.fig.layout.xaxis.range]
    assert rth == [pd.Timestamp("2018-11-06 08:30") - half, pd.Timestamp("2018-11-06 15:00") + half]
    widget.controls["session"].value = "FULL"
    full = [pd.Timestamp(x) for x in widget.fig.layout.xaxis.range]
    assert full == [pd.Timestamp("2018-11-05 17:00") - half, pd.Timestamp("2018-11-06 16:00") + half]
    assert traces(widget.fig)["candles"] > 78


def test_day_navigation_and_range(widget: ChartWidget, synth: Derived) -> None:
    days = trade_dates(src(synth), "RTH")
    widget.controls["prev"].click()
    assert widget.state.day == days[days.index(DAY) - 1]
    widget.controls["next"].click()
    widget.controls["next"].click()
    assert widget.state.day == days[days.index(DAY) + 1]
    widget.controls["n_days"].value = 3
    lo, hi = (pd.Timestamp(x) for x in widget.fig.layout.xaxis.range)
    assert lo.date() == days[days.index(DAY) - 1] and hi.date() == widget.state.day
    assert traces(widget.fig)["candles"] == len(candles(src(synth), "RTH", lo.date(), hi.date(), 5))


def _zoom(widget: ChartWidget, lo: str, hi: str) -> None:
    _need_anywidget()  # zoom events come from the FigureWidget
    widget.fig.layout.xaxis.range = [lo, hi]


def _trace(fig: go.Figure, name: str) -> go.BaseTraceType:
    return next(t for t in fig.data if t.name == name)


def test_footprint_controls(widget: ChartWidget, synth: Derived) -> None:
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 09:45")  # 9 five-minute buckets: numbers
    lo, hi = pd.Timestamp("2018-11-06 15:00", tz="UTC"), pd.Timestamp("2018-11-06 15:45", tz="UTC")
    want = footprint(src(synth), "RTH", lo, hi, 5)
    text = _trace(widget.fig, "bid x ask")
    assert list(text.text) == [
        f"<b>{b} x {a}</b>" if poc else f"{b} x {a}"
        for b, a, poc in zip(want["bid_volume"], want["ask_volume"], want["poc"], strict=True)
    ]
    assert traces(widget.fig)["footprint"] == len(want)
    colours = set(text.textfont.color)
    widget.controls["ratio"].value = 20.0  # a new setting redraws the whole day; zoom again
    widget.controls["min_volume"].value = 1000
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 09:45")
    assert len(colours) > 1 and set(_trace(widget.fig, "bid x ask").textfont.color) == {"#222222"}
    widget.controls["show_footprint"].value = False
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 09:45")
    assert "footprint" not in traces(widget.fig) and "bid x ask" not in traces(widget.fig)


def test_layer_checkboxes_remove_their_traces(widget: ChartWidget) -> None:
    for ctl, name in (
        ("show_volume", "volume (candle colour)"),
        ("show_cvd", "cvd"),
        ("show_candles", "candles"),
    ):
        assert name in traces(widget.fig)
        widget.controls[ctl].value = False
        assert name not in traces(widget.fig)
    assert bubbles(widget.fig) > 0
    widget.controls["show_bubbles"].value = False
    assert bubbles(widget.fig) == 0


def test_zoom_redraws_the_footprint_for_the_visible_window(widget: ChartWidget) -> None:
    widget.controls["footprint_interval"].value = 1
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 09:20")  # 20 one-minute buckets: numbers
    fp = _trace(widget.fig, "footprint")
    xs = pd.to_datetime(pd.Series(fp.x))
    assert xs.min() >= pd.Timestamp("2018-11-06 09:00") and xs.max() <= pd.Timestamp("2018-11-06 09:20")
    assert len(_trace(widget.fig, "bid x ask").text) == len(fp.x) > 0
    assert traces(widget.fig)["candles"] == 78  # candles keep the whole day
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 09:50")  # 50 buckets: cells without numbers
    assert len(_trace(widget.fig, "footprint").x) > 0 and "bid x ask" not in traces(widget.fig)
    _zoom(widget, "2018-11-06 09:00", "2018-11-06 11:00")  # 120 buckets: no footprint at all
    assert "footprint" not in traces(widget.fig)


def test_footprint_cap_keeps_the_newest_buckets(synth: Derived) -> None:
    view = (pd.Timestamp("2018-11-06 15:00", tz="UTC"), pd.Timestamp("2018-11-06 15:50", tz="UTC"))
    state = ChartState(day=DAY, footprint_interval=1, max_cells=100, view=view)
    data = figure_data(state, src(synth))
    assert 0 < len(data.footprint) <= 100
    assert data.notes and "zoom in" in data.notes[0]
    full = figure_data(state.with_(max_cells=100_000), src(synth)).footprint
    assert data.footprint["ts"].min() > full["ts"].min() and data.footprint["ts"].max() == full["ts"].max()
    fig = build_figure(state, src(synth))
    assert traces(fig)["footprint"] == len(data.footprint)


def test_chart_source_for_snapshot(synth: Derived) -> None:
    s = chart_source_for(synth.env.snapshot)
    assert s == ChartSource(synth.env.paths.derived_dir, "ES", "front")
