"""Runtime contracts: the frozen records other runtime modules exchange.

Why one module: parts (config, storage, ingest, derive, charts, CLI) import these records and never each
other's internals, so any part can be rebuilt without touching the rest. Only stdlib + pyarrow here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

#: CME equity regular trading hours, exchange time (America/Chicago): a DATASETS row with rth_start / rth_end
#: blank uses them (ingest RTH flag, derived sessions, custom execution times)
RTH_HOURS = ("08:30", "15:00")

# --------------------------------------------------------------------------------------------------
# Errors that are the user's to fix (CLI prints them without a traceback and exits 1)
# --------------------------------------------------------------------------------------------------


class UserError(Exception):
    """A problem in the user's input (workbook, file, expression, command line): message names place + fix."""


@dataclass(frozen=True, order=True)
class CellError:
    """One validation problem at a workbook cell; sorted by sheet position, row, column."""

    sheet_index: int
    row: int
    col: int
    sheet: str
    cell: str
    message: str
    fix: str = ""
    rendered: str = ""  # a preformatted multi-line message (DSL errors: cell, expression, caret, fix)

    def render(self) -> str:
        if self.rendered:
            return self.rendered
        text = f"{self.sheet}!{self.cell}: {self.message}"
        if self.fix:
            text += f"; {self.fix}"
        return text


class ConfigValidationError(UserError):
    """All problems found in a workbook, reported at once."""

    def __init__(self, errors: list[CellError]):
        self.errors = list(errors)  # in the validator's order: root causes first, then by sheet and cell
        super().__init__("\n".join(e.render() for e in self.errors))


# --------------------------------------------------------------------------------------------------
# Paths (the active PATHS profile, resolved to absolute paths on this machine)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedPaths:
    """Absolute locations for one PATHS profile; DATA_ROOT layout per the spec (section 6.1)."""

    profile: str
    code_root: Path
    data_root: Path
    duckdb_file: Path
    raw_dir: Path
    canonical_dir: Path
    derived_dir: Path
    feature_cache_dir: Path
    runs_dir: Path
    log_dir: Path
    export_config_dir: Path

    @property
    def staging_dir(self) -> Path:
        """Scratch space on the same volume as DATA_ROOT, so a finished write is one atomic rename."""
        return self.data_root / ".staging"

    def layout_dirs(self) -> tuple[Path, ...]:
        return (
            self.duckdb_file.parent,
            self.raw_dir,
            self.canonical_dir,
            self.derived_dir,
            self.feature_cache_dir,
            self.runs_dir,
            self.log_dir,
            self.staging_dir,
        )


# --------------------------------------------------------------------------------------------------
# CME sessions (exchange time America/Chicago, stored as UTC nanoseconds)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeSession:
    """One CME trade date: the trading windows that belong to it and its RTH window.

    segments are [open, close) in UTC ns. A normal day has one segment (17:00 CT the evening before to
    16:00 CT, minus the pre-2021-06-28 15:15-15:30 halt, which splits it in two). A trade date after an
    exchange holiday also owns the holiday's shortened session (e.g. MLK: Sun 17:00 - Mon 12:00 and
    Mon 17:00 - Tue 16:00 are both trade date Tuesday).
    """

    trade_date: dt.date
    segments: tuple[tuple[int, int], ...]
    rth_open_ns: int
    rth_close_ns: int
    early_close: bool = False
    note: str = ""

    @property
    def open_ns(self) -> int:
        return self.segments[0][0]

    @property
    def close_ns(self) -> int:
        return self.segments[-1][1]


# --------------------------------------------------------------------------------------------------
# Canonical storage schemas
# --------------------------------------------------------------------------------------------------

TS = pa.timestamp("ns", tz="UTC")

#: canonical/<table>/trade_date=YYYY-MM-DD/*.parquet  (trades schema; one file per partition)
CANONICAL_TRADES_SCHEMA = pa.schema(
    [
        pa.field("ts_event", TS, nullable=False),
        pa.field("ts_recv", TS, nullable=False),
        pa.field("trade_date", pa.date32(), nullable=False),
        pa.field("in_rth", pa.bool_(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("instrument_id", pa.uint32(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.uint32(), nullable=False),
        pa.field("side", pa.int8(), nullable=False),
        pa.field("sequence", pa.uint32(), nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
    ]
)

#: tbbo adds the best bid/offer immediately before each trade (kept for quote-aware execution later)
CANONICAL_TBBO_EXTRA = pa.schema(
    [
        pa.field("bid_px", pa.float64()),
        pa.field("ask_px", pa.float64()),
        pa.field("bid_sz", pa.uint32()),
        pa.field("ask_sz", pa.uint32()),
    ]
)

#: the key that identifies one trade record across re-deliveries of the same data
TRADE_DEDUP_KEY = ("instrument_id", "ts_event", "sequence", "price", "size", "side")

SIDE_BUY = 1  # Databento 'B': buyer-initiated (lifted the offer) -> footprint ask column
SIDE_SELL = -1  # Databento 'A': seller-initiated (hit the bid) -> footprint bid column
SIDE_NONE = 0  # Databento 'N': no aggressor (auction, implied); counts in volume, not in delta


# --------------------------------------------------------------------------------------------------
# Results of pipeline steps (what CLI commands print and tests inspect)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    dataset_id: str
    ingest_id: str | None
    source: str
    status: str  # "ingested" | "unchanged" | "dry-run"
    rows: int = 0
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Revision:
    """A value that changed for a date already ingested (append-only datasets keep both vintages)."""

    dataset_id: str
    date: dt.date
    column: str
    old_value: float | None
    new_value: float | None
    old_ingest_id: str
    new_ingest_id: str


@dataclass(frozen=True)
class IngestRecord:
    """One registry `ingests` row: what one source file became (daily xlsx and DBN alike).

    Why one record: the row is the commit point of an ingest (written last, inside the registry
    transaction), so every ingest must fill the same fields the same way; `parse_key` is the hash of the
    config fields that change how the file is parsed (sheet, date_col, timezone, column rule, ...), so the
    same bytes read differently are a new ingest, not "unchanged".
    """

    ingest_id: str
    dataset_id: str
    source_path: str
    raw_path: str
    file_sha256: str
    source_kind: str  # "xlsx" | "dbn"
    schema_name: str  # "daily" | the DBN schema ("trades")
    rows: int
    first_date: dt.date | None
    last_date: dt.date | None
    columns: tuple[str, ...]
    started_at: dt.datetime  # naive UTC
    finished_at: dt.datetime  # naive UTC
    config_hash: str = ""
    parse_key: str = ""
    dbn_version: int | None = None
    n_new_dates: int | None = None
    n_revisions: int = 0
    n_excluded_spreads: int = 0
    n_outside_session: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# The config snapshot as typed, frozen rows (one class per workbook sheet; fields = headers in snake case)
# --------------------------------------------------------------------------------------------------

Json = Mapping[str, Any]


@dataclass(frozen=True)
class SheetRow:
    """Base of every workbook row: `row` is its Excel row number, for messages that name a cell."""

    row: int

    SHEET = ""

    def cell(self, column_letter: str) -> str:
        return f"{self.SHEET}!{column_letter}{self.row}"


@dataclass(frozen=True)
class RunbookRow(SheetRow):
    SHEET = "RUNBOOK"
    step_no: int
    task: str
    command_or_action: str
    notes: str | None = None


@dataclass(frozen=True)
class PathsRow(SheetRow):
    SHEET = "PATHS"
    profile: str
    is_active: bool
    code_root: str
    data_root: str
    duckdb_file: str | None = None
    raw_dir: str | None = None
    canonical_dir: str | None = None
    feature_cache_dir: str | None = None
    runs_dir: str | None = None
    log_dir: str | None = None
    export_config_dir: str | None = None
    notes: str | None = None
    derived_dir: str | None = None


@dataclass(frozen=True)
class DatasetRow(SheetRow):
    SHEET = "DATASETS"
    dataset_id: str
    dataset_type: str
    source_type: str
    source_path_or_id: str
    update_mode: str
    known_time_rule: str
    default_availability_lag_days: int
    canonical_table_name: str
    date_col: str | None = None
    timestamp_tz: str | None = "UTC"
    bar_frequency: str | None = None
    canonical_partition_keys: tuple[str, ...] = ()
    notes: str | None = None
    enabled: bool = True
    roll_rule: str | None = None
    roll_days_before_expiry: int | None = None
    session_calendar: str | None = None
    rth_start: str | None = None
    rth_end: str | None = None
    api_cost_cap_usd: float | None = None
    api_request_json: Json | None = None

    @property
    def rth_hours(self) -> tuple[str, str]:
        """RTH start and end HH:MM in exchange time: the row's, else CME equity RTH (RTH_HOURS)."""
        return self.rth_start or RTH_HOURS[0], self.rth_end or RTH_HOURS[1]


@dataclass(frozen=True)
class InstrumentRow(SheetRow):
    SHEET = "INSTRUMENTS"
    instrument_id: str
    instrument_type: str
    prices_dataset_id: str
    close_col: str
    instrument_name: str | None = None
    open_col: str | None = None
    high_col: str | None = None
    low_col: str | None = None
    return_model: str | None = "pct"
    tick_size: float | None = None
    multiplier: float | None = 1.0
    currency: str | None = "USD"
    calendar: str | None = "none"
    default_execution_time: str | None = "next_open"
    default_execution_price_model: str | None = "mid"
    notes: str | None = None


@dataclass(frozen=True)
class FeatureRow(SheetRow):
    SHEET = "FEATURE_LIBRARY"
    feature_id: str
    dataset_id: str
    input_col: str
    feature_name: str | None = None
    instrument_scope: str | None = None
    transform: str | None = None
    params_json: Json | None = None
    lag_days: int = 0
    availability_lag_days: int | None = None
    missing_policy: str = "keep"
    winsorize: str | None = None
    normalize: str | None = "none"
    tags: tuple[str, ...] = ()
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class EngineeredFeatureRow(SheetRow):
    SHEET = "ENGINEERED_FEATURES"
    eng_feature_id: str
    input_feature_ids: tuple[str, ...]
    combine_transform: str
    eng_feature_name: str | None = None
    params_json: Json | None = None
    lag_days: int = 0
    availability_lag_days: int | None = None
    missing_policy: str = "keep"
    tags: tuple[str, ...] = ()
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class FeatureSetRow(SheetRow):
    SHEET = "FEATURE_SETS"
    feature_set_id: str
    description: str | None = None
    include_tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    include_feature_ids: tuple[str, ...] = ()
    exclude_feature_ids: tuple[str, ...] = ()
    max_features: int | None = None
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class SignalTemplateRow(SheetRow):
    SHEET = "SIGNAL_TEMPLATES"
    template_id: str
    signal_expr: str
    template_name: str | None = None
    allowed_feature_inputs: str | None = None
    supports_long_short: bool = True
    supports_flat: bool = True
    description: str | None = None
    default_params_json: Json | None = None
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class StrategyRow(SheetRow):
    SHEET = "STRATEGIES"
    strategy_id: str
    instrument_id: str
    signal_template_id: str
    strategy_name: str | None = None
    feature_set_id: str | None = None
    primary_feature_id: str | None = None
    secondary_feature_id: str | None = None
    feature_combo_rule: str | None = "none"
    combo_weights_json: Json | None = None
    position_mode: str | None = "discrete"
    position_values: tuple[str, ...] = ("-1", "0", "1")
    enabled: bool = True
    notes: str | None = None
    gate_expr: str | None = None
    scaling_expr: str | None = None
    params_json: Json | None = None


@dataclass(frozen=True)
class BacktestRow(SheetRow):
    SHEET = "BACKTESTS"
    backtest_id: str
    strategy_id: str
    start_date: dt.date
    end_date: dt.date
    execution_time: str
    oos_last_x_months: int = 0
    rebalance_rule: str | None = "daily"
    execution_price_model: str | None = "mid"
    spread_model_type: str | None = "none"
    spread_value: float = 0.0
    slippage_model_type: str | None = "none"
    slippage_value: float = 0.0
    allow_flip_same_day: bool = True
    min_hold_days: int = 0
    cooldown_days: int = 0
    as_of_date: dt.date | None = None
    enabled: bool = True
    notes: str | None = None
    frequency: str = "daily"
    custom_execution_time: str | None = None
    commission_model: str | None = "none"
    commission_value: float = 0.0
    scaling_rebalance: str = "daily"
    initial_capital: float = 1_000_000.0
    flat_at_session_end: bool | None = None  # blank: true on 1m (RTH) bars, false daily


@dataclass(frozen=True)
class StudyRow(SheetRow):
    SHEET = "OPTIMIZATION_STUDIES"
    study_id: str
    backtest_id: str
    method: str = "tpe"
    objective_primary_metric: str = "total_pnl"
    objective_secondary_metric: str | None = None
    objective_direction: str = "maximize"
    optimize_on: str = "IS"
    n_trials: int = 100
    seed: int = 0
    save_top_n_artifacts: int = 5
    constraint_set_id: str | None = None
    robustness_profile_id: str | None = None
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class ParamRow(SheetRow):
    SHEET = "OPTIMIZATION_PARAMS"
    study_id: str
    param_scope: str
    target_id: str
    param_name: str
    param_type: str
    optimize_flag: bool = False
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    constraint_group: str | None = None
    constraint_rule: str | None = None
    default_value_if_not_optimized: Any = None
    notes: str | None = None


@dataclass(frozen=True)
class ConstraintSetRow(SheetRow):
    SHEET = "CONSTRAINT_SETS"
    constraint_set_id: str
    description: str | None = None
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class ConstraintRow(SheetRow):
    SHEET = "CONSTRAINTS"
    constraint_set_id: str
    metric_id: str
    operator: str
    threshold: float
    scope: str = "IS"
    enabled: bool = True
    severity: str = "hard"
    notes: str | None = None


@dataclass(frozen=True)
class MetricRow(SheetRow):
    SHEET = "METRICS"
    metric_id: str
    description: str | None = None
    enabled: bool = True
    annualization_factor: float = 252.0
    risk_free_rate: float = 0.0
    notes: str | None = None


@dataclass(frozen=True)
class RobustnessProfileRow(SheetRow):
    SHEET = "ROBUSTNESS_PROFILES"
    robustness_profile_id: str
    description: str | None = None
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class RobustnessRow(SheetRow):
    SHEET = "ROBUSTNESS"
    robustness_profile_id: str
    test_id: str
    enabled: bool = True
    param_json: Json | None = None
    notes: str | None = None


@dataclass(frozen=True)
class ReportingRow(SheetRow):
    SHEET = "REPORTING"
    report_id: str
    target_type: str
    target_id: str
    generate_tearsheet: bool = True
    save_equity_curve: bool = True
    save_positions: bool = True
    save_signals: bool = False
    save_feature_debug: bool = False
    leaderboard_top_n: int = 10
    pareto_plot: bool = False
    output_formats: tuple[str, ...] = ("html",)
    enabled: bool = True
    notes: str | None = None


@dataclass(frozen=True)
class GateRow(SheetRow):
    SHEET = "GATES"
    gate_id: str
    expression: str
    mode: str = "entry_only"
    enabled: bool = True
    notes: str | None = None


#: sheet name -> row class (the loader's table; a test keeps it in step with runtime/config/schema.py)
ROW_TYPES: dict[str, type[SheetRow]] = {
    cls.SHEET: cls
    for cls in (
        RunbookRow,
        PathsRow,
        DatasetRow,
        InstrumentRow,
        FeatureRow,
        EngineeredFeatureRow,
        FeatureSetRow,
        SignalTemplateRow,
        StrategyRow,
        BacktestRow,
        StudyRow,
        ParamRow,
        ConstraintSetRow,
        ConstraintRow,
        MetricRow,
        RobustnessProfileRow,
        RobustnessRow,
        ReportingRow,
        GateRow,
    )
}


@dataclass(frozen=True)
class ExpressionInfo:
    """What the snapshot records about one checked expression cell."""

    cell: str  # "FEATURE_LIBRARY!F7"
    column: str
    text: str
    canonical: str
    hash: str
    kind: str
    frequency: str
    availability: int
    warmup: int


@dataclass(frozen=True)
class ConfigSnapshot:
    """A validated, immutable export of the workbook (config/exports/*.json), as typed rows."""

    path: Path
    content_hash: str
    workbook_sha256: str
    workbook_path: str
    exported_at: str
    project_root: Path
    sheets: Mapping[str, tuple[SheetRow, ...]]
    expressions: Mapping[str, ExpressionInfo]

    def rows(self, sheet: str) -> tuple[SheetRow, ...]:
        return self.sheets.get(sheet, ())

    @property
    def paths_profiles(self) -> tuple[PathsRow, ...]:
        return self.sheets["PATHS"]  # type: ignore[return-value]

    @property
    def datasets(self) -> tuple[DatasetRow, ...]:
        return self.sheets["DATASETS"]  # type: ignore[return-value]

    def dataset(self, dataset_id: str) -> DatasetRow:
        for d in self.datasets:
            if d.dataset_id == dataset_id:
                return d
        known = ", ".join(d.dataset_id for d in self.datasets)
        raise UserError(f"unknown dataset '{dataset_id}'; the DATASETS sheet has: {known}")

    def profile(self, name: str | None = None) -> PathsRow:
        """The active PATHS profile, or the named one (--profile)."""
        rows = self.paths_profiles
        if name is None:
            active = [r for r in rows if r.is_active]
            if len(active) != 1:
                raise UserError("the snapshot must have exactly one active PATHS profile; re-export it")
            return active[0]
        for r in rows:
            if r.profile == name:
                return r
        known = ", ".join(r.profile for r in rows)
        raise UserError(f"unknown profile '{name}'; PATHS has: {known}")
