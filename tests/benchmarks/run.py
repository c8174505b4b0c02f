"""`make bench`: run every tests/benchmarks/bench_*.py and write RESULTS.md (`--scale`: the one-year case).

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


def sections(text: str) -> tuple[str, dict[str, str]]:
    """Split RESULTS.md into the main table and its `## ` sections (title -> text), so that one writer
    replaces only its own part and keeps the others'."""
    parts = text.split("\n## ")
    out: dict[str, str] = {}
    for part in parts[1:]:
        title = part.split("\n", 1)[0].strip()
        out[title] = "## " + part.rstrip("\n") + "\n"
    return parts[0].rstrip("\n") + "\n", out


def write_results(main_table: str | None = None, section: str | None = None) -> str:
    """Replace the main table and/or one `## ` section of RESULTS.md; every other part is kept as it was."""
    path = HERE / "RESULTS.md"
    head, secs = sections(path.read_text(encoding="utf-8")) if path.exists() else ("", {})
    if main_table is not None:
        head = main_table
    if section is not None:
        title = section.split("\n", 1)[0].removeprefix("## ").strip()
        secs[title] = section.rstrip("\n") + "\n"
    text = head.rstrip("\n") + "\n" + "".join("\n" + v for v in secs.values())
    path.write_text(text, encoding="utf-8")
    return text


def scale() -> int:
    """`--scale`: one month vs one year (250 trade dates x 300k trades), time and peak RSS per stage."""
    from tests.benchmarks.memory import measure, scale_section

    cases = [("one month", 21), ("one year", 250)]
    print("scale bench: " + ", ".join(f"{n} ({d} trade dates)" for n, d in cases), flush=True)
    text = scale_section(measure(cases), cases[0][0], cases[1][0])
    write_results(section=text)
    print(text)
    print(f"written {HERE / 'RESULTS.md'} (section only)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(ROOT))
    if "--scale" in argv:
        return scale()
    only = set(argv)
    rows: list[BenchRow] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        mod = importlib.import_module(f"tests.benchmarks.{path.stem}")
        print(f"running {path.stem} ...", flush=True)
        rows.extend(mod.run())
    text = write_results(main_table=render(rows))
    print(text)
    print(f"written {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
