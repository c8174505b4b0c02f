"""CSCV PBO: against a plain materialising reference, on pure noise (~0.5) and with a dominant trial (~0)."""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import pytest
from scipy import stats as sps

from runtime.contracts import UserError
from runtime.robustness import pbo_cscv, verdict_pbo


def _reference_pbo(m: np.ndarray, s: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Bailey et al. step by step: materialise J and J-bar, Sharpe per column, rank with scipy."""
    m = m[m.shape[0] % s :]
    blocks = np.array_split(m, s)
    n = m.shape[1]
    logits, best = [], []
    for c in combinations(range(s), s // 2):
        j = np.vstack([blocks[i] for i in c])
        jbar = np.vstack([blocks[i] for i in range(s) if i not in c])
        r_is = j.mean(axis=0) / j.std(axis=0, ddof=1)
        r_oos = jbar.mean(axis=0) / jbar.std(axis=0, ddof=1)
        n_star = int(np.argmax(r_is))
        w = sps.rankdata(r_oos)[n_star] / (n + 1)
        logits.append(np.log(w / (1 - w)))
        best.append(n_star)
    lg = np.array(logits)
    return float(np.mean(lg <= 0)), lg, np.array(best)


def test_fast_path_equals_materialising_reference():
    rng = np.random.default_rng(7)
    m = rng.normal(0.0002, 0.01, size=(203, 7)) + rng.normal(0, 0.002, size=(203, 1))
    pbo_ref, logits_ref, best_ref = _reference_pbo(m, 8)
    res = pbo_cscv(m, S=8)
    assert res.n_splits == 70 and res.dropped_rows == 3 and res.n_periods == 200
    assert res.pbo == pbo_ref
    np.testing.assert_array_equal(res.best_trial, best_ref)
    np.testing.assert_allclose(res.logits, logits_ref, rtol=1e-10)
    assert res.rank_pairs.shape == (70, 2)
    assert not res.logits.flags.writeable  # a frozen record stays frozen


def test_callable_metric_path_equals_fast_path():
    m = np.random.default_rng(8).normal(size=(120, 5))

    def sharpe_cols(rows: np.ndarray) -> np.ndarray:
        return rows.mean(axis=0) / rows.std(axis=0, ddof=1)

    a, b = pbo_cscv(m, S=6), pbo_cscv(m, S=6, metric=sharpe_cols)
    assert a.pbo == b.pbo
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-10)
    assert b.metric == "sharpe_cols"
    mean_fast = pbo_cscv(m, S=6, metric="mean")
    mean_slow = pbo_cscv(m, S=6, metric=lambda rows: rows.mean(axis=0))
    np.testing.assert_allclose(mean_fast.logits, mean_slow.logits, rtol=1e-10)


def test_pure_noise_pbo_is_about_one_half():
    pbos = [pbo_cscv(np.random.default_rng(s).normal(0, 0.01, size=(480, 20)), S=10).pbo for s in range(40)]
    # one seed's PBO is very noisy (splits overlap); the mean of 40 seeds has sd ~0.04
    assert 0.4 <= np.mean(pbos) <= 0.6


def test_a_truly_dominant_trial_gives_pbo_near_zero():
    rng = np.random.default_rng(21)
    m = rng.normal(0, 0.01, size=(1000, 30))
    m[:, 4] += 0.004  # daily SR 0.4 against zero-mean rivals
    res = pbo_cscv(m, S=16)
    assert res.n_splits == 12870
    assert res.pbo < 0.02
    assert np.mean(res.best_trial == 4) > 0.95
    assert res.prob_oos_loss < 0.02
    v = verdict_pbo(res)
    assert v.passed is True and v.text.startswith("no sign of selection overfit: PBO 0.0")


def test_verdict_words_and_user_errors():
    res = pbo_cscv(np.random.default_rng(1).normal(size=(64, 4)), S=4)
    assert verdict_pbo(dataclasses.replace(res, pbo=0.62)).text == "likely overfit: PBO 0.62 > 0.5"
    with pytest.raises(UserError, match="even integer"):
        pbo_cscv(np.zeros((100, 3)), S=7)
    with pytest.raises(UserError, match="NaN"):
        pbo_cscv(np.full((100, 3), np.nan), S=4)
    with pytest.raises(UserError, match="705,432 splits; use S <= 20"):
        pbo_cscv(np.zeros((220, 3)), S=22)
    with pytest.raises(UserError, match="at least"):
        pbo_cscv(np.zeros((10, 1)), S=4)
