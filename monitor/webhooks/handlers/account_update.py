"""``account_update``: something happened to the WABA (restriction, ban, partner, offboarding)."""

from __future__ import annotations

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange
from monitor.webhooks.handlers._repoll import repoll

FIELD = "account_update"
EVENTS = frozenset(
    {
        "ACCOUNT_DELETED",
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
        "PARTNER_CLIENT_CERTIFICATION_STATUS_UPDATE",
        "PARTNER_REMOVED",
        "VOLUME_BASED_PRICING_TIER_UPDATE",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
        "VERIFIED_ACCOUNT",
    }
)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Re-poll the WABA; a number, when the event is about one, is in ``phone_number``."""
    value = change.value
    return repoll(
        change,
        sink,
        event=value.get("event"),
        number=value.get("phone_number"),
        known=EVENTS,
    )
