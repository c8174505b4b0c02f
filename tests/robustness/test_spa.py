"""SPA / Reality Check: high p for noise, low for a planted edge; p-values re-derived from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import SPA, StationaryBootstrap

from runtime.contracts import UserError
from runtime.robustness import long_run_variance, spa_test, verdict_spa


def test_noise_trials_do_not_reject():
    ps = []
    for s in range(20):
        m = np.random.default_rng(s).normal(0.0, 0.01, size=(300, 10))
        ps.append(spa_test(m, reps=100, seed=s).p_consistent)
    ps = np.array(ps)
    # zero-mean trials sit on the null's boundary: p is roughly uniform, so "high" means on average
    assert np.sum(ps < 0.05) <= 2
    assert ps.mean() > 0.35


def test_planted_edge_rejects_and_is_named():
    for s in range(4):
        rng = np.random.default_rng(100 + s)
        m = rng.normal(0.0, 0.01, size=(500, 20))
        m[:, 7] += 0.003  # daily SR 0.3 (t ~ 6.7)
        res = spa_test(m, reps=200, seed=s, stepm=True)
        assert res.p_consistent < 0.01
        assert res.p_reality_check < 0.05
        assert 7 in res.better_models
        assert res.superior_models is not None and 7 in res.superior_models
        assert verdict_spa(res).passed is True


def test_reality_check_pvalue_equals_whites_formula_on_the_same_draws():
    rng = np.random.default_rng(3)
    m = rng.normal(0.0002, 0.01, size=(300, 6))
    bench = rng.normal(0.0, 0.005, 300)
    res = spa_test(m, bench, block=5.0, reps=200, seed=42)
    d = m - bench[:, None]  # f_k,t = L0 - Lk with losses = -returns
    fbar = d.mean(axis=0)
    v = math.sqrt(300) * fbar.max()
    bs = StationaryBootstrap(5.0, d, seed=42)
    v_star = np.array([math.sqrt(300) * (pos[0].mean(axis=0) - fbar).max() for pos, _ in bs.bootstrap(200)])
    assert res.p_reality_check == pytest.approx(np.mean(v_star > v))


def test_studentized_spa_equals_hansens_statistic_on_the_same_draws():
    rng = np.random.default_rng(4)
    m = rng.normal(0.0, 1.0, size=(400, 5)) * np.array([0.005, 0.01, 0.02, 0.01, 0.03])
    m[:, 1] += 0.0015
    res = spa_test(m, block=4.0, reps=200, seed=7)
    # omega_k from arch's own (loop) estimator must equal ours (FFT)
    peer = SPA(np.zeros((400, 1)), -m, block_size=4.0, reps=10, seed=0)
    peer._compute_variance()
    omega2 = long_run_variance(m, 4.0)
    np.testing.assert_allclose(omega2, peer._loss_diff_var, rtol=1e-9)
    # Hansen: T = max_k mean(d_k)/omega_k; consistent re-centring keeps mean_k where
    # sqrt(n) mean_k / omega_k >= -sqrt(2 ln ln n), else 0
    n = 400
    z = m / np.sqrt(omega2)
    zbar = z.mean(axis=0)
    keep = zbar >= -np.sqrt(2 * np.log(np.log(n)) / n)
    mu_c = np.where(keep, zbar, 0.0)
    bs = StationaryBootstrap(4.0, z, seed=7)
    t_star = np.array([(pos[0].mean(axis=0) - mu_c).max() for pos, _ in bs.bootstrap(200)])
    assert res.p_consistent == pytest.approx(np.mean(t_star > zbar.max()))


@pytest.mark.parametrize(
    ("kind", "block", "studentize"), [("stationary", 4.0, True), ("circular", None, False)]
)
def test_fast_method_equals_arch_classes(kind, block, studentize):
    rng = np.random.default_rng(6)
    m = rng.normal(0.0, 0.01, size=(400, 12))
    m[:, 3] += 0.0025
    m[:, 8] += 0.0012
    fast = spa_test(m, kind=kind, block=block, reps=200, seed=11, studentize=studentize)
    ref = spa_test(m, kind=kind, block=block, reps=200, seed=11, studentize=studentize, method="arch")
    assert fast == ref  # every p-value, the block, and better_models
    assert 3 in fast.better_models


def test_deterministic_and_user_errors():
    m = np.random.default_rng(9).normal(size=(200, 4))
    assert spa_test(m, reps=100, seed=1) == spa_test(m, reps=100, seed=1)
    flat = spa_test(np.zeros((200, 3)), reps=50)  # every trial is the (flat) benchmark: nothing beats it
    assert flat.p_consistent == 1.0 and flat.p_reality_check == 1.0 and flat.better_models == ()
    with pytest.raises(UserError, match="align"):
        spa_test(m, np.zeros(199))
    with pytest.raises(UserError, match="NaN"):
        spa_test(np.where(m > 2.5, np.nan, m))
