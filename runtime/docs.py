"""`backtest docs archive|update`: the spec's doc update protocol (section 10.3).

Docs are replaced wholesale from files someone else wrote; the previous versions always go to
archive/<UTC timestamp>/ first, so nothing is ever lost.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from runtime.contracts import UserError
from runtime.storage.atomic import atomic_copy

DOC_DIRS = ("design", "instructions")


def archive_docs(root: Path, now: dt.datetime | None = None) -> Path:
    now = now or dt.datetime.now(dt.UTC)
    dest = root / "archive" / now.strftime("%Y%m%dT%H%M%S%fZ")
    for d in DOC_DIRS:
        src = root / d
        if src.exists():
            shutil.copytree(src, dest / d)
    if not dest.exists():
        raise UserError(f"nothing to archive: {root} has no design/ or instructions/ folder")
    return dest


def update_docs(root: Path, source: Path) -> tuple[Path, list[Path]]:
    """Archive, then copy every *.md from source/design and source/instructions (or flat *.md by name)."""
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"--from {source} is not a folder; give the folder holding the new docs")
    plan: list[tuple[Path, Path]] = []
    for d in DOC_DIRS:
        for f in sorted((source / d).glob("*.md")) if (source / d).is_dir() else []:
            plan.append((f, root / d / f.name))
    for f in sorted(source.glob("*.md")):  # flat layout: route by existing file name
        target = next(
            (root / d / f.name for d in DOC_DIRS if (root / d / f.name).exists()), root / "design" / f.name
        )
        plan.append((f, target))
    if not plan:
        raise UserError(f"{source} holds no .md files (expected design/*.md, instructions/*.md or *.md)")
    dest = archive_docs(root)
    written = []
    for src, dst in plan:
        atomic_copy(src, dst)
        written.append(dst.relative_to(root))
    return dest, written
