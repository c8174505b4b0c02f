"""Shared fixtures: a real project folder (workbook + export + DATA_ROOT) in tmp, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "data" / "databento_samples"  # real Databento files (vendored, Apache-2.0)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run the real console entry point in a subprocess (real exit codes, real stderr)."""
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run(
        [sys.executable, "-c", "from runtime.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return CliResult(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project folder with the template workbook (like `backtest init` on a new machine)."""
    from runtime.config.template import write_template

    root = tmp_path / "proj"
    (root / "config").mkdir(parents=True)
    write_template(root / "config" / "run_config.xlsx")
    return root


@pytest.fixture
def data_env(project: Path):
    """The template exported, its DATA_ROOT laid out and the registry migrated: (snapshot, paths, registry)."""
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.storage.paths import ensure_layout
    from runtime.storage.registry import Registry

    export_workbook(project / "config" / "run_config.xlsx")
    snap = load_snapshot(project / "config" / "exports" / "latest.json")
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    return snap, paths, reg
