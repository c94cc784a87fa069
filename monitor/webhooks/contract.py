"""What a field handler gets and gives back, and the one place its outcome is logged and counted.

A handler is a plain synchronous function ``(change, sink) -> Outcome``. Synchronous on
purpose:

* the dedupe check, the handler and remembering the change's key run in one event-loop
  step, so two concurrent deliveries of the same change (Meta retries) cannot both apply it;
* a handler is testable with a fake sink and no event loop.

Facts only a webhook tells (a WABA's enforcement and review facts, account alerts, learned
caps) must be durable before the webhook is answered 200, yet writing them is I/O. So handlers
*stage* them through the sink (``stage_*``); the receiver, once every change of a body has
been dispatched, awaits ``sink.commit()``, which writes what is staged and only then shows it
in the store; a failed commit makes the receiver answer 500, so Meta redelivers. Staged values
are what the sink's readers (``waba_facts``, ``already_applied``) return, so a later change of
the same body, or of a concurrent body, builds on them. A field that ever needs other I/O
should let its sink method schedule it (as ``request_repoll`` schedules a poll), not make the
handler async.

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

from monitor.accounts import AccountAlert, WabaFacts
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
# written by record_outcome itself
_RESERVED = frozenset({"field", "waba_id", "outcome", "entry_id"})
_NO_DETAILS: Mapping[str, object] = MappingProxyType({})


class WebhookSink(Protocol):
    """What the receiver and the handlers drive; implemented by ``monitor.sink``.

    Readers see staged values first, then the store. ``stage_*`` never does I/O: the values
    wait for ``commit``. Everything but ``commit`` is synchronous.
    """

    def now(self) -> float:
        """Unix time, for changes whose entry carried none."""
        ...

    def owner_of(self, waba_id: str) -> str | None:
        """The business a watched WABA belongs to; None when this process does not watch it."""
        ...

    def knows_business(self, business_id: str) -> bool:
        """Whether this process exports the business portfolio."""
        ...

    def waba_facts(self, waba_id: str) -> WabaFacts:
        """A watched WABA's webhook-only facts: staged, else stored, else empty."""
        ...

    def already_applied(self, waba_id: str, key: str) -> bool:
        """Whether the change ``key`` is among the WABA's applied keys (staged or stored):
        durable dedupe, since Meta redelivers for 7 days, across restarts."""
        ...

    def stage_waba_facts(self, waba_id: str, facts: WabaFacts) -> None: ...

    def stage_account_alert(self, alert: AccountAlert) -> None: ...

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None:
        """Stage the registration cap of the WABA's owning business (portfolio cap only)."""
        ...

    def set_messaging_limit(self, *, waba_id: str, limit: str, source_field: str) -> None:
        """The portfolio's shared messaging limit, told by webhook: shown at once (the next
        poll re-reads it, so it is not a durable fact)."""
        ...

    def request_repoll(self, *, waba_id: str, reason: str) -> None: ...

    def request_discovery(self, *, waba_id: str, owner_business_id: str | None,
                          reason: str) -> None:
        """Run discovery now for the business that watches ``waba_id``, else its owner, else
        every configured business that discovers."""
        ...

    def phone_number_id_for(self, display_phone_number: str) -> str | None: ...

    async def commit(self) -> None:
        """Write everything staged durably, then show it in the store; raises when the write
        failed (what was staged stays staged, for the next commit)."""
        ...


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
    entry = {} if change.entry == change.waba_id else {"entry_id": log_text(change.entry)}
    emit(
        "webhook_event",
        field=log_text(change.field),
        waba_id=log_text(change.waba_id),
        outcome=outcome.result,
        **entry,
        **outcome.details,
    )
    events.labels(field=label, outcome=outcome.result).inc()
