"""Property tests: the kernel against the independent reference (tests/engine/reference.py) on random prices,
signals, gates, scaling, costs and every rule combination; K columns in one call vs K single runs; the
metrics against numpy/pandas formulas on the kernel's own paths; no lookahead."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.engine import (
    ColumnSpec,
    CostSpec,
    ExecutionSpec,
    Gates,
    InstrumentSpec,
    Market,
    PositionSpec,
    RulesSpec,
    RunSpec,
    run_many,
    run_one,
)
from tests.engine import reference as ref

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
COST_KINDS = ("none", "ticks", "cents", "bps", "pct")
METRIC_KEYS = (
    "total_pnl", "gross_pnl", "total_costs", "n_trades", "n_bars", "n_days", "end_equity", "cagr", "max_drawdown",
    "longest_drawdown_bars", "volatility", "sharpe", "sortino", "calmar", "exposure", "win_rate", "avg_trade",
    "avg_hold_bars", "profit_factor", "turnover",
)  # fmt: skip


def to_spec(c: ref.Col) -> ColumnSpec:
    return ColumnSpec(
        ExecutionSpec(c.execution_time),
        CostSpec(
            c.price_model,
            c.spread_type,
            c.spread_value,
            c.slippage_type,
            c.slippage_value,
            c.commission_model,
            c.commission_value,
        ),
        RulesSpec(c.min_hold_days, c.cooldown_days, c.allow_flip_same_day, c.flat_at_session_end),
        PositionSpec(
            c.mode, c.allow_long, c.allow_short, c.allow_flat, c.scaling_rebalance, c.contracts_per_unit
        ),
    )


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


@st.composite
def columns(draw, mode: str | None = None, execution: str | None = None) -> ref.Col:
    """A random column; choices come from a drawn seed (uniform, unlike hypothesis' bias to simple values)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    # each restriction on with a modest probability, so flips and re-entries stay common
    sides = (
        (1, 1, 1)
        if rng.random() < 0.6
        else _pick(rng, [(1, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0), (0, 1, 0)])
    )
    costly = rng.random() < 0.7
    return ref.Col(
        execution_time=execution or _pick(rng, ["close", "next_open", "next_close", "custom"]),
        price_model=_pick(rng, ["mid", "side_aware", "spread_adjusted"]),
        spread_type=_pick(rng, COST_KINDS) if costly else "none",
        spread_value=_pick(rng, [0.0, 1.0, 2.5]),
        slippage_type=_pick(rng, COST_KINDS) if costly else "none",
        slippage_value=_pick(rng, [0.0, 0.5, 1.0]),
        commission_model=_pick(rng, ["none", "per_contract", "per_trade", "bps", "pct"])
        if costly
        else "none",
        commission_value=_pick(rng, [0.0, 0.5, 2.5]),
        min_hold_days=0 if rng.random() < 0.7 else _pick(rng, [1, 2, 3]),
        cooldown_days=0 if rng.random() < 0.7 else _pick(rng, [1, 2]),
        allow_flip_same_day=bool(rng.random() < 0.75),
        flat_at_session_end=bool(rng.random() < 0.4),
        mode=mode or _pick(rng, ["discrete", "scaled"]),
        allow_long=bool(sides[0]),
        allow_short=bool(sides[1]),
        allow_flat=bool(sides[2]),
        scaling_rebalance=_pick(rng, ["daily", "on_signal_change"]),
        contracts_per_unit=_pick(rng, [1.0, 2.0, 3.7]),
    )


@st.composite
def scenarios(draw, accounting: str | None = None):
    """Prices, sessions, signal, scaling, gates and run settings on one grid (all from a drawn seed)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n_days = int(rng.integers(2, 12))
    per_day = _pick(rng, [1, 1, 4])
    day = np.repeat(np.arange(n_days), per_day)
    T = len(day)
    close = 100.0 + np.cumsum(rng.normal(0, 1.5, T))
    open_ = np.concatenate([[close[0]], close[:-1]]) + rng.normal(0, 0.5, T)
    custom = np.where(rng.random(T) < 0.15, np.nan, open_ + rng.normal(0, 0.3, T))
    signal = rng.choice([-1.0, 0.0, 1.0, np.nan, 0.4, -2.0], T, p=[0.3, 0.2, 0.3, 0.05, 0.1, 0.05])
    scaling = rng.choice([0.0, 0.4, 1.0, 1.5, 2.5, 3.2, -1.0, np.nan], T)
    entry_ok = rng.random(T) < _pick(rng, [1.0, 1.0, 0.8, 0.5])
    frozen = rng.random(T) < _pick(rng, [0.0, 0.0, 0.1, 0.3])
    starts = [0, *(np.flatnonzero(np.diff(day)) + 1).tolist()]
    trade_start = int(_pick(rng, starts[: max(1, len(starts) // 2)]))
    later = [s for s in starts if s >= trade_start] + [T]
    oos_start = int(_pick(rng, later))
    accounting = accounting or _pick(rng, ["contracts", "notional"])
    setup = ref.Setup(
        close=list(close),
        open=list(open_),
        custom=list(custom),
        day=list(day),
        accounting=accounting,
        multiplier=_pick(rng, [1.0, 50.0]) if accounting == "contracts" else 1.0,
        tick_size=0.25,
        initial_capital=_pick(rng, [10_000.0, 1_000_000.0]),
        trade_start=trade_start,
        oos_start=oos_start,
        annualization_factor=252.0,
        risk_free_rate=_pick(rng, [0.0, 0.03]),
    )
    return setup, signal, scaling, entry_ok, frozen


def kernel_run(setup: ref.Setup, c: ref.Col, signal, scaling, entry_ok, frozen):
    market = Market(np.array(setup.close), np.array(setup.open), np.array(setup.custom), np.array(setup.day))
    spec = RunSpec(
        InstrumentSpec(setup.accounting, setup.multiplier, setup.tick_size),
        setup.initial_capital,
        setup.trade_start,
        setup.oos_start,
        setup.annualization_factor,
        setup.risk_free_rate,
    )
    return run_one(market, signal, to_spec(c), spec, scaling=scaling, gates=Gates(entry_ok, frozen))


def close_enough(a: float, b: float, what: str) -> None:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    if a == b:
        return
    assert a == pytest.approx(b, rel=1e-9, abs=1e-7), what


@pytest.mark.parametrize("execution", ["close", "next_open", "next_close", "custom"])
@pytest.mark.parametrize("mode", ["discrete", "scaled"])
@pytest.mark.parametrize("accounting", ["contracts", "notional"])
def test_kernel_matches_reference(accounting, mode, execution):
    """Every accounting x position mode x execution time gets its own examples (rules, costs, gates drawn)."""

    @settings(max_examples=60, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(scenarios(accounting), columns(mode, execution))
    def check(scn, c):
        check_one(scn, c)

    check()


def check_one(scn, c: ref.Col) -> None:
    setup, signal, scaling, entry_ok, frozen = scn
    got = kernel_run(setup, c, signal, scaling, entry_ok, frozen)
    want = ref.simulate(setup, c, list(signal), list(scaling), list(entry_ok), list(frozen))
    for key in ("equity", "pnl", "gross", "costs", "position"):
        np.testing.assert_allclose(got.paths[key], want["paths"][key], rtol=1e-9, atol=1e-7, err_msg=key)
    assert len(got.trades["pnl"]) == len(want["trades"])
    for i, t in enumerate(want["trades"]):
        for key in ("entry_row", "exit_row", "entry_price", "exit_price", "side", "contracts", "pnl", "costs",
                    "hold_bars", "open"):  # fmt: skip
            close_enough(float(got.trades[key][i]), float(t[key]), f"trade {i} {key}")
    for seg in ("full", "is", "oos"):
        for key in METRIC_KEYS:
            if key in want["metrics"][seg]:
                close_enough(got.metrics[seg][key], want["metrics"][seg][key], f"{seg} {key}")
    # invariants of the definitions
    assert got.metrics["full"]["total_pnl"] == pytest.approx(got.trades["pnl"].sum(), abs=1e-6)
    assert got.metrics["full"]["total_pnl"] == pytest.approx(
        got.metrics["is"]["total_pnl"] + got.metrics["oos"]["total_pnl"], abs=1e-6
    )
    assert np.all(got.paths["position"][: setup.trade_start] == 0)


@SETTINGS
@given(scenarios(), st.lists(columns(), min_size=2, max_size=5), st.integers(1, 3))
def test_k_columns_equal_k_single_runs(scn, cols, chunk):
    setup, signal, scaling, entry_ok, frozen = scn
    K = len(cols)
    rng = np.random.default_rng(K)
    sigs = np.column_stack([np.roll(signal, i) for i in range(K)])
    scal = np.column_stack([scaling, np.abs(scaling[::-1])])
    gates_ok = np.column_stack([entry_ok, ~entry_ok, np.ones_like(entry_ok)])
    gates_fz = np.column_stack([frozen, np.zeros_like(frozen), frozen])
    sidx = rng.integers(0, 2, K)
    gidx = rng.integers(0, 3, K)
    market = Market(np.array(setup.close), np.array(setup.open), np.array(setup.custom), np.array(setup.day))
    spec = RunSpec(InstrumentSpec(setup.accounting, setup.multiplier, setup.tick_size), setup.initial_capital,
                   setup.trade_start, setup.oos_start)  # fmt: skip
    many = run_many(market, sigs, [to_spec(c) for c in cols], spec, scaling=scal, scale_idx=sidx,
                    gates=Gates(gates_ok, gates_fz), gate_idx=gidx, chunk=chunk)  # fmt: skip
    for k, c in enumerate(cols):
        one = run_one(market, sigs[:, k], to_spec(c), spec, scaling=scal[:, sidx[k]],
                      gates=Gates(gates_ok[:, gidx[k]], gates_fz[:, gidx[k]]))  # fmt: skip
        for seg in ("full", "is", "oos"):  # the same arithmetic: bit-identical
            got, want = many.record(k)[seg], one.metrics[seg]
            np.testing.assert_array_equal(
                list(got.values()), list(want.values()), err_msg=f"column {k} {seg}"
            )


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(scenarios(), columns())
def test_metrics_are_numpy_formulas_of_the_kernel_paths(scn, c):
    setup, signal, scaling, entry_ok, frozen = scn
    got = kernel_run(setup, c, signal, scaling, entry_ok, frozen)
    trades = [
        {k: (bool(got.trades[k][i]) if k == "open" else float(got.trades[k][i])) for k in got.trades}
        for i in range(len(got.trades["pnl"]))
    ]
    for t in trades:
        t["exit_row"] = int(t["exit_row"])
    want = ref.metrics(setup, dict(got.paths), trades, setup.day)
    for seg in ("full", "is", "oos"):
        for key, v in want[seg].items():
            close_enough(got.metrics[seg][key], v, f"{seg} {key}")
    # drawdown path = 1 - equity / running peak (the capital included)
    eq = got.paths["equity"]
    peak = np.maximum.accumulate(np.concatenate([[setup.initial_capital], eq]))[1:]
    np.testing.assert_allclose(got.paths["drawdown"], (peak - eq) / peak, atol=1e-12)


# --------------------------------------------------------------------------------------------------------
# No lookahead: the fill of a decision at t is in row t+1, and the prices' row matters
# --------------------------------------------------------------------------------------------------------


def random_walk(seed: int, T: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 4000 + np.cumsum(rng.normal(0, 10, T))
    open_ = np.concatenate([[close[0]], close[:-1]]) + rng.normal(0, 3, T)
    return close, open_


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_next_open_fill_is_the_open_of_the_next_row(seed):
    close, open_ = random_walk(seed)
    rng = np.random.default_rng(seed + 10)
    signal = rng.choice([-1.0, 0.0, 1.0], len(close))
    r = run_one(Market(close, open_), signal, ColumnSpec(ExecutionSpec("next_open")),
                RunSpec(InstrumentSpec("contracts", 50.0, 0.25)))  # fmt: skip
    # the decided position of row t (= the signal) is held from open[t+1]: positions are the signal shifted by one
    np.testing.assert_array_equal(r.paths["position"][1:], signal[:-1])
    assert r.paths["position"][0] == 0
    entries = r.trades["entry_row"]
    np.testing.assert_array_equal(r.trades["entry_price"], open_[entries])
    assert np.all(signal[entries - 1] == r.trades["side"])
    # PnL, independently: held position x (close - open) on fill rows, x (close - previous close) otherwise
    pos = np.concatenate([[0.0], signal[:-1]])
    prev = np.concatenate([[0.0], pos[:-1]])
    fill = pos != prev
    prev_close = np.concatenate([[close[0]], close[:-1]])
    want = (
        np.where(fill, prev * (open_ - prev_close) + pos * (close - open_), pos * (close - prev_close)) * 50.0
    )
    np.testing.assert_allclose(r.paths["pnl"], want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("execution", ["close", "next_open", "next_close"])
def test_shifting_prices_by_one_row_changes_the_result(execution):
    close, open_ = random_walk(7)
    signal = np.sign(np.concatenate([[0.0], np.diff(close)]))  # momentum known at t
    spec = RunSpec(InstrumentSpec("contracts", 50.0, 0.25), trade_start=1)
    col = ColumnSpec(ExecutionSpec(execution))
    base = run_one(Market(close, open_), signal, col, spec).metrics["full"]["total_pnl"]
    shifted = run_one(Market(np.roll(close, 1), np.roll(open_, 1)), signal, col, spec).metrics["full"][
        "total_pnl"
    ]
    ahead = run_one(Market(np.roll(close, -1), np.roll(open_, -1)), signal, col, spec).metrics["full"][
        "total_pnl"
    ]
    assert base != shifted and base != ahead
    # a signal that peeks one row ahead earns on every row at `close` execution: the engine is exact about timing,
    # so the availability check (the compiler's, before the kernel) is what keeps such a signal out
    peek = np.sign(np.concatenate([np.diff(close), [0.0]]))
    r = run_one(Market(close, open_), peek, ColumnSpec(ExecutionSpec("close")), RunSpec())
    assert np.all(r.paths["pnl"] >= 0)
    honest = run_one(Market(close, open_), signal, ColumnSpec(ExecutionSpec("close")), RunSpec())
    assert np.any(honest.paths["pnl"] < 0)


def test_warmup_rows_are_never_traded_and_not_in_metrics():
    close, open_ = random_walk(3, 50)
    signal = np.ones(50)
    r = run_one(Market(close, open_), signal, ColumnSpec(), RunSpec(InstrumentSpec(), 1e6, trade_start=20))
    assert np.all(r.paths["position"][:21] == 0)  # the first decision (row 20) fills at the open of row 21
    assert r.trades["entry_row"][0] == 21
    assert r.metrics["full"]["n_bars"] == 30.0
    assert r.metrics["full"]["total_pnl"] == pytest.approx(close[-1] - open_[21])


def test_spec_errors_are_clear():
    close, open_ = random_walk(1, 10)
    with pytest.raises(ValueError, match="next_open execution needs the open"):
        run_one(Market(close), np.ones(10), ColumnSpec(), RunSpec())
    with pytest.raises(ValueError, match="custom execution needs"):
        run_one(Market(close, open_), np.ones(10), ColumnSpec(ExecutionSpec("custom")), RunSpec())
    with pytest.raises(ValueError, match="scaled position mode needs a scaling"):
        run_one(Market(close, open_), np.ones(10), ColumnSpec(position=PositionSpec("scaled")), RunSpec())
    with pytest.raises(ValueError, match="first row of a session"):
        run_one(Market(close, open_, day=np.repeat(np.arange(5), 2)), np.ones(10), ColumnSpec(),
                RunSpec(oos_start=3))  # fmt: skip
    bad = close.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="close is missing at row 4"):
        run_one(Market(bad, open_), np.ones(10), ColumnSpec(), RunSpec())
    with pytest.raises(ValueError, match="unknown execution_time 'at_noon'"):
        ExecutionSpec("at_noon")
    with pytest.raises(ValueError, match="must have 10 rows"):
        run_one(Market(close, open_), np.ones(9), ColumnSpec(), RunSpec())
    with pytest.raises(ValueError, match="scaling is infinite"):
        run_one(Market(close, open_), np.ones(10), ColumnSpec(position=PositionSpec("scaled")), RunSpec(),
                scaling=np.full(10, np.inf))  # fmt: skip
    with pytest.raises(ValueError, match="commission_value must be a finite number >= 0"):
        CostSpec(commission_value=-1.0)
    assert asdict(ColumnSpec())["costs"]["price_model"] == "mid"
