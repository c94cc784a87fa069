"""The Graph error taxonomy: what kind of failure it is decides whether to retry, wait or stop."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # retry with back-off
    THROTTLED = "throttled"  # wait as the usage headers say
    AUTH = "auth"  # token expired or invalid: no retry
    PERMISSION = "permission"  # permission missing or removed: no retry
    NOT_FOUND = "not_found"  # object gone or invisible: no retry
    BAD_REQUEST = "bad_request"  # our request is wrong: no retry
    FIELD_REJECTED = "field_rejected"  # a requested field does not exist: drop it, retry
    NETWORK = "network"  # connection failed, reset or timed out: retry
    PAYLOAD = "payload"  # a 2xx answer we cannot read: retry
    CURSOR_LOOP = "cursor_loop"  # paging went round in a circle: stop, report


RETRYABLE = frozenset({ErrorKind.TRANSIENT, ErrorKind.NETWORK, ErrorKind.PAYLOAD})

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80007, 80008})
AUTH_CODES = frozenset({0, 102, 104, 190})
NOT_FOUND_CODES = frozenset({803})
_NONEXISTING_FIELD = re.compile(r"nonexisting field \(([A-Za-z0-9_]+)\)")


@dataclass(eq=False)
class GraphError(Exception):
    """A failed Graph call. Carries no URL and no token: safe to log as it is."""

    kind: ErrorKind
    endpoint: str
    message: str
    code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    fbtrace_id: str | None = None
    field: str | None = None  # set for FIELD_REJECTED
    retry_after: float | None = None  # seconds, when the API said how long to wait

    def __str__(self) -> str:
        code = f" code={self.code}" if self.code is not None else ""
        sub = f" subcode={self.subcode}" if self.subcode is not None else ""
        status = f" http={self.http_status}" if self.http_status is not None else ""
        return f"{self.kind.value} on {self.endpoint}:{code}{sub}{status} {self.message}"

    @property
    def code_label(self) -> str:
        """The value of the ``code`` label on the error counter: bounded, never free text."""
        if self.code is not None:
            return str(self.code) if 0 <= self.code < 10**7 else "other"
        if self.kind is ErrorKind.NETWORK:
            return "network"
        if self.kind is ErrorKind.PAYLOAD:
            return "payload"
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return str(self.kind.value)


_INT = re.compile(r"-?[0-9]{1,12}")


def _as_int(value: object) -> int | None:
    """A Graph code as an int; anything else (or absurdly long) is no code at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**12 else None
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def classify(http_status: int, code: int | None, subcode: int | None, message: str,
             is_transient: bool | None) -> tuple[ErrorKind, str | None]:
    """Map an error answer to its kind (and the rejected field, for code 100)."""
    if code in THROTTLE_CODES:
        return ErrorKind.THROTTLED, None
    if code in AUTH_CODES:
        return ErrorKind.AUTH, None
    if code is not None and (code == 10 or 200 <= code <= 299 or code == 3):
        return ErrorKind.PERMISSION, None
    if code in NOT_FOUND_CODES or (code == 100 and subcode == 33) or code == 33:
        return ErrorKind.NOT_FOUND, None
    if code == 100:
        match = _NONEXISTING_FIELD.search(message)
        if match:
            return ErrorKind.FIELD_REJECTED, match.group(1)
        return ErrorKind.BAD_REQUEST, None
    if code in (1, 2) or is_transient or http_status >= 500:
        return ErrorKind.TRANSIENT, None
    if http_status == 429:
        return ErrorKind.THROTTLED, None
    if http_status in (401,):
        return ErrorKind.AUTH, None
    if http_status == 403:
        return ErrorKind.PERMISSION, None
    if http_status == 404:
        return ErrorKind.NOT_FOUND, None
    return ErrorKind.BAD_REQUEST, None


def error_from_response(endpoint: str, http_status: int, body: object) -> GraphError:
    """Build a GraphError from a non-2xx answer, whatever its body looks like."""
    envelope: Mapping[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        envelope = body["error"]
    code = _as_int(envelope.get("code"))
    subcode = _as_int(envelope.get("error_subcode"))
    raw_message = envelope.get("message")
    message = raw_message if isinstance(raw_message, str) else f"HTTP {http_status}"
    transient = envelope.get("is_transient")
    kind, field = classify(http_status, code, subcode, message,
                           transient if isinstance(transient, bool) else None)
    trace = envelope.get("fbtrace_id")
    return GraphError(
        kind=kind,
        endpoint=endpoint,
        message=message[:300],
        code=code,
        subcode=subcode,
        http_status=http_status,
        fbtrace_id=trace if isinstance(trace, str) else None,
        field=field,
    )
