"""Meta webhook receiver: the verification handshake, signed notifications, and what they trigger.

Most fields are hints: they ask the daemon to re-poll the WABA (the Graph API stays
authoritative). Some tell facts nothing else repeats (enforcement, review decisions, account
alerts, caps): those are committed to the state file before the 200. Nothing in a POST is
parsed, let alone acted on, before the HMAC-SHA256 of the raw body matches
``X-Hub-Signature-256``.

Status codes:

* ``GET``: 200 with the raw ``hub.challenge`` when ``hub.mode=subscribe`` and the verify
  token matches; 403 otherwise, always 403 when no verify token is configured.
* ``POST``: 403 when no app secret is configured (nothing can be verified; not 503, since a
  retry cannot help until the configuration changes); 401 when ``X-Hub-Signature-256`` is
  missing; 413 when the body is longer than ``max_body_bytes`` (Meta's bodies reach 3 MB);
  403 when the signature does not match; 400 when the body is not JSON or not Meta's envelope
  (nothing applied); 500 when what the changes staged could not be committed (Meta
  redelivers, and the redelivery commits it); otherwise 200, also when single changes were
  unreadable, unknown, invalid or failed in the sink, because Meta retries anything else for
  days and a retry would not fare better.

Each change is deduplicated, dispatched to its field's handler (``monitor.webhooks.handlers``)
and recorded in one event-loop step; then the body's staged facts are committed
(``WebhookSink.commit``), and only then is the body answered. This module owns the HTTP side,
the dedupe memory and the metrics.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter

from monitor.logs import register_secret
from monitor.selfmetrics import OptionalGauge
from monitor.webhooks.contract import (
    DUPLICATE,
    ERROR,
    EVENT_OUTCOMES,
    Outcome,
    WebhookSink,
    record_outcome,
)
from monitor.webhooks.envelope import (
    SIGNATURE_HEADER,
    WebhookChange,
    WebhookPayloadError,
    change_key,
    log_text,
    parse_body,
    verify_signature,
)
from monitor.webhooks.handlers import KNOWN_FIELDS, OTHER_FIELD, dispatch, metric_label

__all__ = [
    "DEDUPE_CAPACITY",
    "FORWARDED_HEADER",
    "REQUEST_RESULTS",
    "Forwarder",
    "WebhookConfig",
    "WebhookMetrics",
    "add_webhook_routes",
    "create_webhook_metrics",
    "startup_warnings",
]

log = structlog.get_logger("monitor.webhooks")

DEDUPE_CAPACITY = 10_000
REQUEST_RESULTS: tuple[str, ...] = (
    "ok",
    "bad_signature",
    "unsigned",
    "too_large",
    "malformed",
    "refused_no_secret",
    "verify_ok",
    "verify_failed",
    "commit_failed",
)

# (raw body, signature header, WABA ids named in it): hands a verified notification to the
# shards that may watch those WABAs (``monitor.sharding.forward``). Forwarded requests carry
# FORWARDED_HEADER and are not forwarded again.
Forwarder = Callable[[bytes, str, frozenset[str]], None]
FORWARDED_HEADER = "X-Waba-Monitor-Forwarded"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where the receiver listens and the two secrets it checks (empty means not set)."""

    path: str = "/webhooks/whatsapp"
    verify_token: str | None = None
    app_secret: str | None = None
    max_body_bytes: int = 3_145_728  # Meta: "can be up to 3 MB"


@dataclass(frozen=True, slots=True)
class WebhookMetrics:
    requests: Counter
    events: Counter
    last_event: OptionalGauge
    traffic: Counter


def create_webhook_metrics(registry: CollectorRegistry) -> WebhookMetrics:
    """Counters with every known label combination pre-set, so rate() sees them from zero."""
    requests = Counter(
        "whatsapp_monitor_webhook_requests",
        "Webhook HTTP requests by result: ok, bad_signature, unsigned, too_large, malformed, "
        "refused_no_secret, commit_failed (POST, answered 500: the facts it told could not be "
        "stored); verify_ok, verify_failed (GET handshake).",
        ["result"],
        registry=registry,
    )
    events = Counter(
        "whatsapp_monitor_webhook_events",
        "Changes received in signed webhook notifications, by field (unhandled fields are "
        "'other') and outcome: applied, ignored, duplicate, invalid, error.",
        ["field", "outcome"],
        registry=registry,
    )
    last_event = OptionalGauge(
        "whatsapp_monitor_webhook_last_event_timestamp_seconds",
        "Unix time the last correctly signed, well-formed webhook notification arrived; "
        "absent until one has arrived since start.",
        registry,
    )
    traffic = Counter(
        "whatsapp_monitor_webhook_traffic_dropped",
        "Message traffic (messages and statuses, calls, echoes, ...: fields the messaging "
        "backend handles) that reached the daemon: answered 200 and dropped unread, never "
        "logged one by one.",
        registry=registry,
    )
    for result in REQUEST_RESULTS:
        requests.labels(result=result)
    for field in (*KNOWN_FIELDS, OTHER_FIELD):
        for outcome in EVENT_OUTCOMES:
            events.labels(field=field, outcome=outcome)
    return WebhookMetrics(requests=requests, events=events, last_event=last_event,
                          traffic=traffic)


def startup_warnings(config: WebhookConfig) -> list[str]:
    """Misconfigurations the daemon should log once at start (each makes Meta's calls fail)."""
    warnings = []
    if not config.verify_token:
        warnings.append(
            f"webhooks: no verify token configured; GET {config.path} verification always "
            "answers 403, so Meta cannot (re)subscribe this callback URL"
        )
    if not config.app_secret:
        warnings.append(
            f"webhooks: no app secret configured; every POST to {config.path} is refused with "
            "403 because its X-Hub-Signature-256 cannot be verified"
        )
    return warnings


class _Lru:
    """Keys of recently processed changes, oldest dropped first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("dedupe capacity must be at least 1")
        self._capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(slots=True)
class _Receiver:
    config: WebhookConfig  # replaced whole on a configuration reload
    sink: WebhookSink
    metrics: WebhookMetrics
    recent: _Lru
    clock: Callable[[], float]
    forward: Forwarder | None = None

    # ---------------------------------------------------------------- GET handshake

    async def verify(self, request: web.Request) -> web.Response:
        query = request.query
        mode = query.get("hub.mode")
        token = query.get("hub.verify_token")
        challenge = query.get("hub.challenge")
        expected = self.config.verify_token
        ok = (
            bool(expected)
            and mode == "subscribe"
            and token is not None
            and challenge is not None
            and hmac.compare_digest(
                token.encode("utf-8", "surrogatepass"),
                (expected or "").encode("utf-8", "surrogatepass"),
            )
        )
        if not ok or challenge is None:
            self.metrics.requests.labels(result="verify_failed").inc()
            reason = "no verify token configured" if not expected else "mode or token mismatch"
            log.warning(
                "webhook_verification", result="verify_failed", reason=reason, peer=request.remote
            )
            return _plain(403, b"verification failed\n")
        self.metrics.requests.labels(result="verify_ok").inc()
        log.info("webhook_verification", result="verify_ok", peer=request.remote)
        return _plain(200, challenge.encode("utf-8", "replace"))

    # ---------------------------------------------------------------- POST notifications

    def _reject(self, request: web.Request, status: int, result: str, reason: str) -> web.Response:
        self.metrics.requests.labels(result=result).inc()
        level = log.warning if result in ("bad_signature", "refused_no_secret") else log.info
        level("webhook_rejected", result=result, status=status, reason=reason, peer=request.remote)
        return _plain(status, f"{reason}\n".encode())

    async def receive(self, request: web.Request) -> web.Response:
        secret = self.config.app_secret
        if not secret:
            return self._reject(
                request, 403, "refused_no_secret", "no app secret configured: cannot verify"
            )
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            return self._reject(request, 401, "unsigned", f"missing {SIGNATURE_HEADER}")
        limit = self.config.max_body_bytes
        try:
            body = await _read_limited(request, limit)
        except (ConnectionError, HttpProcessingError) as exc:
            reason = f"body unreadable ({type(exc).__name__})"
            return self._reject(request, 400, "malformed", reason)
        if body is None:
            return self._reject(request, 413, "too_large", f"body larger than {limit} bytes")
        if not verify_signature(body, header, secret):
            return self._reject(request, 403, "bad_signature", "signature does not match")
        try:
            notification = parse_body(body)
        except WebhookPayloadError as exc:
            return self._reject(request, 400, "malformed", str(exc))
        self.metrics.last_event.set(self.clock())
        changes = [c for c in notification.changes if c.field not in TRAFFIC_FIELDS]
        dropped = len(notification.changes) - len(changes)
        if dropped:  # the messaging backend's business: counted, not parsed further
            self.metrics.traffic.inc(dropped)
            if not changes and not notification.rejected:
                self.metrics.requests.labels(result="ok").inc()
                return _plain(200, b"OK\n")
        if (changes and self.forward is not None
                and not request.headers.get(FORWARDED_HEADER)):
            try:  # the WABAs as resolved (facts §2.2), so a shard that watches one gets it
                self.forward(body, header, frozenset(c.waba_id for c in changes))
            except Exception:  # forwarding is best effort; the local result stands
                log.exception("webhook_forward_failed")
        for rejected in notification.rejected:
            record_outcome(self.metrics.events, metric_label(rejected.field),
                           rejected.as_change(),
                           Outcome.invalid(rejected.reason, where=rejected.where))
        for change in changes:
            self._process(change)
        try:
            await self.sink.commit()
        except Exception as exc:
            self.metrics.requests.labels(result="commit_failed").inc()
            log.exception("webhook_commit_failed", peer=request.remote,
                          error=log_text(str(exc)), action="answered 500; Meta redelivers")
            return _plain(500, b"could not store this notification; retry later\n")
        self.metrics.requests.labels(result="ok").inc()
        return _plain(200, b"OK\n")

    def _process(self, change: WebhookChange) -> None:
        """Dedupe, dispatch and record one change; a failed one is not remembered (retried).

        A change is a duplicate when its key is in the recent memory, or among the keys its
        WABA's durable facts remember (a redelivery after a restart).
        """
        label = metric_label(change.field)
        try:
            key: str | None = change_key(change)
        except (ValueError, RecursionError):
            key = None
        try:
            if key is not None and (self.recent.seen(key)
                                    or self.sink.already_applied(change.waba_id, key)):
                record_outcome(self.metrics.events, label, change, DUPLICATE)
                return
            outcome = dispatch(dataclasses.replace(change, key=key), self.sink)
        except Exception:  # a sink or handler failure must not become a 5xx or a retry loop
            record_outcome(self.metrics.events, label, change, ERROR)
            return
        if key is not None:
            self.recent.add(key)
        record_outcome(self.metrics.events, label, change, outcome)


# Overridable message traffic (facts §2.1): it goes to the messaging backend, and reaches the
# daemon only when the daemon is the app's default callback without overrides.
TRAFFIC_FIELDS = frozenset({
    "messages", "message_echoes", "smb_message_echoes", "calls", "consumer_profile",
    "messaging_handovers", "group_lifecycle_update", "group_participants_update",
    "group_settings_update", "group_status_update", "smb_app_state_sync", "history",
    "account_settings_update",
})


def _plain(status: int, body: bytes) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it proves longer than ``limit`` (never reads more)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(65_536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def add_webhook_routes(
    app: web.Application,
    config: WebhookConfig,
    sink: WebhookSink,
    metrics: WebhookMetrics,
    *,
    clock: Callable[[], float] = time.time,
    dedupe_capacity: int = DEDUPE_CAPACITY,
    forward: Forwarder | None = None,
) -> Callable[[WebhookConfig], None]:
    """Add ``GET``/``POST config.path``; registers both secrets for log redaction.

    Returns a function that swaps in new secrets and limits on a reload (the path is fixed
    for the life of the server).
    """
    if not config.path.startswith("/"):
        raise ValueError(f"webhook path must start with '/', got {config.path!r}")
    if config.max_body_bytes < 1:
        raise ValueError("max_body_bytes must be at least 1")
    register_secret(config.verify_token)
    register_secret(config.app_secret)
    receiver = _Receiver(config, sink, metrics, _Lru(dedupe_capacity), clock, forward)
    app.router.add_get(config.path, receiver.verify)
    app.router.add_post(config.path, receiver.receive)

    def update(new: WebhookConfig) -> None:
        register_secret(new.verify_token)
        register_secret(new.app_secret)
        receiver.config = dataclasses.replace(new, path=config.path)

    return update
