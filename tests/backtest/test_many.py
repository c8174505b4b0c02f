"""run_param_sets: K parameter sets in one call equal K independent `backtest run`s (their metrics.json).

The reference for every column is the real single-run path (run_backtest with --params, its written
metrics.json), not the many-path code: a different grid (one warm-up for all bindings), shared graph
evaluations and the chunked kernel call must not change a single metric.
"""

from __future__ import annotations

import math

import pytest

from runtime.backtest.many import run_param_sets
from runtime.backtest.run import run_backtest
from runtime.contracts import UserError
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_demo")

REL = 1e-9


def _same(a: float | None, b: float | None) -> bool:
    if b is None:  # metrics.json writes NaN / inf as null
        return a is None or not math.isfinite(a)
    return a is not None and math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def _runs(p: Project) -> list[str]:
    d = p.paths.runs_dir
    return sorted(x.name for x in d.iterdir()) if d.exists() else []


def test_param_sets_equal_independent_runs(demo: Project) -> None:
    sets = [{"window": 40}, {"window": 60, "entry": 0.8}, {"window": 40}, {"entry": 0.3}]
    before = _runs(demo)
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets, chunk=2)
    assert _runs(demo) == before  # nothing written to runs/
    assert many.metrics.shape[0] == 4
    # the duplicate binding (columns 0 and 2) evaluates its signal once; the gates read no $param
    assert many.evaluations["signal"] == 3
    assert {r: n for r, n in many.evaluations.items() if r != "signal"} == {
        r: 1 for r in many.evaluations if r != "signal"
    }
    assert "entry_gate" in many.evaluations
    assert many.n_evaluations == sum(many.evaluations.values())
    for k, p in enumerate(sets):
        ref = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", params=p).metrics
        got = many.record(k)
        for seg in ("full", "is", "oos"):
            for name, want in ref[seg].items():
                assert _same(got[seg][name], want), (k, p, seg, name, got[seg][name], want)
    # the bindings really differ (a test that could not fail otherwise)
    t = many.table("full")
    assert t["n_trades"][0] == t["n_trades"][2]
    assert len({round(float(x), 6) for x in t["total_pnl"][[0, 1, 3]]}) == 3
    assert many.bindings[3] == {"lag": 1, "window": 60, "entry": 0.3}


def test_intraday_param_sets_equal_independent_runs(demo: Project) -> None:
    sets = [{"window": 20}, {"entry": 0.5}]
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", sets)
    for k, p in enumerate(sets):
        ref = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", params=p).metrics
        for seg in ("full", "is", "oos"):
            for name, want in ref[seg].items():
                assert _same(many.record(k)[seg][name], want), (k, seg, name)


def test_unknown_param_and_lookahead_binding_are_user_errors(demo: Project) -> None:
    with pytest.raises(UserError, match=r"\$windwo"):
        run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{"window": 40}, {"windwo": 3}])
    # every binding is checked for lookahead, not only the first: $lag = 0 peeks at a close fill
    with pytest.raises(UserError, match=r"SIGNAL_TEMPLATES!J2.*not known in time"):
        run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{"window": 40}, {"lag": 0}])
    with pytest.raises(UserError, match="no parameter set"):
        run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [])
