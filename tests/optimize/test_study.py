"""Studies run end to end on the demo data: batched ask/tell through run_param_sets (IS only), the study
run folder (contract C), the registry rows, reproducibility, the grid against independent runs, param
rules, OOS independence, workers, and kill -9 + --resume.

References are computed outside the optimizer: independent run_backtest calls (the real single-run
path, its written metrics.json), plain loops over trials.parquet, and the Optuna journal read back.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runtime.backtest.run import run_backtest
from runtime.contracts import UserError
from runtime.engine.contracts import METRIC_NAMES
from runtime.optimize.study import run_study
from tests.backtest.conftest import Project
from tests.optimize.conftest import IS_END

pytestmark = pytest.mark.xdist_group("optimize_demo")

X_KEYS = ("window", "entry", "vix_high.threshold")
CONTRACT_C = {
    "study_id", "backtest_id", "study_run_id", "method", "direction", "primary", "secondary", "seed",
    "n_trials", "searched", "fixed", "constraints", "best_trial", "best_params", "top_runs",
    "robustness_profile_id", "snapshot_hash",
}  # fmt: skip
RUNNER = (
    "from runtime.cli import app, main\n"
    "from runtime.optimize.cli import optimize_cmd\n"
    "names = {c.name or c.callback.__name__ for c in app.registered_commands}\n"
    "if 'optimize' not in names: app.command('optimize')(optimize_cmd)\n"
    "main()\n"
)


def _trials(out) -> list[dict]:
    rows = pq.read_table(out.run_dir / "trials.parquet").to_pylist()
    for r in rows:
        r["params"] = json.loads(r["params"])
    return rows


def _same(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    a = math.nan if a is None else a
    b = math.nan if b is None else b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def test_template_study_only_x_params_vary(opt: Project) -> None:
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=16)
    rows = _trials(out)
    assert [r["number"] for r in rows] == list(range(16))
    assert all(r["state"] == "COMPLETE" for r in rows)
    for r in rows:
        assert set(r["params"]) == {"lag", *X_KEYS} and r["params"]["lag"] == 1  # the fixed row holds
        w, e, v = (r["params"][k] for k in X_KEYS)
        assert 20 <= w <= 250 and (w - 20) % 10 == 0
        assert 0 <= e <= 2 and abs(e * 10 - round(e * 10)) < 1e-9
        assert 15 <= v <= 40 and float(v).is_integer()
        assert r["p.window"] == w and r["p.entry"] == e and r["p.vix_high.threshold"] == v
    for k in X_KEYS:  # the X rows are searched
        assert len({r["params"][k] for r in rows}) > 3
    # feasibility and the best trial, recomputed from the IS columns with a plain loop
    for r in rows:
        ok = r["is.max_drawdown"] <= 0.35 and r["is.n_trades"] >= 10
        assert r["feasible"] == ok
        assert r["c.0"] == pytest.approx(r["is.max_drawdown"] - 0.35)
        assert r["c.2"] == pytest.approx(0.3 - r["is.sharpe"])  # soft: reported, not in feasible
        assert r["objective"] == r["is.total_pnl"]
    feas = [r for r in rows if r["feasible"]]
    best = max(feas, key=lambda r: (r["objective"], -r["number"]))
    doc = json.loads((out.run_dir / "study.json").read_text())
    assert set(doc) >= CONTRACT_C
    assert doc["best_trial"] == best["number"] == out.best_trial
    assert doc["best_params"] == best["params"]
    assert doc["fixed"] == {"lag": 1} and [s["key"] for s in doc["searched"]] == list(X_KEYS)
    assert doc["study_run_id"] == out.study_run_id and out.run_dir.name == out.study_run_id
    assert (out.run_dir / "journal.log").is_file()
    # top re-runs: the best feasible trials, run in full (IS + OOS) by run_backtest
    top = sorted(feas, key=lambda r: (-r["objective"], r["number"]))
    want, seen = [], set()
    for r in top:
        key = json.dumps(r["params"], sort_keys=True)
        if key not in seen and len(want) < 5:
            seen.add(key)
            want.append(r["number"])
    assert [x["trial"] for x in doc["top_runs"]] == want
    for x in doc["top_runs"]:
        params = next(r["params"] for r in rows if r["number"] == x["trial"])
        again = run_backtest(opt.snapshot, opt.paths, opt.reg, "bt_spx_cta", params)
        assert again.run_id == x["run_id"] and not again.created
        assert x["oos"]["total_pnl"] == again.metrics["oos"]["total_pnl"]
    # registry: one optimization_trials row per trial, the runs row (kind study) last
    reg_rows = opt.reg.query(
        "SELECT trial_number, feasible, state, params FROM optimization_trials WHERE study_run_id = ? "
        "ORDER BY trial_number",
        [out.study_run_id],
    )
    assert [(x["trial_number"], x["feasible"]) for x in reg_rows] == [
        (r["number"], r["feasible"]) for r in rows
    ]
    (run,) = opt.reg.query(
        "SELECT kind, target_id, status, path FROM runs WHERE run_id = ?", [out.study_run_id]
    )
    assert run == {"kind": "study", "target_id": "st_spx_cta", "status": "done", "path": str(out.run_dir)}


def test_same_seed_same_trials_in_the_same_order(opt: Project) -> None:
    a = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=24)
    b = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=32)
    assert a.study_run_id != b.study_run_id
    ta, tb = _trials(a), _trials(b)
    assert [r["params"] for r in ta] == [r["params"] for r in tb[:24]]  # tpe past its 10 random trials
    assert [r["is.total_pnl"] for r in ta] == [r["is.total_pnl"] for r in tb[:24]]
    again = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=24)
    assert not again.created and again.study_run_id == a.study_run_id and again.best_trial == a.best_trial


def test_grid_equals_independent_is_runs(opt: Project) -> None:
    """Each grid point's IS metrics equal an independent `backtest run` of the IS window (end_date = the
    IS end, no OOS): what is_only evaluates, by definition (runtime/backtest/many.py)."""
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_grid")
    rows = _trials(out)
    grid = [{"window": w, "entry": e} for w, e in itertools.product([40, 60, 80], [0.5, 1.0])]
    assert [{k: r["params"][k] for k in ("window", "entry")} for r in rows] == grid
    assert all(set(r["params"]) == {"window", "entry"} for r in rows)  # the rest: as the workbook has it
    for r in rows:
        p = {**r["params"], "backtest.end_date": IS_END.isoformat(), "backtest.oos_last_x_months": 0}
        ref = run_backtest(opt.snapshot, opt.paths, opt.reg, "bt_spx_cta", p).metrics["full"]
        bad = [m for m in METRIC_NAMES if not _same(r[f"is.{m}"], ref.get(m))]
        assert not bad, (r["params"], {m: (r[f"is.{m}"], ref.get(m)) for m in bad})
    doc = json.loads((out.run_dir / "study.json").read_text())
    assert doc["n_trials"] == 6 and len(doc["top_runs"]) == min(2, sum(r["feasible"] for r in rows))


def test_param_rule_prunes_before_the_engine(opt: Project) -> None:
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_rule")
    rows = _trials(out)
    assert len(rows) == 12
    low = [r for r in rows if r["params"]["window"] < 60]
    assert low and len(low) < 12
    for r in rows:
        assert r["params"]["entry"] == 0.5
        if r["params"]["window"] < 60:
            assert r["state"] == "PRUNED" and not r["feasible"]
            assert "window >= 60" in r["reason"] and "OPTIMIZATION_PARAMS!L8" in r["reason"]
            assert all(math.isnan(r[f"is.{m}"]) for m in METRIC_NAMES)  # never evaluated
        else:
            assert r["state"] == "COMPLETE" and r["feasible"] and math.isfinite(r["objective"])
    assert out.n_pruned == len(low) and out.top_runs == ()


def _journal(out, name: str) -> list:
    return _journal_trials(out.run_dir / "journal.log", name)


def test_nsga2_two_objectives(opt: Project) -> None:
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_nsga")
    doc = json.loads((out.run_dir / "study.json").read_text())
    assert doc["directions"] == ["maximize", "minimize"]  # max_drawdown: a fraction, lower is better
    rows = {r["number"]: r for r in _trials(out)}
    done = [t for t in _journal(out, "st_nsga") if t.state.name == "COMPLETE"]
    assert len(done) == 16
    for t in done:
        assert t.values == [rows[t.number]["is.total_pnl"], rows[t.number]["is.max_drawdown"]]
    feas = [r for r in rows.values() if r["feasible"]]
    assert doc["best_trial"] == max(feas, key=lambda r: (r["objective"], -r["number"]))["number"]


def test_cmaes_infeasible_trials_are_penalised(opt: Project) -> None:
    """cmaes reads no constraints: an infeasible trial is told a value below every objective seen so far
    (trials.parquet keeps the real one); a feasible one is told its objective."""
    pytest.importorskip("cmaes", reason="Optuna's CmaEsSampler needs the cmaes package")
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_cmaes")
    rows = {r["number"]: r for r in _trials(out)}
    told = {t.number: t.value for t in _journal(out, "st_cmaes") if t.state.name == "COMPLETE"}
    assert len(told) == 16
    bad = [k for k in told if not rows[k]["feasible"]]
    assert bad and len(bad) < 16
    for k, v in told.items():
        r = rows[k]
        assert r["feasible"] == (r["is.sharpe"] >= -0.2)
        if r["feasible"]:
            assert v == r["objective"] == r["is.total_pnl"]
        else:
            assert v < min(rows[j]["objective"] for j in told if j <= k)
    best = max((r for r in rows.values() if r["feasible"]), key=lambda r: (r["objective"], -r["number"]))
    assert out.best_trial == best["number"]


def test_categorical_bool_and_backtest_columns(opt: Project) -> None:
    """Choices come back typed (numbers as numbers), BACKTESTS columns (scope backtest) vary per column of
    one engine call, and each trial equals an independent IS-window run with the same parameter set."""
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_cat")
    rows = _trials(out)
    keys = {
        "window",
        "backtest.slippage_value",
        "backtest.allow_flip_same_day",
        "backtest.execution_price_model",
    }
    assert len(rows) == 8 and all(set(r["params"]) == keys for r in rows)
    for r in rows:
        p = r["params"]
        assert p["window"] in (40, 60) and isinstance(p["window"], int)
        assert p["backtest.slippage_value"] in (0.0, 0.5, 1.0)
        assert isinstance(p["backtest.allow_flip_same_day"], bool)
        assert p["backtest.execution_price_model"] in ("mid", "spread_adjusted")
        assert r["p.backtest.execution_price_model"] == p["backtest.execution_price_model"]
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) > 2
    for r in rows[:3]:
        p = {**r["params"], "backtest.end_date": IS_END.isoformat(), "backtest.oos_last_x_months": 0}
        ref = run_backtest(opt.snapshot, opt.paths, opt.reg, "bt_spx_cta", p).metrics["full"]
        assert all(_same(r[f"is.{m}"], ref.get(m)) for m in METRIC_NAMES), r["params"]


def test_oos_prices_leave_trials_and_is_values_identical(opt: Project, opt_oos: Project) -> None:
    a = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=20)
    b = run_study(opt_oos.snapshot, opt_oos.paths, opt_oos.reg, "st_spx_cta", n_trials=20)
    ta, tb = _trials(a), _trials(b)
    assert [r["params"] for r in ta] == [r["params"] for r in tb]
    for x, y in zip(ta, tb, strict=True):
        assert [x[f"is.{m}"] for m in METRIC_NAMES] == pytest.approx(
            [y[f"is.{m}"] for m in METRIC_NAMES], nan_ok=True
        )
    da = json.loads((a.run_dir / "study.json").read_text())
    db = json.loads((b.run_dir / "study.json").read_text())
    assert da["data_versions"] != db["data_versions"]  # the prices did change ...
    assert [x["trial"] for x in da["top_runs"]] == [x["trial"] for x in db["top_runs"]]
    assert any(  # ... and the OOS of the same trials differs
        x["oos"]["total_pnl"] != y["oos"]["total_pnl"]
        for x, y in zip(da["top_runs"], db["top_runs"], strict=True)
    )


def test_two_workers_share_one_journal(opt: Project) -> None:
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=48, workers=2)
    rows = _trials(out)
    assert [r["number"] for r in rows] == list(range(48))
    assert all(r["state"] == "COMPLETE" for r in rows) and out.n_complete == 48 and not out.notes


def _journal_trials(path: Path, name: str = "st_spx_cta") -> list:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
    except KeyError:  # the study is not created yet
        return []
    return study.get_trials(deepcopy=False)


def test_kill_minus_9_then_resume(opt: Project) -> None:
    n = 240
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "optimize", "st_spx_cta", "--n-trials", str(n)],
        cwd=opt.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    runs = opt.paths.runs_dir
    journal = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if journal is None:
                hits = [
                    p / "journal.log" for p in runs.glob("st_spx_cta-*") if (p / "journal.log").is_file()
                    and not (p / "study.json").exists()
                ]  # fmt: skip
                journal = hits[0] if len(hits) == 1 else None
            if (
                journal is not None
                and sum(t.state.name == "COMPLETE" for t in _journal_trials(journal)) >= 24
            ):
                break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: (t.state.name, t.params, t.values) for t in _journal_trials(journal)}
    done_before = {k: v for k, v in before.items() if v[0] == "COMPLETE"}
    assert 24 <= len(done_before) < n
    with pytest.raises(UserError, match="--resume"):
        run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=n)
    out = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=n, resume=True)
    assert out.run_dir == journal.parent
    after = {t.number: t for t in _journal_trials(journal)}
    complete = [t for t in after.values() if t.state.name == "COMPLETE"]
    assert len(complete) == n == out.n_complete  # no finished trial lost, none too many
    for k, (_, params, values) in done_before.items():  # finished trials kept as they were
        assert after[k].state.name == "COMPLETE" and after[k].params == params and after[k].values == values
    failed = [t for t in after.values() if t.state.name == "FAIL"]
    stale = {k for k, v in before.items() if v[0] == "RUNNING"}
    assert {t.number for t in failed} == stale
    for t in failed:  # each stale trial that was asked evaluated once more, with its own params
        again = [c for c in complete if c.user_attrs.get("requeued_from") == t.number]
        if set(t.params) == set(X_KEYS):
            assert len(again) == 1 and again[0].params == t.params
        else:  # killed inside ask (some params written): never evaluated, replaced by a fresh trial
            assert again == []
    assert len(_trials(out)) == len(after)  # trials.parquet: every finished trial


def test_timeout_then_resume_to_n_trials(opt: Project) -> None:
    n = 40
    first = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=n, timeout=1e-6)
    assert first.n_complete == 16 < n  # one batch (16 for tpe), then the deadline stops it
    assert any("--timeout" in x for x in first.notes)
    again = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=n)
    assert not again.created and again.n_complete == 16  # a finished run is found, not extended ...
    done = run_study(opt.snapshot, opt.paths, opt.reg, "st_spx_cta", n_trials=n, resume=True)
    assert (
        done.created and done.n_complete == n and done.study_run_id == first.study_run_id
    )  # ... unless resumed
    rows = _trials(done)
    assert [r["number"] for r in rows] == list(range(n))
    (cnt,) = opt.reg.query(
        "SELECT count(*) AS k FROM optimization_trials WHERE study_run_id = ?", [done.study_run_id]
    )
    assert cnt["k"] == n  # the registry rows were replaced, not added to


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_cli_prints_the_best_trial_and_writes_the_report(opt: Project) -> None:
    r = _cli(["optimize", "st_grid"], opt.root)
    assert r.returncode == 0, r.stderr
    doc = next(json.loads(p.read_text()) for p in opt.paths.runs_dir.glob("st_grid-*/study.json"))
    assert f"best trial {doc['best_trial']}" in r.stdout
    printed = re.search(r"backtest run bt_spx_cta --params '(.*)'", r.stdout)
    assert printed and json.loads(printed.group(1)) == doc["best_params"]  # fixed values included
    # following the printed line finds the best trial's own full re-run: the same parameters, the same run
    best_run = next(t["run_id"] for t in doc["top_runs"] if t["trial"] == doc["best_trial"])
    again = _cli(["run", "bt_spx_cta", "--params", printed.group(1)], opt.root)
    assert again.returncode == 0 and f"run {best_run} exists" in again.stdout, again.stdout + again.stderr
    run_dir = opt.paths.runs_dir / doc["study_run_id"]
    assert f"report: {run_dir / 'report.html'}" in r.stdout and (run_dir / "report.html").is_file()
    bad = _cli(["optimize", "st_nope"], opt.root)
    assert bad.returncode == 1 and "st_nope" in bad.stderr and "fix:" in bad.stderr
    assert "Traceback" not in bad.stderr
