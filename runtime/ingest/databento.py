"""ES trades from Databento DBN files -> canonical parquet partitioned by CME trade date.

Decoding uses the databento client (DBNStore.to_ndarray: ~60x faster than to_df) on bytes we decompress
ourselves, so a truncated zstd frame or an incomplete last record is caught and refused instead of silently
shortening the data. Every new file is decoded and checked before anything is written. Each trade_date
partition is one parquet file replaced atomically (old rows + new rows, de-duplicated), raw files are copied
by content hash, and the registry rows (ingests, partitions, coverage, roll schedule) are written last: a
killed ingest leaves complete partitions and no registry row, and the next run re-ingests the same files
to the same result.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import io
import json
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

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
    """Canonical rows of one file, plus what was dropped and why."""

    table: pa.Table
    n_spreads: int
    n_outside_session: int
    n_unmapped: int
    n_bad_price: int
    spread_symbols: tuple[str, ...] = ()


@dataclass
class IngestPlan:
    """New files for one dataset: decoded pieces grouped by trade date (built before any write)."""

    dataset: DatasetRow
    files: list[DecodedFile] = field(default_factory=list)
    pieces: list[CanonicalPiece] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


# ---- decoding -----------------------------------------------------------------------------------------


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
            hint = (
                " (legacy .dbz/DBN v0 files are not readable by current clients; re-download as DBN)"
                if (path.suffix == ".dbz" or "determine encoding" in str(exc))
                else ""
            )
            raise UserError(f"{path}: not a readable DBN file: {exc}{hint}") from None
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


def to_canonical(dec: DecodedFile, rth_start: str, rth_end: str) -> CanonicalPiece:
    """Raw records -> canonical columns (spreads and unusable records dropped and counted)."""
    rec = dec.records
    codes, names = _symbols(rec, dec.mappings)
    spread_codes = [i for i, s in enumerate(names) if "-" in s and not is_outright(s)]
    unmapped = codes < 0
    spread = np.isin(codes, spread_codes)
    bad_price = rec["price"] == UNDEF_PRICE
    keep = ~(unmapped | spread | bad_price)
    spread_syms = tuple(sorted(names[i] for i in np.unique(codes[spread])))
    rec, codes = rec[keep], codes[keep]
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
    table = pa.table(cols, schema=schema)
    return CanonicalPiece(
        table, int(spread.sum()), n_outside, int(unmapped.sum()), int(bad_price.sum()), spread_syms
    )


# ---- merging and writing -------------------------------------------------------------------------------


def merge_trades(tables: Sequence[pa.Table]) -> pa.Table:
    """Union of trade tables, sorted by ts_event (ties in arrival order), exact duplicates removed.

    Pieces that do not overlap in time (the usual case: a trade date spans two UTC-day files) are simply
    concatenated; overlapping ones (a re-delivery, a re-run after a crash) are de-duplicated on the record
    key keeping the first-seen copy, so every path gives the same rows in the same order.
    """
    nonempty = [t for t in tables if t.num_rows]
    if len(nonempty) <= 1:
        return nonempty[0] if nonempty else tables[0]
    tables = nonempty
    ranges = []
    for t in tables:
        ts = t.column("ts_event").cast(pa.int64()).to_numpy()
        ranges.append((int(ts[0]), int(ts[-1]), t))
    ranges.sort(key=lambda x: x[0])
    disjoint = all(ranges[i][0] > ranges[i - 1][1] for i in range(1, len(ranges)))
    merged = pa.concat_tables([r[2] for r in ranges], promote_options="default")
    if disjoint:
        return merged
    ts = merged.column("ts_event").cast(pa.int64()).to_numpy()
    keys = [merged.column(k).to_numpy() for k in TRADE_DEDUP_KEY if k != "ts_event"]
    idx = np.arange(len(ts))
    order = np.lexsort((idx, *keys, ts))  # identical records become neighbours, first-seen first
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
    return merged.take(pa.array(kept))


def partition_path(paths: ResolvedPaths, ds: DatasetRow, trade_date: dt.date) -> Path:
    return paths.canonical_dir / ds.canonical_table_name / f"trade_date={trade_date.isoformat()}" / PART_FILE


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
            f"{ds.dataset_id}: no files match {full} (DATASETS!D{ds.row} source_path_or_id, relative to DATA_ROOT); "
            "put the DBN files there or run `backtest demo-data`"
        )
    return files


def plan_ingest(ds: DatasetRow, files: Sequence[Path], reg: Registry) -> IngestPlan:
    """Decode and check every not-yet-ingested file (nothing is written here)."""
    known = {
        r["file_sha256"]
        for r in reg.query("SELECT file_sha256 FROM ingests WHERE dataset_id = ?", [ds.dataset_id])
    }
    prior_schema = reg.query("SELECT DISTINCT schema_name FROM ingests WHERE dataset_id = ?", [ds.dataset_id])
    plan = IngestPlan(ds)
    schemas = {r["schema_name"] for r in prior_schema}
    seen: set[str] = set()
    for f in files:
        blob = read_source(f)  # read once: the hash decides, the same bytes are decoded
        sha = hashlib.sha256(blob).hexdigest()
        if sha in known or sha in seen:
            plan.skipped.append(f)
            continue
        dec = decode_dbn(f, blob)
        schemas.add(dec.schema)
        if len(schemas) > 1:
            raise UserError(
                f"{f}: schema {dec.schema} differs from the dataset's other files ({', '.join(sorted(schemas))}); "
                "keep one schema per dataset (make another DATASETS row for the other schema)"
            )
        seen.add(sha)
        plan.files.append(dec)
        plan.pieces.append(to_canonical(dec, ds.rth_start or "08:30", ds.rth_end or "15:00"))
    return plan


def _version(previous: str | None, ingest_ids: Sequence[str]) -> str:
    h = hashlib.sha256((previous or "").encode())
    for i in sorted(ingest_ids):
        h.update(i.encode())
    return h.hexdigest()[:16]


def ingest_plan(
    plan: IngestPlan,
    paths: ResolvedPaths,
    reg: Registry,
    now: dt.datetime | None = None,
    config_hash: str = "",
) -> list[IngestResult]:
    """Write partitions, raw copies, then the registry rows (last)."""
    ds = plan.dataset
    now = now or dt.datetime.now(dt.UTC)
    results = [IngestResult(ds.dataset_id, None, str(p), "unchanged") for p in plan.skipped]
    if not plan.files:
        return results
    tdir = paths.canonical_dir / ds.canonical_table_name
    clean_stale_temp(tdir)
    ingest_ids = [f"{ds.dataset_id}-{now:%Y%m%dT%H%M%S%f}-{d.sha256[:8]}" for d in plan.files]
    by_date: dict[dt.date, list[tuple[int, pa.Table]]] = defaultdict(list)
    for k, piece in enumerate(plan.pieces):
        for day, tbl in _split_by_date(piece.table).items():
            by_date[day].append((k, tbl))
    prev = {
        r["part_date"]: r
        for r in reg.query(
            "SELECT part_date, version, ingest_ids FROM partitions WHERE dataset_id = ?", [ds.dataset_id]
        )
    }
    part_rows, cov_rows = [], []
    finished = utcnow()
    for day in sorted(by_date):
        pieces = [t for _, t in by_date[day]]
        target = partition_path(paths, ds, day)
        if target.exists():
            pieces.insert(0, pq.read_table(target))
        merged = merge_trades(pieces)
        atomic_write_parquet(merged, target, tmp_dir=paths.staging_dir)
        ids_here = sorted({ingest_ids[k] for k, _ in by_date[day]})
        old = prev.get(day)
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
    raw_paths = []
    for dec in plan.files:
        raw = paths.raw_dir / "by_hash" / dec.sha256[:2] / f"{dec.sha256}{''.join(dec.path.suffixes)}"
        if not raw.exists():
            atomic_copy(dec.path, raw, tmp_dir=paths.staging_dir)
        raw_paths.append(raw)
    roll_rows = _roll_rows(ds, reg, cov_rows, finished)
    with reg.transaction() as con:  # registry rows last
        con.execute(
            "DELETE FROM coverage WHERE dataset_id = ? AND date IN (SELECT unnest(?::DATE[]))",
            [ds.dataset_id, sorted(by_date)],
        )
        insert_rows(con, "coverage", cov_rows)
        upsert_rows(con, "partitions", ("dataset_id", "part_date"), part_rows)
        con.execute("DELETE FROM roll_schedule WHERE dataset_id = ?", [ds.dataset_id])
        insert_rows(con, "roll_schedule", roll_rows)
        record_dataset(con, ds, list(plan.pieces[0].table.schema.names), config_hash, finished)
        rows = []
        for dec, piece, iid, raw in zip(plan.files, plan.pieces, ingest_ids, raw_paths, strict=True):
            dates = piece.table.column("trade_date").to_numpy() if piece.table.num_rows else np.array([])
            rows.append(
                IngestRecord(
                    ingest_id=iid,
                    dataset_id=ds.dataset_id,
                    source_path=str(dec.path),
                    raw_path=str(raw),
                    file_sha256=dec.sha256,
                    source_kind="dbn",
                    schema_name=dec.schema,
                    dbn_version=dec.version,
                    rows=piece.table.num_rows,
                    first_date=pd.Timestamp(dates.min()).date() if len(dates) else None,
                    last_date=pd.Timestamp(dates.max()).date() if len(dates) else None,
                    columns=tuple(piece.table.schema.names),
                    n_excluded_spreads=piece.n_spreads,
                    n_outside_session=piece.n_outside_session,
                    details={
                        "unmapped": piece.n_unmapped,
                        "bad_price": piece.n_bad_price,
                        "spread_symbols": list(piece.spread_symbols),
                        "stype_in": dec.stype_in,
                    },
                    config_hash=config_hash,
                    started_at=now.replace(tzinfo=None),
                    finished_at=finished,
                )
            )
        record_ingests(con, rows)
    for dec, piece, iid, row in zip(plan.files, plan.pieces, ingest_ids, rows, strict=True):
        results.append(
            IngestResult(
                ds.dataset_id,
                iid,
                str(dec.path),
                "ingested",
                piece.table.num_rows,
                row.first_date,
                row.last_date,
                {
                    "spreads": piece.n_spreads,
                    "outside_session": piece.n_outside_session,
                    "schema": dec.schema,
                    "dbn_version": dec.version,
                },
            )
        )
    return results


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
    plan = plan_ingest(ds, source_files(ds, paths, files), reg)
    return ingest_plan(plan, paths, reg, config_hash=config_hash)


def describe(results: Sequence[IngestResult]) -> str:
    done = [r for r in results if r.status == "ingested"]
    same = [r for r in results if r.status == "unchanged"]
    if not results:
        return "nothing to ingest"
    ds = results[0].dataset_id
    if not done:
        return f"{ds}: unchanged ({len(same)} files already ingested)"
    rows = sum(r.rows for r in done)
    spreads = sum(r.details.get("spreads", 0) for r in done)
    outside = sum(r.details.get("outside_session", 0) for r in done)
    first = min(r.first_date for r in done if r.first_date)
    last = max(r.last_date for r in done if r.last_date)
    text = (
        f"{ds}: ingested {len(done)} files ({len(same)} unchanged), {rows:,} trades, trade dates "
        f"{first}..{last}; excluded {spreads:,} calendar-spread records"
    )
    if outside:
        text += f"; {outside:,} trades outside the CME session windows (kept, flagged in the registry)"
    return text
