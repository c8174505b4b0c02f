"""Helpers shared by the foundation tests: workbook cell edits, a design-docs tree, a small demo project."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from tests.conftest import run_cli


def wb_path(project: Path) -> Path:
    return project / "config" / "run_config.xlsx"


def edit(path: Path, changes: list[tuple[str, str, object]]) -> None:
    """Set cells (sheet, 'A1', value) in a saved workbook, as a user editing it in Excel would."""
    wb = openpyxl.load_workbook(path)
    for sheet, cell, value in changes:
        wb[sheet][cell] = value
    wb.save(path)


def write_docs(root: Path) -> None:
    """The design docs and instructions a project has (old text, so an update is visible)."""
    (root / "design").mkdir(exist_ok=True)
    (root / "instructions").mkdir(exist_ok=True)
    for name in ("SPEC", "WORKFLOW", "ROADMAP", "DECISIONS", "PROGRESS"):
        (root / "design" / f"{name}.md").write_text(f"# {name}\nold text of {name}\n")
    (root / "instructions" / "00_setup.md").write_text("# setup\n")
    (root / "instructions" / "01_daily_workflow.md").write_text("# daily\n")


def demo_project(root: Path, *steps: list[str]) -> Path:
    """Template exported, DATA_ROOT created, two days of tiny synthetic ES DBN, then `steps` via the real CLI."""
    from runtime.config.export import export_workbook
    from runtime.config.template import write_template

    (root / "config").mkdir(parents=True)
    write_template(wb_path(root))
    export_workbook(wb_path(root))
    for args in (["init", "--data"], ["demo-data", "--days", "2", "--trades-per-day", "2000"], *steps):
        r = run_cli(args, root)
        assert r.code == 0, (args, r.err)
    return root
