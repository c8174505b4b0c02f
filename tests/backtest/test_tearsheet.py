"""The tearsheet rendered for real in headless Chromium: every figure drawn, no script error, no network.

Screenshots are kept in tests/backtest/artifacts/ to be looked at (tearsheet_bt_spx_cta.png, ..._es_delta).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runtime.backtest.run import open_run
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_demo")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-quic",
]
FIGURES = ("fig-equity", "fig-position", "fig-monthly", "fig-costs")


def _chromium() -> str:
    from runtime.dev import find_browser

    env = os.environ.get("BACKTEST_CHROMIUM")
    path = env or find_browser() or shutil.which("chromium")
    if not path:
        pytest.fail("headless Chromium not found: run `make test` (it installs it) or set BACKTEST_CHROMIUM")
    return str(path)


@pytest.mark.browser
@pytest.mark.parametrize("backtest_id", ["bt_spx_cta", "bt_es_delta"])
def test_tearsheet_renders_offline_in_chromium(demo: Project, backtest_id: str) -> None:
    from playwright.sync_api import sync_playwright

    run = open_run(demo.snapshot, demo.paths, demo.reg, backtest_id)
    page_path = run.run_dir / "tearsheet.html"
    text = page_path.read_text(encoding="utf-8")
    from plotly.offline import get_plotlyjs

    # self-contained: plotly.js inline exactly once, no script loaded from anywhere (CDN or file)
    assert text.count(get_plotlyjs()) == 1 and "<script src=" not in text
    assert text.count("Plotly.newPlot(") == len(FIGURES)
    assert run.data is not None and run.data.compiled.signal.cell in text  # the signal's cell and its tree
    assert run.data.compiled.signal.text.replace("<", "&lt;").replace(">", "&gt;") in text
    trades = len(run.data.result.trades["pnl"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=ARGS)
        errors: list[str] = []
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on(
                "request",
                lambda r: errors.append(f"request: {r.url}") if not r.url.startswith("file:") else None,
            )
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "ids => ids.every(i => document.querySelector('#' + i + ' .main-svg'))",
                arg=list(FIGURES),
                timeout=60_000,
            )
            page.wait_for_timeout(500)
            state = page.evaluate(
                """ids => ids.map(i => { const g = document.getElementById(i);
                   return [i, g.data.length, g.getBoundingClientRect().height,
                           g.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .hm').length]; })""",
                list(FIGURES),
            )
            for fid, n_traces, height, drawn in state:
                assert n_traces >= 1 and height > 150 and drawn >= 1, (fid, n_traces, height, drawn)
            # the OOS boundary is drawn on both panels of the equity figure when there is an OOS
            shapes = page.evaluate("() => (document.getElementById('fig-equity').layout.shapes || []).length")
            assert shapes == (2 if run.data.oos_start is not None else 0)
            rows = page.evaluate("() => document.querySelectorAll('section .scroll table tr').length - 1")
            assert rows == min(trades, 300)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / f"tearsheet_{backtest_id}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        finally:
            browser.close()
    assert not errors, errors
