"""The study spec and its search space from the snapshot (OPTIMIZATION_STUDIES / _PARAMS / CONSTRAINTS).

Why only X rows are searched: the workbook is the record of what was tried; a row without X holds its
default_value_if_not_optimized in every trial, and a parameter with no row keeps the workbook's value.
Keys are contract A's (runtime/backtest/params.param_key), so a trial's params are a parameter set
run_param_sets and run_backtest take as they are. Export (runtime/config/validate._studies/_params)
already refused bad rows with their cells; the checks here repeat only what a snapshot could still hold
(a study id typed on the command line, a disabled study).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

from runtime.backtest.params import param_key
from runtime.config.expressions import cell_of
from runtime.config.validate import MAX_GRID, RULE_FIX, parse_rule
from runtime.contracts import ConfigSnapshot, UserError
from runtime.optimize.contracts import Constraint, ParamRule, SearchParam, StudySpec


def _cell(sheet: str, row: Any, header: str) -> str:
    return f"{sheet}!{cell_of(sheet, row, header)}"


def _number(s: Any) -> Any:
    """'20' -> 20, '0.5' -> 0.5, other text unchanged (categorical choices of a numeric $param)."""
    if isinstance(s, str):
        t = s.strip()
        if re.match(r"^[+-]?\d+$", t):
            return int(t)
        if re.match(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$", t):
            return float(t)
        if t.lower() in ("true", "false"):
            return t.lower() == "true"
        return t
    return s


def typed_value(ptype: str, v: Any) -> Any:
    """A fixed value in its param_type (the workbook cell may hold text or a float)."""
    v = _number(v)
    if ptype == "int" and isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer():
        return int(v)
    if ptype == "float" and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if ptype == "bool" and isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    return v


def study_row(snap: ConfigSnapshot, study_id: str) -> Any:
    row = next((r for r in snap.rows("OPTIMIZATION_STUDIES") if r.study_id == study_id), None)
    if row is None:
        known = ", ".join(r.study_id for r in snap.rows("OPTIMIZATION_STUDIES")) or "none"
        raise UserError(
            f"no OPTIMIZATION_STUDIES row has study_id '{study_id}' (known: {known}); fix: pick one of those, "
            "or add the row and `backtest config export`"
        )
    return row


def study_spec(snap: ConfigSnapshot, study_id: str) -> StudySpec:
    """The study as run_study runs it; UserError (naming the cell) for what cannot run."""
    s = study_row(snap, study_id)
    sheet = "OPTIMIZATION_STUDIES"
    if not s.enabled:
        raise UserError(
            f"{_cell(sheet, s, 'enabled')}: study {study_id} is disabled; fix: set enabled TRUE and "
            "`backtest config export`"
        )
    if s.optimize_on != "IS":
        raise UserError(
            f"{_cell(sheet, s, 'optimize_on')} = {s.optimize_on}: studies optimize on IS only (OOS stays "
            "unseen until the top trials are re-run); fix: write IS"
        )
    rows = [r for r in snap.rows("OPTIMIZATION_PARAMS") if r.study_id == study_id]
    searched: list[SearchParam] = []
    fixed: dict[str, Any] = {}
    keys: dict[int, str] = {}
    for r in rows:
        key = param_key(r.param_scope, r.target_id, r.param_name)
        keys[id(r)] = key
        if r.optimize_flag:
            choices: tuple[Any, ...] = ()
            if r.param_type == "categorical":
                choices = tuple(_number(c) for c in r.choices)
            elif r.param_type == "bool":
                choices = (False, True)
            searched.append(
                SearchParam(
                    key, r.param_scope, r.target_id, r.param_name, r.param_type,
                    None if r.low is None else float(r.low),
                    None if r.high is None else float(r.high),
                    None if not r.step else float(r.step),
                    choices,
                    _cell("OPTIMIZATION_PARAMS", r, "param_name"),
                )
            )  # fmt: skip
        else:
            fixed[key] = typed_value(r.param_type, r.default_value_if_not_optimized)
    if not searched:
        raise UserError(
            f"{_cell(sheet, s, 'study_id')}: study {study_id} searches nothing (no OPTIMIZATION_PARAMS row of "
            "it has optimize_flag X); fix: put X in optimize_flag of the parameters to search"
        )
    if s.method == "nsga2" and not s.objective_secondary_metric:
        raise UserError(
            f"{_cell(sheet, s, 'objective_secondary_metric')}: method nsga2 optimizes two objectives; fix: "
            "enter a METRICS id as objective_secondary_metric (e.g. sharpe), or use method tpe"
        )
    rules: list[ParamRule] = []
    groups: dict[str, dict[str, str]] = {}
    for r in rows:
        if r.constraint_group:
            g = groups.setdefault(r.constraint_group, {})
            g[r.param_name] = keys[id(r)]
            g[keys[id(r)]] = keys[id(r)]
    for r in rows:
        if not r.constraint_rule:
            continue
        cell = _cell("OPTIMIZATION_PARAMS", r, "constraint_rule")
        try:
            a, op, b = parse_rule(r.constraint_rule, groups.get(r.constraint_group or "", {}))
        except ValueError as e:
            raise UserError(f"{cell}: {e}; fix: {RULE_FIX}") from None
        rules.append(ParamRule(a, op, b, r.constraint_rule, cell))
    constraints: list[Constraint] = []
    if s.constraint_set_id:
        cs = next(
            (c for c in snap.rows("CONSTRAINT_SETS") if c.constraint_set_id == s.constraint_set_id), None
        )
        if cs is not None and cs.enabled:
            for c in snap.rows("CONSTRAINTS"):
                if c.constraint_set_id == s.constraint_set_id and c.enabled:
                    constraints.append(
                        Constraint(
                            c.metric_id, c.scope, c.operator, float(c.threshold), c.severity,
                            _cell("CONSTRAINTS", c, "metric_id"),
                        )
                    )  # fmt: skip
    return StudySpec(
        study_id=study_id,
        backtest_id=s.backtest_id,
        method=s.method,
        direction=s.objective_direction,
        primary=s.objective_primary_metric,
        secondary=s.objective_secondary_metric,
        seed=int(s.seed),
        n_trials=int(s.n_trials),
        save_top_n=int(s.save_top_n_artifacts),
        constraint_set_id=s.constraint_set_id,
        robustness_profile_id=s.robustness_profile_id,
        searched=tuple(searched),
        fixed=fixed,
        constraints=tuple(constraints),
        rules=tuple(rules),
        cell=_cell(sheet, s, "study_id"),
    )


def distributions(spec: StudySpec) -> dict[str, Any]:
    """Optuna distributions per searched key (a step -> a discrete float/int distribution)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in spec.searched:
        if p.type == "int":
            out[p.key] = IntDistribution(int(p.low), int(p.high), step=int(p.step or 1))
        elif p.type == "float":
            out[p.key] = FloatDistribution(p.low, p.high, step=p.step)
        else:
            out[p.key] = CategoricalDistribution(list(p.choices))
    return out


def axis(p: SearchParam) -> list[Any]:
    """The grid values of one searched param (low..high by step, or its choices)."""
    if p.type == "int":
        return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
    if p.type == "float":
        if not p.step:
            raise UserError(
                f"{p.cell}: a grid study needs a step for the float parameter {p.key}; fix: enter a step "
                "that divides high - low, or use method tpe/random"
            )
        n = round((p.high - p.low) / p.step)
        return [float(round(p.low + i * p.step, 12)) for i in range(n + 1)]
    return list(p.choices)


def grid_size(spec: StudySpec) -> int:
    return math.prod(len(axis(p)) for p in spec.searched)


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every point of the grid, in row-major order of the X rows (first row slowest)."""
    size = grid_size(spec)
    if size > MAX_GRID:
        raise UserError(
            f"{spec.cell}: study {spec.study_id}'s grid has {size:,} points (more than {MAX_GRID:,}); fix: "
            "larger steps or fewer X rows, or method tpe/random"
        )
    keys = [p.key for p in spec.searched]
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axis(p) for p in spec.searched))
    ]


__all__ = [
    "MAX_GRID",
    "axis",
    "distributions",
    "grid_points",
    "grid_size",
    "parse_rule",
    "study_row",
    "study_spec",
    "typed_value",
]
