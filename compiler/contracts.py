"""Compiler contracts: backends, the backend plan of a graph, the value layout and the cache key.

Everything a backend, the executor or the runtime reads from the compiler is a typed value here (no
strings to parse): a `Backend` enum, transfers as data on `PlanStep`, one in-memory `ValueLayout` that
both backends honour, and a `CacheKey` whose digest uses the DSL's canonical value form (the same form
the node hash uses, so `w=20` and `w=20.0` are one key as they are one node).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from dsl.hashing import canonical_value


class Backend(Enum):
    """Where a node is computed: Ibis (DuckDB by default) for I/O, joins and alignment; Numba for kernels."""

    IBIS = "ibis"
    NUMBA = "numba"

    def __str__(self) -> str:
        return self.value


# ----------------------------------------------------------------------------------------------------------
# Value layout (shared by both backends)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueLayout:
    """How a series is stored in memory, for every backend and every hand-over between them.

    1-D float64 with NaN as the only missing marker in memory (NaN never reaches SQL: the Ibis side turns
    it into NULL at the source and back at the boundary). A true/false series uses the same dtype with
    1.0 / 0.0 / NaN, so three-valued (Kleene) logic needs no second missing code and `lag`, `ffill`,
    `hold` work on numbers and booleans alike. Every output is finite or missing, never ±inf. In SQL,
    missing is NULL for both float and bool columns.
    """

    dtype: type = np.float64
    missing: float = float("nan")  # the only missing marker; test with np.isnan, never ==
    true: float = 1.0
    false: float = 0.0
    finite_or_missing: bool = True  # every output is finite or `missing`, never ±inf
    order: str = "F"  # 2-D blocks (rows x parameter sets) are column-major: each column is contiguous
    sql_missing: str = "NULL"  # float and bool columns alike

    def describe(self) -> str:
        """One line for plans and notebooks."""
        return (
            f"{np.dtype(self.dtype).name}, missing = NaN, bool = {self.true:g}/{self.false:g}/NaN "
            f"(Kleene), outputs finite or NaN, 2-D blocks {self.order}-ordered; SQL missing = "
            f"{self.sql_missing}"
        )


LAYOUT = ValueLayout()


# ----------------------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """One edge whose child is computed on another backend than its parent (a materialisation)."""

    child: str  # node hash
    source: Backend
    target: Backend


@dataclass(frozen=True)
class PlanStep:
    """Which backend computes one node, and at which Ibis projection stage (nested windows are staged)."""

    node: str  # node hash
    op: str
    backend: Backend
    stage: int  # window depth: SQL cannot nest window functions, so each depth is its own projection
    reason: str  # for people (compile --format plan); programs read the typed fields
    transfers: tuple[Transfer, ...] = ()  # inputs that arrive from the other backend


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlanStep, ...]  # in the graph's topological order
    _by_node: Mapping[str, PlanStep] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._by_node:
            object.__setattr__(self, "_by_node", {s.node: s for s in self.steps})

    def step(self, node: str) -> PlanStep:
        return self._by_node[node]

    def backend_of(self, node: str) -> Backend:
        return self._by_node[node].backend

    @property
    def transfers(self) -> int:
        """Edges that cross backends (each is a materialisation between DuckDB and Numba)."""
        return sum(len(s.transfers) for s in self.steps)


# ----------------------------------------------------------------------------------------------------------
# Cache key
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheKey:
    """What a cached feature value depends on: the node, the data it reads, the as-of date, bound params."""

    node_hash: str
    data_versions: tuple[tuple[str, str], ...]  # (dataset_id, version), sorted
    as_of: dt.date | None
    params: tuple[tuple[str, Any], ...]  # bound top-level $params, sorted

    @property
    def digest(self) -> str:
        """sha256 of the key; values in the DSL's canonical form (20 and 20.0 are one value, as in hashes)."""
        payload = json.dumps(
            {
                "node": self.node_hash,
                "data": [list(x) for x in self.data_versions],
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "params": [[k, canonical_value(v)] for k, v in self.params],
            },
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
