"""Cursor paging like Graph's: opaque cursors, ``limit`` 25 by default and at most 100.

Cursors encode an offset plus the edge they belong to, so a cursor from another edge (or any
garbage) is rejected with code 100, the way Graph rejects cursors it did not issue.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_SALT = "wsim1"
_INTEGER = re.compile(r"-?[0-9]{1,18}")


class CursorError(ValueError):
    """A ``limit``, ``after`` or ``before`` value Graph would reject."""


@dataclass(frozen=True, slots=True)
class Window:
    """Items ``[start, stop)`` of the edge make up the page."""

    start: int
    stop: int


def encode_cursor(scope: str, offset: int) -> str:
    """Opaque cursor for item ``offset`` of the edge named by ``scope``."""
    raw = f"{_SALT}:{scope}:{offset}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(scope: str, cursor: str) -> int:
    """Offset encoded in ``cursor``; CursorError when it is not one we issued for ``scope``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
        salt, cursor_scope, offset_text = text.rsplit(":", 2)
        offset = int(offset_text)
    except (ValueError, UnicodeError, binascii.Error):
        raise CursorError("invalid cursor") from None
    if salt != _SALT or cursor_scope != scope or offset < -1:
        raise CursorError("invalid cursor")
    return offset


def parse_limit(raw: str | None) -> int:
    """``limit`` as Graph treats it: default 25, clamped to 100, < 1 or non-integer rejected."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise CursorError(f"Param limit must be a positive integer, got {raw[:40]!r}")
    value = int(text)
    if value < 1:
        raise CursorError("Param limit must be a positive integer")
    return min(value, MAX_LIMIT)


def window(total: int, limit: int, *, after: int | None, before: int | None) -> Window:
    """Which items a page shows: after the ``after`` offset, else ending before ``before``."""
    if after is not None:
        start = after + 1
    elif before is not None:
        start = max(0, before - limit)
        return Window(start, min(before, total, start + limit))
    else:
        start = 0
    start = min(start, total)
    return Window(start, min(total, start + limit))
