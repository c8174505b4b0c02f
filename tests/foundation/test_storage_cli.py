"""DATA_ROOT layout, registry (migrations, lock between two real processes), status, logs, docs, context pack."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from runtime.config.export import export_workbook
from runtime.config.loader import load_snapshot, snapshot_paths
from runtime.contracts import UserError
from runtime.storage.paths import ensure_layout, foreign_path_reason
from runtime.storage.registry import SCHEMA_VERSION, TABLES, Registry, RegistryLockedError
from tests.foundation.helpers import write_docs

LAYOUT = ["duckdb", "raw", "canonical", "derived", "features_cache", "runs", "logs"]


@pytest.fixture
def exported(project: Path) -> Path:
    export_workbook(project / "config" / "run_config.xlsx")
    return project


def test_init_data_creates_layout_and_registry(exported: Path, cli) -> None:
    data = exported / "data"
    r = cli(["status"], cwd=exported)  # never created silently: it could be an unmounted drive
    assert r.code == 1 and "backtest init --data" in r.err and not data.exists()
    assert cli(["init", "--data"], cwd=exported).code == 0
    r = cli(["status"], cwd=exported)
    assert r.code == 0, r.err
    for d in LAYOUT:
        assert (data / d).is_dir(), d
    assert (data / "duckdb" / "research.duckdb").is_file()
    con = duckdb.connect(str(data / "duckdb" / "research.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(TABLES) | {"schema_version"} <= tables
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
    for word in ("portable", str(data), "SPX", "ES", "Datasets"):
        assert word in r.out, word
    logs = list((data / "logs").glob("*_status_*.log"))
    assert len(logs) == 1 and "argv: status" in logs[0].read_text()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.duckdb")
    assert reg.migrate() == 0
    assert reg.migrate() == SCHEMA_VERSION
    assert reg.schema_version() == SCHEMA_VERSION
    with reg.transaction() as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    with pytest.raises(UserError, match="newer than this code"):
        reg.migrate()


def test_transaction_rolls_back(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.duckdb")
    reg.migrate()
    with pytest.raises(ZeroDivisionError), reg.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind) VALUES ('r1', 'x')")
        1 / 0  # noqa: B018
    assert reg.query("SELECT count(*) n FROM runs")[0]["n"] == 0


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO runs (run_id, kind) VALUES ('holder', 'x')")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
    con.close()
    """
)


def _hold(db: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_second_process_waits_then_fails_clearly(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    Registry(db).migrate()
    holder = _hold(db, 4.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(RegistryLockedError) as ei, Registry(db, lock_timeout=1.0).connect():
            pass
        waited = time.monotonic() - t0
        assert waited >= 0.9  # it retried before giving up
        msg = str(ei.value)
        assert "locked by process" in msg and str(holder.pid) in msg and "run the command again" in msg
    finally:
        holder.wait(timeout=30)


def test_second_process_retries_and_succeeds(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    Registry(db).migrate()
    holder = _hold(db, 1.0)
    try:
        with Registry(db, lock_timeout=20.0).transaction() as con:
            con.execute("INSERT INTO runs (run_id, kind) VALUES ('second', 'x')")
    finally:
        holder.wait(timeout=30)
    ids = {r["run_id"] for r in Registry(db).query("SELECT run_id FROM runs")}
    assert ids == {"holder", "second"}


def test_locked_registry_from_the_cli_exits_1(exported: Path, cli) -> None:
    assert cli(["init", "--data"], cwd=exported).code == 0
    r = cli(["status"], cwd=exported)
    assert r.code == 0
    holder = _hold(exported / "data" / "duckdb" / "research.duckdb", 25.0)
    try:
        r = cli(["status"], cwd=exported, env={"BACKTEST_LOCK_TIMEOUT": "1"})
        assert r.code == 1
        assert "locked" in r.err and "Traceback" not in r.err
    finally:
        holder.kill()
        holder.wait()


def test_foreign_paths() -> None:
    assert foreign_path_reason(r"E:\BacktestData") is not None
    assert foreign_path_reason(r"\\server\share") is not None
    assert foreign_path_reason("data") is None
    assert foreign_path_reason("/srv/data") is None


def test_snapshot_paths_resolution(exported: Path) -> None:
    snap = load_snapshot(exported / "config" / "exports" / "latest.json")
    p = snapshot_paths(snap)
    assert p.code_root == exported.resolve()
    assert p.data_root == exported.resolve() / "data"
    assert p.duckdb_file == p.data_root / "duckdb" / "research.duckdb"
    assert p.export_config_dir == exported.resolve() / "config" / "exports"
    created = ensure_layout(p)
    assert p.raw_dir in created
    with pytest.raises(UserError, match="Windows path"):
        snapshot_paths(snap, "windows_pcash")


def test_missing_snapshot_is_a_clear_error(project: Path, cli) -> None:
    r = cli(["status"], cwd=project)
    assert r.code == 1 and "backtest config export" in r.err and "Traceback" not in r.err


# ---- docs and context pack ---------------------------------------------------------------------------


def test_docs_archive_and_update(exported: Path, cli, tmp_path: Path) -> None:
    write_docs(exported)
    r = cli(["docs", "archive"], cwd=exported)
    assert r.code == 0, r.err
    archived = list((exported / "archive").iterdir())
    assert len(archived) == 1
    assert (archived[0] / "design" / "SPEC.md").read_text() == "# SPEC\nold text of SPEC\n"
    new = tmp_path / "newdocs"
    (new / "design").mkdir(parents=True)
    (new / "design" / "SPEC.md").write_text("# SPEC\nnew text\n")
    (new / "instructions").mkdir()
    (new / "instructions" / "00_setup.md").write_text("# setup v2\n")
    time.sleep(0.01)
    r = cli(["docs", "update", "--from", str(new)], cwd=exported)
    assert r.code == 0, r.err
    assert (exported / "design" / "SPEC.md").read_text() == "# SPEC\nnew text\n"
    assert (exported / "instructions" / "00_setup.md").read_text() == "# setup v2\n"
    assert (exported / "design" / "ROADMAP.md").read_text().startswith("# ROADMAP")
    archives = sorted((exported / "archive").iterdir())
    assert len(archives) == 1  # the docs before the update were already archived: no duplicate (issue 8)
    assert (archives[-1] / "design" / "SPEC.md").read_text() == "# SPEC\nold text of SPEC\n"
    r = cli(["docs", "update", "--from", str(tmp_path / "nothing")], cwd=exported)
    assert r.code == 1 and "not a folder" in r.err


def test_context_pack(exported: Path, cli) -> None:
    write_docs(exported)
    subprocess.run(["git", "init", "-q"], cwd=exported, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], cwd=exported, check=True
    )
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first"],
        cwd=exported,
        check=True,
    )
    big = exported / "big.py"
    big.write_text("".join(f"line_{i} = {i}\n" for i in range(400)))
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "big.py"], cwd=exported, check=True
    )
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "big"], cwd=exported, check=True
    )
    secret = "db-SECRETkeyABCDEFGHIJKLMNOPQRSTUV"
    r = cli(["context-pack", "--print"], cwd=exported, env={"DATABENTO_API_KEY": secret})
    assert r.code == 0, r.err
    text = (exported / "context_pack.md").read_text()
    assert text in r.out or text.strip() in r.out
    for must in (
        "## Repo",
        "branch:",
        "HEAD:",
        "first",
        "## Folder tree",
        "## Key docs",
        "old text of SPEC",
        "old text of WORKFLOW",
        "old text of ROADMAP",
        "# setup",
        "# daily",
        "Latest snapshot",
        '"content_hash"',
        "DATA_ROOT:",
        "RAW_DIR:",
        "CANONICAL_DIR:",
        "DUCKDB_FILE:",
        "### big.py",
    ):
        assert must in text, must
    assert "line_0 = 0" in text and "line_119 = 119" in text and "line_120 = 120" not in text
    assert "line_399 = 399" in text and "line_340 = 340" in text and "line_339 = 339" not in text
    assert secret not in text and secret not in r.out
    logs = "".join(p.read_text() for p in (exported / "data" / "logs").glob("*.log"))
    assert secret not in logs


def test_context_pack_survives_missing_data_root(project: Path, cli) -> None:
    """No snapshot and no DATA_ROOT: sheet headers and a clear line instead of a crash."""
    r = cli(["context-pack", "--quiet"], cwd=project)
    assert r.code == 0, r.err
    text = (project / "context_pack.md").read_text()
    assert "workbook sheets and headers" in text and "- DATASETS: dataset_id, dataset_type" in text
    export_workbook(project / "config" / "run_config.xlsx")
    r = cli(["context-pack", "--quiet"], cwd=project)
    assert r.code == 0
    text = (project / "context_pack.md").read_text()
    assert "does not exist or is not mounted" in text
