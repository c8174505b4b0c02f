"""WorkspaceSources: daily vintages as of a date placed on trading days, dense 1m columns, data versions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from runtime.contracts import ResolvedPaths, UserError
from runtime.derive import DeriveParams, build_derived
from runtime.derive.layout import SCHEMAS
from runtime.evaluation import MINUTE_COLUMNS, WorkspaceSources, daily_grid, minute_grid
from runtime.ingest.daily import ingest_daily, read_daily
from runtime.storage.registry import Registry

T0 = dt.datetime(2024, 1, 10, 22, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 1, 12, 22, 0, tzinfo=dt.UTC)
NAN = np.nan


def write_xlsx(path: Path, sheet: str, rows: list[list]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def day(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


CTA_V1 = [
    ["Date", "CTA Flow", "CTA Position"],
    [day("2024-01-02"), 1.0, 10.0],
    [day("2024-01-03"), 2.0, 20.0],
    [day("2024-01-04"), 3.0, 30.0],
    [day("2024-01-05"), 4.0, 40.0],
    [day("2024-01-06"), 5.0, 50.0],  # a Saturday stamp
    [day("2024-01-08"), 6.0, None],  # Monday: own flow, blank position
    [day("2024-01-09"), 7.0, 70.0],
]
CTA_V2 = [*CTA_V1[:4], [day("2024-01-05"), 40.0, 40.0], *CTA_V1[5:], [day("2024-01-10"), 8.0, 80.0],
          [day("2024-01-11"), 9.0, 90.0]]  # fmt: skip


def cta(paths: ResolvedPaths, rows: list[list]) -> Path:
    return write_xlsx(paths.data_root / "incoming" / "daily" / "cta.xlsx", "CTA", rows)


def vix(paths: ResolvedPaths, rows: list[list]) -> Path:
    return write_xlsx(paths.data_root / "incoming" / "daily" / "vix.xlsx", "VIX", rows)


def same(a: np.ndarray, b) -> None:
    np.testing.assert_array_equal(a, np.asarray(b, dtype=float))


def test_as_of_reads_the_values_known_then(data_env) -> None:
    snap, paths, reg = data_env
    cta(paths, CTA_V1)
    ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)
    cta(paths, CTA_V2)  # revises 01-05 and adds 01-10, 01-11
    ingest_daily(snap.dataset("CTA"), paths, reg, now=T1)
    grid = daily_grid("NYSE", day("2024-01-02"), day("2024-01-11"), 0)
    assert [str(x) for x in grid.index] == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05",
                                            "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11"]  # fmt: skip
    then = WorkspaceSources(snap, paths, reg, as_of=day("2024-01-10"))
    latest = WorkspaceSources(snap, paths, reg)
    same(
        then.read("CTA", "cta_flow", grid), [1, 2, 3, 4, 6, 7, NAN, NAN]
    )  # Monday's own 6 beats Saturday's 5
    same(latest.read("CTA", "cta_flow", grid), [1, 2, 3, 40, 6, 7, 8, 9])
    # Monday's position is blank: Saturday's 50 is the latest value in (Fri, Mon]
    same(then.read("CTA", "cta_position", grid), [10, 20, 30, 40, 50, 70, NAN, NAN])
    assert then.version("CTA") != latest.version("CTA")
    assert WorkspaceSources(snap, paths, reg, as_of=day("2024-01-11")).version("CTA") == then.version("CTA")
    with pytest.raises(UserError, match=r"as of 2024-01-09.*backtest ingest daily --dataset CTA"):
        WorkspaceSources(snap, paths, reg, as_of=day("2024-01-09")).read("CTA", "cta_flow", grid)


def test_a_new_vix_ingest_changes_vixs_version_only(data_env) -> None:
    snap, paths, reg = data_env
    vix_rows = [["Date", "Close"], [day("2024-01-02"), 13.2], [day("2024-01-03"), 14.0]]
    vix(paths, vix_rows)
    ingest_daily(snap.dataset("VIX"), paths, reg, now=T0)
    cta(paths, CTA_V1)
    ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)
    before = WorkspaceSources(snap, paths, reg)
    v_vix, v_cta = before.version("VIX"), before.version("CTA")
    assert v_vix != v_cta and before.version("VIX") == v_vix  # stable within and across objects
    assert WorkspaceSources(snap, paths, reg).version("VIX") == v_vix

    vix(paths, [*vix_rows, [day("2024-01-04"), 15.5]])
    ingest_daily(snap.dataset("VIX"), paths, reg, now=T1)
    after = WorkspaceSources(snap, paths, reg)
    assert after.version("VIX") != v_vix and after.version("CTA") == v_cta
    # a new file with the same values (another title row: other bytes) is a new ingest writing no vintage:
    # the data served is unchanged, so is the version
    v2 = after.version("VIX")
    vix(paths, [["CBOE VIX export"], [], *vix_rows, [day("2024-01-04"), 15.5]])
    res = ingest_daily(snap.dataset("VIX"), paths, reg, now=T1 + dt.timedelta(hours=1))
    assert res.status == "ingested" and res.details["vintage_rows"] == 0
    assert WorkspaceSources(snap, paths, reg).version("VIX") == v2


def test_credit_monthly_is_sparse_on_the_daily_grid_and_ffill_makes_it_dense(workspace) -> None:
    ws = workspace
    grid = daily_grid("NYSE", day("2010-01-01"), day("2018-12-31"), 0)
    placed = WorkspaceSources(ws.snapshot, ws.paths, ws.reg).read("CREDIT", "aaa", grid)
    raw = read_daily(ws.paths, ws.snapshot.dataset("CREDIT"), ws.reg)
    stamps = pd.DataFrame(
        {"stamp": pd.to_datetime(raw.index).as_unit("ns"), "v": raw["aaa"].to_numpy()}
    ).dropna()
    stamps = stamps[stamps.stamp > pd.Timestamp(grid.previous)].sort_values("stamp")
    # reference: each stamp on the first grid date on or after it (pandas merge_asof forward), latest wins
    g = pd.DataFrame({"g": pd.to_datetime(grid.index).as_unit("ns")})
    m = pd.merge_asof(stamps, g, left_on="stamp", right_on="g", direction="forward").dropna(subset=["g"])
    ref = m.groupby("g")["v"].last().reindex(g["g"]).to_numpy()
    same(placed, ref)
    present = np.flatnonzero(~np.isnan(placed))
    assert len(present) == 9 * 12  # one value a month, 2010-01 .. 2018-12
    dom = pd.DatetimeIndex(grid.index[present]).day
    assert np.all((dom >= 26) | (dom <= 3))  # month-end-ish rows only (a holiday month end moves to day 1-3)
    assert np.datetime64("2018-04-02") in grid.index[present]  # 2018-03-30 was Good Friday: next trading day
    # ffill (pandas) of the placed series is dense and equals the latest value stamped on or before each row
    filled = pd.Series(placed).ffill().to_numpy()
    assert not np.isnan(filled[present[0] :]).any()
    asof = raw["aaa"].dropna()
    asof.index = pd.to_datetime(asof.index)
    expect = asof.asof(pd.to_datetime(grid.index)).to_numpy()
    same(filled[present[0] :], expect[present[0] :])


def test_minute_columns_are_columns_of_the_derived_tables() -> None:
    for column, (table, _) in MINUTE_COLUMNS.items():
        assert column in SCHEMAS[table].names, (column, table)


def raw_table(ws, table: str, session: str) -> pd.DataFrame:
    files = sorted(
        (ws.paths.derived_dir / "ES" / table / f"session={session}").glob("trade_date=*/part-0.parquet")
    )
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    frame["ts"] = frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return frame


@pytest.mark.parametrize("session", ["RTH", "FULL"])
def test_minute_columns_are_dense_with_zero_volume_on_empty_minutes(workspace, session) -> None:
    ws = workspace
    grid = minute_grid("ES", session, day("2018-11-19"), day("2018-11-28"), paths=ws.paths)
    src = WorkspaceSources(ws.snapshot, ws.paths, ws.reg)
    bars = raw_table(ws, "bars_1m", session).set_index("ts")
    cvd = raw_table(ws, "cvd_1m", session).set_index("ts")
    assert bars.index.isin(grid.index).all() and len(bars) < len(grid)  # every bar is a row; gaps exist
    at = pd.DatetimeIndex(grid.index)
    rb, rc = bars.reindex(at), cvd.reindex(at)
    empty = rb["volume"].isna().to_numpy()
    assert empty.sum() > 50
    for col in ("open", "high", "low", "close", "vwap"):
        same(src.read("ES", col, grid), rb[col].astype(float))
    for col in ("volume", "buy_volume", "sell_volume", "n_trades"):
        same(src.read("ES", col, grid), rb[col].astype(float).fillna(0.0))
    same(src.read("ES", "delta", grid), rc["delta"].astype(float).fillna(0.0))
    running = rc["cvd"].astype(float).groupby(grid.trade_date).ffill().fillna(0.0)
    same(src.read("ES", "cvd", grid), running)
    v = src.read("ES", "volume", grid)
    assert np.all(v[empty] == 0) and np.all(np.isnan(src.read("ES", "close", grid)[empty]))
    assert src.notes == []


def test_minute_values_do_not_depend_on_where_loading_began(workspace) -> None:
    ws = workspace
    src = WorkspaceSources(ws.snapshot, ws.paths, ws.reg)
    late = minute_grid("ES", "FULL", day("2018-11-26"), day("2018-11-28"), 100, paths=ws.paths)
    early = minute_grid("ES", "FULL", day("2018-11-19"), day("2018-11-28"), paths=ws.paths)
    assert late.index[0] > early.index[0]
    k = np.searchsorted(early.index, late.index)
    for col in ("close", "volume", "cvd"):
        same(src.read("ES", col, late), src.read("ES", col, early)[k])


def test_unknown_dataset_column_and_grid_mismatch_are_user_errors(workspace) -> None:
    ws = workspace
    src = WorkspaceSources(ws.snapshot, ws.paths, ws.reg)
    daily = daily_grid("NYSE", day("2018-11-01"), day("2018-11-30"), 0)
    minute = minute_grid("ES", "RTH", day("2018-11-26"), day("2018-11-26"), paths=ws.paths)
    cases = [
        (lambda: src.read("FOO", "x", daily), ["unknown dataset 'FOO'", "DATASETS has", "CREDIT", "ES"]),
        (lambda: src.version("FOO"), ["unknown dataset 'FOO'"]),
        (lambda: src.read("CREDIT", "xyz", daily), ["no column 'xyz'", "aaa, baa"]),
        (lambda: src.read("ES", "bogus", minute), ["no column 'bogus'", "open, high, low, close", "cvd"]),
        (lambda: src.read("CREDIT", "aaa", minute), ["asof(CREDIT.aaa)"]),
        (lambda: src.read("ES", "close", daily), ["to_daily(ES.close"]),
        (
            lambda: src.read("VIX", "close", daily),
            ["no ingested data", "backtest ingest daily --dataset VIX"],
        ),
    ]
    for call, fragments in cases:
        with pytest.raises(UserError) as ei:
            call()
        for f in fragments:
            assert f in str(ei.value), (f, str(ei.value))


def _rebased(paths: ResolvedPaths, new_root: Path) -> ResolvedPaths:
    """The same layout under a copied DATA_ROOT."""
    fields = {}
    for f in dataclasses.fields(paths):
        v = getattr(paths, f.name)
        if isinstance(v, Path) and v.is_relative_to(paths.data_root):
            fields[f.name] = new_root / v.relative_to(paths.data_root)
    return dataclasses.replace(paths, **fields)


def test_intraday_version_follows_the_derived_manifests(workspace, tmp_path) -> None:
    ws = workspace
    shutil.copytree(ws.paths.data_root, tmp_path / "data")
    paths = _rebased(ws.paths, tmp_path / "data")
    reg = Registry(paths.duckdb_file)
    ds = ws.snapshot.dataset("ES")
    first = WorkspaceSources(ws.snapshot, paths, reg)
    v_es, v_credit = first.version("ES"), first.version("CREDIT")
    assert v_es == WorkspaceSources(ws.snapshot, ws.paths, ws.reg).version(
        "ES"
    )  # same manifests, same version
    # rebuilding a date with the same inputs and parameters serves the same data: same version
    build_derived(ds, paths, reg, start=day("2018-11-26"), end=day("2018-11-26"), rebuild=True)
    assert WorkspaceSources(ws.snapshot, paths, reg).version("ES") == v_es
    # other parameters change what was derived: a new version for ES, none for CREDIT
    build_derived(ds, paths, reg, start=day("2018-11-26"), end=day("2018-11-26"), params=DeriveParams(3))
    again = WorkspaceSources(ws.snapshot, paths, reg)
    assert again.version("ES") != v_es and again.version("CREDIT") == v_credit
