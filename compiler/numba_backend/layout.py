"""The value layout the Numba kernels read and write: the shared contract of compiler/contracts.py.

Kept as a module so kernels import their constants from one place; the definition (and the reason for
it) lives in `compiler.contracts.ValueLayout`, which the Ibis backend honours too.
"""

from __future__ import annotations

from compiler.contracts import LAYOUT, ValueLayout

MISSING = LAYOUT.missing
TRUE = LAYOUT.true
FALSE = LAYOUT.false
DTYPE = LAYOUT.dtype

__all__ = ["DTYPE", "FALSE", "LAYOUT", "MISSING", "TRUE", "ValueLayout"]
