"""What every command needs: the project root, the snapshot, the resolved paths, the registry, a run log.

Thin on purpose: commands in runtime/cli.py build an App from the global options and pass its parts (a
snapshot, paths, a registry) into pure functions; nothing below reads global state.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from runtime.config.loader import load_snapshot, snapshot_paths
from runtime.contracts import ConfigSnapshot, ResolvedPaths
from runtime.storage.paths import ensure_layout
from runtime.storage.registry import Registry

LOG = logging.getLogger("backtest")
SECRET_ENV = ("DATABENTO_API_KEY",)


def find_project_root(start: Path | None = None) -> Path:
    """Nearest folder (from cwd upwards) holding config/run_config.xlsx or this project's pyproject.toml."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "config" / "run_config.xlsx").exists():
            return p
        pp = p / "pyproject.toml"
        if pp.exists() and re.search(r'^name\s*=\s*"backtest"', pp.read_text(encoding="utf-8"), re.M):
            return p
    return here


def default_workbook(root: Path) -> Path:
    return root / "config" / "run_config.xlsx"


def default_snapshot(root: Path) -> Path:
    return root / "config" / "exports" / "latest.json"


def data_root_cell(snap: ConfigSnapshot, profile: str | None) -> str:
    """'profile 'portable', PATHS!D2': where the DATA_ROOT of a profile is set (for messages)."""
    from openpyxl.utils import get_column_letter

    from runtime.config.schema import BY_NAME

    row = snap.profile(profile)
    col = get_column_letter(BY_NAME["PATHS"].headers.index("DATA_ROOT") + 1)
    return f"profile '{row.profile}', PATHS!{col}{row.row}"


class RedactSecrets(logging.Filter):
    """Belt and braces: a secret from the environment never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for name in SECRET_ENV:
            val = os.environ.get(name)
            if val and val in msg:
                record.msg = msg.replace(val, f"<{name}>")
                record.args = ()
        return True


@dataclass
class App:
    """Global options resolved lazily: commands touch only what they use."""

    root: Path
    config: Path | None = None
    profile: str | None = None
    command: str = "backtest"

    @cached_property
    def snapshot(self) -> ConfigSnapshot:
        return load_snapshot(self.config or default_snapshot(self.root))

    @cached_property
    def paths(self) -> ResolvedPaths:
        paths = snapshot_paths(self.snapshot, self.profile)
        ensure_layout(paths, create_root=False, where=data_root_cell(self.snapshot, self.profile))
        attach_log_file(paths.log_dir, self.command)
        return paths

    @cached_property
    def registry(self) -> Registry:
        timeout = float(os.environ.get("BACKTEST_LOCK_TIMEOUT", "15"))  # seconds to wait for another writer
        reg = Registry(self.paths.duckdb_file, lock_timeout=timeout)
        reg.migrate()
        return reg


_memory: logging.handlers.MemoryHandler | None = None  # type: ignore[name-defined]


def setup_logging(verbose: bool = False) -> None:
    """Console handler is set by the CLI (rich); here: buffer records until the run's log file is known."""
    import logging.handlers

    global _memory
    LOG.setLevel(logging.DEBUG)
    if _memory is None:
        _memory = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)
        _memory.addFilter(RedactSecrets())
        LOG.addHandler(_memory)


def attach_log_file(log_dir: Path, command: str) -> Path | None:
    """One file per run in LOG_DIR; records logged before the paths were known are flushed into it."""
    global _memory
    if any(isinstance(h, logging.FileHandler) for h in LOG.handlers):
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", command).strip("-")[:40]
    path = log_dir / f"{stamp}_{safe}_{os.getpid()}.log"
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    fh.setLevel(logging.DEBUG)
    fh.addFilter(RedactSecrets())
    LOG.addHandler(fh)
    if _memory is not None:
        _memory.setTarget(fh)
        _memory.flush()
        LOG.removeHandler(_memory)
        _memory = None
    return path


def attach_fallback_log(command: str) -> Path | None:
    """For a failure before the command resolved its paths: the run log of the default snapshot's profile.

    Only when that LOG_DIR already exists (a failing run must not create DATA_ROOT folders); any problem
    here is ignored, because it must never mask the error being reported.
    """
    if any(isinstance(h, logging.FileHandler) for h in LOG.handlers):
        return None
    try:
        snap = load_snapshot(default_snapshot(find_project_root()))
        log_dir = snapshot_paths(snap, None).log_dir
        return attach_log_file(log_dir, command) if log_dir.is_dir() else None
    except Exception:  # best effort by design (see docstring)
        return None
