"""Injectable faults: the ways Graph (or the network in front of it) misbehaves.

A fault is an immutable description; the World keeps how many hits remain. Kinds that shape
a list page (``cursor_loop``, ``huge_page``, ``data_not_list``) only match list edges, so a
fault aimed at a WABA is not used up by a ``GET /{WABA_ID}`` node call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from .errors import DEFAULT_MESSAGES, TRANSIENT_CODES, GraphError

FaultKind = Literal[
    "http_error",
    "timeout",
    "hang",
    "reset",
    "malformed_json",
    "html_200",
    "empty_body",
    "data_not_list",
    "cursor_loop",
    "huge_page",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
PAGE_FAULT_KINDS = frozenset({"data_not_list", "cursor_loop", "huge_page"})
ANY_TARGET = "*"

MALFORMED_JSON_BODY = '{"data": [{"id": "1'
HTML_BODY = "<html><body>Sorry, something went wrong.</body></html>"


class FaultError(ValueError):
    """A fault description is invalid."""


def _empty_headers() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Fault:
    """What to break, how, and for how many hits (``count=-1``: until cleared)."""

    target: str
    kind: FaultKind
    count: int = 1
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    type: str | None = None
    is_transient: bool | None = None
    headers: Mapping[str, str] = field(default_factory=_empty_headers)
    delay: float = 30.0
    size: int = 5000
    edge: str | None = None  # only requests on this edge (e.g. "phone_numbers") are hit

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise FaultError("target: expected an object id or '*'")
        if self.kind not in FAULT_KINDS:
            raise FaultError(f"kind: {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if _not_int(self.count) or (self.count < 1 and self.count != -1):
            raise FaultError("count: expected a positive integer, or -1 for 'until cleared'")
        if self.status is not None and (_not_int(self.status) or not 100 <= self.status <= 599):
            raise FaultError("status: expected an HTTP status code (100-599)")
        for name in ("code", "subcode"):
            value = getattr(self, name)
            if value is not None and _not_int(value):
                raise FaultError(f"{name}: expected an integer")
        for name in ("message", "type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise FaultError(f"{name}: expected a string")
        if self.is_transient is not None and not isinstance(self.is_transient, bool):
            raise FaultError("is_transient: expected true or false")
        if (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, int | float)
            or not 0 <= self.delay <= 86_400
        ):
            raise FaultError("delay: expected seconds between 0 and 86400")
        if _not_int(self.size) or not 0 <= self.size <= 1_000_000:
            raise FaultError("size: expected an integer between 0 and 1000000")
        if self.edge is not None and (not isinstance(self.edge, str) or not self.edge):
            raise FaultError("edge: expected an edge name such as phone_numbers")
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise FaultError("headers: expected a mapping of strings to strings")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def matches(self, object_id: str, *, is_edge: bool, edge: str | None = None) -> bool:
        """Whether a request on ``object_id`` (an edge call or a node call) is hit."""
        if self.kind in PAGE_FAULT_KINDS and not is_edge:
            return False
        if self.edge is not None and self.edge != edge:
            return False
        return self.target in (ANY_TARGET, object_id)

    def graph_error(self) -> GraphError:
        """The error an ``http_error`` fault answers with (defaults: 500, code 2)."""
        code = 2 if self.code is None else self.code
        transient = code in TRANSIENT_CODES if self.is_transient is None else self.is_transient
        return GraphError(
            status=500 if self.status is None else self.status,
            code=code,
            message=self.message or DEFAULT_MESSAGES.get(code, f"(#{code}) Simulated error"),
            type=self.type or "OAuthException",
            subcode=self.subcode,
            is_transient=transient,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if f.name == "headers" else value
        return out

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Build from a JSON object (the control API); unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise FaultError("fault: expected a JSON object")
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise FaultError(f"fault: unknown key {key!r}; allowed: {', '.join(sorted(names))}")
        for key in ("target", "kind"):
            if key not in data:
                raise FaultError(f"fault: missing key {key!r}")
        kwargs = dict(data)
        kwargs["kind"] = cast(FaultKind, kwargs["kind"])
        if kwargs.get("headers") is None:
            kwargs.pop("headers", None)
        return cls(**kwargs)


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
