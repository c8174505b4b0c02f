"""Daily sample xlsx files for a fresh machine, from real market data shipped inside the `arch` package.

Files look like what a user keeps: one workbook per source, a date column, numeric columns, and the usual
quirks of real spreadsheets (a title row above the header, headers with stray spaces, newest-first order,
blank cells, dates stored as Excel serial numbers), so the demo exercises the parser on every run.

CTA-flow proxy (documented in design/DECISIONS.md): trend-following CTAs are long when prices trend up.
  trend(t)    = mean over L in {20, 60, 120, 250} of sign(close(t) / close(t-L) - 1)
  vol(t)      = std of daily returns over 60 days * sqrt(252)
  position(t) = trend(t) * min(0.10 / vol(t), 3)            (10% vol target, leverage capped at 3)
  cta_position(t) = 100 * position(t)  [$bn of S&P exposure on a $100bn book]
  cta_flow(t)     = cta_position(t) - cta_position(t-1)      [$bn/day]
It uses the close of day t, so it is published after the close: known_time_rule after_close, lag 1.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook

from runtime.storage.atomic import atomic_write_bytes

LOOKBACKS = (20, 60, 120, 250)
VOL_WINDOW = 60
TARGET_VOL = 0.10
MAX_LEVERAGE = 3.0
BOOK_BN = 100.0


def cta_proxy(close: pd.Series) -> pd.DataFrame:
    """CTA position and flow from S&P closes (formula in the module docstring); NaN until all windows exist."""
    close = close.astype("float64")
    trend = sum(np.sign(close / close.shift(n) - 1.0) for n in LOOKBACKS) / len(LOOKBACKS)
    ret = close.pct_change()
    vol = ret.rolling(VOL_WINDOW).std(ddof=1) * np.sqrt(252.0)
    lev = np.minimum(TARGET_VOL / vol, MAX_LEVERAGE)
    position = BOOK_BN * trend * lev
    flow = position.diff()
    return pd.DataFrame({"cta_flow": flow, "cta_position": position}, index=close.index)


def _load() -> dict[str, pd.DataFrame]:
    import arch.data.default
    import arch.data.nasdaq
    import arch.data.sp500
    import arch.data.vix
    import arch.data.wti

    return {
        "sp500": arch.data.sp500.load(),
        "nasdaq": arch.data.nasdaq.load(),
        "vix": arch.data.vix.load(),
        "default": arch.data.default.load(),
        "wti": arch.data.wti.load(),
    }


def _month_end_business(d: pd.Timestamp) -> dt.date:
    """Moody's monthly averages are known once the month is over: stamp them on its last business day."""
    return (d + pd.offsets.BMonthEnd(0)).date()


def _write(
    path: Path,
    sheet: str,
    header: list[str],
    rows: list[list],
    title: str | None = None,
    serial_dates: bool = False,
) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    if title:
        ws.append([title])
        ws.append([])
    ws.append(header)
    for r in rows:
        ws.append(r)
    if serial_dates:  # dates stored as Excel serial numbers, formatted as numbers (a common export quirk)
        first = (3 if title else 1) + 1
        for row in ws.iter_rows(min_row=first, max_col=1):
            c = row[0]
            if isinstance(c.value, dt.date):
                c.value = (dt.datetime.combine(c.value, dt.time()) - dt.datetime(1899, 12, 30)).days
                c.number_format = "0"
    buf = io.BytesIO()
    wb.save(buf)
    return atomic_write_bytes(path, buf.getvalue())


def _cell(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else round(float(v), 6)


def write_daily_samples(out_dir: Path, start: str = "2000-01-01") -> list[Path]:
    """Write spx/ndx/vix/credit/cta/wti .xlsx into out_dir; deterministic (real data, no randomness)."""
    data = _load()
    out_dir = Path(out_dir)
    files = []
    ohlcv = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]

    sp = data["sp500"].loc[start:]
    files.append(
        _write(
            out_dir / "spx.xlsx",
            "SPX",
            ["Date", " Open", "High ", " Low ", "Close", " Adj Close ", "Volume"],
            [[d.date(), *(_cell(r[c]) for c in ohlcv)] for d, r in sp.iterrows()],
        )
    )

    nd = data["nasdaq"].loc[start:].iloc[::-1]  # newest first, as many downloads come
    files.append(
        _write(
            out_dir / "ndx.xlsx",
            "NDX",
            ["Date", *ohlcv],
            [[d.date(), *(_cell(r[c]) for c in ohlcv)] for d, r in nd.iterrows()],
        )
    )

    vx = data["vix"]
    files.append(
        _write(
            out_dir / "vix.xlsx",
            "VIX",
            ["Date", "Close"],
            [[d.date(), _cell(v)] for d, v in vx["vix"].items()],
            title="CBOE Volatility Index, daily close (source: arch.data.vix)",
        )
    )

    cr = data["default"].loc["1990-01-01":]
    files.append(
        _write(
            out_dir / "credit.xlsx",
            "Moodys",
            ["Date", "AAA", "BAA"],
            [[_month_end_business(d), _cell(r["AAA"]), _cell(r["BAA"])] for d, r in cr.iterrows()],
            serial_dates=True,
        )
    )

    cta = cta_proxy(data["sp500"]["Close"]).loc[start:].dropna(how="all")
    files.append(
        _write(
            out_dir / "cta.xlsx",
            "CTA",
            ["Date", "CTA Flow", "CTA Position"],
            [[d.date(), _cell(r["cta_flow"]), _cell(r["cta_position"])] for d, r in cta.iterrows()],
        )
    )

    wti = data["wti"].loc[start:]
    files.append(
        _write(
            out_dir / "wti.xlsx",
            "WTI",
            ["Date", "WTI"],
            [[d.date(), _cell(v)] for d, v in wti["DCOILWTICO"].items()],
        )
    )
    return files
