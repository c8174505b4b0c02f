"""The Ibis backend: one translation per DSL operator, registered by operator name, and the stager.

`TRANSLATIONS[op](ctx, *operands, **options)` maps ibis expressions (bound to `ctx.table`, ordered by the
grid row column `_row`) to an ibis expression; missing is SQL NULL and every result is finite or NULL.
`stage(table, steps)` turns a topologically ordered list of `Step`s into successive `.mutate()` stages
(SQL cannot nest window functions); `to_sql` renders it as readable DuckDB SQL with one CTE per stage.
`EXCEPTIONS` names the operators that have no translation on purpose, with the reason; the grid
alignment ops `asof` / `to_daily` are joins of two grid tables, in `ALIGNMENTS`. The recursive operators
(ema, bars_since, hold) have closed forms over window functions (recursive.py): every operator runs here.
"""

from compiler.ibis_backend import (
    arithmetic,
    elementwise,
    events,
    missing,
    passthrough,
    recursive,
    rolling,
    timeseries,
)
from compiler.ibis_backend._registry import _WINDOWED, EXCEPTIONS, TRANSLATIONS, Ctx, is_windowed, register
from compiler.ibis_backend.alignment import ALIGNMENTS
from compiler.ibis_backend.staging import (
    Step,
    apply,
    literal,
    normalize_source,
    normalize_sources,
    stage,
    stages_of,
    to_sql,
)

MODULES = (arithmetic, elementwise, missing, timeseries, rolling, recursive, events, passthrough)
"""The operator-family modules whose import fills TRANSLATIONS."""

WINDOWED: frozenset[str] = frozenset(_WINDOWED)
"""Operators whose translation emits window functions."""

__all__ = [
    "ALIGNMENTS",
    "EXCEPTIONS",
    "MODULES",
    "TRANSLATIONS",
    "WINDOWED",
    "Ctx",
    "Step",
    "apply",
    "is_windowed",
    "literal",
    "normalize_source",
    "normalize_sources",
    "register",
    "stage",
    "stages_of",
    "to_sql",
]
