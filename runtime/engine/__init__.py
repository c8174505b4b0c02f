"""The PnL / execution engine: pure arrays-in, results-out kernel (design/ENGINE.md)."""

from runtime.engine.contracts import (
    ColumnSpec,
    CostSpec,
    ExecutionSpec,
    Gates,
    InstrumentSpec,
    ManyResult,
    Market,
    PositionSpec,
    RulesSpec,
    RunResult,
    RunSpec,
)
from runtime.engine.kernel import run_many, run_one, session_returns

__all__ = [
    "ColumnSpec",
    "CostSpec",
    "ExecutionSpec",
    "Gates",
    "InstrumentSpec",
    "ManyResult",
    "Market",
    "PositionSpec",
    "RulesSpec",
    "RunResult",
    "RunSpec",
    "run_many",
    "run_one",
    "session_returns",
]
