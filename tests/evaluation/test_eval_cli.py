"""Issue 9 section 5 contracts through the real console entry point (subprocesses, as tests/foundation do).

`backtest eval` writes one row per grid row (`date` | `ts`, `value`, missing as null) whose values equal
an independent pandas computation on the canonical parquet read here with pyarrow; every backend gives
the same file; `--params` binds `$w`; bad inputs exit 1 with a message and no traceback.
`features build` twice (second run all cached), `features show --tail`, `cache ls | clear`, and
`compile --format sql | plan`. One demo project per module (building it is slow; see demo_workspace.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot

from tests.conftest import CliResult, run_cli
from tests.evaluation.demo_workspace import Demo, build_demo, canonical_daily

START, END = "2018-06-01", "2018-12-31"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("eval_cli") / "proj")


def cli(demo: Demo, *args: str) -> CliResult:
    return run_cli(list(args), demo.root)


def ok(r: CliResult) -> CliResult:
    assert r.code == 0, r.err
    assert "Traceback" not in r.out + r.err
    return r


def spx_mean20(demo: Demo) -> pd.Series:
    """pandas rolling(20).mean() of the canonical SPX close (latest vintage per date), START..END."""
    dates, close = canonical_daily(demo.paths, "daily_spx", "close")
    s = pd.Series(close, index=pd.DatetimeIndex(dates)).sort_index()
    m = s.rolling(20).mean()
    return m[START:END]


@pytest.fixture(scope="module")
def mean_parquet(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("eval_out") / "m.parquet"
    ok(cli(demo, "eval", "mean(SPX.close, 20)", "--start", START, "--end", END, "--out", str(out)))
    return pq.read_table(out).to_pandas()


def test_eval_parquet_equals_pandas_rolling_mean(demo: Demo, mean_parquet: pd.DataFrame) -> None:
    df = mean_parquet
    assert list(df.columns) == ["date", "value"]
    want = spx_mean20(demo)
    # SPX trades on every NYSE day of the range: the grid rows are the canonical dates
    assert [pd.Timestamp(d) for d in df["date"]] == list(want.index)
    assert df["value"].isna().sum() == 0
    np.testing.assert_allclose(df["value"].to_numpy(float), want.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize(
    ("backend", "text", "params"),
    [("ibis", "mean(SPX.close, 20)", None), ("numba", "mean(SPX.close, $w)", '{"w": 20}')],
)
def test_eval_backends_and_params_write_the_same_values(
    demo: Demo, mean_parquet: pd.DataFrame, backend: str, text: str, params: str | None, tmp_path: Path
) -> None:
    """--backend ibis / numba give the auto run's file; --params binds $w (one subprocess each: CLI starts
    are slow on a loaded machine)."""
    out = tmp_path / f"{backend}.parquet"
    args = [
        "eval",
        text,
        "--start",
        START,
        "--end",
        END,
        "--out",
        str(out),
        "--backend",
        backend,
        "--no-cache",
    ]
    r = ok(cli(demo, *args, *(["--params", params] if params else [])))
    assert f"backend {backend}" in r.out
    got = pq.read_table(out).to_pandas()
    assert list(got["date"]) == list(mean_parquet["date"])
    np.testing.assert_allclose(
        got["value"].to_numpy(float), mean_parquet["value"].to_numpy(float), rtol=1e-12
    )
    np.testing.assert_allclose(got["value"].to_numpy(float), spx_mean20(demo).to_numpy(), rtol=1e-9)


def test_eval_csv_has_nulls_where_missing(demo: Demo, tmp_path: Path) -> None:
    """Monthly CREDIT on the daily grid is sparse: one value per month-end stamp, null elsewhere."""
    out = tmp_path / "credit.csv"
    ok(cli(demo, "eval", "CREDIT.baa", "--start", START, "--end", END, "--out", str(out)))
    df = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(df.columns) == ["date", "value"]
    present = df[df["value"] != ""]
    dates, baa = canonical_daily(demo.paths, "daily_credit", "baa")
    inside = (dates >= np.datetime64(START)) & (dates <= np.datetime64(END))
    # one stamp per month Jun..Dec 2018, each on the month's last business day (a trading day: its own row)
    assert inside.sum() == 7 and len(df) > 100
    assert list(present["date"]) == [str(d) for d in dates[inside]]
    np.testing.assert_allclose(present["value"].astype(float).to_numpy(), baa[inside], rtol=1e-12)


BAD = [
    (["eval", "mean(SPX.close, 20"], r"\^"),
    (["eval", "mean(SPX.close, 20)", "--instrument", "FOO"], r"unknown instrument 'FOO'.*--instrument"),
    (["eval", "mean(SPX.close, 20)", "--start", "2018-12-01", "--end", "2018-12-02"], r"no trading day"),
    (["eval", "mean(SPX.close, $w)", "--params", "{w: 20}"], r"--params .* is not JSON"),
    (["eval", "mean(SPX.close, 20)", "--backend", "spark"], r"--backend 'spark'"),
    (["eval", "mean(SPX.close, 20)", "--out", "x.txt"], r"\.parquet or \.csv"),
    (["eval", "es_close", "--frequency", "daily"], r"1m"),
    (["eval", "mean(SPX.close, $w)"], r"unknown parameter \$w.*fix: pass it: --params '\{\"w\": <value>\}'"),
    (
        ["eval", "mean(SPX.close, 20)", "--start", "2030-01-01"],
        r"after the last date .*--start on or before \d{4}-",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_eval_bad_inputs_exit_1_with_a_message(demo: Demo, args: list[str], message: str) -> None:
    r = cli(demo, *args)
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.out + r.err
    assert re.search(message, " ".join(r.err.split()), re.S), r.err
    assert not (demo.root / "x.txt").exists()


def test_features_build_twice_show_and_cache(demo: Demo) -> None:
    first = ok(cli(demo, "features", "build", "--start", START))
    m = re.search(r"(\d+) feature\(s\): (\d+) computed, (\d+) from the cache", first.out)
    assert m, first.out
    n = int(m.group(1))
    assert n == 18 and int(m.group(2)) == n  # 12 features + 4 engineered + 2 gates, a fresh cache
    again = ok(cli(demo, "features", "build", "--start", START))
    assert f"{n} feature(s): 0 computed, {n} from the cache" in again.out, again.out
    assert "computed" not in again.out.split("features")[1].split("feature(s)")[0]  # every table row: cached

    # features show vix_high --tail 3: the last three VIX dates, the one before not shown
    dates, close = canonical_daily(demo.paths, "daily_vix", "close")
    dates, close = dates[~np.isnan(close)], close[~np.isnan(close)]  # 2019-01-01 is a blank holiday row
    shown = ok(cli(demo, "features", "show", "vix_high", "--tail", "3"))
    for d in dates[-3:]:
        assert str(d) in shown.out
    assert str(dates[-4]) not in shown.out
    # vix_high = VIX close of the previous day > 25: the table's last value is that day's comparison
    last_line = next(ln for ln in shown.out.splitlines() if str(dates[-1]) in ln)
    assert last_line.split("│")[2].strip() == ("1" if close[-2] > 25 else "0"), last_line

    listed = ok(cli(demo, "cache", "ls"))
    for fid in ("vix_high", "cta_flow", "calm_vol", "es_delta_z"):
        assert fid in listed.out
    entries = int(re.search(r"(\d+) entries", listed.out).group(1))  # type: ignore[union-attr]
    assert entries >= n
    cleared = ok(cli(demo, "cache", "clear"))
    assert f"removed {entries} cache entries" in cleared.out
    assert "the feature cache is empty" in ok(cli(demo, "cache", "ls")).out


def test_compile_sql_parses_and_plan_lists_every_node(demo: Demo) -> None:
    text = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"
    sql = ok(cli(demo, "compile", text, "--format", "sql")).out
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert tree is not None and tree.find(sqlglot.exp.Window) is not None
    plan = ok(cli(demo, "compile", text, "--format", "plan", "--backend", "ibis")).out
    # one table row per node, each with a backend: the graph's nodes (compile --format json)
    g = json.loads(ok(cli(demo, "compile", text, "--format", "json")).out)
    cells = [[c.strip() for c in ln.strip("│").split("│")] for ln in plan.splitlines() if ln.startswith("│")]
    rows = [c for c in cells if c[1]]  # a wrapped reason continues on lines with an empty op cell
    assert len(rows) == len(g["nodes"]) > 10
    assert sorted(r[1] for r in rows) == sorted(n["op"] for n in g["nodes"])
    assert all(r[2] in ("ibis", "numba") for r in rows), rows


def test_compiled_sql_runs_in_duckdb_and_equals_the_reference(demo: Demo) -> None:
    """The SQL `compile --format sql` prints is runnable: on a `daily` table of the source columns placed on
    the grid (named as its header comment says), DuckDB's result equals the graph reference."""
    import duckdb

    from runtime.evaluation.run import EvalOptions, grids_for
    from runtime.evaluation.sources import WorkspaceSources
    from runtime.graphs import compile_expression
    from tests.evaluation.test_demo_expressions import assert_same, reference_values

    text = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"
    sql = ok(cli(demo, "compile", text, "--format", "sql")).out
    header = re.search(r"^-- source columns: (.*)$", sql, re.M)
    assert header, sql[:500]
    names = dict(re.findall(r"(\w+) = (\w+\.\w+)", header.group(1)))
    assert sorted(names.values()) == ["CTA.cta_flow", "VIX.close"]
    g = compile_expression(text, demo.snapshot, execution=None, data_root=demo.paths.data_root)
    opts = EvalOptions(start=pd.Timestamp(START).date(), end=pd.Timestamp(END).date(), cache=False)
    grid, _, _ = grids_for(g, demo.snapshot, demo.paths, demo.reg, opts)
    src = WorkspaceSources(demo.snapshot, demo.paths, demo.reg)
    daily = pd.DataFrame({"_row": np.arange(len(grid), dtype=np.int64), "date": grid.index})
    for col, qual in names.items():
        daily[col] = src.read(*qual.split("."), grid)
    con = duckdb.connect()
    con.register("daily", daily)
    got = con.execute(sql).df()
    con.close()
    values = got["value"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[grid.start :]
    _, want = reference_values(demo, g, opts)
    assert_same(values, want, "compiled SQL in DuckDB")
