"""run_param_sets: K parameter sets in one call equal K independent `backtest run`s (their metrics.json),
whatever the keys (contract A: `$params`, `<feature>.<name>`, `backtest.<column>`); is_only; returns.

The reference for every column is the real single-run path (run_backtest with --params, its written
metrics.json), not the many-path code: a different grid (one warm-up for all bindings), shared graph
evaluations and the chunked kernel call must not change a single metric.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from runtime.backtest.many import run_param_sets
from runtime.backtest.run import run_backtest
from runtime.contracts import UserError
from runtime.engine.contracts import SEGMENTS
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


# ----------------------------------------------------------------------------------------------------------
# every key of contract A in one call; is_only; returns
# ----------------------------------------------------------------------------------------------------------

#: values no other test of the session's demo uses (runs found by their id would hide a difference)
MIXED = [
    {"window": 35, "vix_high.threshold": 22},
    {"vix_high.threshold": 28.5},
    {"backtest.slippage_value": 2.25},
    {"backtest.cost_multiplier": 1.7, "entry": 0.45},
    {"backtest.min_hold_days": 5},
    {"backtest.min_hold_days": 5, "backtest.cooldown_days": 3, "backtest.allow_flip_same_day": False},
    {"backtest.initial_capital": 3_000_000, "window": 35},
]


def _assert_equal_runs(p: Project, backtest_id: str, many, sets) -> None:
    for k, s in enumerate(sets):
        ref = run_backtest(p.snapshot, p.paths, p.reg, backtest_id, params=s).metrics
        got = many.record(k)
        for seg in ("full", "is", "oos"):
            for name, want in ref[seg].items():
                assert _same(got[seg][name], want), (k, s, seg, name, got[seg][name], want)


def test_every_key_kind_in_one_call_equals_independent_runs(demo: Project) -> None:
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", MIXED, chunk=3)
    _assert_equal_runs(demo, "bt_spx_cta", many, MIXED)
    # the threshold lives in the entry gate's graph: three values (22, 28.5, the workbook's 25) -> three
    # gate evaluations; the freeze mask (credit_ok) reads no override -> one
    assert many.evaluations["entry_gate"] == 3
    assert many.evaluations["freeze_gate"] == 1
    # the columns really differ: every set's net PnL is its own
    pnl = many.table("full")["total_pnl"]
    assert len({round(float(x), 4) for x in pnl}) == len(MIXED)
    assert many.bindings[2] == {"entry": 0.5, "lag": 1, "window": 60, "backtest.slippage_value": 2.25}
    # a feature override re-evaluates only the graphs reading the feature: one signal for three thresholds
    only = run_param_sets(
        demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{"vix_high.threshold": t} for t in (17, 18.5, 33)]
    )
    assert dict(only.evaluations) == {"signal": 1, "entry_gate": 3, "freeze_gate": 1}
    assert len({round(float(x), 4) for x in only.table("full")["total_pnl"]}) == 3  # the gate really moved


def test_cost_multiplier_scales_costs_by_hand(demo: Project) -> None:
    """ES (contracts, one contract a trade): a side costs (1 tick spread_adjusted + 0.5 tick slippage) x
    0.25 x 50 + $2.25 = $21.00 (BACKTESTS bt_es_delta, INSTRUMENTS ES); x0 is free, x2 doubles."""
    import pyarrow.parquet as pq

    sets = [
        {"backtest.cost_multiplier": 0.0},
        {"backtest.cost_multiplier": 1.0},
        {"backtest.cost_multiplier": 2.0},
    ]
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", sets)
    full = many.table("full")
    ref = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta")
    tr = pq.read_table(ref.run_dir / "trades.parquet").to_pydict()
    assert set(tr["contracts"]) == {1.0} and not any(tr["open"])  # every trade: one contract, in and out
    sides = 2 * len(tr["contracts"])
    per_side = (1.0 * 0.25 + 0.5 * 0.25) * 50 + 2.25
    assert per_side == 21.0
    assert full["total_costs"][0] == 0.0
    assert full["total_pnl"][0] == pytest.approx(full["gross_pnl"][0], abs=1e-9)
    assert full["total_costs"][1] == pytest.approx(per_side * sides, rel=1e-12)
    assert full["total_costs"][2] == pytest.approx(2 * per_side * sides, rel=1e-12)
    # the same positions whatever the costs (contracts do not depend on equity): the same gross PnL
    assert full["gross_pnl"][0] == pytest.approx(full["gross_pnl"][2], rel=1e-12)
    assert full["n_trades"][1] == len(tr["contracts"])
    # the index proxy: x0 is gross = net too
    spx = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{"backtest.cost_multiplier": 0}])
    t = spx.table("full")
    assert t["total_costs"][0] == 0.0 and t["total_pnl"][0] == pytest.approx(t["gross_pnl"][0], abs=1e-9)


def _sharpe(r: np.ndarray) -> float:
    return float(r.mean() / r.std(ddof=1) * np.sqrt(252.0))


def test_returns_recompute_the_metrics(demo: Project) -> None:
    sets = [{"window": 45}, {"vix_high.threshold": 23.5, "backtest.min_hold_days": 2}]
    plain = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets)
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets, returns=True)
    assert plain.returns is None and many.returns is not None and many.dates is not None
    np.testing.assert_allclose(many.metrics, plain.metrics, rtol=1e-12, atol=1e-9, equal_nan=True)
    r, d, o = many.returns, many.dates, many.oos_start
    assert r.shape == (len(d), 2) and r.dtype == np.float64 and d.dtype == np.dtype("datetime64[D]")
    # the traded sessions: 2005-01-03 .. 2018-12-31; OOS = sessions after 2015-12-31
    assert str(d[0]) == "2005-01-03" and str(d[-1]) == "2018-12-31" and np.all(np.diff(d) > np.timedelta64(0))
    assert o is not None and str(d[o - 1]) <= "2015-12-31" < str(d[o])
    cap = 1_000_000.0
    for k in range(2):
        rec = many.record(k)
        assert _sharpe(r[:, k]) == pytest.approx(rec["full"]["sharpe"], rel=1e-9)
        assert _sharpe(r[:o, k]) == pytest.approx(rec["is"]["sharpe"], rel=1e-9)
        assert _sharpe(r[o:, k]) == pytest.approx(rec["oos"]["sharpe"], rel=1e-9)
        # equity compounds the daily returns: E_end = capital x prod(1 + r)
        e_is = cap * np.prod(1.0 + r[:o, k])
        e_end = cap * np.prod(1.0 + r[:, k])
        assert e_end - cap == pytest.approx(rec["full"]["total_pnl"], rel=1e-9, abs=1e-6)
        assert e_is - cap == pytest.approx(rec["is"]["total_pnl"], rel=1e-9, abs=1e-6)
        assert e_end - e_is == pytest.approx(rec["oos"]["total_pnl"], rel=1e-9, abs=1e-6)


def test_intraday_returns_are_per_session(demo: Project) -> None:
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", [{"window": 25}], returns=True)
    assert many.dates is not None and many.returns is not None
    # the demo ES trade dates (tests/backtest/conftest.py): four sessions from 2018-11-05
    assert [str(x) for x in many.dates] == ["2018-11-05", "2018-11-06", "2018-11-07", "2018-11-08"]
    assert many.oos_start is None  # bt_es_delta has no OOS
    rec = many.record(0)
    e = 250_000.0 * np.prod(1.0 + many.returns[:, 0])
    assert e - 250_000.0 == pytest.approx(rec["full"]["total_pnl"], rel=1e-9, abs=1e-6)
    assert _sharpe(many.returns[:, 0]) == pytest.approx(rec["full"]["sharpe"], rel=1e-9)


def _project_without_oos_prices(root: Path, oos_from: dt.date) -> Project:
    """A demo project whose S&P 500 source file stops at the IS end (every OOS row deleted, then ingested)."""
    import openpyxl

    from tests.backtest.conftest import open_project
    from tests.conftest import run_cli
    from tests.foundation.helpers import demo_project

    demo_project(root, ["demo-data", "--days", "4", "--trades-per-day", "3000", "--start", "2018-11-05"])
    src = root / "data" / "incoming" / "daily" / "spx.xlsx"
    wb = openpyxl.load_workbook(src)
    ws = wb["SPX"]
    cut = [
        i
        for i, row in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2)
        if row[0].date() > oos_from
    ]
    assert cut and cut == list(range(cut[0], ws.max_row + 1))
    ws.delete_rows(cut[0], len(cut))
    wb.save(src)
    r = run_cli(["ingest", "daily"], root)
    assert r.code == 0, r.err
    return open_project(root)


def test_is_only_reads_and_simulates_nothing_after_the_is_end(demo: Project, tmp_path: Path) -> None:
    sets = [{"window": 55, "vix_high.threshold": 26.5}, {"entry": 0.35, "backtest.slippage_value": 1.25}]
    oos_from = dt.date(2015, 12, 31)  # BACKTESTS bt_spx_cta: 2018-12-31 minus 36 months
    full = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets, returns=True)
    cut = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets, is_only=True, returns=True)
    # no OOS row simulated: the returns end on the IS end, and hold exactly the full run's IS sessions
    assert cut.dates is not None and cut.returns is not None and full.returns is not None
    assert str(cut.dates[-1]) == "2015-12-31" and cut.oos_start is None
    assert len(cut.dates) == full.oos_start
    np.testing.assert_array_equal(cut.returns, full.returns[: full.oos_start])
    s = {seg: i for i, seg in enumerate(SEGMENTS)}
    assert np.isnan(cut.metrics[:, s["oos"], :]).all()
    # IS metrics = a run that ends at the IS end (run_backtest with the window keys, its metrics.json)
    for k, p in enumerate(sets):
        ref = run_backtest(
            demo.snapshot,
            demo.paths,
            demo.reg,
            "bt_spx_cta",
            params={**p, "backtest.end_date": oos_from.isoformat(), "backtest.oos_last_x_months": 0},
        ).metrics["full"]
        for name, want in ref.items():
            assert _same(cut.record(k)["is"][name], want), (k, name)
    # the S&P 500 file without any OOS row: a full run cannot run (its OOS closes are missing) ...
    bare = _project_without_oos_prices(tmp_path / "proj", oos_from)
    with pytest.raises(UserError, match=r"SPX\.close is missing"):
        run_param_sets(bare.snapshot, bare.paths, bare.reg, "bt_spx_cta", sets)
    # ... and is_only gives the same IS metrics and returns as with every OOS price present
    alone = run_param_sets(
        bare.snapshot, bare.paths, bare.reg, "bt_spx_cta", sets, is_only=True, returns=True
    )
    np.testing.assert_array_equal(alone.metrics[:, s["is"], :], cut.metrics[:, s["is"], :])
    np.testing.assert_array_equal(alone.returns, cut.returns)


def test_one_window_per_call_and_window_keys(demo: Project) -> None:
    with pytest.raises(UserError, match=r"parameter set 1 runs on .*fix: give every set the same"):
        run_param_sets(
            demo.snapshot,
            demo.paths,
            demo.reg,
            "bt_spx_cta",
            [{"window": 40}, {"window": 40, "backtest.end_date": "2017-12-29"}],
        )
    # every set on the same moved window (what walk-forward calls): equal to independent runs
    w = {
        "backtest.start_date": "2007-06-01",
        "backtest.end_date": "2012-06-29",
        "backtest.oos_last_x_months": 11,
    }
    sets = [{**w, "window": 50}, {**w, "entry": 0.55}]
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets, returns=True)
    assert (
        many.dates is not None and str(many.dates[0]) == "2007-06-01" and str(many.dates[-1]) == "2012-06-29"
    )
    _assert_equal_runs(demo, "bt_spx_cta", many, sets)


def test_bad_keys_in_a_set_are_user_errors(demo: Project) -> None:
    with pytest.raises(UserError, match=r"backtest.min_hold_days=-1 \(BACKTESTS!N2.*fix:"):
        run_param_sets(
            demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{}, {"backtest.min_hold_days": -1}]
        )
    with pytest.raises(UserError, match=r"vix_high.thresold.*did you mean 'threshold'"):
        run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", [{"vix_high.thresold": 20}])


def test_daily_sessions_of_an_intraday_instrument_with_custom_fills(demo: Project) -> None:
    """bt_es_daily_custom: daily rows = ES sessions priced from 1m bars, fills at HH:MM (run.market_prices)."""
    sets = [{"lag": 2}, {"backtest.slippage_value": 2.5, "backtest.cost_multiplier": 1.3}]
    many = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_es_daily_custom", sets, returns=True)
    _assert_equal_runs(demo, "bt_es_daily_custom", many, sets)
    assert many.dates is not None and len(many.dates) == many.record(0)["full"]["n_days"]


def _variant(p: Project, backtest_id: str, **cells: object) -> object:
    """The demo snapshot with some BACKTESTS cells of one row changed (in memory; its own content hash)."""
    rows = tuple(
        dataclasses.replace(r, **cells) if r.backtest_id == backtest_id else r
        for r in p.snapshot.rows("BACKTESTS")
    )
    return dataclasses.replace(
        p.snapshot,
        sheets={**p.snapshot.sheets, "BACKTESTS": rows},
        content_hash=p.snapshot.content_hash + "-" + "-".join(f"{k}={v}" for k, v in cells.items()),
    )


def test_weekly_rebalance_and_capital_groups_equal_single_runs(demo: Project) -> None:
    """rebalance_rule weekly (non-deciding rows frozen) and two capitals (two kernel calls) in one call vs
    run_backtest's evaluate_run per set on the same variant snapshot (nothing written)."""
    from runtime.backtest.compile import compile_backtest
    from runtime.backtest.run import evaluate_run

    snap = _variant(demo, "bt_spx_cta", rebalance_rule="weekly")
    sets = [{"window": 65}, {"window": 65, "backtest.initial_capital": 400_000}, {"vix_high.threshold": 24}]
    many = run_param_sets(snap, demo.paths, demo.reg, "bt_spx_cta", sets, chunk=2)  # type: ignore[arg-type]
    for k, s in enumerate(sets):
        cb = compile_backtest(snap, "bt_spx_cta", s)  # type: ignore[arg-type]
        ref = evaluate_run(snap, demo.paths, demo.reg, cb).result.metrics  # type: ignore[arg-type]
        for seg in SEGMENTS:
            for name, want in ref[seg].items():
                got = many.record(k)[seg][name]
                assert math.isclose(got, want, rel_tol=REL, abs_tol=1e-9) or (
                    math.isnan(got) and math.isnan(want)
                ), (k, seg, name, got, want)
    # weekly really changes the run (a test that could not fail otherwise)
    daily = run_param_sets(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", sets[:1])
    assert daily.record(0)["full"]["n_trades"] != many.record(0)["full"]["n_trades"]
