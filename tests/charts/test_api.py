"""Chart data API against independent recomputations from the canonical trades, and hand-worked cases."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from runtime.charts.api import ChartSource, big_trades, candles, cvd, footprint, trade_dates, volume
from tests.derive import oracle
from tests.derive.conftest import HAND_DAY, Derived

CT = ZoneInfo("America/Chicago")
MIN = oracle.MIN


def src(d: Derived, series: str = "front") -> ChartSource:
    return ChartSource(d.env.paths.derived_dir, "ES", series)


def ct_ns(day: dt.date, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=CT).timestamp()) * 1_000_000_000


def series_trades(d: Derived, session: str) -> pd.DataFrame:
    canon = oracle.canonical(d.env.paths.canonical_dir / "trades_es")
    rolls = d.env.reg.query("SELECT trade_date, symbol FROM roll_schedule")
    picked = oracle.pick_series(canon, {r["trade_date"]: r["symbol"] for r in rolls})
    return oracle.in_session(picked, session)


def window_opens(day: dt.date, prev: dt.date | None, session: str) -> list[int]:
    """Hand rule, independent of runtime/ingest/sessions: RTH opens 08:30 CT on the trade date; FULL windows open
    17:00 CT on every calendar evening from the previous trade date up to the eve of this one, except Friday and
    Saturday evenings (the weekend)."""
    if session == "RTH":
        return [ct_ns(day, 8, 30)]
    first = prev if prev is not None else day - dt.timedelta(days=1)
    out = []
    d = first
    while d < day:
        if d.weekday() not in (4, 5):
            out.append(ct_ns(d, 17))
        d += dt.timedelta(days=1)
    return out


def expected_candles(t: pd.DataFrame, session: str, interval: int | str) -> pd.DataFrame:
    t = t.sort_values(["trade_date", "ts_event", "sequence", "pos"], kind="stable").copy()
    days = sorted(set(t["trade_date"]))
    prev = {d: (days[i - 1] if i else None) for i, d in enumerate(days)}
    anchors = []
    for day, ts in zip(t["trade_date"], t["ts_event"], strict=True):
        opens = window_opens(day, prev[day], session)
        if interval == "session":
            anchors.append(opens[0])
            continue
        a = max([o for o in opens if o <= ts], default=opens[0])
        step = interval * MIN
        anchors.append(a + (ts - a) // step * step)
    t["bucket"] = anchors
    out = oracle.ohlcv(t, ["trade_date", "bucket"]).drop(columns="symbol")
    out["delta"] = out["buy_volume"] - out["sell_volume"]
    return out


@pytest.mark.parametrize("session", ["RTH", "FULL"])
@pytest.mark.parametrize("interval", [1, 5, 13, 60, "session"])
def test_candles_equal_recomputation_with_session_aligned_buckets(
    synth: Derived, session: str, interval: int | str
) -> None:
    got = candles(src(synth), session, interval=interval)
    want = expected_candles(series_trades(synth, session), session, interval)
    assert len(got) == len(want) > 0
    assert got["ts"].map(lambda x: x.value).tolist() == want["bucket"].tolist()
    assert got["trade_date"].tolist() == want["trade_date"].tolist()
    cols = ["open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "delta", "n_trades"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols], check_dtype=False)
    np.testing.assert_allclose(got["vwap"], want["vwap"], rtol=1e-12)
    assert (got["ts_end"] > got["ts"]).all()


def test_candles_dst_and_early_close_alignment(synth: Derived) -> None:
    s = src(synth)
    for day in (dt.date(2018, 11, 2), dt.date(2018, 11, 5)):  # CDT, then CST after the Sunday switch
        c = candles(s, "RTH", day, day, 60)
        assert c["ts"].iloc[0].value == ct_ns(day, 8, 30)
        assert (
            c["ts"].dt.tz_convert(CT).dt.strftime("%H:%M").tolist()
            == [f"{h:02d}:30" for h in range(8, 15)][: len(c)]
        )
        assert c["ts_end"].iloc[-1].value == ct_ns(day, 15, 0)  # the last bucket stops at the 15:00 close
        full = candles(s, "FULL", day, day, 60)
        assert full["ts"].iloc[0].tz_convert(CT).strftime("%a %H:%M") == (
            "Thu 17:00" if day.day == 2 else "Sun 17:00"
        )
    fri = dt.date(2018, 11, 23)  # Thanksgiving Friday: RTH cut at 12:15; FULL re-anchors at Thu 17:00
    assert candles(s, "RTH", fri, fri, 60)["ts_end"].iloc[-1].value == ct_ns(fri, 12, 15)
    full = candles(s, "FULL", fri, fri, 13)["ts"]
    thu_open = ct_ns(dt.date(2018, 11, 22), 17)
    assert thu_open in set(full.map(lambda x: x.value))
    sess = candles(s, "FULL", fri, fri, "session")
    assert len(sess) == 1 and sess["ts"].iloc[0].value == ct_ns(dt.date(2018, 11, 21), 17)


def test_timestamp_window_and_volume(synth: Derived) -> None:
    s = src(synth)
    day = dt.date(2018, 11, 6)
    lo = pd.Timestamp(ct_ns(day, 9, 0), tz="UTC")
    hi = pd.Timestamp(ct_ns(day, 10, 0), tz="UTC")
    c = candles(s, "RTH", lo, hi, 10)
    assert c["ts"].min() == lo and c["ts"].max() < hi and len(c) == 6
    t = series_trades(synth, "RTH")
    in_win = t[(t["ts_event"] >= lo.value) & (t["ts_event"] < hi.value)]
    assert c["volume"].sum() == in_win["size"].sum()
    # tz-naive timestamps are UTC; strings work too ('YYYY-MM-DD' = a trade date)
    c2 = candles(s, "RTH", lo.tz_localize(None), hi.tz_localize(None), 10)
    pd.testing.assert_frame_equal(c, c2)
    c3 = candles(s, "RTH", lo.isoformat(), hi.to_pydatetime(), 10)
    pd.testing.assert_frame_equal(c, c3)
    pd.testing.assert_frame_equal(
        candles(s, "RTH", "2018-11-06", "2018-11-06", 30), candles(s, "RTH", day, day, 30)
    )
    v = volume(s, "FULL", day, day, 30)
    assert (v["buy_volume"] + v["sell_volume"] + v["other_volume"] == v["volume"]).all()
    assert v["volume"].sum() == series_trades(synth, "FULL").query("trade_date == @day")["size"].sum()


def test_footprint_hand_worked(hand: Derived) -> None:
    fp = footprint(src(hand), "RTH", HAND_DAY, HAND_DAY, 1, ratio=3.0, min_volume=10)
    rows = fp[
        ["price", "bid_volume", "ask_volume", "volume", "delta", "buy_imbalance", "sell_imbalance", "poc"]
    ]
    assert rows.values.tolist() == [
        # minute 14:31: ask 30 at .25 >= 3 x bid 10 at .00 (equality counts); bid 12 at .50 >= 3 x ask 4 at .75
        [2500.00, 10, 0, 17, -10, False, False, False],
        [2500.25, 3, 30, 33, 27, True, False, True],
        [2500.50, 12, 5, 17, -7, False, True, False],
        [2500.75, 0, 4, 4, 4, False, False, False],
        # minute 14:32: zero-opposite rule (2501.25 never traded) -> imbalances iff >= min_volume;
        # POC tie 10/10: VWAP 2501.35 is nearer 2501.50
        [2501.00, 10, 0, 10, -10, False, True, False],
        [2501.50, 0, 10, 10, 10, True, False, True],
        [2501.75, 0, 5, 5, 5, False, False, False],
    ]
    # one 5-minute bucket (08:30-08:35 CT) holds both minutes; POC = 2500.25 (33)
    fp5 = footprint(src(hand), "RTH", HAND_DAY, HAND_DAY, 5)
    assert fp5["ts"].nunique() == 1 and fp5["ts"].iloc[0].value == ct_ns(HAND_DAY, 8, 30)
    assert fp5.loc[fp5["poc"], "price"].tolist() == [2500.25]
    # ratio 3.5 drops the two ratio-3 cases (30 < 35, 12 < 14) but not the zero-opposite ones
    strict = footprint(src(hand), "RTH", HAND_DAY, HAND_DAY, 1, ratio=3.5, min_volume=10)
    assert strict["buy_imbalance"].tolist() == [False, False, False, False, False, True, False]
    assert strict["sell_imbalance"].tolist() == [False, False, False, False, True, False, False]
    # min_volume 11 drops the zero-opposite 10-lots and keeps the ratio-3 cases
    mv = footprint(src(hand), "RTH", HAND_DAY, HAND_DAY, 1, ratio=3.0, min_volume=11)
    assert mv["buy_imbalance"].tolist() == [False, True, False, False, False, False, False]
    assert mv["sell_imbalance"].tolist() == [False, False, True, False, False, False, False]
    c = candles(src(hand), "RTH", HAND_DAY, HAND_DAY, 5).iloc[0]
    assert (c["open"], c["close"], c["volume"], c["delta"]) == (2500.00, 2501.75, 96, 19)


def expected_footprint(
    t: pd.DataFrame, session: str, interval: int, ratio: float, min_volume: int
) -> pd.DataFrame:
    c = expected_candles(t, session, interval)  # only to reuse its bucket rule on the same rows
    del c
    t = t.copy()
    days = sorted(set(t["trade_date"]))
    prev = {d: (days[i - 1] if i else None) for i, d in enumerate(days)}
    step = interval * MIN
    buckets = []
    for day, ts in zip(t["trade_date"], t["ts_event"], strict=True):
        opens = window_opens(day, prev[day], session)
        a = max([o for o in opens if o <= ts], default=opens[0])
        buckets.append(a + (ts - a) // step * step)
    t["bucket"] = buckets
    t["bid"] = np.where(t["side"] == -1, t["size"], 0)
    t["ask"] = np.where(t["side"] == 1, t["size"], 0)
    g = t.groupby(["bucket", "price"], sort=True).agg(
        bid=("bid", "sum"), ask=("ask", "sum"), vol=("size", "sum")
    )
    bid, ask = g["bid"].to_dict(), g["ask"].to_dict()
    rows = []
    for b, grp in g.groupby(level=0):
        prices = [p for _, p in grp.index]
        vols = grp["vol"].tolist()
        vwap = sum(p * v for p, v in zip(prices, vols, strict=True)) / sum(vols)
        best = min(zip(prices, vols, strict=True), key=lambda pv: (-pv[1], abs(pv[0] - vwap), pv[0]))[0]
        for p, v in zip(prices, vols, strict=True):
            a, bd = ask[(b, p)], bid[(b, p)]
            buy = a > 0 and a >= min_volume and a >= ratio * bid.get((b, p - 0.25), 0)
            sell = bd > 0 and bd >= min_volume and bd >= ratio * ask.get((b, p + 0.25), 0)
            rows.append((b, p, bd, a, v, buy, sell, p == best))
    return pd.DataFrame(
        rows, columns=["ts", "price", "bid_volume", "ask_volume", "volume", "buy", "sell", "poc"]
    )


@pytest.mark.parametrize("session,interval", [("RTH", 5), ("FULL", 30)])
def test_footprint_equals_recomputation(synth: Derived, session: str, interval: int) -> None:
    days = trade_dates(src(synth), session)[5:8]
    t = series_trades(synth, session)
    t = t[t["trade_date"].isin(days)]
    got = footprint(src(synth), session, days[0], days[-1], interval, ratio=2.5, min_volume=8)
    want = expected_footprint(t, session, interval, 2.5, 8)
    assert got["ts"].map(lambda x: x.value).tolist() == want["ts"].tolist()
    for a, b in (
        ("price", "price"),
        ("bid_volume", "bid_volume"),
        ("ask_volume", "ask_volume"),
        ("volume", "volume"),
    ):
        assert got[a].tolist() == want[b].tolist()
    assert got["buy_imbalance"].tolist() == want["buy"].tolist()
    assert got["sell_imbalance"].tolist() == want["sell"].tolist()
    assert got["poc"].tolist() == want["poc"].tolist()
    assert got["buy_imbalance"].any() and got["sell_imbalance"].any()
    # footprint buckets are independent of candle buckets: 1-minute cells sum to the 10-minute candle
    fp1 = footprint(src(synth), session, days[0], days[0], 1)
    c10 = candles(src(synth), session, days[0], days[0], 10)
    assert fp1["volume"].sum() == c10["volume"].sum()


def test_big_trades_modes_and_min_size(hand: Derived) -> None:
    s = src(hand)
    sweep = big_trades(s, "RTH", HAND_DAY, HAND_DAY, mode="sweep")
    assert sweep["size"].tolist() == [10, 25, 10, 12, 10, 10]
    assert sweep["kind"].tolist() == ["print", "sweep", "print", "print", "print", "print"]
    prints = big_trades(s, "RTH", HAND_DAY, HAND_DAY, mode="print")
    assert prints["size"].tolist() == [10, 20, 10, 12, 10, 10]
    assert big_trades(s, "RTH", HAND_DAY, HAND_DAY, mode="sweep", min_size=12)["size"].tolist() == [25, 12]
    assert big_trades(s, "RTH", HAND_DAY, HAND_DAY, mode="print", min_size=12)["size"].tolist() == [20, 12]
    assert (big_trades(s, "RTH", HAND_DAY, HAND_DAY, min_size=12)["threshold"] == 12).all()
    # no earlier session: no percentile threshold, nothing shown
    assert big_trades(s, "RTH", HAND_DAY, HAND_DAY, percentile=50).empty
    with pytest.raises(ValueError):
        big_trades(s, "RTH", HAND_DAY, HAND_DAY, mode="block")


@pytest.mark.parametrize("mode", ["sweep", "print"])
@pytest.mark.parametrize("session", ["RTH", "FULL"])
def test_big_trades_trailing_percentile_has_no_lookahead(synth: Derived, mode: str, session: str) -> None:
    s = src(synth)
    days = trade_dates(s, session)
    t = series_trades(synth, session)
    floor = synth.params.big_trade_floor
    if mode == "sweep":
        sizes = oracle.aggressor_events(t)[["trade_date", "ts_event", "size"]]
    else:
        sizes = t[["trade_date", "ts_event", "size"]]
    q, look = 99.0, 5
    got = big_trades(s, session, days[0], days[12], mode=mode, percentile=q, lookback_sessions=look)
    assert set(got["trade_date"]) <= set(days[1:13])  # the first date has no earlier session
    for i in range(1, 13):
        d = days[i]
        pool = sizes[sizes["trade_date"].isin(days[max(0, i - look) : i])]["size"].to_numpy()
        thr = max(floor, oracle.nearest_rank(pool, q))
        mine = got[got["trade_date"] == d]
        todays = sizes[(sizes["trade_date"] == d) & (sizes["size"] >= thr)]
        assert len(mine) == len(todays), d
        assert sorted(mine["size"]) == sorted(todays["size"])
        if len(mine):
            assert (mine["threshold"] == thr).all()
    # adding later sessions never changes an earlier date's answer
    longer = big_trades(s, session, days[0], days[20], mode=mode, percentile=q, lookback_sessions=look)
    pd.testing.assert_frame_equal(
        longer[longer["trade_date"] <= days[12]].reset_index(drop=True), got.reset_index(drop=True)
    )


def test_percentile_below_the_floor_is_clamped(synth: Derived) -> None:
    s = src(synth)
    day = trade_dates(s, "RTH")[10]
    low = big_trades(s, "RTH", day, day, mode="print", percentile=50)
    floor = big_trades(s, "RTH", day, day, mode="print")
    assert (low["threshold"] == synth.params.big_trade_floor).all()
    pd.testing.assert_frame_equal(low.drop(columns="threshold"), floor.drop(columns="threshold"))


def test_cvd_session_and_continuous(synth: Derived) -> None:
    s = src(synth)
    days = trade_dates(s, "RTH")[3:6]
    t = series_trades(synth, "RTH")
    t = t[t["trade_date"].isin(days)]
    signed = np.where(t["side"] == 1, t["size"], np.where(t["side"] == -1, -t["size"], 0))
    per_day = pd.Series(signed).groupby(t["trade_date"].to_numpy()).sum()
    sess = cvd(s, "RTH", days[0], days[-1], 5, reset="session")
    last = sess.groupby("trade_date")["cvd"].last()
    assert last.to_dict() == per_day.to_dict()
    for _, g in sess.groupby("trade_date"):
        assert g["cvd_open"].iloc[0] == 0  # every session starts from zero
        assert (g["cvd_open"].iloc[1:].to_numpy() == g["cvd"].iloc[:-1].to_numpy()).all()
    assert (sess["cvd_high"] >= sess[["cvd_open", "cvd"]].max(axis=1)).all()
    assert (sess["cvd_low"] <= sess[["cvd_open", "cvd"]].min(axis=1)).all()
    cont = cvd(s, "RTH", days[0], days[-1], 5, reset="continuous")
    assert cont["cvd"].iloc[-1] == per_day.sum() and cont["cvd_open"].iloc[0] == 0
    assert (cont["cvd_open"].iloc[1:].to_numpy() == cont["cvd"].iloc[:-1].to_numpy()).all()
    assert (cont["delta"] == sess["delta"]).all()


def test_real_samples_through_the_api(real: Derived) -> None:
    s = src(real)
    day = dt.date(2020, 12, 28)
    c = candles(s, "FULL", day, day, 60)
    assert c["ts"].map(lambda x: x.value).tolist() == [ct_ns(dt.date(2020, 12, 27), 18), ct_ns(day, 7)]
    assert c["volume"].tolist() == [4, 26] and c["delta"].tolist() == [2, -26]
    assert candles(s, "RTH", day, day, 5).empty and footprint(s, "RTH", day, day, 5).empty
    assert cvd(s, "FULL", day, day, "session")["cvd"].tolist() == [-24]
    b = big_trades(s, "FULL", day, day, mode="print")
    assert b["size"].tolist() == [5, 21] and b["side"].tolist() == [-1, -1]
    assert not math.isnan(b["threshold"].iloc[0])


def test_contract_series_source(synth: Derived) -> None:
    c = candles(src(synth, "ESH9"), "FULL", interval="session")
    front_days = trade_dates(src(synth), "FULL")
    assert set(c["trade_date"]) <= set(front_days) and len(c) >= 5
    with pytest.raises(ValueError):
        ChartSource(synth.env.paths.derived_dir, "ES", "nonsense")
