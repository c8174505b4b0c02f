"""An independent reference of design/ENGINE.md: a plain Python event walk over rows, sharing no code with
runtime/engine/kernel.py (it does not import it, nor its contracts' codes).

Shape on purpose different from the kernel: decisions produce a list of events per row (fills at a price,
then the mark at the close); PnL and trades are computed by walking that timeline, and the metrics from
the resulting paths with numpy/pandas formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Col:
    """One parameter column, in workbook words."""

    execution_time: str = "next_open"
    price_model: str = "mid"
    spread_type: str = "none"
    spread_value: float = 0.0
    slippage_type: str = "none"
    slippage_value: float = 0.0
    commission_model: str = "none"
    commission_value: float = 0.0
    min_hold_days: int = 0
    cooldown_days: int = 0
    allow_flip_same_day: bool = True
    flat_at_session_end: bool = False
    mode: str = "discrete"
    allow_long: bool = True
    allow_short: bool = True
    allow_flat: bool = True
    scaling_rebalance: str = "daily"
    contracts_per_unit: float = 1.0


@dataclass
class Setup:
    close: list[float]
    open: list[float] | None = None
    custom: list[float] | None = None
    day: list[int] | None = None
    accounting: str = "contracts"
    multiplier: float = 1.0
    tick_size: float = 0.0
    initial_capital: float = 1_000_000.0
    trade_start: int = 0
    oos_start: int | None = None
    annualization_factor: float = 252.0
    risk_free_rate: float = 0.0
    extra: dict = field(default_factory=dict)


def _points(kind: str, value: float, price: float, tick: float) -> float:
    return {
        "none": 0.0,
        "ticks": value * tick,
        "cents": value / 100.0,
        "bps": price * value / 10_000.0,
        "pct": price * value / 100.0,
    }[kind]


def _costs(col: Col, s: Setup, units: float, price: float) -> tuple[float, float]:
    """(per-unit-proportional cost, per-fill fixed cost) of one side."""
    spread = _points(col.spread_type, col.spread_value, price, s.tick_size)
    paid = {"mid": 0.0, "side_aware": spread / 2.0, "bid_ask": spread / 2.0, "spread_adjusted": spread}[
        col.price_model
    ]
    slip = _points(col.slippage_type, col.slippage_value, price, s.tick_size)
    prop = units * (paid + slip) * s.multiplier
    fixed = 0.0
    notional = units * price * s.multiplier
    if col.commission_model == "per_contract":
        prop += col.commission_value * units
    elif col.commission_model == "per_trade":
        fixed = col.commission_value
    elif col.commission_model == "bps":
        prop += notional * col.commission_value / 10_000.0
    elif col.commission_model == "pct":
        prop += notional * col.commission_value / 100.0
    return prop, fixed


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x) + 0.0


def simulate(
    s: Setup,
    col: Col,
    signal: list[float],
    scaling: list[float] | None = None,
    entry_ok: list[bool] | None = None,
    frozen: list[bool] | None = None,
) -> dict:
    """Paths, trades and metrics of one column, per ENGINE.md."""
    T = len(s.close)
    day = list(range(T)) if s.day is None else list(s.day)
    last_bar = [r == T - 1 or day[r + 1] != day[r] for r in range(T)]
    entry_ok = [True] * T if entry_ok is None else list(entry_ok)
    frozen = [False] * T if frozen is None else list(frozen)
    m = s.multiplier
    lag = 0 if col.execution_time == "close" else 1

    def fill_price(r: int) -> float:
        if col.execution_time in ("close", "next_close"):
            return s.close[r]
        if col.execution_time == "next_open":
            return s.open[r]
        return s.custom[r]

    # state of the decision process
    pos = 0.0  # the position after every fill so far
    opened_day = None
    closed_day = None
    last_side = 0.0
    prev_side = 0.0
    size_lock = 0.0
    pending = None  # (target, decision day)
    equity = s.initial_capital
    row_net = [0.0] * T
    # the timeline walk state (PnL and trades)
    w_pos = 0.0
    w_px = None
    trades: list[dict] = []
    cur = None
    gross_p = [0.0] * T
    cost_p = [0.0] * T
    turn_p = [0.0] * T
    pos_path = [0.0] * T
    equity_p = [s.initial_capital] * T

    def want(r: int, held: float, eq_now: float) -> float:
        nonlocal last_side, prev_side, size_lock
        x = signal[r]
        side = 0.0
        if x == x and x > 0 and col.allow_long:
            side = 1.0
        if x == x and x < 0 and col.allow_short:
            side = -1.0
        if side == 0.0 and not col.allow_flat:
            side = last_side
        if side != 0.0:
            last_side = side
        if col.mode == "discrete":
            weight = side
        else:
            if col.scaling_rebalance == "daily" or side != prev_side:
                v = scaling[r]
                size_lock = v if (v == v and v > 0) else 0.0
            weight = side * size_lock
        prev_side = side
        if s.accounting == "contracts":
            return _round_half_away(weight * col.contracts_per_unit)
        if weight == 0:
            return 0.0
        keep = (
            held != 0
            and (held > 0) == (weight > 0)
            and not (col.mode == "scaled" and col.scaling_rebalance == "daily")
        )
        return held if keep else weight * eq_now / (s.close[r] * m)

    def gate(r: int, held: float, target: float) -> float:
        if frozen[r] or target == held:
            return held
        bigger_same_side = held * target > 0 and abs(target) > abs(held)
        if (
            held != 0
            and col.min_hold_days > 0
            and day[r] - opened_day < col.min_hold_days
            and not bigger_same_side
        ):
            return held
        if held * target < 0:  # a flip
            if not entry_ok[r] or col.cooldown_days > 0 or not col.allow_flip_same_day:
                return 0.0
            return target
        if held == 0:
            in_cooldown = (
                col.cooldown_days > 0 and closed_day is not None and day[r] - closed_day <= col.cooldown_days
            )
            return 0.0 if (not entry_ok[r] or in_cooldown) else target
        if bigger_same_side and not entry_ok[r]:
            return held
        return target

    def apply_fill(new: float, dday: int) -> None:
        nonlocal pos, opened_day, closed_day
        if pos != 0 and (new == 0 or new * pos < 0):
            closed_day = dday
        if new != 0 and (pos == 0 or new * pos < 0):
            opened_day = dday
        pos = new

    def walk(r: int, kind: str, price: float, new: float = 0.0, tag: str = "") -> None:
        """Advance the PnL timeline to `price` and apply a fill (kind 'fill') or just mark (kind 'mark')."""
        nonlocal w_pos, w_px, cur
        g = 0.0 if w_px is None else w_pos * (price - w_px) * m
        gross_p[r] += g
        if cur is not None:
            cur["pnl"] += g
        w_px = price
        if kind == "mark" or new == w_pos:
            return
        units = abs(new - w_pos)
        prop, fixed = _costs(col, s, units, price)
        cost_p[r] += prop + fixed
        turn_p[r] += units * price * m
        if w_pos != 0 and (new == 0 or new * w_pos < 0):
            mine = prop * abs(w_pos) / units + fixed
            cur["pnl"] -= mine
            cur["costs"] += mine
            cur.update(exit_row=r, exit_price=price, open=False)
            trades.append(cur)
            cur = None
            if new != 0:
                rest = prop - prop * abs(w_pos) / units
                cur = dict(entry_row=r, entry_price=price, side=math.copysign(1, new), contracts=abs(new),
                           pnl=-rest, costs=rest)  # fmt: skip
        elif w_pos == 0:
            cur = dict(entry_row=r, entry_price=price, side=math.copysign(1, new), contracts=abs(new),
                       pnl=-(prop + fixed), costs=prop + fixed)  # fmt: skip
        else:
            cur["pnl"] -= prop + fixed
            cur["costs"] += prop + fixed
            cur["contracts"] = max(cur["contracts"], abs(new))
        w_pos = new

    for r in range(T):
        if r < s.trade_start:
            w_px = s.close[r]
            continue
        # fill of the previous row's decision
        if pending is not None:
            target, dday = pending
            pending = None
            p = fill_price(r)
            if target != pos and p == p:
                walk(r, "fill", p, target)
                apply_fill(target, dday)
        if lag == 1:
            walk(r, "mark", s.close[r])
            pos_path[r] = pos
            if col.flat_at_session_end and last_bar[r] and pos != 0:
                walk(r, "fill", s.close[r], 0.0)
                apply_fill(0.0, day[r])
            eq_now = equity + gross_p[r] - cost_p[r]
            if r < T - 1:
                pending = (gate(r, pos, want(r, pos, eq_now)), day[r])
        else:
            walk(r, "mark", s.close[r])
            eq_now = equity + gross_p[r] - cost_p[r]
            new = gate(r, pos, want(r, pos, eq_now))
            if new != pos:
                walk(r, "fill", s.close[r], new)
                apply_fill(new, day[r])
            pos_path[r] = pos
            if col.flat_at_session_end and last_bar[r] and pos != 0:
                walk(r, "fill", s.close[r], 0.0)
                apply_fill(0.0, day[r])
        row_net[r] = gross_p[r] - cost_p[r]
        equity += row_net[r]
        equity_p[r] = equity
    if cur is not None:
        cur.update(exit_row=T - 1, exit_price=s.close[T - 1], open=True)
        trades.append(cur)
    for t in trades:
        t["hold_bars"] = t["exit_row"] - t["entry_row"]
    paths = {
        "equity": np.array(equity_p),
        "pnl": np.array(row_net),
        "gross": np.array(gross_p),
        "costs": np.array(cost_p),
        "position": np.array(pos_path),
        "traded_notional": np.array(turn_p),
    }
    return {"paths": paths, "trades": trades, "metrics": metrics(s, paths, trades, day)}


def metrics(s: Setup, paths: dict, trades: list[dict], day: list[int]) -> dict:
    """Segment metrics with pandas/numpy formulas on the paths (ENGINE.md section 9)."""
    T = len(s.close)
    oos = T if s.oos_start is None else s.oos_start
    rows = np.arange(T)
    segs = {
        "full": (rows >= s.trade_start),
        "is": (rows >= s.trade_start) & (rows < oos),
        "oos": (rows >= oos),
    }
    A = s.annualization_factor
    eq = paths["equity"]
    out = {}
    for name, mask in segs.items():
        res: dict = {}
        idx = np.flatnonzero(mask)
        seg_trades = [t for t in trades if mask[t["exit_row"]]]
        res["n_trades"] = float(len(seg_trades))
        res["total_pnl"] = float(paths["pnl"][idx].sum())
        res["gross_pnl"] = float(paths["gross"][idx].sum())
        res["total_costs"] = float(paths["costs"][idx].sum())
        res["n_bars"] = float(len(idx))
        if len(idx) == 0:
            out[name] = res
            continue
        e_before = s.initial_capital if idx[0] == 0 else eq[idx[0] - 1]  # warm-up rows hold the capital
        e = pd.Series(eq[idx])
        df = pd.DataFrame({"day": np.asarray(day)[idx], "pnl": paths["pnl"][idx], "eq": eq[idx]})
        daily = df.groupby("day", sort=False).agg(pnl=("pnl", "sum"), eq=("eq", "last"))
        start_eq = np.concatenate([[e_before], daily["eq"].to_numpy()[:-1]])
        ret = daily["pnl"].to_numpy() / start_eq
        ex = ret - s.risk_free_rate / A
        n = len(ret)
        res["n_days"] = float(n)
        res["end_equity"] = float(e.iloc[-1])
        res["cagr"] = -1.0 if e.iloc[-1] <= 0 else float((e.iloc[-1] / e_before) ** (A / n) - 1)
        peak = np.maximum.accumulate(np.concatenate([[e_before], e.to_numpy()]))[1:]
        dd = (peak - e.to_numpy()) / peak
        res["max_drawdown"] = float(dd.max())
        under = (e.to_numpy() < peak).astype(int)
        longest = run = 0
        for u in under:
            run = run + 1 if u else 0
            longest = max(longest, run)
        res["longest_drawdown_bars"] = float(longest)
        # a constant series has std 0 exactly (np.std would leave ~1e-19 of rounding noise)
        sd = (0.0 if np.all(ex == ex[0]) else float(np.std(ex, ddof=1))) if n > 1 else float("nan")
        res["volatility"] = sd * math.sqrt(A)
        res["sharpe"] = float(np.mean(ex) / sd * math.sqrt(A)) if n > 1 and sd > 0 else float("nan")
        down = math.sqrt(float(np.mean(np.minimum(ex, 0.0) ** 2)))
        res["sortino"] = float(np.mean(ex) / down * math.sqrt(A)) if down > 0 else float("nan")
        res["calmar"] = res["cagr"] / res["max_drawdown"] if res["max_drawdown"] > 0 else float("nan")
        res["exposure"] = float(np.mean(paths["position"][idx] != 0))
        if "traded_notional" in paths:
            res["turnover"] = float(paths["traded_notional"][idx].sum() / np.mean(start_eq) * A / n)
        pnls = np.array([t["pnl"] for t in seg_trades])
        if len(pnls):
            res["win_rate"] = float(np.mean(pnls > 0))
            res["avg_trade"] = float(pnls.mean())
            res["avg_hold_bars"] = float(np.mean([t["hold_bars"] for t in seg_trades]))
            wins, losses = pnls[pnls > 0].sum(), -pnls[pnls < 0].sum()
            res["profit_factor"] = (
                float(wins / losses) if losses > 0 else (math.inf if wins > 0 else float("nan"))
            )
        else:
            for k in ("win_rate", "avg_trade", "avg_hold_bars", "profit_factor"):
                res[k] = float("nan")
        out[name] = res
    return out
