"""compiler.evaluate: whole graphs on daily and 1m grids, on each backend mode, against the reference.

The reference (tests/compiler/graph_reference.py) walks the graph with the exact per-operator reference
and plain-loop alignments; nothing here calls the backends' code to produce an expected value.
"""

from __future__ import annotations

import numpy as np
import pytest

import dsl
from compiler.contracts import Backend, CacheKey, Grid, Sources, StoredValues, ValueStore
from compiler.evaluate import EvaluationError, evaluate, ibis_sql
from tests.compiler.graph_reference import evaluate_reference

D, M = dsl.Frequency.DAILY, dsl.Frequency.MINUTE
N_DAYS, N_SESS, BARS = 160, 8, 15
RTOL = 1e-9


def col(name: str, freq=D, lag: int = 1) -> dsl.ColumnDef:
    ds, c = name.split(".")
    return dsl.ColumnDef(name, ds, c, dsl.Kind.FLOAT, freq, lag, dsl.Origin("DATASETS", "J2"))


CAT = dsl.Catalog(
    columns={
        c.name: c
        for c in (
            col("D.x"),
            col("D.y"),
            col("D.z", lag=3),
            col("M.close", M),
            col("M.delta", M),
        )
    },
    features={},
)


def _data(seed: int = 7) -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 100 + np.cumsum(rng.normal(0, 1, N_DAYS))
    x[[5, 6, 7, 40, 90]] = np.nan  # missing runs
    y = 0.5 * x + rng.normal(0, 2, N_DAYS)
    y[[3, 60, 61]] = np.nan
    z = np.where(rng.random(N_DAYS) < 0.3, np.nan, rng.normal(0, 1, N_DAYS))
    z[100:106] = 1.5  # a constant window
    n_bars = N_SESS * BARS
    close = 2700 + np.cumsum(rng.normal(0, 0.5, n_bars))
    close[rng.random(n_bars) < 0.1] = np.nan  # minutes without trades
    delta = np.round(rng.normal(0, 20, n_bars))
    return {("D", "x"): x, ("D", "y"): y, ("D", "z"): z, ("M", "close"): close, ("M", "delta"): delta}


class ArraySources(Sources):
    """Columns already on the grid rows (placement is tested with the runtime's sources)."""

    def __init__(self, data: dict[tuple[str, str], np.ndarray], version: str = "v1") -> None:
        self.data = data
        self.as_of = None
        self._version = version
        self.reads: list[tuple[str, str]] = []

    def read(self, dataset_id: str, column: str, grid: Grid) -> np.ndarray:
        self.reads.append((dataset_id, column))
        return self.data[(dataset_id, column)].copy()

    def version(self, dataset_id: str) -> str:
        return self._version


def grids(start: int = 0) -> tuple[Grid, Grid]:
    days = np.busday_offset(np.datetime64("2024-01-02"), np.arange(N_DAYS), roll="forward").astype(
        "datetime64[D]"
    )
    daily = Grid(D, days, "daily:test", start=start)
    sess = days[-N_SESS:]
    ts = np.concatenate(
        [
            (d.astype("datetime64[ns]") + np.timedelta64(14, "h") + np.arange(BARS) * np.timedelta64(1, "m"))
            for d in sess
        ]
    )
    td = np.repeat(sess, BARS)
    minute = Grid(M, ts, "1m:test", start=0, trade_date=td, daily=daily)
    return daily, minute


DAILY_EXPRS = [
    "zscore(lag(D.x, 1), 20) > 0 AND NOT (lag(D.y, 1) > 60)",
    "mean(D.x, 5) - mean(D.x, 20)",
    "std(pct_change(D.x, 1), 10)",
    "corr(D.x, D.y, 15)",
    "cov(diff(D.x, 1), diff(D.y, 1), 12)",
    "rank(D.x, 10)",
    "quantile(D.y, 9, 0.25)",
    "median(D.x, 7)",
    "ts_max(D.x, 10) - ts_min(D.x, 10)",
    "ts_argmax(D.y, 6)",
    "slope(D.x, 8)",
    "count(D.z, 10)",
    "ffill(D.z, 3) * 2",
    "ffill(D.z)",
    "fill(D.z, 0) + D.x",
    "if(D.z > 0, D.x, D.y)",
    "is_missing(D.z) OR D.x > 100",
    "cross_above(mean(D.x, 3), mean(D.x, 10))",
    "winsorize(D.x, 20, 2)",
    "ema(D.x, 10)",
    "ema(D.x, 10) > mean(D.x, 10)",
    "bars_since(D.x > lag(D.x, 1))",
    "hold(D.x > mean(D.x, 10), D.y, D.x < mean(D.x, 10))",
    "log(D.x) + sqrt(abs(D.y))",
    "clip(D.z, -1, 1)",
    "realized_vol(pct_change(D.x, 1), 10)",
    "max(D.x, D.y) / min(D.x, D.y)",
    "mean(D.x, $w) > lag(D.x, 1)",
    "zscore(D.z, 5)",
    "sum(D.z, 4)",
]

MINUTE_EXPRS = [
    "M.close > asof(mean(D.x, 5))",
    "lag(M.close, 1) - asof(D.x)",
    "asof(D.z)",
    "mean(M.delta, 5) + asof(zscore(D.x, 10))",
    "M.close > asof(ema(D.x, 5)) AND M.delta > 0",
]

DAILY_FROM_MINUTE = [
    "to_daily(M.delta, 'sum') > 0",
    "to_daily(M.close, 'last') - D.x",
    "lag(to_daily(M.close, 'mean'), 1)",
    "to_daily(M.close, 'max') - to_daily(M.close, 'min')",
    "to_daily(M.close > 2700, 'max')",
    "to_daily(M.close, 'first')",
]


def _reference(g: dsl.Graph, data, daily: Grid, minute: Grid, params=None) -> np.ndarray:
    day_of_bar = list(np.searchsorted(daily.index, minute.trade_date))
    vals = evaluate_reference(
        g, data, n_daily=len(daily), n_minute=len(minute), day_of_bar=day_of_bar, params=params
    )
    root = vals[g.root]
    out_grid = minute if g.frequency is M else daily
    arr = np.array(root if isinstance(root, list) else [root] * len(out_grid), dtype=float)
    return arr[out_grid.start :]


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"missingness differs: {what}")
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=RTOL, atol=1e-12, err_msg=what)
    assert not np.isinf(got).any(), what


@pytest.mark.parametrize("mode", ["numba", "ibis", "auto"])
@pytest.mark.parametrize("text", DAILY_EXPRS + MINUTE_EXPRS + DAILY_FROM_MINUTE)
def test_backends_equal_reference(text: str, mode: str) -> None:
    data = _data()
    daily, minute = grids()
    freq = M if text in MINUTE_EXPRS else None
    g = dsl.check(text, CAT, frequency=freq, params={"w": 7} if "$w" in text else {})
    grid = minute if g.frequency is M else daily
    res = evaluate(
        g, ArraySources(data), grid, backend=mode, minute=minute if text in DAILY_FROM_MINUTE else None
    )
    assert_same(res.values, _reference(g, data, daily, minute), f"{text} [{mode}]")
    if mode == "ibis":
        # every node ran in DuckDB, the recursive ema / bars_since / hold too (SQL closed forms)
        for r in res.nodes:
            assert r.backend is not Backend.NUMBA, (r.op, text)


def test_symbolic_param_one_graph_many_bindings() -> None:
    data = _data()
    daily, minute = grids()
    g = dsl.check("mean(D.x, $w) > lag(D.x, 1)", CAT, params={"w": 5})
    for w in (3, 9, 30):
        for mode in ("numba", "ibis"):
            got = evaluate(g, ArraySources(data), daily, backend=mode, params={"w": w}).values
            assert_same(got, _reference(g, data, daily, minute, params={"w": w}), f"w={w} {mode}")


def test_warmup_independence() -> None:
    """A value at row D does not depend on where loading started (beyond the graph's warm-up)."""
    data = _data()
    text = "zscore(lag(D.x, 1), 20) > 0 AND corr(D.x, D.y, 15) > 0.2"
    g = dsl.check(text, CAT)
    w = dsl.warmup(g)
    daily, _ = grids()
    full = evaluate(g, ArraySources(data), daily, backend="numba").values
    cut = 130  # load from row 130 - w: rows before are not read at all
    sub = {k: v[cut - w :] if k[0] == "D" else v for k, v in data.items()}
    late = Grid(D, daily.index[cut - w :], "daily:test", start=w)
    for mode in ("numba", "ibis"):
        got = evaluate(g, ArraySources(sub), late, backend=mode).values
        assert_same(got, full[cut:], f"warm-up independence {mode}")
    # one row less than the warm-up: the first output row can no longer be computed (a number node:
    # the AND above is Kleene, false AND missing = false, so check its zscore operand)
    gz = dsl.check("zscore(lag(D.x, 1), 20)", CAT)
    wz = dsl.warmup(gz)
    assert wz == 21
    fullz = evaluate(gz, ArraySources(data), daily, backend="numba").values
    # warm-up counts the current row: w - 1 rows before the first output row suffice, w - 2 do not
    for before, computable in ((wz - 1, True), (wz - 2, False)):
        short = Grid(D, daily.index[cut - before :], "daily:test", start=before)
        sub2 = {k: v[cut - before :] if k[0] == "D" else v for k, v in data.items()}
        first = evaluate(gz, ArraySources(sub2), short, backend="numba").values[0]
        assert not np.isnan(fullz[cut])
        assert (abs(first - fullz[cut]) <= 1e-12 * abs(fullz[cut])) if computable else np.isnan(first)


def test_output_rows_start_after_warmup() -> None:
    data = _data()
    daily, _minute = grids(start=30)
    g = dsl.check("mean(D.x, 5)", CAT)
    res = evaluate(g, ArraySources(data), daily)
    assert len(res.values) == N_DAYS - 30 and res.index[0] == daily.index[30]


def test_wrong_grid_and_unbound_param_are_clear() -> None:
    data = _data()
    daily, _minute = grids()
    g = dsl.check("M.close > 0", CAT, frequency=M)
    with pytest.raises(EvaluationError, match="needs a 1m grid"):
        evaluate(g, ArraySources(data), daily)
    g2 = dsl.check("to_daily(M.close, 'last') > 0", CAT)
    with pytest.raises(EvaluationError, match="1m grid of its sessions"):
        evaluate(g2, ArraySources(data), daily)
    g3 = dsl.check("mean(D.x, $w)", CAT, domains={"w": dsl.ParamDomain("int", 2, 50)})
    with pytest.raises(EvaluationError, match=r"\$w"):
        evaluate(g3, ArraySources(data), daily)
    with pytest.raises(EvaluationError, match="backend"):
        evaluate(dsl.check("D.x", CAT), ArraySources(data), daily, backend="spark")


class DictStore(ValueStore):
    """A plain in-memory store (the runtime's parquet store has its own tests)."""

    def __init__(self) -> None:
        self.entries: dict[str, StoredValues] = {}
        self.problems: list[str] = []
        self.saves: list[str] = []

    def load(self, key: CacheKey) -> StoredValues | None:
        return self.entries.get(key.digest)

    def save(self, key: CacheKey, values: StoredValues, *, label: str, feature_id: str | None) -> None:
        self.entries[key.digest] = values
        self.saves.append(label)


def _feature_catalog() -> dsl.Catalog:
    fx = dsl.FeatureDef("fx", "feature", "", dsl.Origin("FEATURE_LIBRARY", "B2"), input_column="D.x")
    fz = dsl.FeatureDef(
        "fz", "feature", "zscore(x, 10)", dsl.Origin("FEATURE_LIBRARY", "B3"), input_column="D.z"
    )
    return dsl.Catalog(columns=CAT.columns, features={"fx": fx, "fz": fz})


def test_cache_hit_skips_the_subgraph_and_versions_invalidate() -> None:
    data = _data()
    daily, _ = grids(start=20)
    cat = _feature_catalog()
    g = dsl.check("mean(fx, 5) > 100 AND fz > 0", cat)
    store = DictStore()
    src = ArraySources(data)
    first = evaluate(g, src, daily, store=store)
    assert {r.op for r in first.nodes if r.stored} == {"feature", "and"}
    assert first.cache_hits == 0
    # features are labelled by name, the root by its expression (not "and": `cache ls` shows labels)
    assert sorted(store.saves) == sorted(["feature fx", "feature fz", "mean(fx, 5) > 100 AND fz > 0"])
    src2 = ArraySources(data)
    again = evaluate(g, src2, daily, store=store)
    assert again.cache_hits == 1 and src2.reads == []  # the root was served: nothing read
    np.testing.assert_array_equal(np.isnan(again.values), np.isnan(first.values))
    np.testing.assert_array_equal(
        again.values[~np.isnan(first.values)], first.values[~np.isnan(first.values)]
    )
    # another expression over the same features: the features come from the cache, sources are not read
    g2 = dsl.check("fz < 0 OR fx < 90", cat)
    src3 = ArraySources(data)
    other = evaluate(g2, src3, daily, store=store)
    assert other.cache_hits == 2 and src3.reads == []
    want = _reference(g2, data, daily, grids()[1])
    assert_same(other.values, want, "served features")
    # a new data version is a different key: everything recomputed
    src4 = ArraySources(data, version="v2")
    fresh = evaluate(g2, src4, daily, store=store)
    assert fresh.cache_hits == 0 and set(src4.reads) == {("D", "x"), ("D", "z")}


def test_cached_range_must_cover_the_request() -> None:
    data = _data()
    daily, _ = grids(start=20)
    cat = _feature_catalog()
    g = dsl.check("fz > 0", cat)
    store = DictStore()
    short = {k: v[:100] for k, v in data.items()}
    evaluate(g, ArraySources(short), Grid(D, daily.index[:100], "daily:test", start=20), store=store)
    src = ArraySources(data)
    res = evaluate(g, src, daily, store=store)
    assert res.cache_hits == 0 and src.reads  # the stored range ends earlier: recomputed, never stale
    assert_same(res.values, _reference(g, data, daily, grids()[1]), "extended range")


def test_sql_is_staged_and_readable() -> None:
    g = dsl.check("zscore(lag(D.x, 1), 20) > 0", CAT)
    sql = ibis_sql(g)
    assert "WITH" in sql and "OVER" in sql and "D.x" in sql
    assert sql.count("LAG(") >= 1


def test_explain_shows_graph_plan_and_sql_in_html() -> None:
    from compiler import explain

    g = dsl.check("zscore(lag(D.x, 1), 20) > 0", CAT)
    html = explain(g, backend="ibis")._repr_html_()
    assert "zscore" in html and "plan" in html and "WITH" in html
    # one plan row per node, each naming its backend
    assert html.count("<tr><td style='text-align:left;font-family:monospace'>") == len(g.nodes)
    assert "ibis" in html
