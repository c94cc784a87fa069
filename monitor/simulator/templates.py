"""Message templates (issue 12): scenario parsing, the listing's fields, and the three
template webhooks' ``value`` objects, shaped as in the facts sheet §2.10-§2.12 and §4.

Pure functions over plain data, so tests can pin exact keys without a running World. Enums
are open (any string is accepted) so every documented and future value is expressible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .scenario import ScenarioError, _mapping, _object_id, _string, freeze

TEMPLATE_NODE = "WhatsAppBusinessMessageTemplate"
STATUS_FIELD = "message_template_status_update"
QUALITY_FIELD = "message_template_quality_update"
CATEGORY_FIELD = "template_category_update"
TEMPLATE_FIELDS_WEBHOOK = (STATUS_FIELD, QUALITY_FIELD, CATEGORY_FIELD)

STATUSES = (
    "APPROVED", "ARCHIVED", "DELETED", "DISABLED", "IN_APPEAL", "LIMIT_EXCEEDED",
    "PAUSED", "PENDING", "PENDING_DELETION", "REJECTED",
)  # fmt: skip
# Webhook events that are not values of ``status`` (facts §4.2): the read status is unchanged.
EVENT_ONLY = frozenset({"FLAGGED", "LOCKED", "REINSTATED", "UNARCHIVED"})
QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
CATEGORIES = ("AUTHENTICATION", "MARKETING", "UTILITY")
PAUSE_TITLES = ("FIRST_PAUSE", "SECOND_PAUSE", "RATE_LIMITING_PAUSE", "UNPAUSE", "DISABLED")
FIRST_PAUSE_SECONDS = 3 * 3600.0
SECOND_PAUSE_SECONDS = 6 * 3600.0

# Stored per template; ``id`` is kept apart. Optional keys are absent when unset.
TEMPLATE_SCENARIO_KEYS = frozenset(
    {
        "id",
        "name",
        "language",
        "status",
        "category",
        "quality_score",
        "rejected_reason",
        "previous_category",
        "correct_category",
        "sub_category",
        "parameter_format",
        "components",
    }
)
TEMPLATE_KNOWN_FIELDS: frozenset[str] = TEMPLATE_SCENARIO_KEYS
TEMPLATE_DEFAULT_FIELDS: tuple[str, ...] = ("id", "name", "language", "status", "category")


def parse_template(data: object, where: str) -> tuple[str, Mapping[str, Any]]:
    """One scenario template: its id and its (frozen) fields with defaults filled in."""
    mapping = _mapping(data, where)
    unknown = sorted(set(mapping) - TEMPLATE_SCENARIO_KEYS)
    if unknown:
        allowed = ", ".join(sorted(TEMPLATE_SCENARIO_KEYS))
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}; allowed: {allowed}")
    for key in ("id", "name"):
        if key not in mapping:
            raise ScenarioError(f"{where}: missing key {key!r}")
    template_id = _object_id(mapping["id"], f"{where}.id")
    fields: dict[str, Any] = {
        "name": _string(mapping["name"], f"{where}.name"),
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "quality_score": {"score": "UNKNOWN"},
        "rejected_reason": "NONE",
    }
    for key, value in mapping.items():
        if key in ("id", "name"):
            continue
        if key == "quality_score":
            fields[key] = quality_object(value, f"{where}.{key}")
        elif key == "components":
            if not isinstance(value, list):
                raise ScenarioError(f"{where}.components: expected a list")
            fields[key] = value
        else:
            fields[key] = _string(value, f"{where}.{key}")
    return template_id, freeze(fields)


def quality_object(value: object, where: str) -> dict[str, Any]:
    """``quality_score`` as Graph reads it: ``{score, date?, reasons?}``; a bare score too."""
    if isinstance(value, str) and value:
        return {"score": value}
    mapping = _mapping(value, where)
    extra = sorted(set(mapping) - {"score", "date", "reasons"})
    if extra or "score" not in mapping:
        raise ScenarioError(f"{where}: expected a score string or {{score, date, reasons}}")
    out: dict[str, Any] = {"score": _string(mapping["score"], f"{where}.score")}
    if "date" in mapping:
        date = mapping["date"]
        if isinstance(date, bool) or not isinstance(date, int):
            raise ScenarioError(f"{where}.date: expected a Unix time integer")
        out["date"] = date
    if "reasons" in mapping:
        reasons = mapping["reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise ScenarioError(f"{where}.reasons: expected a list of strings")
        out["reasons"] = list(reasons)
    return out


# One cycle of generated templates, by serial: 68 of 80 healthy (APPROVED, GREEN or not yet
# rated), 12 with a problem — every other status once, YELLOW, RED, a pending category
# change — so any 80 consecutive templates show every status value.
_SYNTH_CYCLE = 80
_SYNTH_PROBLEMS: dict[int, dict[str, Any]] = {
    **{7 * (i + 1): {"status": status} for i, status in enumerate(STATUSES[1:])},
    70: {"quality_score": {"score": "YELLOW"}},
    75: {"quality_score": {"score": "RED"}},
    78: {"correct_category": "MARKETING", "category": "UTILITY"},
}


def synthetic_template(index: int, serial: int) -> tuple[str, dict[str, Any]]:
    """A deterministic template for generated fleets: a realistic mix, mostly APPROVED/GREEN
    (about 15 % with a problem, so ``templates.series: problems`` has a few series)."""
    fields: dict[str, Any] = {
        "name": f"synthetic_template_{index + 1}",
        "language": "en_US",
        "status": "APPROVED",
        "category": CATEGORIES[serial % len(CATEGORIES)],
        "quality_score": {"score": "UNKNOWN" if serial % 10 == 3 else "GREEN"},
        "rejected_reason": "NONE",
    }
    fields.update(_SYNTH_PROBLEMS.get(serial % _SYNTH_CYCLE, {}))
    if fields["status"] == "REJECTED":
        fields["rejected_reason"] = "INVALID_FORMAT"
    return f"4{serial:015d}", fields


# --------------------------------------------------------------------------- webhooks


def webhook_language(language: str) -> str:
    """Webhooks spell the language ``en-US`` where Graph reads say ``en_US`` (facts §2.10)."""
    return language.replace("_", "-")


def _ident(template_id: str, name: str, language: str) -> dict[str, Any]:
    # The id is a JSON number in webhooks, a numeric string in reads (facts §2.10).
    return {
        "message_template_id": int(template_id),
        "message_template_name": name,
        "message_template_language": webhook_language(language),
    }


def template_status_update(
    template_id: str,
    name: str,
    language: str,
    *,
    event: str,
    category: str,
    reason: str | None = "NONE",
    other_info: Mapping[str, str] | None = None,
    disable_date: int | None = None,
    rejection_info: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``message_template_status_update`` value; optional parts only when Meta sends them."""
    value: dict[str, Any] = {"event": event}
    value.update(_ident(template_id, name, language))
    value["reason"] = reason
    value["message_template_category"] = category
    if disable_date is not None:
        value["disable_info"] = {"disable_date": disable_date}
    if other_info is not None:
        value["other_info"] = dict(other_info)
    if rejection_info is not None:
        value["rejection_info"] = dict(rejection_info)
    return value


def template_quality_update(
    template_id: str, name: str, language: str, *, previous: str, new: str
) -> dict[str, Any]:
    """``message_template_quality_update`` value (facts §2.11)."""
    return {
        "previous_quality_score": previous,
        "new_quality_score": new,
        **_ident(template_id, name, language),
    }


def template_category_notice(
    template_id: str, name: str, language: str, *, current: str, correct: str, when: int
) -> dict[str, Any]:
    """Advance notice: ``new_category`` is the **current** category; ``correct_category``
    what it becomes at ``category_update_timestamp`` (facts §2.12)."""
    return {
        **_ident(template_id, name, language),
        "new_category": current,
        "correct_category": correct,
        "category_update_timestamp": when,
    }


def template_category_changed(
    template_id: str, name: str, language: str, *, previous: str, new: str
) -> dict[str, Any]:
    """Completed change: ``previous_category`` and the new ``new_category`` (facts §2.12)."""
    return {
        **_ident(template_id, name, language),
        "previous_category": previous,
        "new_category": new,
    }


PAUSE_DESCRIPTIONS = {
    "FIRST_PAUSE": "Your template has been paused for 3 hours due to low quality.",
    "SECOND_PAUSE": "Your template has been paused for 6 hours due to low quality.",
    "DISABLED": "Your template has been disabled due to low quality.",
    "UNPAUSE": "Your template has been unpaused.",
}


def other_info(title: str) -> dict[str, str]:
    return {"title": title, "description": PAUSE_DESCRIPTIONS.get(title, title)}
