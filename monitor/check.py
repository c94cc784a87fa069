"""``waba-monitor check``: one poll of everything, a verdict, and a Nagios exit code.

The verdict rules mirror the shipped alerts, so a cron job or a Nagios check and the
Prometheus alerts agree about what is wrong.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.accounts import review_status
from monitor.model import PhoneNumber
from monitor.store import Store


class Level(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    business_id: str
    waba_id: str | None
    phone_number_id: str | None
    problem: str


def number_findings(business_id: str, waba_id: str, n: PhoneNumber) -> list[Finding]:
    """A number's problems by the rules of the shipped alerts; a SANDBOX number never makes
    anything critical (its critical problems are warnings, as its alerts are)."""
    found: list[tuple[Level, str]] = []
    if n.status is not None and n.status != "CONNECTED":
        found.append((Level.CRITICAL, f"status {n.status}"))
    if n.quality_rating == "RED":
        found.append((Level.CRITICAL, "quality RED"))
    elif n.quality_rating == "YELLOW":
        found.append((Level.WARNING, "quality YELLOW"))
    if n.name_status == "DECLINED":
        found.append((Level.WARNING, "display name DECLINED"))
    elif n.name_status == "EXPIRED" and n.registered is not True:
        found.append((Level.WARNING, "display-name certificate EXPIRED (not registered yet)"))
    if n.health_status == "BLOCKED":
        found.append((Level.CRITICAL, "cannot send messages (BLOCKED)"))
    elif n.health_status == "LIMITED":
        found.append((Level.WARNING, "can send messages only LIMITED"))
    if n.pin_enabled is False and n.registered is not False:
        found.append((Level.WARNING, "two-step verification off"))
    if n.callback_matches is False:
        found.append((Level.WARNING, "webhooks go to another callback URL"
                      + (f" ({n.callback_origin})" if n.callback_origin else "")))
    sandbox = n.account_mode == "SANDBOX"
    return [Finding(Level.WARNING if sandbox and level is Level.CRITICAL else level,
                    business_id, waba_id, n.id, text + (" [SANDBOX]" if sandbox else ""))
            for level, text in found]


DAY = 86_400.0
PIN_RESET_EVENTS = frozenset({"PIN_RESET_REQUEST", "PIN_REQUEST_SUCCESS", "PIN_RESET_SUCCESS"})


def waba_findings(store: Store, business_id: str, waba_id: str, now: float) -> list[Finding]:
    """Account-level problems of a WABA, by the rules of the shipped account alerts: disabled,
    scheduled for disabling, restricted or unable to send is critical; review not approved,
    limited sending or a recent warning from Meta is a warning."""
    node, facts = store.waba_node(waba_id), store.waba_facts(waba_id)
    found: list[tuple[Level, str]] = []
    if facts is not None and facts.ban_state == "DISABLE":
        found.append((Level.CRITICAL, "WABA disabled by Meta"))
    elif facts is not None and facts.ban_state == "SCHEDULE_FOR_DISABLE":
        when = f" on {facts.ban_date_text}" if facts.ban_date_text else ""
        found.append((Level.CRITICAL, f"WABA scheduled for disabling{when}"))
    for restriction in facts.active_restrictions(now) if facts else ():
        until = ("no end given" if restriction.expires_at is None else
                 "until " + datetime.fromtimestamp(restriction.expires_at, UTC).strftime(
                     "%Y-%m-%d %H:%M UTC"))
        found.append((Level.CRITICAL, f"restricted: {restriction.restriction_type} ({until})"))
    review = review_status(node, facts)
    if review is not None and review != "APPROVED":
        found.append((Level.WARNING, f"account review {review}"))
    if node is not None and node.can_send_message in ("BLOCKED", "LIMITED"):
        errors = ", ".join(f"{e.entity_type} {e.entity_id} error {e.error_code}"
                           for e in node.health_errors) or "no error given"
        level = Level.CRITICAL if node.can_send_message == "BLOCKED" else Level.WARNING
        found.append((level, f"WABA can send messages: {node.can_send_message} ({errors})"))
    for template in store.effective_templates(waba_id):
        label = f"template {template.name or template.id} ({template.language or '?'})"
        if template.status == "DISABLED":
            found.append((Level.CRITICAL, f"{label} DISABLED"))
        elif template.status == "PAUSED":
            found.append((Level.WARNING, f"{label} PAUSED"))
        elif template.quality == "RED":
            found.append((Level.WARNING, f"{label} quality RED"))
    if store.subscription(waba_id) is False:
        found.append((Level.CRITICAL, "our app is not subscribed: no webhook arrives"))
    out = [Finding(level, business_id, waba_id, None, text) for level, text in found]
    return out + security_findings(store, business_id, waba_id, now)


def security_findings(store: Store, business_id: str, waba_id: str,
                      now: float) -> list[Finding]:
    """A PIN reset asked for (or done) in the last day is critical (a warning for SANDBOX
    numbers); the identity check off where the business requires it, a warning."""
    state, facts = store.waba(waba_id), store.waba_facts(waba_id)
    if state is None:
        return []
    numbers = {n.id: n for n in state.numbers}
    out: list[Finding] = []
    for number_id, events in (facts.security_events.items() if facts else ()):
        number = numbers.get(number_id)
        recent = [e for e, at in events.items() if e in PIN_RESET_EVENTS and now - at < DAY]
        if number is None or not recent:
            continue
        level = Level.WARNING if number.account_mode == "SANDBOX" else Level.CRITICAL
        out.append(Finding(level, business_id, waba_id, number_id,
                           f"PIN reset: {', '.join(sorted(recent))} in the last 24 h"))
    summary = store.summary(business_id)
    if summary is not None and summary.identity_check_required:
        for number_id, enabled in store.number_settings(waba_id).items():
            if not enabled and number_id in numbers:
                out.append(Finding(Level.WARNING, business_id, waba_id, number_id,
                                   "identity change check off (required)"))
    return out


def alert_findings(store: Store, business_id: str, now: float) -> list[Finding]:
    """Meta's account alerts of the last 24 h (as WhatsAppAccountAlert): CRITICAL ones are
    critical, informational ones are left out, any other a warning."""
    out: list[Finding] = []
    for alert in store.account_alerts(business_id):
        if now - alert.at > DAY or alert.alert_severity == "INFORMATIONAL":
            continue
        level = Level.CRITICAL if alert.alert_severity == "CRITICAL" else Level.WARNING
        out.append(Finding(level, business_id, None, None,
                           f"account alert {alert.alert_type} ({alert.entity_type} "
                           f"{alert.entity_id})"))
    return out


def approaching(registered: int, cap: int) -> bool:
    """Same threshold as WhatsAppRegistrationCapApproaching: within 20% (at least 1) of cap."""
    margin = max(1, -(-cap * 2 // 10))
    return registered >= cap - margin


def evaluate(store: Store, now: float | None = None) -> list[Finding]:
    at = time.time() if now is None else now
    findings: list[Finding] = []
    for summary in store.summaries():
        business_id, registered, cap = summary.business_id, summary.registered, summary.cap
        if registered >= cap:
            findings.append(Finding(Level.CRITICAL, business_id, None, None,
                                    f"registration cap reached ({registered}/{cap})"))
        elif approaching(registered, cap):
            findings.append(Finding(Level.WARNING, business_id, None, None,
                                    f"registration cap approaching ({registered}/{cap})"))
        findings.extend(alert_findings(store, business_id, at))
        for waba in store.business_wabas(business_id):
            if not waba.up:
                findings.append(Finding(Level.WARNING, business_id, waba.waba_id, None,
                                        f"poll failed ({waba.last_error or 'not polled'})"))
            findings.extend(waba_findings(store, business_id, waba.waba_id, at))
            for number in waba.numbers:
                findings.extend(number_findings(business_id, waba.waba_id, number))
    return findings


def exit_level(store: Store, findings: list[Finding]) -> Level:
    wabas = store.wabas()
    if not wabas or not any(w.up for w in wabas):
        return Level.UNKNOWN
    return max((f.level for f in findings), default=Level.OK)


def render_table(store: Store, findings: list[Finding]) -> str:
    by_number: dict[str, list[str]] = {}
    for f in findings:
        if f.phone_number_id:
            by_number.setdefault(f.phone_number_id, []).append(f.problem)
    header = ("BUSINESS", "WABA", "NUMBER ID", "DISPLAY NUMBER", "VERIFIED NAME", "STATUS",
              "QUALITY", "NAME STATUS", "THROUGHPUT", "LIMIT", "CAN SEND", "PROBLEMS")
    rows: list[tuple[str, ...]] = [header]
    for waba in store.wabas():
        for n in waba.numbers:
            rows.append((waba.business_id, waba.waba_id, n.id, n.display_phone_number or "-",
                         (n.verified_name or "-")[:30], n.status or "-", n.quality_rating or "-",
                         n.name_status or "-", n.throughput_level or "-", n.messaging_limit or "-",
                         n.health_status or "-", "; ".join(by_number.get(n.id, [])) or "ok"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.append("")
    for s in store.summaries():
        lines.append(f"business {s.business_id}: {s.registered}/{s.cap} registered "
                     f"(cap from {s.cap_source}), {s.numbers} numbers, "
                     f"{s.wabas_up}/{s.wabas} WABAs polled")
    for f in findings:
        if f.phone_number_id is None:
            where = f.business_id + (f" WABA {f.waba_id}" if f.waba_id else "")
            lines.append(f"{f.level.name}: {where}: {f.problem}")
    return "\n".join(lines) + "\n"


def render_json(store: Store, findings: list[Finding], level: Level) -> str:
    doc = {
        "status": level.name,
        "exit_code": int(level),
        "businesses": [
            {
                "business_id": b.business_id,
                "registered_phone_numbers": b.registered,
                "registered_phone_numbers_cap": b.cap,
                "wabas": [
                    {
                        "waba_id": w.waba_id,
                        "up": w.up,
                        "last_error": w.last_error,
                        "numbers": [
                            {
                                "id": n.id,
                                "display_phone_number": n.display_phone_number,
                                "verified_name": n.verified_name,
                                "status": n.status,
                                "quality_rating": n.quality_rating,
                                "name_status": n.name_status,
                                "throughput_level": n.throughput_level,
                                "messaging_limit": n.messaging_limit,
                                "health_status": n.health_status,
                                "platform_type": n.platform_type,
                                "registered": n.registered,
                            }
                            for n in w.numbers
                        ],
                    }
                    for w in store.business_wabas(b.business_id)
                ],
            }
            for b in store.summaries()
        ],
        "findings": [
            {"level": f.level.name, "business_id": f.business_id, "waba_id": f.waba_id,
             "phone_number_id": f.phone_number_id, "problem": f.problem}
            for f in findings
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
