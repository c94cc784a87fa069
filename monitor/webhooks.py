"""Meta webhook receiver: the verification handshake, signed notifications, and what they trigger.

Webhooks are hints, not a source of truth. A notification asks the daemon to re-poll the WABA
(the Graph API stays authoritative), except ``business_capability_update``, which is the only
place Meta publishes the registered-number cap. Nothing in a POST is parsed, let alone acted
on, before the HMAC-SHA256 of the raw body matches ``X-Hub-Signature-256``.

Status codes (the receiver never answers 5xx, whatever the input):

* ``GET``: 200 with the raw ``hub.challenge`` when ``hub.mode=subscribe`` and the verify
  token matches; 403 otherwise, always 403 when no verify token is configured.
* ``POST``: 403 when no app secret is configured (nothing can be verified; not 503, since a
  retry cannot help until the configuration changes); 401 when ``X-Hub-Signature-256`` is
  missing; 413 when the body is longer than ``max_body_bytes``; 403 when the signature does
  not match; 400 for malformed JSON or a wrong envelope (nothing applied); otherwise 200, also
  when single changes were unknown, invalid or failed in the sink, because Meta retries
  anything else for days and a retry would not fare better.

Processing is synchronous and cheap (the sink only records and debounces), so it runs before
the 200 is sent: a notification is acknowledged only once it has been applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.logs import register_secret

__all__ = [
    "ACCOUNT_ALERT_TYPES",
    "ACCOUNT_UPDATE_EVENTS",
    "DEDUPE_CAPACITY",
    "EVENT_OUTCOMES",
    "KNOWN_FIELDS",
    "NAME_DECISIONS",
    "OTHER_FIELD",
    "QUALITY_EVENTS",
    "REQUEST_RESULTS",
    "SIGNATURE_HEADER",
    "WABA_OBJECT",
    "WebhookChange",
    "WebhookConfig",
    "WebhookMetrics",
    "WebhookPayloadError",
    "WebhookSink",
    "add_webhook_routes",
    "change_key",
    "create_webhook_metrics",
    "parse_notification",
    "sign",
    "startup_warnings",
    "verify_signature",
]

log = structlog.get_logger("monitor.webhooks")

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
DEDUPE_CAPACITY = 10_000
OTHER_FIELD = "other"  # metric label for every field we do not handle: bounds label cardinality

CAPABILITY_FIELD = "business_capability_update"
QUALITY_FIELD = "phone_number_quality_update"
ACCOUNT_UPDATE_FIELD = "account_update"
NAME_FIELD = "phone_number_name_update"
ALERTS_FIELD = "account_alerts"
KNOWN_FIELDS: tuple[str, ...] = (
    CAPABILITY_FIELD,
    QUALITY_FIELD,
    ACCOUNT_UPDATE_FIELD,
    NAME_FIELD,
    ALERTS_FIELD,
)
REQUEST_RESULTS: tuple[str, ...] = (
    "ok",
    "bad_signature",
    "unsigned",
    "too_large",
    "malformed",
    "refused_no_secret",
    "verify_ok",
    "verify_failed",
)
EVENT_OUTCOMES: tuple[str, ...] = ("applied", "ignored", "duplicate", "invalid", "error")

# Current and legacy values (graph-api-facts §6): partners still send the legacy ones.
QUALITY_EVENTS = frozenset(
    {"DOWNGRADE", "FLAGGED", "ONBOARDING", "THROUGHPUT_UPGRADE", "UNFLAGGED", "UPGRADE"}
)
ACCOUNT_UPDATE_EVENTS = frozenset(
    {
        "ACCOUNT_DELETED",
        "ACCOUNT_RESTRICTION",
        "ACCOUNT_VIOLATION",
        "AD_ACCOUNT_LINKED",
        "AUTH_INTL_PRICE_ELIGIBILITY_UPDATE",
        "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE",
        "DISABLED_UPDATE",
        "MM_LITE_TERMS_SIGNED",
        "PARTNER_ADDED",
        "PARTNER_APP_INSTALLED",
        "PARTNER_APP_UNINSTALLED",
        "PARTNER_CLIENT_CERTIFICATION_STATUS_UPDATE",
        "PARTNER_REMOVED",
        "VOLUME_BASED_PRICING_TIER_UPDATE",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
        "VERIFIED_ACCOUNT",
    }
)
NAME_DECISIONS = frozenset({"APPROVED", "DEFERRED", "PENDING", "REJECTED"})
ACCOUNT_ALERT_TYPES = frozenset(
    {
        "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO",
        "OBA_APPROVED",
        "OBA_REJECTED",
        "PROFILE_PICTURE_LOST",
    }
)
# The business-wide cap wins; the per-WABA one is passed on only when no usable
# business-wide value is present (the daemon decides what a per-WABA cap means).
CAP_FIELDS = ("max_phone_numbers_per_business", "max_phone_numbers_per_waba")
MAX_CAP = 1_000_000  # anything larger is garbage, not a cap
_WABA_ID = re.compile(r"[0-9]{1,32}")
_HEX = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,7}")
_LOG_TEXT_LIMIT = 80


# --------------------------------------------------------------------------- interface


class WebhookSink(Protocol):
    """What the receiver drives; implemented by the daemon."""

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None: ...

    def request_repoll(self, *, waba_id: str, reason: str) -> None: ...

    def phone_number_id_for(self, display_phone_number: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where the receiver listens and the two secrets it checks (empty means not set)."""

    path: str = "/webhooks/whatsapp"
    verify_token: str | None = None
    app_secret: str | None = None
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """One ``entry[].changes[]`` item with its entry's id and time (``waba_id`` is entry.id)."""

    object: str
    waba_id: str
    time: int | None
    field: str
    value: Mapping[str, Any]


class WebhookPayloadError(ValueError):
    """The body is not JSON or not Meta's notification envelope; the message says where."""


@dataclass(frozen=True, slots=True)
class WebhookMetrics:
    requests: Counter
    events: Counter
    last_event: Gauge


def create_webhook_metrics(registry: CollectorRegistry) -> WebhookMetrics:
    """Counters with every known label combination pre-set, so rate() sees them from zero."""
    requests = Counter(
        "whatsapp_monitor_webhook_requests",
        "Webhook HTTP requests by result: ok, bad_signature, unsigned, too_large, malformed, "
        "refused_no_secret (POST); verify_ok, verify_failed (GET handshake).",
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
    last_event = Gauge(
        "whatsapp_monitor_webhook_last_event_timestamp_seconds",
        "Unix time the last correctly signed, well-formed webhook notification arrived "
        "(0: none since start).",
        registry=registry,
    )
    for result in REQUEST_RESULTS:
        requests.labels(result=result)
    for field in (*KNOWN_FIELDS, OTHER_FIELD):
        for outcome in EVENT_OUTCOMES:
            events.labels(field=field, outcome=outcome)
    return WebhookMetrics(requests=requests, events=events, last_event=last_event)


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


# --------------------------------------------------------------------------- signatures


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex HMAC>``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check of ``header`` against the HMAC of the raw body; False if malformed."""
    if not header or not app_secret:
        return False
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    given = given.strip().lower()
    if not _HEX.fullmatch(given):
        return False
    expected = sign(body, app_secret).removeprefix("sha256=")
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))


# --------------------------------------------------------------------------- parsing


def _reject_constant(name: str) -> Any:
    raise WebhookPayloadError(f"body is not valid JSON: {name} is not allowed")


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def parse_notification(body: bytes) -> tuple[WebhookChange, ...]:
    """Every change in a notification, validated all-or-nothing against Meta's envelope."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except WebhookPayloadError:
        raise
    except json.JSONDecodeError as exc:
        raise WebhookPayloadError(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise WebhookPayloadError("body is not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise WebhookPayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise WebhookPayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError(f"top level: expected an object, got {_type(data)}")
    obj = data.get("object")
    if not isinstance(obj, str) or not obj:
        raise WebhookPayloadError(f"object: expected a non-empty string, got {_type(obj)}")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise WebhookPayloadError(f"entry: expected a list, got {_type(entries)}")
    changes: list[WebhookChange] = []
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        if not isinstance(entry, dict):
            raise WebhookPayloadError(f"{where}: expected an object, got {_type(entry)}")
        entry_id = _entry_id(entry.get("id"), f"{where}.id")
        entry_time = _entry_time(entry.get("time"), f"{where}.time")
        items = entry.get("changes")
        if not isinstance(items, list):
            raise WebhookPayloadError(f"{where}.changes: expected a list, got {_type(items)}")
        for j, item in enumerate(items):
            at = f"{where}.changes[{j}]"
            if not isinstance(item, dict):
                raise WebhookPayloadError(f"{at}: expected an object, got {_type(item)}")
            field = item.get("field")
            if not isinstance(field, str) or not field:
                raise WebhookPayloadError(
                    f"{at}.field: expected a non-empty string, got {_type(field)}"
                )
            value = item.get("value")
            if not isinstance(value, dict):
                raise WebhookPayloadError(f"{at}.value: expected an object, got {_type(value)}")
            changes.append(WebhookChange(obj, entry_id, entry_time, field, MappingProxyType(value)))
    return tuple(changes)


def _entry_id(value: object, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise WebhookPayloadError(f"{where}: expected a non-empty string, got {_type(value)}")


def _entry_time(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # finite, sane
        return int(value)
    raise WebhookPayloadError(f"{where}: expected a unix time, got {_type(value)}")


def change_key(change: WebhookChange) -> str:
    """Identity of a change across Meta's retries: entry id, time, field and canonical value."""
    canonical = json.dumps(dict(change.value), sort_keys=True, separators=(",", ":"))
    text = "\0".join((change.object, change.waba_id, str(change.time), change.field, canonical))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_cap(value: object) -> int | None:
    """A positive int or digit string as a cap; None for bools, floats and other garbage."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        cap = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        cap = int(value.strip())
    else:
        return None
    return cap if 0 < cap <= MAX_CAP else None


# --------------------------------------------------------------------------- processing


def _text(value: object) -> str | None:
    """A payload value made safe and short for a log line (payloads can hold anything)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
    elif isinstance(value, bool | int | float):
        text = repr(value)[:_LOG_TEXT_LIMIT]
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _LOG_TEXT_LIMIT else text[:_LOG_TEXT_LIMIT] + "…"


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


@dataclass(frozen=True, slots=True)
class _RepollRule:
    """Where a re-poll field keeps its event value and the number it is about."""

    event_key: str
    known: frozenset[str]
    number_key: str


_REPOLL_RULES: Mapping[str, _RepollRule] = MappingProxyType(
    {
        QUALITY_FIELD: _RepollRule("event", QUALITY_EVENTS, "display_phone_number"),
        ACCOUNT_UPDATE_FIELD: _RepollRule("event", ACCOUNT_UPDATE_EVENTS, "phone_number"),
        NAME_FIELD: _RepollRule("decision", NAME_DECISIONS, "display_phone_number"),
    }
)


def _event_and_number(change: WebhookChange) -> tuple[object, object]:
    """The change's event/decision value and the phone number it names (either may be absent)."""
    value = change.value
    if change.field == ALERTS_FIELD:
        info = value.get("alert_info")
        event = info.get("alert_type") if isinstance(info, dict) else None
        number = value.get("entity_id") if value.get("entity_type") == "PHONE_NUMBER" else None
        return event, number
    rule = _REPOLL_RULES[change.field]
    return value.get(rule.event_key), value.get(rule.number_key)


def _known_events(field: str) -> frozenset[str]:
    return ACCOUNT_ALERT_TYPES if field == ALERTS_FIELD else _REPOLL_RULES[field].known


# (raw body, signature header, WABA ids named in it): hands a verified notification to the
# shards that may watch those WABAs. Forwarded requests carry FORWARDED_HEADER and are not
# forwarded again.
Forwarder = Callable[[bytes, str, frozenset[str]], None]
FORWARDED_HEADER = "X-Waba-Monitor-Forwarded"


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
            changes = parse_notification(body)
        except WebhookPayloadError as exc:
            return self._reject(request, 400, "malformed", str(exc))
        self.metrics.requests.labels(result="ok").inc()
        self.metrics.last_event.set(self.clock())
        if self.forward is not None and not request.headers.get(FORWARDED_HEADER):
            try:
                self.forward(body, header, frozenset(c.waba_id for c in changes))
            except Exception:  # forwarding is best effort; the local result stands
                log.exception("webhook_forward_failed")
        for change in changes:
            self._process(change)
        return _plain(200, b"OK\n")

    def _process(self, change: WebhookChange) -> None:
        label = change.field if change.field in KNOWN_FIELDS else OTHER_FIELD
        try:
            key = change_key(change)
        except (ValueError, RecursionError):
            key = None
        if key is not None and self.recent.seen(key):
            outcome = "duplicate"
            log.info(
                "webhook_event",
                field=_text(change.field),
                waba_id=_text(change.waba_id),
                outcome=outcome,
            )
        else:
            try:
                outcome = self._apply(change)
            except Exception:  # a sink or handler failure must not become a 5xx or a retry loop
                outcome = "error"
                log.exception(
                    "webhook_event",
                    field=_text(change.field),
                    waba_id=_text(change.waba_id),
                    outcome=outcome,
                )
            if key is not None and outcome != "error":
                self.recent.add(key)
        self.metrics.events.labels(field=label, outcome=outcome).inc()

    def _apply(self, change: WebhookChange) -> str:
        field = _text(change.field)
        waba_id = _text(change.waba_id)
        if change.object != WABA_OBJECT:
            log.info(
                "webhook_event",
                field=field,
                waba_id=waba_id,
                outcome="ignored",
                reason=f"object {_text(change.object)!r} is not {WABA_OBJECT}",
            )
            return "ignored"
        if change.field not in KNOWN_FIELDS:
            log.info(
                "webhook_event",
                field=field,
                waba_id=waba_id,
                outcome="ignored",
                reason="field not handled",
            )
            return "ignored"
        if not _WABA_ID.fullmatch(change.waba_id):
            log.warning(
                "webhook_event",
                field=field,
                waba_id=waba_id,
                outcome="invalid",
                reason="entry id is not a WABA id",
            )
            return "invalid"
        if change.field == CAPABILITY_FIELD:
            return self._capability(change)
        return self._repoll(change)

    def _capability(self, change: WebhookChange) -> str:
        invalid: list[str] = []
        for key in CAP_FIELDS:
            if key not in change.value:
                continue
            cap = parse_cap(change.value[key])
            if cap is None:
                invalid.append(key)
                continue
            self.sink.learn_cap(waba_id=change.waba_id, cap=cap, source_field=key)
            log.info(
                "webhook_event",
                field=change.field,
                waba_id=change.waba_id,
                cap=cap,
                source_field=key,
                outcome="applied",
                invalid_fields=invalid or None,
            )
            return "applied"
        if invalid:
            log.warning(
                "webhook_event",
                field=change.field,
                waba_id=change.waba_id,
                outcome="invalid",
                reason="cap is not a positive integer",
                invalid_fields=invalid,
                values=[_text(change.value[k]) for k in invalid],
            )
            return "invalid"
        log.info(
            "webhook_event",
            field=change.field,
            waba_id=change.waba_id,
            outcome="ignored",
            reason="no phone-number cap in this update",
            keys=[_text(k) for k in sorted(change.value)[:10]],
        )
        return "ignored"

    def _repoll(self, change: WebhookChange) -> str:
        event, number = _event_and_number(change)
        common: dict[str, Any] = {
            "field": change.field,
            "waba_id": change.waba_id,
            "event_value": _text(event),
        }
        if not isinstance(event, str) or not event:
            log.warning(
                "webhook_event",
                **common,
                outcome="invalid",
                reason="event value missing or not a string",
            )
            return "invalid"
        if event not in _known_events(change.field):
            log.info("webhook_event", **common, outcome="ignored", reason="unknown event value")
            return "ignored"
        phone_number_id = None
        if isinstance(number, str) and number:
            common["display_phone_number"] = _text(number)
            try:
                phone_number_id = self.sink.phone_number_id_for(number)
            except Exception:
                log.exception(
                    "webhook_number_lookup_failed", field=change.field, waba_id=change.waba_id
                )
        self.sink.request_repoll(waba_id=change.waba_id, reason=change.field)
        log.info("webhook_event", **common, phone_number_id=phone_number_id, outcome="applied")
        return "applied"


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
