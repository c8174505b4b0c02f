"""Events and state: cross_above / cross_below, bars_since, hold (stateful: one pass from the start)."""

from __future__ import annotations

import math

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN
from compiler.numba_backend._registry import register


@register("cross_above")
@numba.njit(**JIT)
def cross_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a > b now and a <= b on the previous row; missing if any of the four values is (or row 0)."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        if i == 0 or math.isnan(a[i]) or math.isnan(b[i]) or math.isnan(a[i - 1]) or math.isnan(b[i - 1]):
            out[i] = NAN
        else:
            out[i] = 1.0 if a[i] > b[i] and a[i - 1] <= b[i - 1] else 0.0
    return out


@register("cross_below")
@numba.njit(**JIT)
def cross_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        if i == 0 or math.isnan(a[i]) or math.isnan(b[i]) or math.isnan(a[i - 1]) or math.isnan(b[i - 1]):
            out[i] = NAN
        else:
            out[i] = 1.0 if a[i] < b[i] and a[i - 1] >= b[i - 1] else 0.0
    return out


@register("bars_since")
@numba.njit(**JIT)
def bars_since(cond: np.ndarray) -> np.ndarray:
    """0 where cond is true, else 1 + previous; missing before the first true; missing cond = false."""
    out = np.empty(cond.shape[0])
    prev = NAN
    for i in range(cond.shape[0]):
        prev = 0.0 if cond[i] == 1.0 else prev + 1.0  # NaN + 1 stays missing before the first event
        out[i] = prev
    return out


@register("hold")
@numba.njit(**JIT)
def hold(entry: np.ndarray, value: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """exit true -> missing (flat); else entry true -> value; else the previous output."""
    out = np.empty(entry.shape[0])
    prev = NAN
    for i in range(entry.shape[0]):
        if exit_[i] == 1.0:
            prev = NAN
        elif entry[i] == 1.0:
            prev = value[i]
        out[i] = prev
    return out
