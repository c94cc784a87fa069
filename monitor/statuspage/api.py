"""``/api/v1/status``: the status page's model as JSON, for scripts and chat-ops.

The same model as the HTML (same problems in the same order, same folding of large fleets),
so a script sees what a person sees. The shape is documented in the README and pinned by
tests/test_status_page.py.
"""

from __future__ import annotations

from typing import Any

from monitor.statuspage.model import PAGE_SIZE, PROBLEMS_SHOWN, Problem, StatusPage, WabaRow


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "level": p.level.name.lower(), "alert": p.alert, "runbook_url": p.runbook_url,
        "problem": p.problem, "business_id": p.business_id, "waba_id": p.waba_id,
        "waba_name": p.waba_name, "phone_number_id": p.phone_number_id,
        "display_phone_number": p.display_phone_number, "verified_name": p.verified_name,
        "since": p.since, "sandbox": p.sandbox,
    }


def _waba(w: WabaRow) -> dict[str, Any]:
    return {
        "waba_id": w.waba_id, "name": w.name, "listed_under": w.via, "up": w.up,
        "polled": w.polled, "stale": w.stale, "last_success": w.last_success,
        "last_error": w.last_error, "review_status": w.review_status,
        "ban_state": w.ban_state, "restrictions": list(w.restrictions),
        "can_send_message": w.can_send_message,
        "template_problems": [
            {"id": t.id, "name": t.name, "language": t.language, "status": t.status,
             "quality": t.quality, "category": t.category,
             "new_category": t.correct_category if t.category_change_pending else None}
            for t in w.template_problems],
        "numbers": w.numbers, "numbers_by_status": dict(w.numbers_by_status),
        "critical": w.critical, "warning": w.warning,
    }


def to_json(page: StatusPage) -> dict[str, Any]:
    s = page.search
    return {
        "status": "success",
        "data": {
            "generated_at": page.generated_at,
            "ready": page.ready,
            "last_success": page.last_success,
            "counts": {
                "critical": page.critical, "warning": page.warning,
                "sandbox": len(page.sandbox), "businesses": page.businesses_total,
                "wabas": page.wabas_total, "wabas_up": page.wabas_up,
                "numbers": page.numbers_total,
                "numbers_by_status": dict(page.numbers_by_status),
            },
            "problems": {
                "total": page.problems_total, "page": page.problems_page,
                "pages": page.problems_pages, "page_size": PROBLEMS_SHOWN,
                "by_alert": [{"alert": a, "level": lvl.name.lower(), "count": c}
                             for a, lvl, c in page.problems_by_alert],
                "items": [_problem(p) for p in page.problems],
            },
            "sandbox": [_problem(p) for p in page.sandbox],
            "businesses": [
                {"business_id": b.summary.business_id, "registered": b.summary.registered,
                 "cap": b.summary.cap, "cap_source": b.summary.cap_source,
                 "messaging_limit": b.summary.messaging_limit,
                 "messaging_limit_source": b.summary.messaging_limit_source,
                 "verification_status": b.summary.verification_status,
                 "numbers": b.summary.numbers, "wabas": b.summary.wabas,
                 "wabas_up": b.summary.wabas_up, "critical": b.critical,
                 "warning": b.warning, "wabas_listed": [_waba(w) for w in b.wabas],
                 "wabas_folded": b.wabas_folded}
                for b in page.businesses],
            "businesses_folded": page.businesses_total - len(page.businesses),
            "search": {
                "q": s.query, "page": s.page, "pages": s.pages, "page_size": PAGE_SIZE,
                "total": s.total,
                "numbers": [
                    {"id": r.id, "display_phone_number": r.display_phone_number,
                     "verified_name": r.verified_name, "status": r.status,
                     "quality_rating": r.quality_rating, "name_status": r.name_status,
                     "health_status": r.health_status, "messaging_limit": r.messaging_limit,
                     "account_mode": r.account_mode, "business_id": r.business_id,
                     "waba_id": r.waba_id, "problems": list(r.problems)}
                    for r in s.rows],
            },
            "changes": [
                {"at": c.at, "business_id": c.business_id, "waba_id": c.waba_id,
                 "phone_number_id": c.phone_number_id, "template_id": c.template_id,
                 "subject": c.subject, "field": c.field, "old": c.old, "new": c.new}
                for c in page.changes],
        },
    }
