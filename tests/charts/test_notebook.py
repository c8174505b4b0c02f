"""notebooks/01_charts.ipynb executed top to bottom in a real kernel against a tmp DATA_ROOT."""

from __future__ import annotations

import pytest

from tests.derive.conftest import Derived
from tests.notebooks import execute


def test_charts_notebook_runs(synth: Derived, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKTEST_CONFIG", str(synth.env.snapshot_path))
    run = execute("01_charts.ipynb", timeout=180)
    src_repr = "".join(
        o["data"].get("text/plain", "") for o in run.outputs if o.output_type == "execute_result"
    )
    # the notebook found this project's derived tables of ES (the repr of its ChartSource), not just any folder
    assert f"derived_root={synth.env.paths.derived_dir!r}" in src_repr, src_repr
    assert "dataset_id='ES'" in src_repr and "series='front'" in src_repr
    widget = [o for o in run.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget, "the last cell should display the chart widget"
