"""Rich renderings of evaluations for the CLI (`backtest eval`, `features build|show`): pure, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from runtime.evaluation.run import EvalResult, FeatureBuild


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "missing"
    return f"{v:.6g}"


def values_table(res: EvalResult, head: int = 5, tail: int = 5, title: str | None = None) -> Table:
    """The first `head` and last `tail` output rows (date or UTC ts, value)."""
    ev = res.evaluation
    daily = ev.grid.frequency.value == "daily"
    t = Table(title=title, title_justify="left")
    t.add_column("date" if daily else "ts (UTC)")
    t.add_column("value", justify="right")
    n = len(ev.values)
    idx = ev.index
    rows = list(range(n)) if n <= head + tail else [*range(head), -1, *range(n - tail, n)]
    for i in rows:
        if i < 0:
            t.add_row("…", f"({n - head - tail:,} rows)")
            continue
        stamp = str(idx[i].astype("datetime64[D]" if daily else "datetime64[m]")).replace("T", " ")
        t.add_row(stamp, _fmt(float(ev.values[i])))
    return t


def summary_lines(res: EvalResult) -> list[str]:
    """Rows, missing, range, where each node ran, time and cache hits, then the notes."""
    ev = res.evaluation
    by: Counter[str] = Counter()
    for r in ev.nodes:
        if r.cached:
            by["cache"] += 1
        elif r.backend is not None:
            by[str(r.backend)] += 1
    where = ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "no computed node"
    first, last = (ev.index[0], ev.index[-1]) if len(ev.index) else (None, None)
    lines = [
        f"{len(ev.values):,} rows on {ev.grid.name} {first}..{last} (+{ev.grid.start:,} warm-up rows), "
        f"{ev.missing:,} missing",
        f"backend {ev.backend}: nodes computed by {where}; {ev.cache_hits} cache hit(s); {ev.seconds:.2f} s",
    ]
    lines += [f"note: {n}" for n in res.notes]
    lines += [f"cache: {p}" for p in ev.cache_problems]
    return lines


def nodes_table(res: EvalResult) -> Table:
    """Every node: operator, label, where it was computed or that it came from the cache, time."""
    t = Table(title="nodes", title_justify="left")
    for c in ("node", "backend", "seconds"):
        t.add_column(c, justify="right" if c == "seconds" else "left")
    for r in res.evaluation.nodes:
        how = "cache" if r.cached else (str(r.backend) if r.backend else "-")
        if r.stored:
            how += " (stored)"
        t.add_row(r.label, how, f"{r.seconds:.3f}")
    return t


def builds_table(builds: Sequence[FeatureBuild]) -> Table:
    t = Table(title="features", title_justify="left")
    for c in ("feature", "sheet", "grid", "rows", "missing", "status", "seconds"):
        t.add_column(c, justify="right" if c in ("rows", "missing", "seconds") else "left")
    for b in builds:
        t.add_row(
            b.feature_id,
            b.sheet,
            b.grid,
            f"{b.rows:,}",
            f"{b.missing:,}",
            "cached" if b.cached else "computed",
            f"{b.seconds:.2f}",
        )
    return t


def plan_table(plan: Any, graph: Any) -> Table:
    """`compile --format plan`: the backend of every node with the reason, and the transfers."""
    t = Table(title=f"plan of {graph.canonical}", title_justify="left")
    for c in ("node", "op", "backend", "stage", "reason"):
        t.add_column(c)
    for s in plan.steps:
        n = graph.find(s.node)
        t.add_row(n.label, s.op, str(s.backend), str(s.stage), s.reason)
    return t
