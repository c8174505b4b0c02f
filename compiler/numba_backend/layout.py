"""The in-memory value layout every Numba kernel reads and writes (issue 9: a value-layout contract).

One layout for every series so kernels compose without conversions and a plan can hand a column from
one kernel to the next untouched: 1-D float64, NaN as the only missing marker (NaN never reaches SQL:
the Ibis side turns it into NULL at the boundary). A true/false series uses the same dtype with 1.0 /
0.0 / NaN, so the three-valued (Kleene) logic needs no second missing code and `lag`, `ffill`, `hold`
work on numbers and booleans alike. Every kernel output is finite or NaN, never ±inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValueLayout:
    """How a series is stored in memory for the Numba backend."""

    dtype: type = np.float64
    missing: float = float("nan")  # the only missing marker; test with np.isnan, never ==
    true: float = 1.0
    false: float = 0.0
    finite_or_missing: bool = True  # every output is finite or `missing`, never ±inf
    order: str = "F"  # 2-D blocks (rows x parameter sets) are column-major: each column is contiguous

    def describe(self) -> str:
        """One line for plans and notebooks."""
        return (
            f"{np.dtype(self.dtype).name}, missing = NaN, bool = {self.true:g}/{self.false:g}/NaN "
            f"(Kleene), outputs finite or NaN, 2-D blocks {self.order}-ordered"
        )


LAYOUT = ValueLayout()
MISSING = LAYOUT.missing
TRUE = LAYOUT.true
FALSE = LAYOUT.false
DTYPE = LAYOUT.dtype
