"""A reference evaluator of whole graphs, independent of compiler/evaluate.py and both backends.

Walks a checked graph's nodes with the per-operator reference (tests/compiler/reference.py: plain loops,
exact arithmetic) and implements the two grid alignments with plain loops from their definition in
design/DSL.md section 5: `asof(x)` on a bar of session D = the daily value `sessions` trading days before
D; `to_daily(x, how)` on day D = the aggregate of the present values of D's bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dsl import Frequency, Graph, ParamRef
from tests.compiler.reference import REFERENCE

NAN = math.nan


def _ref_options(op: str, opts: dict[str, Any]) -> dict[str, Any]:
    """DSL options -> the reference function's keyword arguments (where they differ)."""
    if op == "realized_vol":
        return {
            "n": opts["n"],
            "periods_per_year": opts["periods_per_year"] if opts.get("annualize", True) else 1.0,
        }
    if op == "availability":
        return {}
    return opts


def reference_asof(daily: list[float], day_of_bar: list[int], sessions: int) -> list[float]:
    out = []
    for d in day_of_bar:
        src = d - sessions
        out.append(daily[src] if src >= 0 else NAN)
    return out


def reference_to_daily(values: list[float], day_of_bar: list[int], n_days: int, how: str) -> list[float]:
    out = []
    for d in range(n_days):
        present = [v for v, b in zip(values, day_of_bar, strict=True) if b == d and v == v]
        if not present:
            out.append(NAN)
        elif how == "last":
            out.append(present[-1])
        elif how == "first":
            out.append(present[0])
        elif how == "sum":
            out.append(math.fsum(present))
        elif how == "mean":
            out.append(math.fsum(present) / len(present))
        elif how == "max":
            out.append(max(present))
        else:
            out.append(min(present))
    return out


def evaluate_reference(
    graph: Graph,
    columns: Mapping[tuple[str, str], np.ndarray],
    *,
    n_daily: int,
    n_minute: int = 0,
    day_of_bar: list[int] | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Every node's values (full grid length; scalars broadcast to their consumer's grid later)."""
    binding = {**dict(graph.params), **dict(params or {})}
    vals: dict[str, Any] = {}
    rows = {Frequency.DAILY: n_daily, Frequency.MINUTE: n_minute}
    from dsl import OPERATORS

    for n in graph.nodes:
        args = dict(n.args)
        opts = {k: (binding[v.name] if isinstance(v, ParamRef) else v) for k, v in n.args}
        if n.op == "column":
            vals[n.hash] = [float(v) for v in columns[(args["dataset_id"], args["column"])]]
            continue
        if n.op == "const":
            v = args["value"]
            vals[n.hash] = NAN if v is None else float(v)
            continue
        if n.op == "param":
            v = binding[str(args["name"])]
            vals[n.hash] = float(v)
            continue
        if n.op == "asof":
            assert day_of_bar is not None
            vals[n.hash] = reference_asof(vals[n.children[0]], day_of_bar, int(args["sessions"]))
            continue
        if n.op == "to_daily":
            assert day_of_bar is not None
            vals[n.hash] = reference_to_daily(
                vals[n.children[0]], day_of_bar, n_daily, str(args.get("how", "last"))
            )
            continue
        declared = {a.name for a in OPERATORS[n.op].args if not a.role.is_operand}
        opts = {k: v for k, v in opts.items() if k in declared}
        length = rows.get(n.frequency, 1)
        kids = [vals[c] if isinstance(vals[c], list) else [vals[c]] * length for c in n.children]
        fn: Callable[..., list[float]] = REFERENCE[n.op]
        out = fn(*kids, **_ref_options(n.op, opts))
        if n.frequency is Frequency.SCALAR:
            vals[n.hash] = out[0]
        else:
            vals[n.hash] = list(out)
    return vals
