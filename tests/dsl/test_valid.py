"""At least 80 valid expressions: each checks, with the hand-derived kind and frequency."""

from __future__ import annotations

import pytest

from dsl import Frequency, Kind, check, format_expr, parse

from .conftest import CATALOG

F, B, FS, IS, BS = Kind.FLOAT, Kind.BOOL, Kind.FLOAT_SCALAR, Kind.INT_SCALAR, Kind.BOOL_SCALAR
D, M, S = Frequency.DAILY, Frequency.MINUTE, Frequency.SCALAR

SLOTS = {"primary": "cta_flow", "secondary": "spx_ret"}
PARAMS = {"p": 2, "n": 20, "z": 1.5, "k": 1, "on": True}

VALID = [
    ("SPX.close", F, D),
    ("SPX_PRICES.close", F, D),
    ("cta_flow", F, D),
    ("vix_high", B, D),
    ("zscore(lag(cta_flow,1),60) > 0 AND NOT vix_high", B, D),
    ("mean(SPX.close, 20)", F, D),
    ("ts_mean(SPX.close, 20)", F, D),
    ("sum(cta_flow, 5)", F, D),
    ("std(spx_ret, 20)", F, D),
    ("ts_std(spx_ret, 20)", F, D),
    ("var(spx_ret, 2)", F, D),
    ("median(VIX.close, 5)", F, D),
    ("ts_min(VIX.close, 10)", F, D),
    ("ts_max(VIX.close, 10)", F, D),
    ("ts_argmax(SPX.close, 20)", F, D),
    ("ts_argmin(SPX.close, 20)", F, D),
    ("zscore(cta_flow, 60)", F, D),
    ("ts_zscore(cta_flow, 60)", F, D),
    ("rank(cta_flow, 252)", F, D),
    ("ts_rank(cta_flow, 252)", F, D),
    ("quantile(VIX.close, 60, 0.9)", F, D),
    ("ts_quantile(VIX.close, 60, q=.9)", F, D),
    ("ema(SPX.close, 20)", F, D),
    ("ema(SPX.close, span=20)", F, D),
    ("corr(spx_ret, cta_flow, 60)", F, D),
    ("cov(spx_ret, cta_flow, 60)", F, D),
    ("slope(SPX.close, 20)", F, D),
    ("realized_vol(spx_ret, 20)", F, D),
    ("realized_vol(spx_ret, 20, annualize=false)", F, D),
    ("realized_vol(ES.close, 30, periods_per_year=347760)", F, M),
    ("count(SPX.close, 10)", F, D),
    ("count(vix_high, 10)", F, D),
    ("ffill(cta_flow)", F, D),
    ("ffill(cta_flow, 3)", F, D),
    ("fill(cta_flow, 0)", F, D),
    ("fill(vix_high, false)", B, D),
    ("is_missing(cta_flow)", B, D),
    ("lag(vix_high, 2)", B, D),
    ("delay(SPX.close, 1)", F, D),
    ("lag(SPX.close)", F, D),
    ("lag(SPX.close, 0)", F, D),
    ("diff(SPX.close)", F, D),
    ("delta(SPX.close, 5)", F, D),
    ("pct_change(SPX.close, 5)", F, D),
    ("abs(spx_ret)", F, D),
    ("sign(spx_ret)", F, D),
    ("log(SPX.close)", F, D),
    ("log1p(spx_ret)", F, D),
    ("sqrt(VIX.close)", F, D),
    ("exp(spx_ret)", F, D),
    ("signed_pow(spx_ret, 0.5)", F, D),
    ("min(VIX.close, 30)", F, D),
    ("max(cta_flow, 0)", F, D),
    ("min(CREDIT.baa, CREDIT.aaa)", F, D),
    ("clip(zscore(cta_flow, 60), -3, 3)", F, D),
    ("if(vix_high, 0, 1)", F, D),
    ("where(vix_high, spx_ret, 0)", F, D),
    ("if(CAL.fomc_day, false, vix_high)", B, D),
    ("cross_above(SPX.close, mean(SPX.close, 50))", B, D),
    ("cross_below(cta_flow, 0)", B, D),
    ("bars_since(cross_above(SPX.close, mean(SPX.close, 50)))", F, D),
    ("days_since(vix_high)", F, D),
    ("hold(cross_above(cta_flow, 0), 1, cross_below(cta_flow, 0))", F, D),
    ("trade_when(vix_high, spx_ret, NOT vix_high)", F, D),
    ("hold(vix_high, true, CAL.fomc_day)", B, D),
    ("asof(SPX.close)", F, M),
    ("ES.close > asof(mean(SPX.close, 20))", B, M),
    ("to_daily(ES.volume, how='sum')", F, D),
    ("to_daily(ES.close)", F, D),
    ("to_daily(ES.delta > 0, 'max')", B, D),
    ("mean(to_daily(ES.volume, 'sum'), 20)", F, D),
    ("ES.delta - lag(ES.delta, 5)", F, M),
    ("es_delta + ES.delta", F, M),
    ("fill(ES.close, asof(SPX.close))", F, M),
    ("credit_spread > 2", B, D),
    ("combo", F, D),
    ("risk_off OR calm", B, D),
    ("NOT risk_off AND wide_credit", B, D),
    ("vix_z", F, D),
    ("claims", F, D),
    ("cta_fast", F, D),
    ("spx_slow", F, D),
    ("1 + 2", FS, S),
    ("2 ^ 3", FS, S),
    ("true AND false", BS, S),
    ("-5", IS, S),
    ("1.5", FS, S),
    ("60.0", IS, S),
    ("if(true, 1, 2)", FS, S),
    ("$p * SPX.close", F, D),
    ("mean(SPX.close, $n)", F, D),
    ("lag(SPX.close, $k) > $z", B, D),
    ("realized_vol(spx_ret, $n, annualize=$on)", F, D),
    ("{primary} > {secondary}", B, D),
    ("zscore({primary}, $n) > $z", B, D),
    ("=SPX.close <> SPX.open", B, D),
    ("SPX.close = SPX.open", B, D),
    ("vix_high == CAL.fomc_day", B, D),
    ("(((SPX.close)))", F, D),
    ("SPX.close / SPX.open - 1", F, D),
    ("(CREDIT.baa - CREDIT.aaa) / CREDIT.aaa * 100", F, D),
    ("winsorize(spx_ret, 60, 3)", F, D),
    ("NOT (SPX.close > SPX.open)", B, D),
    ("vix_high AND TRUE", B, D),
    ("ZSCORE(Lag(cta_flow, 1), 60) > 0 and not vix_high", B, D),
]


def test_there_are_at_least_80_valid_cases():
    assert len(VALID) >= 80
    assert len({t for t, _, _ in VALID}) == len(VALID)


@pytest.mark.parametrize(("text", "kind", "frequency"), VALID)
def test_valid_expression_checks(text, kind, frequency):
    g = check(text, CATALOG, params=PARAMS, slots=SLOTS)
    assert (g.kind, g.frequency) == (kind, frequency)
    # the canonical text re-checks to the same graph
    again = check(format_expr(parse(text)), CATALOG, params=PARAMS, slots=SLOTS)
    assert again.hash == g.hash
