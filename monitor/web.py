"""The HTTP face of the daemon: /metrics, the status page and its JSON, health endpoints.

Scrapes never call the Graph API: /metrics joins bytes the store rendered when a poll
finished, plus the small self-metrics registry.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_exposition
from prometheus_client.openmetrics import exposition as om_exposition

from monitor.model import Transition
from monitor.statuspage import (
    CONTENT_SECURITY_POLICY,
    DEFAULT_REFRESH,
    STATIC_TYPES,
    PageCache,
    StatusPage,
    build,
    render,
    static_files,
    to_json,
)
from monitor.store import Store


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the web layer reads: the store (state and rendered bytes), the self-metrics
    registry, and whether the daemon is ready. It never reaches the poller or scheduler."""

    store: Store
    registry: CollectorRegistry
    ready: Callable[[], bool]


VIEW_KEY = web.AppKey("view", StatusView)
TransitionSource = Callable[[float, int], Awaitable[list[Transition]]]
TRANSITIONS_KEY: web.AppKey[TransitionSource] = web.AppKey("transitions")
Reloader = Callable[[], Awaitable[tuple[bool, str]]]
RELOAD_KEY: web.AppKey[Reloader] = web.AppKey("reload")
CACHE_KEY = web.AppKey("page_cache", PageCache)
STATIC_KEY: web.AppKey[dict[str, bytes]] = web.AppKey("static")
MAX_TRANSITIONS = 10_000
# prometheus_client's OpenMetrics module is untyped; pin the signature we rely on.
_generate_openmetrics: Callable[[CollectorRegistry], bytes] = om_exposition.generate_latest
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """Prometheus asks for OpenMetrics first when it supports it; honour that."""
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        if media.strip() == "application/openmetrics-text":
            q = 1.0
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            if q > 0:
                return True
    return False


def accepts_gzip(header: str) -> bool:
    return any(p.strip().split(";")[0] in ("gzip", "*") for p in header.split(","))


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    view = request.app[VIEW_KEY]
    body = view.store.body()
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    registry = view.registry
    if openmetrics:
        tail = _generate_openmetrics(registry)
        content_type = OPENMETRICS_TYPE
    else:
        tail = text_exposition.generate_latest(registry)
        content_type = TEXT_TYPE
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        # Gzip members back to back form one valid gzip stream (RFC 1952 §2.2): the data was
        # compressed piece by piece when polls finished; only the small tail is new.
        # Written about a megabyte at a time from the cached members: no body-sized buffer,
        # neither a joined copy nor the whole body in the transport's buffer.
        headers["Content-Encoding"] = "gzip"
        tail_gz = gzip.compress(tail, compresslevel=1, mtime=0)
        response = web.StreamResponse(headers=headers)
        response.content_length = body.gzip_size(openmetrics=openmetrics) + len(tail_gz)
        await response.prepare(request)
        if request.method == "HEAD":  # headers only: a body would corrupt the connection
            await response.write_eof()
            return response
        for chunk in body.gzip_chunks(openmetrics=openmetrics):
            await response.write(chunk)
        await response.write(tail_gz)
        await response.write_eof()
        return response
    # No gzip: stream the decompressed body, so a large fleet never needs it whole in memory.
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    for chunk in body.plain_chunks(openmetrics=openmetrics):
        await response.write(chunk)
    await response.write(tail)
    await response.write_eof()
    return response


async def healthy_handler(_: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready_handler(request: web.Request) -> web.Response:
    if request.app[VIEW_KEY].ready():
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: the first poll has not finished.\n")


def landing_page(store: Store, now: Callable[[], float] = time.time, *, query: str = "",
                 page: int = 1, cache: PageCache | None = None) -> str:
    """The status page for a store, as HTML (also what tests and benchmarks call)."""
    return render(build(store, cache or PageCache(), now(), query=query, page=page))


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


def _page_model(request: web.Request) -> StatusPage:
    view = request.app[VIEW_KEY]
    return build(view.store, request.app[CACHE_KEY], time.time(), ready=view.ready(),
                 query=request.query.get("q", ""),
                 page=_int_param(request, "page", 1, 1, 1_000_000),
                 problems_page=_int_param(request, "ppage", 1, 1, 1_000_000))


PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def index_handler(request: web.Request) -> web.Response:
    refresh = _int_param(request, "refresh", DEFAULT_REFRESH, 0, 3600)
    return web.Response(text=render(_page_model(request), refresh=refresh),
                        content_type="text/html", headers=PAGE_HEADERS)


async def status_handler(request: web.Request) -> web.Response:
    return web.json_response(to_json(_page_model(request)), headers=PAGE_HEADERS)


async def static_handler(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = request.app[STATIC_KEY].get(name)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=STATIC_TYPES[name], headers={
        "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def parse_since(value: str) -> float:
    """Unix seconds or an ISO 8601 time; ValueError with a readable message otherwise."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("since must be Unix seconds or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError("since needs a time zone, e.g. 2026-11-25T10:00:00Z")
    return parsed.timestamp()


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)


async def transitions_handler(request: web.Request) -> web.Response:
    try:
        since = parse_since(request.query.get("since", "0"))
        limit = int(request.query.get("limit", "1000"))
    except ValueError as exc:
        return _json_error(400, str(exc) if "since" in str(exc) else "limit must be an integer")
    if not 1 <= limit <= MAX_TRANSITIONS:
        return _json_error(400, f"limit must be between 1 and {MAX_TRANSITIONS}")
    found = await request.app[TRANSITIONS_KEY](since, limit)
    return web.json_response({
        "status": "success",
        "data": [
            {"at": t.at, "time": datetime.fromtimestamp(t.at).astimezone().isoformat(),
             "business_id": t.business_id, "waba_id": t.waba_id,
             "phone_number_id": t.phone_number_id or None,
             "template_id": t.template_id or None, "template_name": t.template_name,
             "field": t.field, "old": t.old, "new": t.new}
            for t in found
        ],
    })


def memory_transitions(store: Store) -> TransitionSource:
    async def source(since: float, limit: int) -> list[Transition]:
        return [t for t in store.recent if t.at >= since][:limit]

    return source


async def reload_handler(request: web.Request) -> web.Response:
    if RELOAD_KEY not in request.app:
        return _json_error(404, "this server has no configuration file to reload")
    applied, message = await request.app[RELOAD_KEY]()
    if applied:
        return web.json_response({"status": "success", "message": message})
    return _json_error(400, message)


def build_app(view: StatusView, *, transitions: TransitionSource | None = None,
              reload: Reloader | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[VIEW_KEY] = view
    app[CACHE_KEY] = PageCache()
    app[STATIC_KEY] = static_files()
    app[TRANSITIONS_KEY] = transitions or memory_transitions(view.store)
    if reload is not None:
        app[RELOAD_KEY] = reload
    app.router.add_post("/-/reload", reload_handler)
    app.router.add_get("/api/v1/transitions", transitions_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/", index_handler)
    app.router.add_get("/api/v1/status", status_handler)
    app.router.add_get("/static/{name}", static_handler)
    app.router.add_get("/-/healthy", healthy_handler)
    app.router.add_get("/-/ready", ready_handler)
    return app
