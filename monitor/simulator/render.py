"""Turning stored field values into the JSON Graph returns for a node.

Kept as plain functions over plain data so the shaping rules (only requested fields, ``id``
always present, computed ``health_status`` and ``host_platform``) are easy to test alone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from .fields import FieldRequest, select_subfields

AVAILABLE = "AVAILABLE"
BLOCKED = "BLOCKED"


def overall_health(values: Iterable[str]) -> str:
    """Graph's rule: BLOCKED if any entity is blocked, else the first non-AVAILABLE value."""
    listed = list(values)
    if BLOCKED in listed:
        return BLOCKED
    return next((v for v in listed if v != AVAILABLE), AVAILABLE)


def health_entity(
    entity_type: str, object_id: str, health: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One ``entities[]`` element; an entity without configured health is AVAILABLE."""
    out: dict[str, Any] = {"entity_type": entity_type, "id": object_id}
    if health is None:
        out["can_send_message"] = AVAILABLE
        return out
    out["can_send_message"] = str(health.get("can_send_message", AVAILABLE))
    for key, value in health.items():
        if key != "can_send_message":
            out[key] = value
    return out


def health_status(entities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``health_status`` object: aggregate value plus the entity list."""
    return {
        "can_send_message": overall_health(str(e["can_send_message"]) for e in entities),
        "entities": [dict(e) for e in entities],
    }


def number_values(
    view: Mapping[str, Any],
    number_id: str,
    *,
    wanted: Collection[str],
    context_entities: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Field values of a number for the ``wanted`` names, with computed fields filled in.

    ``context_entities`` are the WABA, BUSINESS and APP health entities that follow the
    number's own PHONE_NUMBER entity inside ``health_status``.
    """
    values = {k: v for k, v in view.items() if k in wanted}
    if "host_platform" in wanted and "platform_type" in view:
        values["host_platform"] = view["platform_type"]
    if "health_status" in values:
        own = health_entity("PHONE_NUMBER", number_id, view["health_status"])
        values["health_status"] = health_status([own, *context_entities])
    return values


def render(
    object_id: str, values: Mapping[str, Any], requested: Sequence[FieldRequest]
) -> dict[str, Any]:
    """JSON for one node: requested fields that have a value, in order; ``id`` always."""
    out: dict[str, Any] = {}
    for request in requested:
        if request.name == "id":
            out["id"] = object_id
        elif request.name in values and values[request.name] is not None:
            out[request.name] = select_subfields(values[request.name], request.subfields)
    out.setdefault("id", object_id)
    return out
