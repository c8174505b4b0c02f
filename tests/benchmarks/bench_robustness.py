"""Robustness speed (issue 12 section 4): the template's rp_default profile, every test enabled, on the demo
study st_spx_cta (bt_spx_cta, ~19 years of daily rows), in under 3 minutes on 2 cores, with the time per test.

Setup (not timed): a tmp project from the template workbook with the demo daily data ingested, and the demo
study run (`run_study`, the workbook's n_trials): the robustness run needs the study's trials and its best
parameters. Timed: `run_robustness(snap, paths, reg, "st_spx_cta", force=True)`, the whole call (every test
over the engine, the tables, summary.json, report.html, the registry rows), and each test's own seconds
from summary.json. Baseline, measured in the same run: one `run_backtest` of the best trial's parameters
(force=True: compile, evaluate, simulate, write the run): the profile's cost in units of one backtest run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.run import BenchRow

STUDY = "st_spx_cta"


def _load() -> str:
    return f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""


def measure(say: Any = print) -> dict[str, Any]:
    from runtime.backtest.run import run_backtest
    from runtime.optimize.study import run_study
    from runtime.robustness.runner import run_robustness
    from tests.backtest.conftest import open_project
    from tests.foundation.helpers import demo_project

    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_robustness_") as d:
        t0 = time.perf_counter()
        p = open_project(demo_project(Path(d) / "proj", ["ingest", "daily"]))
        study = run_study(p.snapshot, p.paths, p.reg, STUDY)
        res["setup"] = time.perf_counter() - t0
        # warm (JIT, feature cache) on both sides: the figures compare the work, not who ran first
        run_robustness(p.snapshot, p.paths, p.reg, STUDY)
        params = dict(study.best_params or {})
        run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", params, force=True)
        t1 = time.perf_counter()
        out = run_robustness(p.snapshot, p.paths, p.reg, STUDY, force=True)
        res["profile"] = time.perf_counter() - t1
        summary = json.loads((Path(out.run_dir) / "summary.json").read_text(encoding="utf-8"))
        res["tests"] = [(t["test_id"], t["status"], float(t.get("seconds") or 0.0)) for t in summary["tests"]]
        t2 = time.perf_counter()
        run_backtest(p.snapshot, p.paths, p.reg, "bt_spx_cta", params, force=True)
        res["one_run"] = time.perf_counter() - t2
        res["load"] = _load()
        say(f"  setup {res['setup']:.0f} s, profile {res['profile']:.1f} s, one run {res['one_run']:.2f} s")
    return res


def rows(res: dict[str, Any]) -> list[BenchRow]:
    per = ", ".join(f"{t} {s:.2f} s" + ("" if st == "ok" else f" ({st})") for t, st, s in res["tests"])
    out = [
        BenchRow(
            "robustness",
            f"rp_default on study {STUDY}: {len(res['tests'])} tests, end to end (run_robustness, force)",
            res["profile"],
            "s",
            "one run_backtest of the best trial (force)",
            res["one_run"],
            "< 180 s",
            f"per test: {per}; {res['load']}",
        )
    ]
    slowest = max(res["tests"], key=lambda x: x[2])
    out.append(
        BenchRow(
            "robustness",
            f"slowest test: {slowest[0]}",
            slowest[2],
            "s",
            "one run_backtest of the best trial (force)",
            res["one_run"],
            "",
            "",
        )
    )
    return out


def run() -> list[BenchRow]:
    return rows(measure())


if __name__ == "__main__":
    r = measure()
    for row in rows(r):
        print(row)
