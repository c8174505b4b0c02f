"""Validate a read workbook: types (reader), then per-row rules and cross-sheet references.

Every rule reports a CellError naming the cell and the fix; all problems are collected and reported at once.
Expression cells are type-checked by runtime.config.expressions (the DSL) as the last stage.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.names import py_name, rownum
from runtime.config.policies import (
    MISSING_POLICY_FIX,
    NORMALIZE_FIX,
    WINSORIZE_FIX,
    parse_missing_policy,
    parse_normalize,
    parse_winsorize,
)
from runtime.config.reader import RawWorkbook, cell_name, check_structure, coerce_rows
from runtime.config.schema import BY_NAME, NAMESPACE_SHEETS, SHEETS, Col
from runtime.contracts import RTH_HOURS, CellError
from runtime.storage.paths import PATH_COLUMNS, foreign_path_reason, resolve_paths, unusable_reason

Rows = dict[str, list[dict[str, Any]]]
DSL_KEYWORDS = {"and", "or", "not", "true", "false", "x"}
_XLSX = re.compile(r"\.(xlsx|xlsm)(#.+)?$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Ctx:
    """What rules need besides the rows: where the workbook's project is, and the profile override."""

    project_root: Path
    profile: str | None = None


class Reporter:
    """Collects CellErrors for a sheet's row and column by name.

    `broken` holds sheets whose structure failed (missing, bad header): a problem that only exists because
    such a sheet could not be read is counted against its root error (`follow`) instead of being listed.
    """

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.errors: list[CellError] = []
        self.broken = broken
        self.follow: dict[str, int] = {}
        self._index = {s.name: i for i, s in enumerate(SHEETS)}

    def at(self, sheet: str, row: Mapping[str, Any] | int, column: str, message: str, fix: str = "") -> None:
        spec = BY_NAME[sheet]
        r = row if isinstance(row, int) else rownum(row)  # a dict row or a typed row
        j = spec.headers.index(column) + 1
        self.errors.append(CellError(self._index[sheet], r, j, sheet, cell_name(j, r), message, fix))

    def follows(self, sheet: str, n: int = 1) -> None:
        """Count `n` problems that follow from broken sheet `sheet` (not listed, summarised on its root)."""
        self.follow[sheet] = self.follow.get(sheet, 0) + n


#: sheets whose rows build the expression catalog and its decision uses: when one is broken, expression
#: errors are follow-ons (every name it defines looks unknown)
CATALOG_SHEETS = (
    "DATASETS",
    "INSTRUMENTS",
    "FEATURE_LIBRARY",
    "ENGINEERED_FEATURES",
    "GATES",
    "SIGNAL_TEMPLATES",
    "STRATEGIES",
    "BACKTESTS",
)


def validate_workbook(
    raw: RawWorkbook, ctx: Ctx, extra_stages: tuple[Callable[[Rows, Reporter, Ctx], None], ...] = ()
) -> tuple[Rows, list[CellError]]:
    """All typed rows and all errors (empty list = valid), root causes first.

    Order: API keys and structure (a missing sheet, a bad header) first, then cell errors in sheet order.
    A problem that follows from a broken sheet is not listed; its root says "and N more that follow".
    """
    structure = check_structure(raw)
    roots = secrets_in(raw) + structure
    broken = frozenset(e.sheet for e in structure)
    rows: Rows = {}
    errors: list[CellError] = []
    for i, spec in enumerate(SHEETS):
        if spec.name in broken or spec.name not in raw.sheets:
            continue  # structurally broken: its rows are not trusted, later stages skip it
        typed, errs = coerce_rows(spec, raw.sheets[spec.name], i, raw.epoch)
        rows[spec.name] = typed
        for e in errs:  # a bad id is a root: every reference to the row follows from it
            (roots if spec.key and spec.headers[e.col - 1] == spec.key else errors).append(e)
    rep = Reporter(broken)
    for stage in (
        _unique_ids,
        _references,
        _namespace,
        _paths,
        _datasets,
        _instruments,
        _features,
        _strategies,
        _backtests,
        _params,
        _studies,
        _robustness,
        _reporting,
    ):
        stage(rows, rep, ctx)
    dsl_broken = [s for s in CATALOG_SHEETS if s in broken]
    for stage in extra_stages:
        if dsl_broken:  # run it to count what would follow, but list none of it
            scratch = Reporter()
            stage(rows, scratch, ctx)
            rep.follows(dsl_broken[0], len(scratch.errors))
        else:
            stage(rows, rep, ctx)
    errors.extend(rep.errors)
    return rows, _with_follow_ons(roots, rep.follow) + sorted(set(errors) - set(roots))


def _with_follow_ons(roots: list[CellError], follow: dict[str, int]) -> list[CellError]:
    """Root errors in order, each with "and N more that follow from it" when later checks depended on it."""
    import dataclasses

    out, done = [], set()
    for e in sorted(set(roots), key=lambda e: (e.row > 1, e)):
        n = follow.get(e.sheet, 0) if e.sheet not in done else 0
        done.add(e.sheet)
        if n:
            more = (
                f"and {n} more problem{'s' if n != 1 else ''} that follow from it (shown once this is fixed)"
            )
            e = dataclasses.replace(e, fix=f"{e.fix}; {more}" if e.fix else more)
        out.append(e)
    return out


# ---- generic ---------------------------------------------------------------------------------------

#: what an API key looks like: Databento's `db-` + 20 or more letters/digits (the only key this project uses)
API_KEY_RE = re.compile(r"(?<![A-Za-z0-9])db-[A-Za-z0-9]{20,}")


def secrets_in(raw: RawWorkbook) -> list[CellError]:
    """Every cell of every sheet (headers, extra columns and sheets of the user's own included) that holds
    what looks like an API key: it would end up in every snapshot, log and context pack. The key itself is
    never repeated in the message."""
    index = {s.name: i for i, s in enumerate(SHEETS)}
    out: list[CellError] = []
    for name, sheet in raw.sheets.items():
        for r, values in ((1, sheet.headers), *sheet.rows):
            for j, v in enumerate(values, start=1):
                if isinstance(v, str) and API_KEY_RE.search(v):
                    out.append(
                        CellError(
                            index.get(name, len(SHEETS) + sheet.index),
                            0,  # listed first, before structure and cell errors
                            j,
                            name,
                            cell_name(j, r),
                            "this cell holds what looks like a Databento API key (db-...); a key must never be "
                            "saved in the workbook (it would be copied into every snapshot)",
                            "delete it here and set the environment variable DATABENTO_API_KEY instead",
                        )
                    )
    return out


def _ids(rows: Rows, target: str) -> dict[str, dict]:
    sheet, col = target.split(".")
    return {r[col]: r for r in rows.get(sheet, []) if r.get(col) is not None}


def _suggest(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _unique_ids(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    for spec in SHEETS:
        for col in spec.cols:
            if not col.unique:
                continue
            seen: dict[Any, int] = {}
            for r in rows.get(spec.name, []):
                v = r.get(col.name)
                if v is None:
                    continue
                key = v.lower() if isinstance(v, str) else v
                if key in seen:
                    rep.at(
                        spec.name,
                        r,
                        col.name,
                        f"duplicate {col.name} '{v}' (also in row {seen[key]})",
                        "ids must be unique; rename one of them",
                    )
                else:
                    seen[key] = r["_row"]
    # OPTIMIZATION_PARAMS: one row per (study, scope, target, param)
    seen2: dict[tuple, int] = {}
    for r in rows.get("OPTIMIZATION_PARAMS", []):
        key = (r.get("study_id"), r.get("param_scope"), r.get("target_id"), r.get("param_name"))
        if None in key:
            continue
        if key in seen2:
            rep.at(
                "OPTIMIZATION_PARAMS",
                r,
                "param_name",
                f"parameter '{key[3]}' of {key[1]} '{key[2]}' is "
                f"listed twice in study '{key[0]}' (also row {seen2[key]})",
                "keep one row per parameter",
            )
        else:
            seen2[key] = r["_row"]


def _check_ref(
    rows: Rows, rep: Reporter, sheet: str, r: dict, col: Col, value: str, targets: tuple[str, ...]
) -> None:
    options: list[str] = []
    for t in targets:
        if t.split(".")[0] in rep.broken:
            rep.follows(t.split(".")[0])  # its ids could not be read: not a problem of this cell
            return
        ids = _ids(rows, t)
        if value in ids:
            return
        options.extend(ids)
    where = " or ".join(targets)
    rep.at(
        sheet,
        r,
        col.name,
        f"'{value}' is not a {where}",
        f"{_suggest(value, options)}use an existing id (known: {', '.join(sorted(options)[:12]) or 'none'})",
    )


def _references(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    for spec in SHEETS:
        for col in spec.cols:
            if not col.ref:
                continue
            for r in rows.get(spec.name, []):
                v = r.get(col.name)
                if v is None:
                    continue
                for item in v if isinstance(v, list) else [v]:
                    _check_ref(rows, rep, spec.name, r, col, item, col.ref)


def _namespace(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    """Features, engineered features and gates share the DSL's name space."""
    seen: dict[str, str] = {}  # id -> sheet that defined it first
    for sheet, col in NAMESPACE_SHEETS:
        for r in rows.get(sheet, []):
            v = r.get(col)
            if v is None:
                continue
            if v.lower() in DSL_KEYWORDS:
                rep.at(
                    sheet, r, col, f"'{v}' is a reserved word of the expression language", "pick another id"
                )
            elif seen.get(v, sheet) != sheet:
                rep.at(
                    sheet,
                    r,
                    col,
                    f"'{v}' is already used in {seen[v]}",
                    "features, engineered features and gates share one name space; rename one",
                )
            seen.setdefault(v, sheet)


# ---- PATHS -----------------------------------------------------------------------------------------


def _paths(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    if "PATHS" not in rows:
        return
    profiles = rows["PATHS"]
    if not profiles:
        rep.at("PATHS", 2, "Profile", "no PATHS profile defined", "add a profile row and set IsActive TRUE")
        return
    if ctx.profile is not None:
        chosen = [r for r in profiles if r.get("Profile") == ctx.profile]
        if not chosen:
            rep.at(
                "PATHS",
                profiles[0],
                "Profile",
                f"profile '{ctx.profile}' (from --profile) does not exist",
                f"use one of: {', '.join(str(r.get('Profile')) for r in profiles)}",
            )
            return
    else:
        active = [r for r in profiles if r.get("IsActive")]
        if len(active) == 0:
            rep.at(
                "PATHS",
                profiles[0],
                "IsActive",
                "no profile is active",
                "set IsActive TRUE on exactly one profile",
            )
            return
        if len(active) > 1:
            for r in active[1:]:
                rep.at(
                    "PATHS",
                    r,
                    "IsActive",
                    f"more than one active profile ({', '.join(a['Profile'] for a in active)})",
                    "set IsActive TRUE on exactly one profile",
                )
            return
        chosen = active
    prof = chosen[0]
    name = prof.get("Profile")
    bad = False
    for col in PATH_COLUMNS:
        v = prof.get(col)
        if v is None:
            continue
        reason = foreign_path_reason(str(v))
        if reason:
            bad = True
            rep.at(
                "PATHS",
                prof,
                col,
                f"profile '{name}' is active but {col} {reason}",
                "set IsActive FALSE on it and TRUE on a profile for this machine (or pass --profile)",
            )
    if bad:
        return
    paths = resolve_paths(str(name), prof, ctx.project_root)
    seen: set[str] = set()
    for col in PATH_COLUMNS:  # every folder of the profile, not only DATA_ROOT (siblings fail the same way)
        if col == "CODE_ROOT":
            continue
        target = getattr(paths, py_name(col))
        folder = target.parent if col == "DUCKDB_FILE" else target
        reason = unusable_reason(folder)
        if reason and reason not in seen:  # one report per cause (a bad DATA_ROOT breaks all below it)
            seen.add(reason)
            rep.at(
                "PATHS",
                prof,
                col,
                f"profile '{name}': {col} cannot be used here: {reason}",
                f"point {col} at a writable folder on this machine",
            )


# ---- DATASETS / INSTRUMENTS ------------------------------------------------------------------------


def _datasets(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    """Per-row DATASETS rules: by dataset type, by source type, then the availability lag."""
    for r in rows.get("DATASETS", []):
        dtype, stype = r.get("dataset_type"), r.get("source_type")
        if dtype == "daily_series":
            _daily_dataset(r, rep)
        elif dtype == "intraday_trades":
            _intraday_dataset(r, rep)
        if stype == "databento_api":
            _api_dataset(r, rep)
        _source_and_lag(r, rep)


def _daily_dataset(r: dict[str, Any], rep: Reporter) -> None:
    stype, keys = r.get("source_type"), r.get("canonical_partition_keys") or []
    src = r.get("source_path_or_id") or ""
    if stype not in (None, "xlsx"):
        rep.at(
            "DATASETS",
            r,
            "source_type",
            f"a daily_series comes from xlsx, not {stype}",
            "set source_type to xlsx",
        )
    if not r.get("date_col"):
        rep.at(
            "DATASETS",
            r,
            "date_col",
            "date_col is required for a daily_series",
            "enter the header of the date column in the source sheet",
        )
    if any(k != "year" for k in keys):
        rep.at(
            "DATASETS",
            r,
            "canonical_partition_keys",
            "a daily_series can be partitioned by year only",
            "enter year or leave blank",
        )
    if r.get("bar_frequency") == "tick":
        rep.at(
            "DATASETS",
            r,
            "bar_frequency",
            "a daily_series cannot have tick frequency",
            "use 1d, 1w or 1mo",
        )
    if stype == "xlsx" and src and not _XLSX.search(src):
        rep.at(
            "DATASETS",
            r,
            "source_path_or_id",
            f"'{src}' is not an .xlsx path",
            "write path/to/file.xlsx or path/to/file.xlsx#Sheet",
        )


def _intraday_dataset(r: dict[str, Any], rep: Reporter) -> None:
    stype, keys = r.get("source_type"), r.get("canonical_partition_keys") or []
    if stype not in (None, "databento_file", "databento_api"):
        rep.at(
            "DATASETS",
            r,
            "source_type",
            f"intraday_trades come from Databento, not {stype}",
            "use databento_file (DBN files) or databento_api",
        )
    if keys != ["trade_date"]:
        rep.at(
            "DATASETS",
            r,
            "canonical_partition_keys",
            "intraday trades are partitioned by trade_date",
            "enter trade_date",
        )
    if r.get("known_time_rule") not in (None, "realtime"):
        rep.at("DATASETS", r, "known_time_rule", "trades are known as they happen", "use realtime")
    if not r.get("roll_rule"):
        rep.at(
            "DATASETS",
            r,
            "roll_rule",
            "intraday trades need a roll rule for the continuous front month",
            "use volume (previous day's volume) or calendar",
        )
    if r.get("roll_rule") == "calendar" and r.get("roll_days_before_expiry") is None:
        rep.at(
            "DATASETS",
            r,
            "roll_days_before_expiry",
            "the calendar roll rule needs N business days",
            "enter e.g. 8 (ES rolls about 8 days before expiry)",
        )
    if not r.get("session_calendar"):
        rep.at(
            "DATASETS",
            r,
            "session_calendar",
            "intraday trades need a session calendar",
            "use CME_EQUITY",
        )
    if r.get("rth_start") and r.get("rth_end") and r["rth_start"] >= r["rth_end"]:
        rep.at("DATASETS", r, "rth_end", "rth_end must be after rth_start", "e.g. 08:30 to 15:00")


def _api_dataset(r: dict[str, Any], rep: Reporter) -> None:
    req = r.get("api_request_json")
    if req is None:
        rep.at(
            "DATASETS",
            r,
            "api_request_json",
            "a databento_api source needs its request",
            'enter {"dataset": "GLBX.MDP3", "schema": "trades", "symbols": ["ES.v.0"], '
            '"stype_in": "continuous", "start": "2024-01-02", "end": "2024-02-01"}',
        )
    else:
        missing = [k for k in ("dataset", "schema", "symbols", "start", "end") if k not in req]
        if missing:
            rep.at(
                "DATASETS",
                r,
                "api_request_json",
                f"request lacks {', '.join(missing)}",
                "add the missing keys",
            )
    if r.get("api_cost_cap_usd") is None:
        rep.at(
            "DATASETS",
            r,
            "api_cost_cap_usd",
            "a databento_api source needs a cost cap",
            "enter the most you accept to pay per download, in USD",
        )


def _source_and_lag(r: dict[str, Any], rep: Reporter) -> None:
    stype, src = r.get("source_type"), r.get("source_path_or_id") or ""
    if stype == "databento_file" and src and not re.search(r"\.dbn(\.zst)?$|\*", src):
        rep.at(
            "DATASETS",
            r,
            "source_path_or_id",
            f"'{src}' does not look like DBN files",
            "write a glob such as incoming/databento/*.trades.dbn.zst",
        )
    rule, lag = r.get("known_time_rule"), r.get("default_availability_lag_days")
    if rule in ("at_close", "after_close") and lag == 0:
        rep.at(
            "DATASETS",
            r,
            "default_availability_lag_days",
            f"a value known {rule.replace('_', ' ')} cannot drive a trade at that same close",
            "set 1 (usable from the next row)",
        )


def _instruments(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    for r in rows.get("INSTRUMENTS", []):
        if r.get("instrument_type") == "future":
            if not r.get("tick_size"):
                rep.at("INSTRUMENTS", r, "tick_size", "a future needs its tick size", "e.g. 0.25 for ES")
            if r.get("multiplier") in (None, 0):
                rep.at("INSTRUMENTS", r, "multiplier", "a future needs its multiplier", "e.g. 50 for ES")


# ---- features / strategies / backtests -------------------------------------------------------------


def _features(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    for sheet in ("FEATURE_LIBRARY", "ENGINEERED_FEATURES"):
        for r in rows.get(sheet, []):
            # one parser for the policy mini-syntax: the catalog builds its typed FeatureDef fields with it
            cells = [("missing_policy", parse_missing_policy, MISSING_POLICY_FIX)]
            if sheet == "FEATURE_LIBRARY":
                cells += [
                    ("winsorize", parse_winsorize, WINSORIZE_FIX),
                    ("normalize", parse_normalize, NORMALIZE_FIX),
                ]
            for column, parse, fix in cells:
                if r.get(column) is None:
                    continue
                try:
                    parse(r.get(column))
                except ValueError as e:
                    rep.at(sheet, r, column, str(e), fix)
    for r in rows.get("ENGINEERED_FEATURES", []):
        if r.get("eng_feature_id") and r["eng_feature_id"] in (r.get("input_feature_ids") or []):
            rep.at(
                "ENGINEERED_FEATURES",
                r,
                "input_feature_ids",
                "a feature cannot be its own input",
                "remove it from input_feature_ids",
            )


def _strategies(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    templates = _ids(rows, "SIGNAL_TEMPLATES.template_id")
    for r in rows.get("STRATEGIES", []):
        vals = r.get("position_values") or []
        bad = [v for v in vals if not _NUMBER.match(v)]
        if bad:
            rep.at("STRATEGIES", r, "position_values", f"'{bad[0]}' is not a number", "write e.g. -1,0,1")
            continue
        nums = {float(v) for v in vals}
        if r.get("position_mode") == "discrete" and not nums <= {-1.0, 0.0, 1.0}:
            rep.at(
                "STRATEGIES",
                r,
                "position_values",
                "discrete positions are -1, 0 and +1",
                "write a subset of -1,0,1 or use position_mode scaled",
            )
        t = templates.get(r.get("signal_template_id"))
        if t is not None:
            if t.get("supports_long_short") is False and -1.0 in nums and 1.0 in nums:
                rep.at(
                    "STRATEGIES",
                    r,
                    "position_values",
                    f"template {t['template_id']} does not support long and short",
                    "write 0,1 or -1,0",
                )
            if t.get("supports_flat") is False and 0.0 in nums:
                rep.at(
                    "STRATEGIES",
                    r,
                    "position_values",
                    f"template {t['template_id']} does not support flat",
                    "remove 0",
                )


def _backtests(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    from runtime.config.expressions import keyed, strategy_is_intraday

    strategies = keyed(rows, "STRATEGIES")
    for r in rows.get("BACKTESTS", []):
        s = strategies.get(r.get("strategy_id"))
        if r.get("frequency") == "1m" and s is not None and strategy_is_intraday(rows, s) is False:
            rep.at(
                "BACKTESTS",
                r,
                "frequency",
                f"frequency 1m needs 1-minute prices, but strategy {s['strategy_id']} trades "
                f"{s.get('instrument_id')}, whose prices are a daily series",
                "set frequency daily, or point the strategy at an instrument priced from intraday trades (e.g. ES)",
            )
        s, e = r.get("start_date"), r.get("end_date")
        if s and e and e <= s:
            rep.at(
                "BACKTESTS",
                r,
                "end_date",
                f"end_date {e} is not after start_date {s}",
                "swap or fix the dates",
            )
        if s and e and r.get("oos_last_x_months"):
            months = (e.year - s.year) * 12 + (e.month - s.month)
            if r["oos_last_x_months"] >= months:
                rep.at(
                    "BACKTESTS",
                    r,
                    "oos_last_x_months",
                    f"{r['oos_last_x_months']} OOS months leave no in-sample period ({months} months in total)",
                    "shorten the OOS window or widen the dates",
                )
        if r.get("execution_time") == "custom" and not r.get("custom_execution_time"):
            rep.at(
                "BACKTESTS",
                r,
                "custom_execution_time",
                "execution_time custom needs a time",
                "enter HH:MM (exchange time, next session)",
            )
        strat = strategies.get(r.get("strategy_id"))
        if r.get("execution_time") == "custom" and r.get("frequency") == "1m":
            rep.at(
                "BACKTESTS",
                r,
                "execution_time",
                "custom execution fills at HH:MM in the next session of a daily backtest; on 1m bars the "
                "next bar is the next minute",
                "use next_open, or frequency daily",
            )
        hhmm = r.get("custom_execution_time")
        if (
            r.get("execution_time") == "custom"
            and hhmm
            and strat is not None
            and strategy_is_intraday(rows, strat)
        ):
            inst = keyed(rows, "INSTRUMENTS").get(strat.get("instrument_id")) or {}
            ds = keyed(rows, "DATASETS").get(inst.get("prices_dataset_id")) or {}
            lo, hi = ds.get("rth_start") or RTH_HOURS[0], ds.get("rth_end") or RTH_HOURS[1]
            if not lo <= str(hhmm) < hi:
                rep.at(
                    "BACKTESTS",
                    r,
                    "custom_execution_time",
                    f"{hhmm} is outside the RTH session {lo}-{hi} (exchange time, America/Chicago) of "
                    f"{ds.get('dataset_id')}: no 1m bar of the session is at or after it",
                    f"a time from {lo} to before {hi}, e.g. 09:00",
                )
        if r.get("execution_time") != "custom" and r.get("custom_execution_time"):
            rep.at(
                "BACKTESTS",
                r,
                "custom_execution_time",
                f"custom_execution_time is set but execution_time is {r.get('execution_time')}",
                "clear it or set execution_time to custom",
            )
        if r.get("as_of_date") and e and r["as_of_date"] < s:
            rep.at(
                "BACKTESTS",
                r,
                "as_of_date",
                "as_of_date is before the backtest starts",
                "leave blank for the latest data, or pick a date after start_date",
            )


_SCOPE_TARGETS = {
    "strategy": ("STRATEGIES.strategy_id",),
    "template": ("SIGNAL_TEMPLATES.template_id",),
    "backtest": ("BACKTESTS.backtest_id",),
    "feature": ("FEATURE_LIBRARY.feature_id", "ENGINEERED_FEATURES.eng_feature_id"),
    "gate": ("GATES.gate_id",),
}


def _params(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    spec = BY_NAME["OPTIMIZATION_PARAMS"]
    for r in rows.get("OPTIMIZATION_PARAMS", []):
        scope, target = r.get("param_scope"), r.get("target_id")
        if scope and target:
            _check_ref(
                rows, rep, "OPTIMIZATION_PARAMS", r, spec.col("target_id"), target, _SCOPE_TARGETS[scope]
            )
        ptype, x = r.get("param_type"), r.get("optimize_flag")
        if x and ptype in ("int", "float"):
            lo, hi = r.get("low"), r.get("high")
            if lo is None:
                rep.at(
                    "OPTIMIZATION_PARAMS", r, "low", "an optimised number needs low", "enter the lower bound"
                )
            if hi is None:
                rep.at(
                    "OPTIMIZATION_PARAMS",
                    r,
                    "high",
                    "an optimised number needs high",
                    "enter the upper bound",
                )
            if lo is not None and hi is not None:
                if lo >= hi:
                    rep.at(
                        "OPTIMIZATION_PARAMS",
                        r,
                        "high",
                        f"high {hi:g} is not above low {lo:g}",
                        "make high > low",
                    )
                elif r.get("step") and r["step"] > hi - lo:
                    rep.at(
                        "OPTIMIZATION_PARAMS",
                        r,
                        "step",
                        f"step {r['step']:g} is wider than the range",
                        "make the step smaller than high - low",
                    )
                elif r.get("step") and not _divides(r["step"], hi - lo):
                    rep.at(
                        "OPTIMIZATION_PARAMS",
                        r,
                        "step",
                        f"step {r['step']:g} does not divide high - low = {hi - lo:g} (the last value would "
                        "not be high)",
                        f"use a step that divides {hi - lo:g}, or move high to low + a whole number of steps",
                    )
                elif ptype == "int" and r.get("step") and not float(r["step"]).is_integer():
                    rep.at(
                        "OPTIMIZATION_PARAMS",
                        r,
                        "step",
                        f"an int parameter needs a whole-number step, not {r['step']:g}",
                        "use a whole number (or param_type float)",
                    )
                if ptype == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
                    rep.at(
                        "OPTIMIZATION_PARAMS",
                        r,
                        "low",
                        "an int parameter needs whole-number bounds",
                        "use whole numbers",
                    )
        if x and ptype == "categorical" and not r.get("choices"):
            rep.at(
                "OPTIMIZATION_PARAMS", r, "choices", "a categorical parameter needs choices", "write a,b,c"
            )
        if not x and r.get("default_value_if_not_optimized") is None:
            rep.at(
                "OPTIMIZATION_PARAMS",
                r,
                "default_value_if_not_optimized",
                "a parameter that is not optimised needs its fixed value",
                "enter it, or put X in optimize_flag",
            )


def _robustness(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    """ROBUSTNESS.param_json: every key known to its test and every value valid (the runner's own check)."""
    rob = rows.get("ROBUSTNESS", [])
    if not rob:
        return
    from runtime.config.robustness import check_test_params

    names = [
        str(x.get(key))
        for sheet, key in (
            ("FEATURE_LIBRARY", "feature_id"),
            ("ENGINEERED_FEATURES", "eng_feature_id"),
            ("GATES", "gate_id"),
        )
        for x in rows.get(sheet, [])
        if x.get(key)
    ]
    broken = [x for x in ("FEATURE_LIBRARY", "ENGINEERED_FEATURES", "GATES") if x in rep.broken]
    for r in rob:
        tid = r.get("test_id")
        if not tid:
            continue
        checked, problems = check_test_params(tid, r.get("param_json"))
        if tid == "regimes" and not problems:  # the regime features must exist (the run would fail late)
            for key in ("by", "quantiles_of"):
                v = checked.get(key)
                for name in [v] if isinstance(v, str) else v or []:
                    if name not in names and broken:  # the id sheets could not be read: a follow-on
                        rep.follows(broken[0])
                    elif name not in names:
                        near = difflib.get_close_matches(name, names, n=1)
                        hint = f" (did you mean {near[0]!r}?)" if near else ""
                        msg = f"regimes.{key}: {name!r} is not a FEATURE_LIBRARY, ENGINEERED_FEATURES or GATES id"
                        problems.append((key, msg + hint))
        for key, msg in problems:
            col = "test_id" if key == "test_id" else "param_json"
            rep.at(
                "ROBUSTNESS",
                r,
                col,
                msg,
                "correct param_json (keys per test: design/ROBUSTNESS.md section 11)",
            )


#: the largest grid a grid study enumerates (beyond it: fewer points, or tpe/random)
MAX_GRID = 1_000_000
RULE_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*([A-Za-z_][\w.]*|[+-]?\d+(?:\.\d+)?)\s*$")
RULE_FIX = "write `a < b` with two param_names of the same constraint_group (or a number on the right)"


def parse_rule(text: str, names: Mapping[str, str]) -> tuple[str, str, str | float]:
    """`a <op> b` -> (key of a, op, key of b or a number); names maps a param_name (or key) to its key.
    ValueError(message) when the text is not that form or names a param outside the group."""
    m = RULE_RE.match(text or "")
    if not m:
        raise ValueError(
            f"constraint_rule '{text}' is not of the form `a <op> b` (op one of < <= > >= == !=)"
        )
    a, op, b = m.group(1), m.group(2), m.group(3)
    if a not in names:
        raise ValueError(
            f"constraint_rule '{text}': '{a}' is not a param of its constraint_group "
            f"(it has {', '.join(sorted(names)) or 'none'})"
        )
    if re.match(r"^[+-]?\d", b):
        return names[a], op, float(b)
    if b not in names:
        raise ValueError(
            f"constraint_rule '{text}': '{b}' is not a param of its constraint_group "
            f"(it has {', '.join(sorted(names)) or 'none'})"
        )
    return names[a], op, names[b]


def _divides(step: float, span: float) -> bool:
    k = span / step
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


_IDENT = re.compile(r"[A-Za-z_]\w*")


def _reads(rows: Rows, strategy: Mapping[str, Any]) -> set[str]:
    """The feature/gate ids a strategy's expressions can reach, transitively. Every identifier of every
    expression counts (function names too): an over-approximation, so a target it does not hold is
    certainly never read."""
    defs: dict[str, list[Any]] = {}
    for r in rows.get("FEATURE_LIBRARY", []):
        defs[r.get("feature_id")] = [r.get("transform")]
    for r in rows.get("ENGINEERED_FEATURES", []):
        defs[r.get("eng_feature_id")] = [r.get("combine_transform"), *(r.get("input_feature_ids") or [])]
    for r in rows.get("GATES", []):
        defs[r.get("gate_id")] = [r.get("expression")]
    t = _ids(rows, "SIGNAL_TEMPLATES.template_id").get(strategy.get("signal_template_id")) or {}
    todo = [
        t.get("signal_expr"),
        strategy.get("gate_expr"),
        strategy.get("scaling_expr"),
        strategy.get("primary_feature_id"),
        strategy.get("secondary_feature_id"),
    ]
    seen: set[str] = set()
    while todo:
        text = todo.pop()
        for name in _IDENT.findall(text) if isinstance(text, str) else []:
            if name not in seen:
                seen.add(name)
                todo.extend(defs.get(name, []))
    return seen


def _studies(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    """A study must be runnable as written: something to search, two metrics for nsga2, every
    OPTIMIZATION_PARAMS row addressing what the study's backtest really uses, param rules that parse, a
    grid that can be enumerated. (Unknown ids and enums are _references' and the reader's; parameter names
    are runtime.config.expressions.check_param_names'.)"""
    backtests = _ids(rows, "BACKTESTS.backtest_id")
    strategies = _ids(rows, "STRATEGIES.strategy_id")
    params = rows.get("OPTIMIZATION_PARAMS", [])
    for st in rows.get("OPTIMIZATION_STUDIES", []):
        sid = st.get("study_id")
        mine = [r for r in params if r.get("study_id") == sid and sid is not None]
        if not any(r.get("optimize_flag") for r in mine):
            rep.at(
                "OPTIMIZATION_STUDIES",
                st,
                "study_id",
                f"study {sid} searches nothing: no OPTIMIZATION_PARAMS row of it has optimize_flag X",
                "put X in optimize_flag of the parameters to search (or disable the study)",
            )
        if st.get("method") == "nsga2" and not st.get("objective_secondary_metric"):
            rep.at(
                "OPTIMIZATION_STUDIES",
                st,
                "objective_secondary_metric",
                "method nsga2 optimizes two objectives and needs a secondary metric",
                "enter a METRICS id (e.g. sharpe), or use method tpe",
            )
        bt = backtests.get(st.get("backtest_id"))
        strat = strategies.get(bt.get("strategy_id")) if bt else None
        if bt is not None and strat is not None:
            _study_targets(rows, rep, sid, bt, strat, mine)
        for r in mine:  # a fixed $param must be a number (a BACKTESTS column is checked by its parser)
            v = r.get("default_value_if_not_optimized")
            text = str(v).strip().lower() if isinstance(v, str) else None
            if (
                not r.get("optimize_flag")
                and r.get("param_scope") not in (None, "backtest")
                and text is not None
                and not _NUMBER.match(text)
                and text not in ("true", "false")
            ):
                rep.at(
                    "OPTIMIZATION_PARAMS",
                    r,
                    "default_value_if_not_optimized",
                    f"${r.get('param_name')} is fixed at '{v}', which is not a number or true/false",
                    "enter a number (e.g. 1), or true/false",
                )
        groups: dict[str, dict[str, str]] = {}
        for r in mine:
            if r.get("constraint_group") and r.get("param_name"):
                groups.setdefault(r["constraint_group"], {})[r["param_name"]] = r["param_name"]
        for r in mine:
            if not r.get("constraint_rule"):
                continue
            if not r.get("constraint_group"):
                rep.at(
                    "OPTIMIZATION_PARAMS",
                    r,
                    "constraint_group",
                    "a constraint_rule needs a constraint_group (its names are the group's param_names)",
                    "enter the same group name on every row the rule names",
                )
                continue
            try:
                parse_rule(r["constraint_rule"], groups.get(r["constraint_group"], {}))
            except ValueError as e:
                rep.at("OPTIMIZATION_PARAMS", r, "constraint_rule", str(e), RULE_FIX)
        if st.get("method") == "grid":
            _grid_study(rep, st, mine, MAX_GRID)


def _grid_study(rep: Reporter, st: Mapping[str, Any], mine: list[dict], limit: int) -> None:
    """A grid study enumerates every X row's values: floats need a step, and the product must be finite."""
    size = 1
    for r in mine:
        if not r.get("optimize_flag"):
            continue
        kind, lo, hi, step = r.get("param_type"), r.get("low"), r.get("high"), r.get("step")
        if kind == "float" and not step:
            rep.at(
                "OPTIMIZATION_PARAMS",
                r,
                "step",
                f"study {st.get('study_id')} is a grid: a float parameter needs a step",
                "enter a step that divides high - low, or use method tpe/random",
            )
        elif kind in ("int", "float") and lo is not None and hi is not None and hi > lo:
            size *= round((hi - lo) / (step or 1)) + 1
        elif kind == "categorical":
            size *= max(1, len(r.get("choices") or []))
        elif kind == "bool":
            size *= 2
    if size > limit:
        rep.at(
            "OPTIMIZATION_STUDIES",
            st,
            "method",
            f"study {st.get('study_id')}'s grid has {size:,} points (more than {limit:,})",
            "use larger steps or fewer X rows, or method tpe/random",
        )


def _study_targets(
    rows: Rows, rep: Reporter, sid: Any, bt: Mapping[str, Any], strat: Mapping[str, Any], mine: list[dict]
) -> None:
    """Every row of a study must address the study's own backtest, its strategy, its template, or a
    feature/gate that strategy reads: any other target would change nothing (or, for strategy scope,
    silently set the same $name of this strategy)."""
    reads: set[str] | None = None
    for r in mine:
        scope, target = r.get("param_scope"), r.get("target_id")
        if not scope or not target:
            continue
        if scope == "strategy":
            ok, own = target == strat.get("strategy_id"), f"strategy {strat.get('strategy_id')}"
        elif scope == "template":
            ok, own = target == strat.get("signal_template_id"), f"template {strat.get('signal_template_id')}"
        elif scope == "backtest":
            ok, own = target == bt.get("backtest_id"), f"backtest {bt.get('backtest_id')}"
        else:
            reads = _reads(rows, strat) if reads is None else reads
            ok, own = target in reads, f"a {scope} that strategy {strat.get('strategy_id')} reads"
        if not ok:
            rep.at(
                "OPTIMIZATION_PARAMS",
                r,
                "target_id",
                f"study {sid} runs backtest {bt.get('backtest_id')} (strategy {strat.get('strategy_id')}), "
                f"which does not use {scope} {target}: this row would change nothing",
                f"point it at {own}, or move the row to a study of a backtest that uses {target}",
            )


def _reporting(rows: Rows, rep: Reporter, ctx: Ctx) -> None:
    targets = {
        "backtest": ("BACKTESTS.backtest_id",),
        "study": ("OPTIMIZATION_STUDIES.study_id",),
        "robustness_profile": ("ROBUSTNESS_PROFILES.robustness_profile_id",),
    }
    spec = BY_NAME["REPORTING"]
    for r in rows.get("REPORTING", []):
        tt, tid = r.get("target_type"), r.get("target_id")
        if tt and tid:
            _check_ref(rows, rep, "REPORTING", r, spec.col("target_id"), tid, targets[tt])
