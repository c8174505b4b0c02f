"""`backtest init`: write the template workbook (every sheet, exact headers, dropdowns, demo rows).

The demo rows define what `make demo` runs: daily series generated from the real data shipped in `arch`
(S&P 500, Nasdaq, VIX, Moody's AAA/BAA, WTI, a CTA-flow proxy) and synthetic ES trades in DBN, plus the
features, gates and strategies of the design card's example `zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from runtime.config.schema import BY_NAME, SHEETS, Col
from runtime.contracts import UserError

HEADER_FILL = PatternFill("solid", fgColor="1F3864")
EXT_FILL = PatternFill("solid", fgColor="385723")  # extension columns (DECISIONS.md) look different
HEADER_FONT = Font(bold=True, color="FFFFFF")
VALIDATION_ROWS = 500

DEMO_EXPR = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"

# ---- demo rows: sheet -> list of {header: value} -----------------------------------------------------

RUNBOOK = [
    (
        1,
        "Export the workbook to a snapshot",
        "backtest config export",
        "after every edit; validates all sheets",
    ),
    (
        2,
        "Create DATA_ROOT, then sample data (fresh machine only)",
        "backtest init --data; backtest demo-data",
        "a missing DATA_ROOT is never created silently; sample xlsx from arch data + synthetic ES DBN",
    ),
    (3, "Ingest daily series", "backtest ingest daily", "append-only; revisions are recorded"),
    (4, "Ingest ES trades", "backtest ingest databento", "DBN files -> canonical parquet by trade date"),
    (5, "Build derived intraday tables", "backtest derive", "bars_1m, footprint, CVD, big trades; RTH+FULL"),
    (6, "Charts", "backtest charts --demo  (or notebooks/01_charts.ipynb)", "candles, footprint, CVD"),
    (7, "Inspect an expression", f'backtest compile "{DEMO_EXPR}"', "typed DAG, availability, warm-up"),
    (8, "Check what is stored", "backtest status", "coverage, gaps, roll schedule, builds"),
    (9, "Context pack for a new chat", "backtest context-pack", "writes context_pack.md"),
    (10, "Archive design docs", "backtest docs archive", "copies design/ and instructions/ to archive/"),
]

DEMO_ROWS: dict[str, list[dict[str, Any]]] = {
    "RUNBOOK": [{"StepNo": n, "Task": t, "CommandOrAction": c, "Notes": note} for n, t, c, note in RUNBOOK],
    "PATHS": [
        {
            "Profile": "portable",
            "IsActive": True,
            "CODE_ROOT": ".",
            "DATA_ROOT": "data",
            "DUCKDB_FILE": "duckdb/research.duckdb",
            "RAW_DIR": "raw",
            "CANONICAL_DIR": "canonical",
            "FEATURE_CACHE_DIR": "features_cache",
            "RUNS_DIR": "runs",
            "LOG_DIR": "logs",
            "EXPORT_CONFIG_DIR": "config/exports",
            "Notes": "any machine: data inside the repo (git-ignored)",
            "DERIVED_DIR": "derived",
        },
        {
            "Profile": "windows_pcash",
            "IsActive": False,
            "CODE_ROOT": r"C:\Users\pcash\OneDrive\Backtest",
            "DATA_ROOT": r"E:\BacktestData",
            "DUCKDB_FILE": r"E:\BacktestData\duckdb\research.duckdb",
            "RAW_DIR": r"E:\BacktestData\raw",
            "CANONICAL_DIR": r"E:\BacktestData\canonical",
            "FEATURE_CACHE_DIR": r"E:\BacktestData\features_cache",
            "RUNS_DIR": r"E:\BacktestData\runs",
            "LOG_DIR": r"E:\BacktestData\logs",
            "EXPORT_CONFIG_DIR": r"C:\Users\pcash\OneDrive\Backtest\config\exports",
            "Notes": "the workstation: code in OneDrive, data on the E: SSD",
            "DERIVED_DIR": r"E:\BacktestData\derived",
        },
    ],
    "DATASETS": [
        *[
            {
                "dataset_id": ds,
                "dataset_type": "daily_series",
                "source_type": "xlsx",
                "source_path_or_id": f"incoming/daily/{file}.xlsx#{sheet}",
                "update_mode": "append_only",
                "date_col": "Date",
                "timestamp_tz": tz,
                "bar_frequency": freq,
                "known_time_rule": rule,
                "default_availability_lag_days": 1,
                "canonical_table_name": f"daily_{file}",
                "canonical_partition_keys": "year",
                "notes": note,
                "enabled": True,
            }
            for ds, file, sheet, tz, freq, rule, note in (
                (
                    "SPX",
                    "spx",
                    "SPX",
                    "America/New_York",
                    "1d",
                    "at_close",
                    "S&P 500 daily OHLCV (arch.data)",
                ),
                (
                    "NDX",
                    "ndx",
                    "NDX",
                    "America/New_York",
                    "1d",
                    "at_close",
                    "Nasdaq Composite daily (arch.data)",
                ),
                ("VIX", "vix", "VIX", "America/Chicago", "1d", "at_close", "CBOE VIX close (arch.data)"),
                (
                    "CREDIT",
                    "credit",
                    "Moodys",
                    "America/New_York",
                    "1mo",
                    "after_close",
                    "Moody's AAA/BAA monthly yields, stamped at month end (arch.data)",
                ),
                (
                    "CTA",
                    "cta",
                    "CTA",
                    "America/New_York",
                    "1d",
                    "after_close",
                    "CTA-flow proxy from S&P trend signals; published after the close",
                ),
                ("WTI", "wti", "WTI", "America/Chicago", "1d", "at_close", "WTI spot (arch.data)"),
            )
        ],
        {
            "dataset_id": "ES",
            "dataset_type": "intraday_trades",
            "source_type": "databento_file",
            "source_path_or_id": "incoming/databento/*.trades.dbn.zst",
            "update_mode": "append_only",
            "timestamp_tz": "UTC",
            "bar_frequency": "tick",
            "known_time_rule": "realtime",
            "default_availability_lag_days": 0,
            "canonical_table_name": "trades_es",
            "canonical_partition_keys": "trade_date",
            "notes": "E-mini S&P trades (GLBX.MDP3 trades schema), aggressor side",
            "enabled": True,
            "roll_rule": "volume",
            "roll_days_before_expiry": 8,
            "session_calendar": "CME_EQUITY",
            "rth_start": "08:30",
            "rth_end": "15:00",
        },
        {
            "dataset_id": "ES_API",
            "dataset_type": "intraday_trades",
            "source_type": "databento_api",
            "source_path_or_id": "GLBX.MDP3",
            "update_mode": "append_only",
            "timestamp_tz": "UTC",
            "bar_frequency": "tick",
            "known_time_rule": "realtime",
            "default_availability_lag_days": 0,
            "canonical_table_name": "trades_es_api",
            "canonical_partition_keys": "trade_date",
            "notes": "download with DATABENTO_API_KEY from the environment; enable when you have a key",
            "enabled": False,
            "roll_rule": "volume",
            "roll_days_before_expiry": 8,
            "session_calendar": "CME_EQUITY",
            "rth_start": "08:30",
            "rth_end": "15:00",
            "api_cost_cap_usd": 5.0,
            "api_request_json": json.dumps(
                {
                    "dataset": "GLBX.MDP3",
                    "schema": "trades",
                    "symbols": ["ESH4"],
                    "stype_in": "raw_symbol",
                    "start": "2024-01-02",
                    "end": "2024-01-03",
                }
            ),
        },
    ],
    "INSTRUMENTS": [
        {
            "instrument_id": "ES",
            "instrument_name": "E-mini S&P 500 (continuous front month)",
            "instrument_type": "future",
            "prices_dataset_id": "ES",
            "open_col": "open",
            "high_col": "high",
            "low_col": "low",
            "close_col": "close",
            "return_model": "price_diff",
            "tick_size": 0.25,
            "multiplier": 50,
            "currency": "USD",
            "calendar": "CME_EQUITY",
            "default_execution_time": "next_open",
            "default_execution_price_model": "spread_adjusted",
        },
        *[
            {
                "instrument_id": iid,
                "instrument_name": name,
                "instrument_type": itype,
                "prices_dataset_id": ds,
                "open_col": o,
                "high_col": h,
                "low_col": lo,
                "close_col": c,
                "return_model": "pct",
                "tick_size": 0.01,
                "multiplier": 1,
                "currency": "USD",
                "calendar": "NYSE",
                "default_execution_time": "next_open",
                "default_execution_price_model": "mid",
            }
            for iid, name, itype, ds, o, h, lo, c in (
                ("SPX", "S&P 500 index (proxy)", "index", "SPX", "open", "high", "low", "close"),
                ("NDX", "Nasdaq Composite (proxy)", "index", "NDX", "open", "high", "low", "close"),
                ("VIX", "CBOE VIX", "indicator", "VIX", None, None, None, "close"),
            )
        ],
    ],
    "FEATURE_LIBRARY": [
        {
            "feature_id": fid,
            "feature_name": name,
            "dataset_id": ds,
            "input_col": col,
            "transform": tr,
            "params_json": params,
            "lag_days": lag,
            "missing_policy": mp,
            "normalize": "none",
            "tags": tags,
            "enabled": True,
        }
        for fid, name, ds, col, tr, params, lag, mp, tags in (
            ("cta_flow", "CTA flow proxy", "CTA", "cta_flow", None, None, 0, "keep", "cta,flow"),
            ("cta_position", "CTA position proxy", "CTA", "cta_position", None, None, 0, "keep", "cta"),
            ("vix_level", "VIX close", "VIX", "close", None, None, 0, "keep", "vix"),
            (
                "vix_high",
                "VIX above threshold (lagged)",
                "VIX",
                "close",
                "x > $threshold",
                '{"threshold": 25}',
                1,
                "keep",
                "vix,regime",
            ),
            ("spx_ret", "S&P 500 daily return", "SPX", "close", "pct_change(x, 1)", None, 0, "keep", "spx"),
            (
                "spx_mom_60",
                "S&P 500 60-day momentum",
                "SPX",
                "close",
                "pct_change(x, 60)",
                None,
                0,
                "keep",
                "spx,trend",
            ),
            (
                "spx_vol_20",
                "S&P 500 20-day realised vol",
                "SPX",
                "close",
                "realized_vol(pct_change(x, 1), 20)",
                None,
                0,
                "keep",
                "spx,vol",
            ),
            ("ndx_ret", "Nasdaq daily return", "NDX", "close", "pct_change(x, 1)", None, 0, "keep", "ndx"),
            (
                "credit_spread",
                "BAA - AAA spread",
                "CREDIT",
                "baa",
                "x - CREDIT.aaa",
                None,
                0,
                "ffill",
                "credit",
            ),
            ("oil_ret", "WTI daily return", "WTI", "wti", "pct_change(x, 1)", None, 0, "ffill:5", "oil"),
            ("es_delta", "ES 1-minute delta", "ES", "delta", None, None, 0, "keep", "es,flow"),
            ("es_close", "ES 1-minute close", "ES", "close", None, None, 0, "keep", "es"),
        )
    ],
    "ENGINEERED_FEATURES": [
        {
            "eng_feature_id": eid,
            "eng_feature_name": name,
            "input_feature_ids": inputs,
            "combine_transform": expr,
            "lag_days": 0,
            "missing_policy": "keep",
            "tags": tags,
            "enabled": True,
        }
        for eid, name, inputs, expr, tags in (
            (
                "ndx_spx_rs",
                "Nasdaq vs S&P relative strength",
                "ndx_ret,spx_ret",
                "mean(ndx_ret - spx_ret, 20)",
                "spx,ndx",
            ),
            ("cta_flow_z", "CTA flow z-score (known)", "cta_flow", "zscore(lag(cta_flow, 1), 60)", "cta"),
            (
                "credit_widening",
                "Credit spread widening",
                "credit_spread",
                "diff(credit_spread, 20) > 0",
                "credit,regime",
            ),
            ("es_delta_z", "ES delta z-score", "es_delta", "zscore(es_delta, 30)", "es,flow"),
        )
    ],
    "FEATURE_SETS": [
        {
            "feature_set_id": "fs_daily",
            "description": "daily indicators",
            "include_tags": "cta,vix,spx,credit",
            "max_features": 20,
            "enabled": True,
        },
        {"feature_set_id": "fs_es", "description": "ES order flow", "include_tags": "es", "enabled": True},
    ],
    "SIGNAL_TEMPLATES": [
        {
            "template_id": "zscore_threshold",
            "template_name": "z-score threshold",
            "allowed_feature_inputs": None,
            "supports_long_short": True,
            "supports_flat": True,
            "description": "long above +entry, short below -entry, flat between",
            "default_params_json": '{"lag": 1, "window": 60, "entry": 0.5}',
            "enabled": True,
            "signal_expr": "if(zscore(lag({primary}, $lag), $window) > $entry, 1, "
            "if(zscore(lag({primary}, $lag), $window) < -$entry, -1, 0))",
        },
        {
            "template_id": "trend_sign",
            "template_name": "sign of a trend feature",
            "supports_long_short": True,
            "supports_flat": True,
            "description": "position = sign of the lagged feature",
            "default_params_json": '{"lag": 1}',
            "enabled": True,
            "signal_expr": "sign(lag({primary}, $lag))",
        },
        {
            "template_id": "pair_cross",
            "template_name": "primary above secondary",
            "supports_long_short": True,
            "supports_flat": False,
            "description": "long when primary > secondary, else short",
            "default_params_json": '{"lag": 1}',
            "enabled": True,
            "signal_expr": "if(lag({primary}, $lag) > lag({secondary}, $lag), 1, -1)",
        },
    ],
    "STRATEGIES": [
        {
            "strategy_id": "spx_cta_z",
            "strategy_name": "S&P on CTA-flow z-score, VIX and credit gates",
            "instrument_id": "SPX",
            "feature_set_id": "fs_daily",
            "signal_template_id": "zscore_threshold",
            "primary_feature_id": "cta_flow",
            "feature_combo_rule": "none",
            "position_mode": "discrete",
            "position_values": "-1,0,1",
            "enabled": True,
            "gate_expr": "calm_vol AND credit_ok",
            "scaling_expr": "clip(0.15 / lag(spx_vol_20, 1), 0, 2)",
            "params_json": '{"lag": 1, "window": 60, "entry": 0.5}',
        },
        {
            "strategy_id": "es_delta_trend",
            "strategy_name": "ES delta z-score, daily VIX gate",
            "instrument_id": "ES",
            "feature_set_id": "fs_es",
            "signal_template_id": "zscore_threshold",
            "primary_feature_id": "es_delta",
            "feature_combo_rule": "none",
            "position_mode": "discrete",
            "position_values": "-1,0,1",
            "enabled": True,
            "gate_expr": "asof(calm_vol)",
            "params_json": '{"lag": 1, "window": 30, "entry": 1.0}',
        },
        {
            "strategy_id": "es_daily_trend",
            "strategy_name": "ES daily: sign of yesterday's S&P return (bt_es_daily_custom)",
            "instrument_id": "ES",
            "feature_set_id": "fs_daily",
            "signal_template_id": "trend_sign",
            "primary_feature_id": "spx_ret",
            "feature_combo_rule": "none",
            "position_mode": "discrete",
            "position_values": "-1,0,1",
            "enabled": True,
            "params_json": '{"lag": 1}',
        },
    ],
    "BACKTESTS": [
        {
            "backtest_id": "bt_spx_cta",
            "strategy_id": "spx_cta_z",
            "start_date": dt.date(2005, 1, 3),
            "end_date": dt.date(2018, 12, 31),
            "oos_last_x_months": 36,
            "rebalance_rule": "daily",
            "execution_time": "close",
            "execution_price_model": "spread_adjusted",
            "spread_model_type": "bps",
            "spread_value": 1.0,
            "slippage_model_type": "bps",
            "slippage_value": 0.5,
            "allow_flip_same_day": True,
            "min_hold_days": 0,
            "cooldown_days": 0,
            "enabled": True,
            "frequency": "daily",
            "commission_model": "bps",
            "commission_value": 0.2,
            "scaling_rebalance": "daily",
            "initial_capital": 1_000_000,
        },
        {
            "backtest_id": "bt_es_delta",
            "strategy_id": "es_delta_trend",
            "start_date": dt.date(2018, 11, 5),
            "end_date": dt.date(2018, 12, 20),
            "oos_last_x_months": 0,
            "rebalance_rule": "bar",
            "execution_time": "next_open",
            "execution_price_model": "spread_adjusted",
            "spread_model_type": "ticks",
            "spread_value": 1.0,
            "slippage_model_type": "ticks",
            "slippage_value": 0.5,
            "allow_flip_same_day": True,
            "min_hold_days": 0,
            "cooldown_days": 0,
            "enabled": True,
            "frequency": "1m",
            "commission_model": "per_contract",
            "commission_value": 2.25,
            "scaling_rebalance": "on_signal_change",
            "initial_capital": 250_000,
        },
        {
            "backtest_id": "bt_es_daily_custom",
            "strategy_id": "es_daily_trend",
            "start_date": dt.date(2018, 11, 1),
            "end_date": dt.date(2018, 12, 20),
            "oos_last_x_months": 0,
            "rebalance_rule": "daily",
            "execution_time": "custom",
            "execution_price_model": "mid",
            "spread_model_type": "none",
            "spread_value": 0.0,
            "slippage_model_type": "ticks",
            "slippage_value": 1.0,
            "allow_flip_same_day": True,
            "min_hold_days": 0,
            "cooldown_days": 0,
            "enabled": True,
            "notes": "daily ES sessions (RTH 1m bars): decide at the close, fill at 09:00 America/Chicago "
            "the next session",
            "frequency": "daily",
            "custom_execution_time": "09:00",
            "commission_model": "per_trade",
            "commission_value": 2.5,
            "scaling_rebalance": "daily",
            "initial_capital": 250_000,
            "flat_at_session_end": False,
        },
    ],
    "OPTIMIZATION_STUDIES": [
        {
            "study_id": "st_spx_cta",
            "backtest_id": "bt_spx_cta",
            "method": "tpe",
            "objective_primary_metric": "total_pnl",
            "objective_secondary_metric": "sharpe",
            "objective_direction": "maximize",
            "optimize_on": "IS",
            "n_trials": 40,
            "seed": 42,
            "save_top_n_artifacts": 5,
            "constraint_set_id": "cs_basic",
            "robustness_profile_id": "rp_default",
            "enabled": True,
        }
    ],
    "OPTIMIZATION_PARAMS": [
        {
            "study_id": "st_spx_cta",
            "param_scope": "strategy",
            "target_id": "spx_cta_z",
            "param_name": "window",
            "optimize_flag": "X",
            "param_type": "int",
            "low": 20,
            "high": 250,
            "step": 10,
            "default_value_if_not_optimized": 60,
        },
        {
            "study_id": "st_spx_cta",
            "param_scope": "strategy",
            "target_id": "spx_cta_z",
            "param_name": "entry",
            "optimize_flag": "X",
            "param_type": "float",
            "low": 0,
            "high": 2,
            "step": 0.1,
            "default_value_if_not_optimized": 0.5,
        },
        {
            "study_id": "st_spx_cta",
            "param_scope": "strategy",
            "target_id": "spx_cta_z",
            "param_name": "lag",
            "optimize_flag": None,
            "param_type": "int",
            "default_value_if_not_optimized": 1,
            "notes": "kept at 1: the CTA proxy is published after the close",
        },
        {
            "study_id": "st_spx_cta",
            "param_scope": "feature",
            "target_id": "vix_high",
            "param_name": "threshold",
            "optimize_flag": "X",
            "param_type": "float",
            "low": 15,
            "high": 40,
            "step": 1,
            "default_value_if_not_optimized": 25,
        },
    ],
    "CONSTRAINT_SETS": [{"constraint_set_id": "cs_basic", "description": "sane risk", "enabled": True}],
    "CONSTRAINTS": [
        {
            "constraint_set_id": "cs_basic",
            "metric_id": m,
            "scope": "IS",
            "operator": op,
            "threshold": th,
            "enabled": True,
            "severity": sev,
        }
        for m, op, th, sev in (
            ("max_drawdown", "<=", 0.35, "hard"),  # a fraction >= 0 (ENGINE.md)
            ("n_trades", ">=", 10, "hard"),
            ("sharpe", ">=", 0.3, "soft"),
            ("turnover", "<=", 60, "soft"),
        )
    ],
    "METRICS": [
        {"metric_id": m, "description": d, "enabled": True, "annualization_factor": 252, "risk_free_rate": 0}
        for m, d in (
            ("total_pnl", "sum of daily PnL in currency"),
            ("cagr", "compound annual growth of equity"),
            ("volatility", "annualised std of daily returns"),
            ("sharpe", "annualised mean / std of daily returns"),
            ("sortino", "annualised mean / downside std"),
            ("max_drawdown", "worst peak-to-trough of equity (negative)"),
            ("calmar", "CAGR / |max drawdown|"),
            ("turnover", "annualised sum of |position changes|"),
            ("n_trades", "number of entries"),
            ("win_rate", "share of closed trades with PnL > 0"),
            ("profit_factor", "gross profit / gross loss"),
            ("avg_trade", "mean PnL per closed trade"),
            ("exposure", "share of days with a position"),
        )
    ],
    "ROBUSTNESS_PROFILES": [
        {"robustness_profile_id": "rp_default", "description": "every Phase 0 test", "enabled": True}
    ],
    "ROBUSTNESS": [
        {"robustness_profile_id": "rp_default", "test_id": t, "enabled": True, "param_json": p}
        for t, p in (
            ("is_oos_gap", "{}"),
            ("walk_forward", '{"folds": 5, "anchored": true}'),
            ("purge_embargo", '{"purge_days": 5, "embargo_days": 5}'),
            ("block_bootstrap", '{"n": 1000, "method": "stationary", "seed": 7}'),
            ("placebo_shuffle", '{"n": 200, "seed": 7}'),
            ("lag_sweep", '{"min": -10, "max": 10}'),
            ("sensitivity_1d", '{"points": 21}'),
            ("sensitivity_2d", '{"params": ["window", "entry"], "points": 11}'),
            ("regimes", '{"by": "vix_high"}'),
            ("cost_sensitivity", '{"multiples": [0, 1, 2, 3]}'),
            ("multiple_testing", '{"methods": ["dsr", "pbo", "spa"]}'),
        )
    ],
    "REPORTING": [
        {
            "report_id": "rep_spx",
            "target_type": "backtest",
            "target_id": "bt_spx_cta",
            "generate_tearsheet": True,
            "save_equity_curve": True,
            "save_positions": True,
            "save_signals": True,
            "save_feature_debug": False,
            "leaderboard_top_n": 10,
            "pareto_plot": False,
            "output_formats": "html,csv",
            "enabled": True,
        },
        {
            "report_id": "rep_study",
            "target_type": "study",
            "target_id": "st_spx_cta",
            "generate_tearsheet": True,
            "save_equity_curve": True,
            "save_positions": False,
            "save_signals": False,
            "save_feature_debug": False,
            "leaderboard_top_n": 20,
            "pareto_plot": True,
            "output_formats": "html",
            "enabled": True,
        },
    ],
    "GATES": [
        {
            "gate_id": "calm_vol",
            "expression": "NOT vix_high",
            "mode": "entry_only",
            "enabled": True,
            "notes": "no new entries while yesterday's VIX was above the threshold",
        },
        {
            "gate_id": "credit_ok",
            "expression": "NOT lag(credit_widening, 1)",
            "mode": "entry_and_exit",
            "enabled": True,
            "notes": "hold nothing while credit spreads widen",
        },
    ],
}


def _dropdown(col: Col) -> list[str] | None:
    if col.type == "bool":
        return ["TRUE", "FALSE"]
    if col.type == "flag":
        return ["X"]
    if col.enum and col.type in ("enum", "str"):
        return list(col.enum)
    return None


def build_workbook(demo: bool = True) -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    for spec in SHEETS:
        ws = wb.create_sheet(spec.name)
        for j, col in enumerate(spec.cols, start=1):
            c = ws.cell(row=1, column=j, value=col.name)
            c.font = HEADER_FONT
            c.fill = EXT_FILL if (col.ext or spec.ext) else HEADER_FILL
            c.alignment = Alignment(vertical="center")
            note = _header_note(col)
            if note:
                c.comment = Comment(note, "backtest")
            letter = get_column_letter(j)
            ws.column_dimensions[letter].width = max(col.width, len(col.name) + 2, 9)
            options = _dropdown(col)
            if options:
                dv = DataValidation(
                    type="list",
                    formula1='"' + ",".join(options) + '"',
                    allow_blank=True,
                    showErrorMessage=col.strict_enum,
                    errorTitle=col.name,
                    error=f"pick one of: {', '.join(options)}",
                )
                dv.add(f"{letter}2:{letter}{VALIDATION_ROWS}")
                ws.add_data_validation(dv)
            if col.type == "date":
                for r in range(2, VALIDATION_ROWS + 1):
                    ws.cell(row=r, column=j).number_format = "yyyy-mm-dd"
        ws.freeze_panes = "A2"
        if demo:
            for i, row in enumerate(DEMO_ROWS.get(spec.name, []), start=2):
                for j, col in enumerate(spec.cols, start=1):
                    v = row.get(col.name)
                    if v is None:
                        continue
                    cell = ws.cell(row=i, column=j, value=v)
                    if col.type == "expr":
                        cell.alignment = Alignment(wrap_text=False)
    return wb


def _header_note(col: Col) -> str:
    parts = [col.doc] if col.doc else []
    if col.enum:
        parts.append("values: " + ", ".join(col.enum))
    if col.required:
        parts.append("required")
    if col.ext:
        parts.append("extension column (design/DECISIONS.md)")
    return "\n".join(parts)


def write_template(path: Path, force: bool = False, demo: bool = True) -> Path:
    from runtime.storage.atomic import atomic_write_bytes

    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force to overwrite it (your edits would be lost)")
    import io

    buf = io.BytesIO()
    build_workbook(demo=demo).save(buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def demo_rows(sheet: str) -> list[dict[str, Any]]:
    """The template's demo rows (tests read these to know what the demo defines)."""
    assert sheet in BY_NAME
    return DEMO_ROWS.get(sheet, [])
