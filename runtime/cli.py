"""`backtest`: the one console entry point (typer + rich). Thin: parse options, call runtime functions.

User errors (UserError and its subclasses) print a message that names the place and the fix and exit 1,
never a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dsl import DslError
from dsl.contracts import COMMAND_LINE
from runtime.app import LOG, App, attach_fallback_log, default_workbook, find_project_root, setup_logging
from runtime.cli_base import (
    BacktestTyper,
    ConfigOpt,
    ProfileOpt,
    command_app,
    console,
    os_error_message,
    parse_params_json,
    say,
    version,
)
from runtime.contracts import ConfigValidationError, UserError

err_console = Console(stderr=True, highlight=False)

app = BacktestTyper(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Backtest: Excel-configured research on daily indicators and ES order flow.",
)
config_app = BacktestTyper(no_args_is_help=True, help="Export or validate the workbook.")
ingest_app = BacktestTyper(no_args_is_help=True, help="Bring source data into DATA_ROOT (raw + canonical).")
docs_app = BacktestTyper(no_args_is_help=True, help="Archive or replace the design docs.")
app.add_typer(config_app, name="config")
app.add_typer(ingest_app, name="ingest")
app.add_typer(docs_app, name="docs")
features_app = BacktestTyper(no_args_is_help=True, help="Build or show the workbook's features (cached).")
app.add_typer(features_app, name="features")
from runtime.cache_cli import app as cache_app  # noqa: E402  (its own module; registered here)

app.add_typer(cache_app, name="cache")
from runtime.backtest.cli import run_cmd  # noqa: E402  (the command lives with the backtest package)

app.command("run")(run_cmd)
from runtime.optimize.cli import optimize_cmd  # noqa: E402  (with the optimize package)

app.command("optimize")(optimize_cmd)
from runtime.robustness.cli import robustness_cmd  # noqa: E402  (with the robustness package)

app.command("robustness")(robustness_cmd)

WorkbookOpt = Annotated[
    Path | None, typer.Option("--workbook", help="workbook (default config/run_config.xlsx)")
]


@dataclass(frozen=True)
class GlobalOpts:
    config: Path | None = None
    profile: str | None = None


def _show_version(value: bool) -> None:
    if value:
        console.print(f"backtest {version()}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="print the version and exit"),
    ] = False,
) -> None:
    """Global options, also accepted after any command: --config SNAPSHOT, --profile NAME."""
    ctx.obj = GlobalOpts(config, profile)


def _opts(ctx: typer.Context, config: Path | None, profile: str | None) -> GlobalOpts:
    """The command's own --config/--profile win over the global ones (backtest --profile X status)."""
    g = ctx.find_root().obj or GlobalOpts()
    return GlobalOpts(config or g.config, profile or g.profile)


def _app(ctx: typer.Context, config: Path | None, profile: str | None, command: str) -> App:
    return command_app(ctx, config, profile, command)


# ---- init / config -----------------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    workbook: WorkbookOpt = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing workbook")] = False,
    empty: Annotated[bool, typer.Option("--empty", help="headers only, no demo rows")] = False,
    data: Annotated[
        bool,
        typer.Option(
            "--data", help="create the DATA_ROOT of the exported profile (folders + registry) instead"
        ),
    ] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Write the template workbook (every sheet and header, dropdowns, demo rows); --data: create DATA_ROOT."""
    from runtime.config.template import write_template

    if data:  # the one place a DATA_ROOT is created: never silently by another command
        from runtime.config.loader import snapshot_paths
        from runtime.storage.paths import ensure_layout

        a = _app(ctx, config, profile, "init-data")
        paths = snapshot_paths(a.snapshot, a.profile)
        existed = paths.data_root.is_dir()
        ensure_layout(paths, create_root=True)
        a.registry  # noqa: B018 (creates and migrates the registry)
        state = "exists" if existed else "created"
        say(
            f"DATA_ROOT {paths.data_root} {state} (profile '{paths.profile}'); registry {paths.duckdb_file} ready"
        )
        return
    path = workbook or default_workbook(find_project_root())
    write_template(path, force=force, demo=not empty)
    say(f"wrote {path}")


@config_app.command("export")
def config_export(
    ctx: typer.Context,
    workbook: WorkbookOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="export folder (default EXPORT_CONFIG_DIR)")
    ] = None,
    profile: ProfileOpt = None,
) -> None:
    """Validate the workbook and write an immutable JSON snapshot (nothing is written on any error)."""
    from runtime.app import attach_log_file
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot, snapshot_paths

    root = find_project_root()
    profile = _opts(ctx, None, profile).profile
    res = export_workbook(workbook or default_workbook(root), out_dir=out, profile=profile)
    snap = load_snapshot(res.latest)
    paths = snapshot_paths(snap, profile)
    if paths.data_root.is_dir():  # never create DATA_ROOT here (an unmounted drive must not look empty)
        attach_log_file(paths.log_dir, "config-export")
    if res.unchanged:
        say(f"unchanged: {res.path} (content hash {res.content_hash[:8]}, {res.n_rows} rows)")
    else:
        say(
            f"exported {res.path}\n  and {res.latest} (content hash {res.content_hash[:8]}, {res.n_rows} rows)"
        )
    if not paths.data_root.is_dir():
        from runtime.app import data_root_cell

        say(
            f"note: DATA_ROOT {paths.data_root} does not exist yet ({data_root_cell(snap, profile)}); "
            "create it with `backtest init --data` (or mount the drive it is on)"
        )


@config_app.command("validate")
def config_validate(ctx: typer.Context, workbook: WorkbookOpt = None, profile: ProfileOpt = None) -> None:
    """Validate the workbook and report every problem at once; writes nothing."""
    from runtime.config.export import validate_only

    res = validate_only(workbook or default_workbook(find_project_root()), _opts(ctx, None, profile).profile)
    say(f"valid: {res.n_rows} rows, content hash {res.content_hash[:8]}")


# ---- data ------------------------------------------------------------------------------------------


def _selected(snap, dataset_type: str, ids: list[str] | None) -> list:
    """Datasets of one type: the named ones (even if disabled), else every enabled one."""
    from runtime.config.columns import dataset_cell

    rows = [d for d in snap.datasets if d.dataset_type == dataset_type]
    if ids:
        for i in ids:
            snap.dataset(i)  # unknown id -> clear error
        wrong = [i for i in ids if i not in {d.dataset_id for d in rows}]
        if wrong:
            ds = snap.dataset(wrong[0])
            raise UserError(
                f"{dataset_cell(ds, 'dataset_type')}: dataset {wrong[0]} has dataset_type {ds.dataset_type}, "
                f"but this command takes {dataset_type} datasets; name one of those with --dataset"
            )
        return [d for d in rows if d.dataset_id in ids]
    return [d for d in rows if d.enabled]


@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=1, help="CME trade dates of synthetic ES trades")] = 35,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same bytes)")] = 7,
    trades_per_day: Annotated[int, typer.Option("--trades-per-day", min=100)] = 300_000,
    start: Annotated[str, typer.Option("--start", help="first trade date (YYYY-MM-DD)")] = "2018-11-01",
    start_price: Annotated[
        float | None, typer.Option("--start-price", help="first ES price (default: the real S&P 500 level)")
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Sample data for a fresh machine: daily xlsx from arch's real data, synthetic ES trades as real DBN."""
    from runtime.demo_data.daily import write_daily_samples
    from runtime.demo_data.dbn_synth import write_synthetic_trades

    first = _iso_date(start, "--start")  # before anything is written
    a = _app(ctx, config, profile, "demo-data")
    incoming = a.paths.data_root / "incoming"
    files = write_daily_samples(incoming / "daily")
    say(f"daily: {len(files)} xlsx files in {incoming / 'daily'}")
    dbn = write_synthetic_trades(
        incoming / "databento",
        first,
        days,
        trades_per_day,
        seed,
        start_price=start_price,
    )
    say(
        f"intraday: {len(dbn)} DBN files ({days} trade dates x ~{trades_per_day:,} trades) in {incoming / 'databento'}"
    )


@ingest_app.command("daily")
def ingest_daily_cmd(
    ctx: typer.Context,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset id (repeatable)")] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Ingest daily_series datasets from xlsx (append-only vintages; revisions recorded)."""
    from runtime.ingest.daily import describe, ingest_daily

    a = _app(ctx, config, profile, "ingest-daily")
    for ds in _selected(a.snapshot, "daily_series", dataset):
        res = ingest_daily(ds, a.paths, a.registry, config_hash=a.snapshot.content_hash)
        say(describe(res))


@ingest_app.command("databento")
def ingest_databento_cmd(
    ctx: typer.Context,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset id (repeatable)")] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="ingest these DBN files (one dataset)")
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Ingest ES trades from DBN files (or the Databento API) into canonical parquet by CME trade date."""
    from runtime.ingest.databento import describe, ingest_databento
    from runtime.ingest.databento_api import download_for_dataset

    a = _app(ctx, config, profile, "ingest-databento")
    selected = _selected(a.snapshot, "intraday_trades", dataset)
    if file and len(selected) != 1:
        raise UserError("--file needs exactly one intraday dataset; add --dataset ID")
    for ds in selected:
        files = file
        if ds.source_type == "databento_api":
            files = [download_for_dataset(ds, a.paths, say=say)]
        say(describe(ingest_databento(ds, a.paths, a.registry, files, config_hash=a.snapshot.content_hash)))


def _iso_date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def _date_range(
    start: str | None, end: str | None, start_opt: str = "--start", end_opt: str = "--end"
) -> tuple[dt.date | None, dt.date | None]:
    """Both ends parsed, and refused when reversed (an empty range would otherwise do nothing quietly)."""
    first, last = _iso_date(start, start_opt), _iso_date(end, end_opt)
    if first is not None and last is not None and first > last:
        raise UserError(
            f"{start_opt} {first} is after {end_opt} {last}, so the range holds no trade date; "
            f"swap them: {start_opt} {last} {end_opt} {first}"
        )
    return first, last


@app.command("derive")
def derive_cmd(
    ctx: typer.Context,
    session: Annotated[
        list[str] | None, typer.Option("--session", help="RTH or FULL (repeatable; default both)")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="first trade date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last trade date (YYYY-MM-DD)")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="rebuild unchanged trade dates too")] = False,
    series: Annotated[
        str, typer.Option("--series", help="'front' (continuous front month) or one contract, e.g. ESZ8")
    ] = "front",
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset id (repeatable)")] = None,
    big_trade_floor: Annotated[
        int, typer.Option("--big-trade-floor", min=1, help="store big-trade events of at least N contracts")
    ] = 10,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Build bars_1m, footprint_base_1m, cvd_1m, big_trade_events (RTH and FULL), only for changed trade dates."""
    from runtime.derive import DeriveParams, build_derived, describe_report

    a = _app(ctx, config, profile, "derive")
    sessions = tuple(s.upper() for s in (session or ["RTH", "FULL"]))
    bad = [s for s in sessions if s not in ("RTH", "FULL")]
    if bad:
        raise UserError(f"--session {bad[0]}: use RTH or FULL")
    first, last = _date_range(start, end)
    params = DeriveParams(big_trade_floor=big_trade_floor)
    for ds in _selected(a.snapshot, "intraday_trades", dataset):
        report = build_derived(
            ds,
            a.paths,
            a.registry,
            sessions=sessions,
            start=first,
            end=last,
            rebuild=rebuild,
            series=series,
            params=params,
        )
        if (first or last) and not report.built and not report.up_to_date:
            raise UserError(
                f"{ds.dataset_id}: no ingested trade date of series {series} lies in "
                f"{first or 'the start'}..{last or 'the end'}; `backtest status` shows the coverage"
            )
        say(describe_report(report))


@app.command("charts")
def charts_cmd(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option("--demo", help="one RTH and one FULL chart of the latest trade date")
    ] = False,
    session: Annotated[str | None, typer.Option("--session", help="RTH (default) or FULL")] = None,
    day: Annotated[
        str | None, typer.Option("--day", help="trade date YYYY-MM-DD (default: the latest with trades)")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="trade dates shown, ending at --day (1)")] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="candle minutes or 'session' (RTH 5, FULL 15)")
    ] = None,
    footprint_interval: Annotated[
        int | None,
        typer.Option("--footprint-interval", help="footprint minutes (default: the candle interval)"),
    ] = None,
    big_size: Annotated[
        int | None, typer.Option("--big-size", help="big trades of at least N contracts (50)")
    ] = None,
    big_percentile: Annotated[
        float | None,
        typer.Option("--big-percentile", help="big trades above the P-th percentile of prior sessions"),
    ] = None,
    lookback: Annotated[
        int | None, typer.Option("--lookback", help="prior sessions of --big-percentile (20)")
    ] = None,
    big_mode: Annotated[
        str | None, typer.Option("--big-mode", help="sweep (aggressor events, default) or print")
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option("--layers", help="comma list of candles,footprint,bubbles,volume,cvd (all)"),
    ] = None,
    imbalance_ratio: Annotated[
        float | None, typer.Option("--imbalance-ratio", help="footprint imbalance ratio (3 = 3:1)")
    ] = None,
    imbalance_min: Annotated[
        int | None, typer.Option("--imbalance-min", help="contracts an imbalance needs at least (10)")
    ] = None,
    cvd_reset: Annotated[
        str | None, typer.Option("--cvd-reset", help="session (default) or continuous")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for the HTML (default RUNS_DIR/charts)")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="intraday dataset id")] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Write HTML charts (candles, footprint, big trades, volume, CVD) from the derived tables.

    The charts of one folder share one plotly.min.js; zoom in to see the footprint's bid x ask numbers.
    """
    from runtime.charts.api import ChartSource
    from runtime.charts.command import ChartOptions, run_charts

    a = _app(ctx, config, profile, "charts")
    ds = _selected(a.snapshot, "intraday_trades", [dataset] if dataset else None)[0]
    opts = ChartOptions(
        session=session,
        day=day,
        interval=interval,
        footprint_interval=footprint_interval,
        big_size=big_size,
        big_percentile=big_percentile,
        big_mode=big_mode,
        lookback=lookback,
        layers=layers,
        imbalance_ratio=imbalance_ratio,
        imbalance_min=imbalance_min,
        days=days,
        cvd_reset=cvd_reset,
    )
    src = ChartSource(a.paths.derived_dir, ds.dataset_id)
    out_dir = out or a.paths.runs_dir / "charts"
    for path in run_charts(src, out_dir, opts, demo=demo, paths=a.paths, ds=ds):
        say(f"chart: {path}")


# ---- expressions --------------------------------------------------------------------------------------


@app.command("compile")
def compile_cmd(
    ctx: typer.Context,
    expression: Annotated[
        str, typer.Argument(help="a DSL expression, e.g. 'zscore(lag(cta_flow,1),60) > 0'")
    ],
    frequency: Annotated[
        str | None, typer.Option("--frequency", help="daily | 1m (default: inferred)")
    ] = None,
    execution: Annotated[
        str,
        typer.Option("--execution", help="close | next_open | next_close | custom | none (not a decision)"),
    ] = "close",
    fmt: Annotated[str, typer.Option("--format", help="tree | json | dot | sql | plan")] = "tree",
    backend: Annotated[
        str, typer.Option("--backend", help="with --format plan: auto | ibis | numba")
    ] = "auto",
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="NAME=VALUE ...", help="bind $name: name=value")
    ] = None,
    slot: Annotated[
        list[str] | None,
        typer.Option("--slot", metavar="SLOT=NAME ...", help="fill {slot}: primary=cta_flow"),
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Check an expression against the workbook and print its typed DAG (kind, frequency, availability)."""
    import json

    from runtime.graphs import compile_expression, parse_assignments

    if fmt not in ("tree", "json", "dot", "sql", "plan"):
        raise UserError(f"--format {fmt!r} is not tree, json, dot, sql or plan")
    if backend not in ("auto", "ibis", "numba"):
        raise UserError(f"--backend {backend!r} is not auto, ibis or numba")
    from runtime.config.loader import snapshot_paths

    a = _app(ctx, config, profile, "compile")
    # Checking text needs no data: without a DATA_ROOT (unmounted drive) the workbook's columns are used.
    data_root = a.paths.data_root if snapshot_paths(a.snapshot, a.profile).data_root.is_dir() else None
    with _unbound_param_fix("--param {name}=<value>"):
        g = compile_expression(
            expression,
            a.snapshot,
            frequency=frequency,
            execution=execution,
            params=parse_assignments(param, "param"),
            slots={k: str(v) for k, v in parse_assignments(slot, "slot").items()},
            data_root=data_root,
        )
    if fmt == "json":
        sys.stdout.write(json.dumps(g.to_dict(), indent=1, sort_keys=True) + "\n")
    elif fmt == "dot":
        sys.stdout.write(g.to_dot() + "\n")
    elif fmt == "sql":
        from compiler.evaluate import ibis_sql

        sys.stdout.write(ibis_sql(g, params=parse_assignments(param, "param")) + "\n")
    elif fmt == "plan":
        from compiler.plan import plan_graph
        from runtime.evaluation.render import plan_table

        console.print(plan_table(plan_graph(g, mode=backend), g))
    else:
        console.print(g.render_tree(), markup=False, highlight=False)
        verdict = (
            f"accepted as a decision at execution {execution}" if execution != "none" else "not a decision"
        )
        say(
            f"{g.kind.value} {g.frequency.value}, availability {g.availability}, warm-up {g.warmup_text()}, "
            f"hash {g.hash[:16]}; {verdict}"
        )


def _eval_options(instrument, calendar, frequency, session, start, end, as_of, backend, params, no_cache):  # type: ignore[no-untyped-def]
    from runtime.evaluation.run import EvalOptions

    first, last = _date_range(start, end)
    return EvalOptions(
        instrument=instrument,
        calendar=calendar,
        frequency=frequency,
        session=session,
        start=first,
        end=last,
        as_of=_iso_date(as_of, "--as-of"),
        backend=backend,
        params=parse_params_json(params, '{"w": 20}'),
        cache=not no_cache,
    )


InstrumentOpt = Annotated[
    str | None, typer.Option("--instrument", help="INSTRUMENTS id (default: the first daily one)")
]
CalendarOpt = Annotated[str | None, typer.Option("--calendar", help="NYSE | CME_EQUITY (daily grids)")]
FrequencyOpt = Annotated[str | None, typer.Option("--frequency", help="daily | 1m (default: inferred)")]
SessionOpt = Annotated[str, typer.Option("--session", help="RTH | FULL (1m grids)")]
StartOpt = Annotated[str | None, typer.Option("--start", help="first output date YYYY-MM-DD")]
EndOpt = Annotated[str | None, typer.Option("--end", help="last output date YYYY-MM-DD")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="read daily data as known on this date")]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto | ibis | numba")]
ParamsOpt = Annotated[str | None, typer.Option("--params", help="$params as JSON: '{\"w\": 20}'")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="compute everything; read and write no cache")]


@contextlib.contextmanager
def _unbound_param_fix(flag: str) -> Iterator[None]:
    """An unbound `$name` typed on the command line is fixed with this command's own option (the DSL's
    generic fix names the workbook's params_json and the Python API)."""
    try:
        yield
    except DslError as e:
        if e.code == "param.unbound" and e.origin in (None, COMMAND_LINE) and e.text and e.span is not None:
            name = e.text[e.span.start : e.span.end].lstrip("$")
            e.fix = f"pass it: {flag.format(name=name)}"
        raise


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(help="a DSL expression or a feature id")],
    instrument: InstrumentOpt = None,
    calendar: CalendarOpt = None,
    frequency: FrequencyOpt = None,
    session: SessionOpt = "RTH",
    start: StartOpt = None,
    end: EndOpt = None,
    as_of: AsOfOpt = None,
    backend: BackendOpt = "auto",
    params: ParamsOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="write FILE.parquet or FILE.csv")] = None,
    no_cache: NoCacheOpt = False,
    nodes: Annotated[bool, typer.Option("--nodes", help="also list every node and where it ran")] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Evaluate an expression on its grid: head and tail, rows, missing, backends, time, cache hits."""
    from runtime.evaluation.render import nodes_table, summary_lines, values_table
    from runtime.evaluation.run import eval_expression, frame

    opts = _eval_options(
        instrument, calendar, frequency, session, start, end, as_of, backend, params, no_cache
    )
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise UserError(f"--out {out} must end in .parquet or .csv")
    a = _app(ctx, config, profile, "eval")
    with _unbound_param_fix("--params '{{\"{name}\": <value>}}'"):
        res = eval_expression(expression, a.snapshot, a.paths, a.registry, opts)
    console.print(res.graph.canonical, markup=False, highlight=False)
    console.print(values_table(res))
    if nodes:
        console.print(nodes_table(res))
    for line in summary_lines(res):
        say(line)
    if out is not None:
        import pyarrow as pa

        from runtime.storage.atomic import atomic_write_parquet, atomic_write_text

        df = frame(res)
        if out.suffix.lower() == ".parquet":
            atomic_write_parquet(pa.Table.from_pandas(df, preserve_index=False), out)
        else:
            atomic_write_text(out, df.to_csv(index=False))
        say(f"wrote {out} ({len(df):,} rows)")


@features_app.command("build")
def features_build(
    ctx: typer.Context,
    feature: Annotated[list[str] | None, typer.Option("--feature", help="feature id (repeatable)")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only features with this tag")] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    as_of: AsOfOpt = None,
    backend: BackendOpt = "auto",
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Build the enabled features, engineered features and gates into the cache (computed or cached)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from runtime.evaluation.render import builds_table
    from runtime.evaluation.run import build_features, select_features

    opts = _eval_options(None, None, None, "RTH", start, end, as_of, backend, None, False)
    a = _app(ctx, config, profile, "features-build")
    selected = select_features(a.snapshot, feature, tag)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("features", total=len(selected))

        def done(b):  # type: ignore[no-untyped-def]
            bar.update(task, advance=1, description=f"{b.feature_id}: {'cached' if b.cached else 'computed'}")
            LOG.info("feature %s %s in %.2f s", b.feature_id, "cached" if b.cached else "computed", b.seconds)

        builds = build_features(a.snapshot, a.paths, a.registry, selected, opts, on_done=done)
    console.print(builds_table(builds))
    n_cached = sum(b.cached for b in builds)
    say(f"{len(builds)} feature(s): {len(builds) - n_cached} computed, {n_cached} from the cache")


@features_app.command("show")
def features_show(
    ctx: typer.Context,
    feature_id: Annotated[str, typer.Argument(help="a feature, engineered feature or gate id")],
    tail: Annotated[int, typer.Option("--tail", help="rows to show from the end")] = 10,
    start: StartOpt = None,
    end: EndOpt = None,
    as_of: AsOfOpt = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """A feature's definition and its last values (from the cache when built)."""
    from runtime.evaluation.render import summary_lines, values_table
    from runtime.evaluation.run import eval_expression, select_features

    if tail < 1:
        raise UserError(f"--tail {tail} must be at least 1")
    a = _app(ctx, config, profile, "features-show")
    select_features(a.snapshot, [feature_id])  # unknown / disabled ids: a clear error
    opts = _eval_options(None, None, None, "RTH", start, end, as_of, "auto", None, False)
    res = eval_expression(feature_id, a.snapshot, a.paths, a.registry, opts)
    console.print(res.graph.render_tree(), markup=False, highlight=False)
    console.print(values_table(res, head=0, tail=tail, title=feature_id))
    for line in summary_lines(res):
        say(line)


# ---- status ------------------------------------------------------------------------------------------


@app.command()
def status(ctx: typer.Context, config: ConfigOpt = None, profile: ProfileOpt = None) -> None:
    """Active profile, paths, datasets with coverage, gaps, roll schedule and builds."""
    from runtime.status import collect_status, render_status

    a = _app(ctx, config, profile, "status")
    rep = collect_status(a.snapshot, a.paths, a.registry)
    render_status(rep, console)


# ---- docs / context pack -----------------------------------------------------------------------------


@app.command("context-pack")
def context_pack(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="only the line naming the file written")] = False,
    print_all: Annotated[bool, typer.Option("--print", help="print the whole pack, not its summary")] = False,
) -> None:
    """Write context_pack.md (repo, docs, snapshot, PATHS and data trees); print its summary (or all of it)."""
    from runtime.context_pack import build_context_pack

    root = find_project_root()
    o = _opts(ctx, config, profile)
    if o.config is not None:  # an explicit --config must be a snapshot: never paste an arbitrary file
        from runtime.config.loader import load_snapshot

        load_snapshot(o.config)
    pack = build_context_pack(root, config=o.config, profile=o.profile)
    if print_all:
        sys.stdout.write(pack.text)
    say(pack.summary().splitlines()[0] if quiet or print_all else pack.summary())


@docs_app.command("archive")
def docs_archive() -> None:
    """Copy design/ and instructions/ to archive/<timestamp>/."""
    from runtime.docs import archive_docs

    res = archive_docs(find_project_root())
    if res.created:
        say(f"archived design/ and instructions/ to {res.path}")
    else:
        say(f"docs unchanged, already archived at {res.path} (nothing written)")


@docs_app.command("update")
def docs_update(
    source: Annotated[
        Path, typer.Option("--from", help="folder with the new design/ and instructions/ files")
    ],
    add_new: Annotated[
        bool, typer.Option("--add-new", help="also add .md files that are not yet design docs")
    ] = False,
) -> None:
    """Archive the current docs, then overwrite them with the files in --from (spec 10.3)."""
    from runtime.docs import update_docs

    res = update_docs(find_project_root(), source, add_new=add_new)
    if res.archive is None:
        say("no previous docs to archive")
    else:
        verb = "archived to" if res.archive.created else "previous docs already archived at"
        say(f"{verb} {res.archive.path}")
    listed = ", ".join(w.as_posix() for w in res.written) or "none"
    say(f"updated {len(res.written)} file(s): {listed}")
    if res.unchanged:
        say(f"unchanged {len(res.unchanged)}: " + ", ".join(w.as_posix() for w in res.unchanged))


def main() -> None:
    """Console entry point: user errors -> message + exit 1, no traceback."""
    setup_logging()  # console output goes through say()/err_console; the log file gets everything
    LOG.info("argv: %s", " ".join(sys.argv[1:]))
    try:
        app(standalone_mode=False, prog_name="backtest")  # same name in help however it is started
    except ConfigValidationError as exc:
        err_console.print(f"[bold red]{len(exc.errors)} problem(s) in the workbook:[/]")
        for e in exc.errors:
            err_console.print(e.render(), markup=False, soft_wrap=True)
        LOG.error("config validation failed:\n%s", exc)
        raise SystemExit(1) from None
    except UserError as exc:
        err_console.print("[bold red]error:[/] " + escape(str(exc)), soft_wrap=True)
        LOG.error("%s", exc)
        raise SystemExit(1) from None
    except DslError as exc:  # an expression typed on the command line: caret message, exit 1
        err_console.print(exc.render(), markup=False, soft_wrap=True, highlight=False)
        LOG.error("%s", exc.render())
        raise SystemExit(1) from None
    except (typer.Exit, typer.Abort) as exc:
        raise SystemExit(getattr(exc, "exit_code", 1)) from None
    except OSError as exc:  # safety net: a path no command checked (unmounted drive, /proc/..., a lock)
        attach_fallback_log("-".join(a for a in sys.argv[1:3] if not a.startswith("-")) or "backtest")
        line = os_error_message(exc, LOG)
        LOG.error("%s", line, exc_info=exc)  # the traceback goes to the run log only
        err_console.print("[bold red]error:[/] " + escape(line), soft_wrap=True)
        raise SystemExit(1) from None
    except Exception as exc:  # usage errors (typer's bundled click): the message, exit 1 like user errors
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            LOG.error("usage: %s", exc)
            help_only = type(exc).__name__ == "NoArgsIsHelpError"  # bare `backtest` / `backtest ingest`
            raise SystemExit(0 if help_only or exc.exit_code == 0 else 1) from None
        raise
