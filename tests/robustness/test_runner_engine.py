"""The robustness tests that re-run the kernel (lag sweep, placebo), the fold layout and the param_json
checks, on synthetic arrays: every asserted value is recomputed here with a plain numpy loop or scipy.

Futures accounting, close execution, zero costs: a discrete signal s[t] holds sign(s[t]) contracts from the
close of t, so the day-(t+1) net return is pos[t] * (close[t+1] - close[t]) / equity[t] (ENGINE.md 8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from runtime.config.robustness import check_test_params
from runtime.engine.contracts import ColumnSpec, CostSpec, ExecutionSpec, InstrumentSpec, Market, RunSpec
from runtime.robustness import engine_tests as et
from runtime.robustness.contracts import EngineInputs

CAPITAL = 10_000.0


def _inputs(close: np.ndarray, signal: np.ndarray) -> EngineInputs:
    T = len(close)
    column = ColumnSpec(
        execution=ExecutionSpec("close"),
        costs=CostSpec(price_model="mid", spread_type="none", slippage_type="none", commission_model="none"),
    )
    spec = RunSpec(instrument=InstrumentSpec("contracts", 1.0, 0.0), initial_capital=CAPITAL, trade_start=0)
    dates = np.arange(np.datetime64("2010-01-04"), np.datetime64("2010-01-04") + T).astype("datetime64[D]")
    return EngineInputs(Market(close=close), signal, column, spec, np.arange(T), dates)


def _walk(T: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.normal(0, 1.0, T))


def _reference_sharpe(close: np.ndarray, signal: np.ndarray) -> float:
    """Plain loop: position sign(signal[t]) from close t, PnL on day t+1, returns on previous equity."""
    pos = np.sign(np.nan_to_num(signal))
    eq = CAPITAL
    rets = [0.0]
    for t in range(1, len(close)):
        pnl = pos[t - 1] * (close[t] - close[t - 1])
        rets.append(pnl / eq)
        eq += pnl
    r = np.array(rets)
    return float(r.mean() / r.std(ddof=1) * np.sqrt(252))


def test_lag_sweep_matches_a_plain_loop_and_peaks_at_the_leaked_lag() -> None:
    T = 600
    close = _walk(T, 11)
    # the signal is yesterday's return sign: no edge on a random walk at lags >= 0, but moved 2 rows earlier
    # (lag -2, deliberate lookahead data) it holds the sign of the very return it earns: perfect foresight
    fwd = np.full(T, np.nan)
    fwd[2:] = np.sign(close[1:-1] - close[:-2])
    inp = _inputs(close, fwd)
    res = et.lag_sweep(inp, {"min": -4, "max": 4, "peak_margin": 0.5, "collapse_ratio": 0.5})
    tab = res.tables["lag_sweep"]
    for lag, sh in zip(tab["lag"], tab["sharpe"], strict=True):
        shifted = np.full(T, np.nan)
        if lag >= 0:
            shifted[lag:] = fwd[: T - lag]
        else:
            shifted[:lag] = fwd[-lag:]
        assert sh == pytest.approx(_reference_sharpe(close, shifted), rel=1e-9, abs=1e-12)
    assert res.numbers["peak_lag"] == -2 == int(tab["lag"][tab["sharpe"].idxmax()])
    assert res.numbers["lookahead_peak"] is True
    assert tab.loc[tab["lag"] < 0, "lookahead"].all() and not tab.loc[tab["lag"] >= 0, "lookahead"].any()
    assert res.level == "warn"


def test_lag_sweep_flags_a_signal_that_knows_tomorrow() -> None:
    """sign of the next day's return, executed at the close: lag 0 is perfect, lag 1 collapses."""
    T = 500
    close = _walk(T, 5)
    nxt = np.full(T, np.nan)
    nxt[:-1] = np.sign(np.diff(close))
    res = et.lag_sweep(_inputs(close, nxt), {"min": -3, "max": 3, "peak_margin": 0.5, "collapse_ratio": 0.5})
    assert res.numbers["peak_lag"] == 0
    assert res.numbers["collapse_at_lag1"] is True
    assert res.numbers["sharpe_lag0"] == pytest.approx(_reference_sharpe(close, nxt), rel=1e-9)


def _random_signal(T: int, rng: np.random.Generator) -> np.ndarray:
    """Random positions held for random stretches (a timing-free strategy)."""
    out = np.empty(T)
    t = 0
    while t < T:
        k = int(rng.integers(3, 15))
        out[t : t + k] = rng.choice([-1.0, 0.0, 1.0])
        t += k
    return out


def test_placebo_pvalues_of_random_strategies_are_roughly_uniform() -> None:
    pvals = []
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        T = 400
        close = 100.0 + np.cumsum(rng.normal(0, 1.0, T))
        res = et.placebo_shuffle(
            _inputs(close, _random_signal(T, rng)), {"n": 49, "seed": seed, "block": 10, "metric": "sharpe"}
        )
        pvals.append(res.numbers["pvalue"])
    ks = sps.kstest(pvals, "uniform")
    assert ks.pvalue > 0.01, (ks, sorted(pvals))


def test_placebo_numbers_recompute_from_its_table_and_are_deterministic() -> None:
    rng = np.random.default_rng(3)
    T = 300
    close = 100.0 + np.cumsum(rng.normal(0, 1.0, T))
    sig = _random_signal(T, rng)
    p = {"n": 60, "seed": 9, "block": 15, "metric": "sharpe"}
    a, b = et.placebo_shuffle(_inputs(close, sig), p), et.placebo_shuffle(_inputs(close, sig), p)
    va = a.tables["placebo_shuffle"]["value"].to_numpy()
    np.testing.assert_array_equal(va, b.tables["placebo_shuffle"]["value"].to_numpy())
    real = _reference_sharpe(close, sig)
    assert a.numbers["real"] == pytest.approx(real, rel=1e-9)
    assert a.numbers["pvalue"] == pytest.approx((1 + np.sum(va >= a.numbers["real"])) / (len(va) + 1))
    # each placebo keeps the exposure: the shuffled signal uses every value once
    idx = et.stats.block_shuffle_index(T, 15, np.random.default_rng(9), 60)
    assert sorted(sig[idx[0]].tolist()) == sorted(sig.tolist())
    assert va[0] == pytest.approx(_reference_sharpe(close, sig[idx[0]]), rel=1e-9)


@pytest.mark.parametrize(
    ("kw", "n"),
    [
        ({"folds": 5}, 1200),
        ({"folds": 4, "anchored": False}, 1000),
        ({"folds": 3, "purge_days": 7, "embargo_days": 3}, 900),
        ({"folds": 4, "test_months": 6, "train_months": 12, "anchored": False, "purge_days": 5}, 1500),
        ({"folds": 3, "test_months": 12, "anchored": True, "purge_days": 10}, 1500),
    ],
)
def test_folds_never_train_on_their_test_window(kw: dict, n: int) -> None:
    dates = np.busday_offset(np.datetime64("2010-01-04"), np.arange(n), roll="forward").astype(
        "datetime64[D]"
    )
    folds = et.fold_windows(dates, **kw)
    assert len(folds) == kw["folds"]
    purge = kw.get("purge_days", 0)
    for k, f in enumerate(folds):
        train = set(range(f["train_start"], f["train_end"]))
        test = set(range(f["test_start"], f["test_end"]))
        assert train and test and not (train & test)
        assert max(train) < min(test)  # training strictly before its test window
        assert min(test) - max(train) - 1 == purge  # exactly purge_days sessions removed before the test
        if k:
            assert f["test_start"] == folds[k - 1]["test_end"]  # test windows tile the range
            later = set().union(*(range(g["test_start"], g["test_end"]) for g in folds[k:]))
            assert not (train & later)  # never trained on this or a later test window
    assert folds[-1]["test_end"] == n
    if "test_months" in kw:
        first = dates[folds[0]["test_start"]]
        assert (
            str(first)[:7]
            <= str(dates[-1] - np.timedelta64(kw["test_months"] * kw["folds"] * 30 - 40, "D"))[:7]
        )


def test_fold_windows_refuse_too_many_folds() -> None:
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-11")).astype("datetime64[D]")
    with pytest.raises(ValueError, match="fewer folds"):
        et.fold_windows(dates, 8)


def test_purge_embargo_numbers_recompute_from_the_returns() -> None:
    rng = np.random.default_rng(4)
    r = rng.normal(0.0005, 0.01, 800)
    dates = np.arange(np.datetime64("2012-01-02"), np.datetime64("2012-01-02") + 800).astype("datetime64[D]")
    res = et.purge_embargo(r, dates, 600, {"purge_days": 5, "embargo_days": 7, "folds": 3})
    sh = lambda x: x.mean() / x.std(ddof=1) * np.sqrt(252)  # noqa: E731
    assert res.numbers["oos_sharpe_raw"] == pytest.approx(sh(r[600:]))
    assert res.numbers["oos_sharpe_purged"] == pytest.approx(sh(r[607:]))
    t = res.tables["purge_embargo"]
    row = t[(t.split == "is_oos") & (t.variant == "purged") & (t.side == "train") & (t.metric == "days")]
    assert row["value"].iloc[0] == 595


def test_block_bootstrap_numbers_are_the_percentiles_of_its_draws() -> None:
    r = np.random.default_rng(8).normal(0.0004, 0.01, 700)
    p = {"n": 300, "method": "circular", "block": 5.0, "seed": 2, "level": 0.9, "segment": "full"}
    res = et.block_bootstrap(r, None, p)
    t = res.tables["block_bootstrap"]
    for m in ("sharpe", "total_return", "max_drawdown"):
        v = t.loc[t.metric == m, "value"].to_numpy()
        assert len(v) == 300
        lo, hi = np.percentile(v, [5, 95])
        assert res.numbers[f"{m}_low"] == pytest.approx(lo)
        assert res.numbers[f"{m}_high"] == pytest.approx(hi)
    v = t.loc[t.metric == "sharpe", "value"].to_numpy()
    assert res.numbers["prob_sharpe_le_0"] == pytest.approx(np.mean(v <= 0))
    assert res.numbers["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))
    again = et.block_bootstrap(r, None, p)
    np.testing.assert_array_equal(again.tables["block_bootstrap"]["value"], t["value"])


def test_regimes_recompute_per_label() -> None:
    r = np.random.default_rng(6).normal(0.0, 0.01, 500)
    lab = np.array(["a" if i % 3 else "b" for i in range(500)], dtype=object)
    lab[0] = None
    res = et.regimes(r, {"k": lab})
    t = res.tables["regimes"]
    for name in ("a", "b"):
        x = r[lab == name]
        got = t[(t.regime == name) & (t.metric == "sharpe")]["value"].iloc[0]
        assert got == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(252))
        assert t[(t.regime == name) & (t.metric == "days")]["value"].iloc[0] == len(x)


def test_param_json_checks_name_the_key_and_fill_defaults() -> None:
    p, probs = check_test_params("placebo_shuffle", {"n": 50})
    assert probs == [] and p["n"] == 50 and p["block"] == 20 and p["seed"] == 0
    _, probs = check_test_params("placebo_shuffle", {"nn": 50})
    assert probs[0][0] == "nn" and "did you mean 'n'" in probs[0][1]
    _, probs = check_test_params("block_bootstrap", {"method": "iid"})
    assert probs[0][0] == "method" and "stationary, circular" in probs[0][1]
    _, probs = check_test_params("multiple_testing", {"S": 7})
    assert "even" in probs[0][1]
    _, probs = check_test_params("no_such_test", {})
    assert probs[0][0] == "test_id"
    _, probs = check_test_params("lag_sweep", {"min": 5, "max": -5})
    assert "swap" in probs[0][1]
    p, probs = check_test_params("cost_sensitivity", {"multiples": [3, 0, 1]})
    assert probs == [] and p["multiples"] == [0.0, 1.0, 3.0]


def test_sensitivity_tables_hold_numeric_and_categorical_parameters(tmp_path: Path) -> None:
    """One table for every parameter: numbers in `value`, every value as text in `label` (parquet-safe)."""
    curves = {
        "window": ([20, 40, 60], np.array([0.1, 0.5, 0.45]), 40),
        "mode": (["fast", "slow"], np.array([0.2, 0.3]), "fast"),
    }
    res = et.sensitivity_1d(curves, "sharpe", "is", 0.1)
    t = res.tables["sensitivity_1d"]
    t.to_parquet(tmp_path / "s.parquet")
    back = pd.read_parquet(tmp_path / "s.parquet")
    assert back["label"].tolist() == ["20", "40", "60", "fast", "slow"]
    assert back["value"].tolist()[:3] == [20.0, 40.0, 60.0] and back["value"][3:].isna().all()
    # window: best 0.5 at 40, neighbours 0.1 (out) and 0.45 (within 10%): score 1/2
    assert res.numbers["stability.window"] == 0.5 and res.numbers["best.window"] == 40
    assert res.numbers["stability.mode"] == 0.0
    assert res.numbers["stability_score"] == 0.25
