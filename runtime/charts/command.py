"""`backtest charts`: the widget's options from the command line, checked like a person would type them.

Why here and not in cli.py: the CLI only forwards the raw option values; turning them into a ChartState (and
refusing a bad one with the option's name and a fix) is chart knowledge, tested with the rest of the charts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.charts.api import ChartSource
from runtime.charts.render import (
    SESSION_DEFAULTS,
    ChartState,
    chart_file_name,
    parse_layers,
    resolve_day,
    write_chart_html,
    write_demo_charts,
)
from runtime.contracts import UserError

BIG_MODES = ("sweep", "print")
CVD_RESETS = ("session", "continuous")


@dataclass(frozen=True)
class ChartOptions:
    """The raw `backtest charts` options; None = not given (the chart's default, or the demo's)."""

    session: str | None = None
    day: str | None = None
    interval: str | None = None
    footprint_interval: int | None = None
    big_size: int | None = None
    big_percentile: float | None = None
    big_mode: str | None = None
    lookback: int | None = None
    layers: str | None = None
    imbalance_ratio: float | None = None
    imbalance_min: int | None = None
    days: int | None = None
    cvd_reset: str | None = None


def _interval(text: str) -> int | str:
    t = text.strip().lower().removesuffix("m")
    if t == "session":
        return "session"
    if t.isdigit() and int(t) >= 1:
        return int(t)
    raise UserError(f"--interval {text!r}: use whole minutes >= 1 (e.g. 5) or 'session'")


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise UserError(f"{option} {value!r}: use one of {', '.join(allowed)}")
    return v


def state_changes(o: ChartOptions) -> dict[str, Any]:
    """The ChartState fields the given options set (each bad value is a UserError naming its option)."""
    ch: dict[str, Any] = {}
    if o.interval is not None:
        ch["interval"] = _interval(o.interval)
        if o.footprint_interval is None:  # one footprint cluster per candle unless asked otherwise
            ch["footprint_interval"] = ch["interval"] if ch["interval"] != "session" else 30
    if o.footprint_interval is not None:
        if o.footprint_interval < 1:
            raise UserError(f"--footprint-interval {o.footprint_interval}: use whole minutes >= 1")
        ch["footprint_interval"] = o.footprint_interval
    if o.big_size is not None and o.big_percentile is not None:
        raise UserError("--big-size and --big-percentile both given: the big-trade threshold is one of them")
    if o.big_size is not None:
        if o.big_size < 1:
            raise UserError(f"--big-size {o.big_size}: use a number of contracts >= 1")
        ch.update(big_by="contracts", big_min_size=o.big_size)
    if o.big_percentile is not None:
        if not 0 < o.big_percentile <= 100:
            raise UserError(f"--big-percentile {o.big_percentile:g}: use a percentile in (0, 100], e.g. 99.9")
        ch.update(big_by="percentile", big_percentile=o.big_percentile)
    if o.lookback is not None:
        if o.lookback < 1:
            raise UserError(f"--lookback {o.lookback}: use a number of prior sessions >= 1")
        if o.big_percentile is None:
            raise UserError("--lookback only applies to --big-percentile: add --big-percentile P or drop it")
        ch["lookback_sessions"] = o.lookback
    if o.big_mode is not None:
        ch["big_mode"] = _choice(o.big_mode, "--big-mode", BIG_MODES)
    if o.layers is not None:
        ch.update(parse_layers(o.layers))
    if o.imbalance_ratio is not None:
        if o.imbalance_ratio < 1:
            raise UserError(f"--imbalance-ratio {o.imbalance_ratio:g}: use a ratio >= 1 (3 means 3:1)")
        ch["ratio"] = o.imbalance_ratio
    if o.imbalance_min is not None:
        if o.imbalance_min < 0:
            raise UserError(f"--imbalance-min {o.imbalance_min}: use a number of contracts >= 0")
        ch["min_volume"] = o.imbalance_min
    if o.days is not None:
        if o.days < 1:
            raise UserError(f"--days {o.days}: use a number of trade dates >= 1")
        ch["n_days"] = o.days
    if o.cvd_reset is not None:
        ch["cvd_reset"] = _choice(o.cvd_reset, "--cvd-reset", CVD_RESETS)
    return ch


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--day {text!r} is not a date; use YYYY-MM-DD") from None


def run_charts(
    src: ChartSource, out_dir: Path, o: ChartOptions, demo: bool = False, paths: Any = None, ds: Any = None
) -> list[Path]:
    """Write the charts the options ask for; returns the files. Every option is checked before anything is
    written. demo=True (needs paths and ds): the latest RTH and FULL sessions with the demo's settings."""
    changes = state_changes(o)
    if demo:
        if o.session is not None or o.day is not None:
            raise UserError(
                "--demo draws the latest RTH and FULL sessions: drop --session/--day, or drop --demo"
            )
        written = write_demo_charts(paths, None, ds, out_dir, changes)
        if not written:
            raise UserError(f"{src.dataset_id}: nothing derived yet; run `backtest derive` first")
        return written
    session = (o.session or "RTH").strip().upper()
    if session not in ("RTH", "FULL"):
        raise UserError(f"--session {o.session!r}: use RTH or FULL")
    day = resolve_day(src, session, _date(o.day) if o.day is not None else None)
    kw = {**SESSION_DEFAULTS[session], **changes}
    name = chart_file_name(src.dataset_id, day, ChartState(session=session, day=day, **kw))
    return [write_chart_html(src, session, day, Path(out_dir) / name, **kw)]
