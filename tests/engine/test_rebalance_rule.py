"""BACKTESTS rebalance_rule as a decision mask (design/ENGINE.md section 6, Table 6b), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.backtest.run import decision_rows, with_decisions
from runtime.engine.contracts import ColumnSpec, ExecutionSpec, Gates, InstrumentSpec, Market, RunSpec
from runtime.engine.kernel import run_one

DATES = np.array(
    ["2018-10-30", "2018-10-31", "2018-11-01", "2018-11-02", "2018-11-05", "2018-11-06"],
    dtype="datetime64[D]",
)
SIGNAL = np.array([1, -1, -1, 1, -1, 1], dtype=float)
CLOSE = np.array([100, 101, 102, 101, 100, 99], dtype=float)


@pytest.mark.parametrize(
    ("rule", "deciding", "positions"),
    [
        ("bar", [0, 1, 2, 3, 4, 5], [1, -1, -1, 1, -1, 1]),
        ("daily", [0, 1, 2, 3, 4, 5], [1, -1, -1, 1, -1, 1]),
        ("weekly", [0, 4], [1, 1, 1, 1, -1, -1]),
        ("monthly", [0, 2], [1, 1, -1, -1, -1, -1]),
    ],
)
def test_table_6b(rule: str, deciding: list[int], positions: list[int]) -> None:
    day = np.arange(len(DATES))
    mask = decision_rows(rule, DATES, day)
    assert list(np.flatnonzero(mask)) == deciding
    gates = with_decisions(None, mask)
    res = run_one(
        Market(close=CLOSE, open=CLOSE),
        SIGNAL,
        ColumnSpec(ExecutionSpec("close")),
        RunSpec(InstrumentSpec("contracts", 1.0, 0.25), initial_capital=10_000.0),
        gates=gates,
    )
    np.testing.assert_array_equal(res.paths["position"], positions)


def test_daily_on_1m_bars_decides_at_each_session_first_bar() -> None:
    dates = np.array(["2018-11-05"] * 3 + ["2018-11-06"] * 3, dtype="datetime64[D]")
    day = np.array([0, 0, 0, 1, 1, 1])
    assert list(np.flatnonzero(decision_rows("daily", dates, day))) == [0, 3]
    assert decision_rows("bar", dates, day).all()
    # weekly: Sunday 2018-11-11 belongs to the week of Monday 11-05; Monday 11-12 starts a new one
    d = np.array(["2018-11-09", "2018-11-11", "2018-11-12"], dtype="datetime64[D]")
    assert list(decision_rows("weekly", d, np.arange(3))) == [True, False, True]


def test_mask_merges_with_a_gate_freeze_per_column() -> None:
    entry = np.ones((4, 2))
    frozen = np.array([[0, 1], [0, 0], [np.nan, 0], [0, 0]], dtype=float)
    mask = np.array([True, False, True, True])
    g = with_decisions(Gates(entry, frozen), mask)
    assert g is not None and g.frozen is not None
    np.testing.assert_array_equal(g.frozen, [[0, 1], [1, 1], [np.nan, 0], [0, 0]])
    assert with_decisions(None, np.ones(4, bool)) is None
