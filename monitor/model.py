"""Immutable value objects for what a poll learns, and parsing of Graph payloads into them.

Every enum the Graph API returns is treated as open: unknown strings are kept verbatim, so
that the exporter can show them rather than drop them. A field the API did not return stays
``None`` and is left out of the metrics, never turned into a zero.
"""

from __future__ import annotations

import hmac
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from monitor.graph.usage import BucUsage

# Known values of each enum, as the facts sheet lists them. Used for StateSets only: any
# other value is still accepted and exported as observed.
KNOWN_STATUS = (
    "PENDING",
    "DELETED",
    "MIGRATED",
    "BANNED",
    "RESTRICTED",
    "RATE_LIMITED",
    "FLAGGED",
    "CONNECTED",
    "DISCONNECTED",
    "UNKNOWN",
    "UNVERIFIED",
)
KNOWN_QUALITY_RATING = ("GREEN", "YELLOW", "RED", "NA", "UNKNOWN")
KNOWN_NAME_STATUS = (
    "APPROVED",
    "AVAILABLE_WITHOUT_REVIEW",
    "DECLINED",
    "EXPIRED",
    "PENDING_REVIEW",
    "NONE",
    "NON_EXISTS",
)
KNOWN_THROUGHPUT_LEVEL = ("STANDARD", "HIGH", "NOT_APPLICABLE")
KNOWN_CODE_VERIFICATION_STATUS = ("NOT_VERIFIED", "VERIFIED", "EXPIRED", "UNVERIFIED")
KNOWN_HEALTH = ("AVAILABLE", "LIMITED", "BLOCKED")
KNOWN_MESSAGING_LIMIT = (
    "TIER_50",
    "TIER_250",
    "TIER_1K",
    "TIER_2K",
    "TIER_10K",
    "TIER_100K",
    "TIER_UNLIMITED",
    "UNTIERED",
    "TIER_NOT_SET",
)
# Business-initiated conversations per 24 h for each tier; unlimited is +Inf so that a drop
# from it is still a decrease.
MESSAGING_LIMIT_PER_DAY: Mapping[str, float] = {
    "TIER_50": 50.0,
    "TIER_250": 250.0,
    "TIER_1K": 1_000.0,
    "TIER_2K": 2_000.0,
    "TIER_10K": 10_000.0,
    "TIER_100K": 100_000.0,
    "TIER_UNLIMITED": float("inf"),
}

# Fields requested from the list edge. Order is stable so request URLs are stable.
PHONE_NUMBER_FIELDS: tuple[str, ...] = (
    "id",
    "display_phone_number",
    "verified_name",
    "status",
    "quality_rating",
    "name_status",
    "throughput",
    "code_verification_status",
    "platform_type",
    "account_mode",
    "is_official_business_account",
    "whatsapp_business_manager_messaging_limit",
    "messaging_limit_tier",
    "health_status",
    "is_pin_enabled",
    "last_onboarded_time",
    "new_name_status",
    "webhook_configuration",
)


def api_major(version: str) -> int:
    """24 for "v24.0"; 0 when unreadable (then version-gated fields are left out)."""
    digits = version.lstrip("vV").split(".", 1)[0]
    return int(digits) if digits.isdigit() else 0


def phone_number_fields(api_version: str) -> tuple[str, ...]:
    """The list fields for an API version: from v24.0 the portfolio limit is read from
    ``whatsapp_business_manager_messaging_limit`` alone; the deprecated per-number
    ``messaging_limit_tier`` (legacy values below v24) is never mixed in."""
    major = api_major(api_version)
    drop = "messaging_limit_tier" if major >= 24 else "whatsapp_business_manager_messaging_limit"
    return tuple(f for f in PHONE_NUMBER_FIELDS if f != drop)


class PayloadError(ValueError):
    """A Graph response that does not have the shape the API documents."""


@dataclass(frozen=True, slots=True)
class HealthError:
    """One error of one ``health_status`` entity (business, WABA, number, app) that cannot
    send freely: what stops messaging and who must act. Codes are kept as strings."""

    entity_type: str
    entity_id: str
    error_code: str
    can_send_message: str  # of that entity: LIMITED, BLOCKED or an unknown value


def digits(text: str) -> str:
    """The digits of a display number ("+1 555-0100" -> "15550100"): how webhooks, the
    store's index and the status page's filter compare numbers."""
    return "".join(ch for ch in text if ch.isdigit())


def parse_health_errors(raw: object) -> tuple[HealthError, ...]:
    """Errors of every entity of a ``health_status`` object that is not AVAILABLE.

    Lenient by design: this is secondary information, so a shape it does not know yields
    nothing rather than failing the poll. An entity limited without a listed error still
    counts, with error code ``unknown``.
    """
    if not isinstance(raw, Mapping):
        return ()
    entities = raw.get("entities")
    if not isinstance(entities, list):
        return ()
    out: list[HealthError] = []
    for entity in entities:
        if not isinstance(entity, Mapping):
            continue
        state = entity.get("can_send_message")
        if not isinstance(state, str) or state == "AVAILABLE":
            continue
        kind = entity.get("entity_type")
        ident = entity.get("id")
        kind_s = kind if isinstance(kind, str) else "UNKNOWN"
        ident_s = str(ident) if isinstance(ident, str | int) and not isinstance(
            ident, bool) else ""
        codes = [str(e.get("error_code")) for e in entity.get("errors") or ()
                 if isinstance(e, Mapping) and isinstance(e.get("error_code"), str | int)
                 and not isinstance(e.get("error_code"), bool)]
        for code in dict.fromkeys(codes or ["unknown"]):
            out.append(HealthError(kind_s, ident_s, code[:32], state))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    status: str | None = None
    quality_rating: str | None = None
    name_status: str | None = None
    throughput_level: str | None = None
    code_verification_status: str | None = None
    platform_type: str | None = None
    account_mode: str | None = None
    is_official_business_account: bool | None = None
    messaging_limit: str | None = None
    health_status: str | None = None
    health_errors: tuple[HealthError, ...] = ()
    pin_enabled: bool | None = None  # is_pin_enabled: two-step verification on
    last_onboarded: float | None = None  # last_onboarded_time, Unix seconds
    new_name_status: str | None = None  # review of a requested new display name
    # webhook_configuration, never kept as URLs (a query string may carry credentials): the
    # levels that override the app's URL, whether the effective URL is the expected one
    # (webhooks.expected_callback_url; None when not configured or not known), and the
    # effective URL's scheme and host, for the log and the status page.
    webhook_overrides: tuple[str, ...] = ()
    callback_matches: bool | None = None
    callback_origin: str | None = None

    @property
    def registered(self) -> bool | None:
        """Best known proxy for "counts toward the cap": registered with Cloud or On-Prem API.

        ``platform_type`` NOT_APPLICABLE means "not registered with Cloud API or On-Premises
        API"; when the field is absent we do not know, so ``None``.
        """
        if self.platform_type is None:
            return None
        return self.platform_type != "NOT_APPLICABLE"


@dataclass(frozen=True, slots=True)
class WabaState:
    """What the exporter knows about one WABA: its numbers from the last good poll, plus freshness.

    After a failed poll the numbers of the last good poll are kept, ``up`` is False and
    ``last_success`` is unchanged.
    """

    business_id: str
    waba_id: str
    numbers: tuple[PhoneNumber, ...] = ()
    up: bool = False
    polled: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    last_duration: float | None = None
    last_requests: int = 0
    polls: int = 0
    failures: int = 0
    # phone_number_id -> when its status last changed (first seen, for a new number)
    status_changed_at: Mapping[str, float] = field(default_factory=dict)
    # Graph API budget of this WABA (see budget.py)
    usage_ratio: float | None = None  # last X-Business-Use-Case-Usage reading for it
    allowance_per_hour: int | None = None
    interval: float | None = None  # seconds between its polls, as paced
    slowdown: float = 1.0
    usage: tuple[BucUsage, ...] = ()  # last X-Business-Use-Case-Usage entries keyed by it
    # the configured business that lists or discovered it (restored state is trusted only
    # while that business is still configured; see fleet.py); None in older state files
    via: str | None = None


@dataclass(frozen=True, slots=True)
class BusinessState:
    """A business portfolio: the unit that owns WABAs and the registration cap."""

    business_id: str
    configured_cap: int | None = None  # None means "auto"
    learned_cap: int | None = None  # from a business_capability_update webhook
    verified: bool | None = None  # verification_status, when the token may read it
    verification_status: str | None = None  # as read (lower case), open enum
    # The portfolio's shared messaging limit (TIER_*), where it was last read or told:
    # "business" (its node), "waba" (a WABA node, when the business node is refused) or
    # "webhook" (business_capability_update / phone_number_quality_update); the latest wins.
    messaging_limit: str | None = None
    messaging_limit_source: str | None = None
    messaging_limit_at: float | None = None
    identity_check_required: bool = False  # businesses[].require_identity_key_check


@dataclass(frozen=True, slots=True)
class LearnedCap:
    """A registration cap Meta announced by webhook; kept durably, since it is told once."""

    business_id: str
    cap: int
    source_field: str
    learned_at: float


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"field {key!r} should be a string, got {type(value).__name__}")
    return str(value)


def _opt_bool(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise PayloadError(f"field {key!r} should be a boolean, got {type(value).__name__}")


def _nested_str(raw: Mapping[str, Any], key: str, inner: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):  # tolerate a flattened form
        return value
    if not isinstance(value, Mapping):
        raise PayloadError(f"field {key!r} should be an object, got {type(value).__name__}")
    return _opt_str(value, inner)


OVERRIDE_LEVELS = ("phone_number", "whatsapp_business_account")


def parse_onboarded_time(value: object) -> float | None:
    """``last_onboarded_time`` (``2023-08-22T19:05:53+0000``), read leniently: None when the
    value cannot be read, never an error. (``fromisoformat`` takes Meta's ``+0000`` and is
    some thirty times faster than ``strptime``: this runs for every number of every poll.)"""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _routing(raw: object, expected: str | None) -> tuple[tuple[str, ...], bool | None,
                                                          str | None]:
    """Override levels, whether the effective URL (number override, else WABA override, else
    the app's) is the expected one, and its scheme://host; the URL itself is not kept."""
    if not isinstance(raw, Mapping):
        return (), None, None
    urls = {k: v for k in (*OVERRIDE_LEVELS, "application")
            if isinstance(v := raw.get(k), str) and v}
    effective = next((urls[k] for k in (*OVERRIDE_LEVELS, "application") if k in urls), None)
    if effective is None:
        return tuple(k for k in OVERRIDE_LEVELS if k in urls), None, None
    parts = urlsplit(effective)
    # One string for a fleet's numbers (they share an app, so a callback origin): a copy
    # per number was some 0.8 MB at 10,000 numbers.
    origin = sys.intern(f"{parts.scheme}://{parts.hostname}") \
        if parts.scheme and parts.hostname else None
    matches = None if expected is None else hmac.compare_digest(
        effective.strip().encode(), expected.strip().encode())
    return tuple(k for k in OVERRIDE_LEVELS if k in urls), matches, origin


def parse_phone_number(raw: object, *, expected_callback: str | None = None) -> PhoneNumber:
    """Parse one phone-number node. Raises PayloadError on a shape the API never sends."""
    if not isinstance(raw, Mapping):
        raise PayloadError(f"phone number entry should be an object, got {type(raw).__name__}")
    number_id = _opt_str(raw, "id")
    if not number_id:
        raise PayloadError("phone number entry has no id")
    limit = _opt_str(raw, "whatsapp_business_manager_messaging_limit") or _opt_str(
        raw, "messaging_limit_tier"
    )
    overrides, matches, origin = _routing(raw.get("webhook_configuration"), expected_callback)
    return PhoneNumber(
        id=number_id,
        display_phone_number=_opt_str(raw, "display_phone_number"),
        verified_name=_opt_str(raw, "verified_name"),
        status=_opt_str(raw, "status"),
        quality_rating=_opt_str(raw, "quality_rating"),
        name_status=_opt_str(raw, "name_status"),
        throughput_level=_nested_str(raw, "throughput", "level"),
        code_verification_status=_opt_str(raw, "code_verification_status"),
        platform_type=_opt_str(raw, "platform_type") or _opt_str(raw, "host_platform"),
        account_mode=_opt_str(raw, "account_mode"),
        is_official_business_account=_opt_bool(raw, "is_official_business_account"),
        messaging_limit=limit,
        health_status=_nested_str(raw, "health_status", "can_send_message"),
        health_errors=parse_health_errors(raw.get("health_status")),
        pin_enabled=_opt_bool(raw, "is_pin_enabled"),
        last_onboarded=parse_onboarded_time(raw.get("last_onboarded_time")),
        new_name_status=_opt_str(raw, "new_name_status"),
        webhook_overrides=overrides,
        callback_matches=matches,
        callback_origin=origin,
    )


def missing_fields(raw: Mapping[str, Any], wanted: tuple[str, ...]) -> frozenset[str]:
    """Which of ``wanted`` a node's payload did not carry (``id`` aside)."""
    return frozenset(f for f in wanted if f != "id" and raw.get(f) is None)


# --- what changed between two polls ----------------------------------------------------------
TRACKED_FIELDS = (
    "status",
    "quality_rating",
    "name_status",
    "throughput_level",
    "health_status",
    "messaging_limit",
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One field of one number or message template that changed (or one that appeared or
    went): what the history keeps, the state file persists and the API returns. A template's
    change has ``template_id`` set and an empty ``phone_number_id``."""

    at: float
    business_id: str
    waba_id: str
    phone_number_id: str
    field: str
    old: str | None
    new: str | None
    template_id: str = ""
    template_name: str | None = None


def transitions(old: WabaState, new: WabaState, at: float) -> list[Transition]:
    """Field changes between two successful polls of one WABA (numbers new or gone included)."""
    if not old.polled or not new.up or old.numbers is new.numbers:
        return []  # the same numbers: an unchanged listing is not parsed again
    before = {n.id: n for n in old.numbers}
    out: list[Transition] = []
    for number in new.numbers:
        prev = before.pop(number.id, None)
        for name in TRACKED_FIELDS:
            old_value = getattr(prev, name) if prev is not None else None
            new_value = getattr(number, name)
            if prev is None and name != "status":
                continue
            if old_value != new_value:
                out.append(Transition(at, new.business_id, new.waba_id, number.id, name,
                                      old_value, new_value))
    for gone in before.values():
        out.append(Transition(at, new.business_id, new.waba_id, gone.id, "status",
                              gone.status, None))
    return out
