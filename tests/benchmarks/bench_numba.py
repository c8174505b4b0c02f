"""Numba kernels on 3M rows vs pandas (same run, same data), and the JIT cost of the whole kernel set.

Rolling sum / mean / var / std / zscore / rank / ema / corr / cov over a 60-row window on 3,000,000 rows
of a random walk, warm (compiled) kernels against the pandas expression a user would write for the same
thing (pandas `rolling(n)` is strict like ours; its ewm seeds differently but does the same work).
Target: >= 4x pandas (ratio <= 0.25) on the O(n) kernels; rank is O(n·w) in both. Best of >= 5 calls
each, ours and pandas alternating per case, so a burst of load on the shared machine hits both; the
note adds the thread-CPU-time ratio, which load distorts far less (see `_alternate`). The timed
kernels must have been compiled for float64 C-contiguous arrays only (checked after the run): a stray
int or strided specialisation would time other machine code than the pipeline runs. JIT: a fresh Python
process that imports the backend and calls every kernel once, with an empty on-disk cache (compiles
everything) vs with the cache the first process wrote (loads machine code).

The same graphs (mean / std / zscore / rank / ema / corr over 60 rows) are also timed against the DuckDB SQL
our Ibis backend emits for them (`compiler.evaluate.ibis_sql`, run straight on DuckDB over the same 3M
rows, best of 2): the other backend a graph can run on, so the planner's "windows on Numba" default rests
on a figure of this run. The values of both sides are compared (1e-9) and the note says so.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks.run import BenchRow

ROWS = 3_000_000
WINDOW = 60
SEED = 20261202
REPEAT = 5
BUDGET_S = 2.0
Timing = tuple[float, float]  # (wall, thread CPU) seconds
ROOT = Path(__file__).resolve().parents[2]


def warm_all() -> dict[str, float]:
    """Import the backend and run every registered kernel once on small arrays; seconds per phase."""
    t0 = time.perf_counter()
    from compiler.numba_backend import KERNELS, call
    from dsl import OPERATORS
    from dsl.contracts import ArgRole

    t1 = time.perf_counter()
    x = np.linspace(1.0, 2.0, 16)
    override = {
        "realized_vol": {"periods_per_year": 252.0},
        "availability": {"lag": 1, "mode": "set"},
        "quantile": {"n": 3, "q": 0.5},
        "winsorize": {"n": 3, "k": 2.0},
    }
    for name in KERNELS:
        spec = OPERATORS[name]
        operands = [x for a in spec.args if a.role.is_operand]
        opts = {a.name: 3 for a in spec.args if a.role in (ArgRole.WINDOW, ArgRole.LAG)}
        call(name, *operands, **(opts | override.get(name, {})))
    t2 = time.perf_counter()
    return {"import": t1 - t0, "first_calls": t2 - t1, "kernels": float(len(KERNELS))}


def _fresh_process(cache_dir: str) -> dict[str, float]:
    code = "import json; from tests.benchmarks.bench_numba import warm_all; print(json.dumps(warm_all()))"
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def _load_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return f"{os.cpu_count()} CPUs" + ("" if load is None else f", load avg {load:.1f} (shared machine)")


def _alternate(ours: Callable[[], object], theirs: Callable[[], object]) -> tuple[Timing, Timing]:
    """Best wall and best thread-CPU seconds of each side, calls alternating (a load burst hits both).

    At least REPEAT rounds, more while under BUDGET_S seconds. Wall time is the figure; thread CPU time
    (the same thing on an idle machine, both sides being single-threaded) goes in the note because under
    load a 6 ms call is rarely left unpreempted, which inflates a short kernel's wall time far more than a
    60 ms pandas call's and makes the wall ratio a measure of the scheduler.
    """
    best = [[math.inf, math.inf], [math.inf, math.inf]]
    start = time.perf_counter()
    rounds = 0
    while rounds < REPEAT or (time.perf_counter() - start < BUDGET_S and rounds < 4 * REPEAT):
        for side, fn in enumerate((ours, theirs)):
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            c1, w1 = time.thread_time(), time.perf_counter()
            best[side][0] = min(best[side][0], w1 - w0)
            best[side][1] = min(best[side][1], c1 - c0)
        rounds += 1
    return (best[0][0], best[0][1]), (best[1][0], best[1][1])


def _check_specialisations(names: list[str]) -> None:
    """Every timed kernel was compiled for float64 C-contiguous operands and int/float options only."""
    from numba import types

    from compiler.numba_backend import KERNELS

    f64 = types.Array(types.float64, 1, "C")
    for name in names:
        for sig in KERNELS[name].signatures:
            arrays = [t for t in sig if isinstance(t, types.Array)]
            if any(t != f64 for t in arrays) or not arrays:
                raise AssertionError(f"bench_numba: kernel {name} was compiled for {sig}, not float64[::1]")


def run() -> list[BenchRow]:
    import pandas as pd

    from compiler.numba_backend import call

    rng = np.random.default_rng(SEED)
    x = 100.0 + np.cumsum(rng.normal(size=ROWS))
    y = 0.5 * x + rng.normal(size=ROWS)
    sx, sy = pd.Series(x), pd.Series(y)
    n = WINDOW

    def pd_zscore() -> object:
        r = sx.rolling(n)
        return (sx - r.mean()) / r.std()

    cases = [
        ("sum", lambda: call("sum", x, n=n), lambda: sx.rolling(n).sum(), True),
        ("mean", lambda: call("mean", x, n=n), lambda: sx.rolling(n).mean(), True),
        ("var", lambda: call("var", x, n=n), lambda: sx.rolling(n).var(), True),
        ("std", lambda: call("std", x, n=n), lambda: sx.rolling(n).std(), True),
        ("zscore", lambda: call("zscore", x, n=n), pd_zscore, True),
        ("rank", lambda: call("rank", x, n=n), lambda: sx.rolling(n).rank(pct=True), False),
        ("ema", lambda: call("ema", x, span=n), lambda: sx.ewm(span=n, adjust=False).mean(), True),
        ("corr", lambda: call("corr", x, y, n=n), lambda: sx.rolling(n).corr(sy), True),
        ("cov", lambda: call("cov", x, y, n=n), lambda: sx.rolling(n).cov(sy), True),
    ]
    rows: list[BenchRow] = []
    note = _load_note()
    for name, ours, theirs, linear in cases:
        ours()  # compile (or load from the on-disk cache) outside the timing
        theirs()
        (t_ours, c_ours), (t_pd, c_pd) = _alternate(ours, theirs)
        rows.append(
            BenchRow(
                "numba",
                f"{name}({'span' if name == 'ema' else 'n'}={n}) on {ROWS:,} rows, warm",
                t_ours * 1000.0,
                "ms",
                "pandas",
                t_pd * 1000.0,
                "<= 0.25 (>= 4x pandas)" if linear else "O(n·w)",
                f"{note}; thread CPU {c_ours * 1000:.1f} vs {c_pd * 1000:.1f} ms, ratio {c_ours / c_pd:.3f}",
            )
        )
    _check_specialisations([c[0] for c in cases])
    rows += sql_rows(x, y)
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        cold = _fresh_process(cache)
        warm = _fresh_process(cache)
    k = int(cold["kernels"])
    rows.append(
        BenchRow(
            "numba",
            f"first call of all {k} kernels, fresh process, on-disk cache",
            warm["first_calls"],
            "s",
            "same, empty cache (JIT)",
            cold["first_calls"],
            "",
            f"import of the backend: {warm['import']:.2f} s cached, {cold['import']:.2f} s cold",
        )
    )
    return rows


SQL_RANK_ROWS = 300_000
SQL_CASES = {
    "mean": "mean(D.x, 60)",
    "std": "std(D.x, 60)",
    "zscore": "zscore(D.x, 60)",
    "rank": "rank(D.x, 60)",
    "ema": "ema(D.x, 60)",
    "corr": "corr(D.x, D.y, 60)",
}


def _run_sql(con: Any, sql: str) -> np.ndarray:
    """The root's values in grid order (the query's last column)."""
    t = con.sql(sql).to_arrow_table().sort_by("_row")
    return np.asarray(t.column(t.column_names[-1]).to_numpy(zero_copy_only=False), dtype=float)


def sql_rows(x: np.ndarray, y: np.ndarray) -> list[BenchRow]:
    """Each SQL_CASES graph: Numba kernel (through `call`) vs our Ibis SQL of the graph on DuckDB."""
    import duckdb
    import pyarrow as pa

    import dsl
    from compiler.evaluate import _col, ibis_sql
    from compiler.numba_backend import call
    from tests.benchmarks.run import best_of

    cols = {
        f"D.{c}": dsl.ColumnDef(
            f"D.{c}", "D", c, dsl.Kind.FLOAT, dsl.Frequency.DAILY, 0, dsl.Origin("DATASETS", "J2")
        )
        for c in ("x", "y")
    }
    cat = dsl.Catalog(columns=cols, features={})
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    rows: list[BenchRow] = []
    note = _load_note()
    for name, text in SQL_CASES.items():
        # rank's SQL collects each 60-row window as a list (~35 µs a row here): 300k rows, both sides
        rows_n = SQL_RANK_ROWS if name == "rank" else len(x)
        xs, ys = x[:rows_n], y[:rows_n]
        days = (np.datetime64("1970-01-01", "D") + np.arange(rows_n)).astype("datetime64[D]")
        g = dsl.check(text, cat)
        table = {"_row": np.arange(rows_n, dtype=np.int64), "date": pa.array(days)}
        for n in g.nodes:
            if n.op == "column":
                table[_col(n.hash)] = xs if dict(n.args)["column"] == "x" else ys
        con.register("daily", pa.table(table))
        sql = ibis_sql(g)
        operands = (xs, ys) if name == "corr" else (xs,)
        opts = {"span": WINDOW} if name == "ema" else {"n": WINDOW}

        ours = functools.partial(call, name, *operands, **opts)
        want = ours()
        t_ours = best_of(ours, repeat=10)
        t_sql = math.inf
        for _ in range(2):  # best of 2, keeping the values of the last run for the comparison
            t0 = time.perf_counter()
            v = _run_sql(con, sql)
            t_sql = min(t_sql, time.perf_counter() - t0)
        agree = bool(np.array_equal(np.isnan(v), np.isnan(want))) and bool(
            np.allclose(v[~np.isnan(v)], want[~np.isnan(want)], rtol=1e-9, atol=1e-12)
        )
        rows.append(
            BenchRow(
                "numba",
                f"{text.replace('D.', '')} on {rows_n:,} rows, Numba kernel vs the DuckDB SQL of the same graph",
                t_ours * 1000.0,
                "ms",
                "DuckDB: our Ibis SQL of the graph (ibis_sql)",
                t_sql * 1000.0,
                "",
                f"{note}; values agree (1e-9): {agree}",
            )
        )
        con.unregister("daily")
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for r in run():
        print(r)
