"""Grid alignment on a minimal grid contract: `asof` (daily -> 1m) and `to_daily` (1m -> daily).

They are joins of two grid tables, not per-row translations, so they live in `ALIGNMENTS`, not in
TRANSLATIONS (the evaluator calls them between the stages of the two grids). The contract: the 1m table
has the grid order column (`_row`) and `trade_date` (the session a bar belongs to); the daily table has
`date` (one row per trading day of the calendar, in order). design/DSL.md section 5 defines both:

- asof(x): on every bar of the session with trade date D, the daily row s sessions before D (s >= 1,
  the node's `sessions` arg): LAG(x, s) over the daily grid, joined on trade_date = date. Never the row
  stamped D itself; missing where that row is missing (or does not exist).
- to_daily(x, how): one value per trade date from the present values of that session's bars: last /
  first (the present value of the latest / earliest bar: arg_max / arg_min of the bar order over present
  rows), sum, mean, max, min (any / all for true/false). Missing for a session without present values
  and for a daily row without a session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import finite

HOWS = ("last", "first", "sum", "mean", "max", "min")


def asof(
    minute: ir.Table,
    daily: ir.Table,
    x: str,
    *,
    sessions: int,
    out: str,
    date: str = "date",
    trade_date: str = "trade_date",
) -> ir.Table:
    """`minute` plus column `out` = daily `x` of the row `sessions` trading days before the bar's session."""
    if isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1:
        raise ValueError(f"asof: sessions must be a whole number >= 1 (never the same day), got {sessions!r}")
    key = f"_{out}_date"
    shifted = daily.select(
        daily[date].name(key), daily[x].lag(sessions).over(ibis.window(order_by=daily[date])).name(out)
    )
    joined = minute.left_join(shifted, minute[trade_date] == shifted[key])
    return joined.select(*minute.columns, out)


def _session_value(col: ir.Value, order: ir.Value, how: str) -> ir.Value:
    present = ibis.cases((col.notnull(), order))
    if how == "last":
        return col.argmax(present)
    if how == "first":
        return col.argmin(present)
    if col.type().is_boolean():
        if how in ("sum", "mean"):
            raise TypeError(f"to_daily(how={how!r}) needs numbers, got a true/false series")
        return col.any() if how == "max" else col.all()
    return {
        "sum": lambda: finite(col.sum().cast("float64")),
        "mean": lambda: finite(col.mean()),
        "max": col.max,
        "min": col.min,
    }[how]()


def to_daily(
    minute: ir.Table,
    daily: ir.Table,
    x: str,
    *,
    how: str = "last",
    out: str,
    order: str = "_row",
    date: str = "date",
    trade_date: str = "trade_date",
) -> ir.Table:
    """`daily` plus column `out` = the session aggregate `how` of 1m `x` (see the module docstring)."""
    if how not in HOWS:
        raise ValueError(f"to_daily: how must be one of {', '.join(HOWS)}, got {how!r}")
    key = f"_{out}_date"
    agg = minute.group_by(minute[trade_date].name(key)).aggregate(
        _session_value(minute[x], minute[order], how).name(out)
    )
    joined = daily.left_join(agg, daily[date] == agg[key])
    return joined.select(*daily.columns, out)


ALIGNMENTS: Mapping[str, Callable[..., ir.Table]] = MappingProxyType({"asof": asof, "to_daily": to_daily})
"""Grid alignment functions by operator name (joins of the two grid tables)."""
