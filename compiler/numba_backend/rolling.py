"""Rolling statistics over the last n rows (current row included), strict unless the operator says so.

Windows, q, k, span and periods_per_year are runtime arguments: one compiled kernel serves every
window a study tries. All kernels are O(n) except median / quantile / rank (O(n·w) worst case, from a
sorted window updated by insertion).

Numerics. Sums and moments use a block decomposition (the van Herk / Gil-Werman trick): the series is
cut into blocks of n rows, and every window is the suffix of one block plus a prefix of the next. The
prefix and suffix sums are accumulated fresh inside each block with Neumaier compensation, so a window's
sum only ever contains that window's values: nothing is subtracted, and no error from values that left
the window long ago (a 1e12 spike, a regime change) can leak into a later window, unlike add/remove
running sums. Second moments are sums of deviations from a shift K that is a value inside every window
of the block (the block's first row), so var = (S2 − S1²/n) / (n − 1) has no catastrophic cancellation
on data such as 1e8 + small noise. Missing values poison exactly the prefix / suffix sums that contain
them, which is the strict-window rule without a separate count. A constant window is detected exactly
(Σ|x − K| = 0), not by a rounded variance.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN, fin, two_sum
from compiler.numba_backend._registry import register

# -- block-decomposed sums and moments -----------------------------------------------------------------------


@numba.njit(**JIT)
def _window_sum(x: np.ndarray, n: int, d: float) -> np.ndarray:
    """Compensated sum of each full window, divided by d; missing unless all n rows are present."""
    m = x.shape[0]
    out = np.full(m, NAN)
    suf = np.empty(n)
    for bs in range(0, m, n):
        if bs > 0:
            s = 0.0
            c = 0.0
            for j in range(bs - 1, bs - n - 1, -1):
                s, c = two_sum(s, c, x[j])
                suf[j - (bs - n)] = s + c
        s = 0.0
        c = 0.0
        for i in range(bs, min(bs + n, m)):
            s, c = two_sum(s, c, x[i])
            st = i - n + 1
            if st < 0:
                continue
            tot = s + c if st == bs else suf[st - (bs - n)] + (s + c)
            out[i] = fin(tot / d)
    return out


@numba.njit(**JIT)
def _moments(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per full window: shift K (a value of the window), S1 = Σ(x−K), S2 = Σ(x−K)², SA = Σ|x−K|."""
    m = x.shape[0]
    kk = np.full(m, NAN)
    s1 = np.full(m, NAN)
    s2 = np.full(m, NAN)
    sa = np.full(m, NAN)
    u1 = np.empty(n)
    u2 = np.empty(n)
    ua = np.empty(n)
    for bs in range(0, m, n):
        k = x[bs]
        if bs > 0:
            a = 0.0
            ac = 0.0
            q = 0.0
            qc = 0.0
            ab = 0.0
            for j in range(bs - 1, bs - n - 1, -1):
                dv = x[j] - k
                a, ac = two_sum(a, ac, dv)
                q, qc = two_sum(q, qc, dv * dv)
                ab += abs(dv)
                u1[j - (bs - n)] = a + ac
                u2[j - (bs - n)] = q + qc
                ua[j - (bs - n)] = ab
        a = 0.0
        ac = 0.0
        q = 0.0
        qc = 0.0
        ab = 0.0
        for i in range(bs, min(bs + n, m)):
            dv = x[i] - k
            a, ac = two_sum(a, ac, dv)
            q, qc = two_sum(q, qc, dv * dv)
            ab += abs(dv)
            st = i - n + 1
            if st < 0:
                continue
            kk[i] = k
            if st == bs:
                s1[i] = a + ac
                s2[i] = q + qc
                sa[i] = ab
            else:
                j = st - (bs - n)
                s1[i] = u1[j] + (a + ac)
                s2[i] = u2[j] + (q + qc)
                sa[i] = ua[j] + ab
    return kk, s1, s2, sa


@numba.njit(inline="always", **JIT)
def _var(s1: float, s2: float, n: int) -> float:
    """Sample variance from shifted sums; never negative (rounding is clamped)."""
    v = (s2 - s1 * s1 / n) / (n - 1)
    return v if v > 0.0 else (0.0 if v <= 0.0 else NAN)


@register("sum")
@numba.njit(**JIT)
def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    return _window_sum(x, n, 1.0)


@register("mean")
@numba.njit(**JIT)
def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    return _window_sum(x, n, float(n))


@register("var")
@numba.njit(**JIT)
def rolling_var(x: np.ndarray, n: int) -> np.ndarray:
    _kk, s1, s2, sa = _moments(x, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if not math.isnan(s1[i]):
            out[i] = 0.0 if sa[i] == 0.0 else fin(_var(s1[i], s2[i], n))
    return out


@register("std")
@numba.njit(**JIT)
def rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    _kk, s1, s2, sa = _moments(x, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if not math.isnan(s1[i]):
            out[i] = 0.0 if sa[i] == 0.0 else fin(math.sqrt(_var(s1[i], s2[i], n)))
    return out


@register("zscore")
@numba.njit(**JIT)
def zscore(x: np.ndarray, n: int) -> np.ndarray:
    """(x − mean) / std with the deviation taken from the shift: ((x − K) − S1/n) / std."""
    kk, s1, s2, sa = _moments(x, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if math.isnan(s1[i]) or sa[i] == 0.0:
            continue
        sd = math.sqrt(_var(s1[i], s2[i], n))
        if sd > 0.0:
            out[i] = fin(((x[i] - kk[i]) - s1[i] / n) / sd)
    return out


@register("winsorize")
@numba.njit(**JIT)
def winsorize(x: np.ndarray, n: int, k: float) -> np.ndarray:
    kk, s1, s2, sa = _moments(x, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if math.isnan(s1[i]):
            continue
        if sa[i] == 0.0:
            out[i] = x[i]  # constant window: m = x, s = 0
            continue
        dev = s1[i] / n  # mean − K
        ks = k * math.sqrt(_var(s1[i], s2[i], n))
        lo = kk[i] + (dev - ks)
        hi = kk[i] + (dev + ks)
        out[i] = fin(min(max(x[i], lo), hi))
    return out


def _realized_vol_options(opts: dict[str, Any]) -> tuple[int, float]:
    if not opts["annualize"]:
        return opts["n"], 1.0
    if opts["periods_per_year"] is None:
        raise ValueError(
            "realized_vol(): periods_per_year must be resolved by the caller from the grid "
            "(252 on a daily grid, 98280 on a 1m RTH grid) before calling the kernel"
        )
    return opts["n"], float(opts["periods_per_year"])


@register("realized_vol", resolve=_realized_vol_options)
@numba.njit(**JIT)
def realized_vol(returns: np.ndarray, n: int, periods_per_year: float) -> np.ndarray:
    _kk, s1, s2, sa = _moments(returns, n)
    root = math.sqrt(periods_per_year)
    out = np.full(returns.shape[0], NAN)
    for i in range(returns.shape[0]):
        if not math.isnan(s1[i]):
            out[i] = 0.0 if sa[i] == 0.0 else fin(math.sqrt(_var(s1[i], s2[i], n)) * root)
    return out


@numba.njit(**JIT)
def _comoments(
    x: np.ndarray, y: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise-strict shifted sums per full window: Sx, Sy, Sxx, Syy, Sxy, Σ|x−Kx|, Σ|y−Ky|."""
    m = x.shape[0]
    res = np.full((7, m), NAN)
    suf = np.empty((7, n))
    acc = np.zeros(7)
    cmp = np.zeros(5)
    for bs in range(0, m, n):
        kx = x[bs]
        ky = y[bs]
        for part in range(2):
            if part == 0 and bs == 0:
                continue
            acc[:] = 0.0
            cmp[:] = 0.0
            if part == 0:
                lo, hi, step = bs - 1, bs - n - 1, -1
            else:
                lo, hi, step = bs, min(bs + n, m), 1
            for j in range(lo, hi, step):
                dx = x[j] - kx
                dy = y[j] - ky
                if math.isnan(dx) or math.isnan(dy):  # pairwise strict: poison both
                    dx = NAN
                    dy = NAN
                acc[0], cmp[0] = two_sum(acc[0], cmp[0], dx)
                acc[1], cmp[1] = two_sum(acc[1], cmp[1], dy)
                acc[2], cmp[2] = two_sum(acc[2], cmp[2], dx * dx)
                acc[3], cmp[3] = two_sum(acc[3], cmp[3], dy * dy)
                acc[4], cmp[4] = two_sum(acc[4], cmp[4], dx * dy)
                acc[5] += abs(dx)
                acc[6] += abs(dy)
                if part == 0:
                    for t in range(5):
                        suf[t, j - (bs - n)] = acc[t] + cmp[t]
                    suf[5, j - (bs - n)] = acc[5]
                    suf[6, j - (bs - n)] = acc[6]
                    continue
                st = j - n + 1
                if st < 0:
                    continue
                for t in range(7):
                    tot = acc[t] + cmp[t] if t < 5 else acc[t]
                    res[t, j] = tot if st == bs else suf[t, st - (bs - n)] + tot
    return res[0], res[1], res[2], res[3], res[4], res[5], res[6]


@register("cov")
@numba.njit(**JIT)
def cov(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    sx, sy, _sxx, _syy, sxy, ax, ay = _comoments(x, y, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if not math.isnan(sxy[i]):
            out[i] = 0.0 if ax[i] == 0.0 or ay[i] == 0.0 else fin((sxy[i] - sx[i] * sy[i] / n) / (n - 1))
    return out


@register("corr")
@numba.njit(**JIT)
def corr(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    sx, sy, sxx, syy, sxy, ax, ay = _comoments(x, y, n)
    out = np.full(x.shape[0], NAN)
    for i in range(x.shape[0]):
        if math.isnan(sxy[i]) or ax[i] == 0.0 or ay[i] == 0.0:
            continue
        vx = sxx[i] - sx[i] * sx[i] / n
        vy = syy[i] - sy[i] * sy[i] / n
        if vx <= 0.0 or vy <= 0.0:
            continue
        r = (sxy[i] - sx[i] * sy[i] / n) / (math.sqrt(vx) * math.sqrt(vy))
        out[i] = fin(min(1.0, max(-1.0, r)))
    return out


@register("slope")
@numba.njit(**JIT)
def slope(x: np.ndarray, n: int) -> np.ndarray:
    """OLS slope on t = 1..n: Σ(t − t̄)(x − K) / Σ(t − t̄)², from block sums of (x−K) and j·(x−K)."""
    m = x.shape[0]
    out = np.full(m, NAN)
    u1 = np.empty(n)
    uj = np.empty(n)
    den = n * (n * n - 1.0) / 12.0
    for bs in range(0, m, n):
        k = x[bs]
        if bs > 0:
            a = 0.0
            ac = 0.0
            b = 0.0
            bc = 0.0
            for j in range(bs - 1, bs - n - 1, -1):
                dv = x[j] - k
                a, ac = two_sum(a, ac, dv)
                b, bc = two_sum(b, bc, (j - bs) * dv)
                u1[j - (bs - n)] = a + ac
                uj[j - (bs - n)] = b + bc
        a = 0.0
        ac = 0.0
        b = 0.0
        bc = 0.0
        for i in range(bs, min(bs + n, m)):
            dv = x[i] - k
            a, ac = two_sum(a, ac, dv)
            b, bc = two_sum(b, bc, (i - bs) * dv)
            st = i - n + 1
            if st < 0:
                continue
            t1 = a + ac
            tj = b + bc
            if st != bs:
                t1 = u1[st - (bs - n)] + t1
                tj = uj[st - (bs - n)] + tj
            centre = (st + i) / 2.0 - bs
            out[i] = fin((tj - centre * t1) / den)
    return out


# -- counts, extremes (monotonic deque) ------------------------------------------------------------------------


@register("count")
@numba.njit(**JIT)
def count(x: np.ndarray, n: int) -> np.ndarray:
    """Present values among the last n rows; missing only while fewer than n rows exist."""
    m = x.shape[0]
    out = np.full(m, NAN)
    c = 0
    for i in range(m):
        if not math.isnan(x[i]):
            c += 1
        if i >= n and not math.isnan(x[i - n]):
            c -= 1
        if i >= n - 1:
            out[i] = float(c)
    return out


@numba.njit(**JIT)
def _extreme(x: np.ndarray, n: int, is_max: bool) -> tuple[np.ndarray, np.ndarray]:
    """Window max (or min) and rows since it, ties to the most recent row, via a monotonic deque."""
    m = x.shape[0]
    val = np.full(m, NAN)
    arg = np.full(m, NAN)
    dq = np.empty(m, dtype=np.int64)
    head = 0
    tail = 0
    last_nan = -1
    for i in range(m):
        v = x[i]
        if math.isnan(v):
            last_nan = i
            head = 0
            tail = 0
            continue
        if is_max:
            while tail > head and x[dq[tail - 1]] <= v:
                tail -= 1
        else:
            while tail > head and x[dq[tail - 1]] >= v:
                tail -= 1
        dq[tail] = i
        tail += 1
        st = i - n + 1
        while dq[head] < st:
            head += 1
        if st >= 0 and last_nan < st:
            val[i] = x[dq[head]]
            arg[i] = float(i - dq[head])
    return val, arg


@register("ts_max")
@numba.njit(**JIT)
def ts_max(x: np.ndarray, n: int) -> np.ndarray:
    return _extreme(x, n, True)[0]


@register("ts_min")
@numba.njit(**JIT)
def ts_min(x: np.ndarray, n: int) -> np.ndarray:
    return _extreme(x, n, False)[0]


@register("ts_argmax")
@numba.njit(**JIT)
def ts_argmax(x: np.ndarray, n: int) -> np.ndarray:
    return _extreme(x, n, True)[1]


@register("ts_argmin")
@numba.njit(**JIT)
def ts_argmin(x: np.ndarray, n: int) -> np.ndarray:
    return _extreme(x, n, False)[1]


# -- order statistics (sorted window, insertion update) ------------------------------------------------------

_MEDIAN = 0
_QUANTILE = 1
_RANK = 2


@numba.njit(inline="always", **JIT)
def _lower(buf: np.ndarray, cnt: int, v: float) -> int:
    """First position in buf[:cnt] whose value is >= v."""
    lo = 0
    hi = cnt
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(inline="always", **JIT)
def _upper(buf: np.ndarray, cnt: int, v: float) -> int:
    """First position in buf[:cnt] whose value is > v."""
    lo = 0
    hi = cnt
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**JIT)
def _order_stat(x: np.ndarray, n: int, mode: int, q: float) -> np.ndarray:
    """Median, q-quantile (numpy 'linear') or average percentile rank of each full window."""
    m = x.shape[0]
    out = np.full(m, NAN)
    buf = np.empty(n)
    cnt = 0  # present rows since the last missing one, capped at n (buf holds them sorted)
    for i in range(m):
        v = x[i]
        if math.isnan(v):
            cnt = 0
            continue
        if cnt == n:  # drop the row leaving the window
            p = _lower(buf, cnt, x[i - n])
            for t in range(p, cnt - 1):
                buf[t] = buf[t + 1]
            cnt -= 1
        p = _upper(buf, cnt, v)
        for t in range(cnt, p, -1):
            buf[t] = buf[t - 1]
        buf[p] = v
        cnt += 1
        if cnt < n:
            continue
        if mode == _RANK:
            less = _lower(buf, cnt, v)
            ties = _upper(buf, cnt, v) - less
            out[i] = (less + (ties + 1) / 2.0) / n
        elif mode == _MEDIAN:
            h = n // 2
            out[i] = buf[h] if n % 2 == 1 else fin(0.5 * buf[h - 1] + 0.5 * buf[h])
        else:
            h = q * (n - 1)
            lo = int(h)  # h >= 0: truncation is the floor
            frac = h - lo
            if lo + 1 < n and frac > 0.0:
                out[i] = fin(buf[lo] + frac * (buf[lo + 1] - buf[lo]))
            else:
                out[i] = buf[lo]
    return out


@register("median")
@numba.njit(**JIT)
def median(x: np.ndarray, n: int) -> np.ndarray:
    return _order_stat(x, n, _MEDIAN, 0.5)


@register("quantile")
@numba.njit(**JIT)
def quantile(x: np.ndarray, n: int, q: float) -> np.ndarray:
    return _order_stat(x, n, _QUANTILE, q)


@register("rank")
@numba.njit(**JIT)
def rank(x: np.ndarray, n: int) -> np.ndarray:
    return _order_stat(x, n, _RANK, 0.0)


# -- recursive --------------------------------------------------------------------------------------------------


@register("ema")
@numba.njit(**JIT)
def ema(x: np.ndarray, span: int) -> np.ndarray:
    """adjust=False EMA seeded with the mean of the first `span` present values; missing x keeps state."""
    m = x.shape[0]
    out = np.full(m, NAN)
    alpha = 2.0 / (span + 1.0)
    seen = 0
    s = 0.0
    c = 0.0
    e = NAN
    for i in range(m):
        v = x[i]
        if math.isnan(v):
            continue
        if seen < span:
            s, c = two_sum(s, c, v)
            seen += 1
            if seen < span:
                continue
            e = (s + c) / span
        else:
            e = alpha * v + (1.0 - alpha) * e
        out[i] = fin(e)
    return out
