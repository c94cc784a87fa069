"""``account_review_update``: Meta's review decision on a WABA (facts §2.5), applied at once.

The WABA node's ``account_review_status`` is read only at the discovery cadence, so the
decision is staged as a durable WABA fact; the newer of the two is what counts
(``monitor.accounts.review_status``). The decision enum is open (APPROVED, REJECTED,
PENDING, DEFERRED today); only APPROVED means usable.
"""

from __future__ import annotations

from monitor.accounts import apply_review
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time, remembered

FIELD = "account_review_update"
DECISIONS = frozenset({"APPROVED", "DEFERRED", "PENDING", "REJECTED"})


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Stage the decision as the WABA's review status, unless an older one than known."""
    decision = change.value.get("decision")
    details: dict[str, object] = {"event_value": log_text(decision)}
    if not isinstance(decision, str):
        return Outcome.invalid("decision missing or not a string", **details)
    owner = sink.owner_of(change.waba_id)
    if owner is None:
        return Outcome.ignored("WABA not watched by this process", **details)
    facts = sink.waba_facts(change.waba_id)
    at = event_time(change, sink)
    if facts.review_at is not None and at < facts.review_at:
        return Outcome.ignored("older than the review decision already known", **details)
    reviewed = apply_review(facts, change.value, at)
    if reviewed is None:
        return Outcome.invalid("decision is empty", **details)
    sink.stage_waba_facts(change.waba_id, remembered(reviewed, change))
    return Outcome.applied(**details, known_event=decision in DECISIONS, business_id=owner)
