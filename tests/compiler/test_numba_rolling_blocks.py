"""The block-decomposed rolling kernels at their seams: block edges, shift rows, constants, long windows.

The kernels (compiler/numba_backend/rolling.py) cut the series into blocks of n rows, shift every sum by
the first value K of the block the window ends in, and combine one block's suffix with the next
block's prefix. The random property tests (test_numba_kernels.py) draw windows up to 30 rows; these
place missing values exactly on the rows the algorithm treats specially (a block's first row, which is
the shift K; its last row), check every offset of a window against the block grid, hold the kernels
to exact answers on constant windows, and check windows of 200-1000 rows on the hard magnitudes.
Expected values come from the exact reference (tests/compiler/reference.py, rational arithmetic) or
are worked by hand.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from compiler.numba_backend import call
from tests.compiler.reference import REFERENCE

RTOL = 1e-9
MOMENT_OPS = ("sum", "mean", "var", "std", "zscore", "winsorize", "realized_vol", "corr", "cov")


def _opts(op: str, n: int) -> dict[str, Any]:
    return {"n": n} | {"winsorize": {"k": 1.5}, "realized_vol": {"periods_per_year": 252.0}}.get(op, {})


def _operands(op: str, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    return [x, y] if op in ("corr", "cov") else [x]


def _scale(op: str, window: list[list[float]], ref: float) -> float:
    """The unit a relative error is measured in (as in test_numba_kernels.floor_of, per window)."""
    if op in ("sum", "mean", "winsorize"):
        return max(abs(ref), max(abs(v) for v in window[0]))
    if op in ("zscore", "corr"):
        return max(abs(ref), 1.0)
    if op == "cov":
        sx = REFERENCE["std"](window[0], len(window[0]))[-1]
        sy = REFERENCE["std"](window[1], len(window[1]))[-1]
        return max(abs(ref), sx * sy)
    return abs(ref)


def _check_rows(op: str, operands: list[np.ndarray], n: int, rows: list[int]) -> None:
    got = call(op, *operands, **_opts(op, n))
    assert not np.isinf(got).any()
    for i in rows:
        window = [list(o[i - n + 1 : i + 1]) for o in operands]
        ref = REFERENCE[op](*window, **_opts(op, n))[-1]
        g = float(got[i])
        assert math.isnan(g) == math.isnan(ref), f"{op} n={n} row {i}: got {g}, reference {ref}"
        if not math.isnan(ref):
            assert abs(g - ref) <= RTOL * _scale(op, window, ref), f"{op} n={n} row {i}: {g} vs {ref}"


@pytest.mark.parametrize("op", MOMENT_OPS)
@pytest.mark.parametrize("n", [2, 3, 7])
def test_missing_on_the_shift_rows_and_block_edges(op: str, n: int) -> None:
    """NaN on a block's first row (its shift K), on its last row, and on the row after: exactly the
    windows that contain them are missing, and every other window is tight. All rows are checked
    (every offset of a window against the block grid), with a partial last block."""
    rng = np.random.default_rng(100 + n)
    rows = 6 * n + n // 2 + 1
    x = 1e8 + rng.normal(size=rows)
    y = -2e3 + rng.normal(size=rows)
    x[2 * n] = np.nan  # the shift of block 2
    x[4 * n - 1] = np.nan  # last row of block 3 (the suffix of block 3 starts at its end)
    y[5 * n] = np.nan  # the shift of block 5, in the second operand only
    _check_rows(op, _operands(op, x, y), n, list(range(n - 1, rows)))


@pytest.mark.parametrize("rows_over_n", [1.0, 1.5, 2.0, 3.0])
def test_series_of_one_block_and_partial_blocks(rows_over_n: float) -> None:
    rng = np.random.default_rng(9)
    n = 11
    rows = int(rows_over_n * n)
    x = 100.0 + np.cumsum(rng.normal(size=rows))
    y = rng.normal(size=rows)
    for op in MOMENT_OPS:
        _check_rows(op, _operands(op, x, y), n, list(range(n - 1, rows)))


@pytest.mark.parametrize("c", [0.1, 1e8 + 0.1, -3.7e-12, 4000.25, 0.0, 1e300])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 60])
def test_constant_windows_are_exact(c: float, n: int) -> None:
    """A flat series: mean is exactly c (so `x > mean(x, n)` stays false on flat data), sum is n·c
    rounded once, var and std exactly 0, zscore missing (0/0), cov exactly +0, corr missing."""
    x = np.full(3 * n + 2, c)
    y = np.linspace(1.0, 2.0, 3 * n + 2)
    first = n - 1
    mean = call("mean", x, n=n)
    assert np.isnan(mean[:first]).all() and (mean[first:] == c).all()
    total = float(Fraction(c) * n) if abs(c * n) < 1e308 else math.nan
    got = call("sum", x, n=n)[first:]
    assert np.array_equal(got, np.full(got.shape, total), equal_nan=True)
    if n < 2:
        return
    for op in ("var", "std"):
        got = call(op, x, n=n)[first:]
        assert (got == 0.0).all() and not np.signbit(got).any(), op
    assert np.isnan(call("zscore", x, n=n)).all()
    cov = call("cov", x, y, n=n)[first:]
    assert (cov == 0.0).all() and not np.signbit(cov).any()
    assert np.isnan(call("corr", x, y, n=n)).all()
    assert (call("winsorize", x, n=n, k=2.0)[first:] == c).all()  # clip(c, c, c)


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize("regime", ["offset", "es_ticks", "trend", "burst"])
def test_long_windows_stay_tight(n: int, regime: str) -> None:
    """Plain (uncompensated) block sums over long windows on the hard magnitudes, sampled rows."""
    rng = np.random.default_rng(n + len(regime))
    rows = 3 * n + 17
    if regime == "offset":
        x = 1e8 + 1e-3 * rng.normal(size=rows)
    elif regime == "es_ticks":  # ES-like prices on a 0.25 grid: many ties, level 4000
        x = np.round((4000.0 + np.cumsum(rng.normal(size=rows))) * 4.0) / 4.0
    elif regime == "trend":
        x = 4000.0 + 0.25 * np.arange(rows) + 1e-4 * rng.normal(size=rows)
    else:  # a 1e12 burst among 1e-12 values, then the burst leaves the window
        x = 1e-12 * rng.normal(size=rows)
        x[n // 2 : n // 2 + 5] = 1e12
    y = 0.5 * x + rng.normal(size=rows)
    sample = sorted(rng.choice(np.arange(n - 1, rows), size=6, replace=False).tolist())
    for op in MOMENT_OPS:
        _check_rows(op, _operands(op, x, y), n, sample)


@pytest.mark.parametrize("span", [1, 2, 5, 60])
def test_ema_pairwise_steps_match_the_row_by_row_recursion(span: int) -> None:
    """The ema kernel composes two rows per step; missing runs of odd and even length (so a pair can be
    half missing, or wholly), a missing first row and an odd tail must not change the recursion."""
    rng = np.random.default_rng(span)
    x = 4000.0 + np.cumsum(rng.normal(size=5001))
    for start, length in [(0, 1), (100, 1), (201, 2), (302, 3), (1000, 7), (4999, 2)]:
        x[start : start + length] = np.nan
    got = call("ema", x, span=span)
    ref = np.array(REFERENCE["ema"](list(x), span))
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    scale = np.fmax.accumulate(np.abs(np.nan_to_num(x)))  # the floor of the property tests for ema
    assert (np.abs(got[ok] - ref[ok]) <= RTOL * np.maximum(np.abs(ref[ok]), scale[ok])).all()
