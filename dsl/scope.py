"""What one check carries: typed occurrences, the scope of names of one text, and small shared helpers.

Split out of the checker so that its concerns (argument binding, availability, feature expansion,
typing rules) can live in their own modules and share these types without importing each other.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dsl.contracts import (
    ColumnDef,
    Debt,
    FeatureDef,
    Frequency,
    Kind,
    Node,
    Origin,
    ParamDomain,
    ParamRef,
    Span,
)
from dsl.graph import GraphBuilder
from dsl.hashing import canonical_value
from dsl.printer import format_number


@dataclass(slots=True)
class _Typed:
    """One occurrence of a checked subexpression (node hash plus occurrence-specific debts/spans)."""

    hash: str
    kind: Kind
    freq: Frequency
    debts: dict[str, Debt]
    span: Span
    needs: dict[Frequency, int]
    stateful: bool


@dataclass(frozen=True, slots=True)
class _FeatureResult:
    node: Node
    nodes: tuple[Node, ...]
    debts: dict[str, Debt]
    canonical: str


@dataclass(slots=True)
class _Scope:
    """What names mean in one text: the top-level cell, or one feature's expression."""

    text: str
    origin: Origin
    params: Mapping[str, Any]
    symbolic: bool
    slots: Mapping[str, str]
    builder: GraphBuilder
    feature: FeatureDef | None = None
    x: ColumnDef | None = None
    used_params: dict[str, Any] = field(default_factory=dict)
    domains: Mapping[str, ParamDomain] = field(default_factory=dict)
    used_domains: dict[str, ParamDomain] = field(default_factory=dict)


def _did_you_mean(name: str, candidates: list[str]) -> str:
    lower = name.lower()
    exact = [c for c in candidates if c.lower() == lower]
    close = exact + [
        c for c in difflib.get_close_matches(name, candidates, n=3, cutoff=0.6) if c not in exact
    ]
    close = close[:3]
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean '{close[0]}'?"
    return "; did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"


def _value_kind(value: Any) -> Kind:
    v = canonical_value(value)
    if isinstance(v, bool):
        return Kind.BOOL_SCALAR
    if isinstance(v, int):
        return Kind.INT_SCALAR
    return Kind.FLOAT_SCALAR


def _show_value(value: Any) -> str:
    if isinstance(value, ParamRef):
        return f"${value.name}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    if value is None:
        return "none"
    return str(value)


def _merge_debts(children: list[_Typed]) -> dict[str, Debt]:
    out: dict[str, Debt] = {}
    for t in children:
        for src, d in t.debts.items():
            old = out.get(src)
            if old is None or d.owed > old.owed:
                out[src] = d
    return out
