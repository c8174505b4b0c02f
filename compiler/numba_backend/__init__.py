"""The Numba backend: one nopython kernel per DSL operator, registered by operator name.

`KERNELS[op]` is the compiled kernel (1-D float64 operands, then options as runtime int/float args);
`call(op, *operands, **options)` validates options against the operator's declaration in
`dsl.ops.OPERATORS`, broadcasts scalars and runs it. `EXCEPTIONS` names the operators that have no
kernel on purpose (sources, scalars, and the grid alignment ops that DuckDB does). The value layout is
`LAYOUT` (float64, NaN = missing, booleans 1.0 / 0.0 / NaN). Kernels compile lazily on first use and
are cached on disk (`cache=True`), so a new process reuses the machine code.
"""

from compiler.numba_backend import elementwise, events, missing, passthrough, rolling, timeseries
from compiler.numba_backend._registry import EXCEPTIONS, KERNELS, call, register
from compiler.numba_backend.layout import LAYOUT, ValueLayout

MODULES = (elementwise, missing, timeseries, rolling, events, passthrough)
"""The operator-family modules whose import fills KERNELS."""

__all__ = ["EXCEPTIONS", "KERNELS", "LAYOUT", "MODULES", "ValueLayout", "call", "register"]
