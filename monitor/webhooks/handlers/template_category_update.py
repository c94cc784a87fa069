"""``template_category_update``: a template's category will change, or has (facts §2.12).

Two shapes share the field: the advance notice (``correct_category`` is what it becomes,
``new_category`` the current one, ``category_update_timestamp`` when) and the completed change
(``new_category`` the new one). Which keys arrived decides; every key is optional.
"""

from __future__ import annotations

from monitor.accounts import CATEGORY_NOTICE_SECONDS, text, timestamp
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange
from monitor.webhooks.handlers._facts import event_time
from monitor.webhooks.handlers._templates import stage, template_id

FIELD = "template_category_update"


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    value = change.value
    ident = template_id(value)
    coming = text(value.get("correct_category"))
    new = text(value.get("new_category"))
    if ident is None or (coming is None and new is None):
        return Outcome.invalid("message_template_id or the categories missing")
    if coming is not None:  # advance notice
        when = timestamp(value.get("category_update_timestamp"))
        if when is None:
            when = event_time(change, sink) + CATEGORY_NOTICE_SECONDS
        return stage(change, sink, ident, new_category=coming, category_change_at=when,
                     category=new)
    return stage(change, sink, ident, category=new, new_category=None, category_change_at=None)
