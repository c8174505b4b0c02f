"""The demo charts rendered for real in headless Chromium and checked as a trader would look at them.

Whole day: candles drawn above semi-transparent bubbles, no footprint clutter, RTH shaded in FULL. A 45-minute
zoom: the page's script refits the price axis to the visible candles and draws the footprint's bid x ask
numbers of exactly the visible buckets. Screenshots of both are kept in tests/charts/artifacts/ (git-ignored)
to be looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runtime.charts.api import ChartSource, candles, footprint
from runtime.charts.render import write_demo_charts
from tests.browser import ARGS, chromium
from tests.charts.rows import rows_of, ticks_per_row
from tests.derive.conftest import Derived

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STATE = """() => {
  const g = document.getElementById('chart'), L = g._fullLayout;
  const layer = (sub, sel) => document.querySelectorAll('.subplot.xy .overplot > g.' + sub + ' ' + sel).length;
  return {
    mode: g.getAttribute('data-footprint-mode'),
    row_ticks: g.getAttribute('data-row-ticks'),
    pane_px: L.yaxis._length,
    y: L.yaxis.range, y2: L.yaxis2.range,
    candles: layer('xy4', '.boxlayer path'),
    bubbles: layer('xy', '.scatterlayer .point'),
    cells: layer('xy', '.barlayer .point'),
    numbers: layer('xy5', '.textpoint'),
    shades: document.querySelectorAll('.layer-below .shapelayer path').length,
  };
}"""


def _settle(page: Any, mode: str | None = None) -> dict[str, Any]:
    """Wait until the page's zoom script has run (it sets data-footprint-mode when done)."""
    page.wait_for_function(
        "m => { const a = document.getElementById('chart').getAttribute('data-footprint-mode');"
        " return m === null ? a !== null : a === m; }",
        arg=mode,
        timeout=30_000,
    )
    page.wait_for_timeout(300)
    return page.evaluate(STATE)


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 30_000
    return path


@pytest.mark.browser
def test_demo_charts_full_day_and_45_minute_zoom_in_chromium(synth: Derived, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright (never `playwright install`)")
    exe = chromium()
    env = synth.env
    src = ChartSource(env.paths.derived_dir, env.ds.dataset_id)
    out = tmp_path / "charts"
    rth_html, full_html = write_demo_charts(env.paths, env.reg, env.ds, out)
    day = pd.Timestamp(rth_html.name.split("_")[1]).date()
    assert rth_html.name == f"ES_{day}_RTH_5m.html" and full_html.name == f"ES_{day}_FULL_15m.html"
    assert sorted(p.name for p in out.iterdir()) == sorted([rth_html.name, full_html.name, "plotly.min.js"])
    assert rth_html.stat().st_size < 1_000_000 and full_html.stat().st_size < 1_000_000  # plotly.js shared
    c = candles(src, "RTH", day, day, 5)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        errors: list[str] = []
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(rth_html.as_uri())
            page.wait_for_selector(".plotly .main-svg", timeout=30_000)

            # the whole RTH day: every candle, above the bubbles, no footprint; y covers the day
            st = _settle(page, "off")
            assert st["candles"] >= len(c) and st["bubbles"] > 0, st
            assert st["cells"] == 0 and st["numbers"] == 0 and st["shades"] == 0, st
            assert st["y"][0] < c["low"].min() and st["y"][1] > c["high"].max()
            _shot(page, "rth_full_day.png")

            # 45 minutes: y refit to the visible candles, bid x ask of exactly the visible 5-minute buckets
            lo, hi = f"{day} 10:00", f"{day} 10:45"
            # two zooms in a row, as a scroll wheel does: the page must end on the last one
            page.evaluate(
                f"Plotly.relayout('chart', {{'xaxis.range': ['{day} 09:00', '{day} 13:00']}});"
                f"Plotly.relayout('chart', {{'xaxis.range': ['{lo}', '{hi}']}})"
            )
            st = _settle(page, "text")
            lo_utc, hi_utc = (pd.Timestamp(t, tz="America/Chicago").tz_convert("UTC") for t in (lo, hi))
            per_tick = footprint(src, "RTH", lo_utc, hi_utc, 5)
            k = ticks_per_row(st["y"], st["pane_px"])
            assert st["row_ticks"] == str(k), st
            want = rows_of(per_tick, k)
            seen = c[(c["ts_end"] > lo_utc) & (c["ts"] < hi_utc)]
            assert st["numbers"] == st["cells"] == len(want) > 20, st
            assert st["y"][0] < seen["low"].min() and st["y"][1] > seen["high"].max(), st
            assert st["y"][1] - st["y"][0] < c["high"].max() - c["low"].min(), st  # narrower than the day
            assert seen["volume"].max() < st["y2"][1] <= 1.1 * seen["volume"].max(), st
            texts = page.evaluate(
                "Array.from(document.querySelectorAll('.subplot.xy .overplot > g.xy5 .textpoint'),"
                " t => t.textContent)"
            )
            assert sorted(texts) == sorted(
                f"{b} x {a}" for b, a in zip(want["bid"], want["ask"], strict=True)
            )
            _shot(page, "rth_45min_zoom.png")

            # back to the whole day (double-click = autorange): the footprint goes, the day's range returns
            page.evaluate("Plotly.relayout('chart', {'xaxis.autorange': true})")
            st = _settle(page, "off")
            assert st["numbers"] == 0 and st["y"][1] > c["high"].max()

            # FULL: the whole Globex day with its RTH shaded
            page.goto(full_html.as_uri())
            page.wait_for_selector(".plotly .main-svg", timeout=30_000)
            st = _settle(page, "off")
            assert st["candles"] > 60 and st["shades"] == 3, st  # one RTH band per pane
            _shot(page, "full_full_day.png")
        finally:
            browser.close()
    assert errors == [], errors
