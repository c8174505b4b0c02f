"""Arithmetic, comparison and Kleene logic. Every numeric result is finite or NULL (never ±inf, NaN).

SQL's AND / OR / NOT are Kleene already (false AND NULL = false, true OR NULL = true, NOT NULL = NULL),
so `and` / `or` / `not` map to them directly; comparisons with a NULL side are NULL, as the DSL says.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import NULL_F, any_null, finite, sql_eq, sql_ne
from compiler.ibis_backend._registry import Ctx, register


@register("add")
def add(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return finite(a + b)


@register("sub")
def sub(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return finite(a - b)


@register("mul")
def mul(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return finite(a * b)


@register("div")
def div(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    """Missing when b = 0 (DuckDB would give ±inf or NaN) or when the quotient overflows."""
    return ibis.cases((sql_eq(b, 0.0), NULL_F), else_=finite(a / b))


def real_pow(a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    """a^b as a finite real, else NULL: 0^negative, negative^non-integer and overflow are guarded
    before DuckDB's pow runs (CASE evaluates a branch only on its rows)."""
    return ibis.cases(
        (any_null(a, b), NULL_F),
        (sql_eq(a, 0.0) & (b < 0), NULL_F),
        ((a < 0) & sql_ne(b, b.floor()), NULL_F),
        else_=finite(a.cast("float64") ** b),
    )


@register("pow")
def pow_(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return real_pow(a, b)


@register("neg")
def neg(ctx: Ctx, a: ir.NumericValue) -> ir.Value:
    return -a


@register("gt")
def gt(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return a > b


@register("ge")
def ge(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return a >= b


@register("lt")
def lt(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return a < b


@register("le")
def le(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return a <= b


@register("eq")
def eq(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return sql_eq(a, b)


@register("ne")
def ne(ctx: Ctx, a: ir.Value, b: ir.Value) -> ir.Value:
    return sql_ne(a, b)


@register("and")
def and_(ctx: Ctx, a: ir.BooleanValue, b: ir.BooleanValue) -> ir.Value:
    return a & b


@register("or")
def or_(ctx: Ctx, a: ir.BooleanValue, b: ir.BooleanValue) -> ir.Value:
    return a | b


@register("not")
def not_(ctx: Ctx, a: ir.BooleanValue) -> ir.Value:
    return ~a
