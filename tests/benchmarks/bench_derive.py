"""Derive throughput and chart-API latency on synthetic ES at a realistic 300k trades per day.

Setup (not timed): a tmp DATA_ROOT from the template workbook, `write_synthetic_trades` DBN files and the real
ingest. Timed: `build_derived` (every table, RTH and FULL) beside a hand-written DuckDB bars_1m query over the
same canonical parquet in the same run, then the chart API for one day (all layers) and a month of 5-minute
candles. BENCH_DERIVE_DAYS / BENCH_DERIVE_TRADES override the size (defaults 20 x 300k).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from tests.benchmarks.run import BenchRow, best_of

START = dt.date(2019, 1, 7)


def _setup(root: Path, days: int, trades: int):
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.config.template import write_template
    from runtime.demo_data.dbn_synth import write_synthetic_trades
    from runtime.ingest.databento import ingest_databento
    from runtime.storage.paths import ensure_layout
    from runtime.storage.registry import Registry

    (root / "config").mkdir(parents=True)
    write_template(root / "config" / "run_config.xlsx")
    snap = load_snapshot(export_workbook(root / "config" / "run_config.xlsx").latest)
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    files = write_synthetic_trades(root / "dbn", START, days, trades, seed=7)
    ds = snap.dataset("ES")
    ingest_databento(ds, paths, reg, files=files)
    return snap, paths, reg, ds


def _baseline_bars(paths, reg) -> tuple[float, int]:
    """What a careful analyst would write by hand: one query, FULL session bars_1m of the front contract."""
    front = {r["trade_date"]: r["symbol"] for r in reg.query("SELECT trade_date, symbol FROM roll_schedule")}
    files = sorted(str(p) for p in (paths.canonical_dir / "trades_es").glob("trade_date=*/part-0.parquet"))
    symbols = sorted(set(front.values()))
    con = duckdb.connect()
    con.read_parquet(files).create_view("t")
    sql = f"""
        SELECT trade_date, time_bucket(INTERVAL 1 minute, ts_event) AS ts, symbol,
               arg_min(price, ts_event) AS open, max(price) AS high, min(price) AS low,
               arg_max(price, ts_event) AS close, sum(size) AS volume,
               sum(size) FILTER (WHERE side = 1) AS buy_volume, sum(size) FILTER (WHERE side = -1) AS sell_volume,
               count(*) AS n_trades, sum(price * size) / sum(size) AS vwap
        FROM t WHERE symbol IN ({", ".join(f"'{s}'" for s in symbols)})
        GROUP BY ALL ORDER BY trade_date, ts
    """
    rows = con.execute(
        f"SELECT count(*) FROM t WHERE symbol IN ({', '.join(repr(s) for s in symbols)})"
    ).fetchall()[0][0]
    secs = best_of(lambda: con.sql(sql).to_arrow_table(), repeat=3)
    con.close()
    return secs, int(rows)


def _latency(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median of `repeat` warm calls (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> list[BenchRow]:
    from runtime.charts import api
    from runtime.charts.render import ChartState, build_figure, figure_data
    from runtime.derive import build_derived

    days = int(os.environ.get("BENCH_DERIVE_DAYS", "20"))
    trades = int(os.environ.get("BENCH_DERIVE_TRADES", "300000"))
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench_derive_") as tmp:
        t0 = time.perf_counter()
        _snap, paths, reg, ds = _setup(Path(tmp), days, trades)
        setup_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        first = build_derived(ds, paths, reg)
        cold_s = time.perf_counter() - t0
        n = first.source_rows
        warm = []
        for _ in range(3):
            t0 = time.perf_counter()
            build_derived(ds, paths, reg, rebuild=True)
            warm.append(time.perf_counter() - t0)
        noop_s = best_of(lambda: build_derived(ds, paths, reg), repeat=3)
        base_s, base_rows = _baseline_bars(paths, reg)
        size = f"{days} days x {trades / 1000:.0f}k"
        rows += [
            BenchRow(
                "derive",
                f"all 5 tables, RTH+FULL, {size} (best of 3 rebuilds)",
                n / min(warm) / 1e6,
                "M trades/s",
                "hand SQL bars_1m (FULL only, no write)",
                base_rows / base_s / 1e6,
                ">= 3 M trades/s",
                f"{n:,} trades in {min(warm):.2f} s (median {statistics.median(warm):.2f} s); setup {setup_s:.0f} s",
            ),
            BenchRow(
                "derive",
                "first build in a fresh DATA_ROOT (process already warm from the ingest)",
                n / cold_s / 1e6,
                "M trades/s",
                "hand SQL bars_1m (FULL only, no write)",
                base_rows / base_s / 1e6,
                "",
                f"{cold_s:.2f} s",
            ),
            BenchRow("derive", f"no-op re-run ({days} dates up to date)", noop_s, "s", "-", None, "", ""),
        ]

        src = api.ChartSource(paths.derived_dir, ds.dataset_id)
        day = api.trade_dates(src, "FULL")[-1]
        first_day = api.trade_dates(src, "FULL")[0]

        def floor_read(session: str) -> Callable[[], object]:
            import pyarrow.parquet as pq

            from runtime.derive.layout import TABLES, partition_file

            return lambda: [
                pq.read_table(partition_file(paths.derived_dir, ds.dataset_id, "front", t, session, day))
                for t in TABLES
            ]

        for session in ("RTH", "FULL"):
            state = ChartState(session=session, day=day, interval=5, footprint_interval=5, big_min_size=50)
            read_s = _latency(floor_read(session))

            def layers(state: ChartState = state) -> object:
                return figure_data(state, src)

            def layers_cold(state: ChartState = state) -> object:
                api._read_file.cache_clear()
                api._event_sizes.cache_clear()
                return figure_data(state, src)

            rows += [
                BenchRow(
                    "charts",
                    f"one day {session}: all layers (candles, footprint, big trades, CVD), warm",
                    _latency(layers),
                    "s",
                    "pyarrow read of the day's 5 files",
                    read_s,
                    "< 0.3 s",
                    "",
                ),
                BenchRow(
                    "charts",
                    f"one day {session}: all layers, cold file cache",
                    _latency(layers_cold),
                    "s",
                    "pyarrow read of the day's 5 files",
                    read_s,
                    "< 0.3 s",
                    "",
                ),
                BenchRow(
                    "charts",
                    f"one day {session}: big trades, p99.9 of 20 prior sessions",
                    _latency(
                        lambda session=session: api.big_trades(
                            src, session, day, day, percentile=99.9, lookback_sessions=20
                        )
                    ),
                    "s",
                    "-",
                    None,
                    "",
                    "",
                ),
                BenchRow(
                    "charts",
                    f"one day {session}: plotly figure built (all layers)",
                    _latency(lambda state=state: build_figure(state, src), repeat=3),
                    "s",
                    "-",
                    None,
                    "",
                    "includes the API calls",
                ),
            ]
        rows.append(
            BenchRow(
                "charts",
                f"5-minute candles FULL, {first_day}..{day} ({days} trade dates)",
                _latency(lambda: api.candles(src, "FULL", first_day, day, 5)),
                "s",
                "-",
                None,
                "< 1 s",
                "",
            )
        )
    return rows


if __name__ == "__main__":
    from tests.benchmarks.run import render

    print(render(run()))
