"""`backtest robustness TARGET [--profile ID]`: every enabled test of a robustness profile, one run folder.

Why one runner: each test needs the same things (the compiled backtest at the tested binding, its evaluated
run on the kernel's arrays, its daily net returns, the study's searched parameters and trials); they are
built once here and handed to the test functions of engine_tests.py. TARGET is a backtest id (tested at its
workbook params) or a study id (tested at the study's best trial, with the study's trials for multiple
testing and its searched parameters for walk-forward re-optimisation and the sensitivity grids).

Outputs (contract D, design/ROBUSTNESS.md section 11): DATA_ROOT/runs/<rb-target-hash>/ with summary.json
and one parquet per test, written to a temp folder renamed into place; registry robustness_results rows and
the `runs` row (kind 'robustness') last. The run id hashes the snapshot, the data versions, the target, the
profile and its rows (and the study run): the same inputs find their run again and nothing is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.config.names import canonical_key
from runtime.config.robustness import check_test_params
from runtime.contracts import ConfigSnapshot, ResolvedPaths, UserError
from runtime.engine.contracts import METRIC_NAMES, SEGMENTS
from runtime.engine.kernel import session_returns
from runtime.robustness import engine_tests as et
from runtime.robustness.contracts import EngineInputs, RobustnessOutcome, TestResult
from runtime.storage.atomic import atomic_dir
from runtime.storage.registry import Registry, insert_rows, upsert_rows, utcnow

Progress = Callable[[int, int, str], None]  #: (index of the test starting, number of tests, test_id)


@dataclass(frozen=True, eq=False)
class Context:
    """What the tests share (built once per run)."""

    snap: ConfigSnapshot
    paths: ResolvedPaths
    reg: Registry
    target: str
    target_type: str
    backtest_id: str
    params: dict[str, Any]  #: the tested parameter set (contract A keys)
    compiled: Any  #: CompiledBacktest
    data: Any  #: RunData
    inputs: EngineInputs
    returns: np.ndarray  #: daily net returns of the tested run (one per session)
    dates: np.ndarray  #: session dates (datetime64[D])
    oos_day: int | None  #: first OOS session index
    ann: float
    study: dict[str, Any] | None  #: study.json (contract C) or None
    study_dir: Path | None
    searched: list[dict[str, Any]]  #: searched parameter specs (study.json "searched" shape)
    fixed: dict[str, Any]
    primary: str
    direction: str


# --------------------------------------------------------------------------------------------------
# Target, study and profile
# --------------------------------------------------------------------------------------------------


def _suggest(value: str, options: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(value, options, n=1)
    return f"did you mean {near[0]!r}? " if near else ""


def _find_study_run(snap: ConfigSnapshot, reg: Registry, study_id: str) -> tuple[dict[str, Any], Path]:
    """The study's finished run (contract C): the one on this snapshot, else the latest one."""
    rows = reg.query(
        "SELECT run_id, path, finished_at FROM runs WHERE kind = 'study' AND target_id = ? AND status = 'done' "
        "ORDER BY finished_at DESC",
        [study_id],
    )
    found: list[tuple[dict[str, Any], Path]] = []
    for r in rows:
        d = Path(r["path"] or "")
        f = d / "study.json"
        if f.is_file():
            try:
                found.append((json.loads(f.read_text(encoding="utf-8")), d))
            except ValueError:
                continue
    if not found:
        raise UserError(
            f"study {study_id} has not run (no finished study run in the registry); fix: run "
            f"`backtest optimize {study_id}` first, then `backtest robustness {study_id}`"
        )
    same = [x for x in found if x[0].get("snapshot_hash") == snap.content_hash]
    return (same or found)[0]


def _study_searched_from_workbook(
    snap: ConfigSnapshot, backtest_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A backtest target's searched parameters: the X rows of the first study over this backtest."""
    from runtime.backtest.params import param_key

    study = next(
        (s for s in snap.rows("OPTIMIZATION_STUDIES") if s.backtest_id == backtest_id and s.enabled), None
    )
    if study is None:
        return [], {}
    searched, fixed = [], {}
    for r in snap.rows("OPTIMIZATION_PARAMS"):
        if r.study_id != study.study_id:
            continue
        key = param_key(r.param_scope, r.target_id, r.param_name)
        if r.optimize_flag:
            searched.append({"key": key, "scope": r.param_scope, "target_id": r.target_id, "name": r.param_name,
                             "type": r.param_type, "low": r.low, "high": r.high, "step": r.step,
                             "choices": list(r.choices or [])})  # fmt: skip
    return searched, fixed


def _best_params(study: dict[str, Any], study_dir: Path, target: str) -> tuple[dict[str, Any], str | None]:
    """The study's best feasible trial; with no feasible trial, the best finished one by objective (noted)."""
    if study.get("best_params"):
        return dict(study["best_params"]), None
    import pandas as pd

    tp = study_dir / "trials.parquet"
    t = pd.read_parquet(tp) if tp.is_file() else None
    if t is not None and len(t):
        ok = t[(t["state"].astype(str).str.upper() == "COMPLETE") & np.isfinite(t["objective"].astype(float))]
        if len(ok):
            row = ok.sort_values("objective", ascending=study.get("direction") == "minimize").iloc[0]
            return json.loads(row["params"]), (
                f"study {target} has no feasible trial: tested its best finished trial {int(row['number'])} by "
                "objective (constraints ignored)"
            )
    raise UserError(
        f"study {target} has no finished trial with an objective; fix: run more trials with "
        f"`backtest optimize {target}` or relax its constraints"
    )


def _profile_rows(snap: ConfigSnapshot, profile: str) -> list[tuple[Any, dict[str, Any]]]:
    """The enabled ROBUSTNESS rows of `profile` with their param_json checked (defaults filled in)."""
    from runtime.config.expressions import cell_of

    out = []
    for r in snap.rows("ROBUSTNESS"):
        if r.robustness_profile_id != profile or not r.enabled:
            continue
        cell = f"ROBUSTNESS!{cell_of('ROBUSTNESS', r, 'param_json')}"
        p, problems = check_test_params(r.test_id, r.param_json)
        if problems:
            _key, msg = problems[0]
            raise UserError(f"{cell}: {msg}; fix: correct param_json and export again")
        out.append((r, p))
    return out


def _resolve_profile(
    snap: ConfigSnapshot, profile: str | None, study: dict[str, Any] | None, target: str
) -> str:
    profiles = {r.robustness_profile_id: r for r in snap.rows("ROBUSTNESS_PROFILES")}
    if profile is None and study is not None:
        profile = study.get("robustness_profile_id")
    if profile is None:
        study_row = next((s for s in snap.rows("OPTIMIZATION_STUDIES") if s.study_id == target), None)
        profile = getattr(study_row, "robustness_profile_id", None)
    if profile is None:
        enabled = [k for k, r in profiles.items() if r.enabled]
        if len(enabled) == 1:
            return enabled[0]
        raise UserError(
            f"no robustness profile for {target}; fix: pass --profile ID (one of {', '.join(profiles) or 'none'})"
        )
    if profile not in profiles:
        raise UserError(
            f"robustness profile {profile!r} is not in ROBUSTNESS_PROFILES; {_suggest(profile, list(profiles))}"
            f"fix: one of {', '.join(profiles) or '(none: add a row)'}"
        )
    if not profiles[profile].enabled:
        raise UserError(f"robustness profile {profile} is disabled in ROBUSTNESS_PROFILES; fix: enable it")
    return profile


def robustness_run_id(
    target: str,
    snapshot_hash: str,
    versions: Mapping[str, str],
    profile: str,
    rows: list[Any],
    study_run: str | None,
) -> str:
    """`rb-<target>-<12 hex>` of the snapshot, data versions, target, profile and its rows (and study run)."""
    key = canonical_key(
        {"target": target, "snapshot": snapshot_hash, "data": dict(versions), "profile": profile,
         "study_run": study_run, "rows": [[r.test_id, p] for r, p in rows]}
    )  # fmt: skip
    return f"rb-{target}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# --------------------------------------------------------------------------------------------------
# Engine inputs of the tested run
# --------------------------------------------------------------------------------------------------


def inputs_from_run(data: Any) -> EngineInputs:
    """The kernel's arrays of an evaluated run (runtime.backtest.run.RunData), trade_start 0."""
    from runtime.engine.contracts import Gates, Market, RunSpec

    cb = data.compiled
    T = len(data.close)
    if cb.frequency == "1m":
        dd = np.asarray(data.time).astype("datetime64[D]")
        day = np.unique(dd, return_inverse=True)[1].astype(np.int64)
    else:
        dd = np.asarray(data.time).astype("datetime64[D]")
        day = np.arange(T, dtype=np.int64)
    last = np.ones(T, dtype=bool)
    last[:-1] = day[1:] != day[:-1]
    spec = RunSpec(
        instrument=cb.instrument, initial_capital=cb.initial_capital, trade_start=0,
        oos_start=data.oos_start, annualization_factor=cb.annualization_factor, risk_free_rate=cb.risk_free_rate,
    )  # fmt: skip
    gates = None if data.entry_ok is None else Gates(data.entry_ok, data.frozen)
    custom = getattr(data, "custom", None)  # custom execution: the fill price of each row
    market = Market(
        close=data.close, open=data.open, custom=custom, day=day if cb.frequency == "1m" else None
    )
    return EngineInputs(
        market, np.asarray(data.signal, float), cb.column, spec, day, dd[last], data.scaling, gates
    )


def _versions(snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry, cb: Any) -> dict[str, str]:
    from runtime.backtest.run import read_versions
    from runtime.evaluation.sources import WorkspaceSources

    return read_versions(cb, WorkspaceSources(snap, paths, reg, cb.as_of))


# --------------------------------------------------------------------------------------------------
# The tests that need the runtime (run_param_sets, features): one function per test_id
# --------------------------------------------------------------------------------------------------


def _many(ctx: Context, sets: list[dict[str, Any]], **kw: Any) -> Any:
    from runtime.backtest.many import run_param_sets

    return run_param_sets(ctx.snap, ctx.paths, ctx.reg, ctx.backtest_id, sets, **kw)


def _metric_idx(name: str, segment: str) -> tuple[int, int]:
    if name not in METRIC_NAMES:
        raise UserError(f"metric {name!r} is unknown; fix: one of {', '.join(METRIC_NAMES)}")
    return SEGMENTS.index(segment), METRIC_NAMES.index(name)


def _t_is_oos_gap(ctx: Context, p: dict[str, Any]) -> TestResult:
    return et.is_oos_gap(ctx.returns, ctx.oos_day, ctx.data.result.metrics, p, ctx.ann)


def _t_block_bootstrap(ctx: Context, p: dict[str, Any]) -> TestResult:
    return et.block_bootstrap(ctx.returns, ctx.oos_day, p, ctx.ann)


def _t_placebo(ctx: Context, p: dict[str, Any]) -> TestResult:
    return et.placebo_shuffle(ctx.inputs, p)


def _t_lag(ctx: Context, p: dict[str, Any]) -> TestResult:
    return et.lag_sweep(ctx.inputs, p)


def _t_purge(ctx: Context, p: dict[str, Any]) -> TestResult:
    return et.purge_embargo(ctx.returns, ctx.dates, ctx.oos_day, p, ctx.ann)


def _random_sets(searched: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """n seeded random draws over the searched parameters (int/float on their step grid, categorical)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s: dict[str, Any] = {}
        for sp in searched:
            grid = (
                et.param_grid(sp, 10_000)
                if sp.get("type") == "int" or sp.get("step") or sp.get("choices")
                else None
            )
            if grid:
                s[sp["key"]] = grid[int(rng.integers(len(grid)))]
            else:
                s[sp["key"]] = float(rng.uniform(float(sp["low"]), float(sp["high"])))
        out.append(s)
    return out


def _better(a: float, b: float, direction: str) -> bool:
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if direction == "maximize" else a < b


def _t_walk_forward(ctx: Context, p: dict[str, Any]) -> TestResult:
    """Folds on the tested run's sessions; per fold ONE run_param_sets call on the train window (a seeded
    random search over the study's searched parameters, or the fixed set), then the winner on the test
    window (returns=True); the test returns are stitched."""
    try:
        folds = et.fold_windows(ctx.dates, p["folds"], p["anchored"], p["train_months"], p["test_months"],
                                p["purge_days"], p["embargo_days"])  # fmt: skip
    except ValueError as e:
        return et.skipped("walk_forward", str(e))
    reopt = bool(ctx.searched) and ctx.target_type == "study"
    seg_f = SEGMENTS.index("full")
    mi = METRIC_NAMES.index(ctx.primary)
    si = METRIC_NAMES.index("sharpe")
    rows, rets, dts = [], [], []
    iso = lambda i: str(ctx.dates[i])  # noqa: E731
    for f in folds:
        win = {"backtest.oos_last_x_months": 0}
        train = {
            **win,
            "backtest.start_date": iso(f["train_start"]),
            "backtest.end_date": iso(f["train_end"] - 1),
        }
        test = {
            **win,
            "backtest.start_date": iso(f["test_start"]),
            "backtest.end_date": iso(f["test_end"] - 1),
        }
        if reopt:
            cands = [
                {**ctx.fixed, **s} for s in _random_sets(ctx.searched, p["n_trials"], p["seed"] + f["fold"])
            ]
        else:
            cands = [dict(ctx.params)]
        tr = _many(ctx, [{**c, **train} for c in cands])
        scores = tr.metrics[:, seg_f, mi]
        best = 0
        for k in range(1, len(cands)):
            if _better(float(scores[k]), float(scores[best]), ctx.direction):
                best = k
        te = _many(ctx, [{**cands[best], **test}], returns=True)
        rets.append(te.returns[:, 0])
        dts.append(te.dates)
        rows.append({
            "fold": f["fold"], "train_start": iso(f["train_start"]), "train_end": iso(f["train_end"] - 1),
            "test_start": iso(f["test_start"]), "test_end": iso(f["test_end"] - 1), "purge": f["purge"],
            "params": {k: v for k, v in cands[best].items() if k in {s["key"] for s in ctx.searched}} if reopt
            else dict(ctx.params),
            "is_metric": float(scores[best]), "oos_metric": float(te.metrics[0, seg_f, mi]),
            "is_sharpe": float(tr.metrics[best, seg_f, si]), "oos_sharpe": float(te.metrics[0, seg_f, si]),
            "test_days": int(te.returns.shape[0]),
        })  # fmt: skip
    res = et.walk_forward(rows, rets, dts, p, reopt, ctx.ann, float(ctx.compiled.initial_capital))
    return dataclasses.replace(res, numbers={**res.numbers, "metric": ctx.primary})


def _specs(ctx: Context, names: list[str] | None) -> list[dict[str, Any]]:
    if not names:
        return list(ctx.searched)
    out = []
    for n in names:
        sp = next((s for s in ctx.searched if n in (s["key"], s["name"])), None)
        if sp is None:
            raise UserError(
                f"sensitivity: {n!r} is not a searched parameter ({', '.join(s['key'] for s in ctx.searched) or 'none'}); "
                "fix: name one of them in param_json params"
            )
        out.append(sp)
    return out


def _tested_value(ctx: Context, sp: dict[str, Any]) -> Any:
    return ctx.params.get(
        sp["key"], ctx.compiled.params.get(sp["name"]) if sp["scope"] in ("strategy", "template") else None
    )


def _sens_metric(ctx: Context, p: dict[str, Any]) -> str:
    return p["metric"] or (ctx.primary if ctx.target_type == "study" else "sharpe")


def _t_sens1(ctx: Context, p: dict[str, Any]) -> TestResult:
    specs = _specs(ctx, p["params"])
    if not specs:
        return et.skipped(
            "sensitivity_1d", "no searched parameter (no study in OPTIMIZATION_STUDIES over this backtest)"
        )
    metric = _sens_metric(ctx, p)
    segment = p["segment"] if ctx.oos_day is not None else "full"
    si, mi = _metric_idx(metric, segment)
    sets, where = [], []
    for sp in specs:
        for v in et.param_grid(sp, p["points"]):
            sets.append({**ctx.params, sp["key"]: v})
            where.append((sp["key"], v))
    out = _many(ctx, sets)
    curves: dict[str, Any] = {}
    for sp in specs:
        ks = [k for k, (key, _) in enumerate(where) if key == sp["key"]]
        curves[sp["key"]] = ([where[k][1] for k in ks], out.metrics[ks, si, mi], _tested_value(ctx, sp))
    return et.sensitivity_1d(curves, metric, segment, p["tol"])


def _t_sens2(ctx: Context, p: dict[str, Any]) -> TestResult:
    if not ctx.searched:
        return et.skipped(
            "sensitivity_2d", "no searched parameter (no study in OPTIMIZATION_STUDIES over this backtest)"
        )
    specs = _specs(ctx, p["params"]) if p["params"] else [s for s in ctx.searched if not s.get("choices")][:2]
    if len(specs) < 2 or any(s.get("choices") for s in specs):
        return et.skipped("sensitivity_2d", "needs two searched numeric parameters")
    metric = _sens_metric(ctx, p)
    segment = p["segment"] if ctx.oos_day is not None else "full"
    si, mi = _metric_idx(metric, segment)
    xs, ys = et.param_grid(specs[0], p["points"]), et.param_grid(specs[1], p["points"])
    sets = [{**ctx.params, specs[0]["key"]: x, specs[1]["key"]: y} for x in xs for y in ys]
    out = _many(ctx, sets)
    grid = out.metrics[:, si, mi].reshape(len(xs), len(ys))
    return et.sensitivity_2d(specs[0]["key"], specs[1]["key"], xs, ys, grid, metric, segment, p["tol"])


def _feature_per_session(ctx: Context, name: str) -> np.ndarray:
    """A feature / gate / expression evaluated on the run's grid, one value per traded session (its last bar)."""
    from compiler.evaluate import EvaluationError, evaluate
    from runtime.backtest.run import build_grid
    from runtime.evaluation.cache_store import ParquetValueStore
    from runtime.evaluation.sources import WorkspaceSources
    from runtime.graphs import compile_expression

    cb = ctx.compiled
    text = f"asof({name})" if cb.frequency == "1m" else name  # a daily feature on a 1m grid: last known
    import dsl

    try:
        graph = compile_expression(text, ctx.snap, frequency=cb.frequency, execution=None)
    except (UserError, dsl.DslError) as e:
        raise UserError(
            f"regimes: {name!r} is not a feature, gate or expression of the workbook ({e})"
        ) from None
    grid = build_grid(cb, ctx.paths, ctx.reg, ctx.snap)
    sources = WorkspaceSources(ctx.snap, ctx.paths, ctx.reg, cb.as_of)
    with ParquetValueStore(ctx.paths, ctx.reg, batch=True) as store:
        try:
            ev = evaluate(graph, sources, grid, params=dict(cb.params), store=store)
        except EvaluationError as e:
            raise UserError(f"regimes: {name}: {e}") from None
    full = np.full(len(grid.index), np.nan)
    full[grid.start :] = np.asarray(ev.values, dtype=float)
    idx = np.asarray(grid.index)
    ts = int(np.searchsorted(idx, np.asarray(ctx.data.time)[0]))
    rows = full[ts : ts + len(ctx.data.time)]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = ctx.inputs.day[1:] != ctx.inputs.day[:-1]
    return rows[last]


def _held(values: np.ndarray) -> np.ndarray:
    """The label in force while session i's return was earned: the value at session i - 1."""
    out = np.empty(len(values), dtype=object)
    out[0] = None
    out[1:] = values[:-1]
    return out


def _t_regimes(ctx: Context, p: dict[str, Any]) -> TestResult:
    labels: dict[str, np.ndarray] = {}
    notes = []
    if p["years"]:
        labels["year"] = np.array([str(d)[:4] for d in ctx.dates], dtype=object)
    for b in p["by"] or []:
        v = _feature_per_session(ctx, b)
        lab = np.where(np.isnan(v), None, np.where(v != 0, "true", "false")).astype(object)
        labels[b] = _held(lab)
    q_of = p["quantiles_of"]
    if q_of is None and any(
        r.feature_id == "vix_level" and r.enabled for r in ctx.snap.rows("FEATURE_LIBRARY")
    ):
        q_of = "vix_level"
    if q_of:
        v = _feature_per_session(ctx, q_of)
        lab, edges = et.quantile_labels(v, p["quantiles"])
        labels[f"{q_of} q{p['quantiles']}"] = _held(lab)
        notes.append(
            f"{q_of} quantile edges {', '.join(f'{e:.4g}' for e in edges)} (full-sample: descriptive)"
        )
    if not labels:
        return et.skipped("regimes", "no regime asked for (years false, no by, no quantiles_of)")
    return et.regimes(ctx.returns, labels, ctx.ann, notes)


def _t_costs(ctx: Context, p: dict[str, Any]) -> TestResult:
    mults = p["multiples"]
    out = _many(ctx, [{**ctx.params, "backtest.cost_multiplier": m} for m in mults])
    return et.cost_sensitivity(mults, out.metrics, p)


def _t_multiple(ctx: Context, p: dict[str, Any]) -> TestResult:
    import pandas as pd

    if ctx.target_type != "study" or ctx.study_dir is None:
        return et.multiple_testing(None, 0, ctx.returns, p, n_total=None, all_trial_sharpes=None, ann=ctx.ann)
    tp = ctx.study_dir / "trials.parquet"
    if not tp.is_file():
        raise UserError(f"{tp} is missing; fix: run `backtest optimize {ctx.target}` again")
    t = pd.read_parquet(tp)
    done = t[(t["state"].astype(str).str.upper() == "COMPLETE") & np.isfinite(t["objective"].astype(float))]
    pool = done  # the selection PBO/SPA judge: feasible trials when there are enough, else every finished one
    if "feasible" in done:
        feas = done[done["feasible"].astype(bool)]
        pool = feas if len(feas) >= 2 else done
    asc = ctx.direction != "maximize"
    top = pool.sort_values("objective", ascending=asc).head(int(p["max_trials"]))
    if len(top) < 2:
        return et.multiple_testing(None, 0, ctx.returns, p, n_total=None, all_trial_sharpes=None, ann=ctx.ann)
    sets = [json.loads(s) for s in top["params"]]
    out = _many(ctx, sets, is_only=True, returns=True)
    nums = top["number"].astype(int).tolist()
    bt = ctx.study.get("best_trial") if ctx.study else None
    best = nums.index(int(bt)) if bt is not None and int(bt) in nums else 0
    m = out.returns
    sh = t["is.sharpe"].astype(float).to_numpy() / math.sqrt(ctx.ann) if "is.sharpe" in t else None
    res = et.multiple_testing(m, best, m[:, best], p, n_total=len(done), all_trial_sharpes=sh, ann=ctx.ann)
    return dataclasses.replace(res, numbers={**res.numbers, "best_trial": int(nums[best])})


TESTS: dict[str, Callable[[Context, dict[str, Any]], TestResult]] = {
    "is_oos_gap": _t_is_oos_gap,
    "walk_forward": _t_walk_forward,
    "purge_embargo": _t_purge,
    "block_bootstrap": _t_block_bootstrap,
    "placebo_shuffle": _t_placebo,
    "lag_sweep": _t_lag,
    "sensitivity_1d": _t_sens1,
    "sensitivity_2d": _t_sens2,
    "regimes": _t_regimes,
    "cost_sensitivity": _t_costs,
    "multiple_testing": _t_multiple,
}


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def _entry(r: TestResult) -> dict[str, Any]:
    k = r.numbers.get("row", 1)
    stem = r.test_id if k == 1 else f"{r.test_id}_{k}"
    table = f"{stem}.parquet" if stem in r.tables else None
    return {
        "test_id": r.test_id, "status": r.status, "verdict": {"level": r.level, "text": r.text},
        "numbers": {k: et.clean(v) for k, v in r.numbers.items()}, "seconds": round(r.seconds, 3), "table": table,
        "files": sorted(f"{k}.parquet" for k in r.tables), "note": r.note,
    }  # fmt: skip


def _existing(reg: Registry, rid: str, final: Path) -> dict[str, Any] | None:
    known = reg.query(
        "SELECT run_id FROM runs WHERE run_id = ? AND kind = 'robustness' AND status = 'done'", [rid]
    )
    f = final / "summary.json"
    if known and f.is_file():
        return json.loads(f.read_text(encoding="utf-8"))
    return None


def run_robustness(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    target: str,
    *,
    profile: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> RobustnessOutcome:
    """Run every enabled test of the profile on TARGET (a backtest or study id) and write its run folder."""
    from runtime.backtest.compile import compile_backtest
    from runtime.backtest.run import _check_prices, evaluate_run
    from runtime.evaluation.cache_store import ParquetValueStore

    t0 = time.perf_counter()
    run_notes: list[str] = []
    backtests = {r.backtest_id: r for r in snap.rows("BACKTESTS")}
    studies = {r.study_id: r for r in snap.rows("OPTIMIZATION_STUDIES")}
    study, study_dir = None, None
    if target in studies:
        target_type, backtest_id = "study", studies[target].backtest_id
        study, study_dir = _find_study_run(snap, reg, target)
        backtest_id = study.get("backtest_id") or backtest_id
        params, note = _best_params(study, study_dir, target)
        if note:
            run_notes.append(note)
        searched = list(study.get("searched") or [])
        fixed = dict(study.get("fixed") or {})
        primary = study.get("primary") or studies[target].objective_primary_metric
        direction = study.get("direction") or studies[target].objective_direction
    elif target in backtests:
        target_type, backtest_id, params = "backtest", target, {}
        searched, fixed = _study_searched_from_workbook(snap, backtest_id)
        primary, direction = "sharpe", "maximize"
    else:
        raise UserError(
            f"{target!r} is neither a BACKTESTS backtest_id nor an OPTIMIZATION_STUDIES study_id; "
            f"{_suggest(target, [*backtests, *studies])}fix: one of {', '.join([*backtests, *studies])}"
        )
    prof = _resolve_profile(snap, profile, study, target)
    rows = _profile_rows(snap, prof)
    if not rows:
        raise UserError(
            f"robustness profile {prof} has no enabled ROBUSTNESS row; fix: enable at least one test"
        )
    cb = compile_backtest(snap, backtest_id, params)
    _check_prices(snap, cb, reg)
    versions = _versions(snap, paths, reg, cb)
    study_run = study.get("study_run_id") if study else None
    rid = robustness_run_id(target, snap.content_hash, versions, prof, rows, study_run)
    runs_dir = Path(paths.runs_dir)
    final = runs_dir / rid
    if not force:
        old = _existing(reg, rid, final)
        if old is not None:
            return RobustnessOutcome(
                rid, final, False, target, target_type, prof, old, time.perf_counter() - t0
            )
    started = utcnow()
    with ParquetValueStore(paths, reg, batch=True) as store:
        data = evaluate_run(snap, paths, reg, cb, store=store)
    inputs = inputs_from_run(data)
    recorded = data.result.paths
    rets = session_returns(recorded["pnl"], recorded["equity"], inputs.day, float(cb.initial_capital))
    oos_day = None if data.oos_start is None else int(inputs.day[data.oos_start] - inputs.day[0])
    if primary not in METRIC_NAMES:
        primary = "sharpe"
    ctx = Context(
        snap, paths, reg, target, target_type, backtest_id, {**dict(cb.params), **params}, cb, data, inputs, rets,
        inputs.dates, oos_day, float(cb.annualization_factor), study, study_dir, searched, fixed, primary, direction,
    )  # fmt: skip
    results: list[TestResult] = []
    n = len(rows)
    seen: dict[str, int] = {}
    for i, (r, p) in enumerate(rows):
        if progress is not None:
            progress(i, n, r.test_id)
        t1 = time.perf_counter()
        fn = TESTS.get(r.test_id)
        try:
            res = fn(ctx, p) if fn else et.skipped(r.test_id, f"no runtime for test {r.test_id}")
        except UserError as e:
            res = TestResult(r.test_id, "error", "info", f"error: {e}", {}, note=str(e))
        except Exception as e:  # one broken test must not lose the others; the message names it
            from runtime.app import LOG

            LOG.error("robustness %s failed: %s", r.test_id, traceback.format_exc())
            res = TestResult(r.test_id, "error", "info", f"error: {type(e).__name__}: {e}", {}, note=str(e))
        res = dataclasses.replace(res, seconds=time.perf_counter() - t1)
        seen[r.test_id] = k = seen.get(r.test_id, 0) + 1
        if k > 1:  # the same test twice in a profile (other params): its files get a suffix
            tables = {f"{name}_{k}": df for name, df in res.tables.items()}
            res = dataclasses.replace(res, tables=tables, numbers={**res.numbers, "row": k})
        results.append(res)
    if progress is not None:
        progress(n, n, "")
    summary = {
        "run_id": rid, "target": target, "target_type": target_type, "profile": prof, "backtest_id": backtest_id,
        "params": {k: et.clean(v) for k, v in sorted(ctx.params.items())}, "study_run_id": study_run,
        "snapshot_hash": snap.content_hash, "data_versions": versions, "primary": primary,
        "seconds": round(time.perf_counter() - t0, 3), "notes": [*run_notes, *data.notes],
        "tests": [_entry(x) for x in results],
    }  # fmt: skip
    _write(runs_dir, rid, final, summary, results)
    finished = utcnow()
    with reg.transaction() as con:
        con.execute("DELETE FROM robustness_results WHERE run_id = ?", [rid])
        insert_rows(con, "robustness_results", [
            {"run_id": rid, "robustness_profile_id": prof, "test_id": x.test_id,
             "summary": json.dumps(_entry(x), sort_keys=True, default=str), "passed": x.passed, "created_at": finished}
            for x in results
        ])  # fmt: skip
        upsert_rows(con, "runs", ("run_id",), [{
            "run_id": rid, "kind": "robustness", "target_id": target, "config_hash": snap.content_hash,
            "data_version": json.dumps(versions, sort_keys=True), "status": "done", "started_at": started,
            "finished_at": finished, "path": str(final),
            "details": json.dumps({"profile": prof, "study_run_id": study_run, "seconds": summary["seconds"]}),
        }])  # fmt: skip
    return RobustnessOutcome(rid, final, True, target, target_type, prof, summary, time.perf_counter() - t0,
                             tuple(results))  # fmt: skip


def _report(run_dir: Path) -> None:
    """report.html (runtime/robustness/report.py) inside the temp folder, so it lands with the run; a
    report failure is logged and leaves the run without a page (`write_report(run_dir)` redraws it)."""
    try:
        from runtime.robustness.report import write_report
    except ImportError:  # pragma: no cover - the report module is optional for the runner
        return
    try:
        write_report(run_dir)
    except Exception:
        from runtime.app import LOG

        LOG.error("robustness report failed: %s", traceback.format_exc())


def _write(runs_dir: Path, rid: str, final: Path, summary: dict[str, Any], results: list[TestResult]) -> None:
    """summary.json and the tables into a temp folder, renamed into place (an old run moved aside first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_dir(final) as tmp:
        for r in results:
            for name, df in r.tables.items():
                pq.write_table(
                    pa.Table.from_pandas(df, preserve_index=False),
                    tmp / f"{name}.parquet",
                    compression="zstd",
                )
        (tmp / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8"
        )
        _report(tmp)


__all__ = ["TESTS", "Context", "inputs_from_run", "robustness_run_id", "run_robustness"]
