"""Which backend implements which operator, read from the backends' own registries (never from dsl/).

Numba: `compiler.numba_backend.KERNELS` (filled by `@register(op)` next to each kernel). Ibis:
`compiler.ibis_backend`'s registry once that package exists (its `register`-style table, looked up by
the names in IBIS_REGISTRY_NAMES); until then the Ibis column is the plan for it (from before the
stateful operators had SQL closed forms): every non-source operator that is not stateful, marked
"planned" in the docs. Sources and alignment are the evaluator's (EVALUATOR_SHAPES) unless a
backend registers them. A completeness test (tests/compiler/test_plan_cache.py) keeps every
operator implemented by at least one backend and the registries disjoint from their declared exceptions.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from compiler.contracts import Backend
from dsl import OPERATORS, OpSpec, Shape

#: shapes the evaluator handles itself when no backend registers them: sources are read or broadcast,
#: alignment is grid work (a DuckDB join of the grid tables); the planner puts them on Ibis/DuckDB
EVALUATOR_SHAPES = {Shape.SOURCE: "source", Shape.ALIGN: "grid alignment"}

#: attribute names under which compiler.ibis_backend may expose its per-operator registry
IBIS_REGISTRY_NAMES = ("TRANSLATIONS", "RULES", "KERNELS", "REGISTRY", "OPERATIONS")


def _ibis_registry() -> Mapping[str, object] | None:
    try:
        mod = importlib.import_module("compiler.ibis_backend")
    except ModuleNotFoundError as e:
        if e.name not in ("compiler.ibis_backend", "ibis"):
            raise
        return None
    for name in IBIS_REGISTRY_NAMES:
        reg = getattr(mod, name, None)
        if isinstance(reg, Mapping):
            return reg
    return None


@cache
def implementations() -> Mapping[Backend, frozenset[str]]:
    """Operator names per backend (cached: the registries are filled at import time)."""
    from compiler.numba_backend import KERNELS

    ibis = _ibis_registry()
    planned = frozenset(n for n, s in OPERATORS.items() if not s.stateful and s.shape not in EVALUATOR_SHAPES)
    return {
        Backend.NUMBA: frozenset(KERNELS),
        Backend.IBIS: frozenset(ibis) if ibis is not None else planned,
    }


def ibis_is_planned() -> bool:
    """True while the Ibis column comes from the plan, not from a registry."""
    return _ibis_registry() is None


def backends_of(op: str) -> tuple[Backend, ...]:
    """The backends that implement `op`, in enum order (empty for sources: the evaluator handles them)."""
    impl = implementations()
    return tuple(b for b in Backend if op in impl[b])


def describe(spec: OpSpec) -> str:
    """The backends column of the operator table in design/DSL.md."""
    parts = []
    for b in backends_of(spec.name):
        parts.append(f"{b.value} (planned)" if b is Backend.IBIS and ibis_is_planned() else b.value)
    if not parts and spec.shape in EVALUATOR_SHAPES:
        return f"evaluator ({EVALUATOR_SHAPES[spec.shape]})"
    return ", ".join(parts) or "-"
