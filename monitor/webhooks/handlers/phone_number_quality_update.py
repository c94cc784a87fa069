"""``phone_number_quality_update``: a number's **throughput** changed (facts §2.7).

The name is historical. The current events are ONBOARDING and THROUGHPUT_UPGRADE, and they
carry the owning portfolio's shared messaging limit in ``max_daily_conversations_per_business``
(or, in older payloads, ``current_limit``), which is shown at once. The pre-October-2025 events
FLAGGED, UNFLAGGED, UPGRADE and DOWNGRADE describe a per-number model Meta no longer has (no
Flagged state, no quality-driven downgrade): they are still accepted and re-poll the WABA, but
their limit values are not taken as the portfolio's, and nothing treats them as a quality
signal.
"""

from __future__ import annotations

from monitor.accounts import text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._repoll import number_details

FIELD = "phone_number_quality_update"
CURRENT_EVENTS = frozenset({"ONBOARDING", "THROUGHPUT_UPGRADE"})
LEGACY_EVENTS = frozenset({"DOWNGRADE", "FLAGGED", "UNFLAGGED", "UPGRADE"})
EVENTS = CURRENT_EVENTS | LEGACY_EVENTS
LIMIT_FIELDS = ("max_daily_conversations_per_business", "current_limit")
NOT_A_LIMIT = frozenset({"TIER_NOT_SET"})  # the number has not sent yet: says nothing


def portfolio_limit(value: object) -> str | None:
    """A ``TIER_*`` string from the payload (these are strings here, unlike §2.6)."""
    tier = text(value) if isinstance(value, str) else None
    return None if tier is None or tier in NOT_A_LIMIT else tier


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Re-poll the WABA; a current event also sets the portfolio limit it carries."""
    value = change.value
    event = value.get("event")
    details: dict[str, object] = {"event_value": log_text(event)}
    if not isinstance(event, str) or not event:
        return Outcome.invalid("event value missing or not a string", **details)
    limit = None
    source = None
    if event not in LEGACY_EVENTS:
        for key in LIMIT_FIELDS:
            limit = portfolio_limit(value.get(key))
            if limit is not None:
                source = key
                break
    if event not in EVENTS and limit is None:
        return Outcome.ignored("unknown event value", **details)
    number_details(change, sink, value.get("display_phone_number"), details)
    if limit is not None and source is not None and sink.owner_of(change.waba_id) is not None:
        sink.set_messaging_limit(waba_id=change.waba_id, limit=limit, source_field=source)
        details["messaging_limit"] = limit
    sink.request_repoll(waba_id=change.waba_id, reason=FIELD)
    return Outcome.applied(**details, legacy_event=event in LEGACY_EVENTS)
