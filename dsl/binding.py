"""Argument binding: positional/keyword arguments to an operator's declared ArgSpecs, operand roles,
and literal arguments (numbers, options, flags, `$params` by value or over their declared domain).

A mixin of the checker (dsl.checker._Checker): it uses the checker's `error`, `snippet` and `scope`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dsl.contracts import (
    ArgRole,
    ArgSpec,
    Bool,
    Call,
    Expr,
    Number,
    OpSpec,
    Param,
    ParamDomain,
    ParamRef,
    Span,
    String,
    Unary,
)
from dsl.rules import describe
from dsl.scope import _did_you_mean, _show_value, _Typed

MAX_WINDOW = 10_000_000

_NOT_LITERAL = object()
_UNBOUND: Any = object()  # a symbolic $param: declared by its domain, no value at check time


class ArgumentBinding:
    """Binding and literal checks of the checker (see module docstring)."""

    scope: Any
    error: Callable[..., Any]  # provided by the checker
    snippet: Callable[..., Any]  # provided by the checker

    def bind(self, spec: OpSpec, e: Call, disp: str) -> dict[str, Expr]:
        positional = [a for a in spec.args if not a.keyword_only]
        sig = spec.signature()
        if len(e.args) > len(positional):
            extra = e.args[len(positional)]
            raise self.error(
                f"{disp} takes at most {len(positional)} argument{'s' if len(positional) != 1 else ''}: {sig}; "
                f"got {len(e.args)}",
                extra.span,  # type: ignore[attr-defined]
                "remove the extra arguments",
                "call.arity",
            )
        bound: dict[str, Expr] = {a.name: x for a, x in zip(positional, e.args, strict=False)}
        by_name = {a.name: a for a in spec.args}
        for kw in e.kwargs:
            a = by_name.get(kw.name)
            if a is None or not a.keyword_ok:  # pragma: no cover - the parser only makes declared keywords
                raise self.error(f"{disp} has no option {kw.name}=", kw.span, f"see {sig}", "call.keyword")
            if a.name in bound:
                raise self.error(
                    f"{a.name} of {disp} is given twice (by position and as {a.name}=)",
                    kw.span,
                    "remove one of them",
                    "call.duplicate",
                )
            bound[a.name] = kw.value
        missing = [a.name for a in spec.args if a.required and a.name not in bound]
        if missing:
            need = sum(1 for a in spec.args if a.required)
            raise self.error(
                f"{disp} needs {need} argument{'s' if need != 1 else ''}: {sig}; missing {', '.join(missing)}",
                e.span,
                f"e.g. {_example(spec)}",
                "call.arity",
            )
        return bound

    def check_role(self, disp: str, a: ArgSpec, t: _Typed, span: Span, is_call: bool) -> None:
        role, k = a.role, t.kind
        what = self.snippet(span)
        slot = f" for {a.name}" if is_call else ""
        if role in (ArgRole.NUM, ArgRole.NUM_SERIES) and not k.is_numeric:
            raise self.error(
                f"{disp} needs a number{slot}, but {what} is true/false"
                if is_call
                else f"{disp} needs numbers, but {what} is true/false",
                span,
                f"turn it into 1/0 with if({what}, 1, 0)",
                "type.bool_for_number",
            )
        if role in (ArgRole.BOOL, ArgRole.BOOL_SERIES) and not k.is_bool:
            raise self.error(
                f"{disp} needs true/false values{slot}, but {what} is a number",
                span,
                f"compare it, e.g. `{what} > 0`",
                "type.number_for_bool",
            )
        if role in (ArgRole.NUM_SERIES, ArgRole.BOOL_SERIES, ArgRole.ANY_SERIES) and not k.is_series:
            raise self.error(
                f"{disp} needs a series{slot}, but {what} is {describe(k)}",
                span,
                "pass a column or a feature",
                "type.scalar_for_series",
            )

    def literal(self, disp: str, a: ArgSpec, x: Expr | None) -> Any:
        if x is None:
            return a.default
        span: Span = x.span  # type: ignore[attr-defined]
        raw, pname = self._raw_literal(x)
        role = a.role
        what = {
            ArgRole.WINDOW: f"the window {a.name} of {disp}",
            ArgRole.LAG: f"the lag {a.name} of {disp}",
        }.get(role, f"{a.name} of {disp}")
        domain = self.scope.domains.get(pname) if pname is not None and self.scope.symbolic else None
        if domain is not None and role is not ArgRole.CHOICE:
            self._check_domain(a, what, pname, domain, span)  # type: ignore[arg-type]
        if raw is _UNBOUND:
            if role is ArgRole.CHOICE:
                raise self.error(f"{what} must be text in quotes, not a parameter", span, code="arg.choice")
            return ParamRef(pname, domain)  # type: ignore[arg-type]
        if raw is _NOT_LITERAL:
            if role in (ArgRole.WINDOW, ArgRole.LAG):
                raise self.error(
                    f"{what} must be a whole number like 20 (or an int parameter like $n), not {self.snippet(span)}",
                    span,
                    "windows and lags are fixed numbers; they cannot come from data",
                    "window.literal",
                )
            if role is ArgRole.CHOICE:
                options = ", ".join(f'"{c}"' for c in a.choices)
                word = self.snippet(span)
                fix = f'put it in quotes: {a.name}="{word}"' if word.lower() in a.choices else None
                raise self.error(f"{what} must be one of {options}", span, fix, "arg.choice")
            kind = "true or false" if role is ArgRole.FLAG else "a number (or a $parameter)"
            raise self.error(f"{what} must be {kind}, not {self.snippet(span)}", span, code="arg.literal")
        is_number = isinstance(raw, int | float) and not isinstance(raw, bool)
        if role in (ArgRole.WINDOW, ArgRole.LAG):
            if not is_number or float(raw) != math.floor(raw):
                if pname is not None:
                    raise self.error(
                        f"parameter ${pname} is {_show_value(raw)}, but {what} must be a whole number",
                        span,
                        f"set ${pname} to a whole number in params_json",
                        "param.type",
                    )
                raise self.error(
                    f"{what} must be a whole number, not {self.snippet(span)}", span, code="window.integer"
                )
            value = int(raw)
            if role is ArgRole.LAG and value < 0:
                raise self.error(
                    "negative lag looks into the future; decisions cannot use it",
                    span,
                    "use a lag of 0 or more, e.g. lag(x, 1) for yesterday's value",
                    "lag.negative",
                )
            minimum = int(a.minimum or (1 if role is ArgRole.WINDOW else 0))
            if value < minimum:
                extra = " (a sample statistic needs at least 2 rows)" if minimum == 2 else ""
                raise self.error(
                    f"{what} must be at least {minimum}{extra}, got {value}", span, code="window.range"
                )
            if value > MAX_WINDOW:
                raise self.error(f"{what} is too large ({value})", span, code="window.range")
            return ParamRef(pname, domain) if pname is not None and self.scope.symbolic else value
        if role is ArgRole.REAL:
            if not is_number:
                if pname is not None:
                    raise self.error(
                        f"parameter ${pname} is {_show_value(raw)}, but {what} must be a number",
                        span,
                        code="param.type",
                    )
                raise self.error(
                    f"{what} must be a number, not {self.snippet(span)}", span, code="arg.literal"
                )
            if (a.minimum is not None and raw < a.minimum) or (a.maximum is not None and raw > a.maximum):
                lo = "" if a.minimum is None else f"{a.minimum:g} <= "
                hi = "" if a.maximum is None else f" <= {a.maximum:g}"
                raise self.error(
                    f"{what} must satisfy {lo}{a.name}{hi}, got {_show_value(raw)}", span, code="arg.range"
                )
            return ParamRef(pname, domain) if pname is not None and self.scope.symbolic else raw
        if role is ArgRole.CHOICE:
            if not isinstance(raw, str) or raw.lower() not in a.choices:
                options = ", ".join(f'"{c}"' for c in a.choices)
                hint = _did_you_mean(raw, list(a.choices)) if isinstance(raw, str) else ""
                raise self.error(f"{what} must be one of {options}{hint}", span, code="arg.choice")
            return raw.lower()
        if role is ArgRole.FLAG:
            if not isinstance(raw, bool):
                raise self.error(
                    f"{what} must be true or false, not {self.snippet(span)}", span, code="arg.flag"
                )
            return ParamRef(pname, domain) if pname is not None and self.scope.symbolic else raw
        raise self.error(f"unsupported argument role {role}", span, code="internal")  # pragma: no cover

    def _check_domain(self, a: ArgSpec, what: str, pname: str, domain: ParamDomain, span: Span) -> None:
        """A symbolic $param must suit the argument for every value of its declared domain."""
        role = a.role
        where = f" (declared in {domain.origin})" if domain.origin is not None else ""
        desc = domain.describe()
        if role in (ArgRole.WINDOW, ArgRole.LAG):
            if domain.kind != "int":
                raise self.error(
                    f"parameter ${pname} is declared {desc}{where}, but {what} must be a whole number",
                    span,
                    f"declare ${pname} with param_type int",
                    "param.type",
                )
            minimum = int(a.minimum or (1 if role is ArgRole.WINDOW else 0))
            if domain.low < minimum:  # type: ignore[operator]
                code = "lag.negative" if role is ArgRole.LAG else "window.range"
                raise self.error(
                    f"{what} must be at least {minimum} for every value of ${pname}, but its domain "
                    f"{desc}{where} starts at {domain.low:g}",
                    span,
                    f"raise the low of ${pname} to {minimum}"
                    + (f" ({domain.origin})" if domain.origin else ""),
                    code,
                )
            if domain.high > MAX_WINDOW:  # type: ignore[operator]
                raise self.error(
                    f"{what} is too large at the top of ${pname}'s domain {desc}{where}",
                    span,
                    code="window.range",
                )
        elif role is ArgRole.REAL:
            if domain.kind == "bool":
                raise self.error(
                    f"parameter ${pname} is declared true/false{where}, but {what} must be a number",
                    span,
                    code="param.type",
                )
            if (a.minimum is not None and domain.low < a.minimum) or (  # type: ignore[operator]
                a.maximum is not None and domain.high > a.maximum  # type: ignore[operator]
            ):
                lo = "" if a.minimum is None else f"{a.minimum:g} <= "
                hi = "" if a.maximum is None else f" <= {a.maximum:g}"
                raise self.error(
                    f"{what} must satisfy {lo}{a.name}{hi} over the whole domain of ${pname}, {desc}{where}",
                    span,
                    f"narrow the low/high of ${pname}",
                    "arg.range",
                )
        elif role is ArgRole.FLAG and domain.kind != "bool":
            raise self.error(
                f"parameter ${pname} is declared {desc}{where}, but {what} must be true or false",
                span,
                code="param.type",
            )

    def _raw_literal(self, x: Expr) -> tuple[Any, str | None]:
        if isinstance(x, Number | Bool):
            return x.value, None
        if isinstance(x, String):
            return x.value, None
        if isinstance(x, Unary) and x.op == "-":
            v = _folded_number(x)
            return (v, None) if v is not None else (_NOT_LITERAL, None)
        if isinstance(x, Param):
            return self._param_value(x), x.name
        return _NOT_LITERAL, None

    def _param_value(self, p: Param) -> Any:
        """The bound value of $p, or _UNBOUND when only its domain is declared (symbolic scope)."""
        scope = self.scope
        domain = scope.domains.get(p.name) if scope.symbolic else None
        if domain is not None:
            scope.used_domains[p.name] = domain
        if p.name not in scope.params:
            if domain is not None:
                return _UNBOUND
            if scope.feature is not None:
                fix = f"add \"{p.name}\": <value> to the params_json of {scope.feature.role} '{scope.feature.name}'"
            else:
                fix = (
                    f'add "{p.name}" to params_json, or declare its range in OPTIMIZATION_PARAMS (or pass '
                    f'params={{"{p.name}": ...}} / domains={{"{p.name}": ParamDomain(...)}})'
                )
            raise self.error(f"unknown parameter ${p.name}", p.span, fix, "param.unbound")
        value = scope.params[p.name]
        ok = isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))
        if not ok:
            raise self.error(
                f"parameter ${p.name} is {value!r}; parameters must be numbers or true/false",
                p.span,
                "set it to a number or true/false in params_json",
                "param.type",
            )
        if scope.symbolic:
            scope.used_params[p.name] = value
        return value

    def value_of(self, v: Any, extreme: str = "high") -> Any:
        """A literal argument's value for a rule: a ParamRef's bound value, else its domain's extreme
        (`high` for warm-up, which grows with every window; `low` for availability, the least paid)."""
        if not isinstance(v, ParamRef):
            return v
        if v.name in self.scope.params:
            return self.scope.params[v.name]
        assert v.domain is not None
        lo, hi = v.domain.extremes
        return hi if extreme == "high" else lo


def _folded_number(e: Expr) -> int | float | None:
    """Value of a number literal under any number of unary minus signs (-5, --5), else None."""
    sign = 1
    while isinstance(e, Unary) and e.op == "-":
        sign = -sign
        e = e.operand
    if isinstance(e, Number):
        return sign * e.value
    return None


def _example(spec: OpSpec) -> str:
    parts = []
    for a in spec.args:
        if not a.required:
            continue
        if a.role is ArgRole.WINDOW:
            parts.append("20")
        elif a.role is ArgRole.LAG:
            parts.append("1")
        elif a.role is ArgRole.REAL:
            parts.append("0.5")
        elif a.role in (ArgRole.BOOL, ArgRole.BOOL_SERIES):
            parts.append("cond")
        else:
            parts.append(a.name)
    return f"{spec.name}({', '.join(parts)})"
