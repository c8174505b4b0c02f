"""REPORTING save_* flags, rebalance_rule weekly and flat_at_session_end false, through the real workbook.

A project of its own: the template is edited with openpyxl (as a user in Excel would), exported through the
real path, and the demo data ingested and derived by the real CLI. Then:
- bt_spx_cta: REPORTING rep_spx with every save flag and the tearsheet off, rebalance_rule weekly;
- bt_es_delta: a new REPORTING row with save_feature_debug on and the tearsheet off, flat_at_session_end
  false (positions held overnight).
Every expected value is recomputed here from the inputs (pandas week periods, the derived cvd_1m files).
"""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from runtime.backtest.run import open_run
from tests.backtest.conftest import Project, open_project
from tests.conftest import run_cli
from tests.foundation.helpers import wb_path

pytestmark = pytest.mark.xdist_group("backtest_flags")


def _set(ws, row: int, header: str, value: object) -> None:
    col = next(c.column for c in ws[1] if c.value == header)
    ws.cell(row=row, column=col, value=value)


def _row_of(ws, key: str) -> int:
    return next(r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=1).value == key)


@pytest.fixture(scope="module")
def flags(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from runtime.config.export import export_workbook
    from runtime.config.template import write_template

    root = tmp_path_factory.mktemp("flags") / "proj"
    (root / "config").mkdir(parents=True)
    path = write_template(wb_path(root))
    wb = openpyxl.load_workbook(path)
    rep, bts = wb["REPORTING"], wb["BACKTESTS"]
    r = _row_of(rep, "rep_spx")
    for h in ("generate_tearsheet", "save_equity_curve", "save_positions", "save_signals"):
        _set(rep, r, h, False)
    new = rep.max_row + 1
    for h, v in {
        "report_id": "rep_es",
        "target_type": "backtest",
        "target_id": "bt_es_delta",
        "generate_tearsheet": False,
        "save_equity_curve": True,
        "save_positions": True,
        "save_signals": True,
        "save_feature_debug": True,
        "enabled": True,
    }.items():
        _set(rep, new, h, v)
    _set(bts, _row_of(bts, "bt_spx_cta"), "rebalance_rule", "weekly")
    _set(bts, _row_of(bts, "bt_es_delta"), "flat_at_session_end", False)
    wb.save(path)
    export_workbook(path)
    for args in (
        ["init", "--data"],
        ["demo-data", "--days", "2", "--trades-per-day", "2000"],
        ["demo-data", "--days", "4", "--trades-per-day", "3000", "--start", "2018-11-05"],
        ["ingest", "daily"],
        ["ingest", "databento"],
        ["derive"],
    ):
        r = run_cli(args, root)
        assert r.code == 0, (args, r.err)
    return open_project(root)


def test_save_flags_off_write_only_metrics_inputs_snapshot_trades(flags: Project) -> None:
    out = open_run(flags.snapshot, flags.paths, flags.reg, "bt_spx_cta")
    files = sorted(p.name for p in out.run_dir.iterdir())
    assert files == ["inputs.json", "metrics.json", "snapshot.json", "trades.parquet"]
    assert out.data is not None and len(out.data.result.paths["position"]) > 1000


def test_weekly_rebalance_changes_positions_only_on_the_first_row_of_a_week(flags: Project) -> None:
    out = open_run(flags.snapshot, flags.paths, flags.reg, "bt_spx_cta")
    assert out.data is not None
    pos = out.data.result.paths["position"]
    week = pd.PeriodIndex(pd.to_datetime(out.data.time), freq="W-SUN")  # Monday-Sunday weeks
    first_of_week = np.r_[False, np.asarray(week[1:] != week[:-1])]
    changed = np.r_[False, pos[1:] != pos[:-1]]
    assert changed.sum() >= 5  # the strategy does trade
    assert not (changed & ~first_of_week).any()  # close execution: the fill is the deciding row itself
    # the signal does change mid-week: without the rule those rows would have traded
    sig = np.sign(np.nan_to_num(out.data.signal))
    assert (np.r_[False, sig[1:] != sig[:-1]] & ~first_of_week).sum() > 0


def test_feature_debug_and_overnight_positions(flags: Project) -> None:
    out = open_run(flags.snapshot, flags.paths, flags.reg, "bt_es_delta")
    files = sorted(p.name for p in out.run_dir.iterdir())
    assert files == [
        "equity.parquet",
        "features.parquet",
        "inputs.json",
        "metrics.json",
        "positions.parquet",
        "signals.parquet",
        "snapshot.json",
        "trades.parquet",
    ]
    feats = pd.read_parquet(out.run_dir / "features.parquet")
    assert list(feats.columns) == ["ts", "es_delta"]  # calm_vol is daily (under asof): not on the 1m grid
    files_cvd = sorted((flags.paths.derived_dir / "ES" / "cvd_1m" / "session=RTH").glob("*/part-0.parquet"))
    cvd = pd.concat([pd.read_parquet(f) for f in files_cvd]).set_index("ts")["delta"]
    expect = cvd.reindex(feats["ts"]).fillna(0.0).to_numpy()  # a minute without trades has delta 0
    np.testing.assert_array_equal(feats["es_delta"].to_numpy(), expect)
    # flat_at_session_end false: some trade is entered in one session and exited in a later one
    tr = pd.read_parquet(out.run_dir / "trades.parquet")
    spans = tr["entry_ts"].dt.date != tr["exit_ts"].dt.date
    assert spans.any(), tr[["entry_ts", "exit_ts"]]
