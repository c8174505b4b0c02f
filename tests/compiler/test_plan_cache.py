"""Compiler scaffolding the backends rely on: the backend plan and feature-cache keys."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

import dsl
from compiler import cache_key, data_sources, plan_graph

D = dsl.Frequency.DAILY
M = dsl.Frequency.MINUTE


def col(name: str, freq=D, lag: int = 1) -> dsl.ColumnDef:
    ds, c = name.split(".")
    return dsl.ColumnDef(name, ds, c, dsl.Kind.FLOAT, freq, lag, dsl.Origin("DATASETS", "J2"))


CAT = dsl.Catalog(
    columns={c.name: c for c in (col("CTA.flow"), col("VIX.close"), col("SPX.close"), col("ES.close", M))},
    features={},
)


def test_plan_rules() -> None:
    g = dsl.check("zscore(lag(CTA.flow, 1), 60) > 0 AND VIX.close < 25", CAT)
    p = plan_graph(g)
    by_op = {s.op: s for s in p.steps}
    assert by_op["column"].backend == "ibis"
    assert by_op["zscore"].backend == "numba" and by_op["lag"].backend == "numba"
    lt = next(s for s in p.steps if s.op == "lt")
    assert lt.backend == "ibis"  # VIX.close < 25: both inputs are DuckDB columns
    # transfers: CTA.flow into the lag kernel, and the (ibis) comparison into the numba AND
    assert p.transfers == 2
    a = dsl.check("ES.close > asof(SPX.close)", CAT, frequency=M)
    assert plan_graph(a).backend_of(next(n.hash for n in a.nodes if n.op == "asof")) == "ibis"
    s = dsl.check("bars_since(CTA.flow > 0)", CAT)
    assert plan_graph(s, prefer="ibis").backend_of(s.hash) == "numba"  # only numba implements it


def test_ibis_stages_nested_windows() -> None:
    g = dsl.check("zscore(lag(CTA.flow, 1), 60) - mean(CTA.flow, 5)", CAT)
    p = plan_graph(g, prefer="ibis")
    stage = {s.op: s.stage for s in p.steps}
    # hand-worked window depth: lag is a window (1), zscore over it another (2), mean over the column (1)
    assert (stage["lag"], stage["zscore"], stage["mean"], stage["sub"]) == (1, 2, 1, 2)


def test_cache_key_depends_on_exactly_what_the_node_reads() -> None:
    g = dsl.check("mean(CTA.flow, $w) > 0 AND VIX.close < 25", CAT, params={"w": 20})
    mean = next(n.hash for n in g.nodes if n.op == "mean")
    assert data_sources(g) == ("CTA", "VIX") and data_sources(g, mean) == ("CTA",)
    v = {"CTA": "a1", "VIX": "b1"}
    k = cache_key(g, v, node_hash=mean, params={"w": 20})
    assert k.data_versions == (("CTA", "a1"),) and k.params == (("w", 20),)
    assert cache_key(g, {**v, "VIX": "b2"}, node_hash=mean, params={"w": 20}).digest == k.digest
    assert cache_key(g, {**v, "CTA": "a2"}, node_hash=mean, params={"w": 20}).digest != k.digest
    assert cache_key(g, v, node_hash=mean, params={"w": 30}).digest != k.digest
    assert cache_key(g, v, node_hash=mean, params={"w": 20}, as_of=dt.date(2018, 1, 2)).digest != k.digest
    assert cache_key(g, v, params={"w": 20}).digest != k.digest  # the root is another node
    with pytest.raises(KeyError, match="VIX"):
        cache_key(g, {"CTA": "a1"})


def test_compiler_never_imports_runtime() -> None:
    root = Path(__file__).resolve().parents[2] / "compiler"
    for py in root.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            assert not any(n == "runtime" or n.startswith("runtime.") for n in names), py
