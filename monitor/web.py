"""The HTTP face of the daemon: /metrics, a landing page, and health endpoints.

Scrapes never call the Graph API: /metrics joins bytes the store rendered when a poll
finished, plus the small self-metrics registry.
"""

from __future__ import annotations

import gzip
import heapq
import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_exposition
from prometheus_client.openmetrics import exposition as om_exposition

from monitor import __version__
from monitor.check import Level, alert_findings, number_findings, waba_findings
from monitor.model import Transition, WabaState
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


def _cell(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _ago(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    return f"{max(0.0, now - timestamp):.0f}s ago"


FULL_PAGE_NUMBERS = 2_000  # above this, the page lists only numbers with a problem


def _waba_rows(waba: WabaState, now: float, *, problems_only: bool = False,
               name: str | None = None) -> list[str]:
    up = "up" if waba.up else ("down" if waba.polled else "pending")
    named = f" {_cell(name)}" if name else ""
    listed = (f" (listed under business {_cell(waba.via)})"
              if waba.via and waba.via != waba.business_id else "")
    rows = [
        f'<tr class="waba"><td colspan="9"><b>WABA {_cell(waba.waba_id)}{named}</b>{listed} — '
        f'<span class="{up}">{up}</span>, {len(waba.numbers)} numbers, last success '
        f"{_ago(waba.last_success, now)}"
        + (f", last error: {_cell(waba.last_error)}" if not waba.up and waba.polled else "")
        + "</td></tr>"
    ]
    for n in waba.numbers:
        if problems_only and not number_findings(waba.business_id, waba.waba_id, n):
            continue
        status_class = "ok" if n.status == "CONNECTED" else "bad"
        rows.append(
            "<tr>"
            f"<td>{_cell(n.id)}</td><td>{_cell(n.display_phone_number)}</td>"
            f"<td>{_cell(n.verified_name)}</td>"
            f'<td class="{status_class}">{_cell(n.status)}</td>'
            f"<td>{_cell(n.quality_rating)}</td><td>{_cell(n.name_status)}</td>"
            f"<td>{_cell(n.throughput_level)}</td><td>{_cell(n.messaging_limit)}</td>"
            f"<td>{_cell(n.health_status)}</td></tr>"
        )
    return rows


RECENTLY_ONBOARDED = 10
STUCK_PENDING_AFTER = 86_400.0  # a number still PENDING this long after onboarding is stuck


def _onboarding(store: Store, at: float) -> list[str]:
    """The most recently onboarded numbers, and those stuck PENDING a day after it."""
    rows = [(n.last_onboarded, w, n) for w in store.wabas() for n in w.numbers
            if n.last_onboarded is not None]
    if not rows:
        return []
    recent = heapq.nlargest(RECENTLY_ONBOARDED, rows, key=lambda r: r[0])
    stuck = [r for r in rows if r[2].status == "PENDING" and at - r[0] > STUCK_PENDING_AFTER]
    out = ["<h2>Onboarding</h2>"]
    for title, found in (("Recently onboarded", recent),
                         ("Still PENDING more than a day after onboarding", stuck)):
        if not found:
            continue
        out.append(f"<h3>{title}</h3><table><tr><th>Onboarded</th><th>Number</th>"
                   "<th>Verified name</th><th>Status</th><th>WABA</th></tr>")
        out.extend(f"<tr><td>{_ago(when, at)}</td><td>{_cell(n.display_phone_number or n.id)}"
                   f"</td><td>{_cell(n.verified_name)}</td><td>{_cell(n.status)}</td>"
                   f"<td>{_cell(w.waba_id)}</td></tr>" for when, w, n in found)
        out.append("</table>")
    return out


def _templates(store: Store) -> list[str]:
    """Templates with a problem (not APPROVED, low quality, a category change announced)."""
    rows = [(w, t) for w in store.wabas() for t in store.effective_templates(w.waba_id)
            if t.problem]
    if not rows:
        return []
    out = ["<h2>Message templates with a problem</h2><table><tr><th>WABA</th><th>Template</th>"
           "<th>Language</th><th>Status</th><th>Quality</th><th>Category</th></tr>"]
    out.extend(
        f"<tr><td>{_cell(w.waba_id)}</td><td>{_cell(t.name or t.id)}</td>"
        f"<td>{_cell(t.language)}</td><td>{_cell(t.status)}</td><td>{_cell(t.quality)}</td>"
        f"<td>{_cell(t.category)}" + (f" → {_cell(t.correct_category)}"
                                       if t.category_change_pending else "") + "</td></tr>"
        for w, t in rows)
    out.append("</table>")
    return out


def _name_decisions(store: Store) -> list[str]:
    """Display-name decisions told by webhook, with Meta's rejection reason."""
    out: list[str] = []
    for waba in store.wabas():
        facts = store.waba_facts(waba.waba_id)
        if facts is None or not facts.name_decisions:
            continue
        names = {n.id: n.display_phone_number or n.id for n in waba.numbers}
        out.extend(f"<li>{_cell(names.get(number, number))} (WABA {_cell(waba.waba_id)}): "
                   f"{_cell(decision)}" + (f", reason {_cell(reason)}" if reason else "")
                   + "</li>" for number, (decision, reason) in facts.name_decisions.items())
    return ["<h2>Display-name decisions</h2><ul>", *out, "</ul>"] if out else []


def landing_page(store: Store, now: Callable[[], float] = time.time) -> str:
    at = now()
    problems_only = sum(len(w.numbers) for w in store.wabas()) > FULL_PAGE_NUMBERS
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>waba-monitor</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}.bad,.down{color:#b00}"
        ".ok,.up{color:#070}.pending{color:#888}tr.waba td{background:#f4f4f4}</style>",
        "</head><body>",
        f"<h1>waba-monitor {html.escape(__version__)}</h1>",
        "<p><a href='/metrics'>Metrics</a> · <a href='/-/healthy'>Health</a> · "
        "<a href='/-/ready'>Readiness</a></p>",
        "<p>Values come from background polls of the Graph API; this page and /metrics are "
        "served from memory.</p>",
    ]
    if problems_only:
        parts.append(f"<p>More than {FULL_PAGE_NUMBERS:,} numbers: only numbers with a "
                     "problem are listed. /metrics and the check command have them all.</p>")
    for summary in store.summaries():
        wabas = store.business_wabas(summary.business_id)
        parts.append(
            f"<h2>Business {_cell(summary.business_id)}</h2><p>{summary.registered} of "
            f"{summary.cap} registered numbers used (cap from {_cell(summary.cap_source)}); "
            f"{summary.wabas} WABAs. Shared messaging limit: "
            f"{_cell(summary.messaging_limit or 'unknown')}"
            + (f" (from {_cell(summary.messaging_limit_source)})"
               if summary.messaging_limit_source else "")
            + f"; verification: {_cell(summary.verification_status or 'unknown')}.</p>"
        )
        account = alert_findings(store, summary.business_id, at) + [
            f for w in wabas for f in waba_findings(store, w.business_id, w.waba_id, at)]
        if account:
            parts.append("<ul class='account'>" + "".join(
                f"<li class='{'bad' if f.level is Level.CRITICAL else 'pending'}'>"
                f"{_cell(f.level.name)}: " + (f"WABA {_cell(f.waba_id)}: " if f.waba_id else "")
                + f"{_cell(f.problem)}</li>" for f in account) + "</ul>")
        parts.append(
            "<table><tr><th>ID</th><th>Number</th><th>Verified name</th><th>Status</th>"
            "<th>Quality</th><th>Name status</th><th>Throughput</th><th>Messaging limit</th>"
            "<th>Can send</th></tr>"
        )
        for waba in wabas:
            node = store.waba_node(waba.waba_id)
            parts.extend(_waba_rows(waba, at, problems_only=problems_only,
                                    name=node.name if node else None))
        parts.append("</table>")
    if not store.businesses():
        parts.append("<p>No business configured.</p>")
    parts.extend(_templates(store))
    parts.extend(_onboarding(store, at))
    parts.extend(_name_decisions(store))
    recent = list(store.recent)[:20]
    if recent:
        parts.append("<h2>Latest changes</h2><table><tr><th>When</th><th>Business</th>"
                     "<th>WABA</th><th>Number</th><th>Field</th><th>Old</th><th>New</th></tr>")
        for t in recent:
            parts.append(
                f"<tr><td>{_ago(t.at, at)}</td><td>{_cell(t.business_id)}</td>"
                f"<td>{_cell(t.waba_id)}</td><td>{_cell(t.phone_number_id)}</td>"
                f"<td>{_cell(t.field)}</td><td>{_cell(t.old)}</td><td>{_cell(t.new)}</td></tr>")
        parts.append("</table><p><a href='/api/v1/transitions'>All changes (JSON)</a></p>")
    parts.append("</body></html>")
    return "".join(parts)


async def index_handler(request: web.Request) -> web.Response:
    return web.Response(text=landing_page(request.app[VIEW_KEY].store), content_type="text/html")


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
    app[TRANSITIONS_KEY] = transitions or memory_transitions(view.store)
    if reload is not None:
        app[RELOAD_KEY] = reload
    app.router.add_post("/-/reload", reload_handler)
    app.router.add_get("/api/v1/transitions", transitions_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/", index_handler)
    app.router.add_get("/-/healthy", healthy_handler)
    app.router.add_get("/-/ready", ready_handler)
    return app
