"""The operator registry: one declaration per operator, the single source of its semantics.

The checker reads signatures, result-kind rules, warm-up and availability rules from here; the
operator table in design/DSL.md is generated from here (a test keeps it in sync); the compiler's
backends implement exactly the `semantics` text. Bump `version` whenever an operator's values change:
the version is part of every node hash, so cached results are invalidated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dsl.contracts import REQUIRED, ArgRole, ArgSpec, Frequency, OpSpec, Shape
from dsl.rules import (
    ASOF_SHIFT,
    BOOL,
    BOOLEAN,
    CONST,
    DAILY_TO_MINUTE,
    FLOAT,
    LEAF,
    LIKE_X,
    MINUTE_TO_DAILY,
    NUMERIC,
    ORDERED_BOUNDS,
    PARAM,
    PAY_LAG,
    REALIZED_VOL_SCALE,
    SAME_AS_X,
    SAME_TYPE_BOOLEAN,
    SESSION_CLOSE,
    TO_DAILY,
    like_value,
)

# Shorthands for declarations ------------------------------------------------------------------------------
R = ArgRole
S = Shape


def _a(name: str, role: ArgRole, default: Any = REQUIRED, **kw: Any) -> ArgSpec:
    return ArgSpec(name, role, default, **kw)


X_NUM = _a("x", R.NUM)
X_SERIES = _a("x", R.NUM_SERIES)
X_ANY_SERIES = _a("x", R.ANY_SERIES)


def _window(minimum: int = 1, name: str = "n", default: Any = REQUIRED) -> ArgSpec:
    return _a(name, R.WINDOW, default, minimum=minimum, doc="rows in the window, current row included")


def _rolling(args: Mapping[str, Any]) -> int:
    return int(args["n"]) - 1


def _lagged(key: str) -> Any:
    def history(args: Mapping[str, Any]) -> int:
        return int(args[key])

    return history


def ema_extra_rows(span: int, tolerance: float = 1e-6) -> int:
    """Rows after the seed until the seed's weight (1-alpha)^k falls below `tolerance`."""
    alpha = 2.0 / (span + 1.0)
    if alpha >= 1.0:
        return 0
    return math.ceil(math.log(tolerance) / math.log(1.0 - alpha))


def _ema_history(args: Mapping[str, Any]) -> int:
    span = int(args["span"])
    return span - 1 + ema_extra_rows(span)


def _ffill_history(args: Mapping[str, Any]) -> int | None:
    n = args.get("n")
    return None if n is None else int(n)


def _unbounded(args: Mapping[str, Any]) -> None:
    return None


def _one(args: Mapping[str, Any]) -> int:
    return 1


Rows = Sequence[Mapping[Frequency, int]]


def _leaf_needs(args: Mapping[str, Any], freq: Frequency, children: Rows) -> dict[Frequency, int]:
    """A column reads one row of its own grid (the row itself)."""
    return {freq: 1}


def _asof_needs(args: Mapping[str, Any], freq: Frequency, children: Rows) -> dict[Frequency, int]:
    """Daily history of x plus the s-session shift; one bar of the 1m grid."""
    (c,) = children
    d, m = Frequency.DAILY, Frequency.MINUTE
    return {**c, d: c.get(d, 0) + int(args["sessions"]), m: max(c.get(m, 0), 1)}


def _to_daily_needs(args: Mapping[str, Any], freq: Frequency, children: Rows) -> dict[Frequency, int]:
    """The 1m history of x, and one session (daily row) of its own."""
    (c,) = children
    return {**c, Frequency.DAILY: max(c.get(Frequency.DAILY, 0), 1)}


ROLLING_WARMUP = "w(x) + n − 1"
STRICT = " Strict window: missing unless all n rows are present."


# ----------------------------------------------------------------------------------------------------------
# Declarations
# ----------------------------------------------------------------------------------------------------------


def _binary_arith(name: str, symbol: str, semantics: str) -> OpSpec:
    return OpSpec(
        name,
        "arithmetic",
        (_a("a", R.NUM), _a("b", R.NUM)),
        NUMERIC,
        semantics,
        symbol=symbol,
        callable=False,
    )


def _compare(name: str, symbol: str, semantics: str, role: ArgRole = R.NUM) -> OpSpec:
    return OpSpec(
        name,
        "comparison",
        (_a("a", role), _a("b", role)),
        BOOLEAN if role is not R.ANY else SAME_TYPE_BOOLEAN,
        semantics + " Missing if either side is missing.",
        symbol=symbol,
        callable=False,
    )


def _unary_math(name: str, semantics: str) -> OpSpec:
    return OpSpec(name, "elementwise", (X_NUM,), NUMERIC, semantics)


def _roll(
    name: str,
    semantics: str,
    aliases: tuple[str, ...] = (),
    minimum: int = 1,
    extra: tuple[ArgSpec, ...] = (),
) -> OpSpec:
    return OpSpec(
        name,
        "rolling",
        (X_SERIES, _window(minimum), *extra),
        FLOAT,
        semantics + STRICT,
        aliases=aliases,
        history=_rolling,
        warmup_rule=ROLLING_WARMUP,
        shape=S.WINDOW,
    )


_SPECS: tuple[OpSpec, ...] = (
    # -- leaves and wrappers (internal) -------------------------------------------------------------------
    OpSpec(
        "column",
        "leaf",
        (),
        LEAF,
        "A dataset column on its grid, identified by dataset_id and column (aliases hash equal). Sources "
        "normalise float NaN to missing, so NaN never reaches SQL.",
        callable=False,
        user=False,
        shape=S.SOURCE,
        needs=_leaf_needs,
        availability_rule="the column's availability_lag (DATASETS default_availability_lag_days)",
        warmup_rule="1",
    ),
    OpSpec(
        "const",
        "leaf",
        (),
        CONST,
        "A literal number or true/false. Int-valued numbers are normalised (60, 60.0, 6e1 are equal); "
        "`-` applied to a literal is folded into it.",
        callable=False,
        user=False,
        shape=S.SOURCE,
        availability_rule="0 (no source)",
        warmup_rule="0",
    ),
    OpSpec(
        "param",
        "leaf",
        (),
        PARAM,
        "A top-level $parameter used as a value, bound per run (Optuna, params_json). Hashed by name; "
        "the cache key adds the bound value. A feature's own params are substituted by value instead.",
        callable=False,
        user=False,
        shape=S.SOURCE,
        availability_rule="0 (no source)",
        warmup_rule="0",
    ),
    OpSpec(
        "feature",
        "leaf",
        (_a("x", R.ANY),),
        SAME_AS_X,
        "A named feature / engineered feature / gate: the value of its composed definition "
        "transform → lag(lag_days) → missing policy → winsorize → normalize. Pass-through; it exists so "
        "the feature has its own node, hash and cache entry.",
        label=lambda args: f"{args['role']} {args['name']}",
        callable=False,
        user=False,
    ),
    OpSpec(
        "availability",
        "leaf",
        (_a("x", R.ANY_SERIES), _a("lag", R.LAG), _a("mode", R.CHOICE, choices=("set", "floor"))),
        LIKE_X,
        "Pass-through value that declares availability. mode=set (FEATURE_LIBRARY availability_lag_days) "
        "replaces the availability of every source below it; mode=floor (ENGINEERED_FEATURES "
        "availability_lag_days) raises each source's owed lag to at least `lag`.",
        callable=False,
        user=False,
        availability_rule="set: every source owes `lag`; floor: max(owed, lag)",
    ),
    # -- arithmetic --------------------------------------------------------------------------------------
    _binary_arith("add", "+", "a + b. Missing if either side is missing."),
    _binary_arith("sub", "-", "a − b. Missing if either side is missing."),
    _binary_arith("mul", "*", "a × b. Missing if either side is missing."),
    _binary_arith("div", "/", "a / b. Missing when b = 0 or either side is missing (never ±inf or NaN)."),
    _binary_arith(
        "pow",
        "^",
        "a raised to b (right-associative: a^b^c = a^(b^c); -a^b = -(a^b)). Missing when the result is "
        "not a finite real number (0^negative, negative^non-integer, overflow).",
    ),
    OpSpec(
        "neg",
        "arithmetic",
        (_a("a", R.NUM),),
        NUMERIC,
        "−a. Missing if a is missing.",
        symbol="-",
        callable=False,
    ),
    # -- comparisons -------------------------------------------------------------------------------------
    _compare("gt", ">", "a > b."),
    _compare("ge", ">=", "a ≥ b."),
    _compare("lt", "<", "a < b."),
    _compare("le", "<=", "a ≤ b."),
    _compare(
        "eq",
        "==",
        "Exact equality (no tolerance) of two numbers or two true/false values; `=` is the same operator.",
        R.ANY,
    ),
    _compare("ne", "!=", "Exact inequality; `<>` is the same operator.", R.ANY),
    # -- logic (Kleene three-valued) --------------------------------------------------------------------
    OpSpec(
        "and",
        "logic",
        (_a("a", R.BOOL), _a("b", R.BOOL)),
        BOOLEAN,
        "Kleene AND: false if either side is false (even when the other is missing); true if both are "
        "true; otherwise missing.",
        symbol="AND",
        callable=False,
    ),
    OpSpec(
        "or",
        "logic",
        (_a("a", R.BOOL), _a("b", R.BOOL)),
        BOOLEAN,
        "Kleene OR: true if either side is true (even when the other is missing); false if both are "
        "false; otherwise missing.",
        symbol="OR",
        callable=False,
    ),
    OpSpec(
        "not",
        "logic",
        (_a("a", R.BOOL),),
        BOOLEAN,
        "NOT true = false, NOT false = true, NOT missing = missing.",
        symbol="NOT",
        callable=False,
    ),
    # -- elementwise math --------------------------------------------------------------------------------
    _unary_math("abs", "|x|."),
    _unary_math("sign", "−1, 0 or +1 by the sign of x."),
    _unary_math("log", "Natural logarithm; missing for x ≤ 0."),
    _unary_math("log1p", "ln(1 + x), accurate near 0; missing for x ≤ −1."),
    _unary_math("sqrt", "Square root; missing for x < 0."),
    _unary_math("exp", "e^x; missing when it overflows."),
    OpSpec(
        "signed_pow",
        "elementwise",
        (X_NUM, _a("a", R.NUM)),
        NUMERIC,
        "sign(x) × |x|^a (keeps the sign, e.g. signed_pow(x, 0.5)); missing when not finite (0^negative).",
    ),
    OpSpec(
        "min",
        "elementwise",
        (_a("a", R.NUM), _a("b", R.NUM)),
        NUMERIC,
        "The smaller of two values, row by row; missing if either is missing. Always elementwise: "
        "min(x, 20) is the smaller of x and 20, not a rolling minimum (use ts_min(x, n)).",
    ),
    OpSpec(
        "max",
        "elementwise",
        (_a("a", R.NUM), _a("b", R.NUM)),
        NUMERIC,
        "The larger of two values, row by row; missing if either is missing. Always elementwise: "
        "max(x, 0) floors x at 0; the rolling maximum is ts_max(x, n).",
    ),
    OpSpec(
        "clip",
        "elementwise",
        (X_NUM, _a("lo", R.NUM), _a("hi", R.NUM)),
        NUMERIC,
        "min(max(x, lo), hi); missing if any argument is missing or lo > hi on that row.",
        validate=ORDERED_BOUNDS,
    ),
    OpSpec(
        "if",
        "elementwise",
        (_a("cond", R.BOOL), _a("then", R.ANY), _a("else", R.ANY)),
        like_value("then", "else"),
        "`then` where cond is true, `else` where cond is false, missing where cond is missing. then/else "
        "must both be numbers or both true/false.",
        aliases=("where",),
    ),
    OpSpec(
        "is_missing",
        "missing data",
        (X_ANY_SERIES,),
        BOOL,
        "true where x is missing, false elsewhere; never missing itself.",
    ),
    OpSpec(
        "fill",
        "missing data",
        (_a("x", R.ANY), _a("value", R.ANY)),
        like_value("x", "value"),
        "x where present, otherwise `value` (a number/true/false or another series, same kind as x). "
        "fill(signal, false) turns a three-valued condition into a two-valued one.",
    ),
    OpSpec(
        "ffill",
        "missing data",
        (X_ANY_SERIES, _window(1, default=None)),
        LIKE_X,
        "x if present, otherwise the most recent present value at most n rows back; missing if there is "
        "none. Without n the look-back is unlimited, which depends on all history (stateful).",
        history=_ffill_history,
        warmup_rule="w(x) + n; unbounded (stateful) without n",
        shape=S.RECURSIVE,
    ),
    # -- time shifts -------------------------------------------------------------------------------------
    OpSpec(
        "lag",
        "time series",
        (X_ANY_SERIES, _a("k", R.LAG, 1, doc="rows back, ≥ 0")),
        LIKE_X,
        "The value k rows earlier on the series' own grid (lag(x, 0) = x); missing for the first k rows. "
        "Negative k (a lead) is rejected: decisions cannot look into the future.",
        aliases=("delay",),
        history=_lagged("k"),
        warmup_rule="w(x) + k",
        shape=S.WINDOW,
        availability=PAY_LAG,
        availability_rule="each source: max(owed − k, 0) (the only operator that pays lag)",
    ),
    OpSpec(
        "diff",
        "time series",
        (X_SERIES, _window(1, default=1)),
        FLOAT,
        "x − lag(x, n).",
        aliases=("delta",),
        history=_lagged("n"),
        warmup_rule="w(x) + n",
        shape=S.WINDOW,
    ),
    OpSpec(
        "pct_change",
        "time series",
        (X_SERIES, _window(1, default=1)),
        FLOAT,
        "x / lag(x, n) − 1; missing when lag(x, n) = 0.",
        history=_lagged("n"),
        warmup_rule="w(x) + n",
        shape=S.WINDOW,
    ),
    # -- rolling statistics (window = last n rows, current row included) -------------------------------
    _roll("mean", "Arithmetic mean of the window.", ("ts_mean",)),
    _roll("sum", "Sum of the window.", ("ts_sum",)),
    _roll("std", "Sample standard deviation (ddof = 1); n ≥ 2.", ("ts_std", "stddev"), 2),
    _roll("var", "Sample variance (ddof = 1); n ≥ 2.", ("ts_var",), 2),
    _roll("median", "Median of the window (mean of the two middle values when n is even).", ("ts_median",)),
    _roll("ts_min", "Smallest value in the window.", ()),
    _roll("ts_max", "Largest value in the window.", ()),
    _roll(
        "ts_argmax",
        "Rows since the window's largest value: 0 = the current row, n − 1 = the oldest; ties go to the "
        "most recent row.",
    ),
    _roll(
        "ts_argmin",
        "Rows since the window's smallest value: 0 = the current row; ties go to the most recent row.",
    ),
    _roll(
        "zscore",
        "(x − mean(x, n)) / std(x, n) with ddof = 1; missing when the window is constant (max = min, i.e. "
        "std = 0); n ≥ 2.",
        ("ts_zscore",),
        2,
    ),
    _roll(
        "rank",
        "Percentile rank of the current value in its window, in (0, 1]: its 1-based ascending rank, ties "
        "given the average rank, divided by n (pandas rank(pct=True)). Largest of n distinct values = 1; "
        "a constant window gives (n + 1) / (2n).",
        ("ts_rank",),
    ),
    _roll(
        "quantile",
        "q-quantile of the window by linear interpolation: sorted v[0] ≤ … ≤ v[n−1], h = q·(n − 1), "
        "result v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋]) (numpy 'linear'); 0 ≤ q ≤ 1.",
        ("ts_quantile",),
        extra=(_a("q", R.REAL, minimum=0.0, maximum=1.0),),
    ),
    _roll(
        "slope",
        "OLS slope of the window's values against t = 1..n (oldest = 1): Σ(t − t̄)(x − x̄) / Σ(t − t̄)², "
        "in units of x per row; n ≥ 2.",
        ("ts_slope",),
        2,
    ),
    OpSpec(
        "count",
        "rolling",
        (X_ANY_SERIES, _window(1)),
        FLOAT,
        "Number of present values among the last n rows (0..n). Never missing once n rows exist.",
        aliases=("ts_count",),
        history=_rolling,
        warmup_rule=ROLLING_WARMUP,
        shape=S.WINDOW,
    ),
    OpSpec(
        "corr",
        "rolling",
        (_a("x", R.NUM_SERIES), _a("y", R.NUM_SERIES), _window(2)),
        FLOAT,
        "Pearson correlation of x and y over the last n rows. Pairwise strict: missing unless x and y are "
        "both present on all n rows; missing if either window is constant.",
        aliases=("ts_corr",),
        history=_rolling,
        warmup_rule="max(w(x), w(y)) + n − 1",
        shape=S.WINDOW,
    ),
    OpSpec(
        "cov",
        "rolling",
        (_a("x", R.NUM_SERIES), _a("y", R.NUM_SERIES), _window(2)),
        FLOAT,
        "Sample covariance (ddof = 1) of x and y over the last n rows; missing unless both are present on "
        "all n rows.",
        aliases=("ts_cov",),
        history=_rolling,
        warmup_rule="max(w(x), w(y)) + n − 1",
        shape=S.WINDOW,
    ),
    OpSpec(
        "realized_vol",
        "rolling",
        (
            _a("returns", R.NUM_SERIES),
            _window(2),
            _a("annualize", R.FLAG, True),
            _a("periods_per_year", R.REAL, None, keyword_only=True, minimum=1.0),
        ),
        FLOAT,
        "std(returns, n) (ddof = 1) × √P. P = periods_per_year when given; otherwise 252 on a daily grid "
        "and 98,280 (= 252 × 390 RTH one-minute bars) on a 1m grid (pass periods_per_year=347760 for "
        "FULL-session bars); annualize=false gives P = 1." + STRICT,
        resolve=REALIZED_VOL_SCALE,
        history=_rolling,
        warmup_rule=ROLLING_WARMUP,
        shape=S.WINDOW,
    ),
    _roll(
        "winsorize",
        "clip(x, m − k·s, m + k·s) where m, s are mean(x, n) and std(x, n) (ddof = 1) of the current window "
        "(which includes x); n ≥ 2, k > 0.",
        (),
        2,
        extra=(_a("k", R.REAL, minimum=0.0),),
    ),
    OpSpec(
        "ema",
        "rolling",
        (X_SERIES, _a("span", R.WINDOW, minimum=1)),
        FLOAT,
        "Exponential moving average, α = 2 / (span + 1), adjust=False. Seeded at the span-th present value "
        "with the mean of the first span present values; then e = α·x + (1 − α)·e_prev on every present x. "
        "A missing x gives a missing output and leaves the state unchanged. Missing before the seed.",
        history=_ema_history,
        shape=S.RECURSIVE,
        warmup_rule="w(x) + span − 1 + ⌈ln(1e-6) / ln(1 − α)⌉ (the seed's weight has decayed below 1e-6, "
        "so values do not depend on where loading started)",
    ),
    # -- events and state --------------------------------------------------------------------------------
    OpSpec(
        "cross_above",
        "events",
        (_a("a", R.NUM_SERIES), _a("b", R.NUM)),
        BOOL,
        "true when a > b on this row and a ≤ b on the previous row, else false; missing if any of the "
        "four values is missing.",
        history=_one,
        warmup_rule="max(w(a), w(b)) + 1",
        shape=S.WINDOW,
    ),
    OpSpec(
        "cross_below",
        "events",
        (_a("a", R.NUM_SERIES), _a("b", R.NUM)),
        BOOL,
        "true when a < b on this row and a ≥ b on the previous row, else false; missing if any of the "
        "four values is missing.",
        history=_one,
        warmup_rule="max(w(a), w(b)) + 1",
        shape=S.WINDOW,
    ),
    OpSpec(
        "bars_since",
        "events",
        (_a("cond", R.BOOL_SERIES),),
        FLOAT,
        "0 on a row where cond is true, otherwise 1 + the previous value; missing before the first true. "
        "A missing cond counts as false (no event).",
        aliases=("days_since",),
        history=_unbounded,
        warmup_rule="unbounded (stateful: loaded from the start of the data)",
        stateful=True,
        shape=S.RECURSIVE,
    ),
    OpSpec(
        "hold",
        "events",
        (_a("entry", R.BOOL_SERIES), _a("value", R.ANY), _a("exit", R.BOOL_SERIES)),
        like_value("value"),
        "exit true → missing (flat); else entry true → value; else the previous output (missing at the "
        "start). Missing entry/exit count as false. (WorldQuant trade_when.)",
        aliases=("trade_when",),
        history=_unbounded,
        warmup_rule="unbounded (stateful: loaded from the start of the data)",
        stateful=True,
        shape=S.RECURSIVE,
    ),
    # -- alignment between grids -------------------------------------------------------------------------
    OpSpec(
        "asof",
        "alignment",
        (_a("x", R.ANY_SERIES),),
        LIKE_X,
        "Daily → 1m. On every minute bar of the session with trade date D, the value of the daily row s "
        "sessions before D, where s = max(availability of x, 1) (recorded as the node's `sessions` arg); "
        "never the row stamped D itself. Missing where that row is missing.",
        warmup_rule="1 bar; daily history w(x) + s",
        needs=_asof_needs,
        availability=ASOF_SHIFT,
        frequency=DAILY_TO_MINUTE,
        availability_rule="0 on the 1m grid (the s-session shift pays the daily lag)",
        shape=S.ALIGN,
    ),
    OpSpec(
        "to_daily",
        "alignment",
        (
            _a("x", R.ANY_SERIES),
            _a("how", R.CHOICE, "last", choices=("last", "first", "sum", "mean", "max", "min")),
        ),
        TO_DAILY,
        "1m → daily: one value per trade date from the present values of that session's bars: last, "
        "first, sum, mean, max or min (max/min of true/false are any/all; sum/mean need numbers). Missing "
        "for a session without present values.",
        warmup_rule="1 session; 1m history w(x) − 1 bars before it",
        needs=_to_daily_needs,
        availability=SESSION_CLOSE,
        frequency=MINUTE_TO_DAILY,
        availability_rule="1 for every source (a session's value is known at its close)",
        shape=S.ALIGN,
    ),
)


class Registry(Mapping[str, OpSpec]):
    """Operators by canonical name; `get` resolves user-callable names and aliases case-insensitively."""

    def __init__(self, specs: tuple[OpSpec, ...]) -> None:
        self._specs = {s.name: s for s in specs}
        if len(self._specs) != len(specs):
            raise ValueError("duplicate operator name")
        self._callable: dict[str, OpSpec] = {}
        self._symbols: dict[str, OpSpec] = {}
        for s in specs:
            if s.symbol:
                key = s.symbol if s.symbol != "-" or len(s.args) == 2 else "neg"
                self._symbols[key] = s
            if s.callable and s.user:
                for n in (s.name, *s.aliases):
                    if n in self._callable:
                        raise ValueError(f"operator name {n!r} declared twice")
                    self._callable[n] = s

    def __getitem__(self, name: str) -> OpSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """A user-callable operator by name or alias (case-insensitive), else `default`."""
        return self._callable.get(name.lower(), default)

    def binary(self, symbol: str) -> OpSpec:
        """Infix operator by canonical symbol (+ - * / ^ > >= < <= == != and or)."""
        return self._symbols[{"and": "AND", "or": "OR"}.get(symbol, symbol)]

    def unary(self, op: str) -> OpSpec:
        return self._symbols["neg"] if op == "-" else self._symbols["NOT"]

    def callable_names(self) -> list[str]:
        return sorted(self._callable)


OPERATORS = Registry(_SPECS)

# ----------------------------------------------------------------------------------------------------------
# Documentation
# ----------------------------------------------------------------------------------------------------------

_CATEGORY_ORDER = (
    "arithmetic",
    "comparison",
    "logic",
    "elementwise",
    "missing data",
    "time series",
    "rolling",
    "events",
    "alignment",
    "leaf",
)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _arg_doc(a: ArgSpec) -> str:
    role = a.role.value
    if a.role is ArgRole.WINDOW:
        role = f"window int ≥ {int(a.minimum or 1)}"
    elif a.role is ArgRole.LAG:
        role = "int ≥ 0"
    elif a.role is ArgRole.CHOICE:
        role = " / ".join(a.choices)
    elif a.role is ArgRole.REAL and (a.minimum is not None or a.maximum is not None):
        lo = "" if a.minimum is None else f"{a.minimum:g} ≤ "
        hi = "" if a.maximum is None else f" ≤ {a.maximum:g}"
        role = f"number, {lo}{a.name}{hi}"
    literal = "" if a.role.is_operand else " (literal or $param)"
    kw = ", keyword-only" if a.keyword_only else ""
    return f"`{a.name}`: {role}{literal}{kw}"


def render_operator_table(backends: Callable[[OpSpec], str] | None = None) -> str:
    """The markdown operator reference for design/DSL.md, generated from the registry.

    `backends` fills the backends column from the backends' own registries; dsl cannot import the
    compiler, so `python -m compiler.docs` passes it (without it the column says so).
    """
    lines: list[str] = []
    by_cat: dict[str, list[OpSpec]] = {}
    for s in _SPECS:
        by_cat.setdefault(s.category, []).append(s)
    for cat in _CATEGORY_ORDER:
        specs = by_cat.get(cat, [])
        if not specs:
            continue
        title = "internal nodes (not written by users)" if cat == "leaf" else cat
        lines += [
            f"#### {title}",
            "",
            "| operator | aliases | arguments | result | warm-up | availability | semantics | shape | v "
            "| backends |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in specs:
            sig = f"`{_md(s.signature())}`" if s.user else f"`{s.name}`"
            if s.symbol:
                sig += f" (`{s.name}`)"
            aliases = ", ".join(f"`{a}`" for a in s.aliases) or "-"
            args = "; ".join(_arg_doc(a) for a in s.args) or "-"
            warm = s.warmup_rule + (" (stateful)" if s.stateful else "")
            impl = backends(s) if backends is not None else "(from compiler registries)"
            lines.append(
                f"| {sig} | {aliases} | {_md(args)} | {_md(s.result.doc)} | {_md(warm)} "
                f"| {_md(s.availability_rule)} | {_md(s.semantics)} | {s.shape.value} | {s.version} "
                f"| {_md(impl)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
