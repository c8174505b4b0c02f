"""Read the saved workbook with openpyxl and coerce every cell to its declared type.

Why this is fussy: Excel hands us dates as datetimes or serial numbers, booleans as TRUE/1/Y/X, numbers
stored as text, stray and non-breaking spaces, blank rows, and formulas whose cached value may be missing
(a file written by a script and never opened in Excel). Each problem becomes a CellError naming the cell.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel

from runtime.config.schema import SHEETS, Col, Sheet
from runtime.contracts import CellError, UserError

ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_SPACES = re.compile(r"[\u00a0\u2000-\u200b\u202f\u205f\u3000]")
_TRUE = {"true", "1", "y", "yes", "x"}
_FALSE = {"false", "0", "n", "no"}
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class RawSheet:
    """A sheet as read: its header row and the non-blank data rows (Excel row number, cell values)."""

    name: str
    index: int
    headers: tuple[Any, ...]
    rows: tuple[tuple[int, tuple[Any, ...]], ...]
    formula_cells_without_value: frozenset[tuple[int, int]]  # (row, col) 1-based


@dataclass(frozen=True)
class RawWorkbook:
    path: Path
    sheet_names: tuple[str, ...]
    sheets: dict[str, RawSheet]
    epoch: dt.datetime


def clean_text(v: str) -> str:
    return _SPACES.sub(" ", v).strip()


def read_workbook(path: Path) -> RawWorkbook:
    """Load values (cached for formulas) plus the formula view to spot formulas without a cached value."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"workbook {path} not found; create it with `backtest init` or pass --workbook PATH")
    try:
        wb_values = openpyxl.load_workbook(path, data_only=True)
        wb_formulas = openpyxl.load_workbook(path, data_only=False)
    except Exception as exc:  # zip/xml errors from a damaged or non-xlsx file
        raise UserError(
            f"{path}: cannot be read as an .xlsx workbook ({exc}); save it again from Excel"
        ) from None
    sheets: dict[str, RawSheet] = {}
    for idx, ws in enumerate(wb_values.worksheets):
        wf = wb_formulas[ws.title]
        max_col = ws.max_column or 0
        values = [tuple(r) for r in ws.iter_rows(min_row=1, max_col=max_col, values_only=True)]
        formulas = [tuple(r) for r in wf.iter_rows(min_row=1, max_col=max_col, values_only=True)]
        headers = values[0] if values else ()
        missing: set[tuple[int, int]] = set()
        rows: list[tuple[int, tuple[Any, ...]]] = []
        for r_i, (vals, forms) in enumerate(zip(values[1:], formulas[1:], strict=False), start=2):
            blank = True
            for c_i, (v, f) in enumerate(zip(vals, forms, strict=False), start=1):
                if isinstance(f, str) and f.startswith("=") and v is None:
                    missing.add((r_i, c_i))
                    blank = False
                if not _is_blank(v):
                    blank = False
            if not blank:
                rows.append((r_i, vals))
        sheets[ws.title] = RawSheet(ws.title, idx, headers, tuple(rows), frozenset(missing))
    return RawWorkbook(path, tuple(wb_values.sheetnames), sheets, wb_values.epoch)


def _is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and clean_text(v) == "")


class CoerceError(ValueError):
    """A cell value that cannot be read as its column's type; message says what and how to fix."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.fix = fix


def coerce(col: Col, value: Any, epoch: dt.datetime) -> Any:
    """Typed value of one cell (None for blank); raises CoerceError."""
    if _is_blank(value):
        return None
    t = col.type
    if t in ("str", "expr", "path"):
        return _as_text(value, keep_newlines=(t == "expr"))
    if t == "id":
        s = _as_text(value)
        if not ID_RE.match(s):
            raise CoerceError(
                f"'{s}' is not a valid id",
                "use letters, digits and _ only, starting with a letter or _ (e.g. spx_ret)",
            )
        return s
    if t == "int":
        return _as_int(value, col)
    if t == "float":
        return _as_float(value, col)
    if t == "bool":
        return _as_bool(value)
    if t == "flag":
        b = _as_bool(value)
        return b
    if t == "date":
        return _as_date(value, epoch)
    if t == "time":
        return _as_time(value)
    if t == "json":
        return _as_json(value)
    if t == "enum":
        return _as_enum(_as_text(value), col)
    if t == "list":
        items = _as_list(value)
        if col.enum:
            for it in items:
                _as_enum(it, col)
            items = [_as_enum(it, col) for it in items]
        return items
    if t == "tz":
        s = _as_text(value)
        try:
            zoneinfo.ZoneInfo(s)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise CoerceError(
                f"'{s}' is not a time zone", "use an IANA name such as America/Chicago or UTC"
            ) from None
        return s
    if t == "any":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return int(value) if float(value).is_integer() and isinstance(value, int) else float(value)
        s = _as_text(value)
        try:
            f = float(s)
            return int(f) if re.fullmatch(r"[+-]?\d+", s) else f
        except ValueError:
            return s
    raise AssertionError(f"unknown column type {t}")


def _as_text(value: Any, keep_newlines: bool = False) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = str(value)
    if keep_newlines:
        return _SPACES.sub(" ", s).strip()
    return clean_text(s.replace("\r", " ").replace("\n", " "))


def _num_text(value: Any) -> str:
    s = clean_text(str(value)).replace(" ", "")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s


def _range_check(x: float, col: Col) -> None:
    if col.min is not None and x < col.min:
        raise CoerceError(f"{x:g} is below the minimum {col.min:g}", f"enter a value >= {col.min:g}")
    if col.max is not None and x > col.max:
        raise CoerceError(f"{x:g} is above the maximum {col.max:g}", f"enter a value <= {col.max:g}")


def _as_int(value: Any, col: Col) -> int:
    if isinstance(value, bool):
        raise CoerceError(f"{value} is not a whole number", "enter a whole number such as 60")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise CoerceError(
                f"{value:g} is not a whole number", f"enter a whole number such as {round(value)}"
            )
        out = int(value)
    else:
        s = _num_text(value)
        try:
            f = float(s)
        except ValueError:
            raise CoerceError(
                f"'{clean_text(str(value))}' is not a number", "enter a whole number such as 60"
            ) from None
        if not f.is_integer():
            raise CoerceError(f"{s} is not a whole number", f"enter a whole number such as {round(f)}")
        out = int(f)
    _range_check(out, col)
    return out


def _as_float(value: Any, col: Col) -> float:
    if isinstance(value, bool):
        raise CoerceError(f"{value} is not a number", "enter a number such as 0.5")
    if isinstance(value, int | float):
        out = float(value)
    else:
        s = _num_text(value)
        pct = s.endswith("%")
        try:
            out = float(s[:-1]) / 100.0 if pct else float(s)
        except ValueError:
            raise CoerceError(
                f"'{clean_text(str(value))}' is not a number", "enter a number such as 0.5"
            ) from None
    if out != out or out in (float("inf"), float("-inf")):
        raise CoerceError(f"{out} is not a finite number", "enter a finite number")
    _range_check(out, col)
    return out


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    s = clean_text(str(value)).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise CoerceError(
        f"'{clean_text(str(value))}' is not TRUE or FALSE", "enter TRUE or FALSE (or X / blank)"
    )


_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d-%b-%Y",
    "%d %b %Y",
    "%Y%m%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)


def _as_date(value: Any, epoch: dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 1 <= value < 2_958_466:
            raise CoerceError(f"{value:g} is not a date", "enter a date such as 2024-01-31")
        return from_excel(value, epoch=epoch).date()
    s = clean_text(str(value))
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return _as_date(float(s), epoch)
    raise CoerceError(f"'{s}' is not a date", "enter a date such as 2024-01-31 (ISO) or an Excel date")


def _as_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value.time()
    if isinstance(value, dt.time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1:
        minutes = round(value * 24 * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    s = clean_text(str(value))
    m = TIME_RE.match(s[:5] if len(s) == 8 and s.endswith(":00") else s)
    if not m:
        raise CoerceError(f"'{s}' is not a time", "enter HH:MM in exchange time, e.g. 08:30")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _as_json(value: Any) -> dict[str, Any]:
    s = _as_text(value, keep_newlines=True)
    s = s.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        out = json.loads(s)
    except json.JSONDecodeError as exc:
        raise CoerceError(
            f"invalid JSON ({exc.msg} at character {exc.pos + 1})",
            'write a JSON object such as {"window": 60} (double quotes around names)',
        ) from None
    if not isinstance(out, dict):
        raise CoerceError("JSON must be an object", 'write {"name": value, ...}')
    return out


def _as_enum(s: str, col: Col) -> str:
    for option in col.enum:
        if s.lower() == option.lower():
            return option
    if not col.strict_enum:
        return s
    why = f" ({col.doc})" if col.doc and len(col.enum) == 1 else ""  # a one-value column says why
    raise CoerceError(
        f"'{s}' is not one of {', '.join(col.enum)}{why}", "pick a value from the cell's dropdown"
    )


def _as_list(value: Any) -> list[str]:
    s = _as_text(value)
    return [p.strip() for p in re.split(r"[,;]", s) if p.strip()]


def cell_name(col_index: int, row: int) -> str:
    return f"{get_column_letter(col_index)}{row}"


def check_structure(raw: RawWorkbook) -> list[CellError]:
    """Sheets present and in order; header row exact (extra trailing columns allowed)."""
    errors: list[CellError] = []
    order = {s.name: i for i, s in enumerate(SHEETS)}
    for i, spec in enumerate(SHEETS):
        if spec.name not in raw.sheets:
            unknown = [n for n in raw.sheet_names if n not in order]
            near = [n for n in unknown if n.strip().upper() == spec.name] or difflib.get_close_matches(
                spec.name, unknown, n=1, cutoff=0.7
            )
            fix = (
                f"rename sheet '{near[0]}' to {spec.name}"
                if near
                else "add it (or regenerate with backtest init)"
            )
            errors.append(CellError(i, 0, 0, spec.name, "A1", f"sheet {spec.name} is missing", fix))
            continue
        errors.extend(_check_headers(spec, raw.sheets[spec.name], i))
    present = [n for n in raw.sheet_names if n in order]
    expected = [s.name for s in SHEETS if s.name in raw.sheets]
    if present != expected:
        first_bad = next(a for a, b in zip(present, expected, strict=True) if a != b)
        errors.append(
            CellError(
                order[first_bad],
                0,
                0,
                first_bad,
                "A1",
                f"sheet {first_bad} is out of order (expected order: {', '.join(expected)})",
                "drag the sheet tabs back into the documented order",
            )
        )
    return errors


def _check_headers(spec: Sheet, sheet: RawSheet, sheet_index: int) -> list[CellError]:
    errors = []
    got = [clean_text(str(h)) if h is not None else "" for h in sheet.headers]
    for j, col in enumerate(spec.cols, start=1):
        have = got[j - 1] if j - 1 < len(got) else ""
        if have == col.name:
            continue
        cell = cell_name(j, 1)
        if have == "":
            msg = f"header '{col.name}' is missing"
        elif col.name in got:
            msg = f"header '{have}' found where '{col.name}' belongs (columns are out of order)"
        else:
            msg = f"header '{have}' should be '{col.name}'"
        errors.append(
            CellError(
                sheet_index, 1, j, spec.name, cell, msg, f"headers must read: {', '.join(spec.headers)}"
            )
        )
        break  # one header error per sheet: the rest would all be shifted
    return errors


def coerce_rows(
    spec: Sheet, sheet: RawSheet, sheet_index: int, epoch: dt.datetime
) -> tuple[list[dict], list[CellError]]:
    """Typed rows (with '_row') of one sheet, plus every cell error found."""
    errors: list[CellError] = []
    out: list[dict] = []
    for r, values in sheet.rows:
        row: dict[str, Any] = {"_row": r}
        for j, col in enumerate(spec.cols, start=1):
            v = values[j - 1] if j - 1 < len(values) else None
            cell = cell_name(j, r)
            if (r, j) in sheet.formula_cells_without_value:
                errors.append(
                    CellError(
                        sheet_index,
                        r,
                        j,
                        spec.name,
                        cell,
                        "formula has no cached value (the file was saved without calculating)",
                        "open the workbook in Excel and save it, or type the value",
                    )
                )
                row[col.name] = None
                continue
            try:
                typed = coerce(col, v, epoch)
            except CoerceError as exc:
                errors.append(CellError(sheet_index, r, j, spec.name, cell, f"{col.name}: {exc}", exc.fix))
                row[col.name] = None
                continue
            if typed is None and col.default is not None:
                typed = col.default
            if typed is None and col.type == "flag":
                typed = False
            if typed is None and col.required:
                errors.append(
                    CellError(
                        sheet_index, r, j, spec.name, cell, f"{col.name} is required", "fill in this cell"
                    )
                )
            row[col.name] = typed
        out.append(row)
    return out, errors
