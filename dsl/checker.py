"""Static checks: AST + Catalog -> typed, hash-consed Graph, or a DslError that points at the text.

One pass over the AST computes, per node: kind, frequency, availability debts (per source, with the
reference spans needed for a caret), warm-up per grid and statefulness, and adds the node to a
GraphBuilder under its canonical hash. This module is the walk itself (names, leaves, operator
application through the rules each OpSpec declares) and the public entry points; the concerns live
next to it: argument binding (dsl.binding), availability (dsl.availability), feature expansion with
its session-owned cache (dsl.features), typing / grid / availability rules (dsl.rules), warm-up
(dsl.warmup), shared types (dsl.scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from dsl.availability import AvailabilityChecks
from dsl.binding import _UNBOUND, ArgumentBinding, _folded_number
from dsl.contracts import (
    COMMAND_LINE,
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
    Slot,
    Span,
    String,
    Unary,
)
from dsl.features import CheckSession, FeatureComposition
from dsl.graph import GraphBuilder
from dsl.hashing import node_hash
from dsl.ops import OPERATORS
from dsl.parser import parse
from dsl.printer import format_expr
from dsl.rules import COMMON_GRID, Operand
from dsl.scope import _did_you_mean, _merge_debts, _Scope, _show_value, _Typed, _value_kind
from dsl.warmup import node_needs

# ----------------------------------------------------------------------------------------------------------
# Session: one catalog, its feature expansions (cached for the session's life), cycle detection
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# The checker for one text
# ----------------------------------------------------------------------------------------------------------


class _Checker(ArgumentBinding, AvailabilityChecks, FeatureComposition):
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
        symbol = OPERATORS.binary(e.op).symbol or e.op
        return symbol if symbol.isalpha() else f"`{e.op_text or e.op}`"  # AND / OR as words

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
        word = fd.role
        debts = {
            src: replace(d, path=(f"{word} {fd.name}", *d.path), spans=(span,), paid=0, bump=None)
            for src, d in res.debts.items()
        }
        n = res.node
        return _Typed(n.hash, n.kind, n.frequency, debts, span, dict(n.needs), n.stateful)

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
        """Type one application through the operator's declared rules (dsl.rules), in a fixed order:
        result kind, grid, availability, argument resolution, cross-argument checks, rows needed."""
        children = [t for _, t, _ in items]
        ctx = _Application(self, items, lits, span, disp, literal_spans or {})
        kind = spec.result(ctx)
        freq = (spec.frequency or COMMON_GRID)(ctx)
        debts = _merge_debts(children)
        high = {k: self.value_of(v) for k, v in lits.items()}  # warm-up grows with every window
        history = spec.history(high) if spec.history is not None else 0
        stateful = spec.stateful or history is None or any(t.stateful for t in children)
        if spec.availability is not None:
            debts, changed = spec.availability(ctx, debts)
            if changed is not None:
                lits = ctx.lits = changed
        if spec.resolve is not None:
            lits = ctx.lits = spec.resolve(ctx, freq)
        if spec.validate is not None:
            spec.validate(ctx)
        high = {k: self.value_of(v) for k, v in lits.items()}
        needs = node_needs(spec, high, freq, [t.needs for t in children])
        args = tuple(lits.items())
        if spec.label is not None:
            label = spec.label(lits)
        else:
            label = spec.symbol or spec.name
            if args:
                label += " " + ", ".join(f"{k}={_show_value(v)}" for k, v in args)
        return self.node(spec.name, children, args, kind, freq, debts, needs, stateful, span, label)

    # -- composition of a named feature ---------------------------------------------------------------

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


class _Application:
    """One operator application as the declared rules see it (implements dsl.rules.RuleContext)."""

    def __init__(
        self,
        checker: _Checker,
        items: list[tuple[ArgSpec, _Typed, Span]],
        lits: dict[str, Any],
        span: Span,
        disp: str,
        literal_spans: Mapping[str, Span],
    ) -> None:
        self.checker = checker
        self.operands = [Operand(a, t.kind, t.freq, s, t.hash, t.debts) for a, t, s in items]
        self.lits = lits
        self.span = span
        self.disp = disp
        self.literal_spans = literal_spans

    def snippet(self, span: Span) -> str:
        return self.checker.snippet(span)

    def error(
        self,
        message: str,
        span: Span | None,
        fix: str | None = None,
        code: str = "error",
        edit: Edit | None = None,
    ) -> DslError:
        return self.checker.error(message, span, fix, code, edit=edit)

    def wrap(self, span: Span, before: str, after: str = ")") -> Edit:
        return self.checker.wrap(span, before, after)

    def value_of(self, value: Any, extreme: str = "high") -> Any:
        return self.checker.value_of(value, extreme)

    def const_value(self, hash_: str) -> Any:
        node = self.checker.scope.builder.get(hash_)
        return node.args[0][1] if node.op == "const" else None

    def is_bound(self, name: str) -> bool:
        return name in self.checker.scope.params


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
