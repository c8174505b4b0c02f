"""Grammar: strict build, precedence, keywords, literals, Excel habits, spans into the original text."""

from __future__ import annotations

import importlib.util

import pytest
from lark import Lark
from lark.common import ParserConf
from lark.exceptions import GrammarError
from lark.parsers.lalr_analysis import LALR_Analyzer

from dsl import Binary, Bool, Call, DslError, Name, Number, Param, Slot, Span, String, Unary, normalize, parse
from dsl.parser import build_lark, get_parser, grammar_text


def sx(e) -> str:
    """Fully parenthesised S-expression of an AST (independent of dsl.printer)."""
    if isinstance(e, Number):
        return repr(e.value)
    if isinstance(e, String):
        return f"str:{e.value}"
    if isinstance(e, Bool):
        return "TRUE" if e.value else "FALSE"
    if isinstance(e, Name):
        return e.name
    if isinstance(e, Param):
        return f"${e.name}"
    if isinstance(e, Slot):
        return f"{{{e.name}}}"
    if isinstance(e, Unary):
        return f"({'neg' if e.op == '-' else 'not'} {sx(e.operand)})"
    if isinstance(e, Binary):
        return f"({e.op} {sx(e.left)} {sx(e.right)})"
    if isinstance(e, Call):
        parts = [sx(a) for a in e.args] + [f"{k.name}={sx(k.value)}" for k in e.kwargs]
        return f"(call {e.name} {' '.join(parts)})"
    raise TypeError(e)


# -- building ------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("interegular") is None, reason="lark strict mode needs interegular"
)
def test_grammar_builds_with_lark_strict():
    Lark(grammar_text(), parser="lalr", strict=True, propagate_positions=True)
    build_lark(strict=True)


def test_grammar_has_no_lalr_conflicts_in_strict_mode():
    """The parser-table half of strict=True (shift/reduce conflicts raise), runnable without interegular."""
    lark = build_lark()
    LALR_Analyzer(ParserConf(lark.rules, {}, lark.options.start), strict=True).compute_lalr()


def test_strict_analysis_would_catch_a_conflict():
    ambiguous = 'start: e\ne: e "+" e | NUM\nNUM: /[0-9]+/\n%ignore " "'
    lark = Lark(ambiguous, parser="lalr")
    with pytest.raises(GrammarError):
        LALR_Analyzer(ParserConf(lark.rules, {}, lark.options.start), strict=True).compute_lalr()


def test_parser_is_a_cached_singleton():
    assert get_parser() is get_parser()
    assert get_parser().options.propagate_positions


# -- precedence ------------------------------------------------------------------------------------------

PRECEDENCE = [
    ("a OR b AND c", "(or a (and b c))"),
    ("a AND b OR c", "(or (and a b) c)"),
    ("NOT a AND b", "(and (not a) b)"),
    ("NOT a > b", "(not (> a b))"),
    ("NOT NOT a", "(not (not a))"),
    ("a > b AND c < d OR e", "(or (and (> a b) (< c d)) e)"),
    ("a + b * c", "(+ a (* b c))"),
    ("a * b + c", "(+ (* a b) c)"),
    ("a - b - c", "(- (- a b) c)"),
    ("a / b / c", "(/ (/ a b) c)"),
    ("a + b > c * d", "(> (+ a b) (* c d))"),
    ("-a ^ 2", "(neg (^ a 2))"),
    ("-a * b", "(* (neg a) b)"),
    ("a * -b", "(* a (neg b))"),
    ("a ^ b ^ c", "(^ a (^ b c))"),
    ("2 ^ -1", "(^ 2 (neg 1))"),
    ("--a", "(neg (neg a))"),
    ("(a OR b) AND c", "(and (or a b) c)"),
    ("(a + b) * c", "(* (+ a b) c)"),
    ("a = 1", "(== a 1)"),
    ("a == 1", "(== a 1)"),
    ("a <> 1", "(!= a 1)"),
    ("a != 1", "(!= a 1)"),
    ("a >= 1 and b <= 2", "(and (>= a 1) (<= b 2))"),
    ("f(a, b + 1)", "(call f a (+ b 1))"),
    ("ema(a, span=3)", "(call ema a span=3)"),
    ("EMA(a, SPAN = 3)", "(call EMA a span=3)"),
    ("if(x = 1, a, b)", "(call if (== x 1) a b)"),
    ("ema(a, (span = 3))", "(call ema a (== span 3))"),
    ("ema(a, span == 3)", "(call ema a (== span 3))"),
    ("to_daily(ES.close, how='sum')", "(call to_daily ES.close how=str:sum)"),
    ("f()", "(call f )"),
]


@pytest.mark.parametrize(("text", "expected"), PRECEDENCE)
def test_precedence_and_structure(text, expected):
    assert sx(parse(text)) == expected


def test_chained_comparison_is_a_syntax_error():
    with pytest.raises(DslError) as e:
        parse("a < b < c")
    assert e.value.code == "syntax.chained_comparison"
    assert e.value.column == 6


# -- keywords and names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["and", "AND", "And", "aNd"])
def test_keywords_are_case_insensitive(word):
    assert sx(parse(f"a {word} b")) == "(and a b)"


@pytest.mark.parametrize(
    "text",
    ["android", "order", "notes", "true_range", "falsehood", "orbit", "nothing", "Android", "ORDER", "truex"],
)
def test_keyword_prefixes_do_not_steal_names(text):
    assert sx(parse(text)) == text


def test_keyword_prefixed_names_inside_expressions():
    assert (
        sx(parse("android > 0 and orbit < 1 or NOT notes"))
        == "(or (and (> android 0) (< orbit 1)) (not notes))"
    )


@pytest.mark.parametrize(("text", "value"), [("true", True), ("TRUE", True), ("False", False)])
def test_boolean_literals(text, value):
    assert parse(text) == Bool(value, Span(0, len(text)))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e-3", 0.001),
        ("2E2", 200.0),
        ("60.0", 60.0),
        ("007", 7),
        ("1.", 1.0),
    ],
)
def test_numbers(text, value):
    e = parse(text)
    assert isinstance(e, Number) and e.value == value and e.text == text


def test_numbers_carry_no_sign():
    assert sx(parse("-1")) == "(neg 1)"
    assert sx(parse("a-1")) == "(- a 1)"


def test_dotted_names_params_slots_strings():
    assert sx(parse("SPX.close")) == "SPX.close"
    assert sx(parse("$window")) == "$window"
    assert sx(parse("{primary} - {secondary}")) == "(- {primary} {secondary})"
    assert parse("'last'") == String("last", Span(0, 6))
    assert parse('"last"') == String("last", Span(0, 6))


def test_positional_after_keyword_is_an_error():
    with pytest.raises(DslError) as e:
        parse("ema(x, span=3, 4)")
    assert e.value.code == "syntax.kwarg_order"
    assert e.value.column == 15


# -- Excel habits and positions --------------------------------------------------------------------------


def test_normalize_keeps_every_offset():
    raw = "=\u201cx\u201d\u00a0AND\tb\n<>\u2018c\u2019\u2212d"
    norm = normalize(raw)
    assert len(norm) == len(raw)
    assert norm == " \"x\" AND b <>'c'-d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=a > 1", "(> a 1)"),
        ("  =a > 1", "(> a 1)"),
        ("a <> 1", "(!= a 1)"),
        ("a = 1", "(== a 1)"),
        ("to_daily(ES.close, how=\u201csum\u201d)", "(call to_daily ES.close how=str:sum)"),
        ("to_daily(ES.close, how=\u2018sum\u2019)", "(call to_daily ES.close how=str:sum)"),
        ("a\u00a0>\u20031", "(> a 1)"),
        ("a >\n1\r\nAND\tb", "(and (> a 1) b)"),
        ("a \u2212 1", "(- a 1)"),
    ],
)
def test_excel_habits(text, expected):
    assert sx(parse(text)) == expected


def test_spans_point_into_the_original_text():
    raw = "=\u00a0mean(SPX.close,\n 20) > 0"
    e = parse(raw)
    assert isinstance(e, Binary)
    call = e.left
    assert isinstance(call, Call)
    assert raw[call.span.start : call.span.end] == "mean(SPX.close,\n 20)"
    assert raw[call.args[0].span.start : call.args[0].span.end] == "SPX.close"
    assert (e.op_span.start, e.op_span.end) == (23, 24)  # "=", nbsp, "mean(" ... ")" at 21, " " at 22


def test_parenthesised_span_includes_the_parentheses():
    e = parse("(a + b) * c")
    assert isinstance(e, Binary)
    assert e.left.span == Span(0, 7)


def test_error_caret_after_line_break_maps_to_original_offset():
    raw = "mean(SPX.close,\n\t20) >"
    with pytest.raises(DslError) as e:
        parse(raw)
    assert e.value.column == raw.index(">")
    rendered = e.value.render().splitlines()
    assert rendered[1].index(">") == rendered[2].index("^")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("=a<>b and NOT(c)", "a != b AND NOT c"),
        ("(a + b) * -(c ^ 2)", "(a + b) * -c ^ 2"),
        ("(-a) ^ 2", "(-a) ^ 2"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("NOT (a AND b) OR c", "NOT (a AND b) OR c"),
        ("(a > b) = (c > d)", "(a > b) == (c > d)"),
        ("EMA(x, SPAN=20.0)", "ema(x, span=20)"),
        ("f(x, 'a\"b')", "f(x, 'a\"b')"),
        ("a ^ (b ^ c)", "a ^ b ^ c"),
        ("(a ^ b) ^ c", "(a ^ b) ^ c"),
        ("1e-05 + .5", "1e-05 + 0.5"),
    ],
)
def test_format_expr_is_canonical_with_minimal_parentheses(text, canonical):
    from dsl import format_expr

    assert format_expr(parse(text)) == canonical
    assert format_expr(parse(canonical)) == canonical
