"""Throttling is visible, not silent: ``whatsapp_monitor_waba_throttled`` is 1 while a WABA
waits on a throttle (in line, or parked until its regain time), and the in-line waits of one
poll stay within ``graph.max_throttle_wait`` in total. Waits and requests are counted; no
test here asserts a duration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from monitor.daemon import Monitor
from monitor.graph.client import GraphClient, RetryPolicy, throttle_scope
from monitor.graph.errors import ErrorKind, GraphError
from monitor.selfmetrics import SelfMetrics
from monitor.simulator import Fault, Scenario
from monitor.store import Store
from tests.conftest import TOKEN, RecordingSleep, Sim, settings_for, small_fleet
from tests.faultkit import fleet, parse_metrics, running_daemon

StartSim = Callable[[Scenario], Awaitable[Sim]]
THROTTLED = "whatsapp_monitor_waba_throttled"
BUC_TYPE = "whatsapp_business_management"


def throttle_fault(waba_id: str, regain_minutes: float, count: int = -1) -> Fault:
    """Code 80008 with the WABA's usage header saying when access comes back."""
    usage = {waba_id: [{"type": BUC_TYPE, "call_count": 100, "total_cputime": 10,
                        "total_time": 10, "estimated_time_to_regain_access": regain_minutes}]}
    return Fault(target=waba_id, kind="http_error", status=400, code=80008, count=count,
                 edge="phone_numbers",
                 headers={"X-Business-Use-Case-Usage": json.dumps(usage)})


def client(session: aiohttp.ClientSession, sim: Sim, metrics: SelfMetrics,
           sleep: Callable[[float], Awaitable[None]], *, max_retries: int,
           max_throttle_wait: float) -> GraphClient:
    return GraphClient(session, base_url=sim.url, api_version="v24.0", access_token=TOKEN,
                       metrics=metrics, sleep=sleep,
                       retry=RetryPolicy(max_retries=max_retries,
                                         max_throttle_wait=max_throttle_wait))


def throttled_values(store: Store) -> dict[str, float]:
    """waba_id -> the throttled sample, from the bytes a scrape would get now."""
    scrape = parse_metrics(store.body().text.decode(), (THROTTLED,))
    return {dict(labels)["waba_id"]: value for (_, labels), value in scrape.samples.items()}


async def test_retries_of_one_request_stop_at_the_total_wait(
    start_sim: StartSim, session: aiohttp.ClientSession, metrics: SelfMetrics,
    sleep: RecordingSleep
) -> None:
    """0.6 s regain, 2 s in total: three waits fit, the fourth would not. Before, each wait
    was bounded alone and all five retries waited."""
    scenario = small_fleet()
    sim = await start_sim(scenario)
    waba = next(scenario.wabas())[1].id
    sim.world.inject_fault(throttle_fault(waba, regain_minutes=0.01))
    graph = client(session, sim, metrics, sleep, max_retries=5, max_throttle_wait=2.0)
    with pytest.raises(GraphError) as caught:
        await graph.get("phone_numbers", f"{waba}/phone_numbers", {})
    assert caught.value.kind is ErrorKind.THROTTLED
    assert caught.value.retry_after == pytest.approx(0.6)
    assert sleep.delays == [pytest.approx(0.6)] * 3
    assert sim.world.request_count("phone_numbers", object_id=waba) == 4


async def test_the_requests_of_one_poll_share_the_total_wait(
    start_sim: StartSim, session: aiohttp.ClientSession, metrics: SelfMetrics,
    sleep: RecordingSleep
) -> None:
    """Two throttles, each once, in two requests of one poll: the first waits, the second
    no longer fits in 1 s and gives up at once. Outside a poll each request has its own."""
    scenario = small_fleet()
    sim = await start_sim(scenario)
    waba = next(scenario.wabas())[1].id
    graph = client(session, sim, metrics, sleep, max_retries=3, max_throttle_wait=1.0)
    path = f"{waba}/phone_numbers"
    with throttle_scope() as waits:
        sim.world.inject_fault(throttle_fault(waba, regain_minutes=0.01, count=1))
        await graph.get("phone_numbers", path, {})
        sim.world.inject_fault(throttle_fault(waba, regain_minutes=0.01, count=1))
        with pytest.raises(GraphError):
            await graph.get("phone_numbers", path, {})
    assert waits.count == 1
    assert waits.spent == pytest.approx(0.6)
    assert len(sleep.delays) == 1
    assert sim.world.request_count("phone_numbers", object_id=waba) == 3
    # The same two requests with no poll around them: each waits once and succeeds.
    sleep.delays.clear()
    for _ in range(2):
        sim.world.inject_fault(throttle_fault(waba, regain_minutes=0.01, count=1))
        await graph.get("phone_numbers", path, {})
    assert len(sleep.delays) == 2


async def test_a_poll_shows_throttled_while_it_waits_then_parks_until_the_regain_time(
    start_sim: StartSim, session: aiohttp.ClientSession, metrics: SelfMetrics, tmp_path: Path
) -> None:
    scenario = small_fleet(wabas=3)
    sim = await start_sim(scenario)
    settings = settings_for(tmp_path, sim, scenario)
    seen: list[dict[str, float]] = []
    store = Store()

    async def sleep(seconds: float) -> None:  # what a scrape shows during each wait
        seen.append(throttled_values(store))

    now = [1_000_000.0]
    monitor = Monitor(settings, client(session, sim, metrics, sleep, max_retries=3,
                                       max_throttle_wait=1.0), store, metrics,
                      clock=lambda: now[0])
    await monitor.run_once()
    wabas = [w.id for _, w in scenario.wabas()]
    bad, good = wabas[0], wabas[1:]
    assert throttled_values(store) == dict.fromkeys(wabas, 0)

    # A short throttle, once: waited in line (shown), then the poll succeeds (not shown).
    sim.world.inject_fault(throttle_fault(bad, regain_minutes=0.01, count=1))
    polled = await monitor.poll_waba(monitor.targets()[wabas.index(bad)])
    assert polled is not None and polled.up
    assert seen == [{bad: 1, **dict.fromkeys(good, 0)}]
    assert throttled_values(store) == dict.fromkeys(wabas, 0)

    # A lasting one: one wait of 0.6 s, the next does not fit in 1 s, so the poll gives up
    # and the WABA is parked until the regain time, still shown throttled.
    seen.clear()
    sim.world.reset_counts()
    sim.world.inject_fault(throttle_fault(bad, regain_minutes=0.01))
    failed = await monitor.poll_waba(monitor.targets()[wabas.index(bad)])
    assert failed is not None and not failed.up and failed.last_error == "throttled"
    assert len(seen) == 1 and seen[0][bad] == 1
    assert sim.world.request_count("phone_numbers", object_id=bad) == 2
    assert throttled_values(store) == {bad: 1, **dict.fromkeys(good, 0)}
    assert await monitor.poll_waba(monitor.targets()[wabas.index(bad)]) is None  # parked
    assert sim.world.request_count(object_id=bad) == 2
    assert throttled_values(store)[bad] == 1

    # After the regain time the next poll goes ahead and the flag clears.
    sim.world.clear_faults()
    now[0] += 1.0
    back = await monitor.poll_waba(monitor.targets()[wabas.index(bad)])
    assert back is not None and back.up
    assert throttled_values(store) == dict.fromkeys(wabas, 0)


async def test_a_scrape_during_an_in_line_wait_sees_the_waba_throttled(
    tmp_path: Path
) -> None:
    """The real daemon: the throttled WABA's poll waits 3 s in line; scrapes meanwhile show
    it throttled (the poll has not finished), the others not; once through, 0 again."""
    async with running_daemon(tmp_path, fleet(),
                              graph={"max_throttle_wait": "10s"}) as d:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        await d.all_up()
        polls_before = d.polls(await d.scrape(), bad)
        d.world.inject_fault(throttle_fault(bad, regain_minutes=0.05, count=1))
        waiting = await d.wait_for("throttled in line",
                                   lambda s: s.get(THROTTLED, **d.labels(bad)) == 1)
        assert all(waiting.get(THROTTLED, **d.labels(w)) == 0 for w in good)
        assert d.up(waiting, bad) == 1  # the last finished poll succeeded: up says nothing
        after = await d.wait_for("through the wait",
                                 lambda s: s.get(THROTTLED, **d.labels(bad)) == 0
                                 and d.polls(s, bad) > polls_before, timeout=15)
        assert d.up(after, bad) == 1
        assert d.world.faults() == []  # the one throttle was used, then retried with success


async def test_a_parked_waba_shows_throttled_until_it_polls_again(tmp_path: Path) -> None:
    """A regain time (2.4 s) longer than max_throttle_wait (1 s): no in-line wait; the WABA
    is parked and shown throttled until its next poll after the regain time."""
    async with running_daemon(tmp_path, fleet()) as d:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        await d.all_up()
        d.world.inject_fault(throttle_fault(bad, regain_minutes=0.04))
        parked = await d.wait_for("parked", lambda s: s.get(THROTTLED, **d.labels(bad)) == 1)
        assert d.up(parked, bad) == 0
        assert all(parked.get(THROTTLED, **d.labels(w)) == 0 for w in good)
        sent = d.world.request_count(object_id=bad)
        await asyncio.sleep(0.6)  # three scan intervals: still parked, nothing sent
        assert d.world.request_count(object_id=bad) == sent
        assert (await d.scrape()).get(THROTTLED, **d.labels(bad)) == 1
        d.world.clear_faults()
        back = await d.wait_for("polled again", lambda s: d.up(s, bad) == 1, timeout=8)
        assert back.get(THROTTLED, **d.labels(bad)) == 0


async def test_the_waba_stays_throttled_while_any_of_its_reads_waits(
    start_sim: StartSim, session: aiohttp.ClientSession, metrics: SelfMetrics, tmp_path: Path
) -> None:
    """Its poll and its template read both wait in line: the first to finish its wait does
    not clear the flag while the other still waits."""
    scenario = small_fleet()
    sim = await start_sim(scenario)
    store = Store()
    waits: list[asyncio.Event] = []

    async def sleep(seconds: float) -> None:  # holds each wait until the test releases it
        waits.append(released := asyncio.Event())
        await released.wait()

    monitor = Monitor(settings_for(tmp_path, sim, scenario),
                      client(session, sim, metrics, sleep, max_retries=1,
                             max_throttle_wait=10.0), store, metrics)
    await monitor.run_once()
    (target,) = monitor.targets()
    for edge in ("phone_numbers", "message_templates"):
        fault = throttle_fault(target.waba_id, regain_minutes=0.01, count=1)
        sim.world.inject_fault(Fault(**{**fault.to_json(), "edge": edge}))
    reads = {asyncio.create_task(monitor.poll_waba(target)),
             asyncio.create_task(monitor.poll_templates(target))}
    for _ in range(1000):
        if len(waits) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(waits) == 2
    assert throttled_values(store) == {target.waba_id: 1}
    waits[0].set()
    _, pending = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    assert len(pending) == 1
    assert throttled_values(store) == {target.waba_id: 1}  # the other still waits
    waits[1].set()
    await asyncio.gather(*reads)
    assert throttled_values(store) == {target.waba_id: 0}
    assert sim.world.faults() == []
