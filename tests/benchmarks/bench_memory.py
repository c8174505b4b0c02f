"""`make bench`: peak RSS per stage (generate, raw decode, ingest, derive) at one month vs three months.

Flat memory means the longer case peaks within a small factor of the shorter one, whatever the file count;
`python -m tests.benchmarks.run --scale` runs the one-year case (see memory.py). Each figure is beside the
one-month figure of the same stage, measured in the same run.
"""

from __future__ import annotations

from tests.benchmarks.memory import StageResult, load_note, measure
from tests.benchmarks.run import BenchRow

CASES = [("one month", 21), ("three months", 63)]


def rows_for(results: list[StageResult], small: str) -> list[BenchRow]:
    """Peak RSS rows (large vs small case, same stage) and the ingest throughput beside the decode floor."""
    out: list[BenchRow] = []
    by = {(r.case, r.stage): r for r in results}
    for r in results:
        if r.case == small:
            continue
        base = by[(small, r.stage)]
        out.append(
            BenchRow(
                "memory",
                f"{r.stage}: peak RSS, {r.case} ({r.files} files/dates)",
                r.peak_mb or 0.0,
                "MB",
                f"{small}, same stage",
                base.peak_mb,
                "ingest < 2 GB and <= 1.3x" if r.stage == "ingest" else "",
                f"{r.seconds:.1f} s vs {base.seconds:.1f} s",
            )
        )
        if r.stage == "ingest":
            floor = by[(r.case, "floor")]
            out.append(
                BenchRow(
                    "memory",
                    f"ingest throughput, {r.case}, {r.trades / 1e6:.1f}M trades",
                    r.trades_per_s,
                    "trades/s",
                    "raw decode (to_ndarray only)",
                    floor.trades_per_s,
                    ">= 700,000 trades/s",
                    load_note(),
                )
            )
    return out


def run() -> list[BenchRow]:
    return rows_for(measure(CASES), CASES[0][0])
