"""Rolling statistics over the last n rows (current row included), strict unless the operator says so.

Windows, q, k, span and periods_per_year are runtime arguments: one compiled kernel serves every
window a study tries. All kernels are O(n) except median / quantile (a sorted window updated by one
insert and one delete per row) and rank (a branch-free count over the window), O(n·w) worst case.

Numerics. Sums and moments use a block decomposition (the van Herk / Gil-Werman trick): the series is
cut into blocks of n rows, and every window is the suffix of one block plus a prefix of the next. The
prefix and suffix sums are accumulated fresh inside each block with compensated (TwoSum) sums, so a
window's sum only ever contains that window's values: nothing is subtracted, and no error from values
that left the window long ago (a 1e12 spike, a regime change) can leak into a later window, unlike
add/remove running sums. Second moments are sums of deviations from a shift K that is a value inside
every window of the block (the block's first row), so var = (S2 − S1²/n) / (n − 1) has no catastrophic
cancellation on data such as 1e8 + small noise (first and cross sums are compensated; sums of squares
are positive, so a plain sum is within n·eps). Missing values poison exactly the prefix / suffix sums
that contain them, which is the strict-window rule without a separate count. A constant window is
detected exactly (Σ|x − K| = 0), not by a rounded variance.
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
    if n > m:  # no full window; never allocate window-sized buffers for a window longer than the data
        return out
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


_VAR = 0
_STD = 1
_ZSCORE = 2
_WINSORIZE = 3
_RVOL = 4


@numba.njit(inline="always", **JIT)
def _finish(mode: int, v: float, k: float, s1: float, s2: float, sa: float, n: int, p: float) -> float:
    """One window's result from its shifted sums (S1 = Σ(x−K), S2 = Σ(x−K)², SA = Σ|x−K|)."""
    if math.isnan(s1) or math.isnan(s2):
        return NAN
    if sa == 0.0:  # constant window, detected exactly
        if mode == _ZSCORE:
            return NAN
        return v if mode == _WINSORIZE else 0.0
    var = (s2 - s1 * (s1 / n)) * (1.0 / (n - 1))
    if not var > 0.0:
        var = 0.0
    if mode == _VAR:
        return fin(var)
    sd = math.sqrt(var)
    if mode == _STD:
        return fin(sd)
    if mode == _RVOL:
        return fin(sd * p)
    if mode == _ZSCORE:
        return fin(((v - k) - s1 / n) / sd) if sd > 0.0 else NAN
    dev = s1 / n  # winsorize: mean − K, band k·s with k = p
    lo = k + (dev - p * sd)
    hi = k + (dev + p * sd)
    return fin(min(max(v, lo), hi))


@numba.njit(**JIT)
def _moments(x: np.ndarray, n: int, mode: int, p: float) -> np.ndarray:
    """var / std / zscore / winsorize / realized_vol of each full window, from block-shifted sums."""
    m = x.shape[0]
    out = np.full(m, NAN)
    if n > m:
        return out
    u1 = np.empty(n)
    u2 = np.empty(n)
    ua = np.empty(n)
    for bs in range(0, m, n):
        k = x[bs]  # the shift: a value inside every window that ends in this block
        if bs > 0:
            a = 0.0
            ac = 0.0
            q = 0.0
            ab = 0.0
            for j in range(bs - 1, bs - n - 1, -1):
                dv = x[j] - k
                a, ac = two_sum(a, ac, dv)
                q += dv * dv
                ab += abs(dv)
                u1[j - (bs - n)] = a + ac
                u2[j - (bs - n)] = q
                ua[j - (bs - n)] = ab
        a = 0.0
        ac = 0.0
        q = 0.0
        ab = 0.0
        for i in range(bs, min(bs + n, m)):
            dv = x[i] - k
            a, ac = two_sum(a, ac, dv)
            q += dv * dv
            ab += abs(dv)
            st = i - n + 1
            if st < 0:
                continue
            if st == bs:
                out[i] = _finish(mode, x[i], k, a + ac, q, ab, n, p)
            else:
                j = st - (bs - n)
                out[i] = _finish(mode, x[i], k, u1[j] + (a + ac), u2[j] + q, ua[j] + ab, n, p)
    return out


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
    return _moments(x, n, _VAR, 0.0)


@register("std")
@numba.njit(**JIT)
def rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    return _moments(x, n, _STD, 0.0)


@register("zscore")
@numba.njit(**JIT)
def zscore(x: np.ndarray, n: int) -> np.ndarray:
    """(x − mean) / std with the deviation taken from the shift: ((x − K) − S1/n) / std."""
    return _moments(x, n, _ZSCORE, 0.0)


@register("winsorize")
@numba.njit(**JIT)
def winsorize(x: np.ndarray, n: int, k: float) -> np.ndarray:
    """clip(x, m − k·s, m + k·s); a constant window gives x itself (m = x, s = 0)."""
    return _moments(x, n, _WINSORIZE, k)


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
    return _moments(returns, n, _RVOL, math.sqrt(periods_per_year))


_COV = 0
_CORR = 1


@numba.njit(inline="always", **JIT)
def _finish2(
    mode: int, n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float, ax: float, ay: float
) -> float:
    if math.isnan(sxy) or math.isnan(sxx) or math.isnan(syy):
        return NAN
    if ax == 0.0 or ay == 0.0:  # a constant window: cov 0, corr missing
        return 0.0 if mode == _COV else NAN
    cxy = sxy - sx * sy / n
    if mode == _COV:
        return fin(cxy / (n - 1))
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    if not (vx > 0.0 and vy > 0.0):
        return NAN
    r = cxy / (math.sqrt(vx) * math.sqrt(vy))
    return fin(min(1.0, max(-1.0, r)))


@numba.njit(**JIT)
def _comoments(x: np.ndarray, y: np.ndarray, n: int, mode: int) -> np.ndarray:
    """cov / corr of each full window, pairwise strict, from block-shifted sums (shifts Kx, Ky)."""
    m = x.shape[0]
    out = np.full(m, NAN)
    if n > m:
        return out
    u = np.empty((n, 7))
    for bs in range(0, m, n):
        kx = x[bs]
        ky = y[bs]
        if bs > 0:
            a = ac = b = bc = aa = bb = ab = abc = 0.0
            fa = fb = 0.0
            for j in range(bs - 1, bs - n - 1, -1):
                dx = x[j] - kx
                dy = y[j] - ky
                a, ac = two_sum(a, ac, dx)
                b, bc = two_sum(b, bc, dy)
                aa += dx * dx  # positive terms: plain sums are within n·eps
                bb += dy * dy
                ab, abc = two_sum(ab, abc, dx * dy)
                fa += abs(dx)
                fb += abs(dy)
                r = j - (bs - n)
                u[r, 0] = a + ac
                u[r, 1] = b + bc
                u[r, 2] = aa
                u[r, 3] = bb
                u[r, 4] = ab + abc
                u[r, 5] = fa
                u[r, 6] = fb
        a = ac = b = bc = aa = bb = ab = abc = 0.0
        fa = fb = 0.0
        for i in range(bs, min(bs + n, m)):
            dx = x[i] - kx
            dy = y[i] - ky
            a, ac = two_sum(a, ac, dx)
            b, bc = two_sum(b, bc, dy)
            aa += dx * dx
            bb += dy * dy
            ab, abc = two_sum(ab, abc, dx * dy)
            fa += abs(dx)
            fb += abs(dy)
            st = i - n + 1
            if st < 0:
                continue
            if st == bs:
                out[i] = _finish2(mode, n, a + ac, b + bc, aa, bb, ab + abc, fa, fb)
            else:
                r = st - (bs - n)
                out[i] = _finish2(
                    mode,
                    n,
                    u[r, 0] + (a + ac),
                    u[r, 1] + (b + bc),
                    u[r, 2] + aa,
                    u[r, 3] + bb,
                    u[r, 4] + (ab + abc),
                    u[r, 5] + fa,
                    u[r, 6] + fb,
                )
    return out


@register("cov")
@numba.njit(**JIT)
def cov(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Sample covariance; missing unless x and y are both present on all n rows (NaN in either poisons
    the shared sums through dx·dy)."""
    return _comoments(x, y, n, _COV)


@register("corr")
@numba.njit(**JIT)
def corr(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Pearson r, clamped to [-1, 1]; missing if either window is constant."""
    return _comoments(x, y, n, _CORR)


@register("slope")
@numba.njit(**JIT)
def slope(x: np.ndarray, n: int) -> np.ndarray:
    """OLS slope on t = 1..n: Σ(t − t̄)(x − K) / Σ(t − t̄)², from block sums of (x−K) and j·(x−K)."""
    m = x.shape[0]
    out = np.full(m, NAN)
    if n > m:
        return out
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
    """Window max (or min) and rows since it, ties to the most recent row, via a monotonic deque.

    The deque is a ring (power-of-two slots, index by mask) holding (index, value), so the hot loop
    never re-reads x.
    """
    m = x.shape[0]
    val = np.full(m, NAN)
    arg = np.full(m, NAN)
    if n > m:
        return val, arg
    cap = 1
    while cap < n + 1:
        cap *= 2
    mask = cap - 1
    di = np.empty(cap, dtype=np.int64)
    dv = np.empty(cap)
    head = 0
    size = 0
    last_nan = -1
    for i in range(m):
        v = x[i]
        if math.isnan(v):
            last_nan = i
            size = 0
            continue
        if is_max:
            while size > 0 and dv[(head + size - 1) & mask] <= v:
                size -= 1
        else:
            while size > 0 and dv[(head + size - 1) & mask] >= v:
                size -= 1
        t = (head + size) & mask
        di[t] = i
        dv[t] = v
        size += 1
        st = i - n + 1
        while di[head] < st:
            head = (head + 1) & mask
            size -= 1
        if st >= 0 and last_nan < st:
            val[i] = dv[head]
            arg[i] = float(i - di[head])
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
    """Median or q-quantile (numpy 'linear') of each full window, from the sorted window."""
    m = x.shape[0]
    out = np.full(m, NAN)
    if n > m:
        return out
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
        if mode == _MEDIAN:
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
    """(values below + (ties incl. itself + 1) / 2) / n: one branch-free pass over the window per row,
    faster than keeping the window sorted (the counts vectorise; the sorted insert does not)."""
    m = x.shape[0]
    out = np.full(m, NAN)
    last_nan = -1
    for i in range(m):
        v = x[i]
        if math.isnan(v):
            last_nan = i
            continue
        st = i - n + 1
        if st < 0 or last_nan >= st:
            continue
        less = 0
        ties = 0
        for j in range(st, i + 1):
            u = x[j]
            less += 1 if u < v else 0
            ties += 1 if u == v else 0
        out[i] = (less + (ties + 1) / 2.0) / n
    return out


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
