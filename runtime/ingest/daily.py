"""Daily series from xlsx: plan (parse, diff; writes nothing) -> write (raw copy, vintage parquet) -> record
(one registry transaction, the ingests row last).

Point in time: canonical rows are vintages (date, known_at, ingest_id, series...). A new file version adds a
row only for dates that are new or whose values changed; a changed value is a *revision*, recorded in the
registry with both ingest ids. Reading `as_of` D keeps the vintages ingested by the end of D (UTC), so a
backtest with an as_of_date sees the values as they were known then; without as_of it sees the latest.
Canonical files are per (partition, ingest) and never rewritten; readers use only registered ingests, and the
registry row is written last, so a killed ingest leaves nothing that counts (its files are removed by the
next run).

Identity of an ingest: the file's content hash plus `parse_key`, the hash of every DATASETS field that changes
what the file yields (sheet, date_col, timestamp_tz, update_mode, the column rule's version). Only when both
match the dataset's latest ingest is a run "unchanged"; the same bytes read with other settings are a new
ingest (a new vintage), and the run says what changed. Which columns a file has is decided by the one rule in
runtime/config/columns.py, shared with export.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel

from runtime.config.columns import (
    RULE_VERSION,
    DroppedColumn,
    Grid,
    SourceProblem,
    classify,
    dataset_cell,
    read_grid,
)
from runtime.config.sources import canonical_name, resolve_source_path, split_source  # noqa: F401 (re-export)
from runtime.contracts import DatasetRow, IngestRecord, IngestResult, ResolvedPaths, Revision, UserError
from runtime.storage.atomic import atomic_copy, atomic_write_parquet, clean_stale_temp, sha256_file
from runtime.storage.registry import (
    Registry,
    insert_rows,
    latest_ingest,
    record_dataset,
    record_ingests,
    upsert_rows,
    utcnow,
)

_SPACES = re.compile(r"[\s\u00a0]+")
MAX_LISTED = 12
#: an unregistered part file younger than this may belong to an ingest still running: left alone
ORPHAN_GRACE_S = 60.0


@dataclass(frozen=True)
class DailyFrame:
    """A parsed daily sheet: sorted unique dates and float64 series (NaN = missing)."""

    dates: np.ndarray  # datetime64[D]
    values: dict[str, np.ndarray]  # canonical column name -> float64
    source_columns: dict[str, str]  # canonical name -> header as written
    skipped_columns: tuple[str, ...]  # headers of dropped columns
    dropped: tuple[DroppedColumn, ...] = ()  # ... with the column letter and why
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # Excel row of each date
    sheet: str = ""
    date_letter: str = "A"


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


def _parse_dates(grid: Grid, body: list[tuple[int, tuple[Any, ...]]], today: dt.date | None) -> list[dt.date]:
    """One date per body row; every bad, duplicated or future date is listed by cell."""
    j = grid.date_j
    letter = get_column_letter(j + 1)
    dayfirst = _slash_order([r[j] for _, r in body if j < len(r)])
    dates: list[dt.date] = []
    problems: list[str] = []
    for n, r in body:
        v = r[j] if j < len(r) else None
        d = None if v is None or str(v).strip() == "" else _parse_date(v, grid.epoch, dayfirst)
        if d is None:
            problems.append(f"{letter}{n}: '{v}' is not a date")
        dates.append(d)  # type: ignore[arg-type]
    if problems:
        raise _fail(grid.path, grid.sheet, problems, "enter real dates (e.g. 2024-01-31) in the date column")
    seen: dict[dt.date, int] = {}
    for (n, _), d in zip(body, dates, strict=True):
        if d in seen:
            problems.append(f"row {n}: date {d} duplicates row {seen[d]}")
        else:
            seen[d] = n
    if problems:
        raise _fail(grid.path, grid.sheet, problems, "keep one row per date")
    if today is not None:
        problems = [
            f"{letter}{n}: {d} is after today ({today})"
            for (n, _), d in zip(body, dates, strict=True)
            if d > today
        ]
        if problems:
            raise _fail(
                grid.path,
                grid.sheet,
                problems,
                "a value dated in the future cannot be known yet: correct the date or delete the row",
            )
    return dates


def parse_daily_xlsx(
    path: Path,
    sheet: str | None,
    date_col: str,
    today: dt.date | None = None,
    cell: Callable[[str], str] | None = None,
) -> DailyFrame:
    """Read one sheet: find the header row (the one holding date_col), type every cell, check dates.

    `today` refuses later dates; `cell` names the DATASETS cell of a header (for messages that say where to fix).
    """
    try:
        grid = read_grid(path, sheet, date_col)
    except SourceProblem as p:
        raise p.at(cell(p.column) if cell else f"DATASETS.{p.column}") from None
    body = grid.body()
    dates = _parse_dates(grid, body, today)
    cols = classify(grid, body)
    if cols.problems:
        fixes = list(dict.fromkeys(fix for _, fix in cols.problems))
        lines = [msg for msg, _ in cols.problems]
        raise _fail(path, grid.sheet, lines, "; ".join(fixes))
    order = np.argsort(np.array(dates, dtype="datetime64[D]"), kind="stable")
    return DailyFrame(
        dates=np.array(dates, dtype="datetime64[D]")[order],
        values={c.name: c.values[order] for c in cols.kept},
        source_columns={c.name: c.header for c in cols.kept},
        skipped_columns=tuple(d.header for d in cols.dropped),
        dropped=cols.dropped,
        rows=np.array([n for n, _ in body], dtype=np.int64)[order],
        sheet=grid.sheet,
        date_letter=get_column_letter(grid.date_j + 1),
    )


# ---- identity of an ingest --------------------------------------------------------------------------


def parse_settings(ds: DatasetRow) -> dict[str, Any]:
    """Every DATASETS field that changes what the same file yields (the identity besides its bytes)."""
    _, sheet = split_source(ds.source_path_or_id)
    return {
        "sheet": sheet,
        "date_col": (ds.date_col or "Date").strip(),
        "timestamp_tz": ds.timestamp_tz or "UTC",
        "update_mode": ds.update_mode,
        "column_rule": RULE_VERSION,
    }


def parse_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _what_changed(old: dict[str, Any] | None, new: dict[str, Any], ds: DatasetRow) -> str:
    if not old:
        return "the earlier ingest did not record its parse settings"
    cells = {"sheet": "source_path_or_id", "date_col": "date_col", "timestamp_tz": "timestamp_tz"}
    cells["update_mode"] = "update_mode"
    parts = []
    for k, v in new.items():
        if old.get(k) != v:
            where = f" ({dataset_cell(ds, cells[k])})" if k in cells else ""
            parts.append(f"{k} {old.get(k)!r} -> {v!r}{where}")
    return ", ".join(parts) or "parse settings changed"


def _today(now: dt.datetime, tz: str | None) -> dt.date:
    """Today's date where the data is stamped (the dataset's timestamp_tz): no later date can be known."""
    try:
        return now.astimezone(ZoneInfo(tz or "UTC")).date()
    except Exception:
        return now.astimezone(dt.UTC).date()


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


# ---- plan (reads only) -> write -> record ---------------------------------------------------------


@dataclass(frozen=True)
class DailyPlan:
    """Everything one ingest will write, computed before any write (a bad file stops here)."""

    ds: DatasetRow
    src: Path
    sha: str
    settings: dict[str, Any]
    key: str
    ingest_id: str
    now: dt.datetime
    frame: DailyFrame
    out_cols: list[str]
    data: dict[str, Any]  # the vintage rows: date + every column
    deleted: np.ndarray
    revisions: list[Revision]
    n_new: int
    n_deleted: int
    notes: tuple[str, ...]

    @property
    def rows_written(self) -> int:
        return len(self.data["date"])


def plan_daily(
    ds: DatasetRow, paths: ResolvedPaths, reg: Registry, now: dt.datetime
) -> DailyPlan | IngestResult:
    """Parse and diff against the stored vintages; an IngestResult 'unchanged' when the identity matches."""
    spec_path, sheet = split_source(ds.source_path_or_id)
    src = resolve_source_path(spec_path, paths.data_root)
    if not src.is_file():
        raise UserError(
            f"{dataset_cell(ds, 'source_path_or_id')}: {ds.dataset_id}: source file {src} not found; fix: "
            f"check the path (relative paths are under DATA_ROOT {paths.data_root})"
        )
    sha = sha256_file(src)
    settings = parse_settings(ds)
    key = parse_key(settings)
    last = latest_ingest(reg, ds.dataset_id)
    if last is not None and last.file_sha256 == sha and last.parse_key == key:
        return IngestResult(ds.dataset_id, None, str(src), "unchanged")
    frame = parse_daily_xlsx(
        src,
        sheet,
        settings["date_col"],
        today=_today(now, ds.timestamp_tz),
        cell=lambda h: dataset_cell(ds, h),
    )
    if len(frame.dates) == 0:
        raise UserError(f"{src}#{frame.sheet}: no data rows under the header; nothing to ingest")
    ingest_id = f"{ds.dataset_id}-{now:%Y%m%dT%H%M%S%f}-{sha[:8]}"
    prior = [r["ingest_id"] for r in registered_ingests(reg, ds.dataset_id)]
    latest, latest_ids = _latest_stored(read_vintages(table_dir(paths, ds), prior))
    need, revisions, n_new = diff_against(latest, frame, ds, ingest_id, latest_ids)
    out_cols, data, deleted, gone = _vintage_rows(latest, frame, need, ds.update_mode)
    notes = _notes(ds, frame, latest, gone, last, settings, sha)
    return DailyPlan(
        ds,
        src,
        sha,
        settings,
        key,
        ingest_id,
        now,
        frame,
        out_cols,
        data,
        deleted,
        revisions,
        n_new,
        int(deleted.sum()),
        tuple(notes),
    )


def _latest_stored(vint: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series | None]:
    """Newest live vintage per date (values only) and the ingest id each came from."""
    if vint.empty:
        return pd.DataFrame(), None
    lv = vint.sort_values(["date", "known_at", "ingest_id"]).drop_duplicates("date", keep="last")
    lv = lv[~lv["deleted"].astype(bool)].set_index("date").sort_index()
    return lv.drop(columns=["known_at", "ingest_id", "deleted"]), lv["ingest_id"]


def _vintage_rows(
    latest: pd.DataFrame, frame: DailyFrame, need: np.ndarray, update_mode: str
) -> tuple[list[str], dict[str, Any], np.ndarray, np.ndarray]:
    """Full rows for the dates that need a vintage (columns the file lacks keep their stored values), plus
    tombstones (replace mode) for stored dates the file no longer has; also returns those gone dates."""
    out_cols = list(dict.fromkeys([*latest.columns, *frame.values]))
    sel = np.flatnonzero(need)
    data: dict[str, Any] = {"date": frame.dates[sel]}
    idx = pd.DatetimeIndex(pd.to_datetime(latest.index)) if not latest.empty else pd.DatetimeIndex([])
    pos = idx.get_indexer(pd.to_datetime(frame.dates[sel])) if not latest.empty else np.full(len(sel), -1)
    for col in out_cols:
        if col in frame.values:
            data[col] = frame.values[col][sel]
        else:
            old = latest[col].to_numpy(dtype="float64")
            data[col] = np.where(pos >= 0, old[np.where(pos >= 0, pos, 0)], np.nan)
    deleted = np.zeros(len(sel), dtype=bool)
    gone = np.array([], dtype="datetime64[D]")
    if not latest.empty:
        mask = ~idx.isin(pd.to_datetime(frame.dates))
        gone = np.array(latest.index[mask], dtype="datetime64[D]")
    if update_mode == "replace" and len(gone):
        data["date"] = np.concatenate([data["date"], gone])
        for col in out_cols:
            data[col] = np.concatenate([data[col], np.full(len(gone), np.nan)])
        deleted = np.concatenate([deleted, np.ones(len(gone), dtype=bool)])
    return out_cols, data, deleted, gone


def _listed(days: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(f"{pd.Timestamp(d):%Y-%m-%d %a}" for d in days[:n])
    return shown + (f", ... ({len(days)} in all)" if len(days) > n else "")


def _notes(
    ds: DatasetRow,
    frame: DailyFrame,
    latest: pd.DataFrame,
    gone: np.ndarray,
    last: IngestRecord | None,
    settings: dict[str, Any],
    sha: str,
) -> list[str]:
    """What a careful quant wants to hear about this file besides its counts (all kept in the registry)."""
    notes = [f"dropped column {d.letter} '{d.header}': {d.reason}" for d in frame.dropped]
    if last is not None and last.file_sha256 == sha:
        notes.append(
            f"same file, parsed again: {_what_changed(dict(last.details.get('parse') or {}), settings, ds)}"
        )
    elif last is not None and last.parse_key and last.details.get("parse") != settings:
        notes.append(
            f"parse settings changed: {_what_changed(dict(last.details.get('parse') or {}), settings, ds)}"
        )
    off = _off_calendar(frame.dates, ds)
    if len(off):
        rows = frame.rows[np.isin(frame.dates, off)]
        notes.append(
            f"{len(off)} row(s) dated on a weekend/holiday of {_calendar_name(ds)} ({_listed(off)}; "
            f"rows {', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}): kept as stamped, as "
            "rows of the series (lag and windows count them); aligned to a trading grid, each is first used on "
            "the next trading day (never earlier); if the dates are typing errors, fix them in the file"
        )
    if len(gone):
        if ds.update_mode == "replace":
            notes.append(
                f"{len(gone)} stored date(s) not in this file were deleted (update_mode replace): {_listed(gone)}"
            )
        else:
            notes.append(
                f"{len(gone)} stored date(s) are not in this file any more ({_listed(gone)}): their values are "
                f"kept (update_mode append_only keeps every vintage; {dataset_cell(ds, 'update_mode')} = replace "
                "would delete them)"
            )
    if not latest.empty:
        added = [c for c in frame.values if c not in latest.columns]
        lost = [c for c in latest.columns if c not in frame.values]
        if added:
            notes.append(
                f"new column(s) {', '.join(added)}: run `backtest config export` so expressions may use them"
            )
        if lost:
            notes.append(f"column(s) {', '.join(lost)} not in this file: their stored values are kept")
    return notes


def _calendar_name(ds: DatasetRow) -> str:
    return ds.session_calendar or "Mon-Fri"


def _off_calendar(dates: np.ndarray, ds: DatasetRow) -> np.ndarray:
    """Dates that are not trading days of the dataset's calendar (weekends; CME holidays when it names one)."""
    if len(dates) == 0:
        return dates
    weekend = np.isin((dates.astype("datetime64[D]").view("int64") - 4) % 7, (5, 6))  # 1970-01-05 = Monday
    off = weekend
    if ds.session_calendar == "CME_EQUITY":
        import pandas_market_calendars as pmc

        lo, hi = pd.Timestamp(dates[0]), pd.Timestamp(dates[-1])
        open_days = pmc.get_calendar("CME_Equity").valid_days(lo, hi).tz_localize(None).normalize()
        off = ~pd.DatetimeIndex(pd.to_datetime(dates)).isin(open_days)
    return dates[off]


def write_daily(plan: DailyPlan, paths: ResolvedPaths, reg: Registry) -> Path:
    """Raw copy by content hash and the vintage parquet files (invisible until `record_daily`)."""
    tdir = table_dir(paths, plan.ds)
    clean_stale_temp(tdir)
    remove_orphans(tdir, {r["ingest_id"] for r in registered_ingests(reg, plan.ds.dataset_id)})
    raw_path = paths.raw_dir / "by_hash" / plan.sha[:2] / f"{plan.sha}{plan.src.suffix.lower()}"
    if not raw_path.exists():
        atomic_copy(plan.src, raw_path, tmp_dir=paths.staging_dir)
    if plan.rows_written:
        tbl = _vintage_table(plan.data, plan.deleted, plan.now, plan.ingest_id, plan.out_cols)
        for part_key, part in _partitions(tbl, plan.ds):
            target = tdir / part_key / f"part-{plan.ingest_id}.parquet"
            atomic_write_parquet(part, target, tmp_dir=paths.staging_dir)
    return raw_path


def remove_orphans(tdir: Path, registered: set[str], grace_s: float = ORPHAN_GRACE_S) -> int:
    """Delete part files of ingests that never reached the registry (killed runs); returns how many."""
    n = 0
    if not tdir.exists():
        return 0
    for f in tdir.rglob("part-*.parquet"):
        if f.stem.removeprefix("part-") in registered or time.time() - f.stat().st_mtime < grace_s:
            continue
        try:
            os.remove(f)
            n += 1
        except OSError:  # open elsewhere (Windows): invisible anyway, removed next time
            pass
    return n


def record_daily(plan: DailyPlan, reg: Registry, raw_path: Path, config_hash: str) -> None:
    """One registry transaction: revisions, coverage, dataset row, and the ingests row (the commit point)."""
    f, ds = plan.frame, plan.ds
    finished = utcnow()
    with reg.transaction() as con:
        insert_rows(con, "revisions", [_revision_row(r, finished) for r in plan.revisions])
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
                for d in f.dates
            ],
        )
        record_dataset(con, ds, plan.out_cols, config_hash, finished)
        record_ingests(con, [_ingest_record(plan, raw_path, config_hash, finished)])


def _revision_row(r: Revision, when: dt.datetime) -> dict[str, Any]:
    return {
        "dataset_id": r.dataset_id,
        "date": r.date,
        "column_name": r.column,
        "old_value": r.old_value,
        "new_value": r.new_value,
        "old_ingest_id": r.old_ingest_id,
        "new_ingest_id": r.new_ingest_id,
        "recorded_at": when,
    }


def _ingest_record(plan: DailyPlan, raw_path: Path, config_hash: str, finished: dt.datetime) -> IngestRecord:
    f = plan.frame
    return IngestRecord(
        ingest_id=plan.ingest_id,
        dataset_id=plan.ds.dataset_id,
        source_path=str(plan.src),
        raw_path=str(raw_path),
        file_sha256=plan.sha,
        source_kind="xlsx",
        schema_name="daily",
        rows=len(f.dates),
        first_date=pd.Timestamp(f.dates[0]).date(),
        last_date=pd.Timestamp(f.dates[-1]).date(),
        columns=tuple(f.values),
        started_at=plan.now.replace(tzinfo=None),
        finished_at=finished,
        config_hash=config_hash,
        parse_key=plan.key,
        n_new_dates=plan.n_new,
        n_revisions=len(plan.revisions),
        details={
            "vintage_rows": plan.rows_written,
            "tombstones": plan.n_deleted,
            "skipped_columns": list(f.skipped_columns),
            "dropped_columns": [
                {"column": d.letter, "header": d.header, "reason": d.reason} for d in f.dropped
            ],
            "headers": f.source_columns,
            "sheet": f.sheet,
            "parse": plan.settings,
            "notes": list(plan.notes),
        },
    )


def ingest_daily(
    ds: DatasetRow, paths: ResolvedPaths, reg: Registry, now: dt.datetime | None = None, config_hash: str = ""
) -> IngestResult:
    """Ingest one daily_series dataset from its xlsx: plan -> write -> record; idempotent per identity."""
    now = now or dt.datetime.now(dt.UTC)
    plan = plan_daily(ds, paths, reg, now)
    if isinstance(plan, IngestResult):
        return plan
    raw_path = write_daily(plan, paths, reg)
    record_daily(plan, reg, raw_path, config_hash)
    f = plan.frame
    return IngestResult(
        ds.dataset_id,
        plan.ingest_id,
        str(plan.src),
        "ingested",
        len(f.dates),
        pd.Timestamp(f.dates[0]).date(),
        pd.Timestamp(f.dates[-1]).date(),
        {
            "new_dates": plan.n_new,
            "revisions": plan.revisions,
            "vintage_rows": plan.rows_written,
            "columns": list(f.values),
            "skipped_columns": list(f.skipped_columns),
            "tombstones": plan.n_deleted,
            "notes": list(plan.notes),
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
        return f"{result.dataset_id}: unchanged ({Path(result.source).name} already ingested with these settings)"
    revs = d.get("revisions", [])
    text = (
        f"{result.dataset_id}: ingested {result.rows:,} rows {result.first_date}..{result.last_date}, "
        f"{d.get('new_dates', 0):,} new dates, {len(revs)} revisions, columns {', '.join(d.get('columns', []))}"
    )
    for note in d.get("notes", []):
        text += f"\n  note: {note}"
    for r in revs[:10]:
        text += f"\n  revision {r.date} {r.column}: {r.old_value} -> {r.new_value} ({r.old_ingest_id} -> {r.new_ingest_id})"
    if len(revs) > 10:
        text += f"\n  ... {len(revs) - 10} more revisions (registry table revisions)"
    return text
