"""Registration-cap resolution for a business portfolio.

The Graph API does not return the cap. Meta's rule: a new portfolio may register 2 numbers;
once the business is verified or reaches the 2,000 messaging limit, 20. So, in order: the
configured integer, a value learned from a ``business_capability_update`` webhook, else the
rule applied to what the polls saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.model import MESSAGING_LIMIT_PER_DAY, BusinessState, PhoneNumber, WabaState

NEW_PORTFOLIO_CAP = 2
SCALED_CAP = 20
SCALING_LIMIT_PER_DAY = 2_000.0


def portfolio_limit(business: BusinessState, numbers: Iterable[PhoneNumber]) -> str | None:
    """The portfolio's shared messaging limit: as read from its node (or a WABA node) or told
    by webhook, else what its numbers report (each reports the shared value since Oct 2025;
    the most common one wins, should a legacy per-number value linger)."""
    if business.messaging_limit is not None:
        return business.messaging_limit
    seen = Counter(n.messaging_limit for n in numbers if n.messaging_limit)
    return seen.most_common(1)[0][0] if seen else None


def resolve_cap(business: BusinessState, numbers: Iterable[PhoneNumber]) -> tuple[int, str]:
    """The cap and the source that decided it: config, webhook, inferred or default."""
    if business.configured_cap is not None:
        return business.configured_cap, "config"
    if business.learned_cap is not None:
        return business.learned_cap, "webhook"
    if business.verified:
        return SCALED_CAP, "inferred"
    numbers = list(numbers)
    limits = [MESSAGING_LIMIT_PER_DAY.get(n.messaging_limit or "") for n in numbers]
    if business.messaging_limit is not None:
        limits.append(MESSAGING_LIMIT_PER_DAY.get(business.messaging_limit))
    known = [limit for limit in limits if limit is not None]
    if any(limit >= SCALING_LIMIT_PER_DAY for limit in known):
        return SCALED_CAP, "inferred"
    if known or business.verified is False:
        return NEW_PORTFOLIO_CAP, "inferred"
    return NEW_PORTFOLIO_CAP, "default"


@dataclass(frozen=True, slots=True)
class BusinessSummary:
    """A business portfolio added up over its WABAs, once per change of any of them.

    The exposition, the status page and ``check`` all read this one value, so they cannot
    disagree about the cap or the count, and nobody walks every number on each read.
    """

    business_id: str
    registered: int  # registered phone numbers (they count toward the cap)
    numbers: int  # phone numbers known across its WABAs
    cap: int
    cap_source: str  # config | webhook | inferred | default
    wabas: int
    wabas_up: int
    messaging_limit: str | None = None  # the portfolio's shared limit (TIER_*), when known
    messaging_limit_source: str | None = None  # business | waba | webhook | numbers
    verification_status: str | None = None
    identity_check_required: bool = False


def summarize(business: BusinessState, wabas: Iterable[WabaState]) -> BusinessSummary:
    """The summary of ``business`` given the current state of every WABA it owns."""
    states = list(wabas)
    numbers = [n for waba in states for n in waba.numbers]
    cap, source = resolve_cap(business, numbers)
    return BusinessSummary(
        business_id=business.business_id,
        registered=sum(1 for n in numbers if n.registered),
        numbers=len(numbers),
        cap=cap,
        cap_source=source,
        wabas=len(states),
        wabas_up=sum(1 for w in states if w.up),
        messaging_limit=portfolio_limit(business, numbers),
        messaging_limit_source=business.messaging_limit_source or (
            "numbers" if any(n.messaging_limit for n in numbers) else None),
        verification_status=business.verification_status,
        identity_check_required=business.identity_check_required,
    )
