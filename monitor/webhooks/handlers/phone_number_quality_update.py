"""``phone_number_quality_update``: a number's quality rating or messaging limit changed."""

from __future__ import annotations

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange
from monitor.webhooks.handlers._repoll import repoll

FIELD = "phone_number_quality_update"
# Current and legacy values (graph-api-facts §6): partners still send the legacy ones.
EVENTS = frozenset(
    {"DOWNGRADE", "FLAGGED", "ONBOARDING", "THROUGHPUT_UPGRADE", "UNFLAGGED", "UPGRADE"}
)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Re-poll the WABA; the number is named by its display phone number."""
    value = change.value
    return repoll(
        change,
        sink,
        event=value.get("event"),
        number=value.get("display_phone_number"),
        known=EVENTS,
    )
