"""The webhook fields the daemon acts on: one module per field, one row per field in ``HANDLERS``.

To handle a new field, add a module with ``FIELD`` and ``handle(change, sink) -> Outcome``
(see ``monitor.webhooks.contract``) and one row below. Everything else follows from the
table: the receiver dispatches by it, counts the field under its own ``field`` label (every
other field is ``other``, to bound label cardinality), and pre-sets that label's counters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from monitor.logs import scrub_payload
from monitor.webhooks.contract import Handler, Outcome, WebhookSink
from monitor.webhooks.envelope import WABA_OBJECT, WebhookChange, is_waba_id, log_text
from monitor.webhooks.handlers import (
    account_alerts,
    account_review_update,
    account_update,
    business_capability_update,
    message_template_quality_update,
    message_template_status_update,
    phone_number_name_update,
    phone_number_quality_update,
    security,
    template_category_update,
)

__all__ = ["HANDLERS", "KNOWN_FIELDS", "OTHER_FIELD", "dispatch", "metric_label"]

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        business_capability_update.FIELD: business_capability_update.handle,
        phone_number_quality_update.FIELD: phone_number_quality_update.handle,
        account_update.FIELD: account_update.handle,
        phone_number_name_update.FIELD: phone_number_name_update.handle,
        security.FIELD: security.handle,
        message_template_status_update.FIELD: message_template_status_update.handle,
        message_template_quality_update.FIELD: message_template_quality_update.handle,
        template_category_update.FIELD: template_category_update.handle,
        account_alerts.FIELD: account_alerts.handle,
        account_review_update.FIELD: account_review_update.handle,
    }
)
KNOWN_FIELDS: tuple[str, ...] = tuple(HANDLERS)
OTHER_FIELD = "other"  # metric label for every field we do not handle: bounds label cardinality


def metric_label(field: str) -> str:
    """The ``field`` label a change is counted under."""
    return field if field in HANDLERS else OTHER_FIELD


def dispatch(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Apply one change through its field's handler, after the checks common to every field.

    Another object or an unhandled field is ignored; a WABA id (resolved per facts §2.2) that
    is not one makes a handled field invalid. Exceptions from the handler or the sink
    propagate (the receiver counts them as ``error``).
    """
    if change.object != WABA_OBJECT:
        return Outcome.ignored(f"object {log_text(change.object)!r} is not {WABA_OBJECT}")
    handler = HANDLERS.get(change.field)
    if handler is None:
        return Outcome.ignored("field not handled")
    if not is_waba_id(change.waba_id):
        return Outcome.invalid("entry id is not a WABA id")
    # Values may become labels: a secret of ours in them is masked first.
    return handler(dataclasses.replace(change, value=scrub_payload(change.value)), sink)
