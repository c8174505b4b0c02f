"""ES trades from Databento DBN files -> canonical parquet partitioned by CME trade date.

Decoding uses the databento client (DBNStore.to_ndarray: ~60x faster than to_df) on bytes we decompress
ourselves, so a truncated zstd frame or an incomplete last record is caught and refused instead of silently
shortening the data. Bounded memory whatever the number of files: the plan decodes and checks one file at a
time and spills its rows, split by trade date, to a private staging folder (nothing visible is written, so a
bad file still stops the run with nothing changed); the write then handles one trade date at a time. Each
trade_date partition is one parquet file replaced atomically (old rows + new rows, de-duplicated on the
record key; the old copy wins, so "new" means not already present), raw files are copied by content hash,
and the registry rows (ingests, partitions, coverage, roll schedule) are written last: a killed ingest
leaves complete partitions and no registry row, and the next run re-ingests the same files to the same
result. Excluded calendar-spread records are kept the same way in `_excluded_spreads/`, so each distinct
spread record is counted once however many files carry it.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import io
import json
import re
import shutil
import uuid
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import zstandard

from runtime.config.columns import dataset_cell
from runtime.contracts import (
    CANONICAL_TBBO_EXTRA,
    CANONICAL_TRADES_SCHEMA,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
    TRADE_DEDUP_KEY,
    DatasetRow,
    IngestRecord,
    IngestResult,
    ResolvedPaths,
    UserError,
)
from runtime.ingest.roll import is_outright, roll_by_calendar, roll_by_volume
from runtime.ingest.sessions import assign_sessions, cme_equity_sessions, sessions_for_timestamps
from runtime.storage.atomic import atomic_copy, atomic_write_parquet, clean_stale_temp
from runtime.storage.registry import (
    Registry,
    insert_rows,
    record_dataset,
    record_ingests,
    upsert_rows,
    utcnow,
)

ACCEPTED_SCHEMAS = ("trades", "tbbo")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
UNDEF_PRICE = np.iinfo(np.int64).max
PART_FILE = "part-0.parquet"
#: excluded spread records per trade date, beside the partitions (`_` prefix: ignored by Arrow dataset discovery)
EXCLUDED_SPREADS_DIR = "_excluded_spreads"
#: private per-run spill folders under the staging dir (removed at the end, and at the next run if killed)
SPILL_PREFIX = ".tmp-dbn-spill-"


@dataclass(frozen=True)
class DecodedFile:
    """One DBN file, decoded and checked (records as the client's raw structured array)."""

    path: Path
    sha256: str
    schema: str
    version: int
    stype_in: str
    records: np.ndarray
    mappings: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class CanonicalPiece:
    """Canonical rows of one file, plus what was dropped and why (spread records kept apart, for counting)."""

    table: pa.Table
    n_spreads: int
    n_outside_session: int
    n_unmapped: int
    n_bad_price: int
    spread_symbols: tuple[str, ...] = ()
    spreads: pa.Table | None = None


@dataclass(frozen=True)
class FileSummary:
    """What the plan keeps of one new file once its rows are spilled: no arrays, so memory stays bounded."""

    path: Path
    sha256: str
    schema: str
    version: int
    stype_in: str
    rows: int
    first_date: dt.date | None
    last_date: dt.date | None
    columns: tuple[str, ...]
    n_spreads: int
    n_outside_session: int
    n_unmapped: int
    n_bad_price: int
    spread_symbols: tuple[str, ...]


@dataclass
class IngestPlan:
    """New files of one dataset, decoded, checked and spilled per trade date to a private staging folder.

    Why spill: holding every file's rows until the write (the old shape) made peak memory grow with the
    number of files (11.8 GB for a year). Each file is decoded, checked and split by trade date, its pieces
    go to `spill_dir` (never visible to readers), and only summaries stay in memory; the write then handles
    one trade date at a time. A bad file still stops the run before anything visible is written.
    """

    dataset: DatasetRow
    spill_dir: Path
    files: list[FileSummary] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    #: trade date -> indices into `files` that have trades (resp. spread records) on that date, in file order
    dates: dict[dt.date, list[int]] = field(default_factory=dict)
    spread_dates: dict[dt.date, list[int]] = field(default_factory=dict)


# ---- decoding -----------------------------------------------------------------------------------------

_OBJECT_REPR = re.compile(r"<_?[\w.]+ object at 0x[0-9a-fA-F]+>")


def _name_the_file(message: str, path: Path) -> str:
    """The client names our in-memory buffer (`<_io.BytesIO object at 0x...>`); name the user's file instead."""
    return _OBJECT_REPR.sub(path.name, message)


def _decompress(path: Path, data: bytes) -> bytes:
    if not data.startswith(ZSTD_MAGIC):
        return data
    out = []
    rest = data
    while rest:
        d = zstandard.ZstdDecompressor().decompressobj()
        try:
            out.append(d.decompress(rest))
        except zstandard.ZstdError as exc:
            raise UserError(f"{path}: corrupt zstd data ({exc}); download the file again") from None
        if not d.eof:
            raise UserError(f"{path}: truncated (the zstd frame ends early); download the file again")
        rest = d.unused_data
    return b"".join(out)


def read_source(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the path") from None


def decode_dbn(path: Path, blob: bytes | None = None) -> DecodedFile:
    """Decode and check one DBN file (its bytes if already read); problems are UserErrors naming the file."""
    import databento as db

    path = Path(path)
    if blob is None:
        blob = read_source(path)
    raw = _decompress(path, blob)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            store = db.DBNStore.from_bytes(io.BytesIO(raw))
            schema = str(store.schema) if store.schema is not None else "mixed"
            if schema not in ACCEPTED_SCHEMAS:
                raise UserError(
                    f"{path}: schema '{schema}' is not trades or tbbo; ES trade datasets take the trades or tbbo "
                    "schema (request schema='trades' from Databento)"
                )
            records = store.to_ndarray()
            meta = store.metadata
        except UserError:
            raise
        except Exception as exc:  # databento's DBNError and friends
            text = _name_the_file(str(exc), path)
            if path.suffix == ".dbz" or "determine encoding" in text:
                hint = " (legacy .dbz/DBN v0 files are not readable by current clients; re-download as DBN)"
            elif "compression format" in text:
                hint = (
                    " (it is neither DBN nor zstd-compressed DBN; check that this is the file Databento sent)"
                )
            else:
                hint = ""
            raise UserError(f"{path}: not a readable DBN file: {text}{hint}") from None
    for w in caught:
        if "truncated" in str(w.message) or "incomplete" in str(w.message):
            raise UserError(f"{path}: truncated (the last record is incomplete); download the file again")
    stype = str(meta.stype_in) if meta.stype_in is not None else "raw_symbol"
    if stype == "parent":
        raise UserError(
            f"{path}: parent symbology ({', '.join(meta.symbols)}) mixes contracts and spreads under one name; "
            "request stype_in='raw_symbol' (e.g. ESZ4) or 'continuous' (e.g. ES.v.0)"
        )
    return DecodedFile(
        path, hashlib.sha256(blob).hexdigest(), schema, int(meta.version), stype, records, dict(meta.mappings)
    )


def _symbols(rec: np.ndarray, mappings: dict[str, list[dict[str, Any]]]) -> tuple[np.ndarray, list[str]]:
    """Symbol code per record (-1 = unmapped) and the code -> symbol list, from the metadata mappings.

    Mappings give instrument_id -> symbol by UTC date interval (end exclusive). Vectorised per instrument
    and interval: a day of 300k trades has a handful of instruments, so this costs a few array passes.
    """
    ids = rec["instrument_id"].astype(np.int64)
    day = (rec["ts_event"].astype(np.int64) // 86_400_000_000_000).astype("datetime64[D]")
    codes = np.full(len(rec), -1, dtype=np.int32)
    names: list[str] = []
    by_id: dict[int, list[tuple[np.datetime64, np.datetime64, str]]] = defaultdict(list)
    for sym, intervals in mappings.items():
        for iv in intervals:
            try:
                iid = int(iv["symbol"])
            except (TypeError, ValueError):
                continue
            by_id[iid].append((np.datetime64(iv["start_date"], "D"), np.datetime64(iv["end_date"], "D"), sym))
    uniq, inverse = np.unique(ids, return_inverse=True)
    for k, iid in enumerate(uniq):
        mask = inverse == k
        for start, end, sym in by_id.get(int(iid), []):
            if sym not in names:
                names.append(sym)
            codes[mask & (day >= start) & (day < end)] = names.index(sym)
    return codes, names


def _canonical_table(
    dec: DecodedFile, rec: np.ndarray, codes: np.ndarray, names: list[str], rth_start: str, rth_end: str
) -> tuple[pa.Table, int]:
    """Records (already filtered) -> canonical columns sorted by ts_event, and how many fell outside a session."""
    ts = rec["ts_event"].astype(np.int64)
    order = np.argsort(ts, kind="stable")
    rec, codes, ts = rec[order], codes[order], ts[order]
    n_outside = 0
    if len(rec):
        try:
            sessions = sessions_for_timestamps(int(ts[0]), int(ts[-1]), rth_start=rth_start, rth_end=rth_end)
            sa = assign_sessions(ts, sessions)
        except ValueError as exc:  # outside the modelled calendar (before 2012-11-19) or bad RTH times
            raise UserError(f"{dec.path}: cannot assign CME trade dates: {exc}") from None
        trade_date, in_rth = sa.trade_date, sa.in_rth
        n_outside = int((~sa.in_session).sum())
    else:
        trade_date, in_rth = np.array([], dtype="datetime64[D]"), np.array([], dtype=bool)
    side_raw = rec["side"]
    side = np.full(len(rec), SIDE_NONE, dtype=np.int8)
    side[side_raw == b"B"] = SIDE_BUY
    side[side_raw == b"A"] = SIDE_SELL
    cols: dict[str, pa.Array] = {
        "ts_event": pa.array(ts, type=pa.int64()).cast(CANONICAL_TRADES_SCHEMA.field("ts_event").type),
        "ts_recv": pa.array(rec["ts_recv"].astype(np.int64)).cast(
            CANONICAL_TRADES_SCHEMA.field("ts_recv").type
        ),
        "trade_date": pa.array(trade_date.astype("datetime64[D]"), type=pa.date32()),
        "in_rth": pa.array(in_rth, type=pa.bool_()),
        "symbol": pa.array(names, type=pa.string()).take(pa.array(codes, type=pa.int32())),
        "instrument_id": pa.array(rec["instrument_id"].astype(np.uint32), type=pa.uint32()),
        "price": pa.array(rec["price"].astype(np.float64) / 1e9, type=pa.float64()),
        "size": pa.array(rec["size"].astype(np.uint32), type=pa.uint32()),
        "side": pa.array(side, type=pa.int8()),
        "sequence": pa.array(rec["sequence"].astype(np.uint32), type=pa.uint32()),
        "flags": pa.array(rec["flags"].astype(np.uint8), type=pa.uint8()),
    }
    schema = CANONICAL_TRADES_SCHEMA
    if dec.schema == "tbbo":
        for name, src in (("bid_px", "bid_px_00"), ("ask_px", "ask_px_00")):
            v = rec[src].astype(np.int64)
            cols[name] = pa.array(v / 1e9, type=pa.float64(), mask=v == UNDEF_PRICE)
        cols["bid_sz"] = pa.array(rec["bid_sz_00"].astype(np.uint32), type=pa.uint32())
        cols["ask_sz"] = pa.array(rec["ask_sz_00"].astype(np.uint32), type=pa.uint32())
        schema = pa.schema([*CANONICAL_TRADES_SCHEMA, *CANONICAL_TBBO_EXTRA])
    return pa.table(cols, schema=schema), n_outside


def to_canonical(dec: DecodedFile, rth_start: str, rth_end: str) -> CanonicalPiece:
    """Raw records -> canonical columns (spreads and unusable records dropped and counted).

    The spread records are returned apart in the same columns, so that re-reading them (a re-delivery, a
    second file with the same day) can be de-duplicated and counted once, like the trades.
    """
    rec = dec.records
    codes, names = _symbols(rec, dec.mappings)
    spread_codes = [i for i, s in enumerate(names) if "-" in s and not is_outright(s)]
    unmapped = codes < 0
    spread = np.isin(codes, spread_codes)
    bad_price = rec["price"] == UNDEF_PRICE
    keep = ~(unmapped | spread | bad_price)
    spread_syms = tuple(sorted(names[i] for i in np.unique(codes[spread])))
    table, n_outside = _canonical_table(dec, rec[keep], codes[keep], names, rth_start, rth_end)
    spreads = None
    if spread.any():
        spreads = _canonical_table(dec, rec[spread], codes[spread], names, rth_start, rth_end)[0]
    return CanonicalPiece(
        table, int(spread.sum()), n_outside, int(unmapped.sum()), int(bad_price.sum()), spread_syms, spreads
    )


# ---- merging and writing -------------------------------------------------------------------------------


def merge_trades(tables: Sequence[pa.Table]) -> pa.Table:
    """Union of trade tables, sorted by ts_event (ties in arrival order), exact duplicates removed."""
    return merge_counted(tables)[0]


def merge_counted(tables: Sequence[pa.Table]) -> tuple[pa.Table, list[int]]:
    """Union of trade tables and, per input table, how many of its rows are in the union (its new rows).

    Pieces that do not overlap in time (the usual case: a trade date spans two UTC-day files) are simply
    concatenated; overlapping ones (a re-delivery, a re-run after a crash) are de-duplicated on the record
    key (TRADE_DEDUP_KEY). Of identical records the copy of the earliest input table is kept, so with the
    existing partition passed first, "new" means not already present; the result is the same on every path.
    """
    counts = [0] * len(tables)
    nonempty = [i for i, t in enumerate(tables) if t.num_rows]
    if len(nonempty) <= 1:
        if not nonempty:
            return tables[0], counts
        counts[nonempty[0]] = tables[nonempty[0]].num_rows
        return tables[nonempty[0]], counts
    ranges = []
    for i in nonempty:
        ts = tables[i].column("ts_event").cast(pa.int64()).to_numpy()
        ranges.append((int(ts[0]), int(ts[-1]), i))
    ranges.sort(key=lambda x: x[0])
    disjoint = all(ranges[j][0] > ranges[j - 1][1] for j in range(1, len(ranges)))
    merged = pa.concat_tables([tables[r[2]] for r in ranges], promote_options="default")
    if disjoint:
        for i in nonempty:
            counts[i] = tables[i].num_rows
        return merged, counts
    origin = np.repeat(
        np.array([r[2] for r in ranges], dtype=np.int64), [tables[r[2]].num_rows for r in ranges]
    )
    ts = merged.column("ts_event").cast(pa.int64()).to_numpy()
    keys = [merged.column(k).to_numpy() for k in TRADE_DEDUP_KEY if k != "ts_event"]
    idx = np.arange(len(ts))
    order = np.lexsort((idx, origin, *keys, ts))  # identical records become neighbours, earliest input first
    sorted_cols = [ts[order], *(k[order] for k in keys)]
    dup_sorted = np.ones(len(order), dtype=bool)
    dup_sorted[0] = False
    for c in sorted_cols:
        dup_sorted[1:] &= c[1:] == c[:-1]
    keep = np.ones(len(ts), dtype=bool)
    keep[order[dup_sorted]] = False
    kept = np.flatnonzero(keep)
    # canonical order: ts_event, ties in the order the records arrived (the file's matching-engine order)
    kept = kept[np.argsort(ts[kept], kind="stable")]
    per = np.bincount(origin[kept], minlength=len(tables))
    return merged.take(pa.array(kept)), [int(c) for c in per]


def partition_path(paths: ResolvedPaths, ds: DatasetRow, trade_date: dt.date) -> Path:
    return paths.canonical_dir / ds.canonical_table_name / f"trade_date={trade_date.isoformat()}" / PART_FILE


def spreads_dir(paths: ResolvedPaths, ds: DatasetRow) -> Path:
    """Excluded calendar-spread records, kept for exact counting (the leading `_` hides it from dataset readers)."""
    return paths.canonical_dir / ds.canonical_table_name / EXCLUDED_SPREADS_DIR


def spreads_path(paths: ResolvedPaths, ds: DatasetRow, trade_date: dt.date) -> Path:
    return spreads_dir(paths, ds) / f"trade_date={trade_date.isoformat()}" / PART_FILE


def _split_by_date(table: pa.Table) -> dict[dt.date, pa.Table]:
    days = table.column("trade_date").to_numpy().astype("datetime64[D]")
    order = np.argsort(days, kind="stable")
    table = table.take(pa.array(order))
    days = days[order]
    uniq, first = np.unique(days, return_index=True)
    bounds = [*first.tolist(), len(days)]
    return {
        pd.Timestamp(u).date(): table.slice(bounds[i], bounds[i + 1] - bounds[i]) for i, u in enumerate(uniq)
    }


def _spill_file(spill_dir: Path, kind: str, day: dt.date, k: int) -> Path:
    return spill_dir / kind / day.isoformat() / f"{k:06d}.arrow"


def _spill(spill_dir: Path, kind: str, k: int, table: pa.Table, index: dict[dt.date, list[int]]) -> None:
    """Write one file's rows, split by trade date, to the private spill folder (lz4 Arrow IPC: fast both ways)."""
    for day, piece in _split_by_date(table).items():
        target = _spill_file(spill_dir, kind, day, k)
        target.parent.mkdir(parents=True, exist_ok=True)
        feather.write_feather(piece, target, compression="lz4")
        index.setdefault(day, []).append(k)


def _unspill(spill_dir: Path, kind: str, day: dt.date, k: int) -> pa.Table:
    return feather.read_table(_spill_file(spill_dir, kind, day, k), memory_map=False)


# ---- the ingest --------------------------------------------------------------------------------------


def source_files(ds: DatasetRow, paths: ResolvedPaths, explicit: Sequence[Path] | None = None) -> list[Path]:
    if explicit:
        missing = [p for p in explicit if not Path(p).exists()]
        if missing:
            raise UserError(f"{missing[0]}: file not found")
        return [Path(p).resolve() for p in explicit]
    pattern = ds.source_path_or_id.replace("\\", "/")
    base = Path(pattern)
    full = pattern if base.is_absolute() else (paths.data_root / pattern).as_posix()
    files = sorted(Path(p) for p in glob.glob(full, recursive=True))
    if not files:
        raise UserError(
            f"{ds.dataset_id}: no files match {full} ({dataset_cell(ds, 'source_path_or_id')} source_path_or_id, relative to DATA_ROOT); "
            "put the DBN files there or run `backtest demo-data`"
        )
    return files


def plan_ingest(ds: DatasetRow, files: Sequence[Path], reg: Registry, spill_dir: Path) -> IngestPlan:
    """Decode and check every not-yet-ingested file, one at a time, spilling its rows to `spill_dir`.

    Nothing visible is written here; memory holds one file's records at a time, whatever the file count.
    """
    known = {
        r["file_sha256"]
        for r in reg.query("SELECT file_sha256 FROM ingests WHERE dataset_id = ?", [ds.dataset_id])
    }
    prior_schema = reg.query("SELECT DISTINCT schema_name FROM ingests WHERE dataset_id = ?", [ds.dataset_id])
    plan = IngestPlan(ds, spill_dir)
    schemas = {r["schema_name"] for r in prior_schema}
    seen: set[str] = set()
    for f in files:
        blob = read_source(f)  # read once: the hash decides, the same bytes are decoded
        sha = hashlib.sha256(blob).hexdigest()
        if sha in known or sha in seen:
            plan.skipped.append(f)
            continue
        dec = decode_dbn(f, blob)
        del blob
        schemas.add(dec.schema)
        if len(schemas) > 1:
            raise UserError(
                f"{f}: schema {dec.schema} differs from the dataset's other files ({', '.join(sorted(schemas))}); "
                "keep one schema per dataset (make another DATASETS row for the other schema)"
            )
        seen.add(sha)
        piece = to_canonical(dec, *ds.rth_hours)
        k = len(plan.files)
        _spill(spill_dir, "trades", k, piece.table, plan.dates)
        if piece.spreads is not None:
            _spill(spill_dir, "spreads", k, piece.spreads, plan.spread_dates)
        dates = piece.table.column("trade_date").to_numpy() if piece.table.num_rows else np.array([])
        plan.files.append(
            FileSummary(
                path=dec.path,
                sha256=dec.sha256,
                schema=dec.schema,
                version=dec.version,
                stype_in=dec.stype_in,
                rows=piece.table.num_rows,
                first_date=pd.Timestamp(dates.min()).date() if len(dates) else None,
                last_date=pd.Timestamp(dates.max()).date() if len(dates) else None,
                columns=tuple(piece.table.schema.names),
                n_spreads=piece.n_spreads,
                n_outside_session=piece.n_outside_session,
                n_unmapped=piece.n_unmapped,
                n_bad_price=piece.n_bad_price,
                spread_symbols=piece.spread_symbols,
            )
        )
        del dec, piece
    return plan


def _version(previous: str | None, ingest_ids: Sequence[str]) -> str:
    h = hashlib.sha256((previous or "").encode())
    for i in sorted(ingest_ids):
        h.update(i.encode())
    return h.hexdigest()[:16]


def _merge_day(
    plan: IngestPlan, kind: str, day: dt.date, target: Path, paths: ResolvedPaths, new: list[int]
) -> pa.Table:
    """Existing partition + this run's pieces of one trade date -> written atomically; adds each file's new rows."""
    ks = plan.dates[day] if kind == "trades" else plan.spread_dates[day]
    pieces = [_unspill(plan.spill_dir, kind, day, k) for k in ks]
    if target.exists():
        pieces.insert(0, pq.read_table(target))
    merged, counts = merge_counted(pieces)
    for k, c in zip(ks, counts[len(counts) - len(ks) :], strict=True):
        new[k] += c
    atomic_write_parquet(merged, target, tmp_dir=paths.staging_dir)
    return merged


def _settle(attributed: list[int], total_new: int) -> list[int]:
    """Per-file new counts whose sum is the registry-relative total.

    Attribution compares with what is on disk; after a killed run the disk already holds rows that no
    registry row counts, so the difference goes to the first file (never below zero).
    """
    out = list(attributed)
    if out:
        out[0] = max(0, out[0] + total_new - sum(out))
    return out


def _ingest_record(
    ds: DatasetRow,
    f: FileSummary,
    ingest_id: str,
    raw: Path,
    new_trades: int,
    new_spreads: int,
    config_hash: str,
    started: dt.datetime,
    finished: dt.datetime,
) -> IngestRecord:
    """The registry row of one DBN file (the one place it is built)."""
    return IngestRecord(
        ingest_id=ingest_id,
        dataset_id=ds.dataset_id,
        source_path=str(f.path),
        raw_path=str(raw),
        file_sha256=f.sha256,
        source_kind="dbn",
        schema_name=f.schema,
        dbn_version=f.version,
        rows=f.rows,
        first_date=f.first_date,
        last_date=f.last_date,
        columns=f.columns,
        n_excluded_spreads=new_spreads,  # distinct spread records first seen in this file: sums count each once
        n_outside_session=f.n_outside_session,
        details={
            "unmapped": f.n_unmapped,
            "bad_price": f.n_bad_price,
            "spread_symbols": list(f.spread_symbols),
            "spreads_read": f.n_spreads,
            "new_trades": new_trades,
            "stype_in": f.stype_in,
        },
        config_hash=config_hash,
        started_at=started,
        finished_at=finished,
    )


def ingest_plan(
    plan: IngestPlan,
    paths: ResolvedPaths,
    reg: Registry,
    now: dt.datetime | None = None,
    config_hash: str = "",
) -> list[IngestResult]:
    """Write partitions one trade date at a time, then raw copies, then the registry rows (last)."""
    ds = plan.dataset
    now = now or dt.datetime.now(dt.UTC)
    results = [IngestResult(ds.dataset_id, None, str(p), "unchanged") for p in plan.skipped]
    if not plan.files:
        return results
    tdir = paths.canonical_dir / ds.canonical_table_name
    clean_stale_temp(tdir)
    ingest_ids = [f"{ds.dataset_id}-{now:%Y%m%dT%H%M%S%f}-{f.sha256[:8]}" for f in plan.files]
    prev = {
        r["part_date"]: r
        for r in reg.query(
            "SELECT part_date, version, rows, ingest_ids FROM partitions WHERE dataset_id = ?",
            [ds.dataset_id],
        )
    }
    part_rows, cov_rows = [], []
    finished = utcnow()
    new_trades = [0] * len(plan.files)
    new_spreads = [0] * len(plan.files)
    total_new_trades = 0
    for day in sorted(plan.dates):
        merged = _merge_day(plan, "trades", day, partition_path(paths, ds, day), paths, new_trades)
        ids_here = sorted({ingest_ids[k] for k in plan.dates[day]})
        old = prev.get(day)
        total_new_trades += merged.num_rows - (int(old["rows"] or 0) if old else 0)
        all_ids = sorted(set(json.loads(old["ingest_ids"]) if old else []) | set(ids_here))
        part_rows.append(
            {
                "dataset_id": ds.dataset_id,
                "part_date": day,
                "version": _version(old["version"] if old else None, ids_here),
                "rows": merged.num_rows,
                "ingest_ids": all_ids,
                "updated_at": finished,
            }
        )
        vol = (
            pd.DataFrame(
                {
                    "symbol": merged.column("symbol").to_numpy(zero_copy_only=False),
                    "size": merged.column("size").to_numpy(),
                }
            )
            .groupby("symbol")["size"]
            .agg(["count", "sum"])
        )
        cov_rows.extend(
            {
                "dataset_id": ds.dataset_id,
                "date": day,
                "symbol": s,
                "rows": int(r["count"]),
                "volume": float(r["sum"]),
                "updated_at": finished,
            }
            for s, r in vol.iterrows()
        )
        del merged
    for day in sorted(plan.spread_dates):
        _merge_day(plan, "spreads", day, spreads_path(paths, ds, day), paths, new_spreads)
    new_trades = _settle(new_trades, total_new_trades)
    new_spreads = _settle(new_spreads, _spread_total(paths, ds) - _registered_spreads(reg, ds))
    raw_paths = []
    for f in plan.files:
        raw = paths.raw_dir / "by_hash" / f.sha256[:2] / f"{f.sha256}{''.join(f.path.suffixes)}"
        if not raw.exists():
            atomic_copy(f.path, raw, tmp_dir=paths.staging_dir)
        raw_paths.append(raw)
    roll_rows = _roll_rows(ds, reg, cov_rows, finished)
    records = [
        _ingest_record(ds, f, iid, raw, nt, ns, config_hash, now.replace(tzinfo=None), finished)
        for f, iid, raw, nt, ns in zip(
            plan.files, ingest_ids, raw_paths, new_trades, new_spreads, strict=True
        )
    ]
    with reg.transaction() as con:  # registry rows last
        con.execute(
            "DELETE FROM coverage WHERE dataset_id = ? AND date IN (SELECT unnest(?::DATE[]))",
            [ds.dataset_id, sorted(plan.dates)],
        )
        insert_rows(con, "coverage", cov_rows)
        upsert_rows(con, "partitions", ("dataset_id", "part_date"), part_rows)
        con.execute("DELETE FROM roll_schedule WHERE dataset_id = ?", [ds.dataset_id])
        insert_rows(con, "roll_schedule", roll_rows)
        record_dataset(con, ds, list(plan.files[0].columns), config_hash, finished)
        record_ingests(con, records)
    for f, rec in zip(plan.files, records, strict=True):
        results.append(
            IngestResult(
                ds.dataset_id,
                rec.ingest_id,
                str(f.path),
                "ingested",
                f.rows,
                f.first_date,
                f.last_date,
                {
                    "spreads": f.n_spreads,
                    "new_spreads": rec.n_excluded_spreads,
                    "new_trades": rec.details["new_trades"],
                    "outside_session": f.n_outside_session,
                    "schema": f.schema,
                    "dbn_version": f.version,
                },
            )
        )
    return results


def _spread_total(paths: ResolvedPaths, ds: DatasetRow) -> int:
    """Distinct excluded spread records on disk (parquet footers only: cheap even at years of dates)."""
    root = spreads_dir(paths, ds)
    return (
        sum(pq.read_metadata(p).num_rows for p in root.glob(f"trade_date=*/{PART_FILE}"))
        if root.exists()
        else 0
    )


def _registered_spreads(reg: Registry, ds: DatasetRow) -> int:
    rows = reg.query(
        "SELECT coalesce(sum(n_excluded_spreads), 0) n FROM ingests WHERE dataset_id = ?", [ds.dataset_id]
    )
    return int(rows[0]["n"]) if rows else 0


def _roll_rows(
    ds: DatasetRow, reg: Registry, new_cov: list[dict[str, Any]], when: dt.datetime
) -> list[dict[str, Any]]:
    """Front contract per trade date from all coverage (old + new); uses nothing from the day itself."""
    old = pd.DataFrame(
        reg.query(
            "SELECT date trade_date, symbol, volume FROM coverage WHERE dataset_id = ?", [ds.dataset_id]
        )
    )
    new = pd.DataFrame(
        [{"trade_date": r["date"], "symbol": r["symbol"], "volume": r["volume"]} for r in new_cov]
    )
    vol = pd.concat([old[~old["trade_date"].isin(set(new["trade_date"]))] if not old.empty else old, new])
    if vol.empty or ds.roll_rule in (None, "none"):
        return []
    days = sorted(set(vol["trade_date"]))
    business = [
        s.trade_date
        for s in cme_equity_sessions(days[0] - dt.timedelta(days=10), max(days) + dt.timedelta(days=120))
    ]
    n = ds.roll_days_before_expiry if ds.roll_days_before_expiry is not None else 6
    outrights = sorted({s for s in vol["symbol"] if is_outright(s)})
    if ds.roll_rule == "calendar":
        frame = roll_by_calendar(outrights, days, n, business)
    else:
        frame = roll_by_volume(vol, days, fallback_days_before_expiry=n, business_days=business)
    return [
        {
            "dataset_id": ds.dataset_id,
            "trade_date": r.trade_date,
            "symbol": r.symbol,
            "rule": r.rule,
            "basis": r.basis,
            "computed_at": when,
        }
        for r in frame.itertuples()
    ]


def ingest_databento(
    ds: DatasetRow,
    paths: ResolvedPaths,
    reg: Registry,
    files: Sequence[Path] | None = None,
    config_hash: str = "",
) -> list[IngestResult]:
    """Plan (decode, check, spill) then write; the spill folder is removed however the run ends."""
    sources = source_files(ds, paths, files)
    paths.staging_dir.mkdir(parents=True, exist_ok=True)
    for stale in paths.staging_dir.glob(f"{SPILL_PREFIX}{ds.dataset_id}-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    spill = paths.staging_dir / f"{SPILL_PREFIX}{ds.dataset_id}-{uuid.uuid4().hex}"
    try:
        plan = plan_ingest(ds, sources, reg, spill)
        return ingest_plan(plan, paths, reg, config_hash=config_hash)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def describe(results: Sequence[IngestResult]) -> str:
    """One line for the CLI: files, trades read vs new (the rest were already present), spreads, outside."""
    done = [r for r in results if r.status == "ingested"]
    same = [r for r in results if r.status == "unchanged"]
    if not results:
        return "nothing to ingest"
    ds = results[0].dataset_id
    if not done:
        return f"{ds}: unchanged ({len(same)} files already ingested)"
    rows = sum(r.rows for r in done)
    new = sum(r.details.get("new_trades", 0) for r in done)
    spreads = sum(r.details.get("spreads", 0) for r in done)
    new_spreads = sum(r.details.get("new_spreads", 0) for r in done)
    outside = sum(r.details.get("outside_session", 0) for r in done)
    dates = [r.first_date for r in done if r.first_date] + [r.last_date for r in done if r.last_date]
    span = f"trade dates {min(dates)}..{max(dates)}" if dates else "no trade dates"
    text = (
        f"{ds}: ingested {len(done)} files ({len(same)} unchanged): {rows:,} trades read, {new:,} new, "
        f"{rows - new:,} already present; {span}; excluded {spreads:,} calendar-spread records"
    )
    if spreads != new_spreads:
        text += f" ({new_spreads:,} not seen before)"
    if outside:
        text += f"; {outside:,} trades outside the CME session windows (kept, flagged in the registry)"
    return text
