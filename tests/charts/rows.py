"""Independent footprint-row rules for the chart tests (plain pandas, written from the spec, not the code)."""

from __future__ import annotations

import pandas as pd


def ticks_per_row(y_range: tuple[float, float], pane_px: float = 560.0) -> int:
    """Hand rule: the fewest ticks per row (1, 2, 4, 8, 20, ...) that make a row >= 11 px of the price pane."""
    px_per_tick = pane_px / ((y_range[1] - y_range[0]) / 0.25)
    return next(k for k in (1, 2, 4, 8, 20, 40, 80) if k * px_per_tick >= 11 - 1e-9)


def rows_of(fp: pd.DataFrame, k: int) -> pd.DataFrame:
    """Footprint levels merged into rows of k ticks starting at multiples of k ticks (plain pandas)."""
    lvl = (fp["price"] / 0.25).round().astype(int)
    t = fp.assign(row=(lvl // k) * k * 0.25)
    return (
        t.groupby(["ts", "row"], sort=True)
        .agg(
            bid=("bid_volume", "sum"),
            ask=("ask_volume", "sum"),
            poc=("poc", "any"),
            buy=("buy_imbalance", "any"),
            sell=("sell_imbalance", "any"),
        )
        .reset_index()
    )
