"""notebooks/03_backtest.ipynb executed top to bottom in a real kernel against the demo project."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_demo")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_backtest.ipynb"


def test_backtest_notebook_runs(demo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKTEST_CONFIG", str(demo.snapshot.path))
    monkeypatch.setenv("BACKTEST_ID", "bt_spx_cta")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # the run of this project, not of another DATA_ROOT (other tests of the session add bt_spx_cta runs)
    run_dirs = [p for p in demo.paths.runs_dir.iterdir() if p.name.startswith("bt_spx_cta-")]
    assert any(str(d) in text for d in run_dirs), (text, run_dirs)
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plots) == 4, [list(o.get("data", {})) for o in outputs]
    html = "".join(o["data"].get("text/html", "") for o in outputs if o.output_type == "execute_result")
    assert "total_pnl" in html and "entry_price" in html  # the metrics table and the trades
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "def " not in code and "class " not in code  # thin runner
