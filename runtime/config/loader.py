"""JSON snapshot -> ConfigSnapshot of frozen, typed rows (what every command works from).

The loader re-checks the content hash, so a snapshot edited by hand is refused rather than trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

from runtime.config.names import FORMAT, content_hash, py_name
from runtime.config.schema import BY_NAME
from runtime.config.typed import typed_sheets
from runtime.contracts import ConfigSnapshot, ExpressionInfo, ResolvedPaths, UserError
from runtime.storage.paths import foreign_path_reason, resolve_paths


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
    sheets = typed_sheets(doc["sheets"])
    expressions = {k: ExpressionInfo(**v) for k, v in doc.get("expressions", {}).items()}
    return ConfigSnapshot(
        path=path,
        content_hash=doc["content_hash"],
        workbook_sha256=doc["workbook"]["sha256"],
        workbook_path=doc["workbook"]["path"],
        exported_at=doc["exported_at"],
        project_root=Path(doc["project_root"]),
        sheets=sheets,
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
