"""``message_template_quality_update``: a template's quality score changed (facts §2.11)."""

from __future__ import annotations

from monitor.accounts import text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._templates import stage, template_id

FIELD = "message_template_quality_update"


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    value = change.value
    score = text(value.get("new_quality_score"))
    ident = template_id(value)
    if score is None or ident is None:
        return Outcome.invalid("new_quality_score or message_template_id missing",
                               event_value=log_text(value.get("new_quality_score")))
    return stage(change, sink, ident, quality=score)
