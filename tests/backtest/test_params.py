"""Parameter-set keys (contract A, runtime/backtest/params.py) on the demo workbook: what each key addresses,
what compile_backtest makes of it (graphs, engine specs, window, the full binding), and the refusals.

Every expected value is read off the demo workbook's cells (runtime/config/template.py DEMO_ROWS) or worked
out by hand here; the session `bare` project is only read (compile writes nothing).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from runtime.backtest.compile import compile_backtest, months_before
from runtime.backtest.params import param_key, split_params
from runtime.contracts import UserError
from tests.backtest.conftest import Project

pytestmark = pytest.mark.xdist_group("backtest_bare")


def test_param_key_maps_every_scope() -> None:
    assert param_key("strategy", "spx_cta_z", "window") == "window"
    assert param_key("template", "zscore_threshold", "entry") == "entry"
    assert param_key("feature", "vix_high", "threshold") == "vix_high.threshold"
    assert param_key("gate", "calm_vol", "level") == "calm_vol.level"
    assert param_key("backtest", "bt_spx_cta", "min_hold_days") == "backtest.min_hold_days"
    with pytest.raises(UserError, match="fix: pick one of those"):
        param_key("scaling", "x", "y")


def test_split_sorts_keys_by_what_they_address(bare: Project) -> None:
    sp = split_params(
        bare.snapshot,
        "bt_spx_cta",
        {
            "window": np.int64(45),  # numpy scalars from a sampler become plain Python values
            "vix_high.threshold": np.float64(27.5),
            "backtest.min_hold_days": 4.0,
            "backtest.allow_flip_same_day": False,
            "backtest.end_date": "2017-06-30",
            "backtest.cost_multiplier": 1.5,
        },
    )
    assert dict(sp.expression) == {"window": 45} and type(sp.expression["window"]) is int
    assert {k: dict(v) for k, v in sp.features.items()} == {"vix_high": {"threshold": 27.5}}
    assert dict(sp.backtest) == {
        "min_hold_days": 4,
        "allow_flip_same_day": False,
        "end_date": dt.date(2017, 6, 30),
        "cost_multiplier": 1.5,
    }
    assert sp.cost_multiplier == 1.5 and "cost_multiplier" not in sp.columns


def test_compile_binds_every_key(bare: Project) -> None:
    snap = bare.snapshot
    base = compile_backtest(snap, "bt_spx_cta")
    p = {
        "entry": 0.65,
        "vix_high.threshold": 31,
        "backtest.slippage_value": 1.75,
        "backtest.cost_multiplier": 3,
        "backtest.min_hold_days": 6,
        "backtest.cooldown_days": 2,
        "backtest.initial_capital": 2_500_000,
    }
    cb = compile_backtest(snap, "bt_spx_cta", p)
    # the full binding: strategy defaults (lag 1, window 60) plus every key given
    assert dict(cb.params) == {"lag": 1, "window": 60, **p}
    # costs: the workbook's spread 1 bp, slippage overridden to 1.75 bp, commission 0.2 bp, all x 3
    c = cb.column.costs
    assert (c.spread_value, c.slippage_value, c.commission_value) == pytest.approx((3.0, 5.25, 0.6))
    assert (c.price_model, c.spread_type, c.slippage_type) == ("spread_adjusted", "bps", "bps")
    assert (cb.column.rules.min_hold_days, cb.column.rules.cooldown_days) == (6, 2)
    assert cb.initial_capital == 2_500_000.0
    # the feature override is inside the gate's graph (calm_vol = NOT vix_high), not the signal's
    assert cb.signal.graph.hash == base.signal.graph.hash
    assert cb.entry_gate is not None and base.entry_gate is not None
    assert cb.entry_gate.graph.hash != base.entry_gate.graph.hash
    assert "31  : int, scalar" in cb.entry_gate.graph.render_tree()
    assert "25  : int, scalar" in base.entry_gate.graph.render_tree()
    # the freeze mask reads credit_ok only: unchanged
    assert cb.freeze_gate is not None and base.freeze_gate is not None
    assert cb.freeze_gate.graph.hash == base.freeze_gate.graph.hash
    # the workbook's own value (25) gives the workbook's graph; another value another graph
    same = compile_backtest(snap, "bt_spx_cta", {"vix_high.threshold": 25})
    other = compile_backtest(snap, "bt_spx_cta", {"vix_high.threshold": 19})
    assert same.entry_gate.graph.hash == base.entry_gate.graph.hash  # type: ignore[union-attr]
    assert other.entry_gate.graph.hash not in {  # type: ignore[union-attr]
        base.entry_gate.graph.hash,
        cb.entry_gate.graph.hash,
    }
    # cost_multiplier 0: every cost value 0, the models kept
    zero = compile_backtest(snap, "bt_spx_cta", {"backtest.cost_multiplier": 0})
    z = zero.column.costs
    assert (z.spread_value, z.slippage_value, z.commission_value) == (0.0, 0.0, 0.0)


def test_window_keys_move_the_window(bare: Project) -> None:
    cb = compile_backtest(
        bare.snapshot,
        "bt_spx_cta",
        {
            "backtest.start_date": "2009-03-02",
            "backtest.end_date": "2013-08-30",
            "backtest.oos_last_x_months": 7,
        },
    )
    assert (cb.start, cb.end, cb.oos_months) == (dt.date(2009, 3, 2), dt.date(2013, 8, 30), 7)
    # 2013-08-30 minus 7 calendar months = 2013-01-30 (by hand)
    assert cb.oos_from == dt.date(2013, 1, 30) == months_before(dt.date(2013, 8, 30), 7)
    no_oos = compile_backtest(bare.snapshot, "bt_spx_cta", {"backtest.oos_last_x_months": 0})
    assert no_oos.oos_from is None


BAD = [
    ({"windwo": 40}, [r"\$windwo", "did you mean 'window'", "SIGNAL_TEMPLATES!J2", "fix:"]),
    ({"window": "long"}, ["$window must be a number", "fix:"]),
    (
        {"vix_hgh.threshold": 20},
        ["no FEATURE_LIBRARY, ENGINEERED_FEATURES or GATES row is 'vix_hgh'", "vix_high"],
    ),
    ({"vix_high.thresh": 20}, ["FEATURE_LIBRARY!", "has no $thresh", "did you mean 'threshold'", "fix:"]),
    ({"cta_flow.window": 20}, ["has no $window", "no $parameter", "fix:"]),
    ({"vix_high.threshold": "high"}, ["$threshold must be a number", "fix:"]),
    ({"backtest.min_hold_days": -1}, ["BACKTESTS!N2", "whole number >= 0", "fix:"]),
    ({"backtest.min_hold_days": 2.5}, ["BACKTESTS!N2", "whole number >= 0"]),
    ({"backtest.slippage_value": "wide"}, ["BACKTESTS!L2", "finite number >= 0"]),
    ({"backtest.spread_model_type": "basis"}, ["BACKTESTS!I2", "one of none, ticks, cents, bps, pct"]),
    ({"backtest.allow_flip_same_day": 3}, ["true or false"]),
    ({"backtest.initial_capital": 0}, ["finite number > 0"]),
    ({"backtest.cost_multiplier": -0.5}, ["backtest.cost_multiplier", "finite number >= 0", "fix:"]),
    ({"backtest.end_date": "2018-02-30"}, ["ISO date", "fix:"]),
    ({"backtest.slipage_value": 1}, ["no column 'slipage_value'", "did you mean 'slippage_value'", "fix:"]),
    ({"backtest.execution_time": "next_open"}, ["cannot vary", "BACKTESTS!G2", "fix:"]),
    ({"backtest.frequency": "1m"}, ["cannot vary", "fix:"]),
    (
        {"backtest.start_date": "2019-02-01"},
        ["backtest.start_date = 2019-02-01 is after BACKTESTS!D2", "fix:"],
    ),
    ({"backtest.oos_last_x_months": 170}, ["backtest.oos_last_x_months = 170", "no in-sample", "fix:"]),
    ({"backtest.oos_last_x_months": 601}, ["whole number >= 0 and <= 600"]),
]


@pytest.mark.parametrize(
    "params,fragments", BAD, ids=[next(iter(p)) + "=" + str(next(iter(p.values()))) for p, _ in BAD]
)
def test_bad_keys_and_values_are_user_errors(bare: Project, params: dict, fragments: list[str]) -> None:
    with pytest.raises(UserError) as e:
        compile_backtest(bare.snapshot, "bt_spx_cta", params)
    msg = str(e.value)
    for f in fragments:
        if f.startswith("\\"):
            import re

            assert re.search(f, msg), (f, msg)
        else:
            assert f in msg, (f, msg)
