"""The run's tearsheet: one self-contained HTML file (plotly.js embedded once, no CDN, opens offline).

Why these panels: a trader judges a run by its equity and drawdown around the IS/OOS boundary, where the
positions sat on the price, the month-by-month returns, the trades, the metrics side by side and what the
costs took; and must see exactly which expression produced it (its typed tree).
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from runtime.engine.contracts import SEGMENTS

EXCHANGE_TZ = "America/Chicago"  # CME: 1m bars are shown in exchange time
ROWS_SHOWN = 300  # trades listed in the HTML (the full list is trades.parquet)

_LABELS = {
    "total_pnl": ("Net PnL", "money"),
    "gross_pnl": ("Gross PnL", "money"),
    "total_costs": ("Costs", "money"),
    "cagr": ("CAGR", "pct"),
    "volatility": ("Volatility", "pct"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "max_drawdown": ("Max drawdown", "pct"),
    "calmar": ("Calmar", "ratio"),
    "turnover": ("Turnover (x/yr)", "ratio"),
    "n_trades": ("Trades", "int"),
    "win_rate": ("Win rate", "pct"),
    "profit_factor": ("Profit factor", "ratio"),
    "avg_trade": ("Avg trade", "money"),
    "exposure": ("Exposure", "pct"),
    "avg_hold_bars": ("Avg hold (bars)", "ratio"),
    "longest_drawdown_bars": ("Longest drawdown (bars)", "int"),
    "n_bars": ("Bars", "int"),
    "n_days": ("Days", "int"),
    "end_equity": ("End equity", "money"),
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header .sub{color:#b8c0cf;font-size:13px;margin-top:4px}
main{padding:12px 24px 40px;max-width:1500px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;margin:14px 0;padding:12px 16px}
h2{font-size:15px;margin:2px 0 10px;color:#333}
table{border-collapse:collapse;font-size:12.5px}
th,td{padding:3px 10px;border-bottom:1px solid #eef0f3;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600} td.l,th.l{text-align:left}
.grid2{display:grid;grid-template-columns:minmax(380px,560px) 1fr;gap:14px;align-items:start}
.neg{color:#b3261e} .pos{color:#1b7f3b}
.scroll{max-height:420px;overflow:auto}
code.expr{display:block;background:#f3f4f7;padding:8px;border-radius:4px;white-space:pre-wrap;font-size:12.5px}
.kv td{text-align:left} .kv td:first-child{color:#667;padding-right:18px}
.notes{font-size:12px;color:#555}
"""


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if kind == "money":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{100 * v:.2f}%"
    if kind == "int":
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _cls(v: Any, name: str) -> str:
    if name in ("total_pnl", "avg_trade", "cagr", "sharpe", "sortino", "gross_pnl") and isinstance(v, float):
        if v < 0:
            return "neg"
        if v > 0:
            return "pos"
    return ""


def _x(data: Any) -> pd.DatetimeIndex:
    """Plot times: dates (daily) or bar starts in exchange time, tz-naive (what plotly shows as is)."""
    if data.compiled.frequency == "1m":
        return pd.DatetimeIndex(data.time).tz_localize("UTC").tz_convert(EXCHANGE_TZ).tz_localize(None)
    return pd.DatetimeIndex(pd.to_datetime(data.time))


def _layout(fig: Any, data: Any, height: int) -> None:
    fig.update_layout(
        height=height,
        margin=dict(l=60, r=20, t=30, b=30),
        template="plotly_white",
        hovermode="x unified",
        legend=dict(orientation="h", y=1.06, x=0),
    )
    if data.compiled.frequency == "1m":  # no empty nights and weekends between RTH sessions
        fig.update_xaxes(rangebreaks=[dict(bounds=["sat", "mon"]), dict(bounds=[15.25, 8.5], pattern="hour")])


def _boundary(fig: Any, data: Any, x: pd.DatetimeIndex, rows: int) -> None:
    if data.oos_start is None or data.oos_start >= len(x):
        return
    at = x[data.oos_start]
    for r in range(1, rows + 1):
        fig.add_vline(x=at, line=dict(color="#d17b00", dash="dash", width=1.5), row=r, col=1)
    fig.add_annotation(
        x=at, y=1.0, yref="paper", text="OOS →", showarrow=False, xanchor="left", font=dict(color="#d17b00")
    )


def equity_figure(data: Any) -> Any:
    """Equity and drawdown, the IS/OOS boundary dashed."""
    from plotly.subplots import make_subplots

    x = _x(data)
    p = data.result.paths
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.04)
    fig.add_scatter(x=x, y=p["equity"], name="equity", line=dict(color="#2456a6", width=1.6), row=1, col=1)
    fig.add_scatter(
        x=x,
        y=-100 * p["drawdown"],
        name="drawdown %",
        fill="tozeroy",
        line=dict(color="#b3261e", width=1),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="equity", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    _layout(fig, data, 460)
    _boundary(fig, data, x, 2)
    return fig


def position_figure(data: Any) -> Any:
    """The close with the position held under it (long green, short red)."""
    from plotly.subplots import make_subplots

    x = _x(data)
    pos = data.result.paths["position"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    fig.add_scatter(x=x, y=data.close, name="close", line=dict(color="#333", width=1.1), row=1, col=1)
    for side, color, mask in (("long", "#1b7f3b", pos > 0), ("short", "#b3261e", pos < 0)):
        y = np.where(mask, data.close, np.nan)
        fig.add_scatter(x=x, y=y, name=f"{side} held", line=dict(color=color, width=2.2), row=1, col=1)
    fig.add_scatter(
        x=x, y=pos, name="position", line=dict(color="#2456a6", width=1, shape="hv"), row=2, col=1
    )
    unit = "contracts" if data.compiled.instrument.accounting == "contracts" else "units"
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text=unit, row=2, col=1)
    _layout(fig, data, 440)
    _boundary(fig, data, x, 2)
    return fig


def monthly_returns(data: Any) -> pd.DataFrame:
    """Year x month returns (%) from the equity path: each month's end equity over the previous month's."""
    eq = pd.Series(data.result.paths["equity"], index=_x(data))
    month_end = eq.groupby([eq.index.year, eq.index.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = data.compiled.initial_capital
    ret = 100 * (month_end / prev - 1)
    ret.index.names = ["year", "month"]
    tab = ret.unstack("month").reindex(columns=range(1, 13))
    if len(tab) == 1:  # one year: only its months (a short intraday run is not a year of blanks)
        tab = tab.loc[:, tab.notna().any()]
    return tab


def monthly_figure(data: Any) -> Any:
    import plotly.graph_objects as go

    tab = monthly_returns(data)
    z = tab.to_numpy()
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    text = [[("" if not np.isfinite(v) else f"{v:.1f}") for v in row] for row in z]
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    months = [names[int(c) - 1] for c in tab.columns]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=months,
            y=[str(y) for y in tab.index],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmin=-lim,
            zmax=lim,
            colorbar=dict(title="%"),
            hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(220, 26 * len(tab) + 90),
        margin=dict(l=60, r=20, t=20, b=30),
        template="plotly_white",
        yaxis=dict(autorange="reversed", type="category"),
    )
    return fig


def costs_figure(data: Any) -> Any:
    """Gross PnL, costs and net PnL per segment."""
    import plotly.graph_objects as go

    m = data.result.metrics
    segs = [s for s in SEGMENTS if m[s]["n_bars"] > 0]
    fig = go.Figure()
    for name, key, color, sign in (
        ("gross PnL", "gross_pnl", "#2456a6", 1),
        ("costs", "total_costs", "#d17b00", -1),
        ("net PnL", "total_pnl", "#1d2330", 1),
    ):
        fig.add_bar(
            x=[s.upper() for s in segs], y=[sign * m[s][key] for s in segs], name=name, marker_color=color
        )
    fig.update_layout(
        barmode="group",
        height=300,
        margin=dict(l=60, r=20, t=20, b=30),
        template="plotly_white",
        yaxis=dict(tickformat=",.0f"),
        legend=dict(orientation="h", y=1.1),
    )
    return fig


def _metrics_table(data: Any) -> str:
    m = data.result.metrics
    head = "".join(f"<th>{s.upper()}</th>" for s in SEGMENTS)
    rows = []
    for k, (label, kind) in _LABELS.items():
        cells = "".join(
            f'<td class="{_cls(m[s].get(k), k)}">{_fmt(m[s].get(k), kind)}</td>' for s in SEGMENTS
        )
        rows.append(f'<tr><td class="l">{label}</td>{cells}</tr>')
    return f'<table><tr><th class="l">metric</th>{head}</tr>{"".join(rows)}</table>'


def _trades_table(data: Any) -> str:
    tr = data.result.trades
    n = len(tr["pnl"])
    if n == 0:
        return "<p>No trade.</p>"
    x = _x(data)
    fmt = "%Y-%m-%d %H:%M" if data.compiled.frequency == "1m" else "%Y-%m-%d"
    head = (
        "<tr><th>#</th><th class='l'>entry</th><th class='l'>exit</th><th>side</th><th>contracts</th>"
        "<th>entry px</th><th>exit px</th><th>hold (bars)</th><th>costs</th><th>PnL</th><th>seg</th></tr>"
    )
    idx = list(range(min(n, ROWS_SHOWN // 2))) + list(range(max(ROWS_SHOWN // 2, n - ROWS_SHOWN // 2), n))
    rows = []
    for i in idx:
        e, xr = int(tr["entry_row"][i]), int(tr["exit_row"][i])
        seg = "OOS" if data.oos_start is not None and xr >= data.oos_start else "IS"
        pnl = float(tr["pnl"][i])
        side = "long" if tr["side"][i] > 0 else "short"
        ex = x[min(xr, len(x) - 1)].strftime(fmt) + (" (open)" if tr["open"][i] else "")
        rows.append(
            f"<tr><td>{i + 1}</td><td class='l'>{x[e].strftime(fmt)}</td><td class='l'>{ex}</td>"
            f"<td>{side}</td><td>{tr['contracts'][i]:,.4g}</td><td>{tr['entry_price'][i]:,.2f}</td>"
            f"<td>{tr['exit_price'][i]:,.2f}</td><td>{int(tr['hold_bars'][i])}</td>"
            f"<td>{tr['costs'][i]:,.2f}</td><td class='{'neg' if pnl < 0 else 'pos'}'>{pnl:,.2f}</td>"
            f"<td>{seg}</td></tr>"
        )
    more = f"<p class='notes'>{n:,} trades; the first and last {ROWS_SHOWN // 2} are listed (all in trades.parquet).</p>"
    return (
        more if n > ROWS_SHOWN else ""
    ) + f"<div class='scroll'><table>{head}{''.join(rows)}</table></div>"


def _day(data: Any, i: int) -> str:
    return str(_x(data)[i].date()) if len(data.time) else "-"


def _setup_table(data: Any, run_id: str) -> str:
    cb = data.compiled
    c = cb.column
    costs = c.costs
    rows = [
        ("run id", run_id),
        ("strategy / instrument", f"{cb.strategy_id} on {cb.instrument_id} ({cb.instrument.accounting})"),
        (
            "range",
            f"{cb.start} .. {cb.end}, traded {_day(data, 0)} .. {_day(data, -1)}"
            + (f", OOS after {cb.oos_from}" if cb.oos_from else ", no OOS"),
        ),
        ("grid", f"{cb.frequency}" + (f" {cb.session}" if cb.frequency == "1m" else f" {cb.calendar}")),
        (
            "execution",
            f"{c.execution.execution_time}"
            + (f" at {cb.custom_time} exchange time, next session" if cb.custom_time else "")
            + f", price model {costs.price_model}",
        ),
        (
            "costs per side",
            f"spread {costs.spread_value:g} {costs.spread_type}, slippage {costs.slippage_value:g} "
            f"{costs.slippage_type}, commission {costs.commission_value:g} {costs.commission_model}",
        ),
        (
            "positions",
            f"{c.position.mode}; long {c.position.allow_long}, short {c.position.allow_short}, "
            f"flat {c.position.allow_flat}; {c.position.contracts_per_unit:.4g} per unit",
        ),
        (
            "rules",
            f"min hold {c.rules.min_hold_days}d, cooldown {c.rules.cooldown_days}d, flip same day "
            f"{c.rules.allow_flip_same_day}, flat at session end {c.rules.flat_at_session_end}",
        ),
        ("capital", f"{cb.initial_capital:,.0f}"),
        ("params", ", ".join(f"{k}={v}" for k, v in cb.params.items()) or "none"),
        ("gates", ", ".join(f"{g} ({m})" for g, m in cb.gate_modes) or "none"),
    ]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _expressions(data: Any) -> str:
    out = []
    for role, ce in data.compiled.graphs.items():
        label = {"signal": "Signal", "entry_gate": "Entry gate", "freeze_gate": "Freeze gate (entry_and_exit only)",
                 "scaling": "Scaling"}[role]  # fmt: skip
        tree = ce.graph._repr_html_()
        out.append(
            f"<h2>{label} · {html.escape(ce.cell)}</h2><code class='expr'>{html.escape(ce.text)}</code>"
            f"<details{' open' if role == 'signal' else ''}><summary>typed tree</summary>{tree}</details>"
        )
    return "".join(out)


def render_tearsheet(data: Any, run_id: str) -> str:
    """The whole HTML page (plotly.js inline once; every figure a div drawn by it)."""
    from plotly.offline import get_plotlyjs

    cb = data.compiled
    figs = {
        "equity": equity_figure(data),
        "position": position_figure(data),
        "monthly": monthly_figure(data),
        "costs": costs_figure(data),
    }
    div = {
        k: f.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"fig-{k}", config={"displaylogo": False}
        )
        for k, f in figs.items()
    }
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.notes)
    m = data.result.metrics
    sub = (
        f"{html.escape(cb.strategy_id)} · {html.escape(cb.instrument_id)} · {cb.start} .. {cb.end} · "
        f"net {m['full']['total_pnl']:,.0f} · Sharpe IS {_fmt(m['is']['sharpe'], 'ratio')} / "
        f"OOS {_fmt(m['oos']['sharpe'], 'ratio')}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(cb.backtest_id)} tearsheet</title>
<style>{CSS}</style><script>{get_plotlyjs()}</script></head>
<body><header><h1>Backtest {html.escape(cb.backtest_id)}</h1><div class="sub">{sub}</div></header><main>
<div class="grid2"><section><h2>Metrics</h2>{_metrics_table(data)}</section>
<section><h2>Setup</h2>{_setup_table(data, run_id)}{f"<ul class='notes'>{notes}</ul>" if notes else ""}
<h2 style="margin-top:14px">Costs: gross, costs, net</h2>{div["costs"]}</section></div>
<section><h2>Equity and drawdown</h2>{div["equity"]}</section>
<section><h2>Position over price</h2>{div["position"]}</section>
<section><h2>Monthly returns (%)</h2>{div["monthly"]}</section>
<section><h2>Trades</h2>{_trades_table(data)}</section>
<section>{_expressions(data)}</section>
</main></body></html>
"""
