"""CLI conventions every command shares: -h / --version, readable help, repeatable options that take
several values, expressions that start with `-`, and a compile summary that agrees with its JSON."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from runtime.cli_base import HELP_NAMES
from tests.conftest import REPO, run_cli
from tests.foundation.helpers import demo_project


def _commands() -> list[tuple[str, ...]]:
    """Every command path of the real CLI (groups included), walked from the click tree."""
    import typer

    from runtime.cli import app

    out: list[tuple[str, ...]] = [()]

    def walk(cmd, path: tuple[str, ...]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append((*path, name))
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


COMMANDS = _commands()


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Template exported, DATA_ROOT created, two days of tiny synthetic ES DBN files (not ingested)."""
    return demo_project(tmp_path_factory.mktemp("conventions") / "proj")


def test_the_walk_sees_every_command():
    names = {" ".join(c) for c in COMMANDS}
    assert {
        "init",
        "config export",
        "ingest databento",
        "derive",
        "charts",
        "compile",
        "docs update",
    } <= names


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(c) or "backtest" for c in COMMANDS])
def test_every_command_has_short_help_in_words(path, tmp_path):
    r = run_cli([*path, "-h"], tmp_path)
    assert r.code == 0, r.err
    assert f"Usage: backtest {' '.join(path)}".rstrip() in " ".join(r.out.split())
    # typer's Python-type placeholders (<bool>, <list[str]>, <int range>, <path>) are not for users
    assert not re.search(r"<(bool|str|int|float|path|list\[)", r.out), r.out
    assert "--help" in r.out and "-h" in r.out


def test_version_is_the_installed_projects():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    r = run_cli(["--version"], REPO)
    assert r.code == 0 and r.out.strip() == f"backtest {declared}"


def test_every_repeatable_option_takes_several_values_after_one_flag():
    import typer
    from typer.core import TyperArgument

    from runtime.cli import app
    from runtime.cli_base import normalize_args

    root = typer.main.get_command(app)
    seen = 0
    for path in COMMANDS:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        ctx = cmd.make_context("backtest", [], resilient_parsing=True, help_option_names=HELP_NAMES)
        params = cmd.get_params(ctx)
        free_text = any(isinstance(p, TyperArgument) for p in params)
        for p in params:
            if not getattr(p, "multiple", False):
                continue
            seen += 1
            opt = p.opts[0]
            values = ["a=1", "b=2"] if free_text else ["a.dbn", "b.dbn"]
            tail = ["x > 0"] if free_text else []
            got = normalize_args(params, [opt, *values, *tail])
            assert got == [opt, values[0], opt, values[1], *tail], (path, opt, got)
    assert seen >= 6  # --dataset (x3), --file, --session, --param, --slot, ...


def test_normalize_args_keeps_what_click_already_understands():
    import typer

    from runtime.cli import app
    from runtime.cli_base import normalize_args

    compile_cmd = typer.main.get_command(app).commands["compile"]
    params = compile_cmd.get_params(
        compile_cmd.make_context("backtest", [], resilient_parsing=True, help_option_names=HELP_NAMES)
    )
    assert normalize_args(params, ["-1 > 0"]) == ["--", "-1 > 0"]
    assert normalize_args(params, ["--format", "json", "-SPX.close > 0"]) == [
        "--format",
        "json",
        "--",
        "-SPX.close > 0",
    ]
    assert normalize_args(params, ["--param", "n=3", "x=1"]) == [
        "--param",
        "n=3",
        "x=1",
    ]  # the last is the text
    assert normalize_args(params, ["-h"]) == ["-h"]
    assert normalize_args(params, ["--frmat", "json", "x"]) == [
        "--frmat",
        "json",
        "x",
    ]  # click names the typo
    assert normalize_args(params, ["--", "-x"]) == ["--", "-x"]


def test_file_takes_several_dbn_files(proj):
    files = sorted((proj / "data" / "incoming" / "databento").glob("*.dbn*"))
    assert len(files) >= 2
    r = run_cli(["ingest", "databento", "--file", str(files[0]), str(files[1])], proj)
    assert r.code == 0, r.err
    assert "ingested 2 files" in r.out


def test_an_expression_may_start_with_a_minus(proj):
    r = run_cli(["compile", "-lag(cta_flow, 1) > 0", "--format", "json"], proj)
    assert r.code == 0, r.err
    assert json.loads(r.out)["canonical"] == "-lag(cta_flow, 1) > 0"
    r = run_cli(["compile", "--format", "json", "-1 > 0"], proj)
    assert r.code == 0 and json.loads(r.out)["kind"] == "bool scalar"


def test_several_params_after_one_flag_and_every_one_must_be_used(proj):
    text = "zscore(lag(cta_flow, 1), $window) > $level"
    r = run_cli(["compile", "--param", "window=20", "level=0.5", text, "--format", "json"], proj)
    assert r.code == 0, r.err
    assert json.loads(r.out)["params"] == {"level": 0.5, "window": 20}
    r = run_cli(["compile", "--param", "window=20", "level=0.5", "extra=1", text], proj)
    assert r.code == 1 and "--param extra=1 is not used" in r.err and "$level, $window" in r.err


def test_compile_summary_states_the_warm_up_of_every_grid_like_the_json(proj):
    # lag(es_delta, 1): 2 bars; asof(zscore(lag(cta_flow, 1), 60)): 60 + 1 (lag) daily rows, + 1 session
    # for asof's shift = 62 daily rows (hand-derived, design/DSL.md section 6).
    text = "lag(es_delta, 1) > asof(zscore(lag(cta_flow, 1), 60))"
    js = json.loads(run_cli(["compile", text, "--format", "json"], proj).out)
    assert js["warmup_by_frequency"] == {"1m": 2, "daily": 62}
    r = run_cli(["compile", text], proj)
    assert r.code == 0, r.err
    summary = r.out.strip().splitlines()[-1]
    assert "warm-up 2 1m bars + 62 daily rows" in summary, summary
    assert "warm-up 2 rows" not in summary
    assert r.out.splitlines()[0].endswith("warm-up 2 (+62 daily rows) [" + js["hash"][:8] + "]")
