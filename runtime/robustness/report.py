"""The robustness run's report: one self-contained HTML page (plotly.js inline once, opens offline).

Why this shape: a researcher first wants the verdict of every test on one screen (the summary table, one row
per test, its level coloured and the plain words), then the evidence behind each verdict (the distribution
the real value sits in, the curve the optimum sits on). The page is drawn only from the run folder
(summary.json and the per-test parquet tables, contract section D), so it can be rebuilt from a finished
run; a missing or unreadable table, a skipped or failed test, or a test this page has no figure for never
stops the page: that section says what is missing and shows the numbers it has.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime.backtest.tearsheet import CSS as TEARSHEET_CSS
from runtime.config.schema import ROBUSTNESS_TESTS
from runtime.contracts import UserError

REPORT_NAME = "report.html"
LEVEL_COLOURS = {"pass": "#1b7f3b", "warn": "#c77700", "fail": "#b3261e", "info": "#2456a6"}
STATUS_COLOURS = {"skipped": "#7a808c", "error": "#6b1d1d"}
LOOKAHEAD_FILL = "rgba(209,123,0,0.13)"
#: reading order of the sections (tests not listed follow in summary order)
ORDER = ROBUSTNESS_TESTS  # the workbook's order (runtime.config.schema)
TITLES = {
    "is_oos_gap": "In-sample vs out-of-sample",
    "walk_forward": "Walk-forward (re-optimised per fold, stitched out-of-sample)",
    "purge_embargo": "Purge and embargo",
    "block_bootstrap": "Block bootstrap",
    "placebo_shuffle": "Placebo: block-shuffled positions",
    "lag_sweep": "Lag sweep",
    "sensitivity_1d": "Parameter sensitivity (1D)",
    "sensitivity_2d": "Parameter sensitivity (2D)",
    "regimes": "Regimes",
    "cost_sensitivity": "Cost sensitivity",
    "multiple_testing": "Multiple testing: PSR, DSR, MinTRL, PBO, SPA",
}
#: plain names of the numbers the runner writes (unknown names are shown as written)
NUMBER_LABELS = {
    "psr": "PSR (vs Sharpe 0)",
    "dsr": "DSR (deflated by the trials)",
    "sr0": "SR0: expected max Sharpe of the trials (per period)",
    "n_trials": "trials N",
    "var_trial_sr": "variance of trial Sharpes (per period)",
    "min_trl_years": "MinTRL (years)",
    "min_trl_periods": "MinTRL (periods)",
    "pbo": "PBO (CSCV)",
    "spa_p": "Hansen SPA p-value",
    "spa_pvalue": "Hansen SPA p-value",
    "p_consistent": "Hansen SPA p-value",
    "reality_check_p": "White Reality Check p-value",
    "p_reality_check": "White Reality Check p-value",
    "pvalue": "p-value",
    "percentile": "percentile",
    "break_even_multiple": "break-even cost multiple",
    "prob_sharpe_le_0": "P(Sharpe <= 0)",
    "stability_score": "stability score",
    "plateau_share": "plateau share",
}
#: scale-free engine metrics drawn side by side in the IS/OOS figure
GAP_METRICS = ("sharpe", "sortino", "calmar", "cagr", "volatility", "max_drawdown", "win_rate", "exposure")
#: the numbers the summary row shows first, per test (others follow, run settings last)
KEY_NUMBERS = {
    "is_oos_gap": ("is_sharpe", "oos_sharpe", "ratio", "percentile"),
    "walk_forward": ("stitched_sharpe", "stitched_sharpe_low", "stitched_sharpe_high", "oos_sharpe"),
    "purge_embargo": ("oos_sharpe_raw", "oos_sharpe_purged", "mean_test_sharpe_change"),
    "block_bootstrap": ("sharpe", "sharpe_low", "sharpe_high", "prob_sharpe_le_0"),
    "placebo_shuffle": ("real", "pvalue", "percentile"),
    "lag_sweep": ("peak_lag", "sharpe_lag0", "sharpe_lag1"),
    "sensitivity_1d": ("stability_score",),
    "sensitivity_2d": ("stability_score", "plateau_share"),
    "cost_sensitivity": ("break_even_multiple", "break_even_sharpe_multiple"),
    "multiple_testing": ("psr", "dsr", "pbo", "spa_p", "min_trl_years"),
}
#: run settings echoed in the numbers: never a "key number"
SETTINGS = {
    "n",
    "seed",
    "level",
    "block",
    "tol",
    "points",
    "min",
    "max",
    "segment",
    "metric",
    "folds",
    "S",
    "min_multiple",
    "purge_days",
    "embargo_days",
    "max_trials",
    "spa_reps",
    "alpha",
    "quantiles",
    "peak_margin",
    "collapse_ratio",
}
FIG_CONFIG = {"displaylogo": False, "responsive": True}

EXTRA_CSS = """
.badge{display:inline-block;min-width:44px;text-align:center;padding:1px 8px;border-radius:10px;color:#fff;
 font-size:11.5px;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
table.summary td{vertical-align:top} table.summary td.txt{text-align:left;white-space:normal;max-width:620px}
table.summary td.nums{text-align:left;white-space:normal;color:#555;font-size:12px;max-width:360px}
.missing{background:#fff6e5;border:1px solid #f0d9a8;border-radius:4px;padding:6px 10px;font-size:12.5px}
.errbox{background:#fdecea;border:1px solid #f3b8b2;border-radius:4px;padding:6px 10px;font-size:12.5px}
.verdict{font-size:13px;margin:0 0 8px} h2 .badge{margin-left:8px;vertical-align:1px}
.grid2b{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:22px;align-items:start}
"""


@dataclass(frozen=True)
class TestEntry:
    """One test of summary.json (contract section D), as read; `raw` keeps any extra key."""

    test_id: str
    status: str
    level: str | None
    text: str
    numbers: dict[str, Any]
    seconds: float | None
    table: str | None
    note: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class RobustnessRun:
    """A robustness run folder: summary.json parsed, per-test tables read on demand."""

    run_dir: Path
    summary: dict[str, Any]
    tests: tuple[TestEntry, ...]

    @property
    def run_id(self) -> str:
        """summary.json's run_id (the runner draws the page inside its temp folder), else the folder name."""
        return str(self.summary.get("run_id") or self.run_dir.name)

    def entry(self, test_id: str) -> TestEntry | None:
        return next((t for t in self.tests if t.test_id == test_id), None)

    def table(self, test_id: str, name: str | None = None) -> pd.DataFrame | None:
        """The test's parquet table (or another file of the run, `name`); None when absent or unreadable."""
        if name is None:
            e = self.entry(test_id)
            name = e.table if e is not None else None
        if not name:
            return None
        p = self.run_dir / name
        if not p.is_file():
            return None
        try:
            return pd.read_parquet(p)
        except Exception:  # a truncated or foreign file: the section says the table is unreadable
            return None


def _entry(raw: dict[str, Any]) -> TestEntry:
    verdict = raw.get("verdict") or {}
    secs = raw.get("seconds")
    return TestEntry(
        test_id=str(raw.get("test_id", "?")),
        status=str(raw.get("status", "ok")),
        level=verdict.get("level"),
        text=str(verdict.get("text") or ""),
        numbers=dict(raw.get("numbers") or {}),
        seconds=float(secs) if isinstance(secs, int | float) else None,
        table=raw.get("table") or None,
        note=raw.get("note") or None,
        raw=dict(raw),
    )


def load_run(run_dir: Path | str) -> RobustnessRun:
    """Read a run folder's summary.json; a folder without one is a user error (not a robustness run)."""
    run_dir = Path(run_dir)
    sj = run_dir / "summary.json"
    if not sj.is_file():
        raise UserError(
            f"{run_dir} is not a robustness run (no summary.json); "
            "fix: run `backtest robustness TARGET` and pass the folder it prints (DATA_ROOT/runs/rb-...)"
        )
    try:
        summary = json.loads(sj.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{sj} is not valid JSON ({e}); fix: rerun `backtest robustness TARGET` to rewrite the run"
        ) from None
    return RobustnessRun(run_dir, summary, tuple(_entry(t) for t in summary.get("tests") or []))


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def fmt_number(v: Any) -> str:
    """Compact: thousands separators for big values, 4 significant digits for small ones."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(v)


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _badge(e: TestEntry) -> str:
    if e.status != "ok":
        return f'<span class="badge" style="background:{STATUS_COLOURS.get(e.status, "#555")}">{_esc(e.status)}</span>'
    lvl = e.level or "info"
    return f'<span class="badge level-{_esc(lvl)}" style="background:{LEVEL_COLOURS.get(lvl, "#555")}">{_esc(lvl)}</span>'


def _num(numbers: dict[str, Any], *names: str) -> float | None:
    """The first of `names` present as a finite number (the runner's names are tried in order)."""
    for n in names:
        v = numbers.get(n)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v)):
            return float(v)
    return None


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _label(name: str) -> str:
    return NUMBER_LABELS.get(name, name.replace("_", " "))


def _numbers_table(numbers: dict[str, Any]) -> str:
    if not numbers:
        return ""
    body = "".join(
        f"<tr><td>{_esc(_label(k))}</td><td>{_esc(fmt_number(v))}</td></tr>" for k, v in numbers.items()
    )
    return f"<table class='kv numbers'>{body}</table>"


def _cell(v: Any) -> str:
    if isinstance(v, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(v)
        return f"<td class='l'>{ts.date() if ts == ts.normalize() else ts}</td>"
    if isinstance(v, str):
        return f"<td class='l'>{_esc(v)}</td>"
    return f"<td>{_esc(fmt_number(v))}</td>"


def _frame_table(df: pd.DataFrame, max_rows: int = 60, cls: str = "") -> str:
    """A DataFrame as a plain table (numbers formatted); long tables show their head and say so."""
    shown = df.head(max_rows)
    cols = list(shown.columns)
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    rows = []
    for rec in shown.itertuples(index=False):
        cells = "".join(_cell(v) for v in rec)
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f"<p class='notes'>{len(df):,} rows; the first {max_rows} are shown.</p>"
        if len(df) > max_rows
        else ""
    )
    return f"{more}<div class='scroll'><table class='{cls}'><tr>{head}</tr>{''.join(rows)}</table></div>"


def _key_numbers(e: TestEntry, k: int = 4) -> str:
    first = [n for n in KEY_NUMBERS.get(e.test_id, ()) if n in e.numbers]
    rest = [n for n in e.numbers if n not in first and n not in SETTINGS]
    items = [(n, e.numbers[n]) for n in [*first, *rest] if not isinstance(e.numbers[n], str | None)][:k]
    return ", ".join(f"{_label(n)} {fmt_number(v)}" for n, v in items)


def summary_frame(run: RobustnessRun) -> pd.DataFrame:
    """One row per test: status, verdict level, plain words, seconds, note (the page's top table)."""
    return pd.DataFrame(
        [
            {
                "test": e.test_id,
                "status": e.status,
                "level": e.level if e.status == "ok" else None,
                "verdict": e.text,
                "seconds": e.seconds,
                "note": e.note,
            }
            for e in run.tests
        ],
        columns=["test", "status", "level", "verdict", "seconds", "note"],
    )


def summary_styler(run: RobustnessRun) -> Any:
    """summary_frame with the level (or the skipped/error status) coloured like the page's badges."""
    df = summary_frame(run)

    def colour(row: pd.Series) -> list[str]:
        c = LEVEL_COLOURS.get(row["level"]) if row["status"] == "ok" else STATUS_COLOURS.get(row["status"])
        style = f"background-color:{c};color:white;font-weight:600" if c else ""
        return [style if k in ("status", "level") else "" for k in row.index]

    return (
        df.style.apply(colour, axis=1)
        .format({"seconds": "{:.1f}"}, na_rep="–", escape="html")
        .hide(axis="index")
    )


def _summary_html(run: RobustnessRun) -> str:
    if not run.tests:
        return "<p class='missing'>This run's summary lists no test.</p>"
    rows = []
    for e in run.tests:
        words = e.text or (e.note or "")
        if e.status != "ok" and e.note and e.text:
            words = f"{e.text} ({e.note})"
        secs = f"{e.seconds:.1f}" if e.seconds is not None else "–"
        rows.append(
            f"<tr data-test='{_esc(e.test_id)}' data-status='{_esc(e.status)}' data-level='{_esc(e.level or '')}'>"
            f"<td class='l'><a href='#sec-{_esc(e.test_id)}'>{_esc(e.test_id)}</a></td><td>{_badge(e)}</td>"
            f"<td class='txt'>{_esc(words)}</td><td class='nums'>{_esc(_key_numbers(e))}</td><td>{secs}</td></tr>"
        )
    head = "<tr><th class='l'>test</th><th>verdict</th><th class='l'>reading</th><th class='l'>key numbers</th><th>s</th></tr>"
    return f"<table class='summary'>{head}{''.join(rows)}</table>"


# --------------------------------------------------------------------------------------------------
# Figures (each returns a plotly Figure; a missing column raises KeyError, which the section reports)
# --------------------------------------------------------------------------------------------------


def _base(fig: Any, height: int, margin: dict[str, int] | None = None, **kw: Any) -> Any:
    fig.update_layout(
        height=height,
        margin=margin or dict(l=60, r=20, t=40, b=40),
        template="plotly_white",
        legend=dict(orientation="h", y=1.12, x=0),
        **kw,
    )
    return fig


def _cols(n: int, per_row: int = 3) -> tuple[int, int]:
    c = min(n, per_row)
    return max(1, math.ceil(n / c)), c


def bootstrap_figure(table: pd.DataFrame, numbers: dict[str, Any]) -> Any:
    """One histogram per statistic: the resampled values, the real value (solid) and the CI (shaded)."""
    from plotly.subplots import make_subplots

    metrics = list(dict.fromkeys(table["metric"]))
    level = _num(numbers, "level", "ci_level") or 0.95
    draws, bands, titles = {}, {}, []
    for m in metrics:
        v = table.loc[table["metric"] == m, "value"].to_numpy(dtype=float)
        draws[m] = v = v[np.isfinite(v)]
        lo = _num(numbers, f"{m}_low", f"{m}_ci_low", f"{m}_lo")
        hi = _num(numbers, f"{m}_high", f"{m}_ci_high", f"{m}_hi")
        src = ""
        if (lo is None or hi is None) and v.size:  # the runner wrote no CI: the percentile CI of the draws
            lo, hi = (float(x) for x in np.percentile(v, [(1 - level) / 2 * 100, (1 + level) / 2 * 100]))
            src = " (from the draws)"
        bands[m] = (lo, hi)
        ci = f"{level:.0%} CI [{fmt_number(lo)}, {fmt_number(hi)}]{src}" if lo is not None else "no CI"
        titles.append(f"<b>{m}</b><br><span style='font-size:11px;color:#2456a6'>{ci}</span>")
    r, c = _cols(len(metrics))
    fig = make_subplots(rows=r, cols=c, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.2)
    for i, m in enumerate(metrics):
        row, col = i // c + 1, i % c + 1
        v = draws[m]
        fig.add_histogram(x=v, nbinsx=40, name=m, marker_color="#8aa6d6", showlegend=False, row=row, col=col)
        lo, hi = bands[m]
        if lo is not None and hi is not None:
            fig.add_vrect(x0=lo, x1=hi, fillcolor="rgba(36,86,166,0.12)", line_width=0, row=row, col=col)
            fig.add_vline(x=lo, line=dict(color="#2456a6", dash="dot", width=1), row=row, col=col)
            fig.add_vline(x=hi, line=dict(color="#2456a6", dash="dot", width=1), row=row, col=col)
        real = _num(numbers, m, f"{m}_estimate", f"{m}_real", f"real_{m}")
        if real is not None:
            fig.add_vline(x=real, line=dict(color="#b3261e", width=2.2), row=row, col=col)
            fig.add_annotation(
                text=f"real {fmt_number(real)}", x=real, y=0.92, xref=f"x{i + 1 if i else ''}",
                yref=f"y{i + 1 if i else ''} domain", showarrow=False, xanchor="left", xshift=4,
                font=dict(color="#b3261e", size=11),
            )  # fmt: skip
        if m in ("sharpe",):
            fig.add_vline(x=0, line=dict(color="#333", width=1), row=row, col=col)
    return _base(fig, 330 * r, bargap=0.03, margin=dict(l=60, r=20, t=60, b=40))


def placebo_figure(table: pd.DataFrame, numbers: dict[str, Any]) -> Any:
    """The placebo metric's distribution and the real strategy's value in it (p = share at or above)."""
    import plotly.graph_objects as go

    v = table["value"].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    fig = go.Figure(go.Histogram(x=v, nbinsx=50, name="placebos", marker_color="#9aa3b2"))
    real = _num(numbers, "real", "real_value", "real_metric", "real_sharpe", "sharpe")
    p = _num(numbers, "pvalue", "p_value", "p")
    if real is not None:
        fig.add_vline(x=real, line=dict(color="#b3261e", width=2.5))
        txt = f"real {fmt_number(real)}" + (f" · p {p:.3f}" if p is not None else "")
        fig.add_annotation(
            text=txt, x=real, y=0.95, yref="paper", showarrow=False, xanchor="left", xshift=5,
            font=dict(color="#b3261e", size=12),
        )  # fmt: skip
    metric = numbers.get("metric") if isinstance(numbers.get("metric"), str) else "metric"
    fig.update_xaxes(title_text=f"placebo {metric}")
    fig.update_yaxes(title_text="placebos")
    return _base(fig, 340, showlegend=False)


def lag_figure(table: pd.DataFrame, numbers: dict[str, Any]) -> Any:
    """Sharpe (and net PnL) per extra lag; the negative lags (future data) shaded and labelled."""
    from plotly.subplots import make_subplots

    t = table.sort_values("lag")
    lags = t["lag"].to_numpy(dtype=int)
    look = t["lookahead"].to_numpy(dtype=bool) if "lookahead" in t else lags < 0
    panels = [c for c in ("sharpe", "total_pnl") if c in t]
    if not panels:
        raise KeyError("lag_sweep table has neither a 'sharpe' nor a 'total_pnl' column")
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    colours = np.where(look, "#d17b00", np.where(lags == 0, "#1d2330", "#2456a6"))
    for i, col in enumerate(panels, start=1):
        fig.add_bar(
            x=lags, y=t[col].to_numpy(dtype=float), marker_color=list(colours), name=col, showlegend=False,
            row=i, col=1,
            customdata=np.where(look, "lookahead placebo", "tradable").tolist(),
            hovertemplate="lag %{x}: %{y:.3g} (%{customdata})<extra></extra>",
        )  # fmt: skip
        fig.update_yaxes(title_text="Sharpe" if col == "sharpe" else "net PnL", row=i, col=1)
    if look.any():
        lo, hi = float(lags[look].min()) - 0.5, float(lags[look].max()) + 0.5
        fig.add_vrect(
            x0=lo, x1=hi, fillcolor=LOOKAHEAD_FILL, line_width=0, layer="below",
            annotation_text="lookahead placebo: future data, not tradable", annotation_position="top left",
            annotation_font=dict(color="#a55f00", size=11.5),
        )  # fmt: skip
    fig.update_xaxes(title_text="extra lag (bars between signal and fill)", dtick=1, row=len(panels), col=1)
    return _base(fig, 230 + 170 * len(panels), bargap=0.15)


def _metric_col(t: pd.DataFrame, value_cols: tuple[str, ...]) -> tuple[str, str | None]:
    """(column holding the metric value, column holding the metric name or None)."""
    if "metric" in t and not pd.api.types.is_numeric_dtype(t["metric"]):
        for c in value_cols:
            if c in t and pd.api.types.is_numeric_dtype(t[c]):
                return c, "metric"
    for c in ("metric", *value_cols):
        if c in t and pd.api.types.is_numeric_dtype(t[c]):
            return c, None
    raise KeyError(f"no numeric metric column among {('metric', *value_cols)}")


def sensitivity_1d_figure(table: pd.DataFrame, numbers: dict[str, Any], params: dict[str, Any]) -> Any:
    """The metric along each parameter (others at the tested values); the tested value dashed, the best starred."""
    from plotly.subplots import make_subplots

    ycol, mname = _metric_col(table, ("score", "metric_value"))
    xcol = "value" if ycol != "value" else "param_value"
    names = list(dict.fromkeys(table["param"]))
    r, c = _cols(len(names))
    fig = make_subplots(rows=r, cols=c, subplot_titles=[str(n) for n in names], horizontal_spacing=0.08)
    ylab = str(table[mname].iloc[0]) if mname and len(table) else "metric"
    for i, name in enumerate(names):
        row, col = i // c + 1, i % c + 1
        s = table[table["param"] == name].sort_values(xcol)
        fig.add_scatter(
            x=s[xcol], y=s[ycol], mode="lines+markers", name=str(name), line=dict(color="#2456a6"),
            showlegend=False, row=row, col=col,
        )  # fmt: skip
        best = numbers.get(f"best.{name}")
        hit = s[s[xcol] == best] if _is_num(best) else s.iloc[:0]
        if len(hit):  # the runner's best point on this curve, starred
            fig.add_scatter(
                x=[float(best)], y=[float(hit[ycol].iloc[0])], mode="markers", name="best", showlegend=False,
                marker=dict(symbol="star", size=13, color="#ffd400", line=dict(width=1, color="#1d2330")),
                row=row, col=col,
            )  # fmt: skip
        tested = params.get(str(name))
        if isinstance(tested, int | float) and not isinstance(tested, bool):
            fig.add_vline(
                x=float(tested), line=dict(color="#d17b00", dash="dash", width=1.5), row=row, col=col
            )
        fig.update_yaxes(title_text=ylab if col == 1 else None, row=row, col=col)
    return _base(fig, 300 * r, showlegend=False)


def sensitivity_2d_figures(table: pd.DataFrame, numbers: dict[str, Any], params: dict[str, Any]) -> list[Any]:
    """One heatmap per parameter pair (x, y -> metric); the tested binding crossed, the grid's best starred."""
    import plotly.graph_objects as go

    zcol, mname = _metric_col(table, ("value", "score"))
    pair_cols = [c for c in ("x_param", "y_param") if c in table]
    groups = (
        list(table.groupby(pair_cols, sort=False))
        if len(pair_cols) == 2
        else [((numbers.get("x_param", "x"), numbers.get("y_param", "y")), table)]
    )
    figs = []
    for (xp, yp), g in groups:
        grid = g.pivot_table(index="y", columns="x", values=zcol, aggfunc="mean").sort_index()
        grid = grid.reindex(sorted(grid.columns), axis=1)
        z = grid.to_numpy(dtype=float)
        # numeric parameters on numeric axes, so a tested value between grid points is drawn where it is
        numeric = all(_is_num(v) for v in [*grid.columns, *grid.index])
        label: Callable[[Any], Any] = (lambda v: float(v)) if numeric else fmt_number
        fig = go.Figure(
            go.Heatmap(
                z=z, x=[label(v) for v in grid.columns], y=[label(v) for v in grid.index],
                colorscale="RdYlGn", zmid=0 if np.nanmin(z) < 0 < np.nanmax(z) else None,
                colorbar=dict(title=str(g[mname].iloc[0]) if mname else "metric"),
                hovertemplate=f"{xp} %{{x}}, {yp} %{{y}}: %{{z:.3g}}<extra></extra>",
            )
        )  # fmt: skip
        tx, ty = params.get(str(xp)), params.get(str(yp))
        if tx is not None and ty is not None and (not numeric or (_is_num(tx) and _is_num(ty))):
            fig.add_scatter(
                x=[label(tx)], y=[label(ty)], mode="markers", name="tested",
                marker=dict(symbol="x", size=14, color="#1d2330", line=dict(width=1, color="#fff")),
            )  # fmt: skip
        bx, by = numbers.get("best_x"), numbers.get("best_y")
        if (
            len(groups) == 1
            and bx is not None
            and by is not None
            and (not numeric or (_is_num(bx) and _is_num(by)))
        ):
            fig.add_scatter(
                x=[label(bx)], y=[label(by)], mode="markers", name="best",
                marker=dict(symbol="star", size=15, color="#ffd400", line=dict(width=1, color="#1d2330")),
            )  # fmt: skip
        kind = "linear" if numeric else "category"
        fig.update_xaxes(title_text=str(xp), type=kind)
        fig.update_yaxes(title_text=str(yp), type=kind)
        figs.append(_base(fig, 380, title=dict(text=f"{xp} x {yp}", font=dict(size=13)), showlegend=False))
    return figs


def walk_forward_figure(folds: pd.DataFrame | None, equity: pd.DataFrame) -> Any:
    """The stitched out-of-sample equity with each fold's test window shaded and its boundary dashed."""
    import plotly.graph_objects as go

    x = pd.to_datetime(equity["date"])
    fig = go.Figure(
        go.Scatter(x=x, y=equity["equity"], name="stitched OOS equity", line=dict(color="#2456a6"))
    )
    if folds is not None and {"test_start", "test_end"} <= set(folds.columns):
        for i, f in enumerate(folds.sort_values("test_start").itertuples(index=False)):
            a, b = pd.Timestamp(f.test_start), pd.Timestamp(f.test_end)
            if i % 2 == 0:
                fig.add_vrect(x0=a, x1=b, fillcolor="rgba(36,86,166,0.07)", line_width=0, layer="below")
            fig.add_vline(x=a, line=dict(color="#d17b00", dash="dash", width=1.2))
            fig.add_annotation(
                x=a, y=1.0, yref="paper", text=f"fold {getattr(f, 'fold', i)}", showarrow=False,
                xanchor="left", yanchor="bottom", font=dict(size=10.5, color="#a55f00"),
            )  # fmt: skip
    fig.update_yaxes(title_text="equity")
    return _base(fig, 380, hovermode="x unified")


def drift_frame(folds: pd.DataFrame) -> pd.DataFrame:
    """fold x parameter: the numeric values each fold chose (from the params JSON)."""
    rows = []
    for f in folds.itertuples(index=False):
        p = f.params
        try:
            d = json.loads(p) if isinstance(p, str) else dict(p)
        except (TypeError, ValueError):
            continue
        rows.append({"fold": f.fold, **{k: v for k, v in d.items() if _is_num(v)}})
    return pd.DataFrame(rows)


def drift_figure(folds: pd.DataFrame) -> Any | None:
    """Each re-optimised parameter that changed across folds, one panel each (jumps = the optimum is noise).
    None when no parameter changed (fixed parameters, or the same winner every fold)."""
    from plotly.subplots import make_subplots

    df = drift_frame(folds)
    names = [c for c in df.columns if c != "fold" and df[c].nunique(dropna=True) > 1]
    if not names:
        return None
    r, c = _cols(len(names), 4)
    fig = make_subplots(rows=r, cols=c, subplot_titles=names, horizontal_spacing=0.07)
    for i, n in enumerate(names):
        fig.add_scatter(
            x=df["fold"], y=df[n], mode="lines+markers", name=n, showlegend=False, line=dict(color="#2456a6"),
            row=i // c + 1, col=i % c + 1,
        )  # fmt: skip
        fig.update_xaxes(title_text="fold", dtick=1, row=i // c + 1, col=i % c + 1)
    return _base(fig, 260 * r, showlegend=False)


def _purge_frame(table: pd.DataFrame) -> pd.DataFrame:
    """(split, side, metric) rows, one column per variant (raw, purged) and the change purged - raw."""
    idx = [c for c in ("split", "side", "metric") if c in table]
    wide = table.pivot_table(index=idx, columns="variant", values="value", aggfunc="first", sort=False)
    wide.columns = [str(c) for c in wide.columns]
    if {"raw", "purged"} <= set(wide.columns):
        wide["change"] = wide["purged"] - wide["raw"]
    return wide.reset_index()


def regimes_frame(table: pd.DataFrame) -> pd.DataFrame:
    """regime_kind x regime rows, one column per metric (the regime table)."""
    return table.pivot_table(
        index=["regime_kind", "regime"], columns="metric", values="value", aggfunc="first", sort=False
    ).reset_index()


def regimes_figure(table: pd.DataFrame) -> Any:
    """Sharpe (or the first metric) per regime, one colour per regime kind."""
    import plotly.graph_objects as go

    metric = "sharpe" if (table["metric"] == "sharpe").any() else str(table["metric"].iloc[0])
    t = table[table["metric"] == metric]
    fig = go.Figure()
    for kind, g in t.groupby("regime_kind", sort=False):
        fig.add_bar(x=[f"{kind}: {r}" for r in g["regime"]], y=g["value"], name=str(kind))
    fig.update_yaxes(title_text=metric)
    return _base(fig, 340)


def cost_figure(table: pd.DataFrame, numbers: dict[str, Any]) -> Any:
    """Net PnL (with gross and costs) and Sharpe against the cost multiple; zero line and each panel's
    break-even multiple (net PnL = 0, Sharpe = 0) dashed and labelled. Other metrics get a panel each
    only when neither PnL nor Sharpe is there."""
    from plotly.subplots import make_subplots

    have = list(dict.fromkeys(table["metric"]))
    be_pnl = _num(numbers, "break_even_multiple", "break_even", "breakeven_multiple")
    be_sharpe = _num(numbers, "break_even_sharpe_multiple") or be_pnl
    panels: list[tuple[str, list[tuple[str, str, str, float]], float | None]] = []
    if "total_pnl" in have:
        lines = [("total_pnl", "net PnL", "#2456a6", 1.0)]
        lines += [(m, lab, c, sg) for m, lab, c, sg in (("gross_pnl", "gross PnL", "#8aa6d6", 1.0),
                  ("total_costs", "costs (negative)", "#d17b00", -1.0)) if m in have]  # fmt: skip
        panels.append(("net PnL", lines, be_pnl))
    if "sharpe" in have:
        panels.append(("Sharpe", [("sharpe", "Sharpe", "#2456a6", 1.0)], be_sharpe))
    if not panels:
        panels = [(m, [(m, m, "#2456a6", 1.0)], be_pnl) for m in have]
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.1)
    for i, (_, lines, be) in enumerate(panels, start=1):
        for m, lab, colour, sign in lines:
            s = table[table["metric"] == m].sort_values("multiple")
            fig.add_scatter(
                x=s["multiple"], y=sign * s["value"].astype(float), mode="lines+markers", name=lab,
                showlegend=len(lines) > 1, line=dict(color=colour), row=1, col=i,
            )  # fmt: skip
        fig.add_hline(y=0, line=dict(color="#333", width=1), row=1, col=i)
        fig.update_xaxes(title_text="cost multiple (x configured)", row=1, col=i)
        fig.update_yaxes(title_text=panels[i - 1][0], row=1, col=i)
        if be is not None:
            fig.add_vline(x=be, line=dict(color="#b3261e", dash="dash", width=1.8), row=1, col=i)
            fig.add_annotation(
                text=f"break-even {be:.2f}x", x=be, y=0.97, xref=f"x{i if i > 1 else ''}",
                yref=f"y{i if i > 1 else ''} domain", showarrow=False, xanchor="left", xshift=4,
                font=dict(color="#b3261e", size=11),
            )  # fmt: skip
    return _base(fig, 330)


def purge_figure(table: pd.DataFrame) -> Any:
    """Test-side Sharpe (or the first metric) per split, raw vs purged/embargoed: a drop = the raw split leaked."""
    import plotly.graph_objects as go

    t = table[table["side"] == "test"] if "side" in table else table
    metric = "sharpe" if (t["metric"] == "sharpe").any() else str(t["metric"].iloc[0])
    t = t[t["metric"] == metric]
    fig = go.Figure()
    for variant, colour in zip(dict.fromkeys(t["variant"]), ("#9aa3b2", "#2456a6", "#d17b00"), strict=False):
        g = t[t["variant"] == variant]
        fig.add_bar(x=g["split"], y=g["value"].astype(float), name=str(variant), marker_color=colour)
    fig.update_yaxes(title_text=f"test {metric}")
    return _base(fig, 320, barmode="group")


def degradation_figure(table: pd.DataFrame) -> Any:
    """CSCV: the IS-best trial's OOS metric against its IS metric per split, with the OLS line."""
    import plotly.graph_objects as go

    x, y = table["is_metric"].to_numpy(dtype=float), table["oos_metric"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    fig = go.Figure(
        go.Scatter(
            x=x[ok], y=y[ok], mode="markers", name="splits", marker=dict(size=5, color="#2456a6", opacity=0.5)
        )
    )
    if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
        slope, icpt = np.polyfit(x[ok], y[ok], 1)
        xs = np.array([x[ok].min(), x[ok].max()])
        fig.add_scatter(
            x=xs, y=icpt + slope * xs, mode="lines", name=f"OLS slope {slope:.2f}", line=dict(color="#b3261e")
        )
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    fig.update_xaxes(title_text="IS metric of the IS-best trial")
    fig.update_yaxes(title_text="its OOS metric")
    return _base(fig, 340)


def pbo_figure(table: pd.DataFrame, numbers: dict[str, Any]) -> Any:
    """The CSCV logits of the IS-best trial's OOS rank; logit <= 0 (below the OOS median) shaded."""
    import plotly.graph_objects as go

    v = table["logit"].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    fig = go.Figure(go.Histogram(x=v, nbinsx=40, marker_color="#8aa6d6", name="splits"))
    lo = float(min(v.min(), -1.0)) if v.size else -1.0
    fig.add_vrect(
        x0=lo - 0.5, x1=0, fillcolor="rgba(179,38,30,0.10)", line_width=0, layer="below",
        annotation_text="overfit side: IS best below OOS median", annotation_position="top left",
        annotation_font=dict(color="#b3261e", size=11),
    )  # fmt: skip
    fig.add_vline(x=0, line=dict(color="#b3261e", width=1.5))
    pbo = _num(numbers, "pbo")
    if pbo is not None:
        fig.update_layout(
            title=dict(text=f"PBO = {pbo:.2f} (share of splits with logit <= 0)", font=dict(size=13))
        )
    fig.update_xaxes(title_text="logit of the IS-best trial's OOS rank")
    fig.update_yaxes(title_text="splits")
    return _base(fig, 340, showlegend=False)


def gap_figure(table: pd.DataFrame) -> Any:
    """IS and OOS side by side for the scale-free metrics (ratios and shares: money and counts are only in
    the table, they would flatten every other bar)."""
    import plotly.graph_objects as go

    t = table[table["metric"].isin(GAP_METRICS)]
    t = t if len(t) else table
    fig = go.Figure()
    fig.add_bar(x=t["metric"], y=t["is"], name="IS", marker_color="#2456a6")
    fig.add_bar(x=t["metric"], y=t["oos"], name="OOS", marker_color="#d17b00")
    return _base(fig, 300, barmode="group")


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


class _Page:
    """Collects figure divs with stable ids (fig-<test>-<n>) and the figures themselves (for notebooks)."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}

    def div(self, test_id: str, fig: Any) -> str:
        fid = f"fig-{test_id}-{sum(k.startswith(f'fig-{test_id}-') for k in self.figures) + 1}"
        self.figures[fid] = fig
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=fid, config=FIG_CONFIG)


def _missing(what: str) -> str:
    return f"<p class='missing'>{_esc(what)}</p>"


def _figure_or_note(build: Callable[[], str], test_id: str) -> str:
    try:
        return build()
    except Exception as e:  # any shape the page does not know: say so in the section, draw the rest
        return _missing(f"{test_id}: figure not drawn, the table does not have the expected shape ({e!r})")


def _body(run: RobustnessRun, e: TestEntry, page: _Page) -> str:
    """The evidence of one test: its figures and tables from its parquet, or a note saying what is missing."""
    tid = e.test_id
    params = dict(run.summary.get("params") or {})
    t = run.table(tid)
    if tid == "walk_forward":
        eq = run.table(tid, "walk_forward_equity.parquet")
        parts = []
        if eq is not None:
            parts.append(_figure_or_note(lambda: page.div(tid, walk_forward_figure(t, eq)), tid))
        else:
            parts.append(_missing("walk_forward_equity.parquet is missing: no stitched equity to draw"))
        if t is not None:

            def folds() -> str:
                d = drift_figure(t)
                if d is not None:
                    out = "<h2>Parameter drift across folds</h2>" + page.div(tid, d)
                else:
                    out = "<p class='notes'>The parameters are the same in every fold.</p>"
                return out + _frame_table(t, cls="folds")

            parts.append(_figure_or_note(folds, tid))
        return "".join(parts)
    if t is None:
        if e.table:
            return _missing(f"table {e.table} is missing or unreadable in {run.run_id}/: no figure")
        return ""
    builders: dict[str, Callable[[], str]] = {
        "block_bootstrap": lambda: page.div(tid, bootstrap_figure(t, e.numbers)),
        "placebo_shuffle": lambda: page.div(tid, placebo_figure(t, e.numbers)),
        "lag_sweep": lambda: page.div(tid, lag_figure(t, e.numbers)),
        "sensitivity_1d": lambda: page.div(tid, sensitivity_1d_figure(t, e.numbers, params)),
        "sensitivity_2d": lambda: "".join(
            page.div(tid, f) for f in sensitivity_2d_figures(t, e.numbers, params)
        ),
        "regimes": lambda: page.div(tid, regimes_figure(t)) + _frame_table(regimes_frame(t), cls="regimes"),
        "cost_sensitivity": lambda: page.div(tid, cost_figure(t, e.numbers)),
        "multiple_testing": lambda: (
            page.div(tid, pbo_figure(t, e.numbers))
            + (page.div(tid, degradation_figure(t)) if {"is_metric", "oos_metric"} <= set(t.columns) else "")
        ),
        "purge_embargo": lambda: page.div(tid, purge_figure(t)) + _frame_table(_purge_frame(t), cls="purge"),
        "is_oos_gap": lambda: page.div(tid, gap_figure(t)) + _frame_table(t),
    }
    build = builders.get(tid, lambda: _frame_table(t))
    return _figure_or_note(build, tid)


#: (label, number names tried in order, rule text, passes(value, alpha)) of the selection-bias summary
SELECTION_ROWS: tuple[tuple[str, tuple[str, ...], str, Callable[[float, float], bool]], ...] = (
    ("PSR: P(true Sharpe > 0)", ("psr",), ">= 1 - alpha", lambda v, a: v >= 1 - a),
    ("DSR: PSR deflated by the trials", ("dsr",), ">= 1 - alpha", lambda v, a: v >= 1 - a),
    ("PBO (CSCV)", ("pbo",), "<= 0.5", lambda v, a: v <= 0.5),
    ("Hansen SPA p-value", ("spa_p", "spa_pvalue", "p_consistent"), "< alpha", lambda v, a: v < a),
    (
        "White Reality Check p-value",
        ("reality_check_p", "p_reality_check", "rc_p"),
        "< alpha",
        lambda v, a: v < a,
    ),
)


def selection_table(numbers: dict[str, Any]) -> str:
    """PSR / DSR / PBO / SPA / RC against their usual thresholds (alpha from the numbers, else 0.05), then
    MinTRL; the statistics the runner did not write are left out."""
    alpha = _num(numbers, "alpha") or (1 - (_num(numbers, "confidence") or 0.95))
    rows = []
    for label, names, rule, ok in SELECTION_ROWS:
        v = _num(numbers, *names)
        if v is None:
            continue
        good = ok(v, alpha)
        mark = f"<span class='{'pos' if good else 'neg'}'>{'ok' if good else 'warning'}</span>"
        rows.append(
            f"<tr><td class='l'>{_esc(label)}</td><td>{_esc(fmt_number(v))}</td>"
            f"<td class='l'>{_esc(rule.replace('1 - alpha', f'{1 - alpha:g}').replace('alpha', f'{alpha:g}'))}</td><td class='l'>{mark}</td></tr>"
        )
    mt = _num(numbers, "min_trl_years")
    if mt is not None:
        n = _num(numbers, "n_periods")
        have = _num(numbers, "record_years", "years") or (n / 252 if n is not None else None)
        rule = f"< {have:.1f} (the record)" if have is not None else "< the record's length"
        mark = (
            "–"
            if have is None
            else f"<span class='{'pos' if mt < have else 'neg'}'>{'ok' if mt < have else 'warning'}</span>"
        )
        rows.append(
            f"<tr><td class='l'>MinTRL: years of record needed</td><td>{_esc(fmt_number(mt))}</td>"
            f"<td class='l'>{_esc(rule)}</td><td class='l'>{mark}</td></tr>"
        )
    if not rows:
        return ""
    head = (
        "<tr><th class='l'>statistic</th><th>value</th><th class='l'>good when</th><th class='l'></th></tr>"
    )
    return f"<table class='selection'>{head}{''.join(rows)}</table>"


def _section(run: RobustnessRun, e: TestEntry, page: _Page) -> str:
    title = TITLES.get(e.test_id, e.test_id)
    head = f"<h2>{_esc(title)} <code>{_esc(e.test_id)}</code>{_badge(e)}</h2>"
    verdict = f"<p class='verdict'>{_esc(e.text)}</p>" if e.text else ""
    note = ""
    if e.note:
        note = f"<p class='{'errbox' if e.status == 'error' else 'notes'}'>{_esc(e.note)}</p>"
    if e.status != "ok":
        return f"<section id='sec-{_esc(e.test_id)}' class='test {e.status}'>{head}{verdict}{note}{_numbers_table(e.numbers)}</section>"
    body = _body(run, e, page)
    nums = _numbers_table(e.numbers)
    if e.test_id == "multiple_testing":
        sel = selection_table(e.numbers)
        nums = sel + (f"<details><summary>all numbers</summary>{nums}</details>" if sel else nums)
    inner = f"<div class='grid2b'><div>{nums}</div><div>{body}</div></div>" if nums and body else nums + body
    return f"<section id='sec-{_esc(e.test_id)}' class='test ok'>{head}{verdict}{note}{inner}</section>"


def _ordered(tests: tuple[TestEntry, ...]) -> list[TestEntry]:
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(tests, key=lambda e: (rank.get(e.test_id, len(ORDER)), tests.index(e)))


def build_figures(run: RobustnessRun) -> dict[str, Any]:
    """Every figure of the report by its div id (fig-<test>-<n>): what notebook 05 shows."""
    page = _Page()
    for e in _ordered(run.tests):
        if e.status == "ok":
            _body(run, e, page)
    return page.figures


def render_report(run: RobustnessRun) -> str:
    """The whole page: header, summary table, one section per test in reading order."""
    from plotly.offline import get_plotlyjs

    s = run.summary
    page = _Page()
    sections = "".join(_section(run, e, page) for e in _ordered(run.tests))
    params = ", ".join(f"{k}={v}" for k, v in (s.get("params") or {}).items()) or "none"
    setup = [
        ("run id", run.run_id),
        ("target", f"{s.get('target', '?')} ({s.get('target_type', '?')})"),
        ("profile", s.get("profile", "?")),
        ("backtest", s.get("backtest_id", "?")),
        ("params tested", params),
        ("study run", s.get("study_run_id") or "none"),
        ("primary metric", s.get("primary") or "–"),
        ("snapshot", s.get("snapshot_hash") or "–"),
        ("total time", f"{s['seconds']:.1f} s" if isinstance(s.get("seconds"), int | float) else "–"),
    ]
    kv = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in setup)
    notes = s.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    if notes:
        kv += (
            "<tr><td>notes</td><td><ul class='notes'>"
            + "".join(f"<li>{_esc(n)}</li>" for n in notes)
            + "</ul></td></tr>"
        )
    counts = {lvl: sum(1 for e in run.tests if e.status == "ok" and e.level == lvl) for lvl in LEVEL_COLOURS}
    other = {st: sum(1 for e in run.tests if e.status == st) for st in STATUS_COLOURS}
    tally = " · ".join(f"{n} {k}" for k, n in {**counts, **other}.items() if n)
    sub = f"{_esc(s.get('target', '?'))} · profile {_esc(s.get('profile', '?'))} · {len(run.tests)} tests: {_esc(tally)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(s.get("target", run.run_id))} robustness</title>
<style>{TEARSHEET_CSS}{EXTRA_CSS}</style><script>{get_plotlyjs()}</script></head>
<body><header><h1>Robustness: {_esc(s.get("target", "?"))}</h1><div class="sub">{sub}</div></header><main>
<section id="summary"><h2>Summary: one row per test</h2>{_summary_html(run)}</section>
<section id="run"><h2>Run</h2><table class='kv'>{kv}</table></section>
{sections}
</main></body></html>
"""


def write_report(run_dir: Path) -> Path:
    """Render run_dir/report.html from the run folder (written to a temp file, then renamed into place)."""
    run = load_run(run_dir)
    text = render_report(run)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=run.run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        out = run.run_dir / REPORT_NAME
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
