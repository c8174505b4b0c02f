"""A BACKTESTS row -> a CompiledBacktest: checked graphs (signal, gates, scaling) and the engine's specs.

Why its own step: every input problem (unknown id, a missing instrument, an empty range, an OOS window
longer than the range, lookahead at the execution time) must be found before anything is loaded or
written, and named by its cell with a fix. The graphs are checked as *decisions* at the backtest's
execution time, so the availability check (not the kernel) proves the signal was known before its fill.

Gates (design/ENGINE.md section 5): the entry mask is STRATEGIES.gate_expr itself; the freeze mask is
"the same expression with every entry_only gate replaced by true is closed", i.e. the combination of the
entry_and_exit gates alone. No entry_and_exit gate in the expression: never frozen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dsl
from runtime.backtest.params import ParamSplit, check_session, scale_costs, split_params, with_overrides
from runtime.config.expressions import cell_of
from runtime.contracts import ConfigSnapshot, UserError
from runtime.engine.contracts import (
    ColumnSpec,
    CostSpec,
    ExecutionSpec,
    InstrumentSpec,
    PositionSpec,
    RulesSpec,
)
from runtime.graphs import catalog_from_snapshot

FREQUENCIES = {"daily": dsl.Frequency.DAILY, "1m": dsl.Frequency.MINUTE}


@dataclass(frozen=True)
class CompiledExpr:
    """One checked expression and the cell it comes from (named in every message about it)."""

    graph: dsl.Graph
    cell: str
    text: str


@dataclass(frozen=True)
class CompiledBacktest:
    """Everything `run_backtest` needs, decided from the snapshot alone (no data read yet)."""

    backtest_id: str
    strategy_id: str
    instrument_id: str
    snapshot_hash: str
    frequency: str  # daily | 1m
    session: str  # RTH for 1m grids (the derived session the grid is built from)
    execution_time: str
    signal: CompiledExpr
    entry_gate: CompiledExpr | None
    freeze_gate: CompiledExpr | None
    scaling: CompiledExpr | None
    gate_modes: tuple[tuple[str, str], ...]
    params: Mapping[str, Any]
    column: ColumnSpec
    instrument: InstrumentSpec
    initial_capital: float
    annualization_factor: float
    risk_free_rate: float
    start: dt.date
    end: dt.date
    oos_months: int
    oos_from: dt.date | None  # OOS = sessions after this date (end - oos_months); None = no OOS
    as_of: dt.date | None
    prices_dataset: str
    open_col: str | None
    close_col: str
    calendar: str
    intraday_prices: bool
    reporting: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: custom execution: the fill time HH:MM in exchange time (America/Chicago for CME), else None
    custom_time: str | None = None
    #: bar | daily | weekly | monthly: which rows decide (design/ENGINE.md section 6, rebalance_rule)
    rebalance_rule: str = "bar"

    @property
    def graphs(self) -> dict[str, CompiledExpr]:
        """The graphs to evaluate, by role (signal first)."""
        out = {"signal": self.signal}
        for role in ("entry_gate", "freeze_gate", "scaling"):
            g = getattr(self, role)
            if g is not None and (role != "scaling" or self.column.position.mode == "scaled"):
                out[role] = g
        return out


def _cell(sheet: str, row: Any, header: str) -> str:
    return f"{sheet}!{cell_of(sheet, row, header)}"


def _find(snap: ConfigSnapshot, sheet: str, key: str, value: Any) -> Any:
    return next((r for r in snap.rows(sheet) if getattr(r, key) == value), None)


def months_before(d: dt.date, months: int) -> dt.date:
    """`d` minus whole calendar months, the day clipped to the month's end (2018-03-31 - 1 = 2018-02-28)."""
    import calendar

    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _minutes_of(hhmm: str) -> int:
    h, m = hhmm.split(":")[:2]
    return int(h) * 60 + int(m)


def _custom_time(bt: Any, ds: Any) -> str:
    """The custom fill time HH:MM, checked inside the session's hours [rth_start, rth_end) in exchange time
    (DATASETS.rth_start/rth_end, America/Chicago for CME): outside them no bar of the session is there."""
    cell = _cell("BACKTESTS", bt, "custom_execution_time")
    lo, hi = ds.rth_hours
    text = bt.custom_execution_time
    if not text:
        raise UserError(
            f"{cell}: execution_time custom needs a fill time; fix: enter HH:MM in exchange time "
            f"(America/Chicago for CME) between {lo} and {hi}, e.g. 09:00"
        )
    try:
        t = _minutes_of(str(text))
    except ValueError:
        raise UserError(f"{cell}: '{text}' is not a time HH:MM; fix: e.g. 09:00") from None
    if not _minutes_of(lo) <= t < _minutes_of(hi):
        raise UserError(
            f"{cell}: custom_execution_time {text} is outside the RTH session of {ds.dataset_id} "
            f"({lo}-{hi} exchange time, America/Chicago), so no 1m bar of the session is at or after it; "
            f"fix: a time from {lo} to before {hi}, e.g. 09:00"
        )
    return f"{t // 60:02d}:{t % 60:02d}"


def _replace_names(e: dsl.Expr, names: set[str]) -> dsl.Expr:
    """The expression with every Name in `names` replaced by the literal true (iterative rebuild)."""
    if isinstance(e, dsl.Name):
        return dsl.Bool(True, e.span) if e.name in names else e
    if isinstance(e, dsl.Unary):
        return dataclasses.replace(e, operand=_replace_names(e.operand, names))
    if isinstance(e, dsl.Binary):
        return dataclasses.replace(
            e, left=_replace_names(e.left, names), right=_replace_names(e.right, names)
        )
    if isinstance(e, dsl.Call):
        args = tuple(_replace_names(a, names) for a in e.args)
        kwargs = tuple(dataclasses.replace(k, value=_replace_names(k.value, names)) for k in e.kwargs)
        return dataclasses.replace(e, args=args, kwargs=kwargs)
    return e


def _names(e: dsl.Expr) -> set[str]:
    out: set[str] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, dsl.Name):
            out.add(x.name)
        elif isinstance(x, dsl.Unary):
            stack.append(x.operand)
        elif isinstance(x, dsl.Binary):
            stack += [x.left, x.right]
        elif isinstance(x, dsl.Call):
            stack += [*x.args, *(k.value for k in x.kwargs)]
    return out


def compile_backtest(
    snap: ConfigSnapshot,
    backtest_id: str,
    params: Mapping[str, Any] | None = None,
    *,
    catalog: dsl.Catalog | None = None,
    sessions: dict[str, Any] | None = None,
) -> CompiledBacktest:
    """Check one backtest against the snapshot; every problem is a UserError naming `SHEET!CELL` and a fix.

    `params`: one parameter set (contract A, runtime/backtest/params.py): `$names`, `<feature>.<name>` and
    `backtest.<column>` keys. `catalog`: the snapshot's catalog when the caller compiles many sets, and
    `sessions` a dict the caller keeps for them (one dsl.CheckSession per distinct feature override)."""
    bt = _find(snap, "BACKTESTS", "backtest_id", backtest_id)
    if bt is None:
        import difflib

        ids = [r.backtest_id for r in snap.rows("BACKTESTS")]
        near = difflib.get_close_matches(backtest_id, ids, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise UserError(
            f"unknown backtest '{backtest_id}': BACKTESTS column A has {', '.join(ids) or 'no row'}; "
            f"{hint}fix: name one of those, or add the row and run `backtest config export`"
        )
    split = split_params(snap, backtest_id, params)  # every key of the set checked before anything else
    bt = with_overrides(bt, split)  # backtest.<column> values replace the row's (its cells still name it)
    s = _find(snap, "STRATEGIES", "strategy_id", bt.strategy_id)
    if s is None:
        raise UserError(
            f"{_cell('BACKTESTS', bt, 'strategy_id')}: strategy '{bt.strategy_id}' is not in STRATEGIES; "
            "fix: name an existing strategy_id, then `backtest config export`"
        )
    inst = _find(snap, "INSTRUMENTS", "instrument_id", s.instrument_id)
    if inst is None:
        raise UserError(
            f"{_cell('STRATEGIES', s, 'instrument_id')}: instrument '{s.instrument_id}' is not in INSTRUMENTS; "
            "fix: name an existing instrument_id, then `backtest config export`"
        )
    ds = next((d for d in snap.datasets if d.dataset_id == inst.prices_dataset_id), None)
    if ds is None or not inst.close_col:
        raise UserError(
            f"{_cell('INSTRUMENTS', inst, 'prices_dataset_id')}: instrument {inst.instrument_id} has no prices "
            f"(dataset '{inst.prices_dataset_id}' is not in DATASETS); fix: point it at a DATASETS row with "
            "its close prices"
        )
    intraday = ds.dataset_type == "intraday_trades"
    freq = bt.frequency or "daily"
    if freq == "1m" and not intraday:
        raise UserError(
            f"{_cell('BACKTESTS', bt, 'frequency')}: backtest {backtest_id} is on 1m bars but instrument "
            f"{inst.instrument_id} is priced from the daily dataset {ds.dataset_id}; fix: frequency daily, "
            "or a strategy on an intraday instrument"
        )
    ex = bt.execution_time
    custom_time = None
    if ex == "custom":
        if not intraday:
            raise UserError(
                f"{_cell('BACKTESTS', bt, 'execution_time')}: custom execution fills at "
                f"{bt.custom_execution_time or 'HH:MM'} from 1m bars, and instrument {inst.instrument_id} has "
                f"none ({ds.dataset_id} is {ds.dataset_type}); fix: execution_time next_open or next_close"
            )
        if freq == "1m":
            raise UserError(
                f"{_cell('BACKTESTS', bt, 'execution_time')}: custom execution on a 1m grid is not supported "
                "(its next bar is the next minute); fix: next_open, or frequency daily"
            )
        custom_time = _custom_time(bt, ds)
    if ex == "next_open" and not inst.open_col:
        raise UserError(
            f"{_cell('INSTRUMENTS', inst, 'open_col')}: next_open execution needs the open prices of "
            f"{inst.instrument_id}; fix: fill open_col, or execution_time next_close"
        )
    if bt.start_date > bt.end_date:
        raise UserError(
            f"{_cell('BACKTESTS', bt, 'start_date')}: start_date {bt.start_date} is after end_date "
            f"{bt.end_date} ({_cell('BACKTESTS', bt, 'end_date')}), so the range is empty; fix: swap them"
        )
    oos_from = None
    if bt.oos_last_x_months:
        oos_from = months_before(bt.end_date, bt.oos_last_x_months)
        if oos_from <= bt.start_date:
            raise UserError(
                f"{_cell('BACKTESTS', bt, 'oos_last_x_months')}: the last {bt.oos_last_x_months} months "
                f"(after {oos_from}) cover the whole range {bt.start_date}..{bt.end_date}, leaving no "
                "in-sample; fix: fewer months, or an earlier start_date"
            )
    t = _find(snap, "SIGNAL_TEMPLATES", "template_id", s.signal_template_id)
    if t is None or not t.signal_expr:
        raise UserError(
            f"{_cell('STRATEGIES', s, 'signal_template_id')}: template '{s.signal_template_id}' is not in "
            "SIGNAL_TEMPLATES (or has no signal_expr); fix: name an existing template_id"
        )
    binding = {**dict(t.default_params_json or {}), **dict(s.params_json or {}), **split.expression}
    base = catalog if catalog is not None else catalog_from_snapshot(snap)
    catalog, session = check_session(base, split, sessions)  # the set's feature overrides in the catalog
    fr = FREQUENCIES[freq]
    execution = dsl.Execution[ex.upper()]
    where = f"backtest {backtest_id}, execution {ex}"

    def check(
        text: str, sheet: str, row: Any, header: str, slots: Mapping[str, str] | None = None
    ) -> CompiledExpr:
        cell = _cell(sheet, row, header)
        o = dsl.Origin(sheet, cell.split("!")[1], header)
        try:
            g = dsl.check(
                text,
                catalog,
                params=binding,
                slots=dict(slots or {}),
                frequency=fr,
                decision=True,
                execution=execution,
                origin=o,
                session=session,
            )
        except dsl.DslError as e:
            raise UserError(f"{cell} ({where}): {e.render()}") from None
        return CompiledExpr(g, cell, text)

    slots = {k: v for k in ("primary", "secondary") if (v := getattr(s, f"{k}_feature_id"))}
    sig = check(t.signal_expr, "SIGNAL_TEMPLATES", t, "signal_expr", slots)
    if sig.graph.kind is dsl.Kind.BOOL:
        raise UserError(
            f"{sig.cell}: the signal is true/false; it must give the desired position (-1, 0, +1); "
            "fix: wrap it, e.g. if(condition, 1, 0)"
        )
    entry = freeze = None
    gate_modes: list[tuple[str, str]] = []
    if s.gate_expr:
        entry = check(s.gate_expr, "STRATEGIES", s, "gate_expr")
        if entry.graph.kind is not dsl.Kind.BOOL:
            raise UserError(f"{entry.cell}: gate_expr must be true/false; fix: compare it, e.g. vol < 0.2")
        gates = {g.gate_id: g for g in snap.rows("GATES")}
        ast = dsl.parse(s.gate_expr)
        named = sorted(_names(ast) & set(gates))
        gate_modes = [(g, gates[g].mode) for g in named]
        soft = {g for g, m in gate_modes if m == "entry_only"}
        if any(m == "entry_and_exit" for _, m in gate_modes):
            text = dsl.format_expr(_replace_names(ast, soft)) if soft else s.gate_expr
            freeze = check(text, "STRATEGIES", s, "gate_expr")
    scaling = None
    if s.scaling_expr:
        scaling = check(s.scaling_expr, "STRATEGIES", s, "scaling_expr")
    mode = s.position_mode or "discrete"
    if mode == "scaled" and scaling is None:
        raise UserError(
            f"{_cell('STRATEGIES', s, 'scaling_expr')}: position_mode scaled needs a scaling_expr; "
            "fix: e.g. clip(0.15 / lag(spx_vol_20, 1), 0, 2), or position_mode discrete"
        )
    position = PositionSpec.from_config(
        tuple(s.position_values),
        t.supports_long_short,
        t.supports_flat,
        mode=mode,
        scaling_rebalance=bt.scaling_rebalance or "daily",
    )
    costs = CostSpec(
        price_model=bt.execution_price_model or "mid",
        spread_type=bt.spread_model_type or "none",
        spread_value=float(bt.spread_value or 0.0),
        slippage_type=bt.slippage_model_type or "none",
        slippage_value=float(bt.slippage_value or 0.0),
        commission_model=bt.commission_model or "none",
        commission_value=float(bt.commission_value or 0.0),
    )
    rules = RulesSpec(
        min_hold_days=int(bt.min_hold_days or 0),
        cooldown_days=int(bt.cooldown_days or 0),
        allow_flip_same_day=bool(bt.allow_flip_same_day),
        # BACKTESTS extension; blank: RTH intraday flattens at the session end, daily holds overnight
        flat_at_session_end=bool(
            freq == "1m" if getattr(bt, "flat_at_session_end", None) is None else bt.flat_at_session_end
        ),
    )
    try:
        instrument = InstrumentSpec.from_return_model(
            inst.return_model or "pct", float(inst.multiplier or 1.0), float(inst.tick_size or 0.0)
        )
    except ValueError as e:
        raise UserError(
            f"{_cell('INSTRUMENTS', inst, 'return_model')}: {e}; fix: price_diff or pct"
        ) from None
    metrics = [m for m in snap.rows("METRICS") if m.enabled]
    ann = float(metrics[0].annualization_factor) if metrics else 252.0
    rf = float(metrics[0].risk_free_rate) if metrics else 0.0
    rep = next(
        (
            r
            for r in snap.rows("REPORTING")
            if r.enabled and r.target_type == "backtest" and r.target_id == backtest_id
        ),
        None,
    )
    reporting = {
        "generate_tearsheet": True if rep is None else bool(rep.generate_tearsheet),
        "save_equity_curve": True if rep is None else bool(rep.save_equity_curve),
        "save_positions": True if rep is None else bool(rep.save_positions),
        "save_signals": True if rep is None else bool(rep.save_signals),
        "save_feature_debug": False if rep is None else bool(rep.save_feature_debug),
    }
    notes = []
    if not bt.enabled:
        notes.append(f"{_cell('BACKTESTS', bt, 'enabled')}: backtest {backtest_id} is disabled; run anyway")
    if mode == "discrete" and scaling is not None:
        notes.append(f"{scaling.cell}: scaling_expr is not used in discrete position mode")
    rebalance = bt.rebalance_rule or "daily"
    if rebalance == "daily" and freq == "1m":
        notes.append(
            f"{_cell('BACKTESTS', bt, 'rebalance_rule')}: rebalance_rule daily on 1m bars decides once per "
            "session (its first bar); set bar to decide on every bar"
        )
    compiled = CompiledBacktest(
        backtest_id=backtest_id,
        strategy_id=s.strategy_id,
        instrument_id=inst.instrument_id,
        snapshot_hash=snap.content_hash,
        frequency=freq,
        session="RTH",
        execution_time=ex,
        signal=sig,
        entry_gate=entry,
        freeze_gate=freeze,
        scaling=scaling,
        gate_modes=tuple(gate_modes),
        params=dict(sorted(binding.items())),
        column=ColumnSpec(ExecutionSpec(ex), costs, rules, position),
        instrument=instrument,
        initial_capital=float(bt.initial_capital or 1_000_000.0),
        annualization_factor=ann,
        risk_free_rate=rf,
        start=bt.start_date,
        end=bt.end_date,
        oos_months=int(bt.oos_last_x_months or 0),
        oos_from=oos_from,
        as_of=bt.as_of_date,
        prices_dataset=ds.dataset_id,
        open_col=inst.open_col,
        close_col=inst.close_col,
        calendar=inst.calendar or "NYSE",
        intraday_prices=intraday,
        reporting=reporting,
        notes=tuple(notes),
        custom_time=custom_time,
        rebalance_rule=rebalance,
    )
    return _bind_set(compiled, split, binding)


def _bind_set(cb: CompiledBacktest, split: ParamSplit, binding: Mapping[str, Any]) -> CompiledBacktest:
    """The parameter set's last touches: `backtest.cost_multiplier` scales every cost value, and `params`
    becomes the full binding (strategy defaults + every key given) so a run id or a trial is reproducible
    from it alone."""
    full = {**dict(binding), **{k: v for k, v in split.given.items() if "." in k}}
    column = dataclasses.replace(cb.column, costs=scale_costs(cb.column.costs, split.cost_multiplier))
    return dataclasses.replace(cb, params=dict(sorted(full.items())), column=column)
