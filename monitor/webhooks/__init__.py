"""Meta webhooks: the signed envelope, the aiohttp receiver, and one handler per field.

* ``envelope`` — signature check and parsing a body into typed changes (no HTTP);
* ``receiver`` — routes, handshake, limits, dedupe, status codes, metrics;
* ``contract`` — what a field handler gets (the sink) and returns (an ``Outcome``), and the
  one helper that logs and counts outcomes;
* ``handlers`` — one module per field, registered in ``handlers.HANDLERS``.

This module re-exports the names callers used when it was a single module; new code should
import from the submodule that defines a name.
"""

from __future__ import annotations

from monitor.webhooks.contract import EVENT_OUTCOMES, Handler, Outcome, WebhookSink
from monitor.webhooks.envelope import (
    MAX_CAP,
    SIGNATURE_HEADER,
    WABA_OBJECT,
    Notification,
    RejectedChange,
    WebhookChange,
    WebhookPayloadError,
    change_key,
    parse_body,
    parse_cap,
    parse_notification,
    resolve_waba,
    sign,
    verify_signature,
)
from monitor.webhooks.handlers import HANDLERS, KNOWN_FIELDS, OTHER_FIELD
from monitor.webhooks.handlers.account_alerts import ALERT_TYPES as ACCOUNT_ALERT_TYPES
from monitor.webhooks.handlers.account_alerts import FIELD as ALERTS_FIELD
from monitor.webhooks.handlers.account_review_update import DECISIONS as REVIEW_DECISIONS
from monitor.webhooks.handlers.account_review_update import FIELD as REVIEW_FIELD
from monitor.webhooks.handlers.account_update import EVENTS as ACCOUNT_UPDATE_EVENTS
from monitor.webhooks.handlers.account_update import FIELD as ACCOUNT_UPDATE_FIELD
from monitor.webhooks.handlers.business_capability_update import CAP_FIELDS
from monitor.webhooks.handlers.business_capability_update import FIELD as CAPABILITY_FIELD
from monitor.webhooks.handlers.phone_number_name_update import DECISIONS as NAME_DECISIONS
from monitor.webhooks.handlers.phone_number_name_update import FIELD as NAME_FIELD
from monitor.webhooks.handlers.phone_number_quality_update import EVENTS as QUALITY_EVENTS
from monitor.webhooks.handlers.phone_number_quality_update import FIELD as QUALITY_FIELD
from monitor.webhooks.receiver import (
    DEDUPE_CAPACITY,
    FORWARDED_HEADER,
    REQUEST_RESULTS,
    Forwarder,
    WebhookConfig,
    WebhookMetrics,
    add_webhook_routes,
    create_webhook_metrics,
    startup_warnings,
)

__all__ = [
    "ACCOUNT_ALERT_TYPES",
    "ACCOUNT_UPDATE_EVENTS",
    "ACCOUNT_UPDATE_FIELD",
    "ALERTS_FIELD",
    "CAPABILITY_FIELD",
    "CAP_FIELDS",
    "DEDUPE_CAPACITY",
    "EVENT_OUTCOMES",
    "FORWARDED_HEADER",
    "HANDLERS",
    "KNOWN_FIELDS",
    "MAX_CAP",
    "NAME_DECISIONS",
    "NAME_FIELD",
    "OTHER_FIELD",
    "QUALITY_EVENTS",
    "QUALITY_FIELD",
    "REQUEST_RESULTS",
    "REVIEW_DECISIONS",
    "REVIEW_FIELD",
    "SIGNATURE_HEADER",
    "WABA_OBJECT",
    "Forwarder",
    "Handler",
    "Notification",
    "Outcome",
    "RejectedChange",
    "WebhookChange",
    "WebhookConfig",
    "WebhookMetrics",
    "WebhookPayloadError",
    "WebhookSink",
    "add_webhook_routes",
    "change_key",
    "create_webhook_metrics",
    "parse_body",
    "parse_cap",
    "parse_notification",
    "resolve_waba",
    "sign",
    "startup_warnings",
    "verify_signature",
]
