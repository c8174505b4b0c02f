"""Warm-up as a function of the binding: rows each grid must load before the first wanted row.

A checked graph keeps top-level `$params` symbolic (`ParamRef` args), so its rows-needed depend on the
values a run binds. This module is the one implementation of the rule, used by the checker (at the
check-time binding, or at the top of a declared domain) and by the compiler per trial: like Zipline's
planner, each node's extra rows come from its own arguments (`OpSpec.history`, or `OpSpec.needs` for
leaves and alignment) and compose through the children (max over children, plus the node's history on
its own grid). Pure graph math, so it lives in dsl and the compiler re-exports it.

Every `history` rule is non-decreasing in each argument (tested), so the maximum over a grid of
bindings is reached by taking, per node, the maximum over that node's own argument values: that is
`max_warmup`, exact and without enumerating the grid's product.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dsl.contracts import Frequency, Graph, OpSpec, ParamDomain, ParamRef
from dsl.ops import OPERATORS

Needs = dict[Frequency, int]


def generic_needs(
    spec: OpSpec, args: Mapping[str, Any], freq: Frequency, children: Sequence[Mapping[Frequency, int]]
) -> Needs:
    """Children's rows per grid, plus this node's `history` rows on its own grid (unbounded adds 0)."""
    history = spec.history(args) if spec.history is not None else 0
    out: Needs = {}
    for c in children:
        for f, w in c.items():
            add = (history or 0) if f is freq else 0
            out[f] = max(out.get(f, 0), w + add)
    return out


def node_needs(
    spec: OpSpec, args: Mapping[str, Any], freq: Frequency, children: Sequence[Mapping[Frequency, int]]
) -> Needs:
    """Rows needed per grid at one node, from plain (bound) argument values."""
    if spec.needs is not None:
        return spec.needs(args, freq, children)
    return generic_needs(spec, args, freq, children)


def _plain(op: str, args: tuple[tuple[str, Any], ...], binding: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in args:
        if isinstance(v, ParamRef):
            if v.name not in binding:
                raise KeyError(f"{op}(): no value bound for ${v.name}")
            v = binding[v.name]
        out[k] = v
    return out


def _root(graph: Graph, per_node: Mapping[str, Needs]) -> Needs:
    return dict(sorted(per_node[graph.root].items(), key=lambda kv: kv[0].value))


def node_warmups(graph: Graph, binding: Mapping[str, Any] | None = None) -> dict[str, Needs]:
    """Rows needed per grid at every node (by hash) for one binding: the evaluator's per-node valid rows."""
    bound = {**dict(graph.params), **dict(binding or {})}
    per: dict[str, Needs] = {}
    for n in graph.nodes:
        spec = OPERATORS[n.op]
        per[n.hash] = node_needs(spec, _plain(n.op, n.args, bound), n.frequency, [per[c] for c in n.children])
    return per


def warmup_needs(graph: Graph, binding: Mapping[str, Any] | None = None) -> Needs:
    """Rows needed per grid for one binding of the graph's top-level $params (default: its own)."""
    return _root(graph, node_warmups(graph, binding))


def warmup(graph: Graph, binding: Mapping[str, Any] | None = None) -> int:
    """Rows of the graph's own grid to load before the first wanted row, for one binding."""
    return warmup_needs(graph, binding).get(graph.frequency, 0)


Grid = Mapping[str, ParamDomain | Iterable[Any]]


def _values(grid: Grid, name: str) -> tuple[Any, ...]:
    v = grid[name]
    return v.extremes if isinstance(v, ParamDomain) else tuple(v)


def max_warmup_needs(graph: Graph, grid: Grid | None = None) -> Needs:
    """Rows needed per grid, the maximum over every binding of `grid` (values per param, or a
    ParamDomain); params not in `grid` use the graph's binding, then its declared domain."""
    space: dict[str, tuple[Any, ...]] = {k: (v,) for k, v in graph.params}
    space |= {k: d.extremes for k, d in graph.domains if k not in space}
    for k in grid or {}:
        space[k] = _values(grid, k)  # type: ignore[arg-type]
    per: dict[str, Needs] = {}
    for n in graph.nodes:
        spec = OPERATORS[n.op]
        kids = [per[c] for c in n.children]
        names = sorted({v.name for _, v in n.args if isinstance(v, ParamRef)})
        for name in names:
            if not space.get(name):
                raise KeyError(f"{n.op}(): no values for ${name}")
        best: Needs = {}
        for combo in itertools.product(*(space[k] for k in names)):
            need = node_needs(
                spec, _plain(n.op, n.args, dict(zip(names, combo, strict=True))), n.frequency, kids
            )
            for f, w in need.items():
                best[f] = max(best.get(f, 0), w)
        per[n.hash] = best
    return _root(graph, per)


def max_warmup(graph: Graph, grid: Grid | None = None) -> int:
    """Rows of the graph's own grid that suffice for every binding of `grid` (one load for a study)."""
    return max_warmup_needs(graph, grid).get(graph.frequency, 0)
