"""The issue-12 tests as functions over engine inputs and results: one function per ROBUSTNESS test_id.

Why this layer: the statistics (stats.py) are pure numpy; the runner (runner.py) loads, compiles and calls
run_param_sets. In between, each test here takes what the engine gives (EngineInputs: the kernel's arrays
of one evaluated backtest, daily net returns, a ManyOutcome's metrics) and returns a TestResult (numbers,
a verdict in plain words, tidy tables for the report). Functions that re-run the kernel (lag_sweep,
placebo_shuffle) call runtime.engine.kernel.run_many directly on altered signals, never the loader, so
they run on synthetic arrays in tests. Table columns per test: design/ROBUSTNESS.md section 11.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from runtime.engine.contracts import METRIC_NAMES, SEGMENTS, Gates, ManyResult, RunResult
from runtime.engine.kernel import run_many, run_one
from runtime.robustness import stats
from runtime.robustness.contracts import EngineInputs, TestResult, Verdict

# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def clean(v: Any) -> Any:
    """A JSON-safe scalar: numpy scalars to Python, NaN/inf to None, floats to 12 significant digits."""
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return float(f"{f:.12g}") if math.isfinite(f) else None
    return v


def _numbers(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: clean(v) for k, v in d.items()}


def level_of(v: Verdict, fail: bool = False) -> str:
    """stats' Verdict -> a contract level: True pass, False warn (fail when a red flag), None info."""
    if v.passed is None:
        return "info"
    if v.passed:
        return "pass"
    return "fail" if fail else "warn"


def skipped(test_id: str, why: str) -> TestResult:
    return TestResult(test_id, "skipped", "info", f"skipped: {why}", {}, note=why)


def _ann(inputs: EngineInputs) -> float:
    return float(inputs.spec.annualization_factor)


def run_inputs(inputs: EngineInputs, signal: np.ndarray | None = None) -> RunResult:
    """The kernel on the inputs (optionally another signal), paths kept."""
    return run_one(
        inputs.market,
        inputs.signal if signal is None else signal,
        inputs.column,
        inputs.spec,
        scaling=inputs.scaling,
        gates=inputs.gates,
    )


def _many(
    inputs: EngineInputs,
    signals: np.ndarray,
    scaling: np.ndarray | None = None,
    entry: np.ndarray | None = None,
    frozen: np.ndarray | None = None,
) -> ManyResult:
    """run_many over K signal columns; per-column scaling / gate masks when given as T x K."""
    K = signals.shape[1]
    g = inputs.gates
    gates, gidx = None, None
    if entry is not None:
        gates, gidx = (
            Gates(np.asfortranarray(entry), None if frozen is None else np.asfortranarray(frozen)),
            list(range(K)),
        )
    elif g is not None:
        e = np.asarray(g.entry_ok, dtype=float).reshape(-1, 1)
        f = None if g.frozen is None else np.asarray(g.frozen, dtype=float).reshape(-1, 1)
        gates, gidx = Gates(e, f), [0] * K
    sidx = None
    if scaling is not None:
        sidx = list(range(K))
    elif inputs.scaling is not None:
        scaling, sidx = np.asarray(inputs.scaling, dtype=float).reshape(-1, 1), [0] * K
    return run_many(
        inputs.market,
        np.asfortranarray(signals),
        inputs.column,
        inputs.spec,
        scaling=None if scaling is None else np.asfortranarray(scaling),
        scale_idx=sidx,
        gates=gates,
        gate_idx=gidx,
        chunk=256,
    )


def _metric(res: ManyResult, name: str, segment: str = "full") -> np.ndarray:
    return res.metrics[:, SEGMENTS.index(segment), METRIC_NAMES.index(name)]


def _split_metrics(r: np.ndarray, ann: float) -> dict[str, float]:
    """Sharpe, mean, total return and max drawdown of a daily return series (compounded from 1)."""
    if r.size == 0:
        return {
            "sharpe": math.nan,
            "mean_return": math.nan,
            "total_return": math.nan,
            "max_drawdown": math.nan,
            "days": 0,
        }
    return {
        "sharpe": float(stats.sharpe(r, ann)) if r.size >= 2 else math.nan,
        "mean_return": float(r.mean()),
        "total_return": float(np.prod(1 + r) - 1),
        "max_drawdown": float(stats.max_drawdown(r)),
        "days": int(r.size),
    }


# --------------------------------------------------------------------------------------------------
# is_oos_gap
# --------------------------------------------------------------------------------------------------


def is_oos_gap(
    returns: np.ndarray,
    oos_start: int | None,
    metrics: Mapping[str, Mapping[str, float]],
    p: Mapping[str, Any],
    ann: float = 252.0,
) -> TestResult:
    """IS vs OOS metrics side by side, OOS/IS Sharpe and the OOS Sharpe's place in the IS bootstrap."""
    tid = "is_oos_gap"
    if oos_start is None or oos_start >= len(returns):
        return skipped(tid, "the backtest has no OOS window (BACKTESTS.oos_last_x_months = 0)")
    if oos_start < 20 or len(returns) - oos_start < 2:
        return skipped(tid, f"{oos_start} IS and {len(returns) - oos_start} OOS sessions: too few to compare")
    g = stats.is_oos_gap(
        returns[:oos_start], returns[oos_start:], ann, p["method"], p["block"], p["n"], p["seed"], p["level"]
    )
    table = pd.DataFrame(
        {"metric": list(METRIC_NAMES), "is": [metrics["is"][m] for m in METRIC_NAMES],
         "oos": [metrics["oos"][m] for m in METRIC_NAMES]}
    )  # fmt: skip
    ratio = g.ratio
    lo_pct = (1 - g.level) / 2
    if g.inside:
        level, text = (
            "pass",
            f"OOS Sharpe {g.oos_sharpe:.2f} is inside the IS bootstrap band (IS {g.is_sharpe:.2f})",
        )
    elif g.percentile < lo_pct:
        level, text = (
            "fail",
            (
                f"OOS Sharpe {g.oos_sharpe:.2f} is below the IS bootstrap band (percentile {g.percentile:.1%}, "
                f"IS {g.is_sharpe:.2f}): the IS edge did not carry over"
            ),
        )
    else:
        level, text = (
            "pass",
            f"OOS Sharpe {g.oos_sharpe:.2f} is above the IS bootstrap band (IS {g.is_sharpe:.2f})",
        )
    dist = np.asarray(g.is_distribution)
    fin = dist[np.isfinite(dist)]
    band = np.percentile(fin, [lo_pct * 100, (1 - lo_pct) * 100]) if fin.size else [math.nan, math.nan]
    nums = {
        "is_sharpe": g.is_sharpe, "oos_sharpe": g.oos_sharpe, "ratio": ratio, "percentile": g.percentile,
        "inside": g.inside, "band_low": band[0], "band_high": band[1], "level": g.level, "block": g.block,
        "n": g.n, "seed": g.seed, "is_days": oos_start, "oos_days": len(returns) - oos_start,
    }  # fmt: skip
    return TestResult(tid, "ok", level, text, _numbers(nums), {tid: table})


# --------------------------------------------------------------------------------------------------
# block_bootstrap
# --------------------------------------------------------------------------------------------------


def block_bootstrap(
    returns: np.ndarray, oos_start: int | None, p: Mapping[str, Any], ann: float = 252.0
) -> TestResult:
    """Block-bootstrap CIs of Sharpe, total return and max drawdown of the daily net returns."""
    tid = "block_bootstrap"
    seg = p["segment"]
    r = returns
    if seg != "full":
        if oos_start is None:
            return skipped(tid, f"segment {seg} needs an OOS split; the backtest has none")
        r = returns[:oos_start] if seg == "is" else returns[oos_start:]
    if r.size < 20:
        return skipped(tid, f"{r.size} daily returns in segment {seg}: too few to resample (need 20)")
    res = stats.bootstrap_ci(r, kind=p["method"], block=p["block"], n=p["n"], seed=p["seed"], level=p["level"],
                             periods_per_year=ann)  # fmt: skip
    v = stats.verdict_bootstrap(res)
    rows = []
    nums: dict[str, Any] = {"segment": seg, "level": res.level, "block": res.block, "n": res.n, "seed": res.seed,
                            "block_from_data": res.block_from_data, "prob_sharpe_le_0": res.prob_sharpe_le_0,
                            "days": int(r.size)}  # fmt: skip
    for name, ci in res.intervals.items():
        nums[name] = ci.estimate
        nums[f"{name}_low"] = ci.low
        nums[f"{name}_high"] = ci.high
        d = np.asarray(res.distributions[name])
        rows.append(pd.DataFrame({"metric": name, "draw": np.arange(d.size), "value": d}))
    return TestResult(
        tid, "ok", level_of(v), v.text, _numbers(nums), {tid: pd.concat(rows, ignore_index=True)}
    )


# --------------------------------------------------------------------------------------------------
# placebo_shuffle
# --------------------------------------------------------------------------------------------------


def placebo_shuffle(inputs: EngineInputs, p: Mapping[str, Any]) -> TestResult:
    """The real run against n copies whose decision inputs are block-shuffled, each run through the kernel.

    The signal, the scaling series and the gate masks of each decision row move together (one permutation
    of whole blocks of rows, stats.block_shuffle_index), the prices stay: the position distribution and
    holding periods are kept (up to the trading rules), only the timing against the prices is destroyed.
    p = (1 + #placebo >= real) / (n + 1).
    """
    tid = "placebo_shuffle"
    metric = p["metric"]
    T = len(inputs.signal)
    rng = np.random.default_rng(int(p["seed"]))
    idx = stats.block_shuffle_index(T, int(p["block"]), rng, int(p["n"]))  # n x T
    sig = np.asarray(inputs.signal, dtype=float)
    signals = sig[idx].T
    scaling = None if inputs.scaling is None else np.asarray(inputs.scaling, dtype=float)[idx].T
    entry = frozen = None
    if inputs.gates is not None:
        entry = np.asarray(inputs.gates.entry_ok, dtype=float)[idx].T
        if inputs.gates.frozen is not None:
            frozen = np.asarray(inputs.gates.frozen, dtype=float)[idx].T
    placebos = _metric(_many(inputs, signals, scaling, entry, frozen), metric)
    real_res = run_inputs(inputs)
    real = float(real_res.metrics["full"][metric])
    fin = placebos[np.isfinite(placebos)]
    pv = (1.0 + float(np.sum(fin >= real))) / (fin.size + 1.0)
    pct = float(np.mean(fin < real)) if fin.size else math.nan
    res = stats.PlaceboResult(pv, pct, real, placebos, int(p["n"]), int(p["block"]), int(p["seed"]))
    v = stats.verdict_placebo(res)
    nums = {"metric": metric, "real": real, "pvalue": pv, "percentile": pct, "n": int(p["n"]), "block": int(p["block"]),
            "seed": int(p["seed"]), "placebo_mean": float(np.mean(fin)) if fin.size else math.nan}  # fmt: skip
    table = pd.DataFrame({"draw": np.arange(placebos.size), "value": placebos})
    return TestResult(tid, "ok", level_of(v), v.text, _numbers(nums), {tid: table})


# --------------------------------------------------------------------------------------------------
# lag_sweep
# --------------------------------------------------------------------------------------------------


def shift_signal(signal: np.ndarray, lag: int) -> np.ndarray:
    """signal delayed by `lag` rows (negative = moved earlier: future values, a lookahead placebo); the
    rows left without a value are NaN (= flat for the kernel)."""
    s = np.asarray(signal, dtype=float)
    out = np.full(s.shape, np.nan)
    if lag >= 0:
        if lag < s.size:
            out[lag:] = s[: s.size - lag]
    elif -lag < s.size:
        out[:lag] = s[-lag:]
    return out


def lag_sweep(inputs: EngineInputs, p: Mapping[str, Any]) -> TestResult:
    """The signal executed with extra lags min..max through the kernel (one run_many call); negative lags
    are a deliberate lookahead placebo, computed only here and labelled `lookahead` in the table."""
    tid = "lag_sweep"
    lags = np.arange(int(p["min"]), int(p["max"]) + 1)
    if 0 not in lags:
        lags = np.sort(np.append(lags, 0))
    signals = np.column_stack([shift_signal(inputs.signal, int(lg)) for lg in lags])
    res = _many(inputs, signals)
    sh = _metric(res, "sharpe")
    pnl = _metric(res, "total_pnl")
    by_lag = dict(zip(lags.tolist(), sh.tolist(), strict=True))
    lr = stats.lag_sweep(lambda lg: by_lag[lg], lags.tolist(), p["peak_margin"], p["collapse_ratio"])
    v = stats.verdict_lag(lr)
    table = pd.DataFrame({"lag": lags, "sharpe": sh, "total_pnl": pnl, "lookahead": lags < 0})
    nums = {"metric": "sharpe", "peak_lag": lr.peak_lag, "lookahead_peak": lr.lookahead_peak,
            "collapse_at_lag1": lr.collapse_at_lag1, "sharpe_lag0": by_lag.get(0), "sharpe_lag1": by_lag.get(1),
            "min": int(lags.min()), "max": int(lags.max())}  # fmt: skip
    return TestResult(tid, "ok", level_of(v), v.text, _numbers(nums), {tid: table})


# --------------------------------------------------------------------------------------------------
# Folds (walk_forward, purge_embargo)
# --------------------------------------------------------------------------------------------------


def _add_months(d: np.datetime64, months: int) -> np.datetime64:
    x = dt.date.fromisoformat(str(np.datetime64(d, "D")))
    m = x.month - 1 + months
    y, m = x.year + m // 12, m % 12 + 1
    import calendar

    return np.datetime64(dt.date(y, m, min(x.day, calendar.monthrange(y, m)[1])), "D")


def fold_windows(
    dates: np.ndarray,
    folds: int,
    anchored: bool = True,
    train_months: int | None = None,
    test_months: int | None = None,
    purge_days: int = 0,
    embargo_days: int = 0,
) -> list[dict[str, int]]:
    """Walk-forward folds as half-open row ranges of `dates` (sessions): train [a, b), test [c, d).

    Default layout: the sessions cut into folds + 1 equal chunks; fold k tests on chunk k + 1 and trains on
    chunks 0..k (anchored) or on chunk k alone (rolling). With test_months, the last `folds` windows of that
    many months end at the last session; with train_months, training is that many months before the test
    (rolling) or everything from the start (anchored). Purge: the `purge_days` sessions before each test
    window are removed from its training (b = c - purge); embargo: the `embargo_days` sessions after a
    test window never train a later fold (they matter when a training window follows a test window; in a
    forward walk it never does, so they are kept as a recorded gap). Raises ValueError when a fold is empty.
    """
    n = len(dates)
    d = np.asarray(dates).astype("datetime64[D]")
    out: list[dict[str, int]] = []
    if test_months is None:
        edges = np.linspace(0, n, folds + 2).round().astype(int)
        tests = [(int(edges[k + 1]), int(edges[k + 2])) for k in range(folds)]
    else:
        end = d[-1] + np.timedelta64(1, "D")
        bounds = [end]
        for _ in range(folds):
            bounds.append(_add_months(bounds[-1], -test_months))
        bounds = bounds[::-1]
        tests = [
            (int(np.searchsorted(d, bounds[k])), int(np.searchsorted(d, bounds[k + 1]))) for k in range(folds)
        ]
    for k, (c, e) in enumerate(tests):
        b = max(c - int(purge_days), 0)
        if train_months is not None:
            a = (
                0
                if anchored
                else int(np.searchsorted(d, _add_months(d[c] if c < n else d[-1], -train_months)))
            )
        elif anchored:
            a = 0
        else:
            a = tests[k - 1][0] if k > 0 else 0
            a = min(a, b)
            if k == 0:
                a = 0
        if b - a < 2 or e - c < 2:
            raise ValueError(
                f"fold {k} has {max(b - a, 0)} training and {max(e - c, 0)} test sessions; use fewer folds, "
                "shorter purge_days or a longer backtest"
            )
        out.append({"fold": k, "train_start": a, "train_end": b, "test_start": c, "test_end": e,
                    "purge": c - b, "embargo": int(embargo_days)})  # fmt: skip
    return out


def purge_embargo(returns: np.ndarray, dates: np.ndarray, oos_start: int | None, p: Mapping[str, Any],
                  ann: float = 252.0) -> TestResult:  # fmt: skip
    """Metrics of each split's train and test sides with and without the boundary rows (AFML ch. 7).

    For the IS/OOS split and for the walk-forward folds of `folds`: `purged` drops the purge_days sessions
    before the boundary from the training side and the embargo_days sessions after it from the test side
    (where a trade opened in-sample is still scored, and where features warmed on in-sample data act).
    A material change of the test-side Sharpe = the unpurged split leaked across its boundary.
    """
    tid = "purge_embargo"
    pg, em = int(p["purge_days"]), int(p["embargo_days"])
    splits: list[tuple[str, int, int, int, int]] = []
    if oos_start is not None and 0 < oos_start < len(returns):
        splits.append(("is_oos", 0, oos_start, oos_start, len(returns)))
    try:
        for f in fold_windows(dates, int(p["folds"])):
            splits.append(
                (f"fold_{f['fold']}", f["train_start"], f["train_end"], f["test_start"], f["test_end"])
            )
    except ValueError:
        pass
    if not splits:
        return skipped(tid, "no split: the backtest is too short for folds and has no OOS window")
    rows = []
    changes = []
    for name, a, b, c, e in splits:
        for variant, (tr, te) in (
            ("raw", (returns[a:b], returns[c:e])),
            ("purged", (returns[a : max(a, b - pg)], returns[min(e, c + em) : e])),
        ):
            for side, r in (("train", tr), ("test", te)):
                for m, val in _split_metrics(r, ann).items():
                    rows.append({"split": name, "variant": variant, "side": side, "metric": m, "value": val})
        raw_t = _split_metrics(returns[c:e], ann)["sharpe"]
        pur_t = _split_metrics(returns[min(e, c + em) : e], ann)["sharpe"]
        changes.append((name, raw_t, pur_t))
    table = pd.DataFrame(rows)
    diffs = np.array([pu - ra for _, ra, pu in changes], dtype=float)
    fin = diffs[np.isfinite(diffs)]
    worst = float(fin.min()) if fin.size else math.nan
    nums: dict[str, Any] = {"purge_days": pg, "embargo_days": em, "splits": len(splits),
                            "mean_test_sharpe_change": float(fin.mean()) if fin.size else math.nan,
                            "worst_test_sharpe_change": worst}  # fmt: skip
    for name, ra, pu in changes:
        if name == "is_oos":
            nums["oos_sharpe_raw"], nums["oos_sharpe_purged"] = ra, pu
    if fin.size and worst < -0.5:
        level, text = (
            "warn",
            (
                f"test-side Sharpe falls by up to {-worst:.2f} once {em} sessions after each boundary are embargoed: "
                "part of the result sits right at the split"
            ),
        )
    else:
        level, text = (
            "pass",
            (
                f"purging {pg} and embargoing {em} sessions changes the test-side Sharpe by {nums['mean_test_sharpe_change']:+.2f} "
                "on average: no sign of leakage at the boundaries"
            ),
        )
    return TestResult(tid, "ok", level, text, _numbers(nums), {tid: table})


# --------------------------------------------------------------------------------------------------
# walk_forward (the runner runs the folds; this scores them)
# --------------------------------------------------------------------------------------------------


def walk_forward(
    folds: Sequence[Mapping[str, Any]], test_returns: Sequence[np.ndarray], test_dates: Sequence[np.ndarray],
    p: Mapping[str, Any], reoptimised: bool, ann: float = 252.0, capital: float = 1.0,
) -> TestResult:  # fmt: skip
    """Fold table, the stitched OOS equity (each fold's test returns compounded in order) and its metrics.

    `folds` rows carry fold, train_start/end, test_start/end (ISO dates), params (dict), is_metric,
    oos_metric, is_sharpe, oos_sharpe. Parameter drift: per numeric parameter, the std across folds / its
    mean absolute value.
    """
    tid = "walk_forward"
    r = np.concatenate([np.asarray(x, dtype=float) for x in test_returns]) if test_returns else np.zeros(0)
    dts = np.concatenate([np.asarray(x) for x in test_dates]) if test_dates else np.zeros(0, "datetime64[D]")
    eq = capital * np.cumprod(1 + r)
    table = pd.DataFrame(
        [{**{k: v for k, v in f.items() if k != "params"}, "params": json.dumps(f["params"], sort_keys=True, default=str)}
         for f in folds]
    )  # fmt: skip
    equity = pd.DataFrame({"date": pd.to_datetime(dts.astype("datetime64[D]")), "equity": eq, "return": r})
    m = _split_metrics(r, ann)
    nums: dict[str, Any] = {
        "folds": len(folds), "reoptimised": reoptimised, "n_trials": p["n_trials"] if reoptimised else 0,
        "anchored": p["anchored"], "stitched_sharpe": m["sharpe"], "stitched_total_return": m["total_return"],
        "stitched_max_drawdown": m["max_drawdown"], "stitched_days": m["days"],
    }  # fmt: skip
    oos = np.array([f["oos_sharpe"] for f in folds], dtype=float)
    nums["oos_sharpe_positive_share"] = (
        float(np.mean(oos[np.isfinite(oos)] > 0)) if np.isfinite(oos).any() else None
    )
    nums["oos_sharpe_min"] = float(np.nanmin(oos)) if np.isfinite(oos).any() else None
    drift = {}
    if reoptimised and folds:
        keys = [
            k for k, v in folds[0]["params"].items() if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        for k in keys:
            vals = np.array([f["params"].get(k, np.nan) for f in folds], dtype=float)
            mu = np.nanmean(np.abs(vals))
            drift[k] = float(np.nanstd(vals) / mu) if mu > 0 else 0.0
            nums[f"drift.{k}"] = drift[k]
    if r.size >= 2 and m["days"] >= 2:
        bs = stats.bootstrap_ci(r, n=500, seed=int(p["seed"]), periods_per_year=ann) if r.size >= 8 else None
        if bs is not None:
            nums["stitched_sharpe_low"] = bs.intervals["sharpe"].low
            nums["stitched_sharpe_high"] = bs.intervals["sharpe"].high
            nums["prob_sharpe_le_0"] = bs.prob_sharpe_le_0
    s = m["sharpe"]
    how = "re-optimised on each train window" if reoptimised else "fixed parameters (no study)"
    big = [k for k, v in drift.items() if v > 0.5]
    if not np.isfinite(s):
        level, text = "info", "the stitched OOS series has no Sharpe (no trade in the test windows)"
    elif s <= 0:
        level, text = (
            "fail",
            f"stitched OOS Sharpe {s:.2f} <= 0 ({how}): the procedure has no out-of-sample edge",
        )
    elif big:
        level, text = (
            "warn",
            (
                f"stitched OOS Sharpe {s:.2f} ({how}), but {', '.join(big)} jump between folds "
                "(drift > 50% of the mean): the optimum is not stable"
            ),
        )
    else:
        level, text = "pass", f"stitched OOS Sharpe {s:.2f} over {len(folds)} folds ({how})"
    return TestResult(tid, "ok", level, text, _numbers(nums), {tid: table, "walk_forward_equity": equity})


# --------------------------------------------------------------------------------------------------
# sensitivity_1d / sensitivity_2d
# --------------------------------------------------------------------------------------------------


def sensitivity_1d(curves: Mapping[str, tuple[Sequence[Any], np.ndarray, Any]], metric: str, segment: str,
                   tol: float) -> TestResult:  # fmt: skip
    """curves: param -> (values, scores, tested value). Table param, value, metric, segment, score;
    stability per parameter (stats.stability_score around the tested value's grid point)."""
    tid = "sensitivity_1d"
    rows = []
    nums: dict[str, Any] = {"metric": metric, "segment": segment, "tol": tol}
    scores = []
    for name, (vals, sc, _tested) in curves.items():
        sc = np.asarray(sc, dtype=float)
        for v, s in zip(vals, sc, strict=True):
            num = isinstance(v, int | float) and not isinstance(v, bool)
            rows.append({"param": name, "value": float(v) if num else math.nan, "label": str(v), "metric": metric,
                         "segment": segment, "score": float(s)})  # fmt: skip
        if np.isfinite(sc).any():
            st = stats.stability_score(sc, tol)
            nums[f"stability.{name}"] = st.score
            nums[f"plateau.{name}"] = st.plateau_share
            nums[f"best.{name}"] = vals[st.best_index[0]]
            scores.append(st.score)
    if not scores:
        return TestResult(tid, "ok", "info", "no parameter produced a finite metric", _numbers(nums),
                          {tid: pd.DataFrame(rows)})  # fmt: skip
    nums["stability_score"] = float(np.nanmean(scores)) if np.isfinite(scores).any() else None
    per = {k: nums[f"stability.{k}"] for k in curves if nums.get(f"stability.{k}") is not None}
    per = {k: v for k, v in per.items() if np.isfinite(v)}
    worst = min(per, key=per.__getitem__) if per else "-"
    s = nums["stability_score"]
    if s is None:
        level, text = "info", "one grid point per parameter: no neighbours to compare"
    elif s >= 0.5:
        level, text = (
            "pass",
            f"stable: on average {s:.0%} of each optimum's neighbours are within {tol:.0%} of it",
        )
    else:
        level, text = (
            "warn",
            (f"isolated optima: on average {s:.0%} of neighbours within {tol:.0%} (least stable: {worst})"),
        )
    return TestResult(tid, "ok", level, text, _numbers(nums), {tid: pd.DataFrame(rows)})


def sensitivity_2d(xp: str, yp: str, xs: Sequence[Any], ys: Sequence[Any], grid: np.ndarray, metric: str,
                   segment: str, tol: float) -> TestResult:  # fmt: skip
    """grid[i, j] = metric at (xs[i], ys[j]). Table x_param, y_param, x, y, value, metric; stability score."""
    tid = "sensitivity_2d"
    g = np.asarray(grid, dtype=float)
    rows = [
        {"x_param": xp, "y_param": yp, "x": _axis(x), "y": _axis(y), "value": float(g[i, j]), "metric": metric,
         "segment": segment}
        for i, x in enumerate(xs) for j, y in enumerate(ys)
    ]  # fmt: skip
    nums: dict[str, Any] = {"x_param": xp, "y_param": yp, "metric": metric, "segment": segment, "tol": tol,
                            "points": int(g.size)}  # fmt: skip
    if not np.isfinite(g).any():
        return TestResult(tid, "ok", "info", "no grid point produced a finite metric", _numbers(nums),
                          {tid: pd.DataFrame(rows)})  # fmt: skip
    st = stats.stability_score(g, tol)
    v = stats.verdict_stability(st)
    nums.update({"stability_score": st.score, "plateau_share": st.plateau_share, "best_value": st.best_value,
                 "best_x": xs[st.best_index[0]], "best_y": ys[st.best_index[1]]})  # fmt: skip
    return TestResult(tid, "ok", level_of(v), v.text, _numbers(nums), {tid: pd.DataFrame(rows)})


def _axis(v: Any) -> float:
    """A grid coordinate: numbers as floats; a categorical choice by its position is not a number: NaN."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def param_grid(spec: Mapping[str, Any], points: int) -> list[Any]:
    """`points` values across a searched parameter's low..high (its step respected; categorical: choices)."""
    t = spec.get("type")
    if t == "categorical" or spec.get("choices"):
        return list(spec.get("choices") or [])
    lo, hi, step = float(spec["low"]), float(spec["high"]), spec.get("step")
    if t == "int":
        st = int(step) if step else 1
        allv = np.arange(int(lo), int(hi) + 1, st)
        if allv.size > points:
            allv = allv[np.unique(np.linspace(0, allv.size - 1, points).round().astype(int))]
        return [int(v) for v in allv]
    vals = np.linspace(lo, hi, points)
    if step:
        vals = np.unique(np.round(lo + np.round((vals - lo) / float(step)) * float(step), 10))
    return [float(v) for v in vals]


# --------------------------------------------------------------------------------------------------
# regimes
# --------------------------------------------------------------------------------------------------


def regimes(returns: np.ndarray, labels: Mapping[str, np.ndarray], ann: float = 252.0,
            notes: Sequence[str] = ()) -> TestResult:  # fmt: skip
    """Metrics of the daily net returns per regime label (labels[kind] = one label per day, None = none)."""
    tid = "regimes"
    rows = []
    nums: dict[str, Any] = {}
    n = len(returns)
    spreads = {}
    for kind, lab in labels.items():
        lab = np.asarray(lab, dtype=object)
        names = [x for x in dict.fromkeys(lab.tolist()) if x is not None]
        shs = {}
        for name in sorted(names, key=str):
            r = returns[lab == name]
            m = _split_metrics(r, ann)
            m["share_of_days"] = r.size / n if n else math.nan
            m["hit_rate"] = float(np.mean(r[r != 0] > 0)) if np.any(r != 0) else math.nan
            for k, v in m.items():
                rows.append({"regime_kind": kind, "regime": str(name), "metric": k, "value": float(v)})
            shs[str(name)] = m["sharpe"]
        fin = {k: v for k, v in shs.items() if np.isfinite(v)}
        if fin:
            nums[f"{kind}.worst_sharpe"] = min(fin.values())
            nums[f"{kind}.best_sharpe"] = max(fin.values())
            nums[f"{kind}.positive_share"] = float(np.mean([v > 0 for v in fin.values()]))
            spreads[kind] = fin
    table = pd.DataFrame(rows, columns=["regime_kind", "regime", "metric", "value"])
    if not spreads:
        return TestResult(tid, "ok", "info", "no regime has enough days for a Sharpe", _numbers(nums), {tid: table},
                          note="; ".join(notes) or None)  # fmt: skip
    neg = [f"{k} {name}" for k, d in spreads.items() for name, v in d.items() if v <= 0]
    if not neg:
        level, text = "pass", "positive Sharpe in every regime tested (" + ", ".join(spreads) + ")"
    else:
        share = len(neg) / sum(len(d) for d in spreads.values())
        level = "warn" if share > 1 / 3 else "info"
        text = f"Sharpe <= 0 in {len(neg)} regime(s): {', '.join(neg[:6])}{' ...' if len(neg) > 6 else ''}"
    return TestResult(tid, "ok", level, text, _numbers(nums), {tid: table}, note="; ".join(notes) or None)


def quantile_labels(values: np.ndarray, q: int) -> tuple[np.ndarray, list[float]]:
    """Labels 'q1'..'qN' by the full-sample quantiles (descriptive, not tradable); NaN -> None."""
    v = np.asarray(values, dtype=float)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return np.full(v.size, None, dtype=object), []
    edges = np.quantile(fin, np.linspace(0, 1, q + 1)[1:-1])
    k = np.searchsorted(edges, v, side="right") + 1
    lab = np.array([f"q{i}" for i in k], dtype=object)
    lab[~np.isfinite(v)] = None
    return lab, [float(e) for e in edges]


# --------------------------------------------------------------------------------------------------
# cost_sensitivity
# --------------------------------------------------------------------------------------------------


def cost_sensitivity(multiples: Sequence[float], metrics: np.ndarray, p: Mapping[str, Any]) -> TestResult:
    """metrics[k, segment, metric] at each cost multiple (one run_param_sets call); break-even of net PnL
    (threshold 0) and of Sharpe by linear interpolation (stats.break_even_cost)."""
    tid = "cost_sensitivity"
    res = ManyResult(np.asarray(metrics))
    full = res.table("full")
    rows = []
    for k, m in enumerate(multiples):
        for name in ("total_pnl", "sharpe", "total_costs", "gross_pnl", "n_trades"):
            if name in full:
                rows.append({"multiple": float(m), "metric": name, "value": float(full[name][k])})
    be = stats.break_even_cost(list(zip(multiples, full["total_pnl"].tolist(), strict=True)), 0.0)
    be_s = stats.break_even_cost(list(zip(multiples, full["sharpe"].tolist(), strict=True)), 0.0)
    v = stats.verdict_break_even(be, p["min_multiple"])
    nums: dict[str, Any] = {"break_even_multiple": be.multiple, "break_even_status": be.status,
                            "break_even_sharpe_multiple": be_s.multiple, "min_multiple": p["min_multiple"]}  # fmt: skip
    for k, m in enumerate(multiples):
        nums[f"total_pnl@{m:g}x"] = full["total_pnl"][k]
        nums[f"sharpe@{m:g}x"] = full["sharpe"][k]
    level = "fail" if be.status == "below_at_all" else level_of(v)
    return TestResult(tid, "ok", level, v.text, _numbers(nums), {tid: pd.DataFrame(rows)})


# --------------------------------------------------------------------------------------------------
# multiple_testing
# --------------------------------------------------------------------------------------------------


def multiple_testing(
    matrix: np.ndarray | None, best: int, own: np.ndarray, p: Mapping[str, Any], *, n_total: int | None,
    all_trial_sharpes: np.ndarray | None, ann: float = 252.0,
) -> TestResult:  # fmt: skip
    """PSR and MinTRL of the tested returns (`own`); with a study's trial matrix (periods x M, the top M
    trials re-evaluated, column `best` = the tested trial) also DSR (N = every finished trial of the study,
    V = the variance of their per-period IS Sharpes), PBO by CSCV and Hansen's SPA / White's RC."""
    tid = "multiple_testing"
    methods = set(p["methods"])
    alpha = float(p["alpha"])
    sr, n, g3, g4 = stats.moments(own)
    nums: dict[str, Any] = {"n_periods": n, "sharpe_annual": sr * math.sqrt(ann), "skew": g3, "kurtosis": g4}
    verdicts: list[Verdict] = []
    notes = []
    if not np.isfinite(sr):
        return TestResult(tid, "ok", "info", "the tested returns are flat: no Sharpe to test", _numbers(nums))
    ps = stats.psr(sr, n, g3, g4)
    mt = stats.min_trl(sr, g3, g4, 0.0, alpha)
    # PSR and MinTRL always: they are the base every other statistic deflates, and cost nothing
    nums["psr"] = ps
    verdicts.append(stats.verdict_psr(ps, 1 - alpha))
    nums["min_trl_periods"] = mt
    nums["min_trl_years"] = mt / ann
    tables: dict[str, Any] = {}
    if matrix is None:
        notes.append("DSR, PBO and SPA skipped: needs a study (run on a study id)")
    else:
        m = np.asarray(matrix, dtype=float)
        nums["trials_in_matrix"] = int(m.shape[1])
        if "dsr" in methods:
            srs = np.asarray(
                all_trial_sharpes if all_trial_sharpes is not None else stats.sharpe(m, axis=0), float
            )
            srs = srs[np.isfinite(srs)]
            var = float(np.var(srs, ddof=1)) if srs.size >= 2 else 0.0
            N = float(n_total or m.shape[1])
            d = stats.dsr(sr, n, g3, g4, N, var)
            nums.update({"dsr": d.dsr, "sr0": d.sr0, "n_trials": N, "var_trial_sr": var,
                         "n_trials_effective": stats.effective_trials(m)})  # fmt: skip
            verdicts.append(stats.verdict_dsr(d, 1 - alpha))
        if "pbo" in methods:
            if m.shape[0] >= 2 * int(p["S"]) and m.shape[1] >= 2:
                pb = stats.pbo_cscv(m, S=int(p["S"]))
                nums.update({"pbo": pb.pbo, "pbo_splits": pb.n_splits, "degradation_slope": pb.degradation_slope,
                             "prob_oos_loss": pb.prob_oos_loss, "S": pb.S})  # fmt: skip
                tables[tid] = pd.DataFrame({"split": np.arange(pb.n_splits), "logit": pb.logits,
                                            "is_metric": pb.is_metric, "oos_metric": pb.oos_metric})  # fmt: skip
                verdicts.append(stats.verdict_pbo(pb))
            else:
                notes.append(f"PBO skipped: needs >= {2 * int(p['S'])} periods and >= 2 trials")
        if "spa" in methods and m.shape[1] >= 1:
            sp = stats.spa_test(m, reps=int(p["spa_reps"]), seed=int(p["seed"]), size=alpha)
            nums.update({"spa_p": sp.p_consistent, "reality_check_p": sp.p_reality_check, "spa_lower": sp.p_lower,
                         "spa_upper": sp.p_upper})  # fmt: skip
            verdicts.append(stats.verdict_spa(sp))
    failed = [v for v in verdicts if v.passed is False]
    if not verdicts:
        level = "info"
    elif not failed:
        level = "pass"
    else:
        names = {v.test for v in failed}
        level = "fail" if ({"pbo", "dsr"} <= names) else "warn"
    text = "; ".join(v.text for v in verdicts) or "no statistic selected"
    return TestResult(tid, "ok", level, text, _numbers(nums), tables, note="; ".join(notes) or None)


__all__ = [
    "block_bootstrap",
    "clean",
    "cost_sensitivity",
    "fold_windows",
    "is_oos_gap",
    "lag_sweep",
    "multiple_testing",
    "param_grid",
    "placebo_shuffle",
    "purge_embargo",
    "quantile_labels",
    "regimes",
    "run_inputs",
    "sensitivity_1d",
    "sensitivity_2d",
    "shift_signal",
    "skipped",
    "walk_forward",
]
