"""Demo projects for the study tests: the template workbook plus two small studies, real daily demo data.

Built through the real CLI (tests/foundation/helpers.demo_project). Studies added to the template's
st_spx_cta (tpe over window, entry, vix_high.threshold; lag fixed at 1):
- st_grid (row 3): grid over window 40..80 step 20 x entry 0.5..1.0 step 0.5 (6 points), top 2 re-run;
- st_rule (row 4): random over window 20..100 step 20 with the param rule `window >= 60` (group g),
  entry fixed at 0.5, no top re-runs.
- st_nsga (row 5): nsga2, total_pnl (max) and max_drawdown (min), window and entry searched;
- st_cmaes (row 6): cmaes over window and entry with cs_tight (IS sharpe >= -0.2, hard);
- st_cat (row 7): random over window as a categorical (40, 60) and three BACKTESTS columns: slippage_value
  (float 0..1 step 0.5), allow_flip_same_day (bool), execution_price_model (categorical mid,spread_adjusted).
`oos_changed` is the same project with the S&P 500 prices after the IS end (2015-12-31) changed before
the first ingest: every IS input is identical, every OOS price differs.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import openpyxl
import pytest

from tests.backtest.conftest import Project, open_project
from tests.conftest import run_cli
from tests.foundation.helpers import demo_project, edit, wb_path

IS_END = dt.date(2015, 12, 31)  # bt_spx_cta: 2005-01-03..2018-12-31, the last 36 months OOS

# fmt: off
STUDY_ROWS = [
    # A study_id, B backtest_id, C method, D primary, E secondary, F direction, G optimize_on, H n_trials,
    # I seed, J save_top_n, K constraint_set_id, L robustness_profile_id, M enabled
    (3, ["st_grid", "bt_spx_cta", "grid", "total_pnl", "sharpe", "maximize", "IS", 6, 0, 2, "cs_basic", None, True]),
    (4, ["st_rule", "bt_spx_cta", "random", "total_pnl", None, "maximize", "IS", 12, 3, 0, None, None, True]),
    (5, ["st_nsga", "bt_spx_cta", "nsga2", "total_pnl", "max_drawdown", "maximize", "IS", 16, 5, 1, "cs_basic", None,
         True]),
    (6, ["st_cmaes", "bt_spx_cta", "cmaes", "total_pnl", None, "maximize", "IS", 16, 6, 0, "cs_tight", None, True]),
    (7, ["st_cat", "bt_spx_cta", "random", "sharpe", None, "maximize", "IS", 8, 7, 0, None, None, True]),
]
#: cs_tight (CONSTRAINT_SETS row 3, CONSTRAINTS row 6): IS sharpe >= -0.2, hard (about half the demo's trials)
CONSTRAINT_ROWS = [(3, ["cs_tight", "a bar some trials miss", True])]
CONSTRAINT_LINES = [(6, ["cs_tight", "sharpe", "IS", ">=", -0.2, True, "hard"])]
PARAM_ROWS = [
    # A study, B scope, C target, D name, E flag, F type, G low, H high, I step, J choices, K group, L rule, M default
    (6, ["st_grid", "strategy", "spx_cta_z", "window", "X", "int", 40, 80, 20, None, None, None, 60]),
    (7, ["st_grid", "strategy", "spx_cta_z", "entry", "X", "float", 0.5, 1.0, 0.5, None, None, None, 0.5]),
    (8, ["st_rule", "strategy", "spx_cta_z", "window", "X", "int", 20, 100, 20, None, "g", "window >= 60", 60]),
    (9, ["st_rule", "strategy", "spx_cta_z", "entry", None, "float", None, None, None, None, None, None, 0.5]),
    (10, ["st_nsga", "strategy", "spx_cta_z", "window", "X", "int", 20, 250, 10, None, None, None, 60]),
    (11, ["st_nsga", "strategy", "spx_cta_z", "entry", "X", "float", 0, 2, 0.1, None, None, None, 0.5]),
    (12, ["st_cmaes", "strategy", "spx_cta_z", "window", "X", "int", 20, 250, 10, None, None, None, 60]),
    (13, ["st_cmaes", "strategy", "spx_cta_z", "entry", "X", "float", 0, 2, 0.1, None, None, None, 0.5]),
    (14, ["st_cat", "strategy", "spx_cta_z", "window", "X", "categorical", None, None, None, "40,60", None, None, 60]),
    (15, ["st_cat", "backtest", "bt_spx_cta", "slippage_value", "X", "float", 0, 1, 0.5, None, None, None, 0.5]),
    (16, ["st_cat", "backtest", "bt_spx_cta", "allow_flip_same_day", "X", "bool", None, None, None, None, None, None,
          True]),
    (17, ["st_cat", "backtest", "bt_spx_cta", "execution_price_model", "X", "categorical", None, None, None,
          "mid,spread_adjusted", None, None, "mid"]),
]
# fmt: on


def _cells(sheet: str, rows: list[tuple[int, list]]) -> list[tuple[str, str, object]]:
    return [(sheet, f"{chr(65 + j)}{r}", v) for r, vals in rows for j, v in enumerate(vals)]


def _studies(root: Path) -> None:
    edit(
        wb_path(root),
        _cells("OPTIMIZATION_STUDIES", STUDY_ROWS)
        + _cells("OPTIMIZATION_PARAMS", PARAM_ROWS)
        + _cells("CONSTRAINT_SETS", CONSTRAINT_ROWS)
        + _cells("CONSTRAINTS", CONSTRAINT_LINES),
    )
    r = run_cli(["config", "export"], root)
    assert r.code == 0, r.err


def _change_oos_prices(root: Path) -> None:
    """S&P 500 open/high/low/close after IS_END x a smooth factor 1 + 0.05 sin(i / 7) (1 at the boundary)."""
    path = root / "data" / "incoming" / "daily" / "spx.xlsx"
    wb = openpyxl.load_workbook(path)
    ws = wb["SPX"]
    i = 0
    for row in ws.iter_rows(min_row=2):
        d = row[0].value
        if isinstance(d, dt.datetime) and d.date() > IS_END:
            i += 1
            f = 1.0 + 0.05 * math.sin(i / 7.0)
            for c in row[1:5]:
                if isinstance(c.value, int | float):
                    c.value = c.value * f
    assert i > 500
    wb.save(path)


def _build(root: Path, oos_changed: bool) -> Project:
    demo_project(root)
    _studies(root)
    if oos_changed:
        _change_oos_prices(root)
    r = run_cli(["ingest", "daily"], root)
    assert r.code == 0, r.err
    return open_project(root)


@pytest.fixture(scope="session")
def opt(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return _build(tmp_path_factory.mktemp("optimize") / "proj", oos_changed=False)


@pytest.fixture(scope="session")
def opt_oos(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return _build(tmp_path_factory.mktemp("optimize_oos") / "proj", oos_changed=True)
