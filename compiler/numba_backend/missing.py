"""Missing-data operators: is_missing, fill, ffill (optionally bounded look-back)."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN
from compiler.numba_backend._registry import register

UNLIMITED = np.iinfo(np.int64).max
"""The `ffill` look-back passed when the DSL gives none (unlimited, stateful)."""


@register("is_missing")
@numba.njit(**JIT)
def is_missing(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = 1.0 if math.isnan(x[i]) else 0.0
    return out


@register("fill")
@numba.njit(**JIT)
def fill(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = value[i] if math.isnan(x[i]) else x[i]
    return out


def _ffill_options(opts: dict[str, Any]) -> tuple[int]:
    return (UNLIMITED if opts["n"] is None else opts["n"],)


@register("ffill", resolve=_ffill_options)
@numba.njit(**JIT)
def ffill(x: np.ndarray, n: int) -> np.ndarray:
    """x, else the most recent present value at most n rows back (n = UNLIMITED: any distance)."""
    out = np.empty(x.shape[0])
    last = -1  # index of the most recent present value
    for i in range(x.shape[0]):
        if not math.isnan(x[i]):
            last = i
            out[i] = x[i]
        elif last >= 0 and i - last <= n:
            out[i] = x[last]
        else:
            out[i] = NAN
    return out
