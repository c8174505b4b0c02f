"""Public contracts of the DSL front end: every type other packages construct or read.

The runtime builds a `Catalog` from the workbook and hands it to `dsl.check`; the compiler reads the
resulting `Graph`. Everything here is a frozen value so a checked graph can be cached and shared
without defensive copies. Behaviour lives elsewhere (parser, checker, graph rendering); the few
methods below only delegate or format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Value types
# ----------------------------------------------------------------------------------------------------------


class Kind(Enum):
    """Value kind of a node: a series (one value per row of a grid) or a scalar constant."""

    FLOAT = "float"
    BOOL = "bool"
    INT_SCALAR = "int"
    FLOAT_SCALAR = "float scalar"
    BOOL_SCALAR = "bool scalar"
    STR = "str"

    @property
    def is_series(self) -> bool:
        return self in (Kind.FLOAT, Kind.BOOL)

    @property
    def is_numeric(self) -> bool:
        return self in (Kind.FLOAT, Kind.INT_SCALAR, Kind.FLOAT_SCALAR)

    @property
    def is_bool(self) -> bool:
        return self in (Kind.BOOL, Kind.BOOL_SCALAR)


class Frequency(Enum):
    """The grid a series lives on; scalars live on no grid and combine with either."""

    DAILY = "daily"
    MINUTE = "1m"
    SCALAR = "scalar"


class Execution(Enum):
    """When a decision is traded; decides how many periods of availability lag are already paid."""

    CLOSE = "close"
    NEXT_OPEN = "next_open"
    NEXT_CLOSE = "next_close"
    CUSTOM = "custom"

    @property
    def shift(self) -> int:
        """Periods between the decision row's stamp and the trade: only CLOSE trades on the same row."""
        return 0 if self is Execution.CLOSE else 1

    @property
    def label(self) -> str:
        return {
            Execution.CLOSE: "the close of the same row",
            Execution.NEXT_OPEN: "the next open",
            Execution.NEXT_CLOSE: "the next close",
            Execution.CUSTOM: "a custom time in the next session",
        }[self]


# ----------------------------------------------------------------------------------------------------------
# Where things come from
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """A workbook cell (or the command line when all fields are None), used to prefix every message."""

    sheet: str | None = None
    cell: str | None = None
    column: str | None = None

    def render(self) -> str:
        if self.sheet is None and self.cell is None and self.column is None:
            return "command line"
        out = self.sheet or ""
        if self.cell:
            out = f"{out}!{self.cell}" if out else self.cell
        if self.column:
            out = f"{out}:{self.column}" if out else self.column
        return out

    def __str__(self) -> str:
        return self.render()


COMMAND_LINE = Origin()


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range [start, end) into the user's original text (not the normalised one)."""

    start: int
    end: int


# ----------------------------------------------------------------------------------------------------------
# Catalog: the names an expression may use (built by the runtime from the workbook)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDef:
    """A leaf: one dataset column. Several catalog names may alias the same dataset/column."""

    name: str
    dataset_id: str
    column: str
    kind: Kind
    frequency: Frequency
    availability_lag: int
    availability_origin: Origin
    known_time_rule: str = "at_close"

    @property
    def source(self) -> str:
        """Identity of the data, independent of the alias used to reach it."""
        return f"{self.dataset_id}.{self.column}"


@dataclass(frozen=True, slots=True)
class MissingPolicy:
    """What a feature does with missing values: keep them, fill forward (at most `limit` rows), or zero."""

    mode: str = "keep"  # keep | ffill | zero
    limit: int | None = None  # ffill look-back in rows; None = unlimited (stateful)

    def __post_init__(self) -> None:
        if self.mode not in ("keep", "ffill", "zero"):
            raise ValueError(f"missing policy must be keep, ffill or zero, not {self.mode!r}")
        if self.limit is not None and (
            self.mode != "ffill" or isinstance(self.limit, bool) or self.limit < 1
        ):
            raise ValueError(f"a look-back limit needs mode ffill and N >= 1, got {self.mode}:{self.limit}")

    def __str__(self) -> str:
        return f"ffill:{self.limit}" if self.limit is not None else self.mode


@dataclass(frozen=True, slots=True)
class Winsorize:
    """Clip to the trailing mean ± k standard deviations over n rows (the workbook's `N:k`)."""

    n: int
    k: float

    def __str__(self) -> str:
        return f"{self.n}:{self.k:g}"


@dataclass(frozen=True, slots=True)
class Normalize:
    """Trailing normalisation over n rows: zscore or rank (the workbook's `zscore:N` / `rank:N`)."""

    method: str  # zscore | rank
    n: int

    def __str__(self) -> str:
        return f"{self.method}:{self.n}"


@dataclass(frozen=True)
class FeatureDef:
    """A named expression: a FEATURE_LIBRARY, ENGINEERED_FEATURES or GATES row."""

    name: str
    role: str
    expression: str
    origin: Origin
    params: Mapping[str, int | float | bool] = field(default_factory=dict)
    input_column: str | None = None
    lag_days: int = 0
    availability_lag_override: int | None = None
    availability_origin: Origin | None = None
    missing_policy: MissingPolicy = MissingPolicy()
    winsorize: Winsorize | None = None
    normalize: Normalize | None = None
    declared_inputs: tuple[str, ...] | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Catalog:
    """Everything a cell may reference: dataset columns by qualified name and named features."""

    columns: Mapping[str, ColumnDef]
    features: Mapping[str, FeatureDef] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """A machine-applicable fix: replace text[span] with `replacement` (tools and tests apply it literally)."""

    span: Span
    replacement: str

    def apply(self, text: str) -> str:
        return text[: self.span.start] + self.replacement + text[self.span.end :]


class DslError(Exception):
    """The one exception the DSL raises for user mistakes: message, fix, and where (text + span + origin).

    A plain Exception subclass (not a frozen dataclass) because the interpreter must be able to set
    __traceback__/__cause__ on it.
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        text: str | None = None,
        span: Span | None = None,
        origin: Origin | None = None,
        code: str = "error",
        related: tuple[str, ...] = (),
        edit: Edit | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.text = text
        self.span = span
        self.origin = origin
        self.code = code
        self.related = related  # feature names involved (e.g. the members of a cycle)
        self.edit = edit  # the fix as an edit of `text`, when it is one (following it removes this error)

    @property
    def column(self) -> int | None:
        """0-based caret column in the original text (None when the error has no position)."""
        return None if self.span is None else self.span.start

    def render(self) -> str:
        """`ORIGIN: message`, the expression, a caret line under the span, then `fix: ...`."""
        head = f"{(self.origin or COMMAND_LINE).render()}: {self.message}"
        lines = [head]
        if self.text is not None:
            shown = "".join(" " if ch.isspace() else ch for ch in self.text)
            lines.append("    " + shown)
            if self.span is not None:
                start = max(0, min(self.span.start, len(shown)))
                end = max(start + 1, min(self.span.end, len(shown) + 1))
                lines.append("    " + " " * start + "^" * (end - start))
        if self.fix:
            lines.append(f"fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"DslError({self.code!r}, {self.message!r}, span={self.span})"


# ----------------------------------------------------------------------------------------------------------
# AST (what `parse` returns): frozen, positioned, no behaviour
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    """Base of all AST nodes; every node carries its span in the original text."""


@dataclass(frozen=True, slots=True)
class Number(Expr):
    value: int | float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class String(Expr):
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Bool(Expr):
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Name(Expr):
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Param(Expr):
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Slot(Expr):
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # "-" or "not"
    operand: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # canonical: + - * / ^ > >= < <= == != and or
    left: Expr
    right: Expr
    span: Span
    op_span: Span
    op_text: str = ""  # as written (e.g. "=" or "<>"); informational, never hashed


@dataclass(frozen=True, slots=True)
class Keyword(Expr):
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str  # as written; operator lookup is case-insensitive
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span
    name_span: Span


# ----------------------------------------------------------------------------------------------------------
# Operator registry entries
# ----------------------------------------------------------------------------------------------------------


class Shape(Enum):
    """How an operator is evaluated, which is what a planner and a backend need to know about it.

    source: a leaf read or broadcast (column, const, param); elementwise: row by row, no history;
    window: reads a bounded number of earlier rows of its own grid (rolling, lag, diff, cross_*);
    recursive: carries state from row to row (ema, ffill, bars_since, hold); align: moves values
    between grids (asof, to_daily).
    """

    SOURCE = "source"
    ELEMENTWISE = "elementwise"
    WINDOW = "window"
    RECURSIVE = "recursive"
    ALIGN = "align"

    @property
    def windowed(self) -> bool:
        """True when SQL needs a window function (or a join) for it: each depth is a projection stage."""
        return self in (Shape.WINDOW, Shape.RECURSIVE, Shape.ALIGN)


class ArgRole(Enum):
    """How an argument is checked: an operand (becomes a child node) or a literal (becomes a node arg)."""

    NUM = "number"  # numeric series or scalar
    NUM_SERIES = "number series"
    BOOL = "true/false"  # bool series or scalar
    BOOL_SERIES = "true/false series"
    ANY = "value"  # numeric or bool, series or scalar
    ANY_SERIES = "series"
    WINDOW = "window"  # positive int literal or int $param
    LAG = "lag"  # non-negative int literal or int $param
    REAL = "number literal"  # number literal or numeric $param
    CHOICE = "option"  # string literal from `choices`
    FLAG = "flag"  # true/false literal or bool $param

    @property
    def is_operand(self) -> bool:
        return self in _OPERAND_ROLES


_OPERAND_ROLES = frozenset(
    {ArgRole.NUM, ArgRole.NUM_SERIES, ArgRole.BOOL, ArgRole.BOOL_SERIES, ArgRole.ANY, ArgRole.ANY_SERIES}
)


class _Required:
    """Sentinel for an argument without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class ArgSpec:
    """One declared argument. Operands are positional-only; literal options may also be given by keyword."""

    name: str
    role: ArgRole
    default: Any = REQUIRED
    keyword_only: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def keyword_ok(self) -> bool:
        return not self.role.is_operand


@dataclass(frozen=True)
class Rule:
    """A named rule an operator declares: `id` and `doc` go into the operator table, the checker calls it
    (result kind, grid, availability, argument resolution, cross-argument checks; see dsl.rules)."""

    id: str
    doc: str
    fn: Callable[..., Any] = field(compare=False, repr=False)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


@dataclass(frozen=True)
class OpSpec:
    """One operator declaration: signature, typing, warm-up, availability and documented semantics."""

    name: str
    category: str
    args: tuple[ArgSpec, ...]
    result: Rule  # result kind from the operands (dsl.rules)
    semantics: str
    aliases: tuple[str, ...] = ()
    symbol: str | None = None  # infix/prefix spelling for operators
    callable: bool = True  # may be written name(...)
    history: Callable[[Mapping[str, Any]], int | None] | None = None  # extra rows; None result = unbounded
    # rows needed per grid from (plain args, own grid, children's needs); None = the generic rule
    # (children's needs, plus `history` rows on the node's own grid); dsl.warmup applies it
    needs: (
        Callable[[Mapping[str, Any], Frequency, Sequence[Mapping[Frequency, int]]], dict[Frequency, int]]
        | None
    ) = None
    warmup_rule: str = "max of the children"
    availability: Rule | None = None  # None: the children's debts pass through (max per source)
    availability_rule: str = "max over the children"
    frequency: Rule | None = None  # None: the operands' common grid (dsl.rules.COMMON_GRID)
    resolve: Rule | None = None  # (ctx, grid) -> the literal args the node stores (e.g. realized_vol's P)
    validate: Rule | None = None  # (ctx) -> None or a DslError across arguments (e.g. clip's lo <= hi)
    label: Callable[[Mapping[str, Any]], str] | None = None  # node label from its args (default: name args)
    version: int = 1
    shape: Shape = Shape.ELEMENTWISE  # evaluation shape; which backends implement it is theirs to say
    stateful: bool = False
    user: bool = True  # False: internal node (leaves, feature wrappers), not written by users

    def signature(self) -> str:
        if self.symbol and not self.callable:
            operands = [a.name for a in self.args]
            if len(operands) == 1:
                return f"{self.symbol}{operands[0]}" if self.symbol != "NOT" else f"NOT {operands[0]}"
            return f"{operands[0]} {self.symbol} {operands[1]}"
        parts: list[str] = []
        star = False
        for a in self.args:
            if a.keyword_only and not star:
                parts.append("*")
                star = True
            text = a.name
            if not a.required:
                text += f"={_show_default(a.default)}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"


def _show_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# Typed DAG
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamDomain:
    """The values a top-level `$param` may take (OPTIMIZATION_PARAMS low/high/type, or a caller's grid).

    The checker validates an operator argument over the whole domain (a window param must be an int
    whose `low` satisfies the window's minimum), so one checked graph holds for every trial; the
    compiler computes warm-up per binding or as the maximum over the domain.
    """

    kind: str  # "int" | "float" | "bool"
    low: int | float | None = None
    high: int | float | None = None
    origin: Origin | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "bool"):
            raise ValueError(f"parameter domain kind must be int, float or bool, not {self.kind!r}")
        if self.kind != "bool":
            if self.low is None or self.high is None or not self.low <= self.high:
                raise ValueError(
                    f"a {self.kind} parameter domain needs low <= high, got {self.low}..{self.high}"
                )
            if self.kind == "int" and (
                float(self.low) != int(self.low) or float(self.high) != int(self.high)
            ):
                raise ValueError(f"an int parameter domain needs whole bounds, got {self.low}..{self.high}")

    @property
    def extremes(self) -> tuple[int | float | bool, ...]:
        """The values a monotone rule is extreme at: (low, high), or (false, true) for a flag."""
        if self.kind == "bool":
            return (False, True)
        if self.kind == "int":
            return (int(self.low), int(self.high))  # type: ignore[arg-type]
        return (self.low, self.high)  # type: ignore[return-value]

    def contains(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def describe(self) -> str:
        if self.kind == "bool":
            return "true/false"
        return f"{self.kind} {self.low:g}..{self.high:g}"


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A top-level `$param` used as a literal argument: symbolic in the graph (hashed by name).

    The bound value is not part of the node: it lives in `Graph.params` (the check-time binding) or
    comes per trial; `domain` is the declared domain when one was given to the checker.
    """

    name: str
    domain: ParamDomain | None = None


@dataclass(frozen=True, slots=True)
class Debt:
    """Availability still owed to one source at a node (periods), with what a message needs to explain it.

    `path` reads from the reference outward to the source (e.g. gate vix_high -> feature vix -> VIX.close);
    `spans` are the positions in the checked text where a lag pays the debt (the reference, or the
    `to_daily(...)` that starts a new daily debt); `paid` is lag already applied above that position;
    `bump` is (span, value, operand span) of the first literal lag `k` above it, raised instead of
    wrapping; `frequency` is the grid the debt is counted on (bars on 1m, trading days on daily);
    `reason` says why the debt exists when no cell sets it ("to_daily": a session aggregate).
    """

    source: str
    owed: int
    origin: Origin
    path: tuple[str, ...]
    spans: tuple[Span, ...]
    lag: int
    paid: int = 0
    bump: tuple[Span, int, Span] | None = None
    frequency: Frequency | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """One typed DAG node. `hash` is the canonical content hash; identical subexpressions share a node."""

    hash: str
    op: str
    children: tuple[str, ...]
    args: tuple[tuple[str, Any], ...]
    kind: Kind
    frequency: Frequency
    availability: int
    warmup: int
    stateful: bool
    needs: tuple[tuple[Frequency, int], ...]
    residual: tuple[Debt, ...]
    spans: tuple[Span, ...]
    origin: Origin
    label: str

    @property
    def short(self) -> str:
        return self.hash[:8]


@dataclass(frozen=True)
class Graph:
    """A checked expression: nodes in topological order (children first), the root last."""

    root: str
    nodes: tuple[Node, ...]
    text: str
    canonical: str
    origin: Origin
    execution: Execution | None = None
    params: tuple[tuple[str, Any], ...] = ()  # the check-time binding of top-level $params (may be partial)
    domains: tuple[tuple[str, ParamDomain], ...] = ()  # declared domains of top-level $params
    _index: Mapping[str, Node] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._index:
            object.__setattr__(self, "_index", {n.hash: n for n in self.nodes})

    # -- the root's properties ------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        return self.root

    @property
    def root_node(self) -> Node:
        return self._index[self.root]

    @property
    def kind(self) -> Kind:
        return self.root_node.kind

    @property
    def frequency(self) -> Frequency:
        return self.root_node.frequency

    @property
    def availability(self) -> int:
        return self.root_node.availability

    @property
    def warmup(self) -> int:
        return self.root_node.warmup

    @property
    def warmup_by_frequency(self) -> dict[Frequency, int]:
        return dict(self.root_node.needs)

    @property
    def stateful(self) -> bool:
        return any(n.stateful for n in self.nodes)

    @property
    def residual(self) -> tuple[Debt, ...]:
        return self.root_node.residual

    # -- structure ------------------------------------------------------------------------------------
    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(parent hash, child hash) pairs in argument order."""
        return tuple((n.hash, c) for n in self.nodes for c in n.children)

    def find(self, hash_or_prefix: str) -> Node:
        """Node by full hash or an unambiguous prefix (e.g. the 8-character short hash)."""
        node = self._index.get(hash_or_prefix)
        if node is not None:
            return node
        hits = [n for n in self.nodes if n.hash.startswith(hash_or_prefix)]
        if len(hits) != 1:
            raise KeyError(hash_or_prefix)
        return hits[0]

    def reachable(self, start: str | None = None) -> tuple[Node, ...]:
        """The subgraph under `start` (default: the root), children first, each node once."""
        from dsl.graph import reachable

        return reachable(self._index, start or self.root)

    def __contains__(self, hash_: object) -> bool:
        return hash_ in self._index

    def __len__(self) -> int:
        return len(self.nodes)

    # -- views (implemented in dsl.graph) -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from dsl.graph import graph_to_dict

        return graph_to_dict(self)

    def warmup_text(self) -> str:
        """Warm-up on every grid it reads, in words ("2 1m bars + 62 daily rows"), like the JSON's."""
        from dsl.graph import warmup_text

        return warmup_text(self.warmup_by_frequency, self.frequency)

    def render_tree(self) -> str:
        from dsl.graph import render_tree

        return render_tree(self)

    def to_dot(self) -> str:
        from dsl.graph import to_dot

        return to_dot(self)

    def _repr_html_(self) -> str:
        from dsl.graph import to_html

        return to_html(self)

    def __repr__(self) -> str:
        return (
            f"Graph({self.canonical!r}, kind={self.kind.value}, frequency={self.frequency.value}, "
            f"availability={self.availability}, warmup={self.warmup}, hash={self.root[:8]})"
        )
