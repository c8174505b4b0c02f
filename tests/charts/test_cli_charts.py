"""`backtest charts` as a user runs it (real subprocess, real project folder with derived data)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.derive.conftest import Derived


def files_under(root: Path) -> set[Path]:
    """Every file of the project except the per-run logs (each command writes its own log, by design)."""
    return {p for p in root.rglob("*") if p.is_file() and "logs" not in p.relative_to(root).parts}


def title(html: Path) -> str:
    """The chart's title (the one text with ' | ' between its parts; axis titles have none)."""
    texts = re.findall(r'"text":"([^"]*)"', html.read_text(encoding="utf-8"))
    main = [t for t in texts if " | " in t]
    assert len(main) == 1, texts
    return main[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "2019-01-02"], "no RTH session on Wed 2019-01-02"),  # after the data: was "RTH 2018-12-20"
        (["--day", "2018-12-08"], "no RTH session on Sat 2018-12-08"),  # was the Friday under Saturday's name
        (["--day", "2018-12-05"], "no RTH session on Wed 2018-12-05"),  # day of mourning: was empty axes
        (["--layers", "candles,foo"], "unknown layer 'foo'"),
        (["--demo", "--day", "2018-12-14"], "--demo draws the latest RTH and FULL sessions"),
        (["--out", "/proc/x"], "cannot write the chart to /proc/x"),
    ],
)
def test_bad_input_exits_1_with_a_message_and_writes_nothing(
    cli: Callable[..., CliResult], synth: Derived, tmp_path: Path, args: list[str], message: str
) -> None:
    before = files_under(synth.env.root)
    out = [] if "--out" in args else ["--out", str(tmp_path / "charts")]
    r = cli(["charts", *args, *out], cwd=synth.env.root)
    text = r.out + r.err
    assert r.code == 1, text
    assert message in text and "Traceback" not in text
    assert files_under(synth.env.root) == before and not (tmp_path / "charts").exists()


def test_intervals_do_not_overwrite_each_other_and_titles_name_the_day(
    cli: Callable[..., CliResult], synth: Derived, tmp_path: Path
) -> None:
    out = tmp_path / "charts"
    paths = []
    for args in (
        ["--day", "2018-12-14", "--interval", "1"],
        ["--day", "2018-12-14", "--interval", "5"],
        ["--day", "2018-12-14", "--interval", "5", "--footprint-interval", "1", "--big-percentile", "99.5"],
        ["--session", "FULL", "--day", "2018-12-05", "--layers", "candles,footprint,bubbles"],
    ):
        r = cli(["charts", *args, "--out", str(out)], cwd=synth.env.root)
        assert r.code == 0, r.out + r.err
        m = re.search(r"chart: (.+\.html)", r.out.replace("\n", ""))
        assert m is not None, r.out
        paths.append(Path(m.group(1)))
    assert [p.name.split("_", 3)[-1] for p in paths[:2]] == ["1m.html", "5m.html"]
    assert len({p.name for p in paths}) == 4 and all(p.is_file() for p in paths)
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in paths), "plotly.min.js"])
    assert title(paths[0]).startswith("RTH Fri 2018-12-14 | 1m candles")
    assert title(paths[1]).startswith("RTH Fri 2018-12-14 | 5m candles | footprint 5m")
    assert "footprint 1m" in title(paths[2]) and "p99.5 of 20 prior sessions" in title(paths[2])
    assert paths[3].name.startswith("ES_2018-12-05_FULL_15m") and title(paths[3]).startswith(
        "FULL Wed 2018-12-05"
    )
    assert '"name":"cvd"' not in paths[3].read_text(encoding="utf-8")  # the layer left out


def test_help_lists_the_widget_options(cli: Callable[..., CliResult], synth: Derived) -> None:
    r = cli(["charts", "--help"], cwd=synth.env.root)
    assert r.code == 0
    for opt in (
        "--interval",
        "--footprint-interval",
        "--big-size",
        "--big-percentile",
        "--lookback",
        "--big-mode",
        "--layers",
        "--imbalance-ratio",
        "--imbalance-min",
        "--days",
        "--cvd-reset",
    ):
        assert opt in r.out, opt
