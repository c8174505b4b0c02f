"""DSL front end: warm parse+check per expression vs Lark's bare parse of the same strings.

1,000 distinct, realistic cell expressions (seeded) over a workbook-sized catalog. "Warm" means the
parser tables are built and the catalog's feature expansions are cached, as in a long-lived process
(config export, notebook, optimizer). The baseline is a plain `Lark(grammar, parser="lalr")` building
its default parse tree for the same strings with the same grammar, measured in the same run.
"""

from __future__ import annotations

import random

from lark import Lark

from dsl import (
    Catalog,
    CheckSession,
    ColumnDef,
    FeatureDef,
    Frequency,
    Kind,
    Origin,
    check,
    check_catalog,
    parse,
)
from dsl.parser import grammar_text, normalize
from tests.benchmarks.run import BenchRow, best_of

N_EXPRESSIONS = 1000
SEED = 20240611


def bench_catalog() -> Catalog:
    """~30 columns and ~40 features/gates, shaped like the workbook's FEATURE_LIBRARY/GATES sheets."""
    cols: dict[str, ColumnDef] = {}
    datasets = ["SPX", "NDX", "VIX", "CTA", "CREDIT", "UST10", "DXY", "GOLD"]
    for i, ds in enumerate(datasets):
        for c in ("close", "open", "high", "low"):
            name = f"{ds}.{c}"
            cols[name] = ColumnDef(
                name, ds, c, Kind.FLOAT, Frequency.DAILY, 1, Origin("DATASETS", f"J{i + 2}")
            )
    feats: dict[str, FeatureDef] = {}

    def add(name: str, role: str, expr: str, **kw: object) -> None:
        sheet = {"feature": "FEATURE_LIBRARY", "engineered": "ENGINEERED_FEATURES", "gate": "GATES"}[role]
        feats[name] = FeatureDef(name, role, expr, Origin(sheet, f"F{len(feats) + 2}"), **kw)  # type: ignore[arg-type]

    for ds in datasets:
        low = ds.lower()
        add(f"{low}_px", "feature", "", input_column=f"{ds}.close")
        add(f"{low}_ret", "feature", "pct_change(x, 1)", input_column=f"{ds}.close")
        add(f"{low}_z", "feature", "zscore(x, $n)", input_column=f"{ds}.close", params={"n": 60}, lag_days=1)
        add(
            f"{low}_hi",
            "feature",
            "x > mean(x, $n)",
            input_column=f"{ds}.close",
            params={"n": 20},
            lag_days=1,
        )
    add("spread", "engineered", "cta_px - credit_px", declared_inputs=("cta_px", "credit_px"), lag_days=1)
    add("risk_off", "gate", "lag(vix_px, 1) > 30")
    add("calm", "gate", "NOT vix_hi")
    add("trend", "gate", "spx_hi AND ndx_hi")
    return Catalog(cols, feats)


def expressions(n: int = N_EXPRESSIONS, seed: int = SEED) -> list[str]:
    """`n` distinct expressions from realistic templates with random names and windows."""
    rnd = random.Random(seed)
    feats = ["spx_ret", "ndx_ret", "cta_px", "vix_px", "credit_px", "ust10_ret", "dxy_ret", "gold_ret"]
    cols = ["SPX.close", "NDX.close", "VIX.close", "CTA.close", "GOLD.close", "DXY.close"]
    gates = ["calm", "trend", "risk_off", "vix_hi", "spx_hi", "cta_hi"]
    z = ["spx_z", "ndx_z", "vix_z", "cta_z", "gold_z"]
    templates = [
        "zscore(lag({f},{k}),{n}) > {q} AND NOT {g}",
        "mean(lag({c},1), {n}) > mean(lag({c},1), {m})",
        "cross_above(lag({c},1), ema(lag({c},1), {n})) AND {g}",
        "if({g}, 0, sign(zscore(lag({f},1),{n})))",
        "rank(lag({f},1), {n}) > {q2} OR {g}",
        "(lag({f},1) - mean(lag({f},1),{n})) / std(lag({f},1),{n})",
        "corr(lag({f},1), lag({f2},1), {n}) > {q2} AND NOT {g}",
        "clip(zscore(lag({f},1),{n}), -3, 3) * realized_vol(lag({f2},1), {m})",
        "{z} > {q} AND {g} OR NOT {g2}",
        "lag({c}, 1) / lag({c}, {m}) - 1 > {q2}",
        "quantile(lag({f},1), {n}, {q2}) < lag({f},1) AND NOT risk_off",
        "bars_since(cross_below(lag({f},1), 0)) > {k}",
    ]
    out: dict[str, None] = {}
    while len(out) < n:
        t = rnd.choice(templates)
        text = t.format(
            f=rnd.choice(feats),
            f2=rnd.choice(feats),
            c=rnd.choice(cols),
            g=rnd.choice(gates),
            g2=rnd.choice(gates),
            z=rnd.choice(z),
            k=rnd.randint(1, 5),
            n=rnd.randint(5, 252),
            m=rnd.randint(2, 60),
            q=round(rnd.uniform(-2, 2), 2),
            q2=round(rnd.uniform(0.05, 0.95), 2),
        )
        out[text] = None
    return list(out)


def run() -> list[BenchRow]:
    catalog = bench_catalog()
    texts = expressions()
    bare = Lark(grammar_text(), parser="lalr")
    normalized = [normalize(t) for t in texts]

    def lark_parse() -> None:
        for t in normalized:
            bare.parse(t)

    def dsl_parse() -> None:
        for t in texts:
            parse(t)

    session = CheckSession(catalog)  # feature expansions shared by the checks, as the runtime does

    def dsl_check() -> None:
        for t in texts:
            check(t, catalog, decision=True, session=session)

    def cold_catalog() -> None:
        check_catalog(catalog)  # a new session: every feature expanded once

    dsl_check()  # warm: parser tables built, feature expansions cached
    lark_parse()
    per = 1000.0 / len(texts)
    t_lark = best_of(lark_parse) * per
    t_parse = best_of(dsl_parse) * per
    t_check = best_of(dsl_check) * per
    t_catalog = best_of(cold_catalog) * 1000.0
    dsl_check()
    note = f"{len(texts)} distinct expressions, seed {SEED}"
    return [
        BenchRow(
            "dsl",
            "parse + check (decision) per expression, warm",
            t_check,
            "ms",
            "lark bare parse (same grammar, default tree)",
            t_lark,
            target="< 1 ms",
            note=note,
        ),
        BenchRow(
            "dsl",
            "parse to AST per expression (normalise + friendly errors)",
            t_parse,
            "ms",
            "lark bare parse (same grammar, default tree)",
            t_lark,
            note=note,
        ),
        BenchRow(
            "dsl",
            f"check_catalog, cold ({len(catalog.features)} features/gates)",
            t_catalog,
            "ms",
            "-",
            None,
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
