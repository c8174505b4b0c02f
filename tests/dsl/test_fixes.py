"""Following the checker's fix removes the error: availability fixes are edits, applied literally here.

The expressions are generated over the demo catalog (the template workbook, exported for real), once
with its own lags and once with the lags of every dataset redrawn (0-3 rows), so debts larger than one
row and lags that already pay part of them occur. A fix that points at a node that cannot pay the debt
(the old `to_daily(x) > 0` -> `lag(x, 1)` -> `lag(x, 2)` ... loop) never converges and fails the bound.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import Catalog, ColumnDef, DslError, Execution, Frequency, Kind, Origin, check

SETTINGS = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The catalog `backtest compile` sees on a fresh project (template workbook, real export)."""
    from runtime.config.export import export_workbook
    from runtime.config.loader import load_snapshot
    from runtime.config.template import write_template
    from runtime.graphs import catalog_from_snapshot

    root: Path = tmp_path_factory.mktemp("demo") / "proj"
    (root / "config").mkdir(parents=True)
    write_template(root / "config" / "run_config.xlsx")
    export_workbook(root / "config" / "run_config.xlsx")
    return catalog_from_snapshot(load_snapshot(root / "config" / "exports" / "latest.json"))


def _names(catalog: Catalog, freq: Frequency, kind: Kind) -> list[str]:
    """Catalog names of one grid and kind; the kind of a feature is read from its checked graph."""
    out = [c.name for c in catalog.columns.values() if c.frequency is freq and c.kind is kind]
    for name, fd in catalog.features.items():
        if fd.enabled:
            g = check(name, catalog)
            if g.frequency is freq and g.kind is kind:
                out.append(name)
    return sorted(out)


def expressions(catalog: Catalog) -> st.SearchStrategy[str]:
    """Type- and grid-correct decision texts (daily or 1m) over the catalog's names."""
    leaves = {
        (f, k): _names(catalog, f, k)
        for f in (Frequency.DAILY, Frequency.MINUTE)
        for k in (Kind.FLOAT, Kind.BOOL)
    }

    def lag(x: str, k: int, style: int) -> str:
        return [f"lag({x}, {k})", f"lag({x}, k={k})", f"delay( {x},{k} )"][style]

    def num(freq: Frequency, depth: int) -> st.SearchStrategy[str]:
        leaf = st.sampled_from(leaves[(freq, Kind.FLOAT)])
        if depth == 0:
            return leaf
        sub = num(freq, depth - 1)
        options = [
            leaf,
            st.tuples(sub, st.integers(0, 4), st.integers(0, 2)).map(lambda t: lag(*t)),
            st.tuples(st.sampled_from(["zscore", "mean", "std"]), sub, st.integers(2, 30)).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"
            ),
            st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            sub.map(lambda x: f"-{x}"),
        ]
        if freq is Frequency.DAILY:
            options.append(
                st.tuples(num(Frequency.MINUTE, depth - 1), st.sampled_from(["sum", "mean", "last"])).map(
                    lambda t: f'to_daily({t[0]}, how="{t[1]}")'
                )
            )
        else:
            options.append(num(Frequency.DAILY, depth - 1).map(lambda x: f"asof({x})"))
        return st.one_of(*options)

    def boolean(freq: Frequency, depth: int) -> st.SearchStrategy[str]:
        compare = st.tuples(num(freq, depth), st.sampled_from([">", "<=", "=="]), num(freq, 1)).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        )
        options = [compare, st.tuples(num(freq, depth), st.integers(-5, 5)).map(lambda t: f"{t[0]} > {t[1]}")]
        if leaves[(freq, Kind.BOOL)]:
            flag = st.sampled_from(leaves[(freq, Kind.BOOL)])
            options += [
                flag,
                flag.map(lambda x: f"NOT {x}"),
                st.tuples(flag, st.integers(0, 3)).map(lambda t: f"lag({t[0]}, {t[1]})"),
            ]
        if depth == 0:
            return st.one_of(*options)
        sub = boolean(freq, depth - 1)
        options.append(
            st.tuples(sub, st.sampled_from(["AND", "OR"]), sub).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})")
        )
        return st.one_of(*options)

    return st.sampled_from([Frequency.DAILY, Frequency.MINUTE]).flatmap(lambda f: boolean(f, 2))


def relagged(catalog: Catalog, lags: dict[str, int]) -> Catalog:
    """The same catalog with each dataset's availability lag replaced (1m bars keep at least 1)."""
    cols: dict[str, ColumnDef] = {}
    for name, c in catalog.columns.items():
        lag = lags.get(c.dataset_id, c.availability_lag)
        if c.frequency is Frequency.MINUTE:
            lag = max(lag, 1)
        cols[name] = dataclasses.replace(c, availability_lag=lag)
    return Catalog(cols, catalog.features)


CELL = Origin("STRATEGIES", "H2", "gate_expr")


def follow_fixes(text: str, catalog: Catalog, execution: Execution) -> tuple[str, int]:
    """Apply the checker's edits until the text is accepted; returns (final text, number of fixes)."""
    # Each fix pays the debt at one position (a reference or a to_daily), and fixes create no new
    # positions, so a correct checker needs at most one fix per name/to_daily in the text.
    positions = len(re.findall(r"[A-Za-z_][\w.]*\s*(?=[^\w.(]|$)", text)) + text.count("to_daily")
    kind = frequency = None
    for step in range(positions + 1):
        try:
            g = check(text, catalog, decision=True, execution=execution, origin=CELL)
        except DslError as e:
            assert e.code == "availability", (text, e.render())
            assert e.edit is not None, e.render()
            assert 0 <= e.edit.span.start < e.edit.span.end <= len(text)
            fixed = e.edit.apply(text)
            assert fixed != text
            text = fixed
            continue
        if kind is not None:
            assert (g.kind, g.frequency) == (kind, frequency)
        assert g.availability - execution.shift <= 0
        return text, step
    raise AssertionError(f"still refused after {positions} fixes: {text!r}")


@SETTINGS
@given(data=st.data(), execution=st.sampled_from([Execution.CLOSE, Execution.NEXT_OPEN]))
def test_following_every_fix_converges_on_the_demo_catalog(demo_catalog, data, execution):
    text = data.draw(expressions(demo_catalog))
    original = check(text, demo_catalog)  # type- and grid-correct by construction
    final, _ = follow_fixes(text, demo_catalog, execution)
    fixed = check(final, demo_catalog)
    assert (fixed.kind, fixed.frequency) == (
        original.kind,
        original.frequency,
    )  # a fix never changes the type


@SETTINGS
@given(
    data=st.data(),
    lags=st.fixed_dictionaries({d: st.integers(0, 3) for d in ["SPX", "NDX", "VIX", "CREDIT", "CTA", "WTI"]}),
    execution=st.sampled_from([Execution.CLOSE, Execution.NEXT_OPEN]),
)
def test_following_every_fix_converges_with_slow_sources(demo_catalog, data, lags, execution):
    catalog = relagged(demo_catalog, lags)
    text = data.draw(expressions(catalog))
    follow_fixes(text, catalog, execution)


# -- the reported cases, by hand ---------------------------------------------------------------------------


def test_to_daily_fix_wraps_the_aggregate_not_its_input(demo_catalog):
    text = 'to_daily(es_delta, how="sum") > 0'
    with pytest.raises(DslError) as info:
        check(text, demo_catalog, decision=True)
    e = info.value
    assert e.fix == 'write lag(to_daily(es_delta, how="sum"), 1), or execute at the next open'
    assert (e.span.start, e.span.end) == (0, len('to_daily(es_delta, how="sum")'))  # caret under to_daily
    assert e.edit.apply(text) == 'lag(to_daily(es_delta, how="sum"), 1) > 0'
    assert check(e.edit.apply(text), demo_catalog, decision=True).availability == 0
    # a lag inside to_daily pays bars, not the session: the fix still wraps the aggregate, once
    inner = 'to_daily(lag(es_delta, 5), how="sum") > 0'
    with pytest.raises(DslError) as info:
        check(inner, demo_catalog, decision=True)
    assert info.value.edit.apply(inner) == 'lag(to_daily(lag(es_delta, 5), how="sum"), 1) > 0'


def test_messages_count_bars_on_1m_and_trading_days_on_daily(demo_catalog):
    with pytest.raises(DslError) as info:
        check("es_delta > 0", demo_catalog, decision=True)
    m = info.value.message
    assert "1 bar after the bar's stamp on the 1m grid" in m and "lagged by 1 more bar" in m
    assert "period" not in m
    with pytest.raises(DslError) as info:
        check("cta_flow > 0", demo_catalog, decision=True)
    m = info.value.message
    assert "1 trading day after its date" in m and "lagged by 1 more trading day" in m
    with pytest.raises(DslError) as info:
        check('to_daily(es_delta, how="sum") > 0', demo_catalog, decision=True)
    m = info.value.message
    assert "complete only at the end of its session" in m and "lagged by 1 more trading day" in m
    assert "bar" not in m.split(";")[-1]


def test_a_partial_literal_lag_is_raised_not_wrapped(demo_catalog):
    catalog = relagged(demo_catalog, {"CTA": 3})
    text = "lag(cta_flow, 1) > 0"
    with pytest.raises(DslError) as info:
        check(text, catalog, decision=True)
    e = info.value
    assert e.fix.startswith("lag cta_flow by 3 in total (it is lagged by 1 now), e.g. lag(cta_flow, 3)")
    assert e.edit.apply(text) == "lag(cta_flow, 3) > 0"
    nested = "lag(lag(cta_flow, 1) + 1, 1) > 0"  # 2 paid above the reference, 1 more needed
    with pytest.raises(DslError) as info:
        check(nested, catalog, decision=True)
    assert info.value.fix.startswith("raise the lag of lag(cta_flow, 1) from 1 to 2")
    assert info.value.edit.apply(nested) == "lag(lag(cta_flow, 2) + 1, 1) > 0"
    param = "lag(cta_flow, $k) > 0"  # a parameter is not edited: the reference is wrapped
    with pytest.raises(DslError) as info:
        check(param, catalog, params={"k": 1}, decision=True)
    assert info.value.edit.apply(param) == "lag(lag(cta_flow, 2), $k) > 0"
    assert check(info.value.edit.apply(param), catalog, params={"k": 1}, decision=True).availability == 0


# -- grids and names: every error that offers an edit is removed by it ------------------------------------


def mixed_expressions(catalog: Catalog) -> st.SearchStrategy[str]:
    """Comparisons whose sides come from either grid, some names misspelt (one letter dropped)."""
    names = sorted(
        _names(catalog, Frequency.DAILY, Kind.FLOAT) + _names(catalog, Frequency.MINUTE, Kind.FLOAT)
    )

    def typo(args: tuple[str, int, bool]) -> str:
        name, i, drop = args
        i %= len(name)
        return name[:i] + name[i + 1 :] if drop and name[i] not in "._" else name

    leaf = st.tuples(st.sampled_from(names), st.integers(0, 30), st.integers(0, 5).map(lambda n: n == 0)).map(
        typo
    )
    side = st.one_of(leaf, leaf.map(lambda x: f"mean({x}, 5)"), leaf.map(lambda x: f"lag({x}, 1)"))
    compare = st.tuples(side, st.sampled_from([">", "<"]), side).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    return st.one_of(compare, st.tuples(compare, compare).map(lambda t: f"({t[0]}) AND ({t[1]})"))


@SETTINGS
@given(
    data=st.data(),
    execution=st.sampled_from([Execution.CLOSE, Execution.NEXT_OPEN]),
    grid=st.sampled_from([None, Frequency.DAILY, Frequency.MINUTE]),
)
def test_following_grid_and_spelling_fixes_converges(demo_catalog, data, execution, grid):
    text = data.draw(mixed_expressions(demo_catalog))
    seen: set[tuple[str, str]] = set()
    for _ in range(4 * len(re.findall(r"[A-Za-z_][\w.]*", text)) + 2):
        try:
            check(text, demo_catalog, frequency=grid, decision=True, execution=execution, origin=CELL)
        except DslError as e:
            assert ("did you mean" in e.message) == (e.edit is not None) or e.code != "name.unknown", (
                e.render()
            )
            if e.edit is None:
                assert e.code == "name.unknown", e.render()  # a typo with no close name: nothing to apply
                return
            assert e.code in {"availability", "frequency.mixed", "frequency.grid", "name.unknown"}, e.render()
            assert (e.code, text) not in seen, e.render()  # the same error on the same text never returns
            seen.add((e.code, text))
            text = e.edit.apply(text)
            continue
        return
    raise AssertionError(f"still refused: {text!r}")


@pytest.mark.parametrize(
    ("text", "grid", "code", "fixed"),
    [
        (
            "lag(es_delta, 1) > lag(cta_flow, 1)",
            None,
            "frequency.mixed",
            "lag(es_delta, 1) > asof(lag(cta_flow, 1))",
        ),
        ("=lag(cta_flow, 1) > 0", Frequency.MINUTE, "frequency.grid", "=asof(lag(cta_flow, 1) > 0)"),
        (
            "lag(es_delta, 1) > 0",
            Frequency.DAILY,
            "frequency.grid",
            'to_daily(lag(es_delta, 1) > 0, how="last")',
        ),
        ("zscore(lag(ctaflow, 1), 20) > 0", None, "name.unknown", "zscore(lag(cta_flow, 1), 20) > 0"),
    ],
)
def test_grid_and_spelling_edits_by_hand(demo_catalog, text, grid, code, fixed):
    with pytest.raises(DslError) as info:
        check(text, demo_catalog, frequency=grid, decision=True)
    assert info.value.code == code
    assert info.value.edit.apply(text) == fixed
    try:  # that error is gone (a daily aggregate used at its own close then owes a session: a new error)
        check(fixed, demo_catalog, frequency=grid, decision=True)
    except DslError as e:
        assert e.code != code and (code, e.code) == ("frequency.grid", "availability"), e.render()
