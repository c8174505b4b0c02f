"""`backtest robustness` on a real demo project: template workbook -> export -> demo data -> ingest daily ->
a real seeded study (runtime.optimize) -> run_robustness on the backtest and on the study.

Every checked value comes from an independent path: run_backtest's own artifacts (metrics.json,
equity.parquet), a hand formula (DSR, break-even), or a recomputation from the returned tables. The
workbook gets one extra profile rp_wf (walk-forward with a purge, a small lag sweep and placebo), edited
in with openpyxl as a user would.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from runtime.contracts import ConfigValidationError, UserError
from runtime.engine.kernel import session_returns
from runtime.storage.registry import Registry
from tests.backtest.conftest import Project, open_project
from tests.foundation.helpers import demo_project, edit, wb_path

STUDY_TRIALS = 24
WF = {"folds": 3, "purge_days": 10, "n_trials": 4, "seed": 3}
RUNNER = (
    "from runtime.cli import app, main\n"
    "from runtime.robustness.cli import robustness_cmd\n"
    "names = {c.name or c.callback.__name__ for c in app.registered_commands}\n"
    "if 'robustness' not in names: app.command('robustness')(robustness_cmd)\n"
    "main()\n"
)


@dataclass(frozen=True)
class Runs:
    project: Project
    bt: Any  # RobustnessOutcome of bt_spx_cta, profile rp_default
    st: Any  # of st_spx_cta (the study's rp_default)
    wf: Any  # of st_spx_cta, profile rp_wf
    progress: list[tuple[int, int, str]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    from runtime.config.export import export_workbook
    from runtime.optimize.study import run_study
    from runtime.robustness.runner import run_robustness

    root = demo_project(tmp_path_factory.mktemp("robustness") / "proj", ["ingest", "daily"])
    edit(
        wb_path(root),
        [
            ("ROBUSTNESS_PROFILES", "A3", "rp_wf"),
            ("ROBUSTNESS_PROFILES", "B3", "walk-forward with a purge"),
            ("ROBUSTNESS_PROFILES", "C3", True),
            ("ROBUSTNESS", "A14", "rp_wf"),
            ("ROBUSTNESS", "B14", "walk_forward"),
            ("ROBUSTNESS", "C14", True),
            ("ROBUSTNESS", "D14", json.dumps(WF)),
            ("ROBUSTNESS", "A15", "rp_wf"),
            ("ROBUSTNESS", "B15", "placebo_shuffle"),
            ("ROBUSTNESS", "C15", True),
            ("ROBUSTNESS", "D15", '{"n": 30, "seed": 1}'),
            ("ROBUSTNESS", "A16", "rp_wf"),
            ("ROBUSTNESS", "B16", "placebo_shuffle"),
            ("ROBUSTNESS", "C16", True),
            ("ROBUSTNESS", "D16", '{"n": 20, "seed": 2, "block": 5}'),
        ],
    )
    export_workbook(wb_path(root))
    p = open_project(root)
    run_study(p.snapshot, p.paths, p.reg, "st_spx_cta", n_trials=STUDY_TRIALS)
    prog: list[tuple[int, int, str]] = []
    bt = run_robustness(p.snapshot, p.paths, p.reg, "bt_spx_cta", profile="rp_default",
                        progress=lambda i, n, t: prog.append((i, n, t)))  # fmt: skip
    st = run_robustness(p.snapshot, p.paths, p.reg, "st_spx_cta")
    wf = run_robustness(p.snapshot, p.paths, p.reg, "st_spx_cta", profile="rp_wf")
    return Runs(p, bt, st, wf, prog)


def _entry(out: Any, test_id: str) -> dict[str, Any]:
    return next(e for e in out.summary["tests"] if e["test_id"] == test_id)


def _table(out: Any, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(out.run_dir) / f"{name}.parquet")


def _enabled(p: Project, profile: str) -> list[str]:
    return [
        r.test_id for r in p.snapshot.rows("ROBUSTNESS") if r.robustness_profile_id == profile and r.enabled
    ]


def _net_returns(eq: pd.DataFrame, capital: float) -> np.ndarray:
    """Daily net returns from run_backtest's equity.parquet: PnL / previous end equity."""
    prev = np.concatenate([[capital], eq["equity"].to_numpy()[:-1]])
    return eq["pnl"].to_numpy() / prev


# --------------------------------------------------------------------------------------------------
# The run folder, the registry, idempotence
# --------------------------------------------------------------------------------------------------


def test_run_folder_summary_and_registry_rows(runs: Runs) -> None:
    p, out = runs.project, runs.bt
    tests = _enabled(p, "rp_default")
    assert [e["test_id"] for e in out.summary["tests"]] == tests
    assert "cost_sensitivity" in tests
    assert out.created and out.run_id.startswith("rb-bt_spx_cta-")
    d = Path(out.run_dir)
    assert d.parent == Path(p.paths.runs_dir) and (d / "summary.json").is_file()
    assert not [x for x in d.parent.iterdir() if x.name.startswith((".tmp-", ".old-"))]
    on_disk = json.loads((d / "summary.json").read_text())
    assert on_disk["target_type"] == "backtest" and on_disk["profile"] == "rp_default"
    for e in on_disk["tests"]:
        assert e["status"] in ("ok", "skipped"), e
        assert e["verdict"]["level"] in ("pass", "warn", "fail", "info") and e["verdict"]["text"]
        for f in e["files"]:
            assert (d / f).is_file()
        if e["table"]:
            assert (d / e["table"]).is_file()
    assert (d / "walk_forward_equity.parquet").is_file()
    rows = p.reg.query(
        "SELECT test_id, passed, summary FROM robustness_results WHERE run_id = ?", [out.run_id]
    )
    assert sorted(r["test_id"] for r in rows) == sorted(tests)
    for r in rows:
        e = json.loads(r["summary"])
        lv = e["verdict"]["level"]
        assert r["passed"] == (None if e["status"] != "ok" or lv == "info" else lv == "pass")
    run = p.reg.query("SELECT kind, target_id, status, path FROM runs WHERE run_id = ?", [out.run_id])
    assert run == [{"kind": "robustness", "target_id": "bt_spx_cta", "status": "done", "path": str(d)}]
    # the progress callback saw every test in order, then the end
    assert [t for _, _, t in runs.progress] == [*tests, ""]
    assert [i for i, _, _ in runs.progress] == list(range(len(tests) + 1))


def test_a_rerun_finds_the_run(runs: Runs) -> None:
    from runtime.robustness.runner import run_robustness

    p = runs.project
    before = p.reg.query("SELECT count(*) AS n FROM robustness_results")[0]["n"]
    again = run_robustness(p.snapshot, p.paths, p.reg, "bt_spx_cta", profile="rp_default")
    assert not again.created and again.run_id == runs.bt.run_id
    assert again.summary == json.loads((Path(runs.bt.run_dir) / "summary.json").read_text())
    assert p.reg.query("SELECT count(*) AS n FROM robustness_results")[0]["n"] == before


def test_deterministic_under_seeds(runs: Runs, tmp_path: Path) -> None:
    """--force recomputes rp_wf: the same numbers and tables (random search, placebos, bootstraps seeded)."""
    from runtime.robustness.runner import run_robustness

    p = runs.project
    keep = tmp_path / "first"
    shutil.copytree(runs.wf.run_dir, keep)
    again = run_robustness(p.snapshot, p.paths, p.reg, "st_spx_cta", profile="rp_wf", force=True)
    assert again.created and again.run_id == runs.wf.run_id
    for a, b in zip(
        json.loads((keep / "summary.json").read_text())["tests"], again.summary["tests"], strict=True
    ):
        assert a["numbers"] == b["numbers"] and a["verdict"] == b["verdict"]
    for f in ("walk_forward.parquet", "walk_forward_equity.parquet", "placebo_shuffle.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(keep / f), pd.read_parquet(Path(again.run_dir) / f))


# --------------------------------------------------------------------------------------------------
# The numbers against independent computations
# --------------------------------------------------------------------------------------------------


def test_kernel_inputs_reproduce_the_run_and_its_returns(runs: Runs) -> None:
    from runtime.backtest.compile import compile_backtest
    from runtime.backtest.run import evaluate_run, run_backtest
    from runtime.robustness import engine_tests as et
    from runtime.robustness.runner import inputs_from_run

    p = runs.project
    data = evaluate_run(p.snapshot, p.paths, p.reg, compile_backtest(p.snapshot, "bt_spx_cta", {}))
    inp = inputs_from_run(data)
    again = et.run_inputs(inp).metrics
    for seg, rec in data.result.metrics.items():
        for k, v in rec.items():
            assert again[seg][k] == pytest.approx(v, nan_ok=True, rel=1e-12, abs=1e-9), (seg, k)
    out = run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", {})
    eq = pd.read_parquet(Path(out.run_dir) / "equity.parquet")
    ref = _net_returns(eq, 1_000_000.0)
    np.testing.assert_allclose(
        session_returns(data.result.paths["pnl"], data.result.paths["equity"], inp.day, 1_000_000.0),
        ref,
        rtol=1e-9,
        atol=1e-15,
    )


def test_is_oos_gap_lag0_and_placebo_real_are_the_runs_metrics(runs: Runs) -> None:
    from runtime.backtest.run import run_backtest

    p = runs.project
    m = run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", {}).metrics  # metrics.json
    t = _table(runs.bt, "is_oos_gap").set_index("metric")
    for k in ("sharpe", "total_pnl", "max_drawdown", "n_trades"):
        assert t.loc[k, "is"] == pytest.approx(m["is"][k], rel=1e-9)
        assert t.loc[k, "oos"] == pytest.approx(m["oos"][k], rel=1e-9)
    gap = _entry(runs.bt, "is_oos_gap")["numbers"]
    eq = pd.read_parquet(
        Path(run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", {}).run_dir) / "equity.parquet"
    )
    r = _net_returns(eq, 1_000_000.0)
    oos = (eq["segment"] == "oos").to_numpy()
    sh = lambda x: x.mean() / x.std(ddof=1) * math.sqrt(252)  # noqa: E731
    assert gap["is_sharpe"] == pytest.approx(sh(r[~oos]), rel=1e-9)
    assert gap["oos_sharpe"] == pytest.approx(sh(r[oos]), rel=1e-9)
    lag = _table(runs.bt, "lag_sweep").set_index("lag")
    assert lag.loc[0, "sharpe"] == pytest.approx(m["full"]["sharpe"], rel=1e-9)
    assert lag.loc[0, "total_pnl"] == pytest.approx(m["full"]["total_pnl"], rel=1e-9)
    assert bool(lag.loc[-1, "lookahead"]) and not bool(lag.loc[1, "lookahead"])
    ln = _entry(runs.bt, "lag_sweep")["numbers"]
    assert ln["peak_lag"] == int(lag["sharpe"].idxmax())
    pl = _entry(runs.bt, "placebo_shuffle")["numbers"]
    assert pl["real"] == pytest.approx(m["full"]["sharpe"], rel=1e-9)
    v = _table(runs.bt, "placebo_shuffle")["value"].to_numpy()
    assert pl["pvalue"] == pytest.approx((1 + np.sum(v >= pl["real"])) / (len(v) + 1))


def test_cost_sensitivity_zero_costs_is_gross(runs: Runs) -> None:
    t = _table(runs.bt, "cost_sensitivity")
    at = lambda m, k: float(t[(t.multiple == m) & (t.metric == k)]["value"].iloc[0])  # noqa: E731
    from runtime.backtest.run import run_backtest

    p = runs.project
    # 0x: net = gross (no cost at all), and equal to an independent run with every cost value set to 0 (the
    # index proxy sizes from equity, so the 1x run's gross differs: costs change the equity it sizes from)
    assert at(0.0, "total_costs") == 0.0
    assert at(0.0, "total_pnl") == pytest.approx(at(0.0, "gross_pnl"), rel=1e-12)
    free = {f"backtest.{c}": 0.0 for c in ("spread_value", "slippage_value", "commission_value")}
    ref0 = run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", free).metrics["full"]
    assert at(0.0, "total_pnl") == pytest.approx(ref0["total_pnl"], rel=1e-9)
    assert at(0.0, "gross_pnl") == pytest.approx(ref0["gross_pnl"], rel=1e-9)
    ref1 = run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", {}).metrics["full"]
    assert at(1.0, "total_pnl") == pytest.approx(ref1["total_pnl"], rel=1e-9)
    assert at(1.0, "total_pnl") == pytest.approx(at(1.0, "gross_pnl") - at(1.0, "total_costs"), rel=1e-9)
    # break-even by hand from the table
    pts = sorted((float(m), at(m, "total_pnl")) for m in t.multiple.unique())
    be = None
    if pts[0][1] > 0:
        for (ma, va), (mb, vb) in pairwise(pts):
            if vb <= 0 < va:
                be = ma + va / (va - vb) * (mb - ma)
                break
    n = _entry(runs.bt, "cost_sensitivity")["numbers"]
    assert n["break_even_multiple"] == (None if be is None else pytest.approx(be))
    assert n["total_pnl@1x"] == pytest.approx(at(1.0, "total_pnl"))


def test_sensitivity_points_are_independent_runs(runs: Runs) -> None:
    from runtime.backtest.run import run_backtest

    p = runs.project
    out = runs.st
    tested = out.summary["params"]
    t = _table(out, "sensitivity_1d")
    assert set(t["param"]) == {"window", "entry", "vix_high.threshold"}
    n = _entry(out, "sensitivity_1d")["numbers"]
    metric, seg = n["metric"], n["segment"]
    assert metric == "total_pnl" and seg == "is"  # the study's primary metric, in-sample
    row = t[t.param == "window"].iloc[2]
    params = {k: v for k, v in tested.items() if k in ("window", "entry", "lag", "vix_high.threshold")}
    ref = run_backtest(
        p.snapshot, p.paths, p.reg, "bt_spx_cta", {**params, "window": int(row["value"])}
    ).metrics
    assert row["score"] == pytest.approx(ref[seg][metric], rel=1e-9)
    g = _table(out, "sensitivity_2d")
    n2 = _entry(out, "sensitivity_2d")["numbers"]
    best = g.loc[g["value"].idxmax()]
    assert (n2["best_x"], n2["best_y"]) == (pytest.approx(best["x"]), pytest.approx(best["y"]))
    assert n2["best_value"] == pytest.approx(best["value"])
    assert len(g) == n2["points"]


def test_regimes_by_year_from_the_runs_returns(runs: Runs) -> None:
    from runtime.backtest.run import run_backtest

    p = runs.project
    eq = pd.read_parquet(
        Path(run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", {}).run_dir) / "equity.parquet"
    )
    r = _net_returns(eq, 1_000_000.0)
    years = pd.to_datetime(eq["date"]).dt.year.astype(str).to_numpy()
    t = _table(runs.bt, "regimes")
    yr = t[(t.regime_kind == "year") & (t.metric == "sharpe")].set_index("regime")["value"]
    assert len(yr) == len(set(years))
    for y in ("2016", "2017"):
        x = r[years == y]
        assert yr[y] == pytest.approx(x.mean() / x.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert set(t.regime_kind) == {"year", "vix_high", "vix_level q3"}
    # VIX starts in 2014 in the demo data: only days with a VIX value the day before are labelled; terciles
    # of the full sample hold a third each
    days = t[(t.regime_kind == "vix_high") & (t.metric == "days")]["value"]
    terc = t[(t.regime_kind == "vix_level q3") & (t.metric == "days")]["value"].to_numpy()
    assert 0 < days.sum() <= terc.sum() <= len(r) - 1
    assert terc.sum() - days.sum() == 1  # vix_high has lag_days 1 in FEATURE_LIBRARY: one day later
    assert np.all(np.abs(terc / terc.sum() - 1 / 3) < 0.02)


def test_multiple_testing_on_the_study(runs: Runs) -> None:
    out = runs.st
    e = _entry(out, "multiple_testing")
    n = e["numbers"]
    srid = out.summary["study_run_id"]
    trials = pd.read_parquet(Path(runs.project.paths.runs_dir) / srid / "trials.parquet")
    ok = trials[(trials.state == "COMPLETE") & np.isfinite(trials.objective)]
    assert n["n_trials"] == len(ok) == STUDY_TRIALS
    per = trials["is.sharpe"].to_numpy(dtype=float) / math.sqrt(252)
    per = per[np.isfinite(per)]
    assert n["var_trial_sr"] == pytest.approx(np.var(per, ddof=1), rel=1e-9)
    # DSR by hand (Bailey & Lopez de Prado 2014) from the reported moments
    sr = n["sharpe_annual"] / math.sqrt(252)
    g = 0.5772156649015329
    N = n["n_trials"]
    sr0 = math.sqrt(n["var_trial_sr"]) * (
        (1 - g) * sps.norm.ppf(1 - 1 / N) + g * sps.norm.ppf(1 - 1 / (N * math.e))
    )
    v = 1 - n["skew"] * sr + (n["kurtosis"] - 1) / 4 * sr**2
    assert n["sr0"] == pytest.approx(sr0, rel=1e-9)
    assert n["dsr"] == pytest.approx(
        sps.norm.cdf((sr - sr0) * math.sqrt(n["n_periods"] - 1) / math.sqrt(v)), rel=1e-9
    )
    assert n["psr"] == pytest.approx(
        sps.norm.cdf(sr * math.sqrt(n["n_periods"] - 1) / math.sqrt(v)), rel=1e-9
    )
    logits = _table(out, "multiple_testing")["logit"].to_numpy()
    assert n["pbo"] == pytest.approx(np.mean(logits <= 0))
    assert 0 <= n["spa_p"] <= 1
    bt = _entry(runs.bt, "multiple_testing")
    assert "dsr" not in bt["numbers"] and "needs a study" in bt["note"] and "psr" in bt["numbers"]


def test_walk_forward_folds_purge_and_stitched_equity(runs: Runs) -> None:
    out = runs.wf
    folds = _table(out, "walk_forward")
    eq = _table(out, "walk_forward_equity")
    n = _entry(out, "walk_forward")["numbers"]
    assert n["reoptimised"] is True and n["folds"] == WF["folds"] == len(folds)
    # the tested run's session calendar (IS + OOS), from run_backtest's own equity.parquet
    from runtime.backtest.run import run_backtest

    p = runs.project
    params = {
        k: v
        for k, v in out.summary["params"].items()
        if k in ("window", "entry", "lag", "vix_high.threshold")
    }
    cal = pd.read_parquet(
        Path(run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", params).run_dir) / "equity.parquet"
    )
    days = pd.to_datetime(cal["date"]).dt.date.astype(str).tolist()
    pos = {d: i for i, d in enumerate(days)}
    for k, f in folds.iterrows():
        assert f.train_end < f.test_start  # ISO dates compare in order
        gap = pos[f.test_start] - pos[f.train_end] - 1
        assert gap == WF["purge_days"] == f.purge  # purge_days sessions between train and test
        if k:
            assert pos[f.test_start] == pos[folds.iloc[k - 1].test_end] + 1  # test windows tile
        inside = eq[(eq.date >= pd.Timestamp(f.test_start)) & (eq.date <= pd.Timestamp(f.test_end))]
        assert len(inside) == f.test_days
        assert set(json.loads(f.params)) == {"window", "entry", "vix_high.threshold"}
    assert folds.iloc[-1].test_end == days[-1]
    assert eq["date"].is_monotonic_increasing and eq["date"].is_unique
    assert eq["date"].min() == pd.Timestamp(folds.iloc[0].test_start)
    np.testing.assert_allclose(eq["equity"], 1_000_000.0 * np.cumprod(1 + eq["return"]), rtol=1e-12)
    r = eq["return"].to_numpy()
    assert n["stitched_sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)
    w = np.array([json.loads(x)["window"] for x in folds.params], dtype=float)
    assert n["drift.window"] == pytest.approx(w.std() / np.abs(w).mean(), rel=1e-9)


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------


def test_bad_targets_and_profiles_are_user_errors(runs: Runs, tmp_path: Path) -> None:
    from runtime.robustness.runner import run_robustness

    p = runs.project
    with pytest.raises(UserError, match=r"neither a BACKTESTS.*did you mean 'bt_spx_cta'.*fix:"):
        run_robustness(p.snapshot, p.paths, p.reg, "bt_spx_ct")
    with pytest.raises(
        UserError, match=r"profile 'rp_nope' is not in ROBUSTNESS_PROFILES.*fix: one of rp_default"
    ):
        run_robustness(p.snapshot, p.paths, p.reg, "bt_spx_cta", profile="rp_nope")
    empty = Registry(tmp_path / "empty.duckdb")  # a real registry where no study has run
    empty.migrate()
    with pytest.raises(
        UserError, match=r"study st_spx_cta has not run.*`backtest optimize st_spx_cta` first"
    ):
        run_robustness(p.snapshot, p.paths, empty, "st_spx_cta")


@pytest.mark.parametrize(
    ("cell", "value", "words"),
    [
        ("D2", '{"nn": 500}', "is_oos_gap has no key 'nn'; did you mean 'n'?"),  # row 2: rp_default is_oos_gap
        ("D2", '{"n": -3}', "is_oos_gap.n = -3 must be >= 10"),
        ("D2", '{"method": "iid"}', "must be one of stationary, circular"),
        ("D10", '{"by": "vix_hihg"}', "'vix_hihg' is not a FEATURE_LIBRARY, ENGINEERED_FEATURES or GATES id "
         "(did you mean 'vix_high'?)"),  # row 10: regimes
    ],
)  # fmt: skip
def test_export_names_the_bad_param_json_cell(
    runs: Runs, tmp_path: Path, cell: str, value: str, words: str
) -> None:
    from runtime.config.export import export_workbook

    wb = tmp_path / "config" / "run_config.xlsx"
    wb.parent.mkdir(parents=True)
    shutil.copy(wb_path(runs.project.root), wb)
    edit(wb, [("ROBUSTNESS", cell, value)])
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(wb, out_dir=tmp_path / "exports")
    text = str(ei.value)
    assert f"ROBUSTNESS!{cell}" in text and words in text, text


def test_cli_runs_and_refuses(runs: Runs) -> None:
    root = runs.project.root

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", RUNNER, *args], cwd=root, capture_output=True, text=True, timeout=300
        )

    ok = cli("robustness", "bt_spx_cta", "--profile", "rp_default")
    assert ok.returncode == 0, ok.stderr
    assert "exists" in ok.stdout and runs.bt.run_id in ok.stdout and "is_oos_gap" in ok.stdout
    bad = cli("robustness", "nope")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr + bad.stdout
    assert "fix:" in bad.stderr + bad.stdout


def test_a_test_twice_in_a_profile_keeps_both(runs: Runs) -> None:
    out = runs.wf
    pl = [e for e in out.summary["tests"] if e["test_id"] == "placebo_shuffle"]
    assert [e["table"] for e in pl] == ["placebo_shuffle.parquet", "placebo_shuffle_2.parquet"]
    assert [e["numbers"]["n"] for e in pl] == [30, 20] and pl[1]["numbers"]["block"] == 5
    for e in pl:
        v = pd.read_parquet(Path(out.run_dir) / e["table"])["value"].to_numpy()
        assert len(v) == e["numbers"]["n"]
        assert e["numbers"]["pvalue"] == pytest.approx((1 + np.sum(v >= e["numbers"]["real"])) / (len(v) + 1))
