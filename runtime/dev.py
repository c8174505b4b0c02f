"""Developer entry point behind `make demo|test|lint|bench|bench-scale|lab` (stdlib only: it runs before the venv).

Why a Python script: the user works on Windows without make; `py -3 -m runtime.dev demo` is the same thing
as `make demo`. It creates `.venv` with `python -m venv`, installs the project (re-installs only when
pyproject.toml changed), then runs the real CLI commands in order, exactly as a user would type them.

`test` also brings the operating-system programs the tests need and pip cannot give (headless Chromium for
the chart tests). Which action to take is decided by a pure function, `plan_os_setup`, over a description
of the host (`Host`), so the decision is tested on every platform without touching the machine.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
DEMO_EXPR = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"
BROWSER_ENV = "BACKTEST_CHROMIUM"  # tests read the browser found here, so they use the same one


@dataclass(frozen=True)
class OsNeed:
    """A program the tests need that pip cannot install: how to find it, and Debian's package for it."""

    name: str
    debian_package: str
    executables: tuple[str, ...]
    why: str
    env_var: str | None = None  # an explicit path the user may set instead
    windows_paths: tuple[str, ...] = ()  # where Windows installs it (browsers are rarely on PATH there)
    windows_hint: str = ""
    mac_hint: str = ""


CHROMIUM = OsNeed(
    name="headless Chromium",
    debian_package="chromium",
    executables=("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"),
    why="the chart tests render the HTML charts in a real browser",
    env_var=BROWSER_ENV,
    windows_paths=(
        r"%ProgramFiles%\Google\Chrome\Application\chrome.exe",
        r"%ProgramFiles(x86)%\Google\Chrome\Application\chrome.exe",
        r"%LocalAppData%\Google\Chrome\Application\chrome.exe",
        r"%ProgramFiles(x86)%\Microsoft\Edge\Application\msedge.exe",
        r"%ProgramFiles%\Microsoft\Edge\Application\msedge.exe",
    ),
    windows_hint="install Google Chrome or Microsoft Edge, or set BACKTEST_CHROMIUM to chrome.exe",
    mac_hint="brew install --cask chromium (or set BACKTEST_CHROMIUM to the Chrome binary)",
)
JAVA = OsNeed(
    name="a Java 17 runtime",
    debian_package="openjdk-17-jre-headless",
    executables=("java",),
    why="the scale-out tests run the compiled Ibis graphs on PySpark (local[2]), which needs a JVM",
    env_var="BACKTEST_JAVA",
    windows_hint="install a Java 17 runtime (e.g. Eclipse Temurin 17) and put java.exe on PATH",
    mac_hint="brew install openjdk@17",
)
# The table of what `make test` needs from the OS.
OS_NEEDS: tuple[OsNeed, ...] = (CHROMIUM, JAVA)


@dataclass(frozen=True)
class Host:
    """What `plan_os_setup` needs to know about the machine (filled by `probe_host`, or by tests)."""

    system: str  # platform.system(): Linux, Windows, Darwin
    is_root: bool
    has_apt: bool
    has_sudo: bool
    interactive: bool  # a terminal that can answer sudo's password prompt


@dataclass(frozen=True)
class OsPlan:
    """Either commands to run (then re-probe), or one line that stops the run, or nothing to do."""

    commands: tuple[tuple[str, ...], ...] = ()
    stop: str | None = None


def plan_os_setup(missing: tuple[OsNeed, ...], host: Host) -> OsPlan:
    """Decide how to obtain the missing programs; pure, so every branch is tested on any machine."""
    if not missing:
        return OsPlan()
    names = ", ".join(n.name for n in missing)
    pkgs = tuple(n.debian_package for n in missing)
    if host.system == "Windows":
        hints = "; ".join(f"{n.name}: {n.windows_hint}" for n in missing)
        return OsPlan(stop=f"make test needs {names}, which is not installed: {hints}")
    if host.system == "Darwin":
        hints = "; ".join(f"{n.name}: {n.mac_hint}" for n in missing)
        return OsPlan(stop=f"make test needs {names}, which is not installed: {hints}")
    apt_cmd = "apt-get install -y " + " ".join(pkgs)
    if not host.has_apt:
        return OsPlan(
            stop=f"make test needs {names}: install the package(s) {' '.join(pkgs)} ({apt_cmd} on Debian)"
        )
    if host.is_root:
        prefix: tuple[str, ...] = ()
    elif host.has_sudo:
        prefix = ("sudo",) if host.interactive else ("sudo", "-n")
    else:
        return OsPlan(stop=f"make test needs {names}: run `sudo {apt_cmd}` (as root), then make test again")
    return OsPlan(
        commands=(
            (*prefix, "apt-get", "update", "-qq"),
            (*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs),
        )
    )


def find_program(need: OsNeed, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The path of an installed program that satisfies `need`, or None."""
    if need.env_var and (explicit := os.environ.get(need.env_var)) and Path(explicit).is_file():
        return explicit
    for exe in need.executables:
        if found := which(exe):
            return found
    if os.name == "nt":
        for raw in need.windows_paths:
            candidate = Path(os.path.expandvars(raw))
            if candidate.is_file():
                return str(candidate)
    return None


def find_browser() -> str | None:
    """The headless browser the chart tests drive (the same lookup `make test` used to install it)."""
    return find_program(CHROMIUM)


def probe_host() -> Host:
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return Host(
        system=platform.system(),
        is_root=is_root,
        has_apt=shutil.which("apt-get") is not None,
        has_sudo=shutil.which("sudo") is not None,
        interactive=sys.stdin is not None and sys.stdin.isatty(),
    )


def ensure_os_packages(needs: tuple[OsNeed, ...] = OS_NEEDS) -> dict[str, str]:
    """Install what is missing, or stop with one line; returns env vars pointing the tests at what was found."""
    missing = tuple(n for n in needs if find_program(n) is None)
    plan = plan_os_setup(missing, probe_host())
    if plan.stop:
        print(plan.stop, file=sys.stderr)
        raise SystemExit(1)
    if plan.commands:
        print(f"installing what the tests need: {', '.join(n.debian_package for n in missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in plan.commands:
            print(f"$ {' '.join(cmd)}", flush=True)
            rc = subprocess.call(list(cmd), cwd=ROOT, env=env)
            if rc != 0:
                pkgs = " ".join(n.debian_package for n in missing)
                print(
                    f"could not install {pkgs} (`{' '.join(cmd)}` exit {rc}): "
                    f"run `sudo apt-get install -y {pkgs}` yourself, then make test again",
                    file=sys.stderr,
                )
                raise SystemExit(1)
        still = [n.debian_package for n in missing if find_program(n) is None]
        if still:
            print(
                f"installed {', '.join(still)} but cannot find it on PATH; install it by hand",
                file=sys.stderr,
            )
            raise SystemExit(1)
    found = {n.env_var: p for n in needs if n.env_var and (p := find_program(n))}
    return found


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
        _run([py, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev,spark,bench]"])
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
    _run([bt, "init", "--data"])  # DATA_ROOT is never created implicitly (an unmounted drive must not be)
    _run([bt, "demo-data"])
    _run([bt, "config", "validate"])  # now the source files exist: feature columns are checked against them
    _run([bt, "ingest", "daily"])
    _run([bt, "ingest", "databento"])
    _run([bt, "derive"])
    _run([bt, "charts", "--demo"])
    _run([bt, "compile", DEMO_EXPR])
    _run([bt, "features", "build"])  # every enabled feature into the cache: computed or cached, with times
    _run([bt, "eval", DEMO_EXPR, "--start", "2018-10-01"])
    _run([bt, "run", "bt_spx_cta"])  # daily: IS/OOS summary and the tearsheet path
    _run([bt, "run", "bt_es_delta"])  # intraday on the demo ES 1m bars
    _run([bt, "run", "bt_es_daily_custom"])  # daily ES sessions, filled at 09:00 Chicago from the 1m bars
    _run([bt, "optimize", "st_spx_cta"])  # Optuna on IS only: best trial, top re-runs, study report
    _run([bt, "robustness", "st_spx_cta"])  # the study's profile: every test, summary and report.html
    _run([bt, "status"])
    _run([bt, "context-pack", "--quiet"])


def test(py: Path) -> None:
    env = {**os.environ, **ensure_os_packages()}
    _run([py, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup"], env=env)


def lint(py: Path) -> None:
    _run([py, "-m", "ruff", "check", "dsl", "compiler", "runtime", "tests"])
    _run([py, "-m", "ruff", "format", "--check", "dsl", "compiler", "runtime", "tests"])


def bench(py: Path) -> None:
    _run([py, "-m", "tests.benchmarks.run"])


def bench_scale(py: Path) -> None:
    """One year of synthetic ES through ingest and derive: time and peak memory per stage (minutes)."""
    _run([py, "-m", "tests.benchmarks.run", "--scale"])


def lab(py: Path) -> None:
    """JupyterLab from the venv, opened on notebooks/ (the lab is the user's main interface)."""
    args: list[str | Path] = [_venv_bin("jupyter"), "lab", f"--ServerApp.root_dir={ROOT / 'notebooks'}"]
    if probe_host().is_root:  # Jupyter refuses to run as root without it (containers, CI, WSL as root)
        args.append("--allow-root")
    _run(args)


TASKS = {"demo": demo, "test": test, "lint": lint, "bench": bench, "bench-scale": bench_scale, "lab": lab}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in TASKS:
        print(f"usage: python -m runtime.dev {{{'|'.join(TASKS)}}}", file=sys.stderr)
        raise SystemExit(2)
    py = ensure_venv()
    TASKS[argv[0]](py)


if __name__ == "__main__":
    main()
