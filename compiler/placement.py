"""Placement: how a dataset column's stamped values become one value per grid row (design/DSL.md "Grids").

Pure, vectorised numpy (searchsorted, no Python loop over rows) and importing nothing of ours, so the
runtime's WorkspaceSources and the in-memory FrameSources share one rule and cannot drift apart.

Daily: a value stamped on a grid date sits on it; a value stamped between two grid dates (weekend,
holiday, an off-calendar release) moves to the next grid date, never earlier; when several stamps fall in
(g[i-1], g[i]] the latest present one wins, so a grid date's own value beats an earlier weekend stamp.
Minute: a value sits on the bar with exactly its timestamp; a bar without a value is filled per column
kind (missing, zero, or the session's running value).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import numpy as np

#: how a minute without a stored row is filled
MinuteFill = Literal["missing", "zero", "running"]
MINUTE_FILLS: tuple[str, ...] = ("missing", "zero", "running")
#: the bar columns that are not missing on a minute without trades (every other column is): additive
#: columns are 0 (nothing traded), cvd is the session's running value (0 before its first trade)
MINUTE_FILL: Mapping[str, MinuteFill] = MappingProxyType(
    {
        "volume": "zero",
        "buy_volume": "zero",
        "sell_volume": "zero",
        "n_trades": "zero",
        "delta": "zero",
        "cvd": "running",
    }
)


def minute_fill(column: str) -> MinuteFill:
    """The fill of a 1m column on a minute without a row (MINUTE_FILL; "missing" for prices and others)."""
    return MINUTE_FILL.get(column, "missing")


def _present(values: np.ndarray) -> np.ndarray:
    """Finite values only: NaN is missing and ±inf is never served (outputs are finite or missing)."""
    return np.isfinite(values)


def place_daily(
    stamps: np.ndarray,
    values: np.ndarray,
    grid_dates: np.ndarray,
    *,
    lower: np.datetime64 | None = None,
) -> np.ndarray:
    """float64 per grid date: each present value on the first grid date >= its stamp (latest stamp wins).

    `stamps` datetime64 (any order, unique), `values` float64 (NaN = missing: a blank cell is no value, so
    it neither sits on a row nor hides an earlier stamp of the same interval). Grid row 0 receives stamps
    in (`lower`, g[0]]: pass the calendar's trading day before g[0] so that a weekend stamp just before
    the grid lands where it would on a longer grid; with `lower` None only a stamp on g[0] itself does
    (older values are history the grid did not load). Stamps after the last grid date are not used.
    """
    g = np.asarray(grid_dates).astype("datetime64[D]")
    out = np.full(len(g), np.nan)
    s = np.asarray(stamps).astype("datetime64[D]")
    v = np.asarray(values, dtype=np.float64)
    if s.shape != v.shape:
        raise ValueError(f"stamps and values differ in length: {s.shape} vs {v.shape}")
    if len(g) == 0 or len(s) == 0:
        return out
    keep = _present(v)
    s, v = s[keep], v[keep]
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    pos = np.searchsorted(g, s, side="left")  # first grid date >= stamp
    ok = pos < len(g)
    floor = g[0] if lower is None else np.datetime64(lower, "D")
    ok &= (s >= floor) if lower is None else (s > floor)
    pos, v = pos[ok], v[ok]
    if len(pos) == 0:
        return out
    last = np.r_[pos[1:] != pos[:-1], True]  # stamps are sorted, so the last of each target is the latest
    out[pos[last]] = v[last]
    return out


def place_minute(
    ts: np.ndarray,
    values: np.ndarray,
    grid_ts: np.ndarray,
    fill: MinuteFill | float | None,
    *,
    session: np.ndarray | None = None,
) -> np.ndarray:
    """float64 per grid bar: the value whose timestamp equals the bar's start; other bars per `fill`.

    fill "missing" (or None): NaN (prices, vwap); "zero": 0 (volume, counts, delta: nothing traded); a
    number: that number; "running": the last present value earlier in the same session, 0 before the
    session's first row (cvd), which needs `session` (one label per grid bar, e.g. the trade date). Use
    `minute_fill(column)` for the rule of a bar column. A value whose timestamp is not a grid bar (outside
    the session's windows) is not used.
    """
    if fill is None:
        fill = "missing"
    elif not isinstance(fill, str):
        constant = float(fill)
        if not np.isfinite(constant):
            raise ValueError(f"fill {fill!r} must be finite (use 'missing' for NaN)")
        placed = place_minute(ts, values, grid_ts, "missing")
        return np.where(np.isnan(placed), constant, placed)
    if fill not in MINUTE_FILLS:
        raise ValueError(f"fill {fill!r} is not one of {', '.join(MINUTE_FILLS)} (or a number)")
    g = _ns(grid_ts)
    n = len(g)
    t = _ns(ts)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"ts and values differ in length: {t.shape} vs {v.shape}")
    placed = np.full(n, np.nan)
    if n and len(t):
        pos = np.searchsorted(g, t, side="left")
        hit = pos < n
        hit[hit] = g[pos[hit]] == t[hit]
        v_hit = np.where(_present(v[hit]), v[hit], np.nan)
        placed[pos[hit]] = v_hit
    if fill == "missing":
        return placed
    if fill == "zero":
        return np.where(np.isnan(placed), 0.0, placed)
    if session is None or len(session) != n:
        raise ValueError("fill 'running' needs `session`, one label per grid bar")
    rows = np.arange(n)
    lab = np.asarray(session)
    first = np.r_[True, lab[1:] != lab[:-1]] if n else np.zeros(0, dtype=bool)
    session_start = np.maximum.accumulate(np.where(first, rows, 0)) if n else rows
    last_present = np.maximum.accumulate(np.where(~np.isnan(placed), rows, -1)) if n else rows
    carried = (last_present >= session_start) & (last_present >= 0)
    return np.where(carried, placed[np.clip(last_present, 0, None)], 0.0)


def _ns(values: np.ndarray) -> np.ndarray:
    """int64 UTC nanoseconds from datetime64 or integer timestamps."""
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").view(np.int64)
    return arr.astype(np.int64)
