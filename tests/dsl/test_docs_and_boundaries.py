"""design/DSL.md stays generated from the code; dsl imports nothing from runtime or compiler."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from compiler.docs import operator_table
from dsl import OPERATORS, ArgRole, Shape, render_operator_table
from dsl.docs import ERROR_EXAMPLES, error_catalogue, extract

ROOT = Path(__file__).resolve().parents[2]
DSL_MD = ROOT / "design" / "DSL.md"


@pytest.mark.parametrize("section", ["operators", "errors"])
def test_dsl_md_generated_sections_are_up_to_date(section):
    doc = DSL_MD.read_text(encoding="utf-8")
    expected = operator_table() if section == "operators" else error_catalogue()
    assert extract(doc, section) == expected, "run: python -m compiler.docs"


def test_every_user_operator_is_in_the_table():
    table = render_operator_table()
    for spec in OPERATORS.values():
        assert f"`{spec.name}" in table or f"(`{spec.name}`)" in table
        for alias in spec.aliases:
            assert f"`{alias}`" in table


def test_registry_declarations_are_complete():
    required_ops = {
        "add", "sub", "mul", "div", "pow", "neg", "gt", "ge", "lt", "le", "eq", "ne", "and", "or", "not",
        "abs", "sign", "log", "sqrt", "exp", "min", "max", "clip", "if", "is_missing", "fill", "ffill", "lag",
        "diff", "pct_change", "mean", "sum", "std", "var", "ts_min", "ts_max", "median", "zscore", "rank",
        "quantile", "ema", "corr", "cov", "slope", "realized_vol", "cross_above", "cross_below", "bars_since",
        "hold", "count", "asof", "to_daily",
    }  # fmt: skip
    assert required_ops <= set(OPERATORS)
    for name, alias in [
        ("where", "if"),
        ("delay", "lag"),
        ("delta", "diff"),
        ("ts_mean", "mean"),
        ("ts_rank", "rank"),
    ]:
        assert OPERATORS.get(name).name == alias
    for spec in OPERATORS.values():
        assert spec.semantics and spec.version >= 1
        assert not hasattr(spec, "backends")  # the backends' registries say who implements it
        windows = [a for a in spec.args if a.role is ArgRole.WINDOW]
        if spec.category == "rolling":
            assert windows and spec.history is not None
            assert spec.shape in (Shape.WINDOW, Shape.RECURSIVE)
        # an operator that reads earlier rows declares it by its shape, and the other way round
        assert (spec.history is not None) == (spec.shape in (Shape.WINDOW, Shape.RECURSIVE)), spec.name
    assert OPERATORS["hold"].stateful and OPERATORS["bars_since"].stateful


def test_error_catalogue_covers_the_listed_mistakes():
    titles = " | ".join(t for t, _, _ in ERROR_EXAMPLES)
    for word in [
        "parenthesis",
        "chained",
        "trailing comma",
        "&&",
        "unknown name",
        "negative lag",
        "mixed",
        "cycle",
    ]:
        assert word in titles


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "import_module",
            "__import__",
        ):
            found.update(
                a.value.split(".")[0]
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
    return found


def test_dsl_imports_neither_runtime_nor_compiler():
    files = sorted((ROOT / "dsl").rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        bad = _imports(path) & {"runtime", "compiler"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_import_scanner_would_notice(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("import runtime.cli\nfrom compiler import plan\nimportlib.import_module('runtime')\n")
    assert _imports(p) >= {"runtime", "compiler"}
