"""`backtest run`: evaluate a compiled backtest on one grid, simulate it, write DATA_ROOT/runs/<run_id>/.

Why one shared grid: the signal, the gate masks, the scaling and the prices must sit on the same rows, or
a row's decision would mix values of different bars. The grid is the instrument's (daily: its calendar;
ES: the dense 1m RTH bars, or for a daily backtest its RTH sessions priced from those bars), with the
largest warm-up any of the graphs needs; rows before its output start are warm-up (loaded, never traded,
in no metric). REPORTING save_* flags decide which parquet files and the tearsheet are written.

Artifacts are written into a temp folder renamed into place at the end, and the registry `runs` and
`metrics` rows come last: a crash leaves no half run the registry knows about. The run id is a hash of
the backtest id, snapshot hash, data versions and params, so the same inputs find their run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import dsl
from compiler.cache import data_sources
from compiler.contracts import Grid
from compiler.evaluate import EvaluationError, evaluate
from dsl.warmup import warmup_needs
from runtime.backtest.compile import CompiledBacktest, compile_backtest
from runtime.config.names import canonical_key
from runtime.contracts import ConfigSnapshot, ResolvedPaths, UserError
from runtime.engine.contracts import SEGMENTS, Gates, Market, RunResult, RunSpec
from runtime.engine.kernel import run_one
from runtime.evaluation.cache_store import ParquetValueStore
from runtime.evaluation.grids import (
    SessionGrid,
    daily_grid,
    first_data_date,
    minute_grid,
    session_grid,
)
from runtime.evaluation.sources import WorkspaceSources
from runtime.ingest.sessions import CT
from runtime.storage.atomic import atomic_dir
from runtime.storage.registry import Registry, upsert_rows, utcnow

ARTIFACTS = (
    "snapshot.json",
    "inputs.json",
    "metrics.json",
    "equity.parquet",
    "positions.parquet",
    "trades.parquet",
    "signals.parquet",
    "tearsheet.html",
)
#: written only with REPORTING save_feature_debug = true (every feature the run's graphs read)
DEBUG_ARTIFACTS = ("features.parquet",)


@dataclass(frozen=True)
class RunData:
    """The evaluated run on its traded rows (the tearsheet and the notebook read this)."""

    compiled: CompiledBacktest
    time: np.ndarray  # datetime64[D] (daily) or datetime64[ns] UTC (1m), traded rows only
    close: np.ndarray
    open: np.ndarray
    signal: np.ndarray
    entry_ok: np.ndarray | None
    frozen: np.ndarray | None
    scaling: np.ndarray | None
    oos_start: int | None  # index into the traded rows
    result: RunResult
    notes: tuple[str, ...] = ()
    custom: np.ndarray | None = None  # custom execution: the fill price available in each row
    decides: np.ndarray | None = None  # rebalance_rule: rows that decide (None: every row)
    features: Mapping[str, np.ndarray] = field(default_factory=dict)  # save_feature_debug, traded rows


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_dir: Path
    created: bool  # False: the run existed and nothing was recomputed
    metrics: Mapping[str, Any]
    seconds: float
    notes: tuple[str, ...] = ()
    data: RunData | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# ids and JSON
# ----------------------------------------------------------------------------------------------------------


def read_versions(cb: CompiledBacktest, sources: WorkspaceSources) -> dict[str, str]:
    """The version of every dataset the backtest reads (its prices and each graph's sources): what its run,
    study and robustness ids are keyed by, so new data is a new id."""
    reads = {cb.prices_dataset}
    for ce in cb.graphs.values():
        reads |= set(data_sources(ce.graph))
    return {d: sources.version(d) for d in sorted(reads)}


def run_id_of(
    backtest_id: str, snapshot_hash: str, versions: Mapping[str, str], params: Mapping[str, Any]
) -> str:
    """`<backtest>-<12 hex>`: the same backtest, snapshot, data and params always get the same id."""
    key = canonical_key(
        {"backtest": backtest_id, "snapshot": snapshot_hash, "data": dict(versions), "params": dict(params)}
    )
    return f"{backtest_id}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _stable(v: float) -> float | None:
    """12 significant digits (so a last-bit difference never changes the file); NaN/inf -> None."""
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.12g}")


def metrics_json(metrics: Mapping[str, Mapping[str, float]]) -> tuple[str, list[str]]:
    """metrics.json text (sorted keys, stable floats) and the notes about values JSON cannot hold."""
    notes: list[str] = []
    out: dict[str, Any] = {}
    for seg in SEGMENTS:
        rec = {}
        for k, v in metrics[seg].items():
            if k == "profit_factor" and v == math.inf:
                notes.append(f"{seg}.profit_factor is infinite (wins and no losing trade): written as null")
            rec[k] = _stable(v)
        out[seg] = rec
    if notes:
        out["notes"] = notes
    return json.dumps(out, sort_keys=True, indent=2) + "\n", notes


# ----------------------------------------------------------------------------------------------------------
# grid, evaluation, market
# ----------------------------------------------------------------------------------------------------------


def _bt_cell(snap: ConfigSnapshot, backtest_id: str, header: str) -> str:
    from runtime.config.expressions import cell_of

    row = next(r for r in snap.rows("BACKTESTS") if r.backtest_id == backtest_id)
    return f"BACKTESTS!{cell_of('BACKTESTS', row, header)}"


def build_grid(
    cb: CompiledBacktest,
    paths: ResolvedPaths,
    reg: Registry,
    snap: ConfigSnapshot,
    bindings: Sequence[CompiledBacktest] = (),
) -> Grid:
    """One grid for every graph of the run: the largest warm-up over them, per frequency, and over every
    compiled binding in `bindings` (the many-parameter call loads once for all of them)."""
    needs: dict[Any, int] = {}
    reads: set[str] = {cb.prices_dataset}
    stateful = False
    for c in (cb, *bindings):
        for ce in c.graphs.values():
            for f, n in warmup_needs(ce.graph, dict(c.params)).items():
                needs[f] = max(needs.get(f, 0), n)
    for ce in cb.graphs.values():
        reads |= set(data_sources(ce.graph))
        stateful = stateful or ce.graph.stateful
    load_from = first_data_date(reg, sorted(reads)) if stateful else None
    if cb.frequency == "daily" and cb.intraday_prices:
        # the instrument's sessions as daily rows, priced from their 1m bars (one extra warm-up row: the
        # first decision's mark to market needs the close before it)
        return session_grid(
            cb.prices_dataset,
            cb.session,
            cb.start,
            cb.end,
            needs.get(dsl.Frequency.DAILY, 0) + 1,
            needs.get(dsl.Frequency.MINUTE, 0),
            paths=paths,
            load_from=load_from,
        )
    if cb.frequency == "1m":
        return minute_grid(
            cb.prices_dataset,
            cb.session,
            cb.start,
            cb.end,
            warmup_bars=needs.get(dsl.Frequency.MINUTE, 0),
            daily_warmup_rows=needs.get(dsl.Frequency.DAILY, 0),
            paths=paths,
            load_from=load_from,
        )
    # one extra warm-up row: the first decision's mark to market needs the close before it
    return daily_grid(
        cb.calendar, cb.start, cb.end, needs.get(dsl.Frequency.DAILY, 0) + 1, load_from=load_from
    )


def _ffill(a: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(a), np.arange(len(a)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    out[: int(np.argmax(np.isfinite(a))) if np.isfinite(a).any() else len(a)] = np.nan
    return out


def _check_prices(snap: ConfigSnapshot, cb: CompiledBacktest, reg: Registry) -> None:
    inst = next(r for r in snap.rows("INSTRUMENTS") if r.instrument_id == cb.instrument_id)
    from runtime.config.expressions import cell_of

    cell = f"INSTRUMENTS!{cell_of('INSTRUMENTS', inst, 'prices_dataset_id')}"
    if cb.intraday_prices:
        n = reg.query("SELECT count(*) AS n FROM derived_manifests WHERE dataset_id = ?", [cb.prices_dataset])
        fix = "`backtest ingest databento` then `backtest derive`"
    else:
        n = reg.query("SELECT count(*) AS n FROM ingests WHERE dataset_id = ?", [cb.prices_dataset])
        fix = f"`backtest ingest daily --dataset {cb.prices_dataset}`"
    if not n or not n[0]["n"]:
        raise UserError(
            f"{cell}: instrument {cb.instrument_id} has no prices yet (nothing ingested for dataset "
            f"{cb.prices_dataset}); fix: {fix}"
        )


def _minute_of_day(stamps: np.ndarray, tz: str) -> np.ndarray:
    """Minutes after midnight in exchange time `tz` of UTC datetime64[ns] stamps."""
    import pandas as pd

    local = pd.DatetimeIndex(stamps).tz_localize("UTC").tz_convert(tz)
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def custom_prices(
    minute: Any, opn: np.ndarray, hhmm: str, tz: str, day_close: np.ndarray
) -> tuple[np.ndarray, int]:
    """Per daily row of `minute.daily`: the open of the session's first traded 1m bar at or after `hhmm`
    (exchange time `tz`); a session with no such bar gets its last close (`day_close`). Returns the prices
    and the number of sessions that fell back to the close."""
    from compiler.evaluate import to_daily_np

    h, m = (int(x) for x in hhmm.split(":")[:2])
    after = _minute_of_day(np.asarray(minute.index), tz) >= h * 60 + m
    price = to_daily_np(np.where(after & np.isfinite(opn), opn, np.nan), minute, "first")
    fallback = ~np.isfinite(price) & np.isfinite(day_close)
    price[fallback] = day_close[fallback]
    return price, int(fallback.sum())


@dataclass(frozen=True)
class Prices:
    """The market of one grid: close, open, custom fill prices (or None), session numbers, notes."""

    close: np.ndarray
    open: np.ndarray
    custom: np.ndarray | None
    day: np.ndarray
    notes: tuple[str, ...] = ()


def market_prices(cb: CompiledBacktest, grid: Grid, sources: Any) -> Prices:
    """Close, open (and custom fill prices) on `grid`, shared by run_backtest and run_param_sets.

    1m grid: the bars (a minute without a trade is marked at the last trade). Daily grid of an intraday
    instrument (SessionGrid): each session's open = its first 1m bar's open, close = its last 1m close
    (bars of the backtest's session, RTH by default); custom execution: the open of the first traded bar
    at or after custom_time (exchange time) of each session, else the session's close (noted)."""
    from compiler.evaluate import to_daily_np

    T = len(grid.index)
    notes: list[str] = []
    custom = None
    if isinstance(grid, SessionGrid):
        mg = grid.minute
        assert mg is not None
        c1 = np.asarray(sources.read(cb.prices_dataset, cb.close_col, mg), dtype=np.float64)
        o1 = (
            np.asarray(sources.read(cb.prices_dataset, cb.open_col, mg), dtype=np.float64)
            if cb.open_col
            else np.full(len(mg.index), np.nan)
        )
        close = to_daily_np(c1, mg, "last")
        opn = to_daily_np(o1, mg, "first")
        notes.append(
            f"daily rows = {cb.session} sessions of {cb.prices_dataset}: open = the first 1m bar's open, "
            "close = the last 1m close of the session"
        )
        if cb.custom_time is not None:
            tz = CT.key  # CME exchange time: custom_execution_time HH:MM is read in it
            custom, fb = custom_prices(mg, o1, cb.custom_time, tz, close)
            if fb:
                notes.append(
                    f"custom execution at {cb.custom_time} ({tz}): {fb} session(s) without a traded 1m bar "
                    "at or after it fill at the session's last close"
                )
        empty = ~np.isfinite(close)
        empty[: int(np.argmax(~empty)) if (~empty).any() else T] = False  # before the first price: warm-up
        if empty.any():
            # a session without a traded RTH bar (2018-12-05: CME equities closed at 08:30 CT) keeps the
            # previous close: no price change, no fill there (open and custom missing: the order waits)
            close = _ffill(close)
            days = ", ".join(str(d) for d in np.asarray(grid.index)[empty][:5])
            notes.append(
                f"{int(empty.sum())} session(s) without a traded {cb.session} bar ({days}): marked at the "
                "previous close, no fill there"
            )
        day = np.arange(T, dtype=np.int64)
        return Prices(close, opn, custom, day, tuple(notes))
    close = np.asarray(sources.read(cb.prices_dataset, cb.close_col, grid), dtype=np.float64)
    opn = (
        np.asarray(sources.read(cb.prices_dataset, cb.open_col, grid), dtype=np.float64)
        if cb.open_col
        else np.full(T, np.nan)
    )
    if cb.frequency == "1m":
        day = np.unique(np.asarray(grid.trade_date), return_inverse=True)[1].astype(np.int64)
        missing = int((~np.isfinite(close[grid.start :])).sum())
        if missing:
            notes.append(f"{missing:,} 1m bars without a trade: marked at the last traded price")
        close = _ffill(close)  # a minute without a trade is marked at the last trade
    else:
        day = np.arange(T, dtype=np.int64)
    return Prices(close, opn, custom, day, tuple(notes))


def decision_rows(rule: str, dates: np.ndarray, day: np.ndarray) -> np.ndarray:
    """BACKTESTS.rebalance_rule as a mask of the rows that decide (design/ENGINE.md section 6).

    `dates`: each row's session date (datetime64[D]); `day`: session numbers. bar: every row; daily: the
    first row of each session (every row of a daily grid); weekly / monthly: the first row of each
    calendar week (Monday-Sunday) / month. Each row's flag depends only on its own date and the previous
    row's (the calendar is known in advance): no lookahead."""
    T = len(day)
    if rule == "bar" or T == 0:
        return np.ones(T, dtype=bool)
    d = np.asarray(dates).astype("datetime64[D]")
    if rule == "daily":
        key = np.asarray(day)
    elif rule == "weekly":
        n = d.astype(np.int64)
        key = n - (n + 3) % 7  # the Monday of the week (1970-01-01 was a Thursday)
    elif rule == "monthly":
        key = d.astype("datetime64[M]").astype(np.int64)
    else:
        raise ValueError(f"unknown rebalance_rule {rule!r}; expected bar, daily, weekly or monthly")
    out = np.ones(T, dtype=bool)
    out[1:] = key[1:] != key[:-1]
    return out


def with_decisions(gates: Gates | None, decides: np.ndarray) -> Gates | None:
    """The gates with every non-deciding row frozen (the kernel keeps the position there, whatever the
    signal; the session-end flatten still applies). entry_ok / frozen may be T or T x G."""
    if decides.all():
        return gates
    hold = ~decides
    if gates is None:
        return Gates(np.ones(len(decides)), hold.astype(np.float64))
    entry = np.asarray(gates.entry_ok)
    shape = entry.shape
    base = np.zeros(shape) if gates.frozen is None else np.asarray(gates.frozen, dtype=np.float64)
    h = hold if len(shape) == 1 else hold[:, None]
    return Gates(gates.entry_ok, np.where(h, 1.0, base))


def trade_window(
    snap: ConfigSnapshot, cb: CompiledBacktest, grid: Grid, close: np.ndarray, day: np.ndarray
) -> tuple[int, int | None, list[str]]:
    """First traded row and first OOS row (warm-up and rows without a price are never traded; OOS = the
    rows after oos_from), shared by run_backtest and the many-parameter call so they cannot drift apart."""
    notes: list[str] = []
    T = len(close)
    ts = grid.start
    fin = np.isfinite(close)
    if not fin.any():
        raise UserError(
            f"{_bt_cell(snap, cb.backtest_id, 'start_date')}: {cb.prices_dataset}.{cb.close_col} has no value "
            f"between {cb.start} and {cb.end}; fix: a range with prices"
        )
    bad = np.flatnonzero(~fin[max(ts - 1, 0) :])
    if len(bad):
        last_bad = max(ts - 1, 0) + int(bad[-1])
        if last_bad >= T - 1:
            raise UserError(
                f"{_bt_cell(snap, cb.backtest_id, 'end_date')}: {cb.prices_dataset}.{cb.close_col} is missing on "
                f"the last row; fix: an end_date with prices"
            )
        if last_bad >= ts and cb.frequency == "daily":
            when = np.asarray(grid.index)[last_bad]
            raise UserError(
                f"{cb.prices_dataset}.{cb.close_col} is missing on {when} inside the backtest range; fix: "
                f"re-ingest {cb.prices_dataset} or move {_bt_cell(snap, cb.backtest_id, 'start_date')} after it"
            )
        new = last_bad + 1
        while new < T and new > 0 and day[new] == day[new - 1]:
            new += 1
        if cb.frequency == "daily":
            new += 1  # the first priced row is the mark-to-market base of the first decision
        if new >= T:
            raise UserError(
                f"{_bt_cell(snap, cb.backtest_id, 'start_date')}: {cb.prices_dataset}.{cb.close_col} has fewer "
                f"than two priced rows between {cb.start} and {cb.end}; fix: a longer range with prices"
            )
        notes.append(f"trading starts at row {new - grid.start} of the range: no price before it")
        ts = new
    tdates = row_dates(cb, grid)
    oos = None
    if cb.oos_from is not None:
        after = np.flatnonzero(tdates > np.datetime64(cb.oos_from))
        oos = int(after[0]) if len(after) else T
        if oos <= ts:
            raise UserError(
                f"{_bt_cell(snap, cb.backtest_id, 'oos_last_x_months')}: the OOS window (after {cb.oos_from}) "
                f"starts before the first traded row; fix: fewer months"
            )
    return ts, oos, notes


def evaluate_run(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    cb: CompiledBacktest,
    *,
    sources: WorkspaceSources | None = None,
    store: ParquetValueStore | None = None,
    timings: dict[str, float] | None = None,
) -> RunData:
    """Grid, graphs, prices, the IS/OOS split and the simulation: everything but the files."""
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    _check_prices(snap, cb, reg)
    sources = sources or WorkspaceSources(snap, paths, reg, cb.as_of)
    grid = build_grid(cb, paths, reg, snap)
    if grid.rows == 0:
        raise UserError(
            f"{_bt_cell(snap, cb.backtest_id, 'start_date')}: no {grid.frequency.value} row of "
            f"{cb.prices_dataset} between {cb.start} and {cb.end}; fix: a range with data"
        )
    timings["grid"] = time.perf_counter() - t0
    T = len(grid.index)
    values: dict[str, np.ndarray] = {}
    for role, ce in cb.graphs.items():
        t1 = time.perf_counter()
        try:
            ev = evaluate(
                ce.graph, sources, grid, params=dict(cb.params), store=store, minute=minute_of(grid)
            )
        except EvaluationError as e:
            raise UserError(f"{ce.cell}: {e}") from None
        full = np.full(T, np.nan)
        full[grid.start :] = ev.values
        values[role] = full
        timings[f"eval_{role}"] = time.perf_counter() - t1
    prices = market_prices(cb, grid, sources)
    close, opn, day = prices.close, prices.open, prices.day
    notes: list[str] = [*cb.notes, *prices.notes]
    ts, oos, window_notes = trade_window(snap, cb, grid, close, day)
    notes += window_notes
    column = cb.column
    scaling = values.get("scaling")
    if column.position.mode == "scaled" and cb.instrument.accounting == "contracts":
        p0 = close[max(ts - 1, 0)]
        cpu = cb.initial_capital / (p0 * cb.instrument.multiplier)
        column = dataclasses.replace(
            column, position=dataclasses.replace(column.position, contracts_per_unit=cpu)
        )
        notes.append(f"contracts_per_unit = initial_capital / (price x multiplier) at the start = {cpu:.4g}")
    entry = values.get("entry_gate")
    frozen = None
    if "freeze_gate" in values:
        fz = values["freeze_gate"]
        frozen = np.where(np.isnan(fz), np.nan, (fz == 0).astype(np.float64))
    gates = None if entry is None else Gates(entry, frozen)
    decides = decision_rows(cb.rebalance_rule, row_dates(cb, grid), day)
    gates = with_decisions(gates, decides)
    if entry is not None:
        gap = int(np.isnan(entry[ts:]).sum())
        if gap:
            notes.append(
                f"{cb.entry_gate.cell if cb.entry_gate else 'gate_expr'}: the entry gate is missing on {gap:,} "
                "traded rows (its data does not reach back): counted closed, no entry there"
            )
    market = Market(close=close, open=opn, custom=prices.custom, day=day if cb.frequency == "1m" else None)
    spec = RunSpec(
        instrument=cb.instrument,
        initial_capital=cb.initial_capital,
        trade_start=ts,
        oos_start=oos,
        annualization_factor=cb.annualization_factor,
        risk_free_rate=cb.risk_free_rate,
    )
    t2 = time.perf_counter()
    try:
        res = run_one(market, values["signal"], column, spec, scaling=scaling, gates=gates)
    except ValueError as e:
        raise UserError(f"backtest {cb.backtest_id}: {e}") from None
    timings["simulate"] = time.perf_counter() - t2
    cut = slice(ts, T)
    res = RunResult(
        res.metrics,
        {k: v[cut] for k, v in res.paths.items()},
        {**res.trades, "entry_row": res.trades["entry_row"] - ts, "exit_row": res.trades["exit_row"] - ts},
    )
    stamps = np.asarray(grid.index)[cut]
    return RunData(
        compiled=dataclasses.replace(cb, column=column),
        time=stamps,
        close=close[cut],
        open=opn[cut],
        signal=values["signal"][cut],
        entry_ok=None if entry is None else entry[cut],
        frozen=None if frozen is None else frozen[cut],
        scaling=None if scaling is None else scaling[cut],
        oos_start=None if oos is None else oos - ts,
        result=res,
        notes=tuple(dict.fromkeys(notes)),
        custom=None if prices.custom is None else prices.custom[cut],
        decides=None if decides.all() else decides[cut],
        features=feature_values(cb, grid, sources, store, cut)
        if cb.reporting.get("save_feature_debug")
        else {},
    )


def minute_of(grid: Grid) -> Grid | None:
    """The 1m grid a daily grid of sessions aggregates from (evaluate's `minute=`), else None."""
    return grid.minute if isinstance(grid, SessionGrid) else None


def row_dates(cb: CompiledBacktest, grid: Grid) -> np.ndarray:
    """Each row's session date (datetime64[D])."""
    return np.asarray(grid.trade_date if cb.frequency == "1m" else grid.index).astype("datetime64[D]")


def _feature_graphs(graph: dsl.Graph) -> dict[str, dsl.Graph]:
    """Every `feature` node of a graph as its own graph (the node and what it reads), by feature name."""
    out: dict[str, dsl.Graph] = {}
    for n in graph.nodes:
        if n.op != "feature":
            continue
        name = str(dict(n.args).get("name"))
        seen = {x.hash for x in graph.reachable(n.hash)}
        nodes = tuple(x for x in graph.nodes if x.hash in seen)
        out.setdefault(
            name, dataclasses.replace(graph, root=n.hash, nodes=nodes, text=name, canonical=n.hash, _index={})
        )
    return out


def feature_values(
    cb: CompiledBacktest, grid: Grid, sources: Any, store: Any, cut: slice
) -> dict[str, np.ndarray]:
    """save_feature_debug: every feature the run's graphs read, on the run's grid (traded rows). A feature
    on the other frequency (a daily feature under asof on 1m bars, a 1m one under to_daily) is left out."""
    out: dict[str, np.ndarray] = {}
    for ce in cb.graphs.values():
        for name, g in _feature_graphs(ce.graph).items():
            if name in out or g.frequency is not grid.frequency:
                continue
            try:
                ev = evaluate(g, sources, grid, params=dict(cb.params), store=store, minute=minute_of(grid))
            except EvaluationError:
                continue
            if ev.values.dtype.kind not in "fbiu":
                continue
            full = np.full(len(grid.index), np.nan)
            full[grid.start :] = np.asarray(ev.values, dtype=np.float64)
            out[name] = full[cut]
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------------------------------------
# artifacts
# ----------------------------------------------------------------------------------------------------------


def _time_column(data: RunData) -> tuple[str, Any]:
    import pyarrow as pa

    if data.compiled.frequency == "1m":
        return "ts", pa.array(data.time.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC"))
    return "date", pa.array(data.time.astype("datetime64[D]"), pa.date32())


def tables(data: RunData) -> dict[str, Any]:
    """The parquet artifacts as Arrow tables (equity, positions, trades, signals)."""
    import pyarrow as pa

    name, tcol = _time_column(data)
    p = data.result.paths
    seg = np.full(len(data.time), "is", dtype=object)
    if data.oos_start is not None:
        seg[data.oos_start :] = "oos"
    equity = pa.table(
        {
            name: tcol,
            "equity": p["equity"],
            "pnl": p["pnl"],
            "gross": p["gross"],
            "costs": p["costs"],
            "drawdown": p["drawdown"],
            "segment": pa.array(list(seg), pa.string()),
        }
    )
    positions = pa.table({name: tcol, "position": p["position"], "close": data.close, "open": data.open})
    tr = data.result.trades
    er, xr = tr["entry_row"], tr["exit_row"]
    when = data.time

    def at(rows: np.ndarray) -> Any:
        t = when[np.clip(rows, 0, len(when) - 1)]
        if name == "ts":
            return pa.array(t.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC"))
        return pa.array(t.astype("datetime64[D]"), pa.date32())

    tseg = np.array(
        ["oos" if data.oos_start is not None and x >= data.oos_start else "is" for x in xr], dtype=object
    )
    trades = pa.table(
        {
            "entry_" + name: at(er),
            "exit_" + name: at(xr),
            "entry_row": er,
            "exit_row": xr,
            "entry_price": tr["entry_price"],
            "exit_price": tr["exit_price"],
            "side": np.where(tr["side"] > 0, "long", "short").astype(object).tolist()
            if len(er)
            else pa.array([], pa.string()),
            "contracts": tr["contracts"],
            "pnl": tr["pnl"],
            "costs": tr["costs"],
            "hold_bars": tr["hold_bars"],
            "open": tr["open"],
            "segment": pa.array(list(tseg), pa.string()),
        }
    )
    sig = {name: tcol, "signal": data.signal}
    if data.entry_ok is not None:
        sig["entry_ok"] = data.entry_ok
    if data.frozen is not None:
        sig["frozen"] = data.frozen
    if data.scaling is not None:
        sig["scaling"] = data.scaling
    if data.custom is not None:
        sig["custom_price"] = data.custom
    if data.decides is not None:
        sig["decides"] = data.decides
    out = {"equity": equity, "positions": positions, "trades": trades, "signals": pa.table(sig)}
    if data.features:
        out["features"] = pa.table({name: tcol, **{k: v for k, v in data.features.items() if k != name}})
    return out


def _inputs(cb: CompiledBacktest, versions: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, Any]:
    from runtime.cli_base import version

    return {
        "backtest_id": cb.backtest_id,
        "strategy_id": cb.strategy_id,
        "instrument_id": cb.instrument_id,
        "snapshot_hash": cb.snapshot_hash,
        "data_versions": dict(sorted(versions.items())),
        "params": dict(sorted(params.items())),
        "binding": dict(cb.params),
        "code_version": version(),
        "frequency": cb.frequency,
        "execution_time": cb.execution_time,
        "custom_execution_time": cb.custom_time,
        "rebalance_rule": cb.rebalance_rule,
        "flat_at_session_end": cb.column.rules.flat_at_session_end,
        "session": cb.session if cb.intraday_prices else None,
        "start": cb.start.isoformat(),
        "end": cb.end.isoformat(),
        "oos_from": cb.oos_from.isoformat() if cb.oos_from else None,
        "as_of": cb.as_of.isoformat() if cb.as_of else None,
        "expressions": {
            role: {"cell": ce.cell, "text": ce.text, "hash": ce.graph.hash} for role, ce in cb.graphs.items()
        },
        "gates": dict(cb.gate_modes),
    }


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd")


def run_backtest(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    backtest_id: str,
    params: Mapping[str, Any] | None = None,
    force: bool = False,
) -> RunOutcome:
    """Compile, evaluate, simulate and write one backtest's run (or find it already written)."""
    t0 = time.perf_counter()
    params = dict(params or {})
    cb = compile_backtest(snap, backtest_id, params)
    sources = WorkspaceSources(snap, paths, reg, cb.as_of)
    _check_prices(snap, cb, reg)
    versions = read_versions(cb, sources)
    rid = run_id_of(backtest_id, snap.content_hash, versions, params)
    runs_dir = Path(paths.runs_dir)
    final = runs_dir / rid
    known = reg.query("SELECT run_id FROM runs WHERE run_id = ? AND status = 'ok'", [rid])
    if known and (final / "metrics.json").is_file() and not force:
        m = json.loads((final / "metrics.json").read_text(encoding="utf-8"))
        return RunOutcome(rid, final, False, m, time.perf_counter() - t0)
    timings: dict[str, float] = {}
    started = utcnow()
    with ParquetValueStore(paths, reg, batch=True) as store:
        data = evaluate_run(snap, paths, reg, cb, sources=sources, store=store, timings=timings)
    text, mnotes = metrics_json(data.result.metrics)
    t3 = time.perf_counter()
    with atomic_dir(final) as tmp:
        shutil.copyfile(snap.path, tmp / "snapshot.json")
        inputs = _inputs(cb, versions, params)
        (tmp / "inputs.json").write_text(
            json.dumps(inputs, sort_keys=True, indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "metrics.json").write_text(text, encoding="utf-8")
        flags = {
            "equity": "save_equity_curve",
            "positions": "save_positions",
            "signals": "save_signals",
            "features": "save_feature_debug",
        }
        for name, tbl in tables(data).items():
            if cb.reporting.get(flags.get(name, ""), True):
                _write_parquet(tbl, tmp / f"{name}.parquet")
        if cb.reporting.get("generate_tearsheet", True):
            from runtime.backtest.tearsheet import render_tearsheet

            (tmp / "tearsheet.html").write_text(render_tearsheet(data, rid), encoding="utf-8")
    timings["write"] = time.perf_counter() - t3
    notes = (*data.notes, *mnotes)
    finished = utcnow()
    rows = [
        {"run_id": rid, "metric_id": k, "scope": seg, "value": _stable(v)}
        for seg in SEGMENTS
        for k, v in sorted(data.result.metrics[seg].items())
    ]
    with reg.transaction() as con:
        upsert_rows(
            con,
            "runs",
            ("run_id",),
            [
                {
                    "run_id": rid,
                    "kind": "backtest",
                    "target_id": backtest_id,
                    "config_hash": snap.content_hash,
                    "data_version": canonical_key(versions),
                    "status": "ok",
                    "started_at": started,
                    "finished_at": finished,
                    "path": str(final),
                    "details": canonical_key({"params": params, "notes": list(notes), "timings": timings}),
                }
            ],
        )
        con.execute("DELETE FROM metrics WHERE run_id = ?", [rid])
        upsert_rows(con, "metrics", ("run_id", "metric_id", "scope"), rows)
    m = json.loads(text)
    return RunOutcome(rid, final, True, m, time.perf_counter() - t0, notes, data, timings)


def open_run(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    backtest_id: str,
    params: Mapping[str, Any] | None = None,
    force: bool = False,
) -> RunOutcome:
    """run_backtest, and when the run already existed its data evaluated again (nothing rewritten), so a
    notebook always has the paths and trades in memory for the tearsheet's figures."""
    out = run_backtest(snap, paths, reg, backtest_id, params, force)
    if out.data is not None:
        return out
    cb = compile_backtest(snap, backtest_id, dict(params or {}))
    with ParquetValueStore(paths, reg, batch=True) as store:
        data = evaluate_run(snap, paths, reg, cb, store=store)
    return dataclasses.replace(out, data=data, notes=data.notes)


def run_dir_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(run_dir).iterdir())


def load_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))


__all__ = [
    "ARTIFACTS",
    "DEBUG_ARTIFACTS",
    "Prices",
    "RunData",
    "RunOutcome",
    "build_grid",
    "decision_rows",
    "dt",
    "evaluate_run",
    "market_prices",
    "metrics_json",
    "minute_of",
    "open_run",
    "run_backtest",
    "run_id_of",
    "tables",
    "with_decisions",
]
