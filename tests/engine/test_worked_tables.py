"""Every worked table of design/ENGINE.md, with the hand-worked numbers written here (not computed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
    run_one,
)

NAN = float("nan")


def col(execution: str = "close", costs: CostSpec | None = None, rules: RulesSpec | None = None,
        position: PositionSpec | None = None) -> ColumnSpec:  # fmt: skip
    return ColumnSpec(
        ExecutionSpec(execution), costs or CostSpec(), rules or RulesSpec(), position or PositionSpec()
    )


def run(close, signal, column, *, open_=None, custom=None, day=None, mult=1.0, tick=0.0, accounting="contracts",
        capital=100_000.0, scaling=None, entry_ok=None, frozen=None, trade_start=0, oos_start=None):  # fmt: skip
    gates = None
    if entry_ok is not None or frozen is not None:
        T = len(close)
        gates = Gates(
            np.array(entry_ok if entry_ok is not None else [True] * T),
            None if frozen is None else np.array(frozen),
        )
    return run_one(
        Market(
            np.array(close, float),
            None if open_ is None else np.array(open_, float),
            None if custom is None else np.array(custom, float),
            None if day is None else np.array(day),
        ),
        np.array(signal, float),
        column,
        RunSpec(InstrumentSpec(accounting, mult, tick), capital, trade_start, oos_start),
        scaling=None if scaling is None else np.array(scaling, float),
        gates=gates,
    )


# ENGINE.md table 1: decision and fill --------------------------------------------------------------
CLOSE1 = [100.0, 102.0, 101.0, 104.0]
OPEN1 = [99.0, 101.0, 103.0, 103.0]
SIG1 = [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("execution", "pnl", "position", "entry", "exit_"),
    [
        ("close", [0, 100, -50, 0], [1, 1, 0, 0], (0, 100.0), (2, 101.0)),
        ("next_open", [0, 50, -50, 100], [0, 1, 1, 0], (1, 101.0), (3, 103.0)),
        ("next_close", [0, 0, -50, 150], [0, 1, 1, 0], (1, 102.0), (3, 104.0)),
        ("custom", [0, 25, -50, 125], [0, 1, 1, 0], (1, 101.5), (3, 103.5)),
    ],
)
def test_table1_decision_and_fill(execution, pnl, position, entry, exit_):
    r = run(CLOSE1, SIG1, col(execution), open_=OPEN1, custom=[NAN, 101.5, 102.5, 103.5], mult=50.0)
    np.testing.assert_array_equal(r.paths["pnl"], pnl)
    np.testing.assert_array_equal(r.paths["position"], position)
    assert (int(r.trades["entry_row"][0]), r.trades["entry_price"][0]) == entry
    assert (int(r.trades["exit_row"][0]), r.trades["exit_price"][0]) == exit_
    np.testing.assert_array_equal(r.paths["equity"], 100_000 + np.cumsum(pnl))


def test_missing_fill_price_cancels_the_order_and_the_next_decision_retries():
    # custom price missing in row 1: the entry decided at 0 is not filled; the decision at 1 fills at row 2
    r = run(CLOSE1, [1, 1, 1, 1], col("custom"), custom=[NAN, NAN, 101.5, 103.5], mult=1.0)
    np.testing.assert_array_equal(r.paths["position"], [0, 0, 1, 1])
    np.testing.assert_array_equal(r.paths["pnl"], [0, 0, -0.5, 3.0])


# table 2: missing = 0, allowed sides -------------------------------------------------------------------
SIG2 = [1.0, -1.0, 0.3, -2.0, NAN, 0.0]


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (PositionSpec(), [1, -1, 1, -1, 0, 0]),
        (PositionSpec(allow_short=False), [1, 0, 1, 0, 0, 0]),  # long-only: -1 -> 0
        (PositionSpec(allow_long=False), [0, -1, 0, -1, 0, 0]),
        (PositionSpec(allow_flat=False), [1, -1, 1, -1, -1, -1]),  # always in: 0/missing keeps the side
        (PositionSpec(allow_short=False, allow_flat=False), [1, 1, 1, 1, 1, 1]),
    ],
)
def test_table2_sides(position, expected):
    r = run([100.0] * 6, SIG2, col(position=position))
    np.testing.assert_array_equal(r.paths["position"], expected)


def test_position_spec_from_config():
    assert PositionSpec.from_config(["0", "1"]).allow_short is False
    assert PositionSpec.from_config(["-1", "0", "1"], supports_long_short=False).allow_short is False
    assert PositionSpec.from_config(["-1", "1"]).allow_flat is False
    assert PositionSpec.from_config(["-1", "0", "1"], supports_flat=False).allow_flat is False


# table 3: scaled futures, rounding, rebalance --------------------------------------------------------
def test_table3_scaled_contracts():
    close = [100.0, 101.0, 102.0, 101.0, 100.0]
    sig = [1.0, 1.0, 1.0, -1.0, -1.0]
    scale = [2.4, 2.6, 1.0, 3.0, 2.5]
    daily = run(close, sig, col(position=PositionSpec("scaled")), scaling=scale, mult=50.0)
    np.testing.assert_array_equal(daily.paths["position"], [2, 3, 1, -3, -3])  # round(-2.5) = -3
    np.testing.assert_array_equal(daily.paths["pnl"], [0, 100, 150, -50, 150])
    osc = run(close, sig, col(position=PositionSpec("scaled", scaling_rebalance="on_signal_change")), scaling=scale,
              mult=50.0)  # fmt: skip
    np.testing.assert_array_equal(osc.paths["position"], [2, 2, 2, -3, -3])
    two = run(
        close, sig, col(position=PositionSpec("scaled", contracts_per_unit=2.0)), scaling=scale, mult=50.0
    )
    np.testing.assert_array_equal(two.paths["position"], [5, 5, 2, -6, -5])  # round(4.8, 5.2, 2, -6, -5)
    # a scaled trade is one trade from opening to flat; its size is the largest position held
    assert daily.metrics["full"]["n_trades"] == 2.0
    np.testing.assert_array_equal(daily.trades["contracts"], [3, 3])


# table 4: index proxy (notional) ----------------------------------------------------------------------
def test_table4_index_proxy_notional():
    close = [100.0, 110.0, 99.0, 99.0]
    r = run(close, [1, 1, 0, 0], col(), accounting="notional")
    np.testing.assert_allclose(r.paths["pnl"], [0, 10_000, -11_000, 0])  # 1000 units; notional x return
    np.testing.assert_allclose(r.paths["position"], [1000, 1000, 0, 0])
    s = run(close, [1, 1, 1, 0], col(position=PositionSpec("scaled")), accounting="notional",
            scaling=[0.5, 0.5, 0.5, 0.5])  # fmt: skip
    np.testing.assert_allclose(s.paths["position"], [500, 105_000 * 0.5 / 110, 99_750 * 0.5 / 99, 0])
    np.testing.assert_allclose(s.paths["pnl"], [0, 5_000, -5_250, 0])
    np.testing.assert_allclose(s.paths["pnl"][1:3] / s.paths["equity"][0:2], [0.05, -0.05])  # half the asset


# table 5: gates --------------------------------------------------------------------------------------
def test_table5_entry_only_gate():
    r = run([100.0] * 6, [1, 1, 1, -1, -1, 1], col(), entry_ok=[False, True, True, False, True, True])
    np.testing.assert_array_equal(r.paths["position"], [0, 1, 1, 0, -1, 1])  # the flip at row 3 is an exit


def test_table5_entry_only_gate_scaled_reduce_allowed_increase_blocked():
    r = run([100.0] * 4, [1, 1, 1, 1], col(position=PositionSpec("scaled")), scaling=[3, 1, 3, 3],
            entry_ok=[True, False, False, True])  # fmt: skip
    np.testing.assert_array_equal(r.paths["position"], [3, 1, 1, 3])


def test_table5_entry_and_exit_gate_freezes():
    r = run([100.0] * 5, [1, 0, -1, -1, 0], col(), frozen=[False, True, True, False, False])
    np.testing.assert_array_equal(r.paths["position"], [1, 1, 1, -1, 0])


def test_float_gate_masks_missing_means_closed():
    r = run([100.0] * 3, [1, 1, 1], col(), entry_ok=np.array([NAN, 0.0, 1.0]))
    np.testing.assert_array_equal(r.paths["position"], [0, 0, 1])


# table 6: min hold, cooldown, flips --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "sig", "expected"),
    [
        (RulesSpec(min_hold_days=2), [1, 0, 0, 0, -1, -1], [1, 1, 0, 0, -1, -1]),
        (RulesSpec(min_hold_days=2), [1, -1, -1, -1, -1, -1], [1, 1, -1, -1, -1, -1]),
        (RulesSpec(cooldown_days=1), [1, 0, 1, 1, 1, 1], [1, 0, 0, 1, 1, 1]),
        (RulesSpec(cooldown_days=1), [1, -1, -1, -1, -1, -1], [1, 0, 0, -1, -1, -1]),
        (RulesSpec(allow_flip_same_day=False), [1, -1, -1, 1, 1, 1], [1, 0, -1, 0, 1, 1]),
        (RulesSpec(), [1, -1, -1, 1, 1, 1], [1, -1, -1, 1, 1, 1]),
    ],
)
def test_table6_rules(rules, sig, expected):
    r = run([100.0] * 6, sig, col(rules=rules))
    np.testing.assert_array_equal(r.paths["position"], expected)


def test_table6_no_flip_same_day_next_open_fills():
    # exit fills at open of row 2, the short entry (decided at 2) at open of row 3
    close = [100.0, 100.0, 100.0, 100.0, 100.0]
    r = run(close, [1, -1, -1, -1, -1], col("next_open", rules=RulesSpec(allow_flip_same_day=False)),
            open_=[100.0, 101.0, 102.0, 103.0, 104.0])  # fmt: skip
    np.testing.assert_array_equal(r.paths["position"], [0, 1, 0, -1, -1])
    np.testing.assert_array_equal(r.trades["entry_price"], [101.0, 103.0])
    np.testing.assert_array_equal(r.trades["exit_price"][:1], [102.0])


# table 7: the intraday session end -------------------------------------------------------------------------
def test_table7_flat_at_session_end():
    close = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    open_ = [9.5, 10.5, 11.5, 12.5, 13.5, 14.5]
    day = [0, 0, 0, 1, 1, 1]
    rules = RulesSpec(flat_at_session_end=True)
    r = run(close, [1] * 6, col("next_open", rules=rules), open_=open_, day=day)
    np.testing.assert_array_equal(r.paths["pnl"], [0, 0.5, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(r.trades["entry_price"], [10.5, 12.5])
    np.testing.assert_array_equal(r.trades["exit_price"], [12.0, 15.0])
    np.testing.assert_array_equal(r.trades["pnl"], [1.5, 2.5])
    assert not r.trades["open"].any()
    c = run(close, [1] * 6, col("next_open", CostSpec(slippage_type="ticks", slippage_value=1), rules),
            open_=open_, day=day, tick=0.25)  # fmt: skip
    np.testing.assert_array_equal(c.paths["costs"], [0, 0.25, 0.25, 0.25, 0, 0.25])
    assert c.metrics["full"]["total_pnl"] == 3.0
    held = run(close, [1] * 6, col("next_open"), open_=open_, day=day)  # hold overnight
    np.testing.assert_array_equal(held.paths["pnl"], [0, 0.5, 1.0, 1.0, 1.0, 1.0])
    # daily returns are per session: two days, 1.5 and 2.5 on 100,000 and 100,001.5
    assert r.metrics["full"]["n_days"] == 2.0
    assert r.metrics["full"]["n_bars"] == 6.0


# table 8: prices and costs (ES: multiplier 50, tick 0.25) ----------------------------------------------------
ES_CLOSE = [5000.0, 5004.0, 5008.0]
ES_OPEN = [5000.0, 5002.0, 5006.0]


@pytest.mark.parametrize(
    ("costs", "total_cost"),
    [
        (CostSpec(), 0.0),
        (CostSpec(slippage_type="ticks", slippage_value=1), 25.0),  # 12.50 a side
        (CostSpec(slippage_type="cents", slippage_value=25), 25.0),  # 0.25 points
        (CostSpec(commission_model="per_contract", commission_value=2.5), 5.0),
        (CostSpec(commission_model="per_trade", commission_value=3.0), 6.0),
        (CostSpec("mid", spread_type="ticks", spread_value=1), 0.0),
        (CostSpec("side_aware", spread_type="ticks", spread_value=1), 12.5),  # half a tick a side
        (CostSpec("bid_ask", spread_type="ticks", spread_value=1), 12.5),
        (CostSpec("spread_adjusted", spread_type="ticks", spread_value=1), 25.0),  # the whole tick a side
        (
            CostSpec(slippage_type="bps", slippage_value=1),
            25.01 + 25.03,
        ),  # 1e-4 x 5002 x 50, 1e-4 x 5006 x 50
        (CostSpec(slippage_type="pct", slippage_value=0.01), 25.01 + 25.03),
        (CostSpec(commission_model="bps", commission_value=1), 25.01 + 25.03),
        (CostSpec(commission_model="pct", commission_value=0.01), 25.01 + 25.03),
        (
            CostSpec(
                slippage_type="ticks", slippage_value=1, commission_model="per_contract", commission_value=2.5
            ),
            30.0,
        ),
    ],
)
def test_table8_costs_one_round_trip(costs, total_cost):
    r = run(ES_CLOSE, [1, 0, 0], col("next_open", costs), open_=ES_OPEN, mult=50.0, tick=0.25)
    assert r.metrics["full"]["gross_pnl"] == 200.0  # 4 points x $50
    assert r.metrics["full"]["total_costs"] == pytest.approx(total_cost, abs=1e-9)
    assert r.metrics["full"]["total_pnl"] == pytest.approx(200.0 - total_cost, abs=1e-9)
    assert r.trades["costs"][0] == pytest.approx(total_cost, abs=1e-9)


def test_table8_costs_scale_with_contracts_except_per_trade():
    two = PositionSpec("scaled", contracts_per_unit=2.0)
    for costs, total in [
        (CostSpec(commission_model="per_contract", commission_value=2.5), 10.0),
        (CostSpec(commission_model="per_trade", commission_value=3.0), 6.0),
        (CostSpec(slippage_type="ticks", slippage_value=1), 50.0),
    ]:
        r = run(ES_CLOSE, [1, 0, 0], col("next_open", costs, position=two), open_=ES_OPEN, mult=50.0, tick=0.25,
                scaling=[1, 1, 1])  # fmt: skip
        assert r.metrics["full"]["gross_pnl"] == 400.0
        assert r.metrics["full"]["total_costs"] == pytest.approx(total)


def test_flip_cost_split_between_the_two_trades():
    # flip +1 -> -1 at close 101: 2 contracts traded, $1 each: $1 to the closing trade, $1 to the new one
    r = run([100.0, 101.0, 100.0], [1, -1, -1], col(costs=CostSpec(commission_model="per_contract",
            commission_value=1.0)))  # fmt: skip
    np.testing.assert_array_equal(r.paths["costs"], [1, 2, 0])
    np.testing.assert_array_equal(r.trades["pnl"], [1 - 2, 1 - 1])  # +1 move -2 costs; short +1 move -1 cost
    assert r.metrics["full"]["total_pnl"] == pytest.approx(r.trades["pnl"].sum())


# table 9: warm-up, IS/OOS, metrics by hand ------------------------------------------------------------------
def test_table9_warmup_is_oos():
    close = [100.0, 100.0, 102.0, 101.0, 103.0, 104.0]
    r = run(close, [1] * 6, col(), capital=1000.0, trade_start=1, oos_start=4)
    np.testing.assert_array_equal(r.paths["position"], [0, 1, 1, 1, 1, 1])  # row 0 is warm-up: never traded
    np.testing.assert_array_equal(r.paths["pnl"], [0, 0, 2, -1, 2, 1])
    m = r.metrics
    assert (m["full"]["total_pnl"], m["is"]["total_pnl"], m["oos"]["total_pnl"]) == (4.0, 1.0, 3.0)
    assert (m["full"]["n_bars"], m["is"]["n_bars"], m["oos"]["n_bars"]) == (5.0, 3.0, 2.0)
    # the trade still open at the end belongs to OOS (its exit row), valued at the last close
    assert (m["full"]["n_trades"], m["is"]["n_trades"], m["oos"]["n_trades"]) == (1.0, 0.0, 1.0)
    assert math.isnan(m["is"]["win_rate"]) and m["oos"]["win_rate"] == 1.0
    assert m["full"]["max_drawdown"] == pytest.approx(1 / 1002)  # peak 1002 -> 1001
    assert m["full"]["longest_drawdown_bars"] == 1.0
    rets = np.array([0 / 1000, 2 / 1000, -1 / 1002, 2 / 1001, 1 / 1003])
    assert m["full"]["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(252))
    assert m["full"]["cagr"] == pytest.approx((1004 / 1000) ** (252 / 5) - 1)
    assert m["oos"]["cagr"] == pytest.approx((1004 / 1001) ** (252 / 2) - 1)
    assert m["is"]["max_drawdown"] == pytest.approx(1 / 1002) and m["oos"]["max_drawdown"] == 0.0
    assert m["full"]["exposure"] == 1.0
    # turnover: one buy of 100 x 1 notional over a mean day-start equity of (1000+1000+1002+1001+1003)/5
    assert m["full"]["turnover"] == pytest.approx(100 / (5006 / 5) * 252 / 5)


def test_risk_free_rate_and_annualization():
    close = [100.0, 101.0, 100.5, 102.0]
    spec = RunSpec(InstrumentSpec(), 1000.0, annualization_factor=12.0, risk_free_rate=0.06)
    r = run_one(Market(np.array(close)), np.ones(4), col(), spec)
    rets = np.array([0.0, 1 / 1000, -0.5 / 1001, 1.5 / 1000.5]) - 0.06 / 12
    assert r.metrics["full"]["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(12))
    down = math.sqrt(np.mean(np.minimum(rets, 0) ** 2))
    assert r.metrics["full"]["sortino"] == pytest.approx(rets.mean() / down * math.sqrt(12))


# table 6 on an intraday grid: min hold and cooldown count sessions, not bars -------------------------------
DAY3 = [0, 0, 0, 1, 1, 1, 2, 2]


def test_table6_intraday_rules_count_sessions():
    cool = run([100.0] * 8, [1, 0, 1, 1, 1, 1, 1, 1], col(rules=RulesSpec(cooldown_days=1)), day=DAY3)
    np.testing.assert_array_equal(cool.paths["position"], [1, 0, 0, 0, 0, 0, 1, 1])  # rest of day 0 and day 1
    hold = run([100.0] * 8, [1, 0, 0, 0, 0, 0, 0, 0], col(rules=RulesSpec(min_hold_days=1)), day=DAY3)
    np.testing.assert_array_equal(hold.paths["position"], [1, 1, 1, 0, 0, 0, 0, 0])  # first exit on day 1


def test_table7_session_end_flattens_even_a_frozen_position():
    r = run([10.0, 11.0, 12.0, 13.0], [1, 1, 1, 1], col(rules=RulesSpec(flat_at_session_end=True)),
            day=[0, 0, 1, 1], frozen=[False, True, True, True])  # fmt: skip
    np.testing.assert_array_equal(r.paths["position"], [1, 1, 0, 0])  # frozen flat on day 1
    np.testing.assert_array_equal(r.paths["pnl"], [0, 1, 0, 0])
    assert (r.trades["entry_price"][0], r.trades["exit_price"][0]) == (10.0, 11.0)


def test_engine_metric_names_start_with_the_workbook_metric_ids() -> None:
    """The engine reports every METRICS sheet id under the same name (the engine does not import config)."""
    from runtime.config.schema import METRIC_IDS
    from runtime.engine.contracts import METRIC_NAMES

    assert METRIC_NAMES[: len(METRIC_IDS)] == METRIC_IDS
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
