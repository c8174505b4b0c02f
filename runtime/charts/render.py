"""Plotly figures from the chart data API: candles + footprint + big-trade bubbles, volume and CVD panes.

Pure: `figure_data(state, src)` gathers the frames a chart needs and `build_figure(state, src)` turns them into
a plotly Figure, so a test (or a web app) can ask "what would the chart show for these settings" without a
browser. The widget (widgets.py) only maps controls to a ChartState and redraws.

Display conventions: the x axis is exchange time (America/Chicago, wall clock) because that is how the trader
reads a session; the API frames stay in UTC. The footprint is drawn as "bid x ask" text per price level, only
inside the visible window and capped at `max_cells` cells (the newest buckets are kept), since plotly text
traces slow down past a few thousand labels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runtime.charts.api import (
    ChartSource,
    Interval,
    big_trades,
    candles,
    cvd,
    footprint,
    sessions,
    trade_dates,
)

if TYPE_CHECKING:
    from runtime.contracts import DatasetRow, ResolvedPaths
    from runtime.storage.registry import Registry

DISPLAY_TZ = "America/Chicago"
BUY, SELL, NEUTRAL = "#1a9850", "#d73027", "#7f7f7f"
BOTH = "#7b3294"
POC_COLOUR = "#f0a202"
MAX_BUBBLE_PX = 28.0


@dataclass(frozen=True)
class ChartState:
    """Everything the chart's controls set; the figure is a pure function of (state, source)."""

    session: str = "RTH"
    day: dt.date | None = None  # last trade date shown (None = the latest with data)
    n_days: int = 1  # trade dates shown, ending at `day`
    interval: Interval = 5  # candle minutes or "session"
    show_footprint: bool = True
    footprint_interval: int = 5
    ratio: float = 3.0
    min_volume: int = 10
    tick: float = 0.25
    big_mode: str = "sweep"  # "sweep" (aggressor events) or "print" (single records)
    big_by: str = "contracts"  # "contracts" (min_size) or "percentile"
    big_min_size: int = 50
    big_percentile: float = 99.9
    lookback_sessions: int = 20
    cvd_reset: str = "session"
    view: tuple[pd.Timestamp, pd.Timestamp] | None = None  # visible UTC window (footprint drawn only inside)
    max_cells: int = 2500

    def with_(self, **changes: Any) -> ChartState:
        return replace(self, **changes)


@dataclass(frozen=True)
class FigureData:
    """The frames one chart draws (UTC), plus the window and what was left out."""

    state: ChartState
    dates: tuple[dt.date, ...]
    candles: pd.DataFrame
    footprint: pd.DataFrame
    big_trades: pd.DataFrame
    cvd: pd.DataFrame
    x_range: tuple[pd.Timestamp, pd.Timestamp] | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _pick_dates(src: ChartSource, state: ChartState) -> tuple[dt.date, ...]:
    days = trade_dates(src, state.session)
    if not days:
        return ()
    day = state.day if state.day is not None else days[-1]
    upto = [d for d in days if d <= day]
    if not upto:
        upto = days[:1]
    return tuple(upto[-max(1, state.n_days) :])


def _cap_cells(fp: pd.DataFrame, max_cells: int) -> tuple[pd.DataFrame, int]:
    """Keep the newest whole buckets that fit in max_cells; returns the frame and the buckets dropped."""
    if len(fp) <= max_cells:
        return fp, 0
    per_bucket = fp.groupby("ts", sort=True).size()
    fits = per_bucket[::-1].cumsum() <= max_cells
    keep = set(per_bucket[::-1][fits].index)
    return fp[fp["ts"].isin(keep)], int((~fits).sum())


def figure_data(state: ChartState, src: ChartSource) -> FigureData:
    """Query the API for everything the chart shows (no plotly here)."""
    dates = _pick_dates(src, state)
    notes: list[str] = []
    if not dates:
        empty = pd.DataFrame()
        return FigureData(state, (), empty, empty, empty, empty, None, ("no derived data for this session",))
    first, last = dates[0], dates[-1]
    c = candles(src, state.session, first, last, state.interval)
    fp = pd.DataFrame()
    if state.show_footprint:
        lo, hi = state.view if state.view is not None else (first, last)
        if state.view is not None:
            lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
        fp = footprint(
            src,
            state.session,
            lo,
            hi,
            state.footprint_interval,
            ratio=state.ratio,
            min_volume=state.min_volume,
            tick=state.tick,
        )
        fp, dropped = _cap_cells(fp, state.max_cells)
        if dropped:
            notes.append(f"footprint: newest {fp['ts'].nunique()} buckets shown ({dropped} older: zoom in)")
    if state.big_by == "percentile":
        bt = big_trades(
            src,
            state.session,
            first,
            last,
            mode=state.big_mode,
            percentile=state.big_percentile,
            lookback_sessions=state.lookback_sessions,
        )
    else:
        bt = big_trades(src, state.session, first, last, mode=state.big_mode, min_size=state.big_min_size)
    cv = cvd(src, state.session, first, last, state.interval, reset=state.cvd_reset)
    st = sessions(src, state.session, dates).table
    x_range = None
    if len(st):
        x_range = (
            pd.Timestamp(int(st["open_ts"].min()), tz="UTC"),
            pd.Timestamp(int(st["close_ts"].max()), tz="UTC"),
        )
    return FigureData(state, dates, c, fp, bt, cv, x_range, tuple(notes))


def _local(ts: pd.Series | pd.Timestamp) -> Any:
    """UTC -> exchange wall-clock time, tz-naive (plotly draws naive datetimes as given)."""
    if isinstance(ts, pd.Timestamp):
        return ts.tz_convert(DISPLAY_TZ).tz_localize(None)
    return pd.to_datetime(ts, utc=True).dt.tz_convert(DISPLAY_TZ).dt.tz_localize(None)


def _mid(frame: pd.DataFrame) -> pd.Series:
    return _local(frame["ts"] + (frame["ts_end"] - frame["ts"]) / 2)


def _candle_traces(c: pd.DataFrame, faded: bool) -> list[go.BaseTraceType]:
    x = _mid(c)
    return [
        go.Candlestick(
            x=x,
            open=c["open"],
            high=c["high"],
            low=c["low"],
            close=c["close"],
            name="candles",
            opacity=0.4 if faded else 1.0,
            increasing_line_color=BUY,
            decreasing_line_color=SELL,
        ),
        go.Bar(
            x=x,
            y=c["volume"],
            name="volume",
            marker_color=np.where(c["delta"] >= 0, BUY, SELL).tolist(),
            customdata=np.stack([c["buy_volume"], c["sell_volume"], c["delta"]], axis=1),
            hovertemplate="vol %{y}<br>buy %{customdata[0]} sell %{customdata[1]}<br>delta %{customdata[2]}",
        ),
    ]


def _footprint_traces(fp: pd.DataFrame) -> list[go.BaseTraceType]:
    """`bid x ask` per price level at the bucket's middle; imbalances coloured, the POC bold and underlined."""
    colour = np.select(
        [fp["buy_imbalance"] & fp["sell_imbalance"], fp["buy_imbalance"], fp["sell_imbalance"]],
        [BOTH, BUY, SELL],
        NEUTRAL,
    )
    text = [
        f"<b>{b} x {a}</b>" if poc else f"{b} x {a}"
        for b, a, poc in zip(fp["bid_volume"], fp["ask_volume"], fp["poc"], strict=True)
    ]
    poc = fp[fp["poc"]]
    return [
        go.Scatter(
            x=_mid(fp),
            y=fp["price"],
            mode="text",
            text=text,
            textfont={"size": 9, "color": colour.tolist()},
            name="footprint",
            customdata=np.stack([fp["volume"], fp["delta"]], axis=1),
            hovertemplate="%{y}: %{text}<br>vol %{customdata[0]} delta %{customdata[1]}<extra></extra>",
        ),
        go.Scatter(
            x=_mid(poc),
            y=poc["price"],
            mode="markers",
            marker={"symbol": "line-ew-open", "size": 34, "line": {"width": 2, "color": POC_COLOUR}},
            name="POC",
            hoverinfo="skip",
        ),
    ]


def _bubble_traces(bt: pd.DataFrame, mode: str) -> list[go.BaseTraceType]:
    """One trace per aggressor side; marker area proportional to contracts."""
    sizeref = 2.0 * float(bt["size"].max()) / (MAX_BUBBLE_PX**2)
    out = []
    for side, colour, label in ((1, BUY, "big buys"), (-1, SELL, "big sells"), (0, NEUTRAL, "big (no side)")):
        part = bt[bt["side"] == side]
        if part.empty:
            continue
        out.append(
            go.Scatter(
                x=_local(part["ts_event"]),
                y=part["price"],
                mode="markers",
                name=label,
                marker={
                    "size": part["size"],
                    "sizemode": "area",
                    "sizeref": sizeref,
                    "sizemin": 3,
                    "color": colour,
                    "opacity": 0.4,
                    "line": {"width": 0.5, "color": "#222"},
                },
                customdata=np.stack([part["size"], part["n_fills"]], axis=1),
                hovertemplate="%{customdata[0]} lots @ %{y} (%{customdata[1]} fills)"
                + f"<extra>{label} ({mode})</extra>",
            )
        )
    return out


def _cvd_trace(cv: pd.DataFrame) -> go.Candlestick:
    return go.Candlestick(
        x=_mid(cv),
        open=cv["cvd_open"],
        high=cv["cvd_high"],
        low=cv["cvd_low"],
        close=cv["cvd"],
        name="cvd",
        increasing_line_color=BUY,
        decreasing_line_color=SELL,
    )


def _title(data: FigureData) -> str:
    s = data.state
    days = ", ".join(d.isoformat() for d in data.dates[-3:]) + (" ..." if len(data.dates) > 3 else "")
    title = f"{s.session} {days} | {s.interval}{'' if s.interval == 'session' else 'm'} candles"
    if len(data.footprint):
        title += f" | footprint {s.footprint_interval}m (ratio {s.ratio:g}, min {s.min_volume})"
    if s.big_by == "percentile":
        thr = f"p{s.big_percentile:g} of {s.lookback_sessions} prior sessions"
    else:
        thr = f">= {s.big_min_size}"
    title += f" | big {s.big_mode}s {thr}"
    if data.notes:
        title += "<br><sup>" + "; ".join(data.notes) + "</sup>"
    return title


def figure_from_data(data: FigureData) -> go.Figure:
    """Price pane (candles, big-trade bubbles, footprint text on top), volume pane, CVD pane; shared x axis."""
    s = data.state
    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.025, row_heights=[0.62, 0.19, 0.19]
    )
    c, fp, bt, cv = data.candles, data.footprint, data.big_trades, data.cvd
    if len(c):
        price, vol = _candle_traces(c, faded=len(fp) > 0)
        fig.add_trace(price, row=1, col=1)
        fig.add_trace(vol, row=2, col=1)
    for t in _bubble_traces(bt, s.big_mode) if len(bt) else []:
        fig.add_trace(t, row=1, col=1)
    for t in _footprint_traces(fp) if len(fp) else []:
        fig.add_trace(t, row=1, col=1)
    if len(cv):
        fig.add_trace(_cvd_trace(cv), row=3, col=1)
    fig.update_layout(
        title={"text": _title(data), "font": {"size": 13}, "y": 0.985},
        height=900,
        margin={"l": 60, "r": 20, "t": 95, "b": 40},
        showlegend=True,
        legend={"orientation": "h", "y": 1.0, "x": 0, "yanchor": "bottom"},
        hovermode="closest",
        template="plotly_white",
    )
    fig.update_xaxes(rangeslider_visible=False)
    if data.x_range is not None:
        lo, hi = data.x_range if s.view is None else (pd.Timestamp(s.view[0]), pd.Timestamp(s.view[1]))
        fig.update_xaxes(range=[_local(lo), _local(hi)])
    if s.view is not None and len(c):  # fit the price axis to what is visible
        lo, hi = pd.Timestamp(s.view[0]), pd.Timestamp(s.view[1])
        seen = c[(c["ts_end"] > lo) & (c["ts"] < hi)]
        if len(seen):
            pad = 2 * s.tick
            fig.update_yaxes(
                range=[float(seen["low"].min()) - pad, float(seen["high"].max()) + pad], row=1, col=1
            )
            fig.update_yaxes(range=[0, float(seen["volume"].max()) * 1.05], row=2, col=1)
        seen_cvd = cv[(cv["ts_end"] > lo) & (cv["ts"] < hi)] if len(cv) else cv
        if len(seen_cvd):
            lo_c, hi_c = float(seen_cvd["cvd_low"].min()), float(seen_cvd["cvd_high"].max())
            pad_c = max(1.0, 0.05 * (hi_c - lo_c))
            fig.update_yaxes(range=[lo_c - pad_c, hi_c + pad_c], row=3, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    fig.update_yaxes(title_text=f"CVD ({s.cvd_reset})", row=3, col=1)
    fig.update_xaxes(title_text=f"exchange time ({DISPLAY_TZ})", row=3, col=1)
    return fig


def build_figure(state: ChartState, src: ChartSource) -> go.Figure:
    """The chart for these settings (pure: same state and derived files, same figure)."""
    return figure_from_data(figure_data(state, src))


def write_chart_html(
    src: ChartSource, session: str, day: dt.date | None, out_path: Path, **state: Any
) -> Path:
    """A self-contained HTML chart (plotly.js inline, so it opens offline); extra keywords set ChartState fields."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig = build_figure(ChartState(session=session, day=day, **state), src)
    fig.write_html(out_path, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return out_path


def write_demo_charts(
    paths: ResolvedPaths, reg: Registry, ds: DatasetRow, out_dir: Path | None = None
) -> list[Path]:
    """One RTH and one FULL chart of the latest derived trade date of `ds` (the demo calls this).

    Reads only the registry's manifests and the derived files. Default out_dir is <RUNS_DIR>/charts. Prints where
    each file went.
    """
    src = ChartSource(paths.derived_dir, ds.dataset_id)
    out_dir = Path(out_dir) if out_dir is not None else paths.runs_dir / "charts"
    rows = reg.query(
        "SELECT session, max(trade_date) AS day FROM derived_manifests "
        "WHERE dataset_id = ? AND series = 'front' AND table_name = 'session_stats' AND rows > 0 GROUP BY session",
        [ds.dataset_id],
    )
    latest = {r["session"]: r["day"] for r in rows}
    written = []
    for session in ("RTH", "FULL"):
        day = latest.get(session)
        if day is None:
            continue
        st = sessions(src, session, [day]).table
        if (
            st.empty or int(st["n_trades"].iloc[0]) == 0
        ):  # e.g. a day without RTH: take the last one with trades
            days = [d for d in trade_dates(src, session) if d <= day]
            day = next(
                (d for d in reversed(days) if int(sessions(src, session, [d]).table["n_trades"].iloc[0]) > 0),
                None,
            )
            if day is None:
                continue
        # open on a readable footprint window (the first 10 RTH minutes / the first 2 Globex hours); the whole
        # session's candles, volume, CVD and bubbles are there too: double-click the chart to see all of it
        open_ts = pd.Timestamp(int(sessions(src, session, [day]).table["open_ts"].iloc[0]), tz="UTC")
        if session == "RTH":
            kw: dict[str, Any] = {"interval": 1, "footprint_interval": 1, "big_min_size": 100}
            kw["view"] = (open_ts, open_ts + pd.Timedelta(minutes=10))
        else:
            kw = {"interval": 15, "footprint_interval": 15, "big_min_size": 100}
            kw["view"] = (open_ts, open_ts + pd.Timedelta(hours=2))
        path = write_chart_html(
            src, session, day, out_dir / f"{ds.dataset_id}_{day.isoformat()}_{session}.html", **kw
        )
        print(f"chart {session} {day}: {path}")
        written.append(path)
    return written
