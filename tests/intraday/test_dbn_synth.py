"""Synthetic DBN trade files: read back with the real databento client and checked independently."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import databento as db
import numpy as np
import pandas as pd
import pytest
import zstandard
from databento.common.error import BentoWarning

from runtime.demo_data.dbn_synth import (
    SPREAD_TICK,
    TICK,
    encode_dbn,
    new_records,
    write_dbn,
    write_synthetic_trades,
)
from runtime.ingest.roll import roll_by_volume
from runtime.ingest.sessions import assign_sessions, cme_equity_sessions

START = dt.date(2024, 10, 28)  # spans the 11-03 DST switch, Thanksgiving, the Dec roll and Christmas Eve
N_DAYS = 45  # 2024-10-28 .. 2024-12-31
PER_DAY = 4000
NAME_RE = re.compile(r"glbx-mdp3-(\d{8})\.trades\.dbn\.zst")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    return write_synthetic_trades(tmp_path_factory.mktemp("synth"), START, N_DAYS, PER_DAY, seed=7)


@pytest.fixture(scope="module")
def stores(generated):
    return [db.DBNStore.from_file(p) for p in generated]


@pytest.fixture(scope="module")
def trades(stores) -> pd.DataFrame:
    """All records, with the symbol decoded through each file's own metadata mappings (not our id function)."""
    frames = []
    for store in stores:
        recs = store.to_ndarray()
        id_to_symbol = {}
        for mapping in store.metadata.mappings:
            # DBNStore exposes mappings as {raw_symbol: [{start_date, end_date, symbol}]}
            for interval in store.metadata.mappings[mapping]:
                id_to_symbol[int(interval["symbol"])] = mapping
        frames.append(
            pd.DataFrame(
                {
                    "ts_event": recs["ts_event"].astype(np.int64),
                    "ts_recv": recs["ts_recv"].astype(np.int64),
                    "instrument_id": recs["instrument_id"],
                    "symbol": [id_to_symbol[int(i)] for i in recs["instrument_id"]],
                    "price": recs["price"],
                    "size": recs["size"].astype(np.int64),
                    "side": recs["side"].astype(str),
                    "flags": recs["flags"],
                    "sequence": recs["sequence"].astype(np.int64),
                    "file": store.metadata.start,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    local = pd.to_datetime(df["ts_event"], utc=True).dt.tz_convert("America/Chicago")
    df["local"] = local
    df["minute"] = local.dt.hour * 60 + local.dt.minute
    sessions = cme_equity_sessions(START - dt.timedelta(days=7), START + dt.timedelta(days=80))
    a = assign_sessions(df["ts_event"].to_numpy(), sessions)
    df["trade_date"] = a.trade_date.astype("datetime64[D]").astype(object)
    df["in_session"], df["in_rth"] = a.in_session, a.in_rth
    return df


# --------------------------------------------------------------------------------------------------
# format and files
# --------------------------------------------------------------------------------------------------


def test_one_file_per_utc_date_with_matching_metadata(generated, stores):
    days = [dt.datetime.strptime(NAME_RE.fullmatch(p.name).group(1), "%Y%m%d").date() for p in generated]
    assert days == sorted(set(days))
    assert dt.date(2024, 11, 2) not in days  # Saturdays have no Globex trading
    for day, store in zip(days, stores, strict=True):
        meta = store.metadata
        assert (meta.dataset, meta.schema, meta.stype_in, meta.stype_out) == (
            "GLBX.MDP3",
            "trades",
            "raw_symbol",
            "instrument_id",
        )
        assert meta.version == 3
        midnight = int(pd.Timestamp(day, tz="UTC").value)
        assert (meta.start, meta.end) == (midnight, midnight + 86_400 * 10**9)
        recs = store.to_ndarray()
        assert recs["rtype"].tolist() == [0] * recs.size and set(recs["length"]) == {12}
        assert recs["ts_recv"].min() >= midnight and recs["ts_recv"].max() < midnight + 86_400 * 10**9
        for symbol, intervals in meta.mappings.items():
            assert symbol in meta.symbols
            assert [(i["start_date"], i["end_date"]) for i in intervals] == [
                (day, day + dt.timedelta(days=1))
            ]


def test_trade_dates_cover_the_requested_window(trades):
    dates = sorted(set(trades["trade_date"]))
    expected = [s.trade_date for s in cme_equity_sessions(START, dt.date(2024, 12, 31))]
    assert dates == expected and len(dates) == N_DAYS


def test_symbols_decode_through_metadata_with_the_real_client(generated):
    small = next(p for p in generated if p.name == "glbx-mdp3-20241211.trades.dbn.zst")
    df = db.DBNStore.from_file(small).to_df(map_symbols=True)
    assert df["symbol"].notna().all()
    assert set(df["symbol"]) == {"ESZ4", "ESH5", "ESZ4-ESH5"}
    assert df.groupby("instrument_id")["symbol"].nunique().eq(1).all()
    spread = df[df["symbol"] == "ESZ4-ESH5"]
    assert spread["price"].between(10, 100).all()  # back minus front, in index points
    assert df.loc[df["symbol"] != "ESZ4-ESH5", "price"].gt(1000).all()


# --------------------------------------------------------------------------------------------------
# sessions: no trade outside a segment
# --------------------------------------------------------------------------------------------------


def test_every_trade_is_inside_a_session_segment(trades):
    assert trades["in_session"].all()


def test_sessions_independent_wall_clock_check(trades):
    """Hand-written Q4-2024 ES rules on Chicago wall-clock time, without the sessions module."""
    sample = trades.sample(n=20_000, random_state=1)
    local = sample["local"]
    t = local.dt.hour * 60 + local.dt.minute
    wd, day = local.dt.day_of_week, local.dt.date
    ok = ~((t >= 16 * 60) & (t < 17 * 60))  # daily maintenance break
    ok &= wd != 5  # Saturday
    ok &= ~((wd == 6) & (t < 17 * 60))  # Sunday before the open
    ok &= ~((wd == 4) & (t >= 16 * 60))  # Friday after the close
    thanksgiving, black_friday = dt.date(2024, 11, 28), dt.date(2024, 11, 29)
    ok &= ~((day == thanksgiving) & (t >= 12 * 60) & (t < 17 * 60))
    ok &= ~((day == black_friday) & (t >= 12 * 60 + 15))
    ok &= ~((day == dt.date(2024, 12, 24)) & (t >= 12 * 60 + 15))
    ok &= ~((day == dt.date(2024, 12, 25)) & (t < 17 * 60))
    assert ok.all()
    # and the holiday session itself is populated: Thanksgiving morning trades belong to Friday 11-29
    morning = trades[(trades["local"].dt.date == thanksgiving) & (trades["minute"] < 12 * 60)]
    assert len(morning) > 0 and set(morning["trade_date"]) == {black_friday}


def test_dst_switch_moves_the_rth_open_in_utc(trades):
    """The 08:30 CT burst sits at 13:30 UTC before the 11-03 switch (CDT) and at 14:30 UTC after it (CST)."""
    utc = pd.to_datetime(trades["ts_event"], utc=True)
    utc_minute = (utc.dt.hour * 60 + utc.dt.minute).to_numpy()

    def before_after(day: dt.date, open_utc: int) -> float:
        m = utc_minute[(trades["trade_date"] == day).to_numpy()]
        before = ((m >= open_utc - 30) & (m < open_utc)).sum()
        after = ((m >= open_utc) & (m < open_utc + 30)).sum()
        return before / after

    cdt_open, cst_open = 13 * 60 + 30, 14 * 60 + 30
    for day in (dt.date(2024, 10, 30), dt.date(2024, 11, 1)):
        assert before_after(day, cdt_open) < 0.3 < before_after(day, cst_open)
    for day in (dt.date(2024, 11, 4), dt.date(2024, 11, 6)):
        assert before_after(day, cst_open) < 0.3 < before_after(day, cdt_open)


# --------------------------------------------------------------------------------------------------
# prices, sweeps, sides, sizes, sequencing
# --------------------------------------------------------------------------------------------------


def test_prices_on_the_tick_grid(trades):
    spread = trades["symbol"].str.contains("-")
    assert (trades.loc[~spread, "price"] % TICK == 0).all()
    assert (trades.loc[spread, "price"] % SPREAD_TICK == 0).all()
    assert spread.any()


def test_sweeps_share_ts_event_and_side_with_consecutive_prices(trades):
    events = trades.groupby(["instrument_id", "ts_event"], sort=False)
    assert events["side"].nunique().eq(1).all()
    assert events["sequence"].nunique().eq(1).all()  # one venue message per match event
    flags_last = trades["flags"] & 128 == 128
    assert flags_last.sum() == events.ngroups  # F_LAST exactly once per event...
    is_last = trades.groupby(["instrument_id", "ts_event"]).cumcount(ascending=False) == 0
    assert (flags_last == is_last).all()  # ...on its last record
    levels = events["price"].transform("size")
    assert (events.size() > 1).sum() > 0.02 * events.ngroups
    step = events["price"].diff()  # within each event, record order as delivered
    inner = step.notna()
    assert (levels[inner] > 1).all()
    side = trades.loc[inner, "side"]
    assert set(side) <= {"A", "B"}
    assert (step[inner & (trades["side"] == "B")] == TICK).all()
    assert (step[inner & (trades["side"] == "A")] == -TICK).all()


def test_sides_sizes_and_the_reopen_auction(trades):
    share = trades["side"].value_counts(normalize=True)
    assert 0.4 < share["A"] < 0.6 and 0.4 < share["B"] < 0.6 and 0 < share["N"] < 0.02
    reopen = trades[(trades["minute"] == 17 * 60) & (trades["local"].dt.second == 0)]
    first = reopen.sort_values("ts_event").groupby(reopen["local"].dt.date).head(1)
    assert len(first) > 30 and (first["side"] == "N").all()
    size = trades["size"]
    assert (size <= 5).mean() > 0.75
    assert (size >= 50).sum() > 0 and size.max() <= 500 and size.min() >= 1


def test_timestamps_and_sequence_are_ordered(stores):
    last_seq = 0
    for store in stores:
        recs = store.to_ndarray()
        assert (recs["ts_recv"] >= recs["ts_event"]).all()
        assert (np.diff(recs["ts_recv"].astype(np.int64)) >= 0).all()
        seq = recs["sequence"].astype(np.int64)
        assert (np.diff(seq) >= 0).all() and seq[0] > last_seq
        last_seq = int(seq[-1])


# --------------------------------------------------------------------------------------------------
# market structure: intraday shape, the roll, spreads
# --------------------------------------------------------------------------------------------------


def test_intraday_u_shape_and_thin_overnight(trades):
    normal = trades[
        trades["trade_date"].map(lambda d: d not in (dt.date(2024, 11, 29), dt.date(2024, 12, 24)))
    ]
    per_min = normal.groupby("minute").size().reindex(range(1440), fill_value=0)
    first30 = per_min.loc[510:539].mean()  # 08:30-09:00 CT
    last30 = per_min.loc[870:899].mean()  # 14:30-15:00 CT
    midday = per_min.loc[660:779].mean()  # 11:00-13:00 CT
    overnight = pd.concat([per_min.loc[1080:1439], per_min.loc[0:419]]).mean()  # 18:00-07:00 CT
    assert first30 > 1.5 * midday and last30 > 1.3 * midday
    assert overnight < 0.4 * midday
    assert per_min.loc[510] == per_min.loc[480:600].max()  # the 08:30 spike
    assert per_min.loc[900:959].sum() < per_min.loc[840:899].sum()  # after the cash close it thins out


def test_roll_moves_volume_to_the_back_month(trades):
    outright = trades[~trades["symbol"].str.contains("-")]
    vol = outright.pivot_table(
        index="trade_date", columns="symbol", values="size", aggfunc="sum", fill_value=0
    )
    back_share = vol["ESH5"] / (vol["ESH5"] + vol["ESZ4"])
    roll = dt.date(2024, 12, 12)  # CME roll Thursday, 8 days before the 12-20 expiry
    window = back_share[
        (back_share.index >= dt.date(2024, 12, 2)) & (back_share.index <= dt.date(2024, 12, 20))
    ]
    before, after = window[window.index < roll], window[window.index >= roll]
    assert before.mean() < 0.2 and before.max() < 0.5
    assert after.mean() > 0.8 and after.min() > 0.5
    assert (
        vol.loc[vol.index < dt.date(2024, 11, 25), "ESH5"].sum() == 0
    )  # only one contract far from the roll
    # ESZ4 stops at its 08:30 CT final settlement on 12-20
    z = trades[trades["symbol"] == "ESZ4"]
    assert z["ts_event"].max() < pd.Timestamp("2024-12-20 08:30", tz="America/Chicago").value
    # the volume rule applied to this data rolls on the Friday after the Thursday overtake, or earlier
    daily = outright.groupby(["trade_date", "symbol"], as_index=False)["size"].sum()
    daily = daily.rename(columns={"size": "volume"})
    fronts = roll_by_volume(daily, sorted(set(daily["trade_date"])))
    switch = fronts.loc[fronts["symbol"] == "ESH5", "trade_date"].min()
    assert dt.date(2024, 12, 11) <= switch <= dt.date(2024, 12, 13)


def test_prices_are_continuous_through_the_expiry(trades):
    h = trades[trades["symbol"] == "ESH5"].sort_values("ts_event")
    last_as_back = h.loc[h["trade_date"] == dt.date(2024, 12, 20), "price"].iloc[-1]
    first_as_front = h.loc[h["trade_date"] == dt.date(2024, 12, 23), "price"].iloc[0]
    assert abs(first_as_front - last_as_back) <= 20 * TICK
    # while both trade, the back month sits about one quarter's carry (~50 points) above the front
    both = trades[trades["trade_date"] == dt.date(2024, 12, 12)]
    gap = (
        both.loc[both["symbol"] == "ESH5", "price"].median()
        - both.loc[both["symbol"] == "ESZ4", "price"].median()
    )
    assert 40 * 10**9 < gap < 65 * 10**9


def test_calendar_spreads_present_and_small(trades):
    spread = trades[trades["symbol"] == "ESZ4-ESH5"]
    assert 0 < len(spread) < 0.05 * len(trades)
    prices = spread["price"] / 1e9
    assert prices.between(40, 70).all()
    assert set(spread["trade_date"]) <= {d for d in set(trades["trade_date"]) if d <= dt.date(2024, 12, 20)}


def test_daily_volatility_is_realistic(trades):
    front = trades[trades["symbol"].isin(["ESZ4", "ESH5"])].sort_values("ts_event")
    front = front[front["symbol"] == np.where(front["trade_date"] < dt.date(2024, 12, 12), "ESZ4", "ESH5")]
    closes = front.groupby("trade_date")["price"].last() / 1e9
    vol = np.log(closes).diff().dropna().std()
    assert 0.004 < vol < 0.025


# --------------------------------------------------------------------------------------------------
# determinism and scaling
# --------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path):
    a = write_synthetic_trades(tmp_path / "a", dt.date(2024, 12, 11), 3, 2000, seed=3)
    b = write_synthetic_trades(tmp_path / "b", dt.date(2024, 12, 11), 3, 2000, seed=3)
    c = write_synthetic_trades(tmp_path / "c", dt.date(2024, 12, 11), 3, 2000, seed=4)
    assert [p.name for p in a] == [p.name for p in b] == [p.name for p in c]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_trades_per_day_scales(tmp_path):
    paths = write_synthetic_trades(tmp_path, dt.date(2024, 12, 2), 2, 300_000, seed=1)
    n = sum(db.DBNStore.from_file(p).to_ndarray().size for p in paths)
    assert 450_000 < n < 800_000


# --------------------------------------------------------------------------------------------------
# the hand-crafted fixture helpers
# --------------------------------------------------------------------------------------------------

T0 = int(pd.Timestamp("2024-11-28 22:00", tz="UTC").value)


def test_write_dbn_trades_roundtrip(tmp_path):
    recs = new_records("trades", 3)
    recs["instrument_id"] = 42
    recs["ts_event"] = T0 + np.arange(3)
    recs["ts_recv"] = recs["ts_event"] + 250_000
    recs["price"] = np.array([24001, 24002, 24003]) * TICK  # 6000.25, 6000.50, 6000.75
    recs["size"] = [1, 2, 3]
    recs["side"] = [b"B", b"B", b"A"]
    path = write_dbn(tmp_path / "x.trades.dbn.zst", recs, symbols={"ESZ4": 42})
    df = db.DBNStore.from_file(path).to_df()
    assert df["price"].tolist() == [6000.25, 6000.5, 6000.75]
    assert df["side"].tolist() == ["B", "B", "A"] and set(df["symbol"]) == {"ESZ4"}
    plain = write_dbn(tmp_path / "x.trades.dbn", recs, symbols={"ESZ4": 42})
    assert zstandard.ZstdDecompressor().decompress(path.read_bytes()) == plain.read_bytes()


def test_write_dbn_tbbo_and_ohlcv(tmp_path):
    q = new_records("tbbo", 2)
    q["instrument_id"], q["ts_event"], q["ts_recv"] = 7, T0 + np.arange(2), T0 + 1000 + np.arange(2)
    q["price"], q["size"], q["side"] = 24000 * TICK, 1, b"B"
    q["bid_px_00"], q["ask_px_00"], q["bid_sz_00"], q["ask_sz_00"] = 23999 * TICK, 24000 * TICK, 8, 5
    store = db.DBNStore.from_file(
        write_dbn(tmp_path / "q.tbbo.dbn.zst", q, schema="tbbo", symbols={"ESZ4": 7})
    )
    assert store.schema == "tbbo" and int(store.to_ndarray()["rtype"][0]) == 1
    df = store.to_df()
    assert df["bid_px_00"].tolist() == [5999.75] * 2 and df["ask_px_00"].tolist() == [6000.0] * 2
    bars = new_records("ohlcv-1m", 2)
    bars["instrument_id"], bars["ts_event"] = 7, [T0, T0 + 60 * 10**9]
    bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"] = (
        24000 * TICK,
        24004 * TICK,
        23998 * TICK,
        24001 * TICK,
        10,
    )
    store = db.DBNStore.from_file(write_dbn(tmp_path / "b.dbn", bars, schema="ohlcv-1m", symbols={"ESZ4": 7}))
    assert store.schema == "ohlcv-1m"
    assert store.to_df()["high"].tolist() == [6001.0, 6001.0]
    with pytest.raises(ValueError, match="does not match schema"):
        encode_dbn(bars, schema="trades")


def test_truncated_file_warns_and_drops_the_partial_record():
    """Documents the client's behaviour: only a warning, so ingest must turn it into an error itself."""
    recs = new_records("trades", 5)
    recs["ts_event"] = recs["ts_recv"] = T0 + np.arange(5)
    recs["price"] = 24000 * TICK
    whole = encode_dbn(recs, symbols={"ESZ4": 1})
    assert db.DBNStore.from_bytes(whole).to_ndarray().size == 5
    with pytest.warns(BentoWarning, match="truncated"):
        assert db.DBNStore.from_bytes(whole[:-10]).to_ndarray().size == 4


# --------------------------------------------------------------------------------------------------
# calibration: the synthetic ES follows the real S&P 500 days shipped in arch and trades like ES
# (targets in the generator's docstring and design/DECISIONS.md section 7)
# --------------------------------------------------------------------------------------------------

DEMO_START = dt.date(2018, 11, 1)  # the demo's window (CLI defaults): real S&P days through 2018-12-20
DEMO_DAYS = 35
RTH_OPEN_MIN, RTH_CLOSE_MIN = 8 * 60 + 30, 15 * 60  # Chicago wall clock, written out independently


def _frame(paths: list[Path]) -> pd.DataFrame:
    """Outright trades read back with the databento client; symbols decoded from each file's mappings."""
    frames = []
    for p in paths:
        store = db.DBNStore.from_file(p)
        recs = store.to_ndarray()
        id_to_symbol = {int(i["symbol"]): s for s, ivs in store.metadata.mappings.items() for i in ivs}
        frames.append(
            pd.DataFrame(
                {
                    "ts_event": recs["ts_event"].astype(np.int64),
                    "instrument_id": recs["instrument_id"].astype(np.int64),
                    "symbol": [id_to_symbol[int(i)] for i in recs["instrument_id"]],
                    "price": recs["price"].astype(np.int64) / 1e9,
                    "size": recs["size"].astype(np.int64),
                    "side": recs["side"].astype(str),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df = df[~df["symbol"].str.contains("-")].copy()
    local = pd.to_datetime(df["ts_event"], utc=True).dt.tz_convert("America/Chicago")
    df["day"] = local.dt.date
    df["minute"] = local.dt.hour * 60 + local.dt.minute
    return df


def _real_spx() -> pd.DataFrame:
    import arch.data.sp500

    spx = arch.data.sp500.load()[["Open", "High", "Low", "Close"]]
    spx.index = spx.index.date
    return spx


def _rth_daily(df: pd.DataFrame, spx: pd.DataFrame) -> pd.DataFrame:
    """Per real S&P date: OHLC of the most traded outright in 08:30-15:00 CT, and its same-contract return."""
    rth = df[(df["minute"] >= RTH_OPEN_MIN) & (df["minute"] < RTH_CLOSE_MIN) & df["day"].isin(set(spx.index))]
    rth = rth.sort_values("ts_event")
    g = rth.groupby(["day", "symbol"])["price"]
    ohlc = pd.DataFrame({"open": g.first(), "high": g.max(), "low": g.min(), "close": g.last()})
    volume = rth.groupby(["day", "symbol"])["size"].sum()
    main = (
        volume.reset_index()
        .sort_values("size")
        .groupby("day")
        .tail(1)
        .set_index("day")["symbol"]
        .sort_index()
    )
    rows = []
    for i, (day, symbol) in enumerate(main.items()):
        prev = main.index[i - 1] if i else None
        prev_close = ohlc["close"].get((prev, symbol), np.nan) if prev else np.nan
        rows.append(
            {
                "day": day,
                "symbol": symbol,
                **ohlc.loc[(day, symbol)],
                "ret": ohlc.loc[(day, symbol), "close"] / prev_close - 1,
            }
        )
    return pd.DataFrame(rows).set_index("day")


@pytest.fixture(scope="module")
def demo_window(tmp_path_factory) -> pd.DataFrame:
    """The demo's 35 trade dates at a light 20k trades/day (the daily anchor does not depend on density)."""
    out = tmp_path_factory.mktemp("demo_window")
    return _frame(write_synthetic_trades(out, DEMO_START, DEMO_DAYS, 20_000, seed=7))


@pytest.fixture(scope="module")
def demo_density(tmp_path_factory) -> pd.DataFrame:
    """Three normal trade dates at the demo's 300k trades/day, for the 1-minute and size statistics."""
    out = tmp_path_factory.mktemp("demo_density")
    return _frame(write_synthetic_trades(out, dt.date(2018, 11, 26), 3, 300_000, seed=7, start_price=2650))


def test_daily_returns_follow_the_real_sp500(demo_window):
    spx = _real_spx()
    es = _rth_daily(demo_window, spx)
    real = spx.loc[DEMO_START - dt.timedelta(days=7) : dt.date(2018, 12, 31)]
    real_ret = real["Close"].pct_change()
    both = pd.DataFrame({"es": es["ret"], "spx": real_ret.reindex(es.index)}).dropna()
    assert len(both) >= 30  # 34 returns less Thanksgiving-week gaps, never a handful
    assert np.corrcoef(both["es"], both["spx"])[0, 1] > 0.9
    # levels: ES stays within 1 % of the index every day (basis + scale), no drift to 1957
    level_gap = (es["close"] / real["Close"].reindex(es.index) - 1).abs()
    assert level_gap.max() < 0.01
    # the demo window falls 2740 -> ~2467 like the real index, not -28 %
    assert es["close"].iloc[-1] / es["open"].iloc[0] == pytest.approx(
        real.loc[es.index[-1], "Close"] / real.loc[es.index[0], "Open"], abs=0.01
    )


def test_rth_high_low_near_the_real_day(demo_window):
    spx = _real_spx()
    es = _rth_daily(demo_window, spx)
    real = spx.reindex(es.index)
    ratio = (es["high"] - es["low"]) / (real["High"] - real["Low"])
    assert 0.85 < ratio.median() < 1.2 and ratio.between(0.5, 2.0).all()
    assert np.corrcoef(es["high"] - es["low"], real["High"] - real["Low"])[0, 1] > 0.9
    # the night before moves too, less than the cash session: 00:00-08:30 CT range vs the RTH range
    night = demo_window[(demo_window["minute"] < RTH_OPEN_MIN) & demo_window["day"].isin(set(es.index))]
    night_range = night.groupby("day")["price"].agg(lambda p: p.max() - p.min())
    assert 0.15 < (night_range / (es["high"] - es["low"])).median() < 0.8
    # opens and closes sit on the real ones (scaled): within 0.3 % of the index
    for col, ref in (("open", "Open"), ("close", "Close")):
        assert (es[col] / real[ref] - 1).abs().max() < 0.003, col


def test_default_start_price_is_the_real_level(demo_window):
    """No start_price: the first session starts at the real S&P level (ESZ8 ~ SPX), not at 6000."""
    first = demo_window.sort_values("ts_event")["price"].iloc[0]
    assert abs(first / 2711.74 - 1) < 0.01  # S&P 500 close 2018-10-31 (arch), the level at the 17:00 open


def test_roll_gap_is_a_few_points_in_2018(demo_window):
    both = demo_window[
        (demo_window["day"] == dt.date(2018, 12, 12)) & (demo_window["minute"] >= RTH_OPEN_MIN)
    ]
    gap = (
        both.loc[both["symbol"] == "ESH9", "price"].median()
        - both.loc[both["symbol"] == "ESZ8", "price"].median()
    )
    assert 2.0 < gap < 10.0  # 2018 carry (rates ~2.8 % minus dividends ~2 %) over one quarter


def test_one_minute_ranges_and_sizes_at_demo_density(demo_density):
    df = demo_density
    df = df.assign(bucket=df["ts_event"] // (60 * 10**9))
    rth = df[(df["minute"] >= RTH_OPEN_MIN) & (df["minute"] < RTH_CLOSE_MIN)]
    front = rth.groupby("symbol")["size"].sum().idxmax()
    bars = rth[rth["symbol"] == front].groupby("bucket")["price"].agg(["max", "min"])
    rng_1m = bars["max"] - bars["min"]
    assert len(bars) > 3 * 380
    assert 1.0 <= rng_1m.median() <= 3.0  # typical ES minute: 1-3 points
    overnight = df[(df["minute"] < 7 * 60) | (df["minute"] >= 18 * 60)]
    night = overnight[overnight["symbol"] == front].groupby("bucket")["price"].agg(["max", "min"])
    assert (night["max"] - night["min"]).median() < rng_1m.median()  # quieter overnight
    # sizes: mostly 1-2 lots, a heavy tail, occasional 50-300-lot sweeps
    one, two = (df["size"] == 1).mean(), (df["size"] == 2).mean()
    assert 0.45 <= one <= 0.65 and 0.10 <= two <= 0.25
    assert 0.001 < (df["size"] >= 20).mean() < 0.05 and df["size"].max() <= 500
    events = (
        df[df["side"] != "N"]
        .groupby(["instrument_id", "ts_event"])
        .agg(lots=("size", "sum"), levels=("price", "nunique"))
    )
    big_sweeps = events[(events["lots"] >= 50) & (events["lots"] <= 300) & (events["levels"] > 1)]
    assert len(big_sweeps) > 3 * 50  # dozens per day for the big-trade bubbles
    assert len(big_sweeps) < 0.01 * len(events)  # but occasional


def test_volume_u_shape_by_lots_at_demo_density(demo_density):
    per_min = demo_density.groupby("minute")["size"].sum().reindex(range(1440), fill_value=0) / 3
    first30 = per_min.loc[RTH_OPEN_MIN : RTH_OPEN_MIN + 29].mean()
    last30 = per_min.loc[RTH_CLOSE_MIN - 30 : RTH_CLOSE_MIN - 1].mean()
    midday = per_min.loc[11 * 60 : 13 * 60 - 1].mean()
    rth = per_min.loc[RTH_OPEN_MIN : RTH_CLOSE_MIN - 1].mean()
    overnight = pd.concat([per_min.loc[18 * 60 :], per_min.loc[: 7 * 60 - 1]]).mean()
    assert first30 > 1.5 * midday and last30 > 1.3 * midday
    assert overnight < 0.3 * rth


def test_after_the_real_data_ends_the_path_continues(tmp_path):
    """arch's S&P ends 2018-12-31: later days are synthetic, continuing from the last real close."""
    spx = _real_spx()
    df = _frame(write_synthetic_trades(tmp_path, dt.date(2018, 12, 26), 8, 5_000, seed=2))
    rth = df[(df["minute"] >= RTH_OPEN_MIN) & (df["minute"] < RTH_CLOSE_MIN)].sort_values("ts_event")
    closes = rth.groupby("day")["price"].last()
    assert dt.date(2019, 1, 7) in closes.index
    real_last = spx.loc[dt.date(2018, 12, 31), "Close"]
    assert abs(closes[dt.date(2018, 12, 31)] / real_last - 1) < 0.01
    assert closes.pct_change().dropna().abs().max() < 0.06  # no jump where the real data stops
    assert abs(closes.iloc[-1] / real_last - 1) < 0.15


def test_demo_window_keeps_the_2018_calendar(demo_window):
    """Hand-written 2018 CME rules on Chicago wall-clock time: the halt, Thanksgiving, the day of mourning."""
    df = demo_window
    t, day = df["minute"], df["day"]
    weekday = pd.to_datetime(df["day"]).dt.day_of_week
    assert not ((t >= 15 * 60 + 15) & (t < 15 * 60 + 30) & (weekday < 5)).any()  # pre-2021 daily halt
    assert not ((t >= 16 * 60) & (t < 17 * 60)).any()  # maintenance break
    thanksgiving, black_friday, mourning = dt.date(2018, 11, 22), dt.date(2018, 11, 23), dt.date(2018, 12, 5)
    assert not ((day == thanksgiving) & (t >= 12 * 60) & (t < 17 * 60)).any()
    assert not ((day == black_friday) & (t >= 12 * 60 + 15)).any()
    assert not ((day == mourning) & (t >= 8 * 60 + 30) & (t < 17 * 60)).any()  # closed at 08:30 CT
    assert ((day == mourning) & (t < 8 * 60 + 30)).sum() > 1000  # but its overnight session traded
    # ESZ8 stops at its 08:30 CT final settlement on 2018-12-21 and ESH9 carries on
    z = df[df["symbol"] == "ESZ8"]
    assert z["ts_event"].max() < pd.Timestamp("2018-12-21 08:30", tz="America/Chicago").value
