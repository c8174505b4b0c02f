"""Ingest throughput on >= 5M synthetic ES trades, beside the floor measured in the same run.

Floor = the databento client's to_ndarray decode of the same files plus a plain parquet write (same
compression) of the same columns, no checks, no sessions, no registry. Target: full ingest within 3x.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.benchmarks.run import BenchRow

N_DAYS = 17
PER_DAY = 300_000


def _floor(files: list[Path], out: Path) -> float:
    import databento as db

    t0 = time.perf_counter()
    for i, f in enumerate(files):
        rec = db.DBNStore.from_file(f).to_ndarray()
        side = np.zeros(len(rec), dtype=np.int8)
        side[rec["side"] == b"B"] = 1
        side[rec["side"] == b"A"] = -1
        tbl = pa.table(
            {
                "ts_event": pa.array(rec["ts_event"].astype(np.int64)).cast(pa.timestamp("ns", tz="UTC")),
                "ts_recv": pa.array(rec["ts_recv"].astype(np.int64)).cast(pa.timestamp("ns", tz="UTC")),
                "instrument_id": rec["instrument_id"],
                "price": rec["price"] / 1e9,
                "size": rec["size"],
                "side": side,
                "sequence": rec["sequence"],
                "flags": rec["flags"],
            }
        )
        pq.write_table(tbl, out / f"{i}.parquet", compression="zstd")
    return time.perf_counter() - t0


def run() -> list[BenchRow]:
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.config.template import write_template
    from runtime.demo_data.dbn_synth import write_synthetic_trades
    from runtime.ingest.databento import ingest_databento
    from runtime.storage.paths import ensure_layout
    from runtime.storage.registry import Registry

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        t0 = time.perf_counter()
        files = write_synthetic_trades(
            tmp / "dbn", dt.date(2018, 11, 1), N_DAYS, PER_DAY, seed=1, start_price=2700
        )
        t_gen = time.perf_counter() - t0
        (tmp / "proj" / "config").mkdir(parents=True)
        write_template(tmp / "proj" / "config" / "run_config.xlsx")
        export_workbook(tmp / "proj" / "config" / "run_config.xlsx")
        snap = load_snapshot(tmp / "proj" / "config" / "exports" / "latest.json")
        paths = snapshot_paths(snap)
        ensure_layout(paths)
        reg = Registry(paths.duckdb_file)
        reg.migrate()
        (tmp / "floor").mkdir()
        t_floor = _floor(files, tmp / "floor")
        t0 = time.perf_counter()
        res = ingest_databento(snap.dataset("ES"), paths, reg, files=files)
        t_ingest = time.perf_counter() - t0
        n = sum(r.rows for r in res)
        t0 = time.perf_counter()
        again = ingest_databento(snap.dataset("ES"), paths, reg, files=files)
        t_noop = time.perf_counter() - t0
        assert all(r.status == "unchanged" for r in again)
        return [
            BenchRow(
                "ingest",
                f"DBN ingest, {n / 1e6:.1f}M trades, {N_DAYS} days",
                n / t_ingest,
                "trades/s",
                "to_ndarray + plain parquet write",
                n / t_floor,
                "full ingest within 3x of floor",
                f"full {t_ingest:.1f}s vs floor {t_floor:.1f}s: {t_ingest / t_floor:.2f}x the floor's time",
            ),
            BenchRow(
                "ingest",
                "re-ingest of the same files (no-op)",
                t_noop,
                "s",
                "full ingest",
                t_ingest,
                "",
                "hash check only",
            ),
            BenchRow(
                "ingest",
                "synthetic DBN generation",
                n / t_gen,
                "trades/s",
                "floor decode+write",
                n / t_floor,
                "",
                f"{len(files)} files",
            ),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
