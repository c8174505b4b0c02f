"""Feature expansion is owned by a CheckSession (no module-level cache keyed by id(catalog)), and the
runtime's workbook check takes $param domains from OPTIMIZATION_PARAMS (real xlsx, real validation)."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import openpyxl
import pytest

import dsl
from dsl import CheckSession, DslError, check, check_catalog
from runtime.config.export import validate_only
from runtime.contracts import ConfigValidationError

from .conftest import CATALOG


def test_a_session_expands_each_feature_once_and_shares_it() -> None:
    s = CheckSession(CATALOG)
    a = check("zscore(vix_z, 5) > 0", CATALOG, session=s)
    assert "vix_z" in s.expanded
    before = dict(s.cache)
    b = check("vix_z + 1", CATALOG, session=s)
    assert s.cache["vix_z"] is before["vix_z"]  # reused, not expanded again
    shared = {n.hash for n in a.nodes} & {n.hash for n in b.nodes}
    assert s.cache["vix_z"].node.hash in shared
    graphs, _ = check_catalog(CATALOG, session=s)
    assert graphs["vix_z"].hash == s.cache["vix_z"].node.hash


def test_a_session_belongs_to_one_catalog() -> None:
    other = dsl.Catalog(dict(CATALOG.columns), dict(CATALOG.features))
    with pytest.raises(DslError) as info:
        check("vix_z > 0", other, session=CheckSession(CATALOG))
    assert info.value.code == "api.session"


def test_a_rebuilt_catalog_never_sees_an_old_expansion() -> None:
    """The old cache was keyed by id(catalog): a new catalog at a recycled address could be served the
    previous one's expansions. Each check without a session now expands from its own catalog."""
    for threshold in (10, 20, 30, 40):
        feats = dict(CATALOG.features)
        feats["vix_high"] = dataclasses.replace(feats["vix_high"], params={"threshold": threshold})
        cat = dsl.Catalog(dict(CATALOG.columns), feats)
        g = check("vix_high", cat)
        consts = [dict(n.args)["value"] for n in g.nodes if n.op == "const"]
        assert consts == [threshold]
        del cat, g
        gc.collect()


# ---- the workbook: domains from OPTIMIZATION_PARAMS ------------------------------------------------------


def _errors(path: Path) -> list:
    with pytest.raises(ConfigValidationError) as ei:
        validate_only(path)
    return ei.value.errors


def test_workbook_window_domain_is_checked_over_its_range(project: Path) -> None:
    """OPTIMIZATION_PARAMS row 2 searches $window of spx_cta_z (zscore needs n >= 2): low 1 is refused
    at the strategy's signal, naming the OPTIMIZATION_PARAMS cell, although every bound value is valid."""
    path = project / "config" / "run_config.xlsx"
    wb = openpyxl.load_workbook(path)
    ws = wb["OPTIMIZATION_PARAMS"]
    headers = [c.value for c in ws[1]]
    row = next(
        r for r in range(2, ws.max_row + 1) if ws.cell(r, headers.index("param_name") + 1).value == "window"
    )
    low = ws.cell(row, headers.index("low") + 1)
    assert ws.cell(row, headers.index("target_id") + 1).value == "spx_cta_z" and low.value == 20
    validate_only(path)  # the template as shipped is valid
    low.value = 1
    wb.save(path)
    errs = _errors(path)
    mine = [e for e in errs if "for every value of $window" in e.message]
    assert mine, [e.render() for e in errs]
    assert f"OPTIMIZATION_PARAMS!{low.coordinate}" in mine[0].message
    assert mine[0].sheet == "SIGNAL_TEMPLATES"
