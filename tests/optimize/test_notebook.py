"""notebooks/04_optimization.ipynb executed top to bottom in a real kernel against a demo project (template
workbook, the demo daily data ingested), and the demo study's own report.html rendered in headless Chromium.

The study (st_spx_cta, a small n_trials) is run by the notebook itself, so the test sees what a user sees:
the study run folder printed, the trials table, the Pareto plot and the importances drawn; the report's
numbers are checked against trials.parquet and the top runs' metrics.json read here with pandas.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.backtest.conftest import Project, open_project
from tests.foundation.helpers import demo_project
from tests.notebooks import execute
from tests.optimize.test_report import ARTIFACTS, render_in_chromium

N_TRIALS = 24  # a value no other test of the study uses (its run id hashes n_trials)
FIGURES = ("fig-history", "fig-importance", "fig-pareto", "fig-slices", "fig-isoos")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return open_project(demo_project(tmp_path_factory.mktemp("optimize_nb") / "proj", ["ingest", "daily"]))


@pytest.mark.browser
def test_optimization_notebook_and_report(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKTEST_CONFIG", str(project.snapshot.path))
    monkeypatch.setenv("BACKTEST_STUDY", "st_spx_cta")
    monkeypatch.setenv("BACKTEST_N_TRIALS", str(N_TRIALS))
    run = execute("04_optimization.ipynb", timeout=600)
    text = run.text
    run_dir = next(p for p in project.paths.runs_dir.iterdir() if p.name.startswith("st_spx_cta-"))
    assert str(run_dir) in text and str(run_dir / "report.html") in text  # this project's run, not another's
    assert len(run.plots) == 3, [list(o.get("data", {})) for o in run.outputs]
    assert "IS total_pnl" in run.html and "default_value_if_not_optimized" in run.html

    # REPORTING rep_study of the template: pareto_plot TRUE, leaderboard_top_n 20; no row -> the defaults
    from runtime.optimize.report import report_options

    assert report_options(project.snapshot, "st_spx_cta") == {"pareto_plot": True, "top_n": 20}
    assert report_options(project.snapshot, "no_such_study") == {"pareto_plot": True, "top_n": 20}
    # the report's numbers, from the files with pandas
    t = pd.read_parquet(run_dir / "trials.parquet")
    meta = json.loads((run_dir / "study.json").read_text(encoding="utf-8"))
    assert len(t) == N_TRIALS and meta["n_trials"] == N_TRIALS
    # only the X rows vary; lag (not X) stays at its default in every trial
    params = [json.loads(p) for p in t["params"]]
    assert {p["lag"] for p in params} == {1}
    ok = t[t["feasible"] & (t["state"] == "COMPLETE")]
    best = ok.loc[ok["is.total_pnl"].idxmax()]
    assert meta["best_trial"] == int(best["number"])
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"best trial {int(best['number'])}" in page
    for r in meta["top_runs"]:
        m = json.loads((run_dir.parent / r["run_id"] / "metrics.json").read_text(encoding="utf-8"))
        assert r["run_id"] in page
        is_pnl = float(t.loc[t["number"] == r["trial"], "is.total_pnl"].iloc[0])
        assert np.isclose(m["is"]["total_pnl"], is_pnl, rtol=1e-9)  # the re-run's IS is the trial's IS

    state = render_in_chromium(run_dir / "report.html", FIGURES, ARTIFACTS / "study_report_st_spx_cta.png")
    assert state["constraint_rows"] == len(t)
    lines = state["paste"].strip().split("\n")
    by_name = {ln.split("\t")[3]: ln.split("\t")[-1] for ln in lines[1:]}
    assert int(float(by_name["window"])) == int(best["p.window"])
    assert np.isclose(float(by_name["entry"]), float(best["p.entry"]))
    assert np.isclose(float(by_name["threshold"]), float(best["p.vix_high.threshold"]))
