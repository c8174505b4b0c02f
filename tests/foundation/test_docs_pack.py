"""`backtest context-pack` and `backtest docs archive|update` (issue 8, housekeeping), through the real CLI.

Each test builds its own project folder (template workbook, exported, a small git history) and checks the files
on disk and the command's output; expected values are written out by hand here.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from runtime.config.export import export_workbook
from tests.foundation.helpers import write_docs

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]


def _git(root: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def repo(project: Path) -> Path:
    """An exported project with docs, committed; then a committed previous context_pack.md and an archive."""
    export_workbook(project / "config" / "run_config.xlsx")
    write_docs(project)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "first")
    (project / "context_pack.md").write_text("# context_pack.md\nPREVIOUS-PACK-MARKER\n" * 50)
    (project / "archive" / "20200101T000000000000Z" / "design").mkdir(parents=True)
    (project / "archive" / "20200101T000000000000Z" / "design" / "SPEC.md").write_text("ARCHIVED-MARKER\n")
    (project / "design" / "SPEC.md").write_text("# SPEC\nnew SPEC text\n")
    (project / "tool.py").write_text("print('changed code')\n")
    _git(project, "add", "-A", "-f")
    _git(project, "commit", "-qm", "pack, archive, spec and code")
    return project


# ---- context-pack ------------------------------------------------------------------------------------------


def test_context_pack_never_includes_itself_nor_archives(repo: Path, cli) -> None:
    r = cli(["context-pack", "--quiet"], cwd=repo)
    assert r.code == 0, r.err
    text = (repo / "context_pack.md").read_text()
    assert "PREVIOUS-PACK-MARKER" not in text and "ARCHIVED-MARKER" not in text
    assert "- context_pack.md (this file: never repeated inside itself)" in text
    assert "### tool.py" in text and "print('changed code')" in text  # changed code is still there
    # a key doc changed in the last commits appears once (Key docs), not twice
    assert text.count("new SPEC text") == 1 and "- design/SPEC.md (in Key docs above)" in text
    # running it again does not grow: the pack does not nest the pack it replaces
    first_len = len(text.splitlines())
    _git(repo, "add", "-A", "-f")
    _git(repo, "commit", "-qm", "regenerated pack")
    assert cli(["context-pack", "--quiet"], cwd=repo).code == 0
    again = (repo / "context_pack.md").read_text()
    assert abs(len(again.splitlines()) - first_len) <= 3  # only the commit list differs
    assert again.count("# context_pack.md") == 1


def test_context_pack_prints_a_summary_by_default(repo: Path, cli) -> None:
    secret = "db-SECRETkeyABCDEFGHIJKLMNOPQRSTUV"
    (repo / "tool.py").write_text(f"KEY = '{secret}'\n")
    _git(repo, "commit", "-qam", "oops, a key")
    r = cli(["context-pack"], cwd=repo, env={"DATABENTO_API_KEY": secret})
    assert r.code == 0, r.err
    text = (repo / "context_pack.md").read_text()
    n_lines = len(text.splitlines())
    out = r.out.splitlines()
    assert len(out) < 15 < n_lines  # a summary, not the file
    assert str(repo / "context_pack.md") in out[0] and f"{n_lines:,} lines" in out[0]
    assert f"{len(text.encode()) / 1024:,.0f} KiB" in out[0]
    for section in ("Repo", "Folder tree (3 levels)", "Key docs", "Config", "SSD data layout"):
        assert any(line.strip().startswith(section) for line in out[1:]), section
    assert "--print" in r.out
    # the section counts add up to the file (plus the 4-line title block)
    counts = [int(line.rsplit(None, 2)[-2].replace(",", "")) for line in out[1:-1]]
    assert sum(counts) + 4 == n_lines
    assert secret not in text and secret not in r.out and "<DATABENTO_API_KEY redacted>" in text


def test_context_pack_print_flag_prints_it_all(repo: Path, cli) -> None:
    r = cli(["context-pack", "--print"], cwd=repo)
    assert r.code == 0, r.err
    text = (repo / "context_pack.md").read_text()
    assert r.out.startswith(text)
    for must in ("## Repo", "## Key docs", "old text of WORKFLOW", "Latest snapshot", "DATA_ROOT:"):
        assert must in text, must  # spec 10.2's content is all still there


# ---- docs archive ------------------------------------------------------------------------------------------


def test_docs_archive_twice_unchanged_makes_one_archive(project: Path, cli) -> None:
    write_docs(project)
    r1 = cli(["docs", "archive"], cwd=project)
    assert r1.code == 0, r1.err
    archives = sorted(p for p in (project / "archive").iterdir())
    assert len(archives) == 1 and str(archives[0]) in r1.out
    assert _tree_digest(archives[0] / "design") == _tree_digest(project / "design")
    assert _tree_digest(archives[0] / "instructions") == _tree_digest(project / "instructions")
    r2 = cli(["docs", "archive"], cwd=project)
    assert r2.code == 0, r2.err
    assert sorted((project / "archive").iterdir()) == archives
    assert "unchanged, already archived at" in r2.out and str(archives[0]) in r2.out
    # a changed doc is a new archive; changing it back finds the first one again
    (project / "design" / "ROADMAP.md").write_text("# ROADMAP\nv2\n")
    assert cli(["docs", "archive"], cwd=project).code == 0
    assert len(list((project / "archive").iterdir())) == 2
    (project / "design" / "ROADMAP.md").write_text("# ROADMAP\nold text of ROADMAP\n")
    r3 = cli(["docs", "archive"], cwd=project)
    assert r3.code == 0 and str(archives[0]) in r3.out and len(list((project / "archive").iterdir())) == 2


def test_docs_archive_without_docs_is_a_clear_error(project: Path, cli) -> None:
    r = cli(["docs", "archive"], cwd=project)
    assert r.code == 1 and "nothing to archive" in r.err and "Traceback" not in r.err
    assert not (project / "archive").exists()


# ---- docs update -------------------------------------------------------------------------------------------


def test_docs_update_refuses_unknown_files_and_writes_nothing(project: Path, cli, tmp_path: Path) -> None:
    write_docs(project)
    before = _tree_digest(project / "design") | {
        f"i/{k}": v for k, v in _tree_digest(project / "instructions").items()
    }
    new = tmp_path / "newdocs"
    (new / "design").mkdir(parents=True)
    (new / "design" / "SPEC.md").write_text("# SPEC\nnew text\n")
    (new / "design" / "SEPC.md").write_text("# typo of SPEC\n")  # unknown name
    (new / "ROADMPA.md").write_text("# typo, flat\n")  # unknown name, flat layout
    (new / "notes.txt").write_text("not a doc\n")  # not a .md
    (new / "other").mkdir()
    (new / "other" / "WORKFLOW.md").write_text("# in a folder docs update does not read\n")
    (new / ".DS_Store").write_bytes(b"\0")  # hidden: ignored, not an error
    r = cli(["docs", "update", "--from", str(new)], cwd=project)
    assert r.code == 1 and "Traceback" not in r.err
    err = " ".join(r.err.split())
    assert "nothing written" in err and "4 file(s) refused" in err
    for name in ("SEPC.md", "ROADMPA.md", "notes.txt", "WORKFLOW.md"):
        assert name in err, name
    assert "--add-new" in err and ".DS_Store" not in err
    after = _tree_digest(project / "design") | {
        f"i/{k}": v for k, v in _tree_digest(project / "instructions").items()
    }
    assert after == before and not (project / "archive").exists()


def test_docs_update_add_new_takes_newwrite_docs(project: Path, cli, tmp_path: Path) -> None:
    write_docs(project)
    new = tmp_path / "newdocs"
    (new / "design").mkdir(parents=True)
    (new / "design" / "CHARTS.md").write_text("# a new design doc\n")
    (new / "design" / "SPEC.md").write_text("# SPEC\nold text of SPEC\n")  # identical: left alone
    (new / "00_setup.md").write_text("# setup v2\n")  # flat, routed to instructions/ by its name
    r = cli(["docs", "update", "--from", str(new), "--add-new"], cwd=project)
    assert r.code == 0, r.err
    assert (project / "design" / "CHARTS.md").read_text() == "# a new design doc\n"
    assert (project / "instructions" / "00_setup.md").read_text() == "# setup v2\n"
    assert not (project / "design" / "00_setup.md").exists()
    assert "updated 2 file(s)" in r.out and "unchanged 1: design/SPEC.md" in r.out
    archives = list((project / "archive").iterdir())
    assert len(archives) == 1
    assert (archives[0] / "instructions" / "00_setup.md").read_text() == "# setup\n"
    assert not (archives[0] / "design" / "CHARTS.md").exists()


def test_docs_update_reuses_an_identical_archive(project: Path, cli, tmp_path: Path) -> None:
    write_docs(project)
    assert cli(["docs", "archive"], cwd=project).code == 0
    new = tmp_path / "newdocs"
    (new / "design").mkdir(parents=True)
    (new / "design" / "SPEC.md").write_text("# SPEC\nnew text\n")
    r = cli(["docs", "update", "--from", str(new)], cwd=project)
    assert r.code == 0, r.err
    assert len(list((project / "archive").iterdir())) == 1  # the docs before the update were archived already
    assert "already archived at" in r.out
    assert (project / "design" / "SPEC.md").read_text() == "# SPEC\nnew text\n"


def test_docs_update_two_files_for_one_doc_is_refused(project: Path, cli, tmp_path: Path) -> None:
    write_docs(project)
    new = tmp_path / "newdocs"
    (new / "design").mkdir(parents=True)
    (new / "design" / "SPEC.md").write_text("# SPEC A\n")
    (new / "SPEC.md").write_text("# SPEC B\n")
    r = cli(["docs", "update", "--from", str(new)], cwd=project)
    assert r.code == 1 and "both replace design/SPEC.md" in " ".join(r.err.split())
    assert (project / "design" / "SPEC.md").read_text() == "# SPEC\nold text of SPEC\n"
