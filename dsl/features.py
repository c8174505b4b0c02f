"""Named features: their expansion into a composed definition, cached per CheckSession.

A feature (FEATURE_LIBRARY / ENGINEERED_FEATURES / GATES row) expands once per session into
transform -> [availability] -> lag(lag_days) -> missing policy -> winsorize -> normalize -> feature node,
from the typed FeatureDef fields (the runtime parses the workbook's mini-syntax). The session owns the
cache, so a rebuilt catalog never sees another catalog's expansions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dsl.contracts import (
    Catalog,
    DslError,
    Expr,
    FeatureDef,
    Graph,
    Kind,
    MissingPolicy,
    Name,
    Normalize,
    Span,
    Winsorize,
)
from dsl.graph import GraphBuilder
from dsl.ops import OPERATORS
from dsl.parser import parse
from dsl.printer import format_expr
from dsl.rules import describe
from dsl.scope import _did_you_mean, _FeatureResult, _Scope, _Typed


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
        from dsl.checker import _Checker  # the walk imports this module; import it back lazily

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


class FeatureComposition:
    """Composition of a named feature's definition (a mixin of the checker)."""

    scope: Any
    error: Callable[..., Any]  # provided by the checker
    snippet: Callable[..., Any]  # provided by the checker
    finish: Callable[..., Any]  # provided by the checker
    const: Callable[..., Any]  # provided by the checker
    declare_availability: Callable[..., Any]  # provided by the checker

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
                f"gate '{fd.name}' must be true/false, but its expression is {describe(t.kind)}",
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
        policy, w, nz = fd.missing_policy, fd.winsorize, fd.normalize
        if (
            not isinstance(policy, MissingPolicy)
            or not isinstance(w, Winsorize | None)
            or not isinstance(nz, Normalize | None)
        ):
            raise DslError(
                f"{where}: missing_policy / winsorize / normalize must be dsl.MissingPolicy / Winsorize / "
                "Normalize values (the runtime parses the workbook's text into them)",
                text=self.scope.text,
                origin=fd.origin,
                code="api.feature",
            )
        if policy.mode != "keep" and not t.kind.is_series:
            raise bad("missing_policy", str(policy), "keep for a constant expression")
        if policy.mode == "ffill":
            t = self.make("ffill", [t], {"n": policy.limit}, span)
        elif policy.mode == "zero":
            zero = self.const(False if t.kind.is_bool else 0, Span(0, 0))
            t = self.make("fill", [t, zero], {}, span)
        if w is not None:
            if w.n < 2 or not w.k > 0 or not math.isfinite(w.k):
                raise bad("winsorize", str(w), "N:k with N >= 2 rows and k > 0 standard deviations")
            if t.kind is not Kind.FLOAT:
                raise bad("winsorize", str(w), "empty: only number series can be winsorized")
            t = self.make("winsorize", [t], {"n": w.n, "k": float(w.k)}, span)
        if nz is not None:
            if nz.method not in ("zscore", "rank") or nz.n < (2 if nz.method == "zscore" else 1):
                raise bad("normalize", str(nz), "zscore:N (N >= 2) or rank:N")
            if t.kind is not Kind.FLOAT:
                raise bad("normalize", str(nz), "empty: only number series can be normalized")
            t = self.make(nz.method, [t], {"n": nz.n}, span)
        t = self.finish(
            OPERATORS["feature"],
            [(OPERATORS["feature"].args[0], t, span)],
            {"name": fd.name, "role": fd.role},
            span,
            "feature",
        )
        return t
