"""Daily series from xlsx: parse, copy to raw/ by content hash, append vintages to canonical parquet.

Point in time: canonical rows are vintages (date, known_at, ingest_id, series...). A new file version adds a
row only for dates that are new or whose values changed; a changed value is a *revision*, recorded in the
registry with both ingest ids. Reading `as_of` D keeps the vintages ingested by the end of D (UTC), so a
backtest with an as_of_date sees the values as they were known then; without as_of it sees the latest.
Canonical files are per (partition, ingest) and never rewritten; readers use only registered ingests, and the
registry row is written last, so a killed ingest leaves nothing that counts.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel

from runtime.contracts import DatasetRow, IngestRecord, IngestResult, ResolvedPaths, Revision, UserError
from runtime.storage.atomic import atomic_copy, atomic_write_parquet, clean_stale_temp, sha256_file
from runtime.storage.registry import (
    Registry,
    insert_rows,
    record_dataset,
    record_ingests,
    upsert_rows,
    utcnow,
)

MISSING_TOKENS = {"", "na", "n/a", "#n/a", "nan", "null", "none", "-", "\u2014", ".", "#value!", "#div/0!"}
_SPACES = re.compile(r"[\s\u00a0]+")
MAX_LISTED = 12


@dataclass(frozen=True)
class DailyFrame:
    """A parsed daily sheet: sorted unique dates and float64 series (NaN = missing)."""

    dates: np.ndarray  # datetime64[D]
    values: dict[str, np.ndarray]  # canonical column name -> float64
    source_columns: dict[str, str]  # canonical name -> header as written
    skipped_columns: tuple[str, ...]


def canonical_name(header: str) -> str:
    """'Adj Close ' -> adj_close; 'CTA Flow ($bn)' -> cta_flow_bn (DSL-friendly identifiers)."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", _SPACES.sub(" ", str(header)).strip()).strip("_").lower()
    if s and s[0].isdigit():
        s = "c_" + s
    return s


def split_source(spec: str) -> tuple[str, str | None]:
    path, _, sheet = spec.partition("#")
    return path.strip(), (sheet.strip() or None)


def resolve_source_path(spec: str, data_root: Path) -> Path:
    """A relative source path resolves against DATA_ROOT; an absolute one is used as is."""
    p = Path(spec.replace("\\", "/"))
    return p if p.is_absolute() else data_root / p


def _fail(path: Path, sheet: str, problems: list[str], fix: str) -> UserError:
    shown = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return UserError(f"{path}#{sheet}:\n  " + "\n  ".join(shown) + more + f"\n  fix: {fix}")


def _parse_date(v: Any, epoch: dt.datetime, slash_dayfirst: bool | None) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        if 1 <= v < 2_958_466:
            return from_excel(v, epoch=epoch).date()
        return None
    s = _SPACES.sub(" ", str(v)).strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", s)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        d, mo = (a, b) if slash_dayfirst else (b, a)
        try:
            return dt.date(y, mo, d)
        except ValueError:
            return None
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return _parse_date(float(s), epoch, slash_dayfirst)
    return None


def _slash_order(cells: list[Any]) -> bool | None:
    """Day-first if any d/m/yyyy text has a first part > 12; month-first (US) otherwise."""
    for v in cells:
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", v)
            if m and int(m.group(1)) > 12:
                return True
    return False


def _parse_number(v: Any) -> tuple[float | None, bool]:
    """(value, ok): blank/NA tokens are missing (never 0); text numbers are numbers."""
    if v is None:
        return None, True
    if isinstance(v, bool):
        return None, False
    if isinstance(v, int | float):
        f = float(v)
        return (None, True) if np.isnan(f) else (f, True)
    s = _SPACES.sub("", str(v))
    if s.lower() in MISSING_TOKENS:
        return None, True
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    try:
        return float(s), True
    except ValueError:
        return None, False


def parse_daily_xlsx(path: Path, sheet: str | None, date_col: str) -> DailyFrame:
    """Read one sheet: find the header row (the one holding date_col), type every cell, check dates."""
    try:
        wb = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except FileNotFoundError:
        raise UserError(
            f"{path}: file not found; check DATASETS.source_path_or_id (relative to DATA_ROOT)"
        ) from None
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as .xlsx ({exc}); save it again from Excel") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise UserError(
                f"{path}: no sheet '{sheet}' (sheets: {', '.join(wb.sheetnames)}); fix the #sheet "
                "part of DATASETS.source_path_or_id"
            )
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
        epoch = wb.epoch
    finally:
        wb.close()
    name = ws.title
    want = _SPACES.sub(" ", date_col).strip().lower()
    header_i = None
    for i, r in enumerate(rows[:30]):
        if any(isinstance(c, str) and _SPACES.sub(" ", c).strip().lower() == want for c in r):
            header_i = i
            break
    if header_i is None:
        raise UserError(
            f"{path}#{name}: no column '{date_col}' in the first 30 rows; set DATASETS.date_col to "
            "the header of the date column"
        )
    header = rows[header_i]
    date_j = next(
        j for j, c in enumerate(header) if isinstance(c, str) and _SPACES.sub(" ", c).strip().lower() == want
    )
    body = [(header_i + 2 + k, r) for k, r in enumerate(rows[header_i + 1 :])]
    body = [(n, r) for n, r in body if any(c is not None and str(c).strip() != "" for c in r)]
    dayfirst = _slash_order([r[date_j] for _, r in body if date_j < len(r)])
    dates: list[dt.date] = []
    problems: list[str] = []
    for n, r in body:
        v = r[date_j] if date_j < len(r) else None
        d = None if v is None or str(v).strip() == "" else _parse_date(v, epoch, dayfirst)
        if d is None:
            problems.append(f"{get_column_letter(date_j + 1)}{n}: '{v}' is not a date")
        dates.append(d)  # type: ignore[arg-type]
    if problems:
        raise _fail(path, name, problems, "enter real dates (e.g. 2024-01-31) in the date column")
    seen: dict[dt.date, int] = {}
    for (n, _), d in zip(body, dates, strict=True):
        if d in seen:
            problems.append(f"row {n}: date {d} duplicates row {seen[d]}")
        else:
            seen[d] = n
    if problems:
        raise _fail(path, name, problems, "keep one row per date")
    values: dict[str, np.ndarray] = {}
    source_cols: dict[str, str] = {}
    skipped: list[str] = []
    for j, h in enumerate(header):
        if j == date_j or h is None or str(h).strip() == "":
            continue
        col = canonical_name(str(h))
        if not col or col in ("date", "known_at", "ingest_id", "deleted", "year"):
            problems.append(f"{get_column_letter(j + 1)}{header_i + 1}: header '{h}' cannot be a series name")
            continue
        if col in values:
            problems.append(
                f"{get_column_letter(j + 1)}{header_i + 1}: header '{h}' repeats '{source_cols[col]}'"
            )
            continue
        arr = np.full(len(body), np.nan)
        bad = []
        n_num = 0
        for k, (n, r) in enumerate(body):
            x, ok = _parse_number(r[j] if j < len(r) else None)
            if not ok:
                bad.append(f"{get_column_letter(j + 1)}{n}: '{r[j]}' is not a number")
            elif x is not None:
                arr[k] = x
                n_num += 1
        if n_num == 0:
            skipped.append(str(h).strip())  # a text column (notes, tickers): not a series
            continue
        if bad:
            problems.extend(bad)
            continue
        values[col] = arr
        source_cols[col] = str(h).strip()
    if problems:
        raise _fail(path, name, problems, "type numbers (or leave blank for missing) in series columns")
    order = np.argsort(np.array(dates, dtype="datetime64[D]"), kind="stable")
    return DailyFrame(
        dates=np.array(dates, dtype="datetime64[D]")[order],
        values={k: v[order] for k, v in values.items()},
        source_columns=source_cols,
        skipped_columns=tuple(skipped),
    )


# ---- canonical storage ------------------------------------------------------------------------------


def table_dir(paths: ResolvedPaths, ds: DatasetRow) -> Path:
    return paths.canonical_dir / ds.canonical_table_name


def registered_ingests(reg: Registry, dataset_id: str) -> list[dict[str, Any]]:
    return reg.query(
        "SELECT ingest_id, file_sha256, finished_at FROM ingests WHERE dataset_id = ? ORDER BY finished_at",
        [dataset_id],
    )


def read_vintages(tdir: Path, ingest_ids: list[str]) -> pd.DataFrame:
    """All stored vintage rows of registered ingests (empty frame when none)."""
    files = sorted(tdir.rglob("part-*.parquet")) if tdir.exists() else []
    files = [f for f in files if f.stem.removeprefix("part-") in set(ingest_ids)]
    if not files:
        return pd.DataFrame()
    con = duckdb.connect()
    try:
        lst = ", ".join(f"'{f.as_posix()}'" for f in files)
        return con.execute(
            f"SELECT * EXCLUDE (year) FROM read_parquet([{lst}], union_by_name=true, hive_partitioning=true)"
            if any("year=" in f.as_posix() for f in files)
            else f"SELECT * FROM read_parquet([{lst}], union_by_name=true)"
        ).df()
    finally:
        con.close()


def latest_view(vintages: pd.DataFrame, as_of: dt.datetime | None = None) -> pd.DataFrame:
    """One row per date: the newest vintage known at `as_of` (UTC); tombstoned dates dropped."""
    if vintages.empty:
        return vintages
    v = vintages
    if as_of is not None:
        cutoff = pd.Timestamp(as_of)
        cutoff = cutoff.tz_convert("UTC") if cutoff.tzinfo else cutoff.tz_localize("UTC")
        v = v[pd.to_datetime(v["known_at"], utc=True) <= cutoff]
    v = v.sort_values(["date", "known_at", "ingest_id"]).drop_duplicates("date", keep="last")
    v = v[~v["deleted"].astype(bool)]
    return v.drop(columns=["known_at", "ingest_id", "deleted"]).set_index("date").sort_index()


def read_daily(
    paths: ResolvedPaths, ds: DatasetRow, reg: Registry, as_of: dt.date | dt.datetime | None = None
) -> pd.DataFrame:
    """The dataset as known at the end of `as_of` (a date: end of that UTC day), or the latest."""
    ids = [r["ingest_id"] for r in registered_ingests(reg, ds.dataset_id)]
    when = None
    if isinstance(as_of, dt.datetime):
        when = as_of
    elif isinstance(as_of, dt.date):
        when = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) - dt.timedelta(
            microseconds=1
        )
    return latest_view(read_vintages(table_dir(paths, ds), ids), when)


def diff_against(
    latest: pd.DataFrame, frame: DailyFrame, ds: DatasetRow, new_id: str, latest_ids: pd.Series | None
) -> tuple[np.ndarray, list[Revision], int]:
    """Which dates of `frame` need a new vintage row, and the revisions among them."""
    n = len(frame.dates)
    need = np.ones(n, dtype=bool)
    revisions: list[Revision] = []
    if latest.empty:
        return need, revisions, n
    idx = pd.DatetimeIndex(pd.to_datetime(latest.index))
    pos = idx.get_indexer(pd.to_datetime(frame.dates))
    known = pos >= 0
    need = ~known
    for col, arr in frame.values.items():
        old = latest[col].to_numpy(dtype="float64") if col in latest.columns else np.full(len(latest), np.nan)
        o = np.where(known, old[np.where(known, pos, 0)], np.nan)
        changed = known & ~((o == arr) | (np.isnan(o) & np.isnan(arr)))
        if col not in latest.columns:
            changed &= ~np.isnan(arr)  # a new column adds information; not a revision of a stored value
            need |= changed
            continue
        need |= changed
        for k in np.flatnonzero(changed):
            old_id = str(latest_ids.iloc[pos[k]]) if latest_ids is not None else ""
            revisions.append(
                Revision(
                    ds.dataset_id,
                    pd.Timestamp(frame.dates[k]).date(),
                    col,
                    None if np.isnan(o[k]) else float(o[k]),
                    None if np.isnan(arr[k]) else float(arr[k]),
                    old_id,
                    new_id,
                )
            )
    return need, revisions, int((~known).sum())


def ingest_daily(
    ds: DatasetRow, paths: ResolvedPaths, reg: Registry, now: dt.datetime | None = None, config_hash: str = ""
) -> IngestResult:
    """Ingest one daily_series dataset from its xlsx; idempotent per file content."""
    now = now or dt.datetime.now(dt.UTC)
    spec_path, sheet = split_source(ds.source_path_or_id)
    src = resolve_source_path(spec_path, paths.data_root)
    if not src.exists():
        raise UserError(
            f"{ds.dataset_id}: source file {src} not found; check DATASETS.source_path_or_id "
            f"(row {ds.row}; relative paths are under DATA_ROOT {paths.data_root})"
        )
    sha = sha256_file(src)
    prior = registered_ingests(reg, ds.dataset_id)
    if any(r["file_sha256"] == sha for r in prior):
        return IngestResult(ds.dataset_id, None, str(src), "unchanged")
    frame = parse_daily_xlsx(src, sheet, ds.date_col or "Date")
    if len(frame.dates) == 0:
        raise UserError(f"{src}: no data rows under the header; nothing to ingest")
    tdir = table_dir(paths, ds)
    clean_stale_temp(tdir)
    ingest_id = f"{ds.dataset_id}-{now:%Y%m%dT%H%M%S%f}-{sha[:8]}"
    vint = read_vintages(tdir, [r["ingest_id"] for r in prior])
    latest_ids = None
    latest = pd.DataFrame()
    if not vint.empty:
        lv = vint.sort_values(["date", "known_at", "ingest_id"]).drop_duplicates("date", keep="last")
        lv = lv[~lv["deleted"].astype(bool)].set_index("date").sort_index()
        latest_ids = lv["ingest_id"]
        latest = lv.drop(columns=["known_at", "ingest_id", "deleted"])
    need, revisions, n_new = diff_against(latest, frame, ds, ingest_id, latest_ids)
    # full row for each vintage: new file's values; columns the file lacks keep their stored values
    out_cols = list(dict.fromkeys([*latest.columns, *frame.values]))
    sel = np.flatnonzero(need)
    data: dict[str, Any] = {"date": frame.dates[sel]}
    pos = (
        pd.DatetimeIndex(pd.to_datetime(latest.index)).get_indexer(pd.to_datetime(frame.dates[sel]))
        if not latest.empty
        else np.full(len(sel), -1)
    )
    for col in out_cols:
        if col in frame.values:
            data[col] = frame.values[col][sel]
        else:
            old = latest[col].to_numpy(dtype="float64")
            data[col] = np.where(pos >= 0, old[np.where(pos >= 0, pos, 0)], np.nan)
    deleted = np.zeros(len(sel), dtype=bool)
    n_deleted = 0
    if ds.update_mode == "replace" and not latest.empty:  # dates the new file no longer has: tombstones
        gone = ~pd.DatetimeIndex(pd.to_datetime(latest.index)).isin(pd.to_datetime(frame.dates))
        if gone.any():
            n_deleted = int(gone.sum())
            data["date"] = np.concatenate([data["date"], np.array(latest.index[gone], dtype="datetime64[D]")])
            for col in out_cols:
                data[col] = np.concatenate([data[col], np.full(n_deleted, np.nan)])
            deleted = np.concatenate([deleted, np.ones(n_deleted, dtype=bool)])
    rows_written = len(data["date"])
    raw_path = paths.raw_dir / "by_hash" / sha[:2] / f"{sha}{src.suffix.lower()}"
    if not raw_path.exists():
        atomic_copy(src, raw_path, tmp_dir=paths.staging_dir)
    if rows_written:
        tbl = _vintage_table(data, deleted, now, ingest_id, out_cols)
        for part_key, part in _partitions(tbl, ds):
            atomic_write_parquet(
                part, tdir / part_key / f"part-{ingest_id}.parquet", tmp_dir=paths.staging_dir
            )
    first, last = pd.Timestamp(frame.dates[0]).date(), pd.Timestamp(frame.dates[-1]).date()
    finished = utcnow()
    with reg.transaction() as con:  # registry row last: until here nothing above counts
        insert_rows(
            con,
            "revisions",
            [
                {
                    "dataset_id": r.dataset_id,
                    "date": r.date,
                    "column_name": r.column,
                    "old_value": r.old_value,
                    "new_value": r.new_value,
                    "old_ingest_id": r.old_ingest_id,
                    "new_ingest_id": r.new_ingest_id,
                    "recorded_at": finished,
                }
                for r in revisions
            ],
        )
        upsert_rows(
            con,
            "coverage",
            ("dataset_id", "date", "symbol"),
            [
                {
                    "dataset_id": ds.dataset_id,
                    "date": pd.Timestamp(d).date(),
                    "symbol": "*",
                    "rows": 1,
                    "volume": None,
                    "updated_at": finished,
                }
                for d in frame.dates
            ],
        )
        record_dataset(con, ds, out_cols, config_hash, finished)
        record_ingests(
            con,
            [
                IngestRecord(
                    ingest_id=ingest_id,
                    dataset_id=ds.dataset_id,
                    source_path=str(src),
                    raw_path=str(raw_path),
                    file_sha256=sha,
                    source_kind="xlsx",
                    schema_name="daily",
                    rows=len(frame.dates),
                    first_date=first,
                    last_date=last,
                    columns=tuple(frame.values),
                    started_at=now.replace(tzinfo=None),
                    finished_at=finished,
                    config_hash=config_hash,
                    n_new_dates=n_new,
                    n_revisions=len(revisions),
                    details={
                        "vintage_rows": rows_written,
                        "tombstones": n_deleted,
                        "skipped_columns": list(frame.skipped_columns),
                        "headers": frame.source_columns,
                    },
                )
            ],
        )
    return IngestResult(
        ds.dataset_id,
        ingest_id,
        str(src),
        "ingested",
        len(frame.dates),
        first,
        last,
        {
            "new_dates": n_new,
            "revisions": revisions,
            "vintage_rows": rows_written,
            "columns": list(frame.values),
            "skipped_columns": list(frame.skipped_columns),
            "tombstones": n_deleted,
        },
    )


def _vintage_table(
    data: dict[str, Any], deleted: np.ndarray, now: dt.datetime, ingest_id: str, cols: list[str]
) -> pa.Table:
    n = len(data["date"])
    arrays = {
        "date": pa.array(data["date"], type=pa.date32()),
        "known_at": pa.array(
            np.full(n, np.datetime64(now.replace(tzinfo=None), "us")), type=pa.timestamp("us", tz="UTC")
        ),
        "ingest_id": pa.array([ingest_id] * n, type=pa.string()),
        "deleted": pa.array(deleted, type=pa.bool_()),
    }
    for c in cols:
        v = np.asarray(data[c], dtype="float64")
        arrays[c] = pa.array(v, type=pa.float64(), mask=np.isnan(v))  # missing is NULL, never NaN
    return pa.table(arrays)


def _partitions(tbl: pa.Table, ds: DatasetRow) -> list[tuple[str, pa.Table]]:
    if "year" not in ds.canonical_partition_keys:
        return [("", tbl)]
    years = (
        np.array(tbl.column("date").to_numpy(zero_copy_only=False), dtype="datetime64[Y]").astype(int) + 1970
    )
    out = []
    for y in np.unique(years):
        out.append((f"year={y}", tbl.filter(pa.array(years == y))))
    return out


def describe(result: IngestResult) -> str:
    d = result.details
    if result.status == "unchanged":
        return f"{result.dataset_id}: unchanged ({Path(result.source).name} already ingested)"
    revs = d.get("revisions", [])
    text = (
        f"{result.dataset_id}: ingested {result.rows:,} rows {result.first_date}..{result.last_date}, "
        f"{d.get('new_dates', 0):,} new dates, {len(revs)} revisions, columns {', '.join(d.get('columns', []))}"
    )
    for r in revs[:10]:
        text += f"\n  revision {r.date} {r.column}: {r.old_value} -> {r.new_value} ({r.old_ingest_id} -> {r.new_ingest_id})"
    if len(revs) > 10:
        text += f"\n  ... {len(revs) - 10} more revisions (registry table revisions)"
    return text
