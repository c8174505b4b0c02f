"""is_oos_gap and multiple_testing: the bundles the runtime calls, on planted-edge and noise studies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.contracts import UserError
from runtime.robustness import dsr, is_oos_gap, multiple_testing, pbo_cscv, psr


def test_gap_same_process_is_usually_inside_and_ratio_is_hand_checked():
    inside = []
    for s in range(30):
        rng = np.random.default_rng(s)
        x = rng.normal(0.001, 0.01, 700)
        res = is_oos_gap(x[:500], x[500:], n=150, seed=s)
        inside.append(res.inside)
        if s == 0:
            sr_is = x[:500].mean() / x[:500].std(ddof=1) * math.sqrt(252)
            sr_oos = x[500:].mean() / x[500:].std(ddof=1) * math.sqrt(252)
            assert res.is_sharpe == pytest.approx(sr_is)
            assert res.ratio == pytest.approx(sr_oos / sr_is)
            # bootstrapped at the OOS length (200): annualised Sharpe sd ~ sqrt(252 / 200) for iid returns
            assert res.is_distribution.std() == pytest.approx(math.sqrt(252 / 200), rel=0.2)
    assert np.mean(inside) >= 0.85


def test_gap_dead_oos_falls_below_the_band():
    rng = np.random.default_rng(3)
    is_r = rng.normal(0.002, 0.01, 750)  # IS Sharpe ~ 3.2 a year
    oos_r = rng.normal(-0.0005, 0.01, 250)
    res = is_oos_gap(is_r, oos_r, n=300, seed=1)
    assert not res.inside and res.percentile < 0.025 and res.ratio < 0.2
    with pytest.raises(UserError, match="oos_returns"):
        is_oos_gap(is_r, [np.nan, 0.1])


def test_multiple_testing_planted_edge_passes_every_check():
    rng = np.random.default_rng(12)
    m = rng.normal(0.0, 0.01, size=(1000, 30))
    m[:, 11] += 0.003
    res = multiple_testing(m, S=10, spa_reps=200, seed=0)
    assert res.best == 11
    srs = m.mean(axis=0) / m.std(axis=0, ddof=1)
    assert res.var_trial_sr == pytest.approx(np.var(srs, ddof=1))
    x = m[:, 11]
    d = x - x.mean()
    g3, g4 = np.mean(d**3) / np.mean(d**2) ** 1.5, np.mean(d**4) / np.mean(d**2) ** 2
    assert res.dsr.dsr == pytest.approx(dsr(srs[11], 1000, g3, g4, 30, np.var(srs, ddof=1)).dsr)
    assert res.psr == pytest.approx(psr(srs[11], 1000, g3, g4))
    assert res.pbo is not None and res.pbo.pbo == pbo_cscv(m, S=10).pbo
    assert res.dsr.dsr > 0.95 and res.pbo.pbo < 0.05 and res.spa is not None and res.spa.p_consistent < 0.05
    assert all(v.passed for v in res.verdicts), [v.text for v in res.verdicts]
    assert res.min_trl_years == pytest.approx(res.min_trl_periods / 252)


def test_multiple_testing_noise_study_fails_dsr():
    m = np.random.default_rng(13).normal(0.0, 0.01, size=(750, 50))
    res = multiple_testing(m, S=10, spa_reps=100, seed=0)
    assert res.psr > 0.5  # the best of 50 looks good on its own ...
    assert res.dsr.dsr < 0.95  # ... but not after 50 trials
    dv = next(v for v in res.verdicts if v.test == "dsr")
    assert dv.passed is False and "after 50 trials" in dv.text
    with pytest.raises(UserError, match="not a trial column"):
        multiple_testing(m, best=50)
