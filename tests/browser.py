"""Headless Chromium for the report tests: one place for the binary, the flags and the offline page.

Why shared: the tearsheet, the study report, the robustness report and the charts are all checked the same
way (the real page in the real browser, offline, every plotly figure drawn, no script error, no request but
file:); four copies of the launch code drifted apart before they were folded here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: no sandbox (containers), no GPU, and nothing that would reach the network on its own
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 950}
PNG = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    """$BACKTEST_CHROMIUM (what `make test` found or installed), else the one runtime.dev finds, else PATH."""
    from runtime.dev import find_browser

    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    path = (
        os.environ.get("BACKTEST_CHROMIUM")
        or find_browser()
        or next(filter(None, map(shutil.which, names)), None)
    )
    if not path or not Path(path).is_file():
        pytest.fail(
            "headless Chromium not found (BACKTEST_CHROMIUM, PATH): run `make test`, which installs it "
            "(Debian: apt-get install chromium), or set BACKTEST_CHROMIUM to a Chrome binary"
        )
    return str(path)


@contextmanager
def launch() -> Iterator[Any]:
    """A playwright Chromium browser on the system binary (never a downloaded one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright (never `playwright install`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage:
    """One page of `browser`; every page error, console error and non-file request lands in `errors`."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on(
            "console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None
        )
        self.page.on(
            "request",
            lambda q: None if q.url.startswith("file:") else self.errors.append(f"request: {q.url}"),
        )

    def open(
        self, path: Path, figures: list[str] | tuple[str, ...] | None = None, timeout: int = 90_000
    ) -> list[str]:
        """Load the page and wait until every plotly figure (or the given ids) is drawn; returns the ids."""
        self.page.goto(path.as_uri())
        ids = list(figures) if figures is not None else self.figure_ids()
        self.page.wait_for_function(
            "ids => ids.every(i => document.querySelector('#' + i + ' .main-svg'))", arg=ids, timeout=timeout
        )
        self.page.wait_for_timeout(400)
        return ids

    def figure_ids(self) -> list[str]:
        return self.page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')].map(d => d.id)")

    def shot(self, path: Path, min_bytes: int = 50_000) -> Path:
        """A full-page screenshot kept for a person to look at; it must be a real, non-trivial PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > min_bytes, path
        return path

    def close(self) -> None:
        self.page.close()
