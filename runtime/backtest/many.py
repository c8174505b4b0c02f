"""Many parameter sets of one backtest per call (issue 10 section 3): what optimization calls.

Why its own entry point: an optimizer proposes K parameter sets (contract A, runtime/backtest/params.py:
`$names`, `<feature>.<name>`, `backtest.<column>`); compiling, loading and evaluating K times would repeat
everything that does not depend on them. Here the grid is built once (the largest warm-up over every set),
each graph (signal, gates, scaling) is evaluated once per DISTINCT (graph hash, params it reads): a
feature override such as `vix_high.threshold` changes the hash of the graphs that read the feature, so it
re-evaluates the gate and never the signal; a `$param` the gate does not read never re-evaluates the gate.
Each column carries its own ColumnSpec (costs, rules: `backtest.slippage_value`, `backtest.min_hold_days`,
`backtest.cost_multiplier` differ per column inside one run_many call); columns that differ in
`backtest.initial_capital` run in separate kernel calls (capital is run-wide in the kernel). The K columns
go to run_many in chunks of `chunk`, so memory is bounded by the chunk, not by K. Nothing is written to
runs/: the outcome is a metrics array [K, segment, metric] like ManyResult.

Every distinct set is checked by compile_backtest (names, types, and the availability check at the
execution time: a binding such as `$lag = 0` that would peek is refused, not run). All sets of one call
share the date window: one grid, one IS/OOS split.

`is_only=True` builds the grid to the IS end (the last session on or before end - oos months): no OOS
price is read and no OOS row is simulated. The "is" metrics are then those of a run that ends at the IS end
(a trade still open at the IS end is valued at that close and counts in IS, where the full run would count
it in OOS at its exit); "full" = "is" (the simulated rows), "oos" is NaN.

`returns=True` simulates each distinct column with run_one (the kernel with its paths recorded, one call
per column, memory O(T) per call) and returns the daily net returns [n_days, K] (session PnL / previous
session's end equity, ENGINE.md section 8) with their dates; the metrics then come from the same calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.cache import params_used
from compiler.evaluate import EvaluationError, evaluate
from compiler.plan import plan_graph
from runtime.backtest.compile import CompiledBacktest, CompiledExpr, compile_backtest
from runtime.backtest.params import expression_params, plain_scalar
from runtime.backtest.run import (
    _bt_cell,
    _check_prices,
    build_grid,
    decision_rows,
    market_prices,
    minute_of,
    row_dates,
    trade_window,
    with_decisions,
)
from runtime.config.names import canonical_key
from runtime.contracts import ConfigSnapshot, ResolvedPaths, UserError
from runtime.engine.contracts import (
    METRIC_NAMES,
    SEGMENTS,
    ColumnSpec,
    Gates,
    ManyResult,
    Market,
    RunSpec,
)
from runtime.engine.kernel import run_many, run_one, session_returns
from runtime.evaluation.cache_store import ParquetValueStore
from runtime.evaluation.sources import WorkspaceSources
from runtime.graphs import catalog_from_snapshot
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
    #: returns=True: daily net returns [n_days, K] on the traded sessions, their dates (datetime64[D]) and
    #: the index of the first OOS day (None: no OOS, or is_only)
    returns: np.ndarray | None = None
    dates: np.ndarray | None = None
    oos_start: int | None = None
    is_only: bool = False

    @property
    def n_evaluations(self) -> int:
        return int(sum(self.evaluations.values()))

    def table(self, segment: str = "full") -> dict[str, np.ndarray]:
        """One segment as {metric: array over the K columns}."""
        return ManyResult(self.metrics).table(segment)

    def record(self, k: int) -> dict[str, dict[str, float]]:
        """Column k as {"full": {...}, "is": {...}, "oos": {...}} (metrics.json's shape, raw floats)."""
        return ManyResult(self.metrics).record(k)


def _set_key(p: Mapping[str, Any]) -> str:
    """A set's identity whatever scalar types a sampler returns (numpy 45 and Python 45 are one set)."""
    return canonical_key({k: plain_scalar(v) for k, v in p.items()})


def _eval_key(role: str, ce: CompiledExpr, binding: Mapping[str, Any]) -> str:
    """The graph's identity plus only the params it reads: equal keys give equal values (a feature
    override is inside the graph: its hash differs)."""
    used = sorted(params_used(ce.graph))
    return canonical_key([role, ce.graph.hash, {n: binding[n] for n in used if n in binding}])


def _same_window(
    snap: ConfigSnapshot, backtest_id: str, sets: list[dict], cbs: list[CompiledBacktest]
) -> None:
    """One call, one grid: every set must run on the first set's window."""
    w0 = (cbs[0].start, cbs[0].end, cbs[0].oos_months)
    for k, cb in enumerate(cbs):
        w = (cb.start, cb.end, cb.oos_months)
        if w != w0:
            keys = [f"backtest.{c}" for c in ("start_date", "end_date", "oos_last_x_months")]
            raise UserError(
                f"backtest {backtest_id}: parameter set {k} runs on {w[0]}..{w[1]} with {w[2]} OOS months, set "
                f"0 on {w0[0]}..{w0[1]} with {w0[2]} ({_bt_cell(snap, backtest_id, 'start_date')}); one call "
                f"shares one window; fix: give every set the same {', '.join(keys)}, or one call per window"
            )


def _is_only(cb: CompiledBacktest) -> CompiledBacktest:
    """The backtest cut at its IS end: the grid ends on the last session on or before oos_from."""
    if cb.oos_from is None:
        return cb
    return dataclasses.replace(cb, end=cb.oos_from, oos_from=None, oos_months=0)


def run_param_sets(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    backtest_id: str,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    chunk: int = 256,
    is_only: bool = False,
    returns: bool = False,
) -> ManyOutcome:
    """Metrics of `backtest_id` for every parameter set (IS/OOS/full as run_backtest), nothing written."""
    t0 = time.perf_counter()
    sets = [dict(p or {}) for p in param_sets]
    if not sets:
        raise UserError(
            f"backtest {backtest_id}: no parameter set given; fix: pass at least one, e.g. [{{}}]"
        )
    timings: dict[str, float] = {}
    # one compile per distinct set: validates every key and the availability check at each binding
    catalog = catalog_from_snapshot(snap)
    sessions: dict[str, Any] = {}  # one dsl.CheckSession per distinct feature override
    by_key: dict[str, CompiledBacktest] = {}
    col_cb: list[CompiledBacktest] = []
    for p in sets:
        k = _set_key(p)
        if k not in by_key:
            by_key[k] = compile_backtest(snap, backtest_id, p, catalog=catalog, sessions=sessions)
        col_cb.append(by_key[k])
    _same_window(snap, backtest_id, sets, col_cb)
    if is_only:
        cut = {k: _is_only(cb) for k, cb in by_key.items()}
        col_cb = [cut[_set_key(p)] for p in sets]
        by_key = cut
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
    prices = market_prices(cb0, grid, sources)  # run_backtest's prices (1m, sessions, custom fills)
    close, opn, day = prices.close, prices.open, prices.day
    notes: list[str] = [*cb0.notes, *prices.notes]
    ts, oos, wnotes = trade_window(snap, cb0, grid, close, day)
    notes += wnotes
    timings["grid"] = time.perf_counter() - t1

    plans: dict[str, Any] = {}
    evaluations: dict[str, int] = {}
    eval_seconds = 0.0
    aux_values: dict[str, np.ndarray] = {}  # gate/scaling values by eval key (few: kept for the call)

    def aux_value(role: str, ce: CompiledExpr, binding: Mapping[str, Any]) -> np.ndarray:
        k = _eval_key(role, ce, binding)
        if k not in aux_values:
            aux_values[k] = values(role, ce, binding)
        return aux_values[k]

    def values(role: str, ce: CompiledExpr, binding: Mapping[str, Any]) -> np.ndarray:
        nonlocal eval_seconds
        t = time.perf_counter()
        plan = plans.get(ce.graph.hash)
        if plan is None:
            plan = plans[ce.graph.hash] = plan_graph(ce.graph, mode="auto")
        try:
            ev = evaluate(
                ce.graph,
                sources,
                grid,
                params=expression_params(binding),
                store=store,
                plan=plan,
                minute=minute_of(grid),
            )
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
                gk = canonical_key(
                    [_eval_key(r, g[r], cb.params) for r in ("entry_gate", "freeze_gate") if r in g]
                )
                if gk not in aux:
                    aux[gk] = len(entry_cols)
                    entry_cols.append(aux_value("entry_gate", g["entry_gate"], cb.params))
                    fz = aux_value("freeze_gate", g["freeze_gate"], cb.params) if "freeze_gate" in g else None
                    frozen_cols.append(
                        None if fz is None else np.where(np.isnan(fz), np.nan, (fz == 0).astype(np.float64))
                    )
                gate_of.append(aux[gk])
            if scaled:
                sk = _eval_key("scaling", g["scaling"], cb.params)
                if sk not in aux:
                    aux[sk] = len(scale_cols)
                    scale_cols.append(aux_value("scaling", g["scaling"], cb.params))
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
        # rebalance_rule (one per backtest, not a key): rows that do not decide are frozen, as in run_backtest
        gates = with_decisions(gates, decision_rows(cb0.rebalance_rule, row_dates(cb0, grid), day))
        if gates is not None:
            e2 = np.asarray(gates.entry_ok, dtype=np.float64).reshape(T, -1)
            f2 = None if gates.frozen is None else np.asarray(gates.frozen, dtype=np.float64).reshape(T, -1)
            gates = Gates(e2, f2)
        scaling = np.column_stack(scale_cols) if scaled else None

        def column_of(cb: CompiledBacktest) -> ColumnSpec:
            """The set's own ColumnSpec (costs, rules); scaled futures size from the set's own capital."""
            column = cb.column
            if scaled and cb.instrument.accounting == "contracts":
                p0 = close[max(ts - 1, 0)]
                cpu = cb.initial_capital / (p0 * cb.instrument.multiplier)
                column = dataclasses.replace(
                    column, position=dataclasses.replace(column.position, contracts_per_unit=cpu)
                )
                notes.append(
                    f"contracts_per_unit = initial_capital / (price x multiplier) at the start = {cpu:.4g}"
                )
            return column

        market = Market(
            close=close, open=opn, custom=prices.custom, day=day if cb0.frequency == "1m" else None
        )

        def spec_of(capital: float) -> RunSpec:
            return RunSpec(
                instrument=cb0.instrument,
                initial_capital=capital,
                trade_start=ts,
                oos_start=oos,
                annualization_factor=cb0.annualization_factor,
                risk_free_rate=cb0.risk_free_rate,
            )

        # distinct runs (signal key + gate/scaling column + column spec + capital): simulated once each
        columns = {id(cb): column_of(cb) for cb in by_key.values()}
        run_key = [
            canonical_key(
                [
                    cb.initial_capital,
                    _eval_key("signal", cb.signal, cb.params),
                    gate_of[k] if has_gate else -1,
                    scale_of[k] if scaled else -1,
                    repr(columns[id(cb)]),
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
        # one kernel call per capital; inside it, runs sharing a signal sit together, so a chunk
        # evaluates each signal binding once
        by_capital: dict[float, list[int]] = {}
        for u in sorted(range(len(first_k)), key=lambda u: run_key[first_k[u]]):
            by_capital.setdefault(col_cb[first_k[u]].initial_capital, []).append(u)
        step = max(int(chunk), 1)
        res_u = np.empty((len(first_k), len(SEGMENTS), len(METRIC_NAMES)))
        # returns: traded sessions (0..n_days-1) of the traded rows
        dd = day[ts:] - day[ts]
        n_days = int(dd[-1]) + 1
        last = np.ones(T - ts, dtype=bool)
        last[:-1] = dd[1:] != dd[:-1]
        ret_u = np.empty((n_days, len(first_k))) if returns else None
        t_sim = 0.0
        for capital, order in by_capital.items():
            spec = spec_of(capital)
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
                t2 = time.perf_counter()
                try:
                    if returns:
                        assert ret_u is not None
                        for j, u in enumerate(us):
                            k = first_k[u]
                            g = gate_of[k] if has_gate else 0
                            one = run_one(
                                market,
                                cols[j],
                                columns[id(col_cb[k])],
                                spec,
                                scaling=None if scaling is None else scaling[:, scale_of[k]],
                                gates=None
                                if gates is None
                                else Gates(
                                    gates.entry_ok[:, g],
                                    None if gates.frozen is None else gates.frozen[:, g],
                                ),
                            )
                            res_u[u] = [[one.metrics[s][m] for m in METRIC_NAMES] for s in SEGMENTS]
                            p = one.paths
                            ret_u[:, u] = session_returns(p["pnl"][ts:], p["equity"][ts:], day[ts:], capital)
                    else:
                        r = run_many(
                            market,
                            np.asfortranarray(np.column_stack(cols)),
                            [columns[id(col_cb[first_k[u]])] for u in us],
                            spec,
                            scaling=scaling,
                            scale_idx=[scale_of[first_k[u]] for u in us] if scaled else None,
                            gates=gates,
                            gate_idx=[gate_of[first_k[u]] for u in us] if has_gate else None,
                            chunk=step,
                        )
                        res_u[us] = r.metrics
                except ValueError as e:
                    raise UserError(f"backtest {backtest_id}: {e}") from None
                t_sim += time.perf_counter() - t2
    idx = [uniq[rk] for rk in run_key]
    out = res_u[idx]
    if is_only:
        out[:, SEGMENTS.index("oos"), :] = np.nan
    timings["evaluate"] = eval_seconds
    timings["simulate"] = t_sim
    ret = dates = None
    oos_day = None
    if returns:
        assert ret_u is not None
        ret = np.ascontiguousarray(ret_u[:, idx])
        dates = row_dates(cb0, grid)[ts:][last]
        if oos is not None and oos < T:
            oos_day = int(day[oos] - day[ts])
    return ManyOutcome(
        backtest_id=backtest_id,
        params=tuple(sets),
        bindings=tuple(dict(cb.params) for cb in col_cb),
        metrics=out,
        evaluations=dict(evaluations),
        seconds=time.perf_counter() - t0,
        timings=timings,
        notes=tuple(dict.fromkeys(notes)),
        returns=ret,
        dates=dates,
        oos_start=oos_day,
        is_only=is_only,
    )


__all__ = ["ManyOutcome", "run_param_sets"]
