"""The DuckDB registry (DATA_ROOT/duckdb/research.duckdb): what was built from what.

DuckDB allows one writing process per file, and even readers take the file lock. So every access opens a
connection, does one short transaction and closes it; a process that finds the file locked retries with
backoff for `lock_timeout` seconds, then fails with a message that says who holds it and what to do.
Heavy data never lives here (parquet does); parallel workers never need this lock to compute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from runtime.contracts import IngestRecord, UserError

# Each migration is (version, description, statements). Append only: never edit a shipped migration.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "initial registry: datasets, ingests, coverage, revisions, rolls, derived, cache, runs, studies",
        (
            """CREATE TABLE datasets (
                dataset_id VARCHAR PRIMARY KEY, dataset_type VARCHAR, source_type VARCHAR,
                canonical_table VARCHAR, columns VARCHAR, config_hash VARCHAR, updated_at TIMESTAMP)""",
            """CREATE TABLE ingests (
                ingest_id VARCHAR PRIMARY KEY, dataset_id VARCHAR NOT NULL, source_path VARCHAR,
                raw_path VARCHAR, file_sha256 VARCHAR NOT NULL, source_kind VARCHAR, schema_name VARCHAR,
                dbn_version INTEGER, rows BIGINT, first_date DATE, last_date DATE, columns VARCHAR,
                n_new_dates INTEGER, n_revisions INTEGER, n_excluded_spreads BIGINT,
                n_outside_session BIGINT, details VARCHAR, config_hash VARCHAR,
                started_at TIMESTAMP, finished_at TIMESTAMP)""",
            "CREATE UNIQUE INDEX ingests_dataset_file ON ingests(dataset_id, file_sha256)",
            """CREATE TABLE partitions (
                dataset_id VARCHAR, part_date DATE, version VARCHAR, rows BIGINT, ingest_ids VARCHAR,
                updated_at TIMESTAMP, PRIMARY KEY (dataset_id, part_date))""",
            """CREATE TABLE coverage (
                dataset_id VARCHAR, date DATE, symbol VARCHAR, rows BIGINT, volume DOUBLE,
                updated_at TIMESTAMP, PRIMARY KEY (dataset_id, date, symbol))""",
            """CREATE TABLE revisions (
                dataset_id VARCHAR, date DATE, column_name VARCHAR, old_value DOUBLE, new_value DOUBLE,
                old_ingest_id VARCHAR, new_ingest_id VARCHAR, recorded_at TIMESTAMP)""",
            """CREATE TABLE roll_schedule (
                dataset_id VARCHAR, trade_date DATE, symbol VARCHAR, rule VARCHAR, basis VARCHAR,
                computed_at TIMESTAMP, PRIMARY KEY (dataset_id, trade_date))""",
            """CREATE TABLE derived_manifests (
                build_id VARCHAR, dataset_id VARCHAR, table_name VARCHAR, session VARCHAR, series VARCHAR,
                trade_date DATE, source_version VARCHAR, source_ingest_ids VARCHAR, params_hash VARCHAR,
                rows BIGINT, path VARCHAR, built_at TIMESTAMP, seconds DOUBLE,
                PRIMARY KEY (dataset_id, table_name, session, series, trade_date))""",
            """CREATE TABLE feature_cache (
                cache_key VARCHAR PRIMARY KEY, node_hash VARCHAR, data_version VARCHAR, as_of_date DATE,
                params_hash VARCHAR, path VARCHAR, rows BIGINT, first_ts TIMESTAMP, last_ts TIMESTAMP,
                created_at TIMESTAMP)""",
            """CREATE TABLE runs (
                run_id VARCHAR PRIMARY KEY, kind VARCHAR, target_id VARCHAR, config_hash VARCHAR,
                data_version VARCHAR, status VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP,
                path VARCHAR, details VARCHAR)""",
            """CREATE TABLE metrics (
                run_id VARCHAR, metric_id VARCHAR, scope VARCHAR, value DOUBLE,
                PRIMARY KEY (run_id, metric_id, scope))""",
            """CREATE TABLE optimization_trials (
                study_id VARCHAR, trial_number INTEGER, run_id VARCHAR, params VARCHAR, objective DOUBLE,
                secondary DOUBLE, feasible BOOLEAN, state VARCHAR, created_at TIMESTAMP,
                PRIMARY KEY (study_id, trial_number))""",
            """CREATE TABLE robustness_results (
                run_id VARCHAR, robustness_profile_id VARCHAR, test_id VARCHAR, summary VARCHAR,
                passed BOOLEAN, created_at TIMESTAMP)""",
        ),
    ),
    (
        2,
        "ingests.parse_key: the same file parsed with other settings is a new ingest (not 'unchanged')",
        (
            "DROP INDEX ingests_dataset_file",
            "ALTER TABLE ingests ADD COLUMN parse_key VARCHAR DEFAULT ''",
            "CREATE INDEX ingests_dataset_file ON ingests(dataset_id, file_sha256)",
        ),
    ),
    (
        3,
        "feature_cache: feature id, label, grid, frequency, data versions + params (JSON), bytes, sha256",
        (
            "ALTER TABLE feature_cache ADD COLUMN feature_id VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN label VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN grid VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN frequency VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN data_versions VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN params VARCHAR",
            "ALTER TABLE feature_cache ADD COLUMN bytes BIGINT",
            "ALTER TABLE feature_cache ADD COLUMN sha256 VARCHAR",
        ),
    ),
    (
        4,
        "optimization_trials keyed by study run (a study run again on new data is a new run): "
        "study_run_id, IS metrics and constraint values (JSON)",
        (
            """CREATE TABLE optimization_trials_v4 (
                study_id VARCHAR, study_run_id VARCHAR, trial_number INTEGER, run_id VARCHAR,
                params VARCHAR, objective DOUBLE, secondary DOUBLE, feasible BOOLEAN, state VARCHAR,
                is_metrics VARCHAR, constraint_values VARCHAR, created_at TIMESTAMP,
                PRIMARY KEY (study_run_id, trial_number))""",
            """INSERT INTO optimization_trials_v4 (study_id, study_run_id, trial_number, run_id, params,
                objective, secondary, feasible, state, created_at)
                SELECT study_id, study_id, trial_number, run_id, params, objective, secondary, feasible,
                state, created_at FROM optimization_trials""",
            "DROP TABLE optimization_trials",
            "ALTER TABLE optimization_trials_v4 RENAME TO optimization_trials",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]
TABLES = (
    "datasets",
    "ingests",
    "partitions",
    "coverage",
    "revisions",
    "roll_schedule",
    "derived_manifests",
    "feature_cache",
    "runs",
    "metrics",
    "optimization_trials",
    "robustness_results",
)


class RegistryLockedError(UserError):
    """Another process holds the registry file."""


_PID = re.compile(r"\(PID (\d+)\)")


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


class Registry:
    """Short-lived connections to the registry file, with lock retry and schema migrations."""

    def __init__(self, path: Path, lock_timeout: float = 15.0):
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    # -- connections ---------------------------------------------------------------------------

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:  # lock held by another process
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    m = _PID.search(str(exc))
                    who = f"process {m.group(1)}" if m else "another process"
                    raise RegistryLockedError(
                        f"registry {self.path} is locked by {who} (waited {self.lock_timeout:.0f} s); "
                        "wait for that backtest command to finish, or close the notebook/DuckDB session "
                        "that holds the file, then run the command again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise UserError(
                f"registry {self.path} does not exist yet; run `backtest status` or an ingest first"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short write transaction: committed on success, rolled back on any error."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version found before migrating."""
        with self.transaction() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER NOT NULL, description VARCHAR, applied_at TIMESTAMP NOT NULL)"
            )
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            if current > SCHEMA_VERSION:
                raise UserError(
                    f"registry {self.path} has schema version {current}, newer than this code "
                    f"({SCHEMA_VERSION}); update the code (git pull) before using this DATA_ROOT"
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for stmt in statements:
                    con.execute(stmt)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, description, _now()])
        return current

    def schema_version(self) -> int:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # -- small helpers ---------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.connect(read_only=True) as con:
            cur = con.execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _arrow_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], Any]:
    import pyarrow as pa

    cols = list(rows[0].keys())
    return cols, pa.table({c: [_encode(r[c]) for r in rows] for c in cols})


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk insert dict rows through Arrow (executemany is ~1000x slower in DuckDB).

    dict/list values are JSON-encoded; table and column names come from code, never from users.
    """
    if not rows:
        return
    cols, tbl = _arrow_rows(rows)
    con.register("_rows", tbl)
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _rows")
    finally:
        con.unregister("_rows")


def upsert_rows(
    con: duckdb.DuckDBPyConnection, table: str, key: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Replace rows by key (bulk delete + insert inside the caller's transaction)."""
    if not rows:
        return
    _, tbl = _arrow_rows(rows)
    con.register("_keys", tbl.select(list(key)))
    try:
        cond = " AND ".join(f"{table}.{k} = _keys.{k}" for k in key)
        con.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM _keys WHERE {cond})")
    finally:
        con.unregister("_keys")
    insert_rows(con, table, rows)


def record_dataset(
    con: duckdb.DuckDBPyConnection, ds: Any, columns: Sequence[str], config_hash: str, when: dt.datetime
) -> None:
    """The registry's row for a dataset (what it is, its columns, the snapshot that last wrote it)."""
    upsert_rows(
        con,
        "datasets",
        ("dataset_id",),
        [
            {
                "dataset_id": ds.dataset_id,
                "dataset_type": ds.dataset_type,
                "source_type": ds.source_type,
                "canonical_table": ds.canonical_table_name,
                "columns": list(columns),
                "config_hash": config_hash,
                "updated_at": when,
            }
        ],
    )


def record_ingests(con: duckdb.DuckDBPyConnection, records: Sequence[IngestRecord]) -> None:
    """Insert `ingests` rows, the commit point of an ingest (call last, in the caller's transaction)."""
    insert_rows(
        con,
        "ingests",
        [{f.name: _plain(getattr(r, f.name)) for f in dataclasses.fields(IngestRecord)} for r in records],
    )


def latest_ingest(reg: Registry, dataset_id: str) -> IngestRecord | None:
    """The newest registered ingest of a dataset (what its canonical data says now), or None."""
    rows = reg.query(
        "SELECT * FROM ingests WHERE dataset_id = ? ORDER BY finished_at DESC, ingest_id DESC LIMIT 1",
        [dataset_id],
    )
    return _record(rows[0]) if rows else None


def _record(row: Mapping[str, Any]) -> IngestRecord:
    names = {f.name for f in dataclasses.fields(IngestRecord)}
    kw = {k: v for k, v in row.items() if k in names}
    kw["columns"] = tuple(json.loads(kw["columns"]) if kw.get("columns") else ())
    kw["details"] = json.loads(kw["details"]) if kw.get("details") else {}
    kw["parse_key"] = kw.get("parse_key") or ""
    for k in ("n_revisions", "n_excluded_spreads", "n_outside_session"):
        kw[k] = int(kw.get(k) or 0)
    return IngestRecord(**kw)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _encode(v: Any) -> Any:
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def utcnow() -> dt.datetime:
    """Naive UTC timestamp, as stored in registry TIMESTAMP columns."""
    return _now()
