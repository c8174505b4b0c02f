"""Arithmetic, comparison, Kleene logic and elementwise math: one row in, one row out.

Every kernel takes 1-D float64 arrays of one length (scalars are broadcast by `call`) and returns a new
array. Missing in -> missing out (except where Kleene logic decides without it); every result passes
through `fin`, so overflow and x / 0 become missing, never ±inf.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN, fin
from compiler.numba_backend._registry import register

# -- arithmetic -------------------------------------------------------------------------------------------


@register("add")
@numba.njit(**JIT)
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = fin(a[i] + b[i])
    return out


@register("sub")
@numba.njit(**JIT)
def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = fin(a[i] - b[i])
    return out


@register("mul")
@numba.njit(**JIT)
def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = fin(a[i] * b[i])
    return out


@register("div")
@numba.njit(**JIT)
def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if b[i] == 0.0 else fin(a[i] / b[i])
    return out


@numba.njit(inline="always", **JIT)
def _pow(a: float, b: float) -> float:
    """a^b as a finite real or missing: 0^negative, negative^non-integer and overflow are missing."""
    if math.isnan(a) or math.isnan(b):
        return NAN
    if a == 0.0 and b < 0.0:
        return NAN
    if a < 0.0 and b != math.floor(b):
        return NAN
    return fin(math.pow(a, b))


@register("pow")
@numba.njit(**JIT)
def pow_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = _pow(a[i], b[i])
    return out


@register("neg")
@numba.njit(**JIT)
def neg(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = -a[i]
    return out


# -- comparisons (missing if either side is missing) ------------------------------------------------------


@register("gt")
@numba.njit(**JIT)
def gt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] > b[i] else 0.0)
    return out


@register("ge")
@numba.njit(**JIT)
def ge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] >= b[i] else 0.0)
    return out


@register("lt")
@numba.njit(**JIT)
def lt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] < b[i] else 0.0)
    return out


@register("le")
@numba.njit(**JIT)
def le(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] <= b[i] else 0.0)
    return out


@register("eq")
@numba.njit(**JIT)
def eq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] == b[i] else 0.0)
    return out


@register("ne")
@numba.njit(**JIT)
def ne(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else (1.0 if a[i] != b[i] else 0.0)
    return out


# -- Kleene logic on 1.0 / 0.0 / NaN ------------------------------------------------------------------------


@register("and")
@numba.njit(**JIT)
def and_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        if a[i] == 0.0 or b[i] == 0.0:
            out[i] = 0.0
        elif math.isnan(a[i]) or math.isnan(b[i]):
            out[i] = NAN
        else:
            out[i] = 1.0
    return out


@register("or")
@numba.njit(**JIT)
def or_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        if a[i] == 1.0 or b[i] == 1.0:
            out[i] = 1.0
        elif math.isnan(a[i]) or math.isnan(b[i]):
            out[i] = NAN
        else:
            out[i] = 0.0
    return out


@register("not")
@numba.njit(**JIT)
def not_(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) else 1.0 - a[i]
    return out


# -- elementwise math ---------------------------------------------------------------------------------------


@register("abs")
@numba.njit(**JIT)
def abs_(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = abs(x[i])
    return out


@register("sign")
@numba.njit(**JIT)
def sign(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = NAN if math.isnan(v) else (1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0))
    return out


@register("log")
@numba.njit(**JIT)
def log(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = fin(math.log(x[i])) if x[i] > 0.0 else NAN
    return out


@register("log1p")
@numba.njit(**JIT)
def log1p(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = fin(math.log1p(x[i])) if x[i] > -1.0 else NAN
    return out


@register("sqrt")
@numba.njit(**JIT)
def sqrt(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = math.sqrt(x[i]) if x[i] >= 0.0 else NAN
    return out


@register("exp")
@numba.njit(**JIT)
def exp(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = fin(math.exp(x[i])) if x[i] < 710.0 else NAN  # e^709.78 is the largest finite double
    return out


@register("signed_pow")
@numba.njit(**JIT)
def signed_pow(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        v = x[i]
        if math.isnan(v) or math.isnan(a[i]):
            out[i] = NAN
            continue
        m = _pow(abs(v), a[i])
        out[i] = NAN if math.isnan(m) else (m if v > 0.0 else (-m if v < 0.0 else 0.0))
    return out


@register("min")
@numba.njit(**JIT)
def min_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else min(a[i], b[i])
    return out


@register("max")
@numba.njit(**JIT)
def max_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = NAN if math.isnan(a[i]) or math.isnan(b[i]) else max(a[i], b[i])
    return out


@register("clip")
@numba.njit(**JIT)
def clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        if math.isnan(x[i]) or math.isnan(lo[i]) or math.isnan(hi[i]) or lo[i] > hi[i]:
            out[i] = NAN
        else:
            out[i] = min(max(x[i], lo[i]), hi[i])
    return out


@register("if")
@numba.njit(**JIT)
def if_(cond: np.ndarray, then: np.ndarray, else_: np.ndarray) -> np.ndarray:
    out = np.empty(cond.shape[0])
    for i in range(cond.shape[0]):
        c = cond[i]
        out[i] = NAN if math.isnan(c) else (then[i] if c != 0.0 else else_[i])
    return out
