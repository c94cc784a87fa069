"""Graph API error values and the exact envelope Graph wraps them in.

The exporter classifies failures by ``code``/``error_subcode``/``is_transient``, so the
simulator must reproduce Graph's messages and codes faithfully, not approximately.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

# Codes the facts sheet lists as retryable throttles / transient failures.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80007, 80008})

DEFAULT_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "Service temporarily unavailable",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    100: "(#100) Invalid parameter",
    190: "Error validating access token: Session has expired.",
    200: "(#200) Permissions error",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80007: "(#80007) Rate limit hit for WhatsApp Business Account.",
    80008: (
        "(#80008) There have been too many calls to this WhatsApp Business account. "
        "Wait a bit and try again."
    ),
}


@dataclass(frozen=True, slots=True)
class GraphError:
    """One Graph error response: HTTP status plus the fields of the ``error`` object."""

    status: int
    code: int
    message: str
    type: str = "OAuthException"
    subcode: int | None = None
    is_transient: bool = False

    def body(self) -> dict[str, Any]:
        """The JSON envelope, with a fresh random-looking ``fbtrace_id`` like Graph's."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        error["fbtrace_id"] = new_trace_id()
        return {"error": error}


class GraphFailure(Exception):
    """Raised inside request handling to answer with a Graph error."""

    def __init__(self, error: GraphError, *, buc_waba: str | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.buc_waba = buc_waba


def new_trace_id() -> str:
    """Graph trace ids are ~11-23 url-safe characters starting with 'A'."""
    return "A" + secrets.token_urlsafe(16)[:22]


def missing_token() -> GraphError:
    return GraphError(400, 104, "An access token is required to request this resource.")


def invalid_token() -> GraphError:
    return GraphError(
        401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=467
    )


def unknown_object(object_id: str) -> GraphError:
    return GraphError(
        400,
        100,
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        type="GraphMethodException",
        subcode=33,
    )


def nonexisting_field(field_name: str, node_type: str) -> GraphError:
    return GraphError(
        400,
        100,
        f"(#100) Tried accessing nonexisting field ({field_name}) on node type ({node_type})",
    )


def bad_parameter(message: str) -> GraphError:
    return GraphError(400, 100, f"(#100) {message}")


def buc_throttled() -> GraphError:
    return GraphError(400, 80008, DEFAULT_MESSAGES[80008], is_transient=True)


def app_throttled() -> GraphError:
    return GraphError(400, 4, DEFAULT_MESSAGES[4], is_transient=True)


def unknown_path(path: str) -> GraphError:
    return GraphError(
        404, 803, f"(#803) Some of the aliases you requested do not exist: {path.lstrip('/')}"
    )


def method_not_allowed(method: str) -> GraphError:
    return GraphError(
        405, 100, f"(#100) Unsupported {method.lower()} request (the simulator only serves GET)"
    )


def batch_too_large(maximum: int) -> GraphError:
    return GraphError(
        400, 100, f"(#100) Too many requests in batch message. Maximum batch size is {maximum}"
    )


def batch_malformed(detail: str) -> GraphError:
    return GraphError(400, 100, f"(#100) {detail}")


def batch_method(method: str) -> GraphError:
    """A batch entry's own error for a method other than GET (the simulator is read-only)."""
    return GraphError(
        400, 100, f"(#100) Unsupported {method.lower()} request (the simulator only serves GET)"
    )


def internal_error() -> GraphError:
    return GraphError(500, 1, DEFAULT_MESSAGES[1], is_transient=True)


def invalid_cursor() -> GraphError:
    """v24.0+ answer to a ``before``/``after`` cursor the edge no longer accepts (facts §4.1).

    The code is documented; the message text is the simulator's wording (not in the facts).
    """
    return GraphError(
        400,
        131059,
        "(#131059) Invalid pagination cursor. Repeat the request without the before or after "
        "cursor to get fresh cursors.",
    )
