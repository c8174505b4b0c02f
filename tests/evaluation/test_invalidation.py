"""Issue 9 section 4 acceptance on the demo project: the feature cache invalidates exactly what changed.

A new VIX file (one value revised, one day appended) recomputes exactly the features that read VIX
(vix_level, vix_high and the gate calm_vol = NOT vix_high: worked out by hand from the template
workbook) and serves every CTA / SPX / NDX / CREDIT / WTI / ES feature from the cache; a changed
FEATURE_LIBRARY row (vix_high's threshold) recomputes that feature and its user calm_vol only; other
`$param` values are other entries; `--as-of` before the revision reads the old values (those of the xlsx
written first) under its own cache key. The tests run in file order on one module-scoped project.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from runtime.evaluation.cache_store import ls
from runtime.evaluation.run import EvalOptions, build_features, eval_expression, select_features
from runtime.ingest.daily import ingest_daily
from tests.evaluation.demo_workspace import Demo, build_demo
from tests.foundation.helpers import edit

START = dt.date(2018, 6, 1)
T1 = dt.datetime(2026, 2, 10, 22, 0, tzinfo=dt.UTC)  # the revised VIX file is ingested then
BEFORE_T1 = dt.date(2026, 1, 20)  # after the first ingest (demo_workspace.T0), before the revision
REVISED_DAY = dt.datetime(2018, 12, 20)
REVISED_CLOSE = 12.5
NEW_DAY, NEW_CLOSE = dt.datetime(2019, 1, 4), 21.38
VIX_FEATURES = {"vix_level", "vix_high", "calm_vol"}
ALL = 18  # 12 FEATURE_LIBRARY + 4 ENGINEERED_FEATURES + 2 GATES rows, all enabled in the template


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("invalidation") / "proj")


def build(demo: Demo, **opts) -> dict[str, bool]:
    """{feature id: served from the cache} for every enabled feature."""
    sel = select_features(demo.snapshot)
    builds = build_features(demo.snapshot, demo.paths, demo.reg, sel, EvalOptions(start=START, **opts))
    return {b.feature_id: b.cached for b in builds}


def vix_at(demo: Demo, day: dt.datetime, **opts) -> float:
    res = eval_expression("vix_level", demo.snapshot, demo.paths, demo.reg, EvalOptions(start=START, **opts))
    ev = res.evaluation
    i = int(np.searchsorted(ev.index, np.datetime64(day.date())))
    assert ev.index[i] == np.datetime64(day.date())
    return float(ev.values[i])


def revise_vix(path: Path) -> float:
    """Change the close of REVISED_DAY and append NEW_DAY (as a user's new download would); the old close."""
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    old = None
    for row in ws.iter_rows(min_row=1):
        if row[0].value == REVISED_DAY:
            old = float(row[1].value)
            row[1].value = REVISED_CLOSE
    assert old is not None and old != REVISED_CLOSE
    ws.append([NEW_DAY, NEW_CLOSE])
    wb.save(path)
    return old


OLD: dict[str, float] = {}


def test_new_vix_file_recomputes_exactly_the_vix_features(demo: Demo) -> None:
    first = build(demo)
    assert len(first) == ALL and not any(first.values())  # a fresh cache: all computed
    again = build(demo)
    assert all(again.values()), [f for f, c in again.items() if not c]
    OLD["close"] = revise_vix(demo.paths.data_root / "incoming" / "daily" / "vix.xlsx")
    res = ingest_daily(demo.snapshot.dataset("VIX"), demo.paths, demo.reg, now=T1)
    assert res.status == "ingested"
    after = build(demo)
    recomputed = {f for f, cached in after.items() if not cached}
    assert recomputed == VIX_FEATURES
    assert {"cta_flow", "cta_flow_z", "spx_ret", "spx_vol_20", "es_delta_z", "credit_ok"} <= set(after)
    # and the recomputed values are the new file's
    assert vix_at(demo, REVISED_DAY) == REVISED_CLOSE
    assert vix_at(demo, NEW_DAY) == NEW_CLOSE
    # in the same test (xdist may run tests of one module on different workers): as_of reads of it
    _as_of_before_the_revision_reads_the_old_values_under_its_own_key(demo)


def _as_of_before_the_revision_reads_the_old_values_under_its_own_key(demo: Demo) -> None:
    assert vix_at(demo, REVISED_DAY, as_of=BEFORE_T1) == OLD["close"]
    # NEW_DAY was not known then: the as-of range ends on the last day known then
    for as_of, last in ((BEFORE_T1, "2019-01-03"), (None, "2019-01-04")):
        opts = EvalOptions(start=START, as_of=as_of)
        ev = eval_expression("vix_level", demo.snapshot, demo.paths, demo.reg, opts).evaluation
        assert ev.index[-1] == np.datetime64(last)
    vix_rows = [e for e in ls(demo.reg) if e["feature_id"] == "vix_level"]
    by_as_of = {e["as_of"]: e["key"] for e in vix_rows}
    assert BEFORE_T1 in by_as_of and None in by_as_of
    assert by_as_of[BEFORE_T1] != by_as_of[None]
    # a build as of then: every feature gets its own entry for that date (as_of is part of every key),
    # except vix_level, which the evaluation above stored as of then already; then all are served
    then = build(demo, as_of=BEFORE_T1)
    assert {f for f, cached in then.items() if cached} == {"vix_level"}
    assert all(build(demo, as_of=BEFORE_T1).values())
    assert all(build(demo).values())  # the latest entries are still there, untouched


def test_changed_feature_row_recomputes_it_and_its_users_only(demo: Demo) -> None:
    from runtime.graphs import compile_expression

    build(demo)  # every feature cached first (xdist may run this test on a worker of its own)
    before = compile_expression("vix_high", demo.snapshot, execution=None).hash
    wb = openpyxl.load_workbook(demo.workbook)
    ws = wb["FEATURE_LIBRARY"]
    header = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "vix_high")
    cell = ws.cell(row, header.index("params_json") + 1).coordinate
    edit(demo.workbook, [("FEATURE_LIBRARY", cell, '{"threshold": 20}')])
    demo.reload()
    assert compile_expression("vix_high", demo.snapshot, execution=None).hash != before
    after = build(demo)
    assert {f for f, cached in after.items() if not cached} == {"vix_high", "calm_vol"}
    assert all(build(demo).values())


def test_other_params_are_other_entries(demo: Demo) -> None:
    def run(w: float) -> tuple[np.ndarray, int]:
        opts = EvalOptions(start=START, params={"w": w})
        ev = eval_expression("mean(SPX.close, $w)", demo.snapshot, demo.paths, demo.reg, opts).evaluation
        return ev.values, ev.cache_hits

    v10, h10 = run(10)
    v20, h20 = run(20)
    assert h10 == 0 and h20 == 0 and not np.allclose(v10, v20)
    again, hits = run(10)
    assert hits == 1 and np.array_equal(again, v10)
    same, hits = run(20.0)  # 20 and 20.0 are one binding: one cache entry (issue 9 section 1)
    assert hits == 1 and np.array_equal(same, v20)
    assert sorted(e["params"]["w"] for e in ls(demo.reg) if "w" in e["params"]) == [10, 20]
