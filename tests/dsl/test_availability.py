"""Availability: the no-lookahead guarantee, traced through features, engineered features and gates.

Every expected number is hand-derived from the lags in conftest.py (see its docstring).
"""

from __future__ import annotations

import pytest

from dsl import DslError, Execution, Frequency, Origin, check

from .conftest import CATALOG, feat, make_catalog

CLOSE, NEXT_OPEN, NEXT_CLOSE, CUSTOM = (
    Execution.CLOSE,
    Execution.NEXT_OPEN,
    Execution.NEXT_CLOSE,
    Execution.CUSTOM,
)
CELL = Origin("STRATEGIES", "H5", "gate_expr")


def decide(text, execution=CLOSE, catalog=CATALOG, **kw):
    return check(text, catalog, decision=True, execution=execution, origin=CELL, **kw)


def refuse(text, execution=CLOSE, catalog=CATALOG, **kw) -> DslError:
    with pytest.raises(DslError) as info:
        decide(text, execution, catalog, **kw)
    assert info.value.code == "availability"
    return info.value


# -- the headline example ----------------------------------------------------------------------------------


def test_headline_expression_is_accepted_at_the_close():
    g = decide("zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high")
    assert g.availability == 0
    assert g.execution is CLOSE


def test_headline_without_lag_names_source_cell_fix_and_caret():
    text = "zscore(cta_flow,60) > 0 AND NOT vix_high"
    err = refuse(text)
    assert "cta_flow" in err.message
    assert "DATASETS!J4" in err.message
    assert "CTA.cta_flow" in err.message
    assert err.fix.startswith("write lag(cta_flow, 1)")
    assert err.column == 7 and err.span.end == 15  # under `cta_flow`
    rendered = err.render()
    assert rendered.splitlines()[2] == "    " + " " * 7 + "^" * 8
    assert "write lag(cta_flow, 1)" in rendered


# -- execution timing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("execution", "accepted"), [(CLOSE, False), (NEXT_OPEN, True), (NEXT_CLOSE, True), (CUSTOM, True)]
)
def test_close_price_is_tradeable_from_the_next_session(execution, accepted):
    if accepted:
        assert decide("SPX.close > 0", execution).availability == 1  # still owes 1, paid by the shift
    else:
        err = refuse("SPX.close > 0", execution)
        assert "DATASETS!J2" in err.message and err.column == 0


def test_yesterday_close_is_fine_at_the_close():
    assert decide("SPX.close > lag(SPX.close, 1)", NEXT_OPEN).availability == 1
    refuse("SPX.close > lag(SPX.close, 1)", CLOSE)
    assert decide("lag(SPX.close, 1) > lag(SPX.close, 2)", CLOSE).availability == 0


def test_slow_source_needs_the_full_lag_and_the_fix_says_the_total():
    # MACRO.claims has A = 3; lag 1 leaves 2 owed at the close, 1 at the next open.
    err = refuse("lag(claims, 1) > 0", CLOSE)
    assert "DATASETS!J6" in err.message and "lagged by 2 more trading days" in err.message
    assert "3 trading days after its date" in err.message
    assert (
        err.fix
        == "lag claims by 3 in total (it is lagged by 1 now), e.g. lag(claims, 3), or execute at the next open"
    )
    assert err.edit.apply("lag(claims, 1) > 0") == "lag(claims, 3) > 0"  # the 1 is raised, not wrapped
    err = refuse("lag(claims, 1) > 0", NEXT_OPEN)
    assert err.fix == "lag claims by 2 in total (it is lagged by 1 now), e.g. lag(claims, 2)"
    assert decide("lag(claims, 3) > 0", CLOSE).availability == 0
    assert decide("lag(claims, 2) > 0", NEXT_CLOSE).availability == 1


def test_non_decisions_are_not_availability_checked():
    g = check("SPX.close > 0", CATALOG)
    assert g.availability == 1 and g.execution is None


# -- tracing through features, engineered features and gates -------------------------------------------------


def test_feature_lag_days_pays_the_lag():
    # vix_high = lag(VIX.close > 25, 1): owes 0
    assert check("vix_high", CATALOG).availability == 0
    assert decide("NOT vix_high").availability == 0


def test_gate_chain_is_named_in_the_message():
    err = refuse("NOT risk_off")
    assert "NOT risk_off -> gate risk_off -> feature vix -> VIX.close" in err.message
    assert "DATASETS!J3" in err.message
    assert err.fix.startswith("write lag(risk_off, 1)")
    assert err.column == 4 and err.span.end == 12


def test_gate_over_lagged_feature_passes():
    assert decide("calm").availability == 0
    assert decide("wide_credit").availability == 0  # credit_spread has lag_days 1


def test_engineered_feature_chain():
    # combo = zscore(cta_flow, 20) - zscore(spx_ret, 20): owes 1 to CTA and to SPX; CTA sorts first.
    err = refuse("combo > 0")
    assert "combo > 0 -> engineered combo -> feature cta_flow -> CTA.cta_flow" in err.message
    assert err.fix.startswith("write lag(combo, 1)")
    assert decide("lag(combo, 1) > 0").availability == 0
    assert decide("credit_spread > 0").availability == 0


def test_residual_traces_every_source_of_the_root():
    g = check("combo + credit_spread", CATALOG)
    owed = {d.source: d.owed for d in g.residual}
    assert owed == {"CTA.cta_flow": 1, "SPX.close": 1, "CREDIT.baa": 0, "CREDIT.aaa": 0}
    paths = {d.source: d.path for d in g.residual}
    assert paths["SPX.close"] == ("engineered combo", "feature spx_ret", "SPX.close")


def test_availability_override_replaces_the_dataset_default():
    assert decide("cta_fast > 0").availability == 0  # FEATURE_LIBRARY override 0
    err = refuse("lag(spx_slow, 1) > 0")  # override 2, lagged 1
    assert "FEATURE_LIBRARY!I9" in err.message and "DATASETS" not in err.message
    assert decide("lag(spx_slow, 1) > 0", NEXT_OPEN).availability == 1


def test_engineered_override_is_a_floor():
    slow = feat(
        "eng_slow",
        "engineered",
        "credit_spread * 2",
        "D9",
        declared_inputs=("credit_spread",),
        availability_lag_override=2,
        availability_origin=Origin("ENGINEERED_FEATURES", "H9"),
    )
    cat = make_catalog(slow)
    assert check("eng_slow", cat).availability == 2
    err = refuse("eng_slow > 0", NEXT_OPEN, cat)
    assert "ENGINEERED_FEATURES!H9" in err.message
    assert decide("lag(eng_slow, 1) > 0", NEXT_OPEN, cat).availability == 1


def test_aliases_are_one_source():
    g = check("SPX_PRICES.close - SPX.close", CATALOG)
    assert [d.source for d in g.residual] == ["SPX.close"]
    assert sum(1 for n in g.nodes if n.op == "column") == 1


def test_first_failing_reference_gets_the_caret():
    err = refuse("lag(SPX.close, 1) > 0 AND cta_flow > 0 AND VIX.close > 0")
    assert err.column == 26  # cta_flow, before VIX.close


def test_negative_lag_is_rejected_as_a_lead():
    with pytest.raises(DslError) as info:
        decide("lag(SPX.close, -1) > SPX.close", NEXT_OPEN)
    assert info.value.code == "lag.negative"
    assert "looks into the future" in info.value.message


def test_negative_lag_days_in_a_feature_is_rejected():
    bad = feat("peek", "feature", "", "F30", input_column="SPX.close", lag_days=-1)
    with pytest.raises(DslError) as info:
        check("peek", make_catalog(bad))
    assert info.value.code == "lag.negative"
    assert info.value.origin == Origin("FEATURE_LIBRARY", "F30", "transform")


# -- grids ---------------------------------------------------------------------------------------------------


def test_asof_aligns_by_availability_not_stamp():
    g = check("asof(mean(SPX.close, 20))", CATALOG)
    assert (g.frequency, g.availability) == (Frequency.MINUTE, 0)
    assert dict(g.root_node.args) == {"sessions": 1}
    assert dict(check("asof(MACRO.claims)", CATALOG).root_node.args) == {"sessions": 3}
    assert dict(check("asof(lag(SPX.close, 1))", CATALOG).root_node.args) == {"sessions": 1}  # max(0, 1)
    assert dict(check("asof(CAL.fomc_day)", CATALOG).root_node.args) == {"sessions": 1}  # max(0, 1)


def test_intraday_decision_needs_the_bar_lag_not_the_daily_one():
    err = refuse("ES.close > asof(SPX.close)")
    assert "ES.close" in err.message and "DATASETS!J8" in err.message and err.column == 0
    g = decide("lag(ES.close, 1) > asof(SPX.close)", frequency=Frequency.MINUTE)
    assert (g.frequency, g.availability) == (Frequency.MINUTE, 0)
    assert decide("ES.close > asof(SPX.close)", NEXT_OPEN).availability == 1


def test_to_daily_is_known_at_the_session_close():
    g = check("to_daily(lag(ES.delta, 5), how='sum')", CATALOG)
    assert (g.frequency, g.availability) == (Frequency.DAILY, 1)
    err = refuse("to_daily(ES.delta, 'sum') > 0")
    assert "ES.delta" in err.message
    assert decide("to_daily(ES.delta, 'sum') > 0", NEXT_OPEN).availability == 1
    assert decide("lag(to_daily(ES.delta, 'sum'), 1) > 0", CLOSE).availability == 0


def test_mixing_daily_and_minute_without_asof_is_rejected():
    with pytest.raises(DslError) as info:
        check("es_delta > lag(cta_flow, 1)", CATALOG)
    assert info.value.code == "frequency.mixed"
    assert "asof(lag(cta_flow, 1))" in info.value.fix
    assert info.value.column == 11


def test_expected_grid_is_enforced():
    assert check("ES.close > 0", CATALOG, frequency=Frequency.MINUTE).frequency is Frequency.MINUTE
    assert check("1 > 0", CATALOG, frequency=Frequency.MINUTE).frequency is Frequency.SCALAR
    with pytest.raises(DslError) as info:
        check("SPX.close > 0", CATALOG, frequency=Frequency.MINUTE)
    assert info.value.code == "frequency.grid" and "asof" in info.value.fix
