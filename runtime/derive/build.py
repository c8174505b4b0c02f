"""Derived intraday tables (bars, footprint, CVD, big-trade events, session stats) from canonical ES trades.

Why this shape:
* The tick work is DuckDB SQL over the canonical parquet partitions; Python plans which trade dates to build,
  slices the (small) results by date and writes files. One DuckDB scan reads a batch of trade dates (only the
  series' contract, only the needed columns) in trade order; one GROUP BY gives a fine aggregate per (minute,
  price, in_rth) that bars, footprint and CVD of both sessions are rolled up from (RTH = in_rth rows); big-trade
  events are grouped from candidate rows only (size >= floor, or sharing ts_event with a neighbour).
* Trade order is (ts_event, sequence, position in the file). Partitions are written sorted by ts_event, so the
  loader only verifies the order (vectorised) and sorts if a tie is out of sequence; the row position is then an
  exact BIGINT key for "first/last trade" (open/close by arg_min/arg_max) and the neighbour test that flags
  multi-record events is one numpy comparison instead of a SQL window that would sort every trade again.
* Incremental by trade date: a date is rebuilt only when its canonical partition version, its contract or the
  parameters hash changed since its manifest rows were written (or on rebuild=True). Files are replaced
  atomically through the staging dir, and the registry's manifest rows are written last, per batch: a killed
  build leaves complete files and at worst dates without manifest rows, which the next run builds again.
* Writes overlap the SQL: each table is handed to a small thread pool as soon as DuckDB returns it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime.config.columns import dataset_cell
from runtime.contracts import DatasetRow, ResolvedPaths, UserError
from runtime.derive.layout import (
    FRONT,
    MINUTE_NS,
    SCHEMAS,
    SESSIONS,
    TABLES,
    TS_NS,
    check_series,
    partition_file,
)
from runtime.ingest.databento import partition_path
from runtime.ingest.roll import is_outright
from runtime.ingest.sessions import cme_equity_sessions
from runtime.storage.atomic import atomic_write_parquet
from runtime.storage.registry import Registry, upsert_rows, utcnow

#: bump when the output of the SQL below changes for the same input: every date is then rebuilt once
BUILDER_VERSION = "derive-1"
#: canonical rows per DuckDB batch: bounds peak memory whatever the span (~300k trades/day -> ~20 trade dates per
#: batch, ~0.8 GB peak RSS at one month and at one year alike; 12M rows peaked at 1.3 GB for no measurable speed)
BATCH_ROWS = 6_000_000
_MANIFEST_KEY = ("dataset_id", "table_name", "session", "series", "trade_date")


@dataclass(frozen=True)
class DeriveParams:
    """Parameters that change derived output (hashed into every manifest row).

    big_trade_floor: big_trade_events keeps every print/sweep with size >= this many contracts. A low floor keeps
    the table small (about 1 row per 5 trades at 5 lots) while any interactive threshold or percentile above it
    is answered from the table alone; session_stats keeps the counts of all events so percentiles stay exact.
    """

    big_trade_floor: int = 10

    def __post_init__(self) -> None:
        if int(self.big_trade_floor) < 1:
            raise ValueError("big_trade_floor must be >= 1 contract")

    def params_hash(self, rth_start: str, rth_end: str) -> str:
        doc = {"builder": BUILDER_VERSION, "rth": [rth_start, rth_end], **asdict(self)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeriveReport:
    """What one build_derived call did (the CLI prints `describe_report`)."""

    dataset_id: str
    series: str
    sessions: tuple[str, ...]
    build_id: str
    params_hash: str
    built: tuple[dt.date, ...]
    up_to_date: tuple[dt.date, ...]
    source_rows: int  # canonical rows in the partitions read (every contract: what the scan processed)
    trades: int = 0  # trades of the series in the widest session built (FULL, else RTH)
    rows: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def trades_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Source:
    """One trade date to build: its canonical file, partition version and contract."""

    trade_date: dt.date
    path: Path
    version: str
    ingest_ids: tuple[str, ...]
    rows: int
    symbol: str

    @property
    def source_version(self) -> str:
        return f"{self.version}@{self.symbol}"


# ---- planning --------------------------------------------------------------------------------------------


def _ids(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    return tuple(json.loads(value)) if isinstance(value, str) else tuple(value)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def plan_sources(
    ds: DatasetRow,
    paths: ResolvedPaths,
    reg: Registry,
    series: str = FRONT,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[_Source]:
    """Canonical partitions in [start, end] with the contract to take from each (registry only, no data read)."""
    series = check_series(series)
    where, args = "dataset_id = ?", [ds.dataset_id]
    if start is not None:
        where, args = where + " AND part_date >= ?", [*args, start]
    if end is not None:
        where, args = where + " AND part_date <= ?", [*args, end]
    with reg.connect(read_only=True) as con:  # one short read: the registry lock is shared with ingest
        parts = _rows(
            con,
            f"SELECT part_date, version, ingest_ids, rows FROM partitions WHERE {where} ORDER BY part_date",
            args,
        )
        cov = _rows(
            con, f"SELECT date, symbol FROM coverage WHERE {where.replace('part_date', 'date')}", args
        )
        rolls = _rows(
            con,
            f"SELECT trade_date, symbol FROM roll_schedule WHERE {where.replace('part_date', 'trade_date')}",
            args,
        )
    traded: dict[dt.date, set[str]] = {}
    for r in cov:
        traded.setdefault(r["date"], set()).add(r["symbol"])
    front = {r["trade_date"]: r["symbol"] for r in rolls}
    out: list[_Source] = []
    for p in parts:
        day = p["part_date"]
        if series == FRONT:
            sym = front.get(day)
            if sym is None:
                outrights = sorted(s for s in traded.get(day, ()) if is_outright(s))
                if len(outrights) != 1:
                    raise UserError(
                        f"{ds.dataset_id}: no roll_schedule row for trade date {day} and "
                        f"{len(outrights)} contracts traded ({', '.join(outrights) or 'none'}); set "
                        f"{dataset_cell(ds, 'roll_rule')} roll_rule (volume or calendar), re-export the workbook and run "
                        "`backtest ingest databento` again, or derive one contract with --series"
                    )
                sym = outrights[0]
        else:
            if series not in traded.get(day, ()):
                continue
            sym = series
        if not is_outright(sym):
            raise UserError(f"{ds.dataset_id}: contract {sym!r} for {day} is not an ES quarterly outright")
        src = partition_path(paths, ds, day)
        if not src.is_file():
            raise UserError(
                f"{ds.dataset_id}: canonical partition {src} is in the registry but missing on disk; "
                "run `backtest ingest databento` again"
            )
        out.append(_Source(day, src, str(p["version"]), _ids(p["ingest_ids"]), int(p["rows"] or 0), sym))
    if series != FRONT and not out:
        raise UserError(f"{ds.dataset_id}: contract {series} has no trades in the requested dates")
    return out


def _current(
    reg: Registry,
    ds: DatasetRow,
    series: str,
    sessions: Sequence[str],
    params_hash: str,
    sources: Sequence[_Source],
    derived_dir: Path,
) -> set[dt.date]:
    """Dates whose manifest rows (every table, every requested session) match source, contract and params."""
    if not sources:
        return set()
    rows = reg.query(
        "SELECT table_name, session, trade_date, source_version, params_hash, path FROM derived_manifests "
        "WHERE dataset_id = ? AND series = ? AND trade_date BETWEEN ? AND ?",
        [ds.dataset_id, series, sources[0].trade_date, sources[-1].trade_date],
    )
    have = {(r["table_name"], r["session"], r["trade_date"]): r for r in rows}
    ok = set()
    for s in sources:
        good = True
        for table in TABLES:
            for sess in sessions:
                m = have.get((table, sess, s.trade_date))
                if (
                    m is None
                    or m["source_version"] != s.source_version
                    or m["params_hash"] != params_hash
                    or not (derived_dir / m["path"]).is_file()
                ):
                    good = False
                    break
            if not good:
                break
        if good:
            ok.add(s.trade_date)
    return ok


def _batches(sources: Sequence[_Source], budget: int = BATCH_ROWS) -> Iterable[list[_Source]]:
    batch: list[_Source] = []
    rows = 0
    for s in sources:
        if batch and rows + s.rows > budget:
            yield batch
            batch, rows = [], 0
        batch.append(s)
        rows += s.rows
    if batch:
        yield batch


# ---- the SQL ---------------------------------------------------------------------------------------------

_SESSION_FILTER = {"FULL": "TRUE", "RTH": "in_rth"}


def _sql_fine() -> str:
    """Per (trade date, minute, price, in_rth): volume by side, trade count, first/last trade (k and ts)."""
    return """
        CREATE OR REPLACE TEMP TABLE fine AS
        SELECT trade_date, ts_ns // 60000000000 AS minute, price, in_rth,
               sum(CASE WHEN side = -1 THEN size ELSE 0 END)::BIGINT AS bid,
               sum(CASE WHEN side = 1 THEN size ELSE 0 END)::BIGINT AS ask,
               sum(size)::BIGINT AS vol,
               count(*)::BIGINT AS n,
               min(k) AS k0, max(k) AS k1, min(ts_ns) AS t0, max(ts_ns) AS t1
        FROM src
        GROUP BY ALL
    """


def _sql_bars(session: str) -> str:
    cond = _SESSION_FILTER[session]
    return f"""
        CREATE OR REPLACE TEMP TABLE bars_{session} AS
        SELECT f.trade_date, f.minute * {MINUTE_NS} AS ts, any_value(sel.symbol) AS symbol,
               arg_min(f.price, f.k0) AS open, max(f.price) AS high, min(f.price) AS low,
               arg_max(f.price, f.k1) AS close,
               sum(f.vol)::BIGINT AS volume, sum(f.ask)::BIGINT AS buy_volume,
               sum(f.bid)::BIGINT AS sell_volume, sum(f.n)::BIGINT AS n_trades,
               sum(f.price * f.vol) / nullif(sum(f.vol), 0) AS vwap,
               min(f.t0) AS t0, max(f.t1) AS t1
        FROM fine f JOIN sel ON f.trade_date = sel.trade_date
        WHERE {cond}
        GROUP BY f.trade_date, f.minute
    """


def _symbol_filter(sources: Sequence[_Source]) -> str:
    """WHERE clause picking each date's contract (symbols pass the ES[HMUZ]d check, dates are ISO: no user text).

    Runs of consecutive batch dates with one contract become one date range (the batch reads only its own
    files, so a range is exact). A plain range filter, not a join or a long IN list (DuckDB turns those into
    joins), so the rows stay in file order: sorted by ts_event, per ingest.
    """
    runs: list[tuple[str, dt.date, dt.date]] = []
    for s in sources:
        if not is_outright(s.symbol):
            raise ValueError(f"not an ES contract: {s.symbol!r}")
        if runs and runs[-1][0] == s.symbol:
            runs[-1] = (s.symbol, runs[-1][1], s.trade_date)
        else:
            runs.append((s.symbol, s.trade_date, s.trade_date))
    return " OR ".join(
        f"(symbol = '{sym}' AND trade_date BETWEEN DATE '{lo.isoformat()}' AND DATE '{hi.isoformat()}')"
        for sym, lo, hi in runs
    )


def _load_source(con: duckdb.DuckDBPyConnection, sources: Sequence[_Source], rth_only: bool) -> pa.Table:
    """The batch's trades (needed columns only) in trade order, with `k` (position) and `dup` (neighbour) columns.

    Trade order = trade_date, ts_event, sequence, position in the file. Partitions are written sorted by ts_event
    (ingest) and a plain filter keeps that order, so usually this only checks it (vectorised, O(n)) and sorts
    only if the check fails. Then k = the row position is an exact, cheap BIGINT key for "first/last trade".
    dup = the record shares its ts_event with the previous or next record of the same trade date, i.e. it belongs
    to a multi-record aggressor event (or to two aggressors stamped in the same nanosecond; grouping by side
    later separates those): one neighbour comparison instead of a SQL window, which would sort every trade again.
    """
    raw = con.read_parquet([str(s.path) for s in sources], file_row_number=True)
    raw.create_view("raw")
    where = f"({_symbol_filter(sources)})" + (" AND in_rth" if rth_only else "")
    tbl = con.sql(
        "SELECT trade_date, epoch_ns(ts_event) AS ts_ns, in_rth, price, size::BIGINT AS size, side, sequence, "
        f"file_row_number AS rn FROM raw WHERE {where}"
    ).to_arrow_table()
    day = tbl.column("trade_date").cast(pa.int32()).to_numpy()
    ts = tbl.column("ts_ns").to_numpy()
    seq = tbl.column("sequence").to_numpy()
    rn = tbl.column("rn").to_numpy()
    same_day = day[1:] == day[:-1]
    same_ts = same_day & (ts[1:] == ts[:-1])
    in_order = bool(
        np.all(
            (day[1:] > day[:-1])
            | (same_day & (ts[1:] > ts[:-1]))
            | (same_ts & ((seq[1:] > seq[:-1]) | ((seq[1:] == seq[:-1]) & (rn[1:] > rn[:-1]))))
        )
    )
    if not in_order:  # e.g. equal ts_event delivered out of sequence: sort rather than trust the file
        order = np.lexsort((rn, seq, ts, day))
        tbl = tbl.take(pa.array(order))
        day, ts = day[order], ts[order]
        same_ts = (day[1:] == day[:-1]) & (ts[1:] == ts[:-1])
    dup = np.zeros(len(ts), dtype=bool)
    dup[1:] |= same_ts
    dup[:-1] |= same_ts
    tbl = tbl.append_column("k", pa.array(np.arange(len(ts), dtype=np.int64)))
    return tbl.append_column("dup", pa.array(dup))


_SQL_GROUPS = """
    CREATE OR REPLACE TEMP TABLE grp AS
    SELECT trade_date, ts_ns, side, bool_or(in_rth) AS in_rth, count(*)::BIGINT AS n,
           sum(size)::BIGINT AS size, sum(price * size) / nullif(sum(size), 0) AS price,
           min(price) AS min_price, max(price) AS max_price
    FROM cand WHERE dup
    GROUP BY trade_date, ts_ns, side
"""


def _sql_events(floor: int) -> str:
    """Every stored big-trade row of the batch (FULL), with in_rth so RTH is a plain filter of it.

    Three kinds of rows: single-record events (kind 'print'), multi-record aggressor events (kind 'sweep', size =
    sum of fills, price = size-weighted), and the fills of those sweeps that alone reach the floor (kind 'print',
    sweep_fill true), so 'print' mode sees every canonical record >= floor and 'sweep' mode every event.
    """
    f = int(floor)
    return f"""
        CREATE OR REPLACE TEMP TABLE events AS
        SELECT e.trade_date, e.ts_ns AS ts_event, sel.symbol, e.price, e.min_price, e.max_price, e.size,
               e.side, e.n_fills, e.kind, e.sweep_fill, e.in_rth
        FROM (
            SELECT trade_date, ts_ns, side, in_rth, price, price AS min_price, price AS max_price, size,
                   1 AS n_fills, 'print' AS kind, FALSE AS sweep_fill, k AS o
            FROM cand WHERE NOT dup AND size >= {f}
            UNION ALL
            SELECT trade_date, ts_ns, side, in_rth, price, min_price, max_price, size,
                   n AS n_fills, CASE WHEN n > 1 THEN 'sweep' ELSE 'print' END, FALSE, -1
            FROM grp WHERE size >= {f}
            UNION ALL
            SELECT c.trade_date, c.ts_ns, c.side, c.in_rth, c.price, c.price, c.price, c.size, 1, 'print', TRUE,
                   c.k
            FROM cand c JOIN grp g ON c.trade_date = g.trade_date AND c.ts_ns = g.ts_ns AND c.side = g.side
            WHERE c.dup AND g.n > 1 AND c.size >= {f}
        ) e JOIN sel ON e.trade_date = sel.trade_date
        ORDER BY e.trade_date, e.ts_ns, e.side, e.o
    """


def _sql_stats(session: str) -> str:
    """Per date: trade counts and volumes, first/last trade, and the number of aggressor events of any size."""
    cond = _SESSION_FILTER[session]
    return f"""
        WITH b AS (
            SELECT trade_date, sum(n_trades)::BIGINT AS n_trades, sum(volume)::BIGINT AS volume,
                   sum(buy_volume)::BIGINT AS buy_volume, sum(sell_volume)::BIGINT AS sell_volume,
                   min(t0) AS first_ns, max(t1) AS last_ns
            FROM bars_{session} GROUP BY trade_date),
        g AS (SELECT trade_date, sum(n - 1)::BIGINT AS extra FROM grp WHERE {cond} GROUP BY trade_date)
        SELECT sel.trade_date, sel.symbol, coalesce(b.n_trades, 0) AS n_trades, coalesce(b.volume, 0) AS volume,
               coalesce(b.buy_volume, 0) AS buy_volume, coalesce(b.sell_volume, 0) AS sell_volume,
               b.first_ns, b.last_ns, coalesce(b.n_trades, 0) - coalesce(g.extra, 0) AS n_events
        FROM sel LEFT JOIN b ON b.trade_date = sel.trade_date LEFT JOIN g ON g.trade_date = sel.trade_date
        ORDER BY sel.trade_date
    """


def _ts(table: pa.Table, *names: str) -> pa.Table:
    """int64 UTC ns columns -> timestamp[ns, UTC] (DuckDB hands back plain integers: no unit guesswork)."""
    for name in names:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.cast(table.column(name), pa.int64()).cast(TS_NS))
    return table


def _with_session(table: pa.Table, session: str, schema: pa.Schema) -> pa.Table:
    table = table.add_column(0, "session", pa.array([session] * table.num_rows, pa.string()))
    return table.select(schema.names).cast(schema)


def _session_windows(days: Sequence[dt.date], rth_start: str, rth_end: str) -> dict[dt.date, tuple[Any, ...]]:
    """CME calendar per trade date: FULL segments, RTH window, early-close flag."""
    cal = {s.trade_date: s for s in cme_equity_sessions(min(days), max(days), rth_start, rth_end)}
    return {d: cal[d] for d in days if d in cal}  # type: ignore[misc]


def _stats_table(raw: pa.Table, session: str, calendar: Mapping[dt.date, Any], floor: int) -> pa.Table:
    """session_stats rows: data counts from SQL + the session's windows from the CME calendar."""
    d = raw.to_pydict()
    opens, closes, seg_o, seg_c, early = [], [], [], [], []
    for i, day in enumerate(d["trade_date"]):
        s = calendar.get(day)
        if s is None:  # not a CME trade date in the calendar: fall back to the data's own first/last minute
            lo = d["first_ns"][i] // MINUTE_NS * MINUTE_NS if d["first_ns"][i] is not None else 0
            hi = (d["last_ns"][i] // MINUTE_NS + 1) * MINUTE_NS if d["last_ns"][i] is not None else lo
            segs, is_early = [(lo, hi)], False
        elif session == "FULL":
            segs, is_early = list(s.segments), bool(s.early_close)
        else:
            segs = [(s.rth_open_ns, s.rth_close_ns)] if s.rth_open_ns < s.rth_close_ns else []
            is_early = bool(s.early_close)
            if not segs:
                opens.append(s.rth_open_ns)
                closes.append(s.rth_close_ns)
                seg_o.append([])
                seg_c.append([])
                early.append(is_early)
                continue
        opens.append(segs[0][0])
        closes.append(segs[-1][1])
        seg_o.append([a for a, _ in segs])
        seg_c.append([b for _, b in segs])
        early.append(is_early)
    n = raw.num_rows
    ts_list = pa.list_(pa.field("item", TS_NS, nullable=False))
    cols = {
        "session": pa.array([session] * n, pa.string()),
        "trade_date": raw.column("trade_date"),
        "symbol": raw.column("symbol"),
        "open_ts": pa.array(opens, pa.int64()).cast(TS_NS),
        "close_ts": pa.array(closes, pa.int64()).cast(TS_NS),
        "segment_open": pa.array(seg_o, pa.list_(pa.int64())).cast(ts_list),
        "segment_close": pa.array(seg_c, pa.list_(pa.int64())).cast(ts_list),
        "first_trade_ts": pc.cast(raw.column("first_ns"), pa.int64()).cast(TS_NS),
        "last_trade_ts": pc.cast(raw.column("last_ns"), pa.int64()).cast(TS_NS),
        "n_trades": raw.column("n_trades"),
        "volume": raw.column("volume"),
        "buy_volume": raw.column("buy_volume"),
        "sell_volume": raw.column("sell_volume"),
        "n_events": raw.column("n_events"),
        "early_close": pa.array(early, pa.bool_()),
        "big_trade_floor": pa.array([floor] * n, pa.int32()),
    }
    schema = SCHEMAS["session_stats"]
    return pa.table(cols).cast(schema)


def derive_tables(
    sources: Sequence[_Source],
    sessions: Sequence[str],
    params: DeriveParams,
    rth_start: str = "08:30",
    rth_end: str = "15:00",
    threads: int | None = None,
) -> dict[tuple[str, str], pa.Table]:
    """Every derived table for the given trade dates, as Arrow tables keyed by (table, session).

    Pure with respect to the registry and DATA_ROOT: reads only the canonical files named in `sources`.
    """
    return dict(iter_derived_tables(sources, sessions, params, rth_start, rth_end, threads))


def iter_derived_tables(
    sources: Sequence[_Source],
    sessions: Sequence[str],
    params: DeriveParams,
    rth_start: str = "08:30",
    rth_end: str = "15:00",
    threads: int | None = None,
) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """derive_tables as a stream: each table is yielded as soon as it is computed, so the caller can write it
    while DuckDB works on the next one."""
    if not sources:
        return
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        sel = pa.table(
            {
                "trade_date": pa.array([s.trade_date for s in sources], pa.date32()),
                "symbol": pa.array([s.symbol for s in sources], pa.string()),
            }
        )
        con.register("sel", sel)
        src = _load_source(con, sources, rth_only="FULL" not in sessions)
        con.register("src", src)
        con.execute(_sql_fine())
        floor = params.big_trade_floor
        cand = src.filter(pc.or_(src.column("dup"), pc.greater_equal(src.column("size"), floor)))
        con.register(
            "cand", cand.select(["trade_date", "ts_ns", "side", "in_rth", "price", "size", "k", "dup"])
        )
        con.execute(_SQL_GROUPS)
        con.execute(_sql_events(params.big_trade_floor))
        events = _ts(con.sql("SELECT * FROM events").to_arrow_table(), "ts_event")
        calendar = _session_windows([s.trade_date for s in sources], rth_start, rth_end)
        for session in sessions:
            cond = _SESSION_FILTER[session]
            con.execute(_sql_bars(session))
            bars = con.sql(
                f"SELECT trade_date, ts, symbol, open, high, low, close, volume, buy_volume, sell_volume, "
                f"n_trades, vwap FROM bars_{session} ORDER BY trade_date, ts"
            ).to_arrow_table()
            yield ("bars_1m", session), _with_session(_ts(bars, "ts"), session, SCHEMAS["bars_1m"])
            fp = con.sql(
                f"""SELECT trade_date, minute * {MINUTE_NS} AS ts, price, sum(bid)::BIGINT AS bid_volume,
                           sum(ask)::BIGINT AS ask_volume, sum(vol - bid - ask)::BIGINT AS other_volume,
                           sum(n)::BIGINT AS n_trades
                    FROM fine WHERE {cond} GROUP BY trade_date, minute, price
                    ORDER BY trade_date, minute, price"""
            ).to_arrow_table()
            yield (
                ("footprint_base_1m", session),
                _with_session(_ts(fp, "ts"), session, SCHEMAS["footprint_base_1m"]),
            )
            cvd = con.sql(
                f"""SELECT trade_date, ts, (buy_volume - sell_volume)::BIGINT AS delta,
                           sum(buy_volume - sell_volume) OVER (PARTITION BY trade_date ORDER BY ts
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)::BIGINT AS cvd
                    FROM bars_{session} ORDER BY trade_date, ts"""
            ).to_arrow_table()
            yield ("cvd_1m", session), _with_session(_ts(cvd, "ts"), session, SCHEMAS["cvd_1m"])
            ev = events if session == "FULL" else events.filter(events.column("in_rth"))
            yield ("big_trade_events", session), _with_session(ev, session, SCHEMAS["big_trade_events"])
            stats = con.sql(_sql_stats(session)).to_arrow_table()
            yield ("session_stats", session), _stats_table(stats, session, calendar, params.big_trade_floor)
    finally:
        con.close()


# ---- writing ---------------------------------------------------------------------------------------------


def _split_by_date(table: pa.Table, days: Sequence[dt.date]) -> dict[dt.date, pa.Table]:
    """Slices of a trade_date-sorted table, one per requested date (empty slices keep the schema)."""
    col = table.column("trade_date").to_numpy().astype("datetime64[D]")
    keys = np.array(days, dtype="datetime64[D]")
    lo = np.searchsorted(col, keys, side="left")
    hi = np.searchsorted(col, keys, side="right")
    return {d: table.slice(int(a), int(b - a)) for d, a, b in zip(days, lo, hi, strict=True)}


def _staging_for(paths: ResolvedPaths) -> Path | None:
    """The staging dir when it is on the derived dir's volume (a rename is then atomic), else None, which makes
    atomic_write_parquet write its temp file beside the target (DERIVED_DIR may be on another drive)."""
    staging = paths.staging_dir / "derive"
    staging.mkdir(parents=True, exist_ok=True)
    paths.derived_dir.mkdir(parents=True, exist_ok=True)
    return staging if staging.stat().st_dev == paths.derived_dir.stat().st_dev else None


def _writer_pool() -> ThreadPoolExecutor:
    """Parquet encoding releases the GIL: writes overlap with the next DuckDB query."""
    return ThreadPoolExecutor(
        max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="derive-write"
    )


def build_derived(
    ds: DatasetRow,
    paths: ResolvedPaths,
    reg: Registry,
    *,
    sessions: Sequence[str] = ("RTH", "FULL"),
    start: dt.date | None = None,
    end: dt.date | None = None,
    rebuild: bool = False,
    series: str = FRONT,
    params: DeriveParams = DeriveParams(),
) -> DeriveReport:
    """Build (incrementally) every derived table of one dataset and series for the trade dates in [start, end].

    Only dates whose canonical partition, contract or params changed are rebuilt (all of them with rebuild).
    """
    t0 = time.perf_counter()
    try:
        series = check_series(series)
    except ValueError as exc:
        raise UserError(f"derive --series: {exc}") from None
    unknown = sorted(set(sessions) - set(SESSIONS))
    if unknown:
        raise UserError(f"derive --session {unknown[0]}: use RTH or FULL")
    sessions = tuple(s for s in SESSIONS if s in set(sessions))
    if not sessions:
        raise UserError("derive: choose at least one session (RTH or FULL)")
    if ds.dataset_type != "intraday_trades":
        raise UserError(f"{ds.dataset_id} is a {ds.dataset_type} dataset; derive works on intraday_trades")
    rth_start, rth_end = ds.rth_hours
    phash = params.params_hash(rth_start, rth_end)
    build_id = f"{ds.dataset_id}-{series}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    sources = plan_sources(ds, paths, reg, series, start, end)
    done = set() if rebuild else _current(reg, ds, series, sessions, phash, sources, paths.derived_dir)
    todo = [s for s in sources if s.trade_date not in done]
    rows: dict[str, int] = dict.fromkeys(TABLES, 0)
    n_source = n_trades = 0
    tmp_dir = _staging_for(paths)
    for batch in _batches(todo):
        tb = time.perf_counter()
        days = [s.trade_date for s in batch]
        manifest_meta: list[tuple[str, str, dt.date, int, Path]] = []
        with _writer_pool() as pool:
            pending = []
            for (table, session), tbl in iter_derived_tables(batch, sessions, params, rth_start, rth_end):
                if table == "session_stats" and session == sessions[-1]:
                    n_trades += int(pc.sum(tbl.column("n_trades")).as_py() or 0)
                for day, piece in _split_by_date(tbl, days).items():
                    target = partition_file(paths.derived_dir, ds.dataset_id, series, table, session, day)
                    pending.append(pool.submit(atomic_write_parquet, piece, target, tmp_dir=tmp_dir))
                    manifest_meta.append((table, session, day, piece.num_rows, target))
                    rows[table] += piece.num_rows
            for f in pending:
                f.result()  # re-raise any write error before the registry hears of this batch
        seconds = (time.perf_counter() - tb) / len(batch)
        built_at = utcnow()
        by_day = {s.trade_date: s for s in batch}
        manifest = [
            {
                "build_id": build_id,
                "dataset_id": ds.dataset_id,
                "table_name": table,
                "session": session,
                "series": series,
                "trade_date": day,
                "source_version": by_day[day].source_version,
                "source_ingest_ids": list(by_day[day].ingest_ids),
                "params_hash": phash,
                "rows": n,
                "path": target.relative_to(paths.derived_dir).as_posix(),
                "built_at": built_at,
                "seconds": seconds,
            }
            for table, session, day, n, target in manifest_meta
        ]
        with reg.transaction() as con:  # registry rows last
            upsert_rows(con, "derived_manifests", _MANIFEST_KEY, manifest)
        n_source += sum(s.rows for s in batch)
    return DeriveReport(
        dataset_id=ds.dataset_id,
        series=series,
        sessions=sessions,
        build_id=build_id,
        params_hash=phash,
        built=tuple(s.trade_date for s in todo),
        up_to_date=tuple(sorted(done)),
        source_rows=n_source,
        trades=n_trades,
        rows=rows,
        seconds=time.perf_counter() - t0,
    )


def describe_report(r: DeriveReport) -> str:
    """One line for the CLI."""
    what = f"{r.dataset_id} {r.series} {'/'.join(r.sessions)}"
    if not r.built:
        return f"{what}: up to date ({len(r.up_to_date)} trade dates, nothing rebuilt)"
    first, last = min(r.built), max(r.built)
    return (
        f"{what}: built {len(r.built)} trade dates {first}..{last}, {r.trades:,} trades of the series "
        f"({r.source_rows:,} canonical rows read) in {r.seconds:.1f} s "
        f"({r.trades_per_second / 1e6:.1f} M rows/s; {len(r.up_to_date)} up to date); "
        + ", ".join(f"{t} {n:,} rows" for t, n in r.rows.items())
    )
