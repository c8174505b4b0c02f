"""Daily-data integrity: the identity of an ingest (file hash + parse settings), one column rule shared by
export and ingest, future / weekend / vanished dates, DATASETS cells in messages, the IngestRecord contract
and the registry migration that carries it. Real xlsx (openpyxl), real DuckDB, real CLI subprocess."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pytest

from runtime.config.columns import classify, dataset_cell, read_grid, source_columns
from runtime.contracts import ConfigValidationError, IngestRecord, UserError
from runtime.ingest.daily import describe, ingest_daily, parse_daily_xlsx, read_daily
from runtime.storage.registry import MIGRATIONS, Registry, latest_ingest, record_ingests

T0 = dt.datetime(2024, 1, 12, 22, 0, tzinfo=dt.UTC)


def write_book(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def workbook_cell(project: Path, sheet: str, key: str, header: str) -> str:
    """The cell of (row whose first column is `key`, column `header`), read from the real workbook."""
    ws = openpyxl.load_workbook(project / "config" / "run_config.xlsx")[sheet]
    col = next(c.column_letter for c in ws[1] if c.value == header)
    row = next(c.row for c in ws["A"] if c.value == key)
    return f"{sheet}!{col}{row}"


def edit(project: Path, sheet: str, key: str, header: str, value: object) -> str:
    path = project / "config" / "run_config.xlsx"
    cell = workbook_cell(project, sheet, key, header)
    wb = openpyxl.load_workbook(path)
    wb[sheet][cell.split("!")[1]] = value
    wb.save(path)
    return cell


def two_sheets(root: Path) -> tuple[Path, list[list], list[list]]:
    """two.xlsx: sheets A and B, same dates, different flows (B = 10 x A), the same positions."""
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(4)]  # Tue..Fri
    a = [["Date", "CTA Flow", "CTA Position"]] + [[d, float(i + 1), 50.0] for i, d in enumerate(days)]
    b = [["Date", "CTA Flow", "CTA Position"]] + [[d, 10.0 * (i + 1), 50.0] for i, d in enumerate(days)]
    return write_book(root / "incoming" / "daily" / "two.xlsx", {"A": a, "B": b}), a, b


def flows(paths, ds, reg) -> list[float]:
    return read_daily(paths, ds, reg)["cta_flow"].tolist()


# ---- identity: file hash + parse settings -----------------------------------------------------------------


def test_repointing_the_sheet_reparses_into_a_new_vintage(data_env) -> None:
    snap, paths, reg = data_env
    _, a, b = two_sheets(paths.data_root)
    ds_a = dataclasses.replace(snap.dataset("CTA"), source_path_or_id="incoming/daily/two.xlsx#A")
    ds_b = dataclasses.replace(ds_a, source_path_or_id="incoming/daily/two.xlsx#B")
    ingest_daily(ds_a, paths, reg, now=T0)
    assert flows(paths, ds_a, reg) == [r[1] for r in a[1:]]
    r = ingest_daily(ds_b, paths, reg, now=T0 + dt.timedelta(hours=1))
    assert r.status == "ingested"  # the old behaviour said "unchanged (two.xlsx already ingested)"
    assert flows(paths, ds_b, reg) == [r[1] for r in b[1:]]  # canonical data now holds sheet B
    assert len(r.details["revisions"]) == 4  # every value changed: recorded as revisions of sheet A's values
    text = describe(r)
    assert "sheet 'A' -> 'B'" in text and dataset_cell(ds_a, "source_path_or_id") in text
    # as of before the switch, sheet A's values are what was known
    assert read_daily(paths, ds_b, reg, as_of=T0)["cta_flow"].tolist() == [r[1] for r in a[1:]]
    # same file, same settings: unchanged; pointing back to A is again a change (not "already ingested")
    assert ingest_daily(ds_b, paths, reg, now=T0 + dt.timedelta(hours=2)).status == "unchanged"
    assert ingest_daily(ds_a, paths, reg, now=T0 + dt.timedelta(hours=3)).status == "ingested"
    assert flows(paths, ds_a, reg) == [r[1] for r in a[1:]]


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("timestamp_tz", "Europe/London", "timestamp_tz"),
        ("update_mode", "replace", "update_mode"),
    ],
)
def test_every_parse_setting_is_part_of_the_identity(data_env, field, value, shown) -> None:
    snap, paths, reg = data_env
    two_sheets(paths.data_root)
    ds = dataclasses.replace(snap.dataset("CTA"), source_path_or_id="incoming/daily/two.xlsx#A")
    ingest_daily(ds, paths, reg, now=T0)
    changed = dataclasses.replace(ds, **{field: value})
    r = ingest_daily(changed, paths, reg, now=T0 + dt.timedelta(hours=1))
    assert r.status == "ingested" and r.details["vintage_rows"] == 0  # same values: no new vintage rows
    assert any(shown in n and dataset_cell(ds, field) in n for n in r.details["notes"])
    assert ingest_daily(changed, paths, reg, now=T0 + dt.timedelta(hours=2)).status == "unchanged"
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 2


def test_wrong_sheet_or_date_col_is_an_error_at_its_datasets_cell(data_env, project) -> None:
    snap, paths, reg = data_env
    two_sheets(paths.data_root)
    base = dataclasses.replace(snap.dataset("CTA"), source_path_or_id="incoming/daily/two.xlsx#A")
    ingest_daily(base, paths, reg, now=T0)
    before = reg.query("SELECT count(*) n FROM ingests")[0]["n"]
    d_cell = workbook_cell(project, "DATASETS", "CTA", "source_path_or_id")
    f_cell = workbook_cell(project, "DATASETS", "CTA", "date_col")
    with pytest.raises(UserError) as ei:  # same file bytes, a sheet that does not exist
        ingest_daily(
            dataclasses.replace(base, source_path_or_id="incoming/daily/two.xlsx#C"), paths, reg, now=T0
        )
    assert str(ei.value).startswith(f"{d_cell}: ") and "no sheet 'C' (sheets: A, B)" in str(ei.value)
    with pytest.raises(UserError) as ei:
        ingest_daily(dataclasses.replace(base, date_col="Obs Date"), paths, reg, now=T0)
    assert str(ei.value).startswith(f"{f_cell}: ") and "no column 'Obs Date'" in str(ei.value)
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == before  # nothing recorded


# ---- one column rule for export and ingest ----------------------------------------------------------------


def mixed_rows() -> list[list]:
    rng = np.random.default_rng(8)
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in (0, 1, 2, 3, 6, 7)]  # weekdays only
    oas = rng.normal(4.0, 0.3, len(days)).round(4)
    rows = [["Date", "HY OAS", "comment", "Spread Pct", "empty col", "IG"]]
    for i, d in enumerate(days):
        rows.append([d, float(oas[i]), f"note {i}", f"{1.5 + i}%", None, None if i == 2 else 100 + i])
    return rows


def test_one_rule_decides_columns_for_export_and_ingest(data_env) -> None:
    snap, paths, reg = data_env
    rows = mixed_rows()
    write_book(paths.data_root / "incoming" / "daily" / "cta.xlsx", {"CTA": rows})
    ds = snap.dataset("CTA")
    # what ingest keeps, by hand: hy_oas (numbers), spread_pct ('1.5%' = 0.015 as in Excel), ig (numbers, a gap)
    expected = {"hy_oas", "spread_pct", "ig"}
    assert source_columns(ds, paths.data_root) == expected  # export's view of the dataset's columns
    r = ingest_daily(ds, paths, reg, now=T0)
    assert set(r.details["columns"]) == expected  # ingest's view: the same
    got = read_daily(paths, ds, reg)
    np.testing.assert_allclose(got["spread_pct"].to_numpy(), [(1.5 + i) / 100 for i in range(6)])
    np.testing.assert_allclose(got["hy_oas"].to_numpy(), [r[1] for r in rows[1:]])
    assert np.isnan(got["ig"].iloc[2]) and got["ig"].iloc[3] == 103
    text = describe(r)  # every dropped column is reported, with its column letter and why
    assert "dropped column C 'comment': text (no numbers)" in text
    assert "dropped column E 'empty col': empty (no values yet)" in text


def test_duplicate_normalised_headers_give_the_rename_fix(tmp_path: Path) -> None:
    p = write_book(
        tmp_path / "hy.xlsx", {"HY": [["Date", "HY OAS", "HY-OAS"], [dt.date(2024, 1, 2), 1.0, 2.0]]}
    )
    grid = read_grid(p, "HY", "Date")
    cols = classify(grid)
    assert "hy_oas" not in cols.names and "both become the series name 'hy_oas'" in cols.ambiguous["hy_oas"]
    with pytest.raises(UserError) as ei:
        parse_daily_xlsx(p, "HY", "Date")
    msg = str(ei.value)
    assert "B1 'HY OAS' and C1 'HY-OAS'" in msg and "rename one of the two headers" in msg
    assert "type numbers" not in msg  # the old, wrong fix


def test_export_refuses_input_columns_that_will_never_have_data(project: Path) -> None:
    from runtime.config.export import export_workbook

    write_book(project / "data" / "incoming" / "daily" / "cta.xlsx", {"CTA": mixed_rows()})
    cell = edit(project, "FEATURE_LIBRARY", "cta_flow", "input_col", "comment")
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(project / "config" / "run_config.xlsx")
    msg = str(ei.value)
    assert (
        f"{cell}: column 'comment' of dataset CTA will never have data" in msg and "text (no numbers)" in msg
    )
    assert not (project / "config" / "exports" / "latest.json").exists()


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("source_path_or_id", "incoming/daily/cta.xlsx#CTAX", "cta.xlsx has no sheet 'CTAX' (sheets: CTA)"),
        ("date_col", "Obs Date", "cta.xlsx#CTA has no column 'Obs Date' in its first 30 rows"),
    ],
)
def test_export_names_the_datasets_cell_of_a_wrong_sheet_or_date_col(
    project: Path, header, value, expected
) -> None:
    from runtime.config.export import export_workbook

    write_book(project / "data" / "incoming" / "daily" / "cta.xlsx", {"CTA": mixed_rows()})
    cell = edit(project, "DATASETS", "CTA", header, value)
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(project / "config" / "run_config.xlsx")
    assert f"{cell}: {expected}" in str(ei.value)
    assert not (project / "config" / "exports" / "latest.json").exists()


# ---- dates: future, weekend, vanished ---------------------------------------------------------------------


def test_future_dates_are_refused_naming_the_cells(data_env) -> None:
    snap, paths, reg = data_env
    rows = [["Date", "CTA Flow"], [dt.date(2024, 1, 11), 1.0], [dt.date(2030, 1, 2), 2.0]]
    write_book(paths.data_root / "incoming" / "daily" / "cta.xlsx", {"CTA": rows})
    with pytest.raises(UserError) as ei:
        ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)  # 'today' is 2024-01-12 in New York
    assert "A3: 2030-01-02 is after today (2024-01-12)" in str(ei.value)
    assert not any(paths.canonical_dir.rglob("*.parquet")) and not any(paths.raw_dir.rglob("*.xlsx"))
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 0


def test_weekend_rows_are_reported_and_kept(data_env) -> None:
    snap, paths, reg = data_env
    sat, sun = dt.date(2024, 1, 6), dt.date(2024, 1, 7)
    rows = [
        ["Date", "CTA Flow"],
        [dt.date(2024, 1, 5), 1.0],
        [sat, 2.0],
        [sun, 3.0],
        [dt.date(2024, 1, 8), 4.0],
    ]
    write_book(paths.data_root / "incoming" / "daily" / "cta.xlsx", {"CTA": rows})
    r = ingest_daily(snap.dataset("CTA"), paths, reg, now=T0)
    note = next(n for n in r.details["notes"] if "weekend" in n)
    assert note.startswith("2 row(s) dated on a weekend/holiday")
    assert "2024-01-06 Sat" in note and "2024-01-07 Sun" in note and "rows 3, 4" in note
    assert "next trading day" in note
    assert flows(paths, snap.dataset("CTA"), reg) == [1.0, 2.0, 3.0, 4.0]  # kept as stamped


def test_holidays_of_the_datasets_calendar_are_reported(data_env) -> None:
    snap, paths, reg = data_env
    days = [dt.date(2024, 12, 24), dt.date(2024, 12, 25), dt.date(2024, 12, 26)]  # Christmas: CME closed
    write_book(
        paths.data_root / "incoming" / "daily" / "cta.xlsx",
        {"CTA": [["Date", "CTA Flow"]] + [[d, 1.0] for d in days]},
    )
    ds = dataclasses.replace(snap.dataset("CTA"), session_calendar="CME_EQUITY")
    r = ingest_daily(ds, paths, reg, now=dt.datetime(2025, 1, 2, tzinfo=dt.UTC))
    note = next(n for n in r.details["notes"] if "weekend/holiday" in n)
    assert note.startswith("1 row(s) dated on a weekend/holiday of CME_EQUITY (2024-12-25 Wed; rows 3)")


def test_dates_that_vanish_from_an_append_only_file_are_reported_and_kept(data_env) -> None:
    snap, paths, reg = data_env
    ds = snap.dataset("CTA")
    src = paths.data_root / "incoming" / "daily" / "cta.xlsx"
    v1 = [
        ["Date", "CTA Flow"],
        [dt.date(2024, 1, 2), 1.0],
        [dt.date(2024, 1, 3), 2.0],
        [dt.date(2024, 1, 4), 3.0],
    ]
    write_book(src, {"CTA": v1})
    ingest_daily(ds, paths, reg, now=T0)
    write_book(src, {"CTA": [v1[0], v1[1], v1[3], [dt.date(2024, 1, 5), 4.0]]})  # 01-03 vanished
    r = ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(hours=1))
    note = next(n for n in r.details["notes"] if "not in this file any more" in n)
    assert (
        note.startswith("1 stored date(s)")
        and "2024-01-03 Wed" in note
        and dataset_cell(ds, "update_mode") in note
    )
    assert flows(paths, ds, reg) == [1.0, 2.0, 3.0, 4.0]  # the old value stays in the vintage history


# ---- the DATASETS cell in CLI messages --------------------------------------------------------------------


def test_cli_names_the_datasets_cell_not_a_row(data_env, project, cli) -> None:
    assert data_env  # exported, DATA_ROOT laid out; the source file is never written
    cell = workbook_cell(project, "DATASETS", "CTA", "source_path_or_id")
    r = cli(["ingest", "daily", "--dataset", "CTA"], cwd=project)  # cta.xlsx was never written
    assert r.code == 1 and "Traceback" not in r.err + r.out
    assert f"{cell}: CTA: source file" in r.err + r.out and "(row " not in r.err + r.out


def test_dataset_cell_matches_the_workbook_layout(data_env, project) -> None:
    snap, _, _ = data_env
    for header in ("source_path_or_id", "date_col", "update_mode", "timestamp_tz", "roll_rule"):
        assert dataset_cell(snap.dataset("CTA"), header) == workbook_cell(project, "DATASETS", "CTA", header)


# ---- IngestRecord, the registry row and its migration -----------------------------------------------------


def test_ingest_record_round_trips_through_the_registry(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.duckdb")
    reg.migrate()
    rec = IngestRecord(
        ingest_id="X-1",
        dataset_id="X",
        source_path="/a/b.xlsx",
        raw_path="/raw/ab.xlsx",
        file_sha256="ab" * 32,
        source_kind="xlsx",
        schema_name="daily",
        rows=3,
        first_date=dt.date(2024, 1, 2),
        last_date=dt.date(2024, 1, 4),
        columns=("a", "b"),
        started_at=dt.datetime(2024, 1, 5, 1, 2, 3),
        finished_at=dt.datetime(2024, 1, 5, 1, 2, 4),
        config_hash="c" * 64,
        parse_key="k" * 16,
        n_new_dates=3,
        details={"notes": ["x"], "parse": {"sheet": "A"}},
    )
    with reg.transaction() as con:
        record_ingests(con, [rec])
    assert latest_ingest(reg, "X") == rec


def test_old_registry_migrates_and_reparses_once(data_env, tmp_path: Path) -> None:
    """A schema-1 DATA_ROOT (unique (dataset, file) index, no parse_key) upgrades in place."""
    snap, paths, _ = data_env
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, description VARCHAR, applied_at TIMESTAMP NOT NULL)"
    )
    for stmt in MIGRATIONS[0][2]:
        con.execute(stmt)
    con.execute("INSERT INTO schema_version VALUES (1, 'initial', now())")
    con.close()
    reg = Registry(db)
    assert reg.migrate() == 1
    cols = {
        r["column_name"]
        for r in reg.query("SELECT column_name FROM duckdb_columns() WHERE table_name='ingests'")
    }
    assert "parse_key" in cols
    two_sheets(paths.data_root)
    ds = dataclasses.replace(snap.dataset("CTA"), source_path_or_id="incoming/daily/two.xlsx#A")
    ingest_daily(ds, paths, reg, now=T0)
    with reg.transaction() as c:  # as if this ingest had been written by the old code: no parse_key
        c.execute("UPDATE ingests SET parse_key = ''")
    r = ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(hours=1))
    assert (
        r.status == "ingested" and r.details["vintage_rows"] == 0
    )  # same bytes under the old index: allowed
    assert ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(hours=2)).status == "unchanged"


def test_killed_ingest_files_are_removed_by_the_next_run(data_env) -> None:
    """Mends test_daily.py's promise: an unregistered part file is invisible, and the next run deletes it."""
    snap, paths, reg = data_env
    ds = snap.dataset("CTA")
    src = paths.data_root / "incoming" / "daily" / "cta.xlsx"
    write_book(src, {"CTA": [["Date", "CTA Flow"], [dt.date(2024, 1, 2), 1.0]]})
    ingest_daily(ds, paths, reg, now=T0)
    first = next((paths.canonical_dir / "daily_cta").rglob("part-*.parquet"))
    orphan = first.with_name("part-CTA-killed-00000000.parquet")
    orphan.write_bytes(first.read_bytes())
    old = time.time() - 3600
    os.utime(orphan, (old, old))  # written an hour ago by a run that never reached the registry
    fresh = first.with_name("part-CTA-running-00000000.parquet")
    fresh.write_bytes(first.read_bytes())  # a run still in progress: younger than the grace period
    assert flows(paths, ds, reg) == [1.0]
    write_book(src, {"CTA": [["Date", "CTA Flow"], [dt.date(2024, 1, 2), 1.0], [dt.date(2024, 1, 3), 2.0]]})
    ingest_daily(ds, paths, reg, now=T0 + dt.timedelta(hours=1))
    assert not orphan.exists() and fresh.exists()
    assert flows(paths, ds, reg) == [1.0, 2.0]


def test_cli_repoint_sheet_then_reexport_reingests(project: Path, cli) -> None:
    """The user's path: DATASETS!D = two.xlsx#A, export, ingest; edit to #B, export, ingest: sheet B's data."""
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.storage.registry import Registry

    (project / "data").mkdir(exist_ok=True)
    _, _a, b = two_sheets(project / "data")
    wb = project / "config" / "run_config.xlsx"
    cell = edit(project, "DATASETS", "CTA", "source_path_or_id", "incoming/daily/two.xlsx#A")
    export_workbook(wb)
    r = cli(["ingest", "daily", "--dataset", "CTA"], cwd=project)
    assert r.code == 0 and "CTA: ingested 4 rows" in r.out, r.err
    edit(project, "DATASETS", "CTA", "source_path_or_id", "incoming/daily/two.xlsx#B")
    export_workbook(wb)
    r = cli(["ingest", "daily", "--dataset", "CTA"], cwd=project)
    assert r.code == 0 and "CTA: ingested 4 rows" in r.out and "4 revisions" in r.out, r.out + r.err
    assert f"sheet 'A' -> 'B' ({cell})" in r.out
    snap = load_snapshot(project / "config" / "exports" / "latest.json")
    paths = snapshot_paths(snap)
    assert flows(paths, snap.dataset("CTA"), Registry(paths.duckdb_file)) == [r[1] for r in b[1:]]
    r = cli(["ingest", "daily", "--dataset", "CTA"], cwd=project)
    assert r.code == 0 and "CTA: unchanged" in r.out
