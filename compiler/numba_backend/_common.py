"""Shared scalar helpers for the kernels (compiled inline into each kernel).

`JIT` is the one set of Numba options: nopython, on-disk cache (a fresh process reuses the machine code),
no GIL (kernels can run in threads), numpy error model (x / 0 never raises), no bounds checks (said
explicitly: an environment's NUMBA_BOUNDSCHECK=1 is for debugging, not for timing) and no fastmath
(fastmath would let LLVM assume there is no NaN, and NaN is our missing marker).
"""

from __future__ import annotations

import math

import numba
import numpy as np

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


@numba.njit(**(JIT | {"nogil": False}))  # the object-mode block takes the GIL; nogil here would only warn
def empty(m: int) -> np.ndarray:
    """An uninitialised float64 output array from numpy's allocator, not Numba's (one object-mode call).

    Why: numpy advises the kernel to back large arrays with transparent huge pages (madvise), Numba's
    runtime allocator does not. When the memory is fresh (the usual case in a pipeline that frees and
    allocates large arrays in turn) a 24 MB result then takes ~5,800 4 KB page faults instead of ~200:
    measured 20-27 ms vs 8 ms for ema on 3M rows, three times the kernel's own work. Costs ~3 µs a call.
    """
    with numba.objmode(out="float64[::1]"):
        out = np.empty(m)
    return out


@numba.njit(**JIT)
def full_nan(m: int) -> np.ndarray:
    """`empty(m)` filled with the missing marker."""
    out = empty(m)
    out[:] = NAN
    return out
