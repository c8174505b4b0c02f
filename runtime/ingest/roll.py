"""Continuous ES front month: which quarterly contract to use on each trade date.

Why two rules: order flow (footprint, CVD) follows the *volume* leader, which moves to the back month about a week
before expiry, while a pure *calendar* rule needs no data and is the fallback when no earlier volume exists.
The volume rule only looks at the previous trade date's volume, never at date d itself, so a backtest on d cannot
peek at d's activity. Prices are never adjusted here; this only picks symbols.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: ES outright futures, e.g. ESZ4. Calendar spreads (ESZ4-ESH5) and other roots do not match.
CONTRACT_RE = re.compile(r"ES([HMUZ])(\d)")
MONTH_CODES = {"H": 3, "M": 6, "U": 9, "Z": 12}
_CODE_FOR_MONTH = {v: k for k, v in MONTH_CODES.items()}
ROLL_COLUMNS = ("trade_date", "symbol", "rule", "basis")


def is_outright(symbol: str) -> bool:
    """True for an ES quarterly outright (ESZ4); False for spreads (ESZ4-ESH5) and anything else."""
    return CONTRACT_RE.fullmatch(symbol) is not None


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def contract_expiry(symbol: str, ref_date: dt.date) -> dt.date:
    """Third Friday of the contract month; the one-digit year is the decade nearest ``ref_date`` (ties: later).

    CME's last trading day is this Friday (08:30 CT) unless it is an exchange holiday; that rare shift is ignored.
    """
    m = CONTRACT_RE.fullmatch(symbol)
    if m is None:
        kind = "a calendar spread" if "-" in symbol else "not an ES quarterly contract"
        raise ValueError(f"{symbol!r} is {kind}; expected ES[HMUZ]<digit>, e.g. ESZ4")
    month, digit = MONTH_CODES[m.group(1)], int(m.group(2))
    decade = ref_date.year // 10 * 10
    candidates = [third_friday(decade + off + digit, month) for off in (-10, 0, 10)]
    return min(candidates, key=lambda e: (abs((e - ref_date).days), -e.toordinal()))


def contract_symbol(expiry: dt.date) -> str:
    """ES symbol for a quarterly expiry date (inverse of ``contract_expiry`` for a nearby reference date)."""
    return f"ES{_CODE_FOR_MONTH[expiry.month]}{expiry.year % 10}"


def _as_days(values: Iterable[dt.date] | pd.Series | np.ndarray) -> np.ndarray:
    """Any date-like sequence -> sorted-as-given numpy datetime64[D]."""
    return pd.to_datetime(pd.Series(list(values) if not isinstance(values, pd.Series) else values)).to_numpy(
        dtype="datetime64[D]"
    )


def _to_date(day: np.datetime64) -> dt.date:
    return day.astype("datetime64[D]").astype(dt.date)


def _roll_dates(
    expiries: np.ndarray, days_before_expiry: int, business_days: np.ndarray | None
) -> np.ndarray:
    """expiry minus N business days: counted in ``business_days`` where it covers, else Mon-Fri weekdays."""
    weekday = np.busday_offset(expiries, -days_before_expiry, roll="backward")
    if business_days is None or business_days.size == 0:
        return weekday
    pos = np.searchsorted(business_days, expiries, side="left") - days_before_expiry
    covered = (expiries <= business_days[-1]) & (pos >= 0)
    from_list = business_days[np.clip(pos, 0, business_days.size - 1)]
    return np.where(covered, from_list, weekday)


def _frame(rows: list[tuple[dt.date, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ROLL_COLUMNS))


def roll_by_calendar(
    symbols: Iterable[str],
    trade_dates: Iterable[dt.date],
    days_before_expiry: int,
    business_days: Iterable[dt.date] | None,
) -> pd.DataFrame:
    """Front = nearest-expiry contract whose roll date (expiry minus N business days) is after d.

    Uses only the calendar. ``business_days`` (e.g. CME trade dates) counts the N days; beyond its end Mon-Fri
    weekdays are used. Returns DataFrame[trade_date, symbol, rule, basis] in trade-date order.
    """
    days = np.unique(_as_days(trade_dates))
    if days.size == 0:
        return _frame([])
    ref = _to_date(days[0])
    outrights = sorted({s for s in symbols if is_outright(s)})
    if not outrights:
        raise ValueError("no ES outright contracts among the symbols")
    expiry_of = {s: contract_expiry(s, ref) for s in outrights}
    ordered = sorted(outrights, key=expiry_of.__getitem__)
    expiries = np.array([expiry_of[s] for s in ordered], dtype="datetime64[D]")
    bdays = np.unique(_as_days(business_days)) if business_days is not None else None
    rolls = _roll_dates(expiries, days_before_expiry, bdays)
    if np.any(np.diff(rolls) <= np.timedelta64(0, "D")):
        raise ValueError("contracts with equal roll dates; check the symbol list for duplicates")
    front = np.searchsorted(rolls, days, side="right")  # first contract whose roll date > d
    if np.any(front >= len(ordered)):
        late = _to_date(days[front >= len(ordered)][0])
        raise ValueError(f"no contract left to hold on {late}: all roll dates are on or before it")
    rows = []
    for day, k in zip(days, front, strict=True):
        sym = ordered[k]
        rows.append(
            (
                _to_date(day),
                sym,
                "calendar",
                f"calendar: {sym} expires {expiry_of[sym]}, rolls {_to_date(rolls[k])} "
                f"({days_before_expiry} business days before) > {_to_date(day)}",
            )
        )
    return _frame(rows)


def roll_by_volume(
    volumes: pd.DataFrame,
    trade_dates: Iterable[dt.date],
    *,
    fallback_days_before_expiry: int = 6,
    business_days: Sequence[dt.date] | None = None,
) -> pd.DataFrame:
    """Front on d = the outright with the highest volume on the latest data date before d (never d itself).

    Guards: never roll back to an earlier-expiring contract than the previous choice; never hold a contract that
    expired before d (take the next listed one instead). Dates with no earlier volume use the calendar rule
    (``fallback_days_before_expiry`` business days; 6 = CME's roll Thursday, 8 calendar days before expiry).
    ``volumes`` has columns trade_date, symbol, volume (spreads and other symbols are ignored; duplicates summed).
    Returns DataFrame[trade_date, symbol, rule, basis] in trade-date order.
    """
    days = np.unique(_as_days(trade_dates))
    if days.size == 0:
        return _frame([])
    data = volumes.loc[volumes["symbol"].map(is_outright), ["trade_date", "symbol", "volume"]].copy()
    data["day"] = _as_days(data["trade_date"])
    daily = data.groupby(["day", "symbol"], as_index=False)["volume"].sum()
    ref = _to_date(days[0])
    universe = sorted(set(daily["symbol"]))
    expiry_of = {s: contract_expiry(s, ref) for s in universe}
    daily["expiry"] = daily["symbol"].map(expiry_of)
    # volume leader per data date: highest volume, ties to the earlier expiry; keep the runner-up for the basis
    daily = daily.sort_values(["day", "volume", "expiry"], ascending=[True, False, True], kind="stable")
    ranked = daily.groupby("day", sort=True).head(2)
    data_days = np.unique(daily["day"].to_numpy(dtype="datetime64[D]"))
    by_day: dict[np.datetime64, list[tuple[str, int]]] = {}
    for day, sym, vol in zip(
        ranked["day"].to_numpy(dtype="datetime64[D]"), ranked["symbol"], ranked["volume"], strict=True
    ):
        by_day.setdefault(day, []).append((str(sym), int(vol)))
    by_expiry = sorted(universe, key=expiry_of.__getitem__)

    rows: list[tuple[dt.date, str, str, str]] = []
    front: str | None = None
    for day in days:
        d = _to_date(day)
        k = int(np.searchsorted(data_days, day, side="left")) - 1  # latest data date strictly before d
        if k < 0:
            listed = sorted(set(universe) | set(upcoming_contracts(d, 2)))
            cal = roll_by_calendar(listed, [d], fallback_days_before_expiry, business_days)
            choice, rule = str(cal.at[0, "symbol"]), "calendar"
            basis = f"no volume before {d}: " + str(cal.at[0, "basis"])
        else:
            prev = data_days[k]
            leaders = by_day[prev]
            choice, rule = leaders[0][0], "volume"
            basis = f"volume {_to_date(prev)}: {choice} {leaders[0][1]:,}"
            basis += f" > {leaders[1][0]} {leaders[1][1]:,}" if len(leaders) > 1 else " (only outright)"
        expiry_of.setdefault(choice, contract_expiry(choice, d))
        if front is not None and expiry_of[choice] < expiry_of[front]:
            basis += f"; {choice} expires before {front}: no roll backwards, keep {front}"
            choice = front
        if expiry_of[choice] < d:
            listed_after = [s for s in by_expiry if expiry_of[s] >= d] or upcoming_contracts(d, 1)
            nxt = listed_after[0]
            expiry_of.setdefault(nxt, contract_expiry(nxt, d))
            basis += f"; {choice} expired {expiry_of[choice]}: next listed {nxt}"
            choice = nxt
        front = choice
        rows.append((d, choice, rule, basis))
    return _frame(rows)


def upcoming_contracts(d: dt.date, n: int) -> list[str]:
    """The next ``n`` quarterly ES symbols whose expiry is on or after ``d`` (for when no data lists them)."""
    out: list[str] = []
    year, month = d.year, (d.month - 1) // 3 * 3 + 3
    while len(out) < n:
        if third_friday(year, month) >= d:
            out.append(contract_symbol(third_friday(year, month)))
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)
    return out
