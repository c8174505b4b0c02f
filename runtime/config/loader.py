"""JSON snapshot -> ConfigSnapshot of frozen, typed rows (what every command works from).

The loader re-checks the content hash, so a snapshot edited by hand is refused rather than trusted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runtime.config.names import FORMAT, content_hash, py_name
from runtime.config.schema import BY_NAME
from runtime.contracts import ROW_TYPES, ConfigSnapshot, ExpressionInfo, ResolvedPaths, UserError
from runtime.storage.paths import foreign_path_reason, resolve_paths


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return MappingProxyType({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _typed(sheet: str, raw: dict[str, Any]) -> Any:
    spec = BY_NAME[sheet]
    cls = ROW_TYPES[sheet]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {"row": raw["_row"]}
    for col in spec.cols:
        v = raw.get(col.name)
        if v is not None and col.type == "date":
            v = dt.date.fromisoformat(v)
        name = py_name(col.name)
        if name not in names:
            raise AssertionError(f"{cls.__name__} has no field {name}")  # kept in step by a test
        if v is None:
            continue  # the dataclass default applies
        kwargs[name] = _freeze(v)
    return cls(**kwargs)


def load_snapshot(path: Path) -> ConfigSnapshot:
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"config snapshot {path} not found; run `backtest config export` first (or pass --config PATH)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: not a readable snapshot ({exc}); run `backtest config export` again"
        ) from None
    if doc.get("format") != FORMAT:
        raise UserError(f"{path}: format {doc.get('format')!r} is not {FORMAT}; re-export with this version")
    if content_hash(doc["sheets"], doc.get("expressions", {})) != doc.get("content_hash"):
        raise UserError(f"{path}: content does not match its hash (edited by hand?); re-export the workbook")
    sheets = {name: tuple(_typed(name, r) for r in rows) for name, rows in doc["sheets"].items()}
    expressions = {k: ExpressionInfo(**v) for k, v in doc.get("expressions", {}).items()}
    return ConfigSnapshot(
        path=path,
        content_hash=doc["content_hash"],
        workbook_sha256=doc["workbook"]["sha256"],
        workbook_path=doc["workbook"]["path"],
        exported_at=doc["exported_at"],
        project_root=Path(doc["project_root"]),
        sheets=MappingProxyType(sheets),
        expressions=MappingProxyType(expressions),
    )


def snapshot_paths(snap: ConfigSnapshot, profile: str | None = None) -> ResolvedPaths:
    """Absolute paths of the active (or named) profile on this machine."""
    row = snap.profile(profile)
    raw = {py: getattr(row, py_name(py)) for py in BY_NAME["PATHS"].headers}
    for col, v in raw.items():
        if isinstance(v, str) and col not in ("Profile", "Notes") and (reason := foreign_path_reason(v)):
            raise UserError(
                f"PATHS profile '{row.profile}': {col} {reason}; pass --profile with a profile for this machine "
                "or activate one in the workbook and re-export"
            )
    return resolve_paths(row.profile, raw, snap.project_root)
