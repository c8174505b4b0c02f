"""Canonical node hashing: sha256 over a canonical JSON form, stable across processes and machines.

A node's canonical form is `[op, version, [[arg, value], ...], [child hashes]]` where `op` is the
canonical operator name (aliases resolved), `version` its semantic version, args are in declared order
with defaults filled and numbers normalised (int-valued floats become ints: 60, 60.0 and 6e1 are equal).
Python's `hash()` is never used: it is salted per process.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any

from dsl.contracts import ParamRef

_EXACT_INT = 2**53


def canonical_value(value: Any) -> Any:
    """JSON-ready normalised literal: bools stay bools, int-valued floats become ints."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_INT:
            return int(value)
        return value
    if isinstance(value, ParamRef):
        return {"$param": value.name}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [canonical_value(v) for v in value]
    raise TypeError(f"cannot hash literal of type {type(value).__name__}")


def canonical_form(
    op: str, version: int, args: tuple[tuple[str, Any], ...], children: tuple[str, ...]
) -> str:
    """The exact text that is hashed (compact JSON, ASCII only, no NaN)."""
    body = [op, version, [[k, canonical_value(v)] for k, v in args], list(children)]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def node_hash(op: str, version: int, args: tuple[tuple[str, Any], ...], children: tuple[str, ...]) -> str:
    """Full hex sha256 of the canonical form."""
    return hashlib.sha256(canonical_form(op, version, args, children).encode("ascii")).hexdigest()
