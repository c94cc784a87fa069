"""How often a WABA may be polled without eating its Graph API allowance.

Meta counts Business Use Case calls per app per WABA over a rolling hour: 200 by default, 5,000
once the WABA has a registered number. The monitor keeps its own calls under a configurable
share of that (the rest is the business's own traffic), slows a WABA down while the usage
header says the bucket is filling, and waits out a throttle. Each WABA is paced on its own, so
one busy WABA never slows another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.model import PhoneNumber

DEFAULT_ALLOWANCE = 200
ACTIVE_ALLOWANCE = 5_000
SLOWDOWN_FACTOR = 2.0
MAX_SLOWDOWN = 16.0


@dataclass(frozen=True, slots=True)
class Pace:
    allowance_per_hour: int
    interval: float  # seconds between polls of this WABA
    calls_per_hour: float  # what this cadence spends
    slowdown: float  # 1 when the usage header is calm


def allowance(numbers: Iterable[PhoneNumber]) -> int:
    """5,000 for an "active" WABA (a registered number), else 200."""
    return ACTIVE_ALLOWANCE if any(n.registered for n in numbers) else DEFAULT_ALLOWANCE


def pace(
    *,
    numbers: Iterable[PhoneNumber],
    calls_per_poll: int,
    scan_interval: float,
    share: float,
    usage_ratio: float | None,
    threshold: float,
    previous_slowdown: float = 1.0,
) -> Pace:
    """The interval for a WABA's next polls.

    Never faster than ``scan_interval``; never more calls an hour than ``share`` of the
    allowance (``share`` 0: no such limit); and, while the usage header is above
    ``threshold``, twice as slow again each poll (up to 16x), easing back by half each poll
    once it is below.
    """
    limit = allowance(numbers)
    calls = max(1, calls_per_poll)
    budget_interval = 3600.0 * calls / (limit * share) if share > 0 else 0.0
    if usage_ratio is not None and usage_ratio > threshold:
        slowdown = min(MAX_SLOWDOWN, previous_slowdown * SLOWDOWN_FACTOR)
    else:
        slowdown = max(1.0, previous_slowdown / SLOWDOWN_FACTOR)
    interval = max(scan_interval, budget_interval) * slowdown
    return Pace(allowance_per_hour=limit, interval=interval,
                calls_per_hour=3600.0 * calls / interval, slowdown=slowdown)
