"""Builders for the account-level webhook ``value`` objects, shaped as in the facts sheet §2.

Pure functions over plain data, one per Meta payload, so a test can pin the exact keys and
nesting of each without a running World. ``entry[].id`` is chosen by the caller (the WABA
for most fields; the partner's portfolio for the PARTNER_* events, facts §2.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

ACCOUNT_UPDATE_FIELD = "account_update"
REVIEW_FIELD = "account_review_update"
ALERTS_FIELD = "account_alerts"
CAPABILITY_FIELD = "business_capability_update"
QUALITY_FIELD = "phone_number_quality_update"
NAME_FIELD = "phone_number_name_update"

PARTNER_EVENTS = frozenset(
    {"PARTNER_ADDED", "PARTNER_REMOVED", "PARTNER_APP_INSTALLED", "PARTNER_APP_UNINSTALLED"}
)
DEFAULT_RESTRICTION = "RESTRICTED_BIZ_INITIATED_MESSAGING"
DEFAULT_LIFT_VIOLATION = "DIRECT_SEND_UTILITY_TEMPLATE_ABUSE_UNBAN"
ExpirationFormat = Literal["unix", "string", "iso"]
EXPIRATION_FORMATS: tuple[str, ...] = ("unix", "string", "iso")


def expiration_value(when: float, fmt: str = "unix") -> int | str:
    """``restriction_info[].expiration``: a Unix int (H1), a digit string (H23) or ISO (M7)."""
    seconds = int(when)
    if fmt == "string":
        return str(seconds)
    if fmt == "iso":
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return seconds


def ban_date_text(when: float) -> str:
    """``waba_ban_date`` is display text such as ``April 17, 2025`` (no zero padding)."""
    day = dt.datetime.fromtimestamp(int(when), dt.UTC)
    return f"{day:%B} {day.day}, {day.year}"


def restriction_entry(
    restriction_type: str, expiration: int | str, remediation: str | None = None
) -> dict[str, Any]:
    """One ``restriction_info[]`` element; ``remediation`` only when Meta offers steps."""
    out: dict[str, Any] = {"restriction_type": restriction_type, "expiration": expiration}
    if remediation is not None:
        out["remediation"] = remediation
    return out


def account_restriction(
    restriction_info: Sequence[dict[str, Any]] | None, violation_type: str | None = None
) -> dict[str, Any]:
    """``ACCOUNT_RESTRICTION``; ``restriction_info=None`` gives the Direct Send variant (H23)."""
    value: dict[str, Any] = {"event": "ACCOUNT_RESTRICTION"}
    if violation_type is not None:
        value["violation_info"] = {"violation_type": violation_type}
    if restriction_info is not None:
        value["restriction_info"] = [dict(r) for r in restriction_info]
    return value


def account_violation(violation_type: str) -> dict[str, Any]:
    return {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": violation_type}}


def disabled_update(ban_state: str, ban_date: str) -> dict[str, Any]:
    """``DISABLED_UPDATE``: SCHEDULE_FOR_DISABLE, DISABLE or REINSTATE (open enum)."""
    return {
        "event": "DISABLED_UPDATE",
        "ban_info": {"waba_ban_state": ban_state, "waba_ban_date": ban_date},
    }


def bare_event(event: str) -> dict[str, Any]:
    """Events that carry only ``event``: ACCOUNT_DELETED, ACCOUNT_OFFBOARDED/RECONNECTED."""
    return {"event": event}


def partner_event(
    event: str,
    *,
    waba_id: str,
    owner_business_id: str,
    partner_app_id: str,
    partner_business_id: str,
    solution_id: str | None = None,
) -> dict[str, Any]:
    """PARTNER_*: the WABA and its owner are in ``waba_info`` (entry.id is the partner).

    ``solution_*`` keys are omitted on PARTNER_APP_UNINSTALLED, as in H1.
    """
    info: dict[str, Any] = {
        "waba_id": waba_id,
        "owner_business_id": owner_business_id,
        "partner_app_id": partner_app_id,
    }
    if event != "PARTNER_APP_UNINSTALLED":
        if solution_id is not None:
            info["solution_id"] = solution_id
        info["solution_partner_business_ids"] = [partner_business_id]
    return {"event": event, "waba_info": info}


def account_review_update(decision: str) -> dict[str, Any]:
    return {"decision": decision}


def account_alert(
    entity_type: str,
    entity_id: str,
    *,
    alert_type: str,
    alert_severity: str = "WARNING",
    alert_status: str = "ACTIVE",
    alert_description: str = "",
) -> dict[str, Any]:
    """``account_alerts``: ``alert_*`` nested under ``alert_info`` (H2; M5's flat form is wrong)."""
    return {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "alert_info": {
            "alert_severity": alert_severity,
            "alert_status": alert_status,
            "alert_type": alert_type,
            "alert_description": alert_description,
        },
    }


_TIER_INTS = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10000,
    "TIER_100K": 100000,
    "TIER_UNLIMITED": -1,
}


def tier_as_int(tier: str) -> int | str:
    """``TIER_2K`` → 2000, ``TIER_UNLIMITED`` → -1; anything else is returned unchanged."""
    return _TIER_INTS.get(tier, tier)


def tier_from_value(value: object) -> str | None:
    """The tier a capability value names: a ``TIER_*`` string as is, a known integer mapped
    back (-1 → TIER_UNLIMITED); None for anything else."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return next((t for t, n in _TIER_INTS.items() if n == value), None)
    return None


def capability_update(
    *,
    max_daily_conversations_per_business: int | str | None = None,
    max_phone_numbers_per_business: int | None = None,
    max_phone_numbers_per_waba: int | None = None,
) -> dict[str, Any]:
    """``business_capability_update``; each fact is its own key and only present when given."""
    value: dict[str, Any] = {}
    if max_daily_conversations_per_business is not None:
        value["max_daily_conversations_per_business"] = max_daily_conversations_per_business
    if max_phone_numbers_per_business is not None:
        value["max_phone_numbers_per_business"] = max_phone_numbers_per_business
    if max_phone_numbers_per_waba is not None:
        value["max_phone_numbers_per_waba"] = max_phone_numbers_per_waba
    return value


def throughput_event(
    display_phone_number: str,
    event: str,
    *,
    portfolio_limit: str | None,
    current_limit: str | None = None,
    old_limit: str | None = None,
) -> dict[str, Any]:
    """``phone_number_quality_update`` in its current meaning: ONBOARDING / THROUGHPUT_UPGRADE.

    ``max_daily_conversations_per_business`` carries the portfolio limit; ``current_limit``
    (and ``old_limit`` on limit changes) are still sent as Meta's references show (H5).
    """
    value: dict[str, Any] = {"display_phone_number": display_phone_number, "event": event}
    if old_limit is not None:
        value["old_limit"] = old_limit
    if current_limit is not None:
        value["current_limit"] = current_limit
    if portfolio_limit is not None:
        value["max_daily_conversations_per_business"] = portfolio_limit
    return value
