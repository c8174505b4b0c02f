"""Derived tables against plain pandas recomputations from the canonical parquet, on synthetic and real data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from runtime.derive.layout import SCHEMAS
from tests.derive import oracle
from tests.derive.conftest import Derived

CT = ZoneInfo("America/Chicago")
SESSIONS = ("RTH", "FULL")


def files(d: Derived, table: str, session: str, series: str = "front") -> list[Path]:
    base = d.env.paths.derived_dir / "ES"
    if series != "front":
        base = base / "contracts" / series
    return sorted((base / table / f"session={session}").glob("trade_date=*/part-0.parquet"))


def derived(d: Derived, table: str, session: str, series: str = "front") -> pd.DataFrame:
    return oracle.read_derived(files(d, table, session, series))


def front(d: Derived) -> dict[dt.date, str]:
    rows = d.env.reg.query("SELECT trade_date, symbol FROM roll_schedule WHERE dataset_id = 'ES'")
    return {r["trade_date"]: r["symbol"] for r in rows}


def trades(d: Derived, session: str, series: str = "front") -> pd.DataFrame:
    canon = oracle.canonical(d.env.paths.canonical_dir / "trades_es")
    if series == "front":
        picked = oracle.pick_series(canon, front(d))
    else:
        picked = canon[canon["symbol"] == series].reset_index(drop=True)
    return oracle.in_session(picked, session)


def ct_ns(day: dt.date, hh: int, mm: int) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=CT).timestamp()) * 1_000_000_000


BAR_COLS = [
    "trade_date",
    "ts",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "buy_volume",
    "sell_volume",
    "n_trades",
    "vwap",
]


def _check_bars(d: Derived, session: str, series: str = "front") -> None:
    got = derived(d, "bars_1m", session, series)
    want = oracle.bars(trades(d, session, series))
    assert (got["session"] == session).all()
    got = got[BAR_COLS].reset_index(drop=True)
    want = want[BAR_COLS].reset_index(drop=True)
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("session", SESSIONS)
def test_bars_equal_a_pandas_recomputation(synth: Derived, session: str) -> None:
    _check_bars(synth, session)


def test_bars_real_samples_hand_worked(real: Derived) -> None:
    """The 6 real ESH1 trades: Sunday-evening open (4 trades, 00:00 UTC) and 07:00 CT (2 trades)."""
    _check_bars(real, "FULL")
    got = derived(real, "bars_1m", "FULL")
    assert got["trade_date"].tolist() == [dt.date(2020, 12, 28)] * 2
    first, second = got.iloc[0], got.iloc[1]
    assert first["ts"] == pd.Timestamp("2020-12-28 00:00", tz="UTC").value
    assert (first["open"], first["high"], first["low"], first["close"]) == (3702.75, 3702.75, 3702.5, 3702.75)
    assert (first["volume"], first["buy_volume"], first["sell_volume"], first["n_trades"]) == (4, 3, 1, 4)
    assert first["vwap"] == pytest.approx((3 * 3702.75 + 3702.5) / 4)
    assert second["ts"] == pd.Timestamp("2020-12-28 13:00", tz="UTC").value
    assert (second["volume"], second["sell_volume"], second["n_trades"]) == (26, 26, 2)
    cvd = derived(real, "cvd_1m", "FULL")
    assert cvd["delta"].tolist() == [2, -26] and cvd["cvd"].tolist() == [2, -24]
    # nothing in RTH: the files exist (so the date is known to be built) and are empty
    for table in SCHEMAS:
        rth = files(real, table, "RTH")
        assert len(rth) == 1
        if table != "session_stats":
            assert pq.read_metadata(rth[0]).num_rows == 0


@pytest.mark.parametrize("d", ["synth", "real"])
@pytest.mark.parametrize("session", SESSIONS)
def test_footprint_equals_recomputation_and_sums_to_bar_volume(
    d: str, session: str, request: pytest.FixtureRequest
) -> None:
    synth: Derived = request.getfixturevalue(d)
    got = derived(synth, "footprint_base_1m", session)
    want = oracle.footprint(trades(synth, session))
    cols = ["trade_date", "ts", "price", "bid_volume", "ask_volume", "other_volume", "n_trades"]
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), want[cols].reset_index(drop=True), check_dtype=False
    )
    per_min = got.groupby(["trade_date", "ts"])[
        ["bid_volume", "ask_volume", "other_volume", "n_trades"]
    ].sum()
    bars = derived(synth, "bars_1m", session).set_index(["trade_date", "ts"])
    vol = per_min["bid_volume"] + per_min["ask_volume"] + per_min["other_volume"]
    assert vol.to_dict() == bars["volume"].to_dict()
    assert per_min["ask_volume"].to_dict() == bars["buy_volume"].to_dict()
    assert per_min["bid_volume"].to_dict() == bars["sell_volume"].to_dict()
    assert per_min["n_trades"].to_dict() == bars["n_trades"].to_dict()


@pytest.mark.parametrize("d", ["synth", "real"])
@pytest.mark.parametrize("session", SESSIONS)
def test_cvd_delta_is_ask_minus_bid_and_resets_each_session(
    d: str, session: str, request: pytest.FixtureRequest
) -> None:
    data: Derived = request.getfixturevalue(d)
    fp = derived(data, "footprint_base_1m", session)
    cvd = derived(data, "cvd_1m", session)
    if d == "real" and session == "RTH":
        assert cvd.empty
        return
    delta = (fp["ask_volume"] - fp["bid_volume"]).groupby([fp["trade_date"], fp["ts"]]).sum()
    assert cvd.set_index(["trade_date", "ts"])["delta"].to_dict() == delta.to_dict()
    # independent: side +1 minus side -1 volume per minute, side 0 excluded
    t = trades(data, session)
    signed = np.where(t["side"] == 1, t["size"], np.where(t["side"] == -1, -t["size"], 0))
    by_min = pd.Series(signed).groupby([t["trade_date"], t["ts_event"] // oracle.MIN * oracle.MIN]).sum()
    assert cvd.set_index(["trade_date", "ts"])["delta"].to_dict() == by_min.to_dict()
    # reset: the first minute of every session starts from its own delta; cvd = running sum within the date
    for _, g in cvd.groupby("trade_date"):
        g = g.sort_values("ts")
        assert g["cvd"].iloc[0] == g["delta"].iloc[0]
        assert g["cvd"].tolist() == g["delta"].cumsum().tolist()


@pytest.mark.parametrize("d", ["synth", "real"])
def test_rth_rows_are_a_subset_of_full_and_agree(d: str, request: pytest.FixtureRequest) -> None:
    """Agree = an RTH minute row equals the FULL row of the same minute in every column (RTH bounds are whole
    minutes, so a minute is all-RTH or not); RTH events are FULL events flagged in_rth; CVD deltas agree and RTH
    CVD is FULL CVD re-based at the RTH open. (The real samples have no RTH trade: their RTH tables are empty.)"""
    synth: Derived = request.getfixturevalue(d)
    for table, key in (
        ("bars_1m", ["trade_date", "ts"]),
        ("footprint_base_1m", ["trade_date", "ts", "price"]),
    ):
        rth = derived(synth, table, "RTH").drop(columns="session")
        full = derived(synth, table, "FULL").drop(columns="session")
        merged = rth.merge(full, on=key, how="left", suffixes=("", "_full"), indicator=True)
        assert (merged["_merge"] == "both").all()
        for c in rth.columns.difference(key):
            assert (merged[c] == merged[f"{c}_full"]).all(), (table, c)
        assert len(rth) < len(full)
    rth, full = derived(synth, "cvd_1m", "RTH"), derived(synth, "cvd_1m", "FULL")
    m = rth.merge(full, on=["trade_date", "ts"], suffixes=("", "_full"))
    assert len(m) == len(rth) and (m["delta"] == m["delta_full"]).all()
    for _, g in m.groupby("trade_date"):
        g = g.sort_values("ts")
        base = g["cvd_full"].iloc[0] - g["delta_full"].iloc[0]
        assert (g["cvd"] == g["cvd_full"] - base).all()
    ev_rth = derived(synth, "big_trade_events", "RTH").drop(columns="session")
    ev_full = derived(synth, "big_trade_events", "FULL").drop(columns="session")
    t = trades(synth, "FULL")
    rth_ts = set(t.loc[t["in_rth"], "ts_event"])
    want_rth = ev_full[ev_full["ts_event"].isin(rth_ts)].reset_index(drop=True)
    if want_rth.empty:
        assert ev_rth.empty
    else:
        pd.testing.assert_frame_equal(ev_rth.reset_index(drop=True), want_rth)


@pytest.mark.parametrize("d", ["synth", "real"])
@pytest.mark.parametrize("session", SESSIONS)
def test_big_trade_events_equal_recomputation(d: str, session: str, request: pytest.FixtureRequest) -> None:
    data: Derived = request.getfixturevalue(d)
    floor = data.params.big_trade_floor
    ev = derived(data, "big_trade_events", session)
    t = trades(data, session)
    agg = oracle.aggressor_events(t)
    # sweeps: every multi-record aggressor event reaching the floor; size = sum of its fills
    want_sw = agg[(agg["n_fills"] > 1) & (agg["size"] >= floor)].reset_index(drop=True)
    got_sw = ev[ev["kind"] == "sweep"].reset_index(drop=True)
    cols = ["trade_date", "ts_event", "side", "size", "n_fills", "min_price", "max_price"]
    pd.testing.assert_frame_equal(got_sw[cols], want_sw[cols], check_dtype=False)
    np.testing.assert_allclose(got_sw["price"], want_sw["price"], rtol=1e-12)
    assert (got_sw["sweep_fill"] == False).all()  # noqa: E712
    # prints: every canonical record >= floor, flagged when it is one fill of a multi-record event
    n_of = agg.set_index(["trade_date", "ts_event", "side"])["n_fills"]
    recs = t[t["size"] >= floor].sort_values(["trade_date", "ts_event", "side", "pos"], kind="stable")
    got_pr = ev[ev["kind"] == "print"].sort_values(["trade_date", "ts_event", "side"], kind="stable")
    assert len(got_pr) == len(recs)
    assert got_pr["size"].tolist() == recs["size"].tolist()
    assert got_pr["price"].tolist() == recs["price"].tolist()
    fills = n_of.loc[list(zip(recs["trade_date"], recs["ts_event"], recs["side"], strict=True))].to_numpy()
    assert got_pr["sweep_fill"].tolist() == (fills > 1).tolist()
    assert (got_pr["n_fills"] == 1).all()
    assert (got_pr["min_price"] == got_pr["price"]).all() and (got_pr["max_price"] == got_pr["price"]).all()
    # the symbol is the series' contract of the day
    if len(ev):
        assert (ev["symbol"] == ev["trade_date"].map(front(data))).all()
    if d == "synth":
        assert len(got_sw) > 20 and got_pr["sweep_fill"].sum() > 0
    if d == "real" and session == "FULL":  # hand-worked: the 5 and 21 lot sells at 07:00 CT, floor 5
        assert got_pr["size"].tolist() == [5, 21] and (got_pr["side"] == -1).all() and got_sw.empty


def test_session_stats_counts_and_dst_correct_windows(synth: Derived) -> None:
    for session in SESSIONS:
        st = derived(synth, "session_stats", session).set_index("trade_date")
        t = trades(synth, session)
        days = st.index
        assert (
            st["n_trades"].to_dict() == t.groupby("trade_date").size().reindex(days, fill_value=0).to_dict()
        )
        vol = t.groupby("trade_date")["size"].sum().reindex(days, fill_value=0)
        assert st["volume"].to_dict() == vol.to_dict()
        n_events = oracle.aggressor_events(t).groupby("trade_date").size().reindex(days, fill_value=0)
        assert st["n_events"].to_dict() == n_events.to_dict()
        traded = st[st["n_trades"] > 0]
        first = t.groupby("trade_date")["ts_event"].min()
        assert traded["first_trade_ts"].astype("int64").to_dict() == first.to_dict()
        assert st.loc[st["n_trades"] == 0, "first_trade_ts"].isna().all()  # NULL, not NaN or 0
    # 2018-12-05 (G.H.W. Bush day of mourning): equity futures closed at 08:30 CT, so there was no RTH
    no_rth = derived(synth, "session_stats", "RTH").set_index("trade_date").loc[dt.date(2018, 12, 5)]
    assert no_rth["n_trades"] == 0 and len(no_rth["segment_open"]) == 0
    assert synth.report.trades == len(trades(synth, "FULL"))
    assert synth.report.source_rows == len(oracle.canonical(synth.env.paths.canonical_dir / "trades_es"))
    rth = derived(synth, "session_stats", "RTH").set_index("trade_date")
    full = derived(synth, "session_stats", "FULL").set_index("trade_date")
    ns = lambda s: int(pd.Timestamp(s).value)  # noqa: E731
    # DST: Fri 2018-11-02 is CDT (RTH 13:30 UTC), Mon 2018-11-05 is CST (RTH 14:30 UTC); by hand, not zoneinfo
    assert ns(rth.loc[dt.date(2018, 11, 2), "open_ts"]) == ns("2018-11-02 13:30Z")
    assert ns(rth.loc[dt.date(2018, 11, 5), "open_ts"]) == ns("2018-11-05 14:30Z")
    assert ns(full.loc[dt.date(2018, 11, 2), "open_ts"]) == ns("2018-11-01 22:00Z")  # Thu 17:00 CDT
    assert ns(full.loc[dt.date(2018, 11, 5), "open_ts"]) == ns("2018-11-04 23:00Z")  # Sun 17:00 CST
    # Thanksgiving: Fri 11-23 owns Wed 17:00 -> Thu 12:00 and Thu 17:00 -> Fri 12:15 CT (early close)
    fri = full.loc[dt.date(2018, 11, 23)]
    assert [ns(x) for x in fri["segment_open"]] == [
        ct_ns(dt.date(2018, 11, 21), 17, 0),
        ns("2018-11-22 23:00Z"),
    ]
    assert [ns(x) for x in fri["segment_close"]] == [ns("2018-11-22 18:00Z"), ns("2018-11-23 18:15Z")]
    assert bool(fri["early_close"]) and not bool(full.loc[dt.date(2018, 11, 21), "early_close"])
    assert ns(rth.loc[dt.date(2018, 11, 23), "close_ts"]) == ns("2018-11-23 18:15Z")
    assert dt.date(2018, 11, 22) not in full.index


def test_front_series_follows_the_roll_and_contract_series_is_separate(synth: Derived) -> None:
    bars = derived(synth, "bars_1m", "FULL")
    by_day = bars.groupby("trade_date")["symbol"].unique()
    assert all(len(v) == 1 for v in by_day)
    symbols = {d: v[0] for d, v in by_day.items()}
    assert symbols == {d: s for d, s in front(synth).items() if d in symbols}
    assert {"ESZ8", "ESH9"} <= set(symbols.values())
    # the per-contract series lives in its own subtree and follows ESH9 on every date it traded
    _check_bars(synth, "FULL", series="ESH9")
    _check_bars(synth, "RTH", series="ESH9")
    esh9 = derived(synth, "bars_1m", "FULL", series="ESH9")
    assert set(esh9["symbol"]) == {"ESH9"}
    assert esh9["trade_date"].min() < min(d for d, s in symbols.items() if s == "ESH9")
    man = synth.env.reg.query(
        "SELECT DISTINCT series FROM derived_manifests WHERE dataset_id = 'ES' ORDER BY series"
    )
    assert [r["series"] for r in man] == ["ESH9", "front"]


def test_schemas_types_and_no_nan(synth: Derived) -> None:
    for table, schema in SCHEMAS.items():
        for session in SESSIONS:
            fs = files(synth, table, session)
            assert len(fs) == n_dates(synth)
            for f in fs:
                t = pq.read_table(f)
                assert t.schema.equals(schema), (table, t.schema)
                for c in t.column_names:
                    if pa.types.is_floating(t.schema.field(c).type):  # NULL where meant, never NaN
                        assert not pc.any(pc.is_nan(t.column(c))).as_py(), (f, c)
                day = f.parent.name.split("=")[1]
                assert set(t.column("trade_date").to_pylist()) <= {dt.date.fromisoformat(day)}
                assert set(t.column("session").to_pylist()) <= {session}


def n_dates(d: Derived) -> int:
    return len(d.env.reg.query("SELECT part_date FROM partitions WHERE dataset_id = 'ES'"))


def test_minutes_without_trades_have_no_row(synth: Derived) -> None:
    bars = derived(synth, "bars_1m", "FULL")
    assert (bars["n_trades"] >= 1).all() and (bars["volume"] >= 1).all()
    gaps = bars.groupby("trade_date")["ts"].apply(lambda s: (np.diff(np.sort(s)) > oracle.MIN).any())
    assert gaps.any()  # the daily 16:00-17:00 CT break at least: gaps are not filled with empty rows


def test_hand_worked_minutes(hand: Derived) -> None:
    """tests/derive/conftest.py HAND_TRADES, worked out by hand."""
    bars = derived(hand, "bars_1m", "RTH")
    assert bars["ts"].tolist() == [
        pd.Timestamp("2019-01-08 14:31Z").value,
        pd.Timestamp("2019-01-08 14:32Z").value,
    ]
    b = bars.iloc[0]
    assert (b["open"], b["high"], b["low"], b["close"]) == (2500.00, 2500.75, 2500.00, 2500.75)
    assert (b["volume"], b["buy_volume"], b["sell_volume"], b["n_trades"]) == (71, 39, 25, 8)
    assert b["vwap"] == pytest.approx((2500 * 17 + 2500.25 * 33 + 2500.5 * 17 + 2500.75 * 4) / 71, abs=1e-9)
    assert bars.iloc[1][["volume", "buy_volume", "sell_volume"]].tolist() == [25, 15, 10]
    assert derived(hand, "cvd_1m", "RTH")[["delta", "cvd"]].values.tolist() == [[14, 14], [5, 19]]
    fp = derived(hand, "footprint_base_1m", "RTH")
    first = fp[fp["ts"] == bars["ts"].iloc[0]]
    assert first[["price", "bid_volume", "ask_volume", "other_volume"]].values.tolist() == [
        [2500.00, 10, 0, 7],
        [2500.25, 3, 30, 0],
        [2500.50, 12, 5, 0],
        [2500.75, 0, 4, 0],
    ]
    ev = derived(hand, "big_trade_events", "RTH")
    sweep = ev[ev["kind"] == "sweep"].iloc[0]
    assert (sweep["size"], sweep["n_fills"], sweep["side"]) == (25, 2, 1)
    assert (sweep["min_price"], sweep["max_price"]) == (2500.25, 2500.50)
    assert sweep["price"] == pytest.approx((20 * 2500.25 + 5 * 2500.5) / 25)
    prints = ev[ev["kind"] == "print"]
    assert prints["size"].tolist() == [10, 20, 10, 12, 10, 10]  # floor 10: the 7-lot N print is not stored
    assert prints["sweep_fill"].tolist() == [False, True, False, False, False, False]
    st = derived(hand, "session_stats", "RTH").iloc[0]
    assert (st["n_trades"], st["n_events"], st["volume"]) == (11, 10, 96)
