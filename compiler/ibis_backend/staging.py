"""Staged projections: a graph's steps, in topological order, become successive `.mutate()` stages.

SQL cannot nest window functions and Ibis does not split them, so a windowed step whose input still
contains a window function (not yet a column) first materialises every pending value in a stage of its
own: `zscore(lag(x, 1), 60)` is stage 1 `lag`, then zscore's own stages. Elementwise steps stay pending
(inlined into whatever stage materialises next), so a chain of arithmetic costs no extra stage.

Sources: `normalize_source` turns float NaN (and ±inf) into NULL where a column enters SQL, so NaN never
reaches an operator. `to_sql` renders a staged table as readable DuckDB SQL with one CTE per stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import sqlglot
from sqlglot.optimizer.eliminate_subqueries import eliminate_subqueries

from compiler.ibis_backend._common import NULL_F
from compiler.ibis_backend._registry import TRANSLATIONS, Ctx, is_windowed
from dsl import OPERATORS

Operand = str | float | int | bool | None


@dataclass(frozen=True)
class Step:
    """One graph node: `name = op(*inputs, **options)`; inputs name columns / earlier steps, or are
    scalars (a number, true/false, or None / NaN = missing)."""

    name: str
    op: str
    inputs: tuple[Operand, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def normalize_source(col: ir.Value) -> ir.Value:
    """A source column as the operators expect it: float NaN / ±inf become NULL (missing)."""
    if col.type().is_floating():
        return ibis.cases((col.isnan() | col.isinf(), NULL_F), else_=col)
    return col


def normalize_sources(table: ir.Table, columns: Iterable[str]) -> ir.Table:
    """`table` with each of `columns` normalised (see normalize_source)."""
    return table.mutate(**{c: normalize_source(table[c]) for c in columns})


def literal(v: float | int | bool | None) -> ir.Scalar:
    """A typed literal; None and NaN are the missing value (a typed NULL)."""
    if isinstance(v, bool):
        return ibis.literal(v, type="boolean")
    if v is None:
        return NULL_F
    f = float(v)
    return NULL_F if math.isnan(f) or math.isinf(f) else ibis.literal(f, type="float64")


def stage(
    table: ir.Table,
    steps: Sequence[Step],
    *,
    order: str = "_row",
    group_by: Sequence[str] = (),
    periods_per_year: float = 252.0,
    keep: Sequence[str] | None = None,
) -> ir.Table:
    """The table of `steps` evaluated over `table` (ordered by `order`): `keep` (default: the order
    column, the group columns and every step) as columns, temporaries dropped."""
    ctx = Ctx(table, order=order, group_by=tuple(group_by), periods_per_year=periods_per_year)
    for s in steps:
        apply(ctx, s)
    ctx.flush()
    cols = list(keep) if keep is not None else [order, *group_by, *(s.name for s in steps)]
    return ctx.table.select(*cols)


def apply(ctx: Ctx, s: Step) -> None:
    """Add one step to the staging context: a window function that would read a pending window
    expression first materialises every pending value in a new stage (SQL cannot nest them)."""
    if s.op not in TRANSLATIONS:
        raise KeyError(f"step {s.name!r}: no Ibis translation for operator {s.op!r}")
    if s.name in ctx.values:
        raise ValueError(f"step {s.name!r}: the name is already a column or an earlier step")
    names = [i for i in s.inputs if isinstance(i, str)]
    missing = [i for i in names if i not in ctx.values]
    if missing:
        raise KeyError(f"step {s.name!r}: unknown input(s) {missing} (steps must be topologically ordered)")
    windowed = is_windowed(s.op)
    if windowed and any(i in ctx.windowed for i in names):
        ctx.flush()  # a window function may not read an expression that contains one
    operands = [ctx.values[i] if isinstance(i, str) else literal(i) for i in s.inputs]
    out = TRANSLATIONS[s.op](ctx, *operands, **_options(s))
    inner = windowed or any(i in ctx.windowed for i in names)
    ctx.define(s.name, out, windowed=inner)


def stages_of(table: ir.Table) -> int:
    """How many SELECT projections the SQL of `table` has (Ibis merges the last one into its input)."""
    return len(list(sqlglot.parse_one(to_sql(table), read="duckdb").find_all(sqlglot.exp.Select)))


def _options(s: Step) -> dict[str, Any]:
    """The step's options, unknown names refused (they are the DSL's option names)."""
    spec = OPERATORS[s.op]
    known = {a.name for a in spec.args if not a.role.is_operand}
    unknown = set(s.options) - known
    if unknown:
        raise TypeError(f"step {s.name!r}: {s.op}() has no option(s) {', '.join(sorted(unknown))}")
    return dict(s.options)


def to_sql(table: ir.Table, *, pretty: bool = True) -> str:
    """Readable DuckDB SQL of a staged table: each nested stage becomes a named CTE (WITH t0 AS ...)."""
    sql = ibis.to_sql(table, dialect="duckdb")
    tree = eliminate_subqueries(sqlglot.parse_one(str(sql), read="duckdb"))
    return tree.sql(dialect="duckdb", pretty=pretty)
