"""Real DATA_ROOTs for the derive and chart tests: template workbook -> export -> DBN -> real ingest -> derive.

Session-scoped and small. `synth` covers the DST switch (Sun 2018-11-04), Thanksgiving (the holiday session
belongs to Fri 2018-11-23, an early close) and the December roll (ESZ8 -> ESH9, both traded); `real` holds the
real Databento ESH1 samples (6 trades, none in RTH).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.config.export import export_workbook
from runtime.config.loader import load_snapshot, snapshot_paths
from runtime.config.template import write_template
from runtime.contracts import ConfigSnapshot, DatasetRow, ResolvedPaths
from runtime.demo_data.dbn_synth import write_synthetic_trades
from runtime.derive import DeriveParams, DeriveReport, build_derived
from runtime.ingest.databento import ingest_databento
from runtime.storage.paths import ensure_layout
from runtime.storage.registry import Registry
from tests.conftest import SAMPLES

SYNTH_START = dt.date(2018, 11, 1)
SYNTH_DAYS = 34  # 2018-11-01 .. 2018-12-18
SYNTH_TRADES = 4_000
SYNTH_SEED = 11
REAL_FILES = ("GLBX_test_data.trades.dbn.zst", "test_data.trades.v3.dbn.zst")


@dataclass(frozen=True)
class Env:
    """One project folder with an ingested ES dataset (and whatever has been derived in it)."""

    root: Path
    snapshot_path: Path
    snapshot: ConfigSnapshot
    paths: ResolvedPaths
    reg: Registry
    ds: DatasetRow
    dbn_files: tuple[Path, ...]


def make_env(root: Path) -> Env:
    """Template workbook -> snapshot -> DATA_ROOT layout + migrated registry (no data yet)."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    write_template(root / "config" / "run_config.xlsx", force=True)
    res = export_workbook(root / "config" / "run_config.xlsx")
    snap = load_snapshot(res.latest)
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    return Env(root, res.latest, snap, paths, reg, snap.dataset("ES"), ())


def ingest(env: Env, files: list[Path]) -> Env:
    ingest_databento(env.ds, env.paths, env.reg, files=files)
    return Env(
        env.root, env.snapshot_path, env.snapshot, env.paths, env.reg, env.ds, (*env.dbn_files, *files)
    )


@dataclass(frozen=True)
class Derived:
    env: Env
    report: DeriveReport
    params: DeriveParams


_BUILT: dict[tuple[str, Path], Derived] = {}


def _once(kind: str, factory: pytest.TempPathFactory, build) -> Derived:
    """Build each fixture once per test process, even when tests/charts imports the fixtures too."""
    key = (kind, factory.getbasetemp())
    if key not in _BUILT:
        _BUILT[key] = build(factory.mktemp(kind))
    return _BUILT[key]


def _build_synth(root: Path) -> Derived:
    files = write_synthetic_trades(root / "dbn", SYNTH_START, SYNTH_DAYS, SYNTH_TRADES, SYNTH_SEED)
    env = ingest(make_env(root / "proj"), files)
    params = DeriveParams()
    report = build_derived(env.ds, env.paths, env.reg, params=params)
    build_derived(env.ds, env.paths, env.reg, series="ESH9", params=params)
    return Derived(env, report, params)


def _build_real(root: Path) -> Derived:
    missing = [f for f in REAL_FILES if not (SAMPLES / f).is_file()]
    if missing:
        pytest.fail(f"real Databento samples missing in {SAMPLES}: {missing} (set BACKTEST_SAMPLES)")
    (root / "dbn").mkdir(parents=True, exist_ok=True)
    local = [Path(shutil.copy(SAMPLES / name, root / "dbn" / name)) for name in REAL_FILES]
    env = ingest(make_env(root / "proj"), local)
    params = DeriveParams(big_trade_floor=5)
    report = build_derived(env.ds, env.paths, env.reg, params=params)
    return Derived(env, report, params)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Derived:
    return _once("synth", tmp_path_factory, _build_synth)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> Derived:
    return _once("real", tmp_path_factory, _build_real)


# --------------------------------------------------------------------------------------------------
# hand-made trades with hand-worked answers (the charts tests use them too)
# --------------------------------------------------------------------------------------------------

HAND_DAY = dt.date(2019, 1, 8)  # a Tuesday in CST: 08:30 CT = 14:30 UTC
#: (UTC second after 14:31:00 or 14:32:00, side, [(price, size), ...]); several fills = one sweep
HAND_TRADES = (
    ("14:31:01", "A", [(2500.00, 10)]),
    ("14:31:02", "N", [(2500.00, 7)]),
    ("14:31:03", "A", [(2500.25, 3)]),
    ("14:31:04", "B", [(2500.25, 20), (2500.50, 5)]),
    ("14:31:05", "B", [(2500.25, 10)]),
    ("14:31:06", "A", [(2500.50, 12)]),
    ("14:31:07", "B", [(2500.75, 4)]),
    ("14:32:01", "A", [(2501.00, 10)]),
    ("14:32:02", "B", [(2501.50, 10)]),
    ("14:32:03", "B", [(2501.75, 5)]),
)


def write_hand_dbn(path: Path) -> Path:
    import numpy as np

    from runtime.demo_data.dbn_synth import instrument_id, new_records, write_dbn

    rows = []
    seq = 5000
    for hms, side, fills in HAND_TRADES:
        ts = int(dt.datetime.fromisoformat(f"{HAND_DAY}T{hms}+00:00").timestamp()) * 1_000_000_000 + 123
        seq += 1
        rows.extend((ts, side, px, sz, seq) for px, sz in fills)
    recs = new_records("trades", len(rows))
    iid = instrument_id("ESH9")
    recs["ts_event"] = [r[0] for r in rows]
    recs["ts_recv"] = [r[0] + 250_000 for r in rows]
    recs["price"] = [round(r[2] * 1e9) for r in rows]
    recs["size"] = [r[3] for r in rows]
    recs["side"] = np.array([r[1].encode() for r in rows], dtype="S1")
    recs["sequence"] = [r[4] for r in rows]
    recs["instrument_id"] = iid
    return write_dbn(path, recs, symbols={"ESH9": iid})


def _build_hand(root: Path) -> Derived:
    dbn = write_hand_dbn(root / "dbn" / "hand.trades.dbn.zst")
    env = ingest(make_env(root / "proj"), [dbn])
    params = DeriveParams()
    return Derived(env, build_derived(env.ds, env.paths, env.reg, params=params), params)


@pytest.fixture(scope="session")
def hand(tmp_path_factory: pytest.TempPathFactory) -> Derived:
    return _once("hand", tmp_path_factory, _build_hand)
