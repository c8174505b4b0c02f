"""Block-bootstrap CIs: nominal coverage of the true Sharpe over seeds, hand-checked statistics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import optimal_block_length

from runtime.contracts import UserError
from runtime.robustness import bootstrap_ci, max_drawdown, total_return, verdict_bootstrap


def _ar1(rng: np.random.Generator, n: int, phi: float, mu: float, sigma: float) -> np.ndarray:
    e = rng.normal(0.0, sigma, n + 200)
    y = np.empty_like(e)
    y[0] = e[0]
    for i in range(1, e.size):
        y[i] = phi * y[i - 1] + e[i]
    return mu + y[200:]


def _coverage(kind: str, make, true_sr: float, seeds: int = 200) -> float:
    hits = 0
    for s in range(seeds):
        x = make(np.random.default_rng(1000 + s))
        ci = bootstrap_ci(x, "sharpe", kind=kind, n=200, seed=s, level=0.90).intervals["sharpe"]
        hits += ci.low <= true_sr <= ci.high
    return hits / seeds


def test_stationary_bootstrap_covers_true_sharpe_of_ar1_series():
    phi, mu, sigma = 0.3, 0.001, 0.01
    true_sr = mu / (sigma / math.sqrt(1 - phi**2)) * math.sqrt(252)  # stationary sd of the AR(1) part
    cov = _coverage("stationary", lambda rng: _ar1(rng, 500, phi, mu, sigma), true_sr)
    assert 0.82 <= cov <= 0.97


def test_circular_bootstrap_covers_true_sharpe_of_iid_series():
    true_sr = 0.001 / 0.01 * math.sqrt(252)
    cov = _coverage("circular", lambda rng: rng.normal(0.001, 0.01, 500), true_sr)
    assert 0.82 <= cov <= 0.97


def test_statistics_on_the_original_series_match_hand_computations():
    r = np.array([0.10, -0.20, 0.05, 0.10, -0.05, 0.02, 0.0, 0.01])
    # equity 1.1, 0.88, 0.924, 1.0164, 0.96558, ...: peak 1.1, trough 0.88 -> drawdown 0.2
    eq, peak, dd = 1.0, 1.0, 0.0
    for v in r:
        eq *= 1 + v
        peak = max(peak, eq)
        dd = max(dd, (peak - eq) / peak)
    assert dd == pytest.approx(0.2)
    assert max_drawdown(r) == pytest.approx(dd)
    assert total_return(r) == pytest.approx(np.prod(1 + r) - 1)
    assert max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(0.1)  # the start (equity 1) is a peak
    res = bootstrap_ci(r, n=50, seed=1, block=2.0)
    assert res.intervals["max_drawdown"].estimate == pytest.approx(dd)
    assert res.intervals["total_return"].estimate == pytest.approx(np.prod(1 + r) - 1)
    assert res.intervals["sharpe"].estimate == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert res.distributions["sharpe"].shape == (50,)
    assert not res.distributions["sharpe"].flags.writeable


def test_block_length_comes_from_arch_and_results_are_deterministic():
    x = np.random.default_rng(4).normal(0.0005, 0.01, 600)
    a = bootstrap_ci(x, n=100, seed=9)
    b = bootstrap_ci(x, n=100, seed=9)
    c = bootstrap_ci(x, n=100, seed=10)
    assert a.block_from_data and a.block == max(1.0, float(optimal_block_length(x)["stationary"].iloc[0]))
    np.testing.assert_array_equal(a.distributions["sharpe"], b.distributions["sharpe"])
    assert not np.array_equal(a.distributions["sharpe"], c.distributions["sharpe"])
    circ = bootstrap_ci(x, n=100, seed=9, kind="circular", block=7.4)
    assert circ.block == 7.0 and not circ.block_from_data


def test_probability_sharpe_le_zero():
    rng = np.random.default_rng(2)
    strong = bootstrap_ci(rng.normal(0.003, 0.01, 500), "sharpe", n=300, seed=1)  # daily SR 0.3, t ~ 6.7
    assert strong.prob_sharpe_le_0 == 0.0
    assert verdict_bootstrap(strong).passed is True
    # zero true Sharpe: the share of resamples <= 0 averages about one half over seeds
    probs = [
        bootstrap_ci(rng.normal(0.0, 0.01, 300), "sharpe", n=100, seed=s).prob_sharpe_le_0 for s in range(40)
    ]
    assert 0.38 <= np.mean(probs) <= 0.62
    weak = bootstrap_ci(rng.normal(0.0, 0.01, 300), "sharpe", n=100, seed=3)
    assert verdict_bootstrap(weak).text.startswith("edge not robust to resampling: P(Sharpe <= 0) ")


def test_callable_stat_and_user_errors():
    x = np.random.default_rng(6).normal(0.001, 0.01, 200)

    def mean_return(a: np.ndarray) -> np.ndarray:
        return a.mean(axis=-1)

    res = bootstrap_ci(x, mean_return, n=200, seed=0, level=0.9)
    iv = res.intervals["mean_return"]
    assert iv.estimate == pytest.approx(x.mean())
    assert iv.low < x.mean() < iv.high
    assert res.prob_sharpe_le_0 is None
    with pytest.raises(UserError, match="NaN"):
        bootstrap_ci(np.r_[x, np.nan])
    with pytest.raises(UserError, match="'stationary' or 'circular'"):
        bootstrap_ci(x, kind="moving")
    with pytest.raises(UserError, match="unknown"):
        bootstrap_ci(x, "sortino")
