"""Workbook -> immutable JSON snapshot (config/exports/run_config_<UTC ts>_<hash8>.json + latest.json).

The content hash covers only what the cells say (typed rows + checked expressions), never the export time,
the file's bytes (xlsx zips carry timestamps) or machine paths: an unchanged workbook exports the same hash
on any machine, and a re-export of it writes nothing new.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.expressions import check_expressions
from runtime.config.names import FORMAT, _enc, canonical_json, content_hash  # noqa: F401 (re-exported)
from runtime.config.reader import read_workbook
from runtime.config.typed import typed_sheets
from runtime.config.validate import Ctx, Rows, validate_workbook
from runtime.contracts import ConfigValidationError, UserError
from runtime.storage.atomic import atomic_write_text, sha256_file
from runtime.storage.paths import resolve_paths


def project_root_of(workbook: Path) -> Path:
    """The folder that holds config/ (CODE_ROOT '.' resolves here)."""
    wb = Path(workbook).resolve()
    return wb.parent.parent if wb.parent.name == "config" else wb.parent


@dataclass(frozen=True)
class ExportResult:
    path: Path | None  # None for validate-only
    latest: Path | None
    content_hash: str
    unchanged: bool
    n_rows: int


def check_workbook(workbook: Path, profile: str | None = None) -> tuple[Rows, dict[str, Any]]:
    """Validate everything; raises ConfigValidationError with ALL errors; returns rows + expression info."""
    raw = read_workbook(workbook)
    ctx = Ctx(project_root=project_root_of(workbook), profile=profile)
    expressions: dict[str, Any] = {}

    def dsl_stage(rows, rep, c):
        # the same typed rows a loaded snapshot has: one catalog code path for export and compile
        expressions.update(check_expressions(typed_sheets(rows, partial=True), rep, _data_root(rows, c)))

    rows, errors = validate_workbook(raw, ctx, extra_stages=(dsl_stage,))
    if errors:
        raise ConfigValidationError(errors)
    return rows, expressions


def export_workbook(
    workbook: Path, out_dir: Path | None = None, profile: str | None = None, now: dt.datetime | None = None
) -> ExportResult:
    """Validate and write the snapshot; nothing is written when any error exists."""
    workbook = Path(workbook).resolve()
    rows, expressions = check_workbook(workbook, profile)
    chash = content_hash(rows, expressions)
    root = project_root_of(workbook)
    if out_dir is None:
        prof = _chosen_profile(rows, profile)
        out_dir = resolve_paths(prof["Profile"], prof, root).export_config_dir
    out_dir = Path(out_dir)
    latest = out_dir / "latest.json"
    n_rows = sum(len(v) for v in rows.values())
    previous = _read_hash(latest)
    if previous is not None and previous[0] == chash and previous[1].exists():
        return ExportResult(previous[1], latest, chash, True, n_rows)
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "format": FORMAT,
        "content_hash": chash,
        "exported_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workbook": {"path": str(workbook), "sha256": sha256_file(workbook)},
        "project_root": str(root),
        "sheets": rows,
        "expressions": expressions,
    }
    text = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False, default=_enc) + "\n"
    path = out_dir / f"run_config_{stamp}_{chash[:8]}.json"
    atomic_write_text(path, text)
    atomic_write_text(latest, text)  # a copy, not a link: Windows has no dependable symlinks
    return ExportResult(path, latest, chash, False, n_rows)


def validate_only(workbook: Path, profile: str | None = None) -> ExportResult:
    rows, expressions = check_workbook(Path(workbook).resolve(), profile)
    return ExportResult(
        None, None, content_hash(rows, expressions), False, sum(len(v) for v in rows.values())
    )


def _data_root(rows: Rows, ctx: Ctx) -> Path | None:
    """DATA_ROOT of the chosen profile if it is usable here (source files are read to learn columns)."""
    from runtime.storage.paths import foreign_path_reason

    try:
        prof = _chosen_profile(rows, ctx.profile)
    except (UserError, KeyError):
        return None
    if any(isinstance(v, str) and foreign_path_reason(v) for k, v in prof.items() if k != "Notes"):
        return None
    return resolve_paths(prof["Profile"], prof, ctx.project_root).data_root


def _chosen_profile(rows: Rows, profile: str | None) -> dict[str, Any]:
    for r in rows.get("PATHS", []):
        if (profile is None and r.get("IsActive")) or (profile is not None and r.get("Profile") == profile):
            return r
    raise UserError("no active PATHS profile")  # unreachable after validation


def _read_hash(latest: Path) -> tuple[str, Path] | None:
    """Content hash of the current latest.json and the timestamped file it copies (if both exist)."""
    if not latest.exists():
        return None
    try:
        doc = json.loads(latest.read_text(encoding="utf-8"))
        chash = doc["content_hash"]
    except (OSError, ValueError, KeyError):
        return None
    matches = sorted(latest.parent.glob(f"run_config_*_{chash[:8]}.json"))
    return (chash, matches[-1]) if matches else (chash, latest.parent / "__missing__")
