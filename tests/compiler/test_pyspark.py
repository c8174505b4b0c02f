"""Scale-out: the same compiled graphs on PySpark (local[2]) equal their DuckDB result (issue 9 section 7).

Every expression is checked with `dsl.check` on a small catalog and evaluated by `compiler.evaluate`
with backend="ibis" twice: on a fresh in-memory DuckDB (the default) and on one Spark session through
`ibis.pyspark`. Equal within 1e-9 relative (1e-12 absolute near zero), missingness exact, no ±inf. The
sources are pandas frames served by FrameSources (so placement runs as in production): 400 trading days
with missing runs and a constant stretch, 20 sessions of 30 one-minute bars with minutes without trades.

The oracle is DuckDB running the same translation: tests/compiler/test_evaluate.py checks that DuckDB
result against the independent reference on the same expression shapes; here we only claim portability.
A Spark job group per evaluation proves each one really ran on Spark (not a silent DuckDB fallback).

Spark needs a JVM: the module skips, with the reason, only when no Java runtime is found (the way
runtime/dev.py finds it); a missing pyspark is a failure (`pip install -e .[spark]`), never a skip.
All tests share one session and one xdist group (one JVM per run).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dsl
from compiler.contracts import Backend, Grid
from compiler.evaluate import FrameSources, evaluate

pytestmark = [
    pytest.mark.xdist_group("spark"),  # one JVM per run: every test here on the same xdist worker
    pytest.mark.filterwarnings("ignore:.*PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:.*copy keyword is deprecated"),
    pytest.mark.filterwarnings("ignore:.*future.infer_string"),
]

D, M = dsl.Frequency.DAILY, dsl.Frequency.MINUTE
N_DAYS, N_SESS, BARS = 400, 20, 30
RTOL, ATOL = 1e-9, 1e-12


# -- the Spark session ----------------------------------------------------------------------------------------

LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """local[2], two shuffle partitions, no UI, loopback only, UTC, errors-only logs."""
    from runtime import dev

    java = dev.find_program(dev.JAVA)
    if java is None:
        pytest.skip(
            f"no Java runtime found ({dev.JAVA.why}); install {dev.JAVA.debian_package} "
            f"(make test does it on Debian) or set {dev.JAVA.env_var} to a java executable"
        )
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.fail("pyspark is not installed: pip install -e .[spark]")
    if "JAVA_HOME" not in os.environ:  # the java found may not be the first on PATH (BACKTEST_JAVA)
        os.environ["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    tmp = tmp_path_factory.mktemp("spark")
    log4j = tmp / "log4j2.properties"
    log4j.write_text(LOG4J, encoding="utf-8")
    java_opts = f"-Dlog4j.configurationFile={log4j.as_uri()}"
    session = (
        SparkSession.builder.master("local[2]")
        .appName("backtest-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(tmp / "warehouse"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")  # frames in and out as Arrow
        # tiny data: no adaptive re-planning and no whole-stage code generation (its per-query compile
        # dominates at 400 rows); expression semantics do not depend on either
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.executor.extraJavaOptions", java_opts)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def spark_con(spark: Any) -> Any:
    import ibis

    return ibis.pyspark.connect(spark)


# -- catalog, data, grids ----------------------------------------------------------------------------------------


def col(name: str, freq: dsl.Frequency = D, lag: int = 1, kind: dsl.Kind = dsl.Kind.FLOAT) -> dsl.ColumnDef:
    ds, c = name.split(".")
    return dsl.ColumnDef(name, ds, c, kind, freq, lag, dsl.Origin("DATASETS", "J2"))


CAT = dsl.Catalog(
    columns={
        c.name: c
        for c in (
            col("D.x"),
            col("D.y"),
            col("D.z", lag=3),  # asof(D.z) shifts 3 sessions
            col("M.close", M),
            col("M.volume", M),
        )
    },
    features={},
)


def _days() -> np.ndarray:
    return np.busday_offset(np.datetime64("2023-01-03"), np.arange(N_DAYS), roll="forward").astype(
        "datetime64[D]"
    )


def _grids() -> tuple[Grid, Grid]:
    days = _days()
    daily = Grid(D, days, "daily:spark")
    sess = days[-N_SESS:]
    ts = np.concatenate(
        [
            d.astype("datetime64[ns]")
            + np.timedelta64(14 * 60 + 30, "m")
            + np.arange(BARS) * np.timedelta64(1, "m")
            for d in sess
        ]
    )
    return daily, Grid(M, ts, "1m:spark", trade_date=np.repeat(sess, BARS), daily=daily)


def _frames(seed: int = 20261202) -> dict[str, pd.DataFrame]:
    """Seeded series with missing runs; the frames carry stamps, FrameSources places them on the grids."""
    rng = np.random.default_rng(seed)
    days = _days()
    x = 100 + np.cumsum(rng.normal(0, 1, N_DAYS))
    x[[5, 6, 7, 8, 120, 250, 251]] = np.nan
    y = 0.5 * x + rng.normal(0, 2, N_DAYS)
    y[[3, 60, 61, 62, 300]] = np.nan
    z = np.where(rng.random(N_DAYS) < 0.25, np.nan, rng.normal(0, 1, N_DAYS))
    z[50:58] = np.nan  # a run longer than ffill's limit of 3
    z[200:215] = 1.5  # a constant stretch: zscore / corr over it are missing, exactly
    z[330:340] = 0.0  # zeros: x / z must be missing there, not an error (Spark 4 runs ANSI SQL)
    daily = pd.DataFrame({"date": days, "x": x, "y": y, "z": z})
    _, minute = _grids()
    n = len(minute)
    close = 2700 + np.cumsum(rng.normal(0, 0.5, n))
    close[40:52] = np.nan  # a run of missing prices inside one session
    close[rng.random(n) < 0.01] = np.nan
    volume = rng.integers(1, 50, n).astype(float)
    traded = rng.random(n) > 0.02  # minutes without a stored row: close missing, volume 0 (placement)
    ts = pd.to_datetime(minute.index[traded]).tz_localize("UTC")
    bars = pd.DataFrame({"ts": ts, "close": close[traded], "volume": volume[traded]})
    return {"D": daily, "M": bars}


# -- the expressions -------------------------------------------------------------------------------------------

DAILY = [
    "mean(D.x, 20) - mean(D.x, 5)",
    "std(pct_change(D.x, 1), 20)",
    "zscore(lag(D.x, 1), 60)",
    "zscore(D.z, 10)",
    "diff(D.x, 3) / D.z",
    "rank(D.y, 15)",
    "corr(D.x, D.y, 30)",
    "cov(diff(D.x, 1), diff(D.y, 1), 20)",
    "quantile(D.y, 25, 0.3) - median(D.y, 11)",
    "ts_max(D.x, 10) - ts_min(D.x, 10) + ts_argmax(D.y, 10) - ts_argmin(D.y, 7)",
    "cross_above(mean(D.x, 5), mean(D.x, 20))",
    "if((D.z > 0 AND NOT (D.y < 45)) OR is_missing(D.z), D.x, D.y)",
    "winsorize(pct_change(D.x, 1), 30, 2)",
    "slope(D.x, 12) * realized_vol(pct_change(D.x, 1), 20)",
    "ffill(D.z, 3) + fill(D.z, 0)",
    "ema(D.x, 10) > mean(D.x, 10)",
    "ema(D.y, 3) - D.y",  # L = 100 present values per block: the block join runs on Spark too
    "hold(D.x > mean(D.x, 10), D.y, D.x < mean(D.x, 10))",
    "hold(D.z > 1, D.x > 100, D.z < -1)",  # a true/false value; D.z has missing runs
    "bars_since(D.x > lag(D.x, 1))",
]
MINUTE = [
    "M.close > asof(mean(D.x, 5))",
    "zscore(M.close, 15) + asof(D.z)",
    "rank(M.volume, 20) > 0.8 AND cross_above(M.close, mean(M.close, 15))",
    "ema(M.close, 5) - M.close + bars_since(M.volume > 40)",
]
FROM_MINUTE = [
    "to_daily(M.volume, 'sum')",
    "to_daily(M.close, 'last') - lag(to_daily(M.close, 'mean'), 1)",
    "to_daily(M.close > 2700, 'max')",
]


@pytest.fixture(scope="module")
def world() -> tuple[FrameSources, Grid, Grid]:
    daily, minute = _grids()
    return FrameSources(_frames()), daily, minute


def _evaluate(text: str, world: tuple[FrameSources, Grid, Grid], con: Any = None) -> Any:
    sources, daily, minute = world
    g = dsl.check(text, CAT, frequency=M if text in MINUTE else None)
    grid = minute if g.frequency is M else daily
    return g, evaluate(
        g, sources, grid, backend="ibis", con=con, minute=minute if text in FROM_MINUTE else None
    )


@pytest.mark.parametrize("text", DAILY + MINUTE + FROM_MINUTE)
def test_spark_equals_duckdb(text: str, spark: Any, spark_con: Any, world: Any) -> None:
    _, duck = _evaluate(text, world)
    group = f"expr-{zlib.crc32(text.encode())}"
    spark.sparkContext.setJobGroup(group, text)
    _, sp = _evaluate(text, world, spark_con)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group), f"{text}: no Spark job ran"
    got, want = sp.values, duck.values
    assert got.shape == want.shape
    assert not np.isinf(got).any(), text
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"missingness differs: {text}")
    ok = ~np.isnan(want)
    assert ok.sum() >= 15 and (~ok).any(), f"{text}: a degenerate case (all or almost no values present)"
    np.testing.assert_allclose(got[ok], want[ok], rtol=RTOL, atol=ATOL, err_msg=text)
    # every node ran on Ibis (Spark), the recursive ema / bars_since / hold too (SQL closed forms)
    ops_used = {r.op: r.backend for r in sp.nodes if r.backend is not None}
    for op, b in ops_used.items():
        assert b is Backend.IBIS, (op, b, text)


# -- partitioning: what Spark does with our windows (design/DECISIONS.md, PySpark section) ---------------------


def _plan(spark: Any, spark_con: Any, table: Any) -> str:
    """Spark's executed physical plan of an Ibis table expression (AQE off: the plan is final)."""
    return str(spark.sql(spark_con.compile(table))._jdf.queryExecution().executedPlan().toString())


def test_windows_need_the_whole_series_in_one_partition_to_daily_does_not(spark: Any, spark_con: Any) -> None:
    """Our windows are row-based across sessions (DSL.md), so they carry no PARTITION BY: Spark must move
    the whole series into one partition (Exchange SinglePartition) and sort it there. A session-partitioned
    variant (group_by trade_date, a different semantics: windows restart each session) and to_daily's
    group-by shuffle by trade date instead (Exchange hashpartitioning), i.e. they spread over executors."""
    import ibis

    from compiler.ibis_backend import ALIGNMENTS, Step, stage

    n = 600
    frame = pd.DataFrame(
        {
            "_row": np.arange(n, dtype=np.int64),
            "trade_date": np.repeat(_days()[-N_SESS:], BARS).astype("datetime64[s]"),
            "x": np.random.default_rng(3).normal(size=n),
        }
    )
    spark.createDataFrame(frame).withColumn(
        "trade_date", spark_col("trade_date").cast("date")
    ).createOrReplaceTempView("bars_plan")
    spark.createDataFrame(pd.DataFrame({"date": _days().astype("datetime64[s]")})).withColumn(
        "date", spark_col("date").cast("date")
    ).createOrReplaceTempView("days_plan")
    bars, days = spark_con.table("bars_plan"), spark_con.table("days_plan")
    steps = [Step("l", "lag", ("x",)), Step("z", "zscore", ("l",), {"n": 30})]
    across = _plan(spark, spark_con, stage(bars, steps))
    assert "SinglePartition" in across and "hashpartitioning" not in across
    per_session = _plan(spark, spark_con, stage(bars, steps, group_by=("trade_date",)))
    assert "hashpartitioning(trade_date" in per_session and "SinglePartition" not in per_session
    daily = _plan(spark, spark_con, ALIGNMENTS["to_daily"](bars, days, "x", how="sum", out="d"))
    assert "hashpartitioning(trade_date" in daily
    # and the values agree with DuckDB on the same staged expression (the plan test is not vacuous)
    got = spark_con.to_pyarrow(stage(bars, steps).order_by("_row")).column("z").to_numpy(zero_copy_only=False)
    duck = ibis.duckdb.connect()
    want = duck.to_pyarrow(stage(ibis.memtable(frame), steps).order_by("_row")).column("z")
    want = want.to_numpy(zero_copy_only=False)
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=RTOL)


def spark_col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(name)
