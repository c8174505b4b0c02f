"""notebooks/03_backtest.ipynb executed top to bottom in a real kernel against the demo project."""

from __future__ import annotations

import pytest

from tests.backtest.conftest import Project
from tests.notebooks import execute

pytestmark = pytest.mark.xdist_group("backtest_demo")


def test_backtest_notebook_runs(demo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKTEST_CONFIG", str(demo.snapshot.path))
    monkeypatch.setenv("BACKTEST_ID", "bt_spx_cta")
    run = execute("03_backtest.ipynb")
    text = run.text
    # the run of this project, not of another DATA_ROOT (other tests of the session add bt_spx_cta runs)
    run_dirs = [p for p in demo.paths.runs_dir.iterdir() if p.name.startswith("bt_spx_cta-")]
    assert any(str(d) in text for d in run_dirs), (text, run_dirs)
    assert len(run.plots) == 4, [list(o.get("data", {})) for o in run.outputs]
    assert "total_pnl" in run.html and "entry_price" in run.html  # the metrics table and the trades
