"""Generated sections of design/DSL.md: the operator table and the error catalogue.

Both are produced from the code (the registry, and real DslError renders on a demo catalog), so the
design document cannot drift: tests/dsl/test_docs_and_boundaries.py fails when DSL.md is stale.
Regenerate with `python -m compiler.docs [path/to/DSL.md]`: the operator table's backends column
comes from the compiler's backend registries, which dsl may not import, so the entry point lives there
and passes `backends` in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from dsl.checker import check
from dsl.contracts import (
    Catalog,
    ColumnDef,
    DslError,
    Execution,
    FeatureDef,
    Frequency,
    Kind,
    OpSpec,
    Origin,
)
from dsl.ops import render_operator_table

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "design" / "DSL.md"
SECTIONS = ("operators", "errors")


def _marker(name: str, end: bool = False) -> str:
    return f"<!-- {'END' if end else 'BEGIN'} GENERATED: {name} (python -m compiler.docs) -->"


def demo_catalog() -> Catalog:
    """The catalog the error catalogue is rendered against (mirrors the examples in DSL.md)."""
    d, m = Frequency.DAILY, Frequency.MINUTE

    def col(name: str, lag: int, cell: str, freq: Frequency = d, kind: Kind = Kind.FLOAT) -> ColumnDef:
        ds, c = name.split(".")
        return ColumnDef(name, ds, c, kind, freq, lag, Origin("DATASETS", cell))

    columns = [
        col("SPX.close", 1, "J2"),
        col("VIX.close", 1, "J3"),
        col("CTA.cta_flow", 1, "J4"),
        col("ES.close", 1, "J8", m),
    ]

    def feat(name: str, role: str, expr: str, sheet: str, cell: str, **kw: object) -> FeatureDef:
        return FeatureDef(name, role, expr, Origin(sheet, cell, "transform"), **kw)  # type: ignore[arg-type]

    features = [
        feat("cta_flow", "feature", "", "FEATURE_LIBRARY", "F2", input_column="CTA.cta_flow"),
        feat("vix", "feature", "", "FEATURE_LIBRARY", "F3", input_column="VIX.close"),
        feat(
            "vix_high",
            "feature",
            "x > $threshold",
            "FEATURE_LIBRARY",
            "F4",
            input_column="VIX.close",
            params={"threshold": 25},
            lag_days=1,
        ),
        feat("risk_off", "gate", "vix > 30", "GATES", "B2"),
        feat("old", "feature", "", "FEATURE_LIBRARY", "F9", input_column="SPX.close", enabled=False),
        feat("loop_a", "feature", "loop_b + 1", "FEATURE_LIBRARY", "F10"),
        feat("loop_b", "engineered", "loop_a * 2", "ENGINEERED_FEATURES", "D3"),
    ]
    return Catalog({c.name: c for c in columns}, {f.name: f for f in features})


# (kind of mistake, expression, check() options)
ERROR_EXAMPLES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("empty cell", "=", {}),
    ("missing closing parenthesis", "zscore(lag(cta_flow, 1), 60", {}),
    ("unexpected closing parenthesis", "mean(SPX.close, 20))", {}),
    ("missing operand", "SPX.close >", {}),
    ("two values without an operator", "SPX.close VIX.close", {}),
    ("chained comparison", "20 < VIX.close < 30", {}),
    ("trailing comma", "mean(SPX.close, 20,)", {}),
    ("&& instead of AND", "vix_high && risk_off", {}),
    ("! instead of NOT", "!vix_high", {}),
    ("Excel-style AND(...)", "AND(vix_high, risk_off)", {}),
    ("unterminated text", 'to_daily(ES.close, how="sum)', {}),
    ("unknown character", "SPX.close # 2", {}),
    ("unknown name", "zscore(ctaflow, 60) > 0", {}),
    ("unknown function", "zscor(cta_flow, 60)", {}),
    ("wrong number of arguments", "mean(SPX.close)", {}),
    ("window not a whole number", "mean(SPX.close, 2.5)", {}),
    ("window from data", "mean(SPX.close, VIX.close)", {}),
    ("window too small", "std(SPX.close, 1)", {}),
    ("negative lag (a lead)", "lag(SPX.close, -1)", {}),
    ("true/false where a number is needed", "mean(vix_high, 20)", {}),
    ("number where true/false is needed", "cta_flow AND vix_high", {}),
    ("daily and 1m mixed", "ES.close > SPX.close", {}),
    ("unbound parameter", "zscore(cta_flow, $n) > 0", {}),
    ("parameter of the wrong type", "zscore(cta_flow, $n) > 0", {"params": {"n": 2.5}}),
    ("unbound template slot", "{primary} > 0", {}),
    ("disabled feature", "old > 0", {}),
    ("cycle between features", "loop_a > 0", {}),
    ("lookahead in a decision (close)", "zscore(cta_flow, 60) > 0 AND NOT vix_high", {"decision": True}),
    ("lookahead through a gate", "NOT risk_off", {"decision": True}),
    ("lookahead on the 1m grid", "ES.close > 3000", {"decision": True}),
    (
        "a session aggregate used at its own close",
        'to_daily(ES.close, how="last") > 3000',
        {"decision": True},
    ),
    (
        "lookahead at the next open (still one lag short)",
        "lag(SPX.close, 1) > lag(SPX.close, 2)",
        {"decision": True, "execution": Execution.NEXT_OPEN, "catalog": "slow"},
    ),
)


def _slow_catalog() -> Catalog:
    base = demo_catalog()
    cols = dict(base.columns)
    c = cols["SPX.close"]
    cols["SPX.close"] = ColumnDef(
        c.name, c.dataset_id, c.column, c.kind, c.frequency, 3, c.availability_origin
    )
    return Catalog(cols, base.features)


def error_catalogue() -> str:
    """Markdown: every example's real rendered error, in a code block."""
    catalog = demo_catalog()
    out: list[str] = []
    for title, text, options in ERROR_EXAMPLES:
        opts = dict(options)
        cat = _slow_catalog() if opts.pop("catalog", None) == "slow" else catalog
        origin = Origin("STRATEGIES", "H5", "gate_expr")
        try:
            check(text, cat, origin=origin, **opts)  # type: ignore[arg-type]
        except DslError as e:
            rendered = e.render()
        else:  # pragma: no cover - an example that passes is a bug in this table
            raise AssertionError(f"error example {text!r} did not fail")
        note = ""
        if opts:
            shown = ", ".join(f"{k}={v.value if hasattr(v, 'value') else v}" for k, v in opts.items())
            note = f" ({shown})"
        out += [f"**{title}**{note}", "", "```text", rendered, "```", ""]
    return "\n".join(out).rstrip() + "\n"


Backends = Callable[[OpSpec], str] | None


def generated(name: str, backends: Backends = None) -> str:
    return render_operator_table(backends) if name == "operators" else error_catalogue()


def extract(doc: str, name: str) -> str | None:
    begin, end = _marker(name), _marker(name, end=True)
    if begin not in doc or end not in doc:
        return None
    return doc.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def update(doc: str, backends: Backends = None) -> str:
    for name in SECTIONS:
        begin, end = _marker(name), _marker(name, end=True)
        if begin not in doc or end not in doc:
            raise ValueError(f"DSL.md lacks the markers for the {name} section")
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = f"{head}{begin}\n{generated(name, backends).rstrip()}\n{end}{tail}"
    return doc


def main(argv: list[str] | None = None, backends: Backends = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    text = path.read_text(encoding="utf-8")
    new = update(text, backends)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"updated {path}")
    else:
        print(f"{path} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
