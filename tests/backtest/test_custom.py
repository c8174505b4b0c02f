"""Daily backtests on ES sessions and `custom` execution (design/ENGINE.md section 1b, Table 1b).

The worked table is run through the real custom-price rule (run.custom_prices, exchange time) and the
kernel; the demo run `bt_es_daily_custom` is recomputed from the derived bars_1m files with plain pandas
(daily open/close, the 09:00 America/Chicago fill bar, positions, per-day PnL, per_trade and tick costs).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dsl
from compiler.contracts import Grid
from runtime.backtest.compile import compile_backtest
from runtime.backtest.run import custom_prices, open_run, run_backtest
from runtime.config.loader import load_snapshot
from runtime.config.names import content_hash
from runtime.contracts import ConfigValidationError, UserError
from runtime.engine.contracts import ColumnSpec, CostSpec, ExecutionSpec, InstrumentSpec, Market, RunSpec
from runtime.engine.kernel import run_one
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_demo")

BT = "bt_es_daily_custom"


# ----------------------------------------------------------------------------------------------------------
# Table 1b
# ----------------------------------------------------------------------------------------------------------

#: (session, [(CT time, open, close) or (CT time, None, None) for a minute without a trade])
TABLE_1B = [
    ("2018-11-12", [("08:30", 100, 101), ("08:59", 101, 102), ("14:59", 102, 103)]),
    ("2018-11-13", [("08:30", 103, 104), ("09:00", None, None), ("09:01", 105, 105.5), ("14:59", 106, 107)]),
    ("2018-11-14", [("08:30", 107, 106), ("09:00", 106.5, 106), ("14:59", 105, 104)]),
    ("2018-11-15", [("08:30", 104, 105), ("08:45", 105, 106)]),
]


def _table_minute_grid() -> tuple[Grid, np.ndarray, np.ndarray]:
    """The table's bars as a 1m Grid; November 2018 after the DST change: CT = UTC - 6 h."""
    stamps, tdates, opens, closes = [], [], [], []
    for day, bars in TABLE_1B:
        for hhmm, o, c in bars:
            h, m = (int(x) for x in hhmm.split(":"))
            stamps.append(np.datetime64(f"{day}T{h + 6:02d}:{m:02d}", "ns"))
            tdates.append(np.datetime64(day, "D"))
            opens.append(np.nan if o is None else o)
            closes.append(np.nan if c is None else c)
    days = np.array([d for d, _ in TABLE_1B], dtype="datetime64[D]")
    daily = Grid(dsl.Frequency.DAILY, days, "daily:t")
    g = Grid(dsl.Frequency.MINUTE, np.array(stamps), "1m:t:RTH", trade_date=np.array(tdates), daily=daily)
    return g, np.array(opens, dtype=float), np.array(closes, dtype=float)


def test_table_1b_custom_fill_prices_and_pnl() -> None:
    g, o, _ = _table_minute_grid()
    day_close = np.array([103, 107, 104, 106], dtype=float)
    day_open = np.array([100, 103, 107, 104], dtype=float)
    custom, fallback = custom_prices(g, o, "09:00", "America/Chicago", day_close)
    np.testing.assert_array_equal(custom, [102, 105, 106.5, 106])
    assert fallback == 1  # D3: no bar at or after 09:00
    col = ColumnSpec(ExecutionSpec("custom"), CostSpec())
    spec = RunSpec(InstrumentSpec("contracts", 50.0, 0.25), initial_capital=100_000.0)
    res = run_one(
        Market(close=day_close, open=day_open, custom=custom), np.array([1, 1, -1, -1.0]), col, spec
    )
    np.testing.assert_array_equal(res.paths["position"], [0, 1, 1, -1])
    np.testing.assert_allclose(res.paths["pnl"], [0, 100, -150, 100])
    tr = res.trades
    np.testing.assert_array_equal(tr["entry_price"], [105, 106])
    np.testing.assert_array_equal(tr["exit_price"], [106, 106])
    np.testing.assert_allclose(tr["pnl"], [50, 0])
    assert list(tr["open"]) == [0, 1]


# ----------------------------------------------------------------------------------------------------------
# compile: the custom time and the refusals
# ----------------------------------------------------------------------------------------------------------


def _variant(p: Project, name: str, changes: dict) -> Path:
    doc = json.loads(p.snapshot.path.read_text(encoding="utf-8"))
    (row,) = [r for r in doc["sheets"]["BACKTESTS"] if r["backtest_id"] == BT]
    row.update(changes)
    doc["content_hash"] = content_hash(doc["sheets"], doc["expressions"])
    out = p.root / "config" / "exports" / f"h2_custom_{name}.json"
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def _cell(p: Project, header: str) -> str:
    from runtime.config.expressions import cell_of

    row = next(r for r in p.snapshot.rows("BACKTESTS") if r.backtest_id == BT)
    return f"BACKTESTS!{cell_of('BACKTESTS', row, header)}"


@pytest.mark.parametrize("hhmm", ["08:29", "15:00", "17:30"])
def test_custom_time_outside_the_session_is_refused(demo: Project, hhmm: str) -> None:
    snap = load_snapshot(_variant(demo, hhmm.replace(":", ""), {"custom_execution_time": hhmm}))
    with pytest.raises(UserError) as e:
        compile_backtest(snap, BT)
    msg = str(e.value)
    assert msg.startswith(_cell(demo, "custom_execution_time")), msg
    assert "outside the RTH session" in msg and "America/Chicago" in msg and "fix:" in msg


def test_custom_on_1m_bars_and_without_1m_bars_keep_their_errors(demo: Project) -> None:
    snap = load_snapshot(_variant(demo, "on1m", {"frequency": "1m"}))
    with pytest.raises(UserError, match="custom execution on a 1m grid is not supported"):
        compile_backtest(snap, BT)
    cb = compile_backtest(demo.snapshot, BT)
    assert cb.frequency == "daily" and cb.intraday_prices and cb.custom_time == "09:00"
    assert cb.column.rules.flat_at_session_end is False


# ----------------------------------------------------------------------------------------------------------
# the demo run against pandas on the derived 1m bars
# ----------------------------------------------------------------------------------------------------------


def _sessions_from_bars(p: Project) -> pd.DataFrame:
    """Per RTH session of the derived front series: open, close and the 09:00 CT fill (pandas only)."""
    files = sorted(
        (p.paths.derived_dir / "ES" / "bars_1m" / "session=RTH").glob("trade_date=*/part-0.parquet")
    )
    bars = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).sort_values("ts")
    bars["trade_date"] = pd.to_datetime(bars["trade_date"]).dt.date
    local = bars["ts"].dt.tz_convert("America/Chicago")
    bars["after"] = local.dt.hour * 60 + local.dt.minute >= 9 * 60
    rows = []
    for d, b in bars.groupby("trade_date", sort=True):
        b = b.dropna(subset=["open", "close"])
        a = b[b["after"]]
        fill = a["open"].iloc[0] if len(a) else b["close"].iloc[-1]
        rows.append({"date": d, "open": b["open"].iloc[0], "close": b["close"].iloc[-1], "fill": fill})
    return pd.DataFrame(rows).set_index("date")


def test_demo_run_against_pandas_on_the_1m_bars(demo: Project) -> None:
    out = run_backtest(demo.snapshot, demo.paths, demo.reg, BT)
    sess = _sessions_from_bars(demo)
    pos = pd.read_parquet(out.run_dir / "positions.parquet")
    sig = pd.read_parquet(out.run_dir / "signals.parquet")
    eq = pd.read_parquet(out.run_dir / "equity.parquet")
    dates = [d for d in pos["date"]]
    s = sess.loc[dates]
    np.testing.assert_array_equal(pos["close"], s["close"])
    np.testing.assert_array_equal(pos["open"], s["open"])
    np.testing.assert_array_equal(sig["custom_price"], s["fill"])
    # the traded window starts one row after the first priced session (its close is the first mark)
    first_priced = sess.index[0]
    assert dates[0] == sess.index[1] and first_priced < dates[0]
    prev_close = float(sess.loc[first_priced, "close"])
    # positions: decision at the close of t (sign of the signal), fill at t+1's custom price
    m, tick, fee = 50.0, 0.25, 2.5
    q = 0.0
    pnl, expect_pos, costs_total = [], [], 0.0
    closes, fills, sigs = s["close"].to_numpy(), s["fill"].to_numpy(), sig["signal"].to_numpy()
    for t in range(len(dates)):
        # missing signal = flat; long, short and flat are all allowed (position_values -1,0,1)
        target = float(np.sign(np.nan_to_num(sigs[t - 1]))) if t > 0 else 0.0
        if t > 0 and target != q:
            p = fills[t]
            cost = abs(target - q) * tick * m + fee  # 1 tick a contract, $2.50 per fill (a flip: one fill)
            gross = (q * (p - prev_close) + target * (closes[t] - p)) * m
            q = target
        else:
            cost, gross = 0.0, q * (closes[t] - prev_close) * m
        pnl.append(gross - cost)
        costs_total += cost
        expect_pos.append(q)
        prev_close = closes[t]
    np.testing.assert_array_equal(pos["position"], expect_pos)
    np.testing.assert_allclose(eq["pnl"], pnl, rtol=0, atol=1e-9)
    np.testing.assert_allclose(eq["costs"].sum(), costs_total, rtol=1e-12)
    assert out.metrics["full"]["total_pnl"] == pytest.approx(sum(pnl), abs=1e-6)
    assert out.metrics["full"]["n_trades"] >= 1
    tr = pd.read_parquet(out.run_dir / "trades.parquet")
    entries = tr["entry_row"].to_numpy()
    np.testing.assert_array_equal(tr["entry_price"], fills[entries])


def test_flat_at_session_end_default_closes_every_session(demo: Project) -> None:
    """The same backtest with the column blank (the demo workbook): no trade spans two sessions."""
    out = run_backtest(demo.snapshot, demo.paths, demo.reg, "bt_es_delta")
    tr = pd.read_parquet(out.run_dir / "trades.parquet")
    assert len(tr) > 0
    assert (tr["entry_ts"].dt.date == tr["exit_ts"].dt.date).all()


@pytest.mark.parametrize(
    ("changes", "cell", "fragment"),
    [
        ({"custom_execution_time": "16:00"}, "custom_execution_time", "outside the RTH session 08:30-15:00"),
        ({"frequency": "1m"}, "execution_time", "on 1m bars the next bar is the next minute"),
    ],
)
def test_export_refuses_a_custom_time_the_session_cannot_fill(
    tmp_path: Path, changes: dict, cell: str, fragment: str
) -> None:
    import openpyxl

    from runtime.config.export import export_workbook
    from runtime.config.template import write_template

    (tmp_path / "config").mkdir()
    path = write_template(tmp_path / "config" / "run_config.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb["BACKTESTS"]
    col = {c.value: c for c in ws[1]}
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=1).value == BT)
    for h, v in changes.items():
        ws.cell(row=row, column=col[h].column, value=v)
    wb.save(path)
    with pytest.raises(ConfigValidationError) as e:
        export_workbook(path)
    assert f"BACKTESTS!{col[cell].column_letter}{row}" in str(e.value) and fragment in str(e.value)


def test_a_daily_signal_reads_es_1m_bars_through_to_daily(demo: Project) -> None:
    """`to_daily` on the daily ES grid aggregates the same sessions' 1m bars (DSL.md), one session lagged."""
    from runtime.backtest.run import evaluate_run

    doc = json.loads(demo.snapshot.path.read_text(encoding="utf-8"))
    (t,) = [r for r in doc["sheets"]["SIGNAL_TEMPLATES"] if r["template_id"] == "trend_sign"]
    t["signal_expr"] = 'sign(lag(to_daily(ES.close, how="last") - to_daily(ES.open, how="first"), $lag))'
    doc["content_hash"] = content_hash(doc["sheets"], doc["expressions"])
    path = demo.root / "config" / "exports" / "h2_custom_to_daily.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    snap = load_snapshot(path)
    data = evaluate_run(snap, demo.paths, demo.reg, compile_backtest(snap, BT))
    sess = _sessions_from_bars(demo)
    body = np.sign(sess["close"] - sess["open"]).shift(1)  # yesterday's RTH session: up or down
    dates = [np.datetime64(d, "D").astype(object) for d in data.time]
    np.testing.assert_array_equal(data.signal, body.loc[dates].to_numpy())
    np.testing.assert_array_equal(data.close, sess.loc[dates, "close"].to_numpy())


def test_custom_time_follows_daylight_saving() -> None:
    """09:00 America/Chicago is 14:00 UTC in July (CDT) and 15:00 UTC in November (CST)."""
    stamps = np.array(
        ["2018-07-02T13:59", "2018-07-02T14:00", "2018-11-13T14:59", "2018-11-13T15:00"],
        dtype="datetime64[ns]",
    )
    tdates = np.array(["2018-07-02", "2018-07-02", "2018-11-13", "2018-11-13"], dtype="datetime64[D]")
    daily = Grid(dsl.Frequency.DAILY, np.unique(tdates), "daily:t")
    g = Grid(dsl.Frequency.MINUTE, stamps, "1m:t:RTH", trade_date=tdates, daily=daily)
    price, fallback = custom_prices(g, np.array([1.0, 2.0, 3.0, 4.0]), "09:00", "America/Chicago", np.ones(2))
    np.testing.assert_array_equal(price, [2.0, 4.0])
    assert fallback == 0


@pytest.fixture(scope="module")
def mourning(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Demo ES trades of 2018-12-03..06: on 12-05 CME equities closed at 08:30 CT (no RTH bar at all)."""
    import openpyxl

    from runtime.config.export import export_workbook
    from runtime.config.template import write_template
    from tests.backtest.conftest import open_project
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("mourning") / "proj"
    (root / "config").mkdir(parents=True)
    path = write_template(root / "config" / "run_config.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb["BACKTESTS"]
    col = {c.value: c.column for c in ws[1]}
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=1).value == BT)
    ws.cell(row=row, column=col["start_date"], value=dt.datetime(2018, 12, 3))
    ws.cell(row=row, column=col["end_date"], value=dt.datetime(2018, 12, 7))
    wb.save(path)
    export_workbook(path)
    for args in (
        ["init", "--data"],
        ["demo-data", "--days", "4", "--trades-per-day", "1500", "--start", "2018-12-03"],
        ["ingest", "daily"],
        ["ingest", "databento"],
        ["derive"],
    ):
        r = run_cli(args, root)
        assert r.code == 0, (args, r.err)
    return open_project(root)


def test_a_session_without_rth_bars_is_marked_at_the_previous_close(mourning: Project) -> None:
    out = open_run(mourning.snapshot, mourning.paths, mourning.reg, BT)
    assert out.data is not None
    d = out.data
    dates = [str(x) for x in d.time.astype("datetime64[D]")]
    i = dates.index("2018-12-05")
    assert d.close[i] == d.close[i - 1] and np.isnan(d.open[i]) and d.custom is not None
    assert np.isnan(d.custom[i])  # no fill on 12-05: an order decided on 12-04 waits for the next decision
    pos, pnl = d.result.paths["position"], d.result.paths["pnl"]
    assert pos[i] == pos[i - 1] and pnl[i] == 0.0
    assert any("2018-12-05" in n and "previous close" in n for n in d.notes)
