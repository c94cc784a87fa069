"""The cadence of the work: a poll and a template read per watched WABA, a job per business.

The scheduler decides nothing about *what* is watched: it turns the fleet's desired set
(``Monitor.sync``) into scheduled runs. Every run follows one policy: never overlapping
(``max_instances=1``) and coalescing, so a slow poll never piles up behind itself; first run
now; no misfire grace (a late run still runs). WABA runs are jittered so thousands of WABAs
do not hit the API in the same second.

A WABA's polls and template reads run on one ``Cadence`` (one timer and a heap for every
WABA; APScheduler's per-job bookkeeping was 3 % of a core at 10,000 WABAs, see
``monitor.cadence``); the few business jobs (15 min cadence) stay APScheduler jobs, with the
same policy written once in ``add_job``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.cadence import Cadence
from monitor.config import BusinessSettings
from monitor.daemon import Monitor
from monitor.fleet import Target, Watch

log = structlog.get_logger("monitor.scheduler")
BACKGROUND_READS = 32  # template reads or businesses' WABA-node reads under way at once
FIRST_POLL_CHECK = 0.25  # seconds between looks at whether the first polls are done


def waba_key(waba_id: str) -> str:
    """The cadence key of a WABA's polls."""
    return f"waba:{waba_id}"


def templates_key(waba_id: str) -> str:
    """The cadence key of a WABA's template reads."""
    return f"templates:{waba_id}"


def add_job(scheduler: AsyncIOScheduler, job_id: str, func: Callable[..., Awaitable[None]],
            trigger: IntervalTrigger, *args: Any, delay: float = 0.0) -> None:
    """The one job policy: never overlapping, coalesced, first run now (or after ``delay``),
    no misfire grace."""
    scheduler.add_job(func, trigger, args=list(args), id=job_id, max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC) + timedelta(seconds=delay),
                      misfire_grace_time=None, replace_existing=True)


class Jobs:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.fleet = monitor.fleet
        monitor.on_interval.append(self._repace)
        self.scheduler = AsyncIOScheduler(timezone=UTC)  # business jobs
        self.cadence = Cadence("waba-cadence")  # every WABA's polls and template reads
        self._waba_jobs: dict[str, Target] = {}
        self._started = False
        self._was_ready = False
        self._stopping = False
        self._first_polls = asyncio.Event()
        self._first_polls_watch: asyncio.Future[None] | None = None
        # Template reads and a business's node and subscription reads run on the 15-minute
        # cadences, every WABA's at the same moment after a start. Graph batch calls made the
        # client's concurrency a bound on HTTP calls, not on reads: unbounded, 10,000 WABAs'
        # reads held their answers at once (the steady benchmark's peak and its p99).
        self._background = asyncio.Semaphore(BACKGROUND_READS)

    @property
    def ready(self) -> bool:
        """Ready once the first poll of everything finished; stays ready after that (a reload
        that adds WABAs must not take the pod out of its Service)."""
        if not self._was_ready:
            self._was_ready = (self._started and self.monitor.store.ready
                               and self.fleet.discovery_complete)
        return self._was_ready

    def start(self) -> None:
        """Schedule everything the fleet wants (restored WABAs it accepted included)."""
        self._started = True
        self.apply()
        self._schedule_businesses()
        self.cadence.start()
        self.scheduler.start()

    def apply(self, *, reason: str = "no longer watched") -> None:
        """Bring store and jobs in line with the fleet's desired set."""
        desired = self.monitor.sync(reason=reason)
        for waba_id in [w for w in self._waba_jobs if w not in desired]:
            del self._waba_jobs[waba_id]
            self.cadence.remove(waba_key(waba_id))
            self.cadence.remove(templates_key(waba_id))
        for watch in desired.values():
            self._add_waba(watch)

    def reconcile(self, *, interval_changed: bool) -> None:
        """Apply a new configuration (already given to the fleet), in one pass on the loop.

        Added businesses and WABAs start polling now; removed ones stop and their series go.
        """
        kept = dict(self._waba_jobs)
        self.apply(reason="configuration reloaded")
        if interval_changed:  # each WABA's next poll paces it again from the new interval
            for waba_id, target in self._waba_jobs.items():
                if kept.get(waba_id) == target:  # one just (re)added keeps its first run now
                    self._pace(waba_id, None)
        self._schedule_businesses()

    def shutdown(self) -> None:
        """Stop scheduling; polls still running are cancelled and end quietly."""
        self._stopping = True
        if self._first_polls_watch is not None:
            self._first_polls_watch.cancel()
        self.cadence.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        """Poll a WABA soon (debounced): many webhooks in a burst cause one poll."""
        key = waba_key(waba_id)
        if key not in self.cadence:
            log.info("repoll_for_unknown_waba", waba_id=waba_id, reason=reason)
            return
        if self.cadence.run_soon(key, self.monitor.settings.webhooks.repoll_delay):
            log.info("repoll_scheduled", waba_id=waba_id, reason=reason)

    # --- queries (tests and tools read these, never the cadence's internals) ----------------
    def waba_ids(self) -> frozenset[str]:
        """The WABAs whose polls are scheduled."""
        return frozenset(w for w in self._waba_jobs if waba_key(w) in self.cadence)

    def next_poll(self, waba_id: str) -> float | None:
        """When the WABA is polled next, in ``time.monotonic()`` seconds (None: not
        scheduled)."""
        return self.cadence.due(waba_key(waba_id))

    def poll_interval(self, waba_id: str) -> float | None:
        """The WABA's current poll interval in seconds, its budget pace included."""
        return self.cadence.interval(waba_key(waba_id))

    def templates_scheduled(self, waba_id: str) -> bool:
        return templates_key(waba_id) in self.cadence

    # --- jobs ------------------------------------------------------------------------------
    def _add_waba(self, watch: Watch) -> None:
        if self._waba_jobs.get(watch.waba_id) == watch.target:
            return
        self._waba_jobs[watch.waba_id] = watch.target
        schedule = self.monitor.settings.schedule
        every = schedule.scan_interval
        self.cadence.add(waba_key(watch.waba_id), partial(self._poll, watch.target), every,
                         jitter=every * schedule.jitter)
        if schedule.template_interval > 0:  # after the first polls: polls go first
            every = schedule.template_interval
            self.cadence.add(templates_key(watch.waba_id), partial(self._templates, watch.target),
                             every, jitter=every * schedule.jitter,
                             delay=min(schedule.scan_interval, 30.0))

    def _schedule_businesses(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("business:"):
                job.remove()
        owned = {b.id for b in self.fleet.businesses}
        every = IntervalTrigger(seconds=self.monitor.settings.schedule.discovery_interval)
        for business in self.fleet.settings.businesses:
            if business.id in owned or business.wabas is None:
                add_job(self.scheduler, f"business:{business.id}", self._business, every,
                        business)

    def _pace(self, waba_id: str, interval: float | None) -> None:
        """The WABA's polls follow ``interval`` (never faster than the scan interval; None:
        the scan interval) from now on: the next one an interval (plus jitter) from now."""
        schedule = self.monitor.settings.schedule
        seconds = max(schedule.scan_interval, interval or 0.0)
        self.cadence.reschedule(waba_key(waba_id), seconds, jitter=seconds * schedule.jitter)

    def _repace(self, waba_id: str, interval: float) -> None:
        """A WABA's budget pace changed: it is polled at the new interval from now on."""
        self._pace(waba_id, interval)

    async def _poll(self, target: Target) -> None:
        await self._quietly(self.monitor.poll_waba(target))

    async def _templates(self, target: Target) -> None:
        await self._quietly(self._templates_work(target))

    async def _templates_work(self, target: Target) -> None:
        await self.after_first_polls()  # the first template reads never slow the first poll
        async with self._background:
            await self.monitor.poll_templates(target)

    async def _business(self, business: BusinessSettings) -> None:
        await self._quietly(self._business_work(business))

    async def _business_work(self, business: BusinessSettings) -> None:
        """At the discovery cadence: the portfolio node, discovery, then the node of every
        WABA this business lists or found (one request each, concurrency-bounded)."""
        if any(b.id == business.id for b in self.fleet.businesses):
            await self.monitor.refresh_business(business.id)
        if business.wabas is None and self.fleet.discovered(
                business.id, await self.monitor.discover(business)):
            self.apply(reason="not found by discovery")
        mine = self.fleet.watched_via(business.id)
        if mine:
            await self.after_first_polls()
            async with self._background:
                attributed = await self.monitor.refresh_wabas(mine)
            if attributed:
                self.apply(reason="attributed to its owner")

    def request_discovery(self, *, business_id: str, reason: str) -> None:
        """Run a business's discovery now (a partner or deletion webhook said its WABAs
        changed); the business that owns or found the WABA is asked."""
        job = self.scheduler.get_job(f"business:{business_id}")
        if job is None:
            log.info("discovery_for_unknown_business", business_id=business_id, reason=reason)
            return
        job.modify(next_run_time=datetime.now(UTC))
        log.info("discovery_requested", business_id=business_id, reason=reason)

    async def after_first_polls(self) -> None:
        """Polls come first: a WABA's node and subscription are read once every WABA has
        had its first poll (or half a discovery interval has passed), so the reads that
        run at the discovery cadence never compete with the first full poll at start."""
        if self._first_polls.is_set():
            return
        if self._first_polls_watch is None:  # one watcher, however many jobs wait
            self._first_polls_watch = asyncio.ensure_future(self._watch_first_polls())
        await asyncio.shield(self._first_polls_watch)

    async def _watch_first_polls(self) -> None:
        limit = self.monitor.settings.schedule.discovery_interval / 2
        waited = 0.0
        while not (self._started and self.monitor.store.ready) and waited < limit:
            await asyncio.sleep(FIRST_POLL_CHECK)
            waited += FIRST_POLL_CHECK
        self._first_polls.set()

    async def _quietly(self, work: Awaitable[object]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # only a shutdown ends a job quietly
