"""The shared rule of the re-poll fields: a known event value about a WABA asks for a re-poll.

Webhooks are hints for what the Graph API can read again: these fields schedule a (debounced)
poll of the WABA. The phone number named in a change (by display number: Meta sends no id
there) is looked up for the log line only; a failed lookup never stops the re-poll.
"""

from __future__ import annotations

import structlog

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text

log = structlog.get_logger("monitor.webhooks")


def number_details(change: WebhookChange, sink: WebhookSink, number: object,
                   details: dict[str, object]) -> None:
    """Add the display number and its phone-number id (when known) to ``details``."""
    phone_number_id = None
    if isinstance(number, str) and number:
        details["display_phone_number"] = log_text(number)
        try:
            phone_number_id = sink.phone_number_id_for(number)
        except Exception:
            log.exception(
                "webhook_number_lookup_failed", field=change.field, waba_id=change.waba_id
            )
    details["phone_number_id"] = phone_number_id


def repoll(
    change: WebhookChange,
    sink: WebhookSink,
    *,
    event: object,
    number: object,
    known: frozenset[str],
) -> Outcome:
    """Re-poll ``change.waba_id`` when ``event`` is one of ``known``; invalid when it is no text.

    ``event`` and ``number`` are whatever the payload held (either may be absent or garbage).
    """
    details: dict[str, object] = {"event_value": log_text(event)}
    if not isinstance(event, str) or not event:
        return Outcome.invalid("event value missing or not a string", **details)
    if event not in known:
        return Outcome.ignored("unknown event value", **details)
    number_details(change, sink, number, details)
    sink.request_repoll(waba_id=change.waba_id, reason=change.field)
    return Outcome.applied(**details)
