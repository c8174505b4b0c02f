"""Rolling statistics over the last n rows (current row included), strict: NULL unless all n rows exist
and are present (`COUNT(x) OVER w = n`; the block moments below get the same rule without a COUNT).

Native window aggregates where DuckDB's result is as exact as the semantics need: sum, mean (segment
trees sum only the frame's own values, so nothing leaks from rows that left the window), min, max,
median and quantile (quantile_cont: numpy 'linear'; median = mean of the two middle values), count.

Second moments (var, std, zscore, winsorize, realized_vol, cov, corr, slope) cannot use DuckDB's
var_samp / stddev_samp / covar_samp / regr_slope: their streaming updates lose digits on data such as
1e8 + 1e-3 noise (errors ~1e-5 measured, the semantics demand ~1e-12). They use the block shift the
Numba kernels use, in SQL: rows are cut into blocks of n (b = pos // n, r = pos % n); K_b = x at the
block's first row lies inside every window that ends in block b, so deviations d = x − K_b are small
and Σd² − (Σd)²/n has no cancellation. A window ending in block b holds rows of b (deviation from K_b:
d) and of b − 1 (deviation from the next block's K: e = x − K_{b(row)+1}). Column E = d on even-block
rows and e on odd-block rows is therefore right for every window ending in an even block, column O
(the mirror) for every window ending in an odd block: plain SUM(E) / SUM(O) over the last-n frame,
picked by the parity of the current row's block. K_b and K_{b+1} come from a K table of one row per
block (its first row, K_{b+1} by LEAD(1) over those few rows) joined back on the block number: a hash
join instead of a window sort over all rows. Literal frames and offsets only (Spark refuses per-row
ones), no partition over blocks: one window stage for the sums, then the caller's formula.
Every sum holds only the window's own values, so nothing leaks from rows that left the window. The
strict rule needs no COUNT: a missing x or K becomes NaN in d / e, which poisons exactly the sums of
the windows that contain it (the formulas' finite() / comparisons return NULL), and `LAG(pos, n − 1)
IS NOT NULL` says n rows exist. A constant window has var = 0 exactly (every d is 0), any other var > 0
(the K row's d = 0 is in the window), so `var > 0` is the exact constant test (no Σ|d| sum).

rank and ts_argmax / ts_argmin compare the window with the current row's value, which no window
aggregate can do: they collect the window as a sorted list (`LIST(x) OVER w`; for the arg-extremes
the (x, ±row) pairs, so no collection order is needed) and find positions in it (O(w log w) per row;
the Numba rank is O(n·w) too).
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from compiler.ibis_backend._common import DBL_MAX, NULL_F, finite, strict
from compiler.ibis_backend._registry import Ctx, register

_NAN = ibis.literal(float("nan"), type="float64")

# -- native window aggregates --------------------------------------------------------------------------------


def _rows_exist(ctx: Ctx, n: int) -> ir.BooleanValue:
    """n rows (of the partition) end at this row: one literal LAG on the window's own sort."""
    return ctx.row.lag(n - 1).over(ctx.window()).notnull()


def _poisoned(x: ir.NumericValue) -> ir.FloatingValue:
    """x with missing as NaN: a window aggregate over it is NaN when any row of its frame is missing,
    which finite() turns into NULL, so the strict rule needs no COUNT (the Numba kernels' rule)."""
    return x.cast("float64").fill_null(_NAN)


@register("sum", windowed=True)
def sum_(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    agg = finite(_poisoned(x).sum().over(ctx.window(n)))
    return ibis.cases((_rows_exist(ctx, n), agg), else_=NULL_F)


@register("mean", windowed=True)
def mean(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    agg = finite(_poisoned(x).mean().over(ctx.window(n)))
    return ibis.cases((_rows_exist(ctx, n), agg), else_=NULL_F)


@register("ts_min", windowed=True)
def ts_min(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return strict(ctx, x, n, x.min().over(ctx.window(n)))


@register("ts_max", windowed=True)
def ts_max(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return strict(ctx, x, n, x.max().over(ctx.window(n)))


@register("median", windowed=True)
def median(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return strict(ctx, x, n, finite(x.quantile(0.5).over(ctx.window(n))))


@register("quantile", windowed=True)
def quantile(ctx: Ctx, x: ir.NumericColumn, *, n: int, q: float) -> ir.Value:
    return strict(ctx, x, n, finite(x.quantile(float(q)).over(ctx.window(n))))


@register("count", windowed=True)
def count(ctx: Ctx, x: ir.Column, *, n: int) -> ir.Value:
    """Present values among the last n rows; NULL only while fewer than n rows exist."""
    w = ctx.window(n)
    return ibis.cases((ctx.row.count().over(w) == n, x.count().over(w).cast("float64")), else_=NULL_F)


# -- list-based counting ------------------------------------------------------------------------------------------


@register("rank", windowed=True)
def rank(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    """(#below + (#equal + 1) / 2) / n: exact in floating point (half-integers, one division).

    Without list lambdas (Ibis emits `->` lambdas, which DuckDB 2 refuses): in the sorted window the
    first position of x is #below; in the sorted window of −x the first position of −x is #above;
    #equal = n − #below − #above (x itself is in its window)."""
    w = ctx.window(n)
    below = x.collect().over(w).sort().index(x).cast("float64")
    above = (-x).collect().over(w).sort().index(-x).cast("float64")
    equal = float(n) - below - above
    return strict(ctx, x, n, (below + (equal + 1.0) / 2.0) / float(n))


def _arg_extreme(ctx: Ctx, x: ir.NumericColumn, n: int, is_max: bool) -> ir.Value:
    """Rows back to the most recent max (min) of the window. The window's (value, ±row) pairs are
    collected and sorted, which needs no collection order (an ordered LIST(x ORDER BY ...) is not
    portable: Spark has none): ascending (x, row) ends at the max with the latest row; ascending
    (x, −row) starts at the min with the latest row."""
    if ctx.group_by:  # positions count rows within the partition
        c = ctx.mat(pos=ibis.row_number().over(ctx.window()), x=x)
        pos, x = c["pos"], c["x"]
    else:
        pos = ctx.row
    pairs = ibis.struct({"v": x, "k": pos if is_max else -pos}).collect().over(ctx.window(n)).sort()
    found = pairs[pairs.length() - 1]["k"] if is_max else -pairs[0]["k"]
    return strict(ctx, x, n, (pos - found).cast("float64"))


@register("ts_argmax", windowed=True)
def ts_argmax(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return _arg_extreme(ctx, x, n, True)


@register("ts_argmin", windowed=True)
def ts_argmin(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return _arg_extreme(ctx, x, n, False)


# -- block-shifted moments ------------------------------------------------------------------------------------------

Terms = dict[str, Callable[[dict[str, ir.Value], ir.Value], ir.Value]]


def _block_sums(
    ctx: Ctx, n: int, series: dict[str, ir.Value], terms: Terms, *, keep_k: bool = False
) -> tuple[dict[str, ir.Value], dict[str, ir.Value]]:
    """Window sums Σ term(d, u) over the last n rows, d = series − K_b (K_b inside the window), u = the
    row's offset from the start of block b (the block of the window's last row; negative in block b − 1).

    Returns (sums, current-row columns: `r`, `full` = n rows exist, per series `dc_` = d of the current
    row and, with `keep_k`, `k_` = K_b), all columns of the final stage's table. A sum is NaN when any
    operand in its window is missing (the caller's finite() / comparisons turn it into NULL)."""
    # the K table (no window sort over all rows): one row per block, its first row's x (K_b; the one
    # non-NULL "x if r = 0" of the block, NULL if missing) and, by
    # LEAD(1) over the few block rows, the next block's (K_{b+1}); joined back on the block number.
    # A missing K is NULL and so are the deviations from it, exactly for the windows holding that row.
    c = ctx.mat(**({"pos": ibis.row_number().over(ctx.window())} if ctx.group_by else {}), **series)
    pos_name = c["pos"].get_name() if ctx.group_by else ctx.order
    cols_x = {k: c[k].get_name() for k in series}
    t, groups, tag = ctx.table, list(ctx.group_by), f"_k{ctx.stages}"
    kv = t.view()
    first = {k: ibis.cases((kv[pos_name] % n == 0, kv[nm]), else_=NULL_F) for k, nm in cols_x.items()}
    # GROUP BY, not a filter on r = 0: a partial first block (the data need not start at a block
    # boundary) still gets its row, so LEAD(1) below is always the next block
    kt = kv.group_by([*groups, (kv[pos_name] // n).name(f"{tag}_b")]).aggregate(
        **{f"{tag}_c_{k}": first[k].max() for k in series}
    )
    by_block = ibis.window(order_by=kt[f"{tag}_b"], group_by=[kt[g] for g in groups] or None)
    kt = kt.mutate(**{f"{tag}_n_{k}": kt[f"{tag}_c_{k}"].lead(1).over(by_block) for k in series})
    preds = [t[g] == kt[g] for g in groups] + [t[pos_name] // n == kt[f"{tag}_b"]]
    ctx.join(kt, preds, [f"{tag}_{p}_{k}" for k in series for p in ("c", "n")])
    t = ctx.table
    pos = t[pos_name]
    b, r = pos // n, pos % n
    last_n = ctx.window(n)
    k_cur = {k: t[f"{tag}_c_{k}"] for k in series}
    dev = {k: (t[nm] - k_cur[k]).fill_null(_NAN) for k, nm in cols_x.items()}
    dev_next = {k: (t[nm] - t[f"{tag}_n_{k}"]).fill_null(_NAN) for k, nm in cols_x.items()}

    # the sums (one window sort, the same frame for every sum): a window ending in an even block b holds
    # rows of b (their d) and of the odd block b − 1 (their e = x − K_b); one ending in an odd block the
    # reverse. So column E (d on even-block rows, e on odd) summed over the plain last-n frame is the
    # shifted sum of every even-block window, column O (the mirror) of every odd-block one: each sum
    # holds only its window's own values, nothing leaks, no partition and no second LAG.
    even = b % 2 == 0
    u_own = r.cast("float64")
    u_prev = u_own - float(n)
    e_col = {k: ibis.cases((even, dev[k]), else_=dev_next[k]) for k in series}
    o_col = {k: ibis.cases((even, dev_next[k]), else_=dev[k]) for k in series}
    u_e = ibis.cases((even, u_own), else_=u_prev)
    u_o = ibis.cases((even, u_prev), else_=u_own)
    c = ctx.mat(
        r=r,
        full=pos.lag(n - 1).over(ctx.window()).notnull(),  # n rows exist
        **({f"k_{k}": k_cur[k] for k in series} if keep_k else {}),
        **{f"dc_{k}": dev[k] for k in series},
        **{
            f"s_{t}": ibis.cases(
                (even, f(e_col, u_e).sum().over(last_n)), else_=f(o_col, u_o).sum().over(last_n)
            )
            for t, f in terms.items()
        },
    )
    names = {k: v.get_name() for k, v in c.items()}

    def col(key: str) -> ir.Column:
        return ctx.table[names[key]]

    sums = {t: col(f"s_{t}") for t in terms}
    cols = {"r": col("r"), "full": col("full")}
    for k in series:
        cols[f"dc_{k}"] = col(f"dc_{k}")
        if keep_k:
            cols[f"k_{k}"] = col(f"k_{k}")
    return sums, cols


def _floor0(v: ir.NumericValue) -> ir.NumericValue:
    """max(v, 0) that keeps NULL and NaN (SQL GREATEST ignores NULL arguments: it would turn NULL into 0)."""
    return ibis.cases((v < 0, 0.0), else_=v)


def _var_terms(k: str) -> Terms:
    return {f"{k}1": lambda d, u: d[k], f"{k}2": lambda d, u: d[k] * d[k]}


def _variance(
    ctx: Ctx, x: ir.Value, n: int, *, keep_k: bool = False
) -> tuple[ir.Value, ir.Value, dict[str, ir.Value]]:
    """(sample variance ≥ 0, mean − K, current-row columns); NULL unless n rows exist, NaN if one of
    them is missing. Exactly 0 on a constant window (every d is 0) and > 0 on any other (the K row's
    d = 0 is in the window, so Σ(d − d̄)² cannot cancel to 0 short of underflow): `var > 0` is the
    constant-window test, with no extra sum."""
    s, cols = _block_sums(ctx, n, {"x": x}, _var_terms("x"), keep_k=keep_k)
    dev_mean = s["x1"] / float(n)
    var = (s["x2"] - s["x1"] * dev_mean) / float(n - 1)
    var = ibis.cases((cols["full"], _floor0(var)), else_=NULL_F)
    return var, dev_mean, cols


@register("var", windowed=True)
def var(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return finite(_variance(ctx, x, n)[0])


@register("std", windowed=True)
def std(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    return finite(_variance(ctx, x, n)[0].sqrt())


@register("zscore", windowed=True)
def zscore(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    """(x − mean) / std = (d − Σd/n) / std; NULL on a constant window (var = 0 exactly, see _variance;
    the division is never evaluated there, so no engine sees x/0)."""
    v, dev_mean, c = _variance(ctx, x, n)
    return ibis.cases((v > 0, finite((c["dc_x"] - dev_mean) / v.sqrt())), else_=NULL_F)


@register("winsorize", windowed=True)
def winsorize(ctx: Ctx, x: ir.NumericColumn, *, n: int, k: float) -> ir.Value:
    """clip(x, m − k·s, m + k·s), formed on deviations d = x − K (no cancellation), K added back once."""
    v, dev_mean, c = _variance(ctx, x, n, keep_k=True)
    s = v.sqrt()
    lo, hi, d = dev_mean - float(k) * s, dev_mean + float(k) * s, c["dc_x"]
    clipped = ibis.cases((d < lo, lo), (d > hi, hi), else_=d)
    # v <= DBL_MAX: false on NaN (ordered above every number) and inf, NULL on NULL
    return ibis.cases((v <= DBL_MAX, finite(clipped + c["k_x"])), else_=NULL_F)


@register("realized_vol", windowed=True)
def realized_vol(
    ctx: Ctx,
    returns: ir.NumericColumn,
    *,
    n: int,
    annualize: bool = True,
    periods_per_year: float | None = None,
) -> ir.Value:
    """std(returns, n)·√P; P = periods_per_year, else the grid's default (ctx), 1 without annualize."""
    p = (
        (float(periods_per_year) if periods_per_year is not None else ctx.periods_per_year)
        if annualize
        else 1.0
    )
    return finite((_variance(ctx, returns, n)[0] * p).sqrt())


def _co(ctx: Ctx, x: ir.Value, y: ir.Value, n: int) -> tuple[dict[str, ir.Value], dict[str, ir.Value]]:
    terms = _var_terms("x") | _var_terms("y") | {"xy": lambda d, u: d["x"] * d["y"]}
    return _block_sums(ctx, n, {"x": x, "y": y}, terms)


@register("cov", windowed=True)
def cov(ctx: Ctx, x: ir.NumericColumn, y: ir.NumericColumn, *, n: int) -> ir.Value:
    s, c = _co(ctx, x, y, n)
    sxy = s["xy"] - s["x1"] * s["y1"] / float(n)
    return ibis.cases((c["full"], finite(sxy / float(n - 1))), else_=NULL_F)


@register("corr", windowed=True)
def corr(ctx: Ctx, x: ir.NumericColumn, y: ir.NumericColumn, *, n: int) -> ir.Value:
    """Pearson r from shifted co-moments; NULL if either window is constant (its Σ(d − d̄)² is exactly
    0, see _variance), so the division is only evaluated on a positive denominator."""
    s, c = _co(ctx, x, y, n)
    sxy = s["xy"] - s["x1"] * s["y1"] / float(n)
    sxx = _floor0(s["x2"] - s["x1"] * s["x1"] / float(n))
    syy = _floor0(s["y2"] - s["y1"] * s["y1"] / float(n))
    den = sxx.sqrt() * syy.sqrt()
    r = finite(sxy / den)
    return ibis.cases(
        (c["full"] & (den > 0), ibis.cases((r > 1.0, 1.0), (r < -1.0, -1.0), else_=r)), else_=NULL_F
    )


@register("slope", windowed=True)
def slope(ctx: Ctx, x: ir.NumericColumn, *, n: int) -> ir.Value:
    """Σ(t − t̄)d / Σ(t − t̄)² with t − t̄ = u − c, c = r − (n − 1)/2 (u = offset from the block start
    of the current row's block, negative on the previous block's suffix); Σ(t − t̄)² = n(n² − 1)/12."""
    s, c = _block_sums(ctx, n, {"x": x}, {"x1": lambda d, u: d["x"], "xu": lambda d, u: d["x"] * u})
    shift = c["r"].cast("float64") - (n - 1) / 2.0
    num = s["xu"] - shift * s["x1"]
    return ibis.cases((c["full"], finite(num / (n * (n * n - 1) / 12.0))), else_=NULL_F)
