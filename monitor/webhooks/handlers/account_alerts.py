"""``account_alerts``: an alert about the business or one of its numbers (OBA, profile picture)."""

from __future__ import annotations

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange
from monitor.webhooks.handlers._repoll import repoll

FIELD = "account_alerts"
ALERT_TYPES = frozenset(
    {
        "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO",
        "OBA_APPROVED",
        "OBA_REJECTED",
        "PROFILE_PICTURE_LOST",
    }
)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Re-poll the WABA; the event is ``alert_info.alert_type``, the number an ``entity_id``
    whose ``entity_type`` is ``PHONE_NUMBER`` (other entities are WABA-level)."""
    value = change.value
    info = value.get("alert_info")
    event = info.get("alert_type") if isinstance(info, dict) else None
    number = value.get("entity_id") if value.get("entity_type") == "PHONE_NUMBER" else None
    return repoll(change, sink, event=event, number=number, known=ALERT_TYPES)
