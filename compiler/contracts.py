"""Compiler contracts: the backend plan of a graph and the key of a cached feature."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlanStep:
    """Which backend computes one node, and at which Ibis projection stage (nested windows are staged)."""

    node: str  # node hash
    op: str
    backend: str  # "ibis" | "numba"
    stage: int  # window depth: SQL cannot nest window functions, so each depth is its own projection
    reason: str


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlanStep, ...]  # in the graph's topological order

    def backend_of(self, node: str) -> str:
        return next(s.backend for s in self.steps if s.node == node)

    @property
    def transfers(self) -> int:
        """Edges that cross backends (each is a materialisation between DuckDB and Numba)."""
        return sum(1 for s in self.steps if s.reason.startswith("transfer"))


@dataclass(frozen=True)
class CacheKey:
    """What a cached feature value depends on: the node, the data it reads, the as-of date, bound params."""

    node_hash: str
    data_versions: tuple[tuple[str, str], ...]  # (dataset_id, version), sorted
    as_of: dt.date | None
    params: tuple[tuple[str, Any], ...]  # bound top-level $params, sorted

    @property
    def digest(self) -> str:
        payload = json.dumps(
            {
                "node": self.node_hash,
                "data": [list(x) for x in self.data_versions],
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "params": [[k, repr(v)] for k, v in self.params],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
