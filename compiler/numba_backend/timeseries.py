"""Time shifts on the series' own grid: lag, diff, pct_change (k / n are runtime arguments)."""

from __future__ import annotations

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN, fin
from compiler.numba_backend._registry import register


@register("lag")
@numba.njit(**JIT)
def lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = x[i - k] if i >= k else NAN
    return out


@register("diff")
@numba.njit(**JIT)
def diff(x: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = fin(x[i] - x[i - n]) if i >= n else NAN
    return out


@register("pct_change")
@numba.njit(**JIT)
def pct_change(x: np.ndarray, n: int) -> np.ndarray:
    """x / lag(x, n) − 1, computed as (x − prev) / prev: one rounding less near 0 % change."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        if i < n or x[i - n] == 0.0:
            out[i] = NAN
        else:
            prev = x[i - n]
            out[i] = fin((x[i] - prev) / prev)
    return out
