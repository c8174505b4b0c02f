"""Issue 8, workbook holes: lookahead overrides, pasted API keys, bad ids, missing DATA_ROOT, error cascades,
parameter typos, availability provenance, and the package layering of runtime/ (no import cycles).

Expected values come from the workbook as written (read back with openpyxl here), never from the validator.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import openpyxl
import pytest

import dsl
from runtime.config.export import export_workbook, validate_only
from runtime.config.expressions import BAR_COLUMNS, build_catalog, check_expressions
from runtime.config.reader import read_workbook
from runtime.config.validate import Ctx, validate_workbook
from runtime.contracts import CellError, ConfigValidationError
from tests.foundation.helpers import edit, wb_path

KEY = "db-AbCdEfGhIjKlMnOpQrStUvWxYz123"


def cell(path: Path, sheet: str, ref: str) -> object:
    return openpyxl.load_workbook(path)[sheet][ref].value


def errors_of(path: Path) -> list[CellError]:
    with pytest.raises(ConfigValidationError) as ei:
        validate_only(path)
    return ei.value.errors


def at(errors: list[CellError], where: str) -> list[CellError]:
    return [e for e in errors if f"{e.sheet}!{e.cell}" == where]


# ---- lookahead through an availability override --------------------------------------------------------


@pytest.mark.parametrize(
    "sheet, ref, dataset_cell",
    [
        ("FEATURE_LIBRARY", "I2", "J6"),  # cta_flow <- dataset CTA
        ("ENGINEERED_FEATURES", "G3", "J6"),  # cta_flow_z <- cta_flow <- CTA
    ],
)
def test_override_earlier_than_the_data_is_refused(
    project: Path, sheet: str, ref: str, dataset_cell: str
) -> None:
    path = wb_path(project)
    assert cell(path, "DATASETS", "A6") == "CTA" and cell(path, "DATASETS", "I6") == "after_close"
    lag = cell(path, "DATASETS", dataset_cell)
    assert lag == 1
    edit(path, [(sheet, ref, lag - 1)])
    errs = errors_of(path)
    mine = at(errs, f"{sheet}!{ref}")
    assert len(mine) == 1, [e.render() for e in errs]
    text = mine[0].render()
    assert "lookahead" in text and f"DATASETS!{dataset_cell}" in text and f"set {lag} or more" in text
    assert not (project / "config" / "exports").exists()
    edit(path, [(sheet, ref, lag + 1)])  # later than the data: allowed (other cells may then need more lag)
    try:
        validate_only(path)
    except ConfigValidationError as exc:
        assert not at(exc.errors, f"{sheet}!{ref}"), [e.render() for e in exc.errors]


def test_catalog_never_sees_an_override_earlier_than_the_data(project: Path) -> None:
    """Even rows that skipped validation (backtest compile builds its catalog from any rows) cannot lag 0."""
    path = wb_path(project)
    edit(path, [("FEATURE_LIBRARY", "I2", 0)])
    stage = (lambda rows, rep, ctx: check_expressions(rows, rep),)
    rows, errors = validate_workbook(read_workbook(path), Ctx(project_root=project), extra_stages=stage)
    assert [f"{e.sheet}!{e.cell}" for e in errors] == ["FEATURE_LIBRARY!I2"]  # the workbook is refused ...
    cat = build_catalog(rows).catalog  # ... and a catalog built from its rows anyway stays honest
    with pytest.raises(dsl.DslError) as ei:
        dsl.check("zscore(cta_flow, 60) > 0", cat, decision=True, execution=dsl.Execution.CLOSE)
    assert "DATASETS!J6" in ei.value.render()
    dsl.check("zscore(lag(cta_flow, 1), 60) > 0", cat, decision=True, execution=dsl.Execution.CLOSE)


# ---- a pasted API key --------------------------------------------------------------------------------------


def test_api_key_is_refused_in_every_sheet_and_never_written(project: Path, cli) -> None:
    path = wb_path(project)
    wb = openpyxl.load_workbook(path)
    planted = []
    for ws in wb.worksheets:  # every sheet: one key in a data cell past the last used column
        c = ws.cell(row=2, column=ws.max_column + 1, value=f"my key {KEY}")
        planted.append(f"{ws.title}!{c.coordinate}")
    wb["DATASETS"]["M2"] = KEY  # and the issue's own example, in a spec column
    planted.append("DATASETS!M2")
    wb.save(path)
    errs = errors_of(path)
    got = {f"{e.sheet}!{e.cell}" for e in errs if "API key" in e.message}
    assert got == set(planted)
    assert errs[0].message.startswith("this cell holds what looks like a Databento API key")
    r = cli(["config", "export"], cwd=project)
    assert r.code == 1 and "DATABENTO_API_KEY" in r.err and "Traceback" not in r.err
    assert KEY not in r.err + r.out
    assert not (project / "config" / "exports").exists()
    assert not (project / "data").exists()


# ---- blank or invalid ids that are still referenced ---------------------------------------------------------


@pytest.mark.parametrize("value", ["credit-ok", "credit ok", "credit\U0001f600", None])
def test_invalid_gate_id_is_reported_first_with_its_dangling_reference(project: Path, value) -> None:
    path = wb_path(project)
    assert cell(path, "GATES", "A3") == "credit_ok" and "credit_ok" in cell(path, "STRATEGIES", "N2")
    edit(path, [("GATES", "A3", value)])
    errs = errors_of(path)  # a ConfigValidationError, not an AttributeError from the DSL
    assert (errs[0].sheet, errs[0].cell) == ("GATES", "A3")
    assert ("not a valid id" if value else "is required") in errs[0].message
    assert any(e.cell == "N2" and "credit_ok" in e.render() for e in at(errs, "STRATEGIES!N2"))


def test_blank_feature_id_does_not_crash(project: Path) -> None:
    path = wb_path(project)
    edit(path, [("FEATURE_LIBRARY", "A2", None)])
    errs = errors_of(path)
    assert (errs[0].sheet, errs[0].cell) == ("FEATURE_LIBRARY", "A2") and "required" in errs[0].message


# ---- DATA_ROOT that does not exist ---------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt" or not Path("/proc").is_dir(), reason="needs a POSIX /proc")
@pytest.mark.parametrize("ref, header", [("D2", "DATA_ROOT"), ("J2", "LOG_DIR")])
def test_uncreatable_profile_folder_is_refused_by_validate_and_export(
    project: Path, cli, ref, header
) -> None:
    path = wb_path(project)
    assert cell(path, "PATHS", f"{ref[0]}1") == header
    edit(path, [("PATHS", ref, "/proc/nonexist/x")])
    for cmd in (["config", "validate"], ["config", "export"]):
        r = cli(cmd, cwd=project)
        assert r.code == 1 and f"PATHS!{ref}" in r.err and "Traceback" not in r.err, r.err
    assert not (project / "config" / "exports").exists()


def test_missing_data_root_is_never_created_silently(project: Path, cli) -> None:
    r = cli(["config", "export"], cwd=project)
    assert r.code == 0 and "backtest init --data" in r.out, r.err
    data = project / "data"
    assert not data.exists()  # export writes config only
    for cmd in (["status"], ["ingest", "daily"], ["ingest", "databento"], ["derive"]):
        r = cli(cmd, cwd=project)
        assert r.code == 1, (cmd, r.out, r.err)
        assert "Traceback" not in r.err and "PATHS!D2" in r.err and "'portable'" in r.err, r.err
        assert "backtest init --data" in r.err
        assert not data.exists(), cmd
    r = cli(["init", "--data"], cwd=project)
    assert r.code == 0 and "created" in r.out, r.err
    assert (data / "duckdb" / "research.duckdb").is_file()
    r = cli(["init", "--data"], cwd=project)  # idempotent
    assert r.code == 0 and "exists" in r.out
    assert cli(["status"], cwd=project).code == 0


# ---- cascades: root causes first, follow-ons counted, one report per cell ------------------------------------


def test_header_typo_is_one_problem_with_its_follow_ons_counted(project: Path) -> None:
    path = wb_path(project)
    assert cell(path, "FEATURE_LIBRARY", "C1") == "dataset_id"
    edit(path, [("FEATURE_LIBRARY", "C1", "datset_id")])
    errs = errors_of(path)
    assert len(errs) == 1, [e.render() for e in errs]
    assert errs[0].cell == "C1" and "that follow from it" in errs[0].render()


def test_renamed_sheet_is_listed_first_with_the_rename_fix(project: Path) -> None:
    path = wb_path(project)
    wb = openpyxl.load_workbook(path)
    wb["GATES"].title = "GATE"
    wb["BACKTESTS"]["E2"] = "x"  # an unrelated cell error in an earlier sheet
    wb.save(path)
    errs = errors_of(path)
    assert (errs[0].sheet, errs[0].message) == ("GATES", "sheet GATES is missing")
    assert "rename sheet 'GATE' to GATES" in errs[0].fix
    assert any(e.sheet == "BACKTESTS" and e.cell == "E2" for e in errs[1:])
    assert not any("unknown name" in e.render() for e in errs)  # gate names: follow-ons, not listed


def test_bad_gate_cell_is_reported_once_for_all_backtests(project: Path) -> None:
    path = wb_path(project)
    assert cell(path, "GATES", "B2") == "NOT vix_high"  # calm_vol: used by both strategies and backtests
    edit(path, [("GATES", "B2", "NOT vix_hihg")])
    errs = errors_of(path)
    assert len(at(errs, "GATES!B2")) == 1, [e.render() for e in errs]
    assert "did you mean 'vix_high'" in at(errs, "GATES!B2")[0].render()


def test_1m_backtest_of_a_daily_strategy_blames_the_frequency_cell(project: Path) -> None:
    path = wb_path(project)
    assert cell(path, "BACKTESTS", "S1") == "frequency" and cell(path, "BACKTESTS", "B2") == "spx_cta_z"
    edit(path, [("BACKTESTS", "S2", "1m")])
    errs = errors_of(path)
    assert [f"{e.sheet}!{e.cell}" for e in errs] == ["BACKTESTS!S2"], [e.render() for e in errs]
    assert "daily" in errs[0].message


# ---- parameter typos ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sheet, ref, value, where, near",
    [
        ("OPTIMIZATION_PARAMS", "D2", "windw", "OPTIMIZATION_PARAMS!D2", "window"),
        (
            "SIGNAL_TEMPLATES",
            "J4",
            "if(lag({primary}, $lagg) > lag({secondary}, $lag), 1, -1)",
            "SIGNAL_TEMPLATES!J4",
            "$lag",
        ),
        ("STRATEGIES", "P2", '{"lag": 1, "windw": 60, "entry": 0.5}', "STRATEGIES!P2", "window"),
    ],
)
def test_parameter_typos_are_refused_with_did_you_mean(project: Path, sheet, ref, value, where, near) -> None:
    path = wb_path(project)
    edit(path, [(sheet, ref, value)])
    errs = errors_of(path)
    mine = at(errs, where)
    assert mine and f"did you mean '{near}'" in mine[0].render(), [e.render() for e in errs]


# ---- where an availability comes from ---------------------------------------------------------------------------


def test_availability_names_its_real_source(project: Path) -> None:
    path = wb_path(project)
    assert cell(path, "DATASETS", "A8") == "ES" and cell(path, "DATASETS", "B8") == "intraday_trades"
    assert cell(path, "DATASETS", "J8") == 0
    rows, errors = validate_workbook(read_workbook(path), Ctx(project_root=project))
    assert not errors
    cat = build_catalog(rows).catalog
    with pytest.raises(dsl.DslError) as ei:
        dsl.check(
            "es_delta > 0", cat, frequency=dsl.Frequency.MINUTE, decision=True, execution=dsl.Execution.CLOSE
        )
    text = ei.value.render()
    assert "DATASETS!B8" in text and "known at its end" in text and "J8" not in text
    with pytest.raises(dsl.DslError) as ei:
        dsl.check("cta_flow > 0", cat, decision=True, execution=dsl.Execution.CLOSE)
    assert "DATASETS!J6" in ei.value.render()


# ---- the house: no import cycles among runtime packages ------------------------------------------------------

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


def _import_graph(level: int) -> dict[str, set[str]]:
    """runtime.<a>[.<b>] -> the runtime units it imports (every import, lazy ones inside functions too)."""
    graph: dict[str, set[str]] = {}
    for f in RUNTIME.rglob("*.py"):
        rel = f.relative_to(RUNTIME.parent).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        src = ".".join(parts[: level + 1])
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                mods = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                mods = [n.module]
            else:
                continue
            for m in mods:
                dst = ".".join(m.split(".")[: level + 1])
                if m.startswith("runtime.") and dst != src:
                    graph.setdefault(src, set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return [*stack[stack.index(w) :], w]
            if w not in state and (c := visit(w)):
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_runtime_packages_import_each_other_without_cycles() -> None:
    """Layering: contracts/storage < config < ingest < derive < charts < app/cli (design/DECISIONS.md)."""
    graph = _import_graph(1)
    assert "runtime.config" in graph and "runtime.ingest" in graph  # the walk sees the code
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_config_modules_import_each_other_without_cycles() -> None:
    graph = {k: v for k, v in _import_graph(2).items() if k.startswith("runtime.config.")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_bar_columns_match_the_derived_tables() -> None:
    """config lists the 1-minute columns expressions may use without importing derive; keep them equal."""
    from runtime.derive.layout import BARS_SCHEMA, CVD_SCHEMA

    derived = [f.name for s in (BARS_SCHEMA, CVD_SCHEMA) for f in s]
    keys = {"session", "trade_date", "ts", "symbol"}
    assert list(BAR_COLUMNS) == [c for c in dict.fromkeys(derived) if c not in keys]


def test_export_of_the_template_still_works(project: Path) -> None:
    res = export_workbook(wb_path(project))
    assert res.latest is not None and res.latest.is_file()


def test_every_sheet_with_an_availability_override_has_a_floor_rule() -> None:
    """A new sheet (or extension column) with availability_lag_days must get a floor rule in
    runtime.config.expressions.feature_floor, or its overrides could declare lookahead unchecked."""
    from runtime.config.expressions import FLOOR_SHEETS
    from runtime.config.schema import SHEETS

    with_override = {s.name for s in SHEETS if "availability_lag_days" in s.headers}
    assert {"FEATURE_LIBRARY", "ENGINEERED_FEATURES"} <= with_override  # the walk sees the schema
    assert with_override <= set(FLOOR_SHEETS), with_override - set(FLOOR_SHEETS)
