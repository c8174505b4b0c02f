"""Typing, frequency and availability rules: the callables an `OpSpec` declares (no if-chains on names).

Each rule is a named `Rule` (its id and documentation text go into the operator table) whose function
receives a `RuleContext`: the operator's checked operands (kind, grid, span), its literal arguments and
the helpers a rule needs to point at the text (`snippet`, `error`, `wrap`). The checker calls
`spec.result`, `spec.frequency`, `spec.availability`, then `spec.resolve` / `spec.validate` when
declared, in that order; it never asks which operator it is looking at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from dsl.contracts import ArgSpec, Debt, DslError, Edit, Frequency, Kind, Rule, Span

DAILY_PERIODS_PER_YEAR = 252
MINUTE_PERIODS_PER_YEAR = 252 * 390


@dataclass(frozen=True, slots=True)
class Operand:
    """One checked operand of an operator application."""

    arg: ArgSpec
    kind: Kind
    freq: Frequency
    span: Span
    hash: str
    debts: Mapping[str, Debt]


class RuleContext(Protocol):
    """What a rule may read and how it reports a user mistake (implemented by the checker)."""

    operands: Sequence[Operand]
    lits: Mapping[str, Any]
    disp: str
    span: Span
    literal_spans: Mapping[str, Span]

    def snippet(self, span: Span) -> str: ...

    def error(
        self,
        message: str,
        span: Span | None,
        fix: str | None = None,
        code: str = "error",
        edit: Edit | None = None,
    ) -> DslError: ...

    def wrap(self, span: Span, before: str, after: str = ")") -> Edit: ...

    def value_of(self, value: Any, extreme: str = "high") -> Any: ...

    def const_value(self, hash_: str) -> Any: ...

    def is_bound(self, name: str) -> bool: ...


def describe(kind: Kind) -> str:
    """A kind in the user's words."""
    return {
        Kind.FLOAT: "a number series",
        Kind.BOOL: "a true/false series",
        Kind.INT_SCALAR: "a whole-number constant",
        Kind.FLOAT_SCALAR: "a number constant",
        Kind.BOOL_SCALAR: "a true/false constant",
        Kind.STR: "text",
    }[kind]


def _series(ctx: RuleContext) -> bool:
    return any(o.kind.is_series for o in ctx.operands)


# ----------------------------------------------------------------------------------------------------------
# Result kinds
# ----------------------------------------------------------------------------------------------------------


def _numeric(ctx: RuleContext) -> Kind:
    return Kind.FLOAT if _series(ctx) else Kind.FLOAT_SCALAR


def _boolean(ctx: RuleContext) -> Kind:
    return Kind.BOOL if _series(ctx) else Kind.BOOL_SCALAR


def _same_type_boolean(ctx: RuleContext) -> Kind:
    a, b = ctx.operands
    if a.kind.is_numeric != b.kind.is_numeric:
        raise ctx.error(
            f"{ctx.disp} compares two numbers or two true/false values, but {ctx.snippet(a.span)} is "
            f"{describe(a.kind)} and {ctx.snippet(b.span)} is {describe(b.kind)}",
            Span(a.span.start, b.span.end),
            code="type.mismatch",
        )
    return _boolean(ctx)


def _like_x(ctx: RuleContext) -> Kind:
    return Kind.FLOAT if ctx.operands[0].kind.is_numeric else Kind.BOOL


def _same_as_x(ctx: RuleContext) -> Kind:
    return ctx.operands[0].kind


def like_value(*names: str) -> Rule:
    """Kind of the value operands `names` (which must agree): float or bool, series if any operand is."""

    def rule(ctx: RuleContext) -> Kind:
        values = [o for o in ctx.operands if o.arg.name in names]
        first = values[0]
        for other in values[1:]:
            if other.kind.is_numeric != first.kind.is_numeric:
                raise ctx.error(
                    f"{ctx.disp} needs {first.arg.name} and {other.arg.name} of the same type, but "
                    f"{ctx.snippet(first.span)} is {describe(first.kind)} and "
                    f"{ctx.snippet(other.span)} is {describe(other.kind)}",
                    other.span,
                    "make both numbers or both true/false",
                    "type.mismatch",
                )
        return _numeric(ctx) if first.kind.is_numeric else _boolean(ctx)

    return Rule(
        "like_value", "kind of the value operands (float or bool; series if any operand is a series)", rule
    )


def _to_daily_kind(ctx: RuleContext) -> Kind:
    how, x = ctx.lits["how"], ctx.operands[0]
    if how in ("sum", "mean"):
        if not x.kind.is_numeric:
            raise ctx.error(
                f'to_daily(how="{how}") needs numbers, but {ctx.snippet(x.span)} is true/false',
                x.span,
                'use how="max" (any), how="min" (all) or how="last"',
                "type.bool_for_number",
            )
        return Kind.FLOAT
    return Kind.FLOAT if x.kind.is_numeric else Kind.BOOL


def _leaf(ctx: RuleContext) -> Kind:  # pragma: no cover - leaves are typed by the catalog / their value
    raise ctx.error("a leaf has no operands to type", None, code="internal")


NUMERIC = Rule("numeric", "float series if any operand is a series, else float scalar", _numeric)
BOOLEAN = Rule("boolean", "bool series if any operand is a series, else bool scalar", _boolean)
SAME_TYPE_BOOLEAN = Rule(
    "boolean", "bool series if any operand is a series, else bool scalar", _same_type_boolean
)
FLOAT = Rule("float", "float series", lambda ctx: Kind.FLOAT)
BOOL = Rule("bool", "bool series", lambda ctx: Kind.BOOL)
LIKE_X = Rule("like_x", "same kind as x (float or bool series)", _like_x)
SAME_AS_X = Rule("like_x", "same kind as x (float or bool series)", _same_as_x)
TO_DAILY = Rule("to_daily", "float series for sum/mean, else the kind of x", _to_daily_kind)
LEAF = Rule("leaf", "the column's kind (catalog)", _leaf)
CONST = Rule("const", "int, float or bool scalar", _leaf)
PARAM = Rule("param", "the bound value's kind, or the declared domain's (int, float or bool scalar)", _leaf)


# ----------------------------------------------------------------------------------------------------------
# Frequencies
# ----------------------------------------------------------------------------------------------------------


def _common(ctx: RuleContext) -> Frequency:
    found: dict[Frequency, Span] = {}
    for o in ctx.operands:
        if o.freq is not Frequency.SCALAR:
            found.setdefault(o.freq, o.span)
    if len(found) > 1:
        d, m = found[Frequency.DAILY], found[Frequency.MINUTE]
        dt, mt = ctx.snippet(d), ctx.snippet(m)
        raise ctx.error(
            f"{ctx.disp} mixes grids: {dt} is daily but {mt} is 1m",
            d,
            f"wrap the daily side in asof(...), e.g. asof({dt}); or aggregate the 1m side with to_daily({mt})",
            "frequency.mixed",
            edit=ctx.wrap(d, "asof("),
        )
    return next(iter(found), Frequency.SCALAR)


def _daily_to_minute(ctx: RuleContext) -> Frequency:
    x = ctx.operands[0]
    if x.freq is not Frequency.DAILY:
        raise ctx.error(
            f"asof() aligns a daily series to the 1m grid, but {ctx.snippet(x.span)} is already 1m",
            x.span,
            "remove asof(...)",
            "frequency.asof",
        )
    return Frequency.MINUTE


def _minute_to_daily(ctx: RuleContext) -> Frequency:
    x = ctx.operands[0]
    if x.freq is not Frequency.MINUTE:
        raise ctx.error(
            f"to_daily() aggregates a 1m series per session, but {ctx.snippet(x.span)} is already daily",
            x.span,
            "remove to_daily(...)",
            "frequency.to_daily",
        )
    return Frequency.DAILY


COMMON_GRID = Rule("common", "the operands' grid (all series on one grid)", _common)
DAILY_TO_MINUTE = Rule("daily_to_1m", "1m, from a daily operand", _daily_to_minute)
MINUTE_TO_DAILY = Rule("1m_to_daily", "daily, from a 1m operand", _minute_to_daily)


# ----------------------------------------------------------------------------------------------------------
# Availability (what a node still owes each source); returns the debts and, if changed, the literals
# ----------------------------------------------------------------------------------------------------------

Debts = dict[str, Debt]
AvailabilityFn = Callable[[RuleContext, Debts], tuple[Debts, dict[str, Any] | None]]


def _pay_lag(ctx: RuleContext, debts: Debts) -> tuple[Debts, dict[str, Any] | None]:
    k = int(ctx.value_of(ctx.lits["k"], "low"))  # the least lag any binding pays
    k_span = ctx.literal_spans.get("k")
    operand = ctx.operands[0].span
    return {
        s: replace(
            d,
            owed=max(d.owed - k, 0),
            paid=d.paid + k,
            # the first literal lag above the debt's position can be raised instead of wrapping
            bump=d.bump if d.bump is not None or k_span is None else (k_span, k, operand),
        )
        for s, d in debts.items()
    }, None


def _asof_shift(ctx: RuleContext, debts: Debts) -> tuple[Debts, dict[str, Any] | None]:
    child = ctx.operands[0]
    sessions = max(max((d.owed for d in child.debts.values()), default=0), 1)
    return {s: replace(d, owed=0) for s, d in debts.items()}, {"sessions": sessions}


def _session_close(ctx: RuleContext, debts: Debts) -> tuple[Debts, dict[str, Any] | None]:
    # a new daily debt that only a lag of the aggregate itself can pay: point at to_daily(...)
    return {
        s: replace(
            d,
            owed=1,
            lag=1,
            spans=(ctx.span,),
            paid=0,
            bump=None,
            frequency=Frequency.DAILY,
            reason="to_daily",
        )
        for s, d in debts.items()
    }, None


PAY_LAG = Rule("lag", "each source: max(owed − k, 0) (the only operator that pays lag)", _pay_lag)
ASOF_SHIFT = Rule("asof", "0 on the 1m grid (the s-session shift pays the daily lag)", _asof_shift)
SESSION_CLOSE = Rule(
    "to_daily", "1 for every source (a session's value is known at its close)", _session_close
)


# ----------------------------------------------------------------------------------------------------------
# Argument resolution and cross-argument checks
# ----------------------------------------------------------------------------------------------------------


def _realized_vol_scale(ctx: RuleContext, freq: Frequency) -> dict[str, Any]:
    """P from annualize / periods_per_year / the grid: the node stores n and P only."""
    lits = ctx.lits
    ppy = lits.get("periods_per_year")
    annualize = lits.get("annualize", True)
    name = getattr(annualize, "name", None)
    if name is not None:
        if not ctx.is_bound(name):
            raise ctx.error(
                f"realized_vol(): annualize=${name} must be bound to true or false (it decides the scale P)",
                ctx.span,
                f"pass a value for ${name} in params_json, or write annualize=true",
                "param.unbound",
            )
        annualize = ctx.value_of(annualize)
    if not annualize:
        if ppy is not None:
            raise ctx.error(
                "realized_vol(): periods_per_year has no effect with annualize=false",
                ctx.span,
                "remove one of them",
                "arg.conflict",
            )
        ppy = 1
    elif ppy is None:
        ppy = MINUTE_PERIODS_PER_YEAR if freq is Frequency.MINUTE else DAILY_PERIODS_PER_YEAR
    return {"n": lits["n"], "periods_per_year": ppy}


def _ordered_bounds(ctx: RuleContext) -> None:
    _, lo, hi = ctx.operands
    lo_v, hi_v = ctx.const_value(lo.hash), ctx.const_value(hi.hash)
    if lo_v is not None and hi_v is not None and lo_v > hi_v:
        raise ctx.error(
            "clip(): the lower bound is above the upper bound",
            Span(lo.span.start, hi.span.end),
            "swap lo and hi",
            "arg.range",
        )


REALIZED_VOL_SCALE = Rule(
    "realized_vol_scale", "P from annualize, periods_per_year and the grid", _realized_vol_scale
)
ORDERED_BOUNDS = Rule("ordered_bounds", "constant lo <= constant hi", _ordered_bounds)
