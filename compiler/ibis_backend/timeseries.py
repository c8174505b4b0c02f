"""Shifts on the series' own grid: lag, diff, pct_change (LAG(x, k) OVER (ORDER BY _row))."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import NULL_F, finite, sql_eq
from compiler.ibis_backend._registry import Ctx, register


def shift(ctx: Ctx, x: ir.Value, k: int) -> ir.Value:
    """x k rows earlier (NULL for the first k rows); a literal does not move."""
    if k == 0 or not isinstance(x, ir.Column):
        return x
    return x.lag(k).over(ctx.window())


@register("lag", windowed=True)
def lag(ctx: Ctx, x: ir.Value, *, k: int = 1) -> ir.Value:
    return shift(ctx, x, k)


@register("diff", windowed=True)
def diff(ctx: Ctx, x: ir.NumericValue, *, n: int = 1) -> ir.Value:
    return finite(x - shift(ctx, x, n))


@register("pct_change", windowed=True)
def pct_change(ctx: Ctx, x: ir.NumericValue, *, n: int = 1) -> ir.Value:
    """(x − p) / p with p = lag(x, n): one rounding where x and p are close (x − p is exact there),
    instead of x / p − 1, which keeps only the digits of the quotient's rounding."""
    p = shift(ctx, x, n)
    return ibis.cases((sql_eq(p, 0.0), NULL_F), else_=finite((x - p) / p))
