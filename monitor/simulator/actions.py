"""Account-level actions: one vocabulary shared by timeline steps and ``POST /_sim/actions``.

An action names what changes (a WABA restricted, banned, reviewed; a portfolio's limit; an
entity's health) and is validated here, strictly, into plain parameters. ``World.apply_action``
performs it: the state change that polls see, plus the signed webhook Meta would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .account_webhooks import DEFAULT_LIFT_VIOLATION, DEFAULT_RESTRICTION, EXPIRATION_FORMATS
from .scenario import ScenarioError, freeze, parse_duration

_ID_KEYS = (
    "waba", "business", "number", "entity_id", "id", "partner", "app", "requester", "template",
)  # fmt: skip
_STR_KEYS = (
    "violation_type",
    "remediation",
    "state",
    "date",
    "decision",
    "entity_type",
    "alert_type",
    "alert_severity",
    "alert_status",
    "alert_description",
    "verification_status",
    "messaging_limit",
    "can_send_message",
    "error_description",
    "possible_solution",
    "event",
    "expiration_format",
    "limit_as",
    "reason",
    "name",
    "display_phone_number",
    "verified_name",
    "title",
    "score",
    "category",
)
_CHOICES = {
    "spelling": ("meta", "sdk"),
    "kind": ("messages", "statuses", "mixed"),
    "applies_to": ("name", "new_name"),
    "stage": ("notice", "completed"),
}
MAX_BURST = 100_000
MAX_WORKERS = 64  # concurrent senders of a message burst

# Per action: (required keys, optional keys).
ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "restrict_waba": (
        frozenset({"waba"}),
        frozenset(
            {
                "restriction_types",
                "expires_in",
                "expiration",
                "expiration_format",
                "remediation",
                "violation_type",
            }
        ),
    ),
    "lift_restriction": (frozenset({"waba"}), frozenset({"violation_type"})),
    "record_violation": (frozenset({"waba", "violation_type"}), frozenset()),
    "ban_waba": (frozenset({"waba", "state"}), frozenset({"date"})),
    "review_waba": (frozenset({"waba", "decision"}), frozenset()),
    "account_event": (frozenset({"waba", "event"}), frozenset()),
    "partner_event": (frozenset({"waba", "event"}), frozenset({"partner"})),
    "account_alert": (
        frozenset({"entity_type", "alert_type"}),
        frozenset({"entity_id", "waba", "alert_severity", "alert_status", "alert_description"}),
    ),
    "set_business": (
        frozenset({"business"}),
        frozenset(
            {
                "verification_status",
                "messaging_limit",
                "limit_as",
                "max_phone_numbers_per_business",
                "max_phone_numbers_per_waba",
            }
        ),
    ),
    "block_entity": (
        frozenset({"entity_type"}),
        frozenset(
            {"id", "can_send_message", "error_code", "error_description", "possible_solution"}
        ),
    ),
    # Number security and message routing (issue 11), performed by wiring.WiringMixin.
    "set_pin": (frozenset({"number", "enabled"}), frozenset({"spelling"})),
    "security_event": (frozenset({"number", "event"}), frozenset({"requester", "spelling"})),
    "unsubscribe_app": (frozenset({"waba"}), frozenset({"app"})),
    "subscribe_app": (frozenset({"waba"}), frozenset({"app", "name", "url"})),
    "set_webhook_override": (frozenset({"url"}), frozenset({"number", "waba"})),
    "set_identity_key_check": (frozenset({"number", "enabled"}), frozenset()),
    "name_decision": (
        frozenset({"number", "decision"}),
        frozenset({"reason", "name", "applies_to"}),
    ),
    "onboard_number": (
        frozenset({"waba"}),
        frozenset({"id", "display_phone_number", "verified_name"}),
    ),
    "message_burst": (
        frozenset({"number"}),
        frozenset({"count", "kind", "per_request", "concurrency"}),
    ),
    # Message templates (issue 12), performed by template_state.TemplatesMixin.
    "template_status": (frozenset({"template", "event"}), frozenset({"reason", "title"})),
    "template_quality": (frozenset({"template", "score"}), frozenset()),
    "template_category": (
        frozenset({"template", "category"}),
        frozenset({"stage", "effective_in"}),
    ),
    "pause_template": (frozenset({"template"}), frozenset({"pacing"})),
}
ACTION_NAMES: tuple[str, ...] = tuple(sorted(ACTIONS))
_BUSINESS_CHANGES = (
    "verification_status",
    "messaging_limit",
    "max_phone_numbers_per_business",
    "max_phone_numbers_per_waba",
)


@dataclass(frozen=True, slots=True)
class Action:
    """A validated action: its name and normalised parameters (deep-frozen)."""

    kind: str
    params: Mapping[str, Any]


def parse_action(kind: object, raw: Mapping[str, Any], where: str) -> Action:
    """Validate ``raw`` (the parameters, without ``action``) for action ``kind``."""
    if not isinstance(kind, str) or kind not in ACTIONS:
        raise ScenarioError(f"{where}.action: expected one of {', '.join(ACTION_NAMES)}")
    required, optional = ACTIONS[kind]
    for key in raw:
        if key not in required and key not in optional:
            allowed = ", ".join(sorted(required | optional))
            raise ScenarioError(f"{where}: unknown key {key!r} for {kind}; allowed: {allowed}")
    for key in sorted(required):
        if key not in raw:
            raise ScenarioError(f"{where}: missing key {key!r} for {kind}")
    params: dict[str, Any] = {}
    for key, value in raw.items():
        params[key] = _value(key, value, f"{where}.{key}")
    if "expires_in" in params and "expiration" in params:
        raise ScenarioError(f"{where}: give expires_in or expiration, not both")
    if kind == "set_business" and not set(_BUSINESS_CHANGES) & set(params):
        raise ScenarioError(f"{where}: set_business needs one of {', '.join(_BUSINESS_CHANGES)}")
    if params.get("expiration_format", "unix") not in EXPIRATION_FORMATS:
        raise ScenarioError(f"{where}.expiration_format: one of {', '.join(EXPIRATION_FORMATS)}")
    if params.get("limit_as", "tier") not in ("tier", "int"):
        raise ScenarioError(f"{where}.limit_as: 'tier' or 'int'")
    if kind == "set_webhook_override" and ("number" in params) == ("waba" in params):
        raise ScenarioError(f"{where}: set_webhook_override needs number or waba (one of them)")
    return Action(kind, freeze(params))


def _value(key: str, value: object, where: str) -> Any:
    if key in _ID_KEYS:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.isdigit() or len(value) > 20:
            raise ScenarioError(f"{where}: expected a numeric id string, got {value!r}")
        return value
    if key in _STR_KEYS:
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ScenarioError(f"{where}: one of {', '.join(_CHOICES[key])}")
        return value
    if key in ("enabled", "pacing"):
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false")
        return value
    if key == "url":
        # null removes an override; Meta caps the URL at 200 characters (facts §5).
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ScenarioError(f"{where}: expected an http(s) URL, or null for none")
        if len(value) > 200:
            raise ScenarioError(f"{where}: at most 200 characters")
        return value
    if key == "concurrency":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            raise ScenarioError(f"{where}: expected an integer from 1 to {MAX_WORKERS}")
        return value
    if key in ("count", "per_request"):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BURST:
            raise ScenarioError(f"{where}: expected an integer from 1 to {MAX_BURST}")
        return value
    if key == "restriction_types":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ScenarioError(f"{where}: expected a list of strings (may be empty)")
        return list(value)
    if key in ("expires_in", "effective_in"):
        return parse_duration(value, where)
    if key == "expiration":
        # Sent verbatim: an int, a digit string or ISO text, as Meta's pages disagree (§2.3).
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ScenarioError(f"{where}: expected an integer or a string")
        return value
    if key == "error_code":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer")
        return value
    if key in ("max_phone_numbers_per_business", "max_phone_numbers_per_waba"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScenarioError(f"{where}: expected an integer >= 1")
        return value
    raise ScenarioError(f"{where}: unsupported key")  # pragma: no cover - guarded above


def defaults(action: Action) -> dict[str, Any]:
    """The parameters with their documented defaults filled in (plain, mutable)."""
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in action.params.items()}
    if action.kind == "restrict_waba":
        params.setdefault("restriction_types", [DEFAULT_RESTRICTION])
        params.setdefault("expiration_format", "unix")
        if "expiration" not in params:
            params.setdefault("expires_in", 86_400.0)
    elif action.kind == "lift_restriction":
        params.setdefault("violation_type", DEFAULT_LIFT_VIOLATION)
    elif action.kind == "account_alert":
        params.setdefault("alert_severity", "WARNING")
        params.setdefault("alert_status", "ACTIVE")
        params.setdefault("alert_description", "Simulated alert.")
    elif action.kind == "set_business":
        params.setdefault("limit_as", "tier")
    elif action.kind == "block_entity":
        params.setdefault("can_send_message", "BLOCKED")
    elif action.kind in ("set_pin", "security_event"):
        params.setdefault("spelling", "meta")
    elif action.kind == "message_burst":
        params.setdefault("count", 1)
        params.setdefault("kind", "messages")
        params.setdefault("per_request", 1)
        params.setdefault("concurrency", 1)
    return params
