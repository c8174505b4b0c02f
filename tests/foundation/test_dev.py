"""runtime/dev.py: the decision of how `make test` obtains OS programs, the thin Makefile/CI wrappers, JupyterLab.

The decision is a pure function over a described host, so every branch (root, sudo, no sudo, no apt, Windows,
macOS) is checked here on one Linux machine; the expected plans are written out by hand.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from runtime import dev

REPO = Path(__file__).resolve().parents[2]
NO_PROXY = urllib.request.build_opener(
    urllib.request.ProxyHandler({})
)  # loopback only, whatever the env says
JAVA = dev.OsNeed("a Java runtime", "openjdk-17-jre-headless", ("java",), "PySpark tests")


def host(
    system: str = "Linux", *, root: bool = False, apt: bool = True, sudo: bool = True, tty: bool = False
):
    return dev.Host(system=system, is_root=root, has_apt=apt, has_sudo=sudo, interactive=tty)


def test_nothing_missing_means_nothing_to_do() -> None:
    assert dev.plan_os_setup((), host(root=True)) == dev.OsPlan()
    assert dev.plan_os_setup((), host("Windows")) == dev.OsPlan()


def test_debian_root_installs_with_apt_get() -> None:
    plan = dev.plan_os_setup((dev.CHROMIUM,), host(root=True))
    assert plan.stop is None
    assert plan.commands == (
        ("apt-get", "update", "-qq"),
        ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"),
    )


def test_several_missing_programs_install_in_one_apt_call() -> None:
    plan = dev.plan_os_setup((dev.CHROMIUM, JAVA), host(root=True))
    assert plan.commands[-1][-2:] == ("chromium", "openjdk-17-jre-headless")
    assert len(plan.commands) == 2


def test_not_root_uses_sudo_and_never_hangs_without_a_terminal() -> None:
    interactive = dev.plan_os_setup((dev.CHROMIUM,), host(tty=True))
    assert [c[:2] for c in interactive.commands] == [("sudo", "apt-get"), ("sudo", "apt-get")]
    batch = dev.plan_os_setup((dev.CHROMIUM,), host(tty=False))
    assert [c[:3] for c in batch.commands] == [("sudo", "-n", "apt-get"), ("sudo", "-n", "apt-get")]


def test_no_way_to_install_stops_with_one_line_naming_package_and_command() -> None:
    cases = {
        "no sudo": host(sudo=False),
        "no apt": host(apt=False),
        "windows": host("Windows"),
        "mac": host("Darwin"),
    }
    for label, h in cases.items():
        plan = dev.plan_os_setup((dev.CHROMIUM,), h)
        assert plan.commands == (), label
        assert plan.stop and "\n" not in plan.stop, label
        assert "Chromium" in plan.stop, label
    assert "sudo apt-get install -y chromium" in dev.plan_os_setup((dev.CHROMIUM,), host(sudo=False)).stop
    assert "chromium" in dev.plan_os_setup((dev.CHROMIUM,), host(apt=False)).stop
    assert "Chrome" in dev.plan_os_setup((dev.CHROMIUM,), host("Windows")).stop
    assert "brew install" in dev.plan_os_setup((dev.CHROMIUM,), host("Darwin")).stop


def test_find_program_prefers_the_explicit_env_path_then_path_lookup(tmp_path: Path, monkeypatch) -> None:
    exe = tmp_path / "my-chrome"
    exe.write_text("")
    monkeypatch.setenv(dev.BROWSER_ENV, str(exe))
    assert dev.find_program(dev.CHROMIUM, which=lambda _: None) == str(exe)
    monkeypatch.setenv(dev.BROWSER_ENV, str(tmp_path / "missing"))  # a stale setting falls through
    seen: list[str] = []

    def which(name: str) -> str | None:
        seen.append(name)
        return "/opt/x/chromium-browser" if name == "chromium-browser" else None

    assert dev.find_program(dev.CHROMIUM, which=which) == "/opt/x/chromium-browser"
    assert seen[:2] == ["chromium", "chromium-browser"]
    monkeypatch.delenv(dev.BROWSER_ENV)
    assert dev.find_program(dev.CHROMIUM, which=lambda _: None) is None


def test_ensure_os_packages_stops_with_exit_1_when_it_cannot_install(monkeypatch, capsys) -> None:
    monkeypatch.delenv(dev.BROWSER_ENV, raising=False)
    monkeypatch.setattr(dev, "find_program", lambda need, which=None: None)
    monkeypatch.setattr(dev, "probe_host", lambda: host(sudo=False))
    with pytest.raises(SystemExit) as exc:
        dev.ensure_os_packages()
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sudo apt-get install -y chromium" in err[0]


def test_make_targets_are_thin_wrappers_over_dev_tasks() -> None:
    make = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-z-]+):\s*$", make, flags=re.M)
    assert set(targets) == set(dev.TASKS)
    for t in targets:
        assert f"$(PY) -m runtime.dev {t}" in make


def test_ci_runs_make_test_and_installs_nothing_itself() -> None:
    lines = [
        ln.strip()
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    assert "make test" in lines
    assert not any(w in " ".join(lines) for w in ("apt-get", "pip install", "sudo"))


def test_readme_starts_with_the_two_commands_and_says_how_to_open_the_lab() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```", 2)[1].strip().splitlines()
    assert first_block == ["make demo", "make test"]
    assert "make lab" in readme and "py -3 -m runtime.dev lab" in readme


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_is_installed_with_the_project_and_serves_the_notebooks(tmp_path: Path) -> None:
    """A real JupyterLab server from this environment, on loopback, lists notebooks/ and serves the lab page."""
    jupyter = Path(sys.executable).with_name("jupyter" + (".exe" if os.name == "nt" else ""))
    assert jupyter.exists(), "jupyter is not in the project's environment: jupyterlab must be a dependency"
    port, token = _free_port(), "t0k3n"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    proc = subprocess.Popen(
        [
            str(jupyter),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={REPO / 'notebooks'}",
            *(["--allow-root"] if dev.probe_host().is_root else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        listing = None
        while time.monotonic() < deadline and listing is None:
            try:
                with NO_PROXY.open(f"{base}/api/contents?token={token}", timeout=5) as r:
                    listing = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not start within 90 s"
        names = {item["name"] for item in listing["content"]}
        expected = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
        assert expected and expected <= names
        with NO_PROXY.open(f"{base}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
