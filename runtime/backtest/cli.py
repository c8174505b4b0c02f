"""`backtest run BACKTEST_ID [--params JSON] [--force]`: the command function, registered by runtime/cli.py.

Its own module so runtime/cli.py adds it with one line (`app.command("run")(run_cmd)`); like every
command it reads the global --config/--profile from the root context and accepts them after it too.
User errors are UserError (exit 1 through runtime.cli.main, no traceback, nothing written).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.table import Table

from runtime.cli_base import ConfigOpt, ProfileOpt, command_app, console, parse_params_json
from runtime.cli_base import say as _say

#: the summary's rows: (metric id, label, format)
SUMMARY = (
    ("total_pnl", "net PnL", "money"),
    ("gross_pnl", "gross PnL", "money"),
    ("total_costs", "costs", "money"),
    ("cagr", "CAGR", "pct"),
    ("volatility", "volatility", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("max_drawdown", "max drawdown", "pct"),
    ("calmar", "Calmar", "ratio"),
    ("n_trades", "trades", "int"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "profit factor", "ratio"),
    ("avg_trade", "avg trade", "money"),
    ("exposure", "exposure", "pct"),
    ("turnover", "turnover (x/yr)", "ratio"),
    ("n_bars", "bars", "int"),
    ("end_equity", "end equity", "money"),
)


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return {"money": f"{v:,.0f}", "pct": f"{100 * v:.2f}%", "int": f"{v:,.0f}"}.get(kind, f"{v:.2f}")


def summary_table(backtest_id: str, metrics: dict[str, Any]) -> Table:
    """IS and OOS side by side, then full."""
    t = Table(title=f"backtest {backtest_id}")
    t.add_column("metric")
    for seg in ("is", "oos", "full"):
        t.add_column(seg.upper(), justify="right")
    for key, label, kind in SUMMARY:
        t.add_row(label, *(_fmt(metrics.get(seg, {}).get(key), kind) for seg in ("is", "oos", "full")))
    return t


def run_cmd(
    ctx: typer.Context,
    backtest_id: Annotated[str, typer.Argument(help="a BACKTESTS backtest_id, e.g. bt_spx_cta")],
    params: Annotated[
        str | None,
        typer.Option(
            "--params",
            help="parameters as JSON: '$name' keys of the strategy ('{\"window\": 40}'), "
            "'<feature_id>.<name>' ('{\"vix_high.threshold\": 21}') and 'backtest.<column>' "
            '(\'{"backtest.slippage_value": 1, "backtest.cost_multiplier": 2}\')',
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="recompute a run that already exists")] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Run one backtest: evaluate, simulate, write DATA_ROOT/runs/<run_id>/ and print IS/OOS metrics."""
    from runtime.backtest.run import run_backtest

    p = parse_params_json(params)
    a = command_app(ctx, config, profile, f"run-{backtest_id}")
    out = run_backtest(a.snapshot, a.paths, a.registry, backtest_id, p, force=force)
    if not out.created:
        _say(
            f"run {out.run_id} exists (same snapshot, data and params): {out.run_dir}; --force recomputes it"
        )
    console.print(summary_table(backtest_id, out.metrics))
    for n in out.notes:
        _say(f"note: {n}")
    if out.created:
        tm = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
        _say(f"run {out.run_id} in {out.seconds:.1f}s ({tm})")
    sheet = out.run_dir / "tearsheet.html"
    _say(f"tearsheet: {sheet}" if sheet.is_file() else f"artifacts: {out.run_dir}")
