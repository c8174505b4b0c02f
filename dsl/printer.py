"""Canonical printer: AST -> text with minimal parentheses, so parse(format_expr(e)) hashes like e."""

from __future__ import annotations

from dsl.contracts import Binary, Bool, Call, Expr, Keyword, Name, Number, Param, Slot, String, Unary
from dsl.hashing import canonical_value

# Binding strength, loosest first (mirrors grammar.lark).
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _NEG, _POW, _ATOM = range(1, 10)
_BINARY_PREC = {
    "or": _OR,
    "and": _AND,
    ">": _CMP,
    ">=": _CMP,
    "<": _CMP,
    "<=": _CMP,
    "==": _CMP,
    "!=": _CMP,
    "+": _ADD,
    "-": _ADD,
    "*": _MUL,
    "/": _MUL,
    "^": _POW,
}


def format_number(value: int | float) -> str:
    v = canonical_value(value)
    return str(v) if isinstance(v, int) else repr(v)


def _prec(e: Expr) -> int:
    if isinstance(e, Binary):
        return _BINARY_PREC[e.op]
    if isinstance(e, Unary):
        return _NOT if e.op == "not" else _NEG
    return _ATOM


def _wrap(e: Expr, minimum: int) -> str:
    text = format_expr(e)
    return f"({text})" if _prec(e) < minimum else text


def _string(value: str) -> str:
    return f"'{value}'" if '"' in value else f'"{value}"'


def format_expr(e: Expr) -> str:
    """Canonical text: upper-case keywords, `==`/`!=`, lower-case function names, minimal parentheses."""
    if isinstance(e, Number):
        return format_number(e.value)
    if isinstance(e, String):
        return _string(e.value)
    if isinstance(e, Bool):
        return "true" if e.value else "false"
    if isinstance(e, Name):
        return e.name
    if isinstance(e, Param):
        return f"${e.name}"
    if isinstance(e, Slot):
        return f"{{{e.name}}}"
    if isinstance(e, Unary):
        if e.op == "not":
            return f"NOT {_wrap(e.operand, _NOT)}"
        return f"-{_wrap(e.operand, _NEG)}"
    if isinstance(e, Binary):
        p = _BINARY_PREC[e.op]
        word = e.op.upper() if e.op in ("and", "or") else e.op
        if p == _CMP:
            return f"{_wrap(e.left, _ADD)} {word} {_wrap(e.right, _ADD)}"
        if p == _POW:
            return f"{_wrap(e.left, _ATOM)} ^ {_wrap(e.right, _NEG)}"
        return f"{_wrap(e.left, p)} {word} {_wrap(e.right, p + 1)}"
    if isinstance(e, Call):
        parts = [format_expr(a) for a in e.args] + [format_expr(k) for k in e.kwargs]
        return f"{e.name.lower()}({', '.join(parts)})"
    if isinstance(e, Keyword):
        return f"{e.name}={_wrap(e.value, _ADD)}"
    raise TypeError(f"not an expression: {e!r}")
