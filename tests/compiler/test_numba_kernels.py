"""Numba kernels == the independent reference (tests/compiler/reference.py), operator by operator.

Property tests draw series with missing runs, constant stretches, short histories (window > rows),
huge (1e12), tiny (1e-12) and offset (1e8 + noise) magnitudes, ties and all-missing input. Booleans,
counts, arg-extremes, shifts and missingness must match exactly; real-valued results within 1e-9
relative (relative to the result, or to the window's own scale where the result can cancel to ~0:
documented per operator in FLOOR). No output may be ±inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.numba_backend import EXCEPTIONS, KERNELS, LAYOUT, call
from dsl import OPERATORS
from tests.compiler.reference import REFERENCE

RTOL = 1e-9
SETTINGS = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- random series ---------------------------------------------------------------------------------------------

REGIMES = ("normal", "huge", "tiny", "offset", "ties", "constant", "walk", "mixed")


def make_series(rng: np.random.Generator, rows: int, regime: str, missing: str) -> np.ndarray:
    """A float series of one regime, then missing values put in by `missing` (none/runs/sparse/all)."""
    if regime == "normal":
        x = rng.normal(size=rows)
    elif regime == "huge":
        x = 1e12 * rng.normal(size=rows)
    elif regime == "tiny":
        x = 1e-12 * rng.normal(size=rows)
    elif regime == "offset":  # the numerically hard case for variances: 1e8 + small noise
        x = 1e8 + rng.normal(scale=rng.choice([1.0, 1e-3]), size=rows)
    elif regime == "ties":
        x = rng.integers(-3, 4, size=rows).astype(float)
    elif regime == "constant":
        x = np.repeat(rng.normal(size=max(1, rows // 6 + 1)), 6)[:rows]
    elif regime == "walk":
        x = 100.0 + np.cumsum(rng.normal(size=rows))
    else:  # mixed magnitudes in one series: a 1e12 burst among 1e-12 values
        x = 1e-12 * rng.normal(size=rows)
        if rows:
            s = int(rng.integers(0, rows))
            x[s : s + int(rng.integers(1, 6))] = 1e12 * rng.normal()
    x = x.astype(float)
    if missing == "runs":
        for _ in range(int(rng.integers(1, 4))):
            if rows:
                s = int(rng.integers(0, rows))
                x[s : s + int(rng.integers(1, 8))] = np.nan
    elif missing == "sparse":
        x[rng.random(rows) < 0.08] = np.nan
    elif missing == "all":
        x[:] = np.nan
    return x


def make_bool(rng: np.random.Generator, rows: int, missing: str) -> np.ndarray:
    b = (rng.random(rows) < rng.choice([0.1, 0.5, 0.9])).astype(float)
    if missing != "none":
        b[rng.random(rows) < (1.0 if missing == "all" else 0.15)] = np.nan
    return b


# -- per-operator cases --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """How to draw an operator's operands and options, and how tightly to compare it."""

    operands: tuple[str, ...]  # "num", "bool", "expo" (an exponent), "num|scalar" (series or a number)
    options: Callable[[st.DataObject], dict[str, Any]] = lambda d: {}
    exact: bool = False
    to_reference: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda o: o)


def _n(lo: int = 1) -> Callable[[st.DataObject], dict[str, Any]]:
    return lambda d: {"n": d.draw(st.integers(lo, 30), label="n")}


NUM2 = ("num", "num|scalar")
CASES: dict[str, Case] = {
    **{op: Case(NUM2, exact=True) for op in ("add", "sub", "mul", "div", "min", "max")},
    **{op: Case(NUM2, exact=True) for op in ("gt", "ge", "lt", "le", "eq", "ne")},
    "pow": Case(("num", "expo")),
    "neg": Case(("num",), exact=True),
    "and": Case(("bool", "bool"), exact=True),
    "or": Case(("bool", "bool"), exact=True),
    "not": Case(("bool",), exact=True),
    "abs": Case(("num",), exact=True),
    "sign": Case(("num",), exact=True),
    "sqrt": Case(("num",), exact=True),
    "log": Case(("num",)),
    "log1p": Case(("num",)),
    "exp": Case(("num",)),
    "signed_pow": Case(("num", "expo")),
    "clip": Case(("num", "num|scalar", "num|scalar"), exact=True),
    "if": Case(("bool", "num", "num|scalar"), exact=True),
    "is_missing": Case(("num",), exact=True),
    "fill": Case(("num", "num|scalar"), exact=True),
    "ffill": Case(
        ("num",), lambda d: {"n": d.draw(st.one_of(st.none(), st.integers(1, 10)), label="n")}, exact=True
    ),
    "lag": Case(("num",), lambda d: {"k": d.draw(st.integers(0, 12), label="k")}, exact=True),
    "diff": Case(("num",), _n()),
    "pct_change": Case(("num",), _n()),
    "mean": Case(("num",), _n()),
    "sum": Case(("num",), _n()),
    "std": Case(("num",), _n(2)),
    "var": Case(("num",), _n(2)),
    "median": Case(("num",), _n()),
    "ts_min": Case(("num",), _n(), exact=True),
    "ts_max": Case(("num",), _n(), exact=True),
    "ts_argmax": Case(("num",), _n(), exact=True),
    "ts_argmin": Case(("num",), _n(), exact=True),
    "zscore": Case(("num",), _n(2)),
    "rank": Case(("num",), _n(), exact=True),
    "quantile": Case(
        ("num",),
        lambda d: {
            "n": d.draw(st.integers(1, 30), label="n"),
            "q": d.draw(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0, 1)), label="q"),
        },
    ),
    "slope": Case(("num",), _n(2)),
    "count": Case(("num",), _n(), exact=True),
    "corr": Case(("num", "num"), _n(2)),
    "cov": Case(("num", "num"), _n(2)),
    "realized_vol": Case(
        ("num",),
        lambda d: (
            d.draw(
                st.sampled_from(
                    [
                        {"annualize": True, "periods_per_year": 252.0},
                        {"annualize": True, "periods_per_year": 98280.0},
                        {"annualize": False},
                    ]
                ),
                label="P",
            )
            | {"n": d.draw(st.integers(2, 30), label="n")}
        ),
        to_reference=lambda o: {
            "n": o["n"],
            "periods_per_year": o["periods_per_year"] if o.get("annualize", True) else 1.0,
        },
    ),
    "winsorize": Case(
        ("num",),
        lambda d: {"n": d.draw(st.integers(2, 30), label="n"), "k": d.draw(st.floats(0.1, 3.0), label="k")},
    ),
    "ema": Case(("num",), lambda d: {"span": d.draw(st.integers(1, 25), label="span")}),
    "cross_above": Case(("num", "num|scalar"), exact=True),
    "cross_below": Case(("num", "num|scalar"), exact=True),
    "bars_since": Case(("bool",), exact=True),
    "hold": Case(("bool", "num|scalar", "bool"), exact=True),
    "feature": Case(("num",), exact=True),
    "availability": Case(
        ("num",),
        lambda d: {"lag": d.draw(st.integers(0, 3)), "mode": d.draw(st.sampled_from(["set", "floor"]))},
        exact=True,
        to_reference=lambda o: {},
    ),
}


def _win_abs_max(x: np.ndarray, i: int, n: int) -> float:
    w = x[max(0, i - n + 1) : i + 1]
    return float(np.nanmax(np.abs(w))) if np.isfinite(w).any() else 0.0


def floor_of(op: str, operands: list[np.ndarray], opts: dict[str, Any], ref: np.ndarray) -> np.ndarray:
    """Per-row scale under which a relative error is measured, for results that can cancel to ~0.

    Window sums, interpolations and recursions are measured against the window's largest |x| (their
    rounding is relative to the values summed); zscore and corr against 1 (their natural unit); slope
    against range / n; cov against std(x)·std(y). Everything else is purely relative (floor 0).
    """
    rows = len(ref)
    x = operands[0]
    out = np.zeros(rows)
    n = int(opts.get("n") or 1)
    if op in ("sum", "mean", "median", "quantile", "winsorize"):
        out[:] = [_win_abs_max(x, i, n) for i in range(rows)]
    elif op == "diff":
        out[:] = [_win_abs_max(x, i, n + 1) for i in range(rows)]
    elif op == "ema":
        out[:] = [_win_abs_max(x, i, i + 1) for i in range(rows)]
    elif op in ("zscore", "corr"):
        out[:] = 1.0
    elif op == "slope":
        for i in range(rows):
            w = x[max(0, i - n + 1) : i + 1]
            out[i] = (np.nanmax(w) - np.nanmin(w)) / n if np.isfinite(w).any() else 0.0
    elif op == "cov":
        sx = np.array(REFERENCE["std"](list(operands[0]), n))
        sy = np.array(REFERENCE["std"](list(operands[1]), n))
        out[:] = np.nan_to_num(sx * sy)
    return out


def assert_matches(op: str, got: np.ndarray, ref: np.ndarray, exact: bool, floor: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == ref.shape
    assert not np.isinf(got).any(), f"{op}: ±inf in the output"
    miss_g, miss_r = np.isnan(got), np.isnan(ref)
    bad = np.flatnonzero(miss_g != miss_r)
    assert bad.size == 0, (
        f"{op}: missingness differs at rows {bad[:10]}: got {got[bad[:5]]}, ref {ref[bad[:5]]}"
    )
    g, r, f = got[~miss_r], ref[~miss_r], floor[~miss_r]
    if exact:
        assert np.array_equal(g, r), f"{op}: not exactly equal: got {g[g != r][:5]} ref {r[g != r][:5]}"
    else:
        err = np.abs(g - r)
        tol = RTOL * np.maximum(np.abs(r), f)
        worst = np.flatnonzero(err > tol)
        assert worst.size == 0, (
            f"{op}: beyond 1e-9 relative at {worst[:5]}: got {g[worst[:5]]} ref {r[worst[:5]]}"
        )


def draw_operands(data: st.DataObject, case: Case) -> tuple[list[Any], int]:
    rows = data.draw(st.integers(0, 70), label="rows")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    missing = data.draw(st.sampled_from(["none", "runs", "sparse", "all"]), label="missing")
    out: list[Any] = []
    for kind in case.operands:
        if kind == "bool":
            out.append(make_bool(rng, rows, missing))
        elif kind == "expo":
            e = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1.5, -0.5, 400.0], size=rows)
            e[rng.random(rows) < 0.1] = np.nan
            out.append(e)
        elif kind == "num|scalar" and data.draw(st.booleans(), label="scalar"):
            out.append(data.draw(st.sampled_from([0.0, 1.0, -2.5, 1e8, math.nan]), label="scalar value"))
        else:
            regime = data.draw(st.sampled_from(REGIMES), label="regime")
            out.append(make_series(rng, rows, regime, missing))
    return out, rows


SPECIAL = sorted(CASES)


@pytest.mark.parametrize("op", SPECIAL)
@SETTINGS
@given(data=st.data())
def test_kernel_equals_reference(op: str, data: st.DataObject) -> None:
    case = CASES[op]
    operands, rows = draw_operands(data, case)
    opts = case.options(data)
    got = call(op, *operands, **opts)
    full = [[float(v) for v in np.broadcast_to(np.asarray(o, dtype=float), (rows,))] for o in operands]
    ref = np.array(REFERENCE[op](*full, **case.to_reference(opts)), dtype=float).reshape(rows)
    arrays = [np.asarray(o, dtype=float) * np.ones(rows) for o in operands]
    assert_matches(op, got, ref, case.exact, floor_of(op, arrays, opts, ref))


# -- completeness and contracts --------------------------------------------------------------------------------------


def test_every_operator_has_a_kernel_or_a_documented_exception() -> None:
    declared = set(OPERATORS)
    assert set(EXCEPTIONS) <= declared
    assert set(EXCEPTIONS) == {"column", "const", "param", "asof", "to_daily"}
    assert set(KERNELS) == declared - set(EXCEPTIONS), sorted(declared - set(EXCEPTIONS) - set(KERNELS))
    assert set(CASES) == set(KERNELS) == set(REFERENCE)  # every kernel is property-tested here


def test_kernels_are_nopython_cached_dispatchers() -> None:
    for name, fn in KERNELS.items():
        assert isinstance(fn, numba.core.registry.CPUDispatcher), name
        assert fn.targetoptions.get("nopython") is True, name
        assert type(fn._cache).__name__ == "FunctionCache", f"{name} is not cache=True"
        assert not fn.targetoptions.get("fastmath"), f"{name}: fastmath would assume there is no NaN"


def test_windows_and_options_are_runtime_arguments() -> None:
    """A study varying $window (or q, k, span) runs one compiled specialisation, not one per value."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=300)
    for op, variants in {
        "mean": [{"n": n} for n in (3, 20, 60, 200)],
        "zscore": [{"n": n} for n in (2, 20, 61)],
        "quantile": [{"n": 9, "q": q} for q in (0.1, 0.5, 0.9)] + [{"n": 30, "q": 0.5}],
        "ema": [{"span": s} for s in (2, 10, 50)],
        "winsorize": [{"n": 20, "k": k} for k in (1, 2.5)],
    }.items():
        for opts in variants:
            call(op, x, **opts)
        assert len(KERNELS[op].signatures) == 1, (op, KERNELS[op].signatures)


def test_layout_contract() -> None:
    assert np.dtype(LAYOUT.dtype) == np.float64 and math.isnan(LAYOUT.missing)
    assert (LAYOUT.true, LAYOUT.false) == (1.0, 0.0)
    # a numpy bool array goes in as 1.0 / 0.0 and Kleene logic comes out in the same layout
    got = call("and", np.array([True, False, True]), np.array([np.nan, np.nan, 1.0]))
    assert np.array_equal(got, [np.nan, 0.0, 1.0], equal_nan=True)


def test_two_dimensional_operands_run_per_column() -> None:
    rng = np.random.default_rng(3)
    block = np.asfortranarray(rng.normal(size=(50, 4)))
    block[5:8, 1] = np.nan
    got = call("zscore", block, n=10)
    assert got.shape == (50, 4) and got.flags.f_contiguous
    for j in range(4):
        ref = np.array(REFERENCE["zscore"](list(block[:, j]), 10))
        assert_matches("zscore", got[:, j], ref, False, np.ones(50))
    both = call("gt", block, rng.normal(size=50))  # a 1-D operand broadcasts against every column
    assert both.shape == (50, 4)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("nope", [1.0]), {}, KeyError, "no such operator"),
        (("asof", [1.0]), {}, KeyError, "DuckDB"),
        (("ts_mean", [1.0]), {"n": 2}, KeyError, "ts_mean"),  # aliases are the DSL's business
        (("mean", [1.0, 2.0]), {}, TypeError, "option 'n' is required"),
        (("mean", [1.0, 2.0]), {"n": 0}, ValueError, ">= 1"),
        (("std", [1.0, 2.0]), {"n": 1}, ValueError, ">= 2"),
        (("mean", [1.0, 2.0]), {"n": 2.5}, ValueError, "whole number"),
        (("mean", [1.0, 2.0]), {"n": True}, ValueError, "whole number"),
        (("mean", [1.0, 2.0]), {"n": 2, "k": 1}, TypeError, "unknown option"),
        (("lag", [1.0, 2.0]), {"k": -1}, ValueError, ">= 0"),
        (("quantile", [1.0]), {"n": 1, "q": 1.5}, ValueError, "<= 1"),
        (("realized_vol", [1.0, 2.0]), {"n": 2}, ValueError, "periods_per_year"),
        (("add", [1.0, 2.0], [1.0]), {}, ValueError, "different lengths"),
        (("add", 1.0, 2.0), {}, ValueError, "at least one operand"),
        (("add", [1.0]), {}, TypeError, "2 operand"),
        (("add", ["a"], [1.0]), {}, ValueError, "numeric or boolean"),
    ],
)
def test_call_validates(args: tuple, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(*args, **kwargs)


def test_call_returns_a_new_array_and_defaults_apply() -> None:
    x = np.array([1.0, 2.0, 4.0])
    y = call("feature", x)
    y[0] = 99.0
    assert x[0] == 1.0  # the pass-through copies
    assert np.array_equal(call("lag", x), [np.nan, 1.0, 2.0], equal_nan=True)  # k defaults to 1
    assert np.array_equal(call("diff", x), [np.nan, 1.0, 2.0], equal_nan=True)  # n defaults to 1
    assert np.array_equal(call("ffill", np.array([1.0, np.nan, np.nan])), [1.0, 1.0, 1.0])  # unlimited


# -- numerics beyond the random cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["sum", "mean", "var", "std", "zscore", "slope", "winsorize"])
def test_no_error_leaks_from_values_that_left_the_window(op: str) -> None:
    """A 1e12 burst, then 1e-12 noise for thousands of rows: later windows are exact at their own scale
    (running add/remove sums would carry the burst's rounding error forever)."""
    rng = np.random.default_rng(11)
    x = 1e-12 * rng.normal(size=2500)
    x[50:60] = 1e12 * rng.normal(size=10)
    x[1300:1310] = 1e8 + rng.normal(size=10)
    opts = {"n": 17} | ({"k": 1.5} if op == "winsorize" else {})
    got = call(op, x, **opts)
    ref = np.array(REFERENCE[op](list(x), **opts))
    floor = floor_of(op, [x], opts, ref)
    assert_matches(op, got, ref, False, floor)
    if op == "sum":  # the same check notices add/remove running sums: cumsum[i] - cumsum[i - n]
        c = np.concatenate([[0.0], np.cumsum(x)])
        running = np.full(len(x), np.nan)
        running[16:] = c[17:] - c[:-17]
        assert np.nanmax(np.abs(running - ref)[200:1300] / floor[200:1300]) > 1e-6


@pytest.mark.parametrize("op", ["var", "std", "zscore", "corr", "cov", "realized_vol"])
def test_offset_data_is_tight(op: str) -> None:
    """1e8 + noise of 1e-3: the case where naive Σx² − (Σx)²/n loses every digit."""
    rng = np.random.default_rng(5)
    x = 1e8 + 1e-3 * rng.normal(size=600)
    y = -3e7 + 1e-2 * rng.normal(size=600) + 0.5 * (x - 1e8) * 1e3
    operands = [x, y] if op in ("corr", "cov") else [x]
    opts: dict[str, Any] = {"n": 40} | ({"periods_per_year": 252.0} if op == "realized_vol" else {})
    got = call(op, *operands, **opts)
    ref = np.array(REFERENCE[op](*(list(o) for o in operands), **opts))
    assert np.isfinite(ref[39:]).all()
    naive = pd_naive_var(x, 40)
    if op == "var":  # the test would notice the textbook formula: it is off by far more than 1e-9
        assert np.nanmax(np.abs(naive - ref)[39:] / ref[39:]) > 1e-6
    assert_matches(op, got, ref, False, floor_of(op, operands, opts, ref))


def pd_naive_var(x: np.ndarray, n: int) -> np.ndarray:
    """The textbook one-pass formula (what a careless kernel would do), as a sanity contrast."""
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        w = x[i - n + 1 : i + 1]
        out[i] = (np.sum(w * w) - np.sum(w) ** 2 / n) / (n - 1)
    return out


EXTREMES = np.array([1e300, -1e300, 1e-300, -1e-300, 0.0, 1e154, -1e154, 709.0, 710.0, 1e300, np.nan, 2.0])


@pytest.mark.parametrize("op", sorted(KERNELS))
def test_no_inf_on_extreme_values(op: str) -> None:
    """Overflow anywhere (x·y, e^x, 10^400, Σx², 1e300 / 1e-300) is missing, never ±inf."""
    case = CASES[op]
    rng = np.random.default_rng(1)
    for _ in range(5):
        ops = [
            rng.permutation(EXTREMES)
            if kind in ("num", "num|scalar")
            else (
                rng.choice([-1.0, 0.5, 400.0, -400.0], 12) if kind == "expo" else make_bool(rng, 12, "runs")
            )
            for kind in case.operands
        ]
        opts = {"n": 3} if "n" in {a.name for a in OPERATORS[op].args} else {}
        opts |= {
            "quantile": {"q": 0.3},
            "winsorize": {"k": 2.0},
            "ema": {"span": 2},
            "realized_vol": {"periods_per_year": 252.0},
            "availability": {"lag": 1, "mode": "set"},
        }.get(op, {})
        got = call(op, *ops, **opts)
        assert not np.isinf(got).any(), (op, got)


# -- hand-worked tables --------------------------------------------------------------------------------------------------

N = np.nan


def _eq(got: np.ndarray, want: list[float]) -> None:
    assert np.allclose(got, want, rtol=1e-12, atol=0, equal_nan=True), (got, want)
    assert np.array_equal(np.isnan(got), np.isnan(want))


def test_ema_by_hand() -> None:
    # span 2: alpha = 2/3. Seed at the 2nd present value (row 2) with mean(1, 3) = 2; row 1 is missing
    # and leaves the state alone; row 3: 2/3·6 + 1/3·2 = 14/3; row 4: 2/3·0 + 1/3·14/3 = 14/9.
    _eq(call("ema", np.array([1.0, N, 3.0, 6.0, 0.0]), span=2), [N, N, 2.0, 14 / 3, 14 / 9])


def test_hold_by_hand() -> None:
    # row 0 nothing yet; row 1 entry -> 2; row 2 carries 2; row 3 exit missing = false, entry -> 4;
    # row 4 exit and entry on the same row: exit wins -> flat (missing).
    got = call("hold", np.array([0, 1, 0, 1, 1.0]), np.array([1, 2, 3, 4, 5.0]), np.array([0, 0, 0, N, 1]))
    _eq(got, [N, 2.0, 2.0, 4.0, N])


def test_bars_since_by_hand() -> None:
    # missing before the first true; a missing condition counts as false (row 3 is 2 rows after row 1)
    _eq(call("bars_since", np.array([0, 1, 0, N, 1.0])), [N, 0.0, 1.0, 2.0, 0.0])


def test_rank_by_hand() -> None:
    # n = 3. row 2: window [1,3,3], value 3: 1 below, 2 tied -> (1 + 1.5)/3 = 5/6; row 3: [3,3,2], value 2
    # is the smallest -> 1/3; row 4: [3,2,3] -> 5/6. A constant window: (n + 1)/(2n) = 4/6.
    _eq(call("rank", np.array([1, 3, 3, 2, 3.0]), n=3), [N, N, 5 / 6, 1 / 3, 5 / 6])
    _eq(call("rank", np.array([4, 4, 4, 4, 4.0]), n=3), [N, N, 2 / 3, 2 / 3, 2 / 3])


def test_quantile_by_hand() -> None:
    # n = 4, q = 0.5: row 3 sorted [0,5,10,20], h = 1.5 -> 5 + 0.5·5 = 7.5; row 4 [0,5,15,20] -> 10.
    _eq(call("quantile", np.array([10, 0, 5, 20, 15.0]), n=4, q=0.5), [N, N, N, 7.5, 10.0])
    # q = 0.25: h = 0.75 -> 1 + 0.75·1 = 1.75; the missing row 4 makes its window missing.
    _eq(call("quantile", np.array([4, 1, 3, 2, N]), n=4, q=0.25), [N, N, N, 1.75, N])
    _eq(call("quantile", np.array([4, 1, 3, 2, 9.0]), n=4, q=1.0), [N, N, N, 4.0, 9.0])


def test_slope_by_hand() -> None:
    # x = t^2 on rows 1..5, n = 3, t = 1,2,3, t̄ = 2, Σ(t − t̄)² = 2: row 2: (−1·1 + 1·9)/2 = 4;
    # row 3: (−4 + 16)/2 = 6; row 4: (−9 + 25)/2 = 8. Adding 1e8 changes nothing.
    x = np.array([1, 4, 9, 16, 25.0])
    _eq(call("slope", x, n=3), [N, N, 4.0, 6.0, 8.0])
    _eq(call("slope", x + 1e8, n=3), [N, N, 4.0, 6.0, 8.0])


def test_zscore_on_a_constant_window_by_hand() -> None:
    # n = 3: rows 2 and 3 see a constant window -> missing (std = 0). Row 4: [5,5,6], mean 16/3,
    # var = (1/9 + 1/9 + 4/9)/2 = 1/3, z = (6 − 16/3)·√3 = (2/3)·√3.
    got = call("zscore", np.array([5, 5, 5, 5, 6.0]), n=3)
    _eq(got, [N, N, N, N, 2 / 3 * math.sqrt(3)])
    _eq(call("zscore", np.full(5, 1e8 + 0.1), n=3), [N] * 5)
    _eq(call("std", np.full(5, 1e8 + 0.1), n=3), [N, N, 0.0, 0.0, 0.0])


def test_numba_backend_imports_only_dsl_numpy_numba_and_stdlib() -> None:
    import ast
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "compiler" / "numba_backend"
    allowed = {"dsl", "compiler", "numpy", "numba", "__future__"} | set(sys.stdlib_module_names)
    for py in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{py.name} imports {name}"


@pytest.mark.parametrize("op", sorted(op for op in KERNELS if "n" in {a.name for a in OPERATORS[op].args}))
def test_a_window_longer_than_the_data_is_all_missing_and_cheap(op: str) -> None:
    """A study may try $window = 10^12 on a short history: all missing (count too: fewer than n rows
    exist; ffill fills anyway), without allocating a window-sized buffer."""
    case = CASES[op]
    x = np.arange(1.0, 11.0)
    operands = [x if kind != "bool" else (x > 5).astype(float) for kind in case.operands]
    opts = {"n": 10**12} | {"quantile": {"q": 0.5}, "winsorize": {"k": 1.0}}.get(op, {})
    if op == "realized_vol":
        opts["periods_per_year"] = 252.0
    got = call(op, *operands, **opts)
    if op == "ffill":  # nothing is missing, so nothing needs a look-back
        assert np.array_equal(got, x)
    else:
        assert np.isnan(got).all(), (op, got)
