"""Expressions against the exported workbook: the catalog from a snapshot, and `compile` for CLI/notebooks.

Thin glue: the DSL does the work; this module only turns the snapshot into a dsl.Catalog and maps the
CLI's words (close, next_open, daily, 1m) onto the DSL's enums.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dsl
from runtime.config.expressions import build_catalog
from runtime.contracts import ConfigSnapshot, UserError

EXECUTIONS = {e.value: e for e in dsl.Execution}
FREQUENCIES = {"daily": dsl.Frequency.DAILY, "1m": dsl.Frequency.MINUTE}


def catalog_from_snapshot(
    snap: ConfigSnapshot, data_root: Path | None = None, *, remember: bool = False
) -> dsl.Catalog:
    """Every dataset column, feature, engineered feature and gate the workbook defines (`remember`: keep
    the source files' column names for the next process, see runtime/config/columns.py HEADER_CACHE)."""
    return build_catalog(snap.sheets, data_root, remember=remember).catalog


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """`name=value` pairs from the command line (numbers and true/false typed)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--{what} '{item}' is not name=value; write e.g. --{what} window=60")
        v = value.strip()
        if v.lower() in ("true", "false"):
            out[name.strip()] = v.lower() == "true"
        else:
            try:
                out[name.strip()] = int(v)
            except ValueError:
                try:
                    out[name.strip()] = float(v)
                except ValueError:
                    out[name.strip()] = v
    return out


def _references(e: dsl.Expr, params: set[str], slots: set[str]) -> None:
    """The $params and {slots} a parsed text names (iterative: texts may nest deeply)."""
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, dsl.Param):
            params.add(x.name)
        elif isinstance(x, dsl.Slot):
            slots.add(x.name)
        elif isinstance(x, dsl.Unary):
            stack.append(x.operand)
        elif isinstance(x, dsl.Binary):
            stack += [x.left, x.right]
        elif isinstance(x, dsl.Call):
            stack += [*x.args, *(k.value for k in x.kwargs)]


def _refuse_unused(text: str, params: Mapping[str, Any], slots: Mapping[str, str]) -> None:
    """A --param/--slot the expression never names is a typo the user must hear about, not a silent no-op."""
    import difflib

    try:
        ast = dsl.parse(text)
    except dsl.DslError:
        return  # the check reports the syntax error itself, with its caret
    used_params: set[str] = set()
    used_slots: set[str] = set()
    _references(ast, used_params, used_slots)
    for option, given, used, show in (
        ("--param", params, used_params, lambda n: f"${n}"),
        ("--slot", slots, used_slots, lambda n: "{" + n + "}"),
    ):
        for name in given:
            if name in used:
                continue
            close = difflib.get_close_matches(name, sorted(used), n=1, cutoff=0.6)
            has = ", ".join(show(n) for n in sorted(used)) or "none"
            fix = f"did you mean {option} {close[0]}={given[name]}?" if close else "remove it or fix the name"
            raise UserError(
                f"{option} {name}={given[name]} is not used: the expression has no {show(name)} "
                f"(it uses {has}); {fix}"
            )


def compile_expression(
    text: str,
    snap: ConfigSnapshot,
    *,
    frequency: str | None = None,
    execution: str | None = "close",
    params: Mapping[str, Any] | None = None,
    slots: Mapping[str, str] | None = None,
    data_root: Path | None = None,
    catalog: dsl.Catalog | None = None,
) -> dsl.Graph:
    """Check `text` against the snapshot's catalog (or `catalog`, built once by callers that check many
    texts: building it reads every daily source's header); a decision unless execution is None/'none'."""
    if frequency is not None and frequency not in FREQUENCIES:
        raise UserError(f"--frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    if execution not in (None, "none") and execution not in EXECUTIONS:
        raise UserError(f"--execution {execution!r} is not one of {', '.join(EXECUTIONS)}, none")
    decision = execution not in (None, "none")
    _refuse_unused(text, params or {}, slots or {})
    return dsl.check(
        text,
        catalog if catalog is not None else catalog_from_snapshot(snap, data_root),
        params=dict(params or {}),
        slots=dict(slots or {}),
        frequency=FREQUENCIES[frequency] if frequency else None,
        decision=decision,
        execution=EXECUTIONS[execution] if decision else dsl.Execution.CLOSE,
    )
