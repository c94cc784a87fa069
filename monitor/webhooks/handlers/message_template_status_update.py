"""``message_template_status_update``: a template was paused, disabled, rejected, approved...

The event is the template's status when it is one (facts §4.2; FLAGGED, LOCKED, REINSTATED
and UNARCHIVED are events only). A pause's end is what Meta's ladder implies from
``other_info.title`` (FIRST_PAUSE 3 h, SECOND_PAUSE 6 h); an unpause clears it.
"""

from __future__ import annotations

from monitor.accounts import PAUSE_SECONDS, text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time
from monitor.webhooks.handlers._templates import stage, template_id

FIELD = "message_template_status_update"
EVENT_ONLY = frozenset({"FLAGGED", "LOCKED", "REINSTATED", "UNARCHIVED"})


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    value = change.value
    event = text(value.get("event"))
    ident = template_id(value)
    if event is None or ident is None:
        return Outcome.invalid("event or message_template_id missing",
                               event_value=log_text(value.get("event")))
    other = value.get("other_info")
    title = text(other.get("title")) if isinstance(other, dict) else None
    if event in EVENT_ONLY:
        return stage(change, sink, ident)
    paused_until = None
    if event == "PAUSED" and title in PAUSE_SECONDS:
        paused_until = event_time(change, sink) + PAUSE_SECONDS[title]
    # An unknown event is kept as the status too (enums are open).
    return stage(change, sink, ident, status=event, paused_until=paused_until)
