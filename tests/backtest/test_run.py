"""`backtest run` end to end on the demo project: artifacts agree with each other and with an independent
pandas recomputation from equity.parquet; re-runs are byte-identical and found again by their id.

Every expected metric is recomputed here from the written paths with plain pandas (design/ENGINE.md
sections 8-9 as a reader would apply them), never read back from the kernel.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from runtime.backtest.run import ARTIFACTS, run_backtest
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_demo")

REL = 1e-9


def _ann(p: Project) -> tuple[float, float]:
    m = next(r for r in p.snapshot.rows("METRICS") if r.metric_id == "sharpe")
    return float(m.annualization_factor), float(m.risk_free_rate)


def _capital(p: Project, backtest_id: str) -> float:
    return float(
        next(r for r in p.snapshot.rows("BACKTESTS") if r.backtest_id == backtest_id).initial_capital
    )


def _expected(eq: pd.DataFrame, capital: float, ann: float, rf: float, day: pd.Series) -> dict[str, dict]:
    """total_pnl, max_drawdown, sharpe, n_bars per segment from the equity path alone."""
    out: dict[str, dict] = {}
    e_all = eq["equity"].to_numpy()
    for seg in ("full", "is", "oos"):
        rows = np.ones(len(eq), bool) if seg == "full" else (eq["segment"] == seg).to_numpy()
        if not rows.any():
            out[seg] = {"total_pnl": 0.0, "n_bars": 0}
            continue
        first = int(np.flatnonzero(rows)[0])
        e0 = capital if first == 0 else float(e_all[first - 1])
        e = e_all[rows]
        peak = np.maximum.accumulate(np.r_[e0, e])[1:]
        # daily returns: a session's net PnL over the equity at the previous session's end
        d = pd.DataFrame({"day": day[rows].to_numpy(), "pnl": eq["pnl"].to_numpy()[rows], "eq": e})
        by = d.groupby("day", sort=True).agg(pnl=("pnl", "sum"), end=("eq", "last"))
        prev = np.r_[e0, by["end"].to_numpy()[:-1]]
        r = by["pnl"].to_numpy() / prev
        x = r - rf / ann
        sharpe = x.mean() / x.std(ddof=1) * math.sqrt(ann) if len(x) > 1 and x.std(ddof=1) > 0 else None
        out[seg] = {
            "total_pnl": float(eq["pnl"].to_numpy()[rows].sum()),
            "max_drawdown": float(np.max((peak - e) / peak)),
            "sharpe": sharpe,
            "n_bars": int(rows.sum()),
            "end_equity": float(e[-1]),
        }
    return out


def _check_artifacts(p: Project, out, backtest_id: str, day_of) -> dict:
    run_dir = out.run_dir
    assert sorted(x.name for x in run_dir.iterdir()) == sorted(ARTIFACTS)
    assert run_dir.parent == p.paths.runs_dir and out.run_id.startswith(backtest_id + "-")
    assert not [x for x in p.paths.runs_dir.iterdir() if x.name.startswith(".")]  # no temp folder left
    assert (run_dir / "snapshot.json").read_bytes() == p.snapshot.path.read_bytes()
    inputs = json.loads((run_dir / "inputs.json").read_text())
    assert inputs["backtest_id"] == backtest_id and inputs["snapshot_hash"] == p.snapshot.content_hash
    assert set(inputs["data_versions"]) >= {"SPX" if backtest_id == "bt_spx_cta" else "ES"}
    assert inputs["code_version"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= {"full", "is", "oos"}
    eq = pd.read_parquet(run_dir / "equity.parquet")
    trades = pd.read_parquet(run_dir / "trades.parquet")
    pos = pd.read_parquet(run_dir / "positions.parquet")
    sig = pd.read_parquet(run_dir / "signals.parquet")
    assert len(eq) == len(pos) == len(sig) == metrics["full"]["n_bars"] > 0
    capital = _capital(p, backtest_id)
    # equity = initial capital + cumulative net PnL; net = gross - costs on every row
    np.testing.assert_allclose(eq["equity"], capital + eq["pnl"].cumsum(), rtol=1e-12)
    np.testing.assert_allclose(eq["pnl"], eq["gross"] - eq["costs"], atol=1e-6)
    assert eq["equity"].iloc[-1] == pytest.approx(capital + eq["pnl"].sum(), rel=1e-12)
    # the trades' PnL sums to the total net PnL (the open trade included), per segment too
    assert trades["pnl"].sum() == pytest.approx(metrics["full"]["total_pnl"], rel=REL, abs=1e-6)
    assert len(trades) == metrics["full"]["n_trades"]
    for seg in ("is", "oos"):
        assert (trades["segment"] == seg).sum() == metrics[seg]["n_trades"]
    assert trades["costs"].sum() == pytest.approx(eq["costs"].sum(), rel=1e-9)
    # exposure: share of rows with a position held
    assert (pos["position"] != 0).mean() == pytest.approx(metrics["full"]["exposure"], rel=REL)
    ann, rf = _ann(p)
    want = _expected(eq, capital, ann, rf, day_of(eq))
    for seg, w in want.items():
        got = metrics[seg]
        assert got["n_bars"] == w["n_bars"], seg
        assert got["total_pnl"] == pytest.approx(w["total_pnl"], rel=REL, abs=1e-6), seg
        if w["n_bars"]:
            assert got["max_drawdown"] == pytest.approx(w["max_drawdown"], rel=REL, abs=1e-12), seg
            assert got["end_equity"] == pytest.approx(w["end_equity"], rel=1e-12), seg
            if w["sharpe"] is None:
                assert got["sharpe"] is None, seg
            else:
                assert got["sharpe"] == pytest.approx(w["sharpe"], rel=1e-7), seg
    # the registry rows come last and say the same
    runs = p.reg.query("SELECT * FROM runs WHERE run_id = ?", [out.run_id])
    assert len(runs) == 1 and runs[0]["status"] == "ok" and runs[0]["target_id"] == backtest_id
    rows = p.reg.query("SELECT metric_id, scope, value FROM metrics WHERE run_id = ?", [out.run_id])
    assert len(rows) == 3 * len(metrics["full"])
    reg_total = {r["scope"]: r["value"] for r in rows if r["metric_id"] == "total_pnl"}
    assert reg_total == {s: metrics[s]["total_pnl"] for s in ("full", "is", "oos")}
    return metrics


def test_bt_spx_cta_daily_artifacts_agree(demo: Project) -> None:
    out = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_spx_cta", force=True)
    assert out.created
    m = _check_artifacts(demo, out, "bt_spx_cta", lambda eq: pd.to_datetime(eq["date"]))
    eq = pd.read_parquet(out.run_dir / "equity.parquet")
    # the traded range is BACKTESTS' start..end, OOS = the sessions after end - 36 months
    assert str(eq["date"].iloc[0]) == "2005-01-03" and str(eq["date"].iloc[-1]) == "2018-12-31"
    oos = eq[eq["segment"] == "oos"]
    assert (
        str(oos["date"].iloc[0]) == "2016-01-04" and (eq["segment"].iloc[: len(eq) - len(oos)] == "is").all()
    )
    assert m["is"]["n_trades"] > 0 and m["oos"]["n_trades"] > 0
    # close execution of an index proxy: units bought at the close, PnL from the next row on
    pos = pd.read_parquet(out.run_dir / "positions.parquet")
    sig = pd.read_parquet(out.run_dir / "signals.parquet")
    held = pos["position"].to_numpy()
    s = sig["signal"].fillna(0).to_numpy()
    frozen = sig["frozen"].fillna(0).to_numpy() == 1
    ok = sig["entry_ok"].fillna(0).to_numpy() == 1
    # where nothing blocks (gate open, not frozen) the side held is the signal's side
    free = ok & ~frozen
    assert free.sum() > 100
    assert (np.sign(held[free]) == np.sign(s[free])).all()
    # with the entry gate closed and not frozen, no position is opened from flat
    opened = (held != 0) & (np.r_[0.0, held[:-1]] == 0)
    assert not (opened & ~ok).any()


def test_bt_es_delta_intraday_artifacts_agree(demo: Project) -> None:
    out = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", force=True)

    def session(eq: pd.DataFrame) -> pd.Series:
        return pd.to_datetime(eq["ts"]).dt.tz_convert("America/Chicago").dt.date  # RTH: the trade date

    m = _check_artifacts(demo, out, "bt_es_delta", session)
    eq = pd.read_parquet(out.run_dir / "equity.parquet")
    days = session(eq)
    assert sorted({str(d) for d in days}) == ["2018-11-05", "2018-11-06", "2018-11-07", "2018-11-08"]
    assert len(eq) == 4 * 390  # dense RTH 1m bars
    assert m["oos"]["n_bars"] == 0  # oos_last_x_months 0
    trades = pd.read_parquet(out.run_dir / "trades.parquet")
    assert len(trades) > 10
    # RTH intraday is flat at every session end: no trade spans two sessions
    ent = pd.to_datetime(trades["entry_ts"]).dt.tz_convert("America/Chicago").dt.date
    ext = pd.to_datetime(trades["exit_ts"]).dt.tz_convert("America/Chicago").dt.date
    assert (ent == ext).all()
    # next_open: every fill price is a bar's open (the next bar's after the decision), ES ticks of 0.25
    pos = pd.read_parquet(out.run_dir / "positions.parquet")
    opens = pos["open"].to_numpy()
    closed = trades[~trades["open"]]
    assert np.isin(closed["entry_price"].to_numpy(), opens).all()
    assert np.allclose(np.mod(closed["entry_price"].to_numpy(), 0.25), 0)
    # costs per round trip: 2 x (spread_adjusted 1 tick + 0.5 tick slippage) x $50 + 2 x $2.25 per contract
    one = closed[(closed["contracts"] == 1)]
    assert len(one) and np.allclose(one["costs"], 2 * (1.0 + 0.5) * 0.25 * 50 + 2 * 2.25)


def test_rerun_is_found_and_force_is_byte_identical(demo: Project) -> None:
    first = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta")
    before = (first.run_dir / "metrics.json").read_bytes()
    again = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta")
    assert not again.created and again.run_id == first.run_id and again.data is None
    forced = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", force=True)
    assert forced.created and forced.run_id == first.run_id
    assert (forced.run_dir / "metrics.json").read_bytes() == before
    # other params are another run, with its own id
    # a window no other test of this session-scoped project uses (test_many runs window 20)
    other = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta", {"window": 27})
    assert other.created and other.run_id != first.run_id
    assert json.loads((other.run_dir / "inputs.json").read_text())["binding"]["window"] == 27
    n = demo.reg.query("SELECT count(*) AS n FROM runs WHERE run_id IN (?, ?)", [first.run_id, other.run_id])
    assert n[0]["n"] == 2
