"""From a checked DSL graph to something that runs: backend plan, value layout and feature-cache keys.

This layer imports `dsl` only (never `runtime`). Backends register their operators in their own
registries (compiler/numba_backend KERNELS, compiler/ibis_backend); compiler/backends.py reads them.
"""

from compiler.cache import cache_key, data_sources, params_used
from compiler.contracts import LAYOUT, Backend, CacheKey, Plan, PlanStep, Transfer, ValueLayout
from compiler.plan import plan_graph
from dsl.warmup import max_warmup, max_warmup_needs, warmup, warmup_needs  # pure graph math, per binding


def explain(graph, *, backend="auto", params=None):  # type: ignore[no-untyped-def]
    """Typed graph + plan + staged DuckDB SQL with an HTML view for Jupyter (compiler.evaluate.explain)."""
    from compiler.evaluate import explain as _explain

    return _explain(graph, backend=backend, params=params)


__all__ = [
    "LAYOUT",
    "Backend",
    "CacheKey",
    "Plan",
    "PlanStep",
    "Transfer",
    "ValueLayout",
    "cache_key",
    "data_sources",
    "explain",
    "max_warmup",
    "max_warmup_needs",
    "params_used",
    "plan_graph",
    "warmup",
    "warmup_needs",
]
