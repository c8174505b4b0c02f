"""Real DATA_ROOTs for the evaluation tests: template workbook -> export -> real ingest -> derive.

`workspace` (session-scoped): synthetic ES trades for the 7 CME trade dates 2018-11-19..2018-11-28
(Thanksgiving 11-22 is no trade date, 11-23 closes early at 12:15 CT; before 2021 every FULL session has
the 15:15-15:30 CT halt), thin enough (1,500 trades a day) that many minutes have no trade, plus the real
monthly CREDIT series of the demo data (Moody's yields stamped on each month's last business day).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.contracts import ConfigSnapshot, ResolvedPaths
from runtime.demo_data.daily import write_daily_samples
from runtime.demo_data.dbn_synth import write_synthetic_trades
from runtime.derive import build_derived
from runtime.ingest.daily import ingest_daily
from runtime.storage.registry import Registry
from tests.derive.conftest import ingest, make_env

ES_START = dt.date(2018, 11, 19)
ES_DAYS = 7
ES_TRADES = 1_500
ES_SEED = 5


@dataclass(frozen=True)
class Workspace:
    root: Path
    snapshot: ConfigSnapshot
    paths: ResolvedPaths
    reg: Registry


_BUILT: dict[Path, Workspace] = {}


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.getbasetemp()
    if base not in _BUILT:
        root = tmp_path_factory.mktemp("evaluation")
        env = make_env(root / "proj")
        env = ingest(env, write_synthetic_trades(root / "dbn", ES_START, ES_DAYS, ES_TRADES, ES_SEED))
        build_derived(env.ds, env.paths, env.reg)
        write_daily_samples(
            env.paths.data_root / "incoming" / "daily", start="2018-01-01"
        )  # CREDIT: from 1990
        ingest_daily(env.snapshot.dataset("CREDIT"), env.paths, env.reg)
        _BUILT[base] = Workspace(env.root, env.snapshot, env.paths, env.reg)
    return _BUILT[base]
