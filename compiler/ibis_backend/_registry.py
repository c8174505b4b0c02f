"""The Ibis translation registry and the translation context (the current staged table and its windows).

A translation is `fn(ctx, *operands, **options) -> ibis value`: operands are ibis value expressions bound
to `ctx.table` (or unbound literals), options are plain Python values by their DSL names. Window
functions are built with `ctx.window(n)` (ROWS BETWEEN n-1 PRECEDING AND CURRENT ROW over the grid order
column, partitioned by `ctx.group_by`). A translation that needs a window over its own intermediate
results (SQL cannot nest window functions) calls `ctx.mat(...)`, which materialises them in a new
`.mutate()` stage and returns column references bound to the new table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import ibis
import ibis.expr.types as ir

from dsl import OPERATORS

Translation = Callable[..., ir.Value]

_TRANSLATIONS: dict[str, Translation] = {}
_WINDOWED: set[str] = set()

TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(_TRANSLATIONS)
"""Ibis translation per operator (OpSpec name, never an alias)."""

EXCEPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "column": "source leaf: the stager reads it as a column of the grid table (NaN normalised to NULL)",
        "const": "scalar leaf: the stager makes it a typed literal (NaN / None = NULL)",
        "param": "scalar leaf: bound per run, then a literal like const",
        "asof": "grid alignment daily -> 1m, a join of the two grid tables: alignment.ALIGNMENTS",
        "to_daily": "grid alignment 1m -> daily, a join of the two grid tables: alignment.ALIGNMENTS",
    }
)
"""Operators deliberately without an Ibis translation, with the reason."""


def register(name: str, *, windowed: bool = False) -> Callable[[Translation], Translation]:
    """Register `fn` as the translation of operator `name`; `windowed` = it emits window functions."""

    def deco(fn: Translation) -> Translation:
        if name not in OPERATORS:
            raise KeyError(f"register({name!r}): no such operator in dsl.ops.OPERATORS")
        if name in _TRANSLATIONS or name in EXCEPTIONS:
            raise KeyError(f"register({name!r}): operator registered twice or declared an exception")
        _TRANSLATIONS[name] = fn
        if windowed:
            _WINDOWED.add(name)
        return fn

    return deco


def is_windowed(name: str) -> bool:
    """True when the translation of `name` emits window functions (its inputs must be materialised)."""
    return name in _WINDOWED


@dataclass
class Ctx:
    """The table being staged, its grid order column, partitions and grid defaults.

    `values` maps every step name to its expression bound to `table`; `windowed` names those whose
    expression contains a window function and is not yet a column (it must be materialised before a
    window function may read it).
    """

    table: ir.Table
    order: str = "_row"
    group_by: Sequence[str] = ()
    periods_per_year: float = 252.0
    stages: int = 0

    def __post_init__(self) -> None:
        self.values: dict[str, ir.Value] = {c: self.table[c] for c in self.table.columns}
        self.windowed: set[str] = set()
        self._names = itertools.count()  # per staging: the same graph renders the same SQL every time

    @property
    def row(self) -> ir.IntegerColumn:
        """The grid order column of the current table."""
        return self.table[self.order]

    def window(
        self,
        n: int | None = None,
        *,
        preceding: Any = -1,
        following: Any = 0,
        rows: tuple[int, int] | None = None,
        by: Any = (),
    ) -> Any:
        """Rows frame over the grid order: the last `n` rows (current included) by default.

        `n=None` with the defaults is an ordered window without a frame limit (for lag/lead); pass
        `preceding=None` for UNBOUNDED PRECEDING, `following=None` for UNBOUNDED FOLLOWING, or
        `rows=(a, b)` for ROWS BETWEEN a AND b relative to the current row (negative = preceding).
        Bounds may be non-negative integer column expressions (variable frames).
        """
        group = [self.table[g] for g in self.group_by] + (list(by) if isinstance(by, (list, tuple)) else [by])
        if rows is not None:
            return ibis.window(rows=rows, order_by=self.row, group_by=group or None)
        if n is not None:
            preceding = n - 1
        elif isinstance(preceding, int) and preceding == -1:
            return ibis.window(order_by=self.row, group_by=group or None)
        return ibis.window(
            preceding=preceding, following=following, order_by=self.row, group_by=group or None
        )

    def define(self, name: str, expr: ir.Value, *, windowed: bool) -> None:
        """Record a step's value (bound to the current table)."""
        self.values[name] = expr
        if windowed and name not in self.table.columns:
            self.windowed.add(name)
        else:
            self.windowed.discard(name)

    def flush(self) -> None:
        """Materialise every pending (not yet a column) step value in one new stage."""
        self.mat()

    def mat(self, **exprs: ir.Value) -> dict[str, ir.Column]:
        """One new `.mutate()` stage with every pending step value plus `exprs` (temporary columns).

        Returns references to `exprs` on the new table; every recorded step value is rebound to it.
        Expressions bound to the previous table must not be used afterwards.
        """
        temp = {k: f"_t{next(self._names)}_{k}" for k in exprs}
        pending = {
            k: v
            for k, v in self.values.items()
            if k not in self.table.columns or not _is_column_of(v, self.table, k)
        }
        new = pending | {temp[k]: v for k, v in exprs.items()}
        if new:
            self.table = self.table.mutate(**new)
            self.stages += 1
        self.values = {k: self.table[k] for k in self.values}
        self.windowed.clear()
        return {k: self.table[temp[k]] for k in exprs}

    def join(self, right: ir.Table, predicates: Sequence[Any], columns: Sequence[str]) -> None:
        """One LEFT JOIN stage: `columns` of `right` (a small per-block table) added to every row, every
        recorded step value rebound to the joined table. Call right after `mat()`, so that every step
        value is already a column of the current table."""
        t = self.table
        self.table = t.left_join(right, list(predicates)).select(*t.columns, *columns)
        self.stages += 1
        self.values = {k: self.table[k] for k in self.values}


def _is_column_of(v: ir.Value, table: ir.Table, name: str) -> bool:
    """True when `v` is exactly the column `name` of `table` (nothing to materialise)."""
    try:
        return v.equals(table[name])
    except Exception:
        return False
