"""The current state of every watched WABA and business, and the bytes that expose it.

Each poll hands over a complete new WabaState that replaces the old one in a single step (the
event loop is the only writer, so readers never see half a poll). Rendering happens here, once
per change; the scrape handler only joins cached bytes.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog

from monitor.accounts import (
    AccountAlert,
    Template,
    WabaFacts,
    WabaNode,
    apply_template_fact,
    template_transitions,
)
from monitor.caps import BusinessSummary, summarize
from monitor.exposition import (
    ExpositionOptions,
    Fragment,
    HealthPart,
    RenderedBody,
    compress_fragment,
    health_part,
    render_body,
    render_business,
    render_numbers,
    render_usage,
    render_waba_account,
)
from monitor.families import WabaAccount, health_errors
from monitor.graph.usage import BucUsage
from monitor.model import (
    BusinessState,
    PhoneNumber,
    Transition,
    WabaState,
    digits,
    transitions,
)

log = structlog.get_logger("monitor.store")


@dataclass(frozen=True, slots=True)
class _NumberPart:
    """A WABA's phone-number series, compressed, with what they were rendered from."""

    business_id: str
    numbers: tuple[PhoneNumber, ...]
    status_changed_at: Mapping[str, float]
    members: Mapping[str, bytes]

    def fits(self, state: WabaState) -> bool:
        return (self.business_id == state.business_id and self.numbers == state.numbers
                and self.status_changed_at == state.status_changed_at)

@dataclass(frozen=True, slots=True)
class _AccountPart:
    """A WABA's account-level series, compressed, with what they show (``key``) and the
    objects that was worked out from (``sources``)."""

    sources: tuple[object, ...]
    key: tuple[object, ...]
    members: Fragment


ChangeListener = Callable[[WabaState, list[Transition]], None]
RemoveListener = Callable[[str], None]
RECENT_TRANSITIONS = 200


class Store:
    def __init__(self, options: ExpositionOptions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options or ExpositionOptions()
        self.recent: deque[Transition] = deque(maxlen=RECENT_TRANSITIONS)
        self.on_change: list[ChangeListener] = []
        self.on_remove: list[RemoveListener] = []
        self._wabas: dict[str, WabaState] = {}
        self._waba_nodes: dict[str, WabaNode] = {}
        self._waba_facts: dict[str, WabaFacts] = {}
        self._alerts: dict[str, dict[tuple[str, ...], AccountAlert]] = {}
        self._account_parts: dict[str, _AccountPart] = {}
        self._subscriptions: dict[str, bool] = {}
        self._templates: dict[str, tuple[Template, ...]] = {}
        self._templates_at: dict[str, float] = {}
        self.template_reads_unchanged = 0  # reads that rendered nothing (same objects)
        self._settings: dict[str, dict[str, bool]] = {}  # waba -> number -> identity check
        self._throttled: set[str] = set()  # WABAs waiting on a Graph API throttle
        self._clock = clock
        self._next_expiry = math.inf  # when the earliest active restriction ends
        self._businesses: dict[str, BusinessState] = {}
        self._by_business: dict[str, set[str]] = {}
        self._by_display: dict[str, str] = {}  # display number's digits -> WABA id
        # Per WABA its number, health and account parts (disjoint families), kept apart:
        # one merged dict of some 35 members per WABA was 20 MB at 50,000 numbers.
        self._waba_fragments: dict[str, tuple[Fragment, ...]] = {}
        self._number_parts: dict[str, _NumberPart] = {}
        self._health_parts: dict[str, HealthPart] = {}
        self._business_fragments: dict[str, Fragment] = {}
        self._summaries: dict[str, BusinessSummary] = {}
        self._stale_businesses: set[str] = set()  # summarized again on the next read
        self._version = 0
        self._body: RenderedBody | None = None
        self._other_usage: dict[tuple[str, str], BucUsage] = {}
        self._other_fragment: Fragment = {}

    # --- reading -------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def wabas(self) -> list[WabaState]:
        return [self._wabas[k] for k in sorted(self._wabas)]

    @property
    def waba_count(self) -> int:
        return len(self._wabas)

    def waba(self, waba_id: str) -> WabaState | None:
        return self._wabas.get(waba_id)

    def businesses(self) -> list[BusinessState]:
        return [self._businesses[k] for k in sorted(self._businesses)]

    def business(self, business_id: str) -> BusinessState | None:
        return self._businesses.get(business_id)

    def summary(self, business_id: str) -> BusinessSummary | None:
        """The business added up over its WABAs (cap, registered count), as of the last change."""
        self._summarize_stale()
        return self._summaries.get(business_id)

    def summaries(self) -> list[BusinessSummary]:
        """Every business's summary, in business order (the order of ``businesses()``)."""
        self._summarize_stale()
        return [self._summaries[k] for k in sorted(self._summaries)]

    def business_wabas(self, business_id: str) -> list[WabaState]:
        return [self._wabas[k] for k in sorted(self._by_business.get(business_id, ()))]

    def number_by_display(self, display: str) -> tuple[WabaState, PhoneNumber] | None:
        """The number a webhook names by its display number (digits compared), through an
        index kept as polls put numbers: a scan of 50,000 numbers per webhook was not."""
        wanted = digits(display)
        waba = self._wabas.get(self._by_display.get(wanted, ""))
        if waba is None:
            return None
        for number in waba.numbers:
            if digits(number.display_phone_number or "") == wanted:
                return waba, number
        return None

    @property
    def ready(self) -> bool:
        """True once every known WABA has finished its first poll (successful or not)."""
        return all(w.polled for w in self._wabas.values())

    def set_options(self, options: ExpositionOptions) -> None:
        """New cardinality options (a reload): every WABA is rendered again."""
        if options == self.options:
            return
        self.options = options
        self._number_parts.clear()
        for state in self._wabas.values():
            self._waba_fragments[state.waba_id] = self._render(state)
        self._version += 1

    def put_other_usage(self, entries: Iterable[BucUsage]) -> None:
        """Usage readings for objects that are not a polled WABA (businesses, the app)."""
        changed = False
        for entry in entries:
            if entry.object_id in self._wabas:
                continue  # a WABA's own readings travel with its poll
            key = (entry.object_id, entry.type)
            if self._other_usage.get(key) != entry:
                self._other_usage[key] = entry
                changed = True
        if changed:
            self._other_fragment = compress_fragment(
                render_usage(self._other_usage[k] for k in sorted(self._other_usage)))
            self._version += 1

    def body(self) -> RenderedBody:
        if self._clock() >= self._next_expiry:
            self._expire()
        self._summarize_stale()
        if self._body is None or self._body.version != self._version:
            fragments: list[Fragment] = [self._business_fragments[k]
                                         for k in sorted(self._business_fragments)]
            fragments.append(self._other_fragment)
            for k in sorted(self._waba_fragments):
                fragments.extend(self._waba_fragments[k])
            self._body = render_body(self._version, fragments, self.options)
        return self._body

    # --- writing -------------------------------------------------------------------------
    def put_business(self, business: BusinessState) -> None:
        self._businesses[business.business_id] = business
        self._rerender_business(business.business_id)

    def remove_business(self, business_id: str) -> None:
        self._businesses.pop(business_id, None)
        self._alerts.pop(business_id, None)
        self._business_fragments.pop(business_id, None)
        self._summaries.pop(business_id, None)
        self._stale_businesses.discard(business_id)
        for waba_id in sorted(self._by_business.pop(business_id, set())):
            self.remove_waba(waba_id)
        self._version += 1

    def put_waba(self, state: WabaState, *, at: float | None = None) -> list[Transition]:
        old = self._wabas.get(state.waba_id)
        self._index(state, old)
        self._waba_fragments[state.waba_id] = self._render(state)
        if old is not None and old.business_id != state.business_id:
            self._rerender_business(old.business_id)
        if (old is not None and old.business_id == state.business_id
                and old.numbers is state.numbers and old.up == state.up):
            self._version += 1  # what the business adds up is the same (the usual poll)
        else:
            self._rerender_business(state.business_id)
        found = transitions(old, state, at or state.last_attempt or 0.0) if old else []
        for change in found:
            log.info("phone_number_changed", business_id=change.business_id,
                     waba_id=change.waba_id, phone_number_id=change.phone_number_id,
                     field=change.field, old=change.old, new=change.new)
        self.recent.extendleft(found)
        for listener in self.on_change:
            listener(state, found)
        return found

    def waba_node(self, waba_id: str) -> WabaNode | None:
        return self._waba_nodes.get(waba_id)

    def put_waba_node(self, waba_id: str, node: WabaNode) -> None:
        """What the WABA node said (read at the discovery cadence)."""
        state = self._wabas.get(waba_id)
        if state is not None and self._waba_nodes.get(waba_id) != node:
            self._waba_nodes[waba_id] = node
            self._waba_fragments[waba_id] = self._render(state)
            self._version += 1

    def waba_facts(self, waba_id: str) -> WabaFacts | None:
        return self._waba_facts.get(waba_id)

    def put_waba_facts(self, waba_id: str, facts: WabaFacts, *,
                       at: float | None = None) -> None:
        """What only webhooks told about a watched WABA (already durable when put here)."""
        state = self._wabas.get(waba_id)
        if state is not None and self._waba_facts.get(waba_id) != facts:
            found = self.template_changes(waba_id, facts=facts, at=at)
            self._waba_facts[waba_id] = facts
            self._waba_fragments[waba_id] = self._render(state)
            self._version += 1
            self._record(found)

    def templates(self, waba_id: str) -> tuple[Template, ...] | None:
        return self._templates.get(waba_id)

    def templates_source(self, waba_id: str) -> tuple[object, ...]:
        """What a WABA's effective templates are made from (the read, its time, the webhook
        facts): the same objects mean the same effective templates, so readers can cache."""
        return (self._templates.get(waba_id), self._templates_at.get(waba_id),
                self._waba_facts.get(waba_id))

    def effective_templates(self, waba_id: str) -> tuple[Template, ...]:
        """The last read's templates with newer template webhooks applied over them."""
        return _effective(self._templates.get(waba_id) or (),
                          self._templates_at.get(waba_id, 0.0), self._waba_facts.get(waba_id))

    def template_changes(self, waba_id: str, *, templates: tuple[Template, ...] | None = None,
                         read_at: float | None = None, facts: WabaFacts | None = None,
                         at: float | None = None) -> list[Transition]:
        """What the history would record if this read (``templates`` at ``read_at``) or these
        webhook ``facts`` were put now. Nothing before the WABA's first template read: the
        first read is where the history starts, as a number's first poll is."""
        state = self._wabas.get(waba_id)
        current = self._templates.get(waba_id)
        if state is None or current is None:
            return []
        current_at = self._templates_at.get(waba_id, 0.0)
        before = _effective(current, current_at, self._waba_facts.get(waba_id))
        after = _effective(current if templates is None else templates,
                           current_at if templates is None else (
                               self._clock() if read_at is None else read_at),
                           self._waba_facts.get(waba_id) if facts is None else facts)
        if before == after:
            return []
        return template_transitions(state.business_id, waba_id, before, after,
                                    self._clock() if at is None else at)

    def put_templates(self, waba_id: str, templates: tuple[Template, ...],
                      at: float | None = None,
                      changes: list[Transition] | None = None) -> list[Transition]:
        """A WABA's templates at its last template read (kept after a failed read); template
        webhooks newer than ``at`` still apply over them. Returns the changes recorded (the
        caller made them durable first: ``template_changes``, passed as ``changes`` when it
        has them, so they are not worked out twice).

        The same templates again (the read's bytes did not change: the same objects) with no
        webhook fact that the later read time outdates render nothing: only the read time
        moves, and no series shows it."""
        state = self._wabas.get(waba_id)
        current = self._templates.get(waba_id)
        read_at = self._clock() if at is None else at
        if state is None or (current == templates and self._templates_at.get(waba_id) == at):
            return []
        if current is templates:
            facts = self._waba_facts.get(waba_id)
            before = _effective(current, self._templates_at.get(waba_id, 0.0), facts)
            if _effective(templates, read_at, facts) == before:
                self._templates_at[waba_id] = read_at
                self.template_reads_unchanged += 1
                return []
        found = changes if changes is not None else self.template_changes(
            waba_id, templates=templates, read_at=read_at, at=read_at)
        self._templates[waba_id] = templates
        self._templates_at[waba_id] = read_at
        self._waba_fragments[waba_id] = self._render(state)
        self._version += 1
        self._record(found)
        return found

    def _record(self, found: list[Transition]) -> None:
        """Template changes into the recent history (already durable when put here)."""
        for change in found:
            log.info("message_template_changed", business_id=change.business_id,
                     waba_id=change.waba_id, template_id=change.template_id,
                     template_name=change.template_name, field=change.field,
                     old=change.old, new=change.new)
        self.recent.extendleft(found)

    def subscription(self, waba_id: str) -> bool | None:
        return self._subscriptions.get(waba_id)

    def put_subscription(self, waba_id: str, subscribed: bool | None) -> None:
        """Whether our app receives the WABA's webhooks; None: unknown (series absent)."""
        state = self._wabas.get(waba_id)
        if state is None or self._subscriptions.get(waba_id) == subscribed:
            return
        if subscribed is None:
            self._subscriptions.pop(waba_id, None)
        else:
            self._subscriptions[waba_id] = subscribed
        self._waba_fragments[waba_id] = self._render(state)
        self._version += 1

    def throttled(self, waba_id: str) -> bool:
        return waba_id in self._throttled

    def set_throttled(self, waba_id: str, throttled: bool) -> None:
        """A WABA started or stopped waiting on a throttle: shown at once, mid-poll too."""
        state = self._wabas.get(waba_id)
        if state is None or (waba_id in self._throttled) == throttled:
            return
        if throttled:
            self._throttled.add(waba_id)
        else:
            self._throttled.discard(waba_id)
        self._waba_fragments[waba_id] = self._render(state)
        self._version += 1

    def number_settings(self, waba_id: str) -> Mapping[str, bool]:
        return self._settings.get(waba_id, {})

    def put_number_setting(self, waba_id: str, phone_number_id: str, enabled: bool | None) -> None:
        """A number's identity change check, as its settings read said; None: unknown."""
        state = self._wabas.get(waba_id)
        current = self._settings.get(waba_id, {})
        if state is None or current.get(phone_number_id) == enabled:
            return
        updated = dict(current)
        if enabled is None:
            updated.pop(phone_number_id, None)
        else:
            updated[phone_number_id] = enabled
        self._settings[waba_id] = updated
        self._waba_fragments[waba_id] = self._render(state)
        self._version += 1

    def account_alerts(self, business_id: str) -> list[AccountAlert]:
        found = self._alerts.get(business_id, {})
        return [found[k] for k in sorted(found)]

    def put_account_alert(self, alert: AccountAlert) -> None:
        """The last alert of its type for its entity (already durable when put here)."""
        if alert.business_id in self._businesses:
            self._alerts.setdefault(alert.business_id, {})[alert.key] = alert
            self._rerender_business(alert.business_id)

    def remove_waba(self, waba_id: str) -> None:
        old = self._wabas.pop(waba_id, None)
        if old is not None:
            self._index_numbers(waba_id, old.numbers, ())
        self._waba_nodes.pop(waba_id, None)
        self._waba_facts.pop(waba_id, None)
        self._account_parts.pop(waba_id, None)
        self._subscriptions.pop(waba_id, None)
        self._settings.pop(waba_id, None)
        self._throttled.discard(waba_id)
        self._templates.pop(waba_id, None)
        self._templates_at.pop(waba_id, None)
        self._waba_fragments.pop(waba_id, None)
        self._number_parts.pop(waba_id, None)
        self._health_parts.pop(waba_id, None)
        if old is not None:
            self._by_business.get(old.business_id, set()).discard(waba_id)
            self._rerender_business(old.business_id)
            for listener in self.on_remove:
                listener(waba_id)
        self._version += 1

    def load(self, businesses: Iterable[BusinessState], wabas: Iterable[WabaState]) -> None:
        for waba in wabas:
            self._index(waba, self._wabas.get(waba.waba_id))
            self._waba_fragments[waba.waba_id] = self._render(waba)
        for business in businesses:
            self.put_business(business)

    def _render(self, state: WabaState) -> tuple[Fragment, ...]:
        """Compressed series of a WABA; the number part is reused when nothing changed,
        which is the usual poll, so a steady fleet costs little CPU per poll."""
        part = self._number_parts.get(state.waba_id)
        if part is None or not part.fits(state):
            part = _NumberPart(state.business_id, state.numbers, state.status_changed_at,
                               compress_fragment(render_numbers(
                                   state, compact=self.options.compact)))
            self._number_parts[state.waba_id] = part
        health = self._health_parts[state.waba_id] = health_part(
            state, self._health_parts.get(state.waba_id))
        return (part.members, health.members, self._account_part(state))

    def _rerender_business(self, business_id: str) -> None:
        """Mark the business to be summarized again. The summary and its families are made
        on the next read (``summary``, ``summaries``, ``body``), once however many of its
        WABAs changed in between: a first poll puts its WABAs one by one."""
        self._stale_businesses.add(business_id)
        self._version += 1

    def _summarize_stale(self) -> None:
        """Summarize the businesses marked (this runs after a change of one or of its WABAs,
        and nowhere else) and render their families from the summary."""
        while self._stale_businesses:
            business_id = self._stale_businesses.pop()
            business = self._businesses.get(business_id)
            if business is not None:
                summary = summarize(business, self.business_wabas(business_id))
                self._summaries[business_id] = summary
                self._business_fragments[business_id] = compress_fragment(
                    render_business(summary, self.account_alerts(business_id)))

    def _account_part(self, state: WabaState) -> Fragment:
        """A WABA's account-level series, rendered again only when what they show changed
        (its node, its webhook facts, its numbers' health errors, or a restriction expired).

        First a cheap look: the same objects it was made from last time (the routine poll
        keeps its numbers' tuple; node, facts, settings and templates are replaced, never
        changed in place) mean the same series, without working out what they show."""
        waba_id = state.waba_id
        node = self._waba_nodes.get(waba_id)
        facts = self._waba_facts.get(waba_id)
        now = self._clock()
        restrictions = facts.active_restrictions(now) if facts is not None else ()
        read_at = self._templates_at.get(waba_id, 0.0)
        mode = self.options.template_series
        sources = (state.business_id, state.numbers, node, facts, restrictions,
                   self._subscriptions.get(waba_id), self._settings.get(waba_id),
                   self._templates.get(waba_id), read_at, mode, waba_id in self._throttled)
        cached = self._account_parts.get(waba_id)
        if cached is not None and cached.sources == sources:
            return cached.members
        known = {n.id for n in state.numbers}
        settings = {k: v for k, v in self._settings.get(waba_id, {}).items() if k in known}
        templates = self.effective_templates(waba_id) if waba_id in self._templates else None
        series = () if templates is None or mode == "none" else tuple(
            t for t in templates if mode == "all" or t.problem)
        account = WabaAccount(state, node, facts, now, self._subscriptions.get(waba_id),
                              settings, templates, series, read_at, waba_id in self._throttled)
        key = (state.business_id, node, facts, health_errors(account), restrictions,
               account.subscribed, tuple(sorted(settings.items())), templates, mode,
               account.throttled)
        if cached is not None and cached.key == key:
            self._account_parts[waba_id] = _AccountPart(sources, key, cached.members)
            return cached.members
        members = compress_fragment(render_waba_account(account))
        self._account_parts[waba_id] = _AccountPart(sources, key, members)
        ends = [r.expires_at for r in restrictions if r.expires_at is not None]
        if ends:
            self._next_expiry = min(self._next_expiry, min(ends))
        return members

    def _expire(self) -> None:
        """A restriction ended: render again the WABAs that had one, so its series goes."""
        self._next_expiry = math.inf
        for waba_id in [w for w, f in self._waba_facts.items() if f.restrictions]:
            state = self._wabas.get(waba_id)
            if state is not None:
                self._waba_fragments[waba_id] = self._render(state)
        self._version += 1

    def _index(self, state: WabaState, old: WabaState | None) -> None:
        if old is not None and old.business_id != state.business_id:
            self._by_business.get(old.business_id, set()).discard(old.waba_id)
        self._wabas[state.waba_id] = state
        self._by_business.setdefault(state.business_id, set()).add(state.waba_id)
        if old is None or old.numbers is not state.numbers:
            self._index_numbers(state.waba_id, old.numbers if old else (), state.numbers)

    def _index_numbers(self, waba_id: str, old: Iterable[PhoneNumber],
                       new: Iterable[PhoneNumber]) -> None:
        for number in old:
            shown = digits(number.display_phone_number or "")
            if self._by_display.get(shown) == waba_id:
                del self._by_display[shown]
        for number in new:
            if number.display_phone_number:
                self._by_display[digits(number.display_phone_number)] = waba_id


def _effective(templates: tuple[Template, ...], read_at: float,
               facts: WabaFacts | None) -> tuple[Template, ...]:
    """A read's templates with the webhook facts newer than the read applied over them.
    Webhook times are whole seconds: a fact of the read's own second counts as newer (a read
    that already saw it gains nothing from it; one that did not must not hide it)."""
    if not templates or facts is None or not facts.templates:
        return templates
    told, second = facts.templates, math.floor(read_at)
    return tuple(apply_template_fact(t, told[t.id])
                 if t.id in told and told[t.id].at >= second else t for t in templates)
