"""Engine contracts: the frozen specs the kernel is driven by and the records it returns.

Why a separate module: the kernel (runtime/engine/kernel.py) is pure arrays-in / results-out; the runtime
(config, CLI, optimizer) builds these specs from BACKTESTS / STRATEGIES / INSTRUMENTS / METRICS and never
touches kernel internals. Semantics of every field: design/ENGINE.md. Only numpy here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------
# Enumerations (names as in the workbook; codes as the kernel sees them)
# --------------------------------------------------------------------------------------------------

EXECUTION_TIMES: dict[str, int] = {"close": 0, "next_open": 1, "next_close": 2, "custom": 3}
#: `bid_ask` is the workbook's name for side_aware (schema.PRICE_MODELS); both are accepted.
PRICE_MODELS: dict[str, int] = {"mid": 0, "side_aware": 1, "bid_ask": 1, "spread_adjusted": 2}
COST_TYPES: dict[str, int] = {"none": 0, "ticks": 1, "cents": 2, "bps": 3, "pct": 4}
COMMISSION_MODELS: dict[str, int] = {"none": 0, "per_contract": 1, "per_trade": 2, "bps": 3, "pct": 4}
POSITION_MODES: dict[str, int] = {"discrete": 0, "scaled": 1}
SCALING_REBALANCE: dict[str, int] = {"daily": 0, "on_signal_change": 1}
#: contracts = futures (whole contracts x price change x multiplier); notional = index proxy (fraction of
#: equity, fractional units, PnL = notional x return).
ACCOUNTING: dict[str, int] = {"contracts": 0, "notional": 1}
#: INSTRUMENTS.return_model -> accounting (price_diff is futures-native; pct/log are return series).
RETURN_MODEL_ACCOUNTING: dict[str, str] = {"price_diff": "contracts", "pct": "notional", "log": "notional"}

#: the three reporting segments, in the order of the metrics array's second axis
SEGMENTS: tuple[str, ...] = ("full", "is", "oos")

#: METRICS sheet ids first (schema.METRIC_IDS order), then the extras every run reports
METRIC_NAMES: tuple[str, ...] = (
    "total_pnl",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "n_trades",
    "win_rate",
    "profit_factor",
    "avg_trade",
    "exposure",
    "gross_pnl",
    "total_costs",
    "avg_hold_bars",
    "longest_drawdown_bars",
    "n_bars",
    "n_days",
    "end_equity",
)
M = {name: i for i, name in enumerate(METRIC_NAMES)}

#: per-column parameter vector layout (one float64 row per parameter column)
PARAM_FIELDS: tuple[str, ...] = (
    "exec_time",
    "price_model",
    "spread_type",
    "spread_value",
    "slippage_type",
    "slippage_value",
    "commission_model",
    "commission_value",
    "min_hold_days",
    "cooldown_days",
    "allow_flip_same_day",
    "flat_at_session_end",
    "position_mode",
    "allow_long",
    "allow_short",
    "allow_flat",
    "scaling_rebalance",
    "contracts_per_unit",
)
P = {name: i for i, name in enumerate(PARAM_FIELDS)}

#: trade record layout (one float64 row per trade, run_one only)
TRADE_FIELDS: tuple[str, ...] = (
    "entry_row",
    "exit_row",
    "entry_price",
    "exit_price",
    "side",
    "contracts",
    "pnl",
    "costs",
    "hold_bars",
    "open",
)
PATH_FIELDS: tuple[str, ...] = ("equity", "pnl", "gross", "costs", "drawdown", "position")


def _code(table: Mapping[str, int], value: str, what: str) -> int:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(table)}") from None


# --------------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionSpec:
    """When a decision at row t fills: close of t, open of t+1, close of t+1, or a caller-given price in t+1."""

    execution_time: str = "next_open"

    def __post_init__(self) -> None:
        _code(EXECUTION_TIMES, self.execution_time, "execution_time")

    @property
    def lag(self) -> int:
        """Rows between the decision and its fill (0 only for `close`)."""
        return 0 if self.execution_time == "close" else 1


@dataclass(frozen=True)
class CostSpec:
    """Per-side price model, spread, slippage and commission (BACKTESTS columns)."""

    price_model: str = "mid"
    spread_type: str = "none"
    spread_value: float = 0.0
    slippage_type: str = "none"
    slippage_value: float = 0.0
    commission_model: str = "none"
    commission_value: float = 0.0

    def __post_init__(self) -> None:
        _code(PRICE_MODELS, self.price_model, "price model")
        _code(COST_TYPES, self.spread_type, "spread model type")
        _code(COST_TYPES, self.slippage_type, "slippage model type")
        _code(COMMISSION_MODELS, self.commission_model, "commission model")
        for name in ("spread_value", "slippage_value", "commission_value"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True)
class RulesSpec:
    """Trading rules (BACKTESTS): holding period, cooldown, flips, the intraday session end."""

    min_hold_days: int = 0
    cooldown_days: int = 0
    allow_flip_same_day: bool = True
    flat_at_session_end: bool = False

    def __post_init__(self) -> None:
        for name in ("min_hold_days", "cooldown_days"):
            v = getattr(self, name)
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")


@dataclass(frozen=True)
class PositionSpec:
    """How a signal becomes a target position (STRATEGIES position_mode/values, SIGNAL_TEMPLATES supports_*)."""

    mode: str = "discrete"
    allow_long: bool = True
    allow_short: bool = True
    allow_flat: bool = True
    scaling_rebalance: str = "daily"
    contracts_per_unit: float = 1.0

    def __post_init__(self) -> None:
        _code(POSITION_MODES, self.mode, "position mode")
        _code(SCALING_REBALANCE, self.scaling_rebalance, "scaling_rebalance")
        if not (np.isfinite(self.contracts_per_unit) and self.contracts_per_unit > 0):
            raise ValueError(f"contracts_per_unit must be > 0, got {self.contracts_per_unit!r}")
        if not (self.allow_long or self.allow_short or self.allow_flat):
            raise ValueError("a position spec must allow at least one of long, short, flat")

    @classmethod
    def from_config(
        cls,
        position_values: tuple[str, ...] | list[str] = ("-1", "0", "1"),
        supports_long_short: bool = True,
        supports_flat: bool = True,
        **kw: Any,
    ) -> PositionSpec:
        """STRATEGIES.position_values + SIGNAL_TEMPLATES.supports_* -> the allowed sides."""
        vals = {float(v) for v in position_values}
        return cls(
            allow_long=1.0 in vals,
            allow_short=-1.0 in vals and supports_long_short,
            allow_flat=0.0 in vals and supports_flat,
            **kw,
        )


@dataclass(frozen=True)
class ColumnSpec:
    """Everything that may differ between parameter columns of one run_many call."""

    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    costs: CostSpec = field(default_factory=CostSpec)
    rules: RulesSpec = field(default_factory=RulesSpec)
    position: PositionSpec = field(default_factory=PositionSpec)

    def vector(self) -> np.ndarray:
        """The kernel's per-column parameter row (layout PARAM_FIELDS)."""
        c, r, p = self.costs, self.rules, self.position
        v = np.zeros(len(PARAM_FIELDS))
        v[P["exec_time"]] = EXECUTION_TIMES[self.execution.execution_time]
        v[P["price_model"]] = PRICE_MODELS[c.price_model]
        v[P["spread_type"]] = COST_TYPES[c.spread_type]
        v[P["spread_value"]] = c.spread_value
        v[P["slippage_type"]] = COST_TYPES[c.slippage_type]
        v[P["slippage_value"]] = c.slippage_value
        v[P["commission_model"]] = COMMISSION_MODELS[c.commission_model]
        v[P["commission_value"]] = c.commission_value
        v[P["min_hold_days"]] = r.min_hold_days
        v[P["cooldown_days"]] = r.cooldown_days
        v[P["allow_flip_same_day"]] = float(r.allow_flip_same_day)
        v[P["flat_at_session_end"]] = float(r.flat_at_session_end)
        v[P["position_mode"]] = POSITION_MODES[p.mode]
        v[P["allow_long"]] = float(p.allow_long)
        v[P["allow_short"]] = float(p.allow_short)
        v[P["allow_flat"]] = float(p.allow_flat)
        v[P["scaling_rebalance"]] = SCALING_REBALANCE[p.scaling_rebalance]
        v[P["contracts_per_unit"]] = p.contracts_per_unit
        return v


@dataclass(frozen=True)
class InstrumentSpec:
    """Accounting of the traded instrument (INSTRUMENTS): futures contracts or an index proxy's notional."""

    accounting: str = "contracts"
    multiplier: float = 1.0
    tick_size: float = 0.0

    def __post_init__(self) -> None:
        _code(ACCOUNTING, self.accounting, "accounting")
        if not (np.isfinite(self.multiplier) and self.multiplier > 0):
            raise ValueError(f"multiplier must be > 0, got {self.multiplier!r}")
        if not (np.isfinite(self.tick_size) and self.tick_size >= 0):
            raise ValueError(f"tick_size must be >= 0, got {self.tick_size!r}")

    @classmethod
    def from_return_model(
        cls, return_model: str, multiplier: float = 1.0, tick_size: float = 0.0
    ) -> InstrumentSpec:
        """INSTRUMENTS.return_model -> accounting (price_diff = futures, pct/log = index proxy)."""
        if return_model not in RETURN_MODEL_ACCOUNTING:
            raise ValueError(f"return_model {return_model!r} is not tradeable (price_diff, pct or log)")
        return cls(RETURN_MODEL_ACCOUNTING[return_model], multiplier, tick_size)


@dataclass(frozen=True)
class RunSpec:
    """Run-wide settings: instrument, capital, the traded window and the IS/OOS split (row indices)."""

    instrument: InstrumentSpec = field(default_factory=InstrumentSpec)
    initial_capital: float = 1_000_000.0
    #: first decision row (rows before it are warm-up: loaded, never traded, not in any metric)
    trade_start: int = 0
    #: first OOS row (= number of rows for no OOS); must start a day
    oos_start: int | None = None
    annualization_factor: float = 252.0
    risk_free_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.initial_capital) and self.initial_capital > 0):
            raise ValueError(f"initial_capital must be > 0, got {self.initial_capital!r}")
        if not (np.isfinite(self.annualization_factor) and self.annualization_factor > 0):
            raise ValueError(f"annualization_factor must be > 0, got {self.annualization_factor!r}")
        if self.trade_start < 0:
            raise ValueError("trade_start must be >= 0")


@dataclass(frozen=True)
class Market:
    """The price grid: rows in time order; `day` numbers sessions (daily grid: 0..T-1)."""

    close: np.ndarray
    open: np.ndarray | None = None
    #: the fill price in row r for `custom` execution (e.g. the 1m price at HH:MM of session r); NaN = none
    custom: np.ndarray | None = None
    #: session index per row (non-decreasing ints); None = one session per row (daily grid)
    day: np.ndarray | None = None
    #: True on a session's last bar; None = derived from `day`
    session_last: np.ndarray | None = None


@dataclass(frozen=True)
class Gates:
    """Gate masks (T x G): entry_ok = the combined gate expression is open; frozen = an entry_and_exit gate is
    closed. Missing (NaN) in a float mask counts as closed for entry_ok and as not frozen."""

    entry_ok: np.ndarray
    frozen: np.ndarray | None = None


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManyResult:
    """run_many's output: metrics[k, segment, metric] (segments SEGMENTS, metrics METRIC_NAMES)."""

    metrics: np.ndarray

    def table(self, segment: str = "full") -> dict[str, np.ndarray]:
        """One segment as {metric: array over the K columns}."""
        s = SEGMENTS.index(segment)
        return {name: self.metrics[:, s, i] for i, name in enumerate(METRIC_NAMES)}

    def record(self, k: int) -> dict[str, dict[str, float]]:
        """Column k as {"full": {...}, "is": {...}, "oos": {...}} (the metrics.json shape)."""
        return {
            seg: {name: float(self.metrics[k, s, i]) for i, name in enumerate(METRIC_NAMES)}
            for s, seg in enumerate(SEGMENTS)
        }


@dataclass(frozen=True)
class RunResult:
    """run_one's output: the metrics record plus every path (length T) and the trade list."""

    metrics: dict[str, dict[str, float]]
    paths: dict[str, np.ndarray]
    trades: dict[str, np.ndarray]
