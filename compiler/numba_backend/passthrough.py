"""Internal pass-through nodes: a feature node and an availability declaration do not change values.

They are registered so that every operator the evaluator may meet inside a graph has a kernel; the
evaluator may as well skip them (they return a copy, so no caller can alias its input by accident).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from compiler.numba_backend._common import JIT
from compiler.numba_backend._registry import register


def _no_options(opts: dict[str, Any]) -> tuple[()]:
    return ()


@numba.njit(**JIT)
def identity(x: np.ndarray) -> np.ndarray:
    return x.copy()


register("feature", resolve=_no_options)(identity)
register("availability", resolve=_no_options)(identity)
