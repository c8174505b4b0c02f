"""Evaluate a checked graph on a grid: the executor of the backend plan (design/DSL.md "Evaluation").

Algorithm (one pass, Zipline-style: the graph is planned once, then run in topological order):

1. Bind the top-level `$params` (the graph's check-time binding, overridden by `params`); compute each
   node's warm-up for that binding (`dsl.warmup.node_warmups`): a node's values are valid from row
   warm-up - 1 of its own grid.
2. Plan (`compiler.plan.plan_graph(mode=...)`): each node on Ibis/DuckDB or Numba.
3. Cache, top-down: starting at the root, a cacheable node (the root and every `feature` node by
   default) whose entry in the store covers its valid rows is served from the store and its subgraph
   is not visited; everything still needed is computed bottom-up.
4. Compute: source columns come from `sources.read` (float64, NaN missing) and are handed to NumPy and,
   when an Ibis node needs them, to DuckDB as one Arrow table per grid (NaN as NULL: NaN never reaches
   SQL). Numba nodes call their kernel (`compiler.numba_backend.call`); Ibis nodes add a translation to
   the staged table of their grid (`compiler.ibis_backend.apply`: nested windows become projection
   stages). A Numba value an Ibis node needs is joined into the staged table by row; an Ibis value a
   Numba node needs is fetched (one query). `asof` / `to_daily` run where their input is: a DuckDB join
   of the two grid tables, or the same mapping by NumPy index arithmetic. Pass-through nodes (`feature`,
   `availability`) are the value of their child.
5. Store every computed cacheable node (values on its valid rows), return the root on the output rows
   (`grid.start` onward). Every output is finite or NaN: a ±inf is a backend bug and raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.cache import cache_key, data_sources
from compiler.contracts import (
    Backend,
    CacheKey,
    Evaluation,
    Grid,
    NodeRun,
    Plan,
    Sources,
    StoredValues,
    ValueStore,
)
from compiler.plan import MODES, plan_graph
from dsl import OPERATORS, Frequency, Graph, Kind, ParamRef, Shape
from dsl.contracts import Node
from dsl.warmup import node_warmups

PASSTHROUGH = frozenset({"feature", "availability"})
"""Operators whose value is their child's (they give a feature its own node, hash and cache entry)."""

CACHE_OPS = ("feature",)
"""Nodes cached by default besides the root: every named feature, engineered feature and gate."""


class EvaluationError(ValueError):
    """A graph cannot be evaluated on the given grid (wrong grid, unbound $param, no minute grid)."""


# ----------------------------------------------------------------------------------------------------------
# In-memory sources (tests, notebooks)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class FrameSources(Sources):
    """Dataset columns from in-memory pandas frames: dataset_id -> frame with a `date` (daily) or `ts`
    (1m, UTC) column; placed on the grid by the same rules as the runtime's sources
    (compiler.placement: a 1m column missing on a minute without a row, additive ones 0, cvd the
    session's running value); `versions` are the data versions for cache keys (default "mem")."""

    frames: Mapping[str, Any]
    as_of: Any = None
    versions: Mapping[str, str] = field(default_factory=dict)

    def read(self, dataset_id: str, column: str, grid: Grid) -> np.ndarray:
        from compiler.placement import minute_fill, place_daily, place_minute

        if dataset_id not in self.frames:
            raise EvaluationError(
                f"no frame for dataset {dataset_id!r} (have {', '.join(sorted(self.frames))})"
            )
        df = self.frames[dataset_id]
        if column not in df.columns:
            raise EvaluationError(f"dataset {dataset_id!r} has no column {column!r}")
        values = np.asarray(df[column], dtype=np.float64)
        if grid.frequency is Frequency.DAILY:
            stamps = np.asarray(df["date"], dtype="datetime64[D]")
            return place_daily(stamps, values, grid.index, lower=getattr(grid, "previous", None))
        ts = np.asarray(
            df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
            if hasattr(df["ts"], "dt") and df["ts"].dt.tz is not None
            else df["ts"],
            dtype="datetime64[ns]",
        )
        return place_minute(ts, values, grid.index, minute_fill(column), session=grid.trade_date)

    def version(self, dataset_id: str) -> str:
        return self.versions.get(dataset_id, "mem")


# ----------------------------------------------------------------------------------------------------------
# NumPy alignment (the same mappings as compiler.ibis_backend.alignment, by index arithmetic)
# ----------------------------------------------------------------------------------------------------------


def session_rows(minute: Grid) -> np.ndarray:
    """For each bar, the row of its session in the minute grid's daily grid."""
    assert minute.daily is not None and minute.trade_date is not None
    return np.searchsorted(minute.daily.index, minute.trade_date)


def asof_np(daily_values: np.ndarray, minute: Grid, sessions: int) -> np.ndarray:
    """On every bar of the session with trade date D, the daily value `sessions` trading days before D."""
    if sessions < 1:
        raise EvaluationError(f"asof: sessions must be >= 1 (never the same day), got {sessions}")
    shifted = np.full(len(daily_values), np.nan)
    if sessions < len(daily_values):
        shifted[sessions:] = daily_values[:-sessions]
    return shifted[session_rows(minute)]


def to_daily_np(values: np.ndarray, minute: Grid, how: str, *, boolean: bool = False) -> np.ndarray:
    """One value per daily row from the present values of that session's bars (missing without any)."""
    assert minute.daily is not None
    n_days = len(minute.daily)
    rows = session_rows(minute)
    present = ~np.isnan(values)
    r, v = rows[present], values[present]
    pos = np.flatnonzero(present)
    count = np.bincount(r, minlength=n_days)
    out = np.full(n_days, np.nan)
    has = count > 0
    if how in ("last", "first"):
        best = np.full(n_days, -1 if how == "last" else len(values), dtype=np.int64)
        (np.maximum if how == "last" else np.minimum).at(best, r, pos)
        out[has] = values[best[has]]
    elif how in ("sum", "mean"):
        if boolean:
            raise EvaluationError(f"to_daily(how={how!r}) needs numbers, got a true/false series")
        with np.errstate(over="ignore", invalid="ignore"):
            s = np.bincount(r, weights=v, minlength=n_days)
            out[has] = s[has] if how == "sum" else s[has] / count[has]
    elif how in ("max", "min"):
        acc = np.full(n_days, -np.inf if how == "max" else np.inf)
        (np.maximum if how == "max" else np.minimum).at(acc, r, v)
        out[has] = acc[has]
    else:
        raise EvaluationError(f"to_daily: unknown how {how!r}")
    out[~np.isfinite(out)] = np.nan
    return out


# ----------------------------------------------------------------------------------------------------------
# The Ibis side: one staged table per grid
# ----------------------------------------------------------------------------------------------------------


def _col(h: str) -> str:
    return f"n{h[:16]}"


class _IbisGrids:
    """The staged Ibis table of each grid, built lazily on the first Ibis node that needs it."""

    def __init__(self, con: Any, grids: Mapping[Frequency, Grid], periods_per_year: float) -> None:
        self.con = con
        self.grids = grids
        self.ppy = periods_per_year
        self.ctx: dict[Frequency, Any] = {}
        self.fetched: dict[str, np.ndarray] = {}
        self.sources: dict[Frequency, dict[str, np.ndarray]] = {Frequency.DAILY: {}, Frequency.MINUTE: {}}

    def context(self, freq: Frequency) -> Any:
        if freq not in self.ctx:
            import ibis
            import pyarrow as pa

            from compiler.ibis_backend import Ctx

            g = self.grids[freq]
            cols: dict[str, Any] = {"_row": pa.array(np.arange(len(g), dtype=np.int64))}
            if freq is Frequency.DAILY:
                cols["date"] = pa.array(g.index.astype("datetime64[D]"), type=pa.date32())
            else:
                cols["trade_date"] = pa.array(g.trade_date, type=pa.date32())
            for name, values in self.sources[freq].items():  # NaN enters SQL as NULL
                cols[name] = pa.array(values, mask=np.isnan(values), type=pa.float64())
            table = ibis.memtable(pa.table(cols))
            self.ctx[freq] = Ctx(table, order="_row", periods_per_year=self.ppy)
        return self.ctx[freq]

    def has(self, freq: Frequency, name: str) -> bool:
        return freq in self.ctx and name in self.ctx[freq].values

    def add_array(self, freq: Frequency, name: str, values: np.ndarray, boolean: bool) -> None:
        """Join a NumPy series into the grid's staged table by row (a transfer Numba -> DuckDB)."""
        import ibis
        import pyarrow as pa

        from compiler.ibis_backend import Ctx

        ctx = self.context(freq)
        mask = np.isnan(values)
        arr = (
            pa.array(values == 1.0, mask=mask, type=pa.bool_())
            if boolean
            else pa.array(values, mask=mask, type=pa.float64())
        )
        side = ibis.memtable(pa.table({"_rk": pa.array(np.arange(len(values), dtype=np.int64)), name: arr}))
        ctx.flush()
        keep = [c for c in ctx.values if not c.startswith("_t")]
        base = ctx.table.select(*keep)
        joined = base.left_join(side, base["_row"] == side["_rk"]).select(*keep, name)
        self.ctx[freq] = Ctx(joined, order="_row", periods_per_year=self.ppy)

    def replace(self, freq: Frequency, table: Any) -> None:
        from compiler.ibis_backend import Ctx

        self.ctx[freq] = Ctx(table, order="_row", periods_per_year=self.ppy)

    def flushed(self, freq: Frequency) -> Any:
        ctx = self.context(freq)
        ctx.flush()
        keep = [c for c in ctx.values if not c.startswith("_t")]
        table = ctx.table.select(*keep)
        self.replace(freq, table)
        return table

    def fetch(self, freq: Frequency, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Values of `names` as float64 NumPy arrays in grid order (a transfer DuckDB -> Numba)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        want = [n for n in dict.fromkeys(names) if n not in self.fetched]
        if want:
            table = self.flushed(freq)
            res = self.con.to_pyarrow(table.select("_row", *want).order_by("_row"))
            for n in want:
                col = res[n]
                if pa.types.is_boolean(col.type) or not pa.types.is_floating(col.type):
                    col = pc.cast(col, pa.float64())
                self.fetched[n] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        return {n: self.fetched[n] for n in names}


# ----------------------------------------------------------------------------------------------------------
# The evaluator
# ----------------------------------------------------------------------------------------------------------


def _bool_kind(n: Node) -> bool:
    return n.kind in (Kind.BOOL, Kind.BOOL_SCALAR)


def _options(n: Node, binding: Mapping[str, Any]) -> dict[str, Any]:
    """The node's declared literal options by DSL name, $params replaced by their bound values."""
    declared = {a.name for a in OPERATORS[n.op].args if not a.role.is_operand}
    out = {}
    for k, v in n.args:
        if k not in declared:
            continue
        out[k] = binding[v.name] if isinstance(v, ParamRef) else v
    return out


def _grids_for(graph: Graph, grid: Grid, minute: Grid | None) -> dict[Frequency, Grid]:
    freqs = {n.frequency for n in graph.nodes} - {Frequency.SCALAR}
    out: dict[Frequency, Grid] = {}
    if grid.frequency is Frequency.MINUTE:
        if graph.frequency is Frequency.DAILY:
            raise EvaluationError("a daily expression is evaluated on a daily grid, not a 1m grid")
        out[Frequency.MINUTE] = grid
        assert grid.daily is not None
        out[Frequency.DAILY] = grid.daily
    else:
        if graph.frequency is Frequency.MINUTE:
            raise EvaluationError("a 1m expression needs a 1m grid (--frequency 1m), not a daily grid")
        out[Frequency.DAILY] = grid
        if Frequency.MINUTE in freqs:
            if minute is None:
                raise EvaluationError(
                    "this daily expression aggregates 1m data (to_daily): it needs the 1m grid of its sessions"
                )
            if minute.daily is None or not np.array_equal(minute.daily.index, grid.index):
                raise EvaluationError("the 1m grid's daily grid must be the daily grid evaluated on")
            out[Frequency.MINUTE] = minute
    return out


def evaluate(
    graph: Graph,
    sources: Sources,
    grid: Grid,
    *,
    backend: str = "auto",
    params: Mapping[str, Any] | None = None,
    minute: Grid | None = None,
    con: Any = None,
    store: ValueStore | None = None,
    cache_ops: Iterable[str] = CACHE_OPS,
    keep: Iterable[str] = (),
    plan: Plan | None = None,
) -> Evaluation:
    """Values of `graph` on the output rows of `grid` (see the module docstring for the algorithm).

    `backend`: auto | ibis | numba. `params`: values of top-level $params (over the graph's own binding).
    `minute`: the 1m grid whose daily grid is `grid`, for a daily graph that reads 1m data through
    `to_daily`. `con`: the Ibis connection for Ibis nodes (default: a new in-memory DuckDB). `store`: the
    feature cache (None: no caching). `keep`: node hashes whose values are also returned.
    """
    t_start = time.perf_counter()
    if backend not in MODES:
        raise EvaluationError(f"backend {backend!r} is not one of {', '.join(MODES)}")
    binding = {**dict(graph.params), **dict(params or {})}
    try:
        warm = node_warmups(graph, binding)
    except KeyError as e:
        raise EvaluationError(f"{e.args[0]}; pass it with params={{...}} (--params on the CLI)") from None
    grids = _grids_for(graph, grid, minute)
    plan = plan or plan_graph(graph, mode=backend)
    nodes = {n.hash: n for n in graph.nodes}
    cacheable = set(cache_ops)

    def grid_of(n: Node) -> Grid | None:
        return None if n.frequency is Frequency.SCALAR else grids[n.frequency]

    def valid_from(n: Node) -> int:
        return max(0, warm[n.hash].get(n.frequency, 1) - 1)

    # -- cache keys ------------------------------------------------------------------------------------
    versions: dict[str, str] = {}

    def key_of(n: Node) -> CacheKey | None:
        g = grid_of(n)
        if store is None or g is None:
            return None
        for d in data_sources(graph, n.hash):
            if d not in versions:
                versions[d] = sources.version(d)
        name = g.name + (f"@{g.index[0]}" if n.stateful and len(g) else "")
        k = cache_key(graph, versions, node_hash=n.hash, as_of=sources.as_of, params=binding)
        return CacheKey(k.node_hash, k.data_versions, k.as_of, k.params, grid=name)

    runs: dict[str, NodeRun] = {}
    np_vals: dict[str, np.ndarray | float] = {}  # NumPy-resident values (full grid length) and scalars
    on_ibis: set[str] = set()  # node values that live as columns of their grid's staged Ibis table

    # -- 3. cache lookups, top-down ----------------------------------------------------------------------
    needed: set[str] = set()
    hits: set[str] = set()
    stack = [graph.root]
    while stack:
        h = stack.pop()
        if h in needed:
            continue
        needed.add(h)
        n = nodes[h]
        if (
            store is not None
            and (h == graph.root or n.op in cacheable)
            and n.frequency is not Frequency.SCALAR
        ):
            key = key_of(n)
            got = store.load(key) if key is not None else None
            g = grid_of(n)
            assert g is not None
            vf = valid_from(n)
            if got is not None and vf < len(g):
                pos = np.searchsorted(got.index, g.index)
                inside = pos < len(got.index)
                match = np.zeros(len(g), dtype=bool)
                match[inside] = got.index[pos[inside]] == g.index[inside]
                if bool(match[vf:].all()):
                    vals = np.full(len(g), np.nan)
                    vals[match] = got.values[pos[match]]
                    np_vals[h] = vals
                    hits.add(h)
                    runs[h] = NodeRun(h, n.op, n.label, None, cached=True)
                    continue
        stack.extend(n.children)

    # -- 4. compute bottom-up ----------------------------------------------------------------------------
    ib = _IbisGrids(con, grids, grid.periods_per_year)
    if con is None:
        ib.con = None  # created on first use

    def ibis_con() -> Any:
        if ib.con is None:
            import ibis

            ib.con = ibis.duckdb.connect()
        return ib.con

    def as_numpy(h: str) -> np.ndarray | float:
        if h in np_vals:
            return np_vals[h]
        n = nodes[h]
        ibis_con()
        arr = ib.fetch(n.frequency, [_col(h)])[_col(h)]
        np_vals[h] = arr
        return arr

    def scalar_value(h: str) -> float | bool | None:
        v = np_vals[h]
        assert isinstance(v, float)
        if _bool_kind(nodes[h]):
            return None if np.isnan(v) else bool(v == 1.0)
        return None if np.isnan(v) else v

    def ensure_ibis(h: str, freq: Frequency) -> str | float | bool | None:
        """The operand of an Ibis step: a column name of the grid's staged table, or a literal."""
        n = nodes[h]
        if n.frequency is Frequency.SCALAR:
            return scalar_value(h)
        name = _col(h)
        ibis_con()
        ib.context(freq)
        if not ib.has(freq, name):
            val = np_vals[h]
            assert isinstance(val, np.ndarray)
            ib.add_array(freq, name, val, _bool_kind(n))
        return name

    order = [n for n in graph.nodes if n.hash in needed and n.hash not in hits]
    for n in order:  # sources first: read once, handed to NumPy and to each grid's Arrow table
        if n.op != "column":
            continue
        t0 = time.perf_counter()
        args = dict(n.args)
        g = grid_of(n)
        assert g is not None
        vals = np.asarray(sources.read(str(args["dataset_id"]), str(args["column"]), g), dtype=np.float64)
        if vals.shape != (len(g),):
            raise EvaluationError(f"source {n.label}: {vals.shape} values for a grid of {len(g)} rows")
        vals = np.where(np.isfinite(vals), vals, np.nan)
        np_vals[n.hash] = vals
        ib.sources[n.frequency][_col(n.hash)] = vals
        runs[n.hash] = NodeRun(n.hash, n.op, n.label, None, seconds=time.perf_counter() - t0)
    for n in order:
        t0 = time.perf_counter()
        h = n.hash
        spec = OPERATORS[n.op]
        b = plan.backend_of(h)
        used: Backend | None = b
        if n.frequency is Frequency.SCALAR:
            np_vals[h] = _scalar(n, [np_vals[c] for c in n.children], binding)
            used = None
        elif n.op == "column":
            continue
        elif n.op in PASSTHROUGH:
            c = n.children[0]
            if c in on_ibis:
                ctx = ib.context(n.frequency)
                ctx.define(_col(h), ctx.values[_col(c)], windowed=_col(c) in ctx.windowed)
                on_ibis.add(h)
            else:
                np_vals[h] = np_vals[c]
            used = None
        elif spec.shape is Shape.ALIGN:
            _align(n, b, grids, binding, nodes, np_vals, on_ibis, ib, ibis_con, as_numpy, ensure_ibis)
        elif b is Backend.NUMBA:
            from compiler.numba_backend import call

            operands = [as_numpy(c) for c in n.children]
            np_vals[h] = call(n.op, *operands, **_options(n, binding))
        else:
            from compiler.ibis_backend import Step, apply

            ibis_con()
            ctx = ib.context(n.frequency)
            inputs = tuple(ensure_ibis(c, n.frequency) for c in n.children)
            ctx = ib.context(n.frequency)  # a transfer may have replaced the staged table
            apply(ctx, Step(_col(h), n.op, inputs, _options(n, binding)))
            on_ibis.add(h)
        runs[h] = NodeRun(h, n.op, n.label, used, seconds=time.perf_counter() - t0)

    # -- 5. results and cache writes ---------------------------------------------------------------------
    wanted = [graph.root, *[k for k in keep if k in nodes]]
    to_store = [
        h
        for h in needed
        if store is not None
        and h not in hits
        and (h == graph.root or nodes[h].op in cacheable)
        and nodes[h].frequency is not Frequency.SCALAR
    ]
    for freq in (Frequency.DAILY, Frequency.MINUTE):
        names = [
            _col(h)
            for h in {*wanted, *to_store}
            if h in on_ibis and h not in np_vals and nodes[h].frequency is freq
        ]
        if names:
            ib.fetch(freq, names)
            for h in {*wanted, *to_store}:
                if _col(h) in ib.fetched:
                    np_vals[h] = ib.fetched[_col(h)]

    def out_rows(h: str) -> np.ndarray:
        n = nodes[h]
        v = np_vals[h]
        if n.frequency is Frequency.SCALAR:
            assert isinstance(v, float)
            return np.full(grid.rows, v)
        g = grid_of(n)
        assert isinstance(v, np.ndarray) and g is not None
        if g is not grid:
            raise EvaluationError(f"node {n.label} is on another grid than the output")
        return v[grid.start :]

    values = out_rows(graph.root)
    if np.isinf(values).any():
        raise AssertionError(f"backend bug: ±inf in the values of {graph.canonical}")
    stored_now: set[str] = set()
    for h in to_store:
        n = nodes[h]
        key = key_of(n)
        g = grid_of(n)
        v = np_vals.get(h)
        if key is None or g is None or not isinstance(v, np.ndarray):
            continue
        vf = valid_from(n)
        feature_id = str(dict(n.args).get("name")) if n.op == "feature" else None
        assert store is not None
        # the root's own label ("if", "and") says nothing in `cache ls`: its expression does
        text = graph.canonical if h == graph.root and feature_id is None else n.label
        label = text if len(text) <= 80 else text[:79] + "…"
        store.save(key, StoredValues(g.index[vf:], v[vf:]), label=label, feature_id=feature_id)
        stored_now.add(h)
    kept = {k: out_rows(k) for k in wanted[1:] if nodes[k].frequency in (grid.frequency, Frequency.SCALAR)}
    node_runs = tuple(
        (
            r
            if r.node not in stored_now
            else NodeRun(r.node, r.op, r.label, r.backend, r.cached, True, r.seconds)
        )
        for r in (runs[n.hash] for n in graph.nodes if n.hash in runs)
    )
    problems = tuple(getattr(store, "problems", ()) or ()) if store is not None else ()
    return Evaluation(
        values=values,
        grid=grid,
        backend=backend,
        nodes=node_runs,
        seconds=time.perf_counter() - t_start,
        kept=kept,
        cache_problems=problems,
    )


def _scalar(n: Node, kids: Sequence[Any], binding: Mapping[str, Any]) -> float:
    """A constant node's value as a float (true/false as 1.0/0.0, missing as NaN)."""
    if n.op == "const":
        v = dict(n.args)["value"]
    elif n.op == "param":
        name = str(dict(n.args)["name"])
        if name not in binding:
            raise EvaluationError(f"no value bound for ${name}; pass it with params={{...}}")
        v = binding[name]
    else:
        from compiler.numba_backend import call

        arrays = [np.array([k], dtype=np.float64) for k in kids]
        return float(call(n.op, *arrays, **_options(n, binding))[0])
    if v is None:
        return float("nan")
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return float(v)


def _align(
    n: Node,
    b: Backend,
    grids: Mapping[Frequency, Grid],
    binding: Mapping[str, Any],
    nodes: Mapping[str, Node],
    np_vals: dict[str, Any],
    on_ibis: set[str],
    ib: _IbisGrids,
    ibis_con: Any,
    as_numpy: Any,
    ensure_ibis: Any,
) -> None:
    """`asof` (daily -> 1m) or `to_daily` (1m -> daily), on the backend the plan chose."""
    h, c = n.hash, n.children[0]
    args = dict(n.args)
    minute = grids[Frequency.MINUTE]
    if b is Backend.NUMBA:
        x = as_numpy(c)
        assert isinstance(x, np.ndarray)
        if n.op == "asof":
            np_vals[h] = asof_np(x, minute, int(args["sessions"]))
        else:
            np_vals[h] = to_daily_np(x, minute, str(args.get("how", "last")), boolean=_bool_kind(nodes[c]))
        return
    from compiler.ibis_backend import ALIGNMENTS

    ibis_con()
    src_freq = nodes[c].frequency
    name = ensure_ibis(c, src_freq)
    daily = ib.flushed(Frequency.DAILY)
    mins = ib.flushed(Frequency.MINUTE)
    if n.op == "asof":
        out = ALIGNMENTS["asof"](mins, daily, name, sessions=int(args["sessions"]), out=_col(h))
        ib.replace(Frequency.MINUTE, out)
    else:
        out = ALIGNMENTS["to_daily"](mins, daily, name, how=str(args.get("how", "last")), out=_col(h))
        ib.replace(Frequency.DAILY, out)
    on_ibis.add(h)


def ibis_sql(graph: Graph, *, params: Mapping[str, Any] | None = None) -> str:
    """Readable DuckDB SQL of the whole graph on Ibis (`compile --format sql`): one staged query per grid
    over tables `daily` / `minute` (columns `_row`, `date` / `trade_date`, one per source column)."""
    import ibis

    from compiler.ibis_backend import ALIGNMENTS, Ctx, Step, apply, normalize_source, to_sql

    binding = {**dict(graph.params), **dict(params or {})}
    nodes = {n.hash: n for n in graph.nodes}
    srcs: dict[Frequency, dict[str, str]] = {Frequency.DAILY: {}, Frequency.MINUTE: {}}
    for n in graph.nodes:
        if n.op == "column":
            a = dict(n.args)
            srcs[n.frequency][_col(n.hash)] = f"{a['dataset_id']}.{a['column']}"
    ctxs: dict[Frequency, Any] = {}
    for f, cols in srcs.items():
        if f in {n.frequency for n in graph.nodes}:
            key = "date" if f is Frequency.DAILY else "trade_date"
            schema = {"_row": "int64", key: "date", **dict.fromkeys(cols, "float64")}
            t = ibis.table(schema, name="daily" if f is Frequency.DAILY else "minute")
            t = t.mutate(**{c: normalize_source(t[c]) for c in cols})
            ctxs[f] = Ctx(t, order="_row")
    scal: dict[str, Any] = {}
    notes: list[str] = []
    for n in graph.nodes:
        if n.frequency is Frequency.SCALAR:
            v = _scalar(n, [scal[c] for c in n.children], binding)
            scal[n.hash] = (
                (None if np.isnan(v) else bool(v)) if _bool_kind(n) else (None if np.isnan(v) else v)
            )
            continue
        if n.op == "column":
            continue
        ctx = ctxs[n.frequency]
        inputs = tuple(scal[c] if c in scal else _col(c) for c in n.children)
        if n.op in PASSTHROUGH:
            ctx.define(
                _col(n.hash), ctx.values[_col(n.children[0])], windowed=_col(n.children[0]) in ctx.windowed
            )
        elif n.op in ALIGNMENTS:
            args = dict(n.args)
            for c in ctxs.values():
                c.flush()
            d, m = ctxs[Frequency.DAILY].table, ctxs[Frequency.MINUTE].table
            if n.op == "asof":
                ctxs[Frequency.MINUTE] = Ctx(
                    ALIGNMENTS["asof"](m, d, inputs[0], sessions=int(args["sessions"]), out=_col(n.hash)),
                    order="_row",
                )
            else:
                ctxs[Frequency.DAILY] = Ctx(
                    ALIGNMENTS["to_daily"](
                        m, d, inputs[0], how=str(args.get("how", "last")), out=_col(n.hash)
                    ),
                    order="_row",
                )
        else:
            apply(ctx, Step(_col(n.hash), n.op, inputs, _options(n, binding)))
    root = nodes[graph.root]
    if root.frequency is Frequency.SCALAR:
        return f"SELECT {scal[root.hash]!r} AS value"
    ctx = ctxs[root.frequency]
    ctx.flush()
    key = "date" if root.frequency is Frequency.DAILY else "trade_date"
    table = ctx.table.select("_row", key, ctx.values[_col(root.hash)].name("value")).order_by("_row")
    head = [
        f"-- {graph.canonical}",
        "-- source columns: " + ", ".join(f"{c} = {label}" for f in srcs for c, label in srcs[f].items()),
    ]
    return "\n".join([*head, *notes, to_sql(table)])


@dataclass(frozen=True)
class Explained:
    """A graph with its backend plan and its DuckDB SQL: what Jupyter shows for `compiler.explain(g)`."""

    graph: Graph
    plan: Plan
    sql: str

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td style='text-align:left;font-family:monospace'>{html.escape(self.graph.find(s.node).label)}"
            f"</td><td>{s.backend}</td><td>{s.stage}</td><td style='text-align:left'>{html.escape(s.reason)}</td></tr>"
            for s in self.plan.steps
        )
        plan = (
            "<table style='border-collapse:collapse'><thead><tr><th style='text-align:left'>node</th>"
            f"<th>backend</th><th>stage</th><th style='text-align:left'>reason</th></tr></thead><tbody>{rows}"
            "</tbody></table>"
        )
        sql = f"<pre style='font-size:11px'>{html.escape(self.sql)}</pre>"
        return (
            f"{self.graph._repr_html_()}<details open><summary><b>plan</b> ({self.plan.transfers} transfer(s))"
            f"</summary>{plan}</details><details><summary><b>DuckDB SQL</b></summary>{sql}</details>"
        )


def explain(graph: Graph, *, backend: str = "auto", params: Mapping[str, Any] | None = None) -> Explained:
    """The typed graph, its plan for `backend` and its staged SQL, in one object for notebooks."""
    return Explained(graph, plan_graph(graph, mode=backend), ibis_sql(graph, params=params))
