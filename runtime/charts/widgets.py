"""The interactive chart for notebooks: ipywidgets controls around a plotly FigureWidget.

All drawing logic is in render.py (`build_figure(state, src)`); this class only turns control values into a
ChartState and swaps the figure's traces and layout, so tests drive it by setting control values (no browser).
Zooming or panning the price pane redraws the footprint for the visible window only (cells, then the bid x ask
numbers, appear as the window narrows; see render.footprint_mode) and refits the price axis.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go

from runtime.charts.api import ChartSource, trade_dates
from runtime.charts.render import ChartState, build_figure
from runtime.contracts import ConfigSnapshot, UserError

INTERVALS: tuple[Any, ...] = (1, 2, 3, 5, 10, 13, 15, 30, 60, "session")
FOOTPRINT_INTERVALS = (1, 2, 3, 5, 10, 15, 30, 60)


def chart_source_for(
    snapshot: ConfigSnapshot, dataset_id: str | None = None, profile: str | None = None, series: str = "front"
) -> ChartSource:
    """The derived tables of a dataset (default: the first enabled intraday_trades dataset) of a snapshot."""
    from runtime.config.loader import snapshot_paths

    if dataset_id is None:
        ids = [d.dataset_id for d in snapshot.datasets if d.dataset_type == "intraday_trades" and d.enabled]
        if not ids:
            raise UserError("the snapshot has no enabled intraday_trades dataset (DATASETS sheet)")
        dataset_id = ids[0]
    else:
        snapshot.dataset(dataset_id)
    return ChartSource(snapshot_paths(snapshot, profile).derived_dir, dataset_id, series)


def _figure_widget(fig: go.Figure) -> go.Figure:
    """A FigureWidget when anywidget is installed (plotly >= 6 needs it), else the plain figure."""
    try:
        return go.FigureWidget(fig)
    except ImportError:
        return fig


class ChartWidget:
    """Controls + figure. `controls` holds the widgets by name; `fig` the (widget) figure; `ui` the layout."""

    def __init__(self, src: ChartSource, state: ChartState | None = None):
        self.src = src
        state = state or ChartState()
        days = trade_dates(src, state.session)
        day = state.day or (days[-1] if days else None)
        self._updating = False
        self.controls: dict[str, w.Widget] = {
            "session": w.ToggleButtons(options=["RTH", "FULL"], value=state.session, description="session"),
            "day": w.Dropdown(options=days, value=day, description="day"),
            "prev": w.Button(description="<", layout=w.Layout(width="36px")),
            "next": w.Button(description=">", layout=w.Layout(width="36px")),
            "n_days": w.BoundedIntText(value=state.n_days, min=1, max=60, description="days"),
            "interval": w.Dropdown(options=INTERVALS, value=state.interval, description="candles"),
            "show_footprint": w.Checkbox(value=state.show_footprint, description="footprint"),
            "show_candles": w.Checkbox(value=state.show_candles, description="candles"),
            "show_bubbles": w.Checkbox(value=state.show_bubbles, description="bubbles"),
            "show_volume": w.Checkbox(value=state.show_volume, description="volume"),
            "show_cvd": w.Checkbox(value=state.show_cvd, description="CVD"),
            "footprint_interval": w.Dropdown(
                options=FOOTPRINT_INTERVALS, value=state.footprint_interval, description="fp minutes"
            ),
            "ratio": w.BoundedFloatText(
                value=state.ratio, min=1.0, max=20.0, step=0.5, description="imb ratio"
            ),
            "min_volume": w.BoundedIntText(value=state.min_volume, min=0, max=100_000, description="imb min"),
            "big_mode": w.ToggleButtons(options=["sweep", "print"], value=state.big_mode, description="big"),
            "big_by": w.ToggleButtons(
                options=["contracts", "percentile"], value=state.big_by, description="threshold"
            ),
            "big_min_size": w.BoundedIntText(
                value=state.big_min_size, min=1, max=100_000, description="contracts"
            ),
            "big_percentile": w.BoundedFloatText(
                value=state.big_percentile, min=50.0, max=100.0, step=0.1, description="percentile"
            ),
            "lookback_sessions": w.BoundedIntText(
                value=state.lookback_sessions, min=1, max=250, description="lookback"
            ),
            "cvd_reset": w.ToggleButtons(
                options=["session", "continuous"], value=state.cvd_reset, description="CVD"
            ),
        }
        self._base = state
        self.status = w.HTML()
        self.fig = _figure_widget(build_figure(self.state, src))
        for ctl in self.controls.values():
            if isinstance(ctl, w.Button):
                continue
            ctl.observe(self._on_control, names="value")
        self.controls["prev"].on_click(lambda _: self.step(-1))
        self.controls["next"].on_click(lambda _: self.step(+1))
        if isinstance(self.fig, go.FigureWidget):
            self.fig.layout.on_change(self._on_zoom, "xaxis.range")

    # -- state ---------------------------------------------------------------------------------------

    @property
    def state(self) -> ChartState:
        c = self.controls
        return self._base.with_(
            session=c["session"].value,
            day=c["day"].value,
            n_days=int(c["n_days"].value),
            interval=c["interval"].value,
            show_footprint=bool(c["show_footprint"].value),
            show_candles=bool(c["show_candles"].value),
            show_bubbles=bool(c["show_bubbles"].value),
            show_volume=bool(c["show_volume"].value),
            show_cvd=bool(c["show_cvd"].value),
            footprint_interval=int(c["footprint_interval"].value),
            ratio=float(c["ratio"].value),
            min_volume=int(c["min_volume"].value),
            big_mode=c["big_mode"].value,
            big_by=c["big_by"].value,
            big_min_size=int(c["big_min_size"].value),
            big_percentile=float(c["big_percentile"].value),
            lookback_sessions=int(c["lookback_sessions"].value),
            cvd_reset=c["cvd_reset"].value,
        )

    # -- events --------------------------------------------------------------------------------------

    def _on_control(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        if change["owner"] is self.controls["session"]:
            self._reload_days()
        self._base = self._base.with_(view=None)  # a new selection starts from the whole window
        self.refresh()

    def _reload_days(self) -> None:
        days = trade_dates(self.src, self.controls["session"].value)
        current = self.controls["day"].value
        self._updating = True
        try:
            self.controls["day"].options = days
            self.controls["day"].value = current if current in days else (days[-1] if days else None)
        finally:
            self._updating = False

    def step(self, n: int) -> None:
        """Move the day selector n trade dates (buttons < and >)."""
        days = list(self.controls["day"].options)
        if not days:
            return
        cur = self.controls["day"].value
        i = days.index(cur) if cur in days else len(days) - 1
        self.controls["day"].value = days[min(max(i + n, 0), len(days) - 1)]

    def _on_zoom(self, layout: Any, x_range: Any) -> None:
        if self._updating or not x_range or not self.controls["show_footprint"].value:
            return
        lo, hi = (pd.Timestamp(x).tz_localize("America/Chicago").tz_convert("UTC") for x in x_range)
        self._base = self._base.with_(view=(lo, hi))
        self.refresh()

    def refresh(self) -> None:
        """Redraw from the current controls (one batched update of the widget)."""
        t0 = dt.datetime.now()
        new = build_figure(self.state, self.src)
        self._updating = True
        try:
            if isinstance(self.fig, go.FigureWidget):
                with self.fig.batch_update():
                    self.fig.data = ()
                    self.fig.add_traces(list(new.data))
                    self.fig.layout = new.layout
                self.fig.layout.on_change(self._on_zoom, "xaxis.range")  # a new layout object drops callbacks
            else:
                self.fig = new
        finally:
            self._updating = False
        ms = (dt.datetime.now() - t0).total_seconds() * 1000
        self.status.value = f"<small>{len(new.data)} traces, drawn in {ms:.0f} ms</small>"

    # -- layout --------------------------------------------------------------------------------------

    @property
    def ui(self) -> w.Widget:
        c = self.controls
        rows = [
            w.HBox([c["session"], c["prev"], c["day"], c["next"], c["n_days"]]),
            w.HBox(
                [c["interval"], c["show_footprint"], c["footprint_interval"], c["ratio"], c["min_volume"]]
            ),
            w.HBox(
                [c["big_mode"], c["big_by"], c["big_min_size"], c["big_percentile"], c["lookback_sessions"]]
            ),
            w.HBox([c["show_candles"], c["show_bubbles"], c["show_volume"], c["show_cvd"], c["cvd_reset"]]),
            w.HBox([self.status]),
        ]
        if isinstance(self.fig, go.FigureWidget):
            return w.VBox([*rows, self.fig])
        out = w.Output()
        with out:
            self.fig.show()
        return w.VBox([*rows, out])
