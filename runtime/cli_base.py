"""How every `backtest` command parses and presents its options (typer subclasses used by runtime/cli.py).

One place, so every command (and any option added later) behaves the same:
- `-h` and `--help` everywhere; help shows value placeholders a user understands (`PATH`, `N`, `DATE`,
  nothing for a flag) instead of Python types (`<bool>`, `<list[str]>`).
- a repeatable option takes several values after one flag (`--file a.dbn b.dbn`), as users type it.
- a command with a free-text argument (compile's expression) accepts text that starts with `-`
  (`backtest compile "-SPX.close > 0"`) without the `--` separator.
- an OSError that escapes a command becomes one line naming the path and what failed; the traceback
  goes to the run log only (a real bug of another kind keeps its traceback).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup

HELP_NAMES = ["-h", "--help"]
_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.]*=\S*$")  # name=value (the values of --param / --slot)
_PLACEHOLDER = {"str": "TEXT", "int": "N", "float": "NUMBER", "path": "PATH", "datetime": "DATE"}
_PROJECT_DIRS = ("runtime", "dsl", "compiler")

#: every command module prints through one console (wide enough when piped: CI logs, the demo's output)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="snapshot JSON (default config/exports/latest.json)")
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="PATHS profile to use instead of the active one")
]


def say(msg: str) -> None:
    """Print a line as written (no rich markup) and keep it in the run log."""
    from runtime.app import LOG

    console.print(msg, markup=False, highlight=False)
    LOG.info(msg)


def version() -> str:
    """The installed project's version (the package metadata written by pip install -e .)."""
    try:
        return metadata.version("backtest")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed; run make demo)"


def _humanize(param: Any, ctx: Any) -> None:
    """Replace typer's Python-type placeholder of one parameter by a word (idempotent)."""
    if isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = (param.name or "value").upper()
            shown = param.display_type(ctx).strip("<>")
            word = _PLACEHOLDER.get(shown.lower(), "VALUE")
            param.display_type_rich = lambda ctx, word=word: word  # the type column, in words
        return
    if param.metavar is not None:
        return
    if getattr(param, "is_flag", False):
        param.metavar = ""
        return
    if "YYYY-MM-DD" in (param.help or ""):
        word = "DATE"
    else:
        shown = param.display_type(ctx) if hasattr(param, "display_type") else "<str>"
        base = shown.strip("<>").removeprefix("list[").removesuffix("]").removesuffix(" range")
        word = _PLACEHOLDER.get(base.lower(), "|".join(base.split("|")) if "|" in base else "VALUE")
    param.metavar = f"{word} ..." if getattr(param, "multiple", False) else word


def normalize_args(params: Sequence[Any], args: list[str]) -> list[str]:
    """Rewrite a command's argv so click parses what a user means (see the module docstring).

    - `--opt a b c` for a repeatable option becomes `--opt a --opt b --opt c` (values up to the next
      token that starts with `-`; in a command with a free-text argument only `name=value` tokens, and
      never the last token that could be that argument).
    - a token starting with a single `-` that is no option of the command is the free-text argument.
    """
    by_opt: dict[str, Any] = {}
    for p in params:
        if not isinstance(p, TyperArgument):
            for o in (*p.opts, *p.secondary_opts):
                by_opt[o] = p
    free_text = any(isinstance(p, TyperArgument) for p in params)
    options: list[list[str]] = []  # groups of tokens (an option and its value)
    greedy: list[int] = []  # indexes in `options` of values taken after a repeatable option
    positional: list[str] = []
    dashed = False
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            positional.extend(args[i + 1 :])
            dashed = dashed or any(a.startswith("-") for a in args[i + 1 :])
            break
        name, eq, _ = tok.partition("=")
        p = by_opt.get(name) if tok.startswith("-") else None
        if p is not None:
            if getattr(p, "is_flag", False) or eq:
                options.append([tok])
                i += 1
            else:
                options.append(args[i : i + 2])
                i += 2
            if getattr(p, "multiple", False) and not getattr(p, "is_flag", False):
                while i < len(args) and not args[i].startswith("-"):
                    if free_text and not _ASSIGNMENT.match(args[i]):
                        break
                    greedy.append(len(options))
                    options.append([name, args[i]])
                    i += 1
            continue
        if tok.startswith("-") and not tok.startswith("--") and len(tok) > 1 and free_text:
            positional.append(tok)
            dashed = True
        elif tok.startswith("-"):
            options.append([tok])  # an unknown option: click reports it (with its did-you-mean)
        else:
            positional.append(tok)
        i += 1
    if free_text and not positional and greedy:  # `--param n=3 x=1`: the last one is the expression
        positional.append(options.pop(greedy[-1])[1])
    flat = [t for group in options for t in group]
    return flat + (["--"] if dashed else []) + positional


class BacktestCommand(TyperCommand):
    """A typer command with the project's parsing and help conventions."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            _humanize(p, ctx)
        return params

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_args(self.get_params(ctx), list(args)))


class BacktestGroup(TyperGroup):
    """A typer group with the same help conventions (its own options are the global ones)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            _humanize(p, ctx)
        return params


class BacktestTyper(typer.Typer):
    """typer.Typer whose groups and commands follow the conventions above (-h, placeholders, parsing)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", BacktestGroup)
        settings = dict(kwargs.pop("context_settings", None) or {})
        settings.setdefault("help_option_names", HELP_NAMES)
        super().__init__(context_settings=settings, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", BacktestCommand)
        return super().command(*args, **kwargs)


def os_error_message(exc: OSError, log: logging.Logger) -> str:
    """One line for an OSError no command turned into a user error: the path, what failed, where, the log."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    what = exc.strerror or exc.__class__.__name__
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        parts = Path(frame.filename).parts
        hits = [i for i, part in enumerate(parts) if part in _PROJECT_DIRS]
        if hits and "site-packages" not in parts:
            rel = "/".join(parts[hits[-1] :])
            where = f" (in {frame.name}, {rel}:{frame.lineno})"
            break
    logs = [h.baseFilename for h in log.handlers if isinstance(h, logging.FileHandler)]
    tail = f"; details in {logs[0]}" if logs else ""
    if paths:
        target = " -> ".join(repr(p) for p in paths)
        return (
            f"{target}: {what}{where}; check that the path exists and is reachable and writable, "
            f"or choose another{tail}"
        )
    return f"operating-system error: {exc}{where}{tail}"


def command_app(ctx: typer.Context, config: Path | None, profile: str | None, command: str) -> Any:
    """The App of a command: its own --config/--profile win over the global ones (backtest --profile X status).

    One helper for every command module (runtime/cli.py, cache_cli.py, backtest/cli.py)."""
    from runtime.app import App, find_project_root

    g = ctx.find_root().obj
    return App(
        root=find_project_root(),
        config=config or getattr(g, "config", None),
        profile=profile or getattr(g, "profile", None),
        command=command,
    )


def parse_params_json(text: str | None, example: str = '{"window": 40}') -> dict[str, Any]:
    """--params '{"window": 40}' as a dict of numbers, true/false or strings (a UserError with the fix otherwise).

    Strings are let through for `backtest.start_date` and enum columns: the keys and value types are checked
    against what they address by runtime.backtest.params.split_params, which names the cell.
    """
    import json

    from runtime.contracts import UserError

    if not text:
        return {}
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"--params {text!r} is not JSON ({e.msg}); fix: write e.g. --params '{example}'"
        ) from None
    if not isinstance(v, dict) or not all(isinstance(x, (int, float, bool, str)) for x in v.values()):
        raise UserError(
            f"--params must be a JSON object of numbers, true/false or strings; fix: e.g. '{example}'"
        )
    return v
