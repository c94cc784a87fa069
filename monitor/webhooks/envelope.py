"""Meta's notification envelope: the signature over the raw body, and the typed changes in it.

Pure functions over bytes and dicts, with no HTTP here, so the checks that decide whether a
body is trusted and what it says can be tested (and fuzzed) without a server. The receiver
calls ``verify_signature`` before ``parse_notification``: nothing unsigned is ever parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "MAX_CAP",
    "SIGNATURE_HEADER",
    "WABA_OBJECT",
    "WebhookChange",
    "WebhookPayloadError",
    "change_key",
    "is_waba_id",
    "log_text",
    "parse_cap",
    "parse_notification",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
MAX_CAP = 1_000_000  # anything larger is garbage, not a cap
_WABA_ID = re.compile(r"[0-9]{1,32}")
_HEX = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,7}")
_LOG_TEXT_LIMIT = 80


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """One ``entry[].changes[]`` item with its entry's id and time (``waba_id`` is entry.id)."""

    object: str
    waba_id: str
    time: int | None
    field: str
    value: Mapping[str, Any]


class WebhookPayloadError(ValueError):
    """The body is not JSON or not Meta's notification envelope; the message says where."""


# --------------------------------------------------------------------------- signatures


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex HMAC>``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check of ``header`` against the HMAC of the raw body; False if malformed."""
    if not header or not app_secret:
        return False
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    given = given.strip().lower()
    if not _HEX.fullmatch(given):
        return False
    expected = sign(body, app_secret).removeprefix("sha256=")
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))


# --------------------------------------------------------------------------- parsing


def _reject_constant(name: str) -> Any:
    raise WebhookPayloadError(f"body is not valid JSON: {name} is not allowed")


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def parse_notification(body: bytes) -> tuple[WebhookChange, ...]:
    """Every change in a notification, validated all-or-nothing against Meta's envelope."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except WebhookPayloadError:
        raise
    except json.JSONDecodeError as exc:
        raise WebhookPayloadError(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise WebhookPayloadError("body is not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise WebhookPayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise WebhookPayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError(f"top level: expected an object, got {_type(data)}")
    obj = data.get("object")
    if not isinstance(obj, str) or not obj:
        raise WebhookPayloadError(f"object: expected a non-empty string, got {_type(obj)}")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise WebhookPayloadError(f"entry: expected a list, got {_type(entries)}")
    changes: list[WebhookChange] = []
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        if not isinstance(entry, dict):
            raise WebhookPayloadError(f"{where}: expected an object, got {_type(entry)}")
        entry_id = _entry_id(entry.get("id"), f"{where}.id")
        entry_time = _entry_time(entry.get("time"), f"{where}.time")
        items = entry.get("changes")
        if not isinstance(items, list):
            raise WebhookPayloadError(f"{where}.changes: expected a list, got {_type(items)}")
        for j, item in enumerate(items):
            at = f"{where}.changes[{j}]"
            if not isinstance(item, dict):
                raise WebhookPayloadError(f"{at}: expected an object, got {_type(item)}")
            field = item.get("field")
            if not isinstance(field, str) or not field:
                raise WebhookPayloadError(
                    f"{at}.field: expected a non-empty string, got {_type(field)}"
                )
            value = item.get("value")
            if not isinstance(value, dict):
                raise WebhookPayloadError(f"{at}.value: expected an object, got {_type(value)}")
            changes.append(WebhookChange(obj, entry_id, entry_time, field, MappingProxyType(value)))
    return tuple(changes)


def _entry_id(value: object, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise WebhookPayloadError(f"{where}: expected a non-empty string, got {_type(value)}")


def _entry_time(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # finite, sane
        return int(value)
    raise WebhookPayloadError(f"{where}: expected a unix time, got {_type(value)}")


def change_key(change: WebhookChange) -> str:
    """Identity of a change across Meta's retries: entry id, time, field and canonical value."""
    canonical = json.dumps(dict(change.value), sort_keys=True, separators=(",", ":"))
    text = "\0".join((change.object, change.waba_id, str(change.time), change.field, canonical))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- values


def is_waba_id(value: str) -> bool:
    """Whether an entry id looks like a WABA id (digits only); anything else is not acted on."""
    return _WABA_ID.fullmatch(value) is not None


def parse_cap(value: object) -> int | None:
    """A positive int or digit string as a cap; None for bools, floats and other garbage."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        cap = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        cap = int(value.strip())
    else:
        return None
    return cap if 0 < cap <= MAX_CAP else None


def log_text(value: object) -> str | None:
    """A payload value made safe and short for a log line (payloads can hold anything)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
    elif isinstance(value, bool | int | float):
        text = repr(value)[:_LOG_TEXT_LIMIT]
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _LOG_TEXT_LIMIT else text[:_LOG_TEXT_LIMIT] + "…"
