"""`run_robustness` on the intraday backtests of the demo (ES 1m bars: bt_es_delta on the 1m grid,
bt_es_daily_custom daily sessions filled at 09:00 from the 1m bars): the kernel inputs reproduce each run,
and every test either runs or says why it cannot on a 4-session range (never an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.backtest.conftest import es_demo_project


@pytest.fixture(scope="module")
def es(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    p = es_demo_project(tmp_path_factory.mktemp("robustness_es") / "proj")
    return p.snapshot, p.paths, p.reg


@pytest.mark.parametrize("backtest_id", ["bt_es_delta", "bt_es_daily_custom"])
def test_intraday_backtests_run_every_test_or_skip(es: tuple, backtest_id: str) -> None:
    from runtime.backtest.compile import compile_backtest
    from runtime.backtest.run import evaluate_run
    from runtime.robustness import engine_tests as et
    from runtime.robustness.runner import inputs_from_run, run_robustness

    snap, paths, reg = es
    data = evaluate_run(snap, paths, reg, compile_backtest(snap, backtest_id, {}))
    inp = inputs_from_run(data)
    again = et.run_inputs(inp).metrics
    for seg, rec in data.result.metrics.items():
        for k, v in rec.items():
            assert again[seg][k] == pytest.approx(v, nan_ok=True, rel=1e-12, abs=1e-9), (seg, k)
    # one date per session, in order, and the sessions numbered 0..n-1
    assert len(inp.dates) == int(inp.day[-1]) + 1 and np.all(np.diff(inp.dates.astype("int64")) > 0)
    out = run_robustness(snap, paths, reg, backtest_id, profile="rp_default")
    st = {e["test_id"]: e for e in out.summary["tests"]}
    assert not [e for e in st.values() if e["status"] == "error"], [e["note"] for e in st.values()]
    for tid in ("lag_sweep", "placebo_shuffle", "cost_sensitivity", "regimes"):
        assert st[tid]["status"] == "ok"
    assert st["block_bootstrap"]["status"] == "skipped" and "too few" in st["block_bootstrap"]["note"]
    lag = pd.read_parquet(Path(out.run_dir) / "lag_sweep.parquet").set_index("lag")
    assert lag.loc[0, "sharpe"] == pytest.approx(data.result.metrics["full"]["sharpe"], nan_ok=True, rel=1e-9)
