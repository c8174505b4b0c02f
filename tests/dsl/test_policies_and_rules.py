"""Feature policies are typed (the runtime parses the workbook's mini-syntax once) and every operator rule
is a declared callable: the checker has no if-chain on operator names."""

from __future__ import annotations

import ast
from pathlib import Path

import openpyxl
import pytest

import dsl
from dsl import OPERATORS, MissingPolicy, Normalize, Rule, Winsorize, check
from runtime.config.export import check_workbook, validate_only
from runtime.config.expressions import build_catalog
from runtime.config.policies import parse_missing_policy, parse_normalize, parse_winsorize
from runtime.contracts import ConfigValidationError

from .conftest import CATALOG

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, MissingPolicy("keep")),
        ("keep", MissingPolicy("keep")),
        ("ffill", MissingPolicy("ffill", None)),
        ("ffill:5", MissingPolicy("ffill", 5)),
        (" FFILL:12 ", MissingPolicy("ffill", 12)),
        ("zero", MissingPolicy("zero")),
    ],
)
def test_missing_policy_parses(text, expected) -> None:
    assert parse_missing_policy(text) == expected


@pytest.mark.parametrize("text", ["ffil", "ffill:0", "ffill:-2", "ffill:x", "zero:3", "keep:1", "ffill:2.5"])
def test_bad_missing_policy_is_refused(text) -> None:
    with pytest.raises(ValueError, match="is not a missing policy"):
        parse_missing_policy(text)


def test_winsorize_and_normalize_parse() -> None:
    assert parse_winsorize("60:3") == Winsorize(60, 3.0)
    assert parse_winsorize("252:2.5") == Winsorize(252, 2.5)
    assert parse_winsorize(None) is None and parse_winsorize("none") is None
    for bad in ("60", "60:0", "0:3", "60:-1", "a:b", "60:inf", "60:nan"):
        with pytest.raises(ValueError, match="is not N:k"):
            parse_winsorize(bad)
    assert parse_normalize("zscore:20") == Normalize("zscore", 20)
    assert parse_normalize("rank:5") == Normalize("rank", 5)
    assert parse_normalize("none") is None
    for bad in ("zscore", "zscore:0", "minmax:20", "rank:"):
        with pytest.raises(ValueError, match="is not a normalisation"):
            parse_normalize(bad)
    assert str(MissingPolicy("ffill", 5)) == "ffill:5" and str(Winsorize(60, 3)) == "60:3"


def test_typed_policies_are_validated_at_construction() -> None:
    for bad in (("fill", None), ("keep", 3), ("ffill", 0)):
        with pytest.raises(ValueError):
            MissingPolicy(*bad)


def test_feature_given_text_policies_is_refused_by_the_dsl() -> None:
    feats = dict(CATALOG.features)
    feats["bad"] = dsl.FeatureDef(
        "bad",
        "feature",
        "",
        dsl.Origin("FEATURE_LIBRARY", "F30"),
        input_column="SPX.close",
        missing_policy="ffill:5",
    )  # type: ignore[arg-type]
    with pytest.raises(dsl.DslError) as info:
        check("bad", dsl.Catalog(dict(CATALOG.columns), feats))
    assert info.value.code == "api.feature"


def _set_cell(path: Path, sheet: str, row_id: str, column: str, value: object) -> str:
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    headers = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == row_id)
    c = ws.cell(row, headers.index(column) + 1)
    c.value = value
    wb.save(path)
    return c.coordinate


def test_workbook_policies_become_typed_feature_fields(project: Path) -> None:
    path = project / "config" / "run_config.xlsx"
    _set_cell(path, "FEATURE_LIBRARY", "vix_level", "missing_policy", "ffill:5")
    _set_cell(path, "FEATURE_LIBRARY", "vix_level", "winsorize", "60:3")
    _set_cell(path, "FEATURE_LIBRARY", "vix_level", "normalize", "zscore:20")
    validate_only(path)
    fd = _catalog(path).features["vix_level"]
    assert fd.missing_policy == MissingPolicy("ffill", 5)
    assert fd.winsorize == Winsorize(60, 3.0) and fd.normalize == Normalize("zscore", 20)
    g = check("vix_level", _catalog(path))
    assert [n.op for n in g.nodes] == ["column", "ffill", "winsorize", "zscore", "feature"]
    # hand-computed warm-up: VIX.close 1 + ffill 5 + winsorize 59 + zscore 19 = 84
    assert g.warmup == 84


def test_bad_policy_cell_is_one_error_at_its_cell(project: Path) -> None:
    path = project / "config" / "run_config.xlsx"
    ref = _set_cell(path, "FEATURE_LIBRARY", "vix_level", "missing_policy", "ffil")
    with pytest.raises(ConfigValidationError) as ei:
        validate_only(path)
    errs = ei.value.errors
    mine = [e for e in errs if e.sheet == "FEATURE_LIBRARY" and e.cell == ref]
    assert len(mine) == 1 and "'ffil' is not a missing policy" in mine[0].message, [e.render() for e in errs]
    assert "ffill:N" in mine[0].fix
    assert not [e for e in errs if "vix_level" in e.message and e.cell != ref]  # no follow-on errors


def _catalog(path: Path) -> dsl.Catalog:
    rows, _ = check_workbook(path)  # the validated rows, as export sees them
    return build_catalog(rows).catalog


# ---- rules are declared, not if-chains on operator names ------------------------------------------------


def test_every_operator_declares_its_rules_as_callables() -> None:
    for spec in OPERATORS.values():
        assert isinstance(spec.result, Rule) and callable(spec.result.fn), spec.name
        for rule in (spec.availability, spec.frequency, spec.resolve, spec.validate):
            assert rule is None or (isinstance(rule, Rule) and callable(rule.fn)), spec.name
    assert OPERATORS["asof"].frequency is not None and OPERATORS["to_daily"].frequency is not None
    assert OPERATORS["lag"].availability is not None and OPERATORS["realized_vol"].resolve is not None
    assert OPERATORS["clip"].validate is not None


def test_checker_never_compares_against_an_operator_name() -> None:
    """No `spec.name == "clip"` / `op in ("asof", "to_daily")` dispatch left: rules live on the OpSpec."""
    names = set(OPERATORS) - {"const"}  # reading a literal's value is not a rule

    def is_op_name(e: ast.expr) -> bool:
        if isinstance(e, ast.Constant):
            return isinstance(e.value, str) and e.value in names
        if isinstance(e, ast.Tuple | ast.Set | ast.List):
            return any(is_op_name(x) for x in e.elts)
        return False

    def is_operator_field(e: ast.expr) -> bool:
        return (isinstance(e, ast.Attribute) and e.attr in ("name", "op")) or (
            isinstance(e, ast.Name) and e.id in ("op", "name")
        )

    checked = 0
    for module in ("checker", "binding", "availability", "features", "scope"):
        path = ROOT / "dsl" / f"{module}.py"
        if not path.exists():
            continue
        checked += 1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and is_operator_field(node.left):
                hits = [c for c in node.comparators if is_op_name(c)]
                assert not hits, f"{module}.py:{node.lineno} dispatches on an operator name"
    assert checked >= 1
