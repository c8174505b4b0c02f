"""Typed DAG construction (hash-consing) and the views of a checked graph: dict, tree, dot, HTML."""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from dsl.contracts import Execution, Frequency, Graph, Node, Origin, ParamRef
from dsl.hashing import canonical_value


def reachable(nodes: Mapping[str, Node], root: str) -> tuple[Node, ...]:
    """Nodes reachable from `root` in `nodes` (insertion-ordered, children first), each once: the one
    reachability walk of the project (graph building, the cache's data sources and params)."""
    keep: set[str] = set()
    stack = [root]
    while stack:
        h = stack.pop()
        if h in keep:
            continue
        keep.add(h)
        stack.extend(nodes[h].children)
    return tuple(n for h, n in nodes.items() if h in keep)


class GraphBuilder:
    """Collects nodes by hash: adding a node whose hash exists returns the existing one (one node per
    distinct subexpression). Insertion order is topological because children are always added first."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}

    def add(self, node: Node) -> Node:
        old = self._nodes.get(node.hash)
        if old is None:
            self._nodes[node.hash] = node
            return node
        if node.spans and old.origin == node.origin:
            spans = old.spans + tuple(s for s in node.spans if s not in old.spans)
            if spans != old.spans:
                old = replace(old, spans=spans)
                self._nodes[node.hash] = old
        return old

    def merge(self, nodes: Iterable[Node]) -> None:
        for n in nodes:
            if n.hash not in self._nodes:
                self._nodes[n.hash] = n

    def get(self, hash_: str) -> Node:
        return self._nodes[hash_]

    def reachable(self, root: str) -> tuple[Node, ...]:
        """Nodes reachable from `root`, children first (insertion order is already topological)."""
        return reachable(self._nodes, root)

    def build(
        self,
        root: str,
        *,
        text: str,
        canonical: str,
        origin: Origin,
        execution: Execution | None = None,
        params: tuple[tuple[str, Any], ...] = (),
        domains: tuple[tuple[str, Any], ...] = (),
    ) -> Graph:
        return Graph(
            root=root,
            nodes=self.reachable(root),
            text=text,
            canonical=canonical,
            origin=origin,
            execution=execution,
            params=params,
            domains=domains,
        )


# ----------------------------------------------------------------------------------------------------------
# Views
# ----------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, ParamRef):
        return f"${value.name}"
    return canonical_value(value)


def node_to_dict(n: Node) -> dict[str, Any]:
    return {
        "hash": n.hash,
        "op": n.op,
        "label": n.label,
        "kind": n.kind.value,
        "frequency": n.frequency.value,
        "availability": n.availability,
        "warmup": n.warmup,
        "stateful": n.stateful,
        "children": list(n.children),
        "args": {k: _jsonable(v) for k, v in n.args},
        "spans": [[s.start, s.end] for s in n.spans],
        "origin": n.origin.render(),
        "residual": [
            {
                "source": d.source,
                "owed": d.owed,
                "grid": None if d.frequency is None else d.frequency.value,
                # a to_daily value owes a session by rule, whatever the dataset's cell says
                "set_by": "to_daily (a session's value is known at its close)"
                if d.reason == "to_daily"
                else d.origin.render(),
                "path": list(d.path),
            }
            for d in n.residual
        ],
    }


def graph_to_dict(g: Graph) -> dict[str, Any]:
    """JSON-able summary: the root's properties, the canonical text and every node."""
    return {
        "hash": g.hash,
        "kind": g.kind.value,
        "frequency": g.frequency.value,
        "availability": g.availability,
        "warmup": g.warmup,
        "warmup_by_frequency": {f.value: w for f, w in g.warmup_by_frequency.items()},
        "stateful": g.stateful,
        "canonical": g.canonical,
        "text": g.text,
        "origin": g.origin.render(),
        "execution": None if g.execution is None else g.execution.value,
        "params": {k: _jsonable(v) for k, v in g.params},
        "domains": {k: d.describe() for k, d in g.domains},
        "root": g.root,
        "nodes": [node_to_dict(n) for n in g.nodes],
        "edges": [list(e) for e in g.edges],
    }


def _walk(g: Graph) -> Iterator[tuple[int, Node, bool]]:
    """(depth, node, already_shown) in display order, root first, iteratively."""
    seen: set[str] = set()
    stack: list[tuple[int, str]] = [(0, g.root)]
    while stack:
        depth, h = stack.pop()
        node = g.find(h)
        shown = h in seen
        yield depth, node, shown
        if shown:
            continue
        seen.add(h)
        stack.extend((depth + 1, c) for c in reversed(node.children))


_ROWS = {Frequency.DAILY: ("daily row", "daily rows"), Frequency.MINUTE: ("1m bar", "1m bars")}


def warmup_text(needs: Mapping[Frequency, int] | tuple[tuple[Frequency, int], ...], first: Frequency) -> str:
    """Warm-up on every grid the expression reads, its own grid first: "2 1m bars + 62 daily rows"."""
    items = dict(needs)
    order = sorted(items, key=lambda f: (f is not first, f.value))
    parts = [f"{items[f]} {_ROWS[f][items[f] != 1]}" for f in order if f in _ROWS]
    return " + ".join(parts) or "0 rows"


def _facts(n: Node) -> str:
    extra = " stateful" if n.stateful else ""
    other = [(f, w) for f, w in n.needs if f is not n.frequency and f in _ROWS]
    more = "".join(f" (+{w} {_ROWS[f][w != 1]})" for f, w in other)
    return (
        f"{n.kind.value}, {n.frequency.value}, availability {n.availability}, warm-up {n.warmup}{more}{extra}"
    )


def render_tree(g: Graph) -> str:
    """Indented typed tree, one node per line: label, kind, frequency, availability, warm-up, short hash."""
    lines = []
    for depth, n, shown in _walk(g):
        pad = "  " * depth
        if shown:
            lines.append(f"{pad}{n.label}  (shared, see above) [{n.short}]")
        else:
            lines.append(f"{pad}{n.label}  : {_facts(n)} [{n.short}]")
    return "\n".join(lines)


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(g: Graph) -> str:
    """Graphviz source; edges go parent -> child in argument order."""
    out = ["digraph dsl {", '  node [shape=box, fontname="monospace"];']
    for n in g.nodes:
        label = _dot_escape(n.label) + "\\n" + _dot_escape(_facts(n)) + "\\n" + n.short
        shape = ', style="rounded,bold"' if n.hash == g.root else ""
        out.append(f'  n{n.hash[:16]} [label="{label}"{shape}];')
    for parent, child in g.edges:
        out.append(f"  n{parent[:16]} -> n{child[:16]};")
    out.append("}")
    return "\n".join(out)


def to_html(g: Graph) -> str:
    """Self-contained HTML table of the typed tree (for Jupyter), no external assets."""
    esc = html.escape
    rows = []
    for depth, n, shown in _walk(g):
        label = esc(n.label) + (" <i>(shared)</i>" if shown else "")
        rows.append(
            "<tr>"
            f'<td style="padding-left:{0.4 + 1.2 * depth:.1f}em;text-align:left;font-family:monospace">{label}</td>'
            f"<td>{esc(n.kind.value)}</td><td>{esc(n.frequency.value)}</td>"
            f"<td>{n.availability}</td><td>{n.warmup}{' (stateful)' if n.stateful else ''}</td>"
            f'<td style="font-family:monospace">{n.short}</td>'
            "</tr>"
        )
    head = (
        f'<div class="dsl-graph"><div style="font-family:monospace;margin-bottom:4px">'
        f"<b>{esc(g.canonical)}</b> &mdash; {esc(g.kind.value)}, {esc(g.frequency.value)}, "
        f"availability {g.availability}, warm-up {esc(warmup_text(g.warmup_by_frequency, g.frequency))}, "
        f"hash {g.root[:12]}</div>"
    )
    table = (
        '<table style="border-collapse:collapse">'
        "<thead><tr><th style='text-align:left'>node</th><th>kind</th><th>frequency</th>"
        "<th>availability</th><th>warm-up</th><th>hash</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return head + table
