"""`backtest context-pack`: context_pack.md for pasting into a new chat (spec section 10.2).

It must never crash on a missing SSD or an unreadable path (it says so instead), and never carry a secret:
values of secret environment variables and anything shaped like a Databento key are redacted. It never copies
itself (a committed context_pack.md would otherwise nest every previous pack) nor archived docs, and files
already in "Key docs" are not repeated. The CLI prints a summary; the whole file with --print.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runtime.app import SECRET_ENV, default_snapshot
from runtime.contracts import ResolvedPaths
from runtime.storage.atomic import atomic_write_text

KEY_DOCS = (
    "design/SPEC.md",
    "design/WORKFLOW.md",
    "design/ROADMAP.md",
    "instructions/00_setup.md",
    "instructions/01_daily_workflow.md",
)
SKIP_DIRS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "data",
    "archive",
    ".ipynb_checkpoints",
    "node_modules",
    "backtest.egg-info",
}
_KEY_SHAPE = re.compile(r"\bdb-[A-Za-z0-9]{20,}\b")
MAX_ENTRIES = 25


def redact(text: str) -> str:
    for name in SECRET_ENV:
        val = os.environ.get(name)
        if val:
            text = text.replace(val, f"<{name} redacted>")
    return _KEY_SHAPE.sub("<api key redacted>", text)


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def tree(path: Path, depth: int, skip: set[str] | None = None, prefix: str = "") -> list[str]:
    """Shallow listing; directories first; at most MAX_ENTRIES per folder; never raises."""
    skip = skip or set()
    try:
        entries = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    except OSError as exc:
        return [f"{prefix}(cannot list {path}: {exc.strerror or exc})"]
    lines = []
    shown = [e for e in entries if e.name not in skip and not e.name.startswith(".tmp-")]
    for e in shown[:MAX_ENTRIES]:
        lines.append(f"{prefix}{e.name}{'/' if e.is_dir() else ''}")
        if e.is_dir() and depth > 1:
            lines.extend(tree(e, depth - 1, skip, prefix + "  "))
    if len(shown) > MAX_ENTRIES:
        lines.append(f"{prefix}... {len(shown) - MAX_ENTRIES} more")
    return lines


def _data_tree(label: str, path: Path | None) -> list[str]:
    if path is None:
        return [f"### {label}", "(not configured)", ""]
    if not path.exists():
        return [f"### {label}: {path}", f"(path {path} does not exist or is not mounted on this machine)", ""]
    return [f"### {label}: {path}", "```", *tree(path, 2), "```", ""]


def _file_excerpt(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "(binary or unreadable)"
    if len(lines) < 300:
        return "\n".join(lines)
    return "\n".join([*lines[:120], f"... ({len(lines) - 180} lines omitted) ...", *lines[-60:]])


PACK_NAME = "context_pack.md"
BINARY_SUFFIXES = (".xlsx", ".parquet", ".zst", ".dbn", ".png", ".duckdb", ".html", ".ipynb")


@dataclass(frozen=True)
class ContextPack:
    """The written pack: its text, where it is, and each section's title and line count (for the summary)."""

    text: str
    path: Path
    sections: tuple[tuple[str, int], ...]

    def summary(self) -> str:
        """What `backtest context-pack` prints by default: the file, its size and its sections."""
        size = len(self.text.encode("utf-8"))
        lines = [f"wrote {self.path} ({len(self.text.splitlines()):,} lines, {size / 1024:,.0f} KiB)"]
        width = max(len(t) for t, _ in self.sections)
        lines += [f"  {title:<{width}}  {n:>6,} lines" for title, n in self.sections]
        lines.append("paste the file into the new chat; `backtest context-pack --print` prints it all")
        return "\n".join(lines)


def _left_out(rel: str) -> str | None:
    """Why a changed file is not copied into the pack (None: it is). Never the pack itself nor archives."""
    parts = Path(rel).parts
    if rel == PACK_NAME:
        return "this file: never repeated inside itself"
    if parts and (parts[0] == "archive" or any(p in SKIP_DIRS for p in parts)):
        return "archived or generated"
    if rel in KEY_DOCS:
        return "in Key docs above"
    if rel.startswith("config/exports/"):
        return "a snapshot: see Config"
    return None


def _changed_files(root: Path) -> list[str]:
    out = ["## Code changed in the last 5 commits", ""]
    changed = _git(root, "log", "-5", "--name-only", "--pretty=format:")
    files = sorted({f for f in (changed or "").splitlines() if f.strip()})
    for f in files:
        p = root / f
        reason = _left_out(f)
        if reason is None and not p.exists():
            reason = "deleted"
        elif reason is None and p.suffix in BINARY_SUFFIXES:
            reason = "binary"
        if reason:
            out.append(f"- {f} ({reason})")
            continue
        out += [f"### {f}", "```", _file_excerpt(p), "```", ""]
    if not files:
        out.append("(no commits)")
    return out


def build_context_pack(root: Path, config: Path | None = None, profile: str | None = None) -> ContextPack:
    """Write context_pack.md (spec 10.2) atomically; secrets redacted; never includes itself or archives."""
    root = Path(root)
    sections: list[tuple[str, list[str]]] = []
    header = [
        "# context_pack.md",
        "",
        f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC "
        "by `backtest context-pack` (never edit by hand).",
        "",
    ]
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    head = _git(root, "rev-parse", "HEAD")
    log = _git(root, "log", "-5", "--pretty=format:%h %ad %s", "--date=short")
    repo = ["## Repo", "", f"- branch: {branch or '(no git)'}", f"- HEAD: {head or '(no commits)'}"]
    repo += ["- last 5 commits:", "```", log or "(none)", "```", ""]
    sections.append(("Repo", repo))
    sections.append(
        ("Folder tree (3 levels)", ["## Folder tree (3 levels)", "```", *tree(root, 3, SKIP_DIRS), "```", ""])
    )
    docs = ["## Key docs", ""]
    for rel in KEY_DOCS:
        p = root / rel
        docs.append(f"### {rel}")
        docs.append(p.read_text(encoding="utf-8").rstrip() if p.exists() else "(missing)")
        docs.append("")
    sections.append(("Key docs", docs))
    cfg, paths = _config_section(root, config, profile)
    sections.append(("Config", cfg))
    sections.append(("SSD data layout", _layout_section(paths)))
    sections.append(("Code changed in the last 5 commits", _changed_files(root)))
    text = redact("\n".join(header + [line for _, body in sections for line in body]) + "\n")
    path = atomic_write_text(root / PACK_NAME, text)
    counts = tuple((title, "\n".join(body).count("\n") + 1) for title, body in sections)
    return ContextPack(text, path, counts)


def _config_section(
    root: Path, config: Path | None, profile: str | None
) -> tuple[list[str], ResolvedPaths | None]:
    """The snapshot in full (or the workbook's headers) and the PATHS it resolves to, if any."""
    out = ["## Config", ""]
    snap_path = Path(config) if config else default_snapshot(root)
    paths = None
    if snap_path.exists():
        out += [
            f"Latest snapshot: `{snap_path}`",
            "",
            "```json",
            snap_path.read_text(encoding="utf-8").rstrip(),
        ]
        out += ["```", ""]
        try:
            from runtime.config.loader import load_snapshot, snapshot_paths

            paths = snapshot_paths(load_snapshot(snap_path), profile)
        except Exception as exc:  # a broken snapshot must not stop the pack
            out += [f"(cannot resolve PATHS from the snapshot: {exc})", ""]
    else:
        out += ["No exported snapshot; workbook sheets and headers:", ""]
        out += _workbook_headers(root / "config" / "run_config.xlsx")
    return out, paths


def _layout_section(paths: ResolvedPaths | None) -> list[str]:
    out = ["## SSD data layout", ""]
    if paths is None:
        return [*out, "(no usable PATHS profile: export the workbook first)", ""]
    out += [
        f"Active profile: `{paths.profile}`",
        "",
        f"- DATA_ROOT: {paths.data_root}",
        f"- RAW_DIR: {paths.raw_dir}",
        f"- CANONICAL_DIR: {paths.canonical_dir}",
        f"- DUCKDB_FILE: {paths.duckdb_file}",
        "",
    ]
    out += _data_tree("DATA_ROOT", paths.data_root)
    out += _data_tree("RAW_DIR", paths.raw_dir)
    out += _data_tree("CANONICAL_DIR", paths.canonical_dir)
    return out


def _workbook_headers(path: Path) -> list[str]:
    if not path.exists():
        return ["(no workbook: run `backtest init`)", ""]
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True)
        lines = []
        for ws in wb.worksheets:
            headers = next(ws.iter_rows(min_row=1, max_row=1, values_only=True), ())
            lines.append(f"- {ws.title}: {', '.join(str(h) for h in headers if h is not None)}")
        return [*lines, ""]
    except Exception as exc:
        return [f"(cannot read {path}: {exc})", ""]
