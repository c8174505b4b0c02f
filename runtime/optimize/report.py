"""The study report: one self-contained HTML page per study run (plotly.js inline once, opens offline).

Why these panels: after a search a quant asks, in this order: did the search converge (history with the
best-so-far line), which parameters mattered (importances), what does the trade-off between the objective
and a second metric look like (the Pareto frontier), is the optimum a plateau or a spike (1D slices), did
the best trials hold up out of sample (IS vs OOS of the re-run top trials), which trials broke which
constraint, and what exactly to paste back into the workbook. The page is drawn only from the study run
folder (study.json, trials.parquet and the top runs' metrics.json, contract section C), so it can be
rebuilt from a finished or killed study; anything missing is said in its section, never a failed page.

The plotted value of a trial is its IS primary metric (`is.<primary>`), not the objective Optuna was
told: a penalised infeasible trial then sits where its metric really is, marked as infeasible.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime.backtest.tearsheet import _LABELS as METRIC_LABELS
from runtime.backtest.tearsheet import CSS as TEARSHEET_CSS
from runtime.backtest.tearsheet import _fmt
from runtime.contracts import UserError
from runtime.optimize.contracts import MINIMIZE_METRICS

REPORT_NAME = "report.html"
DEFAULT_TOP_N = 20
TRIAL_ROWS = 500  # trials listed in the constraint table (all of them are in trials.parquet)
FIG_CONFIG = {"displaylogo": False, "responsive": True}
#: OPTIMIZATION_PARAMS columns in sheet order, up to the value a pasted row fixes
PARAM_COLUMNS = (
    "study_id",
    "param_scope",
    "target_id",
    "param_name",
    "optimize_flag",
    "param_type",
    "low",
    "high",
    "step",
    "choices",
    "constraint_group",
    "constraint_rule",
    "default_value_if_not_optimized",
)
C_FEAS = "#2456a6"
C_INFEAS = "#9aa1ad"
C_FRONT = "#d17b00"
C_BEST = "#b3261e"

EXTRA_CSS = """
textarea.paste{width:100%;min-height:70px;font-family:ui-monospace,Consolas,monospace;font-size:12px}
td.bad{color:#b3261e;font-weight:600} td.warn{color:#b26a00} td.wrap{white-space:normal;min-width:220px} td.ok{color:#1b7f3b} tr.best td{background:#fff3e0}
.missing{background:#fff6e5;border:1px solid #f0d9a8;border-radius:4px;padding:6px 10px;font-size:12.5px}
.grid2c{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px;align-items:start}
.grid2c>section{min-width:0}
"""


# ----------------------------------------------------------------------------------------------------------
# reading the run folder
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopRun:
    """One re-run top trial: its run folder's metrics.json (None when the folder is missing)."""

    trial: int
    run_id: str
    run_dir: Path | None
    metrics: Mapping[str, Any] | None
    checks: tuple[float, ...] = ()  # every constraint's violation on the full run (study.json top_runs c)


@dataclass(frozen=True)
class StudyRun:
    """A study run folder (contract C) as read: study.json, trials.parquet, the top runs."""

    run_dir: Path
    meta: Mapping[str, Any]
    trials: pd.DataFrame
    top: tuple[TopRun, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def study_id(self) -> str:
        return str(self.meta.get("study_id") or self.run_dir.name)

    @property
    def primary(self) -> str:
        return str(self.meta.get("primary") or "total_pnl")

    @property
    def secondary(self) -> str | None:
        s = self.meta.get("secondary")
        return str(s) if s else None

    @property
    def senses(self) -> tuple[float, float]:
        """+1 where larger is better, for (primary, secondary): study.json directions (two for nsga2),
        else the direction for the primary and the metric's natural sense for the secondary."""
        d = self.meta.get("directions") or self.meta.get("direction") or "maximize"
        dirs = [str(x) for x in d] if isinstance(d, list | tuple) else [str(d)]
        one = 1.0 if dirs[0].lower().startswith("max") else -1.0
        if len(dirs) > 1:
            two = 1.0 if dirs[1].lower().startswith("max") else -1.0
        else:
            two = -1.0 if self.secondary in MINIMIZE_METRICS else 1.0
        return one, two

    @property
    def searched(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.meta.get("searched") or []]

    @property
    def best_trial(self) -> int | None:
        b = self.meta.get("best_trial")
        return None if b is None else int(b)


def load_study_run(run_dir: Path | str) -> StudyRun:
    """Read a study run folder; study.json is required, the rest is optional (the page says what lacks)."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "study.json"
    if not meta_path.is_file():
        raise UserError(
            f"{run_dir}: no study.json, this is not a finished study run; "
            "fix: run `backtest optimize STUDY_ID` (or --resume it) and open the folder it prints"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    notes: list[str] = []
    tpath = run_dir / "trials.parquet"
    if tpath.is_file():
        trials = pd.read_parquet(tpath)
    else:
        trials = pd.DataFrame({"number": pd.Series([], dtype="int64")})
        notes.append("trials.parquet is missing: no trial to show")
    if "number" in trials:
        trials = trials.sort_values("number", kind="stable").reset_index(drop=True)
    top = []
    for t in meta.get("top_runs") or []:
        rid = str(t.get("run_id"))
        d = run_dir.parent / rid
        mpath = d / "metrics.json"
        checks = tuple(math.nan if x is None else float(x) for x in t.get("c") or ())
        if mpath.is_file():
            metrics = json.loads(mpath.read_text(encoding="utf-8"))
            top.append(TopRun(int(t["trial"]), rid, d, metrics, checks))
        else:
            top.append(TopRun(int(t["trial"]), rid, None, None, checks))
            notes.append(f"top run {rid} (trial {t['trial']}): no metrics.json under {d}")
    notes = [str(n) for n in meta.get("notes") or []] + notes
    return StudyRun(run_dir, meta, trials, tuple(top), tuple(notes))


# ----------------------------------------------------------------------------------------------------------
# the numbers behind the figures
# ----------------------------------------------------------------------------------------------------------


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name in df:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(df), np.nan)


def primary_values(sr: StudyRun) -> np.ndarray:
    """Per trial: the IS primary metric (the objective column when the metric column is absent)."""
    v = _col(sr.trials, f"is.{sr.primary}")
    if np.isnan(v).all():
        v = _col(sr.trials, "objective")
    return v


def secondary_values(sr: StudyRun) -> np.ndarray:
    v = _col(sr.trials, "secondary")
    if np.isnan(v).all() and sr.secondary:
        v = _col(sr.trials, f"is.{sr.secondary}")
    return v


def feasible_mask(sr: StudyRun) -> np.ndarray:
    t = sr.trials
    f = (
        t["feasible"].fillna(False).astype(bool).to_numpy(copy=True)
        if "feasible" in t
        else np.ones(len(t), bool)
    )
    if "state" in t:
        f = f & (t["state"].astype(str).str.upper() == "COMPLETE").to_numpy()
    return f


def best_so_far(values: np.ndarray, feasible: np.ndarray, sense: float) -> np.ndarray:
    """Running best of the feasible finite values in trial order (NaN before the first feasible one)."""
    out = np.full(len(values), np.nan)
    best = np.nan
    for i, (v, ok) in enumerate(zip(values, feasible, strict=True)):
        if ok and np.isfinite(v) and (np.isnan(best) or sense * v > sense * best):
            best = v
        out[i] = best
    return out


def pareto_front(x: np.ndarray, y: np.ndarray, senses: tuple[float, float]) -> np.ndarray:
    """Indices of the points no other point dominates (>= on both sense-adjusted axes, > on one); equal
    points are all kept. Sorted by x (the frontier is drawn left to right)."""
    a, b = senses[0] * x, senses[1] * y
    idx = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    order = idx[np.lexsort((-b[idx], -a[idx]))]  # a descending, then b descending
    front: list[int] = []
    above = -np.inf  # the best b among points with a strictly larger a
    k = 0
    while k < len(order):
        j = k
        while j < len(order) and a[order[j]] == a[order[k]]:
            j += 1
        top = b[order[k]]  # the group's best b
        if top > above:
            front.extend(int(i) for i in order[k:j] if b[i] == top)
        above = max(above, top)
        k = j
    return np.array(sorted(front, key=lambda i: (x[i], y[i])), dtype=int)


def _distribution(s: Mapping[str, Any]) -> Any:
    import optuna

    typ = str(s.get("type") or "float")
    if typ in ("categorical", "bool"):
        choices = s.get("choices") or ([False, True] if typ == "bool" else [])
        return optuna.distributions.CategoricalDistribution(list(choices))
    step = s.get("step")
    step = None if step in (None, "") or (isinstance(step, float) and math.isnan(step)) else step
    if typ == "int":
        return optuna.distributions.IntDistribution(int(s["low"]), int(s["high"]), step=int(step or 1))
    return optuna.distributions.FloatDistribution(
        float(s["low"]), float(s["high"]), step=None if step is None else float(step)
    )


def _pvalue(v: Any, typ: str) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if typ == "int":
        return int(v)
    if typ == "float":
        return float(v)
    if typ == "bool" and isinstance(v, str):
        return v.lower() == "true"
    return v


def param_importances(sr: StudyRun) -> tuple[dict[str, float], str | None]:
    """PED-ANOVA importances of the searched keys for the IS primary metric over the feasible trials.

    PED-ANOVA (Optuna's default evaluator since 5.0) needs no extra package; fANOVA and MDI need
    scikit-learn, which the project does not depend on. Returns ({key: share}, None) or ({}, why not).
    """
    import optuna

    searched = [s for s in sr.searched if f"p.{s['key']}" in sr.trials]
    if not searched:
        return {}, "no searched parameter in trials.parquet"
    y = primary_values(sr)
    ok = feasible_mask(sr) & np.isfinite(y)
    if ok.sum() < 4:
        return {}, f"{int(ok.sum())} feasible trial(s): importances need at least 4"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {s["key"]: _distribution(s) for s in searched}
    study = optuna.create_study(direction="maximize" if sr.senses[0] > 0 else "minimize")
    trials = []
    for i in np.flatnonzero(ok):
        row = sr.trials.iloc[int(i)]
        params = {s["key"]: _pvalue(row[f"p.{s['key']}"], str(s.get("type"))) for s in searched}
        try:
            trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(y[i])))
        except ValueError as e:  # a value outside its declared range: skip the trial, say so
            return {}, f"trial {int(row['number'])}: {e}"
    study.add_trials(trials)
    if len({float(v) for v in y[ok]}) < 2:
        return {}, "every feasible trial has the same value: no parameter explains any variation"
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        )
    except (RuntimeError, ValueError) as e:
        return {}, f"Optuna could not rank the parameters: {e}"
    return {k: float(v) for k, v in imp.items()}, None


def _clean(v: Any) -> Any:
    """A sampler's value as a user would type it (0.30000000000000004 -> 0.3; numpy -> Python)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.10g}")
    return v


def best_params(sr: StudyRun) -> dict[str, Any] | None:
    """The best trial's full key -> value set (study.json best_params, else its trials.parquet row)."""
    bp = sr.meta.get("best_params")
    if bp:
        return {k: _clean(v) for k, v in bp.items()}
    b = sr.best_trial
    if b is None or "params" not in sr.trials:
        return None
    hit = sr.trials[sr.trials["number"] == b]
    if hit.empty:
        return None
    return {k: _clean(v) for k, v in json.loads(hit["params"].iloc[0]).items()}


def _typed(v: Any, typ: str) -> Any:
    """A bound or step as its parameter's type (an int parameter's 20.0 is 20)."""
    v = _clean(v)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if typ == "int" and isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def at_edges(sr: StudyRun) -> list[str]:
    """Searched numeric keys whose best value sits on the low or high bound (the optimum may lie outside)."""
    bp = best_params(sr) or {}
    out = []
    for s in sr.searched:
        v = bp.get(s["key"])
        if str(s.get("type")) not in ("int", "float") or v is None or s.get("low") is None:
            continue
        for side, bound in (("low", s["low"]), ("high", s["high"])):
            if bound is not None and math.isclose(float(v), float(bound), rel_tol=1e-9, abs_tol=1e-12):
                out.append(f"{s['key']} = {_clean(v)} is its {side} bound")
    return out


def paste_rows(sr: StudyRun) -> pd.DataFrame:
    """The study's OPTIMIZATION_PARAMS rows with default_value_if_not_optimized = the best value.

    Pasted over the study's rows they fix the optimum while keeping the search space (optimize_flag is
    kept; clear it to run the backtest at the optimum)."""
    bp = best_params(sr) or {}
    rows = []
    for s in sr.searched:
        typ = str(s.get("type") or "")
        choices = s.get("choices")
        rows.append(
            {
                "study_id": sr.study_id,
                "param_scope": s.get("scope"),
                "target_id": s.get("target_id"),
                "param_name": s.get("name"),
                "optimize_flag": "X",
                "param_type": typ,
                "low": _typed(s.get("low"), typ),
                "high": _typed(s.get("high"), typ),
                "step": _typed(s.get("step"), typ),
                "choices": ",".join(str(c) for c in choices) if choices else None,
                "constraint_group": s.get("constraint_group"),
                "constraint_rule": s.get("constraint_rule"),
                "default_value_if_not_optimized": bp.get(s["key"]),
            }
        )
    return pd.DataFrame(rows, columns=list(PARAM_COLUMNS), dtype=object)


def workbook_values(sr: StudyRun) -> pd.DataFrame:
    """Where each best value goes when fixed in the definition sheets instead: sheet, row, column, value.

    Strategy/template keys go together as the strategy's params_json (the searched ones at their best and
    the fixed ones as run); `<feature>.<name>` keys as that row's params_json; `backtest.<col>` as the
    BACKTESTS cell."""
    bp = best_params(sr) or {}
    scope_of = {s["key"]: (s.get("scope"), s.get("target_id")) for s in sr.searched}
    strategy = next((t for sc, t in scope_of.values() if sc == "strategy"), None)
    rows: list[dict[str, Any]] = []
    strat: dict[str, Any] = {}
    feats: dict[tuple[str, str], dict[str, Any]] = {}
    for key, v in bp.items():
        scope = scope_of.get(key, (None, None))[0]
        if key.startswith("backtest."):
            rows.append(
                {
                    "sheet": "BACKTESTS",
                    "row": sr.meta.get("backtest_id"),
                    "column": key.split(".", 1)[1],
                    "value": json.dumps(v),
                }
            )
        elif "." in key:
            fid, name = key.split(".", 1)
            sheet = "GATES" if scope == "gate" else "FEATURE_LIBRARY / ENGINEERED_FEATURES"
            feats.setdefault((sheet, fid), {})[name] = v
        else:
            strat[key] = v
    if strat:
        rows.insert(
            0,
            {
                "sheet": "STRATEGIES",
                "row": strategy or f"the strategy of {sr.meta.get('backtest_id')}",
                "column": "params_json",
                "value": json.dumps(strat, sort_keys=True),
            },
        )
    for (sheet, fid), d in feats.items():
        rows.append(
            {"sheet": sheet, "row": fid, "column": "params_json", "value": json.dumps(d, sort_keys=True)}
        )
    return pd.DataFrame(rows, columns=["sheet", "row", "column", "value"])


def trials_frame(sr: StudyRun) -> pd.DataFrame:
    """One row per trial, best first (feasible before infeasible): number, feasible, the IS primary and
    secondary metric, the searched parameters: the notebook's study table."""
    t = sr.trials
    df = pd.DataFrame({"trial": t["number"].astype(int) if "number" in t else range(len(t))})
    if "state" in t:
        df["state"] = t["state"].astype(str).to_numpy()
    df["feasible"] = feasible_mask(sr)
    df[f"IS {sr.primary}"] = primary_values(sr)
    if sr.secondary:
        df[f"IS {sr.secondary}"] = secondary_values(sr)
    for s in sr.searched:
        c = f"p.{s['key']}"
        if c in t:
            df[s["key"]] = [_clean(v) for v in t[c]]
    key = -sr.senses[0] * df[f"IS {sr.primary}"].to_numpy(dtype=float)
    key = np.where(np.isfinite(key), key, np.inf)
    order = np.lexsort((df["trial"].to_numpy(), key, ~df["feasible"].to_numpy()))
    return df.iloc[order].reset_index(drop=True)


def is_oos_frame(sr: StudyRun) -> pd.DataFrame:
    """The re-run top trials: IS, OOS and full value of the primary, secondary and headline metrics."""
    metrics = [sr.primary] + [m for m in (sr.secondary, "sharpe", "max_drawdown", "n_trades") if m]
    metrics = list(dict.fromkeys(metrics))
    rows = []
    for tr in sr.top:
        if tr.metrics is None:
            continue
        for m in metrics:
            rows.append(
                {
                    "trial": tr.trial,
                    "run_id": tr.run_id,
                    "metric": m,
                    "IS": (tr.metrics.get("is") or {}).get(m),
                    "OOS": (tr.metrics.get("oos") or {}).get(m),
                    "full": (tr.metrics.get("full") or {}).get(m),
                }
            )
    df = pd.DataFrame(rows, columns=["trial", "run_id", "metric", "IS", "OOS", "full"])
    for c in ("IS", "OOS", "full"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


# ----------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------


def _base(fig: Any, height: int, **kw: Any) -> Any:
    fig.update_layout(
        height=height,
        margin=dict(l=64, r=20, t=34, b=44),
        template="plotly_white",
        legend=dict(orientation="h", y=1.1, x=0),
        **kw,
    )
    return fig


def _label(metric: str | None) -> str:
    if metric is None:
        return ""
    return METRIC_LABELS.get(metric, (metric, ""))[0]


def _hover(sr: StudyRun) -> list[str]:
    keys = [s["key"] for s in sr.searched if f"p.{s['key']}" in sr.trials]
    out = []
    for _, row in sr.trials.iterrows():
        ps = "<br>".join(f"{html.escape(k)} = {_clean(row[f'p.{k}'])}" for k in keys)
        out.append(f"trial {int(row['number'])}<br>{ps}")
    return out


def _best_index(sr: StudyRun) -> int | None:
    b = sr.best_trial
    if b is None or "number" not in sr.trials:
        return None
    hit = np.flatnonzero(sr.trials["number"].to_numpy() == b)
    return int(hit[0]) if len(hit) else None


def history_figure(sr: StudyRun) -> Any:
    """IS primary metric per trial (feasible dots, infeasible grey crosses), the best-so-far line, the best."""
    import plotly.graph_objects as go

    y = primary_values(sr)
    f = feasible_mask(sr)
    n = sr.trials["number"].to_numpy() if "number" in sr.trials else np.arange(len(y))
    hover = _hover(sr)
    fig = go.Figure()
    for name, mask, color, symbol in (
        ("feasible", f, C_FEAS, "circle"),
        ("infeasible", ~f, C_INFEAS, "x"),
    ):
        idx = np.flatnonzero(mask & np.isfinite(y))
        fig.add_scatter(
            x=n[idx],
            y=y[idx],
            mode="markers",
            name=f"{name} ({len(idx)})",
            marker=dict(color=color, symbol=symbol, size=7, opacity=0.85),
            text=[hover[i] for i in idx],
            hovertemplate="%{text}<br>%{y:,.4g}<extra></extra>",
        )
    bsf = best_so_far(y, f, sr.senses[0])
    fig.add_scatter(
        x=n, y=bsf, mode="lines", name="best so far", line=dict(color=C_FRONT, width=2, shape="hv")
    )
    b = _best_index(sr)
    if b is not None and np.isfinite(y[b]):
        fig.add_scatter(
            x=[n[b]],
            y=[y[b]],
            mode="markers",
            name=f"best: trial {int(n[b])}",
            marker=dict(color=C_BEST, symbol="star", size=15, line=dict(color="#fff", width=1)),
        )
    _base(fig, 380, xaxis_title="trial", yaxis_title=f"IS {_label(sr.primary)}")
    return fig


def importance_figure(sr: StudyRun, importances: Mapping[str, float] | None = None) -> Any:
    """Horizontal bars: each searched parameter's share of the explained variation (PED-ANOVA)."""
    import plotly.graph_objects as go

    imp = param_importances(sr)[0] if importances is None else dict(importances)
    items = sorted(imp.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[k for k, _ in items],
            orientation="h",
            marker_color=C_FEAS,
            text=[f"{100 * v:.0f}%" for _, v in items],
            textposition="auto",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    _base(fig, max(200, 46 * len(items) + 90), xaxis=dict(title="importance (share)", tickformat=".0%"))
    return fig


def pareto_figure(sr: StudyRun) -> Any:
    """Primary vs secondary IS metric of every trial, the feasible frontier highlighted, the best marked."""
    import plotly.graph_objects as go

    x, y, f = primary_values(sr), secondary_values(sr), feasible_mask(sr)
    hover = _hover(sr)
    fig = go.Figure()
    for name, mask, color, symbol in (
        ("feasible", f, C_FEAS, "circle"),
        ("infeasible", ~f, C_INFEAS, "x"),
    ):
        idx = np.flatnonzero(mask & np.isfinite(x) & np.isfinite(y))
        fig.add_scatter(
            x=x[idx],
            y=y[idx],
            mode="markers",
            name=f"{name} ({len(idx)})",
            marker=dict(color=color, symbol=symbol, size=7, opacity=0.8),
            text=[hover[i] for i in idx],
            hovertemplate="%{text}<br>(%{x:,.4g}, %{y:,.4g})<extra></extra>",
        )
    fx = np.where(f, x, np.nan)
    front = pareto_front(fx, y, sr.senses)
    fig.add_scatter(
        x=x[front],
        y=y[front],
        mode="lines+markers",
        name=f"Pareto frontier ({len(front)})",
        line=dict(color=C_FRONT, width=2),
        marker=dict(color=C_FRONT, size=10, symbol="diamond"),
        text=[hover[i] for i in front],
        hovertemplate="%{text}<br>(%{x:,.4g}, %{y:,.4g})<extra></extra>",
    )
    b = _best_index(sr)
    if b is not None and np.isfinite(x[b]) and np.isfinite(y[b]):
        fig.add_scatter(
            x=[x[b]],
            y=[y[b]],
            mode="markers",
            name="best",
            marker=dict(color=C_BEST, symbol="star", size=16, line=dict(color="#fff", width=1)),
        )
    _base(fig, 440, xaxis_title=f"IS {_label(sr.primary)}", yaxis_title=f"IS {_label(sr.secondary)}")
    return fig


def slice_figure(sr: StudyRun) -> Any:
    """One panel per searched parameter: its value against the IS primary metric, coloured by trial."""
    from plotly.subplots import make_subplots

    keys = [s for s in sr.searched if f"p.{s['key']}" in sr.trials]
    per_row = min(3, max(1, len(keys)))
    rows = max(1, math.ceil(len(keys) / per_row))
    fig = make_subplots(
        rows=rows,
        cols=per_row,
        subplot_titles=[s["key"] for s in keys] or [""],
        horizontal_spacing=0.07,
        vertical_spacing=0.16 if rows > 1 else 0.1,
    )
    y, f = primary_values(sr), feasible_mask(sr)
    n = sr.trials["number"].to_numpy() if "number" in sr.trials else np.arange(len(y))
    b = _best_index(sr)
    for j, s in enumerate(keys):
        r, c = j // per_row + 1, j % per_row + 1
        raw = sr.trials[f"p.{s['key']}"]
        cat = str(s.get("type")) in ("categorical", "bool")
        xv = raw.astype(str).to_numpy() if cat else pd.to_numeric(raw, errors="coerce").to_numpy(float)
        for mask, feas in ((f, True), (~f, False)):
            idx = np.flatnonzero(mask & np.isfinite(y))
            fig.add_scatter(
                x=xv[idx],
                y=y[idx],
                mode="markers",
                showlegend=False,
                marker=dict(
                    color=n[idx] if feas else C_INFEAS,
                    colorscale="Blues",
                    cmin=float(n.min()) if len(n) else 0,
                    cmax=float(n.max()) if len(n) else 1,
                    symbol="circle" if feas else "x",
                    size=7,
                    opacity=0.85,
                    showscale=feas and j == 0,
                    colorbar=dict(title="trial", len=0.6) if feas and j == 0 else None,
                ),
                hovertemplate=f"{html.escape(s['key'])} = %{{x}}<br>%{{y:,.4g}}<extra></extra>",
                row=r,
                col=c,
            )
        if b is not None and np.isfinite(y[b]):
            fig.add_scatter(
                x=[xv[b]],
                y=[y[b]],
                mode="markers",
                showlegend=False,
                marker=dict(color=C_BEST, symbol="star", size=14, line=dict(color="#fff", width=1)),
                hovertemplate="best<extra></extra>",
                row=r,
                col=c,
            )
        if cat:
            fig.update_xaxes(type="category", row=r, col=c)
    fig.update_yaxes(title_text=f"IS {_label(sr.primary)}", col=1)
    _base(fig, 300 * rows + 40)
    fig.update_layout(margin=dict(l=64, r=20, t=40, b=40))
    return fig


def is_oos_figure(sr: StudyRun) -> Any:
    """IS vs OOS of the re-run top trials, one panel per metric (the primary, then the secondary)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = is_oos_frame(sr)
    metrics = [m for m in dict.fromkeys([sr.primary, sr.secondary or "sharpe"]) if m]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[_label(m) for m in metrics])
    for j, m in enumerate(metrics):
        d = df[df["metric"] == m]
        labels = [f"trial {t}" for t in d["trial"]]
        for seg, color in (("IS", C_FEAS), ("OOS", C_FRONT)):
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=d[seg],
                    name=seg,
                    marker_color=color,
                    showlegend=j == 0,
                    hovertemplate=f"%{{x}} {seg}: %{{y:,.4g}}<extra></extra>",
                ),
                row=1,
                col=j + 1,
            )
    _base(fig, 360, barmode="group")
    return fig


def build_figures(sr: StudyRun, *, pareto_plot: bool = True) -> dict[str, Any]:
    """Every figure of the page by its div id (fig-...): what notebook 04 shows."""
    figs = {"fig-history": history_figure(sr)}
    imp, _ = param_importances(sr)
    if imp:
        figs["fig-importance"] = importance_figure(sr, imp)
    if pareto_plot and sr.secondary and np.isfinite(secondary_values(sr)).any():
        figs["fig-pareto"] = pareto_figure(sr)
    if sr.searched:
        figs["fig-slices"] = slice_figure(sr)
    if not is_oos_frame(sr).empty:
        figs["fig-isoos"] = is_oos_figure(sr)
    return figs


# ----------------------------------------------------------------------------------------------------------
# tables and the page
# ----------------------------------------------------------------------------------------------------------


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _num(v: Any, metric: str | None = None) -> str:
    if v is None or isinstance(v, str):
        return _esc("–" if v is None else v)
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    v = float(v)
    kind = METRIC_LABELS.get(metric or "", ("", "ratio"))[1] if metric else "ratio"
    if kind == "ratio" and math.isfinite(v) and abs(v) < 1e-2 and v != 0:
        return f"{v:.3g}"
    return _fmt(v, kind)


def _missing(text: str) -> str:
    return f"<p class='missing'>{_esc(text)}</p>"


def _kv(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _setup(sr: StudyRun) -> str:
    m = sr.meta
    f = feasible_mask(sr)
    states = sr.trials["state"].astype(str).value_counts().to_dict() if "state" in sr.trials else {}
    rows = [
        ("study / run", f"{sr.study_id} · {sr.run_dir.name}"),
        ("backtest", m.get("backtest_id")),
        ("method / seed", f"{m.get('method')} · seed {m.get('seed')}"),
        ("objective", f"{m.get('direction')} IS {sr.primary}"),
        ("secondary", sr.secondary or "none"),
        (
            "trials",
            f"{len(sr.trials)} finished of {m.get('n_trials')} asked; {int(f.sum())} feasible"
            + (f" ({', '.join(f'{k} {v}' for k, v in states.items())})" if states else ""),
        ),
        ("robustness profile", m.get("robustness_profile_id") or "none"),
        ("snapshot", str(m.get("snapshot_hash") or "")[:16]),
    ]
    space = "".join(
        f"<tr><td class='l'>{_esc(s['key'])}</td><td class='l'>{_esc(s.get('scope'))}</td>"
        f"<td class='l'>{_esc(s.get('type'))}</td><td class='l'>"
        + _esc(
            ", ".join(map(str, s["choices"]))
            if s.get("choices")
            else f"{_typed(s.get('low'), str(s.get('type')))} .. {_typed(s.get('high'), str(s.get('type')))}"
            + (
                f" step {_typed(s.get('step'), str(s.get('type')))}"
                if s.get("step") not in (None, "")
                else ""
            )
        )
        + "</td></tr>"
        for s in sr.searched
    )
    fixed = ", ".join(f"{k}={_clean(v)}" for k, v in (m.get("fixed") or {}).items()) or "none"
    rules = "; ".join(str(r) for r in m.get("rules") or [])
    cons = "".join(
        f"<tr><td class='l'>{_esc(c.get('metric'))} {_esc(c.get('operator'))} {_esc(c.get('threshold'))}</td>"
        f"<td class='l'>{_esc(c.get('scope'))}</td><td class='l'>{_esc(c.get('severity'))}</td></tr>"
        for c in m.get("constraints") or []
    )
    return (
        _kv(rows)
        + "<h2 style='margin-top:12px'>Search space</h2><table><tr><th class='l'>key</th><th class='l'>scope</th>"
        f"<th class='l'>type</th><th class='l'>range</th></tr>{space}</table>"
        f"<p class='notes'>fixed: {_esc(fixed)}</p>"
        + (f"<p class='notes'>parameter rules (refused before any run): {_esc(rules)}</p>" if rules else "")
        + (
            f"<h2>Constraints {_esc(m.get('constraint_set_id') or '')}</h2><table><tr><th class='l'>rule</th><th class='l'>scope</th>"
            f"<th class='l'>severity</th></tr>{cons}</table>"
            if cons
            else "<p class='notes'>no constraint</p>"
        )
    )


def _leaderboard(sr: StudyRun, top_n: int) -> str:
    df = trials_frame(sr)
    if df.empty:
        return _missing("no finished trial")
    shown = df[df["feasible"]].head(top_n)
    if shown.empty:
        return _missing("no feasible trial: every trial breaks a hard constraint (see the table below)")
    cols = [c for c in shown.columns if c not in ("state", "feasible")]
    head = "".join(f"<th>{_esc(c)}</th>" for c in ["#", *cols])
    best = sr.best_trial
    rows = []
    for i, rec in enumerate(shown[cols].itertuples(index=False), start=1):
        cells = "".join(
            f"<td>{_num(v, c.split(' ', 1)[1])}</td>"
            if c.startswith("IS ")
            else f"<td>{_esc(_clean(v))}</td>"
            for c, v in zip(cols, rec, strict=True)
        )
        cls = " class='best'" if rec[0] == best else ""
        rows.append(f"<tr{cls}><td>{i}</td>{cells}</tr>")
    return f"<div class='scroll'><table class='leader'><tr>{head}</tr>{''.join(rows)}</table></div>"


def _con_label(c: Mapping[str, Any]) -> str:
    return (
        f"{c.get('metric')} {c.get('operator')} {c.get('threshold')} ({c.get('scope')}, {c.get('severity')})"
    )


def constraint_table(sr: StudyRun) -> pd.DataFrame:
    """Per trial: state, feasibility and, per constraint, the IS value (IS scope) and its violation c.<i>
    (> 0 = broken; NaN = not evaluated: OOS/ALL scopes are checked on the top re-runs only), and why a
    trial was refused (trials.parquet reason)."""
    t = sr.trials
    cons = list(sr.meta.get("constraints") or [])
    df = pd.DataFrame({"trial": t["number"].astype(int) if "number" in t else range(len(t))})
    df["state"] = t["state"].astype(str).to_numpy() if "state" in t else "COMPLETE"
    df["feasible"] = feasible_mask(sr)
    for i, c in enumerate(cons):
        label = _con_label(c)
        df[f"{label} value"] = (
            _col(t, f"is.{c.get('metric')}")
            if str(c.get("scope", "")).upper() == "IS"
            else np.full(len(t), np.nan)
        )
        df[f"{label} violation"] = _col(t, f"c.{i}")
    df["reason"] = t["reason"].fillna("").astype(str).to_numpy() if "reason" in t else ""
    return df


def _con_cell(val: float, vio: float, metric: Any) -> str:
    shown = val if np.isfinite(val) else vio
    cls = "bad" if np.isfinite(vio) and vio > 0 else ("ok" if np.isfinite(vio) else "")
    return f"<td class='{cls}'>{_num(shown, metric)}</td>"


def _constraints_html(sr: StudyRun) -> str:
    cons = list(sr.meta.get("constraints") or [])
    df = constraint_table(sr)
    head = (
        "<tr><th>trial</th><th class='l'>state</th><th>feasible</th>"
        + "".join(
            f"<th>{_esc(c.get('metric'))} {_esc(c.get('operator'))} {_esc(c.get('threshold'))}"
            f"<br><span class='notes'>{_esc(c.get('scope'))} · {_esc(c.get('severity'))}</span></th>"
            for c in cons
        )
        + "<th class='l'>reason</th>"
    )
    rows = []
    for r in df.head(TRIAL_ROWS).to_dict("records"):
        cells = "".join(
            _con_cell(r[f"{_con_label(c)} value"], r[f"{_con_label(c)} violation"], c.get("metric"))
            for c in cons
        )
        feas = "<td class='ok'>yes</td>" if r["feasible"] else "<td class='bad'>no</td>"
        rows.append(
            f"<tr><td>{int(r['trial'])}</td><td class='l'>{_esc(r['state'])}</td>{feas}{cells}"
            f"<td class='l'>{_esc(r['reason'])}</td></tr>"
        )
    more = (
        f"<p class='notes'>{len(df):,} trials; the first {TRIAL_ROWS} are listed (all in trials.parquet).</p>"
        if len(df) > TRIAL_ROWS
        else ""
    )
    intro = (
        "IS-scope constraints show the trial's IS value, others their violation (&gt; 0 = broken; OOS and "
        "ALL scopes are checked on the re-run top trials, above); red = broken. A broken hard constraint "
        "makes the trial infeasible; soft ones are reported only."
        if cons
        else "No constraint set: every finished trial is feasible."
    )
    return (
        f"{more}<p class='notes'>{intro}</p><div class='scroll'><table class='constraints'>{head}</tr>"
        f"{''.join(rows)}</table></div>"
    )


def _frame_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th class='l'>{_esc(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td class='l'>{_esc('' if v is None else v)}</td>" for v in rec) + "</tr>"
        for rec in df.astype(object).where(df.notna(), None).itertuples(index=False)
    )
    return f"<div class='scroll'><table class='paste'><tr>{head}</tr>{body}</table></div>"


def _paste_html(sr: StudyRun) -> str:
    bp = best_params(sr)
    if bp is None:
        return _missing("no best trial (no feasible trial finished): nothing to paste")
    rows = paste_rows(sr)
    tsv = "\t".join(PARAM_COLUMNS) + "\n"
    for rec in rows.astype(object).where(rows.notna(), None).itertuples(index=False):
        tsv += "\t".join("" if v is None else str(v) for v in rec) + "\n"
    wv = workbook_values(sr)
    edges = at_edges(sr)
    edge = (
        _missing(
            "At the edge of the search space: "
            + "; ".join(edges)
            + ". The optimum may lie outside the range: widen low/high and run the study again."
        )
        if edges
        else ""
    )
    return (
        f"<p class='notes'>Best trial {sr.best_trial}: the full parameter set "
        f"<code>{_esc(json.dumps(bp, sort_keys=True))}</code></p>{edge}"
        "<h2>OPTIMIZATION_PARAMS rows (default_value_if_not_optimized = the best value)</h2>"
        f"{_frame_html(rows.dropna(axis=1, how='all'))}<p class='notes'>The table leaves out empty columns; "
        "the box below has all of them, tab-separated with the header: select, copy, paste over the study's "
        "rows in OPTIMIZATION_PARAMS. Clear optimize_flag to run the backtest at these values.</p>"
        f"<textarea class='paste' id='paste-params' rows='{len(rows) + 2}' readonly>{_esc(tsv)}</textarea>"
        "<h2 style='margin-top:12px'>Or fixed in the definition sheets</h2>"
        f"{_frame_html(wv)}<p class='notes'>Merge each params_json with the keys the row already has.</p>"
    )


def _isoos_html(sr: StudyRun, div: str | None) -> str:
    if not sr.top:
        return _missing("no top trial was re-run (save_top_n_artifacts = 0, or no feasible trial)")
    df = is_oos_frame(sr)
    if df.empty:
        return _missing("the top runs' metrics.json files are missing: " + "; ".join(sr.notes))
    piv = df.pivot_table(index=["trial", "run_id"], columns="metric", values=["IS", "OOS"], sort=False)
    metrics = list(dict.fromkeys(df["metric"]))
    head = "<tr><th>trial</th><th class='l'>run</th>" + "".join(
        f"<th>{_esc(_label(m))} IS</th><th>{_esc(_label(m))} OOS</th>" for m in metrics
    )
    cons = list(sr.meta.get("constraints") or [])
    checks = {tr.trial: tr.checks for tr in sr.top}
    head += "<th class='l'>constraints on the full run</th>" if cons else ""
    body = []
    for (trial, rid), rec in piv.iterrows():
        cells = "".join(
            f"<td>{_num(rec[('IS', m)], m)}</td><td>{_num(rec[('OOS', m)], m)}</td>" for m in metrics
        )
        if cons:
            ch = checks.get(int(trial)) or ()
            broken = [c for c, x in zip(cons, ch, strict=False) if np.isfinite(x) and x > 0]
            hard = [_con_label(c) for c in broken if c.get("severity") == "hard"]
            soft = [_con_label(c) for c in broken if c.get("severity") != "hard"]
            if not ch:
                cells += "<td class='l'>–</td>"
            elif broken:
                txt = "; ".join([*(f"broken: {h}" for h in hard), *(f"soft: {x}" for x in soft)])
                cells += f"<td class='l {'bad' if hard else 'warn'} wrap'>{_esc(txt)}</td>"
            else:
                cells += "<td class='l ok'>all met</td>"
        body.append(f"<tr><td>{trial}</td><td class='l'>{_esc(rid)}</td>{cells}</tr>")
    table = f"<div class='scroll'><table class='isoos'>{head}</tr>{''.join(body)}</table></div>"
    return (
        (div or "")
        + table
        + (
            "<p class='notes'>Each top run is a full `backtest run` of the trial (IS + OOS), its folder next to "
            "this study's under DATA_ROOT/runs/.</p>"
        )
    )


def render_report(sr: StudyRun, *, pareto_plot: bool = True, top_n: int = DEFAULT_TOP_N) -> str:
    """The whole page (plotly.js inline once; every figure a div drawn by it)."""
    from plotly.offline import get_plotlyjs

    figs = build_figures(sr, pareto_plot=pareto_plot)
    div = {
        k: f.to_html(full_html=False, include_plotlyjs=False, div_id=k, config=FIG_CONFIG)
        for k, f in figs.items()
    }
    imp, why = param_importances(sr)
    y, f = primary_values(sr), feasible_mask(sr)
    b = _best_index(sr)
    best = (
        f"best trial {sr.best_trial}: IS {_label(sr.primary)} {_num(y[b], sr.primary)}"
        if b is not None
        else "no feasible trial"
    )
    sub = (
        f"{_esc(sr.meta.get('backtest_id'))} · {_esc(sr.meta.get('method'))} · {len(sr.trials)} trials, "
        f"{int(f.sum())} feasible · {_esc(best)}"
    )
    if pareto_plot and not sr.secondary:
        pareto = _missing("the study has no objective_secondary_metric: no Pareto frontier to draw")
    elif not pareto_plot:
        pareto = "<p class='notes'>Pareto plot off for this study (REPORTING pareto_plot).</p>"
    else:
        pareto = div.get("fig-pareto") or _missing(f"no trial has a finite {sr.secondary}")
    imp_html = div.get("fig-importance") or _missing(f"no importances: {why}")
    if imp:
        imp_html += (
            "<p class='notes'>PED-ANOVA (Optuna) over the feasible trials: which parameters it takes to reach "
            "the top 10% of the IS primary metric.</p>"
        )
    notes = "".join(f"<li>{_esc(n)}</li>" for n in sr.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(sr.study_id)} study report</title>
<style>{TEARSHEET_CSS}{EXTRA_CSS}</style><script>{get_plotlyjs()}</script></head>
<body><header><h1>Study {_esc(sr.study_id)}</h1><div class="sub">{sub}</div></header><main>
{f"<ul class='notes'>{notes}</ul>" if notes else ""}
<div class="grid2"><section id="sec-setup"><h2>Setup</h2>{_setup(sr)}</section>
<section id="sec-history"><h2>Optimization history (IS {_esc(_label(sr.primary))})</h2>{div["fig-history"]}</section></div>
<section id="sec-best"><h2>Best parameters, ready to paste</h2>{_paste_html(sr)}</section>
<div class="grid2c"><section id="sec-importance"><h2>Parameter importances</h2>{imp_html}</section>
<section id="sec-pareto"><h2>Pareto frontier: IS {_esc(_label(sr.primary))} vs IS {_esc(_label(sr.secondary))}</h2>{pareto}</section></div>
<section id="sec-slices"><h2>1D slices: each searched parameter vs IS {_esc(_label(sr.primary))}</h2>{div.get("fig-slices") or _missing("no searched parameter")}</section>
<section id="sec-isoos"><h2>IS vs OOS of the re-run top trials</h2>{_isoos_html(sr, div.get("fig-isoos"))}</section>
<section id="sec-leader"><h2>Leaderboard: top {top_n} feasible trials</h2>{_leaderboard(sr, top_n)}</section>
<section id="sec-constraints"><h2>Constraints per trial</h2>{_constraints_html(sr)}</section>
</main></body></html>
"""


def report_options(snap: Any, study_id: str) -> dict[str, Any]:
    """pareto_plot and top_n from the study's enabled REPORTING row (target_type study); without a row
    the Pareto plot is drawn (cheap, and what the study's secondary metric is for) and 20 trials listed."""
    row = next(
        (
            r
            for r in snap.rows("REPORTING")
            if r.enabled and r.target_type == "study" and r.target_id == study_id
        ),
        None,
    )
    if row is None:
        return {"pareto_plot": True, "top_n": DEFAULT_TOP_N}
    return {"pareto_plot": bool(row.pareto_plot), "top_n": int(row.leaderboard_top_n or DEFAULT_TOP_N)}


def write_report(run_dir: Path | str, *, pareto_plot: bool = True, top_n: int = DEFAULT_TOP_N) -> Path:
    """Render report.html into the study run folder (written to a temp file, then renamed)."""
    run_dir = Path(run_dir)
    text = render_report(load_study_run(run_dir), pareto_plot=pareto_plot, top_n=top_n)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, run_dir / REPORT_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return run_dir / REPORT_NAME


__all__ = [
    "REPORT_NAME",
    "StudyRun",
    "TopRun",
    "at_edges",
    "best_params",
    "best_so_far",
    "build_figures",
    "constraint_table",
    "history_figure",
    "importance_figure",
    "is_oos_figure",
    "is_oos_frame",
    "load_study_run",
    "param_importances",
    "pareto_figure",
    "pareto_front",
    "paste_rows",
    "render_report",
    "report_options",
    "slice_figure",
    "trials_frame",
    "workbook_values",
    "write_report",
]
