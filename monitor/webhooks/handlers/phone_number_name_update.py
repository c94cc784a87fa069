"""``phone_number_name_update``: Meta decided on a number's display name (facts §2.8).

The decision applies at once: it is a durable fact of the WABA (with the rejection reason,
which goes to the log and the status page) and shows as the number's ``new_name_status``
until the next poll reads Meta's own value, which the re-poll brings forward.
"""

from __future__ import annotations

from monitor.accounts import record_name_decision, text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import remembered

FIELD = "phone_number_name_update"
DECISIONS = frozenset({"APPROVED", "DEFERRED", "PENDING", "REJECTED"})


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Stage the decision for the number and re-poll the WABA."""
    value = change.value
    decision = value.get("decision")
    display = value.get("display_phone_number")
    reason = text(value.get("rejection_reason"))
    details: dict[str, object] = {"event_value": log_text(decision),
                                  "display_phone_number": log_text(display),
                                  "rejection_reason": log_text(reason)}
    if not isinstance(decision, str) or not decision:
        return Outcome.invalid("event value missing or not a string", **details)
    if decision not in DECISIONS:
        return Outcome.ignored("unknown event value", **details)
    if sink.owner_of(change.waba_id) is None:
        return Outcome.ignored("WABA not watched by this process", **details)
    number = None
    if isinstance(display, str | int):
        try:
            number = sink.phone_number_id_for(str(display))
        except Exception:  # a failed lookup never stops the re-poll
            number = None
    if number is not None:
        facts = record_name_decision(sink.waba_facts(change.waba_id), number, decision, reason)
        sink.stage_waba_facts(change.waba_id, remembered(facts, change))
    sink.request_repoll(waba_id=change.waba_id, reason=change.field)
    return Outcome.applied(**details, phone_number_id=number)
