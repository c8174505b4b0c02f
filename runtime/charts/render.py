"""Plotly figures from the chart data API: candles + footprint + big-trade bubbles, volume and CVD panes.

Pure: `figure_data(state, src)` gathers the frames a chart needs and `build_figure(state, src)` turns them into
a plotly Figure, so a test (or a web app) can ask "what would the chart show for these settings" without a
browser. The widget (widgets.py) only maps controls to a ChartState and redraws; the static HTML
(`write_chart_html`) carries the same rules in a small script (charts.js) that redraws on zoom.

Display conventions (ATAS / Sierra Chart footprint style):
* x is exchange time (America/Chicago wall clock); every bar is drawn at its bucket's START (13:00 means the
  bucket 13:00-13:05), hover shows that time. The API frames stay in UTC.
* Layers, bottom to top: footprint cells and big-trade bubbles (semi-transparent) -> candles -> footprint
  numbers. Plotly draws scatter above candlesticks within one subplot, so the candles sit on an overlaid
  price axis (y4) and the numbers on another (y5), all three with the same range.
* The footprint depends on how many footprint buckets are visible (`footprint_mode`): more than
  CELL_BUCKETS -> nothing (the candles alone are readable); up to CELL_BUCKETS -> coloured cells (imbalances
  green/red, POC outlined); up to TEXT_BUCKETS -> the `bid x ask` numbers too. Zoom in and it appears.
* The price/volume/CVD axes are fitted to the visible time window (the HTML script refits on every zoom).
* Volume bars are coloured like their candle (close >= open: green).
* A FULL chart shades each RTH window.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runtime.charts.api import (
    FOOTPRINT_COLUMNS,
    ChartSource,
    Interval,
    big_trades,
    bucket_starts,
    candles,
    cvd,
    footprint,
    sessions,
    trade_dates,
)
from runtime.charts.zoom_js import ZOOM_JS
from runtime.contracts import UserError

if TYPE_CHECKING:
    from runtime.contracts import DatasetRow, ResolvedPaths
    from runtime.storage.registry import Registry

DISPLAY_TZ = "America/Chicago"
BUY, SELL, NEUTRAL = "#1a9850", "#d73027", "#7f7f7f"
BOTH = "#7b3294"
POC_COLOUR = "#f0a202"
RTH_SHADE = "rgba(255, 214, 102, 0.16)"
MAX_BUBBLE_PX = 30.0
#: footprint buckets visible at most for cells / for the bid x ask numbers (readable at ~1,300 px plot width)
CELL_BUCKETS = 60
TEXT_BUCKETS = 24
#: footprint rows merge k ticks (ATAS/Sierra "ticks per row") so that a row is at least ROW_MIN_PX tall
ROW_TICKS = (1, 2, 4, 8, 20, 40, 80)
ROW_MIN_PX = 11.0
#: the price pane's height in pixels of the 900-px figure, where no browser measures it (widget, first draw)
PRICE_PANE_PX = 560.0
#: a footprint cluster spans [0.12, 0.88] of its bucket: the thin candle body at the bucket start (boxgap 0.8
#: leaves 0.1 of a bucket each side of it) stays clear of both neighbouring clusters
CELL_CENTRE, CELL_WIDTH = 0.5, 0.76
LAYERS = ("candles", "footprint", "bubbles", "volume", "cvd")
JS_FILE = "plotly.min.js"


@dataclass(frozen=True)
class ChartState:
    """Everything the chart's controls set; the figure is a pure function of (state, source)."""

    session: str = "RTH"
    day: dt.date | None = None  # last trade date shown (None = the latest with trades)
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
    view: tuple[pd.Timestamp, pd.Timestamp] | None = None  # visible UTC window (None = the whole session)
    max_cells: int = 2500
    show_candles: bool = True
    show_bubbles: bool = True
    show_volume: bool = True
    show_cvd: bool = True

    def with_(self, **changes: Any) -> ChartState:
        return replace(self, **changes)

    @property
    def layers(self) -> tuple[str, ...]:
        on = (self.show_candles, self.show_footprint, self.show_bubbles, self.show_volume, self.show_cvd)
        return tuple(name for name, shown in zip(LAYERS, on, strict=True) if shown)


def parse_layers(text: str) -> dict[str, bool]:
    """'candles,footprint' -> the show_* fields of ChartState (unknown names are a user error)."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in LAYERS]
    if bad or not names:
        what = f"unknown layer {bad[0]!r}" if bad else "no layer named"
        raise UserError(f"--layers {text!r}: {what}; use a comma list of {', '.join(LAYERS)}")
    return {f"show_{n}": n in names for n in LAYERS}


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
    footprint_mode: str = "off"  # "off" | "cells" | "text" for the visible window
    rth_windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()


# ---- which day ----------------------------------------------------------------------------------------


def _traded(src: ChartSource, session: str, day: dt.date) -> bool:
    """Whether this trade date has the session with at least one trade (a closed day has a 0-trade row)."""
    st = sessions(src, session, [day]).table
    return bool(len(st)) and int(st["n_trades"].iloc[0]) > 0


def _nearest(src: ChartSource, session: str, days: list[dt.date], day: dt.date, step: int) -> dt.date | None:
    """The closest traded date before (step -1) or after (step +1) `day`, reading one small file per date."""
    i = bisect.bisect_left(days, day) + (-1 if step < 0 else 0)
    while 0 <= i < len(days):
        if days[i] != day and _traded(src, session, days[i]):
            return days[i]
        i += step
    return None


def latest_day(src: ChartSource, session: str) -> dt.date | None:
    """The latest trade date with trades in this session (reads from the end: cheap at years of data)."""
    days = trade_dates(src, session)
    return next((d for d in reversed(days) if _traded(src, session, d)), None)


def resolve_day(src: ChartSource, session: str, day: dt.date | None) -> dt.date:
    """The trade date a chart of `day` shows: `day` itself, or a UserError naming the nearest sessions.

    Why an error rather than the nearest day: a file named after one day must show that day.
    """
    days = trade_dates(src, session)
    last = latest_day(src, session)
    if last is None:
        raise UserError(
            f"{src.dataset_id}: no derived {session} session with trades; run `backtest derive` first"
        )
    if day is None:
        return last
    if day in days and _traded(src, session, day):
        return day
    if day.weekday() >= 5:
        why = "a weekend day is not a CME trade date"
    elif day in days:
        why = f"the exchange had no {session} trading that day (closed)"
    elif day < days[0] or day > days[-1]:
        why = f"the derived {session} data of {src.dataset_id} cover {days[0]} .. {days[-1]}"
    else:
        why = f"no {session} data derived for it (a holiday, or not ingested)"
    near = [d for d in (_nearest(src, session, days, day, -1), _nearest(src, session, days, day, +1)) if d]
    raise UserError(
        f"--day {day}: {src.dataset_id} has no {session} session on {day:%a} {day}: {why}. "
        f"Nearest {session} sessions: {', '.join(f'{d:%a} {d}' for d in near)}; fix: --day {near[0]}"
    )


def _pick_dates(src: ChartSource, state: ChartState) -> tuple[dt.date, ...]:
    days = trade_dates(src, state.session)
    if not days:
        return ()
    day = state.day if state.day is not None else (latest_day(src, state.session) or days[-1])
    upto = [d for d in days if d <= day]
    if not upto:
        upto = days[:1]
    return tuple(upto[-max(1, state.n_days) :])


# ---- footprint visibility -----------------------------------------------------------------------------


def footprint_mode(span: pd.Timedelta, footprint_interval: int) -> str:
    """What the footprint shows when `span` of time is visible: "off", "cells" or "text" (same rule in JS)."""
    n = math.ceil(span / pd.Timedelta(minutes=footprint_interval) - 1e-9)
    if n <= TEXT_BUCKETS:
        return "text"
    return "cells" if n <= CELL_BUCKETS else "off"


def _cap_cells(fp: pd.DataFrame, max_cells: int) -> tuple[pd.DataFrame, int]:
    """Keep the newest whole buckets that fit in max_cells; returns the frame and the buckets dropped."""
    if len(fp) <= max_cells:
        return fp, 0
    per_bucket = fp.groupby("ts", sort=True).size()
    fits = per_bucket[::-1].cumsum() <= max_cells
    keep = set(per_bucket[::-1][fits].index)
    return fp[fp["ts"].isin(keep)], int((~fits).sum())


def _big(src: ChartSource, state: ChartState, first: dt.date, last: dt.date) -> pd.DataFrame:
    if state.big_by == "percentile":
        return big_trades(
            src,
            state.session,
            first,
            last,
            mode=state.big_mode,
            percentile=state.big_percentile,
            lookback_sessions=state.lookback_sessions,
        )
    return big_trades(src, state.session, first, last, mode=state.big_mode, min_size=state.big_min_size)


def _footprint(src: ChartSource, state: ChartState, lo: Any, hi: Any) -> pd.DataFrame:
    return footprint(
        src,
        state.session,
        lo,
        hi,
        state.footprint_interval,
        ratio=state.ratio,
        min_volume=state.min_volume,
        tick=state.tick,
    )


def figure_data(state: ChartState, src: ChartSource) -> FigureData:
    """Query the API for everything the chart shows (no plotly here)."""
    dates = _pick_dates(src, state)
    notes: list[str] = []
    if not dates:
        empty = pd.DataFrame()
        return FigureData(state, (), empty, empty, empty, empty, None, ("no derived data for this session",))
    first, last = dates[0], dates[-1]
    if state.day is not None and last != state.day:
        notes.append(f"no {state.session} session on {state.day}: showing {last}")
    st = sessions(src, state.session, dates).table
    if len(st) and int(st["n_trades"].iloc[-1]) == 0:
        notes.append(f"no {state.session} trades on {last} ({last:%A}): the exchange was closed")
    c = candles(src, state.session, first, last, state.interval)
    x_range = None
    if len(st) and int(st["n_trades"].sum()) > 0:
        traded = st[st["n_trades"] > 0]
        x_range = (
            pd.Timestamp(int(traded["open_ts"].min()), tz="UTC"),
            pd.Timestamp(int(traded["close_ts"].max()), tz="UTC"),
        )
    view = state.view if state.view is not None else x_range
    mode = "off"
    fp = pd.DataFrame()
    if state.show_footprint and view is not None:
        lo, hi = pd.Timestamp(view[0]), pd.Timestamp(view[1])
        mode = footprint_mode(hi - lo, state.footprint_interval)
        if mode != "off":
            fp, dropped = _cap_cells(_footprint(src, state, lo, hi), state.max_cells)
            if dropped:
                notes.append(
                    f"footprint: newest {fp['ts'].nunique()} buckets drawn, {dropped} older: zoom in"
                )
    bt = _big(src, state, first, last) if state.show_bubbles else pd.DataFrame()
    if len(bt):  # each bubble is drawn on the candle of its bucket (ATAS convention); hover gives its time
        ts = pd.to_datetime(bt["ts_event"], utc=True).astype("int64").to_numpy()
        days = np.array([(d - dt.date(1970, 1, 1)).days for d in bt["trade_date"]], dtype=np.int64)
        b0, _ = bucket_starts(ts, days, sessions(src, state.session, dates), state.interval)
        bt = bt.assign(bucket=pd.to_datetime(b0, unit="ns", utc=True))
    cv = cvd(src, state.session, first, last, state.interval, reset=state.cvd_reset)
    rth: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()
    if state.session == "FULL":
        r = sessions(src, "RTH", dates).table
        rth = tuple(
            (pd.Timestamp(int(o), tz="UTC"), pd.Timestamp(int(e), tz="UTC"))
            for o, e, n in zip(r["open_ts"], r["close_ts"], r["n_trades"], strict=True)
            if n > 0
        )
    return FigureData(state, dates, c, fp, bt, cv, x_range, tuple(notes), mode, rth)


# ---- drawing ------------------------------------------------------------------------------------------


def _local(ts: pd.Series | pd.Timestamp) -> Any:
    """UTC -> exchange wall-clock time, tz-naive (plotly draws naive datetimes as given)."""
    if isinstance(ts, pd.Timestamp):
        return ts.tz_convert(DISPLAY_TZ).tz_localize(None)
    return pd.to_datetime(ts, utc=True).dt.tz_convert(DISPLAY_TZ).dt.tz_localize(None)


def _ms(ts: pd.Series | pd.Timestamp) -> Any:
    """Exchange wall-clock time as plotly's linear date value (ms since epoch of the naive time)."""
    loc = _local(ts)
    if isinstance(loc, pd.Timestamp):
        return int(loc.value // 1_000_000)
    return (loc.astype("int64") // 1_000_000).to_numpy()


def _step(interval: Interval, frame: pd.DataFrame) -> pd.Timedelta:
    if interval == "session":
        return pd.Timedelta(hours=1) if frame.empty else (frame["ts_end"] - frame["ts"]).max()
    return pd.Timedelta(minutes=int(interval))


def _candle_colour(c: pd.DataFrame) -> list[str]:
    return np.where(c["close"] >= c["open"], BUY, SELL).tolist()


def _candle_traces(c: pd.DataFrame, hollow: bool) -> tuple[go.Candlestick, go.Bar]:
    x = _local(c["ts"])
    up, down = ("rgba(0,0,0,0)", "rgba(0,0,0,0)") if hollow else (BUY, SELL)
    return (
        go.Candlestick(
            x=x,
            open=c["open"],
            high=c["high"],
            low=c["low"],
            close=c["close"],
            name="candles",
            increasing={"line": {"color": BUY, "width": 1.2}, "fillcolor": up},
            decreasing={"line": {"color": SELL, "width": 1.2}, "fillcolor": down},
            xaxis="x",
            yaxis="y4",
        ),
        go.Bar(
            x=x,
            y=c["volume"],
            name="volume (candle colour)",
            marker_color=_candle_colour(c),
            customdata=np.stack([c["buy_volume"], c["sell_volume"], c["delta"]], axis=1),
            hovertemplate="%{x|%H:%M} vol %{y}<br>buy %{customdata[0]} sell %{customdata[1]}"
            "<br>delta %{customdata[2]}<extra></extra>",
        ),
    )


def _cell_colours(fp: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(cell fill, text colour): imbalances green/red/purple, other cells grey scaled by volume in the bucket."""
    vmax = fp.groupby("ts")["volume"].transform("max").to_numpy()
    share = np.where(vmax > 0, fp["volume"].to_numpy() / np.maximum(vmax, 1), 0.0)
    grey = [f"rgba(120,130,150,{0.08 + 0.32 * s:.2f})" for s in share]
    buy, sell = fp["buy_imbalance"].to_numpy(), fp["sell_imbalance"].to_numpy()
    fill = np.where(
        buy & sell,
        "rgba(123,50,148,0.35)",
        np.where(buy, "rgba(26,152,80,0.38)", np.where(sell, "rgba(215,48,39,0.38)", grey)),
    )
    text = np.select([buy & sell, buy, sell], ["#4b1a5e", "#0b5d2e", "#9e1a12"], "#222222")
    return fill.tolist(), text.tolist()


def footprint_payload(fp: pd.DataFrame, step: pd.Timedelta) -> dict[str, Any]:
    """The footprint as plain arrays (what the HTML script filters to the visible window)."""
    x0 = _ms(fp["ts"]) if len(fp) else np.array([], dtype=np.int64)
    imb = (fp["buy_imbalance"].astype(int) + 2 * fp["sell_imbalance"].astype(int)) if len(fp) else []
    return {
        "x0": [int(v) for v in x0],
        "step": int(step / pd.Timedelta(milliseconds=1)),
        "price": fp["price"].astype(float).tolist() if len(fp) else [],
        "bid": fp["bid_volume"].astype(int).tolist() if len(fp) else [],
        "ask": fp["ask_volume"].astype(int).tolist() if len(fp) else [],
        "poc": fp["poc"].astype(bool).tolist() if len(fp) else [],
        "imb": [int(v) for v in imb],  # 1 buy, 2 sell, 3 both
    }


def row_ticks(price_span: float, tick: float, pane_px: float = PRICE_PANE_PX) -> int:
    """Ticks per footprint row so that a row is at least ROW_MIN_PX tall (same rule in the page script)."""
    px_tick = pane_px / max(price_span / tick, 1.0)
    need = ROW_MIN_PX / px_tick
    return next((k for k in ROW_TICKS if k >= need - 1e-9), ROW_TICKS[-1])


def merge_rows(fp: pd.DataFrame, k: int, tick: float) -> pd.DataFrame:
    """k ticks per row: volumes summed, a row is an imbalance / the POC row when any of its ticks is.

    `price` becomes the row's lowest tick (rows start at multiples of k ticks, so they do not move on pan).
    """
    if k == 1 or fp.empty:
        return fp
    lvl = np.rint(fp["price"].to_numpy() / tick).astype(np.int64)
    row = np.floor_divide(lvl, k) * k * tick
    sums = ["bid_volume", "ask_volume", "other_volume", "volume", "delta", "n_trades"]
    flags = ["buy_imbalance", "sell_imbalance", "poc"]
    g = fp.assign(price=row).groupby(["ts", "price"], sort=True)
    out = g[sums].sum().join(g[flags].any()).join(g[["trade_date", "ts_end"]].first()).reset_index()
    return out[FOOTPRINT_COLUMNS]


def _footprint_traces(
    fp: pd.DataFrame, step: pd.Timedelta, tick: float, mode: str, k: int = 1, always_text: bool = False
) -> list[go.BaseTraceType]:
    """Cells (bars behind the candles, right of the candle body) and `bid x ask` numbers above them; `fp` has
    rows of k ticks (merge_rows)."""
    if fp.empty:
        fp = pd.DataFrame({c: pd.Series(dtype="float64") for c in FOOTPRINT_COLUMNS})
    fill, tcol = _cell_colours(fp) if len(fp) else ([], [])
    p = footprint_payload(fp, step)
    x0, w = np.asarray(p["x0"], dtype=np.int64), p["step"]
    poc = np.asarray(p["poc"], dtype=bool)
    cells = go.Bar(
        x=pd.to_datetime(x0 + int(CELL_CENTRE * w), unit="ms"),
        y=[k * tick] * len(fp),
        base=(fp["price"] - tick / 2).tolist(),
        width=CELL_WIDTH * w,
        marker={
            "color": fill if len(fp) else "rgba(0,0,0,0)",
            "line": {
                "color": np.where(poc, POC_COLOUR, "rgba(0,0,0,0)").tolist() if len(fp) else "rgba(0,0,0,0)",
                "width": np.where(poc, 2, 0).tolist() if len(fp) else 0,
            },
        },
        name="footprint",
        customdata=np.stack(
            [
                fp["bid_volume"],
                fp["ask_volume"],
                fp["volume"],
                fp["delta"],
                fp["price"],
                fp["price"] + (k - 1) * tick,
            ],
            axis=1,
        )
        if len(fp)
        else None,
        hovertemplate="%{customdata[0]} x %{customdata[1]} at %{customdata[4]:.2f}-%{customdata[5]:.2f}"
        "<br>vol %{customdata[2]} delta %{customdata[3]}<extra>footprint</extra>",
        xaxis="x",
        yaxis="y",
        showlegend=True,
    )
    out: list[go.BaseTraceType] = [cells]
    if mode != "text":
        fp, p, x0, tcol = fp.iloc[:0], footprint_payload(fp.iloc[:0], step), x0[:0], []
    if mode == "text" or always_text:
        text = [
            f"<b>{b} x {a}</b>" if pc else f"{b} x {a}"
            for b, a, pc in zip(p["bid"], p["ask"], p["poc"], strict=True)
        ]
        out.append(
            go.Scatter(
                x=pd.to_datetime(x0 + int(CELL_CENTRE * w), unit="ms"),
                y=fp["price"] + (k - 1) * tick / 2,
                mode="text",
                text=text,
                textfont={
                    "size": 10,
                    "color": tcol if len(fp) else "#222222",
                    "family": "Arial Narrow, Arial, sans-serif",
                },
                name="bid x ask",
                hoverinfo="skip",
                xaxis="x",
                yaxis="y5",
            )
        )
    return out


def _bubble_traces(bt: pd.DataFrame, mode: str, x_of: np.ndarray) -> list[go.BaseTraceType]:
    """One trace per aggressor side, drawn on the candle of their bucket; marker area proportional to size."""
    sizeref = 2.0 * float(bt["size"].max()) / (MAX_BUBBLE_PX**2)
    out = []
    for side, colour, label in ((1, BUY, "big buys"), (-1, SELL, "big sells"), (0, NEUTRAL, "big (no side)")):
        m = (bt["side"] == side).to_numpy()
        part = bt[m]
        if part.empty:
            continue
        out.append(
            go.Scatter(
                x=x_of[m],
                y=part["price"],
                mode="markers",
                name=label,
                marker={
                    "size": part["size"],
                    "sizemode": "area",
                    "sizeref": sizeref,
                    "sizemin": 4,
                    "color": colour,
                    "opacity": 0.35,
                    "line": {"width": 0.8, "color": colour},
                },
                customdata=np.stack(
                    [part["size"], part["n_fills"], _local(part["ts_event"]).dt.strftime("%H:%M:%S")], axis=1
                ),
                hovertemplate="%{customdata[0]} lots @ %{y} (%{customdata[1]} fills) at %{customdata[2]}"
                + f"<extra>{label} ({mode})</extra>",
                xaxis="x",
                yaxis="y",
            )
        )
    return out


def _cvd_trace(cv: pd.DataFrame, row_axis: str) -> go.Candlestick:
    return go.Candlestick(
        x=_local(cv["ts"]),
        open=cv["cvd_open"],
        high=cv["cvd_high"],
        low=cv["cvd_low"],
        close=cv["cvd"],
        name="cvd",
        increasing_line_color=BUY,
        decreasing_line_color=SELL,
        yaxis=row_axis,
    )


def _title(data: FigureData) -> str:
    s = data.state
    days = ", ".join(f"{d:%a} {d.isoformat()}" for d in data.dates[-3:]) + (
        " ..." if len(data.dates) > 3 else ""
    )
    title = f"{s.session} {days} | {s.interval}{'' if s.interval == 'session' else 'm'} candles"
    if s.show_footprint:
        title += f" | footprint {s.footprint_interval}m (imbalance {s.ratio:g}:1, min {s.min_volume})"
    if s.show_bubbles:
        if s.big_by == "percentile":
            thr = f"p{s.big_percentile:g} of {s.lookback_sessions} prior sessions"
        else:
            thr = f">= {s.big_min_size} lots"
        title += f" | big {s.big_mode}s {thr}"
    if data.notes:
        title += "<br><sup>" + "; ".join(data.notes) + "</sup>"
    return title


def _fit(lo: float, hi: float, pad_min: float) -> list[float]:
    pad = max(pad_min, 0.04 * (hi - lo))
    return [lo - pad, hi + pad]


def _ranges(data: FigureData, view: tuple[pd.Timestamp, pd.Timestamp]) -> dict[str, list[float]]:
    """Price, volume and CVD ranges of what is visible (the HTML script does the same on zoom)."""
    out: dict[str, list[float]] = {}
    c, cv = data.candles, data.cvd
    lo, hi = view
    if len(c):
        seen = c[(c["ts_end"] > lo) & (c["ts"] < hi)]
        if len(seen):
            out["price"] = _fit(float(seen["low"].min()), float(seen["high"].max()), 3 * data.state.tick)
            out["volume"] = [0.0, float(seen["volume"].max()) * 1.08]
    if len(cv):
        seen = cv[(cv["ts_end"] > lo) & (cv["ts"] < hi)]
        if len(seen):
            out["cvd"] = _fit(float(seen["cvd_low"].min()), float(seen["cvd_high"].max()), 1.0)
    return out


def hint_template(mode: str, footprint_interval: int) -> str:
    """The line above the price pane: what the footprint shows and how to see more ({rows}: ticks per row)."""
    if mode == "text":
        return f"footprint {footprint_interval}m{{rows}}: bid x ask; green/red = imbalance, orange box = POC"
    if mode == "cells":
        return (
            f"footprint {footprint_interval}m{{rows}} (green/red = imbalance, orange = POC): zoom to "
            f"<= {TEXT_BUCKETS * footprint_interval} min for bid x ask"
        )
    return f"footprint {footprint_interval}m: zoom to <= {CELL_BUCKETS * footprint_interval} min to see it"


def footprint_hint(mode: str, footprint_interval: int, k: int = 1) -> str:
    return hint_template(mode, footprint_interval).replace("{rows}", f", {k} ticks per row" if k > 1 else "")


def figure_from_data(data: FigureData, placeholders: bool = False) -> go.Figure:
    """Price pane (cells + bubbles, candles, numbers), optional volume and CVD panes; shared x axis.

    placeholders=True always adds the footprint traces (maybe empty) so the HTML script can fill them on zoom.
    """
    s = data.state
    rows = ["price"] + (["volume"] if s.show_volume else []) + (["cvd"] if s.show_cvd else [])
    heights = {1: [1.0], 2: [0.78, 0.22], 3: [0.68, 0.16, 0.16]}[len(rows)]
    fig = make_subplots(
        rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.025, row_heights=heights
    )
    axis = {name: ("y" if i == 0 else f"y{i + 1}") for i, name in enumerate(rows)}
    c, fp, bt, cv = data.candles, data.footprint, data.big_trades, data.cvd
    cstep = _step(s.interval, c)
    fstep = pd.Timedelta(minutes=s.footprint_interval)
    view = None
    if data.x_range is not None:
        view = (pd.Timestamp(s.view[0]), pd.Timestamp(s.view[1])) if s.view is not None else data.x_range
    r = _ranges(data, view) if view is not None else {}
    k = row_ticks(r["price"][1] - r["price"][0], s.tick) if "price" in r else 1
    if len(fp) or (placeholders and s.show_footprint):
        mode = data.footprint_mode if len(fp) else "off"
        rows_fp = merge_rows(fp, k, s.tick)
        for t in _footprint_traces(rows_fp, fstep, s.tick, mode, k, always_text=placeholders):
            fig.add_trace(t)
    if len(bt):
        for t in _bubble_traces(bt, s.big_mode, _local(bt["bucket"]).to_numpy()):
            fig.add_trace(t)
    if len(c):
        price, vol = _candle_traces(c, hollow=data.footprint_mode != "off")
        if s.show_candles:
            fig.add_trace(price)
        if s.show_volume:
            fig.add_trace(vol, row=rows.index("volume") + 1, col=1)
    if len(cv) and s.show_cvd:
        fig.add_trace(_cvd_trace(cv, axis["cvd"]), row=rows.index("cvd") + 1, col=1)
    fig.update_layout(
        title={"text": _title(data), "font": {"size": 13}, "y": 0.985},
        height=900,
        margin={"l": 64, "r": 20, "t": 95, "b": 40},
        showlegend=True,
        legend={"orientation": "h", "y": 1.0, "x": 0, "yanchor": "bottom"},
        hovermode="closest",
        template="plotly_white",
        barmode="overlay",
        bargap=0.15,
        boxgap=0.8 if data.footprint_mode != "off" else 0.3,
        # the candles and the numbers sit on overlaid copies of the price axis (drawn above cells/bubbles)
        yaxis4={"overlaying": "y", "matches": "y", "visible": False},
        yaxis5={"overlaying": "y", "matches": "y", "visible": False},
        dragmode="zoom",
    )
    fig.update_xaxes(rangeslider_visible=False, showspikes=True, spikemode="across", spikethickness=1)
    for lo, hi in data.rth_windows:
        fig.add_vrect(x0=_local(lo), x1=_local(hi), fillcolor=RTH_SHADE, line_width=0, layer="below")
    if data.rth_windows:
        fig.add_annotation(
            x=_local(data.rth_windows[-1][0]),
            y=1,
            yref="paper",
            text="RTH",
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 11, "color": "#8a6d00"},
        )
    if s.show_footprint and data.x_range is not None:
        fig.add_annotation(
            name="fp-hint",
            x=1,
            xref="paper",
            y=1,
            yref="y domain",
            xanchor="right",
            yanchor="bottom",
            text=footprint_hint(data.footprint_mode, s.footprint_interval, k),
            showarrow=False,
            font={"size": 11, "color": "#555"},
        )
    if view is not None:
        pad = cstep / 2 if s.view is None else pd.Timedelta(0)
        fig.update_xaxes(range=[_local(view[0] - pad), _local(view[1] + pad)])
        if "price" in r:
            fig.update_layout(yaxis={"range": r["price"], "autorange": False})
        if "volume" in r and s.show_volume:
            fig.update_layout(
                {f"yaxis{rows.index('volume') + 1}": {"range": r["volume"], "autorange": False}}
            )
        if "cvd" in r and s.show_cvd:
            fig.update_layout({f"yaxis{rows.index('cvd') + 1}": {"range": r["cvd"], "autorange": False}})
    fig.update_yaxes(title_text="price", row=1, col=1)
    for name in rows[1:]:
        title = "volume" if name == "volume" else f"CVD ({s.cvd_reset})"
        fig.update_yaxes(title_text=title, row=rows.index(name) + 1, col=1)
    fig.update_xaxes(title_text=f"exchange time ({DISPLAY_TZ}); bars at their start", row=len(rows), col=1)
    fig.update_xaxes(type="date", tickformat="%H:%M\n%a %b %d")
    return fig


def build_figure(state: ChartState, src: ChartSource) -> go.Figure:
    """The chart for these settings (pure: same state and derived files, same figure)."""
    return figure_from_data(figure_data(state, src))


# ---- files --------------------------------------------------------------------------------------------


def _interval_tag(interval: Interval) -> str:
    return "session" if interval == "session" else f"{int(interval)}m"


def chart_file_name(dataset_id: str, day: dt.date, state: ChartState) -> str:
    """`ES_2018-12-14_RTH_5m.html`: every option that changes the chart is in the name, so no two differ only
    in content. The candle interval and (when different) the footprint interval are spelled out; any other
    non-default option adds a short hash of those options."""
    name = f"{dataset_id}_{day.isoformat()}_{state.session}_{_interval_tag(state.interval)}"
    if state.show_footprint and state.footprint_interval != state.interval:
        name += f"_fp{state.footprint_interval}m"
    if state.n_days != 1:
        name += f"_{state.n_days}d"
    default = ChartState()
    skip = {"session", "day", "interval", "footprint_interval", "n_days", "view"}
    other = {f.name: getattr(state, f.name) for f in fields(ChartState) if f.name not in skip}
    changed = {k: v for k, v in other.items() if v != getattr(default, k)}
    if changed:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:6]
        name += f"_{digest}"
    return name + ".html"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _shared_plotly_js(folder: Path) -> Path:
    """One plotly.min.js per chart folder (from the installed plotly package; nothing is downloaded)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode()
    path = folder / JS_FILE
    if not path.is_file() or path.stat().st_size != len(js) or path.read_bytes() != js:
        _write_atomic(path, js)
    return path


def _script_payload(data: FigureData, full_fp: pd.DataFrame) -> dict[str, Any]:
    """What charts.js needs to refit the axes and redraw the footprint on zoom (plain arrays, exchange ms)."""
    s, c, cv = data.state, data.candles, data.cvd
    rows = ["price"] + (["volume"] if s.show_volume else []) + (["cvd"] if s.show_cvd else [])

    def span(frame: pd.DataFrame, lo: str, hi: str) -> dict[str, list[Any]]:
        if frame.empty:
            return {"x0": [], "x1": [], "lo": [], "hi": []}
        return {
            "x0": [int(v) for v in _ms(frame["ts"])],
            "x1": [int(v) for v in _ms(frame["ts_end"])],
            "lo": frame[lo].astype(float).tolist(),
            "hi": frame[hi].astype(float).tolist(),
        }

    candle = span(c, "low", "high")
    candle["vol"] = c["volume"].astype(float).tolist() if len(c) else []
    return {
        "tick": s.tick,
        "cellBuckets": CELL_BUCKETS,
        "textBuckets": TEXT_BUCKETS,
        "maxCells": s.max_cells,
        "fpInterval": s.footprint_interval,
        "showFootprint": s.show_footprint,
        "candles": candle,
        "cvd": span(cv, "cvd_low", "cvd_high"),
        "volumeAxis": f"yaxis{rows.index('volume') + 1}" if s.show_volume else None,
        "cvdAxis": f"yaxis{rows.index('cvd') + 1}" if s.show_cvd else None,
        "fp": footprint_payload(full_fp, pd.Timedelta(minutes=s.footprint_interval)),
        "colours": {"buy": BUY, "sell": SELL, "poc": POC_COLOUR},
        "hints": {m: hint_template(m, s.footprint_interval) for m in ("off", "cells", "text")},
        "rowTicks": list(ROW_TICKS),
        "rowMinPx": ROW_MIN_PX,
        "cellCentre": CELL_CENTRE,
        "cellWidth": CELL_WIDTH,
    }


def chart_html(state: ChartState, src: ChartSource) -> str:
    """The chart as one HTML page that loads the shared plotly.min.js next to it and refits on zoom."""
    data = figure_data(state, src)
    fig = figure_from_data(data, placeholders=True)
    full_fp = pd.DataFrame()
    if state.show_footprint and data.dates:
        full_fp = _footprint(src, state, data.dates[0], data.dates[-1])
    payload = json.dumps(_script_payload(data, full_fp), separators=(",", ":"))
    script = ZOOM_JS.replace("__PAYLOAD__", payload)
    return fig.to_html(
        include_plotlyjs=JS_FILE,
        full_html=True,
        config={"displaylogo": False, "scrollZoom": True},
        post_script=script,
        div_id="chart",
    )


def write_chart_html(
    src: ChartSource, session: str, day: dt.date | None, out_path: Path, **state: Any
) -> Path:
    """Write one chart (extra keywords set ChartState fields); plotly.min.js is shared by the folder's charts.

    Atomic: the page is written to a temporary file and renamed, so a failure leaves nothing half-written.
    A folder that cannot be created or written is a UserError naming it.
    """
    out_path = Path(out_path)
    html = chart_html(ChartState(session=session, day=day, **state), src)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        _shared_plotly_js(out_path.parent)
        _write_atomic(out_path, html.encode("utf-8"))
    except OSError as e:
        raise UserError(
            f"cannot write the chart to {out_path.parent}: {e.strerror or e}; "
            "fix: pass --out with a folder you can write to"
        ) from None
    return out_path


#: defaults per session (the demo and `charts` without options): 5-minute RTH candles with a 5-minute
#: footprint; 15-minute FULL candles and footprint (a 23-hour session in 92 candles)
SESSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "RTH": {"interval": 5, "footprint_interval": 5, "big_min_size": 50},
    "FULL": {"interval": 15, "footprint_interval": 15, "big_min_size": 50},
}


def write_demo_charts(
    paths: ResolvedPaths,
    reg: Registry | None,
    ds: DatasetRow,
    out_dir: Path | None = None,
    changes: dict[str, Any] | None = None,
) -> list[Path]:
    """One RTH and one FULL chart of the latest trade date with trades of `ds` (the demo calls this).

    Each opens on its whole session (candles readable, RTH shaded in FULL); zooming in draws the footprint.
    `changes` override SESSION_DEFAULTS (the `charts --demo` options). Default out_dir is <RUNS_DIR>/charts; the
    files are found from the derived files themselves (`reg` is accepted for the callers' convenience).
    """
    src = ChartSource(paths.derived_dir, ds.dataset_id)
    out_dir = Path(out_dir) if out_dir is not None else paths.runs_dir / "charts"
    plans = []
    for session in ("RTH", "FULL"):
        last = latest_day(src, session)
        if last is not None:
            plans.append((session, last, {**SESSION_DEFAULTS[session], **(changes or {})}))
    written = []
    for session, day, kw in plans:
        name = chart_file_name(ds.dataset_id, day, ChartState(session=session, day=day, **kw))
        written.append(write_chart_html(src, session, day, out_dir / name, **kw))
    return written
