"""DBN ingest: real Databento samples, crafted files at calendar edges, synthetic days, refusals, kill -9, API."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path
from typing import ClassVar

import databento as db
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from runtime.config.export import export_workbook
from runtime.config.loader import snapshot_paths
from runtime.contracts import UserError
from runtime.demo_data.dbn_synth import new_records, write_dbn, write_synthetic_trades
from runtime.ingest.databento import ingest_databento
from runtime.ingest.databento_api import download_for_dataset
from runtime.storage.paths import ensure_layout
from runtime.storage.registry import Registry
from tests.conftest import SAMPLES

CT = zoneinfo.ZoneInfo("America/Chicago")


@pytest.fixture
def env(data_env):
    return data_env


def canonical(paths) -> pd.DataFrame:
    files = sorted((paths.canonical_dir / "trades_es").glob("trade_date=*/part-0.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def raw_array(path: Path) -> np.ndarray:
    return db.DBNStore.from_file(path).to_ndarray()


# ---- real Databento samples ------------------------------------------------------------------------


def test_every_dbn_version_gives_the_same_canonical_rows(env, tmp_path: Path) -> None:
    snap, _, _ = env
    frames = []
    for name in ("test_data.trades.v1.dbn.zst", "test_data.trades.v2.dbn.zst", "test_data.trades.v3.dbn.zst"):
        sub = tmp_path / name
        p = snapshot_paths(snap)
        p = type(p)(
            **{
                **p.__dict__,
                "data_root": sub,
                "canonical_dir": sub / "canonical",
                "raw_dir": sub / "raw",
                "duckdb_file": sub / "r.duckdb",
            }
        )
        ensure_layout(p)
        reg = Registry(p.duckdb_file)
        reg.migrate()
        res = ingest_databento(snap.dataset("ES"), p, reg, files=[SAMPLES / name])
        assert res[0].status == "ingested"
        frames.append(canonical(p))
    assert frames[0].equals(frames[1]) and frames[1].equals(frames[2])
    raw = raw_array(SAMPLES / "test_data.trades.v3.dbn.zst")
    df = frames[0]
    # independent: numpy on the raw records
    assert df["ts_event"].astype("int64").tolist() == raw["ts_event"].astype(np.int64).tolist()
    assert df["price"].tolist() == (raw["price"] / 1e9).tolist() == [3720.25, 3720.25]
    assert df["size"].tolist() == raw["size"].tolist() == [5, 21]
    assert df["side"].tolist() == [-1, -1]  # 'A': seller-initiated
    assert df["symbol"].tolist() == ["ESH1", "ESH1"] and df["instrument_id"].tolist() == [5482, 5482]
    assert df["sequence"].tolist() == raw["sequence"].tolist() and df["flags"].tolist() == [129, 129]
    # 13:00 UTC = 07:00 CST Monday 2020-12-28: trade date 2020-12-28, before RTH
    assert df["trade_date"].astype(str).tolist() == ["2020-12-28", "2020-12-28"]
    assert not df["in_rth"].any()


def test_sunday_evening_prints_land_on_monday_outside_rth(env) -> None:
    snap, paths, reg = env
    f = SAMPLES / "GLBX_test_data.trades.dbn.zst"
    ingest_databento(snap.dataset("ES"), paths, reg, files=[f])
    df = canonical(paths)
    raw = raw_array(f)
    local = pd.to_datetime(raw["ts_event"].astype(np.int64), utc=True).tz_convert(CT)
    assert all(t.weekday() == 6 and t.hour == 18 for t in local)  # Sunday 18:00 Chicago
    assert df["trade_date"].astype(str).unique().tolist() == ["2020-12-28"]
    assert not df["in_rth"].any()
    sides = {b"B": 1, b"A": -1, b"N": 0}
    assert df["side"].tolist() == [sides[s] for s in raw["side"]] == [1, 1, -1, 1]
    assert df["price"].tolist() == (raw["price"] / 1e9).tolist()
    assert (paths.canonical_dir / "trades_es" / "trade_date=2020-12-28" / "part-0.parquet").exists()


def test_tbbo_keeps_bid_and_ask(env) -> None:
    snap, paths, reg = env
    f = SAMPLES / "GLBX_test_data.tbbo.dbn.zst"
    ingest_databento(snap.dataset("ES"), paths, reg, files=[f])
    df, raw = canonical(paths), raw_array(f)
    assert df["bid_px"].tolist() == (raw["bid_px_00"] / 1e9).tolist()
    assert df["ask_px"].tolist() == (raw["ask_px_00"] / 1e9).tolist()
    assert (
        df["bid_sz"].tolist() == raw["bid_sz_00"].tolist()
        and df["ask_sz"].tolist() == raw["ask_sz_00"].tolist()
    )
    # the aggressor rule: a buyer-initiated trade prints at the ask, a seller-initiated one at the bid
    buy = df["side"] == 1
    assert (df.loc[buy, "price"] == df.loc[buy, "ask_px"]).all()
    assert (df.loc[~buy, "price"] == df.loc[~buy, "bid_px"]).all()
    with pytest.raises(UserError, match="schema trades differs"):
        ingest_databento(snap.dataset("ES"), paths, reg, files=[SAMPLES / "GLBX_test_data.trades.dbn.zst"])


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("test_data.trades.dbz", "legacy .dbz"),
        ("GLBX_test_data.mbp-1.dbn.zst", "schema 'mbp-1' is not trades or tbbo"),
        ("GLBX_test_data.definition.dbn.zst", "schema 'definition'"),
    ],
)
def test_unreadable_or_wrong_files_are_refused(env, cli, name: str, fragment: str) -> None:
    snap, paths, reg = env
    r = cli(["ingest", "databento", "--dataset", "ES", "--file", str(SAMPLES / name)], cwd=snap.project_root)
    assert r.code == 1 and "Traceback" not in r.err
    assert name in r.err and fragment in r.err
    assert not list(paths.canonical_dir.rglob("*.parquet"))
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 0


def test_truncated_files_are_refused(env, tmp_path: Path) -> None:
    snap, paths, reg = env
    recs = new_records("trades", 10)
    recs["instrument_id"] = 7
    recs["ts_event"] = recs["ts_recv"] = 1_609_160_400_000_000_000 + np.arange(10)
    recs["price"] = 3_720_250_000_000
    recs["size"] = 1
    recs["side"] = b"B"
    full = write_dbn(tmp_path / "full.dbn", recs, symbols={"ESH1": 7})
    cut_record = tmp_path / "cut.dbn"
    cut_record.write_bytes(full.read_bytes()[:-20])
    zst = write_dbn(tmp_path / "full.dbn.zst", recs, symbols={"ESH1": 7})
    cut_zst = tmp_path / "cut.dbn.zst"
    cut_zst.write_bytes(zst.read_bytes()[:-6])
    for bad in (cut_record, cut_zst):
        with pytest.raises(UserError, match=f"{bad.name}: truncated"):
            ingest_databento(snap.dataset("ES"), paths, reg, files=[bad])
    # one bad file among good ones: nothing is written at all
    with pytest.raises(UserError, match="truncated"):
        ingest_databento(snap.dataset("ES"), paths, reg, files=[full, cut_zst])
    assert not list(paths.canonical_dir.rglob("*.parquet"))
    assert ingest_databento(snap.dataset("ES"), paths, reg, files=[full])[0].rows == 10


# ---- crafted records at calendar edges -----------------------------------------------------------------


EDGES = [
    # (Chicago wall clock, expected trade date, expected in_rth) -- worked out from CME's schedules
    (dt.datetime(2024, 3, 8, 8, 30), "2024-03-08", True),  # Friday before the March DST switch (CST)
    (dt.datetime(2024, 3, 10, 17, 0), "2024-03-11", False),  # Sunday open after the switch (CDT)
    (dt.datetime(2024, 3, 11, 8, 30), "2024-03-11", True),
    (dt.datetime(2024, 3, 11, 14, 59, 59), "2024-03-11", True),
    (dt.datetime(2024, 3, 11, 15, 0), "2024-03-11", False),
    (dt.datetime(2024, 11, 1, 14, 30), "2024-11-01", True),  # November switch: CDT on Friday ...
    (dt.datetime(2024, 11, 4, 8, 29, 59), "2024-11-04", False),  # ... CST on Monday
    (dt.datetime(2024, 11, 4, 8, 30), "2024-11-04", True),
    (
        dt.datetime(2024, 11, 27, 17, 30),
        "2024-11-29",
        False,
    ),  # Wednesday evening: Thanksgiving is no trade date
    (dt.datetime(2024, 11, 28, 10, 0), "2024-11-29", False),  # Thanksgiving morning -> Friday
    (dt.datetime(2024, 11, 29, 12, 14), "2024-11-29", True),  # day after: RTH ends at the 12:15 early close
    (dt.datetime(2024, 12, 31, 15, 30), "2024-12-31", False),  # New Year's Eve after RTH
    (dt.datetime(2024, 12, 31, 17, 30), "2025-01-02", False),  # New Year's Day is no trade date
    (dt.datetime(2025, 1, 2, 9, 0), "2025-01-02", True),
    (dt.datetime(2021, 6, 25, 15, 10), "2021-06-25", False),  # before the halt (pre-2021-06-28)
    (dt.datetime(2021, 6, 25, 15, 40), "2021-06-25", False),  # after the 15:15-15:30 halt, same trade date
    (dt.datetime(2021, 6, 25, 16, 30), "2021-06-28", False),  # maintenance break -> next trade date
]


def test_trade_dates_and_rth_at_calendar_edges(env, tmp_path: Path) -> None:
    snap, paths, reg = env
    ts = np.array([int(pd.Timestamp(t, tz=CT).tz_convert("UTC").value) for t, _, _ in EDGES], dtype=np.uint64)
    recs = new_records("trades", len(ts))
    recs["instrument_id"] = 11
    recs["ts_event"] = ts
    recs["ts_recv"] = ts + 1000
    recs["price"] = 5_000_000_000_000
    recs["size"] = np.arange(1, len(ts) + 1)
    recs["side"] = b"A"
    recs["sequence"] = np.arange(len(ts))
    f = write_dbn(tmp_path / "edges.dbn.zst", recs, symbols={"ESH5": 11})
    ingest_databento(snap.dataset("ES"), paths, reg, files=[f])
    df = canonical(paths).sort_values("size")
    assert df["trade_date"].astype(str).tolist() == [e[1] for e in EDGES]
    assert df["in_rth"].tolist() == [e[2] for e in EDGES]
    outside = reg.query("SELECT n_outside_session n FROM ingests")[0]["n"]
    assert (
        outside == 2
    )  # Thanksgiving 10:00 is inside its shortened session; only the halt and the break are not


# ---- synthetic days: spreads, coverage, roll ----------------------------------------------------------


SYNTH_TRADE_DATES = [dt.date(2018, 12, d) for d in (6, 7, 10, 11, 12, 13, 14, 17)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    return write_synthetic_trades(out, dt.date(2018, 12, 6), 8, 4000, seed=11, start_price=2700)


def test_synthetic_ingest_against_raw_records(env, synth: list[Path]) -> None:
    snap, paths, reg = env
    res = ingest_databento(snap.dataset("ES"), paths, reg, files=synth)
    raws = [raw_array(f) for f in synth]
    stores = [db.DBNStore.from_file(f) for f in synth]
    # independent symbol mapping: the client's own to_df(map_symbols=True)
    symbols = np.concatenate([s.to_df(map_symbols=True)["symbol"].to_numpy() for s in stores])
    raw = np.concatenate(raws)
    spread = np.array(["-" in s for s in symbols])
    assert sum(r.details["spreads"] for r in res) == spread.sum() > 0
    df = canonical(paths)
    assert len(df) == len(raw) - spread.sum()
    assert "-" not in "".join(df["symbol"].unique())
    keep = raw[~spread]
    order = np.lexsort((keep["sequence"], keep["price"], keep["ts_event"]))
    got = df.sort_values(["ts_event", "price", "sequence"], kind="stable")
    np.testing.assert_array_equal(
        got["ts_event"].astype("int64").to_numpy(), keep["ts_event"][order].astype(np.int64)
    )
    np.testing.assert_array_equal(got["price"].to_numpy(), keep["price"][order] / 1e9)
    np.testing.assert_array_equal(got["size"].to_numpy(), keep["size"][order])
    side = np.select([keep["side"] == b"B", keep["side"] == b"A"], [1, -1], 0)[order]
    np.testing.assert_array_equal(got["side"].to_numpy(), side)
    # independent trade-date rule: Chicago time + 7h, rolled forward past non-trade dates of a hand-worked
    # calendar (the 8 CME trade dates from Thu 2018-12-06: no holiday in the window, weekends skipped)
    local = pd.to_datetime(got["ts_event"].astype("int64"), utc=True).dt.tz_convert(CT)
    naive = (local + pd.Timedelta(hours=7)).dt.date
    rolled = [next(d for d in SYNTH_TRADE_DATES if d >= x) for x in naive]
    assert rolled == got["trade_date"].tolist()
    assert sorted(set(got["trade_date"])) == SYNTH_TRADE_DATES
    # coverage rows per (date, symbol) equal a groupby of the canonical rows
    cov = pd.DataFrame(reg.query("SELECT date, symbol, rows, volume FROM coverage WHERE dataset_id='ES'"))
    ref = df.groupby(["trade_date", "symbol"])["size"].agg(["count", "sum"]).reset_index()
    m = cov.merge(ref, left_on=["date", "symbol"], right_on=["trade_date", "symbol"])
    assert len(m) == len(ref) == len(cov)
    assert (m["rows"] == m["count"]).all() and (m["volume"] == m["sum"]).all()


def test_roll_schedule_uses_previous_day_volume(env, synth: list[Path]) -> None:
    snap, paths, reg = env
    ingest_databento(snap.dataset("ES"), paths, reg, files=synth)
    sched = pd.DataFrame(reg.query("SELECT trade_date, symbol, rule FROM roll_schedule ORDER BY trade_date"))
    df = canonical(paths)
    vol = df.groupby(["trade_date", "symbol"])["size"].sum().unstack(fill_value=0)
    days = list(vol.index)
    assert sched["trade_date"].tolist() == days
    held = None
    for i, d in enumerate(days[1:], start=1):
        leader = vol.loc[days[i - 1]].idxmax()  # only the previous trade date's volume
        exp = {"ESZ8": 0, "ESH9": 1}
        choice = leader if held is None or exp[leader] >= exp[held] else held  # never roll backwards
        assert sched.loc[i, "symbol"] == choice, d
        assert sched.loc[i, "rule"] == "volume"
        held = choice
    assert sched.loc[0, "rule"] == "calendar"
    assert set(sched["symbol"]) == {"ESZ8", "ESH9"}  # the window spans the December roll


def test_reingest_is_a_no_op_and_overlap_is_deduplicated(env, synth: list[Path], tmp_path: Path) -> None:
    snap, paths, reg = env
    ingest_databento(snap.dataset("ES"), paths, reg, files=synth)
    before = canonical(paths)
    again = ingest_databento(snap.dataset("ES"), paths, reg, files=synth)
    assert {r.status for r in again} == {"unchanged"}
    # the same records delivered again in a differently compressed file: ingested, but no duplicate rows
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(synth[2].read_bytes(), max_output_size=1 << 30)
    redelivered = tmp_path / "redelivery.dbn"
    redelivered.write_bytes(raw)
    res = ingest_databento(snap.dataset("ES"), paths, reg, files=[redelivered])
    assert res[0].status == "ingested"
    after = canonical(paths)
    assert len(after) == len(before)
    pd.testing.assert_frame_equal(after.reset_index(drop=True), before.reset_index(drop=True))


def _non_spread_and_spread(f: Path) -> tuple[int, int]:
    """Independent counts of one file: outright records and calendar-spread records (client's own symbols)."""
    sym = db.DBNStore.from_file(f).to_df(map_symbols=True)["symbol"].to_numpy()
    spread = np.array(["-" in s for s in sym], dtype=bool)
    return int((~spread).sum()), int(spread.sum())


def test_redelivered_trades_count_as_already_present_and_spreads_count_once(
    env, cli, synth: list[Path], tmp_path: Path
) -> None:
    from runtime.ingest.databento import describe
    from runtime.status import collect_status

    snap, paths, reg = env
    counts = [_non_spread_and_spread(f) for f in synth]
    assert sum(c[1] for c in counts) > 0 and counts[2][1] > 0, "the fixture must contain spread records"
    first = ingest_databento(snap.dataset("ES"), paths, reg, files=synth[:3])
    n_read = sum(c[0] for c in counts[:3])
    assert describe(first).count(f"{n_read:,} trades read, {n_read:,} new, 0 already present") == 1
    # a spread record is counted once even though its trade date spans two UTC-day files
    es = {d.dataset_id: d for d in collect_status(snap, paths, reg).datasets}["ES"]
    assert es.excluded_spreads == sum(c[1] for c in counts[:3])

    import zstandard

    redelivered = tmp_path / "redelivery.dbn"  # the same records as synth[2], other bytes (not compressed)
    redelivered.write_bytes(
        zstandard.ZstdDecompressor().decompress(synth[2].read_bytes(), max_output_size=1 << 30)
    )
    r = cli(
        ["ingest", "databento", "--dataset", "ES", "--file", str(redelivered), "--file", str(synth[3])],
        cwd=snap.project_root,
    )
    assert r.code == 0, r.err
    n2, n3 = counts[2][0], counts[3][0]
    assert f"{n2 + n3:,} trades read, {n3:,} new, {n2:,} already present" in r.out, r.out
    status = {d.dataset_id: d for d in collect_status(snap, paths, reg).datasets}["ES"]
    assert status.excluded_spreads == sum(c[1] for c in counts[:4])  # synth[2]'s spreads not counted twice
    assert status.rows == len(canonical(paths)) == sum(c[0] for c in counts[:4])
    # and again with nothing new at all: the message says so, the count does not move
    again = tmp_path / "again.dbn"
    again.write_bytes(redelivered.read_bytes())  # same bytes under another name: unchanged by hash
    r2 = cli(["ingest", "databento", "--dataset", "ES", "--file", str(again)], cwd=snap.project_root)
    assert r2.code == 0 and "unchanged (1 files already ingested)" in r2.out, r2.out


def test_unreadable_bytes_name_the_file_not_a_buffer(env, cli, tmp_path: Path) -> None:
    snap, paths, reg = env
    bad = tmp_path / "glbx-mdp3-20240102.trades.dbn"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    r = cli(["ingest", "databento", "--dataset", "ES", "--file", str(bad)], cwd=snap.project_root)
    assert r.code == 1 and "Traceback" not in r.err
    assert f"{bad}: not a readable DBN file" in r.err and "object at 0x" not in r.err, r.err
    assert bad.name in r.err.split("not a readable DBN file", 1)[1]  # the client's own words name it too
    assert not list(paths.canonical_dir.rglob("*.parquet"))
    assert not [p for p in paths.staging_dir.rglob("*") if p.is_file()]
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 0


_PEAK_SCRIPT = """
import json, sys, tracemalloc
from pathlib import Path
import pyarrow as pa
from runtime.config.loader import load_snapshot, snapshot_paths
from runtime.ingest.databento import ingest_databento
from runtime.storage.paths import ensure_layout
from runtime.storage.registry import Registry
snap = load_snapshot(Path(sys.argv[1]) / "config" / "exports" / "latest.json")
paths = snapshot_paths(snap)
ensure_layout(paths)
reg = Registry(paths.duckdb_file)
reg.migrate()
files = [Path(f) for f in sys.argv[2:]]
tracemalloc.start()
res = ingest_databento(snap.dataset("ES"), paths, reg, files=files)
print(json.dumps({"arrow_peak": pa.default_memory_pool().max_memory(), "py_peak": tracemalloc.get_traced_memory()[1],
                  "rows": sum(r.rows for r in res)}))
"""


def test_peak_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    """One run of 2 files vs 8 files (each in a fresh interpreter): the peak Arrow pool and Python/numpy
    allocations stay about one file's worth; holding every file's rows until the write would quadruple them."""
    files = write_synthetic_trades(tmp_path / "dbn", dt.date(2019, 2, 4), 8, 30_000, seed=4, start_price=2700)
    assert len(files) >= 8
    peaks = {}
    for n in (2, 8):
        root = tmp_path / f"p{n}"
        (root / "config").mkdir(parents=True)
        from runtime.config.template import write_template

        write_template(root / "config" / "run_config.xlsx")
        export_workbook(root / "config" / "run_config.xlsx")
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(root), *map(str, files[:n])],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=600,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])
    # independent size of the data: the raw records of the first 2 vs all 8 files
    raw2 = sum(raw_array(f).nbytes for f in files[:2])
    raw8 = sum(raw_array(f).nbytes for f in files[:8])
    assert raw8 > 3.5 * raw2 and peaks[8]["rows"] > 3.5 * peaks[2]["rows"]
    for key in ("arrow_peak", "py_peak"):
        assert peaks[8][key] < 1.6 * peaks[2][key], (key, peaks)


def test_spill_folder_is_private_and_removed(env, synth: list[Path]) -> None:
    """The per-run spill (staging) never outlives a run, and a killed run's spill is removed by the next run."""
    snap, paths, reg = env
    stale = paths.staging_dir / ".tmp-dbn-spill-ES-deadbeef" / "trades" / "2018-12-06"
    stale.mkdir(parents=True)
    (stale / "000000.arrow").write_bytes(b"left by a killed run")
    other = paths.staging_dir / ".tmp-dbn-spill-ES_API-cafe"  # another dataset's run is not touched
    other.mkdir(parents=True)
    ingest_databento(snap.dataset("ES"), paths, reg, files=synth[:2])
    assert not list(paths.staging_dir.glob(".tmp-dbn-spill-ES-*"))
    assert other.exists()
    assert not [p for p in paths.canonical_dir.rglob("*") if p.suffix == ".arrow"]


# ---- kill -9 mid-ingest --------------------------------------------------------------------------------


def test_kill_9_leaves_no_partial_partition_and_next_run_completes(
    project: Path, cli, tmp_path: Path
) -> None:
    export_workbook(project / "config" / "run_config.xlsx")
    inc = project / "data" / "incoming" / "databento"
    write_synthetic_trades(inc, dt.date(2018, 11, 5), 12, 150_000, seed=5, start_price=2700)
    table = project / "data" / "canonical" / "trades_es"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from runtime.cli import main; main()", "ingest", "databento"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        done = list(table.glob("trade_date=*/part-0.parquet")) if table.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "ingest finished before it could be killed; make the fixture bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    visible = list(table.rglob("*.parquet"))
    assert visible, "the kill came before any partition was written"
    assert all(p.name == "part-0.parquet" for p in visible)  # no temp file under a parquet-visible name
    for p in visible:
        pq.read_table(p)  # every visible partition is a complete file
    reg = Registry(project / "data" / "duckdb" / "research.duckdb")
    assert reg.query("SELECT count(*) n FROM ingests")[0]["n"] == 0
    assert reg.query("SELECT count(*) n FROM partitions")[0]["n"] == 0
    r = cli(["ingest", "databento"], cwd=project)
    assert r.code == 0, r.err
    # the result equals an uninterrupted ingest of the same files elsewhere
    clean = tmp_path / "clean"
    (clean / "config").mkdir(parents=True)
    (clean / "config" / "run_config.xlsx").write_bytes((project / "config" / "run_config.xlsx").read_bytes())
    export_workbook(clean / "config" / "run_config.xlsx")
    (clean / "data" / "incoming").mkdir(parents=True)
    os.symlink(inc, clean / "data" / "incoming" / "databento")
    assert cli(["ingest", "databento"], cwd=clean).code == 0
    a = sorted(p.relative_to(table) for p in table.rglob("*.parquet"))
    ctable = clean / "data" / "canonical" / "trades_es"
    assert a == sorted(p.relative_to(ctable) for p in ctable.rglob("*.parquet"))
    for rel in a:
        assert pq.read_table(table / rel).equals(pq.read_table(ctable / rel)), rel
    n = reg.query("SELECT count(*) n FROM ingests")[0]["n"]
    assert n == len(list(inc.glob("*.dbn.zst")))


# ---- Databento API (the only fake: the remote service) -----------------------------------------------------


class FakeHistorical:
    """Stands in for databento.Historical: serves local DBN bytes, records what it was asked."""

    calls: ClassVar[list[tuple]] = []

    def __init__(self, key: str, payload: bytes, cost: float):
        self.key, self.payload, self.cost = key, payload, cost
        outer = self

        class Metadata:
            def get_cost(self, **kw):
                outer.calls.append(("get_cost", kw))
                return outer.cost

        class Timeseries:
            def get_range(self, *, path, **kw):
                outer.calls.append(("get_range", kw))
                Path(path).write_bytes(outer.payload)

        self.metadata, self.timeseries = Metadata(), Timeseries()


def _api_dataset(snap):
    import dataclasses

    return dataclasses.replace(snap.dataset("ES_API"), enabled=True)


def test_api_checks_cost_then_downloads_once(env) -> None:
    snap, paths, reg = env
    ds = _api_dataset(snap)
    payload = (SAMPLES / "GLBX_test_data.trades.dbn.zst").read_bytes()
    FakeHistorical.calls = []
    key = "db-TESTKEYabcdefghijklmnopqrstuv"
    made = []

    def factory(k):
        made.append(k)
        return FakeHistorical(k, payload, cost=1.25)

    msgs: list[str] = []
    path = download_for_dataset(
        ds, paths, client_factory=factory, env={"DATABENTO_API_KEY": key}, say=msgs.append
    )
    assert made == [key] and [c[0] for c in FakeHistorical.calls] == ["get_cost", "get_range"]
    assert (
        FakeHistorical.calls[0][1]["symbols"] == ["ESH4"] and FakeHistorical.calls[0][1]["schema"] == "trades"
    )
    assert path.read_bytes() == payload and path.is_relative_to(paths.raw_dir)
    res = ingest_databento(ds, paths, reg, files=[path])
    assert res[0].rows == 4
    again = download_for_dataset(
        ds, paths, client_factory=factory, env={"DATABENTO_API_KEY": key}, say=msgs.append
    )
    assert again == path and len(FakeHistorical.calls) == 2  # not paid twice
    assert all(key not in m for m in msgs)


def test_api_refuses_above_cap_and_without_key(env) -> None:
    snap, paths, _ = env
    ds = _api_dataset(snap)
    payload = (SAMPLES / "GLBX_test_data.trades.dbn.zst").read_bytes()
    FakeHistorical.calls = []
    with pytest.raises(UserError) as ei:
        download_for_dataset(
            ds,
            paths,
            client_factory=lambda k: FakeHistorical(k, payload, cost=12.0),
            env={"DATABENTO_API_KEY": "db-x"},
        )
    msg = str(ei.value)
    assert "$12.00" in msg and "$5.00" in msg and f"DATASETS!T{ds.row}" in msg
    assert [c[0] for c in FakeHistorical.calls] == ["get_cost"]  # never downloaded
    assert not list(paths.raw_dir.rglob("*.dbn.zst"))
    with pytest.raises(UserError, match="DATABENTO_API_KEY"):
        download_for_dataset(ds, paths, client_factory=lambda k: FakeHistorical(k, payload, 0.1), env={})


def test_trades_before_the_modelled_calendar_are_a_clear_error(env, tmp_path: Path) -> None:
    snap, paths, reg = env
    recs = new_records("trades", 1)
    recs["instrument_id"] = 3
    recs["ts_event"] = recs["ts_recv"] = int(pd.Timestamp("2010-03-01 15:00", tz="UTC").value)
    recs["price"] = 1_100_000_000_000
    recs["size"] = 1
    f = write_dbn(tmp_path / "old.dbn", recs, symbols={"ESH0": 3})
    with pytest.raises(UserError, match=r"old\.dbn: cannot assign CME trade dates"):
        ingest_databento(snap.dataset("ES"), paths, reg, files=[f])
    assert not list(paths.canonical_dir.rglob("*.parquet"))


class FailingHistorical(FakeHistorical):
    """The remote service failing in one step (cost query or download) with a given exception."""

    def __init__(self, key: str, payload: bytes, cost: float, fail: str, exc: BaseException):
        super().__init__(key, payload, cost)
        target = self.metadata if fail == "cost" else self.timeseries
        name = "get_cost" if fail == "cost" else "get_range"

        def boom(*_a, **_kw):
            raise exc

        setattr(target, name, boom)


def _request_cell(snap, ds) -> str:
    """DATASETS cell of api_request_json, read from the exported workbook's header row (independently)."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    ws = openpyxl.load_workbook(snap.project_root / "config" / "run_config.xlsx", read_only=True)["DATASETS"]
    header = [c.value for c in next(ws.iter_rows(min_row=1, max_row=1))]
    return f"DATASETS!{get_column_letter(header.index('api_request_json') + 1)}{ds.row}"


def _dns_failure() -> BaseException:
    """What requests raises when the name does not resolve (a ConnectionError caused by socket.gaierror)."""
    import socket

    import requests

    try:
        try:
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        except socket.gaierror as inner:
            raise requests.exceptions.ConnectionError(
                "HTTPSConnectionPool(host='hist.databento.com', port=443): Max retries exceeded"
            ) from inner
    except requests.exceptions.ConnectionError as exc:
        return exc


def _wrapped_gaierror() -> BaseException:
    """A DNS failure seen only through the cause chain (some other library's wrapper around gaierror)."""
    import socket

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as inner:
            raise RuntimeError("request failed") from inner
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize(
    ("fail", "exc_factory", "must", "must_not"),
    [
        ("cost", _dns_failure, ["cannot reach Databento for the cost query", "proxy"], ["refused"]),
        ("cost", _wrapped_gaierror, ["cannot reach Databento for the cost query"], ["refused"]),
        (
            "cost",
            lambda: __import__("requests").exceptions.ConnectTimeout("connect timeout=10"),
            ["cannot reach Databento", "connection"],
            ["refused"],
        ),
        (
            "cost",
            lambda: db.BentoClientError(401, message="Authentication failed."),
            ["refused the cost query", "API key was not accepted", "DATABENTO_API_KEY"],
            ["cannot reach"],
        ),
        (
            "cost",
            lambda: db.BentoClientError(422, message="symbol 'ESX4' did not resolve"),
            ["refused the cost query", "HTTP 422", "REQUEST_CELL"],
            ["cannot reach", "API key"],
        ),
        (
            "cost",
            lambda: db.BentoServerError(503, message="Service unavailable"),
            ["Databento's side", "try again later"],
            ["refused", "cannot reach"],
        ),
        ("download", _dns_failure, ["cannot reach Databento for the download"], ["refused"]),
    ],
)
def test_api_network_failure_is_not_a_refusal(env, fail, exc_factory, must, must_not) -> None:
    snap, paths, _ = env
    ds = _api_dataset(snap)
    key = "db-SECRETKEYabcdefghijklmnopqrs"
    payload = (SAMPLES / "GLBX_test_data.trades.dbn.zst").read_bytes()
    exc = exc_factory()
    with pytest.raises(UserError) as ei:
        download_for_dataset(
            ds,
            paths,
            client_factory=lambda k: FailingHistorical(k, payload, 1.0, fail, exc),
            env={"DATABENTO_API_KEY": key},
            say=lambda _m: None,
        )
    msg = str(ei.value)
    cell = _request_cell(snap, ds)
    for m in must:
        assert m.replace("REQUEST_CELL", cell) in msg, msg
    for m in must_not:
        assert m not in msg, msg
    assert key not in msg
    assert not list(paths.raw_dir.rglob("*.dbn.zst"))  # nothing downloaded, nothing half-written
    assert not [p for p in paths.staging_dir.rglob("*") if p.is_file()]
