"""Feature-cache keys: node hash + versions of exactly the data the node reads + as_of_date + bound params.

Why only the data the node reads: a new CTA file must not invalidate cached VIX features. Why bound params
in the key and not in the node hash: an optimisation study reuses one compiled graph for every trial.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from compiler.contracts import CacheKey
from dsl import Graph, ParamRef


def _reachable(graph: Graph, start: str) -> list:
    """Every node under `start` (itself included), each once."""
    seen: set[str] = set()
    todo, out = [start], []
    while todo:
        h = todo.pop()
        if h in seen:
            continue
        seen.add(h)
        n = graph.find(h)
        out.append(n)
        todo.extend(n.children)
    return out


def data_sources(graph: Graph, node_hash: str | None = None) -> tuple[str, ...]:
    """Datasets read by the subgraph under `node_hash` (default: the root), sorted."""
    nodes = _reachable(graph, node_hash or graph.hash)
    return tuple(sorted({dict(n.args)["dataset_id"] for n in nodes if n.op == "column"}))


def _params_used(graph: Graph, node_hash: str) -> set[str]:
    out: set[str] = set()
    for n in _reachable(graph, node_hash):
        if n.op == "param":
            out.add(str(dict(n.args)["name"]))
        out.update(v.name for _, v in n.args if isinstance(v, ParamRef))  # e.g. mean(x, $w)
    return out


def cache_key(
    graph: Graph,
    data_versions: Mapping[str, str],
    *,
    node_hash: str | None = None,
    as_of: dt.date | None = None,
    params: Mapping[str, Any] | None = None,
) -> CacheKey:
    """The key of one node's cached values; raises KeyError if a dataset it reads has no version."""
    node = node_hash or graph.hash
    sources = data_sources(graph, node)
    missing = [d for d in sources if d not in data_versions]
    if missing:
        raise KeyError(f"no data version for {', '.join(missing)}")
    used = _params_used(graph, node)
    bound = {**dict(graph.params), **dict(params or {})}
    return CacheKey(
        node_hash=node,
        data_versions=tuple((d, data_versions[d]) for d in sources),
        as_of=as_of,
        params=tuple(sorted((k, bound[k]) for k in used if k in bound)),
    )
