"""Resolve a PATHS profile to absolute paths on this machine, and create the DATA_ROOT layout.

Rules (design/DECISIONS.md): CODE_ROOT relative -> against the project root (the folder holding config/);
DATA_ROOT and EXPORT_CONFIG_DIR relative -> against CODE_ROOT; DUCKDB_FILE, RAW_DIR, CANONICAL_DIR,
DERIVED_DIR, FEATURE_CACHE_DIR, RUNS_DIR, LOG_DIR relative -> against DATA_ROOT; blanks take the spec's
default layout. A Windows drive path on a POSIX machine (or the reverse) is not usable here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

from runtime.contracts import ResolvedPaths, UserError

#: PATHS column -> (base it is relative to, default when blank)
PATH_COLUMNS: dict[str, tuple[str, str]] = {
    "CODE_ROOT": ("project", "."),
    "DATA_ROOT": ("CODE_ROOT", "data"),
    "DUCKDB_FILE": ("DATA_ROOT", "duckdb/research.duckdb"),
    "RAW_DIR": ("DATA_ROOT", "raw"),
    "CANONICAL_DIR": ("DATA_ROOT", "canonical"),
    "DERIVED_DIR": ("DATA_ROOT", "derived"),
    "FEATURE_CACHE_DIR": ("DATA_ROOT", "features_cache"),
    "RUNS_DIR": ("DATA_ROOT", "runs"),
    "LOG_DIR": ("DATA_ROOT", "logs"),
    "EXPORT_CONFIG_DIR": ("CODE_ROOT", "config/exports"),
}


def foreign_path_reason(value: str) -> str | None:
    """Why `value` cannot be a path on this OS (None when it can)."""
    v = value.strip()
    if os.name != "nt":
        win = PureWindowsPath(v)
        if win.drive or v.startswith("\\\\") or "\\" in v:
            return f"'{v}' is a Windows path and this machine is not Windows"
    else:
        if PurePosixPath(v).is_absolute() and not PureWindowsPath(v).drive:
            return f"'{v}' is a POSIX absolute path and this machine is Windows"
    return None


def _to_path(value: str) -> Path:
    return Path(value.strip().replace("\\", "/") if os.name != "nt" else value.strip())


def resolve_paths(profile: str, row: Mapping[str, str | None], project_root: Path) -> ResolvedPaths:
    """Turn one PATHS row into absolute paths (no filesystem access)."""
    resolved: dict[str, Path] = {}
    bases = {"project": Path(project_root).resolve()}
    for col, (base_name, default) in PATH_COLUMNS.items():
        raw = row.get(col)
        value = str(raw).strip() if raw not in (None, "") else default
        p = _to_path(value)
        base = bases[base_name] if base_name == "project" else resolved[base_name]
        full = p if p.is_absolute() else base / p
        resolved[col] = Path(os.path.normpath(full))
    return ResolvedPaths(
        profile=profile,
        code_root=resolved["CODE_ROOT"],
        data_root=resolved["DATA_ROOT"],
        duckdb_file=resolved["DUCKDB_FILE"],
        raw_dir=resolved["RAW_DIR"],
        canonical_dir=resolved["CANONICAL_DIR"],
        derived_dir=resolved["DERIVED_DIR"],
        feature_cache_dir=resolved["FEATURE_CACHE_DIR"],
        runs_dir=resolved["RUNS_DIR"],
        log_dir=resolved["LOG_DIR"],
        export_config_dir=resolved["EXPORT_CONFIG_DIR"],
    )


def unusable_reason(path: Path) -> str | None:
    """None if `path` exists as a writable folder or a folder could be created there; else why not.

    Why a probe: os.access() says yes for root under /proc and on some network shares; the only honest test
    is to create (and at once remove) a folder in the nearest existing parent. Nothing is left behind.
    """
    p = Path(path)
    probe = p
    while not probe.exists():
        parent = probe.parent
        if parent == probe:
            return f"'{p}' has no existing parent folder (is the drive mounted?)"
        probe = parent
    if not probe.is_dir():
        return f"'{probe}' exists but is not a folder"
    if not os.access(probe, os.W_OK):
        return f"'{probe}' is not writable by this user"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".backtest-probe-", dir=probe))
    except OSError as exc:
        return f"no folder can be created in '{probe}' ({exc.strerror or exc})"
    return None


class DataRootMissing(UserError):
    """DATA_ROOT does not exist: never created silently (an unmounted drive would get an empty registry)."""


def ensure_layout(paths: ResolvedPaths, *, create_root: bool = True, where: str = "") -> list[Path]:
    """Create the spec's DATA_ROOT layout; returns the folders that were created.

    With create_root False (every command but `backtest init --data`), a DATA_ROOT that does not exist is an
    error naming `where` (profile and PATHS cell): an unplugged drive must not become a fresh empty store.
    """
    where = where or f"profile '{paths.profile}', PATHS DATA_ROOT"
    if not create_root and not paths.data_root.is_dir():
        what = "is not a folder" if paths.data_root.exists() else "does not exist"
        raise DataRootMissing(
            f"DATA_ROOT {paths.data_root} {what} ({where}); is the drive mounted? Mount it, or fix the cell and "
            "run `backtest config export`; to start a new, empty data folder there run `backtest init --data`"
        )
    created = []
    try:
        for d in (paths.data_root, *paths.layout_dirs()):
            if not d.exists():
                d.mkdir(parents=True, exist_ok=True)
                created.append(d)
    except OSError as exc:
        raise UserError(
            f"cannot create {exc.filename or paths.data_root} ({exc.strerror or exc}; {where}); "
            "point DATA_ROOT at a writable folder on this machine and re-export"
        ) from None
    return created
