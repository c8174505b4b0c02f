"""Warm-up composition, hand-computed: leaf 1; lag k adds k; window n adds n - 1; binary takes the max.

Top-level $params are symbolic in the graph: warm-up is a function of the binding (`warmup(graph,
binding)`), or the maximum over a parameter grid (`max_warmup`); node warm-ups are at the check-time
binding, or at the top of a declared domain.
"""

from __future__ import annotations

import itertools
import math

import pytest

from dsl import (
    OPERATORS,
    ArgRole,
    DslError,
    Execution,
    Frequency,
    ParamDomain,
    check,
    max_warmup,
    max_warmup_needs,
    warmup,
    warmup_needs,
)

from .conftest import CATALOG

CASES = [
    ("SPX.close", 1),
    ("1 + 2", 0),
    ("SPX.close + 1", 1),
    ("lag(SPX.close, 5)", 1 + 5),
    ("lag(SPX.close, 0)", 1),
    ("mean(SPX.close, 20)", 1 + 19),
    ("zscore(lag(SPX.close, 1), 60)", 1 + 1 + 59),
    ("zscore(lag(cta_flow, 1), 60) > 0 AND NOT vix_high", max(1 + 1 + 59, 1 + 1)),
    ("mean(lag(SPX.close, 2), 5)", 1 + 2 + 4),
    ("mean(SPX.close, 10) - lag(SPX.close, 15)", max(10, 16)),
    ("diff(SPX.close, 3)", 1 + 3),
    ("diff(SPX.close)", 1 + 1),
    ("pct_change(SPX.close, 5)", 1 + 5),
    ("corr(mean(SPX.close, 5), lag(VIX.close, 3), 10)", max(5, 4) + 9),
    ("cross_above(SPX.close, mean(SPX.close, 50))", 50 + 1),
    ("ffill(SPX.close, 3)", 1 + 3),
    ("spx_ret", 1 + 1),
    ("zscore(spx_ret, 20)", 2 + 19),
    # vix_z: VIX.close (1) -> lag 1 (2) -> ffill:5 (7) -> winsorize 60 (66) -> zscore 20 (85)
    ("vix_z", 85),
    ("combo", max(1 + 19, 2 + 19)),
    ("count(SPX.close, 7)", 7),
    ("quantile(SPX.close, 30, 0.5) + ts_max(SPX.close, 40)", 40),
    ("ema(SPX.close, 1)", 1),
]


@pytest.mark.parametrize(("text", "warmup"), CASES)
def test_warmup_composes(text, warmup):
    g = check(text, CATALOG)
    assert g.warmup == warmup
    assert not g.stateful


def test_ema_warmup_rule():
    alpha = 2 / 21
    extra = math.ceil(math.log(1e-6) / math.log(1 - alpha))
    assert extra == 139
    assert (1 - alpha) ** extra < 1e-6 <= (1 - alpha) ** (extra - 1)
    assert check("ema(SPX.close, 20)", CATALOG).warmup == 1 + 19 + 139
    assert check("ema(lag(SPX.close, 2), span=20)", CATALOG).warmup == 3 + 19 + 139


def test_window_params_warmup_per_binding():
    # a graph's own node warm-up is at its check-time binding ...
    g30 = check("mean(SPX.close, $n)", CATALOG, params={"n": 30})
    g5 = check("mean(SPX.close, $n)", CATALOG, params={"n": 5})
    assert g30.warmup == 30 and g5.warmup == 5
    # ... but the graph itself is one graph: same hash, same node args (the value is not baked in)
    assert g30.hash == g5.hash
    assert [(n.op, n.args) for n in g30.nodes] == [(n.op, n.args) for n in g5.nodes]
    # and the warm-up of any binding comes from the graph: 1 (leaf) + n - 1
    assert warmup(g30, {"n": 5}) == 5 and warmup(g5, {"n": 30}) == 30
    assert warmup(g5, {"n": 300}) == 300


def test_symbolic_params_by_domain_hand_computed():
    doms = {"a": ParamDomain("int", 2, 10), "b": ParamDomain("int", 5, 60)}
    text = "zscore(mean(SPX.close, $a), $b)"
    g = check(text, CATALOG, domains=doms)  # no bound value at all: accepted, symbolic
    assert g.params == () and dict(g.domains) == doms
    # at a=5, b=20: leaf 1 + (5 - 1) + (20 - 1) = 24 rows, i.e. 23 extra rows before the first value
    assert warmup(g, {"a": 5, "b": 20}) == 1 + 4 + 19 == 24
    # node warm-ups sit at the top of the domain: 1 + 9 + 59
    assert g.warmup == 69 == max_warmup(g)
    # the maximum over a grid, hand-computed (a=7, b=20), equals brute force over the product
    grid = {"a": [3, 7], "b": [10, 20]}
    assert max_warmup(g, grid) == 1 + 6 + 19
    assert max_warmup(g, grid) == max(
        warmup(g, {"a": a, "b": b}) for a, b in itertools.product(*grid.values())
    )
    assert g.hash == check(text, CATALOG, params={"a": 5, "b": 20}).hash
    with pytest.raises(KeyError, match=r"\$b"):
        warmup(g, {"a": 5})


def test_max_warmup_across_grids_and_params():
    g = check("ES.close > asof(mean(SPX.close, $w))", CATALOG, domains={"w": ParamDomain("int", 5, 40)})
    # daily side: 1 + (w - 1) + s with s = 1 session; minute side: 1 bar
    assert warmup_needs(g, {"w": 10}) == {Frequency.DAILY: 10 + 1, Frequency.MINUTE: 1}
    assert max_warmup_needs(g) == {Frequency.DAILY: 40 + 1, Frequency.MINUTE: 1}
    e = check("ema(SPX.close, $s) + lag(SPX.close, $k)", CATALOG, params={"s": 20, "k": 3})
    assert warmup(e) == 1 + 19 + 139  # its own binding by default
    assert warmup(e, {"s": 1, "k": 3}) == 1 + 3
    assert max_warmup(e, {"s": [1, 20], "k": range(0, 200)}) == 1 + 199


def test_param_domain_is_checked_over_its_whole_range():
    def err(text, **doms):
        with pytest.raises(DslError) as info:
            check(text, CATALOG, domains=doms)
        return info.value

    e = err("std(SPX.close, $n)", n=ParamDomain("int", 1, 50))
    assert e.code == "window.range" and "at least 2 for every value of $n" in e.message
    assert e.span is not None and "std(SPX.close, $n)"[e.span.start : e.span.end] == "$n"
    assert err("mean(SPX.close, $n)", n=ParamDomain("float", 2, 50)).code == "param.type"
    assert err("lag(SPX.close, $k)", k=ParamDomain("int", -1, 5)).code == "lag.negative"
    assert err("quantile(SPX.close, 20, $q)", q=ParamDomain("float", 0.1, 1.5)).code == "arg.range"
    assert err("realized_vol(SPX.close, 20, annualize=$a)", a=ParamDomain("int", 0, 1)).code == "param.type"
    # a domain that fits is accepted; a bound value is still checked as before
    check("std(SPX.close, $n)", CATALOG, domains={"n": ParamDomain("int", 2, 50)})
    with pytest.raises(DslError) as info:
        check("std(SPX.close, $n)", CATALOG, params={"n": 1})
    assert info.value.code == "window.range"
    # with neither a value nor a domain the param is refused, naming both ways to declare it
    with pytest.raises(DslError) as info:
        check("std(SPX.close, $n)", CATALOG)
    assert info.value.code == "param.unbound" and "OPTIMIZATION_PARAMS" in (info.value.fix or "")


def test_symbolic_lag_pays_availability_for_every_binding():
    """A decision must be in time for every value of $k: the debt is paid by the domain's low."""
    ok = check("lag(VIX.close, $k) > 20", CATALOG, domains={"k": ParamDomain("int", 1, 5)}, decision=True)
    assert ok.availability == 0
    with pytest.raises(DslError) as info:
        check("lag(VIX.close, $k) > 20", CATALOG, domains={"k": ParamDomain("int", 0, 5)}, decision=True)
    assert info.value.code == "availability"
    check(
        "lag(VIX.close, $k) > 20",
        CATALOG,
        domains={"k": ParamDomain("int", 0, 5)},
        decision=True,
        execution=Execution.NEXT_OPEN,
    )


@pytest.mark.parametrize(("text", "warmup_rows"), CASES)
def test_warmup_of_the_graph_is_the_nodes_warmup(text, warmup_rows):
    """One rule: recomputing from the graph at its own binding gives what the checker recorded."""
    g = check(text, CATALOG)
    assert warmup(g) == warmup_rows == g.warmup
    assert warmup_needs(g) == g.warmup_by_frequency


def test_every_history_rule_is_monotone():
    """max_warmup takes per-node maxima: exact only because no history shrinks as an argument grows."""
    for spec in OPERATORS.values():
        if spec.history is None:
            continue
        base = {a.name: (a.default if not a.required else None) for a in spec.args if not a.role.is_operand}
        ints = [a.name for a in spec.args if a.role in (ArgRole.WINDOW, ArgRole.LAG)]
        for name in ints:
            prev = -1
            for v in range(int(next(a for a in spec.args if a.name == name).minimum or 0), 400):
                args = {**{k: (2 if k in ints else 0.5) for k in base}, **{name: v}}
                h = spec.history(args)
                assert h is not None and h >= prev, (spec.name, name, v)
                prev = h


@pytest.mark.parametrize(
    "text",
    ["bars_since(vix_high)", "hold(vix_high, 1, calm)", "ffill(SPX.close)", "mean(bars_since(calm), 5) > 1"],
)
def test_stateful_operators_mark_the_graph(text):
    g = check(text, CATALOG)
    assert g.stateful
    assert g.root_node.stateful


def test_stateful_node_flag_is_local_to_its_ancestors():
    g = check("bars_since(vix_high) + mean(SPX.close, 5)", CATALOG)
    mean = next(n for n in g.nodes if n.op == "mean")
    assert not mean.stateful
    assert next(n for n in g.nodes if n.op == "bars_since").stateful


def test_warmup_per_grid_across_alignment():
    g = check("ES.close > asof(mean(SPX.close, 20))", CATALOG)
    assert g.warmup == 1
    assert g.warmup_by_frequency == {Frequency.DAILY: 20 + 1, Frequency.MINUTE: 1}
    g = check("mean(to_daily(mean(ES.close, 30)), 5)", CATALOG)
    assert g.warmup == 5
    assert g.warmup_by_frequency == {Frequency.DAILY: 5, Frequency.MINUTE: 30}
    g = check("asof(lag(MACRO.claims, 1))", CATALOG)  # owes 2, so sessions = 2; daily rows 2 + 2
    assert g.warmup_by_frequency == {Frequency.DAILY: 4, Frequency.MINUTE: 1}
    for g in (
        check("ES.close > asof(mean(SPX.close, 20))", CATALOG),
        check("mean(to_daily(mean(ES.close, 30)), 5)", CATALOG),
        check("asof(lag(MACRO.claims, 1))", CATALOG),
    ):
        assert warmup_needs(g) == g.warmup_by_frequency
