"""Evaluating workbook expressions on real data: grid choice, defaults, the cache, feature builds.

Thin glue between the snapshot / DATA_ROOT and `compiler.evaluate`: which grid an expression runs on
(its instrument's calendar, or the dense 1m grid of its intraday dataset), how much warm-up to load (per
binding, from the graph), the default date range (where every dataset it reads has data), and the
feature cache (ParquetValueStore). The CLI (`backtest eval`, `features build|show`) and notebooks call
these functions and only render what they return.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import dsl
from compiler.cache import data_sources
from compiler.contracts import Evaluation, Grid
from compiler.evaluate import EvaluationError, evaluate
from dsl.warmup import warmup_needs
from runtime.contracts import ConfigSnapshot, UserError
from runtime.evaluation.cache_store import ParquetValueStore
from runtime.evaluation.grids import daily_grid, first_data_date, known_calendar, minute_grid, trading_days
from runtime.evaluation.sources import WorkspaceSources
from runtime.storage.paths import ResolvedPaths
from runtime.storage.registry import Registry

BACKENDS = ("auto", "ibis", "numba")
SESSIONS = ("RTH", "FULL")


@dataclass(frozen=True)
class EvalOptions:
    """What `backtest eval` / `features build` ask for (every field optional: defaults from the data)."""

    instrument: str | None = None
    calendar: str | None = None
    frequency: str | None = None  # daily | 1m (default: the expression's own)
    session: str = "RTH"
    start: dt.date | None = None
    end: dt.date | None = None
    as_of: dt.date | None = None
    backend: str = "auto"
    params: Mapping[str, Any] | None = None
    cache: bool = True


@dataclass(frozen=True)
class EvalResult:
    graph: dsl.Graph
    evaluation: Evaluation
    notes: tuple[str, ...]

    @property
    def grid(self) -> Grid:
        return self.evaluation.grid


# ----------------------------------------------------------------------------------------------------------
# defaults
# ----------------------------------------------------------------------------------------------------------


def _instrument(snap: ConfigSnapshot, instrument: str | None) -> Any:
    rows = snap.rows("INSTRUMENTS")
    if instrument is not None:
        for r in rows:
            if r.instrument_id == instrument:
                return r
        known = ", ".join(r.instrument_id for r in rows) or "none"
        raise UserError(f"unknown instrument '{instrument}'; INSTRUMENTS has: {known}; fix: --instrument ID")
    for r in rows:  # the first daily instrument (ES is priced from 1m bars)
        ds = next((d for d in snap.datasets if d.dataset_id == r.prices_dataset_id), None)
        if ds is not None and ds.dataset_type == "daily_series":
            return r
    return None


def _intraday(snap: ConfigSnapshot, dataset_id: str) -> bool:
    ds = next((d for d in snap.datasets if d.dataset_id == dataset_id), None)
    return ds is not None and ds.dataset_type == "intraday_trades"


def data_range(
    reg: Registry, snap: ConfigSnapshot, dataset_ids: Iterable[str], as_of: dt.date | None = None
) -> tuple[dt.date, dt.date] | None:
    """(the latest first date, the latest last date) over the daily datasets read: from the first date
    on which every dataset has begun, to the last date any of them reaches. With `as_of`, only the ingests
    made by the end of that UTC day count (a day ingested later is not a row of an as-of evaluation)."""
    ids = sorted(d for d in set(dataset_ids) if not _intraday(snap, d))
    if not ids:
        return None
    marks = ", ".join("?" for _ in ids)
    known = ""
    args: list[Any] = list(ids)
    if as_of is not None:
        known = " AND started_at < ?"
        args.append(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()))
    rows = reg.query(
        f"SELECT dataset_id, min(first_date) AS f, max(last_date) AS l FROM ingests "
        f"WHERE dataset_id IN ({marks}){known} GROUP BY dataset_id",
        args,
    )
    found = {r["dataset_id"]: (r["f"], r["l"]) for r in rows if r["f"] is not None}
    missing = [d for d in ids if d not in found]
    if missing:
        raise UserError(
            f"no data ingested for {', '.join(missing)}{f' as of {as_of}' if as_of else ''}; fix: "
            f"`backtest ingest daily --dataset {missing[0]}`" + (" or use a later --as-of" if as_of else "")
        )
    return max(f for f, _ in found.values()), max(last for _, last in found.values())


# ----------------------------------------------------------------------------------------------------------
# grids
# ----------------------------------------------------------------------------------------------------------


def grids_for(
    graph: dsl.Graph,
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    opts: EvalOptions,
    memo: dict[Any, Any] | None = None,
) -> tuple[Grid, Grid | None, list[str]]:
    """(output grid, the 1m grid a daily graph aggregates through to_daily or None, notes).

    `memo`: registry answers shared by the calls of one build (each registry open costs ~0.1 s)."""
    memo = {} if memo is None else memo
    binding = {**dict(graph.params), **dict(opts.params or {})}
    try:
        needs = warmup_needs(graph, binding)
    except KeyError as e:
        raise UserError(f"{e.args[0]}; fix: --params '{{\"name\": value}}'") from None
    freqs = {n.frequency for n in graph.nodes} - {dsl.Frequency.SCALAR}
    reads = data_sources(graph)
    stateful = graph.stateful
    load_from = None
    if stateful:
        k = ("first", tuple(reads))
        if k not in memo:
            memo[k] = first_data_date(reg, reads)
        load_from = memo[k]
    notes: list[str] = []
    want = opts.frequency
    if want not in (None, "daily", "1m"):
        raise UserError(f"--frequency {want!r} is not daily or 1m")
    if want == "daily" and graph.frequency is dsl.Frequency.MINUTE:
        raise UserError("this expression is on the 1m grid; use --frequency 1m or wrap it in to_daily(...)")
    if want == "1m" and graph.frequency is dsl.Frequency.DAILY:
        raise UserError("this expression is daily; use --frequency daily or align it with asof(...)")
    session = (opts.session or "RTH").upper()
    if session not in SESSIONS:
        raise UserError(f"--session {opts.session!r} is not RTH or FULL")
    if dsl.Frequency.MINUTE in freqs:
        inst = _instrument(snap, opts.instrument) if opts.instrument else None
        intraday = [d for d in reads if _intraday(snap, d)]
        ds = inst.prices_dataset_id if inst is not None and _intraday(snap, inst.prices_dataset_id) else None
        ds = ds or (intraday[0] if intraday else None)
        if ds is None:  # e.g. asof(SPX.close) alone: the bars of the first intraday instrument
            ds = next(
                (
                    r.prices_dataset_id
                    for r in snap.rows("INSTRUMENTS")
                    if _intraday(snap, r.prices_dataset_id)
                ),
                None,
            )
        if ds is None:
            raise UserError(
                "no intraday instrument defines a 1m grid; add one to INSTRUMENTS or use --frequency daily"
            )
        start = opts.start or dt.date(1990, 1, 1)
        end = opts.end or dt.date.today()
        bars = needs.get(dsl.Frequency.MINUTE, 0)
        days = needs.get(dsl.Frequency.DAILY, 0)
        m = minute_grid(
            ds,
            session,
            start,
            end,
            warmup_bars=bars,
            daily_warmup_rows=days,
            paths=paths,
            load_from=load_from,
        )
        if m.note:
            # without --start/--end the range is "all derived data": saying it was cut is noise
            asked = opts.start is not None or opts.end is not None
            notes += [x for x in m.note.split("; ") if asked or not x.startswith("derived data covers")]
        if graph.frequency is dsl.Frequency.MINUTE:
            return m, None, notes
        assert m.daily is not None
        return m.daily, m, notes
    inst = _instrument(snap, opts.instrument)
    cal = known_calendar(opts.calendar or (inst.calendar if inst is not None else "NYSE"))
    w = needs.get(dsl.Frequency.DAILY, 0)
    k = ("range", tuple(reads), opts.as_of)
    if k not in memo:
        memo[k] = data_range(reg, snap, reads, opts.as_of)
    rng = memo[k]
    if rng is None and (opts.start is None or opts.end is None):
        raise UserError("this expression reads no dataset; give --start and --end")
    start = opts.start
    end = opts.end or (rng[1] if rng else None)
    assert end is not None
    if opts.end is None and start is not None and start > end:
        # the end defaulted to the data's last date: "swap them" would not be the fix
        raise UserError(
            f"--start {start} is after the last date of the data read ({', '.join(reads)}: {end}"
            f"{f' as of {opts.as_of}' if opts.as_of else ''}); fix: --start on or before {end}"
        )
    if start is None:
        assert rng is not None
        days = trading_days(cal, rng[0], end)
        if len(days) == 0:
            raise UserError(f"no {cal} trading day between {rng[0]} and {end}")
        start = days[min(max(w - 1, 0), len(days) - 1)].astype(dt.date)  # warm-up inside the data
    g = daily_grid(cal, start, end, w, load_from=load_from)
    if g.note:
        notes.append(g.note)
    return g, None, notes


# ----------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------


def eval_graph(
    graph: dsl.Graph,
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    opts: EvalOptions,
    *,
    store: ParquetValueStore | None = None,
    sources: WorkspaceSources | None = None,
    memo: dict[Any, Any] | None = None,
) -> EvalResult:
    """Evaluate a checked graph on its grid with the workspace's data (as of opts.as_of) and cache.

    `sources` / `memo`: shared across the graphs of one build (reads and data versions asked once)."""
    if opts.backend not in BACKENDS:
        raise UserError(f"--backend {opts.backend!r} is not one of {', '.join(BACKENDS)}")
    grid, minute, notes = grids_for(graph, snap, paths, reg, opts, memo)
    if grid.rows == 0:
        raise UserError(f"the range holds no {grid.frequency.value} row to evaluate; widen --start/--end")
    if sources is None or sources.as_of != opts.as_of:
        sources = WorkspaceSources(snap, paths, reg, opts.as_of)
    own = store is None and opts.cache
    if own:
        store = ParquetValueStore(paths, reg, batch=True)
    try:
        ev = evaluate(
            graph,
            sources,
            grid,
            backend=opts.backend,
            params=opts.params,
            minute=minute,
            store=store if opts.cache else None,
        )
    except EvaluationError as e:
        raise UserError(str(e)) from None
    finally:
        if own and store is not None:
            store.flush()
    notes += list(getattr(sources, "notes", []))
    return EvalResult(graph, ev, tuple(dict.fromkeys(notes)))


def eval_expression(
    text: str,
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    opts: EvalOptions,
) -> EvalResult:
    """Check `text` against the workbook (not as a decision: eval shows values) and evaluate it."""
    from runtime.graphs import compile_expression

    freq = opts.frequency
    from runtime.graphs import catalog_from_snapshot

    graph = compile_expression(
        text,
        snap,
        frequency=freq,
        execution=None,
        params=dict(opts.params or {}),
        data_root=paths.data_root,
        catalog=catalog_from_snapshot(snap, paths.data_root, remember=True),
    )
    return eval_graph(graph, snap, paths, reg, opts)


def frame(res: EvalResult) -> Any:
    """One row per output grid row: `date` (daily) or `ts` (UTC, 1m) and `value` (missing as null)."""
    import pandas as pd

    ev = res.evaluation
    idx = ev.index
    vals = ev.values
    if ev.grid.frequency is dsl.Frequency.DAILY:
        return pd.DataFrame(
            {"date": pd.to_datetime(idx).date, "value": pd.array(vals, dtype="Float64")}
        ).assign(value=lambda d: d["value"].mask(np.isnan(vals)))
    return pd.DataFrame(
        {"ts": pd.to_datetime(idx).tz_localize("UTC"), "value": pd.array(vals, dtype="Float64")}
    ).assign(value=lambda d: d["value"].mask(np.isnan(vals)))


# ----------------------------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureBuild:
    feature_id: str
    sheet: str
    grid: str
    rows: int
    missing: int
    cached: bool
    seconds: float
    first: Any
    last: Any


def feature_rows(snap: ConfigSnapshot) -> list[tuple[str, str, tuple[str, ...]]]:
    """(id, sheet, tags) of every enabled feature, engineered feature and gate, in workbook order."""
    out = []
    for r in snap.rows("FEATURE_LIBRARY"):
        if r.enabled:
            out.append((r.feature_id, "FEATURE_LIBRARY", tuple(r.tags or ())))
    for r in snap.rows("ENGINEERED_FEATURES"):
        if r.enabled:
            out.append((r.eng_feature_id, "ENGINEERED_FEATURES", tuple(r.tags or ())))
    for r in snap.rows("GATES"):
        if r.enabled:
            out.append((r.gate_id, "GATES", ()))
    return out


def select_features(
    snap: ConfigSnapshot, ids: Sequence[str] | None = None, tags: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    rows = feature_rows(snap)
    known = {fid for fid, _, _ in rows}
    for fid in ids or ():
        if fid not in known:
            import difflib

            close = difflib.get_close_matches(fid, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"unknown or disabled feature '{fid}'; {hint}enabled: {', '.join(sorted(known))}")
    out = []
    for fid, sheet, ftags in rows:
        if ids and fid not in ids:
            continue
        if tags and not set(tags) & set(ftags):
            continue
        out.append((fid, sheet))
    if not out:
        raise UserError(
            f"no enabled feature has tag(s) {', '.join(tags or ())}" if tags else "no enabled feature"
        )
    return out


def build_features(
    snap: ConfigSnapshot,
    paths: ResolvedPaths,
    reg: Registry,
    selected: Sequence[tuple[str, str]],
    opts: EvalOptions,
    *,
    on_done: Callable[[FeatureBuild], None] | None = None,
) -> list[FeatureBuild]:
    """Evaluate each selected feature on its grid through the cache; one registry transaction at the end."""
    from runtime.graphs import catalog_from_snapshot, compile_expression

    out: list[FeatureBuild] = []
    catalog = catalog_from_snapshot(
        snap, paths.data_root, remember=True
    )  # once: it reads every source's header
    sources = WorkspaceSources(snap, paths, reg, opts.as_of)  # data versions and reads asked once
    memo: dict[Any, Any] = {}
    with ParquetValueStore(paths, reg, batch=True) as store:
        for fid, sheet in selected:
            t0 = time.perf_counter()
            g = compile_expression(fid, snap, execution=None, data_root=paths.data_root, catalog=catalog)
            res = eval_graph(g, snap, paths, reg, opts, store=store, sources=sources, memo=memo)
            ev = res.evaluation
            b = FeatureBuild(
                feature_id=fid,
                sheet=sheet,
                grid=ev.grid.name,
                rows=len(ev.values),
                missing=ev.missing,
                cached=ev.cache_hits > 0 and all(n.cached for n in ev.nodes if n.node == g.root),
                seconds=time.perf_counter() - t0,
                first=ev.index[0] if len(ev.index) else None,
                last=ev.index[-1] if len(ev.index) else None,
            )
            out.append(b)
            if on_done:
                on_done(b)
    return out
