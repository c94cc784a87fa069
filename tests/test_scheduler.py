"""Runs: a poll per WABA on the cadence, never overlapping, first run at start-up; discovery
adds and removes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings, load_settings
from monitor.daemon import Monitor
from monitor.fleet import Target
from monitor.graph.client import GraphClient
from monitor.scheduler import Jobs, templates_key
from monitor.selfmetrics import SelfMetrics
from monitor.simulator import Scenario, builtin_scenario
from monitor.store import Store
from tests.conftest import Sim, small_fleet, write_config


def listed_settings(tmp_path: Path, url: str, business: Any, schedule: dict[str, Any],
                    **more: Any) -> Settings:
    """Settings for one business that lists its WABAs, against the simulator at ``url``."""
    return load_settings(write_config(tmp_path, {
        "graph": {"base_url": url},
        "businesses": [{"id": business.id, "wabas": [w.id for w in business.wabas]}],
        "schedule": schedule, **more,
    }), environ={})


async def test_one_poll_per_waba_running_at_start(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path
) -> None:
    scenario = small_fleet(numbers_per_waba=2, wabas=3)
    sim = await start_sim(scenario)
    business = scenario.businesses[0]
    settings = listed_settings(tmp_path, sim.url, business, {"scan_interval": "1h"})
    monitor = Monitor(settings, make_client(sim), Store(), metrics)
    jobs = Jobs(monitor)
    jobs.start()
    try:
        assert jobs.waba_ids() == {w.id for w in business.wabas}
        assert [j.id for j in jobs.scheduler.get_jobs()] == [f"business:{business.id}"]
        assert all(jobs.poll_interval(w.id) == 3600.0 for w in business.wabas)
        assert all(jobs.templates_scheduled(w.id) for w in business.wabas)  # 15m by default
        for _ in range(100):
            if jobs.ready:
                break
            await asyncio.sleep(0.05)
        assert jobs.ready
        assert sim.world.request_count("phone_numbers") == 3  # first poll ran, once each
        now = time.monotonic()  # and the next one is an interval (plus jitter) away
        assert all(now + 3000 < (jobs.next_poll(w.id) or 0.0) <= now + 3600 * 1.1
                   for w in business.wabas)
    finally:
        jobs.shutdown()


async def test_discovery_attributes_client_wabas_to_their_owner(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path
) -> None:
    scenario = builtin_scenario("demo")
    sim = await start_sim(scenario)
    owner_of = {w.id: b.id for b, w in scenario.wabas()}
    provider = next(b for b in scenario.businesses if b.client_wabas)
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim.url},
        "businesses": [{"id": provider.id}],
    }), environ={})
    monitor = Monitor(settings, make_client(sim, token="demo-token"), Store(), metrics)
    await monitor.run_once()
    polled = {w.waba_id: w.business_id for w in monitor.store.wabas()}
    for waba_id in provider.client_wabas:
        assert polled[waba_id] == owner_of[waba_id] != provider.id
    for waba in provider.wabas:
        assert polled[waba.id] == provider.id
    assert all(w.up for w in monitor.store.wabas())


async def test_template_reads_wait_for_the_first_polls(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path
) -> None:
    """A template job that comes due while a WABA's first poll still runs reads nothing
    until every first poll is done: the first full poll has the Graph connections alone."""
    from monitor.simulator import Fault

    scenario = small_fleet(numbers_per_waba=2, wabas=2)
    sim = await start_sim(scenario)
    business = scenario.businesses[0]
    slow, other = (w.id for w in business.wabas)
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim.url, "max_retries": 0, "timeout": "5s"},
        "businesses": [{"id": business.id, "wabas": [slow, other]}],
        "schedule": {"scan_interval": "1h", "template_interval": "1h"},
    }), environ={})
    monitor = Monitor(settings, make_client(sim), Store(), metrics)
    sim.world.inject_fault(Fault(target=slow, kind="hang", count=1, edge="phone_numbers"))
    jobs = Jobs(monitor)
    jobs.start()
    try:
        for waba_id in (slow, other):  # the template reads come due now
            assert jobs.templates_scheduled(waba_id)
            assert jobs.cadence.run_soon(templates_key(waba_id))
        await asyncio.sleep(0.5)
        assert not monitor.store.ready  # the slow WABA's first poll still hangs
        assert sim.world.request_count("message_templates") == 0
    finally:
        jobs.shutdown()
        sim.world.clear_faults()


async def test_template_reads_of_many_wabas_run_a_bounded_number_at_once(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a start every WABA's template read comes due at once: they run
    BACKGROUND_READS at a time, all of them, not all together."""
    from monitor import scheduler

    monkeypatch.setattr(scheduler, "BACKGROUND_READS", 2)
    scenario = small_fleet(numbers_per_waba=1, wabas=6)
    sim = await start_sim(scenario)
    business = scenario.businesses[0]
    settings = listed_settings(tmp_path, sim.url, business,
                               {"scan_interval": "1h", "template_interval": "1h"})
    monitor = Monitor(settings, make_client(sim), Store(), metrics)
    running: list[int] = [0]
    most: list[int] = [0]
    read: list[str] = []

    async def poll_templates(target: Target) -> bool:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1
        read.append(target.waba_id)
        return True

    monkeypatch.setattr(monitor, "poll_templates", poll_templates)
    jobs = Jobs(monitor)
    jobs.start()
    try:
        await asyncio.sleep(0.3)  # the first polls
        for w in business.wabas:
            assert jobs.cadence.run_soon(templates_key(w.id))
        for _ in range(100):
            if len(read) == len(business.wabas):
                break
            await asyncio.sleep(0.05)
        assert sorted(read) == sorted(w.id for w in business.wabas)
        assert most[0] == 2
    finally:
        jobs.shutdown()


async def test_the_daemon_freezes_its_long_lived_objects_once_ready(tmp_path: Path) -> None:
    """After the first polls the collector's permanent generation holds the fleet's state
    (no full collection walks it again); a stopped daemon gives it back."""
    import gc

    from monitor.runtime import Runtime
    from monitor.simulator import World, start_simulator
    from tests.conftest import TOKEN

    scenario = small_fleet(numbers_per_waba=2, wabas=2)
    runner, sim_url = await start_simulator(World(scenario))
    business = scenario.businesses[0]
    settings = listed_settings(tmp_path, sim_url, business, {"scan_interval": "1h"},
                               state={"directory": None})
    try:
        assert gc.get_freeze_count() == 0
        async with Runtime(settings, access_token=TOKEN, port=0) as runtime:
            for _ in range(200):
                if gc.get_freeze_count():
                    break
                await asyncio.sleep(0.05)
            assert runtime.ready and gc.get_freeze_count() > 0
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        await runner.cleanup()


async def test_repolls_budget_pace_and_reloads_move_a_wabas_next_poll(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path
) -> None:
    """Not started, so nothing runs: only where each WABA's next poll stands is read."""
    from structlog.testing import capture_logs

    scenario = small_fleet(numbers_per_waba=1, wabas=2)
    sim = await start_sim(scenario)
    business = scenario.businesses[0]
    paced, other = (w.id for w in business.wabas)
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim.url},
        "businesses": [{"id": business.id, "wabas": [paced, other]}],
        "schedule": {"scan_interval": "1h", "jitter": 0},
        "webhooks": {"repoll_delay": "5s"},
    }), environ={})
    monitor = Monitor(settings, make_client(sim), Store(), metrics)
    jobs = Jobs(monitor)
    jobs.apply()
    before = time.monotonic()
    for listener in monitor.on_interval:  # the budget slowed one WABA down
        listener(paced, 7200.0)
    after = time.monotonic()
    assert jobs.poll_interval(paced) == 7200.0 and jobs.poll_interval(other) == 3600.0
    assert before + 7200 <= (jobs.next_poll(paced) or 0.0) <= after + 7200

    with capture_logs() as logs:
        before = time.monotonic()
        jobs.request_repoll(waba_id=paced, reason="account_update")
        after = time.monotonic()
        soon = jobs.next_poll(paced)
        jobs.request_repoll(waba_id=paced, reason="account_update")  # debounced: not later
        jobs.request_repoll(waba_id="404", reason="account_update")
    assert soon is not None and before + 5 <= soon <= after + 5
    assert jobs.next_poll(paced) == soon and jobs.poll_interval(paced) == 7200.0
    assert [(e["event"], e.get("waba_id")) for e in logs] == [
        ("repoll_scheduled", paced), ("repoll_for_unknown_waba", "404")]

    before = time.monotonic()
    jobs.reconcile(interval_changed=True)  # every WABA paced again from the scan interval
    after = time.monotonic()
    for waba_id in (paced, other):
        assert jobs.poll_interval(waba_id) == 3600.0
        assert before + 3600 <= (jobs.next_poll(waba_id) or 0.0) <= after + 3600
    assert jobs.waba_ids() == {paced, other}

    # A reload that adds a WABA and changes the interval: the added one is polled now, the
    # kept ones a new interval from now; a removed one's polls and template reads go.
    added = scenario.businesses[0].wabas[0].id + "0"
    monitor.configure(load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim.url},
        "businesses": [{"id": business.id, "wabas": [paced, added]}],
        "schedule": {"scan_interval": "2h", "jitter": 0},
    }), environ={}), monitor.shard)
    before = time.monotonic()
    jobs.reconcile(interval_changed=True)
    after = time.monotonic()
    assert jobs.waba_ids() == {paced, added}
    assert not jobs.templates_scheduled(other) and jobs.templates_scheduled(added)
    assert before <= (jobs.next_poll(added) or 0.0) <= after
    assert before + 7200 <= (jobs.next_poll(paced) or 0.0) <= after + 7200
    jobs.shutdown()
