"""The widget without a browser: change a control, check the figure changed the way the API says it should."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import pytest

from runtime.charts.api import ChartSource, big_trades, candles, trade_dates
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
    assert {"candles", "volume", "footprint", "POC", "cvd"} <= set(names)
    assert widget.state.day == DAY and widget.state.session == "RTH"
    assert widget.ui is not None


def test_interval_control_changes_the_candle_count(widget: ChartWidget, synth: Derived) -> None:
    n5 = traces(widget.fig)["candles"]
    assert n5 == len(candles(src(synth), "RTH", DAY, DAY, 5))
    widget.controls["interval"].value = 1
    n1 = traces(widget.fig)["candles"]
    assert n1 == len(candles(src(synth), "RTH", DAY, DAY, 1)) > n5
    assert traces(widget.fig)["cvd"] == n1 and traces(widget.fig)["volume"] == n1
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
    rth = [pd.Timestamp(x) for x in widget.fig.layout.xaxis.range]
    assert rth == [pd.Timestamp("2018-11-06 08:30"), pd.Timestamp("2018-11-06 15:00")]  # exchange time
    widget.controls["session"].value = "FULL"
    full = [pd.Timestamp(x) for x in widget.fig.layout.xaxis.range]
    assert full == [pd.Timestamp("2018-11-05 17:00"), pd.Timestamp("2018-11-06 16:00")]
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


def test_footprint_controls(widget: ChartWidget) -> None:
    before = traces(widget.fig)["footprint"]
    widget.controls["footprint_interval"].value = 1
    assert traces(widget.fig)["footprint"] > before
    fp = next(t for t in widget.fig.data if t.name == "footprint")
    assert all(" x " in txt for txt in fp.text)
    colours = set(fp.textfont.color)
    widget.controls["ratio"].value = 20.0
    widget.controls["min_volume"].value = 1000
    fp2 = next(t for t in widget.fig.data if t.name == "footprint")
    assert len(colours) > 1 and set(fp2.textfont.color) == {"#7f7f7f"}  # no imbalance left
    widget.controls["show_footprint"].value = False
    assert "footprint" not in traces(widget.fig) and "POC" not in traces(widget.fig)


def test_zoom_redraws_the_footprint_for_the_visible_window(widget: ChartWidget) -> None:
    _need_anywidget()  # zoom events come from the FigureWidget
    widget.controls["footprint_interval"].value = 1
    widget.fig.layout.xaxis.range = ["2018-11-06 09:00", "2018-11-06 09:20"]
    fp = next(t for t in widget.fig.data if t.name == "footprint")
    xs = pd.to_datetime(pd.Series(fp.x))
    assert xs.min() >= pd.Timestamp("2018-11-06 09:00") and xs.max() <= pd.Timestamp("2018-11-06 09:20")
    assert traces(widget.fig)["candles"] == 78  # candles keep the whole day


def test_footprint_cap_keeps_the_newest_buckets(synth: Derived) -> None:
    state = ChartState(day=DAY, footprint_interval=1, max_cells=200)
    data = figure_data(state, src(synth))
    assert 0 < len(data.footprint) <= 200
    assert data.notes and "zoom in" in data.notes[0]
    full = figure_data(state.with_(max_cells=100_000), src(synth)).footprint
    assert data.footprint["ts"].min() > full["ts"].min() and data.footprint["ts"].max() == full["ts"].max()
    fig = build_figure(state, src(synth))
    assert traces(fig)["footprint"] == len(data.footprint)


def test_chart_source_for_snapshot(synth: Derived) -> None:
    s = chart_source_for(synth.env.snapshot)
    assert s == ChartSource(synth.env.paths.derived_dir, "ES", "front")
