"""compile_backtest on the demo workbook: the engine specs are the BACKTESTS / INSTRUMENTS / STRATEGIES cells,
the gate masks follow each gate's mode (design/ENGINE.md section 5), OOS is the last X calendar months."""

from __future__ import annotations

import datetime as dt

import pytest

from runtime.backtest.compile import compile_backtest, months_before
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_bare")


def test_spx_specs_are_the_workbook_cells(bare: Project) -> None:
    cb = compile_backtest(bare.snapshot, "bt_spx_cta")
    bt = next(r for r in bare.snapshot.rows("BACKTESTS") if r.backtest_id == "bt_spx_cta")
    c = cb.column
    assert c.execution.execution_time == bt.execution_time == "close"
    assert (c.costs.price_model, c.costs.spread_type, c.costs.spread_value) == ("spread_adjusted", "bps", 1.0)
    assert (c.costs.slippage_type, c.costs.slippage_value) == ("bps", 0.5)
    assert (c.costs.commission_model, c.costs.commission_value) == ("bps", 0.2)
    assert (c.rules.min_hold_days, c.rules.cooldown_days, c.rules.flat_at_session_end) == (0, 0, False)
    assert (c.position.mode, c.position.allow_long, c.position.allow_short, c.position.allow_flat) == (
        "discrete", True, True, True,
    )  # fmt: skip
    assert cb.instrument.accounting == "notional" and cb.initial_capital == 1_000_000.0
    assert (cb.start, cb.end, cb.oos_from) == (
        dt.date(2005, 1, 3),
        dt.date(2018, 12, 31),
        dt.date(2015, 12, 31),
    )
    assert dict(cb.params) == {"entry": 0.5, "lag": 1, "window": 60}
    # entry mask = the whole expression; freeze mask = the entry_and_exit gate alone
    assert cb.gate_modes == (("calm_vol", "entry_only"), ("credit_ok", "entry_and_exit"))
    assert cb.entry_gate is not None and cb.entry_gate.text == "calm_vol AND credit_ok"
    assert cb.freeze_gate is not None and cb.freeze_gate.text.lower() == "true and credit_ok"
    assert set(cb.graphs) == {"signal", "entry_gate", "freeze_gate"}  # discrete: scaling not evaluated
    assert cb.signal.cell == "SIGNAL_TEMPLATES!J2" and "CTA.cta_flow" in cb.signal.graph.render_tree()


def test_es_specs_intraday_and_entry_only_gate(bare: Project) -> None:
    cb = compile_backtest(bare.snapshot, "bt_es_delta", {"window": 20})
    assert cb.frequency == "1m" and cb.session == "RTH" and cb.intraday_prices
    assert cb.column.rules.flat_at_session_end  # RTH intraday: flat at the session end
    assert cb.column.position.scaling_rebalance == "on_signal_change"
    assert (cb.instrument.accounting, cb.instrument.multiplier, cb.instrument.tick_size) == (
        "contracts",
        50.0,
        0.25,
    )
    assert cb.column.costs.commission_model == "per_contract" and cb.column.costs.commission_value == 2.25
    assert cb.oos_from is None and cb.params["window"] == 20
    # only an entry_only gate: an entry mask, never frozen
    assert cb.gate_modes == (("calm_vol", "entry_only"),) and cb.freeze_gate is None


@pytest.mark.parametrize(
    "day,months,want",
    [
        ((2018, 12, 31), 36, (2015, 12, 31)),
        ((2018, 3, 31), 1, (2018, 2, 28)),  # clipped to the month's end
        ((2020, 3, 31), 1, (2020, 2, 29)),  # leap year
        ((2018, 1, 15), 13, (2016, 12, 15)),
    ],
)
def test_months_before(day: tuple, months: int, want: tuple) -> None:
    assert months_before(dt.date(*day), months) == dt.date(*want)
