"""`backtest cache ls | clear`: the feature cache's entries as a table, and removing them.

A sub-app of its own module so runtime/cli.py registers it with one line
(`app.add_typer(cache_app, name="cache")`). It reads the global --config/--profile from the root
context like every command, and accepts them after the command too.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from runtime.cli_base import BacktestTyper, ConfigOpt, ProfileOpt, command_app, console
from runtime.cli_base import say as _say
from runtime.contracts import UserError

app = BacktestTyper(no_args_is_help=True, help="List or clear the feature cache (FEATURE_CACHE_DIR).")


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as file managers show sizes)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


@app.command("ls")
def cache_ls(ctx: typer.Context, config: ConfigOpt = None, profile: ProfileOpt = None) -> None:
    """Every cached value: key prefix, feature or label, grid, range, rows, size, created (newest first)."""
    from runtime.evaluation.cache_store import ls

    a = command_app(ctx, config, profile, "cache-ls")
    entries = ls(a.registry)
    if not entries:
        _say(f"the feature cache is empty ({a.paths.feature_cache_dir})")
        return
    t = Table(title=f"Feature cache ({a.paths.feature_cache_dir})")
    for col, justify in (
        ("key", "left"),
        ("feature / label", "left"),
        ("grid", "left"),
        ("range (UTC)", "left"),
        ("rows", "right"),
        ("bytes", "right"),
        ("created (UTC)", "left"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in entries:
        what = e["feature_id"] or e["label"] or ""
        if e["feature_id"] and e["label"] and e["label"] != e["feature_id"]:
            what = f"{e['feature_id']} ({e['label']})"
        rng = f"{e['first']} .. {e['last']}" if e["rows"] else "(empty)"
        created = e["created"].strftime("%Y-%m-%d %H:%M:%S") if e["created"] else ""
        t.add_row(
            e["key"][:12], what, e["grid"] or "", rng, f"{e['rows']:,}", human_bytes(e["bytes"]), created
        )
    console.print(t)
    total = sum(e["bytes"] for e in entries)
    _say(f"{len(entries)} entries, {human_bytes(total)}")


@app.command("clear")
def cache_clear(
    ctx: typer.Context,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", metavar="DAYS", help="only entries created more than DAYS days ago"),
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Remove cached values (all, or those older than DAYS) and files no entry names (killed writers)."""
    from runtime.evaluation.cache_store import clear

    if older_than is not None and not older_than >= 0:
        raise UserError(f"--older-than {older_than:g}: give a number of days >= 0, e.g. --older-than 30")
    a = command_app(ctx, config, profile, "cache-clear")
    entries, freed = clear(a.paths, a.registry, older_than)
    scope = "" if older_than is None else f" older than {older_than:g} days"
    _say(f"removed {entries} cache entries{scope}; freed {human_bytes(freed)} in {a.paths.feature_cache_dir}")
