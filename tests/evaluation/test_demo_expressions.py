"""Issue 9 acceptance: composed expressions on the demo workbook's data, on every backend, vs the reference.

Each expression (the template's features, engineered features, gates, every STRATEGIES signal / gate /
scaling expression with its template slots and params, the design card's example, daily-into-intraday
`asof`, `to_daily`, stateful `hold` / `bars_since`, `$params`) is evaluated with `eval_graph` on
backend ibis, numba and auto. Expected values come from the independent graph reference
(tests/compiler/graph_reference.py: plain loops, exact arithmetic) fed with the source columns
WorkspaceSources reads on the same grid; placement itself is tested in test_sources / test_placement.
Ranges are short (daily from 2018-08-01, four ES sessions) so the exact reference stays fast.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import dsl
from runtime.evaluation.run import EvalOptions, eval_graph, frame, grids_for
from runtime.evaluation.sources import WorkspaceSources
from runtime.graphs import compile_expression
from tests.compiler.graph_reference import evaluate_reference
from tests.evaluation.demo_workspace import Demo, build_demo

D, M = dsl.Frequency.DAILY, dsl.Frequency.MINUTE
RTOL = 1e-9
START = dt.date(2018, 8, 1)
END = dt.date(2018, 12, 31)
BACKENDS = ("ibis", "numba", "auto")


@dataclass(frozen=True)
class Case:
    text: str
    slots: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # compile-time binding (the graph's defaults)
    run_params: dict[str, Any] | None = None  # evaluation-time binding (EvalOptions.params)
    frequency: str | None = None
    session: str = "RTH"

    @property
    def id(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in {**self.slots, **(self.run_params or self.params)}.items())
        return (
            self.text
            + (f" [{extra}]" if extra else "")
            + (f" {self.session}" if self.session != "RTH" else "")
        )


# STRATEGIES of the template: (template id, slots, params) as the workbook defines them (params_json over
# the template's default_params_json); test_strategy_cases_are_the_workbooks checks them against it.
STRATEGY_SIGNALS = {
    "spx_cta_z": ("zscore_threshold", {"primary": "cta_flow"}, {"entry": 0.5, "lag": 1, "window": 60}),
    "es_delta_trend": ("zscore_threshold", {"primary": "es_delta"}, {"entry": 1.0, "lag": 1, "window": 30}),
    "es_daily_trend": ("trend_sign", {"primary": "spx_ret"}, {"lag": 1}),
}
STRATEGY_GATES = {"spx_cta_z": "calm_vol AND credit_ok", "es_delta_trend": "asof(calm_vol)"}
STRATEGY_SCALING = {"spx_cta_z": "clip(0.15 / lag(spx_vol_20, 1), 0, 2)"}
TEMPLATES = {
    "zscore_threshold": "if(zscore(lag({primary}, $lag), $window) > $entry, 1, "
    "if(zscore(lag({primary}, $lag), $window) < -$entry, -1, 0))",
    "trend_sign": "sign(lag({primary}, $lag))",
    "pair_cross": "if(lag({primary}, $lag) > lag({secondary}, $lag), 1, -1)",
}


def strategy_cases() -> list[Case]:
    out = [Case(TEMPLATES[t], slots=sl, params=pa_) for t, sl, pa_ in STRATEGY_SIGNALS.values()]
    out += [Case(e) for e in STRATEGY_GATES.values()] + [Case(e) for e in STRATEGY_SCALING.values()]
    # the two templates no strategy uses, filled with workbook features; an optimisation trial of the
    # first template (the same graph re-bound to other $params at run time)
    out += [
        Case(TEMPLATES["trend_sign"], slots={"primary": "spx_mom_60"}, params={"lag": 1}),
        Case(
            TEMPLATES["pair_cross"], slots={"primary": "ndx_ret", "secondary": "spx_ret"}, params={"lag": 2}
        ),
        Case(
            TEMPLATES["zscore_threshold"],
            slots={"primary": "cta_position"},
            params={"entry": 0.5, "lag": 1, "window": 60},
            run_params={"entry": 1.0, "lag": 2, "window": 20},
        ),
    ]
    return out


FEATURES = [  # FEATURE_LIBRARY, ENGINEERED_FEATURES and GATES of the template, by id
    "cta_flow", "cta_position", "vix_level", "vix_high", "spx_ret", "spx_mom_60", "spx_vol_20", "ndx_ret",
    "credit_spread", "oil_ret", "es_delta", "es_close",
    "ndx_spx_rs", "cta_flow_z", "credit_widening", "es_delta_z",
    "calm_vol", "credit_ok",
]  # fmt: skip

DAILY = [
    "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high",  # the design card
    "mean(SPX.close, 20)",
    "mean(SPX.close, 5) - mean(SPX.close, 50)",
    "std(spx_ret, 20)",
    "var(ndx_ret, 15) * 10000",
    "corr(spx_ret, ndx_ret, 60)",
    "cov(spx_ret, ndx_ret, 20)",
    "rank(vix_level, 20)",
    "quantile(vix_level, 60, 0.9)",
    "median(cta_flow, 11)",
    "ts_max(SPX.high, 20) - ts_min(SPX.low, 20)",
    "ts_argmax(SPX.close, 10)",
    "ts_argmin(vix_level, 15)",
    "slope(SPX.close, 20)",
    "ema(SPX.close, 20) > mean(SPX.close, 50)",
    "winsorize(spx_ret, 60, 3)",
    "zscore(oil_ret, 20)",
    "ffill(CREDIT.baa, 25) - ffill(CREDIT.aaa, 25)",
    "count(WTI.wti, 10)",
    "fill(oil_ret, 0) + spx_ret",
    "if(vix_high, -1, sign(spx_mom_60))",
    "is_missing(WTI.wti) OR vix_high",
    "cross_above(mean(SPX.close, 10), mean(SPX.close, 50))",
    "cross_below(cta_flow_z, 0)",
    "realized_vol(ndx_ret, 10)",
    "log(SPX.close) - log(lag(SPX.close, 5))",
    "sqrt(abs(cta_flow)) * sign(cta_flow)",
    "max(spx_ret, ndx_ret) - min(spx_ret, ndx_ret)",
    "clip(cta_flow_z, -2, 2)",
    "signed_pow(spx_ret * 100, 0.5)",
    "exp(-abs(spx_ret) * 50) + log1p(vix_level)",
    "pct_change(NDX.close, 5) - pct_change(SPX.close, 5)",
    "diff(vix_level, 5) / vix_level",
    "sum(if(spx_ret > 0, 1, 0), 20) / count(spx_ret, 20)",
    "(vix_level >= 20) AND (cta_position < 0) OR credit_widening",
    "NOT calm_vol OR NOT credit_ok",
    "ndx_spx_rs * 252 - lag(ndx_spx_rs * 252, 20)",
    "bars_since(vix_high)",
    "bars_since(SPX.close > ts_max(lag(SPX.close, 1), 20))",
    "hold(cross_above(mean(SPX.close, 10), mean(SPX.close, 50)), SPX.close, vix_high)",
    "hold(cta_flow_z > 1, spx_mom_60, cta_flow_z < 0) * 100",
    "ffill(fill(CREDIT.baa, CREDIT.aaa))",
]

PARAMS = [  # $params bound at compile time, then re-bound at run time (one graph, several trials)
    Case("mean(SPX.close, $w) > mean(SPX.close, 50)", params={"w": 20}),
    Case("mean(SPX.close, $w) > mean(SPX.close, 50)", params={"w": 20}, run_params={"w": 5}),
    Case("zscore(lag(cta_flow, $lag), $window) > $entry", params={"lag": 2, "window": 30, "entry": 0.25}),
    Case("vix_level > $t AND spx_mom_60 > 0", params={"t": 18}, run_params={"t": 15.5}),
]

MINUTE = [
    "es_close > asof(mean(SPX.close, 5))",
    "es_delta_z > 0 AND asof(calm_vol)",
    "mean(es_delta, 10) + asof(zscore(vix_level, 20))",
    "lag(es_close, 1) - asof(SPX.close)",
    "ES.cvd - lag(ES.cvd, 30)",
    "ema(es_close, 15) - es_close",
    "bars_since(es_delta > 40)",
    "hold(es_delta_z > 2, es_close, es_delta_z < 0)",
    "ES.volume / mean(ES.volume, 20)",
    "corr(es_close, ES.cvd, 30)",
    "rank(ES.n_trades, 15) + ts_argmax(ES.high, 10)",
    "(ES.buy_volume - ES.sell_volume) - es_delta",
    "ffill(ES.vwap, 5) - ffill(es_close, 5)",
    "std(diff(es_close, 1), 20) / asof(vix_level)",
    "cross_above(es_close, ema(es_close, 30)) AND asof(NOT vix_high)",
]

TO_DAILY = [
    "to_daily(es_delta, 'sum')",
    "to_daily(ES.close, 'last') - SPX.close",
    "to_daily(ES.high, 'max') - to_daily(ES.low, 'min')",
    "to_daily(if(es_close > asof(SPX.close), 1, 0), 'mean')",
    "to_daily(ES.volume, 'sum') > 0 AND calm_vol",
    "to_daily(es_close, 'first') - lag(to_daily(es_close, 'last'), 1)",
]


CASES = (
    [Case(f) for f in FEATURES]
    + strategy_cases()
    + [Case(t) for t in DAILY]
    + PARAMS
    + [Case(t, frequency="1m") for t in MINUTE]
    + [Case("es_delta_z", session="FULL"), Case("es_close > asof(vix_level)", session="FULL")]
    + [Case(t) for t in TO_DAILY]
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("demo_expressions") / "proj")


def reference_values(demo: Demo, g: dsl.Graph, opts: EvalOptions) -> tuple[Any, np.ndarray]:
    """(the output grid, the reference's root values on its output rows), from columns that
    WorkspaceSources places on the very grids eval_graph evaluates on."""
    grid, minute, _ = grids_for(g, demo.snapshot, demo.paths, demo.reg, opts)
    if grid.frequency is M:
        daily, mgrid = grid.daily, grid
    else:
        daily, mgrid = grid, minute
    src = WorkspaceSources(demo.snapshot, demo.paths, demo.reg, opts.as_of)
    cols = {}
    for n in g.nodes:
        if n.op == "column":
            a = dict(n.args)
            key = (str(a["dataset_id"]), str(a["column"]))
            cols[key] = src.read(*key, mgrid if n.frequency is M else daily)
    day_of_bar = list(np.searchsorted(daily.index, mgrid.trade_date)) if mgrid is not None else None
    vals = evaluate_reference(
        g,
        cols,
        n_daily=len(daily),
        n_minute=len(mgrid) if mgrid is not None else 0,
        day_of_bar=day_of_bar,
        params=opts.params,
    )
    root = vals[g.root]
    arr = np.array(root if isinstance(root, list) else [root] * len(grid), dtype=float)
    return grid, arr[grid.start :]


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    assert not np.isinf(got).any(), f"inf in output: {what}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"missingness differs: {what}")
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=RTOL, atol=1e-12, err_msg=what)


def assert_frame_nulls(res: Any, what: str) -> None:
    """frame(): one row per output row, nulls exactly where the value is missing, no NaN / inf value."""
    df = frame(res)
    ev = res.evaluation
    assert len(df) == len(ev.values) and list(df.columns) == [
        "date" if ev.grid.frequency is D else "ts",
        "value",
    ]
    col = pa.Table.from_pandas(df, preserve_index=False).column("value")
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(nulls, np.isnan(ev.values), err_msg=what)
    present = pc.drop_null(col).to_numpy()
    assert np.isfinite(present).all(), what


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_backends_agree_with_the_reference(demo: Demo, case: Case) -> None:
    g = compile_expression(
        case.text,
        demo.snapshot,
        frequency=case.frequency,
        execution=None,
        params=case.params,
        slots=case.slots,
        data_root=demo.paths.data_root,
    )
    intraday = any(n.frequency is M for n in g.nodes)
    rng = {} if intraday else {"start": START, "end": END}
    base = EvalOptions(
        frequency=case.frequency, session=case.session, params=case.run_params, cache=False, **rng
    )
    grid, want = reference_values(demo, g, base)
    assert (~np.isnan(want)).sum() >= 2, f"the reference has (almost) no value: {case.id}"
    got = {}
    for b in BACKENDS:
        res = eval_graph(
            g, demo.snapshot, demo.paths, demo.reg, EvalOptions(**{**base.__dict__, "backend": b})
        )
        ev = res.evaluation
        np.testing.assert_array_equal(ev.index, grid.index[grid.start :])
        assert_same(ev.values, want, f"{case.id} [{b}]")
        assert_frame_nulls(res, f"{case.id} [{b}]")
        got[b] = ev.values
    # the backends agree with each other, not only each with the reference
    assert_same(got["ibis"], got["numba"], f"{case.id} ibis vs numba")
    if not intraday:
        assert ev.index[0] == np.datetime64(START) or ev.index[0] > np.datetime64(START)


def test_enough_composed_expressions() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 60


def test_strategy_cases_are_the_workbooks(demo: Demo) -> None:
    """The literal STRATEGIES cases above are the template workbook's rows (slots, params, gate, scaling)."""
    snap = demo.snapshot
    templates = {t.template_id: t for t in snap.rows("SIGNAL_TEMPLATES")}
    assert {k: t.signal_expr for k, t in templates.items()} == TEMPLATES
    rows = {s.strategy_id: s for s in snap.rows("STRATEGIES")}
    assert set(rows) == set(STRATEGY_SIGNALS)
    for sid, s in rows.items():
        tid, slots, params = STRATEGY_SIGNALS[sid]
        t = templates[s.signal_template_id]
        assert tid == s.signal_template_id and slots == {"primary": s.primary_feature_id}
        assert params == {**dict(t.default_params_json or {}), **dict(s.params_json or {})}
        assert STRATEGY_GATES.get(sid) == s.gate_expr and STRATEGY_SCALING.get(sid) == s.scaling_expr
    from runtime.evaluation.run import feature_rows

    assert [f for f, _, _ in feature_rows(snap)] == FEATURES
