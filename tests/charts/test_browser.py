"""The chart HTML rendered for real in headless Chromium: no JS/console errors, the plot drew, a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.charts.render import write_demo_charts
from tests.derive.conftest import Derived

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium() -> str:
    path = CHROMIUM if CHROMIUM.exists() else (Path(p) if (p := shutil.which("chromium")) else None)
    if path is None:
        pytest.fail(
            "headless Chromium not found at /usr/bin/chromium: install it (Debian: apt-get install chromium); "
            "CI installs it"
        )
    return str(path)


@pytest.mark.browser
def test_demo_charts_render_in_chromium(synth: Derived, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright (never `playwright install`)")
    exe = _chromium()
    env = synth.env
    files = write_demo_charts(env.paths, env.reg, env.ds, tmp_path / "charts")
    assert [f.name.rsplit("_", 1)[1] for f in files] == ["RTH.html", "FULL.html"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        try:
            for html in files:
                assert html.stat().st_size > 1_000_000  # plotly.js inline: opens offline
                page = browser.new_page(viewport={"width": 1400, "height": 950})
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}"))
                page.on(
                    "console",
                    lambda m, errors=errors: (
                        errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("requestfailed", lambda r, errors=errors: errors.append(f"request failed: {r.url}"))
                page.goto(html.as_uri())
                page.wait_for_selector(".plotly .main-svg", timeout=30_000)
                page.wait_for_timeout(300)
                types = page.evaluate(
                    "Array.from(document.querySelector('.plotly-graph-div').data, t => t.type)"
                )
                assert types.count("candlestick") == 2 and "bar" in types and "scatter" in types
                drawn = page.evaluate(
                    """() => ({
                        candles: document.querySelectorAll('.boxlayer .trace path').length,
                        bars: document.querySelectorAll('.barlayer .point path').length,
                        text: document.querySelectorAll('.scatterlayer .textpoint').length,
                        bubbles: document.querySelectorAll('.scatterlayer .point').length,
                    })"""
                )
                assert drawn["candles"] > 10 and drawn["bars"] > 10, drawn
                assert drawn["text"] > 10 and drawn["bubbles"] > 0, drawn
                shot = tmp_path / f"{html.stem}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000
                assert errors == [], errors
                page.close()
        finally:
            browser.close()
