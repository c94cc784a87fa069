"""Meta's notification envelope: the signature over the raw body, and the typed changes in it.

Pure functions over bytes and dicts, with no HTTP here, so the checks that decide whether a
body is trusted and what it says can be tested (and fuzzed) without a server. The receiver
calls ``verify_signature`` before ``parse_body``: nothing unsigned is ever parsed.
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
    "Notification",
    "RejectedChange",
    "WebhookChange",
    "WebhookPayloadError",
    "change_key",
    "is_waba_id",
    "log_text",
    "parse_body",
    "parse_cap",
    "parse_notification",
    "resolve_waba",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
MAX_CAP = 1_000_000  # anything larger is garbage, not a cap
_WABA_ID = re.compile(r"[0-9]{1,32}")
_HEX = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,7}")
_TIME_TEXT = re.compile(r"[0-9]{1,15}")
_LOG_TEXT_LIMIT = 80


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """One ``entry[].changes[]`` item with its entry's id and time.

    ``waba_id`` is the WABA the change is about, resolved per facts §2.2: for partner events
    (PARTNER_*, AD_ACCOUNT_LINKED, MM_LITE_TERMS_SIGNED) ``entry.id`` is the partner's
    portfolio and the WABA is ``value.waba_info.waba_id``; otherwise it is ``entry.id``.
    ``entry_id`` keeps ``entry.id`` as sent (None: same as ``waba_id``). ``key`` is the
    change's identity across Meta's retries (``change_key``), set by the receiver.
    """

    object: str
    waba_id: str
    time: int | None
    field: str
    value: Mapping[str, Any]
    entry_id: str | None = None
    key: str | None = None

    @property
    def entry(self) -> str:
        """``entry.id`` as Meta sent it."""
        return self.waba_id if self.entry_id is None else self.entry_id


@dataclass(frozen=True, slots=True)
class RejectedChange:
    """A change (or a whole entry) of a well-formed body that cannot be read: counted as
    ``invalid`` while the body's other changes are applied (Meta redelivers a refused body
    for days, so one odd change must not hold back the rest)."""

    object: str
    where: str
    reason: str
    field: str = ""
    entry_id: str = ""
    time: int | None = None

    def as_change(self) -> WebhookChange:
        """A stand-in change for logging and counting (its value is empty)."""
        return WebhookChange(self.object, self.entry_id, self.time, self.field,
                             MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Notification:
    """A parsed body: the readable changes, in order, and the ones that were not."""

    object: str
    changes: tuple[WebhookChange, ...]
    rejected: tuple[RejectedChange, ...] = ()


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
    """Every readable change of a notification (see ``parse_body``; rejected ones left out)."""
    return parse_body(body).changes


def parse_body(body: bytes) -> Notification:
    """A notification's changes, read one by one.

    Raises ``WebhookPayloadError`` only when the body is not Meta's envelope at all (not
    JSON, not an object, no ``object`` string, no ``entry`` list). Inside it, an entry or a
    change that cannot be read is returned as a ``RejectedChange`` and the others are kept;
    an ``entry.time`` that is a digit string (as some Meta pages show it) is read as a number,
    and an unreadable one as no time.
    """
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
    rejected: list[RejectedChange] = []
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        if not isinstance(entry, dict):
            rejected.append(RejectedChange(obj, where, f"expected an object, got {_type(entry)}"))
            continue
        entry_id = _entry_id(entry.get("id"))
        entry_time = _entry_time(entry.get("time"))
        items = entry.get("changes")
        if not isinstance(items, list):
            rejected.append(RejectedChange(
                obj, f"{where}.changes", f"expected a list, got {_type(items)}",
                entry_id=entry_id or "", time=entry_time))
            continue
        for j, item in enumerate(items):
            at = f"{where}.changes[{j}]"
            field = item.get("field") if isinstance(item, dict) else None
            label = field if isinstance(field, str) else ""
            problem: tuple[str, str] | None = None
            if not isinstance(item, dict):
                problem = (at, f"expected an object, got {_type(item)}")
            elif not isinstance(field, str) or not field:
                problem = (f"{at}.field", f"expected a non-empty string, got {_type(field)}")
            elif not isinstance(item.get("value"), dict):
                problem = (f"{at}.value", f"expected an object, got {_type(item.get('value'))}")
            elif entry_id is None:
                problem = (f"{where}.id", f"expected a non-empty string, got "
                                          f"{_type(entry.get('id'))}")
            if problem is not None:
                rejected.append(RejectedChange(obj, problem[0], problem[1], field=label,
                                               entry_id=entry_id or "", time=entry_time))
                continue
            assert isinstance(item, dict) and entry_id is not None
            value = MappingProxyType(item["value"])
            changes.append(WebhookChange(obj, resolve_waba(value, entry_id), entry_time, label,
                                         value, entry_id=entry_id))
    return Notification(obj, tuple(changes), tuple(rejected))


def resolve_waba(value: Mapping[str, Any], entry_id: str) -> str:
    """The WABA a change is about (facts §2.2): ``value.waba_info.waba_id`` when Meta sends
    one (partner events, where ``entry.id`` is the partner's portfolio), else ``entry.id``."""
    info = value.get("waba_info")
    if isinstance(info, Mapping):
        waba = _entry_id(info.get("waba_id"))
        if waba is not None and is_waba_id(waba):
            return waba
    return entry_id


def _entry_id(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def _entry_time(value: object) -> int | None:
    """A unix time from an int, a finite float or a digit string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:  # finite, sane
        return int(value)
    if isinstance(value, str) and _TIME_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def change_key(change: WebhookChange) -> str:
    """Identity of a change across Meta's retries: entry id, time, field and canonical value."""
    canonical = json.dumps(dict(change.value), sort_keys=True, separators=(",", ":"))
    text = "\0".join((change.object, change.entry, str(change.time), change.field, canonical))
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
