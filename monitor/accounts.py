"""Portfolio and WABA health as Meta has defined it since 7 October 2025: values and parsers.

The messaging limit belongs to the business portfolio (shared by its numbers); what stops a
business from messaging is told at the WABA and portfolio level: the WABA node
(``account_review_status``, ``health_status``) read at the discovery cadence, and webhooks
(``account_update``, ``account_review_update``, ``account_alerts``) that nothing else repeats.
Webhook-only facts live in :class:`WabaFacts` and :class:`AccountAlert`, which the state file
keeps durably. Every enum is open: an unknown value is kept as it came. Parsers never raise on
an odd value; they keep what they can read (Meta redelivers a refused webhook for days).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from monitor.model import HealthError, Transition, api_major, parse_health_errors

KNOWN_REVIEW_STATUS = ("APPROVED", "PENDING", "REJECTED", "DEFERRED")
KNOWN_BAN_STATE = ("SCHEDULE_FOR_DISABLE", "DISABLE", "REINSTATE")
KNOWN_VERIFICATION_STATUS = (
    "verified", "not_verified", "pending", "pending_need_more_info", "pending_submission",
    "rejected", "failed", "expired", "ineligible", "revoked",
)
KNOWN_LIMIT_TIER = ("TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED")
# Integers Meta sends for the limit in business_capability_update (-1 = unlimited).
_LIMIT_BY_NUMBER = {250: "TIER_250", 2000: "TIER_2K", 10000: "TIER_10K", 100000: "TIER_100K",
                    -1: "TIER_UNLIMITED"}
MAX_TEXT = 64  # longest enum value kept; anything longer is cut (labels stay bounded)

WABA_NODE_FIELDS: tuple[str, ...] = (
    "id", "name", "ownership_type", "timezone_id", "account_review_status",
    "business_verification_status", "health_status", "owner_business_info",
    "whatsapp_business_manager_messaging_limit",
)
LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"  # v24.0 and newer


def business_node_fields(api_version: str) -> tuple[str, ...]:
    """What to read from the business node: the limit field exists from v24.0 on."""
    base = ("id", "verification_status")
    return (*base, LIMIT_FIELD) if api_major(api_version) >= 24 else base


def text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A short string from a scalar; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    out = str(value).strip()
    return out[:limit] if out else None


def limit_tier(value: object) -> str | None:
    """A messaging limit as a TIER_* string, from a string or Meta's integer form."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _LIMIT_BY_NUMBER.get(value, f"TIER_{value}" if value > 0 else None)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return limit_tier(int(value.strip()))
    return text(value)


def timestamp(value: object) -> float | None:
    """Unix seconds from an int, a digit string, ISO 8601 text or Meta's "April 17, 2025"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        stamp = float(value)
        return stamp if math.isfinite(stamp) and 0 < stamp < 1e11 else None
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    raw = value.strip()
    if raw.isdigit():
        return timestamp(int(raw))
    for parse in (_iso, _display_date):
        found = parse(raw)
        if found is not None:
            return found
    return None


def _iso(raw: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _display_date(raw: str) -> float | None:
    for fmt in ("%B %d, %Y", "%b %d, %Y", "%d %B %Y"):
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


# --- nodes ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WabaNode:
    """``GET /{WABA_ID}``: descriptive facts, review and health, read at discovery cadence."""

    name: str | None = None
    ownership_type: str | None = None
    timezone_id: str | None = None
    account_review_status: str | None = None
    business_verification_status: str | None = None
    can_send_message: str | None = None
    health_errors: tuple[HealthError, ...] = ()
    owner_business_id: str | None = None
    messaging_limit: str | None = None
    read_at: float = 0.0


def parse_waba_node(raw: Mapping[str, Any], at: float) -> WabaNode:
    health = raw.get("health_status")
    owner = raw.get("owner_business_info")
    return WabaNode(
        name=text(raw.get("name"), 256),
        # Enum-like values and the owner's id (one per business) are shared: WABA nodes
        # are read for a whole fleet and kept until the next discovery read.
        ownership_type=_shared(text(raw.get("ownership_type"))),
        timezone_id=_shared(text(raw.get("timezone_id"))),
        account_review_status=_shared(text(raw.get("account_review_status"))),
        business_verification_status=_shared(text(raw.get("business_verification_status"))),
        can_send_message=_shared(text(health.get("can_send_message")))
        if isinstance(health, Mapping) else None,
        health_errors=parse_health_errors(health),
        owner_business_id=_shared(text(owner.get("id"))) if isinstance(owner, Mapping)
        else None,
        messaging_limit=_shared(limit_tier(raw.get("whatsapp_business_manager_messaging_limit"))),
        read_at=at,
    )


@dataclass(frozen=True, slots=True)
class BusinessNode:
    """``GET /{BUSINESS_ID}``: verification and the portfolio's shared messaging limit."""

    verification_status: str | None = None
    messaging_limit: str | None = None


def parse_business_node(raw: Mapping[str, Any]) -> BusinessNode:
    status = text(raw.get("verification_status"))
    return BusinessNode(
        verification_status=status.lower() if status else None,
        messaging_limit=limit_tier(raw.get("whatsapp_business_manager_messaging_limit")),
    )


# --- what only webhooks tell ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Restriction:
    restriction_type: str
    expires_at: float | None  # None: Meta gave no end (exported as +Inf)


@dataclass(frozen=True, slots=True)
class WabaFacts:
    """A WABA's webhook-only facts: enforcement, review decision, per-WABA number cap."""

    ban_state: str | None = None
    ban_date: float | None = None
    ban_date_text: str | None = None
    restrictions: tuple[Restriction, ...] = ()
    violations: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, float] = field(default_factory=dict)  # event -> last time
    review_status: str | None = None
    review_at: float | None = None
    phone_numbers_cap: int | None = None
    # phone_number_id -> security event (PIN_CHANGED, PIN_RESET_REQUEST, ...) -> last time
    security_events: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # phone_number_id -> (decision, rejection reason) of the last display-name decision
    name_decisions: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    # template id -> what the template webhooks last told of it
    templates: Mapping[str, TemplateFact] = field(default_factory=dict)
    applied: tuple[str, ...] = ()  # keys of the last changes applied: redeliveries after a
    # restart (Meta retries for days) are recognised, so counters do not count twice

    def seen(self, key: str) -> bool:
        return key in self.applied

    def remember(self, key: str) -> WabaFacts:
        return replace(self, applied=(*self.applied, key)[-APPLIED_KEYS:])

    def active_restrictions(self, now: float) -> tuple[Restriction, ...]:
        return tuple(r for r in self.restrictions if r.expires_at is None or r.expires_at > now)


@dataclass(frozen=True, slots=True)
class AccountAlert:
    """The last ``account_alerts`` event of one type for one entity of a portfolio."""

    business_id: str
    entity_type: str
    entity_id: str
    alert_type: str
    alert_severity: str
    alert_status: str | None
    at: float

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.business_id, self.entity_type, self.entity_id, self.alert_type,
                self.alert_severity)


APPLIED_KEYS = 64  # change keys remembered per WABA
MAX_NAME_DECISIONS = 10_000  # numbers per WABA whose security or name facts are kept
MAX_EVENT_KINDS = 64  # distinct event / violation types kept per WABA (labels stay bounded)


def _bounded(mapping: Mapping[str, Any], key: str) -> bool:
    return key in mapping or len(mapping) < MAX_EVENT_KINDS


def apply_account_update(facts: WabaFacts, value: Mapping[str, Any], at: float) -> WabaFacts:
    """Fold one ``account_update`` change into a WABA's facts (facts §2.3).

    ``restriction_info`` — not the event name — decides whether the WABA is restricted now:
    Direct Send enforcement arrives as ACCOUNT_RESTRICTION both with and without it.
    """
    event = text(value.get("event")) or "UNKNOWN"
    events = dict(facts.events)
    if _bounded(events, event):
        events[event] = at
    out = replace(facts, events=events)
    violation = value.get("violation_info")
    if isinstance(violation, Mapping):
        kind = text(violation.get("violation_type"))
        if kind and event in ("ACCOUNT_VIOLATION", "ACCOUNT_RESTRICTION"):
            counts = dict(out.violations)
            if _bounded(counts, kind):
                counts[kind] = counts.get(kind, 0) + 1
            out = replace(out, violations=counts)
    if event == "ACCOUNT_RESTRICTION":
        info = value.get("restriction_info")
        if isinstance(info, list):
            found = [Restriction(kind, timestamp(entry.get("expiration")))
                     for entry in info if isinstance(entry, Mapping)
                     and (kind := text(entry.get("restriction_type")))]
            out = replace(out, restrictions=_merge_restrictions(out.restrictions, found))
        elif info is None and isinstance(violation, Mapping):
            kind = text(violation.get("violation_type")) or ""
            if kind.endswith(("_UNBAN", "_RATE_LIMIT_RECOVERY")):
                out = replace(out, restrictions=())  # Direct Send: the restriction is lifted
    if event == "DISABLED_UPDATE":
        ban = value.get("ban_info")
        if isinstance(ban, Mapping):
            state = text(ban.get("waba_ban_state"))
            raw_date = text(ban.get("waba_ban_date"), 64)
            if state:
                out = replace(out, ban_state=state, ban_date_text=raw_date,
                              ban_date=timestamp(ban.get("waba_ban_date")))
    return out


def _merge_restrictions(old: tuple[Restriction, ...],
                        new: list[Restriction]) -> tuple[Restriction, ...]:
    """The newest word on each restriction type wins; others stay until they expire."""
    merged = {r.restriction_type: r for r in old}
    for restriction in new:
        if restriction.restriction_type in merged or len(merged) < MAX_EVENT_KINDS:
            merged[restriction.restriction_type] = restriction
    return tuple(merged[k] for k in sorted(merged))


def record_security_event(facts: WabaFacts, phone_number_id: str, event: str,
                          at: float) -> WabaFacts:
    """The last time of each security event of a number (bounded per WABA)."""
    numbers = dict(facts.security_events)
    events = dict(numbers.get(phone_number_id, {}))
    if (phone_number_id not in numbers and len(numbers) >= MAX_NAME_DECISIONS) or not _bounded(
            events, event):
        return facts
    events[event] = max(at, events.get(event, at))
    numbers[phone_number_id] = events
    return replace(facts, security_events=numbers)


def record_name_decision(facts: WabaFacts, phone_number_id: str, decision: str,
                         reason: str | None) -> WabaFacts:
    """The last display-name decision of a number, with Meta's rejection reason."""
    decisions = dict(facts.name_decisions)
    if phone_number_id not in decisions and len(decisions) >= MAX_NAME_DECISIONS:
        return facts
    decisions[phone_number_id] = (decision, reason)
    return replace(facts, name_decisions=decisions)


def apply_review(facts: WabaFacts, value: Mapping[str, Any], at: float) -> WabaFacts | None:
    """``account_review_update``: the decision applies at once; None if it has none."""
    decision = text(value.get("decision"))
    if decision is None:
        return None
    return replace(facts, review_status=decision, review_at=at)


def parse_account_alert(business_id: str, value: Mapping[str, Any],
                        at: float) -> AccountAlert | None:
    """``account_alerts`` (facts §2.4): ``entity_id`` is a portfolio or phone-number **id**."""
    info = value.get("alert_info")
    if not isinstance(info, Mapping):
        return None
    kind = text(value.get("entity_type"))
    ident = text(value.get("entity_id"))
    alert_type = text(info.get("alert_type"))
    if kind is None or alert_type is None:
        return None
    return AccountAlert(
        business_id=business_id,
        entity_type=kind,
        entity_id=ident or business_id,
        alert_type=alert_type,
        alert_severity=text(info.get("alert_severity")) or "UNKNOWN",
        alert_status=text(info.get("alert_status")),
        at=at,
    )


def review_status(node: WabaNode | None, facts: WabaFacts | None) -> str | None:
    """The newer of the node's ``account_review_status`` and the last review webhook."""
    from_node = node.account_review_status if node else None
    if facts is None or facts.review_status is None:
        return from_node
    if from_node is None or node is None or (facts.review_at or 0.0) >= node.read_at:
        return facts.review_status
    return from_node


def facts_to_json(facts: WabaFacts) -> dict[str, Any]:
    return {
        "ban_state": facts.ban_state, "ban_date": facts.ban_date,
        "ban_date_text": facts.ban_date_text,
        "restrictions": [[r.restriction_type, r.expires_at] for r in facts.restrictions],
        "violations": dict(facts.violations), "events": dict(facts.events),
        "review_status": facts.review_status, "review_at": facts.review_at,
        "phone_numbers_cap": facts.phone_numbers_cap, "applied": list(facts.applied),
        "security_events": {k: dict(v) for k, v in facts.security_events.items()},
        "name_decisions": {k: list(v) for k, v in facts.name_decisions.items()},
        "templates": {k: template_fact_to_json(v) for k, v in facts.templates.items()},
    }


def facts_from_json(raw: Mapping[str, Any]) -> WabaFacts:
    """Inverse of :func:`facts_to_json`; raises ValueError/TypeError on a broken row."""
    return WabaFacts(
        ban_state=raw.get("ban_state"), ban_date=raw.get("ban_date"),
        ban_date_text=raw.get("ban_date_text"),
        restrictions=tuple(Restriction(str(k), None if e is None else float(e))
                           for k, e in raw.get("restrictions") or ()),
        violations={str(k): int(v) for k, v in (raw.get("violations") or {}).items()},
        events={str(k): float(v) for k, v in (raw.get("events") or {}).items()},
        review_status=raw.get("review_status"), review_at=raw.get("review_at"),
        phone_numbers_cap=raw.get("phone_numbers_cap"),
        applied=tuple(str(k) for k in raw.get("applied") or ()),
        security_events={str(n): {str(e): float(t) for e, t in events.items()}
                         for n, events in (raw.get("security_events") or {}).items()},
        name_decisions={str(n): (str(d[0]), None if d[1] is None else str(d[1]))
                        for n, d in (raw.get("name_decisions") or {}).items()},
        templates={str(k): template_fact_from_json(v)
                   for k, v in (raw.get("templates") or {}).items()},
    )


# --- message templates (issue 12) ------------------------------------------------------------
TEMPLATE_FIELDS: tuple[str, ...] = (
    "id", "name", "language", "status", "category", "quality_score", "rejected_reason",
    "previous_category", "correct_category",
)
KNOWN_TEMPLATE_STATUS = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL",
                         "LIMIT_EXCEEDED", "PENDING_DELETION", "DELETED", "ARCHIVED")
KNOWN_TEMPLATE_QUALITY = ("GREEN", "YELLOW", "RED", "UNKNOWN")


@dataclass(frozen=True, slots=True)
class Template:
    """One message template as the listing says (enums open, ids compared as strings)."""

    id: str
    name: str | None = None
    language: str | None = None  # en_US; webhooks' en-US is normalised to it
    status: str | None = None
    category: str | None = None
    quality: str | None = None
    rejected_reason: str | None = None
    previous_category: str | None = None
    correct_category: str | None = None  # the category it will change to, when announced

    @property
    def problem(self) -> bool:
        """Worth a series of its own in ``templates.series: problems`` mode."""
        return (self.status != "APPROVED" or self.quality not in (None, "GREEN", "UNKNOWN")
                or self.category_change_pending)

    @property
    def category_change_pending(self) -> bool:
        return self.correct_category is not None and self.correct_category != self.category


def parse_template(raw: object) -> Template | None:
    """A listing entry; None when it has no id (an odd entry never fails the listing)."""
    if not isinstance(raw, Mapping):
        return None
    ident = text(raw.get("id"))
    if ident is None:
        return None
    quality = raw.get("quality_score")
    score = text(quality.get("score")) if isinstance(quality, Mapping) else text(quality)
    language = text(raw.get("language"))
    return Template(
        id=ident, name=text(raw.get("name"), 512),
        language=_shared(language.replace("-", "_") if language else None),
        status=_shared(text(raw.get("status"))), category=_shared(text(raw.get("category"))),
        quality=_shared(score), rejected_reason=_shared(text(raw.get("rejected_reason"))),
        previous_category=_shared(text(raw.get("previous_category"))),
        correct_category=_shared(text(raw.get("correct_category"))),
    )


def _shared(value: str | None) -> str | None:
    """Enum-like values, one object each for a whole fleet (200,000 templates at 50,000
    numbers say APPROVED, GREEN, en_US... each in a string of its own when decoded)."""
    return sys.intern(value) if value is not None and len(value) <= 64 else value


PAUSE_SECONDS = {"FIRST_PAUSE": 3 * 3600.0, "SECOND_PAUSE": 6 * 3600.0}  # facts §4.3
CATEGORY_NOTICE_SECONDS = 24 * 3600.0  # a category change is announced a day ahead (§2.12)


@dataclass(frozen=True, slots=True)
class TemplateFact:
    """What the template webhooks last told of one template (applied over the last read when
    newer): status, quality, when a pause ends, an announced category change."""

    at: float
    name: str | None = None
    language: str | None = None
    status: str | None = None
    quality: str | None = None
    paused_until: float | None = None
    category: str | None = None
    new_category: str | None = None  # the category it will change to
    category_change_at: float | None = None


def template_fact_from_json(raw: Mapping[str, Any]) -> TemplateFact:
    def num(key: str) -> float | None:
        value = raw.get(key)
        return None if value is None else float(value)

    def txt(key: str) -> str | None:
        value = raw.get(key)
        return None if value is None else str(value)

    return TemplateFact(at=float(raw["at"]), name=txt("name"), language=txt("language"),
                        status=txt("status"), quality=txt("quality"),
                        paused_until=num("paused_until"), category=txt("category"),
                        new_category=txt("new_category"),
                        category_change_at=num("category_change_at"))


def template_fact_to_json(fact: TemplateFact) -> dict[str, Any]:
    return {k: getattr(fact, k) for k in TemplateFact.__dataclass_fields__}


def apply_template_fact(template: Template, fact: TemplateFact) -> Template:
    """A template as its newer webhook fact says."""
    return replace(
        template,
        status=fact.status or template.status,
        quality=fact.quality or template.quality,
        category=fact.category or template.category,
        correct_category=fact.new_category if fact.new_category is not None
        else (None if fact.category else template.correct_category),
    )


# What the transitions history follows of a template: (history field, Template attribute).
TEMPLATE_TRACKED = (("template_status", "status"), ("template_quality", "quality"),
                    ("template_category", "category"),
                    ("template_category_pending", "correct_category"))


def template_transitions(business_id: str, waba_id: str, before: Iterable[Template],
                         after: Iterable[Template], at: float) -> list[Transition]:
    """What changed between two views of a WABA's templates: a tracked field, or a template
    that appeared (``template_status`` from None) or went (``template_status`` to None)."""
    old = {t.id: t for t in before}
    out: list[Transition] = []

    def change(t: Template, name: str, was: str | None, now: str | None) -> None:
        out.append(Transition(at, business_id, waba_id, "", name, was, now,
                              template_id=t.id, template_name=t.name))

    for template in after:
        prev = old.pop(template.id, None)
        if prev is None:
            change(template, "template_status", None, template.status)
            continue
        for name, attr in TEMPLATE_TRACKED:
            was, now = getattr(prev, attr), getattr(template, attr)
            if was != now:
                change(template, name, was, now)
    for gone in old.values():
        change(gone, "template_status", gone.status, None)
    return out
