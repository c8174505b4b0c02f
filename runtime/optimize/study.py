"""Run an Optuna study of one workbook study: batches of trials asked, evaluated as the columns of ONE
run_param_sets call on IS only, told back; a journal file per study run; top trials re-run in full.

Why batches: a backtest column costs microseconds in the kernel, a Python-level trial milliseconds; asking
B trials and evaluating them in one engine call lets the sampler, not the loop, bound the speed.
Why IS only (run_param_sets is_only=True): nothing after the IS end is loaded or simulated, so no trial's
objective or constraint can depend on an OOS price (design/DECISIONS.md "Optimization studies").

Layout (contract C): DATA_ROOT/runs/<study_run_id>/ journal.log (Optuna JournalStorage, study name =
study_id), trials.parquet, study.json, then the registry rows (optimization_trials, and the `runs` row,
kind 'study', last). The study_run_id hashes the snapshot, the data versions, the study spec and n_trials,
so running it again finds it, and `--resume` continues a killed one in the same folder.

Workers (`workers=K`): K processes (spawn, so Windows works) on the same journal; a lock file around
"count the trials, ask the next batch" keeps the total exactly n_trials. A trial that is RUNNING when
`--resume` starts belongs to a dead process: it is told FAIL and its params are enqueued again, so no
finished trial is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.names import canonical_key
from runtime.contracts import ConfigSnapshot, ResolvedPaths, UserError
from runtime.engine.contracts import METRIC_NAMES
from runtime.optimize.contracts import StudyOutcome, StudySpec, TrialRecord
from runtime.optimize.space import distributions, grid_points, study_spec
from runtime.storage.atomic import atomic_write_parquet, atomic_write_text
from runtime.storage.registry import Registry, upsert_rows, utcnow

JOURNAL = "journal.log"
ASK_LOCK = "ask.lock"
#: trials per ask round of one worker, per method (random/grid: a whole engine chunk; tpe/cmaes: small,
#: so each batch learns from the last; nsga2: one generation)
BATCH = {"random": 256, "grid": 256, "tpe": 16, "cmaes": 8}
#: samplers that read Optuna's trial constraints; the others are told a penalised value when infeasible
CONSTRAINED = ("tpe", "nsga2", "random", "grid")
SEGMENT_OF = {"IS": "is", "OOS": "oos", "ALL": "full"}

Progress = Callable[[int, int, float | None], None]


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _clean(v: Any) -> Any:
    """JSON-safe (NaN/inf -> None): the journal and optuna-dashboard read JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _nan(v: Any) -> float:
    return float(v) if _finite(v) else math.nan


def population(n: int) -> int:
    """nsga2's population: one generation per batch, at least 8, at most 50, about n/4."""
    return max(8, min(50, n // 4))


def batch_size(spec: StudySpec) -> int:
    return population(spec.n_trials) if spec.method == "nsga2" else BATCH[spec.method]


def make_sampler(spec: StudySpec, seed: int) -> Any:
    """The Optuna sampler of the study's method (seeded; grid points are enqueued, see _ask)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.method == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        if spec.method == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if spec.method == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=population(spec.n_trials), seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*constraints.*", category=UserWarning)


def _storage(run_dir: Path) -> Any:
    """The study's journal; an open(O_EXCL) lock, not Optuna's default symlink lock (a symlink needs
    admin rights or developer mode on Windows). Both lock `journal.log.lock`, so they exclude each other."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(run_dir / JOURNAL)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(run_dir / ASK_LOCK))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------------------
# ids
# ----------------------------------------------------------------------------------------------------------


def data_versions(
    snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry, spec: StudySpec
) -> dict[str, str]:
    """The versions of every dataset the backtest reads (prices and each graph's sources)."""
    from runtime.backtest.compile import compile_backtest
    from runtime.backtest.run import read_versions
    from runtime.evaluation.sources import WorkspaceSources

    cb = compile_backtest(snap, spec.backtest_id, dict(spec.fixed))
    return read_versions(cb, WorkspaceSources(snap, paths, reg, cb.as_of))


def study_run_id(spec: StudySpec, snapshot_hash: str, versions: Mapping[str, str]) -> str:
    """`<study_id>-<12 hex>` of (snapshot hash, data versions, study spec, n_trials) (contract C)."""
    key = canonical_key(
        {"snapshot": snapshot_hash, "data": dict(versions), "study": spec.as_json(), "n": spec.n_trials}
    )
    return f"{spec.study_id}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# ----------------------------------------------------------------------------------------------------------
# one worker: ask a batch, evaluate it in one engine call, tell it
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What a worker process needs (picklable: paths and values, no connections)."""

    snapshot_path: str
    paths: ResolvedPaths
    spec: StudySpec
    run_dir: str
    deadline: float | None  # time.time() after which no new batch is asked
    chunk: int


def _live(trials: Sequence[Any]) -> list[Any]:
    """Trials that count toward n_trials: every state but FAIL (a failed trial is re-asked)."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state != TrialState.FAIL]


def _ask(study: Any, job: _Job, dists: Mapping[str, Any], grid: list[dict[str, Any]] | None) -> list[Any]:
    """Under the ask lock: how many trials are still missing, then ask up to one batch of them.

    Grid: the next points not yet in the journal are enqueued (in grid order) and asked; Optuna's
    GridSampler is not used (under ask/tell it calls study.stop() outside optimize, and marks a failed
    point visited for good)."""
    from optuna.trial import TrialState

    spec = job.spec
    with _locked(Path(job.run_dir)):
        trials = study.get_trials(deepcopy=False)
        live = _live(trials)
        waiting = sum(1 for t in live if t.state == TrialState.WAITING)
        room = spec.n_trials - len(live)
        b = batch_size(spec)
        if grid is not None:
            seen = {canonical_key({k: t.params.get(k, t.system_attrs.get("fixed_params", {}).get(k)) for k in dists})
                    for t in live}  # fmt: skip
            fresh = [p for p in grid if canonical_key(p) not in seen][: max(0, min(b - waiting, room))]
            for p in fresh:
                study.enqueue_trial(p)
            k = waiting + len(fresh)
        else:
            k = min(b, waiting + room)
        return [study.ask(dict(dists)) for _ in range(max(0, k))]


def _evaluate(snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry, job: _Job, study: Any, asked: list[Any],
              worst: list[float]) -> None:  # fmt: skip
    """Refuse rule-breaking sets (PRUNED), run the rest as one run_param_sets call (IS only), tell all."""
    from optuna.trial import TrialState

    from runtime.backtest.many import run_param_sets

    spec = job.spec
    hard = spec.hard_is()
    runnable: list[tuple[Any, dict[str, Any]]] = []
    for t in asked:
        full = {**spec.fixed, **t.params}
        broken = [r for r in spec.rules if not r.holds(full)]
        if broken:
            reason = f"constraint_rule `{broken[0].text}` ({broken[0].cell}) is false"
            t.set_user_attr("bt", _clean({"params": full, "feasible": False, "reason": reason}))
            study.tell(t, state=TrialState.PRUNED)
        else:
            runnable.append((t, full))
    if not runnable:
        return
    out = run_param_sets(
        snap, paths, reg, spec.backtest_id, [f for _, f in runnable], chunk=job.chunk, is_only=True
    )
    sign = 1.0 if spec.direction == "maximize" else -1.0
    for k, (t, full) in enumerate(runnable):
        m = out.record(k)["is"]
        obj = _nan(m.get(spec.primary))
        sec = _nan(m.get(spec.secondary)) if spec.secondary else math.nan
        c = [con.violation(m.get(con.metric)) if con.scope == "IS" else math.nan for con in spec.constraints]
        ok_values = _finite(obj) and (not spec.multi or _finite(sec))
        feasible = ok_values and all(c[i] <= 0 for i in hard)
        reason = "" if ok_values else f"IS {spec.primary if not _finite(obj) else spec.secondary} is NaN"
        if ok_values and not feasible:
            reason = "hard constraint " + ", ".join(
                f"{spec.constraints[i].metric} {spec.constraints[i].operator} {spec.constraints[i].threshold:g}"
                for i in hard
                if c[i] > 0
            )
        t.set_user_attr(
            "bt",
            _clean({"params": full, "is": m, "c": c, "feasible": feasible, "objective": obj, "secondary": sec,
                    "reason": reason}),
        )  # fmt: skip
        if spec.method in CONSTRAINED:
            for i in hard:
                t.set_constraint(f"c{i}", c[i])
        if not ok_values:
            study.tell(t, state=TrialState.PRUNED)
            continue
        if _finite(obj):
            worst[0] = (
                obj if not _finite(worst[0]) else (min(worst[0], obj) if sign > 0 else max(worst[0], obj))
            )
        told = obj
        if not feasible and spec.method not in CONSTRAINED:
            # cmaes cannot read constraints: below every value seen, graded by the total violation
            told = worst[0] - sign * sum(c[i] for i in hard if c[i] > 0)
        study.tell(t, [told, sec] if spec.multi else told)


def status(study: Any, spec: StudySpec) -> tuple[int, float | None]:
    """(finished trials that count, best feasible objective so far)."""
    from optuna.trial import TrialState

    done, best = 0, None
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
            r = t.user_attrs.get("bt") or {}
            v = r.get("objective")
            better = best is None or (v > best if spec.direction == "maximize" else v < best)
            if r.get("feasible") and _finite(v) and better:
                best = v
    return done, best


def _work(snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry, job: _Job, index: int,
          progress: Progress | None = None) -> None:  # fmt: skip
    """One worker's loop until the study has n_trials (or the deadline passed)."""
    import optuna

    _quiet()
    spec = job.spec
    study = optuna.load_study(
        study_name=spec.study_id,
        storage=_storage(Path(job.run_dir)),
        sampler=make_sampler(spec, spec.seed + index),
    )
    dists = distributions(spec)
    grid = grid_points(spec) if spec.method == "grid" else None
    worst = [math.nan]
    for t in study.get_trials(deepcopy=False):
        v = (t.user_attrs.get("bt") or {}).get("objective")
        if _finite(v):
            worst[0] = (
                v
                if not _finite(worst[0])
                else (min(worst[0], v) if spec.direction == "maximize" else max(worst[0], v))
            )
    while True:  # at least one batch per worker, then until n_trials or the deadline
        asked = _ask(study, job, dists, grid)
        if not asked:
            break
        _evaluate(snap, paths, reg, job, study, asked, worst)
        if progress is not None:
            n_done, best = status(study, spec)
            progress(n_done, spec.n_trials, best)
        if job.deadline is not None and time.time() >= job.deadline:
            break


def _child(job: _Job, index: int) -> None:
    """A spawned worker process: its own snapshot, registry handle and sampler (seed + index)."""
    from runtime.config.loader import load_snapshot

    snap = load_snapshot(Path(job.snapshot_path))
    _work(snap, job.paths, Registry(job.paths.duckdb_file), job, index)


# ----------------------------------------------------------------------------------------------------------
# resume: a killed study's leftovers
# ----------------------------------------------------------------------------------------------------------


def _repair_files(run_dir: Path) -> list[str]:
    """Before the journal is opened: cut a half-written last line, remove lock files of dead processes."""
    notes: list[str] = []
    j = run_dir / JOURNAL
    if j.is_file():
        data = j.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(j, "r+b") as f:
                f.truncate(cut)
            notes.append(f"resume: cut a half-written journal line ({len(data) - cut} bytes)")
    for name in (JOURNAL + ".lock", ASK_LOCK + ".lock", ASK_LOCK):
        p = run_dir / name
        if p.exists() or p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()
            notes.append(f"resume: removed the stale lock {name}")
    return notes


def _requeue_stale(study: Any, spec: StudySpec) -> int:
    """RUNNING trials of a dead process -> FAIL; those that had all their params (asked, maybe being
    evaluated) are enqueued again with them, so they are evaluated once more. A trial killed inside ask
    (some params written, not all) was never evaluated: it is only failed, and a fresh trial replaces it."""
    from optuna.trial import TrialState

    keys = {p.key for p in spec.searched}
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        if set(t.params) == keys:
            study.enqueue_trial(dict(t.params), user_attrs={"requeued_from": t.number})
        n += 1
    return n


# ----------------------------------------------------------------------------------------------------------
# after the study: records, trials.parquet, top re-runs, study.json, registry
# ----------------------------------------------------------------------------------------------------------


def records(study: Any, spec: StudySpec) -> list[TrialRecord]:
    """Every finished trial (COMPLETE, PRUNED, FAIL) in trial-number order."""
    from optuna.trial import TrialState

    out: list[TrialRecord] = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        r = t.user_attrs.get("bt") or {}
        m = r.get("is") or {}
        out.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                feasible=bool(r.get("feasible")) and t.state == TrialState.COMPLETE,
                params=r.get("params") or {**spec.fixed, **t.params},
                is_metrics={k: _nan(m.get(k)) for k in METRIC_NAMES},
                constraints=tuple(_nan(x) for x in (r.get("c") or [math.nan] * len(spec.constraints))),
                objective=_nan(r.get("objective")),
                secondary=_nan(r.get("secondary")),
                reason=str(
                    r.get("reason") or ("process died (re-asked)" if t.state == TrialState.FAIL else "")
                ),
            )
        )
    return out


def ranked(recs: Sequence[TrialRecord], spec: StudySpec) -> list[TrialRecord]:
    """Feasible COMPLETE trials, best objective first (ties: lower trial number)."""
    ok = [r for r in recs if r.feasible and r.state == "COMPLETE" and _finite(r.objective)]
    sign = -1.0 if spec.direction == "maximize" else 1.0
    return sorted(ok, key=lambda r: (sign * r.objective, r.number))


def trials_table(recs: Sequence[TrialRecord], spec: StudySpec) -> Any:
    """trials.parquet (contract C): number, state, feasible, params, p.<key>, is.<metric>, c.<i>, objective,
    secondary, reason."""
    import pyarrow as pa

    cols: dict[str, Any] = {
        "number": pa.array([r.number for r in recs], pa.int64()),
        "state": pa.array([r.state for r in recs], pa.string()),
        "feasible": pa.array([r.feasible for r in recs], pa.bool_()),
        "params": pa.array([canonical_key(dict(r.params)) for r in recs], pa.string()),
    }
    for p in spec.searched:
        vals = [r.params.get(p.key) for r in recs]
        if p.type == "int":
            cols[f"p.{p.key}"] = pa.array([None if v is None else int(v) for v in vals], pa.int64())
        elif p.type == "float":
            cols[f"p.{p.key}"] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        elif p.type == "bool":
            cols[f"p.{p.key}"] = pa.array([None if v is None else bool(v) for v in vals], pa.bool_())
        elif all(_finite(v) for v in vals if v is not None):
            cols[f"p.{p.key}"] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        else:
            cols[f"p.{p.key}"] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    for k in METRIC_NAMES:
        cols[f"is.{k}"] = pa.array([r.is_metrics[k] for r in recs], pa.float64())
    for i in range(len(spec.constraints)):
        cols[f"c.{i}"] = pa.array([r.constraints[i] for r in recs], pa.float64())
    cols["objective"] = pa.array([r.objective for r in recs], pa.float64())
    cols["secondary"] = pa.array([r.secondary for r in recs], pa.float64())
    cols["reason"] = pa.array([r.reason for r in recs], pa.string())
    return pa.table(cols)


def _top_runs(snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry, spec: StudySpec,
              best: Sequence[TrialRecord]) -> list[dict[str, Any]]:  # fmt: skip
    """The top feasible trials re-run fully (IS + OOS, the artifacts `backtest run` writes); every
    constraint (OOS and ALL scopes too) checked on that run and reported."""
    from runtime.backtest.run import run_backtest

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in best:
        if len(out) >= spec.save_top_n:
            break
        key = canonical_key(dict(r.params))
        if key in seen:
            continue
        seen.add(key)
        run = run_backtest(snap, paths, reg, spec.backtest_id, dict(r.params))
        m = run.metrics
        checks = [
            _clean(con.violation(_nan((m.get(SEGMENT_OF[con.scope]) or {}).get(con.metric))))
            for con in spec.constraints
        ]
        out.append(
            {"trial": r.number, "run_id": run.run_id, "is": m.get("is"), "oos": m.get("oos"), "c": checks}
        )
    return out


def _outcome_from(run_dir: Path, spec: StudySpec, t0: float) -> StudyOutcome:
    s = json.loads((run_dir / "study.json").read_text(encoding="utf-8"))
    return StudyOutcome(
        study_run_id=s["study_run_id"], run_dir=run_dir, created=False, spec=spec,
        n_complete=s.get("n_complete", 0), n_pruned=s.get("n_pruned", 0), n_failed=s.get("n_failed", 0),
        n_feasible=s.get("n_feasible", 0), best_trial=s.get("best_trial"), best_params=s.get("best_params"),
        best_value=s.get("best_value"), top_runs=tuple((x["trial"], x["run_id"]) for x in s.get("top_runs", [])),
        seconds=time.perf_counter() - t0, trials_per_second=s.get("trials_per_second", 0.0),
        notes=tuple(s.get("notes", [])),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# the entry point
# ----------------------------------------------------------------------------------------------------------


def run_study(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    study_id: str,
    *,
    n_trials: int | None = None,
    workers: int = 1,
    resume: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
) -> StudyOutcome:
    """Run (or find, or resume) the study run of `study_id` and write its outputs (contract C)."""
    import optuna

    t0 = time.perf_counter()
    _quiet()
    if workers < 1:
        raise UserError(f"--workers {workers}: fix: give 1 or more worker processes")
    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials {n_trials}: fix: give 1 or more trials")
    spec = study_spec(snap, study_id)
    if spec.method == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CmaEsSampler needs it)
        except ImportError:
            raise UserError(
                f"{spec.cell}: method cmaes needs the `cmaes` package, which is not installed; fix: "
                "`pip install cmaes` in the project's environment, or use method tpe"
            ) from None
    notes: list[str] = []
    if spec.method == "grid":
        size = len(grid_points(spec))
        n = size if n_trials is None else min(n_trials, size)
        if n < size:
            notes.append(f"grid: {n} of its {size} points (--n-trials)")
        elif spec.n_trials != size and n_trials is None:
            notes.append(
                f"grid: all {size} points (the study's n_trials {spec.n_trials} is not used by grid)"
            )
    else:
        n = n_trials or spec.n_trials
    spec = dataclasses.replace(spec, n_trials=n)
    try:
        versions = data_versions(snap, paths, reg, spec)
    except UserError as e:
        raise UserError(
            f"study {study_id}: its fixed values (OPTIMIZATION_PARAMS rows without X: "
            f"{canonical_key(dict(spec.fixed))}) do not run on backtest {spec.backtest_id}: {e}"
        ) from None
    srid = study_run_id(spec, snap.content_hash, versions)
    run_dir = Path(paths.runs_dir) / srid
    journal = run_dir / JOURNAL
    done = reg.query("SELECT run_id FROM runs WHERE run_id = ? AND status = 'done'", [srid])
    if done and (run_dir / "study.json").is_file():
        s = json.loads((run_dir / "study.json").read_text(encoding="utf-8"))
        if not resume or s.get("n_complete", 0) + s.get("n_pruned", 0) >= n:
            return _outcome_from(run_dir, spec, t0)
    elif journal.is_file() and not resume:
        raise UserError(
            f"study {study_id} has an unfinished run in {run_dir} (killed or stopped before it finished); "
            f"fix: `backtest optimize {study_id} --resume` continues it (finished trials are kept), or delete "
            "that folder to start over"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        notes += _repair_files(run_dir)
    directions = list(spec.directions)
    study = optuna.create_study(
        storage=_storage(run_dir), study_name=study_id, directions=directions, load_if_exists=True,
        sampler=make_sampler(spec, spec.seed),
    )  # fmt: skip
    if "study_run_id" not in study.user_attrs:
        study.set_user_attr("study_run_id", srid)
        study.set_user_attr("spec", _clean(spec.as_json()))
    if resume:
        stale = _requeue_stale(study, spec)
        if stale:
            notes.append(
                f"resume: {stale} trial(s) left RUNNING by a dead process were failed and asked again"
            )
    started = utcnow()
    t1 = time.perf_counter()
    job = _Job(
        str(snap.path), paths, spec, str(run_dir), None if timeout is None else time.time() + timeout, chunk
    )
    procs = []
    if workers > 1:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_child, args=(job, i), daemon=True) for i in range(1, workers)]
        for p in procs:
            p.start()
    try:
        _work(snap, paths, reg, job, 0, progress)
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5)
            if progress is not None:
                n_done, best_v = status(study, spec)
                progress(n_done, n, best_v)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        notes.append(
            f"{len(bad)} worker process(es) exited with an error (codes {bad}); the main one finished the study"
        )
        if _requeue_stale(study, spec):
            _work(snap, paths, reg, job, 0, progress)
    search_s = time.perf_counter() - t1
    recs = records(study, spec)
    n_complete = sum(r.state == "COMPLETE" for r in recs)
    n_pruned = sum(r.state == "PRUNED" for r in recs)
    n_failed = sum(r.state == "FAIL" for r in recs)
    if n_complete + n_pruned < n:
        notes.append(
            f"stopped after {n_complete + n_pruned} of {n} trials (--timeout); --resume continues it"
        )
    best = ranked(recs, spec)
    if not best:
        notes.append(
            f"no feasible trial: each of the {len(recs)} trials broke a hard constraint or had a NaN objective "
            f"(see trials.parquet, column reason); loosen the constraints of {spec.constraint_set_id} or widen "
            "the search"
        )
    atomic_write_parquet(trials_table(recs, spec), run_dir / "trials.parquet")
    top = _top_runs(snap, paths, reg, spec, best)
    head = best[0] if best else None
    rate = (n_complete + n_pruned) / search_s if search_s > 0 else 0.0
    doc = {
        "study_id": spec.study_id,
        "backtest_id": spec.backtest_id,
        "study_run_id": srid,
        "method": spec.method,
        "direction": spec.direction,
        "directions": directions,
        "primary": spec.primary,
        "secondary": spec.secondary,
        "seed": spec.seed,
        "n_trials": n,
        "searched": [p.as_json() for p in spec.searched],
        "fixed": dict(spec.fixed),
        "constraints": [c.as_json() for c in spec.constraints],
        "constraint_set_id": spec.constraint_set_id,
        "rules": [r.text for r in spec.rules],
        "best_trial": head.number if head else None,
        "best_params": dict(head.params) if head else None,
        "best_value": head.objective if head else None,
        "top_runs": top,
        "robustness_profile_id": spec.robustness_profile_id,
        "snapshot_hash": snap.content_hash,
        "data_versions": versions,
        "n_complete": n_complete,
        "n_pruned": n_pruned,
        "n_failed": n_failed,
        "n_feasible": len(best),
        "workers": workers,
        "batch": batch_size(spec),
        "search_seconds": search_s,
        "trials_per_second": rate,
        "journal": JOURNAL,
        "notes": notes,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(run_dir / "study.json", json.dumps(_clean(doc), indent=2, sort_keys=True) + "\n")
    top_of = {x["trial"]: x["run_id"] for x in top}
    now = utcnow()
    rows = [
        {
            "study_id": spec.study_id, "study_run_id": srid, "trial_number": r.number, "run_id": top_of.get(r.number),
            "params": canonical_key(dict(r.params)), "objective": r.objective if _finite(r.objective) else None,
            "secondary": r.secondary if _finite(r.secondary) else None, "feasible": r.feasible, "state": r.state,
            "is_metrics": canonical_key(_clean(dict(r.is_metrics))), "constraint_values": canonical_key(_clean(list(r.constraints))),
            "created_at": now,
        }
        for r in recs
    ]  # fmt: skip
    with reg.transaction() as con:
        con.execute("DELETE FROM optimization_trials WHERE study_run_id = ?", [srid])
        upsert_rows(con, "optimization_trials", ("study_run_id", "trial_number"), rows)
        upsert_rows(
            con,
            "runs",
            ("run_id",),
            [
                {
                    "run_id": srid, "kind": "study", "target_id": spec.study_id, "config_hash": snap.content_hash,
                    "data_version": canonical_key(versions), "status": "done", "started_at": started,
                    "finished_at": utcnow(), "path": str(run_dir),
                    "details": canonical_key({"n_trials": n, "n_complete": n_complete, "best_trial": doc["best_trial"],
                                       "notes": notes}),
                }
            ],
        )  # fmt: skip
    return StudyOutcome(
        study_run_id=srid, run_dir=run_dir, created=True, spec=spec, n_complete=n_complete, n_pruned=n_pruned,
        n_failed=n_failed, n_feasible=len(best), best_trial=doc["best_trial"], best_params=doc["best_params"],
        best_value=doc["best_value"], top_runs=tuple((x["trial"], x["run_id"]) for x in top),
        seconds=time.perf_counter() - t0, trials_per_second=rate, notes=tuple(notes),
    )  # fmt: skip


__all__ = ["batch_size", "data_versions", "make_sampler", "ranked", "records", "run_study", "study_run_id"]
