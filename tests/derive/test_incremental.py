"""Incremental derive: only changed trade dates are rebuilt; a repeat is a no-op; manifests are complete."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runtime.contracts import UserError
from runtime.demo_data.dbn_synth import write_synthetic_trades
from runtime.derive import DeriveParams, build_derived, describe_report
from runtime.derive.build import derive_tables, plan_sources
from runtime.derive.layout import TABLES
from tests.derive.conftest import Env, ingest, make_env


def _mtimes(env: Env) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in env.paths.derived_dir.rglob("part-0.parquet")}


def _day(p: Path) -> dt.date:
    return dt.date.fromisoformat(p.parent.name.split("=")[1])


@pytest.fixture
def roll_week(tmp_path: Path) -> tuple[Env, list[Path]]:
    """Mon 2018-12-10 .. Fri 12-14: ESZ8 -> ESH9 roll; one DBN file per UTC date (a trade date spans two)."""
    files = write_synthetic_trades(tmp_path / "dbn", dt.date(2018, 12, 10), 5, 1_500, seed=3)
    return make_env(tmp_path / "proj"), files


def test_only_changed_dates_rebuild_and_a_repeat_is_a_noop(roll_week: tuple[Env, list[Path]]) -> None:
    env, dbn = roll_week
    env = ingest(env, dbn[:3])  # UTC days 12-09..12-11: trade dates 10, 11 and the evening of 12
    r1 = build_derived(env.ds, env.paths, env.reg)
    days = [dt.date(2018, 12, d) for d in (10, 11, 12)]
    assert list(r1.built) == days and r1.up_to_date == ()
    assert "built 3 trade dates" in describe_report(r1)
    manifests = env.reg.query("SELECT * FROM derived_manifests ORDER BY table_name, session, trade_date")
    assert len(manifests) == len(TABLES) * 2 * 3
    parts = {r["part_date"]: r for r in env.reg.query("SELECT * FROM partitions")}
    for m in manifests:
        assert m["series"] == "front" and m["params_hash"] == r1.params_hash and m["build_id"] == r1.build_id
        assert m["source_version"].split("@")[0] == parts[m["trade_date"]]["version"]
        assert (env.paths.derived_dir / m["path"]).is_file()
        assert m["rows"] >= 0 and m["seconds"] > 0
    before = _mtimes(env)

    r2 = build_derived(env.ds, env.paths, env.reg)
    assert r2.built == () and list(r2.up_to_date) == days
    assert "up to date" in describe_report(r2)
    assert _mtimes(env) == before
    assert (
        env.reg.query("SELECT * FROM derived_manifests ORDER BY table_name, session, trade_date") == manifests
    )

    env = ingest(env, dbn[3:])  # adds the rest of trade date 12 and the new dates 13, 14
    r3 = build_derived(env.ds, env.paths, env.reg)
    assert list(r3.built) == [dt.date(2018, 12, d) for d in (12, 13, 14)]
    assert list(r3.up_to_date) == days[:2]
    after = _mtimes(env)
    for p, m in before.items():
        assert (after[p] == m) == (_day(p) < dt.date(2018, 12, 12)), p
    assert not [p for p in env.paths.staging_dir.rglob("*") if p.is_file()]  # no temp leftovers


def test_params_contract_and_rebuild_trigger_rebuilds(roll_week: tuple[Env, list[Path]]) -> None:
    env, dbn = roll_week
    env = ingest(env, dbn)
    all_days = [dt.date(2018, 12, d) for d in range(10, 15)]
    assert list(build_derived(env.ds, env.paths, env.reg).built) == all_days

    # a params change rebuilds every date
    r = build_derived(env.ds, env.paths, env.reg, params=DeriveParams(big_trade_floor=25))
    assert list(r.built) == all_days
    assert build_derived(env.ds, env.paths, env.reg, params=DeriveParams(big_trade_floor=25)).built == ()

    # a different front contract for one date (the roll schedule was recomputed) rebuilds that date only
    row = env.reg.query("SELECT symbol FROM roll_schedule WHERE trade_date = DATE '2018-12-13'")[0]
    other = "ESH9" if row["symbol"] == "ESZ8" else "ESZ8"
    with env.reg.transaction() as con:
        con.execute("UPDATE roll_schedule SET symbol = ? WHERE trade_date = DATE '2018-12-13'", [other])
    r = build_derived(env.ds, env.paths, env.reg, params=DeriveParams(big_trade_floor=25))
    assert list(r.built) == [dt.date(2018, 12, 13)]
    sym = env.reg.query(
        "SELECT DISTINCT source_version FROM derived_manifests WHERE trade_date = DATE '2018-12-13'"
    )
    assert [s["source_version"].split("@")[1] for s in sym] == [other]

    # rebuild=True forces; a session subset writes only that session; start/end limit the dates
    before = _mtimes(env)
    r = build_derived(
        env.ds,
        env.paths,
        env.reg,
        sessions=("RTH",),
        rebuild=True,
        start=dt.date(2018, 12, 11),
        end=dt.date(2018, 12, 12),
        params=DeriveParams(big_trade_floor=25),
    )
    assert r.sessions == ("RTH",) and list(r.built) == [dt.date(2018, 12, 11), dt.date(2018, 12, 12)]
    changed = {p for p, m in _mtimes(env).items() if before[p] != m}
    assert changed and all("session=RTH" in p.as_posix() for p in changed)
    assert {_day(p) for p in changed} == {dt.date(2018, 12, 11), dt.date(2018, 12, 12)}


def test_batches_give_the_same_tables_as_one_pass(roll_week: tuple[Env, list[Path]]) -> None:
    env, dbn = roll_week
    env = ingest(env, dbn)
    sources = plan_sources(env.ds, env.paths, env.reg)
    params = DeriveParams(big_trade_floor=3)
    whole = derive_tables(sources, ("RTH", "FULL"), params)
    parts = [derive_tables([s], ("RTH", "FULL"), params) for s in sources]
    for key, table in whole.items():
        import pyarrow as pa

        assert pa.concat_tables([p[key] for p in parts]).equals(table), key


def test_user_errors(roll_week: tuple[Env, list[Path]]) -> None:
    env, dbn = roll_week
    env = ingest(env, dbn)
    with pytest.raises(UserError, match="ESZ0 has no trades"):
        build_derived(env.ds, env.paths, env.reg, series="ESZ0")
    with pytest.raises(UserError, match="neither 'front'"):
        build_derived(env.ds, env.paths, env.reg, series="../x")
    with pytest.raises(UserError, match="use RTH or FULL"):
        build_derived(env.ds, env.paths, env.reg, sessions=("ETH",))
    with pytest.raises(UserError, match="at least one session"):
        build_derived(env.ds, env.paths, env.reg, sessions=())
    # no roll schedule on a date where two contracts traded: the message names the workbook cell to fix
    with env.reg.transaction() as con:
        con.execute("DELETE FROM roll_schedule WHERE trade_date = DATE '2018-12-13'")
    with pytest.raises(UserError, match=r"DATASETS!O\d+ roll_rule"):
        build_derived(env.ds, env.paths, env.reg)
