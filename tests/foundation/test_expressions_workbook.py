"""Expression cells checked at export, the snapshot's expression info, `backtest compile`, the graph notebook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import openpyxl
import pytest

from runtime.config.export import export_workbook
from runtime.contracts import ConfigValidationError
from tests.foundation.test_workbook import col_of, wb_path

DEMO = "zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high"


ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _row_of(ws, header: str, value: str) -> int:
    letter = col_of(ws, header)
    for c in ws[letter][1:]:
        if c.value == value:
            return c.row
    raise KeyError(value)


def _edit(path: Path, sheet: str, key_header: str, key: str, header: str, value: object) -> str:
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    cell = f"{col_of(ws, header)}{_row_of(ws, key_header, key)}"
    ws[cell] = value
    wb.save(path)
    return f"{sheet}!{cell}"


def test_snapshot_records_every_expression(project: Path) -> None:
    res = export_workbook(wb_path(project))
    doc = json.loads(res.latest.read_text())
    ex = doc["expressions"]
    wb = openpyxl.load_workbook(wb_path(project))
    ef = wb["ENGINEERED_FEATURES"]
    cell = (
        f"ENGINEERED_FEATURES!{col_of(ef, 'combine_transform')}{_row_of(ef, 'eng_feature_id', 'cta_flow_z')}"
    )
    z = ex[cell]
    # zscore(lag(cta_flow, 1), 60): lag pays the CTA proxy's 1-day availability; 1 + 1 + 59 = 61 rows
    assert (z["kind"], z["frequency"], z["availability"], z["warmup"]) == ("float", "daily", 0, 61)
    assert len(z["hash"]) == 64 and z["canonical"] == "zscore(lag(cta_flow, 1), 60)"
    g = wb["GATES"]
    gate = ex[f"GATES!{col_of(g, 'expression')}{_row_of(g, 'gate_id', 'calm_vol')}"]
    assert gate["kind"] == "bool" and gate["availability"] == 0  # vix_high carries lag_days 1
    signal = [k for k in ex if k.startswith("SIGNAL_TEMPLATES!") and k.endswith("spx_cta_z@bt_spx_cta")]
    assert len(signal) == 1 and ex[signal[0]]["availability"] == 0
    es = [v for k, v in ex.items() if k.endswith("es_delta_trend@bt_es_delta") and v["column"] == "gate_expr"]
    assert es and es[0]["frequency"] == "1m"  # asof(calm_vol): the daily gate aligned onto the minute grid


@pytest.mark.parametrize(
    ("sheet", "key_header", "key", "header", "value", "fragments"),
    [
        (
            "FEATURE_LIBRARY",
            "feature_id",
            "spx_ret",
            "transform",
            "pct_change(ctaflow, 1)",
            ["FEATURE_LIBRARY!F6:transform", "unknown name 'ctaflow'", "did you mean"],
        ),
        (
            "ENGINEERED_FEATURES",
            "eng_feature_id",
            "cta_flow_z",
            "combine_transform",
            "zscore(lag(cta_flow, 1), 60",
            ["ENGINEERED_FEATURES!D3:combine_transform", ")"],
        ),
        ("GATES", "gate_id", "calm_vol", "expression", "vix_level", ["GATES!B2", "true/false"]),
        ("GATES", "gate_id", "calm_vol", "expression", "cta_flow AND vix_high", ["GATES!B2", "compare"]),
        (
            "STRATEGIES",
            "strategy_id",
            "spx_cta_z",
            "gate_expr",
            "calm_vol AND cta_flow > 0",
            ["STRATEGIES!N2:gate_expr", "cta_flow", "DATASETS!J6", "lag(cta_flow, 1)", "backtest bt_spx_cta"],
        ),
        (
            "STRATEGIES",
            "strategy_id",
            "spx_cta_z",
            "scaling_expr",
            "0.15 / spx_vol_20",
            ["STRATEGIES!O2:scaling_expr", "spx_vol_20", "DATASETS!J2", "lag(spx_vol_20, 1)"],
        ),
        (
            "STRATEGIES",
            "strategy_id",
            "es_delta_trend",
            "gate_expr",
            "calm_vol",
            ["STRATEGIES!N3:gate_expr", "asof"],
        ),
        (
            "ENGINEERED_FEATURES",
            "eng_feature_id",
            "ndx_spx_rs",
            "combine_transform",
            "mean(ndx_ret - cta_flow, 20)",
            ["ENGINEERED_FEATURES!D2", "cta_flow", "input_feature_ids"],
        ),
    ],
)
def test_bad_expression_cells(project: Path, sheet, key_header, key, header, value, fragments) -> None:
    path = wb_path(project)
    _edit(path, sheet, key_header, key, header, value)
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    text = str(ei.value)
    for f in fragments:
        assert f in text, (f, text)
    assert "^" in text  # the caret line
    assert not (project / "config" / "exports").exists()


def test_template_without_lag_fails_for_the_strategy_that_needs_it(project: Path) -> None:
    path = wb_path(project)
    _edit(
        path,
        "STRATEGIES",
        "strategy_id",
        "spx_cta_z",
        "params_json",
        '{"lag": 0, "window": 60, "entry": 0.5}',
    )
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    text = str(ei.value)
    assert "SIGNAL_TEMPLATES!J2:signal_expr" in text and "strategy spx_cta_z" in text and "cta_flow" in text
    # the same parameters are fine when that backtest trades at the next open (decided after the close)
    _edit(path, "BACKTESTS", "backtest_id", "bt_spx_cta", "execution_time", "next_open")
    export_workbook(path)


def test_cycle_between_features_and_gates_is_listed(project: Path) -> None:
    path = wb_path(project)
    _edit(path, "GATES", "gate_id", "calm_vol", "expression", "NOT vix_high AND credit_ok")
    _edit(path, "GATES", "gate_id", "credit_ok", "expression", "calm_vol")
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    text = str(ei.value)
    assert "cycle" in text and "calm_vol" in text and "credit_ok" in text


def test_editing_a_feature_changes_dependent_hashes(project: Path) -> None:
    path = wb_path(project)
    before = json.loads(export_workbook(path).latest.read_text())["expressions"]
    _edit(path, "FEATURE_LIBRARY", "feature_id", "vix_high", "params_json", '{"threshold": 30}')
    after = json.loads(export_workbook(path).latest.read_text())["expressions"]
    assert before["GATES!B2"]["hash"] != after["GATES!B2"]["hash"]  # calm_vol = NOT vix_high
    assert before["ENGINEERED_FEATURES!D2"]["hash"] == after["ENGINEERED_FEATURES!D2"]["hash"]  # unrelated


def test_input_column_checked_against_the_source_file(project: Path) -> None:
    from runtime.demo_data.daily import write_daily_samples

    write_daily_samples(project / "data" / "incoming" / "daily")
    path = wb_path(project)
    export_workbook(path)
    _edit(path, "FEATURE_LIBRARY", "feature_id", "spx_ret", "input_col", "clsoe")
    with pytest.raises(ConfigValidationError) as ei:
        export_workbook(path)
    assert "FEATURE_LIBRARY!E6" in str(ei.value) and "did you mean 'close'" in str(ei.value)


# ---- the CLI and the notebook --------------------------------------------------------------------------


@pytest.fixture
def exported(project: Path) -> Path:
    export_workbook(wb_path(project))
    return project


def test_compile_cli(exported: Path, cli) -> None:
    r = cli(["compile", DEMO, "--format", "json"], cwd=exported)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {"hash", "kind", "frequency", "availability", "warmup", "nodes"} <= set(doc)
    assert (doc["kind"], doc["frequency"], doc["availability"], doc["warmup"]) == ("bool", "daily", 0, 61)
    assert len(doc["hash"]) == 64
    assert all({"hash", "op", "kind", "children"} <= set(n) for n in doc["nodes"])
    assert doc["nodes"][-1]["hash"] == doc["hash"]
    r2 = cli(
        ["compile", "zscore( lag(cta_flow , 1) , 60 )>0 and not (vix_high)", "--format", "json"], cwd=exported
    )
    assert json.loads(r2.out)["hash"] == doc["hash"]  # cosmetic differences do not change the hash
    r = cli(["compile", DEMO], cwd=exported)
    assert r.code == 0 and "warm-up 61" in r.out and "CTA.cta_flow" in r.out
    r = cli(["compile", DEMO, "--format", "dot"], cwd=exported)
    assert r.code == 0 and r.out.startswith("digraph")
    bad = cli(["compile", "zscore(cta_flow,60) > 0 AND NOT vix_high"], cwd=exported)
    assert bad.code == 1 and "Traceback" not in bad.err
    lines = bad.err.splitlines()
    caret = next(ln for ln in lines if ln.strip().startswith("^"))
    expr_line = lines[lines.index(caret) - 1]
    assert expr_line[caret.index("^") :].startswith("cta_flow")
    assert "write lag(cta_flow, 1)" in bad.err and "DATASETS!J6" in bad.err
    ok = cli(["compile", "SPX.close > 0", "--execution", "next_open"], cwd=exported)
    assert ok.code == 0
    assert cli(["compile", "SPX.close > 0", "--execution", "close"], cwd=exported).code == 1
    m = cli(
        ["compile", "ES.close > asof(SPX.close)", "--frequency", "1m", "--execution", "next_open"],
        cwd=exported,
    )
    assert m.code == 0, m.err
    assert cli(["compile", "ES.close > SPX.close", "--execution", "next_open"], cwd=exported).code == 1
    p = cli(["compile", "mean(cta_flow, $w)", "--param", "w=20", "--execution", "none"], cwd=exported)
    assert p.code == 0 and "warm-up 20" in p.out


def test_graph_notebook_runs(exported: Path) -> None:
    """notebooks/02 in a real kernel on a DATA_ROOT with the demo's CTA data ingested: graph HTML, plan, SQL
    and a plot whose values equal a pandas zscore of the lagged flow read back from the source xlsx."""
    import numpy as np
    import pandas as pd

    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.demo_data.daily import write_daily_samples
    from runtime.ingest.daily import ingest_daily
    from runtime.storage.paths import ensure_layout
    from runtime.storage.registry import Registry
    from tests.notebooks import execute

    snapshot = exported / "config" / "exports" / "latest.json"
    snap = load_snapshot(snapshot)
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    incoming = paths.data_root / "incoming" / "daily"
    write_daily_samples(incoming, start="2017-01-01")
    ingest_daily(snap.dataset("CTA"), paths, reg)

    os.environ["BACKTEST_CONFIG"] = str(snapshot)
    try:
        outputs = execute("02_inspect_graph.ipynb", timeout=180, cwd=exported).outputs
    finally:
        del os.environ["BACKTEST_CONFIG"]
    _screenshot(outputs, exported / "notebook_02.html")
    html = [o["data"]["text/html"] for o in outputs if "data" in o and "text/html" in o["data"]]
    assert any("cta_flow" in h for h in html)
    text = "".join(o.get("text", "") for o in outputs)
    plain = "".join(o["data"].get("text/plain", "") for o in outputs if "data" in o)
    assert "warm-up 61" in text and "write lag(cta_flow, 1)" in text
    assert "plan of cta_flow_z" in text + plain and "numba" in text + plain  # the rich plan table
    assert "-- cta_flow_z" in text and "LAG(" in text and "WITH" in text  # the staged SQL
    # the plot: one point per NYSE trading day of the CTA file from the 61st on, values = pandas reference
    fig = next(
        o["data"]["application/vnd.plotly.v1+json"]
        for o in outputs
        if "data" in o and "application/vnd.plotly.v1+json" in o["data"]
    )
    trace = fig["data"][0]
    src = pd.read_excel(incoming / "cta.xlsx")
    flow = src.set_index(pd.to_datetime(src["Date"]))["CTA Flow"].astype(float).sort_index()
    lagged = flow.shift(1)
    r = lagged.rolling(60)
    ref = ((lagged - r.mean()) / r.std()).iloc[60:]
    ys = np.array([np.nan if v is None else v for v in _plotly_values(trace["y"])], dtype=float)
    xs = pd.to_datetime(_plotly_values(trace["x"]))
    assert list(xs) == list(ref.index)
    np.testing.assert_allclose(ys, ref.to_numpy(), rtol=1e-9, atol=1e-12)


def _plotly_values(v: object) -> list:
    """A trace's x or y as plain values (plotly 6 sends numbers as base64 typed arrays)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)  # type: ignore[call-overload]


def _screenshot(outputs: list, page: Path) -> None:
    """The notebook's outputs as one offline page (HTML outputs, printed text, the plotly figure with an
    inlined plotly.js) drawn in headless Chromium: a screenshot kept for a person to look at."""
    import html as html_lib

    import plotly.io as pio

    from tests.browser import OfflinePage, launch

    parts = []
    for o in outputs:
        data = o.get("data", {})
        if "application/vnd.plotly.v1+json" in data:
            fig = pio.from_json(json.dumps(data["application/vnd.plotly.v1+json"]))
            parts.append(pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id="nb02_plot"))
        elif "text/html" in data:
            parts.append(data["text/html"])
        elif o.get("text") or "text/plain" in data:
            parts.append(f"<pre>{html_lib.escape(o.get('text') or data['text/plain'])}</pre>")
    page.write_text("<html><body style='font-family:sans-serif'>" + "".join(parts) + "</body></html>")
    with launch() as browser:
        view = OfflinePage(browser)
        view.open(page, figures=["nb02_plot"])
        assert not view.errors, view.errors
        view.shot(ARTIFACTS / "notebook_02_inspect_graph.png")
