"""Warm-up composition, hand-computed: leaf 1; lag k adds k; window n adds n - 1; binary takes the max."""

from __future__ import annotations

import math

import pytest

from dsl import Frequency, check

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


def test_window_params_use_the_bound_value():
    assert check("mean(SPX.close, $n)", CATALOG, params={"n": 30}).warmup == 30
    assert check("mean(SPX.close, $n)", CATALOG, params={"n": 5}).warmup == 5


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
