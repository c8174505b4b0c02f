"""Placebo shuffle (uniform p under the null, tiny p for real timing) and the lag sweep (lookahead canaries)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from runtime.contracts import UserError
from runtime.robustness import (
    block_shuffle_index,
    lag_sweep,
    placebo_pvalue,
    position_lag_evaluator,
    verdict_lag,
    verdict_placebo,
)


def _regime_positions(rng: np.random.Generator, t: int) -> np.ndarray:
    """Persistent long/flat/short positions (regimes of geometric length, mean 15 bars)."""
    out = np.empty(t)
    i = 0
    while i < t:
        k = int(rng.geometric(1 / 15))
        out[i : i + k] = rng.choice([-1.0, 0.0, 1.0])
        i += k
    return out


def test_block_shuffle_is_a_permutation_of_contiguous_blocks():
    rng = np.random.default_rng(0)
    for t, b in [(100, 7), (50, 50), (37, 1), (64, 8)]:
        idx = block_shuffle_index(t, b, rng)
        np.testing.assert_array_equal(np.sort(idx), np.arange(t))  # every row exactly once
        breaks = np.sum(np.diff(idx) != 1)
        assert breaks <= math.ceil(t / b) + 1  # contiguous runs: at most one break per block
    many = block_shuffle_index(100, 7, rng, n=50)
    assert many.shape == (50, 100)
    assert all(np.array_equal(np.sort(row), np.arange(100)) for row in many)
    assert len({tuple(row) for row in many}) == 50  # 50 different shuffles
    pos = _regime_positions(rng, 300)
    idx = block_shuffle_index(300, 20, rng)
    assert np.mean(pos[idx] != 0) == np.mean(pos != 0)  # exposure kept exactly
    assert pos[idx].sum() == pos.sum()


def test_random_strategy_placebo_pvalues_are_uniform():
    pvals = []
    for s in range(200):
        rng = np.random.default_rng(s)
        ret = rng.normal(0.0003, 0.01, 400)  # drift: exposure alone earns, timing does not
        pos = _regime_positions(rng, 400)
        pvals.append(placebo_pvalue(pos, ret, n=199, block=20, seed=s).pvalue)
    ks = sps.kstest(pvals, "uniform")
    assert ks.pvalue > 0.01
    assert 0.4 <= np.mean(pvals) <= 0.6


def test_real_timing_gets_a_small_pvalue():
    rng = np.random.default_rng(5)
    ret = rng.normal(0.0, 0.01, 500)
    pos = _regime_positions(rng, 500)
    informed = np.where(rng.random(500) < 0.3, np.sign(ret), pos)  # 30% of the rows know the sign
    res = placebo_pvalue(informed, ret, n=199, block=20, seed=1)
    assert res.pvalue == pytest.approx(1 / 200)
    assert res.percentile == 1.0
    assert verdict_placebo(res).passed is True
    assert res.placebos.shape == (199,)


def test_placebo_cost_and_real_metric_hand_checked():
    pos = np.array([0.0, 1, 1, -1, -1, 0, 1, 1, 1, 0])
    ret = np.array([0.01, 0.02, -0.01, -0.02, 0.01, 0.0, 0.03, -0.01, 0.02, 0.01])
    c = 0.001
    strat = pos * ret - c * np.abs(np.diff(pos, prepend=0.0))
    res = placebo_pvalue(pos, ret, n=20, block=3, seed=0, cost_per_turnover=c)
    assert res.real == pytest.approx(strat.mean() / strat.std(ddof=1) * math.sqrt(252))
    a = placebo_pvalue(pos, ret, n=20, block=3, seed=0)
    b = placebo_pvalue(pos, ret, n=20, block=3, seed=0)
    np.testing.assert_array_equal(a.placebos, b.placebos)
    with pytest.raises(UserError, match="align"):
        placebo_pvalue(pos, ret[:-1])
    with pytest.raises(UserError, match="block"):
        placebo_pvalue(pos, ret, block=0)


def test_position_lag_evaluator_hand_worked():
    sig = np.array([1.0, -1.0, 1.0, 0.0, 1.0])
    ret = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    ev = position_lag_evaluator(sig, ret, metric=lambda pnl: float(pnl.sum()))
    # lag 0: position[t] = signal[t-1] -> 0, 1, -1, 1, 0 -> 0.2 - 0.3 + 0.4
    assert ev(0) == pytest.approx(0.3)
    # lag -1 (lookahead): position[t] = signal[t] -> 0.1 - 0.2 + 0.3 + 0 + 0.5
    assert ev(-1) == pytest.approx(0.7)
    # lag 2: position[t] = signal[t-3] -> 0, 0, 0, 1, -1 -> 0.4 - 0.5
    assert ev(2) == pytest.approx(-0.1)
    assert ev(10) == 0.0


@pytest.mark.parametrize("stale", [0, 1, 2])
def test_lookahead_data_peaks_at_a_negative_lag(stale):
    # The signal is built from the bar's own return (stale = 0) or an older one: its edge sits at lag
    # -(stale + 1), where the sweep hands it future data. On iid returns every honest lag is noise.
    rng = np.random.default_rng(40 + stale)
    ret = rng.normal(0.0, 0.01, 1500)
    sig = np.zeros_like(ret)
    sig[stale:] = np.sign(ret[: ret.size - stale])
    res = lag_sweep(position_lag_evaluator(sig, ret), range(-5, 6))
    assert res.peak_lag == -(stale + 1)
    assert res.lookahead_peak
    assert res.metric_at(res.peak_lag) > 10  # perfect foresight
    assert max(abs(res.metric_at(lag)) for lag in range(0, 6)) < 1.5
    v = verdict_lag(res)
    assert v.passed is False and f"peak at lag {-(stale + 1)} on the lookahead side" in v.text


def test_a_leaked_strategy_collapses_from_lag_0_to_lag_1():
    rng = np.random.default_rng(9)
    ret = rng.normal(0.0, 0.01, 1500)
    leaked = np.r_[np.sign(ret[1:]), 0.0]  # signal[t] = sign(ret[t+1]): the leak is already inside lag 0
    res = lag_sweep(position_lag_evaluator(leaked, ret), range(-3, 4))
    assert res.peak_lag == 0
    assert res.collapse_at_lag1
    assert not res.lookahead_peak
    assert "collapses from lag 0 to lag 1" in verdict_lag(res).text


def test_lag_sweep_flags_from_a_supplied_callback():
    table = {-2: 0.4, -1: 1.9, 0: 1.0, 1: 0.9, 2: 0.8}
    res = lag_sweep(table.__getitem__, table.keys())
    assert res.lags.tolist() == [-2, -1, 0, 1, 2]
    assert res.peak_lag == -1 and res.lookahead_peak and not res.collapse_at_lag1
    smooth = {-1: 1.2, 0: 1.0, 1: 0.9, 2: 0.8}
    ok = lag_sweep(smooth.__getitem__, smooth.keys())
    assert not ok.lookahead_peak and not ok.collapse_at_lag1
    assert verdict_lag(ok).passed is True
    with pytest.raises(KeyError, match="not swept"):
        ok.metric_at(5)
    with pytest.raises(UserError, match="empty"):
        lag_sweep(smooth.__getitem__, [])
