"""Text -> AST: Excel-habit normalisation, the cached Lark LALR parser, and friendly syntax errors.

Normalisation replaces characters one for one (smart quotes, unicode spaces, line breaks, a leading
`=`), so an offset into the normalised text is the same offset into what the user typed and every
caret points at the user's own text. The AST is built during the LALR parse (inline transformer),
which avoids an intermediate parse tree and any recursion on deep input.
"""

from __future__ import annotations

import dataclasses
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from dsl.contracts import (
    Binary,
    Bool,
    Call,
    DslError,
    Expr,
    Keyword,
    Name,
    Number,
    Origin,
    Param,
    Slot,
    Span,
    String,
    Unary,
)
from dsl.ops import OPERATORS

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
MAX_LENGTH = 20_000
MAX_DEPTH = 100

# ----------------------------------------------------------------------------------------------------------
# Normalisation (one character for one character)
# ----------------------------------------------------------------------------------------------------------

_SPACES = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACES += "".join(chr(c) for c in range(0x2000, 0x200E)) + "\u2060"
_TRANSLATE = {ord(c): " " for c in _SPACES}
_TRANSLATE.update({ord(c): "'" for c in "\u2018\u2019\u201a\u201b\u2032"})
_TRANSLATE.update({ord(c): '"' for c in "\u201c\u201d\u201e\u201f\u2033"})
_TRANSLATE[0x2212] = "-"  # Unicode minus sign, as produced by Word/Excel autocorrect


def normalize(text: str) -> str:
    """Map Excel/Word habits to plain syntax without changing any character offset."""
    out = text.translate(_TRANSLATE)
    stripped = out.lstrip(" ")
    if stripped.startswith("=") and not stripped.startswith("=="):
        i = len(out) - len(stripped)
        out = out[:i] + " " + out[i + 1 :]
    return out


# ----------------------------------------------------------------------------------------------------------
# The parser (module-level lazy singleton)
# ----------------------------------------------------------------------------------------------------------


def grammar_text() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


def build_lark(*, strict: bool = False, transformer: Transformer | None = None) -> Lark:
    """A fresh Lark LALR parser over the DSL grammar (tests build it with strict=True)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        strict=strict,
        transformer=transformer,
    )


_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
_CMP = {"=": "==", "==": "==", "<>": "!=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _span(tok: Token) -> Span:
    return Span(tok.start_pos, tok.end_pos)


class _Problem(Exception):
    """Raised inside the transformer; parse() turns it into a DslError with the text and origin."""

    def __init__(self, message: str, span: Span, fix: str | None = None, code: str = "syntax") -> None:
        super().__init__(message)
        self.message, self.span, self.fix, self.code = message, span, fix, code


@v_args(inline=True)
class _ToAst(Transformer):
    """Builds frozen AST nodes while the LALR parser reduces; stateless, so one instance is shared."""

    def number(self, tok: Token) -> Number:
        text = str(tok)
        value: int | float
        if text.isdigit():
            value = int(text)
        else:
            value = float(text)
            if value in (float("inf"), float("-inf")):
                raise _Problem(f"the number {text} is too large", _span(tok), code="syntax.number")
        return Number(value, text, _span(tok))

    def string(self, tok: Token) -> String:
        return String(str(tok)[1:-1], _span(tok))

    def true(self, tok: Token) -> Bool:
        return Bool(True, _span(tok))

    def false(self, tok: Token) -> Bool:
        return Bool(False, _span(tok))

    def name(self, tok: Token) -> Name:
        text = str(tok)
        if text.lower() in _KEYWORDS:
            # The contextual lexer reads a keyword as a name where the keyword cannot stand.
            word = text.upper()
            raise _Problem(
                f"{word} is a keyword and cannot stand here",
                _span(tok),
                f"{word} goes between two true/false values, e.g. a {word} b"
                if word in ("AND", "OR")
                else "write NOT before the whole condition, e.g. NOT (a > b)",
                "syntax.keyword",
            )
        return Name(text, _span(tok))

    def param(self, tok: Token) -> Param:
        return Param(str(tok)[1:], _span(tok))

    def slot(self, lbrace: Token, tok: Token, rbrace: Token) -> Slot:
        return Slot(str(tok), Span(lbrace.start_pos, rbrace.end_pos))

    def neg(self, op: Token, operand: Expr) -> Unary:
        return Unary("-", operand, Span(op.start_pos, operand.span.end), _span(op))  # type: ignore[attr-defined]

    def not_(self, op: Token, operand: Expr) -> Unary:
        return Unary("not", operand, Span(op.start_pos, operand.span.end), _span(op))  # type: ignore[attr-defined]

    def _binary(self, left: Expr, op: Token, right: Expr, canonical: str) -> Binary:
        span = Span(left.span.start, right.span.end)  # type: ignore[attr-defined]
        return Binary(canonical, left, right, span, _span(op), str(op))

    def binop(self, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(left, op, right, str(op))

    def compare(self, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(left, op, right, _CMP[str(op)])

    def and_(self, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(left, op, right, "and")

    def or_(self, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(left, op, right, "or")

    def paren(self, lpar: Token, inner: Expr, rpar: Token) -> Expr:
        # Widen the span to the parentheses: carets underline what the user grouped, and a
        # parenthesised `(n = 3)` argument stays a comparison (see `call`).
        return dataclasses.replace(inner, span=Span(lpar.start_pos, rpar.end_pos))  # type: ignore[type-var]

    def args(self, *items: Any) -> list[Expr]:
        return [i for i in items if not isinstance(i, Token)]

    def call(self, name: Token, lpar: Token, items: list[Expr] | None, rpar: Token) -> Call:
        word = str(name).upper()
        if word in ("AND", "OR"):
            raise _Problem(
                f"{word} is written between its operands here, not called like a function",
                _span(name),
                f"write a {word} b instead of {word}(a, b)",
                "syntax.excel_logical",
            )
        if word == "NOT":
            raise _Problem(
                "NOT must come before the whole comparison",
                _span(name),
                "write NOT (a > b) or a <= b",
                "syntax.misplaced_not",
            )
        spec = OPERATORS.get(str(name))
        options = {a.name for a in spec.args if a.keyword_ok} if spec is not None else set()
        args: list[Expr] = []
        kwargs: list[Keyword] = []
        for item in items or ():
            kw = _as_keyword(item, options)
            if kw is not None:
                if any(k.name == kw.name for k in kwargs):
                    raise _Problem(
                        f"the option {kw.name}= is given twice", kw.span, "keep one of them", "syntax.kwarg"
                    )
                kwargs.append(kw)
            elif kwargs:
                raise _Problem(
                    "a positional argument cannot follow a keyword argument",
                    item.span,  # type: ignore[attr-defined]
                    f"put it before {kwargs[0].name}=..., or name it",
                    "syntax.kwarg_order",
                )
            else:
                args.append(item)
        return Call(str(name), tuple(args), tuple(kwargs), Span(name.start_pos, rpar.end_pos), _span(name))


def _as_keyword(item: Expr, options: set[str]) -> Keyword | None:
    """`span = 20` directly inside a call is the option span= when the function declares it."""
    if not (isinstance(item, Binary) and item.op == "==" and item.op_text == "="):
        return None
    left = item.left
    if not isinstance(left, Name) or "." in left.name or item.span.start != left.span.start:
        return None
    key = left.name.lower()
    if key not in options:
        return None
    return Keyword(key, item.right, item.span)


@cache
def get_parser() -> Lark:
    """The shared parser, built on first use (building the LALR tables takes tens of milliseconds)."""
    return build_lark(transformer=_ToAst())


@cache
def _lexer() -> Lark:
    """A basic-lexer twin of the parser, used only to list tokens when explaining a syntax error."""
    return Lark(grammar_text(), parser="lalr", lexer="basic")


# ----------------------------------------------------------------------------------------------------------
# parse()
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_normalized(norm: str) -> tuple[Expr, int]:
    """Lark parse + AST of a normalised text, memoised: the AST is immutable (frozen dataclasses) and
    depends on the text only, and a study or a many-set call checks the same few texts thousands of
    times. Failures are not cached (lru_cache stores results only), so errors are rebuilt every time.
    Returns the AST and its depth (the depth walk costs as much as a cached parse)."""
    tree = get_parser().parse(norm)
    return tree, _depth(tree)


def parse(text: str, origin: Origin | None = None) -> Expr:
    """Parse one cell into an AST; every problem is a DslError pointing into `text`."""
    if not isinstance(text, str):
        raise DslError(
            f"an expression must be text, not {type(text).__name__}", origin=origin, code="syntax.type"
        )
    norm = normalize(text)
    if len(norm) > MAX_LENGTH:
        raise DslError(
            f"the expression is too long ({len(norm)} characters; the limit is {MAX_LENGTH})",
            text=text,
            span=Span(MAX_LENGTH, len(norm)),
            origin=origin,
            code="syntax.too_long",
        )
    if not norm.strip():
        raise DslError(
            "the expression is empty",
            fix="write an expression, e.g. cta_flow > 0",
            text=text,
            span=Span(0, 0),
            origin=origin,
            code="syntax.empty",
        )
    try:
        tree, depth = _parse_normalized(norm)
    except _Problem as p:
        raise DslError(p.message, fix=p.fix, text=text, span=p.span, origin=origin, code=p.code) from None
    except VisitError as e:  # pragma: no cover - lark wraps callback errors in some modes
        p = e.orig_exc
        if isinstance(p, _Problem):
            raise DslError(p.message, fix=p.fix, text=text, span=p.span, origin=origin, code=p.code) from None
        raise
    except UnexpectedInput as e:
        message, fix, span, code = explain(norm, e)
        raise DslError(message, fix=fix, text=text, span=span, origin=origin, code=code) from None
    if depth > MAX_DEPTH:
        raise DslError(
            f"the expression is nested too deeply ({depth} levels; the limit is {MAX_DEPTH})",
            fix="split it into named features",
            text=text,
            span=Span(0, len(text)),
            origin=origin,
            code="syntax.too_deep",
        )
    return tree


def _children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Call):
        return e.args + tuple(k.value for k in e.kwargs)
    return ()


def _depth(root: Expr) -> int:
    """Nesting depth, computed iteratively so hostile input cannot exhaust the stack here."""
    best = 0
    stack = [(root, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in _children(node))
    return best


# ----------------------------------------------------------------------------------------------------------
# Friendly syntax errors
# ----------------------------------------------------------------------------------------------------------

_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "CARET", "CMP_OP", "AND", "OR", "NOT"}
_BINARY_ONLY = {"PLUS", "STAR", "SLASH", "CARET", "AND", "OR"}
_ENDS_VALUE = {"NAME", "NUMBER", "STRING", "PARAM", "TRUE", "FALSE", "RPAR", "RBRACE"}
_STARTS_VALUE = {"NAME", "NUMBER", "STRING", "PARAM", "TRUE", "FALSE", "LPAR", "LBRACE"}


def _keyword(tok: Token) -> Token:
    """A NAME spelled like a keyword is the keyword the user meant (the contextual lexer demoted it)."""
    if tok.type == "NAME" and tok.value.lower() in _KEYWORDS:
        return Token.new_borrow_pos(tok.value.upper(), tok.value, tok)
    return tok


def _tokens_before(norm: str, pos: int) -> list[Token]:
    out: list[Token] = []
    try:
        for tok in _lexer().lex(norm):
            if tok.start_pos >= pos:
                break
            out.append(_keyword(tok))
    except UnexpectedInput:
        pass
    return out


def _show(tok: Token) -> str:
    return f"`{tok}`"


def explain(norm: str, err: UnexpectedInput) -> tuple[str, str | None, Span, str]:
    """Classify a Lark error into (message, fix, span, code) in the user's terms."""
    if isinstance(err, UnexpectedCharacters):
        return _explain_char(norm, err.pos_in_stream)
    assert isinstance(err, UnexpectedToken) or hasattr(err, "token")
    tok: Token = _keyword(err.token)  # type: ignore[attr-defined]
    at_end = tok.type == "$END"
    pos = len(norm) if at_end else tok.start_pos
    before = _tokens_before(norm, pos)
    prev = before[-1] if before else None
    open_parens: list[Token] = []
    for t in before:
        if t.type == "LPAR":
            open_parens.append(t)
        elif t.type == "RPAR" and open_parens:
            open_parens.pop()
    here = Span(pos, pos) if at_end else _span(tok)
    ptype = prev.type if prev is not None else None

    def needs_right(op: Token) -> tuple[str, str | None, Span, str]:
        word = op.type if op.type in ("AND", "OR", "NOT") else _show(op)
        return (
            f"{word} needs a value on its right",
            "add the missing value, or remove the operator",
            _span(op),
            "syntax.missing_operand",
        )

    if at_end:
        if prev is not None and ptype in _OPERATORS:
            return needs_right(prev)
        if ptype == "COMMA":
            return (
                "missing argument after `,`",
                "add the argument and the closing `)`",
                _span(prev),
                "syntax.missing_argument",
            )
        if open_parens:
            lp = open_parens[-1]
            return (
                "missing closing parenthesis: this `(` is never closed",
                "add `)` where the group or call ends",
                _span(lp),
                "syntax.missing_rparen",
            )
        if ptype in ("LBRACE", "NAME") and any(t.type == "LBRACE" for t in before[-2:]):
            return (
                "a template slot is a name in braces, like {primary}",
                "close it with `}`",
                _span(before[-2] if ptype == "NAME" else prev),
                "syntax.slot",
            )
        return ("the expression ends too early", None, here, "syntax.unexpected_end")

    ttype = tok.type
    if ttype == "RPAR":
        if not open_parens:
            return (
                "unexpected `)`: there is no matching `(`",
                "remove it, or add the missing `(`",
                here,
                "syntax.unexpected_rparen",
            )
        if ptype == "COMMA":
            return (
                "trailing comma: nothing follows `,` before `)`",
                "remove the `,` or add the missing argument",
                _span(prev),
                "syntax.trailing_comma",
            )
        if ptype == "LPAR":
            return (
                "empty parentheses: `()` needs a value inside",
                "put a value inside, or remove them",
                Span(prev.start_pos, tok.end_pos),
                "syntax.empty_parens",
            )
        if prev is not None and ptype in _OPERATORS:
            return needs_right(prev)
    if ttype == "COMMA":
        if ptype == "COMMA":
            return ("missing argument between two commas", "remove one `,`", here, "syntax.missing_argument")
        if ptype == "LPAR":
            return ("missing argument before `,`", "add the first argument", here, "syntax.missing_argument")
        if prev is not None and ptype in _OPERATORS:
            return needs_right(prev)
        fix = "use `,` only between the arguments of a function call, like mean(x, 20)"
        nxt = _token_after(norm, tok)
        if ptype == "NUMBER" and nxt is not None and nxt.type == "NUMBER" and not open_parens:
            fix = f"write decimals with a point: {prev}.{nxt}"
        return ("`,` outside of a function call", fix, here, "syntax.stray_comma")
    if ttype == "CMP_OP":
        if ptype in _ENDS_VALUE:
            return (
                "comparisons cannot be chained",
                "combine two comparisons with AND, e.g. a < b AND b < c",
                here,
                "syntax.chained_comparison",
            )
        if prev is not None and ptype in _OPERATORS:
            return needs_right(prev)
        return (
            f"{_show(tok)} needs a value on its left",
            "add the missing value",
            here,
            "syntax.missing_operand",
        )
    if ttype in _BINARY_ONLY:
        if prev is not None and ptype in _OPERATORS:
            return needs_right(prev)
        nxt = _token_after(norm, tok)
        if ttype in ("AND", "OR") and nxt is not None and nxt.type == "LPAR":
            word = ttype
            return (
                f"{word} is written between its operands here, not called like a function",
                f"write a {word} b instead of {word}(a, b)",
                here,
                "syntax.excel_logical",
            )
        word = ttype if ttype in ("AND", "OR") else _show(tok)
        return (f"{word} needs a value on its left", "add the missing value", here, "syntax.missing_operand")
    if ttype == "NOT":
        if ptype in _ENDS_VALUE:
            return (
                "NOT cannot follow a value",
                "did you mean AND NOT? e.g. a > 0 AND NOT b",
                here,
                "syntax.missing_operator",
            )
        return (
            "NOT must come before the whole comparison",
            "write NOT (a > b) or a <= b",
            here,
            "syntax.misplaced_not",
        )
    if (
        ptype == "NOT"
        and prev is not None
        and len(before) >= 2
        and before[-2].type not in ("AND", "OR", "NOT", "LPAR", "COMMA")
    ):
        return (
            "NOT must come before the whole comparison",
            "write NOT (a > b) or a <= b",
            _span(prev),
            "syntax.misplaced_not",
        )
    if ptype == "LBRACE":
        return (
            "a template slot is a name in braces, like {primary}",
            "write {primary} or {secondary}",
            _span(prev),
            "syntax.slot",
        )
    if ttype in _STARTS_VALUE and ptype in _ENDS_VALUE:
        return (
            f"missing operator between {_show(prev)} and {_show(tok)}",
            "put an operator (e.g. *, +, AND) between them, or `,` if they are function arguments",
            here,
            "syntax.missing_operator",
        )
    if ttype == "RBRACE":
        return ("unexpected `}`: there is no matching `{`", "remove it", here, "syntax.unexpected_rbrace")
    return (f"unexpected {_show(tok)}", None, here, "syntax.unexpected")


def _token_after(norm: str, tok: Token) -> Token | None:
    try:
        for t in _lexer().lex(norm):
            if t.start_pos >= tok.end_pos:
                return t
    except UnexpectedInput:
        return None
    return None


def _explain_char(norm: str, pos: int) -> tuple[str, str | None, Span, str]:
    ch = norm[pos]
    nxt = norm[pos + 1] if pos + 1 < len(norm) else ""
    one = Span(pos, pos + 1)
    if ch == "&":
        span = Span(pos, pos + 2) if nxt == "&" else one
        return ("`&&` is not an operator here", "use AND", span, "syntax.use_and")
    if ch == "|":
        span = Span(pos, pos + 2) if nxt == "|" else one
        return ("`||` is not an operator here", "use OR", span, "syntax.use_or")
    if ch == "!":
        return ("`!` is not an operator here", "use NOT, e.g. NOT vix_high", one, "syntax.use_not")
    if ch in "\"'":
        return (
            "unterminated text: this quote is never closed",
            f"add a closing {ch}",
            Span(pos, len(norm.rstrip())),
            "syntax.unterminated_string",
        )
    if ch == ";":
        return ("`;` is not a separator here", "separate arguments with `,`", one, "syntax.semicolon")
    if ch in "[]":
        return (f"unexpected `{ch}`", "use round parentheses ( ) for grouping", one, "syntax.bracket")
    if ch == ".":
        return (
            "unexpected `.`: a dotted name needs a column after the dot",
            "write a qualified column like SPX.close",
            one,
            "syntax.dot",
        )
    if ch == "$":
        return ("`$` must be followed by a parameter name", "write e.g. $window", one, "syntax.param")
    if ch == "%":
        return (
            "`%` is not an operator here",
            "write percentages as decimals (5% is 0.05)",
            one,
            "syntax.percent",
        )
    shown = ch if ch.isprintable() else repr(ch)
    return (
        f"unknown character {shown!r}" if ch.isprintable() else f"unknown character {shown}",
        None,
        one,
        "syntax.char",
    )
