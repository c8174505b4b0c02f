"""The workbook schema: every sheet of the spec's EXCEL WORKBOOK SCHEMA, in order, with exact headers.

One declaration drives the template writer (headers, widths, dropdowns, header notes), the reader/validator
(types, enumerations, ranges, references) and the docs. Extension columns are appended after the spec's
columns (ext=True, with the reason) and GATES is an extra sheet; design/DECISIONS.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- enumerations used across the project (design/DECISIONS.md "Enumerations") -------------------
DATASET_TYPES = ("daily_series", "intraday_trades")
SOURCE_TYPES = ("xlsx", "databento_file", "databento_api")
UPDATE_MODES = ("append_only", "replace")
KNOWN_TIME_RULES = ("at_close", "after_close", "realtime")
BAR_FREQUENCIES = ("1d", "1w", "1mo", "tick")
PARTITION_KEYS = ("year", "trade_date")
ROLL_RULES = ("volume", "calendar", "none")
SESSION_CALENDARS = ("CME_EQUITY",)
INSTRUMENT_TYPES = ("future", "index", "etf", "indicator", "rate", "fx")
RETURN_MODELS = ("price_diff", "pct", "log", "none")
CALENDARS = ("CME_EQUITY", "NYSE", "none")
EXECUTION_TIMES = ("close", "next_open", "next_close", "custom")
PRICE_MODELS = ("mid", "bid_ask", "spread_adjusted")
COST_MODEL_TYPES = ("none", "ticks", "cents", "pct", "bps")
COMMISSION_MODELS = ("none", "per_contract", "per_trade", "bps", "pct")
REBALANCE_RULES = ("bar", "daily", "weekly", "monthly")
SCALING_REBALANCE = ("daily", "on_signal_change")
BACKTEST_FREQUENCIES = ("daily", "1m")
POSITION_MODES = ("discrete", "scaled")
COMBO_RULES = ("none", "linear", "confirm")
GATE_MODES = ("entry_only", "entry_and_exit")
OPT_METHODS = ("tpe", "random", "grid", "cmaes", "nsga2")
DIRECTIONS = ("maximize", "minimize")
OPTIMIZE_ON = ("IS",)
PARAM_SCOPES = ("strategy", "template", "backtest", "feature", "gate")
PARAM_TYPES = ("int", "float", "categorical", "bool")
CONSTRAINT_SCOPES = ("IS", "OOS", "ALL")
CONSTRAINT_OPERATORS = (">=", "<=", ">", "<", "==")
SEVERITIES = ("hard", "soft")
METRIC_IDS = (
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
)
ROBUSTNESS_TESTS = (
    "is_oos_gap",
    "walk_forward",
    "purge_embargo",
    "block_bootstrap",
    "placebo_shuffle",
    "lag_sweep",
    "sensitivity_1d",
    "sensitivity_2d",
    "regimes",
    "cost_sensitivity",
    "multiple_testing",
)
REPORT_TARGETS = ("backtest", "study", "robustness_profile")
OUTPUT_FORMATS = ("html", "csv", "parquet", "png", "json")
MISSING_POLICY_CHOICES = ("keep", "ffill", "ffill:5", "zero")  # dropdown hints; ffill:N allowed for any N
NORMALIZE_CHOICES = ("none", "zscore:60", "rank:252")  # dropdown hints; zscore:N / rank:N for any N


@dataclass(frozen=True)
class Col:
    """One column: its type, whether it is required, its allowed values or reference target."""

    name: str
    type: str = "str"  # str id int float bool flag date time json enum list expr path tz any
    required: bool = False
    enum: tuple[str, ...] = ()
    ref: tuple[str, ...] = ()  # "SHEET.column" targets (any of them); for list columns, each item
    unique: bool = False
    min: float | None = None
    max: float | None = None
    default: object = None
    width: int = 14
    ext: bool = False
    doc: str = ""
    strict_enum: bool = True  # False: dropdown shows hints, other values validated by a pattern


@dataclass(frozen=True)
class Sheet:
    name: str
    cols: tuple[Col, ...]
    doc: str = ""
    ext: bool = False
    key: str | None = None  # the id column rows are referred to by

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cols)

    @property
    def spec_headers(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cols if not c.ext)

    def col(self, name: str) -> Col:
        for c in self.cols:
            if c.name == name:
                return c
        raise KeyError(name)


def _notes(width: int = 40) -> Col:
    return Col("notes", width=width)


ENABLED = Col("enabled", "bool", default=True, width=9, doc="FALSE keeps the row but ignores it")

SHEETS: tuple[Sheet, ...] = (
    Sheet(
        "RUNBOOK",
        (
            Col("StepNo", "int", required=True, min=1, width=8),
            Col("Task", required=True, width=34),
            Col("CommandOrAction", required=True, width=70),
            Col("Notes", width=60),
        ),
        doc="The commands of the research workflow, in the order you run them.",
    ),
    Sheet(
        "PATHS",
        (
            Col("Profile", "id", required=True, unique=True, width=16),
            Col("IsActive", "bool", required=True, width=9, doc="exactly one profile is TRUE"),
            Col("CODE_ROOT", "path", required=True, width=34, doc="relative: to the folder holding config/"),
            Col("DATA_ROOT", "path", required=True, width=24, doc="relative: to CODE_ROOT"),
            Col("DUCKDB_FILE", "path", width=38, doc="relative: to DATA_ROOT"),
            Col("RAW_DIR", "path", width=22),
            Col("CANONICAL_DIR", "path", width=26),
            Col("FEATURE_CACHE_DIR", "path", width=30),
            Col("RUNS_DIR", "path", width=22),
            Col("LOG_DIR", "path", width=22),
            Col("EXPORT_CONFIG_DIR", "path", width=40, doc="relative: to CODE_ROOT"),
            Col("Notes", width=40),
            Col(
                "DERIVED_DIR",
                "path",
                width=24,
                ext=True,
                doc="derived intraday tables (spec layout has derived/ but PATHS had no column)",
            ),
        ),
        doc="Path profiles; exactly one IsActive. Relative paths resolve as documented per column.",
        key="Profile",
    ),
    Sheet(
        "DATASETS",
        (
            Col("dataset_id", "id", required=True, unique=True, width=14),
            Col("dataset_type", "enum", required=True, enum=DATASET_TYPES, width=16),
            Col("source_type", "enum", required=True, enum=SOURCE_TYPES, width=15),
            Col(
                "source_path_or_id",
                required=True,
                width=44,
                doc="xlsx: path or path#sheet; databento_file: a glob; relative to DATA_ROOT",
            ),
            Col("update_mode", "enum", required=True, enum=UPDATE_MODES, width=13),
            Col("date_col", width=12, doc="daily_series: the date column header"),
            Col("timestamp_tz", "tz", default="UTC", width=18),
            Col("bar_frequency", "enum", enum=BAR_FREQUENCIES, width=12),
            Col("known_time_rule", "enum", required=True, enum=KNOWN_TIME_RULES, width=15),
            Col("default_availability_lag_days", "int", required=True, min=0, max=30, width=12),
            Col("canonical_table_name", "id", required=True, unique=True, width=20),
            Col("canonical_partition_keys", "list", enum=PARTITION_KEYS, width=14),
            _notes(),
            Col(
                "enabled",
                "bool",
                default=True,
                width=9,
                ext=True,
                doc="lets a row (e.g. an API source) sit idle",
            ),
            Col(
                "roll_rule",
                "enum",
                enum=ROLL_RULES,
                width=10,
                ext=True,
                doc="intraday: continuous front month",
            ),
            Col(
                "roll_days_before_expiry",
                "int",
                min=0,
                max=60,
                width=10,
                ext=True,
                doc="calendar roll rule N",
            ),
            Col(
                "session_calendar", "enum", enum=SESSION_CALENDARS, width=14, ext=True, doc="trade dates, RTH"
            ),
            Col("rth_start", "time", width=9, ext=True, doc="exchange time (America/Chicago)"),
            Col("rth_end", "time", width=9, ext=True),
            Col(
                "api_cost_cap_usd", "float", min=0, width=12, ext=True, doc="databento_api: refuse above this"
            ),
            Col(
                "api_request_json",
                "json",
                width=50,
                ext=True,
                doc="databento_api: dataset, schema, symbols...",
            ),
        ),
        doc="Every source of data: daily xlsx series and Databento intraday trades.",
        key="dataset_id",
    ),
    Sheet(
        "INSTRUMENTS",
        (
            Col("instrument_id", "id", required=True, unique=True, width=14),
            Col("instrument_name", width=26),
            Col("instrument_type", "enum", required=True, enum=INSTRUMENT_TYPES, width=14),
            Col("prices_dataset_id", "id", required=True, ref=("DATASETS.dataset_id",), width=16),
            Col("open_col", width=10),
            Col("high_col", width=10),
            Col("low_col", width=10),
            Col("close_col", required=True, width=10),
            Col("return_model", "enum", enum=RETURN_MODELS, default="pct", width=12),
            Col("tick_size", "float", min=0, width=9),
            Col("multiplier", "float", min=0, default=1.0, width=10),
            Col("currency", default="USD", width=9),
            Col("calendar", "enum", enum=CALENDARS, default="none", width=12),
            Col("default_execution_time", "enum", enum=EXECUTION_TIMES, default="next_open", width=14),
            Col("default_execution_price_model", "enum", enum=PRICE_MODELS, default="mid", width=16),
            _notes(),
        ),
        doc="The series registry: tradeable instruments and indicator/proxy series.",
        key="instrument_id",
    ),
    Sheet(
        "FEATURE_LIBRARY",
        (
            Col("feature_id", "id", required=True, unique=True, width=16),
            Col("feature_name", width=26),
            Col("dataset_id", "id", required=True, ref=("DATASETS.dataset_id",), width=13),
            Col("instrument_scope", ref=("INSTRUMENTS.instrument_id",), width=12),
            Col("input_col", required=True, width=12, doc="the dataset column bound to `x` in transform"),
            Col("transform", "expr", width=40, doc="DSL over x, e.g. pct_change(x, 1); blank = x"),
            Col("params_json", "json", width=22, doc='values for $params, e.g. {"threshold": 25}'),
            Col("lag_days", "int", min=0, max=260, default=0, width=9),
            Col("availability_lag_days", "int", min=0, max=30, width=12, doc="blank: the dataset's default"),
            Col(
                "missing_policy",
                enum=MISSING_POLICY_CHOICES,
                default="keep",
                width=13,
                strict_enum=False,
                doc="keep | ffill | ffill:N | zero",
            ),
            Col("winsorize", width=10, doc="blank or N:k = clip to trailing mean ± k·std over N rows"),
            Col(
                "normalize",
                enum=NORMALIZE_CHOICES,
                default="none",
                width=11,
                strict_enum=False,
                doc="none | zscore:N | rank:N (trailing windows only)",
            ),
            Col("tags", "list", width=18),
            ENABLED,
            _notes(),
        ),
        doc="Features: one dataset column, transformed by a DSL expression, lagged and normalised.",
        key="feature_id",
    ),
    Sheet(
        "ENGINEERED_FEATURES",
        (
            Col("eng_feature_id", "id", required=True, unique=True, width=16),
            Col("eng_feature_name", width=26),
            Col(
                "input_feature_ids",
                "list",
                required=True,
                ref=("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
                width=24,
            ),
            Col("combine_transform", "expr", required=True, width=44),
            Col("params_json", "json", width=20),
            Col("lag_days", "int", min=0, max=260, default=0, width=9),
            Col("availability_lag_days", "int", min=0, max=30, width=12),
            Col(
                "missing_policy",
                enum=MISSING_POLICY_CHOICES,
                default="keep",
                width=13,
                strict_enum=False,
            ),
            Col("tags", "list", width=18),
            ENABLED,
            _notes(),
        ),
        doc="Features built from other features with a DSL expression.",
        key="eng_feature_id",
    ),
    Sheet(
        "FEATURE_SETS",
        (
            Col("feature_set_id", "id", required=True, unique=True, width=16),
            Col("description", width=34),
            Col("include_tags", "list", width=16),
            Col("exclude_tags", "list", width=16),
            Col(
                "include_feature_ids",
                "list",
                ref=("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
                width=24,
            ),
            Col(
                "exclude_feature_ids",
                "list",
                ref=("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
                width=20,
            ),
            Col("max_features", "int", min=1, width=10),
            ENABLED,
            _notes(),
        ),
        key="feature_set_id",
    ),
    Sheet(
        "SIGNAL_TEMPLATES",
        (
            Col("template_id", "id", required=True, unique=True, width=18),
            Col("template_name", width=24),
            Col("allowed_feature_inputs", width=18, doc="tags allowed in {primary}/{secondary}; blank = any"),
            Col("supports_long_short", "bool", default=True, width=10),
            Col("supports_flat", "bool", default=True, width=10),
            Col("description", width=34),
            Col("default_params_json", "json", width=28),
            ENABLED,
            _notes(),
            Col(
                "signal_expr",
                "expr",
                required=True,
                width=60,
                ext=True,
                doc="DSL with {primary}/{secondary} slots and $params giving the desired position",
            ),
        ),
        key="template_id",
    ),
    Sheet(
        "STRATEGIES",
        (
            Col("strategy_id", "id", required=True, unique=True, width=16),
            Col("strategy_name", width=26),
            Col("instrument_id", "id", required=True, ref=("INSTRUMENTS.instrument_id",), width=12),
            Col("feature_set_id", "id", ref=("FEATURE_SETS.feature_set_id",), width=14),
            Col("signal_template_id", "id", required=True, ref=("SIGNAL_TEMPLATES.template_id",), width=18),
            Col(
                "primary_feature_id",
                "id",
                ref=("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
                width=16,
            ),
            Col(
                "secondary_feature_id",
                "id",
                ref=("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
                width=16,
            ),
            Col("feature_combo_rule", "enum", enum=COMBO_RULES, default="none", width=12),
            Col("combo_weights_json", "json", width=16),
            Col("position_mode", "enum", enum=POSITION_MODES, default="discrete", width=12),
            Col("position_values", "list", default=["-1", "0", "1"], width=12),
            ENABLED,
            _notes(),
            Col(
                "gate_expr",
                "expr",
                width=36,
                ext=True,
                doc="boolean DSL over gates/features; blank = no gate",
            ),
            Col("scaling_expr", "expr", width=36, ext=True, doc="float DSL: position size multiplier"),
            Col("params_json", "json", width=24, ext=True, doc="binds $params of template/gate/scaling"),
        ),
        key="strategy_id",
    ),
    Sheet(
        "BACKTESTS",
        (
            Col("backtest_id", "id", required=True, unique=True, width=16),
            Col("strategy_id", "id", required=True, ref=("STRATEGIES.strategy_id",), width=16),
            Col("start_date", "date", required=True, width=12),
            Col("end_date", "date", required=True, width=12),
            Col("oos_last_x_months", "int", min=0, max=600, default=0, width=10),
            Col("rebalance_rule", "enum", enum=REBALANCE_RULES, default="daily", width=10),
            Col("execution_time", "enum", required=True, enum=EXECUTION_TIMES, width=12),
            Col("execution_price_model", "enum", enum=PRICE_MODELS, default="mid", width=16),
            Col("spread_model_type", "enum", enum=COST_MODEL_TYPES, default="none", width=10),
            Col("spread_value", "float", min=0, default=0.0, width=9),
            Col("slippage_model_type", "enum", enum=COST_MODEL_TYPES, default="none", width=10),
            Col("slippage_value", "float", min=0, default=0.0, width=9),
            Col("allow_flip_same_day", "bool", default=True, width=9),
            Col("min_hold_days", "int", min=0, default=0, width=9),
            Col("cooldown_days", "int", min=0, default=0, width=9),
            Col("as_of_date", "date", width=12, doc="blank: latest data; else data as known on that date"),
            ENABLED,
            _notes(),
            Col("frequency", "enum", enum=BACKTEST_FREQUENCIES, default="daily", width=9, ext=True),
            Col("custom_execution_time", "time", width=10, ext=True, doc="HH:MM exchange time, next session"),
            Col("commission_model", "enum", enum=COMMISSION_MODELS, default="none", width=12, ext=True),
            Col("commission_value", "float", min=0, default=0.0, width=10, ext=True),
            Col("scaling_rebalance", "enum", enum=SCALING_REBALANCE, default="daily", width=14, ext=True),
            Col("initial_capital", "float", min=0, default=1_000_000.0, width=12, ext=True),
            Col(
                "flat_at_session_end",
                "bool",
                width=10,
                ext=True,
                doc="close any position at the session's last bar; blank: true on 1m (RTH), false daily",
            ),
        ),
        key="backtest_id",
    ),
    Sheet(
        "OPTIMIZATION_STUDIES",
        (
            Col("study_id", "id", required=True, unique=True, width=14),
            Col("backtest_id", "id", required=True, ref=("BACKTESTS.backtest_id",), width=16),
            Col("method", "enum", enum=OPT_METHODS, default="tpe", width=9),
            Col("objective_primary_metric", "id", ref=("METRICS.metric_id",), default="total_pnl", width=14),
            Col("objective_secondary_metric", "id", ref=("METRICS.metric_id",), width=14),
            Col("objective_direction", "enum", enum=DIRECTIONS, default="maximize", width=10),
            Col(
                "optimize_on",
                "enum",
                enum=OPTIMIZE_ON,
                default="IS",
                width=8,
                doc="studies search on in-sample rows only; OOS is kept unseen for the check afterwards",
            ),
            Col("n_trials", "int", min=1, max=1_000_000, default=100, width=8),
            Col("seed", "int", min=0, default=0, width=8),
            Col("save_top_n_artifacts", "int", min=0, default=5, width=8),
            Col("constraint_set_id", "id", ref=("CONSTRAINT_SETS.constraint_set_id",), width=14),
            Col("robustness_profile_id", "id", ref=("ROBUSTNESS_PROFILES.robustness_profile_id",), width=14),
            ENABLED,
            _notes(),
        ),
        key="study_id",
    ),
    Sheet(
        "OPTIMIZATION_PARAMS",
        (
            Col("study_id", "id", required=True, ref=("OPTIMIZATION_STUDIES.study_id",), width=14),
            Col("param_scope", "enum", required=True, enum=PARAM_SCOPES, width=10),
            Col("target_id", "id", required=True, width=18),
            Col("param_name", "id", required=True, width=14),
            Col("optimize_flag", "flag", width=9, doc="X = search this parameter; blank = keep the default"),
            Col("param_type", "enum", required=True, enum=PARAM_TYPES, width=11),
            Col("low", "float", width=8),
            Col("high", "float", width=8),
            Col("step", "float", min=0, width=8),
            Col("choices", "list", width=16),
            Col("constraint_group", width=12),
            Col("constraint_rule", width=16),
            Col("default_value_if_not_optimized", "any", width=14),
            _notes(),
        ),
    ),
    Sheet(
        "CONSTRAINT_SETS",
        (
            Col("constraint_set_id", "id", required=True, unique=True, width=16),
            Col("description", width=40),
            ENABLED,
            _notes(),
        ),
        key="constraint_set_id",
    ),
    Sheet(
        "CONSTRAINTS",
        (
            Col(
                "constraint_set_id", "id", required=True, ref=("CONSTRAINT_SETS.constraint_set_id",), width=16
            ),
            Col("metric_id", "id", required=True, ref=("METRICS.metric_id",), width=14),
            Col("scope", "enum", enum=CONSTRAINT_SCOPES, default="IS", width=7),
            Col("operator", "enum", required=True, enum=CONSTRAINT_OPERATORS, width=9),
            Col("threshold", "float", required=True, width=10),
            ENABLED,
            Col("severity", "enum", enum=SEVERITIES, default="hard", width=9),
            _notes(),
        ),
    ),
    Sheet(
        "METRICS",
        (
            Col("metric_id", "enum", required=True, unique=True, enum=METRIC_IDS, width=14),
            Col("description", width=40),
            ENABLED,
            Col("annualization_factor", "float", min=0, default=252.0, width=12),
            Col("risk_free_rate", "float", min=-1, max=1, default=0.0, width=10),
            _notes(),
        ),
        key="metric_id",
    ),
    Sheet(
        "ROBUSTNESS_PROFILES",
        (
            Col("robustness_profile_id", "id", required=True, unique=True, width=18),
            Col("description", width=40),
            ENABLED,
            _notes(),
        ),
        key="robustness_profile_id",
    ),
    Sheet(
        "ROBUSTNESS",
        (
            Col(
                "robustness_profile_id",
                "id",
                required=True,
                ref=("ROBUSTNESS_PROFILES.robustness_profile_id",),
                width=18,
            ),
            Col("test_id", "enum", required=True, enum=ROBUSTNESS_TESTS, width=16),
            ENABLED,
            Col("param_json", "json", width=44),
            _notes(),
        ),
    ),
    Sheet(
        "REPORTING",
        (
            Col("report_id", "id", required=True, unique=True, width=14),
            Col("target_type", "enum", required=True, enum=REPORT_TARGETS, width=16),
            Col("target_id", "id", required=True, width=16),
            Col("generate_tearsheet", "bool", default=True, width=10),
            Col("save_equity_curve", "bool", default=True, width=10),
            Col("save_positions", "bool", default=True, width=10),
            Col("save_signals", "bool", default=False, width=10),
            Col("save_feature_debug", "bool", default=False, width=10),
            Col("leaderboard_top_n", "int", min=0, default=10, width=10),
            Col("pareto_plot", "bool", default=False, width=9),
            Col("output_formats", "list", enum=OUTPUT_FORMATS, default=["html"], width=14),
            ENABLED,
            _notes(),
        ),
        key="report_id",
    ),
    Sheet(
        "GATES",
        (
            Col("gate_id", "id", required=True, unique=True, width=16),
            Col("expression", "expr", required=True, width=50, doc="boolean DSL expression"),
            Col("mode", "enum", enum=GATE_MODES, default="entry_only", width=14),
            ENABLED,
            _notes(),
        ),
        doc="Regime filters used by STRATEGIES.gate_expr; entry_only blocks entries, exits always allowed.",
        ext=True,
        key="gate_id",
    ),
)

SHEET_NAMES = tuple(s.name for s in SHEETS)
SPEC_SHEET_NAMES = tuple(s.name for s in SHEETS if not s.ext)
BY_NAME = {s.name: s for s in SHEETS}

#: columns that hold DSL expressions (sheet, column)
EXPRESSION_COLUMNS = tuple((s.name, c.name) for s in SHEETS for c in s.cols if c.type == "expr")

#: the DSL namespace shared by features, engineered features and gates (ids must be unique across them)
NAMESPACE_SHEETS = (
    ("FEATURE_LIBRARY", "feature_id"),
    ("ENGINEERED_FEATURES", "eng_feature_id"),
    ("GATES", "gate_id"),
)


@dataclass(frozen=True)
class Extension:
    sheet: str
    column: str
    why: str


def extensions() -> list[Extension]:
    """Every extension column/sheet, for docs (design/DECISIONS.md)."""
    out: list[Extension] = []
    for s in SHEETS:
        if s.ext:
            out.append(Extension(s.name, "(sheet)", s.doc))
            continue
        out.extend(Extension(s.name, c.name, c.doc) for c in s.cols if c.ext)
    return out
