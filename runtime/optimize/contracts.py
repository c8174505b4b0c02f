"""The optimizer's frozen contracts: a study spec read from the snapshot, and what a study run returns.

Why their own module: the study runner, the CLI, the report (H3b) and robustness (H4) share them, and a
spec must be a plain value (pickled to worker processes, hashed into the study run id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: metrics whose natural direction is "lower is better" (the secondary objective of nsga2 follows it);
#: max_drawdown is a fraction >= 0 (ENGINE.md), so it is one of them
MINIMIZE_METRICS = frozenset(
    {"volatility", "max_drawdown", "turnover", "total_costs", "longest_drawdown_bars", "avg_hold_bars"}
)
#: a NaN metric cannot satisfy a constraint: its violation is this (Optuna: > 0 = violated)
NAN_VIOLATION = 1.0
#: the smallest violation of a strict inequality met with equality
STRICT_EPS = 1e-12


@dataclass(frozen=True)
class SearchParam:
    """One X row of OPTIMIZATION_PARAMS: the contract-A key and its domain."""

    key: str
    scope: str
    target_id: str
    name: str
    type: str  # int | float | categorical | bool
    low: float | None
    high: float | None
    step: float | None
    choices: tuple[Any, ...]
    cell: str  # OPTIMIZATION_PARAMS!<cell of param_name>

    def as_json(self) -> dict[str, Any]:
        """The contract C `searched` entry."""
        return {
            "key": self.key,
            "scope": self.scope,
            "target_id": self.target_id,
            "name": self.name,
            "type": self.type,
            "low": self.low,
            "high": self.high,
            "step": self.step,
            "choices": list(self.choices) if self.choices else None,
        }


@dataclass(frozen=True)
class ParamRule:
    """A constraint_rule between the params of one constraint_group, `left <op> right` (right: a key or a
    number); a sampled set that breaks it is refused before any engine call (told PRUNED)."""

    left: str
    op: str
    right: str | float
    text: str
    cell: str

    def holds(self, params: Mapping[str, Any]) -> bool:
        a = params[self.left]
        b = params[self.right] if isinstance(self.right, str) else self.right
        return bool(
            {
                "<": a < b,
                "<=": a <= b,
                ">": a > b,
                ">=": a >= b,
                "==": a == b,
                "!=": a != b,
            }[self.op]
        )


@dataclass(frozen=True)
class Constraint:
    """One enabled CONSTRAINTS row of the study's constraint set."""

    metric: str
    scope: str  # IS | OOS | ALL
    operator: str
    threshold: float
    severity: str  # hard | soft
    cell: str

    def violation(self, value: float) -> float:
        """Optuna's convention: <= 0 satisfied (minus the margin), > 0 violated (by how much)."""
        if value is None or not math.isfinite(float(value)):
            return NAN_VIOLATION
        v, t = float(value), self.threshold
        if self.operator in (">=", ">"):
            gap = t - v  # > 0: below the floor
            if self.operator == ">" and gap == 0:
                return STRICT_EPS
            return gap
        if self.operator in ("<=", "<"):
            gap = v - t
            if self.operator == "<" and gap == 0:
                return STRICT_EPS
            return gap
        # ==: within 1e-9 relative (or 1e-12 absolute) counts as equal
        d = abs(v - t)
        return 0.0 if d <= max(1e-12, 1e-9 * abs(t)) else d

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "scope": self.scope,
            "operator": self.operator,
            "threshold": self.threshold,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class StudySpec:
    """An OPTIMIZATION_STUDIES row with its search space, fixed values, constraints and param rules."""

    study_id: str
    backtest_id: str
    method: str
    direction: str  # the primary objective's
    primary: str
    secondary: str | None
    seed: int
    n_trials: int
    save_top_n: int
    constraint_set_id: str | None
    robustness_profile_id: str | None
    searched: tuple[SearchParam, ...]
    fixed: Mapping[str, Any]
    constraints: tuple[Constraint, ...]
    rules: tuple[ParamRule, ...]
    cell: str  # OPTIMIZATION_STUDIES!<cell of study_id>

    @property
    def multi(self) -> bool:
        return self.method == "nsga2"

    @property
    def secondary_direction(self) -> str:
        return "minimize" if self.secondary in MINIMIZE_METRICS else "maximize"

    @property
    def directions(self) -> tuple[str, ...]:
        return (self.direction, self.secondary_direction) if self.multi else (self.direction,)

    def hard_is(self) -> tuple[int, ...]:
        """Indexes of the constraints the objective sees (hard, IS scope)."""
        return tuple(i for i, c in enumerate(self.constraints) if c.severity == "hard" and c.scope == "IS")

    def as_json(self) -> dict[str, Any]:
        """What identifies the study (hashed into the study run id; cells are not part of it)."""
        return {
            "study_id": self.study_id,
            "backtest_id": self.backtest_id,
            "method": self.method,
            "direction": self.direction,
            "primary": self.primary,
            "secondary": self.secondary,
            "seed": self.seed,
            "n_trials": self.n_trials,
            "save_top_n": self.save_top_n,
            "searched": [p.as_json() for p in self.searched],
            "fixed": dict(sorted(self.fixed.items())),
            "constraints": [c.as_json() for c in self.constraints],
            "rules": [r.text for r in self.rules],
        }


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as trials.parquet and the registry hold it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    feasible: bool
    params: Mapping[str, Any]  # the full set (fixed + searched)
    is_metrics: Mapping[str, float]
    constraints: tuple[float, ...]  # per spec.constraints; NaN when not evaluated (OOS/ALL scope, pruned)
    objective: float
    secondary: float
    reason: str = ""


@dataclass(frozen=True)
class StudyOutcome:
    """What run_study did: the study run folder and its summary."""

    study_run_id: str
    run_dir: Path
    created: bool  # False: the finished study run existed and nothing ran
    spec: StudySpec
    n_complete: int
    n_pruned: int
    n_failed: int
    n_feasible: int
    best_trial: int | None
    best_params: Mapping[str, Any] | None
    best_value: float | None
    top_runs: tuple[tuple[int, str], ...]
    seconds: float
    trials_per_second: float
    notes: tuple[str, ...] = field(default_factory=tuple)
