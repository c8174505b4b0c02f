"""Developer entry point behind `make demo|test|lint|bench` (stdlib only, so it runs before the venv exists).

Why a Python script: the user works on Windows without make; `py -3 -m runtime.dev demo` is the same thing
as `make demo`. It creates `.venv` with `python -m venv`, installs the project (re-installs only when
pyproject.toml changed), then runs the real CLI commands in order, exactly as a user would type them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
DEMO_EXPR = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"


def _venv_bin(name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / sub / f"{name}{suffix}"


def _run(args: list[str | Path], env: dict[str, str] | None = None) -> None:
    printable = " ".join(str(a) for a in args)
    print(f"\n$ {printable}", flush=True)
    rc = subprocess.call([str(a) for a in args], cwd=ROOT, env=env)
    if rc != 0:
        print(f"\nstep failed (exit {rc}): {printable}", file=sys.stderr)
        raise SystemExit(rc)


def ensure_venv() -> Path:
    """Create .venv and install the project with its dev extras; skip when pyproject.toml is unchanged."""
    py = _venv_bin("python")
    if not py.exists():
        _run([sys.executable, "-m", "venv", VENV])
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    marker = VENV / f".installed-{digest}"
    if not marker.exists():
        _run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        _run([py, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"])
        for old in VENV.glob(".installed-*"):
            old.unlink()
        marker.write_text("ok\n")
    return py


def demo(py: Path) -> None:
    """The main flow end to end on the embedded default profile (DATA_ROOT = ./data)."""
    bt = _venv_bin("backtest")
    if not (ROOT / "config" / "run_config.xlsx").exists():
        _run([bt, "init"])
    _run([bt, "config", "export"])
    _run([bt, "demo-data"])
    _run([bt, "config", "validate"])  # now the source files exist: feature columns are checked against them
    _run([bt, "ingest", "daily"])
    _run([bt, "ingest", "databento"])
    _run([bt, "derive"])
    _run([bt, "charts", "--demo"])
    _run([bt, "compile", DEMO_EXPR])
    _run([bt, "status"])
    _run([bt, "context-pack", "--quiet"])


def test(py: Path) -> None:
    _run([py, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup"])


def lint(py: Path) -> None:
    _run([py, "-m", "ruff", "check", "dsl", "compiler", "runtime", "tests"])
    _run([py, "-m", "ruff", "format", "--check", "dsl", "compiler", "runtime", "tests"])


def bench(py: Path) -> None:
    _run([py, "-m", "tests.benchmarks.run"])


TASKS = {"demo": demo, "test": test, "lint": lint, "bench": bench}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in TASKS:
        print(f"usage: python -m runtime.dev {{{'|'.join(TASKS)}}}", file=sys.stderr)
        raise SystemExit(2)
    py = ensure_venv()
    TASKS[argv[0]](py)


if __name__ == "__main__":
    main()
