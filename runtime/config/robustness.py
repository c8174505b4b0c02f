"""ROBUSTNESS.param_json: the keys each robustness test takes, their defaults and checks.

Why here (runtime.config, not runtime.robustness): the export validates every ROBUSTNESS row with these
checks (runtime/config/validate.py `_robustness`, naming the cell) and the runner refuses the same things;
config must not import the robustness runtime (package layering: config < backtest < robustness).
Pure: no I/O, no numpy.
"""

from __future__ import annotations

import math
from typing import Any

# --------------------------------------------------------------------------------------------------
# ROBUSTNESS.param_json: the keys each test takes, their defaults and checks (export and runtime share it)
# --------------------------------------------------------------------------------------------------


def _int(lo: int | None = None, nullable: bool = False, even: bool = False) -> Any:
    def check(v: Any) -> Any:
        if v is None and nullable:
            return None
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
            or float(v) != int(v)
        ):
            raise ValueError("must be a whole number" + (" or null" if nullable else ""))
        v = int(v)
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}")
        if even and v % 2:
            raise ValueError("must be even")
        return v

    return check


def _float(
    lo: float | None = None, hi: float | None = None, nullable: bool = False, open_lo: bool = False
) -> Any:
    def check(v: Any) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
            raise ValueError("must be a number" + (" or null" if nullable else ""))
        if lo is not None and (v <= lo if open_lo else v < lo):
            raise ValueError(f"must be {'>' if open_lo else '>='} {lo:g}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi:g}")
        return float(v)

    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _enum(*options: str) -> Any:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)

    return check


def _str(nullable: bool = True) -> Any:
    def check(v: Any) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not v.strip():
            raise ValueError("must be a name in quotes" + (" or null" if nullable else ""))
        return v.strip()

    return check


def _strs(n: int | None = None, single_ok: bool = False, options: tuple[str, ...] | None = None) -> Any:
    def check(v: Any) -> Any:
        if v is None:
            return None
        if single_ok and isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise ValueError('must be a list of names, e.g. ["a", "b"]')
        if n is not None and len(v) != n:
            raise ValueError(f"must name exactly {n}")
        if options is not None:
            bad = [x for x in v if x not in options]
            if bad:
                raise ValueError(f"has {', '.join(bad)}: use {', '.join(options)}")
        return [x.strip() for x in v]

    return check


def _floats(lo: float = 0.0) -> Any:
    def check(v: Any) -> list[float]:
        if not isinstance(v, list) or len(v) < 2:
            raise ValueError("must be a list of at least 2 numbers, e.g. [0, 1, 2, 3]")
        out = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, int | float) or x != x or x < lo:
                raise ValueError(f"must hold numbers >= {lo:g}")
            out.append(float(x))
        return sorted(set(out))

    return check


_METHOD = _enum("stationary", "circular")
_MT_METHODS = ("psr", "dsr", "mintrl", "pbo", "spa")
#: test_id -> {key: (check, default)}; a key not listed is refused (named at export)
TEST_PARAMS: dict[str, dict[str, tuple[Any, Any]]] = {
    "is_oos_gap": {
        "n": (_int(10), 1000),
        "seed": (_int(0), 0),
        "method": (_METHOD, "stationary"),
        "block": (_float(0, nullable=True, open_lo=True), None),
        "level": (_float(0.5, 0.999), 0.95),
    },
    "walk_forward": {
        "folds": (_int(2), 5),
        "anchored": (_bool, True),
        "train_months": (_int(1, nullable=True), None),
        "test_months": (_int(1, nullable=True), None),
        "n_trials": (_int(1), 20),
        "seed": (_int(0), 0),
        "purge_days": (_int(0), 0),
        "embargo_days": (_int(0), 0),
    },
    "purge_embargo": {
        "purge_days": (_int(0), 5),
        "embargo_days": (_int(0), 5),
        "folds": (_int(2), 5),
    },
    "block_bootstrap": {
        "n": (_int(10), 1000),
        "method": (_METHOD, "stationary"),
        "block": (_float(0, nullable=True, open_lo=True), None),
        "seed": (_int(0), 0),
        "level": (_float(0.5, 0.999), 0.95),
        "segment": (_enum("full", "is", "oos"), "full"),
    },
    "placebo_shuffle": {
        "n": (_int(10), 200),
        "seed": (_int(0), 0),
        "block": (_int(1), 20),
        "metric": (_enum("sharpe", "total_pnl"), "sharpe"),
    },
    "lag_sweep": {
        "min": (_int(-250), -10),
        "max": (_int(-250), 10),
        "peak_margin": (_float(0), 0.5),
        "collapse_ratio": (_float(0, 1), 0.5),
    },
    "sensitivity_1d": {
        "points": (_int(2), 11),
        "params": (_strs(), None),
        "metric": (_str(), None),
        "segment": (_enum("is", "oos", "full"), "is"),
        "tol": (_float(0), 0.1),
    },
    "sensitivity_2d": {
        "params": (_strs(2), None),
        "points": (_int(2), 11),
        "metric": (_str(), None),
        "segment": (_enum("is", "oos", "full"), "is"),
        "tol": (_float(0), 0.1),
    },
    "regimes": {
        "by": (_strs(single_ok=True), None),
        "years": (_bool, True),
        "quantiles_of": (_str(), None),
        "quantiles": (_int(2), 3),
    },
    "cost_sensitivity": {
        "multiples": (_floats(0.0), [0.0, 1.0, 2.0, 3.0]),
        "min_multiple": (_float(0), 2.0),
    },
    "multiple_testing": {
        "max_trials": (_int(2), 50),
        "S": (_int(2, even=True), 16),
        "spa_reps": (_int(10), 1000),
        "seed": (_int(0), 0),
        "alpha": (_float(0, 0.5, open_lo=True), 0.05),
        "methods": (_strs(options=_MT_METHODS), list(_MT_METHODS)),
    },
}


def check_test_params(test_id: str, raw: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(param_json with defaults filled in, problems as (key, message with its fix)); pure, no I/O.

    Why one function: the export names the ROBUSTNESS!param_json cell with these messages, and the runner
    refuses the same things, so a row that exported always runs with exactly the values it was checked with.
    """
    import difflib

    spec = TEST_PARAMS.get(test_id)
    if spec is None:
        return {}, [("test_id", f"unknown test {test_id!r}; use one of {', '.join(TEST_PARAMS)}")]
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        import json

        try:
            raw = json.loads(raw)
        except ValueError as e:
            return {}, [("", f'param_json is not JSON ({e}); write e.g. {{}} or {{"n": 500}}')]
    from collections.abc import Mapping

    if not isinstance(raw, Mapping):
        return {}, [("", 'param_json must be a JSON object such as {"n": 500}')]
    raw = {
        k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()
    }  # a frozen snapshot holds tuples
    out = {k: (list(d) if isinstance(d, list) else d) for k, (_, d) in spec.items()}
    problems: list[tuple[str, str]] = []
    for k, v in raw.items():
        if k not in spec:
            near = difflib.get_close_matches(str(k), list(spec), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            problems.append((k, f"{test_id} has no key {k!r}; {hint}keys: {', '.join(spec)}"))
            continue
        try:
            out[k] = spec[k][0](v)
        except ValueError as e:
            problems.append((k, f"{test_id}.{k} = {v!r} {e}"))
    if test_id == "lag_sweep" and not problems and out["min"] > out["max"]:
        problems.append(("min", f"lag_sweep min {out['min']} is above max {out['max']}; swap them"))
    return out, problems
