"""Missing data: is_missing, fill, and ffill (bounded or unbounded look-back).

ffill needs the latest present value of the frame. `LAST_VALUE(x IGNORE NULLS)` is not portable through
Ibis, so it is `arg_max(x, CASE WHEN x IS NOT NULL THEN _row END)` over the last n + 1 rows (current row
included): the value at the latest row whose x is present (arg_max skips NULL keys). Unbounded ffill is
the same over ROWS UNBOUNDED PRECEDING: in SQL it is a plain window, not a recursion.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._registry import Ctx, register


@register("is_missing")
def is_missing(ctx: Ctx, x: ir.Value) -> ir.Value:
    return x.isnull()


@register("fill")
def fill(ctx: Ctx, x: ir.Value, value: ir.Value) -> ir.Value:
    return ibis.coalesce(x, value)


@register("ffill", windowed=True)
def ffill(ctx: Ctx, x: ir.Value, *, n: int | None = None) -> ir.Value:
    key = ibis.cases((x.notnull(), ctx.row))
    w = ctx.window(preceding=None) if n is None else ctx.window(n + 1)
    return ibis.cases((x.notnull(), x), else_=x.argmax(key).over(w))
