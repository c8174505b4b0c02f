"""At least 60 invalid expressions: each raises DslError with a friendly fragment at a hand-counted column."""

from __future__ import annotations

import pytest

from dsl import DslError, Origin, check

from .conftest import CATALOG

# (text, fragment expected in the rendered error, caret column, extra check() kwargs)
INVALID = [
    # -- syntax -------------------------------------------------------------------------------------------
    ("", "the expression is empty", 0, {}),
    ("   ", "the expression is empty", 0, {}),
    ("=", "the expression is empty", 0, {}),
    ("mean(SPX.close, 20", "missing closing parenthesis", 4, {}),
    ("(SPX.close + 1", "missing closing parenthesis", 0, {}),
    ("(", "missing closing parenthesis", 0, {}),
    ("mean(", "missing closing parenthesis", 4, {}),
    ("mean(SPX.close, 20))", "unexpected `)`", 19, {}),
    ("SPX.close + 1)", "unexpected `)`", 13, {}),
    ("SPX.close >", "`>` needs a value on its right", 10, {}),
    ("> 5", "`>` needs a value on its left", 0, {}),
    ("vix_high AND", "AND needs a value on its right", 9, {}),
    ("vix_high OR", "OR needs a value on its right", 9, {}),
    ("NOT", "NOT needs a value on its right", 0, {}),
    ("SPX.close * * 2", "`*` needs a value on its right", 10, {}),
    ("SPX.close + ", "`+` needs a value on its right", 10, {}),
    ("mean(SPX.close, 20 +)", "`+` needs a value on its right", 19, {}),
    ("a < b < c", "comparisons cannot be chained", 6, {}),
    ("SPX.close > 0 > 1", "comparisons cannot be chained", 14, {}),
    ("SPX.close SPX.open", "missing operator between", 10, {}),
    ("2 SPX.close", "missing operator between", 2, {}),
    ("mean(SPX.close, 20) (1)", "missing operator between", 20, {}),
    ("mean(SPX.close, 20,)", "trailing comma", 18, {}),
    ("mean(SPX.close,, 20)", "missing argument between two commas", 15, {}),
    ("mean(, 20)", "missing argument before `,`", 5, {}),
    ("mean(SPX.close,", "missing argument after `,`", 14, {}),
    ("vix_high && calm", "use AND", 9, {}),
    ("vix_high || calm", "use OR", 9, {}),
    ("vix_high & calm", "use AND", 9, {}),
    ("!vix_high", "use NOT", 0, {}),
    ('to_daily(ES.close, how="sum)', "unterminated text", 23, {}),
    ("'abc", "unterminated text", 0, {}),
    ("SPX.close # 2", "unknown character '#'", 10, {}),
    ("mean(SPX.close; 20)", "separate arguments with `,`", 14, {}),
    ("SPX.close[1]", "use round parentheses", 9, {}),
    ("SPX. > 1", "a dotted name needs a column after the dot", 3, {}),
    ("5% > 1", "write percentages as decimals", 1, {}),
    ("$ > 1", "`$` must be followed by a parameter name", 0, {}),
    ("()", "empty parentheses", 0, {}),
    ("SPX.close, SPX.open", "`,` outside of a function call", 9, {}),
    ("1,5 > 0", "write decimals with a point: 1.5", 1, {}),
    ("AND(vix_high, calm)", "write a AND b instead of AND(a, b)", 0, {}),
    ("SPX.close > AND", "AND is a keyword and cannot stand here", 12, {}),
    ("SPX.close > not(calm)", "NOT must come before the whole comparison", 12, {}),
    ("vix_high NOT calm", "NOT cannot follow a value", 9, {}),
    ("SPX.close > NOT calm", "NOT must come before the whole comparison", 12, {}),
    ("{1} > 0", "a template slot is a name in braces", 0, {}),
    ("SPX.close }", "unexpected `}`", 10, {}),
    ("ema(SPX.close, span=3, 4)", "a positional argument cannot follow a keyword argument", 23, {}),
    ("ema(SPX.close, span=3, span=4)", "the option span= is given twice", 23, {}),
    ("1e999 > 0", "too large", 0, {}),
    # -- names --------------------------------------------------------------------------------------------
    ("ctaflow > 0", "unknown name 'ctaflow'; did you mean 'cta_flow'", 0, {}),
    ("lag(SPX.clse, 1)", "did you mean 'SPX.close'", 4, {}),
    ("zscor(cta_flow, 60)", "unknown function 'zscor'; did you mean 'zscore'", 0, {}),
    ("SPX.close > cta_flow(1)", "'cta_flow' is a feature or column, not a function", 12, {}),
    ("mean > 1", "mean is a function", 0, {}),
    ("old_signal > 0", "feature 'old_signal' is disabled (FEATURE_LIBRARY!F12:transform)", 0, {}),
    ("{primary} > 0", "template slot {primary} is not bound", 0, {}),
    ("1 + {primary}", "bound to 'nope'", 4, {"slots": {"primary": "nope"}}),
    ("mean(SPX.close, $n)", "unknown parameter $n", 16, {}),
    ("SPX.close > $z", 'add "z" to params_json', 12, {}),
    # -- calls --------------------------------------------------------------------------------------------
    ("mean(SPX.close)", "mean() needs 2 arguments: mean(x, n); missing n", 0, {}),
    ("SPX.close > lag()", "lag() needs 1 argument", 12, {}),
    ("abs(SPX.close, 2)", "abs() takes at most 1 argument", 15, {}),
    ("mean(SPX.close, 20, 30)", "mean() takes at most 2 arguments", 20, {}),
    ("ema(SPX.close, 20, span=20)", "span of ema() is given twice", 19, {}),
    # -- windows, lags and literal options -----------------------------------------------------------------
    ("mean(SPX.close, 2.5)", "must be a whole number, not 2.5", 16, {}),
    ("mean(SPX.close, 0)", "must be at least 1, got 0", 16, {}),
    ("mean(SPX.close, -5)", "must be at least 1, got -5", 16, {}),
    ("mean(SPX.close, SPX.open)", "must be a whole number like 20 (or an int parameter like $n)", 16, {}),
    ("std(SPX.close, 1)", "must be at least 2", 15, {}),
    ("zscore(cta_flow, 1)", "must be at least 2", 17, {}),
    ("ema(SPX.close, span=0)", "must be at least 1, got 0", 20, {}),
    ("lag(SPX.close, -1)", "negative lag looks into the future; decisions cannot use it", 15, {}),
    ("lag(SPX.close, $k)", "negative lag looks into the future", 15, {"params": {"k": -2}}),
    (
        "mean(SPX.close, $n)",
        "parameter $n is 2.5, but the window n of mean() must be a whole number",
        16,
        {"params": {"n": 2.5}},
    ),
    ("mean(SPX.close, $n)", "parameter $n is true", 16, {"params": {"n": True}}),
    ("SPX.close > $z", "parameters must be numbers or true/false", 12, {"params": {"z": "high"}}),
    ("to_daily(ES.close, how='avg')", 'how of to_daily() must be one of "last"', 23, {}),
    ("to_daily(ES.close, how=sum)", 'put it in quotes: how="sum"', 23, {}),
    ("quantile(SPX.close, 20, 1.5)", "0 <= q <= 1", 24, {}),
    ("realized_vol(spx_ret, 20, annualize=1)", "must be true or false", 36, {}),
    (
        "realized_vol(spx_ret, 20, annualize=false, periods_per_year=252)",
        "no effect with annualize=false",
        0,
        {},
    ),
    ("clip(SPX.close, 3, -3)", "lower bound is above the upper bound", 16, {}),
    # -- kinds --------------------------------------------------------------------------------------------
    ("mean(vix_high, 20)", "mean() needs a number for x, but vix_high is true/false", 5, {}),
    ("vix_high + 1", "`+` needs numbers, but vix_high is true/false", 0, {}),
    ("-vix_high", "`-` needs numbers", 1, {}),
    ("cta_flow AND vix_high", "AND needs true/false values, but cta_flow is a number", 0, {}),
    ("cta_flow AND vix_high", "compare it, e.g. `cta_flow > 0`", 0, {}),
    ("NOT cta_flow", "NOT needs true/false values", 4, {}),
    ("if(cta_flow, 1, 0)", "if() needs true/false values for cond", 3, {}),
    ("if(vix_high, 1, vix_high)", "needs then and else of the same type", 16, {}),
    ("vix_high == 1", "compares two numbers or two true/false values", 0, {}),
    ("fill(vix_high, 0)", "needs x and value of the same type", 15, {}),
    ("hold(vix_high, 1, cta_flow)", "hold() needs true/false values for exit", 18, {}),
    ("mean(5, 3)", "mean() needs a series for x, but 5 is a whole-number constant", 5, {}),
    ("lag(1, 1)", "needs a series", 4, {}),
    ("bars_since(true)", "needs a series", 11, {}),
    ("'abc' > 1", 'text "abc" can only be an option value', 0, {}),
    ("to_daily(ES.delta > 0, 'sum')", 'to_daily(how="sum") needs numbers', 9, {}),
    # -- frequency ----------------------------------------------------------------------------------------
    ("ES.close > SPX.close", "`>` mixes grids: SPX.close is daily but ES.close is 1m", 11, {}),
    ("ES.close > SPX.close", "wrap the daily side in asof(...)", 11, {}),
    ("corr(ES.close, spx_ret, 20)", "corr() mixes grids", 15, {}),
    ("asof(ES.close)", "asof() aligns a daily series to the 1m grid, but ES.close is already 1m", 5, {}),
    ("to_daily(SPX.close)", "already daily", 9, {}),
    ("SPX.close > 0", "is daily but is evaluated on the 1m grid", 0, {"frequency": "1m"}),
    ("ES.close > 0", "aggregate it per session with to_daily", 0, {"frequency": "daily"}),
]


def _kwargs(extra: dict) -> dict:
    from dsl import Frequency

    out = dict(extra)
    if "frequency" in out:
        out["frequency"] = Frequency(out["frequency"])
    return out


def test_there_are_at_least_60_invalid_cases():
    assert len(INVALID) >= 60


@pytest.mark.parametrize(("text", "fragment", "column", "extra"), INVALID)
def test_invalid_expression_reports_fragment_and_caret(text, fragment, column, extra):
    origin = Origin("STRATEGIES", "H5", "gate_expr")
    with pytest.raises(DslError) as info:
        check(text, CATALOG, origin=origin, **_kwargs(extra))
    err = info.value
    rendered = err.render()
    assert fragment in rendered
    assert rendered.startswith("STRATEGIES!H5:gate_expr: ")
    if column >= 0:
        assert err.column == column
    lines = rendered.splitlines()
    if err.span is not None and text.strip():
        # the caret line sits under the reported column of the echoed expression
        assert lines[2].index("^") - 4 == err.column


def test_excel_logical_call_caret():
    with pytest.raises(DslError) as info:
        check("AND(vix_high, calm)", CATALOG)
    assert info.value.column == 0
    assert info.value.message == "AND is written between its operands here, not called like a function"
    assert info.value.fix == "write a AND b instead of AND(a, b)"


def test_render_format_origin_expression_caret_fix():
    with pytest.raises(DslError) as info:
        check("zscore(ctaflow, 60)", CATALOG, origin=Origin("FEATURE_LIBRARY", "F7", "transform"))
    assert info.value.render().splitlines() == [
        "FEATURE_LIBRARY!F7:transform: unknown name 'ctaflow'; did you mean 'cta_flow' or 'CTA.cta_flow'?",
        "    zscore(ctaflow, 60)",
        "           ^^^^^^^",
        "fix: check the spelling, or add it to DATASETS (a column) or FEATURE_LIBRARY (a feature)",
    ]


def test_command_line_origin_and_multiline_text_render_on_one_line():
    assert Origin().render() == "command line"
    with pytest.raises(DslError) as info:
        check("mean(SPX.close,\n\t2.5)", CATALOG)
    lines = info.value.render().splitlines()
    assert lines[0].startswith("command line: the window n of mean() must be a whole number")
    assert lines[1] == "    mean(SPX.close,  2.5)"
    assert lines[2] == "    " + " " * 17 + "^^^"


def test_non_text_and_non_catalog_inputs_are_dsl_errors():
    with pytest.raises(DslError):
        check(None, CATALOG)  # type: ignore[arg-type]
    with pytest.raises(DslError):
        check("SPX.close", {"SPX.close": 1})  # type: ignore[arg-type]
