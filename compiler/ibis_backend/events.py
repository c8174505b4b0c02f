"""Crossing events: a comparison on this row and the opposite one on the previous row."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import NULL_B, any_null
from compiler.ibis_backend._registry import Ctx, register
from compiler.ibis_backend.timeseries import shift


def _cross(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue, up: bool) -> ir.Value:
    a0, b0 = shift(ctx, a, 1), shift(ctx, b, 1)
    now = (a > b) & (a0 <= b0) if up else (a < b) & (a0 >= b0)
    # explicit: Kleene AND would turn (false AND NULL) into false, but any missing value is missing here
    return ibis.cases((any_null(a, b, a0, b0), NULL_B), else_=now)


@register("cross_above", windowed=True)
def cross_above(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return _cross(ctx, a, b, True)


@register("cross_below", windowed=True)
def cross_below(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return _cross(ctx, a, b, False)
