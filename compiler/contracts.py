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
    grid: str = ""  # the grid's name (+ "@first loaded row" for stateful nodes, whose values depend on it)

    @property
    def digest(self) -> str:
        """sha256 of the key; values in the DSL's canonical form (20 and 20.0 are one value, as in hashes)."""
        payload = json.dumps(
            {
                "node": self.node_hash,
                "data": [list(x) for x in self.data_versions],
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "params": [[k, canonical_value(v)] for k, v in self.params],
                **({"grid": self.grid} if self.grid else {}),
            },
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------------------
# Grids, sources, the value store: what the evaluator is handed (the runtime fills them; tests use frames)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Grid:
    """The rows an expression is evaluated on (design/DSL.md "Grids").

    Daily: `index` = the trading days of a calendar (datetime64[D], ascending), warm-up rows first.
    1m: `index` = the start of every minute bar of the sessions (datetime64[ns], UTC, ascending, dense:
    a minute without trades is a row with missing prices and zero volume), `trade_date` = the session
    (datetime64[D]) of each bar, and `daily` = the daily grid of those sessions (plus the sessions of
    daily warm-up), which `asof` / `to_daily` align through. Rows before `start` are warm-up: loaded so
    every output value is independent of where loading began, never returned and never traded.
    `name` identifies the row set for cache keys ("daily:NYSE", "1m:ES:RTH"): two grids with the same
    name agree on every row they share, so a cached value can be served by index.
    """

    frequency: Any  # dsl.Frequency.DAILY or dsl.Frequency.MINUTE
    index: np.ndarray
    name: str
    start: int = 0
    trade_date: np.ndarray | None = None  # 1m grids only
    daily: Grid | None = None  # 1m grids only
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        from dsl import Frequency

        if self.frequency not in (Frequency.DAILY, Frequency.MINUTE):
            raise ValueError(f"grid frequency must be daily or 1m, got {self.frequency!r}")
        idx = np.asarray(self.index)
        want = "datetime64[D]" if self.frequency is Frequency.DAILY else "datetime64[ns]"
        if idx.dtype != np.dtype(want):
            raise ValueError(f"{self.frequency.value} grid index must be {want}, got {idx.dtype}")
        if len(idx) > 1 and not bool(np.all(idx[1:] > idx[:-1])):
            raise ValueError("grid index must be strictly ascending")
        if not 0 <= self.start <= len(idx):
            raise ValueError(f"grid start {self.start} outside 0..{len(idx)}")
        if self.frequency is Frequency.MINUTE:
            if self.trade_date is None or self.daily is None:
                raise ValueError("a 1m grid needs trade_date per bar and the daily grid of its sessions")
            td = np.asarray(self.trade_date)
            if td.dtype != np.dtype("datetime64[D]") or len(td) != len(idx):
                raise ValueError("1m grid trade_date must be datetime64[D], one per bar")
            if len(td) and not bool(np.all(np.isin(td, self.daily.index))):
                raise ValueError("every session of a 1m grid must be a row of its daily grid")
        object.__setattr__(self, "index", idx)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def rows(self) -> int:
        """Output rows (after warm-up)."""
        return len(self.index) - self.start

    @property
    def first(self) -> Any:
        return self.index[self.start] if self.rows else None

    @property
    def last(self) -> Any:
        return self.index[-1] if len(self.index) else None


class Sources:
    """What the evaluator reads: dataset columns placed on a grid, and each dataset's data version.

    A protocol (subclass it): the runtime's implementation reads DuckDB/Parquet as known on `as_of`;
    `compiler.evaluate.FrameSources` serves in-memory frames for tests and notebooks. Placement rules
    (design/DSL.md "Grids"): a daily value stamped on a non-grid date moves to the next grid date (never
    earlier) unless that date has its own value; a 1m value sits on its bar; a grid row without a value
    is missing (NaN), except that additive bar columns (volume, counts, delta) are 0 on a minute without
    trades.
    """

    as_of: dt.date | None = None

    def read(self, dataset_id: str, column: str, grid: Grid) -> np.ndarray:
        """float64 values, one per grid row, NaN = missing, never ±inf (booleans as 1.0/0.0)."""
        raise NotImplementedError

    def version(self, dataset_id: str) -> str:
        """The version of the data `read` serves for `dataset_id` (changes with every ingest that changes it)."""
        raise NotImplementedError


@dataclass(frozen=True)
class StoredValues:
    """One cached node: values on the rows `index` of grid `grid` (float64, NaN missing)."""

    index: np.ndarray
    values: np.ndarray


class ValueStore:
    """The feature cache as the evaluator sees it (the runtime's store is parquet + registry rows).

    `load` returns None on a miss and also when the stored file is missing or corrupt (the store records
    the problem in `problems` and drops the entry: never a stale or broken value). `save` is atomic.
    """

    problems: list[str]

    def load(self, key: CacheKey) -> StoredValues | None:
        raise NotImplementedError

    def save(self, key: CacheKey, values: StoredValues, *, label: str, feature_id: str | None) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class NodeRun:
    """How one node was obtained in an evaluation (for `backtest eval` and compile --format plan)."""

    node: str
    op: str
    label: str
    backend: Backend | None  # None for nodes served from the cache, scalars and pass-throughs
    cached: bool = False
    stored: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating a graph on a grid: the root's values on the output rows (after warm-up)."""

    values: np.ndarray  # float64, len = grid.rows, NaN = missing
    grid: Grid
    backend: str  # the mode asked for: auto | ibis | numba
    nodes: tuple[NodeRun, ...]
    seconds: float
    kept: Mapping[str, np.ndarray] = field(default_factory=dict)  # node hash -> values on output rows
    cache_problems: tuple[str, ...] = ()

    @property
    def index(self) -> np.ndarray:
        return self.grid.index[self.grid.start :]

    @property
    def missing(self) -> int:
        return int(np.isnan(self.values).sum())

    @property
    def cache_hits(self) -> int:
        return sum(1 for n in self.nodes if n.cached)
