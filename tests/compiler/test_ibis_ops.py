"""Ibis/DuckDB translations == the independent reference (tests/compiler/reference.py), operator by operator.

The random series, per-operator cases, comparison floors and the comparison itself are the ones the Numba
kernels are tested with (imported from test_numba_kernels). Each hypothesis example draws one table and
runs every translated operator in ONE staged DuckDB query (one column per operator): source NaN goes in
as float NaN and must be normalised to NULL; NULL comes back as missing; no NaN or ±inf may come back.
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlglot
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from compiler.ibis_backend import (
    EXCEPTIONS,
    TRANSLATIONS,
    WINDOWED,
    Step,
    normalize_sources,
    stage,
    stages_of,
    to_sql,
)
from dsl import OPERATORS
from tests.compiler.reference import REFERENCE
from tests.compiler.test_numba_kernels import (
    CASES,
    EXTREMES,
    REGIMES,
    SETTINGS,
    assert_matches,
    floor_of,
    make_bool,
    make_series,
)

OPS = sorted(set(CASES) & set(TRANSLATIONS))
# one staged DuckDB query per example (every operator at once); no shrinking: each shrink step is a
# full query, and the failure message already names every failing operator with its first bad rows
IBIS_SETTINGS = settings(SETTINGS, max_examples=30, phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(scope="module")
def con() -> Any:
    return ibis.duckdb.connect()


def _table(cols: dict[str, np.ndarray], rows: int) -> Any:
    """An in-memory table ordered by `_row`; float columns keep NaN (the normaliser's job), true/false
    columns are arrow booleans with NULL."""
    arrays: dict[str, pa.Array] = {"_row": pa.array(np.arange(rows, dtype=np.int64))}
    for name, v in cols.items():
        if name.startswith("b_"):
            arrays[name] = pa.array([None if math.isnan(u) else bool(u) for u in v], type=pa.bool_())
        else:
            arrays[name] = pa.array(v, type=pa.float64())  # NaN stays NaN here, on purpose
    return ibis.memtable(pa.table(arrays))


def _run(con: Any, cols: dict[str, np.ndarray], rows: int, steps: list[Step]) -> dict[str, np.ndarray]:
    """Stage `steps` over the table, execute once, return each step as float64 (NULL = NaN, bool 1/0)."""
    t = _table(cols, rows)
    t = normalize_sources(t, [c for c in cols if not c.startswith("b_")])
    staged = stage(t, steps).order_by("_row")  # SQL promises no row order (ema's block partitions)
    res = con.to_pyarrow(staged)
    assert res.column("_row").to_pylist() == list(range(rows)), "rows lost or duplicated"
    out = {}
    for s in steps:
        col = res.column(s.name)
        if pa.types.is_floating(col.type):
            assert not pc.any(pc.is_nan(col)).as_py(), f"{s.op}: NaN (not NULL) in the output"
            assert not pc.any(pc.is_inf(col)).as_py(), f"{s.op}: ±inf in the output"
        out[s.name] = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return out


def _draw_case(data: st.DataObject, op: str, rng: np.random.Generator, rows: int, missing: str):
    """Operands (by the Case's kinds, as in test_numba_kernels.draw_operands) and options for one op."""
    case = CASES[op]
    cols: dict[str, np.ndarray] = {}
    inputs: list[Any] = []
    full: list[np.ndarray] = []
    for j, kind in enumerate(case.operands):
        if kind == "bool":
            name, v = f"b_{op}_{j}", make_bool(rng, rows, missing)
        elif kind == "expo":
            v = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1.5, -0.5, 400.0], size=rows)
            v[rng.random(rows) < 0.1] = np.nan
            name = f"x_{op}_{j}"
        elif kind == "num|scalar" and data.draw(st.booleans(), label=f"{op} scalar"):
            s = data.draw(st.sampled_from([0.0, 1.0, -2.5, 1e8, math.nan]), label=f"{op} scalar value")
            inputs.append(s)
            full.append(np.full(rows, s))
            continue
        else:
            regime = data.draw(st.sampled_from(REGIMES), label=f"{op} regime")
            name, v = f"x_{op}_{j}", make_series(rng, rows, regime, missing)
        cols[name] = v
        inputs.append(name)
        full.append(v)
    return cols, Step(f"out_{op}", op, tuple(inputs), case.options(data)), full


@IBIS_SETTINGS
@given(data=st.data())
def test_every_translation_equals_reference(con: Any, data: st.DataObject) -> None:
    rows = data.draw(st.integers(0, 70), label="rows")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    missing = data.draw(st.sampled_from(["none", "runs", "sparse", "all"]), label="missing")
    cols: dict[str, np.ndarray] = {}
    steps, operands = [], {}
    for op in OPS:
        c, step, full = _draw_case(data, op, rng, rows, missing)
        cols |= c
        steps.append(step)
        operands[op] = full
    got = _run(con, cols, rows, steps)
    failures = []
    for op, step in zip(OPS, steps, strict=True):
        case, opts = CASES[op], dict(step.options)
        full = operands[op]
        ref = np.array(
            REFERENCE[op](*(list(map(float, o)) for o in full), **case.to_reference(opts)), dtype=float
        )
        ref = ref.reshape(rows)
        try:
            assert_matches(op, got[step.name], ref, case.exact, floor_of(op, full, opts, ref))
        except AssertionError as e:
            failures.append(f"{op}{opts} inputs={step.inputs}: {e}")
    assert not failures, f"rows={rows} missing={missing}\n" + "\n".join(failures)


# -- completeness, staging and SQL structure ------------------------------------------------------------------------


def test_every_operator_has_a_translation_or_a_documented_exception() -> None:
    declared = set(OPERATORS)
    assert set(TRANSLATIONS) | set(EXCEPTIONS) == declared, sorted(
        declared - set(TRANSLATIONS) - set(EXCEPTIONS)
    )
    assert not set(TRANSLATIONS) & set(EXCEPTIONS)
    assert all(len(why) > 20 for why in EXCEPTIONS.values())
    # the leaves and the grid joins only: the recursive operators have SQL closed forms (recursive.py)
    assert set(EXCEPTIONS) == {"column", "const", "param", "asof", "to_daily"}
    assert {"ema", "bars_since", "hold"} <= set(TRANSLATIONS) & WINDOWED
    assert set(OPS) == set(TRANSLATIONS)  # every translation is property-tested above
    from compiler.ibis_backend import ALIGNMENTS

    assert set(ALIGNMENTS) == {"asof", "to_daily"}  # the grid joins, tested at the end of this file
    assert set(TRANSLATIONS) >= WINDOWED and {"lag", "mean", "zscore", "rank"} <= WINDOWED


def _ctes(sql: str) -> list[exp.CTE]:
    return list(sqlglot.parse_one(sql, read="duckdb").find_all(exp.CTE))


def test_zscore_of_lag_is_staged_and_guarded() -> None:
    """zscore(lag(x, 1), 60): lag materialised in its own stage before any window reads it; K per block
    from a GROUP BY joined back (no window sort for it); the strict rule without a COUNT (n rows exist:
    LAG(_row, 59) IS NOT NULL; a missing row poisons the sums with NaN); literal frames only (portable),
    no block partition; no window nests; no native variance."""
    t = normalize_sources(ibis.table({"_row": "int64", "x": "float64"}, name="bars"), ["x"])
    staged = stage(t, [Step("l", "lag", ("x",), {"k": 1}), Step("z", "zscore", ("l",), {"n": 60})])
    sql = to_sql(staged)
    text = [c.sql(dialect="duckdb").upper() for c in _ctes(sql)]
    # CTEs: the normalised source, lag, the operand as a column, the K table (GROUP BY), its LEAD, the
    # join, the even/odd block sums; then the final SELECT with zscore's formula
    assert len(text) == 7 and stages_of(staged) == 8
    lag_cte = next(i for i, c in enumerate(text) if "LAG(" in c)
    group_cte = next(i for i, c in enumerate(text) if "GROUP BY" in c)
    join_cte = next(i for i, c in enumerate(text) if " JOIN " in c)
    sums_cte = next(i for i, c in enumerate(text) if "SUM(" in c)
    assert lag_cte < group_cte < join_cte < sums_cte  # lag is a column before anything reads it
    flat = " ".join(sql.upper().split())
    assert '"_ROW", 59) OVER' in flat and "IS NULL" in flat  # n rows exist
    assert "CAST('NAN' AS DOUBLE)" in flat  # a missing value poisons the sums
    assert "ROWS BETWEEN 59 PRECEDING AND CURRENT ROW" in flat
    assert "PARTITION BY" not in flat and "COUNT(" not in flat
    windows = list(sqlglot.parse_one(sql, read="duckdb").find_all(exp.Window))
    assert len([w for w in windows if isinstance(w.this, exp.Sum)]) == 4  # Σd, Σd² for E and O
    for w in windows:
        inner = [x for x in w.this.find_all(exp.Window) if x is not w]
        assert not inner, f"nested window function: {w.sql()}"
        spec = w.args.get("spec")
        for side in ("start", "end"):
            bound = spec.args.get(side) if spec is not None else None
            assert bound is None or isinstance(bound, (str, exp.Literal)), (
                f"per-row frame bound (not portable): {w.sql()}"
            )
    assert "stddev_samp" not in sql.lower() and "var_samp" not in sql.lower()  # the stable block form
    again = stage(t, [Step("l", "lag", ("x",), {"k": 1}), Step("z", "zscore", ("l",), {"n": 60})])
    assert to_sql(again) == sql  # deterministic: the same graph prints the same SQL (compile --format sql)


def test_nested_window_expression_runs_on_duckdb(con: Any) -> None:
    """mean(zscore(lag(x, 1), 5), 3) compiles to valid SQL and equals the reference, composed."""
    rng = np.random.default_rng(42)
    x = 100 + np.cumsum(rng.normal(size=200))
    x[[17, 90, 91]] = np.nan
    steps = [
        Step("l", "lag", ("x",), {"k": 1}),
        Step("z", "zscore", ("l",), {"n": 5}),
        Step("m", "mean", ("z",), {"n": 3}),
        Step("g", "gt", ("m", 0.0)),
        Step("d", "diff", ("m",), {"n": 2}),
    ]
    got = _run(con, {"x": x}, len(x), steps)
    lagged = REFERENCE["lag"](list(x), 1)
    z = REFERENCE["zscore"](lagged, 5)
    m = np.array(REFERENCE["mean"](z, 3))
    assert np.isfinite(m).sum() > 150
    assert_matches("mean", got["m"], m, False, np.ones(len(x)))
    assert_matches("gt", got["g"], np.array(REFERENCE["gt"](list(m), [0.0] * len(x))), True, np.zeros(len(x)))
    assert_matches("diff", got["d"], np.array(REFERENCE["diff"](list(m), 2)), False, np.ones(len(x)))


def test_elementwise_chains_add_no_stage() -> None:
    t = ibis.table({"_row": "int64", "x": "float64", "y": "float64"}, name="t")
    chain = stage(
        t, [Step("a", "add", ("x", "y")), Step("b", "mul", ("a", 2.0)), Step("c", "gt", ("b", "x"))]
    )
    assert stages_of(chain) == 1  # the source and one projection (no CTE per elementwise step)


def test_kleene_logic_is_sql_logic(con: Any) -> None:
    """The full 3x3 truth tables (SQL AND / OR / NOT are Kleene: checked, not assumed)."""
    n = float("nan")
    a = np.array([1, 1, 1, 0, 0, 0, n, n, n], dtype=float)
    b = np.array([1, 0, n, 1, 0, n, 1, 0, n], dtype=float)
    got = _run(
        con,
        {"b_a": a, "b_b": b},
        9,
        [Step("and", "and", ("b_a", "b_b")), Step("or", "or", ("b_a", "b_b")), Step("not", "not", ("b_a",))],
    )
    np.testing.assert_array_equal(got["and"], [1, 0, n, 0, 0, 0, n, 0, n])
    np.testing.assert_array_equal(got["or"], [1, 1, 1, 1, 0, n, 1, n, n])
    np.testing.assert_array_equal(got["not"], [0, 0, 0, 1, 1, 1, n, n, n])


@pytest.mark.parametrize("op", OPS)
def test_no_nan_or_inf_on_extreme_values(con: Any, op: str) -> None:
    """1e300², e^710, 10^400, 1e300 / 1e-300, ln 0, sqrt(−1): NULL, never ±inf or NaN."""
    case = CASES[op]
    rng = np.random.default_rng(1)
    cols, inputs = {}, []
    for j, kind in enumerate(case.operands):
        if kind == "bool":
            cols[f"b_{j}"] = make_bool(rng, 12, "runs")
            inputs.append(f"b_{j}")
        elif kind == "expo":
            cols[f"x_{j}"] = rng.choice([-1.0, 0.5, 400.0, -400.0], 12)
            inputs.append(f"x_{j}")
        else:
            cols[f"x_{j}"] = rng.permutation(EXTREMES)
            inputs.append(f"x_{j}")
    opts = {"n": 3} if "n" in {a.name for a in OPERATORS[op].args} else {}
    opts |= {
        "quantile": {"q": 0.3},
        "winsorize": {"k": 2.0},
        "realized_vol": {"periods_per_year": 252.0},
        "availability": {"lag": 1, "mode": "set"},
        "ema": {"span": 3},
    }.get(op, {})
    _run(con, cols, 12, [Step("out", op, tuple(inputs), opts)])  # _run asserts no NaN / inf


def test_source_nan_and_inf_become_null(con: Any) -> None:
    got = _run(
        con, {"x": np.array([1.0, np.nan, np.inf, -np.inf, 2.0])}, 5, [Step("m", "is_missing", ("x",))]
    )
    np.testing.assert_array_equal(got["m"], [0, 1, 1, 1, 0])


def test_unbounded_ffill_and_a_short_history(con: Any) -> None:
    n = np.nan
    x = np.array([n, 1.0, n, n, n, n, 5.0, n])
    got = _run(con, {"x": x}, 8, [Step("f", "ffill", ("x",)), Step("m", "mean", ("x",), {"n": 100})])
    np.testing.assert_array_equal(got["f"], [n, 1, 1, 1, 1, 1, 5, 5])
    np.testing.assert_array_equal(got["f"], REFERENCE["ffill"](list(x)))
    assert np.isnan(got["m"]).all()  # a window longer than the data is missing everywhere


def test_partitioned_windows_restart_per_group(con: Any) -> None:
    """Partitioned by a session column, windows (and the block sums) never cross a partition."""
    rng = np.random.default_rng(9)
    x = 1e8 + 1e-3 * rng.normal(size=90)
    t = ibis.memtable(pa.table({"_row": np.arange(90), "g": np.repeat([0, 1, 2], 30), "x": x}))
    steps = [
        Step("z", "zscore", ("x",), {"n": 7}),
        Step("s", "std", ("x",), {"n": 7}),
        Step("l", "lag", ("x",)),
    ]
    res = con.to_pyarrow(stage(t, steps, group_by=("g",))).to_pandas().sort_values("_row")
    for g in range(3):
        part = list(x[30 * g : 30 * g + 30])
        sel = res["g"] == g
        for name, op, opts in (("z", "zscore", {"n": 7}), ("s", "std", {"n": 7}), ("l", "lag", {})):
            ref = np.array(REFERENCE[op](part, **opts))
            assert_matches(op, res.loc[sel, name].to_numpy(dtype=float), ref, op == "lag", np.ones(30))


# -- the recursive operators: closed forms in SQL (compiler/ibis_backend/recursive.py) ----------------------------


def test_ema_block_length_drops_only_negligible_weights() -> None:
    """L is the smallest block length whose weight q^L is at most 1e-30 (q = 1 - 2 / (span + 1))."""
    from compiler.ibis_backend.recursive import ema_block

    for span in (2, 3, 10, 60, 500):
        q = 1.0 - 2.0 / (span + 1.0)
        big_l = ema_block(span)
        assert q**big_l <= 1e-30 < q ** (big_l - 1), span
    assert ema_block(60) == 2073  # ln(1e-30) / ln(59 / 61) = 2072.3


def test_ema_over_many_blocks_equals_the_recursion(con: Any) -> None:
    """span 60 over 30,000+ present values (14 blocks of L = 2073), a missing run across the first block
    boundary (present values 2073 / 2074) and sparse missing values: within 1e-12 of the recursion."""
    rng = np.random.default_rng(60)
    rows = 32_000
    x = 100.0 + np.cumsum(rng.normal(size=rows))
    x[rng.random(rows) < 0.03] = np.nan
    present_before = np.cumsum(~np.isnan(x))
    boundary = int(np.searchsorted(present_before, 2073))  # the row of the 2073rd present value
    x[boundary - 40 : boundary + 40] = np.nan
    assert (~np.isnan(x)).sum() > 30_000
    got = _run(con, {"x": x}, rows, [Step("e", "ema", ("x",), {"span": 60})])["e"]
    ref = np.array(REFERENCE["ema"](list(x), 60))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.sum() > 29_000
    rel = np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])
    assert rel.max() <= 1e-12, rel.max()


@pytest.mark.parametrize("regime", REGIMES)
def test_ema_across_blocks_in_every_regime(con: Any, regime: str) -> None:
    """5,000 rows at span 10 (L = 345: 14 blocks) with sparse missing values, per magnitude regime,
    within the tolerance the property test applies (relative to the largest |x| so far)."""
    rng = np.random.default_rng(REGIMES.index(regime))
    x = make_series(rng, 5000, regime, "sparse")
    got = _run(con, {"x": x}, 5000, [Step("e", "ema", ("x",), {"span": 10})])["e"]
    ref = np.array(REFERENCE["ema"](list(x), 10))
    assert np.isfinite(ref).sum() > 4000
    assert_matches("ema", got, ref, False, floor_of("ema", [x], {"span": 10}, ref))


def test_ema_span_one_is_x(con: Any) -> None:
    n = np.nan
    x = np.array([n, 3.0, -1.5, n, 1e12, 2e-12, n])
    got = _run(con, {"x": x}, 7, [Step("e", "ema", ("x",), {"span": 1})])["e"]
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(got, REFERENCE["ema"](list(x), 1))


def test_ema_by_hand(con: Any) -> None:
    """span 2 (α = 2/3): seed 2 = mean(1, 3); then 2/3·6 + 1/3·2 = 14/3; 2/3·0 + 1/3·14/3 = 14/9."""
    n = np.nan
    got = _run(con, {"x": np.array([1.0, n, 3.0, 6.0, n, 0.0])}, 6, [Step("e", "ema", ("x",), {"span": 2})])
    np.testing.assert_allclose(got["e"], [n, n, 2.0, 14 / 3, n, 14 / 9], rtol=1e-15)


def test_hold_by_hand(con: Any) -> None:
    """A missing value at an entry is held as missing (not the earlier entry's value); exit wins over an
    entry on the same row; missing entry / exit count as false; bool and constant values too."""
    n = np.nan
    entry = np.array([1, 0, 1, 0, 1, 0, 1, n, 0, 1, 0.0])
    exit_ = np.array([0, 0, 0, 0, 1, 0, n, 0, 1, 0, 0.0])
    value = np.array([10, 11, n, 13, 14, 15, 16, 17, 18, 19, 20.0])
    flag = np.array([1, 0, n, 1, 0, 1, 0, 1, 1, 1, 0.0])
    steps = [
        Step("h", "hold", ("b_entry", "x", "b_exit")),
        Step("hb", "hold", ("b_entry", "b_flag", "b_exit")),
        Step("hc", "hold", ("b_entry", 2.5, "b_exit")),
    ]
    got = _run(con, {"b_entry": entry, "x": value, "b_flag": flag, "b_exit": exit_}, 11, steps)
    np.testing.assert_array_equal(got["h"], [10, 10, n, n, n, n, 16, 16, n, 19, 19])
    np.testing.assert_array_equal(got["hb"], [1, 1, n, n, n, n, 0, 0, n, 1, 1])
    np.testing.assert_array_equal(got["hc"], [2.5, 2.5, 2.5, 2.5, n, n, 2.5, 2.5, n, 2.5, 2.5])
    for name, v in (("h", value), ("hb", flag)):
        np.testing.assert_array_equal(got[name], REFERENCE["hold"](list(entry), list(v), list(exit_)))
    t = _table({"b_entry": entry, "b_flag": flag, "b_exit": exit_}, 11)
    assert stage(t, steps[1:2]).schema()["hb"].is_boolean()  # a bool value gives a bool series


def test_bars_since_by_hand(con: Any) -> None:
    n = np.nan
    cond = np.array([n, 0, 1, 0, n, n, 1, 1, 0, n])
    got = _run(con, {"b_c": cond}, 10, [Step("s", "bars_since", ("b_c",))])["s"]
    np.testing.assert_array_equal(got, [n, n, 0, 1, 2, 3, 0, 0, 1, 2])
    np.testing.assert_array_equal(got, REFERENCE["bars_since"](list(cond)))


def test_recursive_operators_restart_per_group(con: Any) -> None:
    """Partitioned by a session column: ema (span 3, L = 100: blocks 0-2 in every group, so the block
    join must match on the group too), bars_since and hold restart in each group. The groups' rows are
    interleaved in _row, so positions must count rows within the group (not _row differences)."""
    rng = np.random.default_rng(12)
    rows = 900
    g = rng.permutation(np.repeat([0, 1, 2], 300))
    x = 100.0 + np.cumsum(rng.normal(size=rows))
    x[rng.random(rows) < 0.1] = np.nan
    entry, exit_, cond = (make_bool(rng, rows, "runs") for _ in range(3))

    def arrow_bool(v: np.ndarray) -> pa.Array:
        return pa.array([None if math.isnan(u) else bool(u) for u in v], type=pa.bool_())

    t = ibis.memtable(
        pa.table(
            {
                "_row": np.arange(rows),
                "g": g,
                "x": pa.array(x, from_pandas=True),
                "en": arrow_bool(entry),
                "ex": arrow_bool(exit_),
                "c": arrow_bool(cond),
            }
        )
    )
    steps = [
        Step("e", "ema", ("x",), {"span": 3}),
        Step("s", "bars_since", ("c",)),
        Step("h", "hold", ("en", "x", "ex")),
    ]
    res = con.to_pyarrow(stage(t, steps, group_by=("g",)).order_by("_row")).to_pandas()
    for k in range(3):
        sel = g == k
        part = {"x": list(x[sel]), "en": list(entry[sel]), "ex": list(exit_[sel]), "c": list(cond[sel])}
        refs = {
            "e": REFERENCE["ema"](part["x"], 3),
            "s": REFERENCE["bars_since"](part["c"]),
            "h": REFERENCE["hold"](part["en"], part["x"], part["ex"]),
        }
        for name, ref in refs.items():
            ref = np.array(ref)
            got = res.loc[sel, name].to_numpy(dtype=float)
            exact = name != "e"
            assert_matches(name, got, ref, exact, np.abs(x[sel]).max() * np.ones(300))
        assert np.isfinite(refs["e"]).sum() > 200 and np.isfinite(refs["h"]).any()


def test_recursive_operators_are_portable_sql() -> None:
    """No recursive CTE (Spark has none), no nested window, literal or unbounded frames only; ema is one
    GROUP BY joined back on the block (one JOIN)."""
    t = normalize_sources(ibis.table({"_row": "int64", "x": "float64", "b": "boolean"}, name="bars"), ["x"])
    steps = [
        Step("e", "ema", ("x",), {"span": 60}),
        Step("s", "bars_since", ("b",)),
        Step("h", "hold", ("b", "x", "b")),
    ]
    sql = to_sql(stage(t, steps))
    flat = " ".join(sql.upper().split())
    assert "RECURSIVE" not in flat and flat.count(" JOIN ") == 1 and flat.count("GROUP BY") == 1
    for w in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Window):
        assert not [x for x in w.this.find_all(exp.Window) if x is not w], w.sql()
        spec = w.args.get("spec")
        for side in ("start", "end"):
            bound = spec.args.get(side) if spec is not None else None
            assert bound is None or isinstance(bound, (str, exp.Literal)), w.sql()


def test_stage_refuses_bad_steps() -> None:
    t = ibis.table({"_row": "int64", "x": "float64"}, name="t")
    with pytest.raises(KeyError, match="no Ibis translation"):
        stage(t, [Step("a", "asof", ("x",), {"sessions": 1})])  # a grid join, not a translation
    with pytest.raises(KeyError, match="unknown input"):
        stage(t, [Step("m", "mean", ("y",), {"n": 3})])
    with pytest.raises(TypeError, match="no option"):
        stage(t, [Step("m", "mean", ("x",), {"n": 3, "k": 2})])
    with pytest.raises(ValueError, match="already"):
        stage(t, [Step("x", "neg", ("x",))])


def test_ibis_backend_imports_only_dsl_ibis_and_stdlib() -> None:
    import ast
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "compiler" / "ibis_backend"
    allowed = {"dsl", "compiler", "ibis", "sqlglot", "__future__"} | set(sys.stdlib_module_names)
    for py in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] in allowed, f"{py.name} imports {name}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("compiler."):
                assert node.module.startswith("compiler.ibis_backend"), f"{py.name} imports {node.module}"


def test_block_moments_are_exact_where_duckdb_native_variance_is_not(con: Any) -> None:
    """1e8 + 1e-3 noise: our std/zscore are within 1e-9 of the exact reference; DuckDB's own
    STDDEV_SAMP over the same window is off by far more (the reason for the block shift)."""
    rng = np.random.default_rng(5)
    x = 1e8 + 1e-3 * rng.normal(size=400)
    got = _run(
        con, {"x": x}, 400, [Step("s", "std", ("x",), {"n": 40}), Step("z", "zscore", ("x",), {"n": 40})]
    )
    ref_s = np.array(REFERENCE["std"](list(x), 40))
    ref_z = np.array(REFERENCE["zscore"](list(x), 40))
    assert_matches("std", got["s"], ref_s, False, np.zeros(400))
    assert_matches("zscore", got["z"], ref_z, False, np.ones(400))
    t = ibis.memtable(pa.table({"_row": np.arange(400), "x": x}))
    native = t.mutate(s=t.x.std().over(ibis.window(preceding=39, following=0, order_by=t._row)))
    s = con.to_pyarrow(native).column("s").to_numpy()
    assert np.nanmax(np.abs(s[39:] - ref_s[39:]) / ref_s[39:]) > 1e-7


# -- grid alignment: asof / to_daily on the minimal grid contract ------------------------------------------------


def _grids(
    seed: int, bool_values: bool = False
) -> tuple[Any, Any, list[Any], np.ndarray, list[Any], np.ndarray]:
    """12 trading days (a gap over a weekend: dates are not consecutive), daily values with missing ones;
    1m bars for 9 of the sessions (3 to 6 bars each), values with missing ones, one session all missing."""
    import datetime as dt

    rng = np.random.default_rng(seed)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(16) if d % 7 not in (5, 6)][:12]
    dv = rng.normal(size=12)
    dv[[2, 7]] = np.nan
    sessions = [d for i, d in enumerate(days) if i not in (0, 4, 9)]
    bars, vals = [], []
    for j, d in enumerate(sessions):
        k = int(rng.integers(3, 7))
        v = rng.normal(size=k) if not bool_values else (rng.random(k) < 0.5).astype(float)
        v[rng.random(k) < 0.25] = np.nan
        if j == 3:
            v[:] = np.nan
        bars += [d] * k
        vals += list(v)
    mv = np.array(vals)
    daily = ibis.memtable(pa.table({"date": days, "v": pa.array(dv, from_pandas=True)}))
    mcol = (
        pa.array([None if math.isnan(u) else bool(u) for u in mv], type=pa.bool_())
        if bool_values
        else pa.array(mv, from_pandas=True)
    )
    minute = ibis.memtable(pa.table({"_row": np.arange(len(bars)), "trade_date": bars, "x": mcol}))
    return minute, daily, days, dv, bars, mv


@pytest.mark.parametrize("s", [1, 2, 3])
def test_asof_takes_the_daily_row_s_sessions_before_the_bars_trade_date(con: Any, s: int) -> None:
    from compiler.ibis_backend import ALIGNMENTS

    minute, daily, days, dv, bars, _ = _grids(11)
    res = con.to_pyarrow(ALIGNMENTS["asof"](minute, daily, "v", sessions=s, out="a")).sort_by("_row")
    got = np.asarray(pc.cast(res.column("a"), pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    # reference: the bar's session is days[i]; its value is the daily value at index i - s (never i)
    ref = np.array([dv[days.index(d) - s] if days.index(d) - s >= 0 else np.nan for d in bars])
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(ref).any() and np.isfinite(ref).any()


def test_asof_refuses_a_same_day_shift() -> None:
    from compiler.ibis_backend import ALIGNMENTS

    minute, daily, *_ = _grids(1)
    with pytest.raises(ValueError, match=">= 1"):
        ALIGNMENTS["asof"](minute, daily, "v", sessions=0, out="a")


@pytest.mark.parametrize("how", ["last", "first", "sum", "mean", "max", "min"])
def test_to_daily_aggregates_each_sessions_present_bars(con: Any, how: str) -> None:
    from compiler.ibis_backend import ALIGNMENTS

    minute, daily, days, _, bars, mv = _grids(7)
    res = con.to_pyarrow(ALIGNMENTS["to_daily"](minute, daily, "x", how=how, out="d")).sort_by("date")
    got = np.asarray(res.column("d").to_numpy(zero_copy_only=False), dtype=float)
    ref = []
    for d in days:  # plain loop: the present values of that session's bars, in bar order
        p = [v for b, v in zip(bars, mv, strict=True) if b == d and not math.isnan(v)]
        if not p:
            ref.append(np.nan)
            continue
        ref.append(
            {"last": p[-1], "first": p[0], "sum": math.fsum(p), "mean": math.fsum(p) / len(p)}.get(how)
            if how in ("last", "first", "sum", "mean")
            else (max(p) if how == "max" else min(p))
        )
    ref = np.array(ref)
    assert np.isnan(ref).sum() == 4  # three days without a session and one all-missing session
    assert_matches("to_daily", got, ref, how in ("last", "first", "max", "min"), np.full(len(ref), 10.0))


@pytest.mark.parametrize(("how", "fn"), [("max", any), ("min", all), ("last", None)])
def test_to_daily_of_true_false_is_any_all(con: Any, how: str, fn: Any) -> None:
    from compiler.ibis_backend import ALIGNMENTS

    minute, daily, days, _, bars, mv = _grids(3, bool_values=True)
    res = con.to_pyarrow(ALIGNMENTS["to_daily"](minute, daily, "x", how=how, out="d")).sort_by("date")
    got = np.asarray(pc.cast(res.column("d"), pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    ref = []
    for d in days:
        p = [v == 1.0 for b, v in zip(bars, mv, strict=True) if b == d and not math.isnan(v)]
        ref.append(np.nan if not p else float(fn(p) if fn else p[-1]))
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(TypeError, match="numbers"):
        ALIGNMENTS["to_daily"](minute, daily, "x", how="sum", out="d")
