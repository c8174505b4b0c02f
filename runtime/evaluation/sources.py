"""WorkspaceSources: dataset columns of a real DATA_ROOT placed on a grid, as known on `as_of`.

Daily datasets are read through the ingest's vintage reader (runtime/ingest/daily.py `read_daily`), so
an `as_of` date sees the values as they were known by the end of that UTC day, and placed with
compiler.placement.place_daily (the rule the in-memory FrameSources uses too). Intraday datasets are
the derived bars_1m / cvd_1m tables of the front series and the grid's session, read with DuckDB and
placed on the dense minute grid with place_minute: a minute without a row has missing prices and vwap,
zero volume / buy / sell volume / trade count / delta, and the session's running cvd (0 before its first
trade). Intraday data has no vintages (trades are not revised), so `as_of` does not change it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from compiler.contracts import Grid, Sources
from compiler.placement import MinuteFill, minute_fill, place_daily, place_minute
from dsl import Frequency
from runtime.config.columns import dataset_cell
from runtime.contracts import ConfigSnapshot, DatasetRow, ResolvedPaths, UserError
from runtime.derive.layout import FRONT, SESSIONS, partition_file
from runtime.ingest.daily import read_daily
from runtime.storage.registry import Registry

_BAR_COLUMNS = ("open", "high", "low", "close", "vwap", "volume", "buy_volume", "sell_volume", "n_trades")
#: intraday columns an expression may read: (derived table, fill for a minute without a row)
MINUTE_COLUMNS: Mapping[str, tuple[str, MinuteFill]] = {
    **{c: ("bars_1m", minute_fill(c)) for c in _BAR_COLUMNS},
    **{c: ("cvd_1m", minute_fill(c)) for c in ("delta", "cvd")},
}
#: derived tables whose manifests make up an intraday dataset's version
VERSION_TABLES = ("bars_1m", "cvd_1m", "session_stats")


def _digest(items: list[str]) -> str:
    return f"{len(items)}:{hashlib.sha256(chr(10).join(items).encode()).hexdigest()[:16]}"


def _cutoff(as_of: dt.date | None) -> dt.datetime | None:
    """End of the `as_of` UTC day, naive (as the registry stores timestamps), or None for the latest."""
    if as_of is None:
        return None
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()) - dt.timedelta(microseconds=1)


def _session_of(grid: Grid) -> tuple[str, str]:
    """(dataset_id, session) of a 1m grid: MinuteGrid attributes, else its name "1m:<dataset>:<session>"."""
    ds, sess = getattr(grid, "dataset_id", ""), getattr(grid, "session", "")
    if ds and sess:
        return ds, sess
    parts = grid.name.split(":")
    if len(parts) == 3 and parts[0] == "1m" and parts[2] in SESSIONS:
        return parts[1].split("@")[0], parts[2]
    raise ValueError(f"1m grid {grid.name!r} names no dataset and session (expected '1m:<dataset>:RTH|FULL')")


class WorkspaceSources(Sources):
    """Sources over DATA_ROOT: daily vintages as of `as_of`, derived 1m tables; reads are cached per object."""

    def __init__(
        self,
        snapshot: ConfigSnapshot,
        paths: ResolvedPaths,
        reg: Registry,
        as_of: dt.date | None = None,
        *,
        series: str = FRONT,
    ) -> None:
        self.snapshot = snapshot
        self.paths = paths
        self.reg = reg
        self.as_of = as_of
        self.series = series
        self.notes: list[str] = []  # what a careful user wants to hear (bars off the grid, ...)
        self._daily: dict[str, pd.DataFrame] = {}
        self._minute: dict[tuple[str, str, int], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._versions: dict[str, str] = {}

    # -- datasets and columns ------------------------------------------------------------------------

    def dataset(self, dataset_id: str) -> DatasetRow:
        for d in self.snapshot.datasets:
            if d.dataset_id == dataset_id:
                if d.dataset_type not in ("daily_series", "intraday_trades"):
                    raise UserError(
                        f"{dataset_cell(d, 'dataset_type')}: dataset '{dataset_id}' is {d.dataset_type}; "
                        "expressions read daily_series and intraday_trades datasets"
                    )
                return d
        known = ", ".join(d.dataset_id for d in self.snapshot.datasets)
        raise UserError(f"unknown dataset '{dataset_id}'; DATASETS has: {known}")

    def columns(self, dataset_id: str) -> tuple[str, ...]:
        """The columns `read` serves for a dataset (daily: those ingested as of `as_of`)."""
        ds = self.dataset(dataset_id)
        if ds.dataset_type == "intraday_trades":
            return tuple(MINUTE_COLUMNS)
        return tuple(self._daily_frame(ds).columns)

    def _check_column(self, ds: DatasetRow, column: str) -> None:
        have = self.columns(ds.dataset_id)
        if column not in have:
            raise UserError(
                f"dataset '{ds.dataset_id}' has no column '{column}'; its columns: {', '.join(have)} "
                f"(DATASETS row of {ds.dataset_id}); fix: use one of them, or add the column to the source "
                "and ingest again"
            )

    # -- reading -------------------------------------------------------------------------------------

    def read(self, dataset_id: str, column: str, grid: Grid) -> np.ndarray:
        """float64 per grid row, NaN = missing, never ±inf."""
        ds = self.dataset(dataset_id)
        self._check_column(ds, column)
        if ds.dataset_type == "daily_series":
            if grid.frequency is not Frequency.DAILY:
                raise UserError(
                    f"{dataset_id}.{column} is a daily column and {grid.name} is a 1m grid; fix: write "
                    f"asof({dataset_id}.{column}) to use it on 1m bars"
                )
            frame = self._daily_frame(ds)
            stamps = frame.index.to_numpy().astype("datetime64[D]")
            values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
            return place_daily(stamps, values, grid.index, lower=getattr(grid, "previous", None))
        if grid.frequency is not Frequency.MINUTE:
            raise UserError(
                f"{dataset_id}.{column} is a 1m column and {grid.name} is a daily grid; fix: write "
                f'to_daily({dataset_id}.{column}, how="last") to use it on daily rows'
            )
        grid_ds, session = _session_of(grid)
        if grid_ds != dataset_id:
            raise UserError(
                f"{dataset_id}.{column} cannot be read on the 1m grid of {grid_ds} ({grid.name}): one intraday "
                f"dataset per 1m grid; fix: evaluate on the grid of {dataset_id}"
            )
        return self._minute_columns(ds, session, grid)[column]

    def _daily_frame(self, ds: DatasetRow) -> pd.DataFrame:
        if ds.dataset_id not in self._daily:
            frame = read_daily(self.paths, ds, self.reg, self.as_of)
            if frame.empty:
                when = f" as of {self.as_of}" if self.as_of else ""
                raise UserError(
                    f"dataset '{ds.dataset_id}' has no ingested data{when}; fix: run "
                    f"`backtest ingest daily --dataset {ds.dataset_id}`"
                    + (" or use a later --as-of" if self.as_of else "")
                )
            frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index))
            self._daily[ds.dataset_id] = frame
        return self._daily[ds.dataset_id]

    def _minute_columns(self, ds: DatasetRow, session: str, grid: Grid) -> dict[str, np.ndarray]:
        key = (ds.dataset_id, session, id(grid))
        cached = self._minute.get(key)
        if cached is not None and cached[0] is grid.index:  # the same grid object, still alive
            return cached[1]
        days = np.unique(np.asarray(grid.trade_date))
        grid_ts = grid.index
        out: dict[str, np.ndarray] = {}
        for table in ("bars_1m", "cvd_1m"):
            cols = [c for c, (t, _) in MINUTE_COLUMNS.items() if t == table]
            data = self._read_table(ds, table, session, days, cols)
            ts = data["ts"]
            on_grid = np.isin(ts, grid_ts.view(np.int64))
            off = int((~on_grid).sum())
            if off:
                self.notes.append(
                    f"{ds.dataset_id} {table} {session}: {off} bar(s) outside the session windows (e.g. a "
                    "print during a halt) are not grid rows and were not read"
                )
            for c in cols:
                fill = MINUTE_COLUMNS[c][1]
                out[c] = place_minute(ts, data[c], grid_ts, fill, session=np.asarray(grid.trade_date))
        self._minute[key] = (grid.index, out)
        return out

    def _read_table(
        self, ds: DatasetRow, table: str, session: str, days: np.ndarray, cols: list[str]
    ) -> dict[str, np.ndarray]:
        files = [
            partition_file(
                self.paths.derived_dir, ds.dataset_id, self.series, table, session, d.astype(dt.date)
            )
            for d in days
        ]
        missing = [d for d, f in zip(days, files, strict=True) if not Path(f).is_file()]
        if missing:
            shown = ", ".join(str(d) for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UserError(
                f"{ds.dataset_id}: derived {table} {session} is missing for trade date(s) {shown}; fix: run "
                f"`backtest derive --dataset {ds.dataset_id} --session {session} --start {missing[0]} "
                f"--end {missing[-1]}`"
            )
        empty: dict[str, np.ndarray] = {"ts": np.zeros(0, np.int64), **{c: np.zeros(0) for c in cols}}
        if not files:
            return empty
        lst = ", ".join(f"'{Path(f).as_posix()}'" for f in files)
        select = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in cols)
        con = duckdb.connect()
        try:
            got = con.execute(
                f"SELECT epoch_ns(ts) AS ts, {select} FROM read_parquet([{lst}], hive_partitioning = false) "
                "ORDER BY ts"
            ).fetchnumpy()
        finally:
            con.close()
        res: dict[str, np.ndarray] = {"ts": np.asarray(got["ts"], dtype=np.int64)}
        for c in cols:
            v = got[c]
            res[c] = (
                np.ma.filled(v.astype(np.float64), np.nan)
                if np.ma.isMaskedArray(v)
                else np.asarray(v, dtype=np.float64)
            )
        return res

    # -- versions ------------------------------------------------------------------------------------

    def version(self, dataset_id: str) -> str:
        """Changes iff the data `read` serves changes: daily = the ingests whose vintages are visible as of
        `as_of` (an ingest that wrote no vintage row changes nothing); intraday = the derived manifests
        (source version + params hash per table, session and trade date) of the front series."""
        if dataset_id not in self._versions:
            ds = self.dataset(dataset_id)
            self._versions[dataset_id] = (
                self._daily_version(ds) if ds.dataset_type == "daily_series" else self._intraday_version(ds)
            )
        return self._versions[dataset_id]

    def _daily_version(self, ds: DatasetRow) -> str:
        rows = self.reg.query(
            "SELECT ingest_id, started_at, details FROM ingests WHERE dataset_id = ? ORDER BY ingest_id",
            [ds.dataset_id],
        )
        cutoff = _cutoff(self.as_of)
        ids = []
        for r in rows:
            if cutoff is not None and r["started_at"] is not None and r["started_at"] > cutoff:
                continue
            details: dict[str, Any] = json.loads(r["details"]) if r.get("details") else {}
            if int(details.get("vintage_rows", 1) or 0) == 0:
                continue
            ids.append(str(r["ingest_id"]))
        return "d" + _digest(ids)

    def _intraday_version(self, ds: DatasetRow) -> str:
        marks = ", ".join("?" for _ in VERSION_TABLES)
        rows = self.reg.query(
            "SELECT table_name, session, trade_date, source_version, params_hash FROM derived_manifests "
            f"WHERE dataset_id = ? AND series = ? AND table_name IN ({marks}) "
            "ORDER BY table_name, session, trade_date",
            [ds.dataset_id, self.series, *VERSION_TABLES],
        )
        items = [
            f"{r['table_name']}|{r['session']}|{r['trade_date']}|{r['source_version']}|{r['params_hash']}"
            for r in rows
        ]
        return "m" + _digest(items)
