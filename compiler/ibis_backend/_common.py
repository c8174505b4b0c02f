"""Shared expression helpers: typed NULLs, the finite-or-NULL guard and the strict-window guard."""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir

NULL_F = ibis.null("float64")
NULL_B = ibis.null("boolean")


DBL_MAX = 1.7976931348623157e308


def finite(e: ir.FloatingValue) -> ir.FloatingValue:
    """`e` where it is a finite number, else NULL: DuckDB returns ±inf / NaN for overflow, x/0, pow.

    One comparison, `|e| <= DBL_MAX`: false for ±inf, and for NaN too (SQL engines order NaN above
    every number), so `e` is written twice in the SQL instead of three times."""
    return ibis.cases((e.abs() <= DBL_MAX, e), else_=NULL_F)


def strict(ctx: object, x: ir.Value, n: int, value: ir.Value) -> ir.Value:
    """`value` only where all n rows of the window of x are present: COUNT(x) OVER w = n (COUNT skips
    NULL, so a missing row or a short history at the start gives NULL)."""
    return ibis.cases((x.count().over(ctx.window(n)) == n, value), else_=NULL_F)  # type: ignore[attr-defined]


def any_null(*vals: ir.Value) -> ir.BooleanValue:
    """True where any of `vals` is NULL (literals included)."""
    out = vals[0].isnull()
    for v in vals[1:]:
        out = out | v.isnull()
    return out


def _value(v: Any) -> ir.Value:
    return v if isinstance(v, ir.Value) else ibis.literal(v)


def sql_eq(a: Any, b: Any) -> ir.BooleanValue:
    """SQL `a = b` (NULL if either is NULL). Ibis rewrites `x == NULL-literal` into `x IS NULL`, which
    would make `eq(x, missing)` true on missing rows; the DSL says missing."""
    return ops.Equals(_value(a), _value(b)).to_expr()


def sql_ne(a: Any, b: Any) -> ir.BooleanValue:
    """SQL `a <> b` (NULL if either is NULL); see sql_eq."""
    return ops.NotEquals(_value(a), _value(b)).to_expr()
