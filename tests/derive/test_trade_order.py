"""Open/close follow ts_event, then sequence, then file position, even when a file lists a tie out of sequence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from runtime.demo_data.dbn_synth import instrument_id, new_records, write_dbn
from runtime.derive import build_derived
from tests.derive.conftest import ingest, make_env

DAY = dt.date(2019, 1, 9)


def _ns(hms: str) -> int:
    return int(dt.datetime.fromisoformat(f"{DAY}T{hms}+00:00").timestamp()) * 1_000_000_000


def test_ties_on_ts_event_are_ordered_by_sequence(tmp_path: Path) -> None:
    # minute 15:00 UTC: two records share the first ts_event but arrive with sequence 7 before 5;
    # minute 15:01: the last ts_event is shared by sequence 9 then 8 (so the close is the seq-9 price)
    rows = [
        (_ns("15:00:01"), 7, 2600.25, b"B"),
        (_ns("15:00:01"), 5, 2600.00, b"B"),
        (_ns("15:00:30"), 6, 2600.50, b"A"),
        (_ns("15:01:10"), 8, 2601.00, b"A"),
        (_ns("15:01:59"), 9, 2601.50, b"B"),
        (_ns("15:01:59"), 8, 2601.25, b"B"),
    ]
    recs = new_records("trades", len(rows))
    recs["ts_event"] = [r[0] for r in rows]
    recs["ts_recv"] = [r[0] + 100_000 for r in rows]
    recs["sequence"] = [r[1] for r in rows]
    recs["price"] = [round(r[2] * 1e9) for r in rows]
    recs["size"] = 1
    recs["side"] = np.array([r[3] for r in rows], dtype="S1")
    recs["instrument_id"] = instrument_id("ESH9")
    dbn = write_dbn(tmp_path / "tie.trades.dbn", recs, symbols={"ESH9": instrument_id("ESH9")})
    env = ingest(make_env(tmp_path / "proj"), [dbn])
    canon = pq.read_table(env.paths.canonical_dir / "trades_es" / f"trade_date={DAY}" / "part-0.parquet")
    assert canon.column("sequence").to_pylist()[:2] == [7, 5]  # the file keeps the delivered order
    build_derived(env.ds, env.paths, env.reg)
    bars = pq.read_table(
        env.paths.derived_dir / "ES" / "bars_1m" / "session=RTH" / f"trade_date={DAY}" / "part-0.parquet"
    ).to_pylist()
    assert [(b["open"], b["close"]) for b in bars] == [(2600.00, 2600.50), (2601.00, 2601.50)]
    ev = pq.read_table(
        env.paths.derived_dir
        / "ES"
        / "big_trade_events"
        / "session=RTH"
        / f"trade_date={DAY}"
        / "part-0.parquet"
    )
    assert ev.num_rows == 0  # 1-lots, below the floor
