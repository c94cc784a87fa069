"""What the three template fields share: the template's id and language as Graph reads spell
them, and staging the fact for the WABA (durable before the 200, like every webhook fact)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from monitor.accounts import TemplateFact, text
from monitor.webhooks.contract import Outcome, WebhookSink
from monitor.webhooks.envelope import WebhookChange, log_text
from monitor.webhooks.handlers._facts import event_time, remembered

MAX_TEMPLATES = 20_000  # template facts kept per WABA (a bound, not a policy)


def template_id(value: Mapping[str, Any]) -> str | None:
    """A JSON number in webhooks, a numeric string in reads: compared as strings."""
    raw = value.get("message_template_id")
    if isinstance(raw, bool):
        return None
    return text(raw)


def stage(change: WebhookChange, sink: WebhookSink, ident: str, **updates: Any) -> Outcome:
    """Fold ``updates`` into the template's fact and stage the WABA's facts."""
    value = change.value
    event = next((value.get(k) for k in ("event", "new_quality_score", "correct_category",
                                         "new_category") if value.get(k) is not None), None)
    details = {"event_value": log_text(event), "template_id": log_text(ident),
               "template_name": log_text(value.get("message_template_name"))}
    owner = sink.owner_of(change.waba_id)
    if owner is None:
        return Outcome.ignored("WABA not watched by this process", **details)
    facts = sink.waba_facts(change.waba_id)
    at = event_time(change, sink)
    old = facts.templates.get(ident)
    if old is None and len(facts.templates) >= MAX_TEMPLATES:
        return Outcome.ignored("too many templates remembered for this WABA", **details)
    language = text(value.get("message_template_language"))
    fact = dataclasses.replace(
        old or TemplateFact(at=at), at=max(at, old.at if old else at),
        name=text(value.get("message_template_name"), 512) or (old.name if old else None),
        language=language.replace("-", "_") if language else (old.language if old else None),
        **updates)
    templates = {**facts.templates, ident: fact}
    sink.stage_waba_facts(change.waba_id,
                          remembered(dataclasses.replace(facts, templates=templates), change))
    return Outcome.applied(**details, business_id=owner)
