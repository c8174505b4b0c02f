"""Many parameter sets of one backtest per call (issue 10 section 3): what optimization calls.

Why its own entry point: an optimizer proposes K bindings of a strategy's `$params`; compiling, loading
and evaluating K times would repeat everything that does not depend on them. Here the grid is built once
(the largest warm-up over every binding), each graph (signal, gates, scaling) is evaluated once per
DISTINCT binding of the params that graph reads (compiler.cache.params_used: a param the gate does not
read never re-evaluates the gate), through the feature cache, and the K signal columns go to the engine's
run_many in chunks of `chunk` columns, so memory is bounded by the chunk, not by K. Nothing is written to
runs/: the outcome is a metrics array [K, segment, metric] like ManyResult.

Every distinct binding is checked by compile_backtest (names, types, and the availability check at the
execution time: a binding such as `$lag = 0` that would peek is refused, not run). Only expression
`$params` can vary: compile_backtest does not yet let a param address a BACKTESTS cost or rule column, so
every column shares the backtest's ColumnSpec.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.cache import params_used
from compiler.evaluate import EvaluationError, evaluate
from compiler.plan import plan_graph
from runtime.backtest.compile import CompiledBacktest, CompiledExpr, compile_backtest
from runtime.backtest.run import _bt_cell, _check_prices, _ffill, build_grid, trade_window
from runtime.contracts import ConfigSnapshot, ResolvedPaths, UserError
from runtime.engine.contracts import METRIC_NAMES, SEGMENTS, Gates, ManyResult, Market, RunSpec
from runtime.engine.kernel import run_many
from runtime.evaluation.cache_store import ParquetValueStore
from runtime.evaluation.sources import WorkspaceSources
from runtime.storage.registry import Registry


@dataclass(frozen=True)
class ManyOutcome:
    """K parameter sets' metrics (metrics[k, segment, metric], segments SEGMENTS, names METRIC_NAMES)."""

    backtest_id: str
    params: tuple[Mapping[str, Any], ...]  # as given, one per column
    bindings: tuple[Mapping[str, Any], ...]  # the full binding each column ran with (defaults filled in)
    metrics: np.ndarray
    #: graph evaluations per role (signal, entry_gate, freeze_gate, scaling): one per distinct binding
    evaluations: Mapping[str, int]
    seconds: float
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_evaluations(self) -> int:
        return int(sum(self.evaluations.values()))

    def table(self, segment: str = "full") -> dict[str, np.ndarray]:
        """One segment as {metric: array over the K columns}."""
        return ManyResult(self.metrics).table(segment)

    def record(self, k: int) -> dict[str, dict[str, float]]:
        """Column k as {"full": {...}, "is": {...}, "oos": {...}} (metrics.json's shape, raw floats)."""
        return ManyResult(self.metrics).record(k)


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _eval_key(role: str, ce: CompiledExpr, binding: Mapping[str, Any]) -> str:
    """The graph's identity plus only the params it reads: equal keys give equal values."""
    used = sorted(params_used(ce.graph))
    return _key([role, ce.graph.hash, {n: binding[n] for n in used if n in binding}])


def run_param_sets(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    backtest_id: str,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    chunk: int = 256,
) -> ManyOutcome:
    """Metrics of `backtest_id` for every parameter set (IS/OOS/full as run_backtest), nothing written."""
    t0 = time.perf_counter()
    sets = [dict(p or {}) for p in param_sets]
    if not sets:
        raise UserError(
            f"backtest {backtest_id}: no parameter set given; fix: pass at least one, e.g. [{{}}]"
        )
    timings: dict[str, float] = {}
    # one compile per distinct binding: validates every name and the availability check at each binding
    by_key: dict[str, CompiledBacktest] = {}
    col_cb: list[CompiledBacktest] = []
    for p in sets:
        k = _key(p)
        if k not in by_key:
            by_key[k] = compile_backtest(snap, backtest_id, p)
        col_cb.append(by_key[k])
    cb0 = col_cb[0]
    timings["compile"] = time.perf_counter() - t0
    _check_prices(snap, cb0, reg)
    t1 = time.perf_counter()
    sources = WorkspaceSources(snap, paths, reg, cb0.as_of)
    distinct = list(by_key.values())
    grid = build_grid(distinct[0], paths, reg, snap, distinct)
    if grid.rows == 0:
        raise UserError(
            f"{_bt_cell(snap, backtest_id, 'start_date')}: no {grid.frequency.value} row of "
            f"{cb0.prices_dataset} between {cb0.start} and {cb0.end}; fix: a range with data"
        )
    T = len(grid.index)
    close = np.asarray(sources.read(cb0.prices_dataset, cb0.close_col, grid), dtype=np.float64)
    opn = (
        np.asarray(sources.read(cb0.prices_dataset, cb0.open_col, grid), dtype=np.float64)
        if cb0.open_col
        else np.full(T, np.nan)
    )
    notes: list[str] = list(cb0.notes)
    if cb0.frequency == "1m":
        day = np.unique(np.asarray(grid.trade_date), return_inverse=True)[1].astype(np.int64)
        close = _ffill(close)
    else:
        day = np.arange(T, dtype=np.int64)
    ts, oos, wnotes = trade_window(snap, cb0, grid, close, day)
    notes += wnotes
    timings["grid"] = time.perf_counter() - t1

    plans: dict[str, Any] = {}
    evaluations: dict[str, int] = {}
    eval_seconds = 0.0

    def values(role: str, ce: CompiledExpr, binding: Mapping[str, Any]) -> np.ndarray:
        nonlocal eval_seconds
        t = time.perf_counter()
        plan = plans.get(ce.graph.hash)
        if plan is None:
            plan = plans[ce.graph.hash] = plan_graph(ce.graph, mode="auto")
        try:
            ev = evaluate(ce.graph, sources, grid, params=dict(binding), store=store, plan=plan)
        except EvaluationError as e:
            raise UserError(f"{ce.cell}: {e}") from None
        full = np.full(T, np.nan)
        full[grid.start :] = ev.values
        evaluations[role] = evaluations.get(role, 0) + 1
        eval_seconds += time.perf_counter() - t
        return full

    with ParquetValueStore(paths, reg, batch=True) as store:
        # gates and scaling: few distinct bindings in practice, kept whole (one column each)
        aux: dict[str, int] = {}
        entry_cols: list[np.ndarray] = []
        frozen_cols: list[np.ndarray | None] = []
        gate_of: list[int] = []
        scale_cols: list[np.ndarray] = []
        scale_of: list[int] = []
        has_gate = "entry_gate" in cb0.graphs
        scaled = cb0.column.position.mode == "scaled"
        for cb in col_cb:
            g = cb.graphs
            if has_gate:
                gk = _key([_eval_key(r, g[r], cb.params) for r in ("entry_gate", "freeze_gate") if r in g])
                if gk not in aux:
                    aux[gk] = len(entry_cols)
                    entry_cols.append(values("entry_gate", g["entry_gate"], cb.params))
                    fz = values("freeze_gate", g["freeze_gate"], cb.params) if "freeze_gate" in g else None
                    frozen_cols.append(
                        None if fz is None else np.where(np.isnan(fz), np.nan, (fz == 0).astype(np.float64))
                    )
                gate_of.append(aux[gk])
            if scaled:
                sk = _eval_key("scaling", g["scaling"], cb.params)
                if sk not in aux:
                    aux[sk] = len(scale_cols)
                    scale_cols.append(values("scaling", g["scaling"], cb.params))
                scale_of.append(aux[sk])
        gates = None
        if has_gate:
            entry = np.column_stack(entry_cols)
            frozen = None if frozen_cols[0] is None else np.column_stack(frozen_cols)  # type: ignore[arg-type]
            gates = Gates(entry, frozen)
            gap = int(np.isnan(entry[ts:]).sum())
            if gap:
                notes.append(
                    f"{cb0.entry_gate.cell if cb0.entry_gate else 'gate_expr'}: the entry gate is missing on "
                    f"{gap:,} traded cells (its data does not reach back): counted closed, no entry there"
                )
        scaling = np.column_stack(scale_cols) if scaled else None
        column = cb0.column
        if scaled and cb0.instrument.accounting == "contracts":
            p0 = close[max(ts - 1, 0)]
            cpu = cb0.initial_capital / (p0 * cb0.instrument.multiplier)
            column = dataclasses.replace(
                column, position=dataclasses.replace(column.position, contracts_per_unit=cpu)
            )
            notes.append(
                f"contracts_per_unit = initial_capital / (price x multiplier) at the start = {cpu:.4g}"
            )
        market = Market(close=close, open=opn, day=day if cb0.frequency == "1m" else None)
        spec = RunSpec(
            instrument=cb0.instrument,
            initial_capital=cb0.initial_capital,
            trade_start=ts,
            oos_start=oos,
            annualization_factor=cb0.annualization_factor,
            risk_free_rate=cb0.risk_free_rate,
        )
        # distinct runs (signal key + gate/scaling column): a repeated binding is simulated once
        run_key = [
            _key(
                [
                    _eval_key("signal", cb.signal, cb.params),
                    gate_of[k] if has_gate else -1,
                    scale_of[k] if scaled else -1,
                ]
            )
            for k, cb in enumerate(col_cb)
        ]
        uniq: dict[str, int] = {}
        first_k: list[int] = []
        for k, rk in enumerate(run_key):
            if rk not in uniq:
                uniq[rk] = len(first_k)
                first_k.append(k)
        # runs sharing a signal sit together, so a chunk evaluates each signal binding once
        order = sorted(range(len(first_k)), key=lambda u: run_key[first_k[u]])
        step = max(int(chunk), 1)
        res_u = np.empty((len(first_k), len(SEGMENTS), len(METRIC_NAMES)))
        t_sim = 0.0
        for a in range(0, len(order), step):
            us = order[a : a + step]
            memo: dict[str, np.ndarray] = {}
            cols = []
            for u in us:
                cb = col_cb[first_k[u]]
                sk = _eval_key("signal", cb.signal, cb.params)
                if sk not in memo:
                    memo[sk] = values("signal", cb.signal, cb.params)
                cols.append(memo[sk])
            sig = np.asfortranarray(np.column_stack(cols))
            t2 = time.perf_counter()
            try:
                r = run_many(
                    market,
                    sig,
                    column,
                    spec,
                    scaling=scaling,
                    scale_idx=[scale_of[first_k[u]] for u in us] if scaled else None,
                    gates=gates,
                    gate_idx=[gate_of[first_k[u]] for u in us] if has_gate else None,
                    chunk=step,
                )
            except ValueError as e:
                raise UserError(f"backtest {backtest_id}: {e}") from None
            t_sim += time.perf_counter() - t2
            res_u[us] = r.metrics
    out = res_u[[uniq[rk] for rk in run_key]]
    timings["evaluate"] = eval_seconds
    timings["simulate"] = t_sim
    return ManyOutcome(
        backtest_id=backtest_id,
        params=tuple(sets),
        bindings=tuple(dict(cb.params) for cb in col_cb),
        metrics=out,
        evaluations=dict(evaluations),
        seconds=time.perf_counter() - t0,
        timings=timings,
        notes=tuple(dict.fromkeys(notes)),
    )


__all__ = ["ManyOutcome", "run_param_sets"]
