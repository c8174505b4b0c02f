"""`backtest robustness TARGET [--profile ID] [--force]`: the command function, registered by runtime/cli.py.

Its own module so runtime/cli.py adds it with one line (`app.command("robustness")(robustness_cmd)`). Here
`--profile` is the ROBUSTNESS_PROFILES id (the issue's spelling); the PATHS profile is the global option
before the command (`backtest --profile laptop robustness st_spx_cta`) or `--paths-profile` after it.
User errors are UserError (exit 1 through runtime.cli.main, no traceback, nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runtime.cli_base import command_app, console
from runtime.cli_base import say as _say

LEVEL_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "info": "blue"}


def summary_table(summary: dict) -> Table:
    """One row per test: status, level, seconds and the verdict in plain words."""
    t = Table(title=f"robustness {summary.get('target')} (profile {summary.get('profile')})")
    for c in ("test", "status", "level", "s", "verdict"):
        t.add_column(c, justify="right" if c == "s" else "left", overflow="fold")
    for e in summary.get("tests", []):
        lv = (e.get("verdict") or {}).get("level", "info")
        text = (e.get("verdict") or {}).get("text", "")
        if e.get("note") and e.get("status") == "ok":
            text += f" ({e['note']})"
        t.add_row(
            e["test_id"],
            e["status"],
            f"[{LEVEL_STYLE.get(lv, 'white')}]{lv}[/]",
            f"{e.get('seconds') or 0:.1f}",
            text,
        )
    return t


def robustness_cmd(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="a backtest_id (e.g. bt_spx_cta) or a study_id (e.g. st_spx_cta)")
    ],
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="ROBUSTNESS_PROFILES id (default: the study's robustness_profile_id)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="recompute a robustness run that already exists")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="snapshot JSON (default config/exports/latest.json)")
    ] = None,
    paths_profile: Annotated[
        str | None, typer.Option("--paths-profile", help="PATHS profile to use instead of the active one")
    ] = None,
) -> None:
    """Run the robustness tests of a profile on a backtest or study; write DATA_ROOT/runs/<run_id>/."""
    from runtime.robustness.runner import run_robustness

    a = command_app(ctx, config, paths_profile, f"robustness-{target}")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=not sys.stdout.isatty(),
    ) as bar:  # fmt: skip
        task = bar.add_task("robustness", total=None)

        def progress(i: int, n: int, test_id: str) -> None:
            bar.update(
                task, total=n, completed=i, description=f"robustness: {test_id}" if test_id else "done"
            )

        out = run_robustness(
            a.snapshot, a.paths, a.registry, target, profile=profile, progress=progress, force=force
        )
    if not out.created:
        _say(
            f"robustness run {out.run_id} exists (same snapshot, data, target and profile); --force recomputes it"
        )
    console.print(summary_table(out.summary))
    for n in out.summary.get("notes") or []:
        _say(f"note: {n}")
    if out.created:
        _say(f"robustness run {out.run_id} in {out.seconds:.1f}s")
    page = Path(out.run_dir) / "report.html"
    _say(f"report: {page}" if page.is_file() else f"artifacts: {out.run_dir}")


__all__ = ["robustness_cmd"]
