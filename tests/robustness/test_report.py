"""The robustness report rendered for real in headless Chromium, from a run folder of real statistics.

The run folder (contract section D: summary.json and one parquet per test) is built here from the
statistics of runtime/robustness/stats.py on seeded simulated returns: a moving-average crossover on a
simulated price, its parameter grid as the study's trials. What the page must show is then checked against
values the test computes itself (the placebo's real value, the break-even interpolation, the shaded
lookahead lags, the fold boundaries, the PBO logits). Screenshots: tests/robustness/artifacts/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runtime.contracts import UserError
from runtime.robustness import stats
from runtime.robustness.report import load_run, summary_frame, write_report
from tests.browser import OfflinePage, launch

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
A = 252
FAST = [5, 10, 15, 20, 30, 40]
SLOW = [50, 80, 110, 140, 170, 200]
TESTED = {"fast": 20, "slow": 110}
LAGS = list(range(-5, 6))
PURGE = 5
TRAIN = 300  # walk-forward training days (rolling)
COST = 0.025  # per unit of turnover at 1x (a slow trend: about 21 position changes in 1600 days)
MULTIPLES = [0.0, 1.0, 2.0, 3.0]


# --------------------------------------------------------------------------------------------------
# A robustness run folder built from real statistics (what H4's runner writes, contract section D)
# --------------------------------------------------------------------------------------------------


def _market(seed: int = 7, t: int = 1600) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Daily returns with slowly drifting trend (so a crossover has something to find)."""
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.normal(0.0, 0.002, t // 120 + 1), 120)[:t]
    r = drift + rng.normal(0.0002, 0.01, t)
    return pd.bdate_range("2016-01-04", periods=t), r


def _signal(r: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """+1/-1 on the fast vs slow moving average of the price known at the end of each day (0 in warm-up)."""
    price = pd.Series(np.cumprod(1 + r))
    d = price.rolling(fast).mean() - price.rolling(slow).mean()
    return np.sign(d.fillna(0.0)).to_numpy()


def _strategy(r: np.ndarray, fast: int, slow: int, cost: float = 0.0) -> np.ndarray:
    """signal[t] held over r[t+1], costs on the turnover."""
    pos = np.concatenate([[0.0], _signal(r, fast, slow)[:-1]])
    return pos * r - cost * np.abs(np.diff(pos, prepend=0.0))


def _verdict(passed: bool | None, text: str) -> dict[str, str]:
    return {"level": "info" if passed is None else ("pass" if passed else "warn"), "text": text}


def _entry(
    test_id: str, verdict: dict[str, str], numbers: dict[str, Any], table: str | None
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "status": "ok",
        "verdict": verdict,
        "numbers": {
            k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in numbers.items()
        },
        "seconds": 0.1,
        "table": table,
        "note": None,
    }


def build_run_dir(run_dir: Path, seed: int = 7) -> Path:
    """Every test's summary entry and table, from the stats functions on the simulated strategy."""
    run_dir.mkdir(parents=True, exist_ok=True)
    dates, r = _market(seed)
    t = r.size
    tests: list[dict[str, Any]] = []

    def put(name: str, df: pd.DataFrame) -> str:
        df.to_parquet(run_dir / name, index=False)
        return name

    strat = _strategy(r, TESTED["fast"], TESTED["slow"], COST)
    pos = np.concatenate([[0.0], _signal(r, TESTED["fast"], TESTED["slow"])[:-1]])

    # is_oos_gap: the last 30% out of sample
    cut = int(0.7 * t)
    g = stats.is_oos_gap(strat[:cut], strat[cut:], n=300, seed=seed)
    rows = [
        ("sharpe", g.is_sharpe, g.oos_sharpe),
        ("total_return", stats.total_return(strat[:cut]), stats.total_return(strat[cut:])),
        ("max_drawdown", stats.max_drawdown(strat[:cut]), stats.max_drawdown(strat[cut:])),
    ]
    gap = pd.DataFrame([(m, float(a), float(b)) for m, a, b in rows], columns=["metric", "is", "oos"])
    tests.append(
        _entry(
            "is_oos_gap",
            _verdict(
                g.inside and g.ratio >= 0.5,
                f"OOS Sharpe {g.oos_sharpe:.2f} vs IS {g.is_sharpe:.2f} (ratio {g.ratio:.2f})",
            ),
            {
                "is_sharpe": g.is_sharpe,
                "oos_sharpe": g.oos_sharpe,
                "ratio": g.ratio,
                "percentile": g.percentile,
            },
            put("is_oos_gap.parquet", gap),
        )
    )

    # walk_forward: 4 anchored folds of 200 test days, fast re-chosen on each train window
    folds, pieces = [], []
    for k in range(4):
        te0, te1 = 800 + 200 * k, 800 + 200 * (k + 1)
        tr0 = te0 - TRAIN  # rolling: the last TRAIN days before the test window
        scores = {f: float(stats.sharpe(_strategy(r[:te0], f, TESTED["slow"], COST)[tr0:], A)) for f in FAST}
        best = max(scores, key=lambda f: scores[f])
        full = _strategy(r[:te1], best, TESTED["slow"], COST)
        pieces.append(full[te0:te1])
        folds.append(
            {
                "fold": k + 1,
                "train_start": str(dates[tr0].date()),
                "train_end": str(dates[te0 - 1].date()),
                "test_start": str(dates[te0].date()),
                "test_end": str(dates[te1 - 1].date()),
                "purge": 0,
                "params": json.dumps({"fast": best, "slow": TESTED["slow"]}),
                "is_sharpe": scores[best],
                "oos_sharpe": float(stats.sharpe(full[te0:te1], A)),
                "test_days": te1 - te0,
            }
        )
    oos = np.concatenate(pieces)
    eq = pd.DataFrame({"date": dates[800:1600], "equity": 1e6 * np.cumprod(1 + oos), "return": oos})
    put("walk_forward_equity.parquet", eq)
    s_wf = float(stats.sharpe(oos, A))
    tests.append(
        _entry(
            "walk_forward",
            _verdict(s_wf > 0, f"stitched out-of-sample Sharpe {s_wf:.2f} over 4 folds"),
            {"stitched_sharpe": s_wf, "folds": 4, "metric": "sharpe"},
            put("walk_forward.parquet", pd.DataFrame(folds)),
        )
    )

    # block_bootstrap
    b = stats.bootstrap_ci(strat, n=400, seed=seed)
    boot = pd.DataFrame(
        [(m, i, float(v)) for m, d in b.distributions.items() for i, v in enumerate(d)],
        columns=["metric", "draw", "value"],
    )
    nums: dict[str, Any] = {"prob_sharpe_le_0": b.prob_sharpe_le_0, "block": b.block, "level": b.level}
    for m, ci in b.intervals.items():
        nums.update({m: ci.estimate, f"{m}_low": ci.low, f"{m}_high": ci.high})
    v = stats.verdict_bootstrap(b)
    tests.append(
        _entry("block_bootstrap", _verdict(v.passed, v.text), nums, put("block_bootstrap.parquet", boot))
    )

    # placebo_shuffle
    p = stats.placebo_pvalue(pos, r, n=300, block=20, seed=seed, cost_per_turnover=COST)
    v = stats.verdict_placebo(p)
    tests.append(
        _entry(
            "placebo_shuffle",
            _verdict(v.passed, v.text),
            {"real": p.real, "pvalue": p.pvalue, "percentile": p.percentile, "n": p.n, "metric": "sharpe"},
            put("placebo_shuffle.parquet", pd.DataFrame({"draw": range(p.n), "value": p.placebos})),
        )
    )

    # lag_sweep
    sig = _signal(r, TESTED["fast"], TESTED["slow"])
    ev = stats.position_lag_evaluator(sig, r)
    ls = stats.lag_sweep(ev, LAGS)
    pnl = stats.position_lag_evaluator(sig, r, metric=lambda a: float(1e6 * a.sum()))
    lag_t = pd.DataFrame(
        {
            "lag": ls.lags,
            "sharpe": ls.metrics,
            "total_pnl": [pnl(int(x)) for x in ls.lags],
            "lookahead": ls.lags < 0,
        }
    )
    v = stats.verdict_lag(ls)
    tests.append(
        _entry(
            "lag_sweep",
            _verdict(v.passed, v.text),
            {"peak_lag": ls.peak_lag},
            put("lag_sweep.parquet", lag_t),
        )
    )

    # sensitivity: the whole grid is the study's trial matrix
    trials = {(f, s): _strategy(r, f, s, COST) for f in FAST for s in SLOW}
    grid = np.array([[float(stats.sharpe(trials[(f, s)], A)) for s in SLOW] for f in FAST])
    st = stats.stability_score(grid)
    one = [("fast", f, "sharpe", "is", grid[FAST.index(f), SLOW.index(TESTED["slow"])]) for f in FAST]
    one += [("slow", s, "sharpe", "is", grid[FAST.index(TESTED["fast"]), SLOW.index(s)]) for s in SLOW]
    v = stats.verdict_stability(st)
    s_nums = {"stability_score": st.score, "plateau_share": st.plateau_share}
    tests.append(
        _entry(
            "sensitivity_1d",
            _verdict(v.passed, v.text),
            {
                **s_nums,
                "best.fast": max(FAST, key=lambda f: grid[FAST.index(f), SLOW.index(TESTED["slow"])]),
                "best.slow": max(SLOW, key=lambda x: grid[FAST.index(TESTED["fast"]), SLOW.index(x)]),
            },
            put(
                "sensitivity_1d.parquet",
                pd.DataFrame(one, columns=["param", "value", "metric", "segment", "score"]),
            ),
        )
    )
    two = pd.DataFrame(
        [
            ("fast", "slow", f, s, grid[i, j], "sharpe")
            for i, f in enumerate(FAST)
            for j, s in enumerate(SLOW)
        ],
        columns=["x_param", "y_param", "x", "y", "value", "metric"],
    )
    tests.append(
        _entry(
            "sensitivity_2d",
            _verdict(v.passed, v.text),
            {**s_nums, "best_x": FAST[st.best_index[0]], "best_y": SLOW[st.best_index[1]]},
            put("sensitivity_2d.parquet", two),
        )
    )

    # regimes: calendar year and volatility tercile (trailing 20-day vol known the day before)
    vol = pd.Series(r).rolling(20).std().shift(1).to_numpy()
    terc = pd.qcut(pd.Series(vol), 3, labels=["low", "mid", "high"])
    reg = []
    for y in sorted(set(dates.year)):
        m = dates.year == y
        reg += [
            ("year", str(y), "sharpe", float(stats.sharpe(strat[m], A))),
            ("year", str(y), "days", int(m.sum())),
        ]
    for lab in ["low", "mid", "high"]:
        m = (terc == lab).to_numpy()
        reg += [("vol_tercile", lab, "sharpe", float(stats.sharpe(strat[m], A))), ("vol_tercile", lab, "days", int(m.sum()))]  # fmt: skip
    tests.append(
        _entry(
            "regimes",
            _verdict(None, "per-regime Sharpe: see the table"),
            {},
            put("regimes.parquet", pd.DataFrame(reg, columns=["regime_kind", "regime", "metric", "value"])),
        )
    )

    # cost_sensitivity
    cs = []
    for mult in MULTIPLES:
        x = _strategy(r, TESTED["fast"], TESTED["slow"], COST * mult)
        gross = _strategy(r, TESTED["fast"], TESTED["slow"])
        cs += [(mult, "sharpe", float(stats.sharpe(x, A))), (mult, "total_pnl", float(1e6 * x.sum()))]
        cs += [
            (mult, "gross_pnl", float(1e6 * gross.sum())),
            (mult, "total_costs", float(1e6 * (gross - x).sum())),
        ]
    cs_t = pd.DataFrame(cs, columns=["multiple", "metric", "value"])
    be = stats.break_even_cost([(m, v) for m, k, v in cs if k == "total_pnl"])
    be_s = stats.break_even_cost([(m, v) for m, k, v in cs if k == "sharpe"])
    v = stats.verdict_break_even(be)
    tests.append(
        _entry(
            "cost_sensitivity",
            _verdict(v.passed, v.text),
            {
                "break_even_multiple": be.multiple,
                "break_even_sharpe_multiple": be_s.multiple,
                "status": be.status,
            },
            put("cost_sensitivity.parquet", cs_t),
        )
    )

    # multiple_testing over the grid's trials
    mat = np.column_stack(list(trials.values()))[200:]  # after the longest warm-up
    mt = stats.multiple_testing(mat, S=8, spa_reps=200, seed=seed)
    assert mt.pbo is not None and mt.spa is not None
    mt_nums = {
        "psr": mt.psr,
        "dsr": mt.dsr.dsr,
        "sr0": mt.dsr.sr0,
        "n_trials": mt.n_trials,
        "min_trl_years": mt.min_trl_years,
        "pbo": mt.pbo.pbo,
        "spa_p": mt.spa.p_consistent,
        "reality_check_p": mt.spa.p_reality_check,
    }
    failed = [x.test for x in mt.verdicts if x.passed is False]
    level = "fail" if "pbo" in failed else "warn" if failed else "pass"
    tests.append(
        _entry(
            "multiple_testing",
            {"level": level, "text": "; ".join(x.text for x in mt.verdicts)},
            mt_nums,
            put(
                "multiple_testing.parquet",
                pd.DataFrame(
                    {
                        "split": range(mt.pbo.n_splits),
                        "logit": mt.pbo.logits,
                        "is_metric": mt.pbo.is_metric,
                        "oos_metric": mt.pbo.oos_metric,
                    }
                ),
            ),
        )
    )
    # purge_embargo: each split's test window with its first PURGE days dropped (positions opened before it)
    pe = []
    for split, (c, d) in {
        "is_oos": (cut, t),
        **{f"fold_{k + 1}": (800 + 200 * k, 1000 + 200 * k) for k in range(4)},
    }.items():
        for variant, a in (("raw", c), ("purged", c + PURGE)):
            pe.append((split, variant, "test", "sharpe", float(stats.sharpe(strat[a:d], A))))
            pe.append(
                (
                    split,
                    variant,
                    "train",
                    "sharpe",
                    float(stats.sharpe(strat[: c - (PURGE if variant == "purged" else 0)], A)),
                )
            )
    pe_t = pd.DataFrame(pe, columns=["split", "variant", "side", "metric", "value"])
    tests.append(
        _entry(
            "purge_embargo",
            _verdict(None, f"test Sharpe with {PURGE} purged days next to the unpurged one, per split"),
            {"purge_days": PURGE, "embargo_days": 0},
            put("purge_embargo.parquet", pe_t),
        )
    )
    summary = {
        "run_id": run_dir.name,
        "target": "bt_sim_cross",
        "target_type": "backtest",
        "profile": "rb_test",
        "backtest_id": "bt_sim_cross",
        "params": dict(TESTED),
        "study_run_id": None,
        "primary": "sharpe",
        "seconds": 3.2,
        "notes": ["simulated: a moving-average crossover on a simulated price"],
        "tests": tests,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run_dir(tmp_path_factory.mktemp("rb") / "rb-bt_sim_cross-000000000001")


@dataclass(frozen=True)
class RealRun:
    """Robustness runs of the runner (runtime/robustness/runner.py) on the demo project: the backtest
    bt_spx_cta at its workbook params and the study st_spx_cta (optimised first) at its best trial."""

    snapshot_path: Path
    runs: dict[str, tuple[Path, str]]  #: target -> (run folder, run id)


REAL_TARGETS = ("bt_spx_cta", "st_spx_cta")
STUDY_TRIALS = 40


_REAL: dict[str, RealRun] = {}  # built once per process: test_notebook05 imports this fixture (its own def)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    if "demo" in _REAL:
        return _REAL["demo"]
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.optimize.study import run_study
    from runtime.robustness.runner import run_robustness
    from runtime.storage.registry import Registry
    from tests.foundation.helpers import demo_project

    root = demo_project(tmp_path_factory.mktemp("rb_real") / "proj", ["ingest", "daily"], ["derive"])
    snap_path = root / "config" / "exports" / "latest.json"
    snap = load_snapshot(snap_path)
    paths = snapshot_paths(snap, None)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    run_study(snap, paths, reg, "st_spx_cta", n_trials=STUDY_TRIALS)
    runs = {}
    for target in REAL_TARGETS:
        out = run_robustness(snap, paths, reg, target)
        runs[target] = (Path(out.run_dir), out.run_id)
    _REAL["demo"] = RealRun(snap_path, runs)
    return _REAL["demo"]


# --------------------------------------------------------------------------------------------------
# Headless Chromium
# --------------------------------------------------------------------------------------------------


class Browser(OfflinePage):
    """The shared offline page plus the robustness checks' view of a drawn figure."""

    def fig(self, fid: str) -> dict[str, Any]:
        """The drawn figure's data and layout (what plotly holds after drawing) and its drawn height."""
        return self.page.evaluate(
            """i => { const g = document.getElementById(i);
               const arr = v => v == null ? null : v._inputArray ? arr(v._inputArray)
                 : ArrayBuffer.isView(v) ? Array.from(v) : Array.isArray(v) ? v.map(arr) : v;
               return {data: g.data.map(d => ({type: d.type, x: arr(d.x), y: arr(d.y), z: arr(d.z),
                         color: d.marker && arr(d.marker.color)})),
                       shapes: g.layout.shapes || [], annotations: (g.layout.annotations || []).map(a => a.text),
                       height: g.getBoundingClientRect().height,
                       drawn: g.querySelectorAll('.trace, .hm, .heatmaplayer image').length}; }""",
            fid,
        )

    def shot(self, name: str) -> Path:  # type: ignore[override]
        return super().shot(ARTIFACTS / name, min_bytes=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as b:
        yield b


def _page(browser: Any) -> Browser:
    return Browser(browser)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_report_is_self_contained(run_dir: Path) -> None:
    from plotly.offline import get_plotlyjs

    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()) == 1 and "<script src=" not in text
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".report-")]  # no temp file left
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for t in summary["tests"]:  # every verdict's words are on the page, escaped
        assert t["verdict"]["text"].replace("<", "&lt;").replace(">", "&gt;") in text, t["test_id"]


@pytest.mark.browser
def test_report_renders_every_figure_in_chromium(run_dir: Path, browser: Any) -> None:
    path = write_report(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    by_id = {t["test_id"]: t for t in summary["tests"]}
    b = _page(browser)
    ids = b.open(path)
    # one figure per test with a table, two for walk-forward (equity, parameter drift), one heatmap per pair
    expected = {f"fig-{t}-1" for t, e in by_id.items() if e["status"] == "ok"}
    expected |= {"fig-walk_forward-2", "fig-multiple_testing-2"}  # the parameter drift, the CSCV degradation
    assert set(ids) == expected, sorted(ids)
    for fid in ids:
        f = b.fig(fid)
        assert f["height"] > 200 and f["drawn"] >= 1, (fid, f["height"], f["drawn"])

    # the summary table: one row per test in summary order, its level as the badge, the plain words
    rows = b.page.evaluate(
        """() => [...document.querySelectorAll('table.summary tr[data-test]')].map(r =>
              [r.dataset.test, r.dataset.status, r.querySelector('.badge').textContent.trim(),
               r.querySelector('td.txt').textContent])"""
    )
    assert [x[0] for x in rows] == [t["test_id"] for t in summary["tests"]]
    for tid, status, badge, words in rows:
        e = by_id[tid]
        assert status == e["status"]
        assert badge == (e["verdict"]["level"] if e["status"] == "ok" else e["status"])
        assert e["verdict"]["text"] in words
    colours = b.page.evaluate(
        "() => [...document.querySelectorAll('table.summary .badge')].map(x => getComputedStyle(x).backgroundColor)"
    )
    want = {"pass": "rgb(27, 127, 59)", "warn": "rgb(199, 119, 0)", "fail": "rgb(179, 38, 30)",
            "info": "rgb(36, 86, 166)", "skipped": "rgb(122, 128, 140)"}  # fmt: skip
    for (_, _, badge, _), c in zip(rows, colours, strict=True):
        assert c == want[badge], (badge, c)

    # placebo: every placebo in the histogram, the real value drawn where the summary says
    plc = pd.read_parquet(run_dir / "placebo_shuffle.parquet")
    f = b.fig("fig-placebo_shuffle-1")
    assert len(f["data"][0]["x"]) == len(plc) == 300
    real = by_id["placebo_shuffle"]["numbers"]["real"]
    assert [s["x0"] for s in f["shapes"] if s["type"] == "line"] == [pytest.approx(real)]
    # the real value recomputed here: the position series held over the returns, net of costs
    dates, r = _market()
    pos = np.concatenate([[0.0], _signal(r, TESTED["fast"], TESTED["slow"])[:-1]])
    net = pos * r - COST * np.abs(np.diff(pos, prepend=0.0))
    assert real == pytest.approx(net.mean() / net.std(ddof=1) * np.sqrt(A), rel=1e-12)

    # lag sweep: the lookahead side (lags < 0) shaded from the first lag to just before 0, and labelled
    f = b.fig("fig-lag_sweep-1")
    rects = [s for s in f["shapes"] if s["type"] == "rect"]
    assert len(rects) == 2  # both panels (Sharpe, net PnL)
    assert all(x["x0"] == min(LAGS) - 0.5 and x["x1"] == -0.5 for x in rects)
    assert any("lookahead" in (a or "") for a in f["annotations"])
    assert f["data"][0]["x"] == LAGS
    neg_colour = {c for lag, c in zip(LAGS, f["data"][0]["color"], strict=True) if lag < 0}
    pos_colour = {c for lag, c in zip(LAGS, f["data"][0]["color"], strict=True) if lag > 0}
    assert len(neg_colour) == 1 and len(pos_colour) == 1 and neg_colour != pos_colour
    # the bars are the lag sweep recomputed here: signal[t] earns r[t + 1 + lag]
    sig = _signal(r, TESTED["fast"], TESTED["slow"])
    for lag, y in zip(LAGS, f["data"][0]["y"], strict=True):
        held = np.zeros(r.size)
        for i in range(r.size):
            j = i - 1 - lag
            if 0 <= j < r.size:
                held[i] = sig[j]
        x = held * r
        assert y == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(A), rel=1e-9), lag

    # walk-forward: one dashed boundary per fold at its test start, the stitched equity whole
    wf = pd.read_parquet(run_dir / "walk_forward.parquet")
    f = b.fig("fig-walk_forward-1")
    lines = sorted(s["x0"][:10] for s in f["shapes"] if s["type"] == "line")
    assert lines == [str(d.date()) for d in pd.to_datetime(wf["test_start"])]
    assert len(f["data"][0]["y"]) == 800
    drift = b.fig("fig-walk_forward-2")
    assert drift["data"][0]["y"] == [json.loads(p)["fast"] for p in wf["params"]]

    # PBO: the histogram holds the CSCV logits; share <= 0 is the PBO written in the summary
    logits = pd.read_parquet(run_dir / "multiple_testing.parquet")["logit"].to_numpy()
    f = b.fig("fig-multiple_testing-1")
    assert sorted(f["data"][0]["x"]) == pytest.approx(sorted(logits))
    assert by_id["multiple_testing"]["numbers"]["pbo"] == pytest.approx(np.mean(logits <= 0))
    assert [s["x1"] for s in f["shapes"] if s["type"] == "rect"] == [0]

    # the selection-bias summary: each statistic against its usual threshold (alpha 0.05)
    mt = by_id["multiple_testing"]["numbers"]
    marks = b.page.evaluate(
        "() => [...document.querySelectorAll('table.selection tr')].slice(1).map(r => r.lastChild.textContent)"
    )
    assert marks == [
        "ok" if mt["psr"] >= 0.95 else "warning",
        "ok" if mt["dsr"] >= 0.95 else "warning",
        "ok" if mt["pbo"] <= 0.5 else "warning",
        "ok" if mt["spa_p"] < 0.05 else "warning",
        "ok" if mt["reality_check_p"] < 0.05 else "warning",
        "–",
    ]
    assert "warning" in marks and "ok" in marks  # the fixture exercises both

    # cost sensitivity: each panel's break-even (net PnL, Sharpe) at the linear interpolation computed here
    cs = pd.read_parquet(run_dir / "cost_sensitivity.parquet")
    f = b.fig("fig-cost_sensitivity-1")
    vlines = [s["x0"] for s in f["shapes"] if s["type"] == "line" and s.get("x0") == s.get("x1")]
    want_be = []
    for metric in ("total_pnl", "sharpe"):
        sh = cs[cs["metric"] == metric].sort_values("multiple")
        m, v = sh["multiple"].to_numpy(), sh["value"].to_numpy()
        k = next(i for i in range(len(v) - 1) if v[i] > 0 >= v[i + 1])
        want_be.append(m[k] + v[k] / (v[k] - v[k + 1]) * (m[k + 1] - m[k]))
        assert f"break-even {want_be[-1]:.2f}x" in f["annotations"]
    assert vlines == pytest.approx(want_be)
    costs = next(
        d for d in f["data"] if d["y"] is not None and len(d["y"]) == 4 and d["y"][0] == 0
    )  # 0 at 0x
    assert costs["y"] == pytest.approx(-cs[cs["metric"] == "total_costs"].sort_values("multiple")["value"])

    # bootstrap: the CI band of each statistic is the percentile interval of its draws
    boot = pd.read_parquet(run_dir / "block_bootstrap.parquet")
    f = b.fig("fig-block_bootstrap-1")
    rects = [s for s in f["shapes"] if s["type"] == "rect"]
    for s, metric in zip(rects, dict.fromkeys(boot["metric"]), strict=True):
        d = np.sort(boot.loc[boot["metric"] == metric, "value"].to_numpy())
        assert s["x0"] == pytest.approx(np.percentile(d, 2.5)) and s["x1"] == pytest.approx(
            np.percentile(d, 97.5)
        )

    # 2D: the heatmap is the grid, the tested binding marked
    f = b.fig("fig-sensitivity_2d-1")
    z = np.array(f["data"][0]["z"], dtype=float)
    for i, fa in enumerate(FAST):
        for j, sl in enumerate(SLOW):
            x = _strategy(r, fa, sl, COST)
            assert z[j, i] == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(A), rel=1e-9)
    assert f["data"][1]["x"] == [TESTED["fast"]] and f["data"][1]["y"] == [TESTED["slow"]]
    j, i = np.unravel_index(np.argmax(z), z.shape)  # the best cell, starred
    assert f["data"][2]["x"] == [FAST[i]] and f["data"][2]["y"] == [SLOW[j]]

    # 1D: each curve is the metric along one parameter, the tested value dashed, the curve's best starred
    f = b.fig("fig-sensitivity_1d-1")
    curves = [d for d in f["data"] if len(d["x"]) > 1]
    stars = [d for d in f["data"] if len(d["x"]) == 1]
    for curve, star, values, fixed in zip(curves, stars, (FAST, SLOW), ("slow", "fast"), strict=True):
        assert curve["x"] == values
        sh = []
        for v in values:
            x = _strategy(r, **{fixed: TESTED[fixed], ("fast" if fixed == "slow" else "slow"): v}, cost=COST)
            sh.append(x.mean() / x.std(ddof=1) * np.sqrt(A))
        assert curve["y"] == pytest.approx(sh, rel=1e-9)
        assert star["x"] == [values[int(np.argmax(sh))]] and star["y"] == pytest.approx([max(sh)])
    assert sorted(s["x0"] for s in f["shapes"] if s["type"] == "line") == sorted(TESTED.values())

    # the regime table: one row per regime with its Sharpe and its days
    reg_rows = b.page.evaluate("() => document.querySelectorAll('table.regimes tr').length - 1")
    assert reg_rows == len(set(dates.year)) + 3
    # purge/embargo: raw vs purged test Sharpe per split, each recomputed here on the test window
    f = b.fig("fig-purge_embargo-1")
    cut = int(0.7 * r.size)
    windows = {
        "is_oos": (cut, r.size),
        **{f"fold_{k + 1}": (800 + 200 * k, 1000 + 200 * k) for k in range(4)},
    }
    for trace, shift in zip(f["data"], (0, PURGE), strict=True):
        assert trace["x"] == list(windows)
        for (c, d), y in zip(windows.values(), trace["y"], strict=True):
            x = net[c + shift : d]
            assert y == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(A), rel=1e-9)
    shot = b.shot("robustness_report.png")
    assert shot.stat().st_size > 80_000
    assert not b.errors, b.errors


@pytest.mark.xdist_group("robustness_real")  # one worker builds the demo runs once (see real_run)
@pytest.mark.browser
@pytest.mark.parametrize("target", REAL_TARGETS)
def test_report_of_a_real_run_in_chromium(real_run: RealRun, browser: Any, target: str) -> None:
    """The page the runner wrote for the demo backtest and study: every test's row, a figure for every
    table, drawn from the run's own tables."""
    run_dir, _ = real_run.runs[target]
    path = run_dir / "report.html"
    assert path.is_file()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    b = _page(browser)
    ids = b.open(path)
    rows = b.page.evaluate(
        "() => [...document.querySelectorAll('table.summary tr[data-test]')].map(r => [r.dataset.test, "
        "r.querySelector('.badge').textContent.trim()])"
    )
    assert rows == [
        [t["test_id"], t["verdict"]["level"] if t["status"] == "ok" else t["status"]]
        for t in summary["tests"]
    ]
    with_table = {t["test_id"] for t in summary["tests"] if t["status"] == "ok" and t["table"]}
    assert with_table and {i.split("-")[1] for i in ids} == with_table, (ids, with_table)
    for fid in ids:
        f = b.fig(fid)
        assert f["height"] > 200 and f["drawn"] >= 1, fid
    # what is drawn is what the run's tables hold: the lag sweep's bars, the placebo histogram
    lag = pd.read_parquet(run_dir / "lag_sweep.parquet").sort_values("lag")
    f = b.fig("fig-lag_sweep-1")
    assert f["data"][0]["x"] == lag["lag"].tolist()
    assert f["data"][0]["y"] == pytest.approx(lag["sharpe"].tolist(), nan_ok=True)
    rects = [s for s in f["shapes"] if s["type"] == "rect"]
    assert rects and all(s["x0"] == lag["lag"].min() - 0.5 and s["x1"] == -0.5 for s in rects)
    plc = pd.read_parquet(run_dir / "placebo_shuffle.parquet")
    assert len(b.fig("fig-placebo_shuffle-1")["data"][0]["x"]) == int(np.isfinite(plc["value"]).sum())
    assert "figure not drawn" not in b.page.content()  # the runner's tables all have the shapes drawn here
    if summary["target_type"] == "study":  # the study's trials: PBO logits and the walk-forward drift
        logits = pd.read_parquet(run_dir / "multiple_testing.parquet")["logit"].to_numpy()
        f = b.fig("fig-multiple_testing-1")
        assert len(f["data"][0]["x"]) == int(np.isfinite(logits).sum()) > 0
        assert "fig-multiple_testing-2" in ids
        assert b.page.evaluate("() => document.querySelectorAll('table.selection tr').length") >= 4
    b.shot(f"robustness_report_{target}.png")
    assert not b.errors, b.errors


def _degraded(root: Path, src: Path) -> Path:
    """Only some tests: one whose table file is gone, one with a table of the wrong shape, one skipped,
    one error, one test this page has no figure for (its table is listed as is)."""
    d = root / "rb-bt_sim_cross-degraded00001"
    d.mkdir(parents=True)
    summary = json.loads((src / "summary.json").read_text(encoding="utf-8"))
    keep = {t["test_id"]: t for t in summary["tests"]}
    shutil.copy(src / "lag_sweep.parquet", d / "lag_sweep.parquet")
    pd.DataFrame({"wrong": [1.0, 2.0]}).to_parquet(d / "cost_sensitivity.parquet")  # no multiple/metric
    pd.DataFrame({"fold": [1, 2], "purged_sharpe": [0.4, 0.3]}).to_parquet(d / "new_test.parquet")
    tests = [
        keep["block_bootstrap"],  # its parquet is not copied: missing
        keep["lag_sweep"],
        keep["cost_sensitivity"],
        {"test_id": "walk_forward", "status": "error", "verdict": None, "numbers": {}, "seconds": 1.5,
         "table": None, "note": "UserError: the study has no trials; fix: run `backtest optimize`"},
        {"test_id": "new_test", "status": "ok", "verdict": {"level": "info", "text": "a test from the future"},
         "numbers": {"k": 3}, "seconds": 0.2, "table": "new_test.parquet", "note": None},
        {"test_id": "regimes", "status": "skipped", "verdict": {"level": "info", "text": "no by feature"},
         "numbers": {}, "seconds": 0.0, "table": None, "note": "skipped: by is empty"},
    ]  # fmt: skip
    summary["tests"] = tests
    (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return d


@pytest.mark.browser
def test_report_degrades_gracefully(run_dir: Path, browser: Any, tmp_path: Path) -> None:
    d = _degraded(tmp_path, run_dir)
    frame = summary_frame(load_run(d))
    assert frame["status"].tolist() == ["ok", "ok", "ok", "error", "ok", "skipped"]
    b = _page(browser)
    ids = b.open(write_report(d))
    assert ids == ["fig-lag_sweep-1"]  # the only test whose table is present and of the right shape

    def text(sel: str) -> str:
        return str(b.page.evaluate("s => document.querySelector(s).textContent", sel))

    assert "block_bootstrap.parquet is missing" in text("#sec-block_bootstrap")
    assert "figure not drawn" in text("#sec-cost_sensitivity")
    assert "the study has no trials" in text("#sec-walk_forward")
    assert "purged_sharpe" in text("#sec-new_test")  # the table listed as is
    assert "skipped: by is empty" in text("#sec-regimes")
    badges = b.page.evaluate(
        "() => [...document.querySelectorAll('table.summary .badge')].map(x => x.textContent.trim())"
    )
    levels = [t["verdict"]["level"] for t in json.loads((d / "summary.json").read_text())["tests"][:3]]
    assert badges == [*levels, "error", "info", "skipped"]
    b.shot("robustness_report_degraded.png")
    assert not b.errors, b.errors


def test_not_a_run_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no summary\.json.*fix: run `backtest robustness TARGET`"):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=r"not valid JSON.*fix:"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
