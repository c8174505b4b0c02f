"""The study report from a study run folder (contract C): its numbers checked against plain loops written
here, and the page rendered for real in headless Chromium (every figure drawn, no script error, no network).

The folders here are written by a real seeded Optuna study (TPE, JournalFileStorage, the contract's
study.json / trials.parquet / top runs' metrics.json) over a known function of the parameters, so every
expected value (best so far, the frontier, the best set) is computed independently in the test. The demo
study's own report (run_study on the demo project) is rendered in test_notebook.py's Chromium test.
Screenshots are kept in tests/optimize/artifacts/ to be looked at.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runtime.contracts import UserError
from runtime.engine.contracts import METRIC_NAMES
from runtime.optimize import report as rp
from tests.browser import OfflinePage, launch

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SEARCHED = [
    {"key": "window", "scope": "strategy", "target_id": "spx_cta_z", "name": "window", "type": "int",
     "low": 20, "high": 250, "step": 10, "choices": None},
    {"key": "entry", "scope": "strategy", "target_id": "spx_cta_z", "name": "entry", "type": "float",
     "low": 0.0, "high": 2.0, "step": 0.1, "choices": None},
    {"key": "vix_high.threshold", "scope": "feature", "target_id": "vix_high", "name": "threshold",
     "type": "float", "low": 15.0, "high": 40.0, "step": 1.0, "choices": None},
    {"key": "backtest.execution_price_model", "scope": "backtest", "target_id": "bt_spx_cta",
     "name": "execution_price_model", "type": "categorical", "low": None, "high": None, "step": None,
     "choices": ["open", "close"]},
]  # fmt: skip
CONSTRAINTS = [
    {"metric": "sharpe", "scope": "IS", "operator": ">=", "threshold": 0.3, "severity": "hard"},
    {"metric": "n_trades", "scope": "IS", "operator": ">=", "threshold": 10, "severity": "soft"},
]


def _metrics(p: dict[str, Any]) -> dict[str, float]:
    """A known function of the parameters: PnL peaks at window 120, entry 0.8; Sharpe falls with entry."""
    w, e, th = p["window"], p["entry"], p["vix_high.threshold"]
    bonus = 5_000.0 if p["backtest.execution_price_model"] == "open" else 0.0
    pnl = 100_000.0 - 6.0 * (w - 120) ** 2 - 20_000.0 * (e - 0.8) ** 2 + 50.0 * th + bonus
    sharpe = 1.2 - 0.6 * e - abs(w - 120) / 200.0
    m = {k: float(i) for i, k in enumerate(METRIC_NAMES)}
    m.update(total_pnl=pnl, sharpe=sharpe, n_trades=float(int(400 / (1 + 5 * e))), max_drawdown=-0.2)
    return m


def make_study_run(
    runs: Path,
    name: str,
    *,
    n: int = 40,
    seed: int = 7,
    secondary: str | None = "sharpe",
    constraints: list[dict[str, Any]] | None = None,
    top_n: int = 3,
    infeasible_all: bool = False,
) -> Path:
    """A study run folder in the contract C layout, trials from a real seeded Optuna TPE study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constraints = CONSTRAINTS if constraints is None else constraints
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
    study = optuna.create_study(
        study_name="st_test", storage=storage, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )  # fmt: skip
    dists = {s["key"]: rp._distribution(s) for s in SEARCHED}
    rows = []
    for _ in range(n):
        t = study.ask(dists)
        p = dict(t.params)
        m = _metrics(p)
        if infeasible_all:
            m["sharpe"] = -1.0
        c = []
        for con in constraints:
            th, v = float(con["threshold"]), m[con["metric"]]
            c.append(th - v if con["operator"] == ">=" else v - th)
        feasible = all(ci <= 0 for ci, con in zip(c, constraints, strict=True) if con["severity"] == "hard")
        study.tell(t, m["total_pnl"])
        row: dict[str, Any] = {
            "number": t.number, "state": "COMPLETE", "feasible": feasible,
            "params": json.dumps({**p, "lag": 1}, sort_keys=True),
        }  # fmt: skip
        row.update({f"p.{k}": v for k, v in p.items()})
        row.update({f"is.{k}": v for k, v in m.items()})
        row.update({f"c.{i}": v for i, v in enumerate(c)})
        row["objective"] = m["total_pnl"] if feasible else -1e12  # penalised: the report must not plot this
        row["secondary"] = m[secondary] if secondary else math.nan
        row["reason"] = "" if feasible else "hard constraint broken: sharpe >= 0.3 (IS)"
        rows.append(row)
    df = pd.DataFrame(rows)
    df.to_parquet(run_dir / "trials.parquet")
    ok = df[df["feasible"]]
    best = None if ok.empty else int(ok.loc[ok["is.total_pnl"].idxmax(), "number"])
    best_params = None if best is None else json.loads(df.loc[df["number"] == best, "params"].iloc[0])
    top = ok.sort_values("is.total_pnl", ascending=False).head(top_n)
    top_runs = []
    for r in top.to_dict("records"):
        rid = f"bt_spx_cta-{name}-{int(r['number']):04d}"
        (runs / rid).mkdir()
        pnl, sharpe = r["is.total_pnl"], r["is.sharpe"]
        rec = {
            "is": {"total_pnl": pnl, "sharpe": sharpe, "max_drawdown": -0.2, "n_trades": 30.0},
            "oos": {"total_pnl": 0.1 * pnl, "sharpe": 0.5 * sharpe, "max_drawdown": -0.1, "n_trades": 12.0},
            "full": {"total_pnl": 1.0, "sharpe": 1.0, "max_drawdown": -0.2, "n_trades": 42.0},
        }
        (runs / rid / "metrics.json").write_text(json.dumps(rec), encoding="utf-8")
        top_runs.append(
            {"trial": int(r["number"]), "run_id": rid, "c": [0.3 - 0.5 * sharpe, -1.0][: len(constraints)]}
        )
    meta = {
        "study_id": "st_test", "backtest_id": "bt_spx_cta", "study_run_id": name, "method": "tpe",
        "direction": "maximize", "directions": ["maximize"], "primary": "total_pnl", "secondary": secondary, "seed": seed,
        "n_trials": n, "searched": SEARCHED, "fixed": {"lag": 1}, "constraints": constraints,
        "best_trial": best, "best_params": best_params, "top_runs": top_runs,
        "robustness_profile_id": "rp_default", "snapshot_hash": "0" * 16,
    }  # fmt: skip
    (run_dir / "study.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("study_runs")


def test_numbers_against_plain_loops(runs: Path) -> None:
    d = make_study_run(runs, "st_test-numbers", n=60, seed=11)
    sr = rp.load_study_run(d)
    t = pd.read_parquet(d / "trials.parquet").sort_values("number")
    y = t["is.total_pnl"].to_numpy()
    feas = t["feasible"].to_numpy()
    assert np.array_equal(rp.primary_values(sr), y)  # the IS metric, not the penalised objective
    # best so far: a plain loop
    exp, cur = [], None
    for v, f in zip(y, feas, strict=True):
        if f and (cur is None or v > cur):
            cur = v
        exp.append(np.nan if cur is None else cur)
    np.testing.assert_array_equal(rp.best_so_far(y, feas, 1.0), np.array(exp))
    # the frontier: O(n^2) dominance among feasible trials, both metrics maximised
    s = t["is.sharpe"].to_numpy()
    front = set()
    for i in range(len(y)):
        if not feas[i]:
            continue
        dom = any(
            feas[j] and y[j] >= y[i] and s[j] >= s[i] and (y[j] > y[i] or s[j] > s[i]) for j in range(len(y))
        )
        if not dom:
            front.add(i)
    got = rp.pareto_front(np.where(feas, y, np.nan), s, (1.0, 1.0))
    assert set(got.tolist()) == front and len(front) >= 2
    assert list(y[got]) == sorted(y[got])  # drawn left to right
    # minimising the secondary flips the frontier: brute force again
    front_min = {
        i
        for i in range(len(y))
        if feas[i]
        and not any(
            feas[j] and y[j] >= y[i] and s[j] <= s[i] and (y[j] > y[i] or s[j] < s[i]) for j in range(len(y))
        )
    }
    assert set(rp.pareto_front(np.where(feas, y, np.nan), s, (1.0, -1.0)).tolist()) == front_min
    # the best trial: the best feasible IS total_pnl, and its parameters ready to paste
    best_row = t[feas].loc[t[feas]["is.total_pnl"].idxmax()]
    assert sr.best_trial == int(best_row["number"])
    exp_edges = [
        s_["key"]
        for s_ in SEARCHED
        if s_["type"] in ("int", "float") and float(best_row[f"p.{s_['key']}"]) in (s_["low"], s_["high"])
    ]
    assert [e.split(" = ")[0] for e in rp.at_edges(sr)] == exp_edges
    rows = rp.paste_rows(sr)
    assert list(rows.columns) == list(rp.PARAM_COLUMNS)
    for s_ in SEARCHED:
        v = rows.loc[rows["param_name"] == s_["name"], "default_value_if_not_optimized"].iloc[0]
        want = best_row[f"p.{s_['key']}"]
        assert (v == want) if isinstance(want, str) else math.isclose(float(v), float(want), abs_tol=1e-9)
    wv = rp.workbook_values(sr).set_index("sheet")
    strat = json.loads(wv.loc["STRATEGIES", "value"])
    assert strat == {
        "window": int(best_row["p.window"]),
        "entry": pytest.approx(float(best_row["p.entry"])),
        "lag": 1,
    }
    assert wv.loc["STRATEGIES", "row"] == "spx_cta_z"
    feat = wv[wv["row"] == "vix_high"]
    assert json.loads(feat["value"].iloc[0]) == {"threshold": pytest.approx(best_row["p.vix_high.threshold"])}
    bt = wv[wv["column"] == "execution_price_model"]
    assert json.loads(bt["value"].iloc[0]) == best_row["p.backtest.execution_price_model"]
    # the study table: best first, feasible before infeasible
    tf = rp.trials_frame(sr)
    assert tf["trial"].iloc[0] == sr.best_trial
    nf = int(feas.sum())
    assert tf["feasible"].iloc[:nf].all() and not tf["feasible"].iloc[nf:].any()
    assert list(tf["IS total_pnl"].iloc[:nf]) == sorted(y[feas], reverse=True)
    # constraints per trial: the values and violations as written
    ct = rp.constraint_table(sr)
    lab = "sharpe >= 0.3 (IS, hard)"
    np.testing.assert_allclose(ct[f"{lab} value"], t["is.sharpe"])
    np.testing.assert_allclose(ct[f"{lab} violation"], 0.3 - t["is.sharpe"])
    # IS vs OOS of the top runs, from their metrics.json
    io = rp.is_oos_frame(sr)
    top = sorted(t[feas]["is.total_pnl"], reverse=True)[:3]
    got_is = io[io["metric"] == "total_pnl"]["IS"].tolist()
    assert got_is == pytest.approx(top)
    assert io[io["metric"] == "total_pnl"]["OOS"].tolist() == pytest.approx([0.1 * v for v in top])


def test_importances_rank_the_parameter_that_drives_the_metric(runs: Path) -> None:
    """window moves PnL by up to 6*130^2 ~ 100k, the threshold by at most 50*25 = 1.25k."""
    d = make_study_run(runs, "st_test-imp", n=80, seed=3, constraints=[])
    sr = rp.load_study_run(d)
    imp, why = rp.param_importances(sr)
    assert why is None, why
    assert set(imp) == {s["key"] for s in SEARCHED}
    assert math.isclose(sum(imp.values()), 1.0, rel_tol=1e-9)
    assert max(imp, key=imp.get) == "window" and imp["window"] > imp["vix_high.threshold"]


def test_degenerate_studies_still_render(runs: Path) -> None:
    # no feasible trial: no best, nothing to paste, every section says so
    d = make_study_run(runs, "st_test-none", n=12, infeasible_all=True)
    sr = rp.load_study_run(d)
    assert sr.best_trial is None and rp.best_params(sr) is None
    page = rp.render_report(sr)
    assert "no feasible trial" in page and "nothing to paste" in page
    # no secondary metric: the Pareto section says why
    d2 = make_study_run(runs, "st_test-nosec", n=10, secondary=None, top_n=1)
    page2 = rp.render_report(rp.load_study_run(d2))
    assert "no objective_secondary_metric" in page2 and "fig-pareto" not in page2
    # pareto_plot off (REPORTING): not drawn
    assert "fig-pareto" not in rp.render_report(rp.load_study_run(d2), pareto_plot=False)
    # a top run folder deleted: named in the page, the rest drawn
    d3 = make_study_run(runs, "st_test-gone", n=10, top_n=2)
    meta = json.loads((d3 / "study.json").read_text())
    shutil.rmtree(runs / meta["top_runs"][0]["run_id"])
    page3 = rp.render_report(rp.load_study_run(d3))
    assert meta["top_runs"][0]["run_id"] in page3 and "fig-isoos" in page3
    # two objectives (nsga2): the senses come from study.json directions; one: the metric's natural sense
    meta4 = {**json.loads((d2 / "study.json").read_text()), "secondary": "max_drawdown"}
    assert rp.StudyRun(d2, meta4, pd.DataFrame()).senses == (
        1.0,
        -1.0,
    )  # a drawdown fraction: lower is better
    meta4["directions"] = ["minimize", "maximize"]
    assert rp.StudyRun(d2, meta4, pd.DataFrame()).senses == (-1.0, 1.0)
    # not a study folder: a user error with a fix
    with pytest.raises(UserError, match="fix: run `backtest optimize"):
        rp.load_study_run(runs)


FIGURES = ("fig-history", "fig-importance", "fig-pareto", "fig-slices", "fig-isoos")


def render_in_chromium(page_path: Path, figures: tuple[str, ...], shot: Path) -> dict[str, Any]:
    """Open the page offline; every figure drawn; errors and any non-file request collected."""
    with launch() as browser:
        page = OfflinePage(browser)
        page.open(page_path, figures, timeout=60_000)
        state = page.page.evaluate(
            """ids => Object.fromEntries(ids.map(i => { const g = document.getElementById(i);
               return [i, {traces: g.data.length, height: g.getBoundingClientRect().height,
                 drawn: g.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length,
                 points: g.querySelectorAll('.scatterlayer .point, .barlayer .point').length}]; }))""",
            list(figures),
        )
        state["paste"] = page.page.evaluate("() => document.getElementById('paste-params')?.value || ''")
        state["constraint_rows"] = page.page.evaluate(
            "() => document.querySelectorAll('table.constraints tr').length - 1"
        )
        page.shot(shot)
    assert not page.errors, page.errors
    for fid in figures:
        s = state[fid]
        assert s["traces"] >= 1 and s["height"] > 150 and s["drawn"] >= 1 and s["points"] >= 1, (fid, s)
    return state


@pytest.mark.browser
def test_report_renders_offline_in_chromium(runs: Path) -> None:
    from plotly.offline import get_plotlyjs

    d = make_study_run(runs, "st_test-page", n=50, seed=5)
    out = rp.write_report(d, top_n=10)
    assert out == d / "report.html" and not list(d.glob(".report-*"))
    text = out.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()) == 1 and "<script src=" not in text
    assert text.count("Plotly.newPlot(") == len(FIGURES)
    state = render_in_chromium(out, FIGURES, ARTIFACTS / "study_report_synthetic.png")
    t = pd.read_parquet(d / "trials.parquet")
    # the history shows every trial: feasible + infeasible markers, the best-so-far line, the star
    assert state["constraint_rows"] == len(t)
    lines = state["paste"].strip().split("\n")
    assert lines[0].split("\t") == list(rp.PARAM_COLUMNS) and len(lines) == 1 + len(SEARCHED)
    sr = rp.load_study_run(d)
    best = t[t["number"] == sr.best_trial].iloc[0]
    win = next(ln.split("\t") for ln in lines[1:] if ln.split("\t")[3] == "window")
    assert int(float(win[-1])) == int(best["p.window"])
    # the top runs' full-run constraint checks (study.json top_runs c): met or broken, as written
    meta = json.loads((d / "study.json").read_text())
    met = sum(all(x <= 0 for x in r["c"]) for r in meta["top_runs"])
    assert (
        text.count("all met</td>") == met
        and text.count("broken: sharpe &gt;= 0.3 (IS, hard)") == len(meta["top_runs"]) - met
    )
