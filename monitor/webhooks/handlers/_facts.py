"""What the fact-bearing fields share: when a change happened, and remembering it was applied.

A WABA's facts keep the keys of the last changes applied to them (``WabaFacts.applied``), so
a redelivery after a restart is recognised (``WebhookSink.already_applied``): Meta retries for
up to 7 days, and counters such as violations must not count one event twice.
"""

from __future__ import annotations

from monitor.accounts import WabaFacts, timestamp
from monitor.webhooks.contract import WebhookSink
from monitor.webhooks.envelope import WebhookChange


def event_time(change: WebhookChange, sink: WebhookSink) -> float:
    """Meta's ``entry.time`` when it is a sane unix time (so a redelivery yields the same
    fact), else now."""
    at = timestamp(change.time) if change.time is not None else None
    return at if at is not None else sink.now()


def remembered(facts: WabaFacts, change: WebhookChange) -> WabaFacts:
    """``facts`` with the change's key added to the keys applied (if it has one)."""
    return facts.remember(change.key) if change.key is not None else facts
