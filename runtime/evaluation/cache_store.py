"""The feature cache on disk: one parquet file per cached node under FEATURE_CACHE_DIR, one registry row each.

Why this shape (design/DECISIONS.md "Feature cache store"):
- A file is named `<key digest>-<token>.parquet` and is written atomically (temp, fsync, rename); its
  registry row (`feature_cache`, with the file's byte size and sha256) is written LAST. A process killed at
  any moment leaves either no row (the file is an orphan that `load` never reads and `clear` removes) or a
  row naming a complete file. Replacing an entry (a longer range) writes a NEW file, switches the row in
  one transaction, then deletes the old file, so the row never names a half-replaced file.
- Keys are content addresses (node hash + versions of the data read + as_of + bound params + grid), so
  the row for a key can never become stale, only missing. That is why the store reads the whole index
  once (one short read-only connection) instead of once per node: opening the DuckDB file costs ~0.1 s
  on a loaded machine. A key saved by another process after that read is a miss (recomputed, never
  wrong); a row whose file has gone meanwhile is re-read from the registry before anything is reported.
- `load` checks size, sha256, schema, row count, first/last index and order before returning values;
  anything wrong drops the entry (row, then file), records one plain-words line in `problems` and returns
  None. It never returns a broken value.
- In a file, `index` is date32 (daily) or timestamp[ns, UTC] (1m) and `value` float64 with missing as
  null; in memory missing is NaN (compiler.contracts.LAYOUT).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from compiler.contracts import CacheKey, StoredValues, ValueStore
from dsl.hashing import canonical_value
from runtime.contracts import ResolvedPaths
from runtime.storage.atomic import atomic_write_bytes
from runtime.storage.registry import Registry, upsert_rows, utcnow

TABLE = "feature_cache"
SUFFIX = ".parquet"
_DAILY = np.dtype("datetime64[D]")
_MINUTE = np.dtype("datetime64[ns]")
_INDEX_TYPE = {"daily": pa.date32(), "1m": pa.timestamp("ns", tz="UTC")}
_COLUMNS = (
    "cache_key, node_hash, feature_id, label, grid, frequency, path, rows, bytes, sha256, "
    "first_ts, last_ts, created_at"
)


@dataclass(frozen=True)
class _Entry:
    """What `load` needs from a registry row to find and check one file."""

    key: str
    path: str  # relative to FEATURE_CACHE_DIR (posix), so a DATA_ROOT can move
    rows: int
    bytes: int
    sha256: str
    frequency: str
    first: dt.datetime | None
    last: dt.datetime | None
    feature_id: str | None
    label: str | None

    @property
    def what(self) -> str:
        if self.feature_id:
            return f"feature {self.feature_id}"
        return f"node {self.label}" if self.label else f"cache entry {self.key[:12]}"

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> _Entry:
        return cls(
            key=str(r["cache_key"]),
            path=str(r["path"] or ""),
            rows=int(r["rows"] if r["rows"] is not None else -1),
            bytes=int(r["bytes"] if r["bytes"] is not None else -1),
            sha256=str(r["sha256"] or ""),
            frequency=str(r["frequency"] or ""),
            first=r["first_ts"],
            last=r["last_ts"],
            feature_id=r["feature_id"],
            label=r["label"],
        )


class _Broken(Exception):
    """Why a cached file cannot be served (the words go into `problems`)."""


def _frequency_of(index: np.ndarray) -> str:
    if index.dtype == _DAILY:
        return "daily"
    if index.dtype == _MINUTE:
        return "1m"
    raise ValueError(
        f"cache index must be datetime64[D] (daily) or datetime64[ns] (1m, UTC), got {index.dtype}"
    )


def _stamp(v: np.datetime64) -> dt.datetime:
    """A naive UTC datetime for the registry's TIMESTAMP columns (a daily date becomes its midnight)."""
    return v.astype("datetime64[us]").item()


def _short_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encode_values(values: StoredValues) -> tuple[bytes, str, int]:
    """The parquet bytes of one entry, its frequency and row count (ValueError on a layout violation)."""
    index = np.asarray(values.index)
    vals = np.asarray(values.values, dtype=np.float64)
    if index.ndim != 1 or vals.ndim != 1 or len(index) != len(vals):
        raise ValueError(
            f"cache values must be 1-D index and values of one length, got {index.shape} and {vals.shape}"
        )
    freq = _frequency_of(index)
    if len(index) > 1 and not bool(np.all(index[1:] > index[:-1])):
        raise ValueError("cache index must be strictly ascending")
    if bool(np.isinf(vals).any()):
        raise ValueError("cache values must be finite or NaN (missing), never +-inf (compiler LAYOUT)")
    if freq == "daily":
        idx = pa.array(index.astype("datetime64[D]").astype(np.int32), type=pa.date32())
    else:
        idx = pa.array(index.astype(np.int64), type=pa.int64()).cast(_INDEX_TYPE["1m"])
    val = pa.array(vals, type=pa.float64(), mask=np.isnan(vals))  # missing = null in the file
    buf = io.BytesIO()
    pq.write_table(pa.table({"index": idx, "value": val}), buf, compression="zstd")
    return buf.getvalue(), freq, len(index)


def decode_values(data: bytes, frequency: str) -> StoredValues:
    """Parse one entry's bytes (raises _Broken with the reason when it is not what the store writes)."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # any parse failure of a file behind a row is corruption, never a crash
        raise _Broken(f"is not readable parquet ({type(exc).__name__}: {str(exc)[:120]})") from None
    want = pa.schema([("index", _INDEX_TYPE.get(frequency, pa.null())), ("value", pa.float64())])
    if not table.schema.remove_metadata().equals(want):
        raise _Broken(f"has columns {table.schema.names} of types {table.schema.types}, not {want}")
    idx_col = table.column("index")
    if idx_col.null_count:
        raise _Broken("has missing index values")
    if frequency == "daily":
        index = idx_col.cast(pa.int32()).to_numpy().astype("datetime64[D]")
    else:
        index = idx_col.cast(pa.int64()).to_numpy().astype("datetime64[ns]")
    values = pc.fill_null(table.column("value"), float("nan")).to_numpy().astype(np.float64, copy=False)
    return StoredValues(index=index, values=values)


class ParquetValueStore(ValueStore):
    """compiler.contracts.ValueStore over FEATURE_CACHE_DIR + the registry's `feature_cache` table.

    `batch=False` (default) writes each entry's registry row in its own short transaction as `save`
    returns. `batch=True` keeps the rows in memory until `flush()` (or the end of a `with` block) writes
    them all in one transaction: one registry lock instead of one per node (a DuckDB open costs ~0.1 s).
    Rows not flushed when a process dies leave orphan files only (never a visible entry); `clear` removes
    them. Served and saved entries are visible to this store's `load` at once in both modes.
    """

    def __init__(self, paths: ResolvedPaths, registry: Registry, *, batch: bool = False) -> None:
        self.root = Path(paths.feature_cache_dir)
        self.registry = registry
        self.batch = batch
        self.problems: list[str] = []
        self._index: dict[str, _Entry] | None = None  # the registry's rows, read once (see module doc)
        self._pending: dict[str, dict[str, Any]] = {}  # key -> row not yet in the registry (batch mode)
        self._local: dict[str, _Entry] = {}  # entries this store saved (served without a registry read)

    # -- reading ---------------------------------------------------------------------------------------

    def _read_entries(self, key: str | None = None) -> dict[str, _Entry]:
        sql = f"SELECT {_COLUMNS} FROM {TABLE}" + (" WHERE cache_key = ?" if key else "")
        if not self.registry.path.exists():
            return {}
        rows = self.registry.query(sql, [key] if key else [])
        return {str(r["cache_key"]): _Entry.from_row(r) for r in rows}

    def _entries(self) -> dict[str, _Entry]:
        if self._index is None:
            self._index = self._read_entries()
        return self._index

    def refresh(self) -> None:
        """Forget the index read so far (the next `load` reads the registry again)."""
        self._index = None

    def load(self, key: CacheKey) -> StoredValues | None:
        """The stored values of `key`, or None on a miss or a missing/corrupt file (reported, dropped)."""
        digest = key.digest
        entry = self._local.get(digest) or self._entries().get(digest)
        if entry is None:
            return None
        try:
            return self._verified(entry)
        except FileNotFoundError:
            missing = f"cache file {self.root / entry.path} is missing"
            pending = self._pending.get(digest)
            if pending is not None and pending["path"] == entry.path:  # our unflushed entry lost its file
                self._drop(entry, missing)
                return None
            fresh = self._read_entries(digest).get(digest)
            if fresh is not None and fresh.path == entry.path:  # the registry still names it: lost
                self._drop(entry, missing)
                return None
            # replaced (a longer range) or cleared by another process since the index was read: no problem
            self._local.pop(digest, None)
            if self._index is not None:
                self._index.pop(digest, None)
                if fresh is not None:
                    self._index[digest] = fresh
            return self.load(key) if fresh is not None else None
        except _Broken as exc:
            self._drop(entry, f"cache file {self.root / entry.path} {exc}")
        return None

    def _verified(self, e: _Entry) -> StoredValues:
        path = self.root / e.path
        if not e.path or not e.sha256 or e.rows < 0:
            raise _Broken("has an incomplete registry row")
        data = path.read_bytes()  # FileNotFoundError -> missing
        if len(data) != e.bytes:
            raise _Broken(f"is corrupt ({len(data)} bytes, the registry says {e.bytes})")
        if hashlib.sha256(data).hexdigest() != e.sha256:
            raise _Broken("is corrupt (its sha256 differs from the registry's)")
        sv = decode_values(data, e.frequency)
        n = len(sv.index)
        if n != e.rows:
            raise _Broken(f"is corrupt ({n} rows, the registry says {e.rows})")
        if n > 1 and not bool(np.all(sv.index[1:] > sv.index[:-1])):
            raise _Broken("is corrupt (its index is not strictly ascending)")
        if n and (_stamp(sv.index[0]) != e.first or _stamp(sv.index[-1]) != e.last):
            raise _Broken(f"is corrupt (its range differs from the registry's {e.first} .. {e.last})")
        return sv

    def _drop(self, e: _Entry, why: str) -> None:
        """Remove a broken entry: the row (only if it still names this file), then the file; report it."""
        self.problems.append(f"{e.what}: {why}; entry dropped, the value is recomputed")
        self._local.pop(e.key, None)
        if self._index is not None:
            self._index.pop(e.key, None)
        self._pending.pop(e.key, None)
        if self.registry.path.exists():
            with self.registry.transaction() as con:
                con.execute(f"DELETE FROM {TABLE} WHERE cache_key = ? AND path = ?", [e.key, e.path])
        with contextlib.suppress(OSError):
            (self.root / e.path).unlink()

    # -- writing ---------------------------------------------------------------------------------------

    def save(self, key: CacheKey, values: StoredValues, *, label: str, feature_id: str | None) -> None:
        """Write `values` for `key` atomically, replacing an existing entry of the same key."""
        data, freq, n = encode_values(values)
        digest = key.digest
        name = f"{digest}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        atomic_write_bytes(self.root / name, data)  # temp, fsync, rename: complete or absent
        index = np.asarray(values.index)
        data_versions = [list(x) for x in key.data_versions]
        params = [[k, canonical_value(v)] for k, v in key.params]
        row = {
            "cache_key": digest,
            "node_hash": key.node_hash,
            "data_version": _short_hash(data_versions),
            "as_of_date": key.as_of,
            "params_hash": _short_hash(params),
            "path": name,
            "rows": n,
            "first_ts": _stamp(index[0]) if n else None,
            "last_ts": _stamp(index[-1]) if n else None,
            "created_at": utcnow(),
            "feature_id": feature_id,
            "label": label,
            "grid": key.grid,
            "frequency": freq,
            "data_versions": json.dumps(data_versions),
            "params": json.dumps(params, default=str),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        before = self._pending.get(digest)
        if before is not None:  # saved twice before a flush: the first file was never visible
            with contextlib.suppress(OSError):
                (self.root / before["path"]).unlink()
        self._pending[digest] = row
        self._local[digest] = _Entry.from_row(row)
        if not self.batch:
            self.flush()

    def flush(self) -> int:
        """Write every pending registry row in one transaction; returns how many were written.

        Files replaced by these rows are deleted after the commit (a failure to delete leaves an orphan
        that `clear` removes). On a registry error the new files are removed and the error propagates.
        """
        if not self._pending:
            return 0
        rows = list(self._pending.values())
        try:
            with self.registry.transaction() as con:
                keys = [r["cache_key"] for r in rows]
                old = con.execute(
                    f"SELECT path FROM {TABLE} WHERE list_contains(?, cache_key)", [keys]
                ).fetchall()
                upsert_rows(con, TABLE, ("cache_key",), rows)
        except BaseException:
            for r in rows:
                self._local.pop(r["cache_key"], None)
                with contextlib.suppress(OSError):
                    (self.root / r["path"]).unlink()
            self._pending.clear()
            raise
        self._pending.clear()
        new = {r["path"] for r in rows}
        for (p,) in old:
            if p and p not in new:
                with contextlib.suppress(OSError):
                    (self.root / p).unlink()
        return len(rows)

    def __enter__(self) -> ParquetValueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()
        else:  # an error mid-build: keep what was computed (each row names a complete file)
            with contextlib.suppress(Exception):
                self.flush()


# ----------------------------------------------------------------------------------------------------------
# Listing and clearing (pure-ish: paths + registry in, plain values out; the CLI renders them)
# ----------------------------------------------------------------------------------------------------------


def ls(registry: Registry) -> list[dict[str, Any]]:
    """Every cache entry, newest first: key, feature_id, label, grid, frequency, first, last, rows, bytes,
    created, as_of, data_versions ({dataset: version}), params ({name: value}), path, node_hash."""
    if not registry.path.exists():
        return []
    rows = registry.query(
        f"SELECT {_COLUMNS}, as_of_date, data_versions, params FROM {TABLE} "
        "ORDER BY created_at DESC, cache_key"
    )
    out = []
    for r in rows:
        daily = r["frequency"] == "daily"
        first, last = r["first_ts"], r["last_ts"]
        out.append(
            {
                "key": r["cache_key"],
                "feature_id": r["feature_id"],
                "label": r["label"],
                "grid": r["grid"],
                "frequency": r["frequency"],
                "first": first.date() if daily and first is not None else first,
                "last": last.date() if daily and last is not None else last,
                "rows": int(r["rows"] or 0),
                "bytes": int(r["bytes"] or 0),
                "created": r["created_at"],
                "as_of": r["as_of_date"],
                "data_versions": dict(json.loads(r["data_versions"] or "[]")),
                "params": dict(json.loads(r["params"] or "[]")),
                "path": r["path"],
                "node_hash": r["node_hash"],
            }
        )
    return out


def clear(paths: ResolvedPaths, registry: Registry, older_than_days: float | None = None) -> tuple[int, int]:
    """Remove cache entries (all, or those created more than `older_than_days` days ago) and orphan files.

    Returns (entries removed, bytes of files removed). Rows go first (one transaction), files after, so a
    kill in between leaves orphans only. Orphans are files under FEATURE_CACHE_DIR that no row names
    (a process killed between rename and row, unflushed batch rows, temp files of killed writers); with
    `older_than_days` only orphans last modified before the cut-off are removed, so a build that is
    writing right now keeps its fresh files. Clearing everything while a build runs makes that build's
    newest entries misses (reported as missing files on the next load, then recomputed).
    """
    if older_than_days is not None and not older_than_days >= 0:
        raise ValueError("older_than_days must be >= 0")
    root = Path(paths.feature_cache_dir)
    now = utcnow()
    cut = now - dt.timedelta(days=older_than_days) if older_than_days is not None else None
    removed: list[str] = []
    kept: set[str] = set()
    if registry.path.exists():
        with registry.transaction() as con:
            where = "" if cut is None else " WHERE created_at < ?"
            args = [] if cut is None else [cut]
            removed = [p for (p,) in con.execute(f"SELECT path FROM {TABLE}{where}", args).fetchall()]
            con.execute(f"DELETE FROM {TABLE}{where}", args)
            kept = {p for (p,) in con.execute(f"SELECT path FROM {TABLE}").fetchall() if p}
    freed = 0
    for p in removed:
        if p and p not in kept:
            freed += _unlink(root / p)
    if root.is_dir():
        cut_epoch = None if cut is None else cut.replace(tzinfo=dt.UTC).timestamp()
        for f in root.iterdir():
            if not f.is_file() or f.name in kept:
                continue
            if not (f.name.endswith(SUFFIX) or f.name.startswith(".tmp-")):
                continue  # never touch what the store did not write
            with contextlib.suppress(OSError):
                if cut_epoch is None or f.stat().st_mtime < cut_epoch:
                    freed += _unlink(f)
    return len(removed), freed


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        os.unlink(path)
        return size
    except OSError:  # already gone, or held open (Windows): an orphan for the next clear
        return 0
