"""Derived intraday tables (bars_1m, footprint_base_1m, cvd_1m, big_trade_events, session_stats) by DuckDB."""

from runtime.derive.build import DeriveParams, DeriveReport, build_derived, derive_tables, describe_report

__all__ = ["DeriveParams", "DeriveReport", "build_derived", "derive_tables", "describe_report"]
