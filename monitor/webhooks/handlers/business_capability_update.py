"""``business_capability_update``: caps and the messaging limit (facts §2.6).

Every field present is read on its own (sources disagree on which arrive together):

* ``max_phone_numbers_per_business`` is the portfolio's registration cap (a learned cap,
  staged durably: the Graph API has nothing to re-read);
* ``max_phone_numbers_per_waba`` is a **per-WABA** cap (``WabaFacts.phone_numbers_cap``); it
  never sets the portfolio cap (Meta's example sends 25 there);
* ``max_daily_conversations_per_business`` (``TIER_*`` or an integer, -1 unlimited) and the
  legacy ``max_daily_conversation_per_phone`` are the portfolio's shared messaging limit,
  shown at once.

Any update applied also asks for a re-poll, which re-reads the limit from the numbers.
"""

from __future__ import annotations

import dataclasses

from monitor.accounts import limit_tier
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text, parse_cap
from monitor.webhooks.handlers._facts import remembered

FIELD = "business_capability_update"
BUSINESS_CAP = "max_phone_numbers_per_business"
WABA_CAP = "max_phone_numbers_per_waba"
CAP_FIELDS = (BUSINESS_CAP, WABA_CAP)
# The v24+ field first; the v23 one ("until February 2026") means the portfolio limit too.
LIMIT_FIELDS = ("max_daily_conversations_per_business", "max_daily_conversation_per_phone")
KNOWN_KEYS = (*CAP_FIELDS, *LIMIT_FIELDS)


def read_limit(raw: object) -> str | None:
    """A messaging limit as ``TIER_*``: a ``TIER_*`` (or other) string, or Meta's integer
    form (250, 2000, …, -1 for unlimited); None for anything else (floats included)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    return limit_tier(raw)


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Apply each usable field; invalid when fields are present but none is usable."""
    value = change.value
    present = [k for k in KNOWN_KEYS if k in value]
    if not present:
        return Outcome.ignored("no capability field in this update",
                               keys=[log_text(k) for k in sorted(value)[:10]])
    owner = sink.owner_of(change.waba_id)
    if owner is None:
        return Outcome.ignored("WABA not watched by this process",
                               fields=[log_text(k) for k in present])
    applied: dict[str, object] = {}
    invalid: list[str] = []
    business_cap = parse_cap(value[BUSINESS_CAP]) if BUSINESS_CAP in value else None
    waba_cap = parse_cap(value[WABA_CAP]) if WABA_CAP in value else None
    for key, cap in ((BUSINESS_CAP, business_cap), (WABA_CAP, waba_cap)):
        if key in value and cap is None:
            invalid.append(key)
        elif cap is not None:
            applied[key] = cap
    limit: str | None = None
    for key in LIMIT_FIELDS:
        if key not in value:
            continue
        tier = read_limit(value[key])
        if tier is None:
            invalid.append(key)
        elif limit is None:
            limit, applied[key] = tier, tier
    if not applied:
        return Outcome.invalid("no usable value", invalid_fields=invalid,
                               values=[log_text(value[k]) for k in invalid])
    if business_cap is not None:
        sink.learn_cap(waba_id=change.waba_id, cap=business_cap, source_field=BUSINESS_CAP)
    facts = sink.waba_facts(change.waba_id)
    if waba_cap is not None:
        facts = dataclasses.replace(facts, phone_numbers_cap=waba_cap)
    sink.stage_waba_facts(change.waba_id, remembered(facts, change))
    if limit is not None:
        source = next(k for k in LIMIT_FIELDS if applied.get(k) == limit)
        sink.set_messaging_limit(waba_id=change.waba_id, limit=limit, source_field=source)
    sink.request_repoll(waba_id=change.waba_id, reason=FIELD)
    return Outcome.applied(**applied, business_id=owner, invalid_fields=invalid or None)
