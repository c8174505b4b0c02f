"""The Numba kernel registry and the validating dispatcher `call` (see compiler/numba_backend/__init__)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from compiler.numba_backend.layout import LAYOUT
from dsl import OPERATORS
from dsl.contracts import REQUIRED, ArgRole, ArgSpec

Resolver = Callable[[dict[str, Any]], tuple[Any, ...]]

_KERNELS: dict[str, Callable[..., Any]] = {}
_RESOLVERS: dict[str, Resolver] = {}

KERNELS: Mapping[str, Callable[..., Any]] = MappingProxyType(_KERNELS)
"""Numba kernel per operator (OpSpec name, never an alias). Each takes its operands as 1-D float64
arrays of one length, then its options as plain int/float runtime arguments, and returns a new 1-D
float64 array of that length."""

EXCEPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "column": "source leaf: the evaluator reads the column from its dataset",
        "const": "scalar leaf: the evaluator broadcasts it (call() broadcasts scalars too)",
        "param": "scalar leaf: the evaluator binds it per run",
        "asof": "alignment between grids (daily -> 1m): grid work, done in DuckDB",
        "to_daily": "alignment between grids (1m -> daily): grid work, done in DuckDB",
    }
)
"""Operators deliberately without a Numba kernel, with the reason."""


def register(name: str, resolve: Resolver | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Register `fn` as the kernel of operator `name`; `resolve` maps validated options to kernel args."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name not in OPERATORS:
            raise KeyError(f"register({name!r}): no such operator in dsl.ops.OPERATORS")
        if name in _KERNELS or name in EXCEPTIONS:
            raise KeyError(f"register({name!r}): operator registered twice or declared an exception")
        _KERNELS[name] = fn
        if resolve is not None:
            _RESOLVERS[name] = resolve
        return fn

    return deco


def _option(op: str, a: ArgSpec, value: Any) -> Any:
    """One literal option checked against its declaration (the DSL checker's rules, again, at the edge)."""
    where = f"{op}(): option {a.name!r}"
    if value is None:
        if a.default is None:
            return None
        raise ValueError(f"{where} is required")
    if a.role in (ArgRole.WINDOW, ArgRole.LAG):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where} must be a whole number, got {value!r}")
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(f"{where} must be a whole number, got {value!r}")
        lo = 0 if a.role is ArgRole.LAG else int(a.minimum or 1)
        if int(value) < lo:
            raise ValueError(f"{where} must be >= {lo}, got {value!r}")
        return int(value)
    if a.role is ArgRole.REAL:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{where} must be finite, got {value!r}")
        if a.minimum is not None and v < a.minimum:
            raise ValueError(f"{where} must be >= {a.minimum:g}, got {value!r}")
        if a.maximum is not None and v > a.maximum:
            raise ValueError(f"{where} must be <= {a.maximum:g}, got {value!r}")
        return v
    if a.role is ArgRole.FLAG:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return bool(value)
    if a.role is ArgRole.CHOICE:
        if value not in a.choices:
            raise ValueError(f"{where} must be one of {', '.join(a.choices)}, got {value!r}")
        return value
    raise ValueError(f"{where}: unsupported option role {a.role}")  # pragma: no cover - declarations


def _operand(op: str, a: ArgSpec, value: Any) -> np.ndarray | float:
    """An operand as a float64 array (bool arrays become 1.0/0.0) or a float scalar (None = missing)."""
    if value is None:
        return LAYOUT.missing
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        return float(value)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return float(arr)
    if arr.ndim > 2:
        raise ValueError(f"{op}(): operand {a.name!r} must be 1-D or 2-D, got {arr.ndim}-D")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{op}(): operand {a.name!r} must be numeric or boolean, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def call(op_name: str, *operands: Any, **options: Any) -> np.ndarray:
    """Validate and run the kernel of `op_name`: `call("mean", x, n=20)`, `call("gt", x, 0)`.

    Operands are positional (arrays or scalars; scalars and 1-D arrays broadcast against the others);
    options are keywords by their DSL names (defaults from the declaration). 2-D operands (rows x
    columns, e.g. one column per parameter set) run the kernel per column into an F-ordered result.
    """
    spec = OPERATORS[op_name] if op_name in set(OPERATORS) else None
    if spec is None or op_name not in _KERNELS:
        why = EXCEPTIONS.get(op_name, "no such operator" if spec is None else "no kernel registered")
        raise KeyError(f"no Numba kernel for {op_name!r}: {why}")
    op_args = [a for a in spec.args if a.role.is_operand]
    opt_args = [a for a in spec.args if not a.role.is_operand]
    if len(operands) != len(op_args):
        names = ", ".join(a.name for a in op_args)
        raise TypeError(f"{op_name}() takes {len(op_args)} operand(s) ({names}), got {len(operands)}")
    unknown = set(options) - {a.name for a in opt_args}
    if unknown:
        raise TypeError(f"{op_name}(): unknown option(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for a in opt_args:
        if a.name in options:
            values[a.name] = _option(op_name, a, options[a.name])
        elif a.default is REQUIRED:
            raise TypeError(f"{op_name}(): option {a.name!r} is required")
        else:
            values[a.name] = a.default if a.default is None else _option(op_name, a, a.default)
    resolve = _RESOLVERS.get(op_name)
    kargs = resolve(values) if resolve else tuple(values[a.name] for a in opt_args)

    conv = [_operand(op_name, a, v) for a, v in zip(op_args, operands, strict=True)]
    arrays = [c for c in conv if isinstance(c, np.ndarray)]
    if not arrays:
        raise ValueError(f"{op_name}(): at least one operand must be a series (an array)")
    rows = {c.shape[0] for c in arrays}
    if len(rows) != 1:
        raise ValueError(f"{op_name}(): operands have different lengths {sorted(rows)}")
    (n_rows,) = rows
    widths = {c.shape[1] for c in arrays if c.ndim == 2}
    if len(widths) > 1:
        raise ValueError(f"{op_name}(): 2-D operands have different widths {sorted(widths)}")
    fn = _KERNELS[op_name]

    def column(c: np.ndarray | float, j: int | None) -> np.ndarray:
        if not isinstance(c, np.ndarray):
            return np.full(n_rows, c, dtype=np.float64)
        col = c if c.ndim == 1 else c[:, j]
        return np.ascontiguousarray(col, dtype=np.float64)

    if not widths:
        return fn(*(column(c, None) for c in conv), *kargs)
    (width,) = widths
    out = np.empty((n_rows, width), dtype=np.float64, order="F")
    for j in range(width):  # a loop over columns (parameter sets), never over rows
        out[:, j] = fn(*(column(c, j) for c in conv), *kargs)
    return out
