"""Static checks: AST + Catalog -> typed, hash-consed Graph, or a DslError that points at the text.

One pass over the AST computes, per node: kind, frequency, availability debts (per source, with the
reference spans needed for a caret), warm-up per grid and statefulness, and adds the node to a
GraphBuilder under its canonical hash. Named features are expanded into their composed definition
(transform -> lag -> missing policy -> winsorize -> normalize -> feature node) once per catalog and
merged into every graph that uses them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dsl.contracts import (
    COMMAND_LINE,
    ArgRole,
    ArgSpec,
    Binary,
    Bool,
    Call,
    Catalog,
    ColumnDef,
    Debt,
    DslError,
    Edit,
    Execution,
    Expr,
    FeatureDef,
    Frequency,
    Graph,
    Kind,
    Name,
    Node,
    Number,
    OpSpec,
    Origin,
    Param,
    ParamDomain,
    ParamRef,
    Slot,
    Span,
    String,
    Unary,
)
from dsl.graph import GraphBuilder
from dsl.hashing import canonical_value, node_hash
from dsl.ops import OPERATORS
from dsl.parser import parse
from dsl.printer import format_expr, format_number
from dsl.warmup import node_needs

MAX_WINDOW = 10_000_000
DAILY_PERIODS_PER_YEAR = 252
MINUTE_PERIODS_PER_YEAR = 252 * 390
ROLE_WORD = {"feature": "feature", "engineered": "engineered", "gate": "gate"}

_NOT_LITERAL = object()
_UNBOUND: Any = object()  # a symbolic $param: declared by its domain, no value at check time


@dataclass(slots=True)
class _Typed:
    """One occurrence of a checked subexpression (node hash plus occurrence-specific debts/spans)."""

    hash: str
    kind: Kind
    freq: Frequency
    debts: dict[str, Debt]
    span: Span
    needs: dict[Frequency, int]
    stateful: bool


@dataclass(frozen=True, slots=True)
class _FeatureResult:
    node: Node
    nodes: tuple[Node, ...]
    debts: dict[str, Debt]
    canonical: str


@dataclass(slots=True)
class _Scope:
    """What names mean in one text: the top-level cell, or one feature's expression."""

    text: str
    origin: Origin
    params: Mapping[str, Any]
    symbolic: bool
    slots: Mapping[str, str]
    builder: GraphBuilder
    feature: FeatureDef | None = None
    x: ColumnDef | None = None
    used_params: dict[str, Any] = field(default_factory=dict)
    domains: Mapping[str, ParamDomain] = field(default_factory=dict)
    used_domains: dict[str, ParamDomain] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# Session: one catalog, its feature expansions (cached for the session's life), cycle detection
# ----------------------------------------------------------------------------------------------------------


class CheckSession:
    """Checks against one catalog, sharing each named feature's expansion between them.

    The cache belongs to the session (not to a module-level table keyed by the catalog's id): the
    runtime opens one session per workbook check, so a catalog that is rebuilt or edited can never be
    served another catalog's expansions, and the cache is freed with the session.
    """

    def __init__(self, catalog: Catalog) -> None:
        if not isinstance(catalog, Catalog):
            raise DslError(f"check() needs a Catalog, not {type(catalog).__name__}", code="api.catalog")
        self.catalog = catalog
        self.cache: dict[str, _FeatureResult] = {}
        self.stack: list[FeatureDef] = []

    @property
    def expanded(self) -> frozenset[str]:
        """Names of the features expanded so far (each once per session)."""
        return frozenset(self.cache)

    def expand(self, fd: FeatureDef) -> _FeatureResult:
        res = self.cache.get(fd.name)
        if res is not None:
            return res
        self.stack.append(fd)
        try:
            res = self._expand(fd)
        finally:
            self.stack.pop()
        self.cache[fd.name] = res
        return res

    def _expand(self, fd: FeatureDef) -> _FeatureResult:
        builder = GraphBuilder()
        text = fd.expression or ""
        scope = _Scope(text, fd.origin, fd.params or {}, False, {}, builder, feature=fd)
        checker = _Checker(self, scope)
        if fd.input_column is not None:
            cd = self.catalog.columns.get(fd.input_column)
            if cd is None:
                raise DslError(
                    f"{fd.role} '{fd.name}': input column '{fd.input_column}' is not a dataset column"
                    + _did_you_mean(fd.input_column, list(self.catalog.columns)),
                    fix="set input_col to a column of the dataset (DATASETS / INSTRUMENTS)",
                    text=text,
                    span=None,
                    origin=fd.origin,
                    code="name.input_column",
                )
            scope.x = cd
        if not text.strip():
            if scope.x is None:
                raise DslError(
                    f"{fd.role} '{fd.name}' has neither an expression nor an input column",
                    fix="write an expression, or set input_col",
                    text=text,
                    origin=fd.origin,
                    code="feature.empty",
                )
            ast: Expr = Name("x", Span(0, 0))
            canonical = "x"
        else:
            ast = parse(text, fd.origin)
            canonical = format_expr(ast)
        t = checker.guarded_visit(ast)
        t = checker.compose(t)
        return _FeatureResult(builder.get(t.hash), builder.reachable(t.hash), t.debts, canonical)

    def feature_graph(self, fd: FeatureDef) -> Graph:
        res = self.expand(fd)
        builder = GraphBuilder()
        builder.merge(res.nodes)
        return builder.build(res.node.hash, text=fd.expression, canonical=res.canonical, origin=fd.origin)


# ----------------------------------------------------------------------------------------------------------
# The checker for one text
# ----------------------------------------------------------------------------------------------------------


def _did_you_mean(name: str, candidates: list[str]) -> str:
    lower = name.lower()
    exact = [c for c in candidates if c.lower() == lower]
    close = exact + [
        c for c in difflib.get_close_matches(name, candidates, n=3, cutoff=0.6) if c not in exact
    ]
    close = close[:3]
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean '{close[0]}'?"
    return "; did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"


def _describe(kind: Kind) -> str:
    return {
        Kind.FLOAT: "a number series",
        Kind.BOOL: "a true/false series",
        Kind.INT_SCALAR: "a whole-number constant",
        Kind.FLOAT_SCALAR: "a number constant",
        Kind.BOOL_SCALAR: "a true/false constant",
        Kind.STR: "text",
    }[kind]


def _value_kind(value: Any) -> Kind:
    v = canonical_value(value)
    if isinstance(v, bool):
        return Kind.BOOL_SCALAR
    if isinstance(v, int):
        return Kind.INT_SCALAR
    return Kind.FLOAT_SCALAR


def _show_value(value: Any) -> str:
    if isinstance(value, ParamRef):
        return f"${value.name}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    if value is None:
        return "none"
    return str(value)


def _merge_debts(children: list[_Typed]) -> dict[str, Debt]:
    out: dict[str, Debt] = {}
    for t in children:
        for src, d in t.debts.items():
            old = out.get(src)
            if old is None or d.owed > old.owed:
                out[src] = d
    return out


class _Checker:
    def __init__(self, session: CheckSession, scope: _Scope) -> None:
        self.session = session
        self.scope = scope
        self.catalog = session.catalog

    # -- helpers --------------------------------------------------------------------------------------
    def error(
        self,
        message: str,
        span: Span | None,
        fix: str | None = None,
        code: str = "error",
        related: tuple[str, ...] = (),
        edit: Edit | None = None,
    ) -> DslError:
        s = self.scope
        return DslError(
            message, fix=fix, text=s.text, span=span, origin=s.origin, code=code, related=related, edit=edit
        )

    def wrap(self, span: Span, before: str, after: str = ")") -> Edit:
        """The edit that wraps the text under `span`: before + text + after."""
        return Edit(span, before + self.scope.text[span.start : span.end] + after)

    def snippet(self, span: Span) -> str:
        raw = " ".join(self.scope.text[span.start : span.end].split())
        return raw if len(raw) <= 40 else raw[:37] + "..."

    def guarded_visit(self, e: Expr) -> _Typed:
        try:
            return self.visit(e)
        except RecursionError:
            raise self.error(
                "the expression (with the features it uses) is nested too deeply",
                Span(0, len(self.scope.text)),
                "split it into smaller named features",
                "syntax.too_deep",
            ) from None

    def node(
        self,
        op: str,
        children: list[_Typed],
        args: tuple[tuple[str, Any], ...],
        kind: Kind,
        freq: Frequency,
        debts: dict[str, Debt],
        needs: dict[Frequency, int],
        stateful: bool,
        span: Span,
        label: str,
    ) -> _Typed:
        spec = OPERATORS[op]
        child_hashes = tuple(c.hash for c in children)
        h = node_hash(op, spec.version, args, child_hashes)
        node = Node(
            hash=h,
            op=op,
            children=child_hashes,
            args=args,
            kind=kind,
            frequency=freq,
            availability=max((d.owed for d in debts.values()), default=0),
            warmup=needs.get(freq, 0),
            stateful=stateful,
            needs=tuple(sorted(needs.items(), key=lambda kv: kv[0].value)),
            residual=tuple(debts.values()),
            spans=(span,) if span.end > span.start else (),
            origin=self.scope.origin,
            label=label,
        )
        self.scope.builder.add(node)
        return _Typed(h, kind, freq, debts, span, needs, stateful)

    # -- dispatch -------------------------------------------------------------------------------------
    def visit(self, e: Expr) -> _Typed:
        if isinstance(e, Number | Bool):
            return self.const(e.value, e.span)
        if isinstance(e, Name):
            return self.name(e.name, e.span)
        if isinstance(e, Binary):
            return self.apply(OPERATORS.binary(e.op), e, {"a": e.left, "b": e.right}, self._disp_binary(e))
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Unary):
            return self.unary(e)
        if isinstance(e, Param):
            return self.param(e)
        if isinstance(e, Slot):
            return self.slot(e)
        if isinstance(e, String):
            raise self.error(
                f'text "{e.value}" can only be an option value, like how="last"',
                e.span,
                "remove the quotes if you meant a name",
                "type.string",
            )
        raise self.error(f"unexpected expression {e!r}", None, code="internal")

    @staticmethod
    def _disp_binary(e: Binary) -> str:
        return e.op.upper() if e.op in ("and", "or") else f"`{e.op_text or e.op}`"

    # -- leaves ---------------------------------------------------------------------------------------
    def const(self, value: Any, span: Span) -> _Typed:
        label = _show_value(value)
        return self.node(
            "const", [], (("value", value),), _value_kind(value), Frequency.SCALAR, {}, {}, False, span, label
        )

    def column(self, cd: ColumnDef, span: Span, path: tuple[str, ...]) -> _Typed:
        if cd.kind not in (Kind.FLOAT, Kind.BOOL) or cd.frequency is Frequency.SCALAR:
            raise self.error(
                f"catalog column '{cd.name}' must be a float or bool series on a daily or 1m grid",
                span,
                code="catalog.column",
            )
        lag = int(cd.availability_lag)
        if lag < 0:
            raise self.error(
                f"column '{cd.name}' has a negative availability lag ({lag})",
                span,
                f"set default_availability_lag_days >= 0 ({cd.availability_origin})",
                "catalog.lag",
            )
        debts = {
            cd.source: Debt(
                cd.source, lag, cd.availability_origin, path, (span,), lag, frequency=cd.frequency
            )
        }
        args = (("dataset_id", cd.dataset_id), ("column", cd.column))
        return self.node(
            "column", [], args, cd.kind, cd.frequency, debts, {cd.frequency: 1}, False, span, cd.source
        )

    def input_leaf(self, span: Span) -> _Typed:
        cd = self.scope.x
        fd = self.scope.feature
        assert cd is not None and fd is not None
        t = self.column(cd, span, (cd.name,))
        if fd.availability_lag_override is not None:
            t = self.declare_availability(t, fd, "set", span)
        return t

    def declare_availability(self, t: _Typed, fd: FeatureDef, mode: str, span: Span) -> _Typed:
        lag = fd.availability_lag_override
        if not isinstance(lag, int) or isinstance(lag, bool) or lag < 0:
            raise self.error(
                f"availability_lag_days of {fd.role} '{fd.name}' must be a whole number >= 0, got {lag!r}",
                None,
                code="feature.availability",
            )
        origin = fd.availability_origin or fd.origin
        debts = {}
        for src, d in t.debts.items():
            owed = lag if mode == "set" else max(d.owed, lag)
            moved = owed != d.owed or mode == "set"
            debts[src] = replace(
                d,
                owed=owed,
                origin=origin if moved else d.origin,
                lag=owed,
                reason=None if moved else d.reason,
            )
        args = (("lag", lag), ("mode", mode))
        return self.node(
            "availability",
            [t],
            args,
            t.kind,
            t.freq,
            debts,
            dict(t.needs),
            t.stateful,
            span,
            f"availability {mode} {lag}",
        )

    def name(self, name: str, span: Span) -> _Typed:
        scope = self.scope
        if name == "x" and scope.x is not None:
            return self.input_leaf(span)
        fd = self.catalog.features.get(name)
        if fd is not None:
            return self.feature_ref(fd, span)
        cd = self.catalog.columns.get(name)
        if cd is not None:
            return self.column(cd, span, (name,))
        if name == "x" and scope.feature is not None:
            raise self.error(
                f"x is the input column, but {scope.feature.role} '{scope.feature.name}' has no input_col",
                span,
                "set input_col, or refer to features and columns by name",
                "name.unbound_x",
            )
        spec = OPERATORS.get(name)
        if spec is not None:
            raise self.error(
                f"{name} is a function; call it with its arguments, like {spec.signature()}",
                span,
                code="name.function",
            )
        candidates = list(self.catalog.features) + list(self.catalog.columns)
        if scope.x is not None:
            candidates.append("x")
        hint = _did_you_mean(name, candidates)
        best = hint.split("'")[1] if hint else None
        raise self.error(
            f"unknown name '{name}'" + hint,
            span,
            "check the spelling, or add it to DATASETS (a column) or FEATURE_LIBRARY (a feature)",
            "name.unknown",
            edit=Edit(span, best) if best else None,
        )

    def feature_ref(self, fd: FeatureDef, span: Span) -> _Typed:
        scope = self.scope
        if not fd.enabled:
            raise self.error(
                f"{fd.role} '{fd.name}' is disabled ({fd.origin})",
                span,
                f"set enabled to TRUE on its {fd.origin.sheet or 'catalog'} row, or remove the reference",
                "name.disabled",
            )
        owner = scope.feature
        if owner is not None and owner.declared_inputs is not None and fd.name not in owner.declared_inputs:
            listed = ", ".join(owner.declared_inputs) or "nothing"
            raise self.error(
                f"{owner.role} '{owner.name}' uses '{fd.name}', which is not in its input_feature_ids "
                f"(it lists {listed})",
                span,
                f"add '{fd.name}' to input_feature_ids of '{owner.name}'",
                "feature.undeclared_input",
            )
        stack = self.session.stack
        names = [f.name for f in stack]
        if fd.name in names:
            cycle = [*stack[names.index(fd.name) :], fd]
            chain = " -> ".join(f"{f.name} ({f.origin})" for f in cycle)
            raise self.error(
                f"features reference each other in a cycle: {chain}",
                span,
                "remove one of the references",
                "feature.cycle",
                tuple(sorted({f.name for f in cycle})),
            )
        res = self.session.expand(fd)
        scope.builder.merge(res.nodes)
        word = ROLE_WORD.get(fd.role, fd.role)
        debts = {
            src: replace(d, path=(f"{word} {fd.name}", *d.path), spans=(span,), paid=0, bump=None)
            for src, d in res.debts.items()
        }
        n = res.node
        return _Typed(n.hash, n.kind, n.frequency, debts, span, dict(n.needs), n.stateful)

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

    def param(self, p: Param) -> _Typed:
        value = self._param_value(p)
        if not self.scope.symbolic:
            return self.const(value, p.span)
        if value is _UNBOUND:
            domain = self.scope.domains[p.name]
            kind = {"int": Kind.INT_SCALAR, "float": Kind.FLOAT_SCALAR, "bool": Kind.BOOL_SCALAR}[domain.kind]
        else:
            kind = _value_kind(value)
        return self.node(
            "param",
            [],
            (("name", p.name),),
            kind,
            Frequency.SCALAR,
            {},
            {},
            False,
            p.span,
            f"${p.name}",
        )

    def slot(self, s: Slot) -> _Typed:
        target = self.scope.slots.get(s.name)
        if target is None:
            bound = ", ".join(sorted(self.scope.slots)) or "none"
            raise self.error(
                f"template slot {{{s.name}}} is not bound (bound slots: {bound})",
                s.span,
                f"set the {s.name}_feature_id of the strategy (or pass slots={{'{s.name}': ...}})",
                "slot.unbound",
            )
        if target not in self.catalog.features and target not in self.catalog.columns:
            raise self.error(
                f"template slot {{{s.name}}} is bound to '{target}', which is not a feature or column"
                + _did_you_mean(target, list(self.catalog.features) + list(self.catalog.columns)),
                s.span,
                code="slot.unknown",
            )
        return self.name(target, s.span)

    # -- operators ------------------------------------------------------------------------------------
    def unary(self, e: Unary) -> _Typed:
        if e.op == "-":
            value = _folded_number(e)
            if value is not None:
                return self.const(value, e.span)
            return self.apply(OPERATORS.unary("-"), e, {"a": e.operand}, "`-`")
        return self.apply(OPERATORS.unary("not"), e, {"a": e.operand}, "NOT")

    def call(self, e: Call) -> _Typed:
        spec = OPERATORS.get(e.name)
        disp = f"{e.name.lower()}()"
        if spec is None:
            if e.name in self.catalog.features or e.name in self.catalog.columns:
                raise self.error(
                    f"'{e.name}' is a feature or column, not a function",
                    e.name_span,
                    f"use it as a value, e.g. lag({e.name}, 1)",
                    "name.not_function",
                )
            raise self.error(
                f"unknown function '{e.name}'" + _did_you_mean(e.name.lower(), OPERATORS.callable_names()),
                e.name_span,
                "see the operator table in design/DSL.md",
                "name.unknown_function",
            )
        bound = self.bind(spec, e, disp)
        return self.apply(spec, e, bound, disp)

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
                f"{disp} needs a series{slot}, but {what} is {_describe(k)}",
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

    def apply(self, spec: OpSpec, e: Expr, bound: Mapping[str, Expr | None], disp: str) -> _Typed:
        is_call = isinstance(e, Call)
        items: list[tuple[ArgSpec, _Typed, Span]] = []
        lits: dict[str, Any] = {}
        literal_spans: dict[str, Span] = {}  # where a plain number literal argument is written
        for a in spec.args:
            x = bound.get(a.name)
            if a.role.is_operand:
                assert x is not None
                t = self.visit(x)
                self.check_role(disp, a, t, x.span, is_call)  # type: ignore[attr-defined]
                items.append((a, t, x.span))  # type: ignore[attr-defined]
            else:
                lits[a.name] = self.literal(disp, a, x)
                if isinstance(x, Number):
                    literal_spans[a.name] = x.span
        return self.finish(spec, items, lits, e.span, disp, literal_spans)  # type: ignore[attr-defined]

    def finish(
        self,
        spec: OpSpec,
        items: list[tuple[ArgSpec, _Typed, Span]],
        lits: dict[str, Any],
        span: Span,
        disp: str,
        literal_spans: Mapping[str, Span] | None = None,
    ) -> _Typed:
        children = [t for _, t, _ in items]
        kind = self._result_kind(spec, items, lits, disp)
        freq = self._frequency(spec, items, disp)
        debts = _merge_debts(children)
        high = {k: self.value_of(v) for k, v in lits.items()}  # warm-up grows with every window
        history = spec.history(high) if spec.history is not None else 0
        stateful = spec.stateful or history is None or any(t.stateful for t in children)
        mode = spec.availability
        if mode == "lag":
            k = int(self.value_of(lits["k"], "low"))  # the least lag any binding pays
            k_span = (literal_spans or {}).get("k")
            debts = {
                s: replace(
                    d,
                    owed=max(d.owed - k, 0),
                    paid=d.paid + k,
                    # the first literal lag above the debt's position can be raised instead of wrapping
                    bump=d.bump if d.bump is not None or k_span is None else (k_span, k, items[0][2]),
                )
                for s, d in debts.items()
            }
        elif mode == "asof":
            child = children[0]
            sessions = max(max((d.owed for d in child.debts.values()), default=0), 1)
            lits = {"sessions": sessions}
            high = dict(lits)
            debts = {s: replace(d, owed=0) for s, d in debts.items()}
        elif mode == "to_daily":
            # a new daily debt that only a lag of the aggregate itself can pay: point at to_daily(...)
            debts = {
                s: replace(
                    d,
                    owed=1,
                    lag=1,
                    spans=(span,),
                    paid=0,
                    bump=None,
                    frequency=Frequency.DAILY,
                    reason="to_daily",
                )
                for s, d in debts.items()
            }
        if spec.name == "realized_vol":
            lits = self._realized_vol_args(lits, freq, span)
            high = {k: self.value_of(v) for k, v in lits.items()}
        elif spec.name == "clip":
            self._check_clip(items, span)
        needs = node_needs(spec, high, freq, [t.needs for t in children])
        args = tuple(lits.items())
        if spec.name == "feature":
            label = f"{ROLE_WORD.get(lits['role'], lits['role'])} {lits['name']}"
        else:
            label = spec.symbol or spec.name
            if args:
                label += " " + ", ".join(f"{k}={_show_value(v)}" for k, v in args)
        return self.node(spec.name, children, args, kind, freq, debts, needs, stateful, span, label)

    def _realized_vol_args(self, lits: dict[str, Any], freq: Frequency, span: Span) -> dict[str, Any]:
        ppy = lits.get("periods_per_year")
        annualize = lits.get("annualize", True)
        if isinstance(annualize, ParamRef):
            if annualize.name not in self.scope.params:
                raise self.error(
                    f"realized_vol(): annualize=${annualize.name} must be bound to true or false (it decides "
                    "the scale P)",
                    span,
                    f"pass a value for ${annualize.name} in params_json, or write annualize=true",
                    "param.unbound",
                )
            annualize = self.scope.params[annualize.name]
        if not annualize:
            if ppy is not None:
                raise self.error(
                    "realized_vol(): periods_per_year has no effect with annualize=false",
                    span,
                    "remove one of them",
                    "arg.conflict",
                )
            ppy = 1
        elif ppy is None:
            ppy = MINUTE_PERIODS_PER_YEAR if freq is Frequency.MINUTE else DAILY_PERIODS_PER_YEAR
        return {"n": lits["n"], "periods_per_year": ppy}

    def _check_clip(self, items: list[tuple[ArgSpec, _Typed, Span]], span: Span) -> None:
        lo, hi = items[1][1], items[2][1]
        nodes = self.scope.builder
        lo_n, hi_n = nodes.get(lo.hash), nodes.get(hi.hash)
        if lo_n.op == "const" and hi_n.op == "const" and lo_n.args[0][1] > hi_n.args[0][1]:
            raise self.error(
                "clip(): the lower bound is above the upper bound",
                Span(items[1][2].start, items[2][2].end),
                "swap lo and hi",
                "arg.range",
            )

    def _result_kind(
        self, spec: OpSpec, items: list[tuple[ArgSpec, _Typed, Span]], lits: Mapping[str, Any], disp: str
    ) -> Kind:
        rule = spec.result
        kinds = [t.kind for _, t, _ in items]
        series = any(k.is_series for k in kinds)
        if spec.name in ("eq", "ne") and kinds[0].is_numeric != kinds[1].is_numeric:
            (_, _, sa), (_, _, sb) = items
            raise self.error(
                f"{disp} compares two numbers or two true/false values, but {self.snippet(sa)} is "
                f"{_describe(kinds[0])} and {self.snippet(sb)} is {_describe(kinds[1])}",
                Span(sa.start, sb.end),
                code="type.mismatch",
            )
        if rule == "numeric":
            return Kind.FLOAT if series else Kind.FLOAT_SCALAR
        if rule == "boolean":
            return Kind.BOOL if series else Kind.BOOL_SCALAR
        if rule == "float":
            return Kind.FLOAT
        if rule == "bool":
            return Kind.BOOL
        if rule == "like_x":
            if spec.name == "feature":
                return kinds[0]
            return Kind.FLOAT if kinds[0].is_numeric else Kind.BOOL
        if rule == "like_value":
            value_items = {"if": items[1:3], "fill": items[0:2], "hold": items[1:2]}[spec.name]
            first = value_items[0]
            for other in value_items[1:]:
                if other[1].kind.is_numeric != first[1].kind.is_numeric:
                    raise self.error(
                        f"{disp} needs {first[0].name} and {other[0].name} of the same type, but "
                        f"{self.snippet(first[2])} is {_describe(first[1].kind)} and "
                        f"{self.snippet(other[2])} is {_describe(other[1].kind)}",
                        other[2],
                        "make both numbers or both true/false",
                        "type.mismatch",
                    )
            numeric = first[1].kind.is_numeric
            if numeric:
                return Kind.FLOAT if series else Kind.FLOAT_SCALAR
            return Kind.BOOL if series else Kind.BOOL_SCALAR
        if rule == "to_daily":
            how = lits["how"]
            x_kind = kinds[0]
            if how in ("sum", "mean"):
                if not x_kind.is_numeric:
                    raise self.error(
                        f'to_daily(how="{how}") needs numbers, but {self.snippet(items[0][2])} is true/false',
                        items[0][2],
                        'use how="max" (any), how="min" (all) or how="last"',
                        "type.bool_for_number",
                    )
                return Kind.FLOAT
            return Kind.FLOAT if x_kind.is_numeric else Kind.BOOL
        raise self.error(f"unknown result rule {rule}", None, code="internal")  # pragma: no cover

    def _frequency(self, spec: OpSpec, items: list[tuple[ArgSpec, _Typed, Span]], disp: str) -> Frequency:
        if spec.name == "asof":
            t, span = items[0][1], items[0][2]
            if t.freq is not Frequency.DAILY:
                raise self.error(
                    f"asof() aligns a daily series to the 1m grid, but {self.snippet(span)} is already 1m",
                    span,
                    "remove asof(...)",
                    "frequency.asof",
                )
            return Frequency.MINUTE
        if spec.name == "to_daily":
            t, span = items[0][1], items[0][2]
            if t.freq is not Frequency.MINUTE:
                raise self.error(
                    f"to_daily() aggregates a 1m series per session, but {self.snippet(span)} is already daily",
                    span,
                    "remove to_daily(...)",
                    "frequency.to_daily",
                )
            return Frequency.DAILY
        found: dict[Frequency, Span] = {}
        for _, t, span in items:
            if t.freq is not Frequency.SCALAR:
                found.setdefault(t.freq, span)
        if len(found) > 1:
            d, m = found[Frequency.DAILY], found[Frequency.MINUTE]
            dt, mt = self.snippet(d), self.snippet(m)
            raise self.error(
                f"{disp} mixes grids: {dt} is daily but {mt} is 1m",
                d,
                f"wrap the daily side in asof(...), e.g. asof({dt}); or aggregate the 1m side with "
                f"to_daily({mt})",
                "frequency.mixed",
                edit=self.wrap(d, "asof("),
            )
        return next(iter(found), Frequency.SCALAR)

    # -- composition of a named feature ---------------------------------------------------------------
    def make(self, op: str, children: list[_Typed], lits: dict[str, Any], span: Span) -> _Typed:
        spec = OPERATORS[op]
        operand_specs = [a for a in spec.args if a.role.is_operand]
        items = [(a, t, span) for a, t in zip(operand_specs, children, strict=True)]
        return self.finish(spec, items, lits, span, f"{op}()")

    def compose(self, t: _Typed) -> _Typed:
        """transform -> [availability floor] -> lag(lag_days) -> missing policy -> winsorize -> normalize."""
        fd = self.scope.feature
        assert fd is not None
        span = Span(0, len(self.scope.text))
        where = f"{fd.role} '{fd.name}'"

        def bad(field_name: str, value: Any, expected: str) -> DslError:
            return DslError(
                f"{where}: {field_name} {value!r} is not valid; expected {expected}",
                fix=f"fix the {field_name} cell of this row",
                text=self.scope.text,
                origin=fd.origin,
                code=f"feature.{field_name}",
            )

        if fd.role == "gate" and not t.kind.is_bool:
            raise self.error(
                f"gate '{fd.name}' must be true/false, but its expression is {_describe(t.kind)}",
                span,
                f"compare it, e.g. `{self.snippet(span)} > 0`",
                "type.gate",
            )
        if fd.availability_lag_override is not None and self.scope.x is None:
            t = self.declare_availability(t, fd, "floor", span)
        if not isinstance(fd.lag_days, int) or isinstance(fd.lag_days, bool) or fd.lag_days < 0:
            if isinstance(fd.lag_days, int) and fd.lag_days < 0:
                raise DslError(
                    f"{where}: lag_days {fd.lag_days} is negative, which looks into the future",
                    fix="use lag_days >= 0",
                    text=self.scope.text,
                    origin=fd.origin,
                    code="lag.negative",
                )
            raise bad("lag_days", fd.lag_days, "a whole number >= 0")
        if fd.lag_days and not t.kind.is_series:
            raise bad("lag_days", fd.lag_days, "0 for a constant expression")
        if fd.lag_days:
            t = self.make("lag", [t], {"k": fd.lag_days}, span)
        policy = (fd.missing_policy or "keep").strip().lower()
        if policy != "keep" and not t.kind.is_series:
            raise bad("missing_policy", fd.missing_policy, "keep for a constant expression")
        if policy == "keep":
            pass
        elif policy == "ffill":
            t = self.make("ffill", [t], {"n": None}, span)
        elif policy.startswith("ffill:"):
            n = _int_or_none(policy[6:])
            if n is None or n < 1:
                raise bad("missing_policy", fd.missing_policy, "keep, ffill, ffill:N (N >= 1) or zero")
            t = self.make("ffill", [t], {"n": n}, span)
        elif policy == "zero":
            zero = self.const(False if t.kind.is_bool else 0, Span(0, 0))
            t = self.make("fill", [t, zero], {}, span)
        else:
            raise bad("missing_policy", fd.missing_policy, "keep, ffill, ffill:N or zero")
        if fd.winsorize not in (None, "", "none"):
            parts = str(fd.winsorize).split(":")
            n = _int_or_none(parts[0]) if len(parts) == 2 else None
            k = _float_or_none(parts[1]) if len(parts) == 2 else None
            if n is None or n < 2 or k is None or k <= 0:
                raise bad("winsorize", fd.winsorize, "N:k with N >= 2 rows and k > 0 standard deviations")
            if t.kind is not Kind.FLOAT:
                raise bad("winsorize", fd.winsorize, "empty: only number series can be winsorized")
            t = self.make("winsorize", [t], {"n": n, "k": k}, span)
        if fd.normalize not in (None, "", "none"):
            method, _, rest = str(fd.normalize).strip().lower().partition(":")
            n = _int_or_none(rest)
            if method not in ("zscore", "rank") or n is None or n < (2 if method == "zscore" else 1):
                raise bad("normalize", fd.normalize, "zscore:N (N >= 2) or rank:N")
            if t.kind is not Kind.FLOAT:
                raise bad("normalize", fd.normalize, "empty: only number series can be normalized")
            t = self.make(method, [t], {"n": n}, span)
        t = self.finish(
            OPERATORS["feature"],
            [(OPERATORS["feature"].args[0], t, span)],
            {"name": fd.name, "role": fd.role},
            span,
            "feature",
        )
        return t

    # -- whole-expression checks ----------------------------------------------------------------------
    def check_frequency(self, t: _Typed, expected: Frequency | None) -> None:
        if expected is None or t.freq in (Frequency.SCALAR, expected):
            return
        span = Span(0, len(self.scope.text))
        root = t.span if t.span.end > t.span.start else span  # the expression itself (not a leading "=")
        if expected is Frequency.MINUTE:
            raise self.error(
                "this expression is daily but is evaluated on the 1m grid",
                span,
                "wrap it in asof(...) to use the latest daily value known before each session",
                "frequency.grid",
                edit=self.wrap(root, "asof("),
            )
        raise self.error(
            f"this expression is {t.freq.value} but is evaluated on the {expected.value} grid",
            span,
            'aggregate it per session with to_daily(..., how="last")',
            "frequency.grid",
            edit=self.wrap(root, "to_daily(", ', how="last")'),
        )

    def check_decision(self, t: _Typed, execution: Execution) -> None:
        shift = execution.shift
        late = [d for d in t.debts.values() if d.owed - shift > 0]
        if not late:
            return
        late.sort(key=lambda d: (d.spans[0].start if d.spans else 0, d.source))
        d = late[0]
        need = d.owed - shift
        text = self.scope.text
        span = d.spans[0] if d.spans and d.spans[0].end > d.spans[0].start else Span(0, len(text))
        ref = self.snippet(span)
        chain = " -> ".join([" ".join(text.split()), *d.path])
        on_grid = " on the 1m grid" if d.frequency is Frequency.MINUTE else ""
        if d.reason == "to_daily":
            why = (
                f"a to_daily(...) value of {d.source} is complete only at the end of its session "
                f"(available {d.lag} {_unit(d.frequency, d.lag)} after its date)"
            )
        else:
            stamp = "the bar's stamp" if d.frequency is Frequency.MINUTE else "its date"
            why = (
                f"{d.source} becomes available {d.lag} {_unit(d.frequency, d.lag)} after {stamp}{on_grid} "
                f"(set by {d.origin})"
            )
        message = (
            f"{ref} is not known in time for a decision executed at {execution.label}: {chain}; "
            f"{why}, so it must be lagged by {need} more {_unit(d.frequency, need)}"
        )
        fix, edit = self._availability_fix(d, span, need)
        if shift == 0:
            fix += ", or execute at the next open"
        raise DslError(
            message, fix=fix, text=text, span=span, origin=self.scope.origin, code="availability", edit=edit
        )

    def _availability_fix(self, d: Debt, span: Span, need: int) -> tuple[str, Edit]:
        """The fix as words and as an edit that pays the debt where it can be paid (never above a to_daily)."""
        text = self.scope.text
        ref = self.snippet(span)
        if d.bump is not None:
            k_span, k, operand = d.bump
            total = k + need
            edit = Edit(k_span, str(total))
            if operand == span and d.paid == k:
                return (
                    f"lag {ref} by {total} in total (it is lagged by {k} now), e.g. lag({ref}, {total})",
                    edit,
                )
            return f"raise the lag of lag({self.snippet(operand)}, {k}) from {k} to {total}", edit
        edit = Edit(span, f"lag({text[span.start : span.end]}, {need})")
        full = " ".join(text[span.start : span.end].split())
        wrapped = (
            f"lag({full}, {need})"
            if len(full) <= 60
            else f"wrap the part under the caret in lag(..., {need})"
        )
        if d.paid == 0:
            return (f"write {wrapped}" if len(full) <= 60 else wrapped), edit
        return f"lag {ref} by {need} more (it is lagged by {d.paid} now), e.g. {wrapped}", edit


def _unit(freq: Frequency | None, n: int) -> str:
    """Rows of a grid in the user's words: bars on the 1m grid, trading days on the daily grid."""
    word = {Frequency.MINUTE: "bar", Frequency.DAILY: "trading day"}.get(freq, "period")  # type: ignore[arg-type]
    return word if n == 1 else word + "s"


def _folded_number(e: Expr) -> int | float | None:
    """Value of a number literal under any number of unary minus signs (-5, --5), else None."""
    sign = 1
    while isinstance(e, Unary) and e.op == "-":
        sign = -sign
        e = e.operand
    if isinstance(e, Number):
        return sign * e.value
    return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _float_or_none(text: str) -> float | None:
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


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


# ----------------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------------


def check(
    text: str,
    catalog: Catalog,
    *,
    params: Mapping[str, int | float | bool] | None = None,
    domains: Mapping[str, ParamDomain] | None = None,
    slots: Mapping[str, str] | None = None,
    frequency: Frequency | None = None,
    decision: bool = False,
    execution: Execution = Execution.CLOSE,
    origin: Origin | None = None,
    session: CheckSession | None = None,
) -> Graph:
    """Parse and check one cell against a catalog; returns the typed DAG or raises DslError.

    Top-level `$params` stay symbolic in the graph (hashed by name). `params` binds values (each is
    checked); `domains` declares the values a param may take (checked over the whole domain), so an
    unbound param with a domain is accepted and one graph serves every trial. Node warm-ups are at the
    binding, or at the top of the domain; `dsl.warmup.warmup(graph, binding)` gives any other binding.
    Pass one `session` to share feature expansions between many checks of the same catalog.
    """
    origin = origin or COMMAND_LINE
    ast = parse(text, origin)
    session = _session_for(catalog, session)
    builder = GraphBuilder()
    scope = _Scope(text, origin, params or {}, True, slots or {}, builder, domains=domains or {})
    checker = _Checker(session, scope)
    t = checker.guarded_visit(ast)
    checker.check_frequency(t, frequency)
    if decision:
        checker.check_decision(t, execution)
    return builder.build(
        t.hash,
        text=text,
        canonical=format_expr(ast),
        origin=origin,
        execution=execution if decision else None,
        params=tuple(sorted(scope.used_params.items())),
        domains=tuple(sorted(scope.used_domains.items())),
    )


def _session_for(catalog: Catalog, session: CheckSession | None) -> CheckSession:
    if session is None:
        return CheckSession(catalog)
    if session.catalog is not catalog:
        raise DslError("the session was opened for another catalog", code="api.session")
    return session


def check_catalog(
    catalog: Catalog, *, session: CheckSession | None = None
) -> tuple[dict[str, Graph], list[DslError]]:
    """Check every enabled feature, engineered feature and gate; collect all errors (deduplicated)."""
    session = _session_for(catalog, session)
    graphs: dict[str, Graph] = {}
    errors: list[DslError] = []
    seen: set[tuple[Any, ...]] = set()

    def report(e: DslError) -> None:
        key: tuple[Any, ...] = ((e.origin or COMMAND_LINE).render(), e.column, e.message)
        if e.code == "feature.cycle":
            key = ("cycle", e.related)  # one report per cycle, whichever member found it
        if key not in seen:
            seen.add(key)
            errors.append(e)

    for name, fd in catalog.features.items():
        if not fd.enabled:
            continue
        if fd.declared_inputs is not None:
            for dep in fd.declared_inputs:
                if dep not in catalog.features:
                    report(
                        DslError(
                            f"{fd.role} '{name}' lists '{dep}' in input_feature_ids, which is not a feature"
                            + _did_you_mean(dep, list(catalog.features)),
                            fix="fix or remove that id",
                            text=fd.expression,
                            origin=fd.origin,
                            code="feature.unknown_input",
                        )
                    )
        try:
            graphs[name] = session.feature_graph(fd)
        except DslError as e:
            report(e)
    return graphs, errors
