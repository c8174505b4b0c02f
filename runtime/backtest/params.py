"""Parameter-set keys (design/DECISIONS.md "Parameter sets: one flat key space"): one flat dict per trial.

Why one flat namespace: the optimizer, robustness and the CLI all pass "a parameter set" to the same two
calls (compile_backtest, run_param_sets); a flat `{key: value}` is what Optuna proposes, what a journal and
trials.parquet store and what a user types after --params. The key says what it addresses:

- `name`               a `$name` of the strategy's signal template / gate_expr / scaling_expr (scopes
                       `strategy` and `template`: template defaults < strategy params_json < the set);
- `<feature_id>.<name>` a `$name` inside a FEATURE_LIBRARY / ENGINEERED_FEATURES / GATES row (scopes
                       `feature`, `gate`), e.g. `vix_high.threshold`: the feature's graph is built again
                       with the value, so its node hashes (and feature-cache keys) differ per value;
- `backtest.<column>`  a BACKTESTS column of the run's backtest (costs, rules, capital, the window) and the
                       pseudo-column `backtest.cost_multiplier` (spread, slippage and commission x it).

`split_params` is pure (the snapshot in, a ParamSplit out) and refuses every key or value that would
otherwise be ignored or fail deep inside a run, naming the cell and a fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.config.expressions import cell_of, param_names
from runtime.contracts import ConfigSnapshot, UserError
from runtime.engine.contracts import COMMISSION_MODELS, COST_TYPES, PRICE_MODELS, SCALING_REBALANCE

BACKTEST_PREFIX = "backtest"
COST_MULTIPLIER = "cost_multiplier"
#: the sheets whose rows a `<feature_id>.<name>` key may address, with their id and expression columns
FEATURE_SHEETS = {
    "FEATURE_LIBRARY": ("feature_id", "transform"),
    "ENGINEERED_FEATURES": ("eng_feature_id", "combine_transform"),
    "GATES": ("gate_id", "expression"),
}
#: BACKTESTS columns a set may not change, and why (the fix is always: edit the workbook)
FIXED_COLUMNS = {
    "backtest_id": "it names the row",
    "strategy_id": "another strategy is another backtest",
    "execution_time": "the availability check of every expression depends on it",
    "frequency": "it chooses the grid and the price dataset",
    "custom_execution_time": "the fill time is part of the execution the expressions are checked at",
    "rebalance_rule": "it chooses which rows decide, one mask shared by every column of a call; not a key of contract A",
    "as_of_date": "it chooses the data vintage of every input",
    "enabled": "it is not a parameter",
    "notes": "it is not a parameter",
}
WINDOW_COLUMNS = ("start_date", "end_date", "oos_last_x_months")


def plain_scalar(v: Any) -> Any:
    """Plain Python scalars (numpy scalars from a sampler become int/float/bool: JSON and hashes agree)."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _real(v: Any) -> float | None:
    v = plain_scalar(v)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _nonneg_float(v: Any) -> float:
    x = _real(v)
    if x is None or x < 0:
        raise ValueError("a finite number >= 0")
    return x


def _positive_float(v: Any) -> float:
    x = _real(v)
    if x is None or x <= 0:
        raise ValueError("a finite number > 0")
    return x


def _whole(lo: int, hi: int | None = None) -> Any:
    def parse(v: Any) -> int:
        x = _real(v)
        if x is None or x != int(x) or x < lo or (hi is not None and x > hi):
            raise ValueError(f"a whole number >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
        return int(x)

    return parse


def _bool(v: Any) -> bool:
    v = plain_scalar(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError("true or false")


def _choice(table: Mapping[str, int]) -> Any:
    def parse(v: Any) -> str:
        if isinstance(v, str) and v in table:
            return v
        raise ValueError(f"one of {', '.join(table)}")

    return parse


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError("an ISO date string (YYYY-MM-DD)")


#: BACKTESTS columns a set may set -> the parser of its value (a str result = what was wanted)
BACKTEST_COLUMNS: dict[str, Any] = {
    "spread_value": _nonneg_float,
    "slippage_value": _nonneg_float,
    "commission_value": _nonneg_float,
    "min_hold_days": _whole(0),
    "cooldown_days": _whole(0),
    "allow_flip_same_day": _bool,
    "execution_price_model": _choice(PRICE_MODELS),
    "spread_model_type": _choice(COST_TYPES),
    "slippage_model_type": _choice(COST_TYPES),
    "commission_model": _choice(COMMISSION_MODELS),
    "scaling_rebalance": _choice(SCALING_REBALANCE),
    "initial_capital": _positive_float,
    "start_date": _date,
    "end_date": _date,
    "oos_last_x_months": _whole(0, 600),
    COST_MULTIPLIER: _nonneg_float,
}


def param_key(scope: str, target_id: str, name: str) -> str:
    """The set key of one OPTIMIZATION_PARAMS row (contract A): strategy/template -> `name`,
    feature/gate -> `<target_id>.<name>`, backtest -> `backtest.<name>`."""
    if scope in ("strategy", "template"):
        return name
    if scope in ("feature", "gate"):
        return f"{target_id}.{name}"
    if scope == BACKTEST_PREFIX:
        return f"{BACKTEST_PREFIX}.{name}"
    raise UserError(
        f"param_scope '{scope}' (target {target_id}, {name}) is not one of strategy, template, feature, "
        "gate, backtest; fix: pick one of those in OPTIMIZATION_PARAMS"
    )


@dataclass(frozen=True)
class ParamSplit:
    """One parameter set, split by what it addresses (values checked and typed)."""

    #: `$name` -> value for the strategy's expressions (given keys only; defaults are compile's)
    expression: Mapping[str, Any]
    #: feature/gate id -> {name: value}, over the row's params_json
    features: Mapping[str, Mapping[str, Any]]
    #: BACKTESTS column -> typed value (dates as dt.date), including `cost_multiplier`
    backtest: Mapping[str, Any]
    #: the set as given with plain-Python values (numpy scalars converted), for the binding and run ids
    given: Mapping[str, Any]

    @property
    def cost_multiplier(self) -> float:
        return float(self.backtest.get(COST_MULTIPLIER, 1.0))

    @property
    def columns(self) -> dict[str, Any]:
        """The real BACKTESTS columns to replace on the row (cost_multiplier is not one)."""
        return {k: v for k, v in self.backtest.items() if k != COST_MULTIPLIER}


def _cell(sheet: str, row: Any, header: str) -> str:
    return f"{sheet}!{cell_of(sheet, row, header)}"


def _near(name: str, known: list[str]) -> str:
    m = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean '{m[0]}'? " if m else ""


def strategy_params(snap: ConfigSnapshot, backtest_id: str) -> tuple[Any, Any, Any, set[str]]:
    """(BACKTESTS row, STRATEGIES row, SIGNAL_TEMPLATES row, the `$names` its expressions read); rows that
    are missing come back None (compile_backtest reports them with their cells)."""
    bt = next((r for r in snap.rows("BACKTESTS") if r.backtest_id == backtest_id), None)
    s = t = None
    if bt is not None:
        s = next((r for r in snap.rows("STRATEGIES") if r.strategy_id == bt.strategy_id), None)
    if s is not None:
        t = next((r for r in snap.rows("SIGNAL_TEMPLATES") if r.template_id == s.signal_template_id), None)
    texts = [getattr(t, "signal_expr", None), getattr(s, "gate_expr", None), getattr(s, "scaling_expr", None)]
    return bt, s, t, param_names(*texts)


def _feature_rows(snap: ConfigSnapshot) -> dict[str, tuple[str, Any, str]]:
    out: dict[str, tuple[str, Any, str]] = {}
    for sheet, (key, expr) in FEATURE_SHEETS.items():
        for r in snap.rows(sheet):
            out.setdefault(getattr(r, key), (sheet, r, expr))
    return out


def split_params(snap: ConfigSnapshot, backtest_id: str, params: Mapping[str, Any] | None) -> ParamSplit:
    """Check one parameter set against the snapshot and split it (contract A); every bad key or value is a
    UserError naming the cell it would change and a fix."""
    given = {str(k): plain_scalar(v) for k, v in dict(params or {}).items()}
    bt, s, t, used = strategy_params(snap, backtest_id)
    expression: dict[str, Any] = {}
    features: dict[str, dict[str, Any]] = {}
    backtest: dict[str, Any] = {}
    feats: dict[str, tuple[str, Any, str]] | None = None
    for key, v in given.items():
        head, dot, name = key.partition(".")
        if not dot:
            if s is None:
                continue  # compile_backtest names the missing row
            if key not in used:
                have = ", ".join(f"${n}" for n in sorted(used)) or "none"
                where = _cell("SIGNAL_TEMPLATES", t, "signal_expr") if t is not None else "STRATEGIES"
                raise UserError(
                    f"--params {key}={v}: strategy {s.strategy_id} has no ${key} ({where} and its "
                    f"gate_expr/scaling_expr use {have}); {_near(key, sorted(used))}fix: remove it or fix "
                    "the name (a feature's parameter is <feature_id>.<name>, a BACKTESTS column "
                    "backtest.<column>)"
                )
            if _real(v) is None and not isinstance(v, bool):
                raise UserError(
                    f"--params {key}={v}: ${key} must be a number or true/false; fix: e.g. {key}=60"
                )
            expression[key] = v
        elif head == BACKTEST_PREFIX:
            if bt is None:
                continue
            if name in FIXED_COLUMNS:
                cell = _cell("BACKTESTS", bt, name) if name not in ("notes",) else "BACKTESTS"
                raise UserError(
                    f"--params {key}: BACKTESTS column {name} cannot vary inside a parameter set "
                    f"({FIXED_COLUMNS[name]}); fix: remove it, or edit {cell} (or add a backtest row) "
                    "and `backtest config export`"
                )
            parse = BACKTEST_COLUMNS.get(name)
            if parse is None:
                raise UserError(
                    f"--params {key}: BACKTESTS has no column '{name}' a parameter set may set; "
                    f"{_near(name, sorted(BACKTEST_COLUMNS))}fix: one of "
                    f"{', '.join('backtest.' + c for c in BACKTEST_COLUMNS)}"
                )
            try:
                typed = parse(v)
            except ValueError as e:
                cell = "" if name == COST_MULTIPLIER else f" ({_cell('BACKTESTS', bt, name)} {name})"
                raise UserError(f"--params {key}={v}{cell}: must be {e}; fix: give {key} {e}") from None
            backtest[name] = typed
        else:
            feats = _feature_rows(snap) if feats is None else feats
            hit = feats.get(head)
            if hit is None:
                raise UserError(
                    f"--params {key}: no FEATURE_LIBRARY, ENGINEERED_FEATURES or GATES row is '{head}'; "
                    f"{_near(head, sorted(feats))}fix: <feature_id>.<name> of an existing row, or "
                    "backtest.<column> for a BACKTESTS column"
                )
            sheet, row, col = hit
            text = getattr(row, col, None) or ""
            names = sorted(param_names(text))
            if name not in names:
                have = ", ".join(f"${n}" for n in names) or "no $parameter"
                raise UserError(
                    f"--params {key}: {_cell(sheet, row, col)} ({head}: `{text or 'its input column'}`) has "
                    f"no ${name} (it has {have}); {_near(name, names)}fix: name one of those, or add "
                    f"${name} to that expression"
                )
            if _real(v) is None and not isinstance(v, bool):
                raise UserError(
                    f"--params {key}={v} ({_cell(sheet, row, col)}): ${name} must be a number or "
                    f"true/false; fix: e.g. {key}=20"
                )
            features.setdefault(head, {})[name] = v
    if bt is not None and any(c in backtest for c in WINDOW_COLUMNS):
        _check_window(bt, backtest)
    return ParamSplit(expression, features, backtest, given)


def _check_window(bt: Any, over: Mapping[str, Any]) -> None:
    """The window after the set's overrides, checked as compile_backtest checks the row's own, but named
    by the keys (so the fix says which key to change)."""
    from runtime.backtest.compile import months_before

    start = over.get("start_date", bt.start_date)
    end = over.get("end_date", bt.end_date)
    months = int(over.get("oos_last_x_months", bt.oos_last_x_months or 0))

    def name(c: str) -> str:
        return f"backtest.{c}" if c in over else _cell("BACKTESTS", bt, c)

    if start > end:
        raise UserError(
            f"{name('start_date')} = {start} is after {name('end_date')} = {end}, so the range is empty; "
            "fix: a start_date before the end_date"
        )
    if months:
        oos_from = months_before(end, months)
        if oos_from <= start:
            raise UserError(
                f"{name('oos_last_x_months')} = {months}: the last {months} months (after {oos_from}) cover "
                f"the whole range {start}..{end}, leaving no in-sample; fix: fewer months, or an earlier "
                "start_date"
            )


def with_overrides(bt: Any, split: ParamSplit) -> Any:
    """The BACKTESTS row with the set's `backtest.<column>` values (its cells still name the row)."""
    cols = split.columns
    return dataclasses.replace(bt, **cols) if cols else bt


def feature_catalog(catalog: Any, split: ParamSplit) -> Any:
    """The catalog with each overridden feature's params replaced: its expansion (and node hashes) then
    carry the new literal values, so cache keys differ per value."""
    if not split.features:
        return catalog
    feats = dict(catalog.features)
    for fid, over in split.features.items():
        fd = feats.get(fid)
        if fd is None:  # a disabled or invalid row the catalog left out
            raise UserError(
                f"--params {fid}.{next(iter(over))}: feature {fid} is not in the expression catalog (is "
                "the row enabled and valid?); fix: enable it, or remove the key"
            )
        feats[fid] = dataclasses.replace(fd, params={**dict(fd.params or {}), **over})
    return dataclasses.replace(catalog, features=feats)


def check_session(catalog: Any, split: ParamSplit, cache: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(the catalog with the set's feature overrides, a dsl.CheckSession on it). `cache`, kept by a caller
    that compiles many sets on one base catalog, holds one per distinct override: feature expansions (and
    their parses) are then done once per override, not once per set."""
    import json

    import dsl

    key = json.dumps(
        [id(catalog), {f: dict(v) for f, v in split.features.items()}], sort_keys=True, default=str
    )
    hit = None if cache is None else cache.get(key)
    if hit is not None and hit[0] is catalog:
        return hit[1], hit[2]
    cat = feature_catalog(catalog, split)
    session = dsl.CheckSession(cat)
    if cache is not None:
        cache[key] = (catalog, cat, session)
    return cat, session


def scale_costs(costs: Any, multiplier: float) -> Any:
    """Spread, slippage and commission values x `multiplier` (cost_sensitivity's knob; 1 = as configured)."""
    if multiplier == 1.0:
        return costs
    return dataclasses.replace(
        costs,
        spread_value=costs.spread_value * multiplier,
        slippage_value=costs.slippage_value * multiplier,
        commission_value=costs.commission_value * multiplier,
    )


def expression_params(binding: Mapping[str, Any]) -> dict[str, Any]:
    """The `$name` part of a full binding (what evaluate / warm-up read); dotted keys are not $params."""
    return {k: v for k, v in binding.items() if "." not in k}


__all__ = [
    "BACKTEST_COLUMNS",
    "COST_MULTIPLIER",
    "FIXED_COLUMNS",
    "ParamSplit",
    "check_session",
    "expression_params",
    "feature_catalog",
    "param_key",
    "plain_scalar",
    "scale_costs",
    "split_params",
    "strategy_params",
    "with_overrides",
]
