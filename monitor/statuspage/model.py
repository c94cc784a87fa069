"""What the status page and ``/api/v1/status`` show, built from the store on each request.

One model feeds both the HTML and the JSON, so the two cannot disagree. The problems are the
findings of ``monitor.check`` (the rules of the shipped alerts), each tied to its alert's
runbook entry. Everything per number is derived once per WABA poll (a ``WabaState`` is
immutable and replaced by each poll) and summed once per change of a business, in a
:class:`PageCache`; a request checks by identity that nothing changed and no time boundary
passed, so it costs a walk over the WABAs, not a re-check of every number (the filter alone
scans the numbers, skipping WABAs whose text rules them out). Lists that grow with the fleet
are bounded: the page stays small at any size.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.accounts import Template, review_status
from monitor.caps import BusinessSummary
from monitor.check import (
    DAY,
    Finding,
    Level,
    alert_findings,
    approaching,
    number_findings,
    waba_findings,
)
from monitor.model import PhoneNumber, Transition, WabaState, digits
from monitor.store import Store

RUNBOOK = "https://github.com/waba-monitor/waba-monitor/blob/main/docs/runbook.md"
PAGE_SIZE = 50  # numbers per page of filter results
PROBLEMS_SHOWN = 50  # problems per page of the "needs attention" list
BUSINESSES_SHOWN = 20  # business sections; the rest are counted (healthy ones first to go)
WABAS_SHOWN = 10  # WABA rows per business when it has more than that
ALL_WABAS_UP_TO = 50  # a fleet with at most this many WABAs lists every WABA
CHANGES_SHOWN = 20
STALE_AFTER_INTERVALS = 3  # as WhatsAppMonitorDataStale: 3 scan intervals, at least 5 min
STALE_AT_LEAST = 300.0
MAX_QUERY = 200  # characters of a filter query that are read
RECENTLY_ONBOARDED = 10
STUCK_PENDING_AFTER = 86_400.0  # a number still PENDING this long after onboarding is stuck

# Each alert the page can show, most severe kind first (within one level).
ALERTS = (
    "WhatsAppAccountDisabled",
    "WhatsAppAccountScheduledForDisable",
    "WhatsAppAccountRestricted",
    "WhatsAppCannotSendMessages",
    "WhatsAppPhoneNumberNotConnected",
    "WhatsAppPinResetRequested",
    "WhatsAppWebhookSubscriptionMissing",
    "WhatsAppRegistrationCapReached",
    "WhatsAppAccountAlert",
    "WhatsAppTemplateDisabled",
    "WhatsAppQualityRatingLow",
    "WhatsAppMonitorPollFailing",
    "WhatsAppMonitorDataStale",
    "WhatsAppAccountReviewNotApproved",
    "WhatsAppTemplatePaused",
    "WhatsAppTemplateQualityLow",
    "WhatsAppTemplateCategoryChanging",
    "WhatsAppDisplayNameRejected",
    "WhatsAppDisplayNameCertificateExpired",
    "WhatsAppRegistrationCapApproaching",
    "WhatsAppIdentityKeyCheckDisabled",
    "WhatsAppTwoStepVerificationDisabled",
    "WhatsAppWebhookMisrouted",
)
_RANK = {name: i for i, name in enumerate(ALERTS)}

# A finding's text (monitor.check) -> the alert that fires for the same condition.
_ALERT_OF: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), alert) for pattern, alert in (
        (r"^status ", "WhatsAppPhoneNumberNotConnected"),
        (r"^quality (RED|YELLOW)", "WhatsAppQualityRatingLow"),
        (r"^display name DECLINED", "WhatsAppDisplayNameRejected"),
        (r"^display-name certificate EXPIRED", "WhatsAppDisplayNameCertificateExpired"),
        (r"^cannot send messages|^can send messages only|^WABA can send messages",
         "WhatsAppCannotSendMessages"),
        (r"^two-step verification off", "WhatsAppTwoStepVerificationDisabled"),
        (r"^webhooks go to another callback URL", "WhatsAppWebhookMisrouted"),
        (r"^WABA disabled by Meta", "WhatsAppAccountDisabled"),
        (r"^WABA scheduled for disabling", "WhatsAppAccountScheduledForDisable"),
        (r"^restricted: ", "WhatsAppAccountRestricted"),
        (r"^account review ", "WhatsAppAccountReviewNotApproved"),
        (r"^template .* DISABLED$", "WhatsAppTemplateDisabled"),
        (r"^template .* PAUSED$", "WhatsAppTemplatePaused"),
        (r"^template .* quality RED$", "WhatsAppTemplateQualityLow"),
        (r"^template .* will become ", "WhatsAppTemplateCategoryChanging"),
        (r"^our app is not subscribed", "WhatsAppWebhookSubscriptionMissing"),
        (r"^PIN reset: ", "WhatsAppPinResetRequested"),
        (r"^identity change check off", "WhatsAppIdentityKeyCheckDisabled"),
        (r"^account alert ", "WhatsAppAccountAlert"),
        (r"^registration cap reached", "WhatsAppRegistrationCapReached"),
        (r"^registration cap approaching", "WhatsAppRegistrationCapApproaching"),
        (r"^poll failed", "WhatsAppMonitorPollFailing"),
        (r"^data stale: ", "WhatsAppMonitorDataStale"),
    ))
# The number field whose last change dates a number's problem (from the change history).
_DATED_BY = {
    "WhatsAppQualityRatingLow": "quality_rating",
    "WhatsAppDisplayNameRejected": "name_status",
    "WhatsAppDisplayNameCertificateExpired": "name_status",
    "WhatsAppCannotSendMessages": "health_status",
}
SANDBOX_MARK = " [SANDBOX]"


def alert_of(problem: str) -> str:
    """The shipped alert that fires for a finding (by its text, as ``monitor.check`` words
    it); a finding the table does not know still shows, linked to the runbook's top."""
    for pattern, alert in _ALERT_OF:
        if pattern.search(problem):
            return alert
    return ""


def runbook_url(alert: str) -> str:
    return f"{RUNBOOK}#{alert.lower()}" if alert else RUNBOOK


@dataclass(frozen=True, slots=True)
class Problem:
    """One line of "needs attention": what, where, since when, and which runbook entry."""

    level: Level
    alert: str
    problem: str
    business_id: str
    waba_id: str | None = None
    waba_name: str | None = None
    phone_number_id: str | None = None
    display_phone_number: str | None = None
    verified_name: str | None = None
    since: float | None = None
    sandbox: bool = False

    @property
    def runbook_url(self) -> str:
        return runbook_url(self.alert)

    def sort_key(self) -> tuple[int, int, str, str, str, str]:
        return (-int(self.level), _RANK.get(self.alert, len(_RANK)), self.business_id,
                self.waba_id or "", self.phone_number_id or "", self.problem)


@dataclass(frozen=True, slots=True)
class NumberRow:
    """A number as the filter results show it."""

    id: str
    display_phone_number: str | None
    verified_name: str | None
    status: str | None
    quality_rating: str | None
    name_status: str | None
    health_status: str | None
    messaging_limit: str | None
    account_mode: str | None
    business_id: str
    waba_id: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WabaRow:
    waba_id: str
    business_id: str
    name: str | None
    via: str | None
    up: bool
    polled: bool
    stale: bool
    last_success: float | None
    last_error: str | None
    review_status: str | None
    ban_state: str | None
    restrictions: tuple[str, ...]
    can_send_message: str | None
    template_problems: tuple[Template, ...]
    numbers: int
    numbers_by_status: Mapping[str, int]
    critical: int
    warning: int

    @property
    def noteworthy(self) -> bool:
        """Something to say beyond "up and healthy": worth a row when WABAs are folded."""
        return bool(self.critical or self.warning or not self.up or self.stale
                    or self.template_problems)


@dataclass(frozen=True, slots=True)
class BusinessRow:
    summary: BusinessSummary
    critical: int
    warning: int
    wabas: tuple[WabaRow, ...]  # the WABAs shown
    wabas_folded: int  # up, healthy WABAs not listed one by one


@dataclass(frozen=True, slots=True)
class Change:
    at: float
    business_id: str
    waba_id: str
    phone_number_id: str
    template_id: str
    subject: str
    field: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class Search:
    query: str
    page: int
    pages: int
    total: int
    rows: tuple[NumberRow, ...]


@dataclass(frozen=True, slots=True)
class TemplateRow:
    """A row of "templates with a problem"."""

    waba_id: str
    template: Template


@dataclass(frozen=True, slots=True)
class Onboarded:
    at: float
    waba_id: str
    number: PhoneNumber


@dataclass(frozen=True, slots=True)
class StatusPage:
    generated_at: float
    ready: bool
    wabas_polled: int
    last_success: float | None
    problems: tuple[Problem, ...]  # this page of them, most severe first
    problems_total: int
    problems_page: int
    problems_pages: int
    problems_by_alert: tuple[tuple[str, Level, int], ...]  # every problem, counted by alert
    critical: int
    warning: int
    sandbox: tuple[Problem, ...]
    businesses: tuple[BusinessRow, ...]
    businesses_total: int
    wabas_total: int
    wabas_up: int
    numbers_total: int
    numbers_by_status: Mapping[str, int]
    search: Search
    changes: tuple[Change, ...]
    templates: tuple[TemplateRow, ...]
    templates_total: int
    recently_onboarded: tuple[Onboarded, ...]
    stuck_pending: tuple[Onboarded, ...]
    stuck_total: int
    # (number, WABA, decision, Meta's reason) of each display-name decision told by webhook
    name_decisions: tuple[tuple[str, str, str, str | None], ...]


# --- what each poll's numbers give, derived once --------------------------------------------
Key = tuple[int, int, str, str, str, str]
Keyed = tuple[Key, Problem]


@dataclass(frozen=True, slots=True)
class _Tally:
    """Problems of one WABA (or business), sorted, with their counts."""

    live: tuple[Keyed, ...]
    sandbox: tuple[Keyed, ...]
    critical: int
    warning: int
    by_alert: Mapping[tuple[str, Level], int]


def _tally(problems: Iterable[Problem]) -> _Tally:
    live: list[Keyed] = []
    sandbox: list[Keyed] = []
    by_alert: dict[tuple[str, Level], int] = {}
    critical = warning = 0
    for p in problems:
        if p.sandbox:
            sandbox.append((p.sort_key(), p))
            continue
        live.append((p.sort_key(), p))
        by_alert[(p.alert, p.level)] = by_alert.get((p.alert, p.level), 0) + 1
        critical += p.level is Level.CRITICAL
        warning += p.level is Level.WARNING
    live.sort(key=_first)
    sandbox.sort(key=_first)
    return _Tally(tuple(live), tuple(sandbox), critical, warning, by_alert)


def _first(item: Keyed) -> Key:
    return item[0]


@dataclass(frozen=True, slots=True)
class _Derived:
    """A WABA's per-number facts, derived once per poll (``WabaState`` is immutable)."""

    name: str | None
    tally: _Tally
    by_status: Mapping[str, int]
    haystacks: tuple[str, ...]  # lower-cased search text per number, in number order
    text: str  # all of them joined: a term it lacks rules the whole WABA out
    problems_of: Mapping[str, tuple[str, ...]]
    onboarded: tuple[Onboarded, ...]  # its most recently onboarded numbers, newest first
    pending: tuple[Onboarded, ...]  # its PENDING numbers with an onboarding time


@dataclass(frozen=True, slots=True)
class _Account:
    """A WABA's own findings, valid while what they were made from is unchanged and until
    the first restriction ends or PIN-reset event ages out."""

    key: tuple[object, ...]
    until: float
    tally: _Tally


class PageCache:
    """Derived values per WABA, recomputed only when a poll (or a webhook fact) replaced
    what they came from: a request walks them instead of re-checking every number."""

    def __init__(self) -> None:
        self._derived: dict[str, tuple[WabaState, _Derived]] = {}
        self._accounts: dict[str, _Account] = {}
        self._businesses: dict[str, _Business] = {}
        self._confirmed: dict[str, tuple[object, ...]] = {}  # identities behind each sum
        # Per WABA: its templates with a problem, and the identities they came from (at
        # 50,000 numbers a page view otherwise re-checked 200,000 templates).
        self._template_problems: dict[str, tuple[tuple[object, ...], tuple[Template, ...]]] = {}

    def template_problems(self, store: Store, waba_id: str) -> tuple[Template, ...]:
        """A WABA's effective templates that have a problem, recomputed only when the read
        or the webhook facts behind them were replaced."""
        source = store.templates_source(waba_id)
        cached = self._template_problems.get(waba_id)
        if cached is not None:  # the same read, read time and facts (compared inline: 10,000
            old = cached[0]     # WABAs a view)
            if old[0] is source[0] and old[1] == source[1] and old[2] is source[2]:
                return cached[1]
        problems = tuple(t for t in store.effective_templates(waba_id) if t.problem)
        self._template_problems[waba_id] = (source, problems)
        return problems

    def derived(self, state: WabaState, name: str | None) -> _Derived:
        cached = self._derived.get(state.waba_id)
        if cached is not None and cached[0].business_id == state.business_id and \
                cached[1].name == name:
            if cached[0].numbers is state.numbers:
                return cached[1]
            if cached[0].numbers == state.numbers:  # the usual poll: nothing changed
                self._derived[state.waba_id] = (state, cached[1])
                return cached[1]
        found = [(f, n) for n in state.numbers
                 for f in number_findings(state.business_id, state.waba_id, n)]
        problems_of: dict[str, tuple[str, ...]] = {}
        for f, n in found:
            problems_of[n.id] = (*problems_of.get(n.id, ()), f.problem)
        by_status: dict[str, int] = {}
        for n in state.numbers:
            by_status[n.status or "UNKNOWN"] = by_status.get(n.status or "UNKNOWN", 0) + 1
        onboarded = [Onboarded(n.last_onboarded, state.waba_id, n) for n in state.numbers
                     if n.last_onboarded is not None]
        haystacks = tuple(_haystack(state, n) for n in state.numbers)
        derived = _Derived(
            name=name,
            tally=_tally(_number_problem(f, n, name) for f, n in found),
            by_status=by_status,
            haystacks=haystacks,
            text="\x01".join(haystacks),
            problems_of=problems_of,
            onboarded=tuple(heapq.nlargest(RECENTLY_ONBOARDED, onboarded, key=_onboarded_at)),
            pending=tuple(o for o in onboarded if o.number.status == "PENDING"),
        )
        self._derived[state.waba_id] = (state, derived)
        return derived

    def account(self, store: Store, state: WabaState, derived: _Derived,
                identity_required: bool, now: float) -> tuple[_Tally, float]:
        waba_id, name = state.waba_id, derived.name
        facts = store.waba_facts(waba_id)
        key = (derived, state.up, state.last_error, store.waba_node(waba_id), facts,
               store.templates(waba_id), store.subscription(waba_id),
               store.number_settings(waba_id) or None, identity_required)
        cached = self._accounts.get(waba_id)
        if cached is not None and now < cached.until and _same(cached.key, key):
            return cached.tally, cached.until
        numbers = {n.id: n for n in state.numbers}
        problems = []
        for f in _waba_level(store, state, now):
            if f.phone_number_id is None:
                problems.append(Problem(f.level, alert_of(f.problem), f.problem,
                                        f.business_id, f.waba_id, name))
            elif f.phone_number_id in numbers:
                problems.append(_number_problem(f, numbers[f.phone_number_id], name))
        ends = [r.expires_at for r in (facts.active_restrictions(now) if facts else ())
                if r.expires_at is not None]
        ends.extend(at + DAY for events in (facts.security_events.values() if facts else ())
                    for at in events.values() if at + DAY > now)
        account = _Account(key, min(ends, default=math.inf), _tally(problems))
        self._accounts[waba_id] = account
        return account.tally, account.until

    def business(self, store: Store, summary: BusinessSummary, states: list[WabaState],
                 now: float) -> _Business:
        """The business's sums: reused at once when every object they came from is the very
        one seen last time (nothing polled or told since), else when what changed is equal."""
        business_id = summary.business_id
        seen = _identities(store, summary, states)
        cached = self._businesses.get(business_id)
        if cached is not None and now < cached.until:
            last = self._confirmed.get(business_id)
            if last is not None and len(last) == len(seen) and all(
                    x is y for x, y in zip(last, seen, strict=True)):
                return cached
            key = _business_key(self, store, summary, states, now)
            if _same(cached.key, key):
                self._confirmed[business_id] = seen
                return cached
        else:
            key = _business_key(self, store, summary, states, now)
        fresh = _aggregate(store, self, summary, states, key, now)
        self._businesses[business_id] = fresh
        self._confirmed[business_id] = seen
        return fresh

    def prune(self, store: Store) -> None:
        """Forget WABAs no longer watched (only when there are more entries than WABAs)."""
        if (len(self._derived) > store.waba_count or len(self._accounts) > store.waba_count
                or len(self._template_problems) > store.waba_count):
            for entries in (self._derived, self._accounts, self._template_problems):
                for waba_id in [w for w in entries if store.waba(w) is None]:
                    del entries[waba_id]
        if len(self._businesses) > len(store.businesses()):
            for business_id in [b for b in self._businesses if store.summary(b) is None]:
                del self._businesses[business_id]
                self._confirmed.pop(business_id, None)


def _same(old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    """Keys match: the same objects, or (for values rebuilt on each poll) equal ones."""
    return len(old) == len(new) and all(
        x is y or x == y for x, y in zip(old, new, strict=True))


def _onboarded_at(o: Onboarded) -> float:
    return o.at


def _haystack(state: WabaState, n: PhoneNumber) -> str:
    display = n.display_phone_number or ""
    return "\x00".join((n.id, display, digits(display), n.verified_name or "",
                        n.status or "", state.waba_id, state.business_id)).lower()


# --- the filter -------------------------------------------------------------------------------
_KEYS = {"status", "waba", "business", "quality"}
_PHONE_CHARS = re.compile(r"^[+\d\s().-]+$")


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed filter: ``key:value`` terms (status, quality, waba, business; exact) and free
    terms, each of which must occur in the display number (digits alone match too), verified
    name, id, status, WABA id or business id."""

    text: str
    exact: tuple[tuple[str, str], ...]
    terms: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.exact and not self.terms


def parse_query(raw: str) -> Query:
    text = raw[:MAX_QUERY].strip()
    exact: list[tuple[str, str]] = []
    terms: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key.lower() in _KEYS and value:
            exact.append((key.lower(), value.lower()))
            continue
        token = token.lower()
        if _PHONE_CHARS.match(token) and digits(token):
            token = digits(token)
        terms.append(token)
    return Query(text, tuple(exact), tuple(terms))


def _matches(query: Query, state: WabaState, n: PhoneNumber, haystack: str) -> bool:
    for key, value in query.exact:
        have = {"status": n.status, "quality": n.quality_rating, "waba": state.waba_id,
                "business": state.business_id}[key]
        if (have or "").lower() != value:
            return False
    return all(term in haystack for term in query.terms)


def search(store: Store, cache: PageCache, query: Query, page: int) -> Search:
    """One page of the numbers the query matches, in WABA order; nothing when it is empty.
    A WABA is skipped whole when its ids, statuses or joined search text rule it out."""
    if query.empty:
        return Search(query.text, 1, 0, 0, ())
    start = (max(1, page) - 1) * PAGE_SIZE
    exact = dict(query.exact)
    rows: list[NumberRow] = []
    total = 0
    for state in store.wabas():
        if ("waba" in exact and state.waba_id.lower() != exact["waba"]) or (
                "business" in exact and state.business_id.lower() != exact["business"]):
            continue
        node = store.waba_node(state.waba_id)
        derived = cache.derived(state, node.name if node else None)
        if "status" in exact and not any(s.lower() == exact["status"]
                                         for s in derived.by_status):
            continue
        if not all(term in derived.text for term in query.terms):
            continue
        for n, haystack in zip(state.numbers, derived.haystacks, strict=True):
            if not _matches(query, state, n, haystack):
                continue
            if start <= total < start + PAGE_SIZE:
                rows.append(NumberRow(
                    n.id, n.display_phone_number, n.verified_name, n.status, n.quality_rating,
                    n.name_status, n.health_status, n.messaging_limit, n.account_mode,
                    state.business_id, state.waba_id, derived.problems_of.get(n.id, ())))
            total += 1
    pages = -(-total // PAGE_SIZE)
    return Search(query.text, max(1, page), pages, total, tuple(rows))


# --- problems -----------------------------------------------------------------------------------
def _is_stale(state: WabaState, now: float) -> bool:
    if state.last_success is None or state.interval is None:
        return False
    limit = max(STALE_AFTER_INTERVALS * state.interval, STALE_AT_LEAST)
    return now - state.last_success > limit


def _waba_level(store: Store, state: WabaState, now: float) -> list[Finding]:
    """The WABA's own findings, as ``check.evaluate`` words them, plus announced template
    category changes (an alert ``check`` has no verdict for)."""
    out: list[Finding] = []
    if not state.up:
        out.append(Finding(Level.WARNING, state.business_id, state.waba_id, None,
                           f"poll failed ({state.last_error or 'not polled'})"))
    out.extend(waba_findings(store, state.business_id, state.waba_id, now))
    for t in store.effective_templates(state.waba_id):
        if t.category_change_pending:
            out.append(Finding(Level.WARNING, state.business_id, state.waba_id, None,
                               f"template {t.name or t.id} ({t.language or '?'}) will become "
                               f"{t.correct_category}"))
    return out


def _business_level(store: Store, summary: BusinessSummary, now: float) -> list[Finding]:
    out: list[Finding] = []
    registered, cap = summary.registered, summary.cap
    if registered >= cap:
        out.append(Finding(Level.CRITICAL, summary.business_id, None, None,
                           f"registration cap reached ({registered}/{cap})"))
    elif approaching(registered, cap):
        out.append(Finding(Level.WARNING, summary.business_id, None, None,
                           f"registration cap approaching ({registered}/{cap})"))
    return out + alert_findings(store, summary.business_id, now)


def _since(store: Store, problem: Problem, changed: Mapping[tuple[str, str], float],
           now: float) -> float | None:
    """When the problem began, where the daemon knows it: a number's status change time, the
    last change of the field from the history, or the time of the webhook that told it."""
    alert, waba_id, number_id = problem.alert, problem.waba_id, problem.phone_number_id
    state = store.waba(waba_id) if waba_id else None
    if number_id and state is not None:
        if alert == "WhatsAppPhoneNumberNotConnected":
            return state.status_changed_at.get(number_id)
        if alert in _DATED_BY:
            return changed.get((number_id, _DATED_BY[alert]))
        facts = store.waba_facts(waba_id or "")
        if alert == "WhatsAppPinResetRequested" and facts is not None:
            return max(facts.security_events.get(number_id, {}).values(), default=None)
        return None
    if alert in ("WhatsAppMonitorPollFailing", "WhatsAppMonitorDataStale") and state:
        return state.last_success
    facts = store.waba_facts(waba_id) if waba_id else None
    if facts is not None:
        if alert in ("WhatsAppAccountDisabled", "WhatsAppAccountScheduledForDisable"):
            return facts.events.get("DISABLED_UPDATE")
        if alert == "WhatsAppAccountRestricted":
            return facts.events.get("ACCOUNT_RESTRICTION")
        if alert == "WhatsAppAccountReviewNotApproved" and facts.review_status:
            return facts.review_at
        if alert.startswith("WhatsAppTemplate"):
            for t in store.effective_templates(waba_id or ""):
                told = facts.templates.get(t.id)
                if told is not None and problem.problem.startswith(
                        f"template {t.name or t.id} ("):
                    return told.at
    if alert == "WhatsAppAccountAlert":
        for a in store.account_alerts(problem.business_id):
            if problem.problem == (f"account alert {a.alert_type} ({a.entity_type} "
                                   f"{a.entity_id})") and now - a.at <= 86_400:
                return a.at
    return None


def _number_problem(f: Finding, n: PhoneNumber, waba_name: str | None) -> Problem:
    sandbox = n.account_mode == "SANDBOX"
    text = f.problem.removesuffix(SANDBOX_MARK) if sandbox else f.problem
    return Problem(f.level, alert_of(text), text, f.business_id, f.waba_id, waba_name, n.id,
                   n.display_phone_number, n.verified_name, None, sandbox)


# --- the page -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _WabaSeen:
    waba_id: str
    name: str | None
    derived: _Derived
    account: _Tally

    @property
    def critical(self) -> int:
        return self.derived.tally.critical + self.account.critical

    @property
    def warning(self) -> int:
        return self.derived.tally.warning + self.account.warning


def _stale_problem(state: WabaState, name: str | None, now: float) -> Problem | None:
    if not state.up or not _is_stale(state, now):
        return None
    text = f"data stale: no successful poll in {STALE_AFTER_INTERVALS} poll intervals"
    return Problem(Level.WARNING, alert_of(text), text, state.business_id, state.waba_id, name,
                   since=state.last_success)


@dataclass(frozen=True, slots=True)
class _Business:
    """A business and its WABAs added up for the page; reused while none of what it was
    made from changed and no time boundary (restriction end, 24 h window) passed. Poll times
    (last success, staleness) change on every poll and are read per request instead."""

    key: tuple[object, ...]
    until: float
    live: tuple[Keyed, ...]
    sandbox: tuple[Keyed, ...]
    critical: int
    warning: int
    by_alert: Mapping[tuple[str, Level], int]
    seen: tuple[_WabaSeen, ...]
    by_status: Mapping[str, int]
    wabas_up: int
    numbers: int
    onboarded: tuple[Onboarded, ...]
    pending: tuple[Onboarded, ...]


def _identities(store: Store, summary: BusinessSummary,
                states: list[WabaState]) -> tuple[object, ...]:
    """Every object a business's sums are made from, compared by identity: the cheap check."""
    out: list[object] = [summary]
    for state in states:
        waba_id = state.waba_id
        out += (state, store.waba_node(waba_id), store.waba_facts(waba_id),
                store.templates(waba_id), store.subscription(waba_id),
                store.number_settings(waba_id) or None)
    return tuple(out)


def _business_key(cache: PageCache, store: Store, summary: BusinessSummary,
                  states: list[WabaState], now: float) -> tuple[object, ...]:
    """What a business's sums come from: its summary, and per WABA its derived values and
    own findings (each cached, and reused across polls that changed nothing), up, polled."""
    key: list[object] = [summary]
    for state in states:
        node = store.waba_node(state.waba_id)
        derived = cache.derived(state, node.name if node else None)
        account, _ = cache.account(store, state, derived, summary.identity_check_required,
                                   now)
        key += (derived, account, state.up, state.polled)
    return tuple(key)


def _aggregate(store: Store, cache: PageCache, summary: BusinessSummary,
               states: list[WabaState], key: tuple[object, ...], now: float) -> _Business:
    business_id = summary.business_id
    tallies = [_tally(Problem(f.level, alert_of(f.problem), f.problem, f.business_id)
                      for f in _business_level(store, summary, now))]
    ends = [a.at + DAY for a in store.account_alerts(business_id) if a.at + DAY > now]
    seen: list[_WabaSeen] = []
    by_status: dict[str, int] = {}
    onboarded: list[Onboarded] = []
    pending: list[Onboarded] = []
    for state in states:
        node = store.waba_node(state.waba_id)
        derived = cache.derived(state, node.name if node else None)
        account, until = cache.account(store, state, derived,
                                       summary.identity_check_required, now)
        ends.append(until)
        seen.append(_WabaSeen(state.waba_id, derived.name, derived, account))
        tallies += [derived.tally, account]
        for status, count in derived.by_status.items():
            by_status[status] = by_status.get(status, 0) + count
        onboarded.extend(derived.onboarded)
        pending.extend(derived.pending)
    by_alert: dict[tuple[str, Level], int] = {}
    for t in tallies:
        for k, v in t.by_alert.items():
            by_alert[k] = by_alert.get(k, 0) + v
    return _Business(
        key=key, until=min((e for e in ends if e > now), default=math.inf),
        live=tuple(heapq.merge(*(t.live for t in tallies), key=_first)),
        sandbox=tuple(heapq.merge(*(t.sandbox for t in tallies), key=_first)),
        critical=sum(t.critical for t in tallies), warning=sum(t.warning for t in tallies),
        by_alert=by_alert, seen=tuple(seen), by_status=by_status,
        wabas_up=sum(s.up for s in states), numbers=sum(len(s.numbers) for s in states),
        onboarded=tuple(heapq.nlargest(RECENTLY_ONBOARDED, onboarded, key=_onboarded_at)),
        pending=tuple(pending))


def build(store: Store, cache: PageCache, now: float, *, ready: bool = True, query: str = "",
          page: int = 1, problems_page: int = 1) -> StatusPage:
    """The whole page model; ``query``/``page`` select the filter results shown and
    ``problems_page`` the page of problems."""
    cache.prune(store)
    live: list[tuple[Keyed, ...]] = []
    sandbox: list[tuple[Keyed, ...]] = []
    by_alert: dict[tuple[str, Level], int] = {}
    critical = warning = 0
    businesses: list[tuple[tuple[int, int, str], BusinessSummary, tuple[_WabaSeen, ...]]] = []
    fleet_status: dict[str, int] = {}
    wabas_total = wabas_up = numbers_total = polled = 0
    last_success: float | None = None
    pending: list[Onboarded] = []
    onboarded: list[tuple[Onboarded, ...]] = []
    by_business: dict[str, list[WabaState]] = {}
    stale: list[Keyed] = []
    stale_in: dict[str, int] = {}
    for state in store.wabas():
        by_business.setdefault(state.business_id, []).append(state)
        wabas_total += 1
        polled += state.polled
        if state.last_success is not None:
            last_success = max(last_success or 0.0, state.last_success)
        if state.up and _is_stale(state, now):  # poll times: read per request, not cached
            node = store.waba_node(state.waba_id)
            problem = _stale_problem(state, node.name if node else None, now)
            if problem is not None:
                stale.append((problem.sort_key(), problem))
                stale_in[state.business_id] = stale_in.get(state.business_id, 0) + 1
                by_alert[(problem.alert, problem.level)] = by_alert.get(
                    (problem.alert, problem.level), 0) + 1
    stale.sort(key=_first)
    live.append(tuple(stale))
    warning += len(stale)
    for summary in store.summaries():
        states = by_business.get(summary.business_id, [])
        agg = cache.business(store, summary, states, now)
        live.append(agg.live)
        sandbox.append(agg.sandbox)
        critical += agg.critical
        warning += agg.warning
        for k, v in agg.by_alert.items():
            by_alert[k] = by_alert.get(k, 0) + v
        for status, count in agg.by_status.items():
            fleet_status[status] = fleet_status.get(status, 0) + count
        wabas_up += agg.wabas_up
        numbers_total += agg.numbers
        onboarded.append(agg.onboarded)
        pending.extend(agg.pending)
        businesses.append(((-agg.critical, -agg.warning - stale_in.get(summary.business_id, 0),
                            summary.business_id), summary, agg.seen))
    total = critical + warning
    pages = max(1, -(-total // PROBLEMS_SHOWN))
    ppage = min(max(1, problems_page), pages)
    start = (ppage - 1) * PROBLEMS_SHOWN
    shown = [p for _, p in itertools.islice(heapq.merge(*live, key=_first), start,
                                            start + PROBLEMS_SHOWN)]
    apart = [p for _, p in itertools.islice(heapq.merge(*sandbox, key=_first), PROBLEMS_SHOWN)]
    changed = _field_changes(store.recent)
    stale_ids = {p.waba_id for _, p in stale}
    fold = wabas_total > ALL_WABAS_UP_TO
    businesses.sort(key=lambda r: r[0])
    # Counted across the fleet, but rows made only for those shown (at 50,000 numbers some
    # 30,000 templates had a problem, and a row object each was a fifth of a view's CPU).
    templates: list[TemplateRow] = []
    templates_total = 0
    for w in store.wabas():
        problems = cache.template_problems(store, w.waba_id)
        if problems:
            templates_total += len(problems)
            room = PROBLEMS_SHOWN - len(templates)
            if room > 0:
                templates.extend(TemplateRow(w.waba_id, t) for t in problems[:room])
    stuck = sorted((o for o in pending if now - o.at > STUCK_PENDING_AFTER),
                   key=lambda o: (o.at, o.number.id))
    return StatusPage(
        generated_at=now, ready=ready, wabas_polled=polled, last_success=last_success,
        problems=tuple(_with_since(store, p, changed, now) for p in shown),
        problems_total=total, problems_page=ppage, problems_pages=pages,
        problems_by_alert=tuple(sorted(((a, lvl, c) for (a, lvl), c in by_alert.items()),
                                       key=lambda r: (-int(r[1]), _RANK.get(r[0], 99)))),
        critical=critical, warning=warning,
        sandbox=tuple(_with_since(store, p, changed, now) for p in apart),
        businesses=tuple(_business_row(store, cache, summary, seen, fold, key, stale_ids, now)
                         for key, summary, seen in businesses[:BUSINESSES_SHOWN]),
        businesses_total=len(businesses),
        wabas_total=wabas_total, wabas_up=wabas_up, numbers_total=numbers_total,
        numbers_by_status=dict(sorted(fleet_status.items(), key=lambda kv: -kv[1])),
        search=search(store, cache, parse_query(query), page),
        changes=tuple(_change(store, t) for t in itertools.islice(store.recent,
                                                                  CHANGES_SHOWN)),
        templates=tuple(templates), templates_total=templates_total,
        recently_onboarded=tuple(itertools.islice(
            heapq.merge(*onboarded, key=_onboarded_at, reverse=True), RECENTLY_ONBOARDED)),
        stuck_pending=tuple(stuck[:PROBLEMS_SHOWN]), stuck_total=len(stuck),
        name_decisions=tuple(itertools.islice(_name_decisions(store), PROBLEMS_SHOWN)),
    )


def _with_since(store: Store, p: Problem, changed: Mapping[tuple[str, str], float],
                now: float) -> Problem:
    if p.since is not None:
        return p
    since = _since(store, p, changed, now)
    return p if since is None else Problem(
        p.level, p.alert, p.problem, p.business_id, p.waba_id, p.waba_name, p.phone_number_id,
        p.display_phone_number, p.verified_name, since, p.sandbox)


def _field_changes(recent: Iterable[Transition]) -> dict[tuple[str, str], float]:
    """(number, field) -> when it last changed, from the kept history (newest first)."""
    out: dict[tuple[str, str], float] = {}
    for t in recent:
        if t.phone_number_id:
            out.setdefault((t.phone_number_id, t.field), t.at)
    return out


def _waba_row(store: Store, cache: PageCache, seen: _WabaSeen, stale: set[str | None],
              now: float) -> WabaRow | None:
    state = store.waba(seen.waba_id)
    if state is None:
        return None
    node, facts = store.waba_node(state.waba_id), store.waba_facts(state.waba_id)
    is_stale = state.waba_id in stale
    return WabaRow(
        waba_id=state.waba_id, business_id=state.business_id, name=seen.name, via=state.via,
        up=state.up, polled=state.polled, stale=is_stale,
        last_success=state.last_success, last_error=state.last_error,
        review_status=review_status(node, facts),
        ban_state=facts.ban_state if facts else None,
        restrictions=tuple(r.restriction_type for r in facts.active_restrictions(now))
        if facts else (),
        can_send_message=node.can_send_message if node else None,
        template_problems=cache.template_problems(store, state.waba_id),
        numbers=len(state.numbers), numbers_by_status=seen.derived.by_status,
        critical=seen.critical, warning=seen.warning + is_stale,
    )


def _business_row(store: Store, cache: PageCache, summary: BusinessSummary,
                  seen: tuple[_WabaSeen, ...], fold: bool, key: tuple[int, int, str],
                  stale: set[str | None], now: float) -> BusinessRow:
    rows = [r for r in (_waba_row(store, cache, s, stale, now) for s in seen)
            if r is not None]
    if not fold:
        return BusinessRow(summary, -key[0], -key[1], tuple(rows), 0)
    noteworthy = sorted((r for r in rows if r.noteworthy),
                        key=lambda r: (-r.critical, -r.warning, r.waba_id))
    shown = tuple(noteworthy[:WABAS_SHOWN])
    return BusinessRow(summary, -key[0], -key[1], shown, len(seen) - len(shown))


def _change(store: Store, t: Transition) -> Change:
    template_id = str(getattr(t, "template_id", "") or "")
    if t.phone_number_id:
        state = store.waba(t.waba_id)
        number = next((n for n in state.numbers if n.id == t.phone_number_id),
                      None) if state else None
        subject = (number.display_phone_number or t.phone_number_id) if number else \
            t.phone_number_id
        if number is not None and number.verified_name:
            subject += f" ({number.verified_name})"
    elif template_id:  # a template's change (Transition.template_id, template_name)
        name = getattr(t, "template_name", None)
        subject = f"template {name} ({template_id})" if name else f"template {template_id}"
    else:
        subject = f"WABA {t.waba_id}"
    return Change(t.at, t.business_id, t.waba_id, t.phone_number_id, template_id, subject,
                  t.field, t.old, t.new)


def _name_decisions(store: Store) -> Iterable[tuple[str, str, str, str | None]]:
    for waba in store.wabas():
        facts = store.waba_facts(waba.waba_id)
        if facts is None or not facts.name_decisions:
            continue
        names = {n.id: n.display_phone_number or n.id for n in waba.numbers}
        for number, (decision, reason) in facts.name_decisions.items():
            yield names.get(number, number), waba.waba_id, decision, reason
