"""`databento_api` sources: price the request, refuse above the workbook's cap, download DBN into raw/.

The key comes from the environment variable DATABENTO_API_KEY only (never the workbook, never a log line).
A request is identified by the hash of its JSON, so running the command again does not pay twice: the
downloaded file is reused and its ingest is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime.config.columns import dataset_cell
from runtime.contracts import DatasetRow, ResolvedPaths, UserError

KEY_ENV = "DATABENTO_API_KEY"


def _network_failure(exc: BaseException) -> bool:
    """True when Databento could not be reached at all (DNS, refused connection, proxy, timeout).

    Walks the cause chain: requests wraps urllib3, which wraps socket errors such as socket.gaierror.
    """
    import requests

    net = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, socket.gaierror)
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, net):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def api_error(ds: DatasetRow, step: str, exc: BaseException, key: str) -> UserError:
    """A Databento failure as a UserError that says which kind it is and the fix for that kind.

    Unreachable (network) vs refused (HTTP 4xx: the key or the request) vs failing (HTTP 5xx) need different
    fixes; the key is never echoed.
    """
    from databento.common.error import BentoClientError, BentoServerError

    text = (str(exc) or type(exc).__name__).replace(key, "***") if key else str(exc) or type(exc).__name__
    request_cell = dataset_cell(ds, "api_request_json")
    if _network_failure(exc):
        return UserError(
            f"{ds.dataset_id}: cannot reach Databento for the {step} ({type(exc).__name__}: {text}); "
            "check the network connection and any proxy (HTTPS_PROXY), then run the command again"
        )
    if isinstance(exc, BentoClientError):
        status = getattr(exc, "http_status", None)
        if status in (401, 403):
            return UserError(
                f"{ds.dataset_id}: Databento refused the {step}: the API key was not accepted (HTTP {status}: "
                f"{text}); set {KEY_ENV} to a valid key from databento.com (Portal -> API keys)"
            )
        return UserError(
            f"{ds.dataset_id}: Databento refused the {step} (HTTP {status}: {text}); fix the request in "
            f"{request_cell} (dataset, symbols, schema, start, end, stype_in) and export the workbook again"
        )
    if isinstance(exc, BentoServerError):
        return UserError(
            f"{ds.dataset_id}: Databento failed on the {step} (HTTP {getattr(exc, 'http_status', '5xx')}: "
            f"{text}); this is on Databento's side: try again later"
        )
    return UserError(
        f"{ds.dataset_id}: the Databento {step} failed ({type(exc).__name__}: {text}); check {request_cell}"
    )


def request_of(ds: DatasetRow) -> dict[str, Any]:
    req = dict(ds.api_request_json or {})
    req.setdefault("stype_in", "raw_symbol")
    if isinstance(req.get("symbols"), str):
        req["symbols"] = [req["symbols"]]
    else:
        req["symbols"] = list(req.get("symbols") or [])
    return req


def download_for_dataset(
    ds: DatasetRow,
    paths: ResolvedPaths,
    client_factory: Callable[[str], Any] | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Path of the DBN file for this dataset's request (downloaded now, or earlier)."""
    req = request_of(ds)
    rid = hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:16]
    target = paths.raw_dir / "databento_api" / ds.dataset_id / f"{rid}.{req.get('schema', 'trades')}.dbn.zst"
    if target.exists():
        say(f"{ds.dataset_id}: request {rid} already downloaded ({target.name}); not paying twice")
        return target
    key = (env if env is not None else os.environ).get(KEY_ENV, "").strip()
    if not key:
        raise UserError(
            f"{ds.dataset_id}: set the environment variable {KEY_ENV} to your Databento API key "
            "(it is read from the environment only, never from the workbook)"
        )
    if client_factory is None:
        import databento

        client_factory = databento.Historical
    client = client_factory(key)
    args = {k: req[k] for k in ("dataset", "symbols", "schema", "start", "end", "stype_in")}
    try:
        cost = float(client.metadata.get_cost(**args))
    except Exception as exc:
        raise api_error(ds, "cost query", exc, key) from None
    cap = ds.api_cost_cap_usd
    if cap is None or cost > cap:
        raise UserError(
            f"{ds.dataset_id}: this request would cost ${cost:,.2f}, above the cap ${cap or 0:,.2f} in "
            f"{dataset_cell(ds, 'api_cost_cap_usd')}; raise the cap or narrow {dataset_cell(ds, 'api_request_json')}"
        )
    say(f"{ds.dataset_id}: request {rid} costs ${cost:,.2f} (cap ${cap:,.2f}); downloading")
    tmp = paths.staging_dir / f".tmp-{rid}-{os.getpid()}.dbn.zst"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            client.timeseries.get_range(**args, path=str(tmp))
        except Exception as exc:
            raise api_error(ds, "download", exc, key) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target
