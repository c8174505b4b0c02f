"""Rolling statistics over the last n rows (current row included), strict unless the operator says so.

Windows, q, k, span and periods_per_year are runtime arguments: one compiled kernel serves every
window a study tries. All kernels are O(n) except median / quantile (a sorted window updated by one
insert and one delete per row) and rank (a branch-free count over the window), O(n·w) worst case.

Numerics. Sums and moments use a block decomposition (the van Herk / Gil-Werman trick): the series is
cut into blocks of n rows, and every window is the suffix of one block plus a prefix of the next. The
prefix and suffix sums are accumulated fresh inside each block, so a window's sum only ever contains
that window's values: nothing is subtracted, and no error from values that left the window long ago
(a 1e12 spike, a regime change) can leak into a later window, unlike add/remove running sums. All sums
are of deviations from a shift K that is a value inside every window ending in the block (the block's
first row), so mean = K + S1/n, var = (S2 − S1²/n) / (n − 1) has no catastrophic cancellation on data
such as 1e8 + small noise, and a constant window gives S1 = S2 = 0 exactly (mean = K, var = 0, zscore
0/0 = missing, corr missing, cov 0) with no separate test. Within a block the sums are plain: a window
sums at most n small deviations, so the rounding is within n·eps of Σ|x − K| (the property tests hold
1e-9 relative on every hard case), and compensated sums cost twice the time for digits the tolerance
never sees.

Speed (3M rows, n = 60: tests/benchmarks/bench_numba.py). One pass per block reads each row twice
(the prefix chain forward, the next block's suffix chain backward, interleaved so the two dependency
chains overlap), then a separate, branch-free loop over the block (in L1) turns its window sums into
results, which LLVM vectorises (sqrt and division four at a time). The finishing formula is chosen at
compile time (`numba.literally` on the mode), not by a branch per row. Indices are unsigned
(`np.uintp`) in the hot loops: with signed indices Numba adds a negative-index wraparound to every
access, which halved the speed. Missing values need no count: NaN poisons exactly the prefix / suffix
sums that contain it, which is the strict-window rule. Each output array is allocated once, by numpy
(`_common.empty`: huge pages, so a fresh 24 MB result does not cost more page faults than the kernel's
own work) and written once.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from compiler.numba_backend._common import JIT, NAN, empty, fin, full_nan, two_sum
from compiler.numba_backend._registry import register

# -- block-decomposed sums and moments -----------------------------------------------------------------------

_U = np.uintp  # unsigned index: no negative-index wraparound in the hot loops


@numba.njit(inline="always", **JIT)
def _suffix_start(n: int) -> np.ndarray:
    """Suffix sums of "the block before the first": missing for j < n (those windows are short), and the
    empty suffix (j = n) is 0, so a window that is exactly one block is its prefix alone."""
    u = np.empty(n + 1)
    u[:n] = NAN
    u[n] = 0.0
    return u


@numba.njit(**JIT)
def _window_sum(x: np.ndarray, n: int, c0: float, c1: float) -> np.ndarray:
    """c0·K + c1·Σ(x − K) of each full window (sum: c0 = n, c1 = 1; mean: c0 = 1, c1 = 1/n)."""
    m = x.shape[0]
    out = empty(m)
    if n > m:  # no full window; never allocate window-sized buffers for a window longer than the data
        out[:] = NAN
        return out
    u = _suffix_start(n)  # suffix sums of the previous block, in deviations from this block's K
    w = np.empty(n + 1)  # suffix sums of this block, in deviations from the next block's K
    w[n] = 0.0
    one = _U(1)
    for bs in range(0, m, n):
        size = min(n, m - bs)
        b0 = _U(bs)
        k = x[b0]
        kn = x[b0 + _U(n)] if bs + n < m else 0.0
        base = c0 * k
        a = 0.0
        b = 0.0
        for j in range(size):
            jj = _U(j)
            r = _U(size - 1 - j)
            a += x[b0 + jj] - k
            b += x[b0 + r] - kn
            w[r] = b
            v = base + c1 * (u[jj + one] + a)
            out[b0 + jj] = v if math.isfinite(v) else NAN
        u, w = w, u
    return out


_VAR = 0
_STD = 1
_ZSCORE = 2
_WINSORIZE = 3
_RVOL = 4


@numba.njit(**JIT)
def _moments(x: np.ndarray, n: int, mode: int, p: float) -> np.ndarray:
    """var / std / zscore / winsorize / realized_vol of each full window, from block-shifted sums.

    S1 = Σ(x − K), S2 = Σ(x − K)²; mode is a compile-time constant (each kernel its own finish loop).
    """
    numba.literally(mode)
    m = x.shape[0]
    out = empty(m)
    if n > m:
        out[:] = NAN
        return out
    u1 = _suffix_start(n)
    u2 = _suffix_start(n)
    w1 = np.empty(n + 1)
    w2 = np.empty(n + 1)
    w1[n] = 0.0
    w2[n] = 0.0
    t1 = np.empty(n)  # prefix sums of this block
    t2 = np.empty(n)
    inv_n = 1.0 / n
    inv_n1 = 1.0 / (n - 1)
    one = _U(1)
    for bs in range(0, m, n):
        size = min(n, m - bs)
        b0 = _U(bs)
        k = x[b0]  # the shift: a value inside every window that ends in this block
        kn = x[b0 + _U(n)] if bs + n < m else 0.0
        a1 = 0.0
        a2 = 0.0
        b1 = 0.0
        b2 = 0.0
        for j in range(size):
            jj = _U(j)
            r = _U(size - 1 - j)
            d = x[b0 + jj] - k
            a1 += d
            a2 += d * d
            t1[jj] = a1
            t2[jj] = a2
            e = x[b0 + r] - kn
            b1 += e
            b2 += e * e
            w1[r] = b1
            w2[r] = b2
        for j in range(size):  # branch-free (selects), vectorised
            jj = _U(j)
            s1 = u1[jj + one] + t1[jj]
            s2 = u2[jj + one] + t2[jj]
            dev = s1 * inv_n  # mean − K
            var = (s2 - s1 * dev) * inv_n1
            var = 0.0 if var < 0.0 else var  # rounding below an exact 0; NaN stays NaN
            if mode == _VAR:
                res = var
            elif mode == _STD:
                res = math.sqrt(var)
            elif mode == _RVOL:
                res = math.sqrt(var) * p
            elif mode == _ZSCORE:  # a constant window: 0 / 0 = missing
                res = ((x[b0 + jj] - k) - dev) / math.sqrt(var)
            else:  # winsorize: clip(x, mean − p·s, mean + p·s); a constant window gives x (= K)
                band = p * math.sqrt(var)
                lo = k + (dev - band)
                hi = k + (dev + band)
                v = x[b0 + jj]
                res = lo if v < lo else v
                res = hi if res > hi else res
                res = NAN if math.isnan(s1) else res
            out[b0 + jj] = res if math.isfinite(res) else NAN
        u1, w1 = w1, u1
        u2, w2 = w2, u2
    return out


@register("sum")
@numba.njit(**JIT)
def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """n·K + Σ(x − K): a constant window sums to n·c rounded once."""
    return _window_sum(x, n, float(n), 1.0)


@register("mean")
@numba.njit(**JIT)
def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """K + Σ(x − K)/n: a constant window's mean is exactly its value (x > mean(x) stays false on flat data)."""
    return _window_sum(x, n, 1.0, 1.0 / n)


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


@numba.njit(**JIT)
def _comoments(x: np.ndarray, y: np.ndarray, n: int, mode: int) -> np.ndarray:
    """cov / corr of each full window, pairwise strict, from block-shifted sums (shifts Kx, Ky).

    NaN in either series poisons the shared sums through dx·dy; a constant x (or y) window has
    Sx = Sxx = Sxy = 0 exactly: cov 0, corr 0 / 0 = missing.
    """
    numba.literally(mode)
    m = x.shape[0]
    out = empty(m)
    if n > m:
        out[:] = NAN
        return out
    ux = _suffix_start(n)
    uy = _suffix_start(n)
    uxx = _suffix_start(n)
    uyy = _suffix_start(n)
    uxy = _suffix_start(n)
    wx = _suffix_start(n)  # only [n] = 0 matters: the rest is written before it is read
    wy = _suffix_start(n)
    wxx = _suffix_start(n)
    wyy = _suffix_start(n)
    wxy = _suffix_start(n)
    tx = np.empty(n)
    ty = np.empty(n)
    txx = np.empty(n)
    tyy = np.empty(n)
    txy = np.empty(n)
    inv_n = 1.0 / n
    inv_n1 = 1.0 / (n - 1)
    one = _U(1)
    for bs in range(0, m, n):
        size = min(n, m - bs)
        b0 = _U(bs)
        kx = x[b0]
        ky = y[b0]
        nx = x[b0 + _U(n)] if bs + n < m else 0.0
        ny = y[b0 + _U(n)] if bs + n < m else 0.0
        ax = ay = axx = ayy = axy = 0.0
        bx = by = bxx = byy = bxy = 0.0
        for j in range(size):
            jj = _U(j)
            r = _U(size - 1 - j)
            dx = x[b0 + jj] - kx
            dy = y[b0 + jj] - ky
            ax += dx
            ay += dy
            axy += dx * dy
            tx[jj] = ax
            ty[jj] = ay
            txy[jj] = axy
            ex = x[b0 + r] - nx
            ey = y[b0 + r] - ny
            bx += ex
            by += ey
            bxy += ex * ey
            wx[r] = bx
            wy[r] = by
            wxy[r] = bxy
            if mode == _CORR:  # pruned at compile time: cov needs no squares
                axx += dx * dx
                ayy += dy * dy
                txx[jj] = axx
                tyy[jj] = ayy
                bxx += ex * ex
                byy += ey * ey
                wxx[r] = bxx
                wyy[r] = byy
        for j in range(size):  # branch-free (selects), vectorised
            jj = _U(j)
            sx = ux[jj + one] + tx[jj]
            sy = uy[jj + one] + ty[jj]
            cxy = (uxy[jj + one] + txy[jj]) - sx * (sy * inv_n)
            if mode == _COV:
                res = cxy * inv_n1 + 0.0  # + 0.0: a constant window gives 0, not -0
            else:
                vx = (uxx[jj + one] + txx[jj]) - sx * (sx * inv_n)
                vy = (uyy[jj + one] + tyy[jj]) - sy * (sy * inv_n)
                res = cxy / (math.sqrt(vx) * math.sqrt(vy))  # vx < 0 by rounding: sqrt -> NaN
                res = 1.0 if res > 1.0 else res
                res = -1.0 if res < -1.0 else res
            out[b0 + jj] = res if math.isfinite(res) else NAN
        ux, wx = wx, ux
        uy, wy = wy, uy
        uxx, wxx = wxx, uxx
        uyy, wyy = wyy, uyy
        uxy, wxy = wxy, uxy
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
    out = full_nan(m)
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
    out = full_nan(m)
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
    val = full_nan(m)
    arg = full_nan(m)
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
    out = full_nan(m)
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
    out = full_nan(m)
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


@numba.njit(inline="always", **JIT)
def _ema_seed(x: np.ndarray, span: int, out: np.ndarray) -> tuple[int, float]:
    """Missing output up to the span-th present value, which gets the (compensated) mean of the first
    span present values; returns the next row and that seed (row = len(x) if there are too few)."""
    m = x.shape[0]
    seen = 0
    s = 0.0
    c = 0.0
    for i in range(m):
        v = x[i]
        out[i] = NAN
        if math.isnan(v):
            continue
        s, c = two_sum(s, c, v)
        seen += 1
        if seen == span:
            e = (s + c) / span
            out[i] = fin(e)
            return i + 1, e
    return m, NAN


@register("ema")
@numba.njit(**JIT)
def ema(x: np.ndarray, span: int) -> np.ndarray:
    """adjust=False EMA seeded with the mean of the first `span` present values; missing x keeps state.

    Each row is the affine map e -> B·e + A (B = 1 − α, A = α·x; missing: B = 1, A = 0, so the state is
    kept without a branch). Two rows are composed before they touch the state, so the loop-carried
    chain is one multiply-add per two rows instead of per row (the recursion's latency, not its
    arithmetic, is what bounds it). Rounding differs from the row-by-row form by a few ulps of e,
    and does not grow: the recursion contracts by 1 − α per row.
    """
    m = x.shape[0]
    out = empty(m)
    i, e = _ema_seed(x, span, out)
    a = 2.0 / (span + 1.0)
    b = 1.0 - a
    one = _U(1)
    while i + 1 < m:
        ii = _U(i)
        v1 = x[ii]
        v2 = x[ii + one]
        ok1 = v1 == v1
        ok2 = v2 == v2
        a1 = a * v1 if ok1 else 0.0
        b1 = b if ok1 else 1.0
        a2 = a * v2 if ok2 else 0.0
        b2 = b if ok2 else 1.0
        e1 = b1 * e + a1
        e = (b2 * b1) * e + (b2 * a1 + a2)
        r1 = e1 if ok1 else NAN
        r2 = e if ok2 else NAN
        out[ii] = fin(r1)
        out[ii + one] = fin(r2)
        i += 2
    if i < m:
        v = x[_U(i)]
        ok = v == v
        e = a * v + b * e if ok else e
        out[_U(i)] = fin(e) if ok else NAN
    return out
