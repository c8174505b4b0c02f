"""`backtest docs archive|update`: the spec's doc update protocol (section 10.3).

Docs are replaced wholesale from files someone else wrote; the previous versions always go to
archive/<UTC timestamp>/ first, so nothing is ever lost. An archive is identified by the content hash of the
docs it holds: archiving unchanged docs again says where they already are instead of making a duplicate.
``docs update`` only takes the design docs it knows (or, with ``add_new``, new ones named explicitly) and
refuses a folder holding anything else, before writing anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runtime.contracts import UserError
from runtime.storage.atomic import atomic_copy

DOC_DIRS = ("design", "instructions")
#: The docs the spec names (sections 0 and 10), known even before they exist in a project.
KNOWN_DOCS = {
    "design": ("SPEC.md", "WORKFLOW.md", "ROADMAP.md", "DECISIONS.md", "PROGRESS.md", "DSL.md"),
    "instructions": ("00_setup.md", "01_daily_workflow.md"),
}
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ArchiveResult:
    """Where the docs are archived; ``created`` is False when an identical archive already existed."""

    path: Path
    created: bool
    digest: str


@dataclass(frozen=True)
class UpdateResult:
    """The archive of the previous docs and the files written (or found identical), relative to the root."""

    archive: ArchiveResult | None  # None when the project had no docs to archive
    written: list[Path]
    unchanged: list[Path]


def docs_digest(base: Path) -> str | None:
    """sha256 over every file of base/design and base/instructions (relative path + bytes); None if none."""
    h = hashlib.sha256()
    n = 0
    for d in DOC_DIRS:
        folder = base / d
        if not folder.is_dir():
            continue
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = f.relative_to(base).as_posix()
            h.update(rel.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
            n += 1
    return h.hexdigest() if n else None


def _existing_archive(root: Path, digest: str) -> Path | None:
    """The newest finished archive holding exactly these docs."""
    folder = root / "archive"
    if not folder.is_dir():
        return None
    done = sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(_TMP_PREFIX)), reverse=True
    )
    return next((p for p in done if docs_digest(p) == digest), None)


def archive_docs(root: Path, now: dt.datetime | None = None) -> ArchiveResult:
    """Copy design/ and instructions/ to archive/<timestamp>/ unless an identical archive exists.

    The copy goes to a temporary folder renamed at the end, so an interrupted archive never looks finished.
    """
    root = Path(root)
    digest = docs_digest(root)
    if digest is None:
        raise UserError(f"nothing to archive: {root} has no files in design/ or instructions/")
    same = _existing_archive(root, digest)
    if same is not None:
        return ArchiveResult(same, False, digest)
    now = now or dt.datetime.now(dt.UTC)
    dest = root / "archive" / now.strftime("%Y%m%dT%H%M%S%fZ")
    tmp = dest.with_name(_TMP_PREFIX + dest.name)
    try:
        for d in DOC_DIRS:
            if (root / d).is_dir():
                shutil.copytree(root / d, tmp / d)
        os.replace(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            f"cannot archive the docs to {dest}: {exc.strerror or exc}; check the folder"
        ) from None
    return ArchiveResult(dest, True, digest)


def _is_known(root: Path, target: Path) -> bool:
    rel = target.relative_to(root)
    return target.exists() or rel.name in KNOWN_DOCS.get(rel.parts[0], ())


def plan_update(root: Path, source: Path, add_new: bool = False) -> list[tuple[Path, Path]]:
    """(source file, target) for every doc in ``source``; a UserError listing every file it will not take.

    Takes source/design/*.md, source/instructions/*.md and flat source/*.md (routed by the name of an existing
    or known doc). Refused: unknown doc names (unless ``add_new``), two files for one target, and any other
    file (hidden files such as .DS_Store are ignored).
    """
    root, source = Path(root), Path(source)
    if not source.is_dir():
        raise UserError(f"--from {source} is not a folder; give the folder holding the new docs")
    plan: list[tuple[Path, Path]] = []
    for d in DOC_DIRS:
        plan += [(f, root / d / f.name) for f in sorted((source / d).glob("*.md")) if f.is_file()]
    for f in sorted(p for p in source.glob("*.md") if p.is_file()):  # flat layout: route by a doc's name
        where = next((d for d in DOC_DIRS if _is_known(root, root / d / f.name)), "design")
        plan.append((f, root / where / f.name))
    taken = {src for src, _ in plan}
    problems: list[str] = []
    others = sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and p not in taken
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    for p in others:
        problems.append(
            f"{p}: not a doc this command takes (design/*.md, instructions/*.md or *.md); move it out of {source}"
        )
    seen: dict[Path, Path] = {}
    for src, dst in plan:
        if dst in seen:
            problems.append(
                f"{src} and {seen[dst]} would both replace {dst.relative_to(root)}; keep one of them"
            )
        seen[dst] = src
    unknown = [(src, dst) for src, dst in plan if not _is_known(root, dst)]
    if unknown and not add_new:
        for src, dst in unknown:
            problems.append(
                f"{src}: {dst.relative_to(root).as_posix()} is not a known design doc (a typo of a doc name?); "
                "rename it, or pass --add-new to add it as a new doc"
            )
    if problems:
        raise UserError(
            f"docs update --from {source}: nothing written; {len(problems)} file(s) refused:\n  "
            + "\n  ".join(problems)
        )
    if not plan:
        raise UserError(f"{source} holds no .md files (expected design/*.md, instructions/*.md or *.md)")
    return plan


def update_docs(root: Path, source: Path, add_new: bool = False) -> UpdateResult:
    """Check the whole folder first (``plan_update``), archive the current docs, then copy the changed files."""
    root = Path(root)
    plan = plan_update(root, source, add_new)
    archive = archive_docs(root) if docs_digest(root) is not None else None
    written, unchanged = [], []
    for src, dst in plan:
        if dst.is_file() and dst.read_bytes() == src.read_bytes():
            unchanged.append(dst.relative_to(root))
            continue
        atomic_copy(src, dst)
        written.append(dst.relative_to(root))
    return UpdateResult(archive, written, unchanged)
