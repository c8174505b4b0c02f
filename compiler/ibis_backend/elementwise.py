"""Elementwise math, guarded so that every result is finite or NULL.

DuckDB has no log1p: ln(1 + x) loses every digit near 0, so log1p uses the classic exact correction
u = 1 + x, log1p(x) = x·ln(u)/(u − 1) (x itself when u rounds to 1), accurate to a few ulps.
least/greatest ignore NULLs in DuckDB, so min/max check missingness first.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import NULL_F, any_null, finite, sql_eq
from compiler.ibis_backend._registry import Ctx, register
from compiler.ibis_backend.arithmetic import real_pow


@register("abs")
def abs_(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    return x.abs()


@register("sign")
def sign(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    return x.sign().cast("float64")


@register("log")
def log(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    return ibis.cases((x > 0, x.ln()), else_=NULL_F)


@register("log1p")
def log1p(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    u = 1.0 + x
    return ibis.cases(
        (x <= -1, NULL_F), (sql_eq(u, 1.0), x.cast("float64")), else_=finite(x * u.ln() / (u - 1.0))
    )


@register("sqrt")
def sqrt(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    return ibis.cases((x >= 0, x.sqrt()), else_=NULL_F)


@register("exp")
def exp(ctx: Ctx, x: ir.NumericValue) -> ir.Value:
    return ibis.cases((x > 710.0, NULL_F), else_=finite(x.exp()))


@register("signed_pow")
def signed_pow(ctx: Ctx, x: ir.NumericValue, a: ir.NumericValue) -> ir.Value:
    """sign(x)·|x|^a; |x| ≥ 0, so only 0^negative and overflow can fail (both NULL)."""
    m = real_pow(x.abs(), a)
    return finite(x.sign().cast("float64") * m)


@register("min")
def min_(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return ibis.cases((any_null(a, b), NULL_F), (a <= b, a), else_=b)


@register("max")
def max_(ctx: Ctx, a: ir.NumericValue, b: ir.NumericValue) -> ir.Value:
    return ibis.cases((any_null(a, b), NULL_F), (a >= b, a), else_=b)


@register("clip")
def clip(ctx: Ctx, x: ir.NumericValue, lo: ir.NumericValue, hi: ir.NumericValue) -> ir.Value:
    """min(max(x, lo), hi); NULL if any side is NULL or lo > hi on the row."""
    return ibis.cases((any_null(x, lo, hi) | (lo > hi), NULL_F), (x < lo, lo), (x > hi, hi), else_=x)


@register("if")
def if_(ctx: Ctx, cond: ir.BooleanValue, then: ir.Value, else_: ir.Value) -> ir.Value:
    """Two explicit branches: a NULL condition matches neither, so the result is NULL (not `else`)."""
    return ibis.cases((cond, then), (~cond, else_))
