"""An independent reference evaluator of every DSL operator, written from the semantics text.

Plain Python loops over lists of floats (NaN = missing, booleans 1.0 / 0.0 / NaN), one window at a
time, in exact rational arithmetic (`fractions.Fraction`) wherever rounding matters: sums, means,
variances, covariances, slopes and interpolations are exact and rounded once at the end, so the
reference is a tight oracle even on 1e8 + small noise (pandas' rolling std is not). It shares no code
with the backends; each function's docstring quotes the rule it implements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

NAN = math.nan
Series = list[float]


def _miss(v: float) -> bool:
    return v != v  # NaN is the only value not equal to itself


def _f(q: Fraction) -> float:
    """Exact -> float, correctly rounded; a result too large for a double is missing."""
    try:
        v = float(q)
    except OverflowError:
        return NAN
    return v if math.isfinite(v) else NAN


def _window(x: Sequence[float], i: int, n: int) -> list[float] | None:
    """The last n rows ending at i, or None unless all n exist and are present (strict window)."""
    if i < n - 1:
        return None
    w = list(x[i - n + 1 : i + 1])
    return None if any(_miss(v) for v in w) else w


def _exact_var(w: list[float]) -> Fraction:
    """Sample variance (ddof = 1), exact, by the two-pass definition."""
    q = [Fraction(v) for v in w]
    m = sum(q) / len(q)
    return sum((v - m) ** 2 for v in q) / (len(q) - 1)


def _map(fn: Callable[..., float], *cols: Sequence[float]) -> Series:
    return [fn(*vals) for vals in zip(*cols, strict=True)]


def _tri(v: float) -> bool | None:
    return None if _miss(v) else bool(v == 1.0)


def _from_tri(b: bool | None) -> float:
    return NAN if b is None else (1.0 if b else 0.0)


# -- arithmetic, comparison, logic ---------------------------------------------------------------------------


def _arith(op: Callable[[Fraction, Fraction], Fraction]) -> Callable[..., Series]:
    def run(a: Series, b: Series) -> Series:
        return _map(lambda u, v: NAN if _miss(u) or _miss(v) else _f(op(Fraction(u), Fraction(v))), a, b)

    return run


def ref_div(a: Series, b: Series) -> Series:
    """a / b; missing when b = 0 or either side is missing."""
    return _map(lambda u, v: NAN if _miss(u) or _miss(v) or v == 0 else _f(Fraction(u) / Fraction(v)), a, b)


def _real_pow(u: float, v: float) -> float:
    """u^v as a finite real, else missing (math.pow raises on 0^neg and neg^fraction, on overflow)."""
    if _miss(u) or _miss(v):
        return NAN
    try:
        r = math.pow(u, v)
    except (ValueError, OverflowError, ZeroDivisionError):
        return NAN
    return r if math.isfinite(r) else NAN


def ref_pow(a: Series, b: Series) -> Series:
    return _map(_real_pow, a, b)


def ref_neg(a: Series) -> Series:
    return [NAN if _miss(v) else -v for v in a]


def _cmp(op: Callable[[float, float], bool]) -> Callable[..., Series]:
    def run(a: Series, b: Series) -> Series:
        return _map(lambda u, v: NAN if _miss(u) or _miss(v) else (1.0 if op(u, v) else 0.0), a, b)

    return run


def ref_and(a: Series, b: Series) -> Series:
    """Kleene AND: false if either is false; true if both true; otherwise missing."""

    def k(u: float, v: float) -> float:
        p, q = _tri(u), _tri(v)
        if p is False or q is False:
            return 0.0
        return 1.0 if p is True and q is True else NAN

    return _map(k, a, b)


def ref_or(a: Series, b: Series) -> Series:
    """Kleene OR: true if either is true; false if both false; otherwise missing."""

    def k(u: float, v: float) -> float:
        p, q = _tri(u), _tri(v)
        if p is True or q is True:
            return 1.0
        return 0.0 if p is False and q is False else NAN

    return _map(k, a, b)


def ref_not(a: Series) -> Series:
    return [_from_tri(None if _tri(v) is None else not _tri(v)) for v in a]


# -- elementwise math -------------------------------------------------------------------------------------------


def _guarded(fn: Callable[[float], float], ok: Callable[[float], bool]) -> Callable[[Series], Series]:
    def run(x: Series) -> Series:
        out = []
        for v in x:
            if _miss(v) or not ok(v):
                out.append(NAN)
                continue
            try:
                r = fn(v)
            except OverflowError:
                r = NAN
            out.append(r if math.isfinite(r) else NAN)
        return out

    return run


def ref_sign(x: Series) -> Series:
    return [NAN if _miss(v) else float((v > 0) - (v < 0)) for v in x]


def ref_signed_pow(x: Series, a: Series) -> Series:
    """sign(x) × |x|^a; missing when not finite (0^negative)."""

    def k(u: float, p: float) -> float:
        if _miss(u) or _miss(p):
            return NAN
        m = _real_pow(abs(u), p)
        return NAN if _miss(m) else float((u > 0) - (u < 0)) * m

    return _map(k, x, a)


def ref_min(a: Series, b: Series) -> Series:
    return _map(lambda u, v: NAN if _miss(u) or _miss(v) else (u if u <= v else v), a, b)


def ref_max(a: Series, b: Series) -> Series:
    return _map(lambda u, v: NAN if _miss(u) or _miss(v) else (u if u >= v else v), a, b)


def ref_clip(x: Series, lo: Series, hi: Series) -> Series:
    """min(max(x, lo), hi); missing if any argument is missing or lo > hi."""

    def k(v: float, a: float, b: float) -> float:
        if _miss(v) or _miss(a) or _miss(b) or a > b:
            return NAN
        return a if v < a else (b if v > b else v)

    return _map(k, x, lo, hi)


def ref_if(c: Series, t: Series, e: Series) -> Series:
    return _map(lambda u, p, q: NAN if _miss(u) else (p if u == 1.0 else q), c, t, e)


# -- missing data -------------------------------------------------------------------------------------------------


def ref_is_missing(x: Series) -> Series:
    return [1.0 if _miss(v) else 0.0 for v in x]


def ref_fill(x: Series, value: Series) -> Series:
    return _map(lambda v, f: f if _miss(v) else v, x, value)


def ref_ffill(x: Series, n: int | None = None) -> Series:
    """x if present, else the most recent present value at most n rows back (unlimited without n)."""
    out = []
    for i, v in enumerate(x):
        if not _miss(v):
            out.append(v)
            continue
        found = NAN
        j = i - 1
        while j >= 0 and (n is None or i - j <= n):
            if not _miss(x[j]):
                found = x[j]
                break
            j -= 1
        out.append(found)
    return out


# -- time shifts ---------------------------------------------------------------------------------------------------


def ref_lag(x: Series, k: int = 1) -> Series:
    return [x[i - k] if i >= k else NAN for i in range(len(x))]


def ref_diff(x: Series, n: int = 1) -> Series:
    out = []
    for i in range(len(x)):
        if i < n or _miss(x[i]) or _miss(x[i - n]):
            out.append(NAN)
        else:
            out.append(_f(Fraction(x[i]) - Fraction(x[i - n])))
    return out


def ref_pct_change(x: Series, n: int = 1) -> Series:
    """x / lag(x, n) − 1; missing when lag(x, n) = 0."""
    out = []
    for i in range(len(x)):
        if i < n or _miss(x[i]) or _miss(x[i - n]) or x[i - n] == 0:
            out.append(NAN)
        else:
            out.append(_f(Fraction(x[i]) / Fraction(x[i - n]) - 1))
    return out


# -- rolling --------------------------------------------------------------------------------------------------------


def _rolling(x: Series, n: int, fn: Callable[[list[float], float], float]) -> Series:
    out = []
    for i in range(len(x)):
        w = _window(x, i, n)
        out.append(NAN if w is None else fn(w, x[i]))
    return out


def ref_sum(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: _f(sum(Fraction(v) for v in w)))


def ref_mean(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: _f(sum(Fraction(v) for v in w) / n))


def ref_var(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: _f(_exact_var(w)))


def ref_std(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: math.sqrt(_f(_exact_var(w))))


def ref_median(x: Series, n: int) -> Series:
    """Median (mean of the two middle values when n is even)."""

    def k(w: list[float], _: float) -> float:
        s = sorted(w)
        if n % 2:
            return s[n // 2]
        return _f((Fraction(s[n // 2 - 1]) + Fraction(s[n // 2])) / 2)

    return _rolling(x, n, k)


def ref_ts_min(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: min(w))


def ref_ts_max(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: max(w))


def ref_ts_argmax(x: Series, n: int) -> Series:
    """Rows since the window's largest value, ties to the most recent row."""
    return _rolling(x, n, lambda w, _: float(next(k for k in range(n) if w[n - 1 - k] == max(w))))


def ref_ts_argmin(x: Series, n: int) -> Series:
    return _rolling(x, n, lambda w, _: float(next(k for k in range(n) if w[n - 1 - k] == min(w))))


def ref_zscore(x: Series, n: int) -> Series:
    """(x − mean) / std (ddof = 1); missing when the window is constant."""

    def k(w: list[float], v: float) -> float:
        if max(w) == min(w):
            return NAN
        m = sum(Fraction(u) for u in w) / n
        return _f((Fraction(v) - m) / Fraction(math.sqrt(_f(_exact_var(w)))))

    return _rolling(x, n, k)


def ref_rank(x: Series, n: int) -> Series:
    """1-based ascending rank of the current value, ties averaged, divided by n."""

    def k(w: list[float], v: float) -> float:
        less = sum(1 for u in w if u < v)
        ties = sum(1 for u in w if u == v)
        return _f((Fraction(less) + Fraction(ties + 1, 2)) / n)

    return _rolling(x, n, k)


def ref_quantile(x: Series, n: int, q: float) -> Series:
    """sorted v, h = q·(n − 1), v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋])."""

    def k(w: list[float], _: float) -> float:
        s = sorted(w)
        h = Fraction(q) * (n - 1)
        lo = math.floor(h)
        if lo + 1 >= n:
            return s[lo]
        return _f(Fraction(s[lo]) + (h - lo) * (Fraction(s[lo + 1]) - Fraction(s[lo])))

    return _rolling(x, n, k)


def ref_slope(x: Series, n: int) -> Series:
    """Σ(t − t̄)(x − x̄) / Σ(t − t̄)² on t = 1..n (oldest = 1)."""

    def k(w: list[float], _: float) -> float:
        q = [Fraction(v) for v in w]
        tbar = Fraction(n + 1, 2)
        xbar = sum(q) / n
        num = sum((t + 1 - tbar) * (v - xbar) for t, v in enumerate(q))
        den = sum((t + 1 - tbar) ** 2 for t in range(n))
        return _f(num / den)

    return _rolling(x, n, k)


def ref_count(x: Series, n: int) -> Series:
    """Present values among the last n rows; missing only before n rows exist."""
    return [
        NAN if i < n - 1 else float(sum(not _miss(v) for v in x[i - n + 1 : i + 1])) for i in range(len(x))
    ]


def _pairs(x: Series, y: Series, i: int, n: int) -> tuple[list[Fraction], list[Fraction]] | None:
    wx, wy = _window(x, i, n), _window(y, i, n)
    if wx is None or wy is None:
        return None
    return [Fraction(v) for v in wx], [Fraction(v) for v in wy]


def ref_cov(x: Series, y: Series, n: int) -> Series:
    out = []
    for i in range(len(x)):
        p = _pairs(x, y, i, n)
        if p is None:
            out.append(NAN)
            continue
        qx, qy = p
        mx, my = sum(qx) / n, sum(qy) / n
        out.append(_f(sum((a - mx) * (b - my) for a, b in zip(qx, qy, strict=True)) / (n - 1)))
    return out


def ref_corr(x: Series, y: Series, n: int) -> Series:
    """Pearson r, pairwise strict; missing if either window is constant."""
    out = []
    for i in range(len(x)):
        p = _pairs(x, y, i, n)
        if p is None or max(p[0]) == min(p[0]) or max(p[1]) == min(p[1]):
            out.append(NAN)
            continue
        qx, qy = p
        mx, my = sum(qx) / n, sum(qy) / n
        sxy = sum((a - mx) * (b - my) for a, b in zip(qx, qy, strict=True))
        sxx = sum((a - mx) ** 2 for a in qx)
        syy = sum((b - my) ** 2 for b in qy)
        r2 = sxy * sxy / (sxx * syy)  # exact; one square root at the end
        out.append(math.copysign(math.sqrt(_f(r2)), float(sxy)))
    return out


def ref_realized_vol(returns: Series, n: int, periods_per_year: float) -> Series:
    """std(returns, n) × √P (the caller resolves P; annualize=false is P = 1)."""
    return _rolling(returns, n, lambda w, _: math.sqrt(_f(_exact_var(w) * Fraction(periods_per_year))))


def ref_winsorize(x: Series, n: int, k: float) -> Series:
    """clip(x, m − k·s, m + k·s), m and s the window's mean and sample std (window includes x)."""

    def fn(w: list[float], v: float) -> float:
        m = sum(Fraction(u) for u in w) / n
        s = Fraction(math.sqrt(_f(_exact_var(w))))
        lo, hi, q = m - Fraction(k) * s, m + Fraction(k) * s, Fraction(v)
        return _f(lo if q < lo else (hi if q > hi else q))

    return _rolling(x, n, fn)


def ref_ema(x: Series, span: int) -> Series:
    """α = 2/(span+1); seed at the span-th present value with the mean of the first span present values;
    then e = α·x + (1 − α)·e on every present x; missing x -> missing output, state unchanged."""
    alpha = 2.0 / (span + 1.0)
    out: Series = []
    first: list[float] = []
    e = NAN
    for v in x:
        if _miss(v):
            out.append(NAN)
            continue
        if len(first) < span:
            first.append(v)
            if len(first) < span:
                out.append(NAN)
                continue
            e = _f(sum(Fraction(u) for u in first) / span)
        else:
            e = alpha * v + (1.0 - alpha) * e
        out.append(e)
    return out


# -- events ------------------------------------------------------------------------------------------------------------


def _cross(x: Series, y: Series, up: bool) -> Series:
    out = [NAN] if x else []
    for i in range(1, len(x)):
        a0, b0, a1, b1 = x[i - 1], y[i - 1], x[i], y[i]
        if any(_miss(v) for v in (a0, b0, a1, b1)):
            out.append(NAN)
        elif up:
            out.append(1.0 if a1 > b1 and a0 <= b0 else 0.0)
        else:
            out.append(1.0 if a1 < b1 and a0 >= b0 else 0.0)
    return out


def ref_bars_since(cond: Series) -> Series:
    """0 where cond is true, else 1 + previous; missing before the first true; missing cond = false."""
    out: Series = []
    last_true = None
    for i, c in enumerate(cond):
        if c == 1.0:
            last_true = i
        out.append(NAN if last_true is None else float(i - last_true))
    return out


def ref_hold(entry: Series, value: Series, exit_: Series) -> Series:
    """exit true -> missing (flat); else entry true -> value; else the previous output."""
    out: Series = []
    prev = NAN
    for e, v, x in zip(entry, value, exit_, strict=True):
        if x == 1.0:
            prev = NAN
        elif e == 1.0:
            prev = v
        out.append(prev)
    return out


def ref_identity(x: Series) -> Series:
    return list(x)


REFERENCE: dict[str, Callable[..., Series]] = {
    "add": _arith(lambda a, b: a + b),
    "sub": _arith(lambda a, b: a - b),
    "mul": _arith(lambda a, b: a * b),
    "div": ref_div,
    "pow": ref_pow,
    "neg": ref_neg,
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "eq": _cmp(lambda a, b: a == b),
    "ne": _cmp(lambda a, b: a != b),
    "and": ref_and,
    "or": ref_or,
    "not": ref_not,
    "abs": lambda x: [abs(v) for v in x],
    "sign": ref_sign,
    "log": _guarded(math.log, lambda v: v > 0),
    "log1p": _guarded(math.log1p, lambda v: v > -1),
    "sqrt": _guarded(math.sqrt, lambda v: v >= 0),
    "exp": _guarded(math.exp, lambda v: True),
    "signed_pow": ref_signed_pow,
    "min": ref_min,
    "max": ref_max,
    "clip": ref_clip,
    "if": ref_if,
    "is_missing": ref_is_missing,
    "fill": ref_fill,
    "ffill": ref_ffill,
    "lag": ref_lag,
    "diff": ref_diff,
    "pct_change": ref_pct_change,
    "mean": ref_mean,
    "sum": ref_sum,
    "std": ref_std,
    "var": ref_var,
    "median": ref_median,
    "ts_min": ref_ts_min,
    "ts_max": ref_ts_max,
    "ts_argmax": ref_ts_argmax,
    "ts_argmin": ref_ts_argmin,
    "zscore": ref_zscore,
    "rank": ref_rank,
    "quantile": ref_quantile,
    "slope": ref_slope,
    "count": ref_count,
    "corr": ref_corr,
    "cov": ref_cov,
    "realized_vol": ref_realized_vol,
    "winsorize": ref_winsorize,
    "ema": ref_ema,
    "cross_above": lambda a, b: _cross(a, b, True),
    "cross_below": lambda a, b: _cross(a, b, False),
    "bars_since": ref_bars_since,
    "hold": ref_hold,
    "feature": ref_identity,
    "availability": ref_identity,
}
"""Reference implementation per operator name: operands as equal-length lists, then the kernel's options."""
