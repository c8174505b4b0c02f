"""Peak memory (and time) per stage at one month vs a longer span of synthetic ES: does memory stay flat?

Each stage runs in its own subprocess (`python -m tests.benchmarks.memory child STAGE ARGS`), so its peak
RSS is its own: the parent reads the child's max RSS from os.wait4 (Linux/macOS), or polls it with psutil
when that is installed. Stages, per case:

* gen     -- `runtime.demo_data.dbn_synth.write_synthetic_trades` (the public generator, whatever its prices)
* floor   -- the raw-decode floor: databento's to_ndarray of every file, one at a time, nothing else
* ingest  -- `ingest_databento` of all files in one run (fresh DATA_ROOT from the template workbook)
* derive  -- `build_derived` (every table, RTH and FULL) over what that ingest wrote

`make bench` runs one month vs three months (bench_memory.py); `python -m tests.benchmarks.run --scale`
runs one month vs one year (250 trade dates x 300k trades) and writes the "Scale" section of RESULTS.md.
Figures are never asserted in tests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
#: 2018: inside the CME calendar we model and the daily S&P history the generator may anchor to
START = dt.date(2018, 1, 2)
PER_DAY = 300_000
STAGES = ("gen", "floor", "ingest", "derive")


@dataclass(frozen=True)
class StageResult:
    """One stage of one case: wall time, trades handled and the child's peak RSS (None when unmeasurable)."""

    case: str
    stage: str
    seconds: float
    trades: int
    peak_mb: float | None
    files: int = 0

    @property
    def trades_per_s(self) -> float:
        return self.trades / self.seconds if self.seconds > 0 else 0.0


# ---- child side -----------------------------------------------------------------------------------------


def _project(root: Path):
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths
    from runtime.config.template import write_template
    from runtime.storage.paths import ensure_layout
    from runtime.storage.registry import Registry

    wb = root / "config" / "run_config.xlsx"
    if not wb.exists():
        wb.parent.mkdir(parents=True, exist_ok=True)
        write_template(wb)
        export_workbook(wb)
    snap = load_snapshot(root / "config" / "exports" / "latest.json")
    paths = snapshot_paths(snap)
    ensure_layout(paths)
    reg = Registry(paths.duckdb_file)
    reg.migrate()
    return snap, paths, reg


def _child(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    dbn = Path(args["dbn"])
    if stage == "gen":
        from runtime.demo_data.dbn_synth import write_synthetic_trades

        t0 = time.perf_counter()
        files = write_synthetic_trades(
            dbn, dt.date.fromisoformat(args["start"]), args["days"], args["per_day"], seed=args["seed"]
        )
        return {"seconds": time.perf_counter() - t0, "trades": 0, "files": len(files)}
    files = sorted(dbn.glob("*.dbn.zst"))
    if stage == "floor":
        import databento as db

        t0 = time.perf_counter()
        n = 0
        for f in files:
            n += len(db.DBNStore.from_file(f).to_ndarray())
        return {"seconds": time.perf_counter() - t0, "trades": n, "files": len(files)}
    snap, paths, reg = _project(Path(args["root"]))
    ds = snap.dataset("ES")
    if stage == "ingest":
        from runtime.ingest.databento import ingest_databento

        t0 = time.perf_counter()
        res = ingest_databento(ds, paths, reg, files=files)
        return {"seconds": time.perf_counter() - t0, "trades": sum(r.rows for r in res), "files": len(res)}
    if stage == "derive":
        from runtime.derive import build_derived

        t0 = time.perf_counter()
        rep = build_derived(ds, paths, reg)
        return {"seconds": time.perf_counter() - t0, "trades": rep.source_rows, "files": len(rep.built)}
    raise SystemExit(f"unknown stage {stage!r}")


# ---- parent side ----------------------------------------------------------------------------------------


def _own_hwm_mb() -> float | None:
    """This process's peak RSS since exec (Linux VmHWM), read by the child itself at its end.

    Why not wait4's ru_maxrss alone: on Linux it also counts the pre-exec copy of the parent at fork, so a
    child of a big parent (make bench, after the in-process benches) reports the parent's size instead.
    """
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def _run_child(stage: str, args: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """Run one stage in a fresh interpreter; its JSON result and its own peak RSS in MB."""
    cmd = [sys.executable, "-m", "tests.benchmarks.memory", "child", stage, json.dumps(args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=errf, env=env)
        peak: float | None = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux
            peak = kb / 1024
        else:  # Windows: poll the child's RSS with psutil when it is installed
            peak = _poll_peak(proc)
            proc.wait()
        if proc.returncode != 0:
            errf.seek(0)
            raise RuntimeError(
                f"{stage} failed ({proc.returncode}):\n{errf.read().decode(errors='replace')[-3000:]}"
            )
        out.seek(0)
        lines = [ln for ln in out.read().decode().splitlines() if ln.startswith("{")]
    res = json.loads(lines[-1])
    own = res.pop("hwm_mb", None)
    return res, own if own is not None else peak


def _poll_peak(proc: subprocess.Popen) -> float | None:
    try:
        import psutil
    except ImportError:
        proc.wait()
        return None
    peak = 0.0
    p = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, p.memory_info().rss / 2**20)
        except psutil.Error:
            break
        time.sleep(0.05)
    return peak or None


def measure(cases: list[tuple[str, int]], per_day: int = PER_DAY, say=print) -> list[StageResult]:
    """Every stage of every case, each in its own subprocess, in a temp dir removed afterwards."""
    out: list[StageResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        for name, days in cases:
            base = tmp / name.replace(" ", "_")
            args = {
                "dbn": str(base / "dbn"),
                "root": str(base / "proj"),
                "start": START.isoformat(),
                "days": days,
                "per_day": per_day,
                "seed": 20180102,
            }
            for stage in STAGES:
                say(f"  {name}: {stage} ...")
                res, peak = _run_child(stage, args)
                out.append(StageResult(name, stage, res["seconds"], res["trades"], peak, res.get("files", 0)))
                say(f"    {res['seconds']:.1f} s, peak RSS {peak or 0:,.0f} MB")
            shutil.rmtree(base, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _get(results: list[StageResult], case: str, stage: str) -> StageResult:
    return next(r for r in results if r.case == case and r.stage == stage)


def load_note() -> str:
    """The machine's CPUs and load when a figure was taken (timings on a shared machine are noisy)."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPUs{load}"


def scale_section(results: list[StageResult], small: str, large: str) -> str:
    """The RESULTS.md section: time and peak RSS per stage, the large case beside the small one."""
    lines = [
        "## Scale: peak memory and time per stage",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} (`python -m tests.benchmarks.run --scale`). Synthetic ES "
        f"from {START}, {PER_DAY:,} trades per full session; each stage in its own subprocess, peak RSS = its max "
        f"resident set (its own VmHWM on Linux). {load_note()}: throughput figures on a busy machine are lower "
        "bounds, peak RSS is not affected.",
        "",
        f"| case | stage | files / dates | trades | seconds | trades/s | peak RSS MB | RSS vs {small} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = _get(results, small, r.stage)
        ratio = (r.peak_mb / base.peak_mb) if (r.peak_mb and base.peak_mb) else None
        lines.append(
            f"| {r.case} | {r.stage} | {r.files:,} | {r.trades:,} | {r.seconds:.1f} | "
            f"{r.trades_per_s:,.0f} | {r.peak_mb or 0:,.0f} | {'-' if ratio is None else f'{ratio:.2f}x'} |"
        )
    ing_s, ing_l = _get(results, small, "ingest"), _get(results, large, "ingest")
    der_s, der_l = _get(results, small, "derive"), _get(results, large, "derive")
    floor_l = _get(results, large, "floor")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if ing_l.peak_mb and ing_s.peak_mb:
        r_ing = ing_l.peak_mb / ing_s.peak_mb
        lines += [
            "",
            "Targets (issue 8, section 5):",
            f"- {large} ingest peak RSS {ing_l.peak_mb:,.0f} MB < 2,048 MB: {verdict(ing_l.peak_mb < 2048)}",
            f"- {large} ingest peak RSS within 1.3x of {small} ({r_ing:.2f}x): {verdict(r_ing <= 1.3)}",
            f"- ingest throughput {ing_l.trades_per_s / 1e6:.2f}M trades/s >= 0.7M/s: "
            f"{verdict(ing_l.trades_per_s >= 0.7e6)} (raw-decode floor {floor_l.trades_per_s / 1e6:.2f}M/s "
            "in the same run)",
        ]
        if der_l.peak_mb and der_s.peak_mb:
            lines.append(
                f"- derive peak RSS {der_l.peak_mb:,.0f} MB vs {der_s.peak_mb:,.0f} MB "
                f"({der_l.peak_mb / der_s.peak_mb:.2f}x): flat = bounded by one batch of trade dates"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "child":
        print(json.dumps({**_child(argv[1], json.loads(argv[2])), "hwm_mb": _own_hwm_mb()}), flush=True)
        return 0
    raise SystemExit("usage: python -m tests.benchmarks.run --scale (this module runs the stages)")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
