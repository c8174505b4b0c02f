"""Leaf helpers every config module (and the loader) shares: field names, the snapshot format, its hash.

Why a leaf: the loader, the exporter and the expression checker all need these; keeping them here (importing
nothing of ours) is what keeps `loader -> export -> expressions -> loader` from being an import cycle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from openpyxl.utils import get_column_letter

FORMAT = "backtest-config/1"


def py_name(header: str) -> str:
    """Workbook header -> field name: CODE_ROOT -> code_root, IsActive -> is_active, StepNo -> step_no."""
    if header.isupper() or "_" in header:
        return header.lower()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", header).lower()


def _enc(v: Any) -> Any:
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    raise TypeError(f"not JSON-able: {type(v).__name__}")


def canonical_json(obj: Any) -> str:
    """Key-sorted, compact JSON: the bytes the content hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_enc)


def canonical_key(obj: Any) -> str:
    """Key-sorted compact JSON with any other value as its str(): the text run, study and robustness ids
    hash, and parameter sets compare by (numpy scalars are made plain before, runtime.backtest.params)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(sheets: Mapping[str, Any], expressions: Mapping[str, Any]) -> str:
    """Hash of what the cells say (typed rows + checked expressions), never of times or machine paths."""
    payload = canonical_json({"format": FORMAT, "sheets": sheets, "expressions": expressions})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def get(row: Any, header: str) -> Any:
    """A cell value by header, from a dict row (validation) or a typed row (snapshot) alike."""
    if isinstance(row, Mapping):
        return row.get(header)
    v = getattr(row, py_name(header), None)  # like dict.get: a column this sheet does not have is blank
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def rownum(row: Any) -> int:
    """Excel row number of a dict row ('_row') or a typed row (.row)."""
    return int(row["_row"]) if isinstance(row, Mapping) else int(row.row)


def cell_of(headers: tuple[str, ...] | list[str], row: Any, header: str) -> str:
    """'J8' for the cell of `header` in `row` of a sheet with these headers."""
    return f"{get_column_letter(list(headers).index(header) + 1)}{rownum(row)}"
