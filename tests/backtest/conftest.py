"""A real demo project for the backtest tests: template workbook -> export -> demo data -> ingest -> derive.

Session-scoped and built once through the real CLI (tests/foundation/helpers.demo_project): the real daily
demo series (arch: S&P 500, VIX from 2014, Moody's credit, the CTA proxy) and synthetic ES trades for the
2018-11-05..2018-11-08 trade dates inside bt_es_delta's range (2018-11-05..2018-12-20; the derived data
cuts the range to them).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.contracts import ConfigSnapshot, ResolvedPaths
from runtime.storage.registry import Registry
from tests.conftest import CliResult
from tests.foundation.helpers import demo_project

#: runs `backtest` with `run` registered the way runtime/cli.py does (one line), if it is not there yet
RUNNER = (
    "from runtime.cli import app, main\n"
    "from runtime.backtest.cli import run_cmd\n"
    "names = {c.name or c.callback.__name__ for c in app.registered_commands}\n"
    "if 'run' not in names: app.command('run')(run_cmd)\n"
    "main()\n"
)


def run_backtest_cli(args: list[str], cwd: Path, timeout: float = 300) -> CliResult:
    """The real console entry point (real exit code and stderr) with the `run` command."""
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    return CliResult(p.returncode, p.stdout, p.stderr)


@dataclass(frozen=True)
class Project:
    root: Path
    snapshot: ConfigSnapshot
    paths: ResolvedPaths
    reg: Registry


def open_project(root: Path) -> Project:
    from runtime.config.loader import load_snapshot, snapshot_paths

    snap = load_snapshot(root / "config" / "exports" / "latest.json")
    paths = snapshot_paths(snap, None)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    return Project(root, snap, paths, reg)


def es_demo_project(root: Path) -> Project:
    """The daily demo series plus 4 days of small synthetic ES (2018-11-05..08), ingested and derived."""
    return open_project(
        demo_project(
            root,
            ["demo-data", "--days", "4", "--trades-per-day", "3000", "--start", "2018-11-05"],
            ["ingest", "daily"],
            ["ingest", "databento"],
            ["derive"],
        )
    )


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return es_demo_project(tmp_path_factory.mktemp("backtest") / "proj")


@pytest.fixture(scope="session")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Exported and initialised, demo files written, nothing ingested: no instrument has prices."""
    return open_project(demo_project(tmp_path_factory.mktemp("backtest_bare") / "proj"))
