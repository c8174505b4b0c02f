"""The engine kernel: one Numba pass per parameter column that simulates positions, fills, costs and PnL
and accumulates the metrics on the fly (design/ENGINE.md is the specification).

Why this shape: parameter sweeps are the hot path (optimization calls run_many with thousands of columns),
so the kernel is column-major over K columns, keeps O(K) state (no T x K equity), and the same code records
the full paths of one column for run_one. Pure: arrays and engine contracts in, results out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from runtime.engine.contracts import (
    ACCOUNTING,
    METRIC_NAMES,
    PARAM_FIELDS,
    PATH_FIELDS,
    SEGMENTS,
    TRADE_FIELDS,
    ColumnSpec,
    Gates,
    ManyResult,
    Market,
    RunResult,
    RunSpec,
)

_NM = len(METRIC_NAMES)
_NT = len(TRADE_FIELDS)

# accumulator slots per segment (private to the kernel)
_A_BARS, _A_NET, _A_GROSS, _A_COST, _A_TURN, _A_EXPO = 0, 1, 2, 3, 4, 5
_A_E0, _A_E1, _A_PEAK, _A_MDD, _A_DDLEN, _A_DDMAX = 6, 7, 8, 9, 10, 11
_A_DAYS, _A_MEAN, _A_M2, _A_DOWN2, _A_ESUM = 12, 13, 14, 15, 16
_A_NTR, _A_NWIN, _A_WIN, _A_LOSS, _A_TPNL, _A_HOLD, _A_STARTED = 17, 18, 19, 20, 21, 22, 23
_NA = 24


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _points(kind: int, value: float, price: float, tick: float) -> float:
    """A spread/slippage amount in price points per unit (ticks, cents, bps, pct of the fill price)."""
    if kind == 1:
        return value * tick
    if kind == 2:
        return value * 0.01
    if kind == 3:
        return value * 1e-4 * price
    if kind == 4:
        return value * 0.01 * price
    return 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fill_cost(dq: float, price: float, prm: np.ndarray, mult: float, tick: float) -> tuple[float, float]:
    """(variable, fixed) cost of trading |dq| units at `price`: spread share + slippage + commission."""
    spread = _points(int(prm[2]), prm[3], price, tick)
    pm = int(prm[1])
    half = 0.0
    if pm == 1:
        half = 0.5 * spread
    elif pm == 2:
        half = spread
    slip = _points(int(prm[4]), prm[5], price, tick)
    var = dq * (half + slip) * mult
    fixed = 0.0
    cm = int(prm[6])
    cv = prm[7]
    if cm == 1:
        var += cv * dq
    elif cm == 2:
        fixed = cv
    elif cm == 3:
        var += cv * 1e-4 * dq * price * mult
    elif cm == 4:
        var += cv * 0.01 * dq * price * mult
    return var, fixed


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sign(x: float) -> float:
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _round_away(x: float) -> float:
    """Round half away from zero (2.5 -> 3, -2.5 -> -3): whole contracts, symmetric for longs and shorts."""
    if x >= 0.0:
        return np.floor(x + 0.5)
    return -np.floor(-x + 0.5)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _emit_trade(
    acc, seg, pnl, hold, rec, trades, ntr, entry_row, exit_row, entry_px, exit_px, side, size, cost, is_open
):
    """Count a finished trade into the full segment and its exit row's segment; record it for run_one."""
    for s in (0, seg):
        acc[s, _A_NTR] += 1.0
        acc[s, _A_TPNL] += pnl
        acc[s, _A_HOLD] += hold
        if pnl > 0.0:
            acc[s, _A_NWIN] += 1.0
            acc[s, _A_WIN] += pnl
        elif pnl < 0.0:
            acc[s, _A_LOSS] -= pnl
    if rec:
        t = trades[ntr]
        t[0] = entry_row
        t[1] = exit_row
        t[2] = entry_px
        t[3] = exit_px
        t[4] = side
        t[5] = size
        t[6] = pnl
        t[7] = cost
        t[8] = hold
        t[9] = is_open
        return ntr + 1
    return ntr


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(acc: np.ndarray, out: np.ndarray, ann: float) -> None:
    """Metrics of one segment from its accumulators (formulas: design/ENGINE.md section 9)."""
    nan = np.nan
    for i in range(out.shape[0]):
        out[i] = nan
    bars = acc[_A_BARS]
    days = acc[_A_DAYS]
    ntr = acc[_A_NTR]
    out[0] = acc[_A_NET]
    out[13] = acc[_A_GROSS]
    out[14] = acc[_A_COST]
    out[8] = ntr
    out[17] = bars
    out[18] = days
    if bars == 0.0:
        return
    e0 = acc[_A_E0]
    e1 = acc[_A_E1]
    out[19] = e1
    out[5] = acc[_A_MDD]
    out[16] = acc[_A_DDMAX]
    out[12] = acc[_A_EXPO] / bars
    if days > 0.0:
        if e1 <= 0.0:
            out[1] = -1.0
        else:
            out[1] = (e1 / e0) ** (ann / days) - 1.0
        mean_e = acc[_A_ESUM] / days
        if mean_e > 0.0:
            out[7] = acc[_A_TURN] / mean_e * ann / days
        down = np.sqrt(acc[_A_DOWN2] / days)
        if down > 0.0:
            out[4] = acc[_A_MEAN] / down * np.sqrt(ann)
    if days > 1.0:
        sd = np.sqrt(acc[_A_M2] / (days - 1.0))
        out[2] = sd * np.sqrt(ann)
        if sd > 0.0:
            out[3] = acc[_A_MEAN] / sd * np.sqrt(ann)
    if out[5] > 0.0:
        out[6] = out[1] / out[5]
    if ntr > 0.0:
        out[9] = acc[_A_NWIN] / ntr
        out[11] = acc[_A_TPNL] / ntr
        out[15] = acc[_A_HOLD] / ntr
        if acc[_A_LOSS] > 0.0:
            out[10] = acc[_A_WIN] / acc[_A_LOSS]
        elif acc[_A_WIN] > 0.0:
            out[10] = np.inf


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _flush(a, bars, net, gross, cost, turn, expo, e0, e1, mdd, ddmax, days, mean, m2, down2, esum) -> None:
    """Store one finished segment's scalars (the trade counts are already in `a`)."""
    a[_A_STARTED] = 1.0
    a[_A_BARS] = bars
    a[_A_NET] = net
    a[_A_GROSS] = gross
    a[_A_COST] = cost
    a[_A_TURN] = turn
    a[_A_EXPO] = expo
    a[_A_E0] = e0
    a[_A_E1] = e1
    a[_A_MDD] = mdd
    a[_A_DDMAX] = ddmax
    a[_A_DAYS] = days
    a[_A_MEAN] = mean
    a[_A_M2] = m2
    a[_A_DOWN2] = down2
    a[_A_ESUM] = esum


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _combine(acc: np.ndarray, mdd: float, ddmax: float) -> None:
    """The full run = IS then OOS: sums add, the variance merges exactly (Chan et al.), the drawdown is the
    full run's own (tracked in the row loop: a drawdown may span the boundary)."""
    f, i, o = acc[0], acc[1], acc[2]
    for slot in (_A_BARS, _A_NET, _A_GROSS, _A_COST, _A_TURN, _A_EXPO, _A_DAYS, _A_DOWN2, _A_ESUM):
        f[slot] = i[slot] + o[slot]
    f[_A_E0] = i[_A_E0] if i[_A_STARTED] > 0.0 else o[_A_E0]
    f[_A_E1] = o[_A_E1] if o[_A_STARTED] > 0.0 else i[_A_E1]
    n1 = i[_A_DAYS]
    n2 = o[_A_DAYS]
    n = n1 + n2
    if n > 0.0:
        delta = o[_A_MEAN] - i[_A_MEAN]
        f[_A_MEAN] = i[_A_MEAN] + delta * n2 / n
        f[_A_M2] = i[_A_M2] + o[_A_M2] + delta * delta * n1 * n2 / n
    f[_A_MDD] = mdd
    f[_A_DDMAX] = ddmax
    f[_A_STARTED] = 1.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    custom: np.ndarray,
    day: np.ndarray,
    sess_last: np.ndarray,
    sig: np.ndarray,
    scale: np.ndarray,
    scale_idx: np.ndarray,
    entry_ok: np.ndarray,
    frozen: np.ndarray,
    gate_idx: np.ndarray,
    params: np.ndarray,
    accounting: int,
    mult: float,
    tick: float,
    capital: float,
    trade_start: int,
    oos_start: int,
    ann: float,
    rf: float,
    rec_col: int,
    paths: np.ndarray,
    trades: np.ndarray,
    out: np.ndarray,
) -> int:
    """Simulate K columns (sig is T x K, F-ordered) and write out[k, segment, metric]; record column
    rec_col's paths (6 x T) and trades (rows of TRADE_FIELDS). Returns the number of recorded trades."""
    T = close.shape[0]
    K = sig.shape[1]
    rf_bar = rf / ann
    acc = np.zeros((3, _NA))
    ntr = 0
    day_end = np.empty(T, dtype=np.bool_)
    for r in range(T):
        day_end[r] = r == T - 1 or day[r + 1] != day[r]
    for k in range(K):
        prm = params[k]
        lag = 0 if int(prm[0]) == 0 else 1
        ex = int(prm[0])
        hold_min = prm[8]
        cool = prm[9]
        allow_flip = prm[10] > 0.5
        flat_eod = prm[11] > 0.5
        scaled = int(prm[12]) == 1
        allow_long = prm[13] > 0.5
        allow_short = prm[14] > 0.5
        allow_flat = prm[15] > 0.5
        reb_daily = int(prm[16]) == 0
        cpu = prm[17]
        si = scale_idx[k]
        gi = gate_idx[k]
        rec = k == rec_col
        acc[:, :] = 0.0
        # state
        q = 0.0
        pending = 0.0
        has_pending = False
        pend_day = 0
        entry_day = 0
        exit_day = 0
        had_exit = False
        last_dir = 0.0
        prev_dir = 0.0
        locked = 0.0
        eq = capital
        eq_day0 = capital
        day_pnl = 0.0
        # open trade
        t_open = False
        t_row = 0
        t_px = 0.0
        t_side = 0.0
        t_size = 0.0
        t_pnl = 0.0
        t_cost = 0.0
        last_seg = 1
        b_bars = b_net = b_gross = b_cost = b_turn = b_expo = 0.0
        b_mdd = b_ddlen = b_ddmax = b_days = b_mean = b_m2 = b_down2 = b_esum = 0.0
        b_e0 = capital
        b_peak = capital
        f_peak = capital
        f_mdd = f_ddlen = f_ddmax = 0.0
        for r in range(T):
            if r < trade_start:
                if rec:
                    paths[0, r] = eq
                    paths[1, r] = 0.0
                    paths[2, r] = 0.0
                    paths[3, r] = 0.0
                    paths[4, r] = 0.0
                    paths[5, r] = 0.0
                continue
            seg = 1 if r < oos_start else 2
            if r == oos_start and r > trade_start:  # IS ends: flush its scalars, OOS starts from here
                _flush(acc[1], b_bars, b_net, b_gross, b_cost, b_turn, b_expo, b_e0, eq, b_mdd, b_ddmax, b_days,
                       b_mean, b_m2, b_down2, b_esum)  # fmt: skip
                b_bars = b_net = b_gross = b_cost = b_turn = b_expo = 0.0
                b_mdd = b_ddlen = b_ddmax = b_days = b_mean = b_m2 = b_down2 = b_esum = 0.0
                b_e0 = eq
                b_peak = eq
            last_seg = seg
            c = close[r]
            cp = close[r - 1] if r > 0 else c
            gross = 0.0
            cost = 0.0
            turn = 0.0
            pos = 0.0
            # 1) the fill of the decision made at r-1 (lag 1)
            filled = False
            if has_pending:
                has_pending = False
                if ex == 1:
                    p = open_[r]
                elif ex == 2:
                    p = c
                else:
                    p = custom[r]
                if pending != q and np.isfinite(p):
                    filled = True
                    qn = pending
                    g_old = q * (p - cp) * mult
                    g_new = qn * (c - p) * mult
                    dq = abs(qn - q)
                    var, fix = _fill_cost(dq, p, prm, mult, tick)
                    gross += g_old + g_new
                    cost += var + fix
                    turn += dq * p * mult
                    if q != 0.0 and q * qn <= 0.0:  # the open trade ends here (exit or flip)
                        share = abs(q) / dq
                        c_old = var * share + fix
                        t_pnl += g_old - c_old
                        t_cost += c_old
                        ntr = _emit_trade(
                            acc, seg, t_pnl, r - t_row, rec, trades, ntr,
                            t_row, r, t_px, p, t_side, t_size, t_cost, 0.0,
                        )  # fmt: skip
                        exit_day = pend_day
                        had_exit = True
                        t_open = False
                        if qn != 0.0:
                            t_open = True
                            t_row = r
                            t_px = p
                            t_side = _sign(qn)
                            t_size = abs(qn)
                            t_cost = var - var * share
                            t_pnl = g_new - t_cost
                            entry_day = pend_day
                    elif q == 0.0:
                        t_open = True
                        t_row = r
                        t_px = p
                        t_side = _sign(qn)
                        t_size = abs(qn)
                        t_cost = var + fix
                        t_pnl = g_new - t_cost
                        entry_day = pend_day
                    else:
                        t_pnl += g_old + g_new - var - fix
                        t_cost += var + fix
                        if abs(qn) > t_size:
                            t_size = abs(qn)
                    q = qn
            if not filled:
                g = q * (c - cp) * mult
                gross += g
                if t_open:
                    t_pnl += g
            if lag == 1:
                pos = q
            # 3) the session end (lag 0: after the close fill; lag 1: before the decision, which sees flat)
            if lag == 1 and flat_eod and sess_last[r] and q != 0.0:
                var, fix = _fill_cost(abs(q), c, prm, mult, tick)
                cost += var + fix
                turn += abs(q) * c * mult
                t_pnl -= var + fix
                t_cost += var + fix
                ntr = _emit_trade(
                    acc, seg, t_pnl, r - t_row, rec, trades, ntr,
                    t_row, r, t_px, c, t_side, t_size, t_cost, 0.0,
                )  # fmt: skip
                t_open = False
                exit_day = day[r]
                had_exit = True
                q = 0.0
            # 2) the decision at r (always; lag 0 fills it now at the close, lag 1 at row r+1)
            decide = lag == 0 or r < T - 1
            if decide:
                # target direction from the signal, restricted to the allowed sides
                d = sig[r, k]
                dr = 0.0
                if d > 0.0:
                    dr = 1.0 if allow_long else 0.0
                elif d < 0.0:
                    dr = -1.0 if allow_short else 0.0
                if dr == 0.0 and not allow_flat:
                    dr = last_dir
                if dr != 0.0:
                    last_dir = dr
                if not scaled:
                    w = dr
                else:
                    if reb_daily or dr != prev_dir:
                        s = scale[r, si]
                        locked = s if s > 0.0 else 0.0  # NaN and negative -> 0
                    w = dr * locked
                prev_dir = dr
                # the position the decision is compared with: after a session-end flatten when lag 1
                q_ref = q
                if accounting == 0:
                    qt = _round_away(w * cpu)
                else:
                    if w == 0.0:
                        qt = 0.0
                    elif q_ref * w > 0.0 and not (scaled and reb_daily):
                        qt = q_ref
                    else:
                        qt = w * (eq + gross - cost) / (c * mult)
                # gates and rules
                if frozen[r, gi] or qt == q_ref:
                    qn = q_ref
                else:
                    same = q_ref * qt > 0.0
                    flip = q_ref * qt < 0.0
                    grows = same and abs(qt) > abs(q_ref)
                    qn = qt
                    if q_ref != 0.0 and hold_min > 0.0 and day[r] - entry_day < hold_min and not grows:
                        qn = q_ref
                    else:
                        ok = entry_ok[r, gi]
                        cooling = cool > 0.0 and had_exit and day[r] - exit_day <= cool
                        if flip:
                            if not ok or cool > 0.0 or not allow_flip:
                                qn = 0.0
                        elif q_ref == 0.0:
                            if not ok or cooling:
                                qn = 0.0
                        elif grows and not ok:
                            qn = q_ref
                if lag == 1:
                    pending = qn
                    has_pending = True
                    pend_day = day[r]
                elif qn != q:
                    dq = abs(qn - q)
                    var, fix = _fill_cost(dq, c, prm, mult, tick)
                    cost += var + fix
                    turn += dq * c * mult
                    if q != 0.0 and q * qn <= 0.0:
                        share = abs(q) / dq
                        c_old = var * share + fix
                        t_pnl -= c_old
                        t_cost += c_old
                        ntr = _emit_trade(
                            acc, seg, t_pnl, r - t_row, rec, trades, ntr,
                            t_row, r, t_px, c, t_side, t_size, t_cost, 0.0,
                        )  # fmt: skip
                        exit_day = day[r]
                        had_exit = True
                        t_open = False
                        if qn != 0.0:
                            t_open = True
                            t_row = r
                            t_px = c
                            t_side = _sign(qn)
                            t_size = abs(qn)
                            t_cost = var - var * share
                            t_pnl = -t_cost
                            entry_day = day[r]
                    elif q == 0.0:
                        t_open = True
                        t_row = r
                        t_px = c
                        t_side = _sign(qn)
                        t_size = abs(qn)
                        t_cost = var + fix
                        t_pnl = -t_cost
                        entry_day = day[r]
                    else:
                        t_pnl -= var + fix
                        t_cost += var + fix
                        if abs(qn) > t_size:
                            t_size = abs(qn)
                    q = qn
            if lag == 0:
                pos = q
            # 3) the session end (lag 0: after the close fill; lag 1: before the decision, which sees flat)
            if lag == 0 and flat_eod and sess_last[r] and q != 0.0:
                var, fix = _fill_cost(abs(q), c, prm, mult, tick)
                cost += var + fix
                turn += abs(q) * c * mult
                t_pnl -= var + fix
                t_cost += var + fix
                ntr = _emit_trade(
                    acc, seg, t_pnl, r - t_row, rec, trades, ntr,
                    t_row, r, t_px, c, t_side, t_size, t_cost, 0.0,
                )  # fmt: skip
                t_open = False
                exit_day = day[r]
                had_exit = True
                q = 0.0
            # 4) book the row into the current segment's scalars and the full run's drawdown
            net = gross - cost
            eq += net
            day_pnl += net
            b_bars += 1.0
            b_net += net
            b_gross += gross
            b_cost += cost
            b_turn += turn
            if pos != 0.0:
                b_expo += 1.0
            if eq >= b_peak:
                b_peak = eq
                b_ddlen = 0.0
            else:
                dd = (b_peak - eq) / b_peak if b_peak > 0.0 else 1.0
                if dd > b_mdd:
                    b_mdd = dd
                b_ddlen += 1.0
                if b_ddlen > b_ddmax:
                    b_ddmax = b_ddlen
            if eq >= f_peak:
                f_peak = eq
                f_ddlen = 0.0
            else:
                dd = (f_peak - eq) / f_peak if f_peak > 0.0 else 1.0
                if dd > f_mdd:
                    f_mdd = dd
                f_ddlen += 1.0
                if f_ddlen > f_ddmax:
                    f_ddmax = f_ddlen
            if day_end[r]:  # the day's return
                ret = day_pnl / eq_day0 if eq_day0 > 0.0 else 0.0
                x = ret - rf_bar
                b_days += 1.0
                b_esum += eq_day0
                m_old = b_mean
                b_mean = m_old + (x - m_old) / b_days
                b_m2 += (x - m_old) * (x - b_mean)
                if x < 0.0:
                    b_down2 += x * x
                eq_day0 = eq
                day_pnl = 0.0
            if rec:
                paths[0, r] = eq
                paths[1, r] = net
                paths[2, r] = gross
                paths[3, r] = cost
                paths[4, r] = (f_peak - eq) / f_peak if f_peak > 0.0 and eq < f_peak else 0.0
                paths[5, r] = pos
        if t_open:  # still open at the end: valued at the last close, no exit cost
            ntr = _emit_trade(
                acc, last_seg, t_pnl, T - 1 - t_row, rec, trades, ntr,
                t_row, T - 1, t_px, close[T - 1], t_side, t_size, t_cost, 1.0,
            )  # fmt: skip
        _flush(acc[last_seg], b_bars, b_net, b_gross, b_cost, b_turn, b_expo, b_e0, eq, b_mdd, b_ddmax, b_days,
               b_mean, b_m2, b_down2, b_esum)  # fmt: skip
        _combine(acc, f_mdd, f_ddmax)
        for s in range(3):
            _finish(acc[s], out[k, s], ann)
    return ntr


# --------------------------------------------------------------------------------------------------
# Python wrappers: validation, broadcasting, chunking
# --------------------------------------------------------------------------------------------------


def _f64(a: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if a is None:
        return np.full(n, np.nan)
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a


def _mask(a: np.ndarray | None, T: int, default: bool, nan_as: bool, name: str) -> np.ndarray:
    if a is None:
        return np.full((T, 1), default, dtype=np.bool_, order="F")
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[0] != T:
        raise ValueError(f"{name} must have {T} rows, got {a.shape[0]}")
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), nan_as, a != 0.0)
    return np.asfortranarray(a.astype(np.bool_))


def _prepare(market: Market, signals: np.ndarray, columns: Sequence[ColumnSpec] | ColumnSpec, run: RunSpec,
             scaling: np.ndarray | None, scale_idx: Sequence[int] | None, gates: Gates | None,
             gate_idx: Sequence[int] | None) -> tuple:  # fmt: skip
    close = np.ascontiguousarray(market.close, dtype=np.float64)
    if close.ndim != 1 or close.shape[0] < 1:
        raise ValueError("close must be a non-empty 1-D array")
    T = close.shape[0]
    sig = np.asarray(signals, dtype=np.float64)
    if sig.ndim == 1:
        sig = sig[:, None]
    if sig.shape[0] != T:
        raise ValueError(f"signals must have {T} rows (the price grid), got {sig.shape[0]}")
    sig = np.asfortranarray(sig)
    K = sig.shape[1]
    cols = [columns] * K if isinstance(columns, ColumnSpec) else list(columns)
    if len(cols) != K:
        raise ValueError(f"{len(cols)} column specs for {K} signal columns")
    params = np.ascontiguousarray(np.stack([c.vector() for c in cols]).reshape(K, len(PARAM_FIELDS)))
    open_ = _f64(market.open, T, "open")
    custom = _f64(market.custom, T, "custom")
    day = (
        np.arange(T, dtype=np.int64)
        if market.day is None
        else np.ascontiguousarray(market.day, dtype=np.int64)
    )
    if day.shape != (T,) or (T > 1 and np.any(np.diff(day) < 0)):
        raise ValueError("day must be a non-decreasing integer array, one entry per row")
    if market.session_last is None:
        last = np.ones(T, dtype=np.bool_)
        last[:-1] = day[1:] != day[:-1]
    else:
        last = np.ascontiguousarray(market.session_last, dtype=np.bool_)
    ts = int(run.trade_start)
    oos = T if run.oos_start is None else int(run.oos_start)
    if not 0 <= ts < T:
        raise ValueError(f"trade_start {ts} is outside the {T} rows")
    if not ts <= oos <= T:
        raise ValueError(f"oos_start {oos} must lie in [trade_start={ts}, {T}]")
    for name, row in (("trade_start", ts), ("oos_start", oos)):
        if 0 < row < T and day[row] == day[row - 1]:
            raise ValueError(f"{name} (row {row}) must be the first row of a session")
    lo = max(ts - 1, 0)
    if not np.all(np.isfinite(close[lo:])):
        bad = lo + int(np.flatnonzero(~np.isfinite(close[lo:]))[0])
        raise ValueError(f"close is missing at row {bad}: every traded row needs a close (mark to market)")
    if any(c.execution.execution_time == "next_open" for c in cols) and market.open is None:
        raise ValueError("next_open execution needs the open prices")
    if any(c.execution.execution_time == "custom" for c in cols) and market.custom is None:
        raise ValueError("custom execution needs the custom fill prices (the instrument's 1m bars)")
    if scaling is None:
        scale = np.zeros((T, 1), order="F")
    else:
        scale = np.asarray(scaling, dtype=np.float64)
        scale = np.asfortranarray(scale[:, None] if scale.ndim == 1 else scale)
        if scale.shape[0] != T:
            raise ValueError(f"scaling must have {T} rows, got {scale.shape[0]}")
        if np.isinf(scale).any():
            raise ValueError("scaling is infinite somewhere (a division by a zero volatility?): clip it")
    if any(c.position.mode == "scaled" for c in cols) and scaling is None:
        raise ValueError("scaled position mode needs a scaling series")
    sidx = np.zeros(K, dtype=np.int64) if scale_idx is None else np.asarray(scale_idx, dtype=np.int64)
    if sidx.shape != (K,) or np.any(sidx < 0) or np.any(sidx >= scale.shape[1]):
        raise ValueError("scale_idx must give each column a scaling column")
    eok = _mask(None if gates is None else gates.entry_ok, T, True, False, "gates.entry_ok")
    frz = _mask(None if gates is None else gates.frozen, T, False, False, "gates.frozen")
    if frz.shape[1] == 1 and eok.shape[1] > 1:
        frz = np.asfortranarray(np.repeat(frz, eok.shape[1], axis=1))
    if frz.shape[1] != eok.shape[1]:
        raise ValueError("gates.entry_ok and gates.frozen must have the same number of columns")
    gidx = np.zeros(K, dtype=np.int64) if gate_idx is None else np.asarray(gate_idx, dtype=np.int64)
    if gidx.shape != (K,) or np.any(gidx < 0) or np.any(gidx >= eok.shape[1]):
        raise ValueError("gate_idx must give each column a gate column")
    inst = run.instrument
    base = (open_, close, custom, day, last)
    tail = (ACCOUNTING[inst.accounting], float(inst.multiplier), float(inst.tick_size), float(run.initial_capital),
            ts, oos, float(run.annualization_factor), float(run.risk_free_rate))  # fmt: skip
    return base, sig, scale, sidx, eok, frz, gidx, params, tail


def run_many(
    market: Market,
    signals: np.ndarray,
    columns: Sequence[ColumnSpec] | ColumnSpec,
    run: RunSpec,
    *,
    scaling: np.ndarray | None = None,
    scale_idx: Sequence[int] | None = None,
    gates: Gates | None = None,
    gate_idx: Sequence[int] | None = None,
    chunk: int = 1024,
) -> ManyResult:
    """Metrics of K parameter columns (signals T x K), chunked over columns; no path is kept."""
    base, sig, scale, sidx, eok, frz, gidx, params, tail = _prepare(
        market, signals, columns, run, scaling, scale_idx, gates, gate_idx
    )
    K = sig.shape[1]
    out = np.empty((K, len(SEGMENTS), _NM))
    paths = np.zeros((len(PATH_FIELDS), 0))
    trades = np.zeros((0, _NT))
    for a in range(0, K, max(int(chunk), 1)):
        b = min(a + max(int(chunk), 1), K)
        simulate(*base, np.asfortranarray(sig[:, a:b]), scale, sidx[a:b], eok, frz, gidx[a:b], params[a:b],
                 *tail, -1, paths, trades, out[a:b])  # fmt: skip
    return ManyResult(out)


def run_one(
    market: Market,
    signal: np.ndarray,
    column: ColumnSpec,
    run: RunSpec,
    *,
    scaling: np.ndarray | None = None,
    gates: Gates | None = None,
) -> RunResult:
    """One column with its paths (equity, pnl, gross, costs, drawdown, position) and trade list."""
    sig = np.asarray(signal, dtype=np.float64)
    if sig.ndim == 2:
        if sig.shape[1] != 1:
            raise ValueError("run_one takes one signal column")
        sig = sig[:, 0]
    sc = None if scaling is None else np.asarray(scaling, dtype=np.float64).reshape(-1, 1)
    g = None
    if gates is not None:
        fz = None if gates.frozen is None else np.asarray(gates.frozen).reshape(-1, 1)
        g = Gates(np.asarray(gates.entry_ok).reshape(-1, 1), fz)
    base, s2, scale, sidx, eok, frz, gidx, params, tail = _prepare(
        market, sig, column, run, sc, None, g, None
    )
    T = s2.shape[0]
    out = np.empty((1, len(SEGMENTS), _NM))
    paths = np.zeros((len(PATH_FIELDS), T))
    trades = np.zeros((2 * T + 1, _NT))
    n = simulate(*base, s2, scale, sidx, eok, frz, gidx, params, *tail, 0, paths, trades, out)
    tr = trades[:n]
    trade_cols = {name: tr[:, i].copy() for i, name in enumerate(TRADE_FIELDS)}
    for name in ("entry_row", "exit_row"):
        trade_cols[name] = trade_cols[name].astype(np.int64)
    trade_cols["open"] = trade_cols["open"].astype(bool)
    return RunResult(
        ManyResult(out).record(0),
        {name: paths[i].copy() for i, name in enumerate(PATH_FIELDS)},
        trade_cols,
    )


def session_returns(pnl: np.ndarray, equity: np.ndarray, day: np.ndarray, capital: float) -> np.ndarray:
    """Daily net returns of a run's recorded paths: session net PnL / the previous session's end equity
    (`capital` before the first), 0 once that equity is <= 0 (ENGINE.md section 8, as the kernel's Sharpe).

    `pnl`, `equity`: the run's per-row paths on its traded rows; `day`: their session numbers (any offset).
    """
    d = np.asarray(day) - int(day[0])
    n = int(d[-1]) + 1
    day_pnl = np.bincount(d, weights=pnl, minlength=n)
    last = np.ones(len(d), dtype=bool)
    last[:-1] = d[1:] != d[:-1]
    prev = np.empty(n)
    prev[0] = capital
    prev[1:] = np.asarray(equity)[last][:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev > 0.0, day_pnl / prev, 0.0)
