"""`backtest status`: what is stored, read from the registry (pure queries + a rich renderer)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from runtime.contracts import ConfigSnapshot, ResolvedPaths
from runtime.storage.registry import Registry


@dataclass(frozen=True)
class DatasetStatus:
    dataset_id: str
    dataset_type: str
    source_type: str
    enabled: bool
    n_ingests: int = 0
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    n_dates: int = 0
    rows: int = 0
    n_revisions: int = 0
    excluded_spreads: int = 0
    outside_session: int = 0
    gaps: tuple[dt.date, ...] = ()
    roll_runs: tuple[tuple[str, dt.date, dt.date], ...] = ()
    builds: tuple[tuple[str, str, int, dt.date | None, dt.date | None], ...] = ()


@dataclass(frozen=True)
class StatusReport:
    profile: str
    paths: ResolvedPaths
    snapshot_hash: str
    schema_version: int
    datasets: tuple[DatasetStatus, ...] = field(default_factory=tuple)


def _one(reg_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return reg_rows[0] if reg_rows else {}


def collect_status(snap: ConfigSnapshot, paths: ResolvedPaths, reg: Registry) -> StatusReport:
    from runtime.ingest.sessions import cme_equity_sessions

    out = []
    for d in snap.datasets:
        ing = _one(
            reg.query(
                "SELECT count(*) n, coalesce(sum(n_excluded_spreads),0) spreads, "
                "coalesce(sum(n_outside_session),0) outside FROM ingests WHERE dataset_id = ?",
                [d.dataset_id],
            )
        )
        cov = _one(
            reg.query(
                "SELECT min(date) first, max(date) last, count(DISTINCT date) n, coalesce(sum(rows),0) rows "
                "FROM coverage WHERE dataset_id = ?",
                [d.dataset_id],
            )
        )
        rev = _one(reg.query("SELECT count(*) n FROM revisions WHERE dataset_id = ?", [d.dataset_id]))
        gaps: tuple[dt.date, ...] = ()
        runs: tuple[tuple[str, dt.date, dt.date], ...] = ()
        if d.dataset_type == "intraday_trades" and cov.get("first"):
            have = {
                r["date"]
                for r in reg.query("SELECT DISTINCT date FROM coverage WHERE dataset_id = ?", [d.dataset_id])
            }
            expected = [s.trade_date for s in cme_equity_sessions(cov["first"], cov["last"])]
            gaps = tuple(x for x in expected if x not in have)
            roll = reg.query(
                "SELECT trade_date, symbol FROM roll_schedule WHERE dataset_id = ? ORDER BY trade_date",
                [d.dataset_id],
            )
            runs = tuple(_runs(roll))
        builds = tuple(
            (r["table_name"], r["session"], int(r["n"]), r["first"], r["last"])
            for r in reg.query(
                "SELECT table_name, session, count(*) n, min(trade_date) first, max(trade_date) last "
                "FROM derived_manifests WHERE dataset_id = ? AND series = 'front' GROUP BY 1, 2 ORDER BY 1, 2",
                [d.dataset_id],
            )
        )
        out.append(
            DatasetStatus(
                dataset_id=d.dataset_id,
                dataset_type=d.dataset_type,
                source_type=d.source_type,
                enabled=d.enabled,
                n_ingests=int(ing.get("n") or 0),
                first_date=cov.get("first"),
                last_date=cov.get("last"),
                n_dates=int(cov.get("n") or 0),
                rows=int(cov.get("rows") or 0),
                n_revisions=int(rev.get("n") or 0),
                excluded_spreads=int(ing.get("spreads") or 0),
                outside_session=int(ing.get("outside") or 0),
                gaps=gaps,
                roll_runs=runs,
                builds=builds,
            )
        )
    return StatusReport(paths.profile, paths, snap.content_hash, reg.schema_version(), tuple(out))


def _runs(roll: list[dict[str, Any]]) -> list[tuple[str, dt.date, dt.date]]:
    runs: list[tuple[str, dt.date, dt.date]] = []
    for r in roll:
        if runs and runs[-1][0] == r["symbol"]:
            runs[-1] = (r["symbol"], runs[-1][1], r["trade_date"])
        else:
            runs.append((r["symbol"], r["trade_date"], r["trade_date"]))
    return runs


def render_status(rep: StatusReport, console: Console) -> None:
    p = rep.paths
    t = Table(
        title=f"Profile '{rep.profile}'  (snapshot {rep.snapshot_hash[:8]}, registry schema v{rep.schema_version})"
    )
    t.add_column("path")
    t.add_column("location")
    for name in (
        "data_root",
        "duckdb_file",
        "raw_dir",
        "canonical_dir",
        "derived_dir",
        "feature_cache_dir",
        "runs_dir",
        "log_dir",
        "export_config_dir",
    ):
        t.add_row(name.upper(), str(getattr(p, name)))
    console.print(t)
    c = Table(title="Datasets")
    for col in (
        "dataset",
        "type",
        "source",
        "ingests",
        "first",
        "last",
        "dates",
        "rows",
        "revisions",
        "spreads excl.",
        "gaps vs CME",
    ):
        c.add_column(
            col,
            justify="right" if col in ("ingests", "dates", "rows", "revisions", "spreads excl.") else "left",
        )
    for d in rep.datasets:
        gaps = (
            "-"
            if d.dataset_type != "intraday_trades" or not d.first_date
            else (
                "none"
                if not d.gaps
                else f"{len(d.gaps)}: "
                + ", ".join(str(g) for g in d.gaps[:4])
                + (" ..." if len(d.gaps) > 4 else "")
            )
        )
        c.add_row(
            d.dataset_id + ("" if d.enabled else " (disabled)"),
            d.dataset_type,
            d.source_type,
            str(d.n_ingests),
            str(d.first_date or "-"),
            str(d.last_date or "-"),
            f"{d.n_dates:,}",
            f"{d.rows:,}",
            str(d.n_revisions),
            f"{d.excluded_spreads:,}" if d.dataset_type == "intraday_trades" else "-",
            gaps,
        )
    console.print(c)
    for d in rep.datasets:
        if d.roll_runs:
            r = Table(title=f"{d.dataset_id}: continuous front month (roll schedule)")
            for col in ("contract", "from", "to"):
                r.add_column(col)
            for sym, a, b in d.roll_runs:
                r.add_row(sym, str(a), str(b))
            console.print(r)
        if d.builds:
            b = Table(title=f"{d.dataset_id}: derived tables (continuous front month)")
            for col in ("table", "session", "dates", "first", "last"):
                b.add_column(col)
            for name, sess, n, first, last in d.builds:
                b.add_row(name, sess, str(n), str(first), str(last))
            console.print(b)
