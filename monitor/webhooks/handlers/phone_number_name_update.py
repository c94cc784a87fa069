"""``phone_number_name_update``: Meta decided on a number's display name."""

from __future__ import annotations

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange
from monitor.webhooks.handlers._repoll import repoll

FIELD = "phone_number_name_update"
DECISIONS = frozenset({"APPROVED", "DEFERRED", "PENDING", "REJECTED"})


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Re-poll the WABA; the event value is the ``decision``."""
    value = change.value
    return repoll(
        change,
        sink,
        event=value.get("decision"),
        number=value.get("display_phone_number"),
        known=DECISIONS,
    )
