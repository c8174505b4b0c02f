"""`make bench`: run every tests/benchmarks/bench_*.py and write RESULTS.md.

Each module exposes `run() -> list[BenchRow]`; every figure sits beside a baseline measured in the same
run, so the table says how far we are from the floor on this machine today, not from a remembered number.
Timings are never asserted in `make test`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass(frozen=True)
class BenchRow:
    """One measured figure and the baseline it is compared with (ratio = figure / baseline, in `unit`)."""

    area: str
    name: str
    figure: float
    unit: str
    baseline_name: str
    baseline: float | None
    target: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.figure / self.baseline


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` calls: the least noisy estimate on a shared 2-core machine."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def render(rows: list[BenchRow]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} on {platform.machine()}, "
        f"Python {platform.python_version()}, {_cpu_count()} CPUs. Each figure sits beside a baseline "
        "measured in the same run; ratio = figure / baseline.",
        "",
        "| area | benchmark | figure | unit | baseline | baseline figure | ratio | target | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.area} | {r.name} | {_fmt(r.figure)} | {r.unit} | {r.baseline_name} | {_fmt(r.baseline)} "
            f"| {_fmt(r.ratio)} | {r.target} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = set(argv)
    sys.path.insert(0, str(ROOT))
    rows: list[BenchRow] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        mod = importlib.import_module(f"tests.benchmarks.{path.stem}")
        print(f"running {path.stem} ...", flush=True)
        rows.extend(mod.run())
    text = render(rows)
    (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
