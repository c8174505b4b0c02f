"""The control plane: template workbook, validation of broken workbooks, export hash, round trip."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest

from runtime.config.export import export_workbook
from runtime.config.loader import load_snapshot
from runtime.contracts import ConfigValidationError, UserError
from tests.foundation.helpers import edit, wb_path

# The spec's EXCEL WORKBOOK SCHEMA, typed out here from the seed document (not imported from the code).
SPEC = {
    "RUNBOOK": "StepNo, Task, CommandOrAction, Notes",
    "PATHS": "Profile, IsActive, CODE_ROOT, DATA_ROOT, DUCKDB_FILE, RAW_DIR, CANONICAL_DIR, FEATURE_CACHE_DIR, "
    "RUNS_DIR, LOG_DIR, EXPORT_CONFIG_DIR, Notes",
    "DATASETS": "dataset_id, dataset_type, source_type, source_path_or_id, update_mode, date_col, timestamp_tz, "
    "bar_frequency, known_time_rule, default_availability_lag_days, canonical_table_name, "
    "canonical_partition_keys, notes",
    "INSTRUMENTS": "instrument_id, instrument_name, instrument_type, prices_dataset_id, open_col, high_col, low_col, "
    "close_col, return_model, tick_size, multiplier, currency, calendar, default_execution_time, "
    "default_execution_price_model, notes",
    "FEATURE_LIBRARY": "feature_id, feature_name, dataset_id, instrument_scope, input_col, transform, params_json, "
    "lag_days, availability_lag_days, missing_policy, winsorize, normalize, tags, enabled, notes",
    "ENGINEERED_FEATURES": "eng_feature_id, eng_feature_name, input_feature_ids, combine_transform, params_json, "
    "lag_days, availability_lag_days, missing_policy, tags, enabled, notes",
    "FEATURE_SETS": "feature_set_id, description, include_tags, exclude_tags, include_feature_ids, "
    "exclude_feature_ids, max_features, enabled, notes",
    "SIGNAL_TEMPLATES": "template_id, template_name, allowed_feature_inputs, supports_long_short, supports_flat, "
    "description, default_params_json, enabled, notes",
    "STRATEGIES": "strategy_id, strategy_name, instrument_id, feature_set_id, signal_template_id, primary_feature_id, "
    "secondary_feature_id, feature_combo_rule, combo_weights_json, position_mode, position_values, enabled, notes",
    "BACKTESTS": "backtest_id, strategy_id, start_date, end_date, oos_last_x_months, rebalance_rule, execution_time, "
    "execution_price_model, spread_model_type, spread_value, slippage_model_type, slippage_value, "
    "allow_flip_same_day, min_hold_days, cooldown_days, as_of_date, enabled, notes",
    "OPTIMIZATION_STUDIES": "study_id, backtest_id, method, objective_primary_metric, objective_secondary_metric, "
    "objective_direction, optimize_on, n_trials, seed, save_top_n_artifacts, constraint_set_id, "
    "robustness_profile_id, enabled, notes",
    "OPTIMIZATION_PARAMS": "study_id, param_scope, target_id, param_name, optimize_flag, param_type, low, high, step, "
    "choices, constraint_group, constraint_rule, default_value_if_not_optimized, notes",
    "CONSTRAINT_SETS": "constraint_set_id, description, enabled, notes",
    "CONSTRAINTS": "constraint_set_id, metric_id, scope, operator, threshold, enabled, severity, notes",
    "METRICS": "metric_id, description, enabled, annualization_factor, risk_free_rate, notes",
    "ROBUSTNESS_PROFILES": "robustness_profile_id, description, enabled, notes",
    "ROBUSTNESS": "robustness_profile_id, test_id, enabled, param_json, notes",
    "REPORTING": "report_id, target_type, target_id, generate_tearsheet, save_equity_curve, save_positions, "
    "save_signals, save_feature_debug, leaderboard_top_n, pareto_plot, output_formats, enabled, notes",
}
SPEC = {k: [h.strip() for h in v.split(",")] for k, v in SPEC.items()}
GATES = ["gate_id", "expression", "mode", "enabled", "notes"]


def headers(ws) -> list[str]:
    return [c.value for c in ws[1] if c.value is not None]


def col_of(ws, header: str) -> str:
    for c in ws[1]:
        if c.value == header:
            return c.column_letter
    raise KeyError(header)


# ---- the template -----------------------------------------------------------------------------------


def test_template_has_every_spec_sheet_in_order_with_exact_headers(project: Path) -> None:
    wb = openpyxl.load_workbook(wb_path(project))
    assert wb.sheetnames[: len(SPEC)] == list(SPEC)
    for name, expected in SPEC.items():
        got = headers(wb[name])
        assert got[: len(expected)] == expected, name
    assert "GATES" in wb.sheetnames and wb.sheetnames.index("GATES") >= len(SPEC)
    assert headers(wb["GATES"]) == GATES


def test_template_is_usable_by_a_person(project: Path) -> None:
    wb = openpyxl.load_workbook(wb_path(project))
    for name in SPEC:
        ws = wb[name]
        assert ws.freeze_panes == "A2", name
        assert all(c.font.bold for c in ws[1] if c.value), name
        widths = [ws.column_dimensions[c.column_letter].width for c in ws[1] if c.value]
        assert min(widths) >= 8, name

    def options(sheet: str, header: str) -> list[str]:
        ws = wb[sheet]
        letter = col_of(ws, header)
        for dv in ws.data_validations.dataValidation:
            if any(str(r).startswith(f"{letter}2") for r in dv.sqref.ranges):
                return dv.formula1.strip('"').split(",")
        raise AssertionError(f"no dropdown on {sheet}.{header}")

    assert options("OPTIMIZATION_PARAMS", "optimize_flag") == ["X"]
    assert options("PATHS", "IsActive") == ["TRUE", "FALSE"]
    assert set(options("BACKTESTS", "execution_time")) == {"close", "next_open", "next_close", "custom"}
    assert "bps" in options("BACKTESTS", "spread_model_type")
    assert set(options("DATASETS", "dataset_type")) == {"daily_series", "intraday_trades"}
    assert set(options("DATASETS", "source_type")) == {"xlsx", "databento_file", "databento_api"}
    assert set(options("DATASETS", "update_mode")) == {"append_only", "replace"}
    assert set(options("DATASETS", "known_time_rule")) == {"at_close", "after_close", "realtime"}
    assert set(options("GATES", "mode")) == {"entry_only", "entry_and_exit"}
    assert "spread_adjusted" in options("BACKTESTS", "execution_price_model")
    runbook = [r for r in wb["RUNBOOK"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
    assert [r[0] for r in runbook] == list(range(1, len(runbook) + 1))
    assert all(str(r[2]).startswith("backtest ") for r in runbook)


def test_template_paths_profiles(project: Path) -> None:
    ws = openpyxl.load_workbook(wb_path(project))["PATHS"]
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True) if r[0]}
    assert rows["portable"][1] is True and rows["portable"][2] == "." and rows["portable"][3] == "data"
    assert rows["windows_pcash"][1] is False
    assert rows["windows_pcash"][2] == r"C:\Users\pcash\OneDrive\Backtest"
    assert rows["windows_pcash"][3] == r"E:\BacktestData"


def test_init_refuses_to_overwrite_without_force(project: Path, cli) -> None:
    path = wb_path(project)
    edit(path, [("RUNBOOK", "D2", "my note")])
    before = path.read_bytes()
    r = cli(["init"], cwd=project)
    assert r.code == 1 and "--force" in r.err and "Traceback" not in r.err
    assert path.read_bytes() == before
    r = cli(["init", "--force"], cwd=project)
    assert r.code == 0
    assert openpyxl.load_workbook(path)["RUNBOOK"]["D2"].value != "my note"


def test_committed_template_equals_generated(tmp_path: Path) -> None:
    """config/run_config.xlsx in the repo is the generated template (cell for cell)."""
    from runtime.config.template import write_template

    repo_wb = Path(__file__).resolve().parents[2] / "config" / "run_config.xlsx"
    fresh = write_template(tmp_path / "t.xlsx")
    a, b = openpyxl.load_workbook(repo_wb), openpyxl.load_workbook(fresh)
    assert a.sheetnames == b.sheetnames
    for name in a.sheetnames:
        va = [tuple(r) for r in a[name].iter_rows(values_only=True)]
        vb = [tuple(r) for r in b[name].iter_rows(values_only=True)]
        assert va == vb, name


# ---- round trip --------------------------------------------------------------------------------------


def _inject_cached_formula(path: Path, sheet_index: int, cell: str, formula: str, cached: str) -> None:
    """Give a formula cell a cached value, as Excel does on save (openpyxl cannot write one)."""
    tmp = path.with_suffix(".tmp.xlsx")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == f"xl/worksheets/sheet{sheet_index}.xml":
                text = data.decode("utf-8")
                pat = re.compile(rf'<c r="{cell}"([^>]*)><f>[^<]*</f>(<v>[^<]*</v>|<v ?/>)?</c>')
                assert pat.search(text), "formula cell not found"
                text = pat.sub(f'<c r="{cell}"><f>{formula}</f><v>{cached}</v></c>', text)
                data = text.encode("utf-8")
            zout.writestr(item, data)
    tmp.replace(path)


def test_user_edits_come_back_typed(project: Path) -> None:
    """init -> edit cells the way Excel stores them -> export -> load gives those values, typed."""
    path = wb_path(project)
    wb = openpyxl.load_workbook(path)
    bt, fl = wb["BACKTESTS"], wb["FEATURE_LIBRARY"]
    bt[f"{col_of(bt, 'start_date')}2"] = 38719  # Excel serial: days since 1899-12-30 -> 2006-01-02
    bt[f"{col_of(bt, 'end_date')}2"] = "2017-06-30"  # date typed as text
    bt[f"{col_of(bt, 'min_hold_days')}2"] = " 3 "  # number stored as text, stray spaces
    bt[f"{col_of(bt, 'allow_flip_same_day')}2"] = "n"  # boolean as N
    bt[f"{col_of(bt, 'enabled')}3"] = 0  # boolean as 0
    bt[f"{col_of(bt, 'spread_value')}2"] = "=1+1"  # a formula; cached value injected below
    bt[f"{col_of(bt, 'as_of_date')}2"] = dt.datetime(2018, 3, 1, 0, 0)
    fl[f"{col_of(fl, 'lag_days')}3"] = "2"
    fl[f"{col_of(fl, 'tags')}3"] = " vix ; regime "
    fl[f"{col_of(fl, 'notes')}3"] = "\u00a0edited\u00a0"
    fl.insert_rows(4)  # a blank row in the middle of the table
    wb.save(path)
    _inject_cached_formula(
        path, wb.sheetnames.index("BACKTESTS") + 1, f"{col_of(bt, 'spread_value')}2", "1+1", "2"
    )

    res = export_workbook(path)
    snap = load_snapshot(res.latest)
    b = next(r for r in snap.rows("BACKTESTS") if r.backtest_id == "bt_spx_cta")
    assert b.start_date == dt.date(2006, 1, 2)
    assert b.end_date == dt.date(2017, 6, 30)
    assert b.min_hold_days == 3 and isinstance(b.min_hold_days, int)
    assert b.allow_flip_same_day is False
    assert b.spread_value == 2.0
    assert b.as_of_date == dt.date(2018, 3, 1)
    assert next(r for r in snap.rows("BACKTESTS") if r.backtest_id == "bt_es_delta").enabled is False
    f = {r.feature_id: r for r in snap.rows("FEATURE_LIBRARY")}
    row3 = openpyxl.load_workbook(path)["FEATURE_LIBRARY"]["A3"].value
    assert f[row3].lag_days == 2 and f[row3].tags == ("vix", "regime") and f[row3].notes == "edited"
    # the blank row is skipped, the rows after it keep their Excel row numbers
    assert len(f) == sum(
        1
        for r in openpyxl.load_workbook(path)["FEATURE_LIBRARY"].iter_rows(min_row=2)
        if r[0].value is not None
    )
    assert f["oil_ret"].row > 4
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        b.start_date = dt.date(2000, 1, 1)  # type: ignore[misc]


# ---- export hash --------------------------------------------------------------------------------------


def test_export_hash_stable_and_unchanged(project: Path, tmp_path: Path, cli) -> None:
    path = wb_path(project)
    r1 = export_workbook(path)
    r2 = export_workbook(path)
    assert r2.unchanged and r2.content_hash == r1.content_hash
    assert len(list((project / "config" / "exports").glob("run_config_*.json"))) == 1
    # another machine (another folder), another process with another hash seed: same content hash
    other = tmp_path / "elsewhere" / "config"
    other.mkdir(parents=True)
    shutil.copy(path, other / "run_config.xlsx")
    r = cli(["config", "export"], cwd=other.parent, env={"PYTHONHASHSEED": "123"})
    assert r.code == 0, r.err
    doc = json.loads((other / "exports" / "latest.json").read_text())
    assert doc["content_hash"] == r1.content_hash
    name = json.loads(r1.latest.read_text())
    assert re.fullmatch(r"run_config_\d{8}T\d{6}Z_[0-9a-f]{8}\.json", r1.path.name)
    assert name["content_hash"][:8] == r1.path.name[-13:-5]


@pytest.mark.parametrize(
    ("sheet", "header", "value"),
    [
        ("RUNBOOK", "Notes", "changed note"),
        ("DATASETS", "notes", "another note"),
        ("INSTRUMENTS", "tick_size", 0.05),
        ("FEATURE_LIBRARY", "transform", "pct_change(x, 2)"),
        ("METRICS", "risk_free_rate", 0.01),
        ("GATES", "notes", "x"),
    ],
)
def test_any_cell_change_changes_the_hash(project: Path, sheet: str, header: str, value: object) -> None:
    path = wb_path(project)
    h0 = export_workbook(path).content_hash
    ws_letter = col_of(openpyxl.load_workbook(path)[sheet], header)
    edit(path, [(sheet, f"{ws_letter}2", value)])
    h1 = export_workbook(path).content_hash
    assert h1 != h0


# ---- broken workbooks ---------------------------------------------------------------------------------


def _break_missing_sheet(p: Path) -> None:
    wb = openpyxl.load_workbook(p)
    del wb["METRICS"]
    wb.save(p)


def _break_reorder_sheets(p: Path) -> None:
    wb = openpyxl.load_workbook(p)
    wb.move_sheet("PATHS", offset=3)
    wb.save(p)


def _set(sheet: str, header: str, row: int, value: object):
    def f(p: Path) -> None:
        wb = openpyxl.load_workbook(p)
        ws = wb[sheet]
        ws[f"{col_of(ws, header)}{row}"] = value
        wb.save(p)

    return f


def _header(sheet: str, cell: str, value: str):
    def f(p: Path) -> None:
        wb = openpyxl.load_workbook(p)
        wb[sheet][cell] = value
        wb.save(p)

    return f


def _swap_headers(sheet: str, a: str, b: str):
    def f(p: Path) -> None:
        wb = openpyxl.load_workbook(p)
        ws = wb[sheet]
        ws[a].value, ws[b].value = ws[b].value, ws[a].value
        wb.save(p)

    return f


def _both(*fs):
    def f(p: Path) -> None:
        for g in fs:
            g(p)

    return f


BROKEN = [
    ("missing sheet", _break_missing_sheet, "METRICS!A1", "missing"),
    ("sheets out of order", _break_reorder_sheets, "!A1", "out of order"),
    ("renamed header", _header("DATASETS", "C1", "source type"), "DATASETS!C1", "should be 'source_type'"),
    ("reordered header", _swap_headers("INSTRUMENTS", "E1", "F1"), "INSTRUMENTS!E1", "out of order"),
    ("duplicate id", _set("FEATURE_LIBRARY", "feature_id", 3, "cta_flow"), "FEATURE_LIBRARY!A3", "duplicate"),
    (
        "dangling reference",
        _set("STRATEGIES", "instrument_id", 2, "SPXX"),
        "STRATEGIES!C2",
        "did you mean 'SPX'",
    ),
    (
        "dangling study ref",
        _set("OPTIMIZATION_PARAMS", "study_id", 2, "st_nope"),
        "OPTIMIZATION_PARAMS!A2",
        "not a OPTIMIZATION_STUDIES.study_id",
    ),
    (
        "constraint set ref",
        _set("CONSTRAINTS", "constraint_set_id", 2, "cs_x"),
        "CONSTRAINTS!A2",
        "CONSTRAINT_SETS",
    ),
    ("bad json", _set("STRATEGIES", "params_json", 2, "{window: 60}"), "STRATEGIES!P2", "invalid JSON"),
    ("bad enumeration", _set("BACKTESTS", "execution_time", 2, "tomorrow"), "BACKTESTS!G2", "is not one of"),
    ("two active profiles", _set("PATHS", "IsActive", 3, True), "PATHS!B3", "more than one active profile"),
    ("zero active profiles", _set("PATHS", "IsActive", 2, False), "PATHS!B2", "no profile is active"),
    (
        "windows DATA_ROOT active on linux",
        _both(_set("PATHS", "IsActive", 2, False), _set("PATHS", "IsActive", 3, True)),
        "PATHS!D3",
        "windows_pcash",
    ),
    ("bad date", _set("BACKTESTS", "start_date", 2, "2024-13-45"), "BACKTESTS!C2", "is not a date"),
    (
        "text in numeric cell",
        _set("DATASETS", "default_availability_lag_days", 2, "one"),
        "DATASETS!J2",
        "is not a number",
    ),
    (
        "formula without cached value",
        _set("BACKTESTS", "spread_value", 2, "=1+1"),
        "BACKTESTS!J2",
        "cached value",
    ),
    ("required cell blank", _set("STRATEGIES", "signal_template_id", 2, None), "STRATEGIES!E2", "required"),
    ("end before start", _set("BACKTESTS", "end_date", 2, dt.date(2001, 1, 1)), "BACKTESTS!D2", "not after"),
    (
        "optimised without bounds",
        _set("OPTIMIZATION_PARAMS", "low", 2, None),
        "OPTIMIZATION_PARAMS!G2",
        "needs low",
    ),
    ("daily dataset without date_col", _set("DATASETS", "date_col", 2, None), "DATASETS!F2", "date_col"),
    ("negative lag", _set("FEATURE_LIBRARY", "lag_days", 2, -1), "FEATURE_LIBRARY!H2", "below the minimum"),
    ("id shared by feature and gate", _set("GATES", "gate_id", 2, "vix_high"), "GATES!A2", "already used"),
    ("bad boolean", _set("FEATURE_LIBRARY", "enabled", 2, "maybe"), "FEATURE_LIBRARY!N2", "TRUE or FALSE"),
    (
        "known after close with lag 0",
        _set("DATASETS", "default_availability_lag_days", 6, 0),
        "DATASETS!J6",
        "cannot drive a trade",
    ),
]


@pytest.mark.parametrize(("label", "breaker", "cell", "fragment"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_workbook_is_refused(project: Path, label: str, breaker, cell: str, fragment: str) -> None:
    path = wb_path(project)
    breaker(path)
    exports = project / "config" / "exports"
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    text = str(ei.value)
    assert cell in text, text
    assert fragment in text, text
    line = next(ln for ln in text.splitlines() if cell in ln)
    assert re.match(r"^[A-Z_]+![A-Z]+\d+: .+", line), line
    assert not exports.exists() or not any(exports.iterdir())


def test_all_errors_reported_at_once_sorted_exit_1_nothing_written(project: Path, cli) -> None:
    path = wb_path(project)
    _set("STRATEGIES", "instrument_id", 2, "SPXX")(path)
    _set("BACKTESTS", "execution_time", 2, "tomorrow")(path)
    _set("DATASETS", "default_availability_lag_days", 3, "one")(path)
    r = cli(["config", "export"], cwd=project)
    assert r.code == 1
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if re.match(r"^[A-Z_]+![A-Z]+\d+:", ln)]
    cells = [ln.split(":")[0] for ln in lines]
    assert cells == ["DATASETS!J3", "STRATEGIES!C2", "BACKTESTS!G2"]  # workbook sheet order, then cell
    assert not (project / "config" / "exports").exists()
    r = cli(["config", "validate"], cwd=project)
    assert r.code == 1 and "STRATEGIES!C2" in r.err


def test_validate_writes_nothing_and_profile_option(project: Path, cli) -> None:
    r = cli(["config", "validate"], cwd=project)
    assert r.code == 0, r.err
    assert not (project / "config" / "exports").exists()
    r = cli(["config", "export", "--profile", "windows_pcash"], cwd=project)
    assert r.code == 1 and "PATHS!" in r.err and "windows_pcash" in r.err
    r = cli(["config", "export", "--profile", "nope"], cwd=project)
    assert r.code == 1 and "nope" in r.err


def test_unusable_data_root(project: Path) -> None:
    path = wb_path(project)
    (project / "afile").write_text("not a folder")
    _set("PATHS", "DATA_ROOT", 2, "afile/data")(path)
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    assert "PATHS!D2" in str(ei.value) and "cannot be used here" in str(ei.value)


def test_snapshot_edited_by_hand_is_refused(project: Path) -> None:
    res = export_workbook(wb_path(project))
    doc = json.loads(res.latest.read_text())
    doc["sheets"]["METRICS"][0]["risk_free_rate"] = 0.5
    res.latest.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="does not match its hash"):
        load_snapshot(res.latest)


def test_loader_row_types_match_schema() -> None:
    import dataclasses

    from runtime.config.names import py_name
    from runtime.config.schema import SHEETS
    from runtime.contracts import ROW_TYPES

    for s in SHEETS:
        fields = {f.name for f in dataclasses.fields(ROW_TYPES[s.name])} - {"row"}
        assert fields == {py_name(h) for h in s.headers}, s.name


def test_every_extension_is_documented_in_decisions() -> None:
    """Extensions are allowed only when DECISIONS.md lists them (sheet and column)."""
    from runtime.config.schema import extensions

    text = (Path(__file__).resolve().parents[2] / "design" / "DECISIONS.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    for e in extensions():
        col = e.column if e.column != "(sheet)" else "gate_id"
        assert any(ln.startswith(f"| {e.sheet} ") and col in ln for ln in rows), (e.sheet, e.column)
