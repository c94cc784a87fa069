"""The cadence of the work: one APScheduler job per WABA, one discovery job per business.

Jobs are ``max_instances=1`` and coalescing, so a slow poll never piles up behind itself,
and jittered so that thousands of WABAs do not hit the API in the same second.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import BusinessSettings
from monitor.daemon import Monitor, Target

log = structlog.get_logger("monitor.scheduler")


class Jobs:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        monitor.on_interval.append(self._repace)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._waba_jobs: dict[str, Target] = {}
        self._discovered_by: dict[str, set[str]] = {}
        self._unconfirmed: set[str] = set()
        self._stopping = False

    def start(self) -> None:
        """Schedule everything; WABAs restored from the state file are polled too."""
        configured = {t.waba_id for t in self.monitor.configured_targets()}
        restored = [Target(w.business_id, w.waba_id) for w in self.monitor.store.wabas()]
        self.monitor.register_businesses()
        for target in self.monitor.configured_targets():
            self.add_waba(target)
        for target in restored:
            if target.waba_id not in configured:
                self._unconfirmed.add(target.waba_id)
                self.add_waba(target)
        self._schedule_businesses()
        self.scheduler.start()

    def _schedule_businesses(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("business:"):
                job.remove()
        for business in self.monitor.settings.businesses:
            if business.wabas is not None and not self.monitor.shard.owns(business.id):
                continue
            self.scheduler.add_job(
                self._business,
                IntervalTrigger(seconds=self.monitor.settings.schedule.discovery_interval),
                args=[business],
                id=f"business:{business.id}",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
                misfire_grace_time=None,
                replace_existing=True,
            )

    def _trigger(self, interval: float | None = None) -> IntervalTrigger:
        schedule = self.monitor.settings.schedule
        seconds = max(schedule.scan_interval, interval or 0.0)
        return IntervalTrigger(seconds=seconds, jitter=seconds * schedule.jitter or None)

    def _repace(self, waba_id: str, interval: float) -> None:
        """A WABA's budget pace changed: its job runs at the new interval from now on."""
        job = self.scheduler.get_job(f"waba:{waba_id}")
        if job is not None:
            job.reschedule(self._trigger(interval))

    def reconcile(self, *, interval_changed: bool) -> None:
        """Bring jobs and store in line with a new configuration, in one pass on the loop.

        Added businesses and WABAs start polling now; removed ones stop and their series go.
        """
        monitor = self.monitor
        monitor.register_businesses()
        desired = {t.waba_id: t for t in monitor.configured_targets()}
        discovering = {b.id for b in monitor.discovery_businesses()}
        self._discovered_by = {b: w for b, w in self._discovered_by.items() if b in discovering}
        discovered = set().union(*self._discovered_by.values()) if self._discovered_by else set()
        for waba_id, target in list(self._waba_jobs.items()):
            keep = waba_id in desired or (
                waba_id in discovered and monitor.shard.owns(target.business_id))
            if not keep:
                log.info("waba_removed", business_id=target.business_id, waba_id=waba_id,
                         reason="configuration reloaded")
                self.remove_waba(waba_id)
        for target in desired.values():
            self.add_waba(target)
        if interval_changed:  # each WABA's next poll paces it again from the new interval
            for waba_id in self._waba_jobs:
                self.scheduler.reschedule_job(f"waba:{waba_id}", trigger=self._trigger())
        self._schedule_businesses()
        owned = {b.id for b in monitor.businesses}
        for business in monitor.store.businesses():
            if business.business_id not in owned and not monitor.store.business_wabas(
                    business.business_id):
                monitor.store.remove_business(business.business_id)

    def shutdown(self) -> None:
        """Stop scheduling; polls still running are cancelled and end quietly."""
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _poll(self, target: Target) -> None:
        try:
            await self.monitor.poll_waba(target)
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # only a shutdown ends a poll quietly

    def add_waba(self, target: Target) -> None:
        self.monitor.ensure_waba(target)
        if target.waba_id in self._waba_jobs:
            if self._waba_jobs[target.waba_id] == target:
                return
            self.scheduler.remove_job(f"waba:{target.waba_id}")
        self._waba_jobs[target.waba_id] = target
        self.scheduler.add_job(
            self._poll,
            self._trigger(),
            args=[target],
            id=f"waba:{target.waba_id}",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
            replace_existing=True,
        )

    def remove_waba(self, waba_id: str) -> None:
        if self._waba_jobs.pop(waba_id, None) is not None:
            self.scheduler.remove_job(f"waba:{waba_id}")
        self.monitor.store.remove_waba(waba_id)

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        """Poll a WABA soon (debounced): many webhooks in a burst cause one poll."""
        job = self.scheduler.get_job(f"waba:{waba_id}")
        if job is None:
            log.info("repoll_for_unknown_waba", waba_id=waba_id, reason=reason)
            return
        when = datetime.now(UTC) + timedelta(seconds=self.monitor.settings.webhooks.repoll_delay)
        if job.next_run_time is None or job.next_run_time > when:
            job.modify(next_run_time=when)
            log.info("repoll_scheduled", waba_id=waba_id, reason=reason)

    async def _business(self, business: BusinessSettings) -> None:
        try:
            await self._business_work(business)
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def _business_work(self, business: BusinessSettings) -> None:
        if self.monitor.shard.owns(business.id):
            await self.monitor.refresh_business(business.id)
        if business.wabas is None:
            await self._discover(business)

    async def _discover(self, business: BusinessSettings) -> None:
        targets = await self.monitor.discover(business)
        if targets is None:
            return
        found = {t.waba_id for t in targets}
        configured = {t.waba_id for t in self.monitor.configured_targets()}
        for gone in self._discovered_by.get(business.id, set()) - found - configured:
            log.info("waba_gone", business_id=business.id, waba_id=gone)
            self.remove_waba(gone)
        self._discovered_by[business.id] = found
        for target in targets:
            if target.waba_id not in configured:
                self.add_waba(target)
        self._unconfirmed -= found
        everyone = {b.id for b in self.monitor.discovery_businesses()}
        if self._unconfirmed and everyone <= set(self._discovered_by):
            for waba_id in sorted(self._unconfirmed):
                log.info("waba_gone", waba_id=waba_id, reason="restored but not discovered")
                self.remove_waba(waba_id)
            self._unconfirmed.clear()
