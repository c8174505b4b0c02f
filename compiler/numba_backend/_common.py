"""Shared scalar helpers for the kernels (compiled inline into each kernel).

`JIT` is the one set of Numba options: nopython, on-disk cache (a fresh process reuses the machine code),
no GIL (kernels can run in threads), numpy error model (x / 0 never raises), no bounds checks (said
explicitly: an environment's NUMBA_BOUNDSCHECK=1 is for debugging, not for timing) and no fastmath
(fastmath would let LLVM assume there is no NaN, and NaN is our missing marker).
"""

from __future__ import annotations

import math

import numba

JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False, "boundscheck": False}

NAN = math.nan


@numba.njit(inline="always", **JIT)
def fin(v: float) -> float:
    """v if finite, else missing: the single place where ±inf (overflow, x/0) becomes missing."""
    if math.isfinite(v):
        return v
    return NAN


@numba.njit(inline="always", **JIT)
def two_sum(s: float, c: float, v: float) -> tuple[float, float]:
    """Compensated step: add v to the running sum s, its exact rounding error to c (s + c is the sum).

    Knuth's branch-free TwoSum (the error term is exact, like Neumaier's, without a data-dependent
    branch that mispredicts on deviations of random sign).
    """
    t = s + v
    bp = t - s
    c += (s - (t - bp)) + (v - bp)
    return t, c
