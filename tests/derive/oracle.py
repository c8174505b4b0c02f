"""Plain pandas/numpy recomputations of the derived tables straight from the canonical parquet.

Written independently of runtime/derive (no SQL, no shared helpers): each definition is the textbook one, so a
test that compares the two checks the SQL, not a copy of it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MIN = 60_000_000_000


def canonical(canonical_table_dir: Path) -> pd.DataFrame:
    """Every canonical trade, with `pos` = row position inside its partition file and int64 ns timestamps."""
    frames = []
    for f in sorted(Path(canonical_table_dir).glob("trade_date=*/part-0.parquet")):
        t = pq.read_table(f)
        df = pd.DataFrame(
            {
                "ts_event": t.column("ts_event").cast(pa.int64()).to_numpy(),
                "trade_date": [dt.date.fromisoformat(f.parent.name.split("=")[1])] * t.num_rows,
                "in_rth": t.column("in_rth").to_numpy(),
                "symbol": t.column("symbol").to_pylist(),
                "price": t.column("price").to_numpy(),
                "size": t.column("size").to_numpy().astype(np.int64),
                "side": t.column("side").to_numpy().astype(np.int64),
                "sequence": t.column("sequence").to_numpy().astype(np.int64),
            }
        )
        df["pos"] = np.arange(len(df))
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def pick_series(trades: pd.DataFrame, contract_by_date: dict[dt.date, str]) -> pd.DataFrame:
    want = trades["trade_date"].map(contract_by_date)
    return trades[trades["symbol"] == want].reset_index(drop=True)


def in_session(trades: pd.DataFrame, session: str) -> pd.DataFrame:
    return trades if session == "FULL" else trades[trades["in_rth"]].reset_index(drop=True)


def _ordered(trades: pd.DataFrame) -> pd.DataFrame:
    """Trade order: ts_event, then sequence, then position in the file."""
    out = trades.sort_values(["trade_date", "ts_event", "sequence", "pos"], kind="stable").copy()
    out["minute"] = out["ts_event"] // MIN * MIN
    return out


def ohlcv(t: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Plain pandas OHLCV per group of already ordered trades (the reference every bar is checked against)."""
    t = t.assign(
        pv=t["price"] * t["size"],
        buy=np.where(t["side"] == 1, t["size"], 0),
        sell=np.where(t["side"] == -1, t["size"], 0),
    )
    g = t.groupby(by, sort=True)
    return pd.DataFrame(
        {
            "symbol": g["symbol"].first(),
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["size"].sum(),
            "buy_volume": g["buy"].sum(),
            "sell_volume": g["sell"].sum(),
            "n_trades": g["size"].count(),
            "vwap": g["pv"].sum() / g["size"].sum(),
        }
    ).reset_index()


def bars(trades: pd.DataFrame) -> pd.DataFrame:
    return ohlcv(_ordered(trades), ["trade_date", "minute"]).rename(columns={"minute": "ts"})


def footprint(trades: pd.DataFrame) -> pd.DataFrame:
    t = _ordered(trades)
    for name, side in (("bid_volume", -1), ("ask_volume", 1), ("other_volume", 0)):
        t[name] = np.where(t["side"] == side, t["size"], 0)
    g = t.groupby(["trade_date", "minute", "price"], sort=True)
    out = g[["bid_volume", "ask_volume", "other_volume"]].sum()
    out["n_trades"] = g["size"].count()
    return out.reset_index().rename(columns={"minute": "ts"})


def aggressor_events(trades: pd.DataFrame) -> pd.DataFrame:
    """Every aggressor event (records with one trade_date, ts_event and side), any size."""
    t = trades.copy()
    t["pv"] = t["price"] * t["size"]
    g = t.groupby(["trade_date", "ts_event", "side"], sort=True)
    out = pd.DataFrame(
        {
            "size": g["size"].sum(),
            "n_fills": g["size"].count(),
            "min_price": g["price"].min(),
            "max_price": g["price"].max(),
            "price": g["pv"].sum() / g["size"].sum(),
            "in_rth": g["in_rth"].first(),
        }
    )
    return out.reset_index()


def read_derived(files: list[Path]) -> pd.DataFrame:
    tables = [pq.read_table(f) for f in files]
    t = pa.concat_tables(tables)
    df = t.to_pandas()
    for c in ("ts", "ts_event"):
        if c in df:
            df[c] = t.column(c).cast(pa.int64()).to_numpy()
    if "trade_date" in df:
        df["trade_date"] = [d for d in t.column("trade_date").to_pylist()]
    return df


def nearest_rank(values: np.ndarray, q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    v = np.sort(np.asarray(values))
    k = int(np.ceil(q / 100.0 * len(v)))
    return float(v[max(k, 1) - 1])
