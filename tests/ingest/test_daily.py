"""Daily xlsx ingest: real-spreadsheet parsing, errors naming cells, append-only vintages, revisions, as_of."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from runtime.contracts import UserError
from runtime.ingest.daily import ingest_daily, parse_daily_xlsx, read_daily


@pytest.fixture
def env(data_env):
    return data_env


def write_xlsx(path: Path, rows: list[list], sheet: str = "CTA") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def cta_path(paths) -> Path:
    return paths.data_root / "incoming" / "daily" / "cta.xlsx"


T0 = dt.datetime(2024, 1, 10, 22, 0, tzinfo=dt.UTC)


def test_parser_copes_with_real_spreadsheets(tmp_path: Path) -> None:
    p = write_xlsx(
        tmp_path / "x.xlsx",
        [
            ["CTA positioning export"],  # a title row above the header
            [],
            ["  Date ", " CTA Flow ", "CTA Position", "Comment"],
            [dt.datetime(2024, 1, 3), "1,234.5", 10.0, "note"],  # number as text with thousands separator
            [45293, None, 11.0, None],  # Excel serial date (2024-01-02), blank value
            ["2024-01-04", " 7 ", "N/A", None],  # date as text, number as text, NA token
            [None, None, None, None],  # blank row
            ["01/05/2024", -2.5, 12.5, "x"],  # US date text
        ],
    )
    f = parse_daily_xlsx(p, "CTA", "Date")
    assert list(f.dates.astype(str)) == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]  # sorted
    flow = f.values["cta_flow"]
    assert np.isnan(flow[0]) and flow[1] == 1234.5 and flow[2] == 7.0 and flow[3] == -2.5
    pos = f.values["cta_position"]
    assert pos[0] == 11.0 and pos[1] == 10.0 and np.isnan(pos[2]) and pos[3] == 12.5
    assert f.skipped_columns == ("Comment",)
    assert f.source_columns["cta_flow"] == "CTA Flow"


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        ([["Date", "v"], ["2024-01-02", 1], ["2024-01-02", 2]], ["row 3: date 2024-01-02 duplicates row 2"]),
        (
            [["Date", "v"], ["2024-01-02", 1], ["yesterday", 2], ["2024-13-01", 3]],
            ["A3: 'yesterday' is not a date", "A4: '2024-13-01' is not a date"],
        ),
        ([["When", "v"], ["2024-01-02", 1]], ["no column 'Date'"]),
        ([["Date", "v"], ["2024-01-02", 1], ["2024-01-03", "abc"]], ["B3: 'abc' is not a number"]),
        ([["Date", "v"], [None, 5]], ["A2: 'None' is not a date"]),
    ],
)
def test_parser_errors_list_offending_cells(tmp_path: Path, rows, fragments) -> None:
    p = write_xlsx(tmp_path / "bad.xlsx", rows)
    with pytest.raises(UserError) as ei:
        parse_daily_xlsx(p, "CTA", "Date")
    for frag in fragments:
        assert frag in str(ei.value)


def test_bad_file_writes_nothing(env) -> None:
    snap, paths, reg = env
    write_xlsx(cta_path(paths), [["Date", "CTA Flow"], ["2024-01-02", 1], ["2024-01-02", 2]])
    with pytest.raises(UserError, match="duplicates"):
        ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)
    assert not any((paths.canonical_dir).rglob("*.parquet"))
    assert not any(paths.raw_dir.rglob("*.xlsx"))
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 0


def test_canonical_layout_and_values(env) -> None:
    snap, paths, reg = env
    rows = [["Date", "CTA Flow", "CTA Position"]] + [
        [dt.date(2023, 12, 28) + dt.timedelta(days=i), float(i), None if i == 3 else 100.0 + i]
        for i in range(10)
    ]
    src = write_xlsx(cta_path(paths), rows)
    res = ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)
    assert res.status == "ingested" and res.rows == 10 and res.details["new_dates"] == 10
    files = sorted((paths.canonical_dir / "daily_cta").rglob("*.parquet"))
    assert {f.parent.name for f in files} == {"year=2023", "year=2024"}  # canonical_partition_keys = year
    tables = [pq.read_table(f) for f in files]
    t = tables[0]
    assert t.schema.field("cta_flow").type == "double" and t.schema.field("date").type == "date32[day]"
    assert sum(x.column("cta_position").null_count for x in tables) == 1  # missing stays NULL, never 0 or NaN
    assert sum(x.num_rows for x in tables) == 10
    df = read_daily(paths, snap.dataset("CTA"), reg)
    expected = pd.DataFrame({r[0]: r[1:] for r in rows[1:]}, index=["cta_flow", "cta_position"]).T
    np.testing.assert_array_equal(df["cta_flow"].to_numpy(), expected["cta_flow"].astype(float).to_numpy())
    assert df["cta_position"].isna().sum() == 1 and df["cta_position"].iloc[4] == 104.0
    # raw copy by content hash; same file again: a no-op, stored once
    raws = list(paths.raw_dir.rglob("*.xlsx"))
    assert len(raws) == 1 and raws[0].read_bytes() == src.read_bytes()
    again = ingest_daily(snap.dataset("CTA"), paths, reg, now=T0 + dt.timedelta(days=1))
    assert again.status == "unchanged"
    assert len(list(paths.raw_dir.rglob("*.xlsx"))) == 1
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 1
    ing = reg.query("SELECT * FROM ingests")[0]
    assert (
        ing["rows"] == 10 and str(ing["first_date"]) == "2023-12-28" and str(ing["last_date"]) == "2024-01-06"
    )


def test_append_revision_and_as_of(env) -> None:
    snap, paths, reg = env
    ds = snap.dataset("CTA")
    v1 = [["Date", "CTA Flow"], ["2024-01-02", 1.0], ["2024-01-03", 2.0], ["2024-01-04", 3.0]]
    write_xlsx(cta_path(paths), v1)
    r1 = ingest_daily(ds, paths, reg, now=dt.datetime(2024, 1, 4, 23, 0, tzinfo=dt.UTC))
    # the next file version: a new date, and a revised value for 2024-01-03 (2.0 -> 2.5)
    v2 = [
        ["Date", "CTA Flow"],
        ["2024-01-02", 1.0],
        ["2024-01-03", 2.5],
        ["2024-01-04", 3.0],
        ["2024-01-05", 4.0],
    ]
    write_xlsx(cta_path(paths), v2)
    r2 = ingest_daily(ds, paths, reg, now=dt.datetime(2024, 1, 5, 23, 0, tzinfo=dt.UTC))
    assert r2.details["new_dates"] == 1
    revs = r2.details["revisions"]
    assert [(str(r.date), r.column, r.old_value, r.new_value) for r in revs] == [
        ("2024-01-03", "cta_flow", 2.0, 2.5)
    ]
    assert revs[0].old_ingest_id == r1.ingest_id and revs[0].new_ingest_id == r2.ingest_id
    stored = reg.query("SELECT * FROM revisions")
    assert len(stored) == 1 and stored[0]["old_value"] == 2.0 and stored[0]["new_value"] == 2.5
    assert stored[0]["old_ingest_id"] == r1.ingest_id and stored[0]["new_ingest_id"] == r2.ingest_id
    # only changed/new dates got a vintage row
    assert r2.details["vintage_rows"] == 2
    latest = read_daily(paths, ds, reg)
    assert latest["cta_flow"].tolist() == [1.0, 2.5, 3.0, 4.0]
    as_of = read_daily(paths, ds, reg, as_of=dt.date(2024, 1, 4))
    assert as_of["cta_flow"].tolist() == [1.0, 2.0, 3.0]  # as known then: old value, no 01-05 yet
    assert read_daily(
        paths, ds, reg, as_of=dt.date(2024, 1, 3)
    ).empty  # nothing was known before the 1st ingest


def test_dates_missing_from_new_file_are_kept_append_only(env) -> None:
    snap, paths, reg = env
    ds = snap.dataset("CTA")
    write_xlsx(cta_path(paths), [["Date", "CTA Flow"], ["2024-01-02", 1.0], ["2024-01-03", 2.0]])
    ingest_daily(ds, paths, reg, now=T0)
    write_xlsx(cta_path(paths), [["Date", "CTA Flow"], ["2024-01-04", 3.0]])  # only the new day
    r = ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(days=1))
    assert r.details["revisions"] == []
    assert read_daily(paths, ds, reg)["cta_flow"].tolist() == [1.0, 2.0, 3.0]


def test_killed_ingest_leaves_nothing_that_counts(env) -> None:
    """Files of an ingest that never reached the registry are invisible to readers and cleaned on re-run."""
    snap, paths, reg = env
    ds = snap.dataset("CTA")
    write_xlsx(cta_path(paths), [["Date", "CTA Flow"], ["2024-01-02", 1.0]])
    ingest_daily(ds, paths, reg, now=T0)
    orphan = paths.canonical_dir / "daily_cta" / "year=2024" / "part-CTA-orphan-00000000.parquet"
    import shutil

    first = next((paths.canonical_dir / "daily_cta").rglob("part-*.parquet"))
    shutil.copy(first, orphan)  # as if a killed run had written its file but not its registry row
    assert read_daily(paths, ds, reg)["cta_flow"].tolist() == [1.0]  # invisible
    stale = time.time() - 3600  # killed an hour ago (younger files may belong to a run still writing)
    os.utime(orphan, (stale, stale))
    write_xlsx(cta_path(paths), [["Date", "CTA Flow"], ["2024-01-02", 1.0], ["2024-01-03", 2.0]])
    ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(hours=1))  # the re-run
    assert not orphan.exists()  # cleaned
    parts = {
        f.stem.removeprefix("part-") for f in (paths.canonical_dir / "daily_cta").rglob("part-*.parquet")
    }
    assert parts == {r["ingest_id"] for r in reg.query("SELECT ingest_id FROM ingests")}
    assert read_daily(paths, ds, reg)["cta_flow"].tolist() == [1.0, 2.0]


def test_cli_ingests_demo_xlsx(env, cli) -> None:
    """The demo sample files (real arch data with spreadsheet quirks) ingest through the real CLI."""
    from runtime.demo_data.daily import cta_proxy, write_daily_samples

    snap, paths, reg = env
    write_daily_samples(paths.data_root / "incoming" / "daily")
    root = snap.project_root
    r = cli(["ingest", "daily"], cwd=root)
    assert r.code == 0, r.err
    for ds in ("SPX", "NDX", "VIX", "CREDIT", "CTA", "WTI"):
        assert f"{ds}: ingested" in r.out
    import arch.data.sp500
    import arch.data.vix

    sp = arch.data.sp500.load().loc["2000-01-01":]
    got = read_daily(paths, snap.dataset("SPX"), reg)
    assert list(got.columns[:6]) == ["open", "high", "low", "close", "adj_close", "volume"]
    np.testing.assert_allclose(got["close"].to_numpy(), sp["Close"].round(6).to_numpy())
    vix = read_daily(paths, snap.dataset("VIX"), reg)
    np.testing.assert_allclose(vix["close"].to_numpy(), arch.data.vix.load()["vix"].to_numpy())
    cta = read_daily(paths, snap.dataset("CTA"), reg)
    ref = cta_proxy(arch.data.sp500.load()["Close"]).loc["2000-01-01":].dropna(how="all")
    np.testing.assert_allclose(
        cta["cta_flow"].to_numpy(), ref["cta_flow"].round(6).to_numpy(), equal_nan=True
    )
    credit = read_daily(paths, snap.dataset("CREDIT"), reg)
    assert credit.index[0] == pd.Timestamp("1990-01-31")  # monthly value stamped at its month end
    r = cli(["ingest", "daily"], cwd=root)
    assert r.code == 0 and r.out.count("unchanged") == 6
