"""Continuous front month: expiries, the volume rule (no lookahead) and the calendar rule, hand-worked."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from runtime.ingest.roll import (
    contract_expiry,
    is_outright,
    roll_by_calendar,
    roll_by_volume,
    upcoming_contracts,
)
from runtime.ingest.sessions import cme_equity_sessions

D = dt.date


@pytest.mark.parametrize(
    ("symbol", "ref", "expiry"),
    [
        ("ESZ4", D(2024, 11, 1), D(2024, 12, 20)),  # Dec 1 2024 is a Sunday: Fridays 6, 13, 20
        ("ESH5", D(2024, 12, 1), D(2025, 3, 21)),  # Mar 1 2025 is a Saturday: Fridays 7, 14, 21
        ("ESM5", D(2025, 1, 2), D(2025, 6, 20)),  # Jun 1 2025 is a Sunday
        ("ESU4", D(2024, 8, 1), D(2024, 9, 20)),  # Sep 1 2024 is a Sunday
        ("ESH1", D(2020, 12, 28), D(2021, 3, 19)),  # = the ESH1 definition's expiration in the real sample
        ("ESZ9", D(2024, 12, 1), D(2019, 12, 20)),  # 2019 is nearer than 2029
        ("ESZ9", D(2025, 6, 1), D(2029, 12, 21)),  # now 2029 is nearer; Dec 1 2029 is a Saturday
    ],
)
def test_contract_expiry_is_third_friday_in_nearest_decade(symbol, ref, expiry):
    assert contract_expiry(symbol, ref) == expiry
    assert expiry.weekday() == 4 and 15 <= expiry.day <= 21


@pytest.mark.parametrize("symbol", ["ESZ4-ESH5", "NQZ4", "ESZ24", "ESF5", "ES.c.0", "esz4"])
def test_non_contracts_are_rejected(symbol):
    assert not is_outright(symbol)
    with pytest.raises(ValueError, match="spread" if "-" in symbol else "not an ES quarterly"):
        contract_expiry(symbol, D(2024, 12, 1))


def test_upcoming_contracts():
    assert upcoming_contracts(D(2024, 12, 20), 2) == ["ESZ4", "ESH5"]
    assert upcoming_contracts(D(2024, 12, 21), 2) == ["ESH5", "ESM5"]


# Hand-made volumes around the Dec 2024 roll (ESZ4 expires Fri 12-20; CME roll Thursday is 12-12).
# The back month overtakes ON Wed 12-11, so the volume rule must switch on Thu 12-12, not 12-11.
VOLUMES = pd.DataFrame(
    [
        (D(2024, 12, 9), "ESZ4", 1_500_000),
        (D(2024, 12, 9), "ESH5", 120_000),
        (D(2024, 12, 9), "ESZ4-ESH5", 90_000),
        (D(2024, 12, 10), "ESZ4", 1_100_000),
        (D(2024, 12, 10), "ESH5", 400_000),
        (D(2024, 12, 10), "ESZ4-ESH5", 2_000_000),  # spreads never count, however large
        (D(2024, 12, 11), "ESZ4", 640_100),
        (D(2024, 12, 11), "ESH5", 812_300),
        (D(2024, 12, 12), "ESZ4", 300_000),
        (D(2024, 12, 12), "ESH5", 1_400_000),
        (D(2024, 12, 13), "ESZ4", 200_000),
        (D(2024, 12, 13), "ESH5", 1_500_000),
    ],
    columns=["trade_date", "symbol", "volume"],
)
DATES = [D(2024, 12, 9), D(2024, 12, 10), D(2024, 12, 11), D(2024, 12, 12), D(2024, 12, 13), D(2024, 12, 16)]


def test_volume_roll_switches_the_day_after_the_overtake():
    out = roll_by_volume(VOLUMES, DATES)
    assert list(out.columns) == ["trade_date", "symbol", "rule", "basis"]
    assert list(out["trade_date"]) == DATES
    assert list(out["symbol"]) == ["ESZ4", "ESZ4", "ESZ4", "ESH5", "ESH5", "ESH5"]
    assert list(out["rule"]) == ["calendar", "volume", "volume", "volume", "volume", "volume"]
    assert out.at[0, "basis"].startswith("no volume before 2024-12-09: calendar: ESZ4 expires 2024-12-20")
    assert out.at[1, "basis"] == "volume 2024-12-09: ESZ4 1,500,000 > ESH5 120,000"
    assert out.at[2, "basis"] == "volume 2024-12-10: ESZ4 1,100,000 > ESH5 400,000"
    assert out.at[3, "basis"] == "volume 2024-12-11: ESH5 812,300 > ESZ4 640,100"


def test_volume_roll_has_no_lookahead():
    base = roll_by_volume(VOLUMES, DATES)
    rng = np.random.default_rng(5)
    for k, d in enumerate(DATES):
        perturbed = VOLUMES.copy()
        on_or_after = perturbed["trade_date"] >= d
        perturbed.loc[on_or_after, "volume"] = rng.integers(1, 5_000_000, int(on_or_after.sum()))
        # also flip the leader on d itself, decisively
        flip = (perturbed["trade_date"] == d) & (perturbed["symbol"] == base.at[k, "symbol"])
        perturbed.loc[flip, "volume"] = 0
        again = roll_by_volume(perturbed, DATES)
        assert again.at[k, "symbol"] == base.at[k, "symbol"], d
        assert again.at[k, "basis"] == base.at[k, "basis"], d


def test_volume_roll_never_rolls_backwards():
    late_surge = pd.concat(
        [
            VOLUMES,
            pd.DataFrame(
                [(D(2024, 12, 16), "ESZ4", 9_000_000), (D(2024, 12, 16), "ESH5", 10)], columns=VOLUMES.columns
            ),
        ]
    )
    out = roll_by_volume(late_surge, [*DATES, D(2024, 12, 17)])
    assert out.iloc[-1]["symbol"] == "ESH5"
    assert "no roll backwards, keep ESH5" in out.iloc[-1]["basis"]


def test_volume_roll_never_holds_an_expired_contract():
    stale = pd.DataFrame(
        [(D(2024, 12, 20), "ESZ4", 500_000), (D(2024, 12, 20), "ESH5", 400_000)],
        columns=["trade_date", "symbol", "volume"],
    )
    out = roll_by_volume(stale, [D(2024, 12, 23)])
    assert out.at[0, "symbol"] == "ESH5"
    assert out.at[0, "basis"] == (
        "volume 2024-12-20: ESZ4 500,000 > ESH5 400,000; ESZ4 expired 2024-12-20: next listed ESH5"
    )
    # with history, the no-roll-backwards guard already holds ESH5 (the calendar rule rolled on 12-12)
    out = roll_by_volume(stale, [D(2024, 12, 20), D(2024, 12, 23)])
    assert list(out["symbol"]) == ["ESH5", "ESH5"]
    # a leader still trading on its expiry day is allowed (it expires during d, not before d)
    out = roll_by_volume(stale.assign(trade_date=D(2024, 12, 19)), [D(2024, 12, 20)])
    assert out.at[0, "symbol"] == "ESZ4"


def test_volume_roll_uses_latest_date_present_in_data():
    gap = VOLUMES[VOLUMES["trade_date"] != D(2024, 12, 12)]
    out = roll_by_volume(gap, [D(2024, 12, 13)])
    assert out.at[0, "basis"] == "volume 2024-12-11: ESH5 812,300 > ESZ4 640,100"


def test_volume_roll_sums_duplicate_rows_and_accepts_timestamps():
    dup = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(["2024-12-11", "2024-12-11", "2024-12-11"]),
            "symbol": ["ESZ4", "ESZ4", "ESH5"],
            "volume": [400_000, 400_000, 700_000],
        }
    )
    out = roll_by_volume(dup, [D(2024, 12, 12)])
    assert out.at[0, "basis"] == "volume 2024-12-11: ESZ4 800,000 > ESH5 700,000"


def test_calendar_roll_counts_cme_business_days():
    bdays = [s.trade_date for s in cme_equity_sessions(D(2024, 5, 1), D(2024, 12, 31))]
    # ESZ4 expires Fri 12-20; 6 business days back: 19, 18, 17, 16, 13, 12 -> roll date Thu 12-12
    out = roll_by_calendar(["ESZ4", "ESH5", "ESZ4-ESH5"], [D(2024, 12, 11), D(2024, 12, 12)], 6, bdays)
    assert list(out["symbol"]) == ["ESZ4", "ESH5"]
    assert out.at[0, "basis"] == (
        "calendar: ESZ4 expires 2024-12-20, rolls 2024-12-12 (6 business days before) > 2024-12-11"
    )
    assert set(out["rule"]) == {"calendar"}
    # ESM4 expires Fri 2024-06-21; Juneteenth (Wed 06-19) is not a trade date:
    # 20, 18, 17, 14, 13, 12 -> roll date Wed 06-12 (a Mon-Fri count would give Thu 06-13)
    june = [D(2024, 6, 11), D(2024, 6, 12), D(2024, 6, 13)]
    assert list(roll_by_calendar(["ESM4", "ESU4"], june, 6, bdays)["symbol"]) == ["ESM4", "ESU4", "ESU4"]
    assert list(roll_by_calendar(["ESM4", "ESU4"], june, 6, None)["symbol"]) == ["ESM4", "ESM4", "ESU4"]


def test_calendar_roll_raises_when_nothing_is_left():
    with pytest.raises(ValueError, match="no contract left"):
        roll_by_calendar(["ESZ4"], [D(2024, 12, 19)], 6, None)
    with pytest.raises(ValueError, match="no ES outright"):
        roll_by_calendar(["ESZ4-ESH5"], [D(2024, 12, 2)], 6, None)
