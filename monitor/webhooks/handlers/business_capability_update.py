"""``business_capability_update``: the only place Meta publishes the registered-number cap.

Unlike the other fields this one is applied directly (``learn_cap``), not as a re-poll: the
Graph API has nothing to re-read.
"""

from __future__ import annotations

from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text, parse_cap

FIELD = "business_capability_update"
# The business-wide cap wins; the per-WABA one is passed on only when no usable
# business-wide value is present (the daemon decides what a per-WABA cap means).
CAP_FIELDS = ("max_phone_numbers_per_business", "max_phone_numbers_per_waba")


def handle(change: WebhookChange, sink: WebhookSink) -> Outcome:
    """Learn the first usable cap; invalid when caps are present but none is usable."""
    invalid: list[str] = []
    for key in CAP_FIELDS:
        if key not in change.value:
            continue
        cap = parse_cap(change.value[key])
        if cap is None:
            invalid.append(key)
            continue
        sink.learn_cap(waba_id=change.waba_id, cap=cap, source_field=key)
        return Outcome.applied(cap=cap, source_field=key, invalid_fields=invalid or None)
    if invalid:
        return Outcome.invalid(
            "cap is not a positive integer",
            invalid_fields=invalid,
            values=[log_text(change.value[k]) for k in invalid],
        )
    return Outcome.ignored(
        "no phone-number cap in this update",
        keys=[log_text(k) for k in sorted(change.value)[:10]],
    )
