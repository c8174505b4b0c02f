"""The workbook's feature-policy mini-syntax, parsed once into the DSL's typed fields.

FEATURE_LIBRARY / ENGINEERED_FEATURES cells `missing_policy` (keep, ffill, ffill:N, zero), `winsorize`
(N:k) and `normalize` (none, zscore:N, rank:N) become `dsl.MissingPolicy`, `dsl.Winsorize` and
`dsl.Normalize`: validation (runtime/config/validate.py) reports a bad cell with these parsers' message,
and the catalog hands the DSL typed values only, so the DSL never reads workbook text.
"""

from __future__ import annotations

import math
from typing import Any

import dsl

#: the fix of each cell's error (validate.py reports ValueError's text with it)
MISSING_POLICY_FIX = "use keep, ffill, ffill:N (at most N rows) or zero"
WINSORIZE_FIX = "e.g. 252:4 clips at the trailing mean ± 4 std"
NORMALIZE_FIX = "use none, zscore:N or rank:N"


def _positive_int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isdigit() and int(t) >= 1 else None


def parse_missing_policy(value: Any) -> dsl.MissingPolicy:
    """`keep` (or blank), `ffill`, `ffill:N` (N >= 1) or `zero`; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return dsl.MissingPolicy("keep")
    text = str(value).strip().lower()
    if text in ("keep", "zero", "ffill"):
        return dsl.MissingPolicy(text)
    head, sep, tail = text.partition(":")
    n = _positive_int(tail) if sep else None
    if head == "ffill" and n is not None:
        return dsl.MissingPolicy("ffill", n)
    raise ValueError(f"'{value}' is not a missing policy")


def parse_winsorize(value: Any) -> dsl.Winsorize | None:
    """Blank / `none` = no winsorizing; `N:k` with N >= 1 rows and k > 0; ValueError otherwise."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    n_text, sep, k_text = str(value).strip().partition(":")
    n = _positive_int(n_text) if sep else None
    try:
        k = float(k_text)
    except ValueError:
        k = math.nan
    if n is None or not math.isfinite(k) or k <= 0:
        raise ValueError(f"'{value}' is not N:k")
    return dsl.Winsorize(n, k)


def parse_normalize(value: Any) -> dsl.Normalize | None:
    """Blank / `none` = no normalisation; `zscore:N` or `rank:N` (N >= 1); ValueError otherwise."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    method, sep, n_text = str(value).strip().lower().partition(":")
    n = _positive_int(n_text) if sep else None
    if method not in ("zscore", "rank") or n is None:
        raise ValueError(f"'{value}' is not a normalisation")
    return dsl.Normalize(method, n)
