"""A demo project built in-process for the issue 9 acceptance tests (expressions, CLI, invalidation).

The template workbook exported, the demo daily xlsx (real arch data, from 2016 to keep ingest fast) and
4 trade dates of synthetic ES trades ingested with the real ingest code, the 1m tables derived. Built in
the test process (not with `backtest` subprocesses) because each CLI start costs seconds on a loaded
machine; the CLI tests then run real subprocesses against the finished project. Daily ingests are
stamped `now=T0` (a fixed past instant) so a later revision can be told apart by `--as-of`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from runtime.config.export import export_workbook
from runtime.config.loader import load_snapshot, snapshot_paths
from runtime.config.template import write_template
from runtime.contracts import ConfigSnapshot, ResolvedPaths
from runtime.demo_data.daily import write_daily_samples
from runtime.demo_data.dbn_synth import write_synthetic_trades
from runtime.derive import build_derived
from runtime.ingest.daily import ingest_daily
from runtime.ingest.databento import ingest_databento
from runtime.storage.paths import ensure_layout
from runtime.storage.registry import Registry

DAILY_FROM = "2016-01-01"
ES_START = dt.date(2018, 11, 1)  # the demo-data default
ES_DAYS = 4
ES_TRADES = 2_000
T0 = dt.datetime(2026, 1, 5, 22, 0, tzinfo=dt.UTC)  # the first daily ingest "happened" then


@dataclass
class Demo:
    root: Path
    snapshot: ConfigSnapshot
    paths: ResolvedPaths
    reg: Registry

    @property
    def workbook(self) -> Path:
        return self.root / "config" / "run_config.xlsx"

    def reload(self) -> Demo:
        """Re-export the workbook (after an edit) and reload the snapshot."""
        res = export_workbook(self.workbook)
        self.snapshot = load_snapshot(res.latest)
        return self


def _trim_credit(path: Path) -> None:
    """The demo CREDIT file starts in 1990 whatever `start` says; stateful graphs load all history, and the
    exact reference is slow on 7,000 rows: keep its months from 2015 (Excel serial dates, ascending)."""
    import openpyxl

    first = (dt.date(2015, 1, 1) - dt.date(1899, 12, 30)).days
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    old = [
        r
        for r in range(2, ws.max_row + 1)
        if isinstance(ws.cell(r, 1).value, int) and ws.cell(r, 1).value < first
    ]
    assert old == list(range(2, 2 + len(old))), "CREDIT demo rows are not ascending serial dates"
    ws.delete_rows(2, len(old))
    wb.save(path)


def build_demo(root: Path, *, intraday: bool = True) -> Demo:
    (root / "config").mkdir(parents=True, exist_ok=True)
    write_template(root / "config" / "run_config.xlsx", force=True)
    res = export_workbook(root / "config" / "run_config.xlsx")
    snap = load_snapshot(res.latest)
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    write_daily_samples(paths.data_root / "incoming" / "daily", start=DAILY_FROM)
    _trim_credit(paths.data_root / "incoming" / "daily" / "credit.xlsx")
    for ds in snap.datasets:
        if ds.dataset_type == "daily_series" and ds.enabled:
            ingest_daily(ds, paths, reg, now=T0)
    if intraday:
        es = snap.dataset("ES")
        files = write_synthetic_trades(
            paths.data_root / "incoming" / "databento", ES_START, ES_DAYS, ES_TRADES, 7
        )
        ingest_databento(es, paths, reg, files=files)
        build_derived(es, paths, reg)
    return Demo(root, snap, paths, reg)


def canonical_daily(paths: ResolvedPaths, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(dates datetime64[D], values) of a canonical daily table read straight from its parquet files: per
    date the latest vintage (max known_at), deleted rows dropped. An independent read for CLI checks."""
    import pandas as pd

    files = sorted((paths.data_root / "canonical" / table).rglob("*.parquet"))
    df = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    df = df.sort_values(["date", "known_at"]).groupby("date", as_index=False).last()
    df = df[~df["deleted"].astype(bool)]
    return df["date"].to_numpy(dtype="datetime64[D]"), df[column].to_numpy(dtype=float)
