"""The monitor proper: polls WABAs, discovers them, and keeps the store current.

Nothing here knows about HTTP serving or the command line; ``Monitor`` is driven by the
scheduler (``run``), or by ``check`` for a single pass over everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
import structlog

from monitor.accounts import TEMPLATE_FIELDS, WABA_NODE_FIELDS, WabaNode, business_node_fields
from monitor.budget import pace
from monitor.config import BusinessSettings, Settings
from monitor.fleet import Fleet, Target, Watch
from monitor.graph.client import GraphClient, RetryPolicy, start_accounting, throttle_scope
from monitor.graph.errors import ErrorKind, GraphError
from monitor.graph.usage import BucUsage
from monitor.model import (
    BusinessState,
    PhoneNumber,
    Transition,
    WabaState,
    phone_number_fields,
    transitions,
)
from monitor.poller import (
    FieldPolicy,
    FillMemory,
    ListingMemory,
    discover_wabas,
    fetch_waba,
    list_templates,
    read_business_node,
    read_subscribed_apps,
    read_waba_node,
)
from monitor.selfmetrics import SelfMetrics
from monitor.sharding import Shard
from monitor.store import Store

log = structlog.get_logger("monitor.daemon")

Clock = Callable[[], float]


def build_client(
    settings: Settings,
    session: aiohttp.ClientSession,
    metrics: SelfMetrics,
    *,
    access_token: str,
    app_secret: str | None,
    usage_sink: Callable[[tuple[BucUsage, ...]], None] | None = None,
) -> GraphClient:
    graph = settings.graph
    return GraphClient(
        session,
        base_url=str(graph.base_url),
        api_version=graph.api_version,
        access_token=access_token,
        app_secret=app_secret,
        metrics=metrics,
        concurrency=graph.concurrency,
        timeout=graph.timeout,
        retry=RetryPolicy(max_retries=graph.max_retries, max_throttle_wait=graph.max_throttle_wait),
        usage_sink=usage_sink,
        batch_size=graph.batch_size,
        batch_wait=graph.batch_wait,
    )


def status_change_times(
    old: WabaState, numbers: Iterable[PhoneNumber], now: float
) -> dict[str, float]:
    """Carry each number's last status-change time forward; stamp ``now`` where it changed."""
    before = {n.id: n.status for n in old.numbers}
    out: dict[str, float] = {}
    for number in numbers:
        previous = old.status_changed_at.get(number.id)
        if number.id in before and before[number.id] == number.status and previous is not None:
            out[number.id] = previous
        else:
            out[number.id] = now
    return out


class Monitor:
    """Polls and discovers; what to watch it learns from its fleet, never decides itself."""

    def __init__(
        self,
        settings: Settings,
        client: GraphClient,
        store: Store,
        metrics: SelfMetrics,
        *,
        clock: Clock = time.time,
        shard: Shard | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.fields = FieldPolicy(metrics, wanted=phone_number_fields(
            settings.graph.api_version))
        self.waba_fields = FieldPolicy(metrics, wanted=WABA_NODE_FIELDS)
        self.template_fields = FieldPolicy(metrics, wanted=TEMPLATE_FIELDS)
        self.business_fields = FieldPolicy(metrics, wanted=business_node_fields(
            settings.graph.api_version))
        self.fill_memory = FillMemory()
        store.on_remove.append(self.fill_memory.forget)  # no memory of unwatched WABAs
        self.template_memory = ListingMemory()
        store.on_remove.append(self.template_memory.forget)
        self.not_before: dict[str, float] = {}
        self.waiting_in_line: dict[str, int] = {}  # WABA -> its requests waiting on a throttle
        self.fleet = fleet or Fleet(settings, shard)
        self.on_verified: list[Callable[[str, bool | None], None]] = []
        self.on_interval: list[Callable[[str, float], None]] = []
        # Writes a WABA's changed state and its transitions durably (the state file), awaited
        # before the change is put in the store; None when state is kept in memory only.
        self.commit: Callable[[WabaState, list[Transition]], Awaitable[None]] | None = None
        # Writes transitions with no WABA state (template changes), likewise before shown.
        self.commit_transitions: Callable[[list[Transition]], Awaitable[None]] | None = None
        self.configure(settings, shard or self.fleet.shard)

    def configure(self, settings: Settings, shard: Shard,
                  client: GraphClient | None = None) -> None:
        """Take a (new) configuration; the store and jobs follow at the next ``sync``."""
        self.settings = settings
        if client is not None:
            self.client = client
        self.fleet.configure(settings, shard)
        self.metrics.scan_interval.set(settings.schedule.scan_interval)
        self.metrics.businesses.set(len(self.fleet.businesses))
        self.metrics.shard_ordinal.clear()
        self.metrics.shard_ordinal.labels(shard_ordinal=str(shard.ordinal)).set(shard.ordinal)
        self.metrics.total_shards.set(shard.total)

    @property
    def shard(self) -> Shard:
        return self.fleet.shard

    # --- the store follows the fleet --------------------------------------------------------
    def sync(self, *, reason: str = "no longer watched") -> dict[str, Watch]:
        """Make the store hold exactly the fleet's businesses and WABAs; returns the set.

        New WABAs appear unpolled (so their self-metrics exist from the start); WABAs that
        left the set go with their series.
        """
        desired = self.fleet.desired()
        for waba in self.store.wabas():
            if waba.waba_id not in desired:
                log.info("waba_removed", business_id=waba.business_id, waba_id=waba.waba_id,
                         reason=reason)
                self.store.remove_waba(waba.waba_id)
        for business in self.fleet.businesses:
            cap = business.registration_cap
            configured_cap = None if cap == "auto" else int(cap)
            existing = self.store.business(business.id)
            required = business.require_identity_key_check
            if (existing is None or existing.configured_cap != configured_cap
                    or existing.identity_check_required != required):
                self.store.put_business(dataclasses.replace(
                    existing or BusinessState(business.id), configured_cap=configured_cap,
                    identity_check_required=required))
        for watch in desired.values():
            self._ensure_waba(watch)
        keep = self.fleet.business_ids(desired)
        for known in self.store.businesses():
            if known.business_id not in keep:
                self.store.remove_business(known.business_id)
        self.metrics.wabas.set(self.store.waba_count)
        return desired

    def _ensure_waba(self, watch: Watch) -> None:
        current = self.store.waba(watch.waba_id)
        if current is None:
            self.store.put_waba(WabaState(business_id=watch.business_id, waba_id=watch.waba_id,
                                          via=watch.via))
        elif current.business_id != watch.business_id or current.via != watch.via:
            self.store.put_waba(dataclasses.replace(current, business_id=watch.business_id,
                                                    via=watch.via))
        if self.store.business(watch.business_id) is None:
            self.store.put_business(BusinessState(business_id=watch.business_id))

    # --- what the business node teaches us (webhooks: monitor.sink) -----------------------
    async def refresh_business(self, business_id: str) -> None:
        """Read the portfolio node (verification, shared messaging limit) where the token
        may; a refusal is logged and its WABAs' nodes stand in for the limit."""
        try:
            node = await read_business_node(self.client, business_id, self.business_fields)
        except GraphError as err:
            log.info("business_node_unreadable", business_id=business_id,
                     kind=err.kind.value, code=err.code)
            return
        status = node.verification_status
        verified = status == "verified" if status is not None else None
        business = self.store.business(business_id) or BusinessState(business_id)
        updated = dataclasses.replace(business, verified=verified, verification_status=status)
        if node.messaging_limit is not None:
            updated = dataclasses.replace(updated, messaging_limit=node.messaging_limit,
                                          messaging_limit_source="business",
                                          messaging_limit_at=self.clock())
        if updated != business:
            self.store.put_business(updated)
        if business.verified != verified:
            for listener in self.on_verified:
                listener(business_id, verified)

    async def read_waba(self, target: Target) -> WabaNode | None:
        """Read the WABA node (review, health, ownership; at the discovery cadence, one
        request). A listed WABA owned by another portfolio is attributed to that owner in
        the fleet; ``sync`` then moves it, and ``put_waba_node`` stores what was read."""
        try:
            node = await read_waba_node(self.client, target.waba_id, self.waba_fields,
                                        self.clock())
        except GraphError as err:
            log.info("waba_node_unreadable", business_id=target.business_id,
                     waba_id=target.waba_id, kind=err.kind.value, code=err.code)
            return None
        if node.owner_business_id and self.fleet.attribute(target.waba_id,
                                                           node.owner_business_id):
            log.info("waba_attributed_to_owner", waba_id=target.waba_id,
                     owner_business_id=node.owner_business_id,
                     configured_under=target.business_id)
        return node

    def put_waba_node(self, waba_id: str, node: WabaNode) -> None:
        """Keep what a WABA node said; its portfolio limit stands in for the business node's
        when that one could not be read."""
        waba = self.store.waba(waba_id)
        if waba is None:
            return  # no longer watched
        self.store.put_waba_node(waba_id, node)
        business = self.store.business(waba.business_id)
        if (business is not None and node.messaging_limit is not None
                and business.messaging_limit_source != "business"):
            self.store.put_business(dataclasses.replace(
                business, messaging_limit=node.messaging_limit,
                messaging_limit_source="waba", messaging_limit_at=node.read_at))

    async def read_subscription(self, target: Target) -> bool | None:
        """Whether our app (``graph.app_id``) is subscribed to the WABA's webhooks; None when
        no app id is configured or the edge could not be read (the reason is counted)."""
        app_id = self.settings.graph.app_id
        if app_id is None:
            return None
        try:
            apps = await read_subscribed_apps(self.client, target.waba_id)
        except GraphError as err:
            self.metrics.unreadable.labels(read="subscribed_apps",
                                           reason=err.code_label).inc()
            log.info("subscribed_apps_unreadable", business_id=target.business_id,
                     waba_id=target.waba_id, kind=err.kind.value, code=err.code)
            return None
        if app_id not in apps:
            log.warning("app_not_subscribed", business_id=target.business_id,
                        waba_id=target.waba_id, app_id=app_id, other_apps=len(apps))
        return app_id in apps

    async def refresh_wabas(self, targets: Iterable[Target]) -> bool:
        """Read many WABA nodes and subscriptions (bounded by the client's concurrency),
        then store them; True when a WABA was attributed to another owner (the store was
        synced for it; the caller's jobs follow)."""
        now = self.clock()
        # A throttled WABA sends nothing until it regains access, node reads included.
        targets = [t for t in targets if self.not_before.get(t.waba_id, 0.0) <= now]
        before = self.fleet.owners()
        nodes = await asyncio.gather(*(self.read_waba(t) for t in targets))
        subscribed = await asyncio.gather(*(self.read_subscription(t) for t in targets))
        attributed = self.fleet.owners() != before
        if attributed:
            self.sync(reason="attributed to its owner")
        for target, node, sub in zip(targets, nodes, subscribed, strict=True):
            if node is not None:
                self.put_waba_node(target.waba_id, node)
            self.store.put_subscription(target.waba_id, sub)
        return attributed

    async def poll_templates(self, target: Target) -> bool:
        """One read of a WABA's templates (its own job, never raises). A failure keeps the
        last good templates and never marks the numbers stale; a throttled WABA, or one whose
        usage is past graph.usage_slowdown_threshold, waits for its next turn."""
        if self.not_before.get(target.waba_id, 0.0) > self.clock():
            return False
        state = self.store.waba(target.waba_id)
        threshold = self.settings.graph.usage_slowdown_threshold
        if state is not None and state.usage_ratio is not None and state.usage_ratio >= threshold:
            log.info("templates_deferred", business_id=target.business_id,
                     waba_id=target.waba_id, usage_ratio=state.usage_ratio,
                     reason="the WABA's budget is under pressure: polls go first")
            return False
        try:
            with throttle_scope(self._throttle_listener(target.waba_id)):
                templates = await list_templates(self.client, target.waba_id,
                                                 self.template_fields,
                                                 page_limit=self.settings.graph.page_limit,
                                                 memory=self.template_memory)
        except GraphError as err:
            log.warning("templates_unreadable", business_id=target.business_id,
                        waba_id=target.waba_id, kind=err.kind.value, code=err.code)
            self._park(target.waba_id, err)
            return False
        read_at = self.clock()
        changes = self.store.template_changes(target.waba_id, templates=templates,
                                              read_at=read_at, at=read_at)
        if changes and self.commit_transitions is not None:
            await self.commit_transitions(changes)  # durable before /metrics or the API
        self.store.put_templates(target.waba_id, templates, at=read_at, changes=changes)
        return True

    # --- polling -------------------------------------------------------------------------
    async def poll_waba(self, target: Target) -> WabaState | None:
        """One poll of one WABA; never raises. Returns None when skipped (throttled)."""
        started = self.clock()
        wait_until = self.not_before.get(target.waba_id, 0.0)
        if started < wait_until:
            log.info("waba_poll_skipped", business_id=target.business_id,
                     waba_id=target.waba_id, reason="throttled",
                     resume_in_seconds=round(wait_until - started, 1))
            return None
        # parked no longer (a template read of the WABA may still wait in line)
        self.store.set_throttled(target.waba_id, target.waba_id in self.waiting_in_line)
        accounting = start_accounting()
        old = self.store.waba(target.waba_id) or WabaState(target.business_id, target.waba_id)
        monotonic = time.monotonic()
        error: GraphError | None = None
        try:
            with throttle_scope(self._throttle_listener(target.waba_id)):
                numbers = await fetch_waba(
                    self.client,
                    target.waba_id,
                    self.fields,
                    self.fill_memory,
                    page_limit=self.settings.graph.page_limit,
                    per_number_fill=self.settings.graph.per_number_fill,
                    expected_callback=self.settings.webhooks.expected_callback_url,
                )
        except GraphError as err:
            error = err
        except Exception as exc:  # a bug must not stop the other WABAs' polls
            log.exception("waba_poll_crashed", business_id=target.business_id,
                          waba_id=target.waba_id)
            error = GraphError(kind=ErrorKind.PAYLOAD, endpoint="phone_numbers",
                               message=type(exc).__name__)
        duration = time.monotonic() - monotonic
        self.metrics.poll_duration.observe(duration)
        own = tuple(u for (obj, _), u in sorted(accounting.usage.items())
                    if obj == target.waba_id)
        self.store.put_other_usage(u for (obj, _), u in accounting.usage.items()
                                   if obj != target.waba_id)
        usage_ratio = max(u.max_ratio for u in own) if own else old.usage_ratio
        graph = self.settings.graph
        paced = pace(numbers=old.numbers if error is not None else numbers,
                     calls_per_poll=accounting.request_count,
                     scan_interval=self.settings.schedule.scan_interval,
                     share=graph.budget_share, usage_ratio=usage_ratio,
                     threshold=graph.usage_slowdown_threshold, previous_slowdown=old.slowdown)
        common = {
            "business_id": target.business_id,
            "waba_id": target.waba_id,
            "via": old.via,
            "polled": True,
            "last_attempt": started,
            "last_duration": duration,
            "last_requests": accounting.request_count,
            "polls": old.polls + 1,
            "usage_ratio": usage_ratio,
            "allowance_per_hour": paced.allowance_per_hour,
            "interval": paced.interval,
            "slowdown": paced.slowdown,
            "usage": own or old.usage,
        }
        if error is None:
            finished = self.clock()
            new = WabaState(numbers=numbers, up=True, last_success=finished,
                            failures=old.failures,
                            status_changed_at=status_change_times(old, numbers, finished),
                            **common)  # type: ignore[arg-type]
            self.metrics.auth_ok.set(1)
            self.not_before.pop(target.waba_id, None)
            # A routine poll (up before, the same numbers) logs at debug: at 50,000 numbers
            # an info line per poll was 14 % of the daemon's CPU and 10,000 lines a minute.
            routine = old.up and numbers == old.numbers
            (log.debug if routine else log.info)(
                "waba_polled", business_id=target.business_id, waba_id=target.waba_id,
                result="success", numbers=len(numbers), requests=accounting.request_count,
                duration_seconds=round(duration, 3))
        else:
            new = dataclasses.replace(old, up=False, last_error=error.kind.value,
                                      failures=old.failures + 1, **common)  # type: ignore[arg-type]
            self._park(target.waba_id, error)
            log.warning("waba_polled", business_id=target.business_id, waba_id=target.waba_id,
                        result="failure", error=str(error), kind=error.kind.value,
                        requests=accounting.request_count, duration_seconds=round(duration, 3))
        changes = transitions(old, new, new.last_attempt or 0.0)
        if changes and self.commit is not None:
            await self.commit(new, changes)  # durable before /metrics or the API show it
        if self.store.waba(target.waba_id) is None:
            return new  # removed while we polled (reload or discovery): do not resurrect
        self.store.put_waba(new)
        if old.interval != paced.interval:
            if paced.interval > self.settings.schedule.scan_interval:
                log.info("waba_paced", business_id=target.business_id, waba_id=target.waba_id,
                         interval_seconds=round(paced.interval, 1),
                         allowance_per_hour=paced.allowance_per_hour,
                         usage_ratio=usage_ratio, slowdown=paced.slowdown)
            for listener in self.on_interval:
                listener(target.waba_id, paced.interval)
        return new

    def _throttle_listener(self, waba_id: str) -> Callable[[bool], None]:
        """Shows the WABA throttled while one of its requests (its poll's or its template
        read's) waits in line, or while it is parked."""
        def notify(waiting: bool) -> None:
            count = self.waiting_in_line.get(waba_id, 0) + (1 if waiting else -1)
            if count > 0:
                self.waiting_in_line[waba_id] = count
            else:
                self.waiting_in_line.pop(waba_id, None)
            parked = self.not_before.get(waba_id, 0.0) > self.clock()
            self.store.set_throttled(waba_id, count > 0 or parked)
        return notify

    def _park(self, waba_id: str, error: GraphError) -> None:
        """A throttle the in-line wait could not cover: the WABA sends nothing (polls,
        template and node reads) until the regain time, and shows throttled meanwhile."""
        if error.kind is ErrorKind.THROTTLED and error.retry_after:
            self.not_before[waba_id] = self.clock() + error.retry_after
            self.store.set_throttled(waba_id, True)
            log.info("waba_parked", waba_id=waba_id, endpoint=error.endpoint,
                     resume_in_seconds=round(error.retry_after, 1),
                     reason="throttled longer than the in-line wait left in "
                            "graph.max_throttle_wait")

    def targets(self) -> list[Target]:
        return [Target(w.business_id, w.waba_id) for w in self.store.wabas()]

    async def discover(self, business: BusinessSettings) -> list[Target] | None:
        """Find a business's WABAs, each attributed to its owner; None when discovery failed
        (the fleet keeps what it had). The fleet, not this method, keeps this shard's."""
        try:
            found = await discover_wabas(self.client, business.id, business.discover)
        except GraphError as err:
            log.warning("discovery_failed", business_id=business.id, error=str(err))
            return None
        targets = [Target(w.owner_business_id or business.id, w.waba_id) for w in found]
        log.info("discovered", business_id=business.id, wabas=len(targets),
                 in_this_shard=sum(1 for t in targets if self.shard.owns(t.business_id)))
        return targets

    async def poll_all(self, targets: Iterable[Target]) -> list[WabaState | None]:
        return list(await asyncio.gather(*(self.poll_waba(t) for t in targets)))

    async def run_once(self) -> None:
        """Discover where needed, then poll every WABA once (used by ``check``)."""
        self.sync()
        owned = [b.id for b in self.fleet.businesses]
        await asyncio.gather(*(self.refresh_business(b) for b in owned))
        for business in self.fleet.discovery_businesses():
            self.fleet.discovered(business.id, await self.discover(business))
        self.sync(reason="not found by discovery")
        await self.refresh_wabas(w.target for w in self.fleet.desired().values())
        await self.poll_all(self.targets())
