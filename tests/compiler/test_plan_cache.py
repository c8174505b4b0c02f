"""Compiler scaffolding the backends rely on: the backend plan and feature-cache keys."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

import dsl
from compiler import LAYOUT, Backend, Transfer, cache_key, data_sources, plan_graph
from compiler.backends import backends_of, implementations

IBIS, NUMBA = Backend.IBIS, Backend.NUMBA

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
    assert by_op["column"].backend is IBIS
    assert by_op["zscore"].backend is NUMBA and by_op["lag"].backend is NUMBA
    lt = next(s for s in p.steps if s.op == "lt")
    # VIX.close < 25 reads only source columns (in memory for both backends): it goes where the work is
    assert lt.backend is NUMBA
    assert p.transfers == 0  # source columns are handed to both backends; everything else is on Numba
    a = dsl.check("ES.close > asof(SPX.close)", CAT, frequency=M)
    pa_ = plan_graph(a)
    asof_node = next(n.hash for n in a.nodes if n.op == "asof")
    assert pa_.backend_of(asof_node) is IBIS  # alignment of a source: a DuckDB join of the grid tables
    assert pa_.backend_of(a.hash) is IBIS  # elementwise on a DuckDB input and a source: stays in DuckDB
    b = dsl.check("ES.close > asof(mean(SPX.close, 20))", CAT, frequency=M)
    pb = plan_graph(b)
    assert pb.backend_of(next(n.hash for n in b.nodes if n.op == "asof")) is NUMBA  # follows its input
    assert pb.transfers == 0
    # forced modes: everything on one backend (the recursive ema too: it has an SQL closed form)
    e = dsl.check("ema(CTA.flow, 10) > mean(CTA.flow, 5)", CAT)
    pe = plan_graph(e, mode="ibis")
    assert all(s.backend is IBIS for s in pe.steps) and pe.transfers == 0
    assert all(s.backend is NUMBA for s in plan_graph(e, mode="numba").steps if s.op != "column")
    # auto: recursive work goes to the preferred backend, Numba by default (the faster one)
    ema = next(n.hash for n in e.nodes if n.op == "ema")
    assert plan_graph(e).backend_of(ema) is NUMBA
    s = dsl.check("bars_since(CTA.flow > 0)", CAT)
    assert plan_graph(s).backend_of(s.hash) is NUMBA
    assert plan_graph(s, prefer="ibis").backend_of(s.hash) is IBIS  # both implement it
    # an operator only one backend implements stays there under a forced mode, its transfer shown
    impl = dict(implementations())
    impl[IBIS] = impl[IBIS] - {"ema"}
    by_e = {s.op: s for s in plan_graph(e, implementations=impl, mode="ibis").steps}
    assert by_e["ema"].backend is NUMBA and by_e["mean"].backend is IBIS and by_e["gt"].backend is IBIS
    assert by_e["gt"].transfers == (Transfer(ema, NUMBA, IBIS),)


def test_plan_reads_registries_not_names() -> None:
    """The planner follows the implementations it is given: take mean out of Numba and it moves."""
    g = dsl.check("mean(CTA.flow, 5) > 0", CAT)
    mean = next(n.hash for n in g.nodes if n.op == "mean")
    impl = dict(implementations())
    assert plan_graph(g, implementations=impl).backend_of(mean) is NUMBA
    impl[NUMBA] = impl[NUMBA] - {"mean"}
    impl[IBIS] = impl[IBIS] | {"mean"}
    p = plan_graph(g, implementations=impl)
    assert p.backend_of(mean) is IBIS and p.step(mean).reason == "only ibis implements mean"
    impl[IBIS] = impl[IBIS] - {"mean"}
    with pytest.raises(ValueError, match="no backend implements 'mean'"):
        plan_graph(g, implementations=impl)


def test_every_operator_has_a_backend_and_registries_are_real() -> None:
    """Completeness (in the spirit of Ibis's ALL_OPERATIONS check): every non-source operator is
    implemented somewhere; the Numba column is exactly its KERNELS; sources are nobody's kernel."""
    import importlib

    from compiler.backends import EVALUATOR_SHAPES, IBIS_REGISTRY_NAMES
    from compiler.numba_backend import EXCEPTIONS, KERNELS

    impl = implementations()
    assert impl[NUMBA] == frozenset(KERNELS)
    declared = set(dsl.OPERATORS)
    for name, spec in dsl.OPERATORS.items():
        if spec.shape in EVALUATOR_SHAPES:
            assert name in EXCEPTIONS  # the evaluator's, with a reason
        else:
            assert backends_of(name), f"{name}: no backend implements it"
    # each backend's registry and its declared exceptions cover every operator, without overlap
    try:
        ibis = importlib.import_module("compiler.ibis_backend")
    except ModuleNotFoundError:
        ibis = None
    regs = [(KERNELS, EXCEPTIONS)]
    if ibis is not None:
        reg = next(getattr(ibis, n) for n in IBIS_REGISTRY_NAMES if hasattr(ibis, n))
        regs.append((reg, ibis.EXCEPTIONS))
        assert impl[IBIS] == frozenset(reg)
    for reg, exc in regs:
        assert set(reg) | set(exc) == declared and not set(reg) & set(exc)
    assert set(backends_of("hold")) == {IBIS, NUMBA}  # the recursive operators have SQL closed forms
    assert set(backends_of("mean")) == {IBIS, NUMBA}


def test_value_layout_is_one_contract() -> None:
    from compiler.numba_backend import LAYOUT as NUMBA_LAYOUT
    from compiler.numba_backend.layout import MISSING

    assert NUMBA_LAYOUT is LAYOUT and MISSING != MISSING  # NaN: the one missing marker in memory
    assert (LAYOUT.true, LAYOUT.false, LAYOUT.sql_missing) == (1.0, 0.0, "NULL")


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


def test_cache_key_uses_the_canonical_value_form() -> None:
    """w=20 and w=20.0 are one node (the hash normalises them), so they must be one cache entry too."""
    g = dsl.check("mean(CTA.flow, $w)", CAT, params={"w": 20})
    assert dsl.check("mean(CTA.flow, $w)", CAT, params={"w": 20.0}).hash == g.hash
    v = {"CTA": "a1"}
    assert cache_key(g, v, params={"w": 20}).digest == cache_key(g, v, params={"w": 20.0}).digest
    assert cache_key(g, v, params={"w": 20}).digest != cache_key(g, v, params={"w": 21}).digest
    z = dsl.check("CTA.flow > $z", CAT, params={"z": 1.5})
    assert cache_key(z, v, params={"z": 1.5}).digest != cache_key(z, v, params={"z": 1.25}).digest
    # true and 1 stay different values (bool is not normalised to int)
    b = dsl.check("if(CTA.flow > 0, $t, 0)", CAT, params={"t": 1})
    assert cache_key(b, v, params={"t": True}).digest != cache_key(b, v, params={"t": 1}).digest


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


def test_one_graph_one_plan_for_every_trial() -> None:
    """A study checks once with the declared domain and reuses the graph and plan; keys are per binding."""
    w = dsl.ParamDomain("int", 5, 300)
    g = dsl.check("zscore(lag(CTA.flow, 1), $w) > 0", CAT, domains={"w": w})
    bound = dsl.check("zscore(lag(CTA.flow, 1), $w) > 0", CAT, params={"w": 20})
    assert g.hash == bound.hash
    assert plan_graph(g).steps == plan_graph(bound).steps
    v = {"CTA": "a1"}
    assert cache_key(g, v, params={"w": 20}).digest == cache_key(bound, v).digest
    assert cache_key(g, v, params={"w": 20}).digest != cache_key(g, v, params={"w": 300}).digest
    with pytest.raises(KeyError, match=r"\$w"):
        cache_key(g, v)  # a symbolic value has no cached numbers
