"""Stability score and cost break-even on hand-worked grids and tables; their verdict words."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.contracts import UserError
from runtime.robustness import break_even_cost, stability_score, verdict_break_even, verdict_stability


def test_stability_1d_plateau():
    g = [0.5, 0.9, 1.0, 0.95, 0.2]
    res = stability_score(g, tol=0.1)
    # best 1.0 at index 2; neighbours 0.9 and 0.95 are >= 1.0 - 0.1 -> 2/2; grid: 0.9, 1.0, 0.95 -> 3/5
    assert res.best_index == (2,) and res.best_value == 1.0
    assert res.score == 1.0 and res.n_neighbours == 2
    assert res.plateau_share == pytest.approx(3 / 5)
    assert verdict_stability(res).text == "stable optimum: 100% of neighbours within 10% of the best"


def test_stability_2d_spike_and_edges():
    g = np.full((3, 3), 0.1)
    g[1, 1] = 1.0
    res = stability_score(g, tol=0.2)
    assert res.score == 0.0 and res.n_neighbours == 8
    assert verdict_stability(res).passed is False
    corner = np.array([[2.0, 1.9, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c = stability_score(corner, tol=0.1)  # neighbours of (0,0): 1.9 yes, 1.5 no, 0.0 no
    assert c.best_index == (0, 0) and c.n_neighbours == 3
    assert c.score == pytest.approx(1 / 3)
    nan_grid = np.array([1.0, np.nan, 0.95])
    n = stability_score(nan_grid, tol=0.1)  # NaN neighbour (an invalid parameter set) is not within
    assert n.score == 0.0 and n.plateau_share == 1.0
    chosen = stability_score(g, tol=0.2, best_index=(0, 0))
    assert chosen.best_value == 0.1 and chosen.score == 1.0
    with pytest.raises(UserError, match="NaN"):
        stability_score([np.nan, np.nan])


def test_break_even_interpolates_between_multiples():
    res = break_even_cost({3: -0.2, 0: 1.2, 2: 0.3, 1: 0.8})
    # between 2x (0.3) and 3x (-0.2): 2 + 0.3 / 0.5 = 2.6
    assert res.status == "crosses" and res.multiple == pytest.approx(2.6)
    assert res.tested[0] == (0.0, 1.2)
    assert verdict_break_even(res).text == "survives cost errors: break-even at 2.60x costs"
    fragile = break_even_cost([(0, 0.5), (1, 0.1), (2, -0.3)])
    assert fragile.multiple == pytest.approx(1.25)
    assert verdict_break_even(fragile).passed is False
    thr = break_even_cost({0: 1.0, 1: 0.5}, threshold=0.75)
    assert thr.multiple == pytest.approx(0.5)


def test_break_even_out_of_range():
    up = break_even_cost({0: 2.0, 1: 1.8, 2: 1.6, 3: 1.4})
    assert up.multiple is None and up.status == "above_at_all"
    assert "still profitable at 3x costs" in verdict_break_even(up).text
    down = break_even_cost({0: -0.1, 1: -0.5})
    assert down.multiple is None and down.status == "below_at_all"
    assert verdict_break_even(down).passed is False
    with pytest.raises(UserError, match=">= 2 cost multiples"):
        break_even_cost({1: 1.0})
