"""The tearsheet rendered for real in headless Chromium: every figure drawn, no script error, no network.

Screenshots are kept in tests/backtest/artifacts/ to be looked at (tearsheet_bt_spx_cta.png, ..._es_delta).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.backtest.run import open_run
from tests.backtest.conftest import Project
from tests.browser import OfflinePage, launch

pytestmark = pytest.mark.xdist_group("backtest_demo")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FIGURES = ("fig-equity", "fig-position", "fig-monthly", "fig-costs")


@pytest.mark.browser
@pytest.mark.parametrize("backtest_id", ["bt_spx_cta", "bt_es_delta"])
def test_tearsheet_renders_offline_in_chromium(demo: Project, backtest_id: str) -> None:
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
    with launch() as browser:
        page = OfflinePage(browser)
        page.open(page_path, FIGURES, timeout=60_000)
        state = page.page.evaluate(
            """ids => ids.map(i => { const g = document.getElementById(i);
               return [i, g.data.length, g.getBoundingClientRect().height,
                       g.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .hm').length]; })""",
            list(FIGURES),
        )
        for fid, n_traces, height, drawn in state:
            assert n_traces >= 1 and height > 150 and drawn >= 1, (fid, n_traces, height, drawn)
        # the OOS boundary is drawn on both panels of the equity figure when there is an OOS
        shapes = page.page.evaluate(
            "() => (document.getElementById('fig-equity').layout.shapes || []).length"
        )
        assert shapes == (2 if run.data.oos_start is not None else 0)
        rows = page.page.evaluate("() => document.querySelectorAll('section .scroll table tr').length - 1")
        assert rows == min(trades, 300)
        page.shot(ARTIFACTS / f"tearsheet_{backtest_id}.png")
    assert not page.errors, page.errors
