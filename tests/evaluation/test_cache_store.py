"""The feature cache store on real files and a real registry: round trips, misses, kill -9, corruption, ls/clear.

Every expected value is regenerated in the test from a seed (or read back with plain pyarrow/hashlib),
never taken from the store under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compiler.contracts import CacheKey, StoredValues
from runtime.contracts import ResolvedPaths
from runtime.evaluation.cache_store import ParquetValueStore, clear, ls
from runtime.storage.paths import ensure_layout, resolve_paths
from runtime.storage.registry import Registry

DAY0 = np.datetime64("2020-01-02", "D")
MIN0 = np.datetime64("2024-03-04T14:30", "ns")


def make_env(root: Path) -> tuple[ResolvedPaths, Registry]:
    paths = resolve_paths("test", {"DATA_ROOT": str(root / "data")}, root)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    return paths, reg


@pytest.fixture
def env(tmp_path: Path) -> tuple[ResolvedPaths, Registry]:
    return make_env(tmp_path)


def series(seed: int, n: int, *, minute: bool = False) -> StoredValues:
    """Seeded values with missing runs (NaN), on a daily or a 1m index; prefix-stable in n."""
    rng = np.random.default_rng(seed)
    vals = rng.standard_normal(max(n, 1))[:n] * 10.0 ** rng.integers(-6, 7)
    vals[(np.arange(n) % 17) < 3] = np.nan  # runs of missing
    if minute:
        index = MIN0 + np.arange(n) * np.timedelta64(60, "s")
    else:
        index = DAY0 + np.arange(n).astype("timedelta64[D]")
    return StoredValues(index=index, values=vals)


def key(node: str = "node-a", **kw: object) -> CacheKey:
    base: dict[str, object] = {
        "node_hash": node,
        "data_versions": (("CTA", "c1"), ("VIX", "v1")),
        "as_of": None,
        "params": (("w", 20),),
        "grid": "daily:NYSE",
    }
    base.update(kw)
    return CacheKey(**base)  # type: ignore[arg-type]


def same(a: StoredValues | None, b: StoredValues) -> bool:
    return (
        a is not None
        and a.index.dtype == b.index.dtype
        and np.array_equal(a.index, b.index)
        and a.values.dtype == np.float64
        and np.array_equal(a.values, b.values, equal_nan=True)
    )


def rows(reg: Registry) -> list[dict]:
    return reg.query("SELECT * FROM feature_cache ORDER BY cache_key")


def files(paths: ResolvedPaths) -> list[Path]:
    return sorted(p for p in paths.feature_cache_dir.iterdir() if p.is_file())


# ---------------------------------------------------------------------------------------------------------
# round trips and keys
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("minute", [False, True], ids=["daily", "1m"])
def test_round_trip_with_missing_values(env, minute: bool) -> None:
    paths, reg = env
    k = key(grid="1m:ES:RTH" if minute else "daily:NYSE")
    sv = series(7, 1000, minute=minute)
    assert np.isnan(sv.values).sum() > 100  # the test covers missing values
    ParquetValueStore(paths, reg).save(k, sv, label="vix_high", feature_id="vix_high")

    fresh = ParquetValueStore(paths, reg)  # another process's view: reads the registry and the file
    assert same(fresh.load(k), sv)
    assert fresh.problems == []

    # the file and row, read without the store
    (row,) = rows(reg)
    (f,) = files(paths)
    assert f.name == row["path"] and f.name.startswith(k.digest)
    raw = f.read_bytes()
    assert row["bytes"] == len(raw) and row["sha256"] == hashlib.sha256(raw).hexdigest()
    t = pq.read_table(f)
    assert t.schema.names == ["index", "value"]
    assert t.schema.field("index").type == (pa.timestamp("ns", tz="UTC") if minute else pa.date32())
    assert t.schema.field("value").type == pa.float64()
    assert t.column("value").null_count == int(np.isnan(sv.values).sum())  # missing = null in the file
    assert row["rows"] == 1000 and row["cache_key"] == k.digest and row["node_hash"] == "node-a"
    assert row["first_ts"] == sv.index[0].astype("datetime64[us]").item()
    assert row["last_ts"] == sv.index[-1].astype("datetime64[us]").item()
    assert (row["feature_id"], row["label"], row["grid"]) == ("vix_high", "vix_high", k.grid)
    assert json.loads(row["data_versions"]) == [["CTA", "c1"], ["VIX", "v1"]]
    assert json.loads(row["params"]) == [["w", 20]]


def test_empty_series_round_trips(env) -> None:
    paths, reg = env
    sv = StoredValues(np.array([], dtype="datetime64[D]"), np.array([], dtype=np.float64))
    ParquetValueStore(paths, reg).save(key(), sv, label="x", feature_id=None)
    assert same(ParquetValueStore(paths, reg).load(key()), sv)


@pytest.mark.parametrize(
    "other",
    [
        key(params=(("w", 21),)),
        key(data_versions=(("CTA", "c1"), ("VIX", "v2"))),  # a new VIX ingest
        key(as_of=dt.date(2024, 1, 31)),
        key(grid="daily:CME"),
        key(node="node-b"),
    ],
    ids=["param", "data_version", "as_of", "grid", "node"],
)
def test_a_different_key_misses(env, other: CacheKey) -> None:
    paths, reg = env
    sv = series(1, 50)
    ParquetValueStore(paths, reg).save(key(), sv, label="f", feature_id="f")
    fresh = ParquetValueStore(paths, reg)
    assert fresh.load(other) is None
    assert same(fresh.load(key()), sv)
    assert same(fresh.load(key(params=(("w", 20.0),))), sv)  # 20.0 is the value 20 (canonical form)
    assert fresh.problems == []


def test_save_replaces_an_entry_with_a_longer_range(env) -> None:
    paths, reg = env
    short, long = series(3, 100), series(3, 400)
    store = ParquetValueStore(paths, reg)
    store.save(key(), short, label="f", feature_id="f")
    assert same(ParquetValueStore(paths, reg).load(key()), short)
    store.save(key(), long, label="f", feature_id="f")
    assert same(store.load(key()), long)
    assert same(ParquetValueStore(paths, reg).load(key()), long)
    assert len(rows(reg)) == 1 and len(files(paths)) == 1  # the old file is gone


def test_an_old_index_view_follows_a_replacement_without_a_problem(env) -> None:
    """A store that read the index before another process replaced the entry serves the new file."""
    paths, reg = env
    ParquetValueStore(paths, reg).save(key(), series(3, 100), label="f", feature_id="f")
    reader = ParquetValueStore(paths, reg)
    assert reader.load(key(node="other")) is None  # index read now, naming the short file
    ParquetValueStore(paths, reg).save(key(), series(3, 300), label="f", feature_id="f")
    assert same(reader.load(key()), series(3, 300))
    assert reader.problems == []


def test_refuses_infinite_values_and_unknown_index_types(env) -> None:
    paths, reg = env
    store = ParquetValueStore(paths, reg)
    with pytest.raises(ValueError, match="finite"):
        store.save(
            key(), StoredValues(DAY0 + np.arange(2), np.array([1.0, np.inf])), label="x", feature_id=None
        )
    with pytest.raises(ValueError, match="datetime64"):
        store.save(key(), StoredValues(np.arange(2), np.array([1.0, 2.0])), label="x", feature_id=None)
    assert rows(reg) == [] and files(paths) == []


def test_batch_mode_writes_rows_at_flush(env) -> None:
    paths, reg = env
    store = ParquetValueStore(paths, reg, batch=True)
    with store:
        for i in range(3):
            store.save(key(node=f"n{i}"), series(i, 60), label=f"f{i}", feature_id=None)
        assert rows(reg) == []  # nothing visible to other processes yet
        assert ParquetValueStore(paths, reg).load(key(node="n1")) is None
        assert same(store.load(key(node="n1")), series(1, 60))  # but served to this evaluation
    assert len(rows(reg)) == 3
    fresh = ParquetValueStore(paths, reg)
    assert all(same(fresh.load(key(node=f"n{i}")), series(i, 60)) for i in range(3))


# ---------------------------------------------------------------------------------------------------------
# broken files behind a row
# ---------------------------------------------------------------------------------------------------------


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _garbage(f: Path) -> None:
    f.write_bytes(b"this is not parquet" * 50)


def _flip_bytes(f: Path) -> None:  # same size, other content
    b = bytearray(f.read_bytes())
    mid = len(b) // 2
    b[mid : mid + 8] = bytes(x ^ 0xFF for x in b[mid : mid + 8])
    f.write_bytes(bytes(b))


def _delete(f: Path) -> None:
    f.unlink()


@pytest.mark.parametrize(
    ("damage", "words"),
    [(_truncate, "corrupt"), (_garbage, "corrupt"), (_flip_bytes, "sha256"), (_delete, "missing")],
    ids=["truncated", "garbage", "flipped", "deleted"],
)
def test_a_broken_file_is_reported_dropped_and_never_returned(env, damage, words: str) -> None:
    paths, reg = env
    ParquetValueStore(paths, reg).save(key(), series(5, 300), label="vix_high", feature_id="vix_high")
    ParquetValueStore(paths, reg).save(key(node="ok"), series(6, 30), label="ok", feature_id="ok")
    (f,) = [p for p in files(paths) if p.name.startswith(key().digest)]
    damage(f)
    store = ParquetValueStore(paths, reg)
    assert store.load(key()) is None
    assert len(store.problems) == 1
    msg = store.problems[0]
    assert msg.startswith("feature vix_high: cache file ") and words in msg and "recomputed" in msg
    assert [r["cache_key"] for r in rows(reg)] == [key(node="ok").digest]  # the row is gone
    assert not f.exists()
    assert ParquetValueStore(paths, reg).load(key()) is None  # a plain miss now, no second report
    assert same(store.load(key(node="ok")), series(6, 30))  # the other entry is untouched
    assert len(store.problems) == 1


def test_a_row_that_disagrees_with_a_valid_file_is_dropped(env) -> None:
    """A readable parquet whose row count / range differ from its row (sha and size made to match)."""
    paths, reg = env
    ParquetValueStore(paths, reg).save(key(), series(5, 300), label="g", feature_id=None)
    (f,) = files(paths)
    other = series(5, 299)
    pq.write_table(
        pa.table(
            {
                "index": pa.array(other.index.astype(np.int32), pa.date32()),
                "value": pa.array(other.values, mask=np.isnan(other.values)),
            }
        ),
        f,
    )
    raw = f.read_bytes()
    with reg.transaction() as con:
        con.execute(
            "UPDATE feature_cache SET bytes = ?, sha256 = ?", [len(raw), hashlib.sha256(raw).hexdigest()]
        )
    store = ParquetValueStore(paths, reg)
    assert store.load(key()) is None
    assert store.problems and "299 rows, the registry says 300" in store.problems[0]
    assert store.problems[0].startswith("node g: ")
    assert rows(reg) == []


# ---------------------------------------------------------------------------------------------------------
# orphans, ls and clear
# ---------------------------------------------------------------------------------------------------------


def test_orphan_files_are_ignored_by_load_and_removed_by_clear(env) -> None:
    paths, reg = env
    store = ParquetValueStore(paths, reg)
    store.save(key(), series(1, 40), label="f", feature_id="f")
    # a writer killed between rename and row: a complete file for another key, no row
    ParquetValueStore(paths, reg, batch=True).save(
        key(node="orphan"), series(2, 40), label="o", feature_id=None
    )
    tmp = paths.feature_cache_dir / ".tmp-0123-abc.parquet"  # a writer killed before its rename
    tmp.write_bytes(b"half")
    unrelated = paths.feature_cache_dir / "notes.txt"
    unrelated.write_text("the user's file")
    orphan = next(p for p in files(paths) if p.name.startswith(key(node="orphan").digest))
    fresh = ParquetValueStore(paths, reg)
    assert fresh.load(key(node="orphan")) is None and fresh.problems == []

    assert clear(paths, reg, older_than_days=1) == (0, 0)  # fresh orphans may belong to a running build
    old = time.time() - 2 * 86400
    for p in (orphan, tmp):
        os.utime(p, (old, old))
    want = orphan.stat().st_size + tmp.stat().st_size
    assert clear(paths, reg, older_than_days=1) == (0, want)
    assert not orphan.exists() and not tmp.exists() and unrelated.exists()
    assert same(ParquetValueStore(paths, reg).load(key()), series(1, 40))


def test_ls_and_clear_counts(env) -> None:
    paths, reg = env
    store = ParquetValueStore(paths, reg)
    store.save(key(node="a"), series(1, 10), label="a", feature_id="fa")
    store.save(key(node="b"), series(2, 20, minute=True), label="b", feature_id=None)
    store.save(key(node="c"), series(3, 30), label="c", feature_id="fc")
    size = {r["node_hash"]: r["bytes"] for r in rows(reg)}
    assert size == {
        n: next(p for p in files(paths) if p.name.startswith(key(node=n).digest)).stat().st_size
        for n in "abc"
    }
    with reg.transaction() as con:  # entry a was created ten days ago
        con.execute(
            "UPDATE feature_cache SET created_at = created_at - INTERVAL 10 DAY WHERE node_hash = 'a'"
        )

    entries = ls(reg)
    assert [e["node_hash"] for e in entries][-1] == "a"  # newest first
    by = {e["node_hash"]: e for e in entries}
    assert {n: by[n]["rows"] for n in "abc"} == {"a": 10, "b": 20, "c": 30}
    assert by["a"]["first"] == dt.date(2020, 1, 2) and by["a"]["last"] == dt.date(2020, 1, 11)
    assert by["b"]["first"] == dt.datetime(2024, 3, 4, 14, 30) and by["b"]["last"] == dt.datetime(
        2024, 3, 4, 14, 49
    )
    assert by["b"]["frequency"] == "1m" and by["a"]["data_versions"] == {"CTA": "c1", "VIX": "v1"}
    assert by["c"]["params"] == {"w": 20} and by["c"]["feature_id"] == "fc"

    assert clear(paths, reg, older_than_days=5) == (1, size["a"])
    assert sorted(e["node_hash"] for e in ls(reg)) == ["b", "c"]
    assert clear(paths, reg) == (2, size["b"] + size["c"])
    assert ls(reg) == [] and files(paths) == []
    assert clear(paths, reg) == (0, 0)
    with pytest.raises(ValueError):
        clear(paths, reg, older_than_days=-1)


# ---------------------------------------------------------------------------------------------------------
# kill -9 in the middle of saves (real subprocesses)
# ---------------------------------------------------------------------------------------------------------

N_BIG = 200_000
REPLACE_MAX = 300_000
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.evaluation.test_cache_store import N_BIG, REPLACE_MAX, key, make_env, series
    from runtime.evaluation.cache_store import ParquetValueStore

    paths, reg = make_env(Path(sys.argv[1]))
    store = ParquetValueStore(paths, reg)
    seed = int(sys.argv[3])
    while True:
        n = N_BIG + seed % 1000
        store.save(key(node=f"big{seed}", params=(("n", n),)), series(seed, n, minute=True),
                   label=f"big{seed}", feature_id=None)
        print("saved", flush=True)
        m = 1000 + (seed * 7919) % (REPLACE_MAX - 1000)  # one key re-saved with other lengths
        store.save(key(node="replace"), series(99, m), label="replace", feature_id="replace")
        seed += 1
    """
)


def test_kill_minus_9_mid_save_leaves_no_wrong_entry(tmp_path: Path) -> None:
    root = tmp_path / "killed"
    root.mkdir()
    repo = Path(__file__).resolve().parents[2]
    rnd = random.Random(20261202)
    kills = 0
    rounds = 5
    for round_ in range(rounds):
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(repo), str(1000 * round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        line = p.stdout.readline()  # one entry saved: the kill then lands anywhere in the next saves
        assert line.strip() == "saved", p.stderr.read() if p.stderr else ""
        time.sleep(rnd.uniform(0.0, 2.0))
        assert p.poll() is None, p.stderr.read() if p.stderr else ""  # still saving when killed
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        kills += p.returncode == -signal.SIGKILL
    assert kills == rounds

    paths, reg = make_env(root)
    entries = ls(reg)
    assert len(entries) >= rounds  # each child saved one new key at least (the test is not vacuous)
    store = ParquetValueStore(paths, reg)
    for e in entries:
        if e["node_hash"] == "replace":
            got = store.load(key(node="replace"))
            assert got is not None
            n = len(got.index)
            assert same(got, series(99, n)) and n == e["rows"]
        else:
            seed, n = int(e["node_hash"][3:]), e["params"]["n"]
            assert same(
                store.load(key(node=e["node_hash"], params=(("n", n),))), series(seed, n, minute=True)
            )
    assert store.problems == []
    # whatever the kills left unnamed (orphans, temp files) goes with clear; named files stay
    old = time.time() - 2 * 86400
    for f in files(paths):
        os.utime(f, (old, old))
    assert clear(paths, reg, older_than_days=1)[0] == 0  # entries were created today: all kept
    assert sorted(p.name for p in files(paths)) == sorted(e["path"] for e in ls(reg))


# ---------------------------------------------------------------------------------------------------------
# `backtest cache ls | clear` (the sub-app, on a demo project)
# ---------------------------------------------------------------------------------------------------------


def test_cache_cli_ls_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from runtime.app import App
    from runtime.cache_cli import app as cache_app
    from runtime.contracts import UserError
    from tests.foundation.helpers import demo_project

    project = demo_project(tmp_path / "proj")
    monkeypatch.chdir(project)
    a = App(root=project)
    store = ParquetValueStore(a.paths, a.registry)
    store.save(key(node="a"), series(1, 10), label="vix_high", feature_id="vix_high")
    store.save(
        key(node="b", grid="1m:ES:RTH"), series(2, 20, minute=True), label="lag(x, 1)", feature_id=None
    )
    runner = CliRunner()

    r = runner.invoke(cache_app, ["ls"])
    assert r.exit_code == 0, r.output
    for k in (key(node="a"), key(node="b", grid="1m:ES:RTH")):
        assert k.digest[:12] in r.output
    assert "vix_high" in r.output and "lag(x, 1)" in r.output and "1m:ES:RTH" in r.output
    assert "2020-01-02 .. 2020-01-11" in r.output and "2 entries" in r.output

    r = runner.invoke(cache_app, ["clear", "--older-than", "1"])
    assert r.exit_code == 0 and "removed 0 cache entries older than 1 days" in r.output
    r = runner.invoke(cache_app, ["clear"])
    assert r.exit_code == 0 and "removed 2 cache entries" in r.output, r.output
    assert ls(a.registry) == [] and files(a.paths) == []
    r = runner.invoke(cache_app, ["ls"])
    assert r.exit_code == 0 and "the feature cache is empty" in r.output

    r = runner.invoke(cache_app, ["clear", "--older-than", "-2"])
    assert r.exit_code != 0 and isinstance(r.exception, UserError)
    assert "--older-than 30" in str(r.exception)
