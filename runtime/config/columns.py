"""Which columns a daily dataset has: ONE rule, used by export (what expressions may name) and ingest (what
is stored).

Why one rule: export used to take the columns from the source file's header row while ingest kept only the
columns with numbers, so a text column (`HY.comment`), a column of '1.5%' strings or two headers that become
the same name (`HY OAS` / `HY-OAS`) were accepted by export and never had data. Here a column is *kept* when
its header makes a valid, unique series name and its cells are numbers (or blank / NA tokens, or percent text
like '1.5%', read as Excel does: 0.015). A column with a header but no number at all is *dropped* with its
reason (text, empty); a column mixing numbers and text, a duplicate or reserved name is a *problem* (ingest
refuses the file, naming the cells). Lives in runtime.config (not runtime.ingest) because config must not
import ingest (design/DECISIONS.md "Package layering"); ingest imports it from here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from openpyxl.utils import get_column_letter

from runtime.config.schema import BY_NAME
from runtime.config.sources import canonical_name, resolve_source_path, split_source
from runtime.contracts import UserError

#: bump when the rule changes what a file yields: a stored ingest made under another rule is re-parsed
RULE_VERSION = 2
MISSING_TOKENS = {"", "na", "n/a", "#n/a", "nan", "null", "none", "-", "\u2014", ".", "#value!", "#div/0!"}
RESERVED = ("date", "known_at", "ingest_id", "deleted", "year")
HEADER_SEARCH_ROWS = 30
_SPACES = re.compile(r"[\s\u00a0]+")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def dataset_cell(ds: Any, header: str) -> str:
    """'DATASETS!D10': the workbook cell of one DATASETS column for this dataset row (typed or dict row).

    The one helper every message uses to name the place to fix (ingest, derive, the API download).
    """
    row = int(ds["_row"]) if isinstance(ds, Mapping) else int(ds.row)
    return f"DATASETS!{get_column_letter(BY_NAME['DATASETS'].headers.index(header) + 1)}{row}"


class SourceProblem(UserError):
    """The source file does not match a DATASETS cell (sheet, date column): `column` names that cell."""

    def __init__(self, column: str, message: str, fix: str) -> None:
        self.column, self.message, self.fix = column, message, fix
        super().__init__(f"{message}; fix: {fix}")

    def at(self, cell: str) -> UserError:
        """The same problem, naming the workbook cell to fix (e.g. DATASETS!D10)."""
        return UserError(f"{cell}: {self.message}; fix: {self.fix}")


@dataclass(frozen=True)
class Grid:
    """One sheet's cells as values, with the header row located (the row holding date_col)."""

    path: Path
    sheet: str  # the sheet title actually read
    rows: Sequence[tuple[Any, ...]]
    epoch: dt.datetime
    header_i: int  # 0-based index of the header row in `rows`
    date_j: int  # 0-based index of the date column

    @property
    def header(self) -> tuple[Any, ...]:
        return self.rows[self.header_i]

    def body(self) -> list[tuple[int, tuple[Any, ...]]]:
        """(Excel row number, cells) of every non-blank row under the header."""
        out = [(self.header_i + 2 + k, r) for k, r in enumerate(self.rows[self.header_i + 1 :])]
        return [(n, r) for n, r in out if any(c is not None and str(c).strip() != "" for c in r)]


@dataclass(frozen=True)
class KeptColumn:
    name: str  # canonical series name (DSL identifier)
    header: str  # as written
    letter: str  # Excel column letter
    values: np.ndarray  # float64 per body row (NaN = missing)


@dataclass(frozen=True)
class DroppedColumn:
    header: str
    letter: str
    reason: str


@dataclass(frozen=True)
class SheetColumns:
    """The rule's verdict on every column of a sheet (besides the date column)."""

    kept: tuple[KeptColumn, ...]
    dropped: tuple[DroppedColumn, ...]
    problems: tuple[tuple[str, str], ...]  # (message naming cells, fix): ingest refuses the file
    ambiguous: Mapping[str, str]  # canonical name -> why it is not usable (duplicate headers)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.kept)

    def why_not(self, name: str) -> str | None:
        """Why `name` is not a usable column (dropped or ambiguous), or None if the rule never saw it."""
        if name in self.ambiguous:
            return self.ambiguous[name]
        for d in self.dropped:
            if canonical_name(d.header) == name:
                return f"column {d.letter} '{d.header}' is {d.reason}"
        return None


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def parse_number(v: Any) -> tuple[float | None, bool]:
    """(value, ok): blank/NA tokens are missing (never 0); '1,234.5' and '1.5%' (= 0.015) are numbers."""
    if v is None:
        return None, True
    if isinstance(v, bool):
        return None, False
    if isinstance(v, int | float):
        f = float(v)
        return (None, True) if np.isnan(f) else (f, True)
    s = _SPACES.sub("", str(v))
    if s.lower() in MISSING_TOKENS:
        return None, True
    scale = 1.0
    if s.endswith("%"):
        s, scale = s[:-1], 0.01
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    try:
        return float(s) * scale, True
    except ValueError:
        return None, False


def read_grid(path: Path, sheet: str | None, date_col: str) -> Grid:
    """Open the xlsx, pick the sheet, find the header row; SourceProblem names the DATASETS cell to fix."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except FileNotFoundError:
        raise SourceProblem(
            "source_path_or_id", f"file {path} not found", "check the path (relative to DATA_ROOT)"
        ) from None
    except Exception as exc:
        raise SourceProblem(
            "source_path_or_id", f"{path} cannot be read as .xlsx ({exc})", "save it again from Excel"
        ) from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise SourceProblem(
                "source_path_or_id",
                f"{path.name} has no sheet '{sheet}' (sheets: {', '.join(wb.sheetnames)})",
                "write path#sheet with one of those sheet names",
            )
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
        epoch, title = wb.epoch, ws.title
    finally:
        wb.close()
    want = _norm(date_col)
    for i, r in enumerate(rows[:HEADER_SEARCH_ROWS]):
        for j, c in enumerate(r):
            if isinstance(c, str) and _norm(c) == want:
                return Grid(path, title, rows, epoch, i, j)
    seen = [str(c).strip() for r in rows[:HEADER_SEARCH_ROWS] for c in r if isinstance(c, str) and c.strip()]
    hint = f" (headers seen: {', '.join(seen[:8])})" if seen else ""
    raise SourceProblem(
        "date_col",
        f"{path.name}#{title} has no column '{date_col}' in its first {HEADER_SEARCH_ROWS} rows{hint}",
        "set date_col to the header of the date column",
    )


def classify(grid: Grid, body: Sequence[tuple[int, tuple[Any, ...]]] | None = None) -> SheetColumns:
    """Apply the rule to every non-date column of the sheet (pure: cells in, verdict out)."""
    body = grid.body() if body is None else body
    kept: list[KeptColumn] = []
    dropped: list[DroppedColumn] = []
    problems: list[tuple[str, str]] = []
    first: dict[str, tuple[str, str]] = {}  # canonical name -> (letter, header) of its first column
    ambiguous: dict[str, str] = {}
    hrow = grid.header_i + 1
    for j, h in enumerate(grid.header):
        if j == grid.date_j:
            continue
        letter = get_column_letter(j + 1)
        cells = [r[j] if j < len(r) else None for _, r in body]
        if h is None or str(h).strip() == "":
            if any(c is not None and str(c).strip() != "" for c in cells):
                dropped.append(DroppedColumn("", letter, "a column with values but no header"))
            continue
        header = str(h).strip()
        name = canonical_name(header)
        if not name or name in RESERVED:
            problems.append(
                (
                    f"{letter}{hrow}: header '{header}' cannot be a series name"
                    + (f" ('{name}' is reserved)" if name else ""),
                    "rename the header (letters, digits; not date/known_at/ingest_id/deleted/year)",
                )
            )
            continue
        if name in first:
            fl, fh = first[name]
            why = f"headers {fl}{hrow} '{fh}' and {letter}{hrow} '{header}' both become the series name '{name}'"
            ambiguous[name] = why
            problems.append((why, "rename one of the two headers so they differ in letters or digits"))
            continue
        first[name] = (letter, header)
        col = _column(name, header, letter, body, j)
        if isinstance(col, KeptColumn):
            kept.append(col)
        elif isinstance(col, DroppedColumn):
            dropped.append(col)
        else:
            problems.extend(col)
    names_dup = set(ambiguous)
    return SheetColumns(
        tuple(c for c in kept if c.name not in names_dup), tuple(dropped), tuple(problems), ambiguous
    )


def _column(
    name: str, header: str, letter: str, body: Sequence[tuple[int, tuple[Any, ...]]], j: int
) -> KeptColumn | DroppedColumn | list[tuple[str, str]]:
    arr = np.full(len(body), np.nan)
    bad: list[str] = []
    for k, (n, r) in enumerate(body):
        v = r[j] if j < len(r) else None
        x, ok = parse_number(v)
        if not ok:
            bad.append(f"{letter}{n}: '{v}' is not a number")
        elif x is not None:
            arr[k] = x
    n_num = int((~np.isnan(arr)).sum())
    if n_num == 0:
        reason = "text (no numbers)" if bad else "empty (no values yet)"
        return DroppedColumn(header, letter, reason)
    if bad:
        return [(b, "type numbers (or leave blank for missing) in series columns") for b in bad]
    return KeptColumn(name, header, letter, arr)


@functools.lru_cache(maxsize=64)
def _cached(path: str, mtime_ns: int, size: int, sheet: str | None, date_col: str) -> SheetColumns:
    return classify(read_grid(Path(path), sheet, date_col))


def dataset_columns(ds: Any, data_root: Path | None) -> SheetColumns | None:
    """The rule applied to a daily xlsx dataset's live source file; None when there is no file to read.

    Raises SourceProblem when the file does not match the DATASETS row (no such sheet, no date column).
    """
    get: Callable[[str], Any] = ds.get if isinstance(ds, Mapping) else (lambda h: getattr(ds, h, None))
    if data_root is None or get("source_type") != "xlsx":
        return None
    spec, sheet = split_source(get("source_path_or_id") or "")
    path = resolve_source_path(spec, data_root)
    if not path.is_file():
        return None
    st = path.stat()
    return _cached(str(path), st.st_mtime_ns, st.st_size, sheet, get("date_col") or "Date")


#: where the kept column names of each source file are remembered between processes (by path, size,
#: mtime, sheet, date column): parsing a 5,000-row xlsx with openpyxl costs ~1.5 s, and every `eval`,
#: `features build` and `run` builds the catalog. A changed file has another key, so it is read again.
HEADER_CACHE = Path("duckdb") / "source_columns.json"


def _header_key(ds: Any, data_root: Path) -> str | None:
    get: Callable[[str], Any] = ds.get if isinstance(ds, Mapping) else (lambda h: getattr(ds, h, None))
    if get("source_type") != "xlsx":
        return None
    spec, sheet = split_source(get("source_path_or_id") or "")
    path = resolve_source_path(spec, data_root)
    if not path.is_file():
        return None
    st = path.stat()
    return json.dumps([str(path), st.st_size, st.st_mtime_ns, sheet, get("date_col") or "Date"])


def source_columns(ds: Any, data_root: Path | None, *, remember: bool = False) -> frozenset[str] | None:
    """Series columns of a daily dataset as ingest will keep them (None: unknown here, file absent/unreadable).

    `remember`: also write them to HEADER_CACHE (evaluation commands; export and validate only read it, so
    a failed export writes nothing)."""
    key = _header_key(ds, data_root) if data_root is not None else None
    store = data_root / HEADER_CACHE if data_root is not None else None
    known: dict[str, list[str]] = {}
    if key is not None and store is not None and store.is_file():
        try:
            known = json.loads(store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        if key in known:
            return frozenset(known[key])
    try:
        cols = dataset_columns(ds, data_root)
    except UserError:  # reported at its DATASETS cell by check_source_columns
        return None
    if cols is None:
        return None
    if remember and key is not None and store is not None and store.parent.is_dir():
        known[key] = sorted(cols.names)
        tmp = store.with_name(f".tmp-{os.getpid()}-{store.name}")
        with contextlib.suppress(OSError):  # a read-only DATA_ROOT only loses the speed-up
            tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
            os.replace(tmp, store)  # atomic: a reader sees the old file or the new one
    return cols.names


def explain_column(ds: Any, data_root: Path | None, name: str) -> str | None:
    """Why `name` will never have data in this dataset (dropped or ambiguous by the rule), else None."""
    try:
        cols = dataset_columns(ds, data_root)
    except UserError:
        return None
    return None if cols is None else cols.why_not(name)


def check_source_columns(rows: Mapping[str, Sequence[Any]], rep: Any, data_root: Path | None) -> None:
    """Export: a source file that does not match its DATASETS row is an error at that row's cell."""
    for d in rows.get("DATASETS", []):
        if (d.get("enabled") if isinstance(d, Mapping) else getattr(d, "enabled", True)) is False:
            continue  # an idle row is not ingested
        try:
            dataset_columns(d, data_root)
        except SourceProblem as p:
            rep.at("DATASETS", d, p.column, p.message, p.fix)
        except UserError as exc:
            rep.at("DATASETS", d, "source_path_or_id", str(exc), "fix the source file")
