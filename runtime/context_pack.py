"""`backtest context-pack`: context_pack.md for pasting into a new chat (spec section 10.2).

It must never crash on a missing SSD or an unreadable path (it says so instead), and never carry a secret:
values of secret environment variables and anything shaped like a Databento key are redacted.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

from runtime.app import SECRET_ENV, default_snapshot
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


def build_context_pack(
    root: Path, config: Path | None = None, profile: str | None = None
) -> tuple[str, Path]:
    root = Path(root)
    out: list[str] = [
        "# context_pack.md",
        "",
        f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC "
        "by `backtest context-pack` (never edit by hand).",
        "",
    ]
    # repo metadata
    out += ["## Repo", ""]
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    head = _git(root, "rev-parse", "HEAD")
    log = _git(root, "log", "-5", "--pretty=format:%h %ad %s", "--date=short")
    out += [
        f"- branch: {branch or '(no git)'}",
        f"- HEAD: {head or '(no commits)'}",
        "- last 5 commits:",
        "```",
        log or "(none)",
        "```",
        "",
    ]
    out += ["## Folder tree (3 levels)", "```", *tree(root, 3, SKIP_DIRS), "```", ""]
    # key docs
    out += ["## Key docs", ""]
    for rel in KEY_DOCS:
        p = root / rel
        out.append(f"### {rel}")
        out.append(p.read_text(encoding="utf-8").rstrip() if p.exists() else "(missing)")
        out.append("")
    # config
    out += ["## Config", ""]
    snap_path = Path(config) if config else default_snapshot(root)
    paths = None
    if snap_path.exists():
        out += [
            f"Latest snapshot: `{snap_path}`",
            "",
            "```json",
            snap_path.read_text(encoding="utf-8").rstrip(),
            "```",
            "",
        ]
        try:
            from runtime.config.loader import load_snapshot, snapshot_paths

            paths = snapshot_paths(load_snapshot(snap_path), profile)
        except Exception as exc:  # a broken snapshot must not stop the pack
            out += [f"(cannot resolve PATHS from the snapshot: {exc})", ""]
    else:
        out += ["No exported snapshot; workbook sheets and headers:", ""]
        out += _workbook_headers(root / "config" / "run_config.xlsx")
    # SSD layout
    out += ["## SSD data layout", ""]
    if paths is not None:
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
    else:
        out += ["(no usable PATHS profile: export the workbook first)", ""]
    # code focus
    out += ["## Code changed in the last 5 commits", ""]
    changed = _git(root, "log", "-5", "--name-only", "--pretty=format:")
    files = sorted({f for f in (changed or "").splitlines() if f.strip()})
    for f in files:
        p = root / f
        if not p.exists() or p.suffix in (".xlsx", ".parquet", ".zst", ".dbn", ".png", ".duckdb"):
            out.append(f"- {f} ({'deleted' if not p.exists() else 'binary'})")
            continue
        out += [f"### {f}", "```", _file_excerpt(p), "```", ""]
    if not files:
        out.append("(no commits)")
    text = redact("\n".join(out) + "\n")
    path = atomic_write_text(root / "context_pack.md", text)
    return text, path


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
