"""notebooks/01_charts.ipynb executed top to bottom in a real kernel against a tmp DATA_ROOT."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.derive.conftest import Derived

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_charts.ipynb"


def test_charts_notebook_runs(synth: Derived, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKTEST_CONFIG", str(synth.env.snapshot_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    src_repr = "".join(o["data"].get("text/plain", "") for o in outputs if o.output_type == "execute_result")
    # the notebook found this project's derived tables of ES (the repr of its ChartSource), not just any folder
    assert f"derived_root={synth.env.paths.derived_dir!r}" in src_repr, src_repr
    assert "dataset_id='ES'" in src_repr and "series='front'" in src_repr
    widget = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget, "the last cell should display the chart widget"
    # thin runner: no function or class definitions in the notebook
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "def " not in code and "class " not in code
