"""Where derived intraday tables live and what their columns are: the contract between derive and charts.

Layout (hive partitions, one file per table, session and CME trade date):

    <DERIVED_DIR>/<dataset_id>/<table>/session=<RTH|FULL>/trade_date=YYYY-MM-DD/part-0.parquet
    <DERIVED_DIR>/<dataset_id>/contracts/<SYMBOL>/<table>/session=.../trade_date=.../part-0.parquet

The first is the continuous front-month series (the contract per trade date comes from the registry's
roll_schedule); the second holds one contract on request (e.g. ESZ8), kept in its own subtree so a glob over
the front series never picks up a single-contract table. Every file also carries its `session` and
`trade_date` as columns, so a file read on its own is self-describing (hive readers see the same values).

Tables: bars_1m, footprint_base_1m, cvd_1m, big_trade_events (the spec's four) and session_stats, one row per
session and trade date: the session's trading windows from the CME calendar (so charts align buckets in exchange
time without the calendar package), trade/event counts (so big-trade percentiles count every event, not only
the stored ones) and the big-trade floor used.

Conventions that every table shares (why: the chart API and tests depend on them):
* timestamps are UTC nanoseconds (`timestamp[ns, UTC]`); `ts` is the start of the UTC minute;
* minutes with no trade have no row (the chart API fills gaps when it needs to);
* FULL = every canonical row of the trade date; RTH = the rows with `in_rth` (RTH bounds are whole minutes, so a
  minute is either entirely RTH or not);
* side +1 = buyer-initiated (footprint ask column), -1 = seller-initiated (bid column), 0 = no aggressor: it
  counts in volume, never in delta.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa

SESSIONS = ("RTH", "FULL")
FRONT = "front"
PART_FILE = "part-0.parquet"
MINUTE_NS = 60_000_000_000

TS_NS = pa.timestamp("ns", tz="UTC")
_SERIES_RE = re.compile(r"ES[HMUZ]\d")


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_KEY = [_f("session", pa.string()), _f("trade_date", pa.date32())]

BARS_SCHEMA = pa.schema(
    [
        *_KEY,
        _f("ts", TS_NS),
        _f("symbol", pa.string()),
        _f("open", pa.float64()),
        _f("high", pa.float64()),
        _f("low", pa.float64()),
        _f("close", pa.float64()),
        _f("volume", pa.int64()),
        _f("buy_volume", pa.int64()),
        _f("sell_volume", pa.int64()),
        _f("n_trades", pa.int64()),
        _f("vwap", pa.float64(), nullable=True),  # NULL only if every trade of the minute had size 0
    ]
)

FOOTPRINT_SCHEMA = pa.schema(
    [
        *_KEY,
        _f("ts", TS_NS),
        _f("price", pa.float64()),
        _f("bid_volume", pa.int64()),  # seller-initiated (side -1): traded at the bid
        _f("ask_volume", pa.int64()),  # buyer-initiated (side +1): traded at the ask
        _f("other_volume", pa.int64()),  # side 0 (no aggressor): in volume, not in delta
        _f("n_trades", pa.int64()),
    ]
)

CVD_SCHEMA = pa.schema(
    [
        *_KEY,
        _f("ts", TS_NS),
        _f("delta", pa.int64()),  # ask_volume - bid_volume of the minute
        _f("cvd", pa.int64()),  # running sum of delta since the session start (reset every session)
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        *_KEY,
        _f("ts_event", TS_NS),
        _f("symbol", pa.string()),
        _f("price", pa.float64()),  # the record's price; size-weighted average for a sweep
        _f("min_price", pa.float64()),
        _f("max_price", pa.float64()),
        _f("size", pa.int64()),
        _f("side", pa.int8()),
        _f("n_fills", pa.int32()),
        _f("kind", pa.string()),  # 'print' = one canonical record; 'sweep' = one aggressor's records (>1)
        _f("sweep_fill", pa.bool_()),  # a 'print' row that is one fill of a multi-record aggressor event
    ]
)

SESSION_STATS_SCHEMA = pa.schema(
    [
        *_KEY,
        _f("symbol", pa.string()),
        # session start from the CME calendar (RTH 08:30 CT; FULL the first Globex open)
        _f("open_ts", TS_NS),
        _f("close_ts", TS_NS),
        _f("segment_open", pa.list_(pa.field("item", TS_NS, nullable=False))),  # continuous trading windows
        _f("segment_close", pa.list_(pa.field("item", TS_NS, nullable=False))),
        _f("first_trade_ts", TS_NS, nullable=True),
        _f("last_trade_ts", TS_NS, nullable=True),
        _f("n_trades", pa.int64()),
        _f("volume", pa.int64()),
        _f("buy_volume", pa.int64()),
        _f("sell_volume", pa.int64()),
        _f("n_events", pa.int64()),  # aggressor events: records grouped by (ts_event, side), any size
        _f("early_close", pa.bool_()),
        _f("big_trade_floor", pa.int32()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "bars_1m": BARS_SCHEMA,
    "footprint_base_1m": FOOTPRINT_SCHEMA,
    "cvd_1m": CVD_SCHEMA,
    "big_trade_events": EVENTS_SCHEMA,
    "session_stats": SESSION_STATS_SCHEMA,
}
TABLES = tuple(SCHEMAS)


def check_series(series: str) -> str:
    """'front' or one ES quarterly contract (ESZ8); the name becomes a folder, so nothing else is accepted."""
    if series == FRONT or _SERIES_RE.fullmatch(series):
        return series
    raise ValueError(f"series {series!r} is neither 'front' nor an ES quarterly contract such as ESZ8")


def check_session(session: str) -> str:
    if session not in SESSIONS:
        raise ValueError(f"session {session!r} is not one of {', '.join(SESSIONS)}")
    return session


def series_root(derived_root: Path, dataset_id: str, series: str = FRONT) -> Path:
    base = Path(derived_root) / dataset_id
    return base if check_series(series) == FRONT else base / "contracts" / series


def session_dir(derived_root: Path, dataset_id: str, series: str, table: str, session: str) -> Path:
    if table not in SCHEMAS:
        raise ValueError(f"unknown derived table {table!r}; one of {', '.join(TABLES)}")
    return series_root(derived_root, dataset_id, series) / table / f"session={check_session(session)}"


def partition_file(
    derived_root: Path, dataset_id: str, series: str, table: str, session: str, trade_date: dt.date
) -> Path:
    return (
        session_dir(derived_root, dataset_id, series, table, session)
        / f"trade_date={trade_date.isoformat()}"
        / PART_FILE
    )


def available_dates(
    derived_root: Path, dataset_id: str, series: str, table: str, session: str
) -> list[dt.date]:
    """Trade dates that have a file for this table and session (a directory listing: no file is opened)."""
    base = session_dir(derived_root, dataset_id, series, table, session)
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        if d.name.startswith("trade_date=") and (d / PART_FILE).is_file():
            try:
                out.append(dt.date.fromisoformat(d.name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(out)
