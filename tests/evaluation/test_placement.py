"""compiler.placement: the daily and minute placement rules, on hand-worked examples and a loop reference."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.placement import minute_fill, place_daily, place_minute

NAN = np.nan


def d(*days: str) -> np.ndarray:
    return np.array(days, dtype="datetime64[D]")


# NYSE days around MLK 2024 (Mon 01-15 closed): Fri 01-05, Mon 01-08, Tue 01-09, Fri 01-12, Tue 01-16
GRID = d("2024-01-05", "2024-01-08", "2024-01-09", "2024-01-12", "2024-01-16")


def same(a: np.ndarray, b: list[float]) -> None:
    np.testing.assert_array_equal(a, np.array(b, dtype=float))  # NaN == NaN here


def test_weekend_stamp_moves_to_monday() -> None:
    same(place_daily(d("2024-01-06"), np.array([7.0]), GRID), [NAN, 7, NAN, NAN, NAN])


def test_mondays_own_value_wins_over_sundays() -> None:
    same(place_daily(d("2024-01-07", "2024-01-08"), np.array([1.0, 2.0]), GRID), [NAN, 2, NAN, NAN, NAN])
    # the latest of several stamps in (Fri, Mon] wins, whatever order they come in
    same(place_daily(d("2024-01-07", "2024-01-06"), np.array([1.0, 9.0]), GRID), [NAN, 1, NAN, NAN, NAN])


def test_holiday_stamp_moves_to_the_next_trading_day_never_earlier() -> None:
    same(place_daily(d("2024-01-15"), np.array([5.0]), GRID), [NAN, NAN, NAN, NAN, 5])
    # Tuesday's own value wins over the holiday's; Friday keeps its own
    same(
        place_daily(d("2024-01-12", "2024-01-15", "2024-01-16"), np.array([4.0, 5.0, 6.0]), GRID),
        [NAN, NAN, NAN, 4, 6],
    )


def test_a_blank_value_is_no_value() -> None:
    # Monday's row is blank: Sunday's value is the latest present one in (Fri, Mon]; inf is never served
    same(place_daily(d("2024-01-07", "2024-01-08"), np.array([1.0, NAN]), GRID), [NAN, 1, NAN, NAN, NAN])
    same(place_daily(d("2024-01-05", "2024-01-09"), np.array([np.inf, 3.0]), GRID), [NAN, NAN, 3, NAN, NAN])


def test_stamps_outside_the_grid() -> None:
    before, after = d("2024-01-04", "2024-01-17"), np.array([1.0, 2.0])
    same(place_daily(before, after, GRID), [NAN] * 5)  # before row 0: history the grid did not load
    # with the calendar's previous trading day (Thu 01-04) as the lower bound: a stamp in (Thu, Fri] lands
    same(
        place_daily(
            d("2024-01-04", "2024-01-05"), np.array([1.0, 2.0]), GRID, lower=np.datetime64("2024-01-04")
        ),
        [2, NAN, NAN, NAN, NAN],
    )
    same(
        place_daily(d("2024-01-04"), np.array([1.0]), GRID, lower=np.datetime64("2024-01-03")),
        [1, NAN, NAN, NAN, NAN],
    )


def reference_daily(stamps: np.ndarray, values: np.ndarray, grid: np.ndarray, lower) -> np.ndarray:
    """Plain loops: row i takes the present value with the latest stamp in (grid[i-1], grid[i]]."""
    out = []
    for i, g in enumerate(grid):
        lo = grid[i - 1] if i else lower
        best = None
        for s, v in zip(stamps, values, strict=True):
            in_interval = s == g if lo is None else lo < s <= g
            if np.isfinite(v) and in_interval and (best is None or s > best[0]):
                best = (s, v)
        out.append(NAN if best is None else best[1])
    return np.array(out)


@pytest.mark.parametrize("seed", range(20))
def test_place_daily_matches_a_loop_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-03-01"))
    grid = np.sort(rng.choice(days, size=25, replace=False))
    stamps = rng.choice(days, size=30, replace=False)  # unsorted, weekends and gaps included
    values = rng.normal(size=30)
    values[rng.random(30) < 0.2] = NAN
    lower = None if seed % 2 else grid[0] - np.timedelta64(int(rng.integers(1, 5)), "D")
    np.testing.assert_array_equal(
        place_daily(stamps, values, grid, lower=lower), reference_daily(stamps, values, grid, lower)
    )


MIN = np.timedelta64(1, "m")
T0 = np.datetime64("2018-11-26T14:30", "ns")
# two sessions: three bars of session A, two of session B (an overnight gap between them)
BARS = np.array([T0, T0 + MIN, T0 + 2 * MIN, T0 + 1440 * MIN, T0 + 1441 * MIN])
SESSION = d("2018-11-26", "2018-11-26", "2018-11-26", "2018-11-27", "2018-11-27")


def test_place_minute_fills() -> None:
    ts = np.array([T0 + MIN, T0 + 1441 * MIN, T0 + 7 * MIN])  # the last one is no grid bar: not used
    v = np.array([5.0, 8.0, 99.0])
    same(place_minute(ts, v, BARS, "missing"), [NAN, 5, NAN, NAN, 8])
    same(place_minute(ts, v, BARS, "zero"), [0, 5, 0, 0, 8])
    # running (cvd): the session's last value, 0 before its first row; session B starts again at 0
    same(place_minute(ts, v, BARS, "running", session=SESSION), [0, 5, 5, 0, 8])
    same(place_minute(ts.view(np.int64), v, BARS, "zero"), [0, 5, 0, 0, 8])  # int64 ns accepted too
    same(place_minute(ts, v, BARS, None), [NAN, 5, NAN, NAN, 8])  # None = missing, a number = that number
    same(place_minute(ts, v, BARS, 0.0), [0, 5, 0, 0, 8])
    assert [minute_fill(c) for c in ("close", "vwap", "volume", "n_trades", "delta", "cvd")] == [
        "missing", "missing", "zero", "zero", "zero", "running"
    ]  # fmt: skip


def test_place_minute_refuses_bad_calls() -> None:
    with pytest.raises(ValueError, match="running"):
        place_minute(BARS[:1], np.array([1.0]), BARS, "running")
    with pytest.raises(ValueError, match="fill"):
        place_minute(BARS[:1], np.array([1.0]), BARS, "ffill")  # type: ignore[arg-type]
