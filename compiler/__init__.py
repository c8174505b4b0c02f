"""From a checked DSL graph to something that runs: backend plan and feature-cache keys.

This layer imports `dsl` only (never `runtime`). The Ibis/DuckDB and Numba backends land here next
(design/ROADMAP.md 0.5); the planner and the cache key, which they rely on, are already fixed.
"""

from compiler.cache import cache_key, data_sources
from compiler.contracts import CacheKey, Plan, PlanStep
from compiler.plan import plan_graph

__all__ = ["CacheKey", "Plan", "PlanStep", "cache_key", "data_sources", "plan_graph"]
