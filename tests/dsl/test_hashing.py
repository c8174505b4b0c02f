"""Canonical hashing: cosmetic variants equal, semantic variants differ, features hash by definition."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsl import Catalog, MissingPolicy, Normalize, Winsorize, check
from dsl.hashing import canonical_form, node_hash

from .conftest import CATALOG, FEATURES, make_catalog

ROOT = Path(__file__).resolve().parents[2]


def h(text: str, catalog: Catalog = CATALOG, **kw) -> str:
    return check(text, catalog, **kw).hash


def test_hash_is_sha256_of_the_documented_canonical_form():
    expected = hashlib.sha256(b'["const",1,[["value",60]],[]]').hexdigest()
    assert canonical_form("const", 1, (("value", 60.0),), ()) == '["const",1,[["value",60]],[]]'
    assert node_hash("const", 1, (("value", 60.0),), ()) == expected
    leaf = hashlib.sha256(b'["column",1,[["dataset_id","SPX"],["column","close"]],[]]').hexdigest()
    assert h("SPX.close") == leaf
    assert h("SPX_PRICES.close") == leaf


COSMETIC = [
    (
        "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high",
        "  ZSCORE( LAG(cta_flow , 1) , 60 )>0 and not vix_high ",
    ),
    (
        "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high",
        "=((zscore((lag((cta_flow),1)),60)) > (0)) AND (NOT (vix_high))",
    ),
    (
        "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high",
        "zscore(lag(cta_flow,1),60)\n>\t0\u00a0And\r\nNot vix_high",
    ),
    ("SPX.close == SPX.open", "SPX.close = SPX.open"),
    ("SPX.close != SPX.open", "SPX.close <> SPX.open"),
    ("SPX.close > 1", "=SPX.close > 1"),
    ('to_daily(ES.close, how="sum")', "to_daily(ES.close, how=\u201csum\u201d)"),
    ('to_daily(ES.close, how="sum")', "to_daily(ES.close, 'SUM')"),
    ("to_daily(ES.close)", 'to_daily(ES.close, how="last")'),
    ("mean(SPX.close, 60)", "mean(SPX.close, 60.0)"),
    ("mean(SPX.close, 60)", "mean(SPX.close, 6e1)"),
    ("quantile(SPX.close, 20, 0.5)", "quantile(SPX.close, 20, .5)"),
    ("quantile(SPX.close, 20, 0.5)", "ts_quantile(SPX.close, 20, q=5e-1)"),
    ("mean(SPX.close, 20)", "ts_mean(SPX.close, n=20)"),
    ("lag(SPX.close, 1)", "lag(SPX.close)"),
    ("lag(SPX.close, 1)", "delay(SPX.close, k=1)"),
    ("diff(SPX.close, 1)", "delta(SPX.close)"),
    ("ema(SPX.close, 20)", "ema(SPX.close, span=20)"),
    ("if(vix_high, 1, 0)", "where(vix_high, 1, 0)"),
    ("SPX.close - 1", "SPX_PRICES.close - 1"),
    ("realized_vol(spx_ret, 20)", "realized_vol(spx_ret, 20, annualize=true, periods_per_year=252)"),
    ("realized_vol(spx_ret, 20, annualize=false)", "realized_vol(spx_ret, 20, periods_per_year=1)"),
    ("-5 + SPX.close", "(-5) + SPX.close"),
    ("cta_flow > spx_ret", "{primary} > {secondary}"),
]


@pytest.mark.parametrize(("a", "b"), COSMETIC)
def test_cosmetic_variants_hash_equal(a, b):
    slots = {"primary": "cta_flow", "secondary": "spx_ret"}
    assert h(a, slots=slots) == h(b, slots=slots)


SEMANTIC = [
    ("mean(SPX.close, 20)", "mean(SPX.close, 21)"),
    ("mean(SPX.close, 20)", "mean(VIX.close, 20)"),
    ("mean(SPX.close, 20)", "sum(SPX.close, 20)"),
    ("SPX.close - SPX.open", "SPX.open - SPX.close"),
    ("SPX.close + SPX.open", "SPX.open + SPX.close"),  # commutative operators are not reordered
    ("SPX.close > 1", "SPX.close >= 1"),
    ("lag(SPX.close, 1)", "lag(SPX.close, 2)"),
    ("SPX.close > 1", "SPX.close > 1.5"),
    ("fill(vix_high, false)", "fill(vix_high, true)"),
    ("mean(SPX.close, $n)", "mean(SPX.close, $m)"),
    ("mean(SPX.close, $n)", "mean(SPX.close, 20)"),
    ("to_daily(ES.close)", "to_daily(ES.close, 'first')"),
    ("cta_flow", "CTA.cta_flow"),  # the feature node is its own node
    ("ffill(SPX.close)", "ffill(SPX.close, 5)"),
    ("1", "true"),
]


@pytest.mark.parametrize(("a", "b"), SEMANTIC)
def test_semantic_variants_hash_differently(a, b):
    params = {"n": 20, "m": 20}
    assert h(a, params=params) != h(b, params=params)


def test_top_level_params_hash_by_name_feature_params_by_value():
    assert h("mean(SPX.close, $n)", params={"n": 20}) == h("mean(SPX.close, $n)", params={"n": 30})
    assert h("SPX.close > $z", params={"z": 1}) == h("SPX.close > $z", params={"z": 2.5})
    bumped = dataclasses.replace(next(f for f in FEATURES if f.name == "vix_high"), params={"threshold": 30})
    assert h("NOT vix_high") != h("NOT vix_high", make_catalog(bumped))


def _edit(name: str, **changes) -> Catalog:
    fd = next(f for f in FEATURES if f.name == name)
    return make_catalog(dataclasses.replace(fd, **changes))


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("vix_high", {"expression": "x >= $threshold"}),
        ("vix_high", {"lag_days": 2}),
        ("vix_high", {"params": {"threshold": 26}}),
        ("vix_high", {"missing_policy": MissingPolicy("zero")}),
        ("vix_high", {"input_column": "SPX.close"}),
        ("vix_high", {"availability_lag_override": 0}),
        ("vix", {"winsorize": Winsorize(20, 3)}),
        ("vix", {"normalize": Normalize("rank", 20)}),
    ],
)
def test_editing_a_feature_changes_every_dependent(name, changes):
    edited = _edit(name, **changes)
    # calm = NOT vix_high (a gate over the feature); risk_off = vix > 30 (a gate over vix)
    dependents = {
        "vix_high": ("vix_high", "calm", "NOT calm", "risk_off OR calm"),
        "vix": ("vix", "risk_off"),
    }
    for text in dependents[name]:
        assert h(text) != h(text, edited)
    independent = {"vix_high": "risk_off", "vix": "calm"}[name]
    assert h(independent) == h(independent, edited)


def test_editing_an_unrelated_feature_changes_nothing():
    edited = _edit("spx_ret", expression="pct_change(x, 2)")
    assert h("NOT calm") == h("NOT calm", edited)
    assert h("combo") != h("combo", edited)


def test_hash_consing_one_node_per_subexpression():
    g = check("mean(SPX.close,5) + mean(SPX.close,5)", CATALOG)
    assert [n.op for n in g.nodes] == ["column", "mean", "add"]
    mean = g.nodes[1]
    assert g.root_node.children == (mean.hash, mean.hash)
    assert len(g.edges) == 3
    g = check("zscore(cta_flow, 20) - zscore(CTA.cta_flow, 20) + combo", CATALOG)
    assert sum(1 for n in g.nodes if n.op == "column" and dict(n.args)["column"] == "cta_flow") == 1


_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from dsl import check
from dsl_conftest_copy import CATALOG
print(json.dumps([check(t, CATALOG).hash for t in {texts!r}]))
"""


def test_hashes_are_stable_across_processes(tmp_path):
    texts = ["zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high", "combo", "to_daily(ES.close, 'sum')", "vix_z"]
    (tmp_path / "dsl_conftest_copy.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    script = _SCRIPT.format(root=str(ROOT), tests=str(tmp_path), texts=texts)
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == [h(t) for t in texts]
