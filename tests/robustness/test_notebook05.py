"""notebooks/05_robustness.ipynb executed top to bottom in a real kernel.

On a run folder of real statistics (tests/robustness/test_report.build_run_dir, opened through
BACKTEST_ROBUSTNESS_RUN), and on the runner's real run of the demo backtest (BACKTEST_CONFIG +
BACKTEST_TARGET): the summary table, the numbers and every figure of the report are shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.notebooks import execute
from tests.robustness.test_report import RealRun, build_run_dir, real_run  # noqa: F401 (fixture)


def _execute(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[Any]:
    for k in ("BACKTEST_ROBUSTNESS_RUN", "BACKTEST_TARGET", "BACKTEST_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return execute("05_robustness.ipynb").outputs


def test_notebook_shows_a_given_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_dir = build_run_dir(tmp_path / "rb-bt_sim_cross-0000000000nb")
    outputs = _execute(monkeypatch, {"BACKTEST_ROBUSTNESS_RUN": str(run_dir)})
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert str(run_dir) in text
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    html = "".join(o["data"].get("text/html", "") for o in outputs if o.output_type == "execute_result")
    for t in summary["tests"]:  # the summary table lists every test and its level or status
        assert f">{t['test_id']}<" in html, t["test_id"]
        assert t["verdict"]["text"].replace("<", "&lt;").replace(">", "&gt;") in html
    # one figure per ok test with a table, plus walk-forward's parameter drift and the CSCV degradation
    ok = [t for t in summary["tests"] if t["status"] == "ok" and t["table"]]
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plots) == len(ok) + 2, [list(o.get("data", {})) for o in outputs]
    names = [line for line in text.splitlines() if line.startswith("fig-")]
    assert sorted(names) == sorted(
        [f"fig-{t['test_id']}-1" for t in ok] + ["fig-walk_forward-2", "fig-multiple_testing-2"]
    )


@pytest.mark.xdist_group("robustness_real")  # one worker builds the demo runs once (see real_run)
def test_notebook_runs_or_opens_the_real_run(
    monkeypatch: pytest.MonkeyPatch,
    real_run: RealRun,  # noqa: F811 (the fixture imported above)
) -> None:
    """BACKTEST_CONFIG, BACKTEST_TARGET unset (the default: the demo study st_spx_cta): the notebook asks the
    runner, which finds the run the fixture made."""
    outputs = _execute(monkeypatch, {"BACKTEST_CONFIG": str(real_run.snapshot_path)})
    run_dir, run_id = real_run.runs["st_spx_cta"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"found {run_id}" in text and str(run_dir) in text  # not recomputed
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    html = "".join(o["data"].get("text/html", "") for o in outputs if o.output_type == "execute_result")
    for t in summary["tests"]:
        assert f">{t['test_id']}<" in html, t["test_id"]
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    names = [line for line in text.splitlines() if line.startswith("fig-")]
    with_table = {t["test_id"] for t in summary["tests"] if t["status"] == "ok" and t["table"]}
    assert len(plots) == len(names) and {n.split("-")[1] for n in names} == with_table
