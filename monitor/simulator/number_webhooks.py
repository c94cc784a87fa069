"""Builders for a number's security, name and message-traffic webhook ``value`` objects.

Pure functions over plain data, one per Meta payload, so tests can pin exact keys and nesting
(account-health facts §2.8 and §2.9; Meta's ``messages`` webhook references for inbound
messages and statuses). ``entry[].id`` is the WABA for all of them.
"""

from __future__ import annotations

import base64
from typing import Any

from .account_webhooks import NAME_FIELD as NAME_FIELD  # re-exported: this module's fields

SECURITY_FIELD = "security"
MESSAGES_FIELD = "messages"

PIN_CHANGED = "PIN_CHANGED"
PIN_RESET_REQUEST = "PIN_RESET_REQUEST"
PIN_REQUEST_SUCCESS = "PIN_REQUEST_SUCCESS"  # Meta's spelling (H7)
PIN_RESET_SUCCESS = "PIN_RESET_SUCCESS"  # the spelling one SDK types (M5); same meaning
SUCCESS_EVENTS = frozenset({PIN_REQUEST_SUCCESS, PIN_RESET_SUCCESS})
SPELLINGS = {"meta": PIN_REQUEST_SUCCESS, "sdk": PIN_RESET_SUCCESS}

NAME_DECISIONS = ("APPROVED", "DEFERRED", "PENDING", "REJECTED")
# The name_status a decision leaves behind. DEFERRED has no name_status of its own: the name
# stays under review (inferred; the enum has no DEFERRED).
DECISION_STATUS = {
    "APPROVED": "APPROVED",
    "REJECTED": "DECLINED",
    "PENDING": "PENDING_REVIEW",
    "DEFERRED": "PENDING_REVIEW",
}
DEFAULT_REJECTION = "UNKNOWN"
MESSAGE_KINDS = ("messages", "statuses", "mixed")


def security_event(
    display_phone_number: str, event: str, requester: str | None = None
) -> dict[str, Any]:
    """``security``: ``requester`` (a Meta Business Suite user id) only on reset requests."""
    value: dict[str, Any] = {"display_phone_number": display_phone_number, "event": event}
    if requester is not None and event == PIN_RESET_REQUEST:
        value["requester"] = requester
    return value


def name_update(
    display_phone_number: str,
    decision: str,
    requested_verified_name: str | None,
    rejection_reason: str | None = None,
) -> dict[str, Any]:
    """``phone_number_name_update``: every key always present; ``rejection_reason`` null
    unless the name was rejected (H6)."""
    return {
        "display_phone_number": display_phone_number,
        "decision": decision,
        "requested_verified_name": requested_verified_name,
        "rejection_reason": rejection_reason if decision == "REJECTED" else None,
    }


def message_id(serial: int) -> str:
    """A ``wamid.`` id shaped like Meta's (base64 of an opaque byte string)."""
    raw = f"HBgLMTY1MDU1NTEyMzQVAgASGBQz{serial:020d}".encode()
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def _metadata(display_phone_number: str, phone_number_id: str) -> dict[str, str]:
    return {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}


def customer_id(serial: int) -> str:
    """A customer's ``wa_id``: bare digits, as webhooks carry them."""
    return f"1650555{serial % 10_000:04d}"


def identity_key_hash(wa_id: str) -> str:
    """A stable stand-in for the customer's identity hash (seed: ``DF2lS5v2W6x=`` style)."""
    return base64.b64encode(f"ik{wa_id}".encode()).decode()[:11] + "="


def inbound_message(
    serial: int, timestamp: int, *, body: str = "Hello", identity_check: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One ``(contacts[] item, messages[] item)`` for a text message from a customer.

    With the identity change check on, the contact carries ``identity_key_hash`` (seed).
    """
    wa_id = customer_id(serial)
    contact: dict[str, Any] = {"profile": {"name": f"Customer {serial}"}, "wa_id": wa_id}
    if identity_check:
        contact["identity_key_hash"] = identity_key_hash(wa_id)
    message = {
        "from": wa_id,
        "id": message_id(serial),
        "timestamp": str(timestamp),  # a digit string in Meta's payloads
        "type": "text",
        "text": {"body": body},
    }
    return contact, message


def message_status(
    serial: int, timestamp: int, *, status: str = "delivered", identity_check: bool = False
) -> dict[str, Any]:
    """One ``statuses[]`` item for a message the business sent (sent/delivered/read)."""
    wa_id = customer_id(serial)
    item: dict[str, Any] = {
        "id": message_id(serial),
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": wa_id,
        "pricing": {
            "billable": True,
            "pricing_model": "PMP",
            "category": "utility",
            "type": "regular",
        },
    }
    if identity_check:
        item["recipient_identity_key_hash"] = identity_key_hash(wa_id)
    return item


def messages_value(
    display_phone_number: str,
    phone_number_id: str,
    *,
    contacts: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``messages`` field ``value``: ``messaging_product``, ``metadata``, then
    ``contacts`` + ``messages`` (inbound) and/or ``statuses`` (outbound), each only if given."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
    }
    if messages:
        value["contacts"] = list(contacts or [])
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return value


def traffic_values(
    display_phone_number: str,
    phone_number_id: str,
    *,
    first_serial: int,
    count: int,
    kind: str,
    per_request: int,
    timestamp: int,
    identity_check: bool = False,
) -> list[dict[str, Any]]:
    """``count`` messages (inbound, statuses, or alternating for ``mixed``) in values of up to
    ``per_request`` items each: one value becomes one webhook POST."""
    out: list[dict[str, Any]] = []
    serial = first_serial
    remaining = count
    while remaining > 0:
        size = min(per_request, remaining)
        contacts: list[dict[str, Any]] = []
        inbound: list[dict[str, Any]] = []
        statuses: list[dict[str, Any]] = []
        for i in range(size):
            as_status = kind == "statuses" or (kind == "mixed" and (serial + i) % 2 == 1)
            if as_status:
                statuses.append(
                    message_status(serial + i, timestamp, identity_check=identity_check)
                )
            else:
                contact, message = inbound_message(
                    serial + i, timestamp, identity_check=identity_check
                )
                if contact not in contacts:
                    contacts.append(contact)
                inbound.append(message)
        out.append(
            messages_value(
                display_phone_number,
                phone_number_id,
                contacts=contacts,
                messages=inbound,
                statuses=statuses,
            )
        )
        serial += size
        remaining -= size
    return out
