"""Real data: arch's S&P 500 daily bars, a 200-day moving-average strategy at the next open with ES-like
futures accounting (multiplier 50, $2.50 per contract a side; long/short adds 1 tick of slippage), checked
against a vectorised pandas formulation written here (positions = the decisions shifted one row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500

from runtime.engine import (
    ColumnSpec,
    CostSpec,
    ExecutionSpec,
    InstrumentSpec,
    Market,
    PositionSpec,
    RunSpec,
    run_one,
)

WARMUP = 200


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return sp500.load()[["Open", "Close"]].astype(float)


@pytest.mark.parametrize("long_short", [False, True])
def test_ma200_next_open_matches_pandas(spx, long_short):
    close, open_ = spx["Close"], spx["Open"]
    above = close > close.rolling(200).mean()
    decision = np.where(above, 1.0, -1.0 if long_short else 0.0)
    decision[:WARMUP] = 0.0  # warm-up rows are never traded
    slip_ticks = 1.0 if long_short else 0.0
    # pandas reference: the position decided at t is held from the open of t+1
    pos = pd.Series(decision, index=spx.index).shift(1).fillna(0.0)
    prev = pos.shift(1).fillna(0.0)
    prev_close = close.shift(1).fillna(close.iloc[0])
    gross = 50.0 * (prev * (open_ - prev_close) + pos * (close - open_))
    costs = (pos - prev).abs() * (2.5 + slip_ticks * 0.25 * 50.0)
    want_net = float((gross - costs).sum())
    want_trades = int(((pos != 0) & (pos != prev)).sum())  # each entry or flip opens one trade

    costs_spec = CostSpec(commission_model="per_contract", commission_value=2.5,
                          slippage_type="ticks" if long_short else "none", slippage_value=slip_ticks)  # fmt: skip
    position = PositionSpec(allow_short=long_short)
    signal = np.where(above, 1.0, -1.0)  # the engine restricts -1 to 0 for long-only itself
    r = run_one(
        Market(close.to_numpy(), open_.to_numpy()),
        signal,
        ColumnSpec(ExecutionSpec("next_open"), costs_spec, position=position),
        RunSpec(InstrumentSpec("contracts", 50.0, 0.25), 1_000_000.0, trade_start=WARMUP),
    )
    full = r.metrics["full"]
    assert full["total_pnl"] == pytest.approx(want_net, rel=1e-10)
    assert full["total_costs"] == pytest.approx(float(costs.sum()), rel=1e-12)
    assert full["n_trades"] == want_trades
    assert want_trades > 20  # a real sample, not a degenerate one
    np.testing.assert_allclose(r.paths["position"], pos.to_numpy())
