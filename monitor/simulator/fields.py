"""What fields each simulated Graph node type knows, and parsing of the ``fields=`` parameter.

Graph fails a whole request when one requested field is unknown, so the simulator needs the
exact known-field set per node type; the sets here follow the facts sheet (and are a superset
of what the exporter requests, which a test checks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHONE_NUMBER_NODE = "WhatsAppBusinessPhoneNumber"
WABA_NODE = "WhatsAppBusinessAccount"
BUSINESS_NODE = "Business"

# Phone-number fields whose value is a plain string (enums are open, so any string).
NUMBER_STRING_FIELDS: frozenset[str] = frozenset(
    {
        "display_phone_number",
        "verified_name",
        "status",
        "quality_rating",
        "name_status",
        "code_verification_status",
        "platform_type",
        "account_mode",
        "whatsapp_business_manager_messaging_limit",
        "messaging_limit_tier",
        "new_name_status",
        "new_display_name",
        "last_onboarded_time",
        "search_visibility",
        "username",
        "certificate",
        "new_certificate",
        "eligibility_for_api_business_global_search",
        "country_code",
        "country_dial_code",
        "unified_cert_status",
    }
)
NUMBER_BOOL_FIELDS: frozenset[str] = frozenset(
    {"is_official_business_account", "is_on_biz_app", "is_pin_enabled", "is_preverified_number"}
)
# Fields rendered as a one-key object; the scenario may give the bare inner value.
NUMBER_WRAPPED_FIELDS: dict[str, str] = {
    "throughput": "level",
    "quality_score": "score",
    "health_status": "can_send_message",
}
# Free-form objects, returned verbatim.
NUMBER_OBJECT_FIELDS: frozenset[str] = frozenset(
    {"conversational_automation", "webhook_configuration"}
)

# ``host_platform`` is an alias the live API accepts for ``platform_type``; it is computed.
NUMBER_ALIASES: dict[str, str] = {"host_platform": "platform_type"}

NUMBER_SETTABLE_FIELDS: frozenset[str] = (
    NUMBER_STRING_FIELDS
    | NUMBER_BOOL_FIELDS
    | frozenset(NUMBER_WRAPPED_FIELDS)
    | NUMBER_OBJECT_FIELDS
)
NUMBER_KNOWN_FIELDS: frozenset[str] = (
    NUMBER_SETTABLE_FIELDS | frozenset(NUMBER_ALIASES) | frozenset({"id"})
)
NUMBER_DEFAULT_FIELDS: tuple[str, ...] = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
)

# WABA fields a scenario may set directly; the rest are computed from ownership.
WABA_SETTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "currency",
        "timezone_id",
        "message_template_namespace",
        "account_review_status",
        "business_verification_status",
        "country",
        "ownership_type",
        "on_behalf_of_business_info",
        "is_enabled_for_insights",
        "whatsapp_business_manager_messaging_limit",
        "health_status",
        "status",
    }
)
WABA_KNOWN_FIELDS: frozenset[str] = WABA_SETTABLE_FIELDS | frozenset({"id", "owner_business_info"})
WABA_DEFAULT_FIELDS: tuple[str, ...] = ("id", "name")

BUSINESS_SETTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "verification_status",
        "whatsapp_business_manager_messaging_limit",
        "timezone_id",
        "vertical",
        "created_time",
        "link",
        "two_factor_type",
        "is_hidden",
    }
)
BUSINESS_KNOWN_FIELDS: frozenset[str] = BUSINESS_SETTABLE_FIELDS | frozenset({"id"})
BUSINESS_DEFAULT_FIELDS: tuple[str, ...] = ("id", "name")

DEFAULT_REJECTED_FIELDS: tuple[str, ...] = ("unified_cert_status",)

_MAX_DEPTH = 16  # bounds recursion: a URL can hold thousands of nested braces
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODIFIER = re.compile(r"\.[A-Za-z_][A-Za-z0-9_]*\([^(){}]*\)")


class FieldSyntaxError(ValueError):
    """The ``fields`` parameter cannot be parsed (Graph answers code 100)."""


@dataclass(frozen=True, slots=True)
class FieldRequest:
    """One requested field, with the sub-fields given in braces, if any."""

    name: str
    subfields: tuple[FieldRequest, ...] | None = None


def parse_fields(raw: str) -> tuple[FieldRequest, ...]:
    """Parse ``a,b{c,d},e.limit(5)`` into field requests; modifiers are accepted and ignored.

    Duplicates keep their first occurrence, empty items are skipped (Graph is lenient there).
    """
    seen: set[str] = set()
    out: list[FieldRequest] = []
    for item in _split_top_level(raw):
        stripped = item.strip()
        if not stripped:
            continue
        request = _parse_item(stripped)
        if request.name not in seen:
            seen.add(request.name)
            out.append(request)
    return tuple(out)


def _split_top_level(raw: str) -> list[str]:
    """Split on commas that are outside braces and parentheses; reject unbalanced input."""
    parts: list[str] = []
    stack: list[str] = []
    start = 0
    pairs = {"}": "{", ")": "("}
    for i, ch in enumerate(raw):
        if ch in "{(":
            stack.append(ch)
            if len(stack) > _MAX_DEPTH:
                raise FieldSyntaxError(f"nesting deeper than {_MAX_DEPTH} levels")
        elif ch in "})":
            if not stack or stack.pop() != pairs[ch]:
                raise FieldSyntaxError(f"unbalanced {ch!r} at character {i}")
        elif ch == "," and not stack:
            parts.append(raw[start:i])
            start = i + 1
    if stack:
        raise FieldSyntaxError(f"unclosed {stack[-1]!r}")
    parts.append(raw[start:])
    return parts


def _parse_item(item: str) -> FieldRequest:
    match = _NAME.match(item)
    if match is None:
        raise FieldSyntaxError(f"expected a field name at {item!r}")
    rest = item[match.end() :]
    subfields: tuple[FieldRequest, ...] | None = None
    brace = rest.find("{")
    if brace >= 0:
        close = rest.rfind("}")
        subfields = parse_fields(rest[brace + 1 : close])
        rest = rest[:brace] + rest[close + 1 :]
    residue = _MODIFIER.sub("", rest).strip()
    if residue:
        raise FieldSyntaxError(f"unexpected {residue!r} after field {match.group(0)!r}")
    return FieldRequest(match.group(0), subfields)


def select_subfields(value: object, subfields: tuple[FieldRequest, ...] | None) -> object:
    """Apply ``{a,b}`` to an object value: keep only those keys, recursively; else unchanged."""
    if subfields is None or not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for sub in subfields:
        if sub.name in value:
            out[sub.name] = select_subfields(value[sub.name], sub.subfields)
    return out
