"""What a field handler gets and gives back, and the one place its outcome is logged and counted.

A handler is a plain synchronous function ``(change, sink) -> Outcome``. Synchronous on
purpose:

* the receiver acknowledges a notification only once it has been applied, and the sink only
  records and debounces (durable facts go through the state writer, which batches them and
  writes off the event loop), so a handler has nothing to await;
* the dedupe check, the handler and remembering the change's key then run in one event-loop
  step, so two concurrent deliveries of the same change (Meta retries) cannot both apply it;
* a handler is testable with a fake sink and no event loop.

A field that ever needs I/O should let its sink method schedule it (as ``request_repoll``
schedules a poll), not make the handler async.

Handlers never log their result themselves: they return an ``Outcome`` (applied, ignored or
invalid, with the fields worth logging) and the receiver passes it to ``record_outcome``, which
writes the ``webhook_event`` line and increments ``whatsapp_monitor_webhook_events_total``
the same way for every field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol, get_args

import structlog
from prometheus_client import Counter

from monitor.webhooks.envelope import WebhookChange, log_text

__all__ = [
    "EVENT_OUTCOMES",
    "EventOutcome",
    "Handler",
    "Outcome",
    "WebhookSink",
    "record_outcome",
]

log = structlog.get_logger("monitor.webhooks")

EventOutcome = Literal["applied", "ignored", "duplicate", "invalid", "error"]
EVENT_OUTCOMES: tuple[str, ...] = get_args(EventOutcome)
_RESERVED = frozenset({"field", "waba_id", "outcome"})  # written by record_outcome itself
_NO_DETAILS: Mapping[str, object] = MappingProxyType({})


class WebhookSink(Protocol):
    """What the receiver drives; implemented by the daemon."""

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None: ...

    def request_repoll(self, *, waba_id: str, reason: str) -> None: ...

    def phone_number_id_for(self, display_phone_number: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one change: the metric's ``outcome`` label and the fields to log.

    Handlers return ``applied``, ``ignored`` or ``invalid``; the receiver alone decides
    ``duplicate`` (seen before) and ``error`` (the handler or the sink raised).
    """

    result: EventOutcome
    details: Mapping[str, object] = field(default_factory=lambda: _NO_DETAILS)

    def __post_init__(self) -> None:
        clash = _RESERVED & set(self.details)
        if clash:
            raise ValueError(f"outcome details may not set {sorted(clash)}")

    @classmethod
    def applied(cls, **details: object) -> Outcome:
        return cls("applied", MappingProxyType(details))

    @classmethod
    def ignored(cls, reason: str, **details: object) -> Outcome:
        return cls("ignored", MappingProxyType({"reason": reason, **details}))

    @classmethod
    def invalid(cls, reason: str, **details: object) -> Outcome:
        return cls("invalid", MappingProxyType({"reason": reason, **details}))


DUPLICATE = Outcome("duplicate")
ERROR = Outcome("error")

# One handler per webhook field: act on the sink, say what happened. See the module docstring.
Handler = Callable[[WebhookChange, WebhookSink], Outcome]


def record_outcome(events: Counter, label: str, change: WebhookChange, outcome: Outcome) -> None:
    """Log ``webhook_event`` and count it under ``field=label``: the only place either happens.

    ``invalid`` logs a warning, ``error`` an error with the traceback (so record it from the
    ``except`` block that caught the failure), everything else info.
    """
    if outcome.result == "error":
        emit = log.exception
    elif outcome.result == "invalid":
        emit = log.warning
    else:
        emit = log.info
    emit(
        "webhook_event",
        field=log_text(change.field),
        waba_id=log_text(change.waba_id),
        outcome=outcome.result,
        **outcome.details,
    )
    events.labels(field=label, outcome=outcome.result).inc()
