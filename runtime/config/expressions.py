"""Expression cells: build the DSL catalog from the workbook and type/availability-check every cell.

The runtime owns the catalog (dsl never reads the workbook): dataset columns become leaves with the
DATASETS availability lag; FEATURE_LIBRARY / ENGINEERED_FEATURES / GATES rows become named features; each
strategy's signal (its template with {primary}/{secondary} filled and $params bound), gate_expr and
scaling_expr are checked as *decisions* for the execution timing of every backtest that runs it.

Works on validated dict rows (export time) and on a loaded ConfigSnapshot's typed rows alike. Rows whose
id failed validation (blank, a space, an emoji) never reach the catalog: their cell error is the report.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.columns import check_source_columns, explain_column, source_columns
from runtime.config.names import cell_of as _cell_of
from runtime.config.names import get
from runtime.config.policies import parse_missing_policy, parse_normalize, parse_winsorize
from runtime.config.schema import BY_NAME
from runtime.contracts import CellError

Sheets = Mapping[str, Sequence[Any]]

#: columns of the derived 1-minute tables an intraday dataset exposes to expressions (bars + delta/cvd);
#: runtime/derive/layout.py owns the tables, a test keeps this list equal to them (config never imports derive)
BAR_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "buy_volume",
    "sell_volume",
    "n_trades",
    "vwap",
    "delta",
    "cvd",
)
_DOTTED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\b")
PARAM_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
#: sheet -> (id column, expression column, role) of the rows that become named features
FEATURE_SHEETS = {
    "FEATURE_LIBRARY": ("feature_id", "transform", "feature"),
    "ENGINEERED_FEATURES": ("eng_feature_id", "combine_transform", "engineered"),
    "GATES": ("gate_id", "expression", "gate"),
}
EXPRESSION_CELLS = (
    ("FEATURE_LIBRARY", "transform"),
    ("ENGINEERED_FEATURES", "combine_transform"),
    ("GATES", "expression"),
    ("SIGNAL_TEMPLATES", "signal_expr"),
    ("STRATEGIES", "gate_expr"),
    ("STRATEGIES", "scaling_expr"),
)


def cell_of(sheet: str, row: Any, header: str) -> str:
    return _cell_of(BY_NAME[sheet].headers, row, header)


def origin(sheet: str, row: Any, header: str):
    import dsl

    return dsl.Origin(sheet, cell_of(sheet, row, header), header)


def keyed(sheets: Sheets, sheet: str) -> dict[str, Any]:
    """Rows of a sheet by their id; rows whose id is blank or invalid are left out (already reported)."""
    key = BY_NAME[sheet].key
    out: dict[str, Any] = {}
    for r in sheets.get(sheet, []):
        k = get(r, key) if key else None
        if isinstance(k, str) and k:
            out.setdefault(k, r)
    return out


@dataclass(frozen=True)
class CatalogBuild:
    """The catalog plus what is known about each dataset's columns (None = not known yet)."""

    catalog: Any  # dsl.Catalog
    columns: Mapping[str, frozenset[str] | None]


@dataclass(frozen=True)
class Availability:
    """When a dataset's values are known, and the cell(s) that say so (named in lookahead messages)."""

    lag: int
    origin: Any  # dsl.Origin
    source: str  # human wording of the source, for workbook messages


def dataset_availability(d: Any) -> Availability:
    """A dataset's availability lag and where it comes from.

    Daily series: the default_availability_lag_days cell (known_time_rule only bounds it). Intraday trades:
    a 1-minute bar is known at its end, i.e. one bar later; a lag cell above 1 makes it later still.
    """
    import dsl

    lag = int(get(d, "default_availability_lag_days") or 0)
    rule = get(d, "known_time_rule") or "at_close"
    lag_cell = f"DATASETS!{cell_of('DATASETS', d, 'default_availability_lag_days')}"
    if get(d, "dataset_type") == "intraday_trades" and lag <= 1:
        type_cell = f"DATASETS!{cell_of('DATASETS', d, 'dataset_type')}"
        text = f"{type_cell} ({get(d, 'dataset_id')} is intraday_trades: a 1-minute bar is known at its end)"
        return Availability(1, dsl.Origin(None, None, text), text)
    text = f"{lag_cell} (default_availability_lag_days {lag}, known_time_rule {rule})"
    o = dsl.Origin(
        "DATASETS", cell_of("DATASETS", d, "default_availability_lag_days"), "default_availability_lag_days"
    )
    return Availability(lag, o, text)


def _referenced(sheets: Sheets) -> dict[str, set[str]]:
    """dataset -> columns named as DATASET.col in any expression cell."""
    out: dict[str, set[str]] = {}
    for s, c in EXPRESSION_CELLS:
        for r in sheets.get(s, []):
            for a, b in _DOTTED.findall(get(r, c) or ""):
                out.setdefault(a, set()).add(b)
    return out


def _declared_columns(sheets: Sheets, did: str, referenced: set[str]) -> set[str]:
    """Columns the workbook names for a dataset whose source file is not there yet."""
    cols = {get(f, "input_col") for f in sheets.get("FEATURE_LIBRARY", []) if get(f, "dataset_id") == did}
    for inst in sheets.get("INSTRUMENTS", []):
        if get(inst, "prices_dataset_id") == did:
            cols |= {get(inst, c) for c in ("open_col", "high_col", "low_col", "close_col")}
    return {c for c in cols | referenced if isinstance(c, str) and c}


def _dataset_columns(
    sheets: Sheets, data_root: Path | None, remember: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Catalog leaves of every dataset column, and the known column set of each dataset."""
    import dsl

    referenced = _referenced(sheets)
    known: dict[str, frozenset[str] | None] = {}
    cols: dict[str, Any] = {}
    for did, d in keyed(sheets, "DATASETS").items():
        intraday = get(d, "dataset_type") == "intraday_trades"
        names = frozenset(BAR_COLUMNS) if intraday else source_columns(d, data_root, remember=remember)
        known[did] = names
        declared = (
            set(names) if names is not None else _declared_columns(sheets, did, referenced.get(did, set()))
        )
        av = dataset_availability(d)
        for c in sorted(declared):
            cols[f"{did}.{c}"] = dsl.ColumnDef(
                name=f"{did}.{c}",
                dataset_id=did,
                column=c,
                kind=dsl.Kind.FLOAT,
                frequency=dsl.Frequency.MINUTE if intraday else dsl.Frequency.DAILY,
                availability_lag=av.lag,
                availability_origin=av.origin,
                known_time_rule=get(d, "known_time_rule") or "at_close",
            )
    return cols, known


def _instrument_aliases(sheets: Sheets, cols: dict[str, Any]) -> None:
    """SPX.close through the instrument when the instrument and dataset ids differ."""
    import dataclasses

    for iid, inst in keyed(sheets, "INSTRUMENTS").items():
        did = get(inst, "prices_dataset_id")
        for alias in ("open", "high", "low", "close"):
            col = get(inst, f"{alias}_col")
            src = cols.get(f"{did}.{col}") if col else None
            if src is not None and f"{iid}.{alias}" not in cols:
                cols[f"{iid}.{alias}"] = dataclasses.replace(src, name=f"{iid}.{alias}")


#: sheets whose availability_lag_days override has a floor rule below (a test keeps every such sheet here)
FLOOR_SHEETS = ("FEATURE_LIBRARY", "ENGINEERED_FEATURES")


def feature_floor(
    sheets: Sheets, sheet: str, row: Any, _seen: frozenset[str] = frozenset()
) -> Availability | None:
    """The earliest availability an override on this row may declare: that of the data it is built from.

    FEATURE_LIBRARY: its dataset's. ENGINEERED_FEATURES: the latest of its inputs' (each with its own
    override, never earlier than its dataset). None when the inputs are unknown (reported elsewhere).
    """
    datasets = keyed(sheets, "DATASETS")
    if sheet == "FEATURE_LIBRARY":
        d = datasets.get(get(row, "dataset_id"))
        return dataset_availability(d) if d is not None else None
    if sheet != "ENGINEERED_FEATURES":
        return None
    feats, engs = keyed(sheets, "FEATURE_LIBRARY"), keyed(sheets, "ENGINEERED_FEATURES")
    best: Availability | None = None
    for fid in get(row, "input_feature_ids") or []:
        if fid in _seen:
            continue  # a cycle: reported by the DSL stage
        src_sheet, src = (
            ("FEATURE_LIBRARY", feats[fid]) if fid in feats else ("ENGINEERED_FEATURES", engs.get(fid))
        )
        if src is None:
            continue
        av = feature_floor(sheets, src_sheet, src, _seen | {fid})
        own = get(src, "availability_lag_days")
        if av is not None and own is not None and own > av.lag:
            av = Availability(
                own, av.origin, f"{src_sheet}!{cell_of(src_sheet, src, 'availability_lag_days')}"
            )
        if av is not None and (best is None or av.lag > best.lag):
            best = av
    return best


def _parsed(parse: Any, value: Any, default: Any) -> Any:
    """A policy cell parsed into its typed DSL value; a bad cell is validate's error (its cell, its fix),
    and the catalog keeps the default so that one mistake is not reported again at every use."""
    try:
        return parse(value)
    except ValueError:
        return default


def _feature_defs(sheets: Sheets) -> dict[str, Any]:
    import dsl

    feats: dict[str, Any] = {}
    for sheet, (_key, expr_col, role) in FEATURE_SHEETS.items():
        for fid, r in keyed(sheets, sheet).items():
            kw: dict[str, Any] = {}
            cols = BY_NAME[sheet].headers
            if "availability_lag_days" in cols and (avail := get(r, "availability_lag_days")) is not None:
                floor = feature_floor(sheets, sheet, r)
                if floor is None or avail >= floor.lag:  # never earlier than the data allows
                    kw["availability_lag_override"] = avail
                    kw["availability_origin"] = origin(sheet, r, "availability_lag_days")
            if sheet == "FEATURE_LIBRARY":
                kw |= {
                    "input_column": f"{get(r, 'dataset_id')}.{get(r, 'input_col')}",
                    "winsorize": _parsed(parse_winsorize, get(r, "winsorize"), None),
                    "normalize": _parsed(parse_normalize, get(r, "normalize"), None),
                }
            if sheet == "ENGINEERED_FEATURES":
                kw["declared_inputs"] = tuple(get(r, "input_feature_ids") or ())
            if "lag_days" in cols:
                kw["lag_days"] = int(get(r, "lag_days") or 0)
            if "missing_policy" in cols:
                kw["missing_policy"] = _parsed(
                    parse_missing_policy, get(r, "missing_policy"), dsl.MissingPolicy()
                )
            feats[fid] = dsl.FeatureDef(
                name=fid,
                role=role,
                expression=get(r, expr_col) or "",
                origin=origin(sheet, r, expr_col),
                params=(get(r, "params_json") or {}) if "params_json" in cols else {},
                enabled=bool(get(r, "enabled")),
                **kw,
            )
    return feats


def build_catalog(sheets: Sheets, data_root: Path | None = None, *, remember: bool = False) -> CatalogBuild:
    """The DSL catalog of a workbook (dict rows) or a snapshot (typed rows)."""
    import dsl

    cols, known = _dataset_columns(sheets, data_root, remember)
    _instrument_aliases(sheets, cols)
    return CatalogBuild(dsl.Catalog(columns=cols, features=_feature_defs(sheets)), known)


def info(g: Any, cell: str, column: str) -> dict[str, Any]:
    return {
        "cell": cell,
        "column": column,
        "text": g.text,
        "canonical": g.canonical,
        "hash": g.hash,
        "kind": g.kind.value,
        "frequency": g.frequency.value,
        "availability": g.availability,
        "warmup": g.warmup,
    }


@dataclass(frozen=True)
class DecisionUse:
    """One strategy expression as a backtest runs it: the timing and grid the check must use."""

    strategy: Any
    backtest_id: str | None
    execution: str
    frequency: str


def strategy_is_intraday(sheets: Sheets, s: Any) -> bool | None:
    """Whether a strategy's instrument is priced from intraday trades (None: not known)."""
    inst = keyed(sheets, "INSTRUMENTS").get(get(s, "instrument_id"))
    ds = keyed(sheets, "DATASETS").get(get(inst, "prices_dataset_id")) if inst is not None else None
    return None if ds is None else get(ds, "dataset_type") == "intraday_trades"


def decision_uses(sheets: Sheets) -> list[DecisionUse]:
    """Every (strategy, backtest) pair to check; a 1m backtest of a daily-priced strategy is left out
    (BACKTESTS!frequency reports it, see validate._backtests)."""
    insts = keyed(sheets, "INSTRUMENTS")
    uses = []
    for sid, s in keyed(sheets, "STRATEGIES").items():
        if not get(s, "enabled"):
            continue
        bts = [
            b
            for b in keyed(sheets, "BACKTESTS").values()
            if get(b, "strategy_id") == sid and get(b, "enabled")
        ]
        intraday = strategy_is_intraday(sheets, s)
        for b in bts:
            freq = get(b, "frequency") or "daily"
            if freq == "1m" and intraday is False:
                continue
            uses.append(DecisionUse(s, get(b, "backtest_id"), get(b, "execution_time") or "close", freq))
        if not bts:
            inst = insts.get(get(s, "instrument_id"))
            ex = (get(inst, "default_execution_time") if inst is not None else None) or "close"
            uses.append(DecisionUse(s, None, ex, "1m" if intraday else "daily"))
    return uses


class _Collector:
    """DSL errors by cell: the same problem met through several backtests is reported once, naming them all."""

    def __init__(self, idx: dict[str, int]) -> None:
        self.idx = idx
        self.found: dict[tuple[str, str, str], tuple[Any, list[str]]] = {}

    def add(self, err: Any, context: str = "") -> None:
        o = err.origin
        key = (o.sheet if o else "", o.cell if o else "", err.message)
        if key not in self.found:
            self.found[key] = (err, [])
        contexts = self.found[key][1]
        if not context:
            contexts.insert(0, "")  # a problem of the cell itself: no context needed
        elif context not in contexts:
            contexts.append(context)

    def errors(self) -> list[CellError]:
        out = []
        for err, contexts in self.found.values():
            ctx = "" if not contexts or contexts[0] == "" else "; ".join(contexts)
            out.append(_cell_error(self.idx, err, ctx))
        return out


def _cell_error(sheet_index: dict[str, int], err: Any, context: str = "") -> CellError:
    o = err.origin
    sheet = o.sheet if o is not None and o.sheet else "STRATEGIES"
    cell = o.cell if o is not None and o.cell else "A1"
    row, col = _rc(cell)
    text = err.render()
    if context:
        first, _, rest = text.partition("\n")
        text = f"{first} ({context})" + (f"\n{rest}" if rest else "")
    return CellError(
        sheet_index.get(sheet, 99), row, col, sheet, cell, err.message, err.fix or "", rendered=text
    )


def _check_input_columns(rows: Sheets, rep: Any, build: CatalogBuild, data_root: Path | None = None) -> None:
    """FEATURE_LIBRARY input columns exist in their dataset (when the dataset's columns are known)."""
    datasets = keyed(rows, "DATASETS")
    for f in keyed(rows, "FEATURE_LIBRARY").values():
        cols = build.columns.get(get(f, "dataset_id"))
        col = get(f, "input_col")
        if cols is not None and col not in cols:
            why = explain_column(datasets.get(get(f, "dataset_id")), data_root, col or "")
            if why is not None:  # the one column rule (runtime/config/columns.py) drops it
                rep.at(
                    "FEATURE_LIBRARY",
                    f,
                    "input_col",
                    f"column '{col}' of dataset {get(f, 'dataset_id')} will never have data: {why}",
                    "use a numeric column, or fix the source file and export again",
                )
                continue
            near = difflib.get_close_matches(col or "", sorted(cols), n=1)
            rep.at(
                "FEATURE_LIBRARY",
                f,
                "input_col",
                f"column '{col}' is not in dataset {get(f, 'dataset_id')} (it has: {', '.join(sorted(cols))})",
                f"did you mean '{near[0]}'?" if near else "use one of its columns",
            )


def check_availability_overrides(rows: Sheets, rep: Any) -> None:
    """An availability override may make a series later, never earlier than the data it is built from.

    Applies to every sheet with an availability_lag_days column (FEATURE_LIBRARY, ENGINEERED_FEATURES and
    any extension); the catalog ignores such an override too (build_catalog), so no command can use it.
    """
    for sheet in BY_NAME:
        if "availability_lag_days" not in BY_NAME[sheet].headers:
            continue
        for r in keyed(rows, sheet).values():
            avail = get(r, "availability_lag_days")
            floor = feature_floor(rows, sheet, r)
            if avail is None or floor is None or avail >= floor.lag:
                continue
            rep.at(
                sheet,
                r,
                "availability_lag_days",
                f"availability_lag_days {avail} would make {get(r, BY_NAME[sheet].key)} known earlier than its "
                f"data allows ({floor.lag}, set by {floor.source}): that is lookahead",
                f"set {floor.lag} or more (later is allowed, earlier never), or leave it blank for the default",
            )


def _check_features(
    cat: Any, rep: Any, idx: dict[str, int], out: dict[str, dict[str, Any]], col: _Collector, session: Any
) -> None:
    import dsl

    graphs, errors = dsl.check_catalog(cat, session=session)
    for e in errors:
        col.add(e)
    cells = {role: (sheet, expr) for sheet, (_, expr, role) in FEATURE_SHEETS.items()}
    for name, g in graphs.items():
        fd = cat.features[name]
        sheet, column = cells[fd.role]
        out[f"{sheet}!{fd.origin.cell}"] = info(g, f"{sheet}!{fd.origin.cell}", column)
        if fd.role == "gate" and g.kind != dsl.Kind.BOOL:
            rep.errors.append(
                CellError(
                    idx["GATES"],
                    *_rc(fd.origin.cell),
                    "GATES",
                    fd.origin.cell,
                    f"expression: a gate must be true/false, this is {g.kind.value}",
                    f"compare it, e.g. {fd.name}_value > 0",
                )
            )


_EXECS = ("close", "next_open", "next_close", "custom")
_KIND_FIX = {
    "gate_expr": ("gate_expr must be true/false", "compare it, e.g. vol < 0.2"),
    "scaling_expr": (
        "scaling_expr must be a number (a position size multiplier)",
        "use a numeric expression, e.g. clip(0.15 / lag(spx_vol_20, 1), 0, 2)",
    ),
}


def param_domains(rows: Sheets, scopes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Declared domains (dsl.ParamDomain) of the optimised $params of these (scope, target id) pairs.

    OPTIMIZATION_PARAMS int/float rows with low and high, and bool rows, searched (optimize_flag X):
    the DSL checks every argument over the whole domain, so a study cannot reach a trial whose window is
    invalid. Categorical rows and rows with a bad range are reported by validate and skipped here.
    """
    import dsl

    out: dict[str, Any] = {}
    wanted = {(sc, t) for sc, t in scopes if t}
    for r in rows.get("OPTIMIZATION_PARAMS", []):
        if (get(r, "param_scope"), get(r, "target_id")) not in wanted or not get(r, "optimize_flag"):
            continue
        kind, name = get(r, "param_type"), get(r, "param_name")
        if kind not in ("int", "float", "bool") or not name:
            continue
        lo, hi = (None, None) if kind == "bool" else (get(r, "low"), get(r, "high"))
        try:
            dom = dsl.ParamDomain(kind, lo, hi, origin("OPTIMIZATION_PARAMS", r, "low"))
        except (ValueError, TypeError):
            continue
        out[name] = dom
    return out


def _check_use(
    use: DecisionUse, rows: Sheets, cat: Any, out: dict[str, dict[str, Any]], col: _Collector, session: Any
) -> str | None:
    """Check one strategy's signal, gate and scaling for one backtest; returns the template id it used."""
    import dsl

    s = use.strategy
    sid = get(s, "strategy_id")
    t = keyed(rows, "SIGNAL_TEMPLATES").get(get(s, "signal_template_id"))
    ex = dsl.Execution[use.execution.upper()]
    fr = dsl.Frequency.MINUTE if use.frequency == "1m" else dsl.Frequency.DAILY
    where = (
        f"strategy {sid}"
        + (f", backtest {use.backtest_id}" if use.backtest_id else "")
        + f", execution {use.execution}"
    )
    key = f"{sid}@{use.backtest_id or '-'}"
    params = {
        **((get(t, "default_params_json") or {}) if t is not None else {}),
        **(get(s, "params_json") or {}),
    }
    domains = param_domains(rows, [("template", get(s, "signal_template_id")), ("strategy", sid)])
    kw = {"params": params, "domains": domains, "frequency": fr, "decision": True, "execution": ex}
    kw["session"] = session
    checks: list[tuple[str, str, str, Any, dict[str, str]]] = []
    if t is not None and get(t, "signal_expr"):
        slots = {k: v for k in ("primary", "secondary") if (v := get(s, f"{k}_feature_id"))}
        checks.append(("SIGNAL_TEMPLATES", "signal_expr", get(t, "signal_expr"), t, slots))
    for column in ("gate_expr", "scaling_expr"):
        if get(s, column):
            checks.append(("STRATEGIES", column, get(s, column), s, {}))
    for sheet, column, text, row, slots in checks:
        o = origin(sheet, row, column)
        try:
            g = dsl.check(text, cat, slots=slots, origin=o, **kw)
        except dsl.DslError as e:
            col.add(e, where)
            continue
        out[f"{sheet}!{o.cell}|{key}"] = info(g, f"{sheet}!{o.cell}", column)
        if column == "signal_expr" and g.kind == dsl.Kind.BOOL:
            msg = "the signal is true/false; it must give the desired position (-1, 0, +1 or a size)"
            col.add(dsl.DslError(msg, fix="wrap it, e.g. if(condition, 1, 0)", text=text, origin=o), where)
        elif column in _KIND_FIX and g.kind != (dsl.Kind.BOOL if column == "gate_expr" else dsl.Kind.FLOAT):
            msg, fix = _KIND_FIX[column]
            col.add(dsl.DslError(f"{msg}; this is {g.kind.value}", text=text, origin=o, fix=fix), where)
    return get(t, "template_id") if t is not None and get(t, "signal_expr") else None


def param_names(*texts: Any) -> set[str]:
    """The `$names` the expression texts read (blank or missing texts read none)."""
    return {n for t in texts if isinstance(t, str) for n in PARAM_RE.findall(t)}


def parameters_of(rows: Sheets, scope: str, target: Any) -> set[str] | None:
    """The $parameters a row of a scope can take (None when the scope has no such list)."""
    if scope == "template":
        return param_names(get(target, "signal_expr"))
    if scope == "strategy":
        t = keyed(rows, "SIGNAL_TEMPLATES").get(get(target, "signal_template_id"))
        tmpl = get(t, "signal_expr") if t is not None else None
        return param_names(tmpl, get(target, "gate_expr"), get(target, "scaling_expr"))
    if scope == "feature":
        return param_names(get(target, "transform"), get(target, "combine_transform"))
    if scope == "gate":
        return param_names(get(target, "expression"))
    return None  # backtest: its own columns, checked by name below


def _unknown(rep: Any, sheet: str, row: Any, column: str, name: str, known: set[str], what: str) -> None:
    near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'? " if near else ""
    listing = ", ".join(sorted(known)) or "none"
    rep.at(
        sheet,
        row,
        column,
        f"'{name}' is not a parameter of {what} (it has: {listing})",
        f"{hint}fix the name",
    )


def check_param_names(rows: Sheets, rep: Any) -> None:
    """Parameter names must exist: a typo (`windw`, `$lagg`) would otherwise be ignored or left unbound."""
    opt_rows = [r for r in rows.get("OPTIMIZATION_PARAMS", []) if get(r, "param_name")]
    for tid, t in keyed(rows, "SIGNAL_TEMPLATES").items():
        names = param_names(get(t, "signal_expr"))
        defaults = get(t, "default_params_json") or {}
        for k in defaults:
            if names and k not in names:
                _unknown(rep, "SIGNAL_TEMPLATES", t, "default_params_json", k, names, f"template {tid}")
        bound = set(defaults) | {
            get(r, "param_name")
            for r in opt_rows
            if get(r, "param_scope") == "template" and get(r, "target_id") == tid
        }
        users = [s for s in keyed(rows, "STRATEGIES").values() if get(s, "signal_template_id") == tid]
        for n in sorted(names - bound):
            if not users or any(n not in (get(s, "params_json") or {}) for s in users):
                _unknown(
                    rep,
                    "SIGNAL_TEMPLATES",
                    t,
                    "signal_expr",
                    f"${n}",
                    {f"${b}" for b in bound},
                    f"template {tid}'s default_params_json",
                )
    for sheet, what in (
        ("STRATEGIES", "strategy"),
        ("FEATURE_LIBRARY", "feature"),
        ("ENGINEERED_FEATURES", "feature"),
    ):
        for rid, r in keyed(rows, sheet).items():
            known = parameters_of(rows, what, r) or set()
            for k in get(r, "params_json") or {}:
                if k not in known:
                    _unknown(rep, sheet, r, "params_json", k, known, f"{what} {rid}")
    targets = {
        "strategy": keyed(rows, "STRATEGIES"),
        "template": keyed(rows, "SIGNAL_TEMPLATES"),
        "feature": {**keyed(rows, "FEATURE_LIBRARY"), **keyed(rows, "ENGINEERED_FEATURES")},
        "gate": keyed(rows, "GATES"),
    }
    for r in opt_rows:
        scope, name, target = get(r, "param_scope"), get(r, "param_name"), get(r, "target_id")
        if scope == "backtest":
            known = {
                h for h in BY_NAME["BACKTESTS"].headers if h not in ("backtest_id", "strategy_id", "notes")
            }
        elif (row := targets.get(scope, {}).get(target)) is not None:
            known = parameters_of(rows, scope, row) or set()
        else:
            continue  # an unknown target is reported by validate._params
        if name not in known:
            _unknown(rep, "OPTIMIZATION_PARAMS", r, "param_name", name, known, f"{scope} {target}")


def check_expressions(rows: Sheets, rep: Any, data_root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Check every expression cell; errors go to `rep` (a Reporter); returns the snapshot's expression info."""
    import dsl

    idx = {s: i for i, s in enumerate(BY_NAME)}
    build = build_catalog(rows, data_root)
    out: dict[str, dict[str, Any]] = {}
    col = _Collector(idx)
    check_source_columns(rows, rep, data_root)  # the source file matches its DATASETS row
    _check_input_columns(rows, rep, build, data_root)
    check_availability_overrides(rows, rep)
    check_param_names(rows, rep)
    session = dsl.CheckSession(build.catalog)  # feature expansions shared by every check below
    _check_features(build.catalog, rep, idx, out, col, session)
    used = {
        tid for use in decision_uses(rows) if (tid := _check_use(use, rows, build.catalog, out, col, session))
    }
    for tid, t in keyed(rows, "SIGNAL_TEMPLATES").items():  # unused templates: at least their syntax
        if tid not in used and get(t, "signal_expr"):
            try:
                dsl.parse(get(t, "signal_expr"), origin=origin("SIGNAL_TEMPLATES", t, "signal_expr"))
            except dsl.DslError as e:
                col.add(e)
    rep.errors.extend(col.errors())
    return out


def _rc(cell: str) -> tuple[int, int]:
    m = re.match(r"([A-Z]+)(\d+)", cell)
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col
