"""Study specs from the workbook: what is searched, what stays fixed, and bad studies refused at export
with the cell named (through the real export path: the template workbook edited as a user would).

Template layout used below: OPTIMIZATION_STUDIES row 2 = st_spx_cta (A study_id, B backtest_id, C method,
D primary, E secondary, G optimize_on); OPTIMIZATION_PARAMS rows 2..5 = window (X, int 20..250 step 10),
entry (X, float 0..2 step 0.1), lag (fixed 1), vix_high.threshold (X, float 15..40 step 1); columns
C target_id, E optimize_flag, F param_type, G low, H high, I step, J choices, K group, L rule.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from runtime.config.export import export_workbook, validate_only
from runtime.config.loader import load_snapshot
from runtime.contracts import CellError, ConfigValidationError, UserError
from runtime.optimize.contracts import Constraint
from runtime.optimize.space import axis, grid_points, parse_rule, study_spec
from tests.foundation.helpers import edit, wb_path


def _errors(path: Path) -> list[CellError]:
    with pytest.raises(ConfigValidationError) as ei:
        validate_only(path)
    return ei.value.errors


def _at(errors: list[CellError], where: str) -> list[CellError]:
    return [e for e in errors if f"{e.sheet}!{e.cell}" == where]


def test_template_study_spec(project: Path) -> None:
    res = export_workbook(wb_path(project))
    spec = study_spec(load_snapshot(res.latest), "st_spx_cta")
    assert [p.key for p in spec.searched] == ["window", "entry", "vix_high.threshold"]
    assert dict(spec.fixed) == {"lag": 1}
    assert spec.method == "tpe" and spec.direction == "maximize" and spec.primary == "total_pnl"
    assert [(c.metric, c.operator, c.threshold, c.severity) for c in spec.constraints] == [
        ("max_drawdown", "<=", 0.35, "hard"),
        ("n_trades", ">=", 10.0, "hard"),
        ("sharpe", ">=", 0.3, "soft"),
        ("turnover", "<=", 60.0, "soft"),
    ]
    assert spec.hard_is() == (0, 1)
    w, e, v = spec.searched
    # the grid axes, written out by hand
    assert axis(w) == [20 + 10 * i for i in range(24)]
    assert axis(e) == [round(0.1 * i, 10) for i in range(21)]
    assert axis(v) == [float(x) for x in range(15, 41)]
    pts = grid_points(spec)
    assert len(pts) == 24 * 21 * 26
    assert pts[:2] == [
        {"window": 20, "entry": 0.0, "vix_high.threshold": 15.0},
        {"window": 20, "entry": 0.0, "vix_high.threshold": 16.0},
    ]
    assert len({tuple(p.values()) for p in pts}) == len(pts)


def test_constraint_violation_is_optunas_sign() -> None:
    """> 0 violated, <= 0 satisfied (the margin); NaN is violated."""
    ge = Constraint("sharpe", "IS", ">=", 0.3, "hard", "CONSTRAINTS!B2")
    assert ge.violation(0.5) == pytest.approx(-0.2) and ge.violation(0.1) == pytest.approx(0.2)
    assert ge.violation(0.3) == 0.0
    gt = Constraint("sharpe", "IS", ">", 0.3, "hard", "x")
    assert gt.violation(0.3) > 0
    le = Constraint("max_drawdown", "IS", "<=", 0.35, "hard", "x")
    assert le.violation(0.2) == pytest.approx(-0.15) and le.violation(0.5) == pytest.approx(0.15)
    assert le.violation(float("nan")) > 0
    eq = Constraint("n_trades", "IS", "==", 10, "soft", "x")
    assert eq.violation(10.0) == 0.0 and eq.violation(12.0) == 2.0


def test_parse_rule() -> None:
    names = {"fast": "fast", "slow": "slow"}
    assert parse_rule("fast < slow", names) == ("fast", "<", "slow")
    assert parse_rule(" slow>=60 ", names) == ("slow", ">=", 60.0)
    for bad in ("fast <", "fast << slow", "fast < medium", "2 < fast"):
        with pytest.raises(ValueError):
            parse_rule(bad, names)


# (edits, the cell that must be named, words its message must hold)
BAD = {
    "unknown metric": ([("OPTIMIZATION_STUDIES", "D2", "sharpee")], "OPTIMIZATION_STUDIES!D2", "sharpee"),
    "unknown method": ([("OPTIMIZATION_STUDIES", "C2", "annealing")], "OPTIMIZATION_STUDIES!C2", "annealing"),
    "optimize on OOS": ([("OPTIMIZATION_STUDIES", "G2", "OOS")], "OPTIMIZATION_STUDIES!G2", "OOS"),
    "dangling backtest": ([("OPTIMIZATION_STUDIES", "B2", "bt_nope")], "OPTIMIZATION_STUDIES!B2", "bt_nope"),
    "empty search space": (
        [("OPTIMIZATION_PARAMS", f"E{r}", None) for r in (2, 3, 5)],
        "OPTIMIZATION_STUDIES!A2",
        "searches nothing",
    ),
    "nsga2 without secondary": (
        [("OPTIMIZATION_STUDIES", "C2", "nsga2"), ("OPTIMIZATION_STUDIES", "E2", None)],
        "OPTIMIZATION_STUDIES!E2",
        "nsga2",
    ),
    "step does not divide": ([("OPTIMIZATION_PARAMS", "I3", 0.3)], "OPTIMIZATION_PARAMS!I3", "does not divide"),
    "categorical without choices": (
        [("OPTIMIZATION_PARAMS", "F2", "categorical")],
        "OPTIMIZATION_PARAMS!J2",
        "choices",
    ),
    "another strategy's param": (
        [("OPTIMIZATION_PARAMS", "C2", "es_delta_trend")],
        "OPTIMIZATION_PARAMS!C2",
        "does not use strategy es_delta_trend",
    ),
    "bad param rule": (
        [("OPTIMIZATION_PARAMS", "K2", "g"), ("OPTIMIZATION_PARAMS", "K3", "g"), ("OPTIMIZATION_PARAMS", "L3", "entry < windw")],
        "OPTIMIZATION_PARAMS!L3",
        "windw",
    ),
    "fixed value not a number": (
        [("OPTIMIZATION_PARAMS", "M4", "abc")],
        "OPTIMIZATION_PARAMS!M4",
        "not a number",
    ),
    "grid float without step": (
        [("OPTIMIZATION_STUDIES", "C2", "grid"), ("OPTIMIZATION_PARAMS", "I3", None)],
        "OPTIMIZATION_PARAMS!I3",
        "grid",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_study_refused_at_export_with_the_cell(project: Path, case: str) -> None:
    edits, where, words = BAD[case]
    path = wb_path(project)
    edit(path, edits)
    errs = _errors(path)
    mine = _at(errs, where)
    assert mine, (case, [e.render() for e in errs])
    assert any(words in e.render() for e in mine), [e.render() for e in mine]
    assert not (project / "config" / "exports").exists()  # nothing half-written


def test_good_param_rule_and_nsga2_export(project: Path) -> None:
    path = wb_path(project)
    edit(
        path,
        [
            ("OPTIMIZATION_STUDIES", "C2", "nsga2"),
            ("OPTIMIZATION_PARAMS", "K2", "g"),
            ("OPTIMIZATION_PARAMS", "L2", "window >= 60"),
        ],
    )
    spec = study_spec(load_snapshot(export_workbook(path).latest), "st_spx_cta")
    assert spec.multi and spec.directions == ("maximize", "maximize")  # sharpe: higher is better
    (rule,) = spec.rules
    assert (rule.left, rule.op, rule.right) == ("window", ">=", 60.0)
    assert rule.cell == "OPTIMIZATION_PARAMS!L2"
    assert [rule.holds({"window": w}) for w in (50, 60, 70)] == [False, True, True]


def test_unknown_study_is_a_user_error(project: Path) -> None:
    snap = load_snapshot(export_workbook(wb_path(project)).latest)
    with pytest.raises(UserError, match="st_spx_cta"):
        study_spec(snap, "st_nope")


def test_grid_points_are_the_product() -> None:
    """grid_points is itertools.product of the axes in X-row order (checked on a spec built by hand)."""
    from runtime.optimize.contracts import SearchParam, StudySpec

    a = SearchParam("a", "strategy", "s", "a", "int", 1, 5, 2, (), "c")
    b = SearchParam("b", "strategy", "s", "b", "categorical", None, None, None, ("x", "y"), "c")
    spec = StudySpec(
        "s", "bt", "grid", "maximize", "total_pnl", None, 0, 1, 0, None, None, (a, b), {}, (), (), "c"
    )
    assert grid_points(spec) == [{"a": i, "b": j} for i, j in itertools.product([1, 3, 5], ["x", "y"])]
