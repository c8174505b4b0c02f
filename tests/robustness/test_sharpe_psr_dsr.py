"""Sharpe, PSR, DSR, MinTRL: the papers' worked numbers, hand computations and Monte Carlo checks."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from runtime.contracts import UserError
from runtime.robustness import (
    dsr,
    effective_trials,
    expected_max_z,
    min_trl,
    moments,
    psr,
    sharpe,
    verdict_dsr,
    verdict_psr,
)


def test_sharpe_hand_worked():
    r = [0.01, -0.02, 0.03, 0.0]
    # mean 0.005; deviations .005 -.025 .025 -.005; sum of squares 1.3e-3 / 3 -> sd 0.0208167
    expected = statistics.mean(r) / statistics.stdev(r)
    assert expected == pytest.approx(0.005 / math.sqrt(1.3e-3 / 3))
    assert sharpe(r) == pytest.approx(expected, rel=1e-12)
    assert sharpe(r, 252) == pytest.approx(expected * math.sqrt(252), rel=1e-12)
    m = np.column_stack([r, np.array(r) * 2 + 0.001, np.zeros(4)])
    out = sharpe(m, 252)
    assert out[0] == pytest.approx(expected * math.sqrt(252))
    assert out[1] == pytest.approx(statistics.mean(m[:, 1]) / statistics.stdev(m[:, 1]) * math.sqrt(252))
    assert math.isnan(out[2])  # flat: missing, as the engine reports it
    assert math.isnan(sharpe([0.01]))


def test_moments_match_scipy_population_moments():
    r = np.random.default_rng(3).standard_t(5, 400) * 0.01
    sr, n, g3, g4 = moments(r)
    assert n == 400
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert g3 == pytest.approx(sps.skew(r, bias=True), rel=1e-10)
    assert g4 == pytest.approx(sps.kurtosis(r, fisher=False, bias=True), rel=1e-10)


def test_psr_hand_computation():
    sr, n, g3, g4, bench = 0.1, 500, -0.5, 5.0, 0.02
    # Z((0.1 - 0.02) * sqrt(499) / sqrt(1 + 0.5*0.1 + (5-1)/4 * 0.01)) = Z(0.08 * 22.338 / sqrt(1.06))
    z = 0.08 * math.sqrt(499) / math.sqrt(1 + 0.05 + 0.01)
    assert psr(sr, n, g3, g4, bench) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), rel=1e-12)
    assert psr(0.05, 100) == pytest.approx(sps.norm.cdf(0.05 * math.sqrt(99) / math.sqrt(1 + 0.5 * 0.05**2)))
    assert psr(0.0, 100) == pytest.approx(0.5)


def test_dsr_paper_example_bailey_lopez_de_prado_2014():
    # JPM 2014 numerical example: annual SR 2.5 from T = 1250 daily obs, skew -3, kurtosis 10, N = 100
    # trials with annualised variance of trial Sharpes 1/2; the paper reports SR0 = 0.1132 and DSR = 0.9004
    res = dsr(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert round(res.sr0, 4) == 0.1132
    assert round(res.dsr, 4) == 0.9004
    # hand: E[max] = (1-g) Z^-1(0.99) + g Z^-1(1 - 1/(100e))
    g = 0.5772156649
    e_max = (1 - g) * sps.norm.ppf(0.99) + g * sps.norm.ppf(1 - 1 / (100 * math.e))
    assert res.e_max_z == pytest.approx(e_max, rel=1e-9)
    assert res.sr0 == pytest.approx(math.sqrt(0.002) * e_max, rel=1e-9)
    assert verdict_dsr(res).text == "Sharpe not significant after 100 trials: DSR 0.90 < 0.95"
    assert verdict_dsr(res).passed is False


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_approximates_the_exact_expected_maximum(n_trials):
    # exact E[max of N iid N(0,1)] = integral of x * N * phi(x) * Phi(x)^(N-1)
    exact = integrate.quad(
        lambda x: x * n_trials * sps.norm.pdf(x) * sps.norm.cdf(x) ** (n_trials - 1), -12, 12, limit=200
    )[0]
    assert expected_max_z(n_trials) == pytest.approx(exact, rel=0.025)
    # and the max of N draws, simulated
    sims = np.random.default_rng(n_trials).standard_normal((4000, n_trials)).max(axis=1).mean()
    assert expected_max_z(n_trials) == pytest.approx(sims, rel=0.03)


def test_dsr_single_trial_is_psr_against_zero():
    res = dsr(0.08, 600, 0.2, 4.0, 1, 0.01)
    assert res.sr0 == 0.0
    assert res.dsr == pytest.approx(psr(0.08, 600, 0.2, 4.0, 0.0))


def test_min_trl_hand_and_inverse_of_psr():
    sr, g3, g4, bench, alpha = 0.12, -1.0, 6.0, 0.03, 0.05
    v = 1 + 1.0 * 0.12 + 5 / 4 * 0.0144
    expected = 1 + v * (sps.norm.ppf(0.95) / 0.09) ** 2
    got = min_trl(sr, g3, g4, bench, alpha)
    assert got == pytest.approx(expected, rel=1e-12)
    # at n = MinTRL the PSR is exactly 1 - alpha
    assert psr(sr, got, g3, g4, bench) == pytest.approx(0.95, abs=1e-12)
    assert min_trl(0.02, sr_benchmark=0.03) == math.inf


def test_sharpe_standard_error_formula_on_skewed_returns_monte_carlo():
    # Returns from a shifted gamma: skew 2/sqrt(k) = 1, kurtosis 3 + 6/k = 4.5; true per-period SR 0.3.
    k, t, sims = 4.0, 500, 4000
    rng = np.random.default_rng(11)
    z = (rng.gamma(k, 1.0, (sims, t)) - k) / math.sqrt(k)
    r = 0.003 + 0.01 * z
    true_sr = 0.3
    srs = r.mean(axis=1) / r.std(axis=1, ddof=1)
    se_formula = math.sqrt((1 - 1.0 * true_sr + (4.5 - 1) / 4 * true_sr**2) / (t - 1))
    assert srs.std(ddof=1) == pytest.approx(se_formula, rel=0.05)
    # the normal-returns formula would be off by more than that here (the test can tell them apart)
    assert abs(srs.std(ddof=1) / math.sqrt((1 + 0.5 * true_sr**2) / (t - 1)) - 1) > 0.10
    # PSR against the true SR, each sim with its own moment estimates: P(PSR > 0.95) ~ 5%
    pvals = []
    for row in r:
        s, n, g3, g4 = moments(row)
        pvals.append(psr(s, n, g3, g4, true_sr))
    rate = np.mean(np.array(pvals) > 0.95)
    assert 0.035 <= rate <= 0.075  # binomial sd of the rate over 4000 sims: 0.0035 (measured 0.0585)


def test_effective_trials_heuristic():
    rng = np.random.default_rng(5)
    common = rng.normal(size=(300, 1))
    m = 0.8 * common + 0.6 * rng.normal(size=(300, 10))
    c = np.corrcoef(m, rowvar=False)
    rho = c[~np.eye(10, dtype=bool)].mean()
    assert effective_trials(m) == pytest.approx(rho + (1 - rho) * 10)
    assert effective_trials(rng.normal(size=(300, 1))) == 1.0


def test_user_errors_name_the_fix():
    with pytest.raises(UserError, match="per-period Sharpe"):
        psr(1.0, 1250, skew=3.0, kurt=3.0)  # 1 - 3*1 + (3-1)/4 = -1.5: no valid standard error
    with pytest.raises(UserError, match="flat return series"):
        psr(*moments(np.zeros(50)))
    with pytest.raises(UserError, match="n_trials"):
        dsr(0.1, 100, 0, 3, 0, 0.01)
    with pytest.raises(UserError, match="alpha"):
        min_trl(0.1, alpha=1.5)
    assert verdict_psr(0.97).passed is True
    assert verdict_psr(0.5).text == "Sharpe not clearly above benchmark: PSR 0.50 < 0.95"
