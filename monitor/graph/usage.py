"""Parsing of the Graph usage headers, which say how close a caller is to being throttled.

Both headers are JSON whose shape Meta documents loosely; anything unreadable is ignored
rather than allowed to fail a poll.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

MEASURES = ("call_count", "total_cputime", "total_time")


@dataclass(frozen=True, slots=True)
class BucUsage:
    """One entry of ``X-Business-Use-Case-Usage``: percentages of the hourly allowance."""

    object_id: str
    type: str
    call_count: float
    total_cputime: float
    total_time: float
    regain_access_seconds: float  # the header gives minutes

    @property
    def max_ratio(self) -> float:
        return max(self.call_count, self.total_cputime, self.total_time) / 100.0


@dataclass(frozen=True, slots=True)
class AppUsage:
    call_count: float
    total_cputime: float
    total_time: float


def _number(value: object) -> float:
    """A finite, non-negative reading; anything else counts as 0 (no information)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


def parse_buc_usage(header: str | None) -> tuple[BucUsage, ...]:
    if not header:
        return ()
    try:
        data = json.loads(header)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(data, Mapping):
        return ()
    out: list[BucUsage] = []
    for object_id, entries in data.items():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            kind = entry.get("type")
            out.append(
                BucUsage(
                    object_id=str(object_id),
                    type=kind if isinstance(kind, str) else "unknown",
                    call_count=_number(entry.get("call_count")),
                    total_cputime=_number(entry.get("total_cputime")),
                    total_time=_number(entry.get("total_time")),
                    regain_access_seconds=_number(entry.get("estimated_time_to_regain_access"))
                    * 60.0,
                )
            )
    return tuple(out)


def parse_app_usage(header: str | None) -> AppUsage | None:
    if not header:
        return None
    try:
        data = json.loads(header)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, Mapping):
        return None
    return AppUsage(
        call_count=_number(data.get("call_count")),
        total_cputime=_number(data.get("total_cputime")),
        total_time=_number(data.get("total_time")),
    )
