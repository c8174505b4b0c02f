"""`backtest optimize STUDY_ID [--n-trials N] [--workers K] [--resume] [--timeout S]`: the command function.

Its own module so runtime/cli.py registers it with one line (`app.command("optimize")(optimize_cmd)`).
A rich progress bar (trials, trials/s, best feasible value) while it runs, then the best trial with its
parameters ready to paste into the workbook, the top re-runs (IS vs OOS) and where everything is.
No feasible trial is not an error (exit 0): the study ran, its outputs say why (design/DECISIONS.md).
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from runtime.cli_base import ConfigOpt, ProfileOpt, command_app, console
from runtime.cli_base import say as _say


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _progress_bar() -> tuple[Any, Any]:
    """A rich Progress and the run_study callback that drives it (trials done, trials/s, best so far)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = bar.add_task("study", total=None, rate="", best="-")
    t0 = time.perf_counter()

    def update(done: int, total: int, best: float | None) -> None:
        dt = time.perf_counter() - t0
        rate = f"{done / dt:.1f} trials/s" if dt > 0 else ""
        bar.update(task, completed=done, total=total, rate=rate, best=_num(best))

    return bar, update


def best_table(out: Any) -> Table:
    """The top re-runs: trial, params, IS and OOS of the primary metric."""
    doc = json.loads((out.run_dir / "study.json").read_text(encoding="utf-8"))
    m = doc["primary"]
    t = Table(title=f"study {doc['study_id']}: top {len(doc['top_runs'])} feasible trials, re-run in full")
    t.add_column("trial", justify="right")
    for p in doc["searched"]:
        t.add_column(p["key"], justify="right")
    t.add_column(f"IS {m}", justify="right")
    t.add_column(f"OOS {m}", justify="right")
    t.add_column("run")
    by_trial = {}
    import pyarrow.parquet as pq

    tbl = pq.read_table(out.run_dir / "trials.parquet", columns=["number", "params"]).to_pylist()
    by_trial = {r["number"]: json.loads(r["params"]) for r in tbl}
    for x in doc["top_runs"]:
        ps = by_trial.get(x["trial"], {})
        t.add_row(
            str(x["trial"]),
            *(_num(ps.get(p["key"])) for p in doc["searched"]),
            _num((x.get("is") or {}).get(m)),
            _num((x.get("oos") or {}).get(m)),
            x["run_id"],
        )
    return t


def optimize_cmd(
    ctx: typer.Context,
    study_id: Annotated[str, typer.Argument(help="an OPTIMIZATION_STUDIES study_id, e.g. st_spx_cta")],
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", help="trials to run (default: the study's n_trials)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="worker processes on the same journal")] = 1,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="continue a killed or timed-out study run (keeps finished trials)"),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="stop asking new trials after S seconds")
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Run an Optuna study on IS only, re-run its top trials in full, write DATA_ROOT/runs/<study_run>/
    (journal.log, trials.parquet, study.json, report.html)."""
    from runtime.optimize.study import run_study

    a = command_app(ctx, config, profile, f"optimize-{study_id}")
    bar, update = _progress_bar()
    with bar:
        out = run_study(
            a.snapshot,
            a.paths,
            a.registry,
            study_id,
            n_trials=n_trials,
            workers=workers,
            resume=resume,
            timeout=timeout,
            progress=update,
        )
    if not out.created:
        _say(f"study run {out.study_run_id} exists (same snapshot, data and study): {out.run_dir}")
    n = out.n_complete + out.n_pruned
    _say(
        f"study {study_id} ({out.spec.method}, {out.spec.direction} IS {out.spec.primary}): {n} trials "
        f"({out.n_complete} complete, {out.n_pruned} pruned, {out.n_feasible} feasible), "
        f"{out.trials_per_second:.1f} trials/s"
    )
    for note in out.notes:
        _say(f"note: {note}")
    if out.best_trial is None:
        _say("no feasible trial: nothing to re-run; see trials.parquet (column reason)")
    else:
        _say(f"best trial {out.best_trial}: IS {out.spec.primary} = {_num(out.best_value)}")
        given = out.best_params or {}
        best = {p.key: given[p.key] for p in out.spec.searched if p.key in given}  # in X-row order
        _say("paste into OPTIMIZATION_PARAMS default_value_if_not_optimized (or run it):")
        for k, v in best.items():
            _say(f"  {k} = {v}")
        # the run needs the fixed values too (a default_value_if_not_optimized may differ from the workbook's)
        _say(f"  backtest run {out.spec.backtest_id} --params '{json.dumps(dict(given))}'")
        console.print(best_table(out))
    _say(f"study run: {out.run_dir} (study.json, trials.parquet, journal.log)")
    report = out.run_dir / "report.html"
    if out.created or not report.is_file():
        from runtime.optimize.report import report_options, write_report

        report = write_report(out.run_dir, **report_options(a.snapshot, study_id))
    _say(f"report: {report}")
    _say(f"dashboard: optuna-dashboard {out.run_dir / 'journal.log'}")
