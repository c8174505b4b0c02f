"""Optimizer speed (issue 11 section 3): trials per second of the demo study st_spx_cta (bt_spx_cta: the
arch S&P 500 daily bars with the CTA proxy and VIX, ~19 years of daily rows), batched through the engine by
`run_study` vs a plain one-trial-at-a-time Optuna loop, for the random and TPE samplers; and the
JournalFileStorage overhead per trial.

Setup (not timed): a tmp project from the template workbook with the demo daily data ingested; the study's
save_top_n_artifacts is set to 0 (the re-runs of the top trials are `backtest run`s, not trials) and its
method to the sampler measured (workbook edited and exported, as a user would). Then one warm-up
run_param_sets call over every (window, vix_high.threshold) pair of the search space: JIT and on-disk
caches and the feature cache are warm for every side, so the figures compare the trial loops, not who ran
first.

Timed (wall and CPU time, BENCH_OPTIMIZE_TRIALS trials, default 200):
* batched: `run_study(snap, paths, reg, "st_spx_cta", n_trials=N)`, the whole call: ask in batches, one
  run_param_sets (IS only) per batch, tell, the journal file, trials.parquet, the registry rows, the report;
* baseline "one at a time": the same space, sampler and seed in an in-memory Optuna study, ask one trial,
  call `run_backtest` (what `backtest run` calls: compile, evaluate, simulate, write the run's artifacts
  and registry rows), tell it with the same hard IS constraints (BENCH_OPTIMIZE_BASELINE_TRIALS, default 20);
* floor of the baseline: the same loop calling run_param_sets([set], is_only=True): one trial per engine
  call, nothing written (the gain of batching alone).
Journal: a trivial objective (x^2, random sampler: the sampler's own cost is nil) over
BENCH_OPTIMIZE_JOURNAL_TRIALS trials (default 1000) with in-memory storage vs JournalFileStorage on a tmp
file: the difference per trial is what the journal costs each trial of a study.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.run import BenchRow

ROOT = Path(__file__).resolve().parents[2]
STUDY = "st_spx_cta"
SAMPLERS = ("random", "tpe")


def _n(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _load() -> str:
    return f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""


# ---- setup ------------------------------------------------------------------------------------------


def _set_study(root: Path, **values: Any) -> Any:
    """Edit the study's OPTIMIZATION_STUDIES cells by header and export; returns the reopened project."""
    import openpyxl

    from runtime.config.export import export_workbook
    from tests.backtest.conftest import open_project
    from tests.foundation.helpers import wb_path

    wb = openpyxl.load_workbook(wb_path(root))
    ws = wb["OPTIMIZATION_STUDIES"]
    head = {c.value: c.column for c in ws[1]}
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, head["study_id"]).value == STUDY)
    for k, v in values.items():
        ws.cell(row, head[k]).value = v
    wb.save(wb_path(root))
    export_workbook(wb_path(root))
    return open_project(root)


def _warm(p: Any) -> float:
    """One run_param_sets over every (window, threshold) pair of the space: every cache warm."""
    from runtime.backtest.many import run_param_sets
    from runtime.optimize.space import axis, study_spec

    spec = study_spec(p.snapshot, STUDY)
    by = {s.key: s for s in spec.searched}
    sets = [
        {**spec.fixed, "window": w, "vix_high.threshold": th}
        for w in (axis(by["window"]) if "window" in by else [None])
        for th in (axis(by["vix_high.threshold"]) if "vix_high.threshold" in by else [None])
    ]
    sets = [{k: v for k, v in s.items() if v is not None} for s in sets]
    t0 = time.perf_counter()
    run_param_sets(p.snapshot, p.paths, p.reg, spec.backtest_id, sets, is_only=True)
    return time.perf_counter() - t0


# ---- measured loops ---------------------------------------------------------------------------------


def _batched(p: Any, n: int) -> dict[str, Any]:
    from runtime.optimize.study import run_study

    t0, c0 = time.perf_counter(), time.process_time()
    out = run_study(p.snapshot, p.paths, p.reg, STUDY, n_trials=n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = out.n_complete + out.n_pruned + out.n_failed
    return {
        "trials": done,
        "wall": wall,
        "cpu": cpu,
        "best": out.best_value,
        "feasible": out.n_feasible,
        "own_tps": out.trials_per_second,
    }


def _sampler(method: str, seed: int) -> Any:
    import optuna

    if method == "tpe":  # constraints via Trial.set_constraint (Optuna 5; constraints_func is deprecated)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def _one_at_a_time(p: Any, method: str, n: int, engine: str) -> dict[str, Any]:
    """The loop a user would write: ask one trial, run it, tell it (engine: run_backtest or run_param_sets)."""
    import optuna

    from runtime.backtest.many import run_param_sets
    from runtime.backtest.run import run_backtest
    from runtime.optimize.space import distributions, study_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = study_spec(p.snapshot, STUDY)
    dists = distributions(spec)
    study = optuna.create_study(direction=spec.direction, sampler=_sampler(method, spec.seed))
    hard = [c for c in spec.constraints if c.severity == "hard" and c.scope == "IS"]
    best = math.nan
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        t = study.ask(dists)
        params = {**spec.fixed, **t.params}
        if engine == "run_backtest":
            m = run_backtest(p.snapshot, p.paths, p.reg, spec.backtest_id, params).metrics["is"]
            m = {k: (math.nan if v is None else float(v)) for k, v in m.items()}
        else:
            out = run_param_sets(p.snapshot, p.paths, p.reg, spec.backtest_id, [params], is_only=True)
            from runtime.engine.contracts import METRIC_NAMES, SEGMENTS

            s = SEGMENTS.index("is")
            m = {k: float(out.metrics[0, s, i]) for i, k in enumerate(METRIC_NAMES)}
        c = [con.violation(m.get(con.metric, math.nan)) for con in hard]
        for i, x in enumerate(c):
            t.set_constraint(f"c{i}", x)
        v = m.get(spec.primary, math.nan)
        study.tell(
            t,
            v if math.isfinite(v) else None,
            state=None if math.isfinite(v) else optuna.trial.TrialState.FAIL,
        )
        if all(x <= 0 for x in c) and math.isfinite(v) and (math.isnan(best) or v > best):
            best = v
    return {"trials": n, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "best": best}


def _journal(n: int, tmp: Path) -> dict[str, float]:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def loop(storage: Any) -> float:
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
        dist = {"x": optuna.distributions.FloatDistribution(-10, 10)}
        t0 = time.perf_counter()
        for _ in range(n):
            t = study.ask(dist)
            study.tell(t, t.params["x"] ** 2)
        return time.perf_counter() - t0

    mem = min(loop(None) for _ in range(3))
    files = []
    for i in range(3):  # best of 3, each on a fresh file (a shared machine's load spikes dominate otherwise)
        files.append(loop(JournalStorage(JournalFileBackend(str(tmp / f"journal-{i}.log")))))
    first = tmp / "journal-0.log"
    lines = first.read_bytes().count(b"\n")
    return {"mem": mem, "journal": min(files), "bytes": first.stat().st_size, "lines": lines}


def measure(say: Any = print) -> dict[str, Any]:
    from tests.backtest.conftest import open_project
    from tests.foundation.helpers import demo_project

    n = _n("BENCH_OPTIMIZE_TRIALS", 200)
    nb = _n("BENCH_OPTIMIZE_BASELINE_TRIALS", 20)
    nj = _n("BENCH_OPTIMIZE_JOURNAL_TRIALS", 1000)
    res: dict[str, Any] = {"n": n, "nb": nb, "nj": nj}
    with tempfile.TemporaryDirectory(prefix="bench_optimize_") as d:
        t0 = time.perf_counter()
        root = demo_project(Path(d) / "proj", ["ingest", "daily"])
        p = open_project(root)
        res["setup"] = time.perf_counter() - t0
        res["warm"] = _warm(p)
        say(f"  setup {res['setup']:.0f} s, warm-up {res['warm']:.1f} s", flush=True)
        for method in SAMPLERS:
            p = _set_study(root, method=method, save_top_n_artifacts=0)
            res[method] = {
                "batched": _batched(p, n),
                "run_backtest": _one_at_a_time(p, method, nb, "run_backtest"),
                "one_set": _one_at_a_time(p, method, nb, "run_param_sets"),
            }
            say(
                f"  {method}: "
                + ", ".join(f"{k} {v['trials'] / v['wall']:.1f} trials/s" for k, v in res[method].items()),
                flush=True,
            )
        res["journal"] = _journal(nj, Path(d))
        res["load"] = _load()
    return res


def rows(res: dict[str, Any]) -> list[BenchRow]:
    out = []
    for method in SAMPLERS:
        r = res[method]
        b, rb, one = r["batched"], r["run_backtest"], r["one_set"]
        tps = lambda x: x["trials"] / x["wall"]  # noqa: E731
        out.append(
            BenchRow(
                "optimize",
                f"{method}: trials/s, st_spx_cta (~19 y daily), run_study batched ({b['trials']} trials)",
                tps(b),
                "trials/s",
                f"one trial at a time, run_backtest ({rb['trials']} trials)",
                tps(rb),
                ">> one at a time",
                f"CPU {b['trials'] / b['cpu']:.1f} vs {rb['trials'] / rb['cpu']:.1f} trials/s; run_study's own "
                f"figure {b['own_tps']:.1f}/s; best feasible IS {b['best']}, {b['feasible']} feasible; "
                f"baseline best {rb['best']:.4g}; {res['load']}",
            )
        )
        out.append(
            BenchRow(
                "optimize",
                f"{method}: one trial at a time, run_param_sets([set], is_only) ({one['trials']} trials)",
                tps(one),
                "trials/s",
                "run_study batched",
                tps(b),
                "",
                "one engine call per trial, nothing written: what batching alone saves",
            )
        )
    j = res["journal"]
    per = (j["journal"] - j["mem"]) / res["nj"]
    out.append(
        BenchRow(
            "optimize",
            f"JournalFileStorage overhead per trial (trivial objective, {res['nj']} trials)",
            1000 * per,
            "ms/trial",
            "in-memory storage, per trial",
            1000 * j["mem"] / res["nj"],
            "",
            f"journal {1000 * j['journal'] / res['nj']:.2f} ms/trial in all; {j['lines'] / res['nj']:.1f} appends "
            f"and {j['bytes'] / res['nj']:.0f} B per trial, each append fsynced (Optuna): the cost is the disk's "
            f"fsync latency; {res['load']}",
        )
    )
    return out


def run() -> list[BenchRow]:
    return rows(measure())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for row in run():
        print(row)
