"""The Graph API and check_catalog: structure, views, and collection of every error."""

from __future__ import annotations

import json

import pytest

from dsl import DslError, Frequency, Kind, MissingPolicy, Origin, check, check_catalog

from .conftest import CATALOG, feat, make_catalog

HEADLINE = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"


@pytest.fixture(scope="module")
def graph():
    return check(HEADLINE, CATALOG, decision=True)


def test_nodes_are_topological_and_edges_match_children(graph):
    position = {n.hash: i for i, n in enumerate(graph.nodes)}
    for parent, child in graph.edges:
        assert position[child] < position[parent]
    assert graph.nodes[-1].hash == graph.root == graph.hash
    assert len(graph.hash) == 64
    # hand count: column, feature cta_flow, lag, zscore, const 0, gt, column VIX, const 25, gt, lag,
    # feature vix_high, not, and
    assert len(graph.nodes) == 13
    assert [n.op for n in graph.nodes].count("feature") == 2


def test_find_by_full_or_short_hash(graph):
    zscore = next(n for n in graph.nodes if n.op == "zscore")
    assert graph.find(zscore.hash) is zscore
    assert graph.find(zscore.short) is zscore
    assert zscore.hash in graph
    with pytest.raises(KeyError):
        graph.find("not-a-hash")


def test_root_properties(graph):
    assert (graph.kind, graph.frequency, graph.availability, graph.warmup) == (
        Kind.BOOL,
        Frequency.DAILY,
        0,
        61,
    )
    assert graph.canonical == "zscore(lag(cta_flow, 1), 60) > 0 AND NOT vix_high"
    assert not graph.stateful


def test_node_spans_point_into_the_checked_text(graph):
    zscore = next(n for n in graph.nodes if n.op == "zscore")
    (span,) = zscore.spans
    assert HEADLINE[span.start : span.end] == "zscore(lag(cta_flow,1),60)"


def test_to_dict_is_json_and_complete(graph):
    d = json.loads(json.dumps(graph.to_dict()))
    assert d["hash"] == graph.hash
    assert (d["kind"], d["frequency"], d["availability"], d["warmup"]) == ("bool", "daily", 0, 61)
    assert d["canonical"] == graph.canonical
    assert len(d["nodes"]) == 13
    zscore = next(n for n in d["nodes"] if n["op"] == "zscore")
    assert zscore["args"] == {"n": 60}
    assert set(zscore) >= {"hash", "op", "kind", "frequency", "availability", "warmup", "children", "args"}


def test_params_appear_symbolically_in_to_dict():
    g = check("mean(SPX.close, $n) > $z", CATALOG, params={"n": 20, "z": 1.5, "unused": 3})
    d = g.to_dict()
    assert d["params"] == {"n": 20, "z": 1.5}
    mean = next(n for n in d["nodes"] if n["op"] == "mean")
    assert mean["args"] == {"n": "$n"}
    assert mean["warmup"] == 20


def test_render_tree(graph):
    lines = graph.render_tree().splitlines()
    assert lines[0].startswith("AND  : bool, daily, availability 0, warm-up 61 [")
    assert lines[0].endswith(f"[{graph.hash[:8]}]")
    assert any(
        line.startswith("    zscore n=60  : float, daily, availability 0, warm-up 61") for line in lines
    )
    assert any(
        line.strip().startswith("CTA.cta_flow  : float, daily, availability 1, warm-up 1") for line in lines
    )


def test_render_tree_marks_shared_nodes():
    g = check("mean(SPX.close, 5) + mean(SPX.close, 5)", CATALOG)
    text = g.render_tree()
    assert text.count("mean n=5  :") == 1
    assert "(shared, see above)" in text


def test_dot_and_html(graph):
    dot = graph.to_dot()
    assert dot.startswith("digraph dsl {") and dot.rstrip().endswith("}")
    assert dot.count("->") == len(graph.edges)
    html = graph._repr_html_()
    assert html.count("<tr>") == 1 + len(list(graph.render_tree().splitlines()))
    assert "<script" not in html and "http" not in html
    assert "zscore n=60" in html


# -- check_catalog ---------------------------------------------------------------------------------------


def test_check_catalog_on_a_clean_catalog():
    graphs, errors = check_catalog(CATALOG)
    assert errors == []
    enabled = {n for n, f in CATALOG.features.items() if f.enabled}
    assert set(graphs) == enabled
    g = graphs["vix_z"]
    assert [n.op for n in g.nodes] == ["column", "lag", "ffill", "winsorize", "zscore", "feature"]
    assert g.root_node.label == "feature vix_z"
    assert g.warmup == 85
    assert graphs["calm"].kind is Kind.BOOL


def test_check_catalog_collects_every_error():
    extra = [
        feat("typo", "feature", "mean(x, 2.5)", "F20", input_column="SPX.close"),
        feat("loop_a", "feature", "loop_b + 1", "F21"),
        feat("loop_b", "engineered", "loop_a * 2", "D21"),
        feat("sneaky", "engineered", "cta_flow + vix", "D22", declared_inputs=("cta_flow", "ghost")),
        feat("not_bool", "gate", "vix + 1", "B22"),
        feat("bad_policy", "feature", "1 + 2", "F23", missing_policy=MissingPolicy("ffill", 3)),
        feat("uses_off", "feature", "old_signal + x", "F24", input_column="SPX.close"),
        feat("no_input", "feature", "", "F25", input_column="SPX.clse"),
    ]
    graphs, errors = check_catalog(make_catalog(*extra))
    by_code = {}
    for e in errors:
        by_code.setdefault(e.code, []).append(e)
    assert set(by_code) == {
        "window.integer",
        "feature.cycle",
        "feature.unknown_input",
        "feature.undeclared_input",
        "type.gate",
        "feature.missing_policy",
        "name.disabled",
        "name.input_column",
    }
    cycle = by_code["feature.cycle"][0]
    assert (
        "loop_a (FEATURE_LIBRARY!F21:transform) -> loop_b (ENGINEERED_FEATURES!D21:combine_transform)"
        in cycle.message
    )
    # loop_a is checked first, so the cycle closes in loop_b's expression
    assert cycle.message.endswith("-> loop_a (FEATURE_LIBRARY!F21:transform)")
    assert cycle.origin == Origin("ENGINEERED_FEATURES", "D21", "combine_transform")
    assert len(by_code["feature.cycle"]) == 1  # reported once, not once per member
    undeclared = by_code["feature.undeclared_input"][0]
    assert "'vix'" in undeclared.message and undeclared.fix == "add 'vix' to input_feature_ids of 'sneaky'"
    assert undeclared.column == 11
    assert "'ghost'" in by_code["feature.unknown_input"][0].message
    assert "did you mean 'SPX.close'" in by_code["name.input_column"][0].message
    assert by_code["name.disabled"][0].origin == Origin("FEATURE_LIBRARY", "F24", "transform")
    # healthy features still get graphs
    assert "vix_high" in graphs and "typo" not in graphs


def test_cycle_reported_where_it_closes():
    cat = make_catalog(
        feat("loop_a", "feature", "loop_b + 1", "F21"), feat("loop_b", "engineered", "loop_a * 2", "D21")
    )
    with pytest.raises(DslError) as info:
        check("loop_a > 0", cat)
    err = info.value
    assert err.code == "feature.cycle"
    assert err.origin == Origin("ENGINEERED_FEATURES", "D21", "combine_transform")
    assert err.text == "loop_a * 2" and err.column == 0
    assert (
        "loop_a (FEATURE_LIBRARY!F21:transform) -> loop_b (ENGINEERED_FEATURES!D21:combine_transform) -> loop_a"
        in err.message
    )


def test_errors_inside_a_feature_point_at_the_feature_cell():
    cat = make_catalog(feat("typo", "feature", "mean(x, 2.5)", "F20", input_column="SPX.close"))
    with pytest.raises(DslError) as info:
        check("typo > 0", cat)
    assert info.value.origin == Origin("FEATURE_LIBRARY", "F20", "transform")
    assert info.value.column == 8
    assert info.value.render().startswith("FEATURE_LIBRARY!F20:transform: the window n of mean()")


def test_residual_json_names_the_grid_and_the_real_source_of_a_debt():
    g = check('to_daily(ES.delta, how="sum") + SPX.close', CATALOG)
    residual = {r["source"]: r for r in g.to_dict()["nodes"][-1]["residual"]}
    assert residual["SPX.close"] == {
        "source": "SPX.close",
        "owed": 1,
        "grid": "daily",
        "set_by": "DATASETS!J2",
        "path": ["SPX.close"],
    }
    assert residual["ES.delta"]["grid"] == "daily"  # the aggregate's debt, counted in sessions
    assert residual["ES.delta"]["set_by"].startswith("to_daily")  # not the 1m dataset's lag cell J8
    bars = check("ES.delta * 2", CATALOG).to_dict()["nodes"][-1]["residual"]
    assert [(r["grid"], r["set_by"]) for r in bars] == [("1m", "DATASETS!J8")]
