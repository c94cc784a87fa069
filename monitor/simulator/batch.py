"""Graph batch requests: ``POST /{version}/`` with ``batch=[{"method":"GET",...}]`` (facts §2).

This module only reads the batch and shapes the answer. app.py runs every entry through the
very handler a single GET of its ``relative_url`` reaches (counting, latency, faults, auth,
budgets, paging, headers), so a batch can never answer differently from the GETs it stands
for, and each entry counts as one call on its own endpoint, as Graph bills it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from . import errors
from .errors import GraphError, GraphFailure

MAX_BATCH = 50
# Graph completes a batch partially when it runs long: entries still running then are null.
# Below the exporter's default 15 s request timeout, so the exporter sees the nulls.
BATCH_TIMEOUT = 10.0
# True while serving a batch entry (each runs in its own task, so its own context): a fault
# that would drop the connection then loses only that entry (app._drop raises
# ConnectionResetError instead of aborting the batch's socket).
IN_BATCH: ContextVar[bool] = ContextVar("simulator_batch_entry", default=False)
_VERSION = re.compile(r"v[0-9]+\.[0-9]+")  # as in the app's routes
# Headers of the HTTP exchange itself, not of the sub-response Graph reports.
_NOT_ENTRY_HEADERS = frozenset({"content-length", "date", "server", "transfer-encoding"})
# Batch request headers a sub-request does not inherit.
_NOT_INHERITED = frozenset({"authorization", "content-type", "content-length",
                            "transfer-encoding", "expect"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One sub-request: a GET of ``path`` (``/{version}/…?query``), or its own error."""

    path: str
    own_token: bool = False  # relative_url carries an access_token: it wins over the batch's
    error: GraphError | None = None


async def read_params(request: web.Request) -> dict[str, str]:
    """Top-level parameters: the form body over the query string (Graph reads both)."""
    params = {key: value for key, value in request.query.items()}
    try:
        form = await request.post()
    except ValueError:
        raise GraphFailure(errors.batch_malformed("Could not read the request body")) from None
    for key, value in form.items():
        if not isinstance(value, str):
            raise GraphFailure(errors.batch_malformed(f"Unexpected file upload in {key[:40]}"))
        params[key] = value
    return params


def token_header(headers: Mapping[str, str], params: Mapping[str, str]) -> dict[str, str]:
    """The top-level token as the ``Authorization`` header sub-requests carry.

    The header wins over an ``access_token`` parameter, as on a single GET.
    """
    header = headers.get("Authorization")
    if header is not None:
        return {"Authorization": header}
    token = params.get("access_token", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def sub_headers(
    headers: Mapping[str, str], auth: Mapping[str, str], *, own_token: bool = False
) -> dict[str, str]:
    """The batch's headers (``Host`` keeps paging links right) with the top-level token,
    unless the entry's relative_url carries its own."""
    out = {k: v for k, v in headers.items() if k.lower() not in _NOT_INHERITED}
    if not own_token:
        out.update(auth)
    return out


def include_headers(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() not in ("false", "0")


def parse_batch(raw: str | None, version: str) -> tuple[Entry, ...]:
    """The entries of a ``batch`` parameter; GraphFailure (code 100) when unusable as a whole."""
    if raw is None or not raw.strip():
        raise GraphFailure(errors.batch_malformed("The parameter batch is required"))
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):
        raise GraphFailure(errors.batch_malformed("batch: expected a JSON array")) from None
    if not isinstance(items, list):
        raise GraphFailure(errors.batch_malformed("batch: expected a JSON array"))
    if len(items) > MAX_BATCH:
        raise GraphFailure(errors.batch_too_large(MAX_BATCH))
    return tuple(_entry(item, index, version) for index, item in enumerate(items))


def _entry(item: object, index: int, version: str) -> Entry:
    if not isinstance(item, dict) or not isinstance(item.get("relative_url"), str):
        detail = f"batch[{index}]: expected an object with a string relative_url"
        raise GraphFailure(errors.batch_malformed(detail))
    method = item.get("method", "GET")
    if not isinstance(method, str):
        raise GraphFailure(errors.batch_malformed(f"batch[{index}]: method must be a string"))
    path, query = _split(item["relative_url"], version)
    own_token = "access_token" in parse_qs(query)
    error = None if method.upper() == "GET" else errors.batch_method(method[:20])
    return Entry(path + (f"?{query}" if query else ""), own_token, error)


def _split(relative_url: str, version: str) -> tuple[str, str]:
    """``/{version}/path`` and the query; a leading version in relative_url is kept."""
    path, _, query = relative_url.strip().lstrip("/").partition("?")
    if not _VERSION.fullmatch(path.split("/", 1)[0]):
        path = f"{version}/{path}"
    return f"/{path}", query


def answer(response: web.StreamResponse, *, with_headers: bool) -> dict[str, Any]:
    """A sub-response as a batch item: status, headers as name/value pairs, body as a string."""
    body = response.body if isinstance(response, web.Response) else None
    text = bytes(body).decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else ""
    item: dict[str, Any] = {"code": response.status}
    if with_headers:
        item["headers"] = [
            {"name": name, "value": value}
            for name, value in response.headers.items()
            if name.lower() not in _NOT_ENTRY_HEADERS
        ]
    item["body"] = text
    return item


async def run_all(
    entries: tuple[Entry, ...],
    run: Callable[[Entry], Awaitable[web.StreamResponse]],
    *,
    seconds: float,
    with_headers: bool,
) -> list[dict[str, Any] | None]:
    """Run every entry at once; null for one still running after ``seconds`` or dropped."""

    async def entry_task(entry: Entry) -> web.StreamResponse:
        IN_BATCH.set(True)
        return await run(entry)

    async def one(entry: Entry) -> dict[str, Any] | None:
        try:
            response = await asyncio.wait_for(entry_task(entry), seconds)
        except (TimeoutError, ConnectionResetError):
            return None
        return answer(response, with_headers=with_headers)

    return list(await asyncio.gather(*(one(entry) for entry in entries)))
