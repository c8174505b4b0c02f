"""A small, hand-checkable catalog shared by the DSL tests.

Availability lags (periods a decision executed at the close must pay):
  SPX.close/SPX.open, VIX.close, CTA.cta_flow, CREDIT.baa/aaa: 1 (daily, known after the close)
  MACRO.claims: 3 (published with a delay)        CAL.fomc_day: 0 (bool, known in advance)
  ES.close / ES.delta / ES.volume: 1 bar (1m, known at the bar's end)
  SPX_PRICES.close is an alias of SPX.close (same dataset and column).
"""

from __future__ import annotations

import pytest

from dsl import Catalog, ColumnDef, FeatureDef, Frequency, Kind, MissingPolicy, Normalize, Origin, Winsorize

D, M = Frequency.DAILY, Frequency.MINUTE


def col(
    name: str, lag: int, cell: str, freq: Frequency = D, kind: Kind = Kind.FLOAT, rule: str = "after_close"
):
    dataset, column = name.split(".")
    if dataset == "SPX_PRICES":
        dataset = "SPX"
    return ColumnDef(name, dataset, column, kind, freq, lag, Origin("DATASETS", cell), rule)


COLUMNS = [
    col("SPX.close", 1, "J2"),
    col("SPX.open", 1, "J2"),
    col("SPX_PRICES.close", 1, "J2"),
    col("VIX.close", 1, "J3"),
    col("CTA.cta_flow", 1, "J4"),
    col("CREDIT.baa", 1, "J5"),
    col("CREDIT.aaa", 1, "J5"),
    col("MACRO.claims", 3, "J6"),
    col("CAL.fomc_day", 0, "J7", kind=Kind.BOOL, rule="at_close"),
    col("ES.close", 1, "J8", M, rule="realtime"),
    col("ES.delta", 1, "J8", M, rule="realtime"),
    col("ES.volume", 1, "J8", M, rule="realtime"),
]

SHEETS = {"feature": "FEATURE_LIBRARY", "engineered": "ENGINEERED_FEATURES", "gate": "GATES"}


def feat(name: str, role: str, expression: str, cell: str, **kw) -> FeatureDef:
    column = {"feature": "transform", "engineered": "combine_transform", "gate": "expression"}[role]
    return FeatureDef(name, role, expression, Origin(SHEETS[role], cell, column), **kw)


FEATURES = [
    feat("cta_flow", "feature", "", "F2", input_column="CTA.cta_flow"),
    feat("vix", "feature", "", "F3", input_column="VIX.close"),
    feat(
        "vix_high",
        "feature",
        "x > $threshold",
        "F4",
        input_column="VIX.close",
        params={"threshold": 25},
        lag_days=1,
    ),
    feat("spx_ret", "feature", "pct_change(x,1)", "F5", input_column="SPX.close"),
    feat("baa", "feature", "", "F6", input_column="CREDIT.baa"),
    feat("aaa", "feature", "", "F7", input_column="CREDIT.aaa"),
    feat(
        "cta_fast",
        "feature",
        "",
        "F8",
        input_column="CTA.cta_flow",
        availability_lag_override=0,
        availability_origin=Origin("FEATURE_LIBRARY", "I8"),
    ),
    feat(
        "spx_slow",
        "feature",
        "",
        "F9",
        input_column="SPX.close",
        availability_lag_override=2,
        availability_origin=Origin("FEATURE_LIBRARY", "I9"),
    ),
    feat(
        "vix_z",
        "feature",
        "",
        "F10",
        input_column="VIX.close",
        lag_days=1,
        missing_policy=MissingPolicy("ffill", 5),  # the workbook's ffill:5 / 60:3 / zscore:20, parsed
        winsorize=Winsorize(60, 3),
        normalize=Normalize("zscore", 20),
    ),
    feat("claims", "feature", "diff(x, 1)", "F11", input_column="MACRO.claims"),
    feat("old_signal", "feature", "", "F12", input_column="SPX.open", enabled=False),
    feat("es_delta", "feature", "", "F13", input_column="ES.delta"),
    feat(
        "credit_spread",
        "engineered",
        "baa - aaa",
        "D2",
        declared_inputs=("baa", "aaa"),
        lag_days=1,
    ),
    feat(
        "combo",
        "engineered",
        "zscore(cta_flow, 20) - zscore(spx_ret, 20)",
        "D3",
        declared_inputs=("cta_flow", "spx_ret"),
    ),
    feat("risk_off", "gate", "vix > 30", "B2"),
    feat("calm", "gate", "NOT vix_high", "B3"),
    feat("wide_credit", "gate", "credit_spread > $level", "B4", params={"level": 2.5}),
]


def make_catalog(*extra: FeatureDef, drop: tuple[str, ...] = ()) -> Catalog:
    features = {f.name: f for f in FEATURES if f.name not in drop}
    features.update({f.name: f for f in extra})
    return Catalog({c.name: c for c in COLUMNS}, features)


CATALOG = make_catalog()


@pytest.fixture
def catalog() -> Catalog:
    return CATALOG
