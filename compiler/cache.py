"""Feature-cache keys: node hash + versions of exactly the data the node reads + as_of_date + bound params.

Why only the data the node reads: a new CTA file must not invalidate cached VIX features. Why bound params
in the key and not in the node hash: an optimisation study reuses one compiled graph for every trial.
The subgraph under a node is the graph's own reachability walk (`Graph.reachable`), not a copy of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from compiler.contracts import CacheKey
from dsl import Graph, ParamRef


def data_sources(graph: Graph, node_hash: str | None = None) -> tuple[str, ...]:
    """Datasets read by the subgraph under `node_hash` (default: the root), sorted."""
    nodes = graph.reachable(node_hash or graph.hash)
    return tuple(sorted({dict(n.args)["dataset_id"] for n in nodes if n.op == "column"}))


def params_used(graph: Graph, node_hash: str | None = None) -> set[str]:
    """Top-level $params the subgraph under `node_hash` reads (as values or as literal arguments)."""
    out: set[str] = set()
    for n in graph.reachable(node_hash or graph.hash):
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
    """The key of one node's cached values; raises KeyError if a dataset it reads has no version, or a
    $param it reads has no bound value (one key per binding: a symbolic value has no cached numbers)."""
    node = node_hash or graph.hash
    sources = data_sources(graph, node)
    missing = [d for d in sources if d not in data_versions]
    if missing:
        raise KeyError(f"no data version for {', '.join(missing)}")
    used = params_used(graph, node)
    bound = {**dict(graph.params), **dict(params or {})}
    unbound = sorted(used - set(bound))
    if unbound:
        raise KeyError(f"no bound value for ${', $'.join(unbound)}")
    return CacheKey(
        node_hash=node,
        data_versions=tuple((d, data_versions[d]) for d in sources),
        as_of=as_of,
        params=tuple(sorted((k, bound[k]) for k in used)),
    )
