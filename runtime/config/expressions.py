"""Expression cells: build the DSL catalog from the workbook and type/availability-check every cell.

The runtime owns the catalog (dsl never reads the workbook): dataset columns become leaves with the
DATASETS availability lag; FEATURE_LIBRARY / ENGINEERED_FEATURES / GATES rows become named features; each
strategy's signal (its template with {primary}/{secondary} filled and $params bound), gate_expr and
scaling_expr are checked as *decisions* for the execution timing of every backtest that runs it.

Works on validated dict rows (export time) and on a loaded ConfigSnapshot's typed rows alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl.utils import get_column_letter

from runtime.config.schema import BY_NAME
from runtime.contracts import CellError
from runtime.derive.layout import BARS_SCHEMA, CVD_SCHEMA

#: columns of the derived 1-minute tables an intraday dataset exposes to expressions (bars + delta/cvd)
BAR_COLUMNS = tuple(
    f.name
    for schema in (BARS_SCHEMA, CVD_SCHEMA)
    for f in schema
    if f.name not in ("session", "trade_date", "ts", "symbol")
)
_DOTTED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\b")


def get(row: Any, header: str) -> Any:
    """A cell value by header, from a dict row (validation) or a typed row (snapshot)."""
    if isinstance(row, Mapping):
        return row.get(header)
    from runtime.config.loader import py_name

    v = getattr(row, py_name(header))
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _rownum(row: Any) -> int:
    return int(row["_row"]) if isinstance(row, Mapping) else int(row.row)


def cell_of(sheet: str, row: Any, header: str) -> str:
    return f"{get_column_letter(BY_NAME[sheet].headers.index(header) + 1)}{_rownum(row)}"


def origin(sheet: str, row: Any, header: str):
    import dsl

    return dsl.Origin(sheet, cell_of(sheet, row, header), header)


@dataclass(frozen=True)
class CatalogBuild:
    """The catalog plus what is known about each dataset's columns (None = not known yet)."""

    catalog: Any  # dsl.Catalog
    columns: Mapping[str, frozenset[str] | None]


def source_columns(ds: Any, data_root: Path | None) -> frozenset[str] | None:
    """Series columns of a daily dataset from its source file's header row (None if the file is absent)."""
    from runtime.ingest.daily import canonical_name, resolve_source_path, split_source

    if data_root is None or get(ds, "source_type") != "xlsx":
        return None
    spec, sheet = split_source(get(ds, "source_path_or_id") or "")
    path = resolve_source_path(spec, data_root)
    if not path.exists():
        return None
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb[sheet] if sheet and sheet in wb.sheetnames else wb.worksheets[0]
            want = (get(ds, "date_col") or "Date").strip().lower()
            for r in ws.iter_rows(max_row=30, values_only=True):
                cells = [str(c).strip() for c in r if c is not None]
                if any(c.lower() == want for c in cells):
                    return frozenset(
                        canonical_name(c) for c in cells if c.lower() != want and canonical_name(c)
                    )
        finally:
            wb.close()
    except Exception:  # unreadable here: the ingest reports it precisely
        return None
    return None


def build_catalog(sheets: Mapping[str, Sequence[Any]], data_root: Path | None = None) -> CatalogBuild:
    import dsl

    datasets = {get(d, "dataset_id"): d for d in sheets.get("DATASETS", [])}
    texts = [
        get(r, c) or ""
        for s, c in (
            ("FEATURE_LIBRARY", "transform"),
            ("ENGINEERED_FEATURES", "combine_transform"),
            ("GATES", "expression"),
            ("SIGNAL_TEMPLATES", "signal_expr"),
            ("STRATEGIES", "gate_expr"),
            ("STRATEGIES", "scaling_expr"),
        )
        for r in sheets.get(s, [])
    ]
    referenced: dict[str, set[str]] = {}
    for t in texts:
        for a, b in _DOTTED.findall(t):
            referenced.setdefault(a, set()).add(b)
    known: dict[str, frozenset[str] | None] = {}
    cols: dict[str, Any] = {}
    for did, d in datasets.items():
        intraday = get(d, "dataset_type") == "intraday_trades"
        lag = int(get(d, "default_availability_lag_days") or 0)
        o = dsl.Origin(
            "DATASETS",
            cell_of("DATASETS", d, "default_availability_lag_days"),
            "default_availability_lag_days",
        )
        if intraday:
            names: frozenset[str] | None = frozenset(BAR_COLUMNS)
            lag = max(lag, 1)  # a 1-minute bar's values are known at the bar's end
            freq = dsl.Frequency.MINUTE
        else:
            names = source_columns(d, data_root)
            freq = dsl.Frequency.DAILY
        known[did] = names
        declared = set(names) if names is not None else set()
        if names is None:  # file not there yet: accept the columns the workbook names
            declared |= {
                get(f, "input_col") for f in sheets.get("FEATURE_LIBRARY", []) if get(f, "dataset_id") == did
            }
            for inst in sheets.get("INSTRUMENTS", []):
                if get(inst, "prices_dataset_id") == did:
                    declared |= {get(inst, c) for c in ("open_col", "high_col", "low_col", "close_col")}
            declared |= referenced.get(did, set())
        for c in sorted(x for x in declared if x):
            cols[f"{did}.{c}"] = dsl.ColumnDef(
                name=f"{did}.{c}",
                dataset_id=did,
                column=c,
                kind=dsl.Kind.FLOAT,
                frequency=freq,
                availability_lag=lag,
                availability_origin=o,
                known_time_rule=get(d, "known_time_rule") or "at_close",
            )
    for inst in sheets.get("INSTRUMENTS", []):  # SPX.close through the instrument when ids differ
        iid, did = get(inst, "instrument_id"), get(inst, "prices_dataset_id")
        for alias, c in (
            ("open", "open_col"),
            ("high", "high_col"),
            ("low", "low_col"),
            ("close", "close_col"),
        ):
            col = get(inst, c)
            src = cols.get(f"{did}.{col}") if col else None
            if src is not None and f"{iid}.{alias}" not in cols:
                cols[f"{iid}.{alias}"] = dsl.ColumnDef(
                    name=f"{iid}.{alias}",
                    dataset_id=src.dataset_id,
                    column=src.column,
                    kind=src.kind,
                    frequency=src.frequency,
                    availability_lag=src.availability_lag,
                    availability_origin=src.availability_origin,
                    known_time_rule=src.known_time_rule,
                )
    feats: dict[str, Any] = {}
    for f in sheets.get("FEATURE_LIBRARY", []):
        fid = get(f, "feature_id")
        avail = get(f, "availability_lag_days")
        norm = get(f, "normalize")
        feats[fid] = dsl.FeatureDef(
            name=fid,
            role="feature",
            expression=get(f, "transform") or "",
            origin=origin("FEATURE_LIBRARY", f, "transform"),
            params=get(f, "params_json") or {},
            input_column=f"{get(f, 'dataset_id')}.{get(f, 'input_col')}",
            lag_days=int(get(f, "lag_days") or 0),
            availability_lag_override=avail,
            availability_origin=origin("FEATURE_LIBRARY", f, "availability_lag_days")
            if avail is not None
            else None,
            missing_policy=get(f, "missing_policy") or "keep",
            winsorize=get(f, "winsorize"),
            normalize=None if norm in (None, "none") else norm,
            enabled=bool(get(f, "enabled")),
        )
    for e in sheets.get("ENGINEERED_FEATURES", []):
        eid = get(e, "eng_feature_id")
        avail = get(e, "availability_lag_days")
        feats[eid] = dsl.FeatureDef(
            name=eid,
            role="engineered",
            expression=get(e, "combine_transform") or "",
            origin=origin("ENGINEERED_FEATURES", e, "combine_transform"),
            params=get(e, "params_json") or {},
            lag_days=int(get(e, "lag_days") or 0),
            availability_lag_override=avail,
            availability_origin=origin("ENGINEERED_FEATURES", e, "availability_lag_days")
            if avail is not None
            else None,
            missing_policy=get(e, "missing_policy") or "keep",
            declared_inputs=tuple(get(e, "input_feature_ids") or ()),
            enabled=bool(get(e, "enabled")),
        )
    for g in sheets.get("GATES", []):
        gid = get(g, "gate_id")
        feats[gid] = dsl.FeatureDef(
            name=gid,
            role="gate",
            expression=get(g, "expression") or "",
            origin=origin("GATES", g, "expression"),
            params={},
            enabled=bool(get(g, "enabled")),
        )
    return CatalogBuild(dsl.Catalog(columns=cols, features=feats), known)


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


def decision_uses(sheets: Mapping[str, Sequence[Any]]) -> list[DecisionUse]:
    insts = {get(i, "instrument_id"): i for i in sheets.get("INSTRUMENTS", [])}
    dsets = {get(d, "dataset_id"): d for d in sheets.get("DATASETS", [])}
    uses = []
    for s in sheets.get("STRATEGIES", []):
        if not get(s, "enabled"):
            continue
        bts = [
            b
            for b in sheets.get("BACKTESTS", [])
            if get(b, "strategy_id") == get(s, "strategy_id") and get(b, "enabled")
        ]
        for b in bts:
            uses.append(
                DecisionUse(
                    s,
                    get(b, "backtest_id"),
                    get(b, "execution_time") or "close",
                    get(b, "frequency") or "daily",
                )
            )
        if not bts:
            inst = insts.get(get(s, "instrument_id"))
            ds = dsets.get(get(inst, "prices_dataset_id")) if inst is not None else None
            freq = "1m" if ds is not None and get(ds, "dataset_type") == "intraday_trades" else "daily"
            uses.append(
                DecisionUse(
                    s,
                    None,
                    (get(inst, "default_execution_time") if inst is not None else None) or "close",
                    freq,
                )
            )
    return uses


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


def check_expressions(
    rows: Mapping[str, Sequence[Any]], rep: Any, data_root: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Check every expression cell; errors go to `rep` (a Reporter); returns the snapshot's expression info."""
    import dsl

    idx = {s: i for i, s in enumerate(BY_NAME)}
    build = build_catalog(rows, data_root)
    cat = build.catalog
    out: dict[str, dict[str, Any]] = {}
    # input columns exist in their dataset (when the dataset's columns are known)
    for f in rows.get("FEATURE_LIBRARY", []):
        cols = build.columns.get(get(f, "dataset_id"))
        col = get(f, "input_col")
        if cols is not None and col not in cols:
            import difflib

            near = difflib.get_close_matches(col or "", sorted(cols), n=1)
            rep.at(
                "FEATURE_LIBRARY",
                f,
                "input_col",
                f"column '{col}' is not in dataset {get(f, 'dataset_id')} "
                f"(it has: {', '.join(sorted(cols))})",
                f"did you mean '{near[0]}'?" if near else "use one of its columns",
            )
    graphs, errors = dsl.check_catalog(cat)
    for e in errors:
        rep.errors.append(_cell_error(idx, e))
    feature_cells = {
        "feature": ("FEATURE_LIBRARY", "transform"),
        "engineered": ("ENGINEERED_FEATURES", "combine_transform"),
        "gate": ("GATES", "expression"),
    }
    for name, g in graphs.items():
        fd = cat.features[name]
        sheet, column = feature_cells[fd.role]
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
    templates = {get(t, "template_id"): t for t in rows.get("SIGNAL_TEMPLATES", [])}
    used: set[str] = set()
    execs = {
        "close": dsl.Execution.CLOSE,
        "next_open": dsl.Execution.NEXT_OPEN,
        "next_close": dsl.Execution.NEXT_CLOSE,
        "custom": dsl.Execution.CUSTOM,
    }
    freqs = {"daily": dsl.Frequency.DAILY, "1m": dsl.Frequency.MINUTE}
    for use in decision_uses(rows):
        s = use.strategy
        sid = get(s, "strategy_id")
        t = templates.get(get(s, "signal_template_id"))
        ex, fr = execs[use.execution], freqs[use.frequency]
        where = (
            f"strategy {sid}"
            + (f", backtest {use.backtest_id}" if use.backtest_id else "")
            + f", execution {use.execution}"
        )
        key = f"{sid}@{use.backtest_id or '-'}"
        params = (
            {**(get(t, "default_params_json") or {}), **(get(s, "params_json") or {})}
            if t is not None
            else dict(get(s, "params_json") or {})
        )
        if t is not None and get(t, "signal_expr"):
            used.add(get(t, "template_id"))
            slots = {
                k: v
                for k, v in (
                    ("primary", get(s, "primary_feature_id")),
                    ("secondary", get(s, "secondary_feature_id")),
                )
                if v
            }
            o = origin("SIGNAL_TEMPLATES", t, "signal_expr")
            try:
                g = dsl.check(
                    get(t, "signal_expr"),
                    cat,
                    params=params,
                    slots=slots,
                    frequency=fr,
                    decision=True,
                    execution=ex,
                    origin=o,
                )
                out[f"SIGNAL_TEMPLATES!{o.cell}|{key}"] = info(g, f"SIGNAL_TEMPLATES!{o.cell}", "signal_expr")
                if g.kind == dsl.Kind.BOOL:
                    rep.errors.append(
                        _cell_error(
                            idx,
                            dsl.DslError(
                                "the signal is true/false; it must give the desired position (-1, 0, +1 or a size)",
                                fix="wrap it, e.g. if(condition, 1, 0)",
                                text=get(t, "signal_expr"),
                                origin=o,
                            ),
                            where,
                        )
                    )
            except dsl.DslError as e:
                rep.errors.append(_cell_error(idx, e, where))
        for column, want in (("gate_expr", dsl.Kind.BOOL), ("scaling_expr", dsl.Kind.FLOAT)):
            text = get(s, column)
            if not text:
                continue
            o = origin("STRATEGIES", s, column)
            try:
                g = dsl.check(text, cat, params=params, frequency=fr, decision=True, execution=ex, origin=o)
            except dsl.DslError as e:
                rep.errors.append(_cell_error(idx, e, where))
                continue
            out[f"STRATEGIES!{o.cell}|{key}"] = info(g, f"STRATEGIES!{o.cell}", column)
            if g.kind != want:
                msg = (
                    "gate_expr must be true/false"
                    if want == dsl.Kind.BOOL
                    else "scaling_expr must be a number (a position size multiplier)"
                )
                rep.errors.append(
                    _cell_error(
                        idx,
                        dsl.DslError(
                            f"{msg}; this is {g.kind.value}",
                            text=text,
                            origin=o,
                            fix="compare it, e.g. vol < 0.2"
                            if want == dsl.Kind.BOOL
                            else "use a numeric expression, e.g. clip(0.15 / lag(spx_vol_20, 1), 0, 2)",
                        ),
                        where,
                    )
                )
    for tid, t in templates.items():  # templates no strategy uses: at least their syntax
        if tid not in used and get(t, "signal_expr"):
            try:
                dsl.parse(get(t, "signal_expr"), origin=origin("SIGNAL_TEMPLATES", t, "signal_expr"))
            except dsl.DslError as e:
                rep.errors.append(_cell_error(idx, e))
    return out


def _rc(cell: str) -> tuple[int, int]:
    m = re.match(r"([A-Z]+)(\d+)", cell)
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col
