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


def catalog_from_snapshot(snap: ConfigSnapshot, data_root: Path | None = None) -> dsl.Catalog:
    """Every dataset column, feature, engineered feature and gate the workbook defines."""
    return build_catalog(snap.sheets, data_root).catalog


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


def compile_expression(
    text: str,
    snap: ConfigSnapshot,
    *,
    frequency: str | None = None,
    execution: str | None = "close",
    params: Mapping[str, Any] | None = None,
    slots: Mapping[str, str] | None = None,
    data_root: Path | None = None,
) -> dsl.Graph:
    """Check `text` against the snapshot's catalog; a decision for `execution` unless execution is None/'none'."""
    if frequency is not None and frequency not in FREQUENCIES:
        raise UserError(f"--frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    if execution not in (None, "none") and execution not in EXECUTIONS:
        raise UserError(f"--execution {execution!r} is not one of {', '.join(EXECUTIONS)}, none")
    decision = execution not in (None, "none")
    return dsl.check(
        text,
        catalog_from_snapshot(snap, data_root),
        params=dict(params or {}),
        slots=dict(slots or {}),
        frequency=FREQUENCIES[frequency] if frequency else None,
        decision=decision,
        execution=EXECUTIONS[execution] if decision else dsl.Execution.CLOSE,
    )
