"""Every command against bad input: exit 1, a message that names the place, no traceback, no new files.

One real project (template workbook exported, DATA_ROOT created, two days of synthetic ES ingested and
derived) is shared by the table; each row runs the real console entry point in a subprocess and compares
the project tree (every file's bytes) before and after. The run log in LOG_DIR is the one thing a failed
run may add: that is where its details (and any traceback) belong.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.foundation.helpers import demo_project


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = demo_project(tmp_path_factory.mktemp("bad_inputs") / "proj", ["ingest", "databento"], ["derive"])
    bad = root / "bad"
    bad.mkdir()
    (bad / "corrupt.json").write_text('{"not": "a snapshot"', encoding="utf-8")
    (bad / "not_a_workbook.xlsx").write_text("hello", encoding="utf-8")
    (bad / "corrupt.dbn").write_bytes(b"DBN\x02" + bytes(range(256)) * 4)
    return root


def tree(root: Path) -> dict[str, str]:
    """Every file under root (but the run logs) with the hash of its bytes."""
    logs = root / "data" / "logs"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and logs not in p.parents
    }


# (command, arguments, what the message must say) - every command, several classes of mistake
CASES = [
    ("init", ["init"], "already exists; pass --force"),
    ("init", ["init", "--workbook", "/proc/nonexist/wb.xlsx"], "/proc/nonexist"),
    ("config validate", ["config", "validate", "--workbook", "missing.xlsx"], "missing.xlsx not found"),
    (
        "config validate",
        ["config", "validate", "--workbook", "bad/not_a_workbook.xlsx"],
        "not_a_workbook.xlsx",
    ),
    ("config export", ["config", "export", "--workbook", "bad/not_a_workbook.xlsx"], "not_a_workbook.xlsx"),
    ("config export", ["config", "export", "--out", "/proc/nonexist"], "/proc/nonexist"),
    ("demo-data", ["demo-data", "--start", "2018-13-01"], "--start '2018-13-01' is not a date"),
    ("demo-data", ["demo-data", "--days", "0"], "--days"),
    ("ingest daily", ["ingest", "daily", "--dataset", "NOPE"], "unknown dataset 'NOPE'"),
    ("ingest daily", ["ingest", "daily", "--config", "missing.json"], "missing.json not found"),
    (
        "ingest daily",
        ["ingest", "daily", "--config", "bad/corrupt.json"],
        "corrupt.json: not a readable snapshot",
    ),
    ("ingest databento", ["ingest", "databento", "--file", "missing.dbn"], "missing.dbn"),
    ("ingest databento", ["ingest", "databento", "--file", "bad/corrupt.dbn"], "corrupt.dbn"),
    ("ingest databento", ["ingest", "databento", "--file", "missing.dbn", "bad/corrupt.dbn"], ".dbn"),
    (
        "ingest databento",
        ["ingest", "databento", "--dataset", "SPX"],
        "DATASETS!B2: dataset SPX has dataset_type",
    ),
    ("ingest daily", ["ingest", "daily", "--dataset", "ES"], "DATASETS!B8: dataset ES has dataset_type"),
    (
        "derive",
        ["derive", "--start", "2018-12-10", "--end", "2018-12-01"],
        "--start 2018-12-10 is after --end",
    ),
    ("derive", ["derive", "--start", "2020-01-01", "--end", "2020-02-01"], "no ingested trade date"),
    ("derive", ["derive", "--start", "yesterday"], "--start 'yesterday' is not a date"),
    ("derive", ["derive", "--session", "XYZ"], "XYZ"),
    ("derive", ["derive", "--frobnicate"], "No such option: --frobnicate"),
    ("charts", ["charts", "--out", "/proc/nonexist"], "/proc/nonexist"),
    ("charts", ["charts", "--day", "2019-02-30"], "2019-02-30"),
    ("charts", ["charts", "--session", "XYZ"], "XYZ"),
    ("charts", ["charts", "--config", "bad/corrupt.json"], "corrupt.json"),
    ("compile", ["compile", "zscore(cta_flow"], "^"),
    ("compile", ["compile", 'to_daily(es_delta, how="sum") > 0'], 'lag(to_daily(es_delta, how="sum"), 1)'),
    (
        "compile",
        ["compile", "--param", "windw=3", "zscore(lag(cta_flow, 1), $window) > 0"],
        "--param windw=3",
    ),
    ("compile", ["compile", "--slot", "primay=cta_flow", "{primary} > 0"], "--slot primay=cta_flow"),
    ("compile", ["compile", "--format", "xml", "lag(cta_flow, 1) > 0"], "--format 'xml'"),
    ("compile", ["compile", "--execution", "later", "lag(cta_flow, 1) > 0"], "--execution 'later'"),
    ("compile", ["compile", "--config", "bad/corrupt.json", "lag(cta_flow, 1) > 0"], "corrupt.json"),
    ("status", ["status", "--config", "bad/corrupt.json"], "corrupt.json"),
    ("status", ["status", "--profile", "nope"], "unknown profile 'nope'"),
    ("context-pack", ["context-pack", "--frobnicate"], "No such option: --frobnicate"),
    (
        "context-pack",
        ["context-pack", "--config", "bad/corrupt.json"],
        "corrupt.json: not a readable snapshot",
    ),
    ("docs update", ["docs", "update", "--from", "/nonexistent"], "/nonexistent"),
    ("docs archive", ["docs", "archive"], "nothing to archive"),
    ("(none)", ["frobnicate"], "No such command 'frobnicate'"),
    ("(global)", ["--profile", "nope", "status"], "unknown profile 'nope'"),
]


@pytest.mark.parametrize(("command", "args", "says"), CASES, ids=[f"{c}: {' '.join(a)}" for c, a, _ in CASES])
def test_bad_input_exits_1_with_a_message_and_writes_nothing(proj, command, args, says):
    before = tree(proj)
    r = run_cli(args, proj)
    after = tree(proj)
    shown = r.out + r.err
    assert r.code == 1, shown
    assert "Traceback" not in shown
    assert says in shown, shown
    assert len(shown.strip().splitlines()) <= 12, shown  # a message, not a dump
    assert after == before, {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def test_an_unexpected_os_error_is_one_line_naming_the_path_and_the_log_has_the_traceback(proj):
    # `init --workbook` into a folder that cannot exist: no command checks that path, the entry point's
    # net must answer with the path and what failed; the traceback goes to the run log only.
    r = run_cli(["init", "--workbook", "/proc/nonexist/deeper/wb.xlsx"], proj)
    assert r.code == 1 and "Traceback" not in r.err
    (line,) = [x for x in r.err.splitlines() if x.strip()]
    assert line.startswith("error: ") and "/proc/nonexist" in line and "No such file or directory" in line
    assert "(in " in line  # where it failed: function, file and line
    log = Path(line.rsplit("details in ", 1)[1].strip())
    assert log.parent == proj / "data" / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "FileNotFoundError" in text
