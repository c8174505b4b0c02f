"""Workbook rows (dicts keyed by header) -> the frozen typed rows of runtime.contracts, converted once.

Why: the expression checker used to run on dict rows at export and on typed rows after loading a snapshot,
two code paths for one catalog. Export now converts its validated rows here once and checks the same typed
rows that `backtest compile` later builds its catalog from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from runtime.config.names import py_name
from runtime.config.schema import BY_NAME
from runtime.contracts import ROW_TYPES


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return MappingProxyType({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def typed_row(sheet: str, raw: Mapping[str, Any], *, partial: bool = False) -> Any:
    """One row as its ROW_TYPES dataclass (dates from ISO text or date objects; blanks take the defaults).

    `partial`: a row that failed validation (a required cell blank or invalid, already reported) is still
    typed, with None in those fields, so later checks see every row; a snapshot never needs it.
    """
    spec = BY_NAME[sheet]
    cls = ROW_TYPES[sheet]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {"row": raw["_row"]}
    for col in spec.cols:
        v = raw.get(col.name)
        if isinstance(v, str) and col.type == "date":
            v = dt.date.fromisoformat(v)
        name = py_name(col.name)
        if name not in names:
            raise AssertionError(f"{cls.__name__} has no field {name}")  # kept in step by a test
        if v is None:
            continue  # the dataclass default applies
        kwargs[name] = _freeze(v)
    if partial:
        for f in dataclasses.fields(cls):
            if (
                f.name not in kwargs
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                kwargs[f.name] = None
    return cls(**kwargs)


def typed_sheets(
    rows: Mapping[str, list[Mapping[str, Any]]], *, partial: bool = False
) -> Mapping[str, tuple[Any, ...]]:
    """Every sheet's rows as typed rows (the shape ConfigSnapshot.sheets has)."""
    return MappingProxyType(
        {name: tuple(typed_row(name, r, partial=partial) for r in table) for name, table in rows.items()}
    )
