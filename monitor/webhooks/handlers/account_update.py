"""``account_update``: something happened to a WABA (restriction, ban, violation, partner,
offboarding). Only webhooks tell these facts, so they are staged durably (facts §2.3).

The WABA is where Meta puts it (facts §2.2): ``value.waba_info.waba_id`` on partner events,
whose ``entry.id`` is the partner's portfolio, else ``entry.id`` (resolved by the envelope).
Partner, offboarding and deletion events change which WABAs a business has, so they run the
owning business's discovery at once. Every event is kept, known or not: the enum is open.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.accounts import apply_account_update, text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time, remembered
from monitor.webhooks.handlers._repoll import number_details

FIELD = "account_update"
# The values Meta documents (H1 Apr 2026, H15, H21); others are kept the same way.
EVENTS = frozenset(
    {
        "ACCOUNT_DELETED",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
        "ACCOUNT_RESTRICTION",
        "ACCOUNT_VIOLATION",
        "AD_ACCOUNT_LINKED",
        "AUTH_INTL_PRICE_ELIGIBILITY_UPDATE",
        "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE",
        "DISABLED_UPDATE",
        "MM_LITE_TERMS_SIGNED",
        "PARTNER_ADDED",
        "PARTNER_APP_INSTALLED",
        "PARTNER_APP_UNINSTALLED",
        "PARTNER_CLIENT_CERTIFICATION_NEEDED",
        "PARTNER_CLIENT_CERTIFICATION_STATUS_UPDATE",
        "PARTNER_REMOVED",
        "VERIFIED_ACCOUNT",
        "VOLUME_BASED_PRICING_TIER_UPDATE",
    }
)
# Events after which a business may have gained or lost a WABA (or access to it).
DISCOVERY_EVENTS = frozenset(
    {
        "ACCOUNT_DELETED",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
        "PARTNER_ADDED",
        "PARTNER_APP_INSTALLED",
        "PARTNER_APP_UNINSTALLED",
        "PARTNER_REMOVED",
    }
)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Fold the event into the WABA's facts (staged), re-poll it, and run discovery after
    partner, offboarding and deletion events; a WABA not watched here only gets discovery."""
    value = change.value
    raw_event = value.get("event")
    event = text(raw_event)
    if not isinstance(raw_event, str) or event is None:
        return Outcome.invalid("event value missing or not a string",
                               event_value=log_text(raw_event))
    details: dict[str, object] = {"event_value": log_text(event),
                                  "known_event": event in EVENTS}
    number_details(change, sink, value.get("phone_number"), details)
    owner = sink.owner_of(change.waba_id)
    if event in DISCOVERY_EVENTS:
        info = value.get("waba_info")
        owner_business = text(info.get("owner_business_id")) if isinstance(info, Mapping) else None
        sink.request_discovery(waba_id=change.waba_id, owner_business_id=owner_business,
                               reason=f"{FIELD} {event}")
        details["discovery"] = True
    if owner is None:
        if event in DISCOVERY_EVENTS:
            return Outcome.applied(**details, watched=False)
        return Outcome.ignored("WABA not watched by this process", **details)
    facts = apply_account_update(sink.waba_facts(change.waba_id), value,
                                 event_time(change, sink))
    sink.stage_waba_facts(change.waba_id, remembered(facts, change))
    sink.request_repoll(waba_id=change.waba_id, reason=FIELD)
    return Outcome.applied(**details, business_id=owner)
