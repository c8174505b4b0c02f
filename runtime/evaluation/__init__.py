"""Evaluation inputs from a real DATA_ROOT: grids (trading days, dense 1m sessions) and WorkspaceSources."""

from runtime.evaluation.grids import (
    CALENDARS,
    DailyGrid,
    MinuteGrid,
    daily_grid,
    first_data_date,
    known_calendar,
    minute_grid,
    trading_days,
)
from runtime.evaluation.sources import MINUTE_COLUMNS, WorkspaceSources

__all__ = [
    "CALENDARS",
    "MINUTE_COLUMNS",
    "DailyGrid",
    "MinuteGrid",
    "WorkspaceSources",
    "daily_grid",
    "first_data_date",
    "known_calendar",
    "minute_grid",
    "trading_days",
]
