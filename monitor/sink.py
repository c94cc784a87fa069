"""The daemon side of the webhook receiver: facts staged, committed, then shown.

What only a webhook tells (a WABA's enforcement and review facts, its per-WABA cap, account
alerts, a portfolio's registration cap) must be durable before the webhook is answered 200,
because Meta tells it once and redelivers only what is not acknowledged. Handlers are
synchronous (``monitor.webhooks.contract``), so they *stage* facts here; the receiver then
awaits ``commit``, which writes everything staged in one transaction, in a worker thread,
under the state writer's lock, and puts it in the store only once written. So:

* the store (``/metrics``) never shows a webhook fact the state file lacks;
* later readers — the next change of the same body, or of a concurrent body — see staged
  values first (``waba_facts``, ``already_applied``), so two changes of one WABA build on
  each other;
* commits run one at a time under the lock, each taking whatever is staged when it starts;
  a value is unstaged only if nothing newer was staged meanwhile, so a slower commit never
  puts an older value in the store after a newer one;
* a failed write leaves everything staged (the receiver answers 500; the next commit,
  typically Meta's redelivery, writes it again).

With ``state.directory: null`` there is nothing to write, and ``commit`` only shows what is
staged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from monitor.accounts import AccountAlert, WabaFacts
from monitor.model import LearnedCap, WabaState
from monitor.scheduler import Jobs
from monitor.state import StateWriter
from monitor.store import Store

__all__ = ["NAME_STATUS_OF", "StagingSink"]

# phone_number_name_update decisions as the name_status enum spells them.
NAME_STATUS_OF = {"APPROVED": "APPROVED", "REJECTED": "DECLINED", "PENDING": "PENDING_REVIEW",
                  "DEFERRED": "DEFERRED"}

log = structlog.get_logger("monitor.sink")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class _Staged(Generic[T]):
    """One staged value; compared by identity, so a commit can tell whether what it wrote
    is still the newest value staged under its key."""

    value: T


@dataclass(slots=True)
class _Batch:
    facts: dict[str, _Staged[tuple[str, WabaFacts]]] = field(default_factory=dict)
    alerts: dict[tuple[str, ...], _Staged[AccountAlert]] = field(default_factory=dict)
    caps: dict[str, _Staged[LearnedCap]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.facts or self.alerts or self.caps)


class StagingSink:
    """``monitor.webhooks.contract.WebhookSink`` for a running daemon."""

    def __init__(self, store: Store, jobs: Jobs, *, writer: StateWriter | None,
                 committed: Mapping[str, WabaFacts] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``committed``: the WABA facts in the state file at start (``StateDB.waba_facts``)."""
        self._store = store
        self._jobs = jobs
        self._writer = writer
        self._clock = clock
        self._staged = _Batch()
        # Every WABA's last committed facts, also of WABAs the store does not show (yet): a
        # WABA watched only later (discovered, or configured but never polled before a crash)
        # gets them shown as soon as the store has it, and its next change builds on them
        # rather than on nothing.
        self._committed: dict[str, WabaFacts] = dict(committed or {})
        store.on_change.append(self._on_waba)

    # --- reading -------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def owner_of(self, waba_id: str) -> str | None:
        waba = self._store.waba(waba_id)
        return waba.business_id if waba is not None else None

    def knows_business(self, business_id: str) -> bool:
        return self._store.business(business_id) is not None

    def waba_facts(self, waba_id: str) -> WabaFacts:
        staged = self._staged.facts.get(waba_id)
        if staged is not None:
            return staged.value[1]
        return (self._store.waba_facts(waba_id) or self._committed.get(waba_id)
                or WabaFacts())

    def already_applied(self, waba_id: str, key: str) -> bool:
        return self.waba_facts(waba_id).seen(key)

    def phone_number_id_for(self, display_phone_number: str) -> str | None:
        found = self._store.number_by_display(display_phone_number)
        return found[1].id if found else None

    @property
    def pending(self) -> int:
        """How many values wait for a commit (0 once everything is written and shown)."""
        staged = self._staged
        return len(staged.facts) + len(staged.alerts) + len(staged.caps)

    # --- staging -------------------------------------------------------------------------
    def stage_waba_facts(self, waba_id: str, facts: WabaFacts) -> None:
        owner = self.owner_of(waba_id)
        if owner is None:
            log.warning("facts_for_unknown_waba", waba_id=waba_id)
            return
        self._staged.facts[waba_id] = _Staged((owner, facts))

    def stage_account_alert(self, alert: AccountAlert) -> None:
        self._staged.alerts[alert.key] = _Staged(alert)

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None:
        """A portfolio registration cap (``max_phone_numbers_per_business``), staged for the
        WABA's owning business."""
        owner = self.owner_of(waba_id)
        if owner is None:
            log.warning("cap_for_unknown_waba", waba_id=waba_id, cap=cap, field=source_field)
            return
        self._staged.caps[owner] = _Staged(LearnedCap(owner, cap, source_field, self._clock()))

    # --- acting at once ------------------------------------------------------------------
    def set_messaging_limit(self, *, waba_id: str, limit: str, source_field: str) -> None:
        """Not durable on purpose: every poll reads the limit again."""
        owner = self.owner_of(waba_id)
        business = self._store.business(owner) if owner is not None else None
        if business is None:
            return
        if business.messaging_limit != limit:
            log.info("messaging_limit_told", business_id=business.business_id,
                     waba_id=waba_id, limit=limit, field=source_field,
                     previous=business.messaging_limit)
        self._store.put_business(dataclasses.replace(
            business, messaging_limit=limit, messaging_limit_source="webhook",
            messaging_limit_at=self._clock()))

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        self._jobs.request_repoll(waba_id=waba_id, reason=reason)

    def request_discovery(self, *, waba_id: str, owner_business_id: str | None,
                          reason: str) -> None:
        """The business that lists or discovered the WABA; else its owner, when configured
        here; else every configured business that discovers (one of them may find it)."""
        fleet = self._jobs.fleet
        waba = self._store.waba(waba_id)
        scheduled = ({b.id for b in fleet.businesses}
                     | {b.id for b in fleet.discovery_businesses()})
        if waba is not None:
            businesses = [waba.via or waba.business_id]
        elif owner_business_id in scheduled:
            businesses = [owner_business_id]
        else:
            businesses = sorted(b.id for b in fleet.discovery_businesses())
        for business_id in businesses:
            self._jobs.request_discovery(business_id=business_id, reason=reason)

    # --- committing ----------------------------------------------------------------------
    async def commit(self) -> None:
        writer = self._writer
        if not self.pending:
            # Nothing staged: whatever the caller staged is written and shown already (a
            # commit in flight keeps its values staged until they are shown), so a body that
            # told no fact does not wait for the writer.
            return
        at = self._clock()
        if writer is None:
            self._show(self._take(), at)
            return
        async with writer.lock:  # in turn with the batched writes and transition commits
            batch = self._take()
            if not batch:
                return
            # Template changes the facts make go in the history, written with the facts.
            changes = [change for waba_id, s in batch.facts.items()
                       for change in self._store.template_changes(waba_id, facts=s.value[1],
                                                                  at=at)]
            write = asyncio.ensure_future(asyncio.to_thread(
                writer.db.save_webhook_facts,
                [(waba_id, *s.value) for waba_id, s in batch.facts.items()],
                [s.value for s in batch.alerts.values()],
                [s.value for s in batch.caps.values()], changes))
            await _unless_cancelled(write)
            self._show(batch, at)

    def _take(self) -> _Batch:
        """What is staged now (it stays staged until shown)."""
        staged = self._staged
        return _Batch(dict(staged.facts), dict(staged.alerts), dict(staged.caps))

    def _show(self, batch: _Batch, at: float) -> None:
        """Put what was written in the store, and unstage each value nothing newer replaced."""
        staged = self._staged
        for waba_id, item in batch.facts.items():
            before = self._committed.get(waba_id)
            self._committed[waba_id] = item.value[1]
            self._store.put_waba_facts(waba_id, item.value[1], at=at)
            self._apply_name_decisions(waba_id, before, item.value[1])
            if staged.facts.get(waba_id) is item:
                del staged.facts[waba_id]
        for key, alert in batch.alerts.items():
            self._store.put_account_alert(alert.value)
            if staged.alerts.get(key) is alert:
                del staged.alerts[key]
        for business_id, cap in batch.caps.items():
            self._show_cap(cap.value)
            if staged.caps.get(business_id) is cap:
                del staged.caps[business_id]

    def _apply_name_decisions(self, waba_id: str, before: WabaFacts | None,
                              after: WabaFacts) -> None:
        """A display-name decision shows at once as the number's ``new_name_status`` (the
        next poll reads Meta's own value again)."""
        old = before.name_decisions if before is not None else {}
        changed = {n: d for n, d in after.name_decisions.items() if old.get(n) != d}
        state = self._store.waba(waba_id)
        if not changed or state is None:
            return
        numbers = tuple(
            dataclasses.replace(n, new_name_status=NAME_STATUS_OF.get(
                changed[n.id][0], changed[n.id][0])) if n.id in changed else n
            for n in state.numbers)
        if numbers != state.numbers:
            self._store.put_waba(dataclasses.replace(state, numbers=numbers))

    def _on_waba(self, state: WabaState, _: object) -> None:
        """A WABA put in the store: show its committed facts if the store has none yet."""
        facts = self._committed.get(state.waba_id)
        if facts is not None and self._store.waba_facts(state.waba_id) is None:
            self._store.put_waba_facts(state.waba_id, facts)

    def _show_cap(self, learned: LearnedCap) -> None:
        business = self._store.business(learned.business_id)
        if business is None:
            return
        if business.learned_cap != learned.cap:
            log.info("registration_cap_learned", business_id=learned.business_id,
                     cap=learned.cap, field=learned.source_field, previous=business.learned_cap)
        self._store.put_business(dataclasses.replace(business, learned_cap=learned.cap))


async def _unless_cancelled(write: asyncio.Future[None]) -> None:
    """Await a write running in a thread; if the waiting task is cancelled, still wait for
    the write to end before re-raising, so the lock is not released while it runs (a later
    commit's newer values must not land before it)."""
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        while not write.done():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                continue
            except Exception:
                break
        raise
