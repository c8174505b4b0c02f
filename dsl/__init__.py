"""Backtest expression language: parse, type-check, availability-check and hash cell expressions.

Typical use (the runtime builds the Catalog from the workbook snapshot)::

    graph = dsl.check("zscore(lag(cta_flow, 1), 60) > 0 AND NOT vix_high", catalog, decision=True)
    graph.kind, graph.warmup, graph.hash, print(graph.render_tree())

Every user mistake is a `DslError` whose `render()` names the cell and points at the text.
`dsl` depends on nothing else in the project (runtime and compiler import it, never the reverse);
design/DSL.md is the specification.
"""

from dsl.checker import CheckSession, check, check_catalog
from dsl.contracts import (
    REQUIRED,
    ArgRole,
    ArgSpec,
    Binary,
    Bool,
    Call,
    Catalog,
    ColumnDef,
    Debt,
    DslError,
    Edit,
    Execution,
    Expr,
    FeatureDef,
    Frequency,
    Graph,
    Keyword,
    Kind,
    MissingPolicy,
    Name,
    Node,
    Normalize,
    Number,
    OpSpec,
    Origin,
    Param,
    ParamDomain,
    ParamRef,
    Rule,
    Shape,
    Slot,
    Span,
    String,
    Unary,
    Winsorize,
)
from dsl.ops import OPERATORS, render_operator_table
from dsl.parser import normalize, parse
from dsl.printer import format_expr
from dsl.warmup import max_warmup, max_warmup_needs, warmup, warmup_needs

__all__ = [
    "OPERATORS",
    "REQUIRED",
    "ArgRole",
    "ArgSpec",
    "Binary",
    "Bool",
    "Call",
    "Catalog",
    "CheckSession",
    "ColumnDef",
    "Debt",
    "DslError",
    "Edit",
    "Execution",
    "Expr",
    "FeatureDef",
    "Frequency",
    "Graph",
    "Keyword",
    "Kind",
    "MissingPolicy",
    "Name",
    "Node",
    "Normalize",
    "Number",
    "OpSpec",
    "Origin",
    "Param",
    "ParamDomain",
    "ParamRef",
    "Rule",
    "Shape",
    "Slot",
    "Span",
    "String",
    "Unary",
    "Winsorize",
    "check",
    "check_catalog",
    "format_expr",
    "max_warmup",
    "max_warmup_needs",
    "normalize",
    "parse",
    "render_operator_table",
    "warmup",
    "warmup_needs",
]
