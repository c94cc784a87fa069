"""The aiohttp application: Graph routes that behave like the real API, plus ``/_sim/`` control.

Request handling order mirrors Graph's, because the exporter's behaviour depends on which
error wins: count → latency → injected fault → auth → object lookup → rate limit → params.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from . import batch, errors
from .actions import parse_action
from .errors import GraphError, GraphFailure
from .faults import HTML_BODY, MALFORMED_JSON_BODY, Fault
from .fields import (
    BUSINESS_DEFAULT_FIELDS,
    BUSINESS_NODE,
    NUMBER_DEFAULT_FIELDS,
    PHONE_NUMBER_NODE,
    WABA_DEFAULT_FIELDS,
    WABA_NODE,
    FieldRequest,
    FieldSyntaxError,
    parse_fields,
)
from .generate import synthetic_number
from .paging import CursorError, decode_cursor, encode_cursor, parse_limit, window
from .render import number_values, render
from .scenario import ScenarioError
from .scenario_wiring import webhook_target
from .templates import TEMPLATE_DEFAULT_FIELDS, TEMPLATE_NODE
from .webhooks import PendingWebhook, WebhookSender
from .wiring import NOT_SUBSCRIBED, pick_settings
from .world import UnknownObjectError, World

log = logging.getLogger(__name__)

WORLD_KEY: web.AppKey[World] = web.AppKey("simulator_world", World)
LATENCY_KEY: web.AppKey[float] = web.AppKey("simulator_latency", float)
SHUTDOWN_KEY: web.AppKey[asyncio.Event] = web.AppKey("simulator_shutdown", asyncio.Event)
BATCH_TIMEOUT_KEY: web.AppKey[float] = web.AppKey("simulator_batch_timeout", float)
WEBHOOKS_KEY: web.AppKey[WebhookSender] = web.AppKey("simulator_webhooks", WebhookSender)
CAPABILITY = "business_capability_update"
WEBHOOK_TICK = 1.0  # seconds between checks for timeline steps nobody has requested yet

EDGES = (
    "phone_numbers",
    "owned_whatsapp_business_accounts",
    "client_whatsapp_business_accounts",
    "subscribed_apps",
    "settings",
    "message_templates",
)
_VERSION = r"v[0-9]+\.[0-9]+"
_POLL = 0.05  # how often a hanging handler checks whether the client went away

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- responses


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _usage_headers(world: World, buc_waba: str | None) -> dict[str, str]:
    """``X-App-Usage`` always; ``X-Business-Use-Case-Usage`` on WABA-scoped calls."""
    headers = {"X-App-Usage": _compact(world.app_usage())}
    if buc_waba is not None and world.kind_of(buc_waba) == "waba":
        headers["X-Business-Use-Case-Usage"] = _compact(world.buc_usage(buc_waba))
    return headers


def _graph_headers(request: web.Request, world: World, buc_waba: str | None) -> dict[str, str]:
    headers = _usage_headers(world, buc_waba)
    version = request.match_info.get("version")
    if version:
        headers["facebook-api-version"] = version
    headers["x-fb-trace-id"] = errors.new_trace_id()
    return headers


def _json(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _graph_error(
    request: web.Request, world: World, error: GraphError, buc_waba: str | None = None
) -> web.Response:
    return _json(error.status, error.body(), _graph_headers(request, world, buc_waba))


def _control_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "status": status}}, status=status)


# --------------------------------------------------------------------------- middleware


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Graph-style (or control-style) JSON for routing errors; never a bare 500 page."""
    control = request.path == "/_sim" or request.path.startswith("/_sim/")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if control:
            return _control_error(exc.status, exc.reason)
        world = request.app[WORLD_KEY]
        if exc.status == 405:
            return _graph_error(request, world, errors.method_not_allowed(request.method))
        if exc.status == 404:
            return _graph_error(request, world, errors.unknown_path(request.path))
        return _graph_error(request, world, GraphError(exc.status, 100, f"(#100) {exc.reason}"))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("simulator bug while serving %s %s", request.method, request.path)
        if control:
            return _control_error(500, "internal simulator error")
        return _graph_error(request, request.app[WORLD_KEY], errors.internal_error())


# --------------------------------------------------------------------------- graph routes


async def _graph_node(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    object_id = request.match_info["object_id"]
    if object_id == "debug_token":
        return _debug_token(request, world)
    return await _graph(request, world.node_endpoint(object_id), object_id, None)


DEBUG_TOKEN_SCOPES = ("whatsapp_business_management", "whatsapp_business_messaging",
                      "business_management")


def _debug_token(request: web.Request, world: World) -> web.StreamResponse:
    """``GET /debug_token?input_token=…`` with an app token (``app_id|app_secret``): what the
    token may do. The scenario's tokens are system-user tokens that never expire."""
    world.count("debug_token", "debug_token")
    header = request.headers.get("Authorization", "")
    if "|" not in header:
        return _graph_error(request, world, errors.invalid_token(), None)
    token = request.query.get("input_token", "")
    valid = world.accepts_token(token)
    data: dict[str, Any] = {"is_valid": valid, "type": "SYSTEM_USER", "expires_at": 0,
                            "data_access_expires_at": 0,
                            "scopes": list(DEBUG_TOKEN_SCOPES) if valid else []}
    return _json(200, {"data": data}, _graph_headers(request, world, None))


async def _graph_edge(request: web.Request) -> web.StreamResponse:
    edge = request.match_info["edge"]
    return await _graph(request, edge, request.match_info["object_id"], edge)


async def _graph(
    request: web.Request, endpoint: str, object_id: str, edge: str | None
) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    world.count(endpoint, object_id)
    world.tick()
    _dispatch_webhooks(request.app)
    latency = request.app[LATENCY_KEY]
    if latency > 0:
        await asyncio.sleep(latency)
    fault = world.take_fault(object_id, is_edge=edge is not None, edge=edge)
    page_fault: Fault | None = None
    if fault is not None:
        if fault.kind in ("cursor_loop", "huge_page"):
            page_fault = fault
        else:
            response = await _fault_response(request, world, fault, _scope_waba(world, object_id))
            if response is not None:
                return response
    try:
        token = _authenticate(request, world)
        if edge is None:
            body, buc_waba = _serve_node(request, world, object_id)
        else:
            body, buc_waba = _serve_edge(request, world, object_id, edge, token, page_fault)
    except GraphFailure as failure:
        return _graph_error(request, world, failure.error, failure.buc_waba)
    return _json(200, body, _graph_headers(request, world, buc_waba))


async def _graph_batch(request: web.Request) -> web.StreamResponse:
    """``POST /{version}/`` with ``batch=[…]``: each entry is served by the app itself, as
    the single GET of its ``relative_url`` would be, all at once (batch.py has the format)."""
    world = request.app[WORLD_KEY]
    world.count_batch()
    template = request.clone(method="GET")  # aiohttp refuses to clone once the body is read
    try:
        params = await batch.read_params(request)
        auth = batch.token_header(request.headers, params)
        _authenticate(template.clone(headers=batch.sub_headers(request.headers, auth)), world)
        entries = batch.parse_batch(params.get("batch"), request.match_info["version"])
    except GraphFailure as failure:
        return _graph_error(request, world, failure.error)

    async def run(entry: batch.Entry) -> web.StreamResponse:
        if entry.error is not None:
            return _graph_error(request, world, entry.error)
        headers = batch.sub_headers(request.headers, auth, own_token=entry.own_token)
        sub = template.clone(rel_url=entry.path, headers=headers)
        # Routing, middlewares and handler exactly as for an HTTP GET of that path. _handle is
        # aiohttp's own entry point for a request (private; test_sim_batch covers it).
        return await request.app._handle(sub)

    answers = await batch.run_all(
        entries,
        run,
        seconds=request.app[BATCH_TIMEOUT_KEY],
        with_headers=batch.include_headers(params.get("include_headers")),
    )
    return _json(200, answers, _graph_headers(request, world, None))


def _scope_waba(world: World, object_id: str) -> str | None:
    """The WABA whose BUC bucket a call on ``object_id`` falls in, if any."""
    kind = world.kind_of(object_id)
    if kind == "waba":
        return object_id
    if kind == "phone_number":
        return world.number_waba(object_id)
    return None


def _authenticate(request: web.Request, world: World) -> str:
    """Bearer/OAuth header or ``access_token`` query: missing → 104, wrong → 190/467."""
    header = request.headers.get("Authorization", "").strip()
    token = ""
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not value.strip():
            raise GraphFailure(errors.invalid_token())
        token = value.strip()
    else:
        token = request.query.get("access_token", "").strip()
    if not token:
        raise GraphFailure(errors.missing_token())
    if not world.accepts_token(token):
        raise GraphFailure(errors.invalid_token())
    return token


def _admit(world: World, waba_id: str | None) -> None:
    throttle = world.admit(waba_id)
    if throttle is not None:
        raise GraphFailure(throttle, buc_waba=waba_id)


def _requested(
    request: web.Request,
    world: World,
    node_type: str,
    defaults: Sequence[str],
    buc_waba: str | None,
) -> tuple[tuple[FieldRequest, ...], str | None]:
    """Parsed ``fields`` (or the defaults) and the raw value; one bad field fails it all."""
    raw = request.query.get("fields")
    parsed: tuple[FieldRequest, ...] = ()
    if raw is not None and raw.strip():
        try:
            parsed = parse_fields(raw)
        except FieldSyntaxError as exc:
            error = errors.bad_parameter(f"Syntax error in fields parameter: {exc}")
            raise GraphFailure(error, buc_waba=buc_waba) from None
    known = world.known_fields(node_type)
    rejected = world.scenario.rejected_fields
    for field_request in parsed:
        if field_request.name not in known or field_request.name in rejected:
            error = errors.nonexisting_field(field_request.name, node_type)
            raise GraphFailure(error, buc_waba=buc_waba)
    if not parsed:
        return tuple(FieldRequest(name) for name in defaults), None
    return parsed, raw


def _names(requested: Sequence[FieldRequest]) -> frozenset[str]:
    return frozenset(r.name for r in requested)


def _serve_node(
    request: web.Request, world: World, object_id: str
) -> tuple[dict[str, Any], str | None]:
    kind = world.kind_of(object_id)
    if kind == "phone_number":
        waba_id = world.number_waba(object_id)
        _admit(world, waba_id)
        requested, _ = _requested(request, world, PHONE_NUMBER_NODE, NUMBER_DEFAULT_FIELDS, waba_id)
        values = world.number_values(object_id, _names(requested))
        return render(object_id, values, requested), waba_id
    if kind == "waba":
        _admit(world, object_id)
        requested, _ = _requested(request, world, WABA_NODE, WABA_DEFAULT_FIELDS, object_id)
        values = world.waba_values(object_id, _names(requested))
        return render(object_id, values, requested), object_id
    if kind == "business":
        _admit(world, None)
        refusal = world.business_refusal(object_id)
        if refusal is not None:  # only the node: the scenario's edges stay readable
            raise GraphFailure(refusal)
        requested, _ = _requested(request, world, BUSINESS_NODE, BUSINESS_DEFAULT_FIELDS, None)
        values = world.business_values(object_id, _names(requested))
        return render(object_id, values, requested), None
    raise GraphFailure(errors.unknown_object(object_id))


def _serve_edge(
    request: web.Request,
    world: World,
    object_id: str,
    edge: str,
    token: str,
    page_fault: Fault | None,
) -> tuple[dict[str, Any], str | None]:
    kind = world.kind_of(object_id)
    if edge in ("subscribed_apps", "settings"):
        return _serve_wiring(request, world, object_id, edge, kind)
    if edge == "message_templates":
        return _serve_templates(request, world, object_id, kind, token, page_fault)
    if edge == "phone_numbers":
        if kind != "waba":
            raise GraphFailure(errors.unknown_object(object_id))
        buc_waba: str | None = object_id
        _admit(world, object_id)
        requested, raw = _requested(
            request, world, PHONE_NUMBER_NODE, NUMBER_DEFAULT_FIELDS, object_id
        )
        omit = frozenset(world.scenario.edge_omits_fields)
        requested = tuple(r for r in requested if r.name not in omit)
        wanted = _names(requested)
        if page_fault is not None and page_fault.kind == "huge_page":
            return _huge_page(world, object_id, requested, page_fault.size), buc_waba

        def item(item_id: str) -> dict[str, Any]:
            return render(item_id, world.number_values(item_id, wanted), requested)

        ids = world.waba_number_ids(object_id)
    else:
        if kind != "business":
            raise GraphFailure(errors.unknown_object(object_id))
        buc_waba = None
        _admit(world, None)
        requested, raw = _requested(request, world, WABA_NODE, WABA_DEFAULT_FIELDS, None)
        wanted = _names(requested)

        def item(item_id: str) -> dict[str, Any]:
            return render(item_id, world.waba_values(item_id, wanted), requested)

        if edge == "owned_whatsapp_business_accounts":
            ids = world.owned_waba_ids(object_id)
        else:
            ids = world.client_waba_ids(object_id)
    loop = page_fault is not None and page_fault.kind == "cursor_loop"
    body = _page(request, object_id, edge, ids, item, token=token, raw_fields=raw, loop=loop)
    return body, buc_waba


def _serve_templates(
    request: web.Request,
    world: World,
    waba_id: str,
    kind: str | None,
    token: str,
    page_fault: Fault | None,
) -> tuple[dict[str, Any], str | None]:
    """``GET /{WABA_ID}/message_templates`` (facts §4.1): the WABA's BUC budget, ``fields=``,
    ``limit``, cursors (131059 for a bad one on v24+) and ``summary=``."""
    if kind != "waba":
        raise GraphFailure(errors.unknown_object(waba_id))
    _admit(world, waba_id)
    requested, raw = _requested(request, world, TEMPLATE_NODE, TEMPLATE_DEFAULT_FIELDS, waba_id)
    summary = _template_summary(request, world, waba_id)
    ids = world.template_ids(waba_id)

    def item(template_id: str) -> dict[str, Any]:
        return world.render_template(template_id, requested)

    loop = page_fault is not None and page_fault.kind == "cursor_loop"
    body = _page(
        request, waba_id, "message_templates", ids, item, token=token, raw_fields=raw, loop=loop
    )
    if summary is not None:
        body["summary"] = summary
    return body, waba_id


def _template_summary(request: web.Request, world: World, waba_id: str) -> dict[str, Any] | None:
    """``summary=total_count,message_template_count,message_template_limit`` (or ``true``)."""
    raw = request.query.get("summary")
    if raw is None or raw.strip() in ("", "false", "0"):
        return None
    values = world.template_summary(waba_id)
    if raw.strip() in ("true", "1"):
        return {"total_count": values["total_count"]}
    out: dict[str, Any] = {}
    for name in (part.strip() for part in raw.split(",")):
        if not name:
            continue
        if name not in values:
            error = errors.bad_parameter(f"Invalid summary field: {name[:40]}")
            raise GraphFailure(error, buc_waba=waba_id)
        out[name] = values[name]
    return out


def _api_version(request: web.Request) -> tuple[int, int]:
    major, _, minor = request.match_info.get("version", "v0.0")[1:].partition(".")
    return int(major), int(minor or 0)


def _serve_wiring(
    request: web.Request, world: World, object_id: str, edge: str, kind: str | None
) -> tuple[dict[str, Any], str | None]:
    """``subscribed_apps`` of a WABA and ``settings`` of a number, each in its WABA's BUC
    bucket (the list in graph-api-facts §5 has subscribed_apps; settings is assumed)."""
    if edge == "subscribed_apps":
        if kind != "waba":
            raise GraphFailure(errors.unknown_object(object_id))
        _admit(world, object_id)
        refusal = world.subscribed_apps_refusal(object_id)
        if refusal is not None:
            raise GraphFailure(refusal, buc_waba=object_id)
        return world.subscribed_apps(object_id), object_id  # fields= is not applied here
    if kind != "phone_number":
        raise GraphFailure(errors.unknown_object(object_id))
    waba_id = world.number_waba(object_id)
    _admit(world, waba_id)
    refusal = world.settings_refusal(object_id)
    if refusal is not None:
        raise GraphFailure(refusal, buc_waba=waba_id)
    values = world.settings_values(object_id)
    return pick_settings(values, request.query.get("fields", ""), waba_id), waba_id


def _page(
    request: web.Request,
    object_id: str,
    edge: str,
    ids: list[str],
    item: Callable[[str], dict[str, Any]],
    *,
    token: str,
    raw_fields: str | None,
    loop: bool,
) -> dict[str, Any]:
    """One page of an edge, with Graph's cursors and ``next``/``previous`` links."""
    scope = f"{edge}/{object_id}"
    buc_waba = object_id if edge in ("phone_numbers", "message_templates") else None
    try:
        limit = parse_limit(request.query.get("limit"))
    except CursorError as exc:
        raise GraphFailure(errors.bad_parameter(str(exc)), buc_waba=buc_waba) from None
    try:
        after_raw = request.query.get("after")
        before_raw = request.query.get("before")
        after = decode_cursor(scope, after_raw) if after_raw else None
        before = decode_cursor(scope, before_raw) if before_raw and after is None else None
    except CursorError as exc:
        if edge == "message_templates" and _api_version(request) >= (24, 0):
            # v24.0+: "repeat the request without cursors" (facts §4.1).
            raise GraphFailure(errors.invalid_cursor(), buc_waba=buc_waba) from None
        raise GraphFailure(errors.bad_parameter(str(exc)), buc_waba=buc_waba) from None
    span = window(len(ids), limit, after=after, before=before)
    if span.stop <= span.start:
        return {"data": []}
    data = [item(ids[i]) for i in range(span.start, span.stop)]
    first = encode_cursor(scope, span.start)
    last = encode_cursor(scope, span.stop - 1)
    base = f"{request.url.origin()}/{request.match_info['version']}/{object_id}/{edge}"

    def link(**cursor: str) -> str:
        params = [("access_token", token)]
        if raw_fields is not None:
            params.append(("fields", raw_fields))
        params.append(("limit", str(limit)))
        params.extend(cursor.items())
        return f"{base}?{urlencode(params)}"

    paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
    if loop:
        # The cursor the client just used (or one meaning "from the start" on page 1).
        again = encode_cursor(scope, span.start - 1)
        paging["cursors"]["after"] = again
        paging["next"] = link(after=again)
    elif span.stop < len(ids):
        paging["next"] = link(after=last)
    if span.start > 0:
        paging["previous"] = link(before=first)
    return {"data": data, "paging": paging}


def _huge_page(
    world: World, waba_id: str, requested: Sequence[FieldRequest], size: int
) -> dict[str, Any]:
    """``size`` synthetic numbers in one page with no ``next``: tests response-size limits."""
    wanted = _names(requested)
    context = world.context_entities(waba_id) if "health_status" in wanted else []
    data = []
    for i in range(size):
        number_id = f"9{i:015d}"
        values = number_values(
            synthetic_number(i), number_id, wanted=wanted, context_entities=context
        )
        data.append(render(number_id, values, requested))
    if not data:
        return {"data": []}
    scope = f"phone_numbers/{waba_id}"
    cursors = {"before": encode_cursor(scope, 0), "after": encode_cursor(scope, size - 1)}
    return {"data": data, "paging": {"cursors": cursors}}


# --------------------------------------------------------------------------- faults


async def _fault_response(
    request: web.Request, world: World, fault: Fault, buc_waba: str | None
) -> web.StreamResponse | None:
    """The response a fault produces, or None to continue serving normally (``timeout``)."""
    headers = {**_graph_headers(request, world, buc_waba), **fault.headers}
    kind = fault.kind
    if kind == "http_error":
        error = fault.graph_error()
        return _json(error.status, error.body(), headers)
    if kind == "timeout":
        if await _wait_for_disconnect(request, fault.delay):
            return _drop(request)
        return None
    if kind == "hang":
        await _wait_for_disconnect(request, None)
        return _drop(request)
    if kind == "reset":
        return _drop(request)
    if kind == "malformed_json":
        return web.Response(
            status=200, text=MALFORMED_JSON_BODY, content_type="application/json", headers=headers
        )
    if kind == "html_200":
        return web.Response(status=200, text=HTML_BODY, content_type="text/html", headers=headers)
    if kind == "empty_body":
        return web.Response(status=200, body=b"", content_type="application/json", headers=headers)
    if kind == "data_not_list":
        return _json(200, {"data": {"oops": 1}}, headers)
    return None


async def _wait_for_disconnect(request: web.Request, limit: float | None) -> bool:
    """Sleep up to ``limit`` seconds (forever if None); True if the client left or we stop.

    aiohttp does not cancel handlers when a client disconnects, so poll the transport;
    the app's shutdown event ends the wait too, so ``runner.cleanup()`` never blocks.
    """
    loop = asyncio.get_running_loop()
    shutdown = request.app[SHUTDOWN_KEY]
    deadline = None if limit is None else loop.time() + limit
    while True:
        transport = request.transport
        if transport is None or transport.is_closing() or shutdown.is_set():
            return True
        remaining = _POLL if deadline is None else deadline - loop.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(_POLL, remaining))


def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the connection so the client sees it reset with no HTTP response at all.

    In a batch only that entry is lost (it answers null); the batch's connection stays.
    """
    if batch.IN_BATCH.get():
        raise ConnectionResetError("batch entry dropped")
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


# --------------------------------------------------------------------------- control API


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _ControlFailure(400, "request body is not valid JSON") from None


class _ControlFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _control(handler: Handler) -> Handler:
    """Map bad input to 400 and unknown ids to 404, with a JSON error body."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
            _dispatch_webhooks(request.app)
            return response
        except _ControlFailure as exc:
            return _control_error(exc.status, exc.message)
        except UnknownObjectError as exc:
            return _control_error(404, str(exc))
        except (ValueError, TypeError) as exc:
            return _control_error(400, str(exc))
        except RecursionError:
            return _control_error(400, "request body is nested too deeply")

    return wrapped


async def _stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[WORLD_KEY].stats())


async def _stats_reset(request: web.Request) -> web.StreamResponse:
    request.app[WORLD_KEY].reset_counts()
    return web.json_response({"ok": True})


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _ControlFailure(400, f"{what}: expected a JSON object")
    return value


async def _patch_number(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    number_id = request.match_info["number_id"]
    world.set_number_fields(number_id, _object(await _read_json(request), "body"))
    return web.json_response({"id": number_id, **world.number_view(number_id)})


async def _add_number(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    body = _object(await _read_json(request), "body")
    number_id = body.pop("id", None)
    if isinstance(number_id, int) and not isinstance(number_id, bool):
        number_id = str(number_id)
    if not isinstance(number_id, str):
        raise _ControlFailure(400, "id: required, a numeric id string")
    if "fields" in body:
        fields = _object(body.pop("fields"), "fields")
        if body:
            raise _ControlFailure(400, "give number fields either flat or under 'fields'")
    else:
        fields = body
    world.add_number(request.match_info["waba_id"], number_id, fields)
    return web.json_response({"id": number_id, **world.number_view(number_id)}, status=201)


async def _delete_number(request: web.Request) -> web.StreamResponse:
    number_id = request.match_info["number_id"]
    request.app[WORLD_KEY].remove_number(number_id)
    return web.json_response({"deleted": number_id})


async def _delete_waba(request: web.Request) -> web.StreamResponse:
    waba_id = request.match_info["waba_id"]
    request.app[WORLD_KEY].remove_waba(waba_id)
    return web.json_response({"deleted": waba_id})


async def _add_fault(request: web.Request) -> web.StreamResponse:
    fault = Fault.from_json(await _read_json(request))
    request.app[WORLD_KEY].inject_fault(fault)
    return web.json_response({"fault": fault.to_json()}, status=201)


async def _list_faults(request: web.Request) -> web.StreamResponse:
    faults = request.app[WORLD_KEY].faults()
    return web.json_response({"faults": [{**f.to_json(), "remaining": n} for f, n in faults]})


async def _clear_faults(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    cleared = len(world.faults())
    world.clear_faults()
    return web.json_response({"cleared": cleared})


async def _advance(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    body = _object(await _read_json(request), "body")
    if "seconds" not in body:
        raise _ControlFailure(400, "seconds: required")
    world.advance(body["seconds"])
    return web.json_response({"clock": world.clock(), "elapsed": world.elapsed()})


async def _state(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[WORLD_KEY].state())


# --------------------------------------------------------------------------- webhooks


def _dispatch_webhooks(app: web.Application) -> None:
    """Hand changes the World noticed to the background sender; never fails the caller."""
    try:
        app[WEBHOOKS_KEY].dispatch()
    except Exception:
        log.exception("could not queue webhooks")


def _require_target(world: World) -> None:
    if world.webhook_target is None:
        raise _ControlFailure(409, "no webhook target: POST /_sim/webhooks/target first")


async def _set_webhook_target(request: web.Request) -> web.StreamResponse:
    body = _object(await _read_json(request), "body")
    allowed = {"url", "app_secret", "time_as_string", "legacy_quality_events"}
    extra = set(body) - allowed
    if extra:
        names = ", ".join(sorted(allowed))
        raise _ControlFailure(400, f"unknown key {sorted(extra)[0]!r}; allowed: {names}")
    target = webhook_target(
        body.get("url"),
        body.get("app_secret"),
        "body",
        time_as_string=body.get("time_as_string", False),
        legacy_quality_events=body.get("legacy_quality_events", True),
    )
    request.app[WORLD_KEY].set_webhook_target(
        target.url,
        target.app_secret,
        time_as_string=target.time_as_string,
        legacy_quality_events=target.legacy_quality_events,
    )
    return web.json_response({"target_set": True})


async def _clear_webhook_target(request: web.Request) -> web.StreamResponse:
    request.app[WORLD_KEY].clear_webhook_target()
    return web.json_response({"target_set": False})


async def _send_webhook(request: web.Request) -> web.StreamResponse:
    """Send one arbitrary change now (awaited, unlike the automatic ones) and report the result."""
    world = request.app[WORLD_KEY]
    body = _object(await _read_json(request), "body")
    extra = set(body) - {"field", "waba_id", "value"}
    if extra:
        allowed = "field, value, waba_id"
        raise _ControlFailure(400, f"unknown key {sorted(extra)[0]!r}; allowed: {allowed}")
    field, waba_id = body.get("field"), body.get("waba_id")
    if isinstance(waba_id, int) and not isinstance(waba_id, bool):
        waba_id = str(waba_id)
    if not isinstance(field, str) or not field:
        raise _ControlFailure(400, "field: required, a non-empty string")
    if not isinstance(waba_id, str) or not waba_id:
        raise _ControlFailure(400, "waba_id: required, a non-empty string")
    value = _object(body.get("value", {}), "value")
    _require_target(world)
    record = await request.app[WEBHOOKS_KEY].deliver(PendingWebhook(field, waba_id, value))
    return web.json_response(record)


async def _webhooks_sent(request: web.Request) -> web.StreamResponse:
    return web.json_response({"sent": request.app[WORLD_KEY].webhooks_sent()})


async def _business_capability(request: web.Request) -> web.StreamResponse:
    """``business_capability_update`` with the given value to every WABA the business owns."""
    world = request.app[WORLD_KEY]
    business_id = request.match_info["business_id"]
    if world.kind_of(business_id) != "business":
        raise UnknownObjectError(f"no business {business_id!r}")
    value = _object(await _read_json(request), "body")
    if not value:
        raise _ControlFailure(
            400, 'body: give at least one capability, e.g. {"max_phone_numbers_per_business": 20}'
        )
    _require_target(world)
    world.note_capability(business_id, value)
    sender = request.app[WEBHOOKS_KEY]
    sent = []
    for waba_id in world.owned_waba_ids(business_id):
        if not world.app_subscribed(waba_id):  # Meta sends nothing there (wiring)
            sent.append(world.record_webhook(CAPABILITY, waba_id, None, NOT_SUBSCRIBED))
            continue
        sent.append(await sender.deliver(PendingWebhook(CAPABILITY, waba_id, value)))
    return web.json_response({"business_id": business_id, "sent": sent})


async def _run_action(request: web.Request) -> web.StreamResponse:
    """``{"action": name, ...parameters}``: the state change now, its webhook queued."""
    body = _object(await _read_json(request), "body")
    kind = body.pop("action", None)
    try:
        action = parse_action(kind, body, "body")
    except ScenarioError as exc:
        raise _ControlFailure(400, str(exc)) from None
    world = request.app[WORLD_KEY]
    return web.json_response(world.run_action(action))


async def _patch_business(request: web.Request) -> web.StreamResponse:
    """``{verification_status?, messaging_limit?, limit_as?}`` → the ``set_business`` action."""
    body = _object(await _read_json(request), "body")
    body["business"] = request.match_info["business_id"]
    try:
        action = parse_action("set_business", body, "body")
    except ScenarioError as exc:
        raise _ControlFailure(400, str(exc)) from None
    world = request.app[WORLD_KEY]
    result = world.run_action(action)
    business_id = action.params["business"]
    wanted = frozenset(("verification_status", "whatsapp_business_manager_messaging_limit"))
    values = world.business_values(business_id, wanted)
    return web.json_response({**result, "business": {"id": business_id, **values}})


async def _webhook_context(app: web.Application) -> AsyncIterator[None]:
    """Look for due timeline webhooks every second while serving; stop the sender at the end."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(WEBHOOK_TICK)
            _dispatch_webhooks(app)

    ticker = asyncio.get_running_loop().create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await app[WEBHOOKS_KEY].close()


# --------------------------------------------------------------------------- assembly


async def _on_shutdown(app: web.Application) -> None:
    app[SHUTDOWN_KEY].set()


def build_app(
    world: World, *, latency: float = 0.0, batch_timeout: float = batch.BATCH_TIMEOUT
) -> web.Application:
    """The simulator as an aiohttp app; ``latency`` seconds are added to each Graph call (each
    batch entry too); batch entries still running after ``batch_timeout`` seconds are null."""
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise ValueError("latency: expected a non-negative number of seconds")
    if isinstance(batch_timeout, bool) or not isinstance(batch_timeout, int | float) or not (
        batch_timeout > 0
    ):
        raise ValueError("batch_timeout: expected a positive number of seconds")
    app = web.Application(middlewares=[_errors_middleware])
    app[WORLD_KEY] = world
    app[LATENCY_KEY] = float(latency)
    app[BATCH_TIMEOUT_KEY] = float(batch_timeout)
    app[SHUTDOWN_KEY] = asyncio.Event()
    app[WEBHOOKS_KEY] = WebhookSender(world)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_webhook_context)
    routes = app.router
    routes.add_get("/_sim/stats", _control(_stats))
    routes.add_post("/_sim/stats/reset", _control(_stats_reset))
    routes.add_patch("/_sim/numbers/{number_id}", _control(_patch_number))
    routes.add_delete("/_sim/numbers/{number_id}", _control(_delete_number))
    routes.add_post("/_sim/wabas/{waba_id}/numbers", _control(_add_number))
    routes.add_delete("/_sim/wabas/{waba_id}", _control(_delete_waba))
    routes.add_get("/_sim/faults", _control(_list_faults))
    routes.add_post("/_sim/faults", _control(_add_fault))
    routes.add_delete("/_sim/faults", _control(_clear_faults))
    routes.add_post("/_sim/clock/advance", _control(_advance))
    routes.add_get("/_sim/state", _control(_state))
    routes.add_post("/_sim/webhooks/target", _control(_set_webhook_target))
    routes.add_delete("/_sim/webhooks/target", _control(_clear_webhook_target))
    routes.add_post("/_sim/webhooks/send", _control(_send_webhook))
    routes.add_get("/_sim/webhooks/sent", _control(_webhooks_sent))
    routes.add_post("/_sim/businesses/{business_id}/capability", _control(_business_capability))
    routes.add_patch("/_sim/businesses/{business_id}", _control(_patch_business))
    routes.add_post("/_sim/actions", _control(_run_action))
    routes.add_post(f"/{{version:{_VERSION}}}/", _graph_batch)
    routes.add_post(f"/{{version:{_VERSION}}}", _graph_batch)
    routes.add_get(f"/{{version:{_VERSION}}}/{{object_id:[^/]+}}", _graph_node)
    routes.add_get(
        f"/{{version:{_VERSION}}}/{{object_id:[^/]+}}/{{edge:{'|'.join(EDGES)}}}", _graph_edge
    )
    return app


async def start_simulator(
    world: World, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0
) -> tuple[web.AppRunner, str]:
    """Serve the simulator on ``host:port`` (0 = any free port); returns runner and base URL.

    The access log is off: Graph puts tokens in query strings and logs must not carry them.
    """
    runner = web.AppRunner(build_app(world, latency=latency), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return runner, f"http://{shown}:{bound_port}"
