"""The status page as HTML: no inline script or style (the CSP forbids both), no external
asset, and every value that came from the Graph API or a webhook escaped (names are
user-controlled). It reads fully without JavaScript; ``/static/status.js`` only refreshes it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from monitor import __version__
from monitor.check import Level
from monitor.statuspage.model import (
    PAGE_SIZE,
    BusinessRow,
    Problem,
    StatusPage,
    WabaRow,
    runbook_url,
)

DEFAULT_REFRESH = 10  # seconds between automatic refreshes of the page


def esc(value: object) -> str:
    """Text for element content and double-quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(timestamp: float, now: float) -> str:
    seconds = max(0.0, now - timestamp)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} days ago"


def when(timestamp: float | None, now: float, unknown: str = "—") -> str:
    """A relative time, with the absolute one in the element (and its tooltip)."""
    if timestamp is None:
        return unknown
    iso = datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    return f'<time datetime="{iso}" title="{utc(timestamp)}">{ago(timestamp, now)}</time>'


def link(params: Mapping[str, object], anchor: str) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in ("", None, 1)})
    return esc(f"/?{query}#{anchor}" if query else f"/#{anchor}")


def _level(level: Level) -> str:
    return level.name.lower()


def _where(p: Problem) -> str:
    """The number (display number and verified name) on top, its WABA and business below."""
    top = ""
    if p.phone_number_id:
        name = f' <span class="name">{esc(p.verified_name)}</span>' if p.verified_name else ""
        number = esc(p.display_phone_number or p.phone_number_id)
        top = f'<span class="number">{number}</span>{name}<br>'
    waba = ""
    if p.waba_id:
        waba = f"WABA {esc(p.waba_id)}" + (f" {esc(p.waba_name)}" if p.waba_name else "") + " · "
    return f'{top}<span class="id">{waba}business {esc(p.business_id)}</span>'


def _problem_rows(problems: Iterable[Problem], now: float) -> str:
    return "".join(
        f'<tr class="is-{_level(p.level)}"><td class="level">{esc(p.level.name)}</td>'
        f'<td class="what">{esc(p.problem)}</td><td class="where">{_where(p)}</td>'
        f'<td class="since">{when(p.since, now)}</td>'
        f'<td><a href="{esc(p.runbook_url)}" rel="noopener noreferrer">'
        f"{esc(p.alert or 'runbook')}</a></td></tr>"
        for p in problems)


_PROBLEM_HEAD = ("<thead><tr><th>Level</th><th>Problem</th><th>Where</th><th>Since</th>"
                 "<th>Runbook</th></tr></thead>")


def _attention(page: StatusPage, query: str) -> str:
    now = page.generated_at
    out = ['<section id="attention"><h2>Needs attention</h2>']
    if not page.ready:
        out.append(f'<p class="pending">First poll in progress: {page.wabas_polled} of '
                   f"{page.wabas_total} WABAs polled so far.</p>")
    if not page.problems_total:
        last = (f"Last successful poll {when(page.last_success, now)} "
                f"({esc(utc(page.last_success))})." if page.last_success is not None
                else "No successful poll yet.")
        out.append(f'<p class="allgood">Nothing needs attention. {last}</p>')
    else:
        out.append(f'<p class="counts"><span class="critical">{page.critical} critical</span>'
                   f', <span class="warning">{page.warning} warning</span>, most severe '
                   f"first. Each links to its alert's runbook entry.</p>")
        out.append(f'<table class="problems">{_PROBLEM_HEAD}<tbody>'
                   f"{_problem_rows(page.problems, now)}</tbody></table>")
        if page.problems_pages > 1:
            out.append(_pager("Problems", page.problems_page, page.problems_pages,
                              lambda n: link({"q": query, "ppage": n}, "attention")))
            out.append('<table class="byalert"><thead><tr><th>Alert</th><th>Level</th>'
                       "<th>Problems</th></tr></thead><tbody>" + "".join(
                           f'<tr class="{_level(level)}"><td><a href="{esc(runbook_url(a))}"'
                           f' rel="noopener noreferrer">{esc(a or "other")}</a></td>'
                           f"<td>{esc(level.name)}</td><td>{count:,}</td></tr>"
                           for a, level, count in page.problems_by_alert)
                       + "</tbody></table>")
    if page.sandbox:
        out.append('<h3 id="sandbox">SANDBOX numbers</h3><p class="note">Test numbers '
                   "(account_mode SANDBOX): their alerts never page.</p>"
                   f'<table class="problems sandbox">{_PROBLEM_HEAD}<tbody>'
                   f"{_problem_rows(page.sandbox, now)}</tbody></table>")
    out.append("</section>")
    return "".join(out)


def _pager(what: str, current: int, pages: int, href: Callable[[int], str]) -> str:
    prev = f'<a rel="prev" href="{href(current - 1)}">← previous</a>' if current > 1 else ""
    nxt = f'<a rel="next" href="{href(current + 1)}">next →</a>' if current < pages else ""
    return f'<p class="pager">{what}: page {current} of {pages} {prev} {nxt}</p>'


def _find(page: StatusPage) -> str:
    s = page.search
    if not s.query:
        return ""
    out = [f'<section id="results"><h2>Find a number: {s.total:,} '
           f"match{'es' if s.total != 1 else ''} for “{esc(s.query)}”</h2>"]
    if s.rows:
        out.append("<table><thead><tr><th>Number</th><th>Verified name</th><th>Status</th>"
                   "<th>Quality</th><th>Name</th><th>Can send</th><th>Limit</th>"
                   "<th>WABA</th><th>Business</th><th>Problems</th></tr></thead><tbody>")
        for r in s.rows:
            bad = "critical" if r.status not in (None, "CONNECTED") else ""
            mode = ' <span class="tag">SANDBOX</span>' if r.account_mode == "SANDBOX" else ""
            out.append(
                f'<tr><td><span class="number">{esc(r.display_phone_number or "—")}</span>'
                f'<br><span class="id">{esc(r.id)}</span></td>'
                f'<td class="name">{esc(r.verified_name)}{mode}</td>'
                f'<td class="{bad}">{esc(r.status)}</td><td>{esc(r.quality_rating)}</td>'
                f"<td>{esc(r.name_status)}</td><td>{esc(r.health_status)}</td>"
                f"<td>{esc(r.messaging_limit)}</td><td>{esc(r.waba_id)}</td>"
                f"<td>{esc(r.business_id)}</td>"
                f"<td>{esc('; '.join(r.problems)) or 'ok'}</td></tr>")
        out.append("</tbody></table>")
    if s.pages > 1:
        out.append(_pager("Matches", s.page, s.pages,
                          lambda n: link({"q": s.query, "page": n}, "results")))
    if not s.total:
        out.append('<p class="note">No number matches. The filter looks in display numbers '
                   "(digits alone match too), verified names, ids, statuses, WABA and "
                   "business ids; <code>status:BANNED</code>, <code>quality:RED</code>, "
                   "<code>waba:ID</code> and <code>business:ID</code> match exactly.</p>")
    out.append("</section>")
    return "".join(out)


def _counts(row: WabaRow) -> str:
    if not row.numbers:
        return "no numbers"
    parts = []
    for status, count in sorted(row.numbers_by_status.items(),
                                key=lambda kv: (kv[0] != "CONNECTED", kv[0])):
        cls = "ok" if status == "CONNECTED" else "critical"
        href = esc(f"/?q=waba%3A{quote(row.waba_id)}+status%3A{quote(status)}#results")
        parts.append(f'<a class="{cls}" href="{href}">{count:,} {esc(status)}</a>')
    return " · ".join(parts)


def _poll(row: WabaRow, now: float) -> str:
    if not row.polled:
        return '<span class="pending">pending</span>'
    if not row.up:
        return (f'<span class="critical">down</span> ({esc(row.last_error)}), last success '
                f"{when(row.last_success, now, 'never')}")
    if row.stale:
        return f'<span class="warning">stale</span>, last success {when(row.last_success, now)}'
    return f'<span class="ok">up</span>, {when(row.last_success, now)}'


def _account(row: WabaRow) -> str:
    parts = []
    if row.review_status:
        cls = "ok" if row.review_status == "APPROVED" else "warning"
        parts.append(f'review <span class="{cls}">{esc(row.review_status)}</span>')
    if row.ban_state:
        parts.append(f'<span class="critical">{esc(row.ban_state)}</span>')
    parts.extend(f'<span class="critical">restricted: {esc(r)}</span>'
                 for r in row.restrictions)
    if row.can_send_message and row.can_send_message != "AVAILABLE":
        parts.append(f'can send: <span class="critical">{esc(row.can_send_message)}</span>')
    return "<br>".join(parts) or "—"


def _templates(row: WabaRow) -> str:
    if not row.template_problems:
        return "—"
    return "<br>".join(
        f"{esc(t.name or t.id)} ({esc(t.language)}): {esc(t.status)}"
        + (f", quality {esc(t.quality)}" if t.quality not in (None, "GREEN", "UNKNOWN") else "")
        + (f", → {esc(t.correct_category)}" if t.category_change_pending else "")
        for t in row.template_problems[:5]) + (
        f"<br>and {len(row.template_problems) - 5} more"
        if len(row.template_problems) > 5 else "")


def _business(b: BusinessRow, now: float) -> str:
    s = b.summary
    limit = esc(s.messaging_limit or "unknown") + (
        f" (from {esc(s.messaging_limit_source)})" if s.messaging_limit_source else "")
    cap_cls = "critical" if s.registered >= s.cap else "ok"
    flags = "".join(f' <span class="{cls} tag">{n} {cls}</span>'
                    for cls, n in (("critical", b.critical), ("warning", b.warning)) if n)
    out = [f'<section class="business"><h3>Business {esc(s.business_id)}{flags}</h3>'
           f'<p><span class="{cap_cls}">{s.registered} of {s.cap} registered numbers used</span>'
           f" (cap from {esc(s.cap_source)}) · {s.wabas_up} of {s.wabas} WABAs up · "
           f"{s.numbers:,} numbers · Shared messaging limit: {limit}; verification: "
           f"{esc(s.verification_status or 'unknown')}.</p>"]
    if b.wabas:
        out.append("<table><thead><tr><th>WABA</th><th>Poll</th><th>Account</th>"
                   "<th>Templates with a problem</th><th>Numbers by status</th></tr></thead>"
                   "<tbody>")
        for w in b.wabas:
            named = f' <span class="name">{esc(w.name)}</span>' if w.name else ""
            listed = (f'<br><span class="note">listed under business {esc(w.via)}</span>'
                      if w.via and w.via != w.business_id else "")
            out.append(f"<tr><td>{esc(w.waba_id)}{named}{listed}</td>"
                       f"<td>{_poll(w, now)}</td><td>{_account(w)}</td>"
                       f"<td>{_templates(w)}</td><td>{_counts(w)}</td></tr>")
        out.append("</tbody></table>")
    if b.wabas_folded:
        out.append(f'<p class="note">{b.wabas_folded:,} more WABAs: find their numbers with '
                   f"<code>business:{esc(s.business_id)}</code>.</p>")
    out.append("</section>")
    return "".join(out)


def _fleet(page: StatusPage) -> str:
    now = page.generated_at
    statuses = " · ".join(f"{count:,} {esc(status)}"
                          for status, count in page.numbers_by_status.items())
    out = ['<section id="fleet"><h2>Businesses and WABAs</h2>',
           f'<p>{page.businesses_total:,} businesses · {page.wabas_up:,} of '
           f"{page.wabas_total:,} WABAs up · {page.numbers_total:,} numbers"
           + (f" ({statuses})" if statuses else "") + ". Healthy numbers are counted, not "
           "listed: follow a count, or use the filter.</p>"]
    out.extend(_business(b, now) for b in page.businesses)
    more = page.businesses_total - len(page.businesses)
    if more > 0:
        out.append(f'<p class="note">{more:,} more businesses, fewest problems last: find '
                   "their numbers with <code>business:ID</code>.</p>")
    if not page.businesses_total:
        out.append("<p>No business configured.</p>")
    out.append("</section>")
    return "".join(out)


def _changes(page: StatusPage) -> str:
    if not page.changes:
        return ""
    now = page.generated_at
    rows = "".join(
        f"<tr><td>{when(c.at, now)}</td><td>{esc(c.subject)}</td><td>{esc(c.field)}</td>"
        f"<td>{esc(c.old if c.old is not None else '—')} → "
        f"{esc(c.new if c.new is not None else '—')}</td>"
        f"<td>{esc(c.waba_id)}</td><td>{esc(c.business_id)}</td></tr>" for c in page.changes)
    return ('<section id="changes"><h2>Recent changes</h2><table><thead><tr><th>When</th>'
            "<th>What</th><th>Field</th><th>Change</th><th>WABA</th><th>Business</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><p><a href=\"/api/v1/transitions\">"
            "All changes (JSON)</a></p></section>")


def _extras(page: StatusPage) -> str:
    now = page.generated_at
    out: list[str] = []
    if page.templates:
        out.append('<section id="templates"><h2>Message templates with a problem</h2><table>'
                   "<thead><tr><th>WABA</th><th>Template</th><th>Language</th><th>Status</th>"
                   "<th>Quality</th><th>Category</th></tr></thead><tbody>")
        out.extend(
            f"<tr><td>{esc(r.waba_id)}</td><td>{esc(r.template.name or r.template.id)}</td>"
            f"<td>{esc(r.template.language)}</td><td>{esc(r.template.status)}</td>"
            f"<td>{esc(r.template.quality)}</td><td>{esc(r.template.category)}"
            + (f" → {esc(r.template.correct_category)}"
               if r.template.category_change_pending else "") + "</td></tr>"
            for r in page.templates)
        out.append("</tbody></table>")
        if page.templates_total > len(page.templates):
            out.append(f'<p class="note">and {page.templates_total - len(page.templates):,} '
                       "more</p>")
        out.append("</section>")
    if page.recently_onboarded or page.stuck_pending:
        out.append('<section id="onboarding"><h2>Onboarding</h2>')
        for title, found, total in (
                ("Recently onboarded", page.recently_onboarded, len(page.recently_onboarded)),
                ("Still PENDING more than a day after onboarding", page.stuck_pending,
                 page.stuck_total)):
            if not found:
                continue
            out.append(f"<h3>{title}</h3><table><thead><tr><th>Onboarded</th><th>Number</th>"
                       "<th>Verified name</th><th>Status</th><th>WABA</th></tr></thead><tbody>")
            out.extend(f"<tr><td>{when(o.at, now)}</td>"
                       f"<td>{esc(o.number.display_phone_number or o.number.id)}</td>"
                       f"<td>{esc(o.number.verified_name)}</td><td>{esc(o.number.status)}</td>"
                       f"<td>{esc(o.waba_id)}</td></tr>" for o in found)
            out.append("</tbody></table>")
            if total > len(found):
                out.append(f'<p class="note">and {total - len(found):,} more</p>')
        out.append("</section>")
    if page.name_decisions:
        out.append('<section id="names"><h2>Display-name decisions</h2><ul>')
        out.extend(f"<li>{esc(number)} (WABA {esc(waba)}): {esc(decision)}"
                   + (f", reason {esc(reason)}" if reason else "") + "</li>"
                   for number, waba, decision, reason in page.name_decisions)
        out.append("</ul></section>")
    return "".join(out)


def render(page: StatusPage, *, refresh: int = DEFAULT_REFRESH) -> str:
    """The whole document. ``refresh`` seconds (0: off) is read by the script from
    ``data-refresh``; without the script the page says to reload."""
    query = page.search.query
    title = ("waba-monitor: nothing needs attention" if not page.problems_total else
             f"waba-monitor: {page.critical} critical, {page.warning} warning")
    return "".join((
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/static/status.css">'
        '<script src="/static/status.js" defer></script></head>'
        f'<body data-refresh="{int(refresh)}"><header><h1>waba-monitor '
        f'<span class="version">{esc(__version__)}</span></h1><nav>'
        '<a href="/metrics">Metrics</a> · <a href="/api/v1/status">JSON</a> · '
        '<a href="/api/v1/transitions">Changes</a> · <a href="/-/healthy">Health</a> · '
        '<a href="/-/ready">Readiness</a></nav>'
        '<form id="find" action="/" method="get" role="search"><label for="q">Find a number'
        f'</label> <input id="q" name="q" type="search" value="{esc(query)}" '
        'placeholder="display number, name, id, status or business" maxlength="200">'
        f' <button type="submit">Find</button></form>'
        '<p class="meta"><span id="refresh-state">Reload the page for newer data.</span></p>'
        "</header>"
        f'<main id="content" data-generated="{page.generated_at:.3f}">'
        f'<p class="meta">Generated {esc(utc(page.generated_at))} from memory; values come '
        "from background polls of the Graph API and from Meta's webhooks.</p>",
        _attention(page, query), _find(page), _fleet(page), _changes(page), _extras(page),
        "</main></body></html>",
    ))


__all__ = ["DEFAULT_REFRESH", "PAGE_SIZE", "render"]
