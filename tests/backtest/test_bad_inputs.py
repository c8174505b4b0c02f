"""Bad input to `backtest run`: a clear message naming the cell and a fix, exit 1, nothing under runs/.

Through the real console entry point (a subprocess). Snapshots with a problem the workbook validator would
already refuse at export (start after end, OOS longer than the range) are written here as edited
snapshots with a recomputed content hash: `run` must refuse them on its own, since `--config` accepts any
snapshot file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.backtest.compile import compile_backtest
from runtime.config.names import content_hash
from runtime.contracts import UserError
from tests.backtest.conftest import Project, run_backtest_cli

pytestmark = pytest.mark.xdist_group("backtest_bare")


def _variant(p: Project, name: str, sheet: str, key: str, ident: str, changes: dict) -> Path:
    doc = json.loads(p.snapshot.path.read_text(encoding="utf-8"))
    rows = [r for r in doc["sheets"][sheet] if r[key] == ident]
    assert len(rows) == 1
    rows[0].update(changes)
    doc["content_hash"] = content_hash(doc["sheets"], doc["expressions"])
    out = p.root / "config" / "exports" / f"bad_{name}.json"
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def _nothing_written(p: Project) -> None:
    runs = p.paths.runs_dir
    assert not runs.exists() or not list(runs.iterdir()), list(runs.iterdir())
    assert p.reg.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0


CASES = [
    # (name, args, snapshot edit or None, expected fragments of stderr)
    ("unknown_id", ["run", "bt_nope"], None, ["unknown backtest 'bt_nope'", "bt_spx_cta", "fix:"]),
    (
        "no_prices",  # nothing ingested in the bare project: SPX has no prices yet
        ["run", "bt_spx_cta"],
        None,
        ["INSTRUMENTS!D3", "has no prices yet", "backtest ingest daily --dataset SPX"],
    ),
    (
        "instrument_not_priced",
        ["run", "bt_spx_cta"],
        ("INSTRUMENTS", "instrument_id", "SPX", {"prices_dataset_id": "NOPE"}),
        ["INSTRUMENTS!D3", "has no prices", "fix:"],
    ),
    (
        "missing_instrument",
        ["run", "bt_spx_cta"],
        ("STRATEGIES", "strategy_id", "spx_cta_z", {"instrument_id": "GOLD"}),
        ["STRATEGIES!C2", "'GOLD' is not in INSTRUMENTS", "fix:"],
    ),
    (
        "empty_range",
        ["run", "bt_spx_cta"],
        ("BACKTESTS", "backtest_id", "bt_spx_cta", {"start_date": "2019-01-01", "end_date": "2018-12-31"}),
        ["BACKTESTS!C2", "is after end_date", "the range is empty", "fix: swap them"],
    ),
    (
        "oos_too_long",
        ["run", "bt_spx_cta"],
        ("BACKTESTS", "backtest_id", "bt_spx_cta", {"oos_last_x_months": 180}),
        ["BACKTESTS!E2", "leaving no in-sample", "fix: fewer months"],
    ),
    (
        "custom_without_intraday",
        ["run", "bt_spx_cta"],
        (
            "BACKTESTS",
            "backtest_id",
            "bt_spx_cta",
            {"execution_time": "custom", "custom_execution_time": "10:00"},
        ),
        ["BACKTESTS!G2", "custom execution", "from 1m bars", "SPX is daily_series", "fix:"],
    ),
    (
        "lookahead_at_close",  # $lag 0: the CTA flow, published after the close, used at that close
        ["run", "bt_spx_cta", "--params", '{"lag": 0}'],
        None,
        ["SIGNAL_TEMPLATES!J2", "not known in time for a decision executed at the close", "fix:"],
    ),
    (
        "unknown_param",
        ["run", "bt_spx_cta", "--params", '{"windw": 20}'],
        None,
        ["--params windw=20", "has no $windw", "$window"],
    ),
    (
        "params_not_json",
        ["run", "bt_spx_cta", "--params", "{window: 20}"],
        None,
        ["is not JSON", "fix", "--params"],
    ),
]


@pytest.mark.parametrize("name,args,edit,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_cell_exits_1_writes_nothing(
    bare: Project, name: str, args: list[str], edit: tuple | None, fragments: list[str]
) -> None:
    if edit is not None:
        args = [*args, "--config", str(_variant(bare, name, *edit))]
    r = run_backtest_cli(args, bare.root)
    assert r.code == 1, (r.out, r.err)
    err = " ".join(r.err.split())
    for f in fragments:
        assert " ".join(f.split()) in err, (f, r.err)
    assert "Traceback" not in r.err
    _nothing_written(bare)


def test_peeking_one_row_ahead_is_refused_in_python_too(bare: Project) -> None:
    """The same lookahead at the library level: a UserError naming the template cell; next_open accepts it."""
    with pytest.raises(UserError, match=r"SIGNAL_TEMPLATES!J2 \(backtest bt_spx_cta, execution close\)"):
        compile_backtest(bare.snapshot, "bt_spx_cta", {"lag": 0})
    # a lag of 0 is fine when the fill is one row later (the value is known by the next open)
    doc_path = _variant(
        bare, "next_open", "BACKTESTS", "backtest_id", "bt_spx_cta", {"execution_time": "next_open"}
    )
    from runtime.config.loader import load_snapshot

    cb = compile_backtest(load_snapshot(doc_path), "bt_spx_cta", {"lag": 0})
    assert cb.execution_time == "next_open" and cb.params["lag"] == 0
