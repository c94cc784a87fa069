"""``security``: a number's two-step verification PIN changed, or a reset was asked for.

Only a webhook tells this (facts §2.9), so each event is a durable fact of the WABA, kept per
number (``whatsapp_phone_number_security_event_timestamp_seconds``). A PIN reset request is
someone trying to turn two-step verification off: the alert that matters. The event enum is
open; Meta spells the completed reset ``PIN_REQUEST_SUCCESS`` and one SDK
``PIN_RESET_SUCCESS``: both are kept as they come. The number is named by display number
only; it is looked up among the numbers this process watches.
"""

from __future__ import annotations

from monitor.accounts import record_security_event
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time, remembered

FIELD = "security"
EVENTS = frozenset({"PIN_CHANGED", "PIN_RESET_REQUEST", "PIN_REQUEST_SUCCESS",
                    "PIN_RESET_SUCCESS"})
# After these the number's is_pin_enabled may have changed: poll it soon.
_PIN_STATE_CHANGES = frozenset({"PIN_CHANGED", "PIN_REQUEST_SUCCESS", "PIN_RESET_SUCCESS"})


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Stage the event's time for its number; a PIN change also asks for a re-poll."""
    value = change.value
    event = value.get("event")
    display = value.get("display_phone_number")
    details: dict[str, object] = {"event_value": log_text(event),
                                  "display_phone_number": log_text(display),
                                  # the Meta Business Suite user who asked for a reset
                                  "requester": log_text(value.get("requester"))}
    if not isinstance(event, str) or not event or len(event) > 64:
        return Outcome.invalid("event value missing or not a short string", **details)
    owner = sink.owner_of(change.waba_id)
    if owner is None:
        return Outcome.ignored("WABA not watched by this process", **details)
    number = sink.phone_number_id_for(str(display)) if isinstance(display, str | int) else None
    if number is None:
        return Outcome.ignored("display number not among the WABA's numbers", **details)
    facts = record_security_event(sink.waba_facts(change.waba_id), number, event,
                                  event_time(change, sink))
    sink.stage_waba_facts(change.waba_id, remembered(facts, change))
    if event in _PIN_STATE_CHANGES:
        sink.request_repoll(waba_id=change.waba_id, reason=FIELD)
    return Outcome.applied(**details, phone_number_id=number, known_event=event in EVENTS,
                           business_id=owner)
