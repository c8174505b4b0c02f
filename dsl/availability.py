"""Availability: declared availability of a feature (set / floor), the decision check against an
execution time, and the fix (words and a machine-applicable edit) that pays a debt.

A mixin of the checker (dsl.checker._Checker). Per-operator availability rules (lag pays, asof shifts,
to_daily owes a session) are declared on the OpSpec (dsl.rules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dsl.contracts import Debt, DslError, Edit, Execution, FeatureDef, Frequency, Span
from dsl.scope import _Typed


class AvailabilityChecks:
    """Availability checks of the checker (see module docstring)."""

    scope: Any
    error: Callable[..., Any]  # provided by the checker
    snippet: Callable[..., Any]  # provided by the checker
    node: Callable[..., Any]  # provided by the checker

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
