"""``account_alerts``: an alert about a portfolio or one of its numbers (facts §2.4): scaling
denied or deferred, more verification needed, OBA decisions, a lost profile picture.

``entity_id`` is an **id**: the portfolio's for ``BUSINESS``, the phone number's for
``PHONE_NUMBER`` (never a display number). The last alert of each type per entity is staged
as a durable fact of the WABA's owning business (for a WABA not watched here, of the portfolio
a BUSINESS alert names, when exported). Alert types and severities are open enums: unknown
ones are kept. ``alert_description`` is free text and is not kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.accounts import parse_account_alert
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time, remembered

FIELD = "account_alerts"
ALERT_TYPES = frozenset(
    {
        "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
        "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO",
        "OBA_APPROVED",
        "OBA_REJECTED",
        "PROFILE_PICTURE_LOST",
    }
)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Stage the alert for its business and re-poll the WABA (when watched here)."""
    value = change.value
    info = value.get("alert_info")
    kind = value.get("entity_type")
    entity = value.get("entity_id")
    details: dict[str, object] = {
        "event_value": log_text(info.get("alert_type")) if isinstance(info, Mapping) else None,
        "entity_type": log_text(kind),
        "entity_id": log_text(entity),
        "phone_number_id": log_text(entity) if kind == "PHONE_NUMBER" else None,
    }
    owner = sink.owner_of(change.waba_id)
    business = owner
    if business is None and kind == "BUSINESS" and isinstance(entity, str | int):
        business = str(entity) if sink.knows_business(str(entity)) else None
    alert = parse_account_alert(business or "", value, event_time(change, sink))
    if alert is None:
        return Outcome.invalid("alert_info.alert_type or entity_type missing", **details)
    details["known_event"] = alert.alert_type in ALERT_TYPES
    details["alert_severity"] = alert.alert_severity
    if alert.alert_status == "NONE":  # nothing active: it must not raise an alert for a day
        return Outcome.ignored("alert_status NONE", **details)
    if business is None:
        return Outcome.ignored("WABA not watched by this process", **details)
    sink.stage_account_alert(alert)
    if owner is not None:
        sink.stage_waba_facts(change.waba_id,
                              remembered(sink.waba_facts(change.waba_id), change))
        sink.request_repoll(waba_id=change.waba_id, reason=FIELD)
    return Outcome.applied(**details, business_id=business)
