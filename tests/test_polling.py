"""The polling path against the simulator: API cost, paging, fields, errors, isolation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from monitor.daemon import Monitor, Target
from monitor.graph.client import GraphClient, start_accounting
from monitor.graph.errors import ErrorKind, GraphError
from monitor.poller import FieldPolicy, FillMemory, fetch_waba
from monitor.selfmetrics import SelfMetrics
from monitor.simulator import Fault, Scenario
from tests.conftest import RecordingSleep, Sim, small_fleet

StartSim = Callable[[Scenario], Awaitable[Sim]]


def first_waba(scenario: Scenario) -> str:
    return next(scenario.wabas())[1].id


def counter(metrics: SelfMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250, 1000])
async def test_full_poll_costs_one_request_per_page(
    n: int, start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=n)
    sim = await start_sim(scenario)
    numbers = await fetch_waba(make_client(sim), first_waba(scenario), FieldPolicy(metrics),
                               FillMemory())
    assert len(numbers) == n
    assert sim.world.request_count("phone_numbers") == max(1, math.ceil(n / 100))
    assert sim.world.request_count("phone_number") == 0
    assert sim.world.request_count() == max(1, math.ceil(n / 100))


async def test_paging_keeps_every_number_once(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=237)
    sim = await start_sim(scenario)
    numbers = await fetch_waba(make_client(sim), first_waba(scenario), FieldPolicy(metrics),
                               FillMemory())
    expected = {n.id for _, n in scenario.numbers()}
    assert {n.id for n in numbers} == expected
    assert len(numbers) == len(expected)
    sample = scenario.number(numbers[0].id).fields
    assert numbers[0].status == sample["status"]
    assert numbers[0].throughput_level == sample["throughput"]["level"]


async def test_repeated_cursor_stops_and_reports(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=250)
    sim = await start_sim(scenario)
    waba = first_waba(scenario)
    sim.world.inject_fault(Fault(target=waba, kind="cursor_loop", count=-1))
    with pytest.raises(GraphError) as caught:
        await fetch_waba(make_client(sim), waba, FieldPolicy(metrics), FillMemory())
    assert caught.value.kind is ErrorKind.CURSOR_LOOP
    assert sim.world.request_count("phone_numbers") <= 3
    assert counter(metrics, "whatsapp_monitor_graph_request_errors_total",
                   endpoint="phone_numbers", code="cursor_loop") == 1


async def test_unlisted_status_and_absent_fields(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=2)
    sim = await start_sim(scenario)
    ids = [n.id for _, n in scenario.numbers()]
    sim.world.set_number_fields(ids[0], {"status": "OFFLINE"})
    sim.world.set_number_fields(ids[1], {"throughput": None, "health_status": None,
                                         "platform_type": None})
    numbers = {n.id: n for n in await fetch_waba(make_client(sim), first_waba(scenario),
                                                 FieldPolicy(metrics), FillMemory())}
    assert numbers[ids[0]].status == "OFFLINE"
    assert numbers[ids[1]].throughput_level is None
    assert numbers[ids[1]].health_status is None
    assert numbers[ids[1]].registered is None
    # The other number still has them, so the list edge supports them: no per-number reads.
    assert sim.world.request_count("phone_number") == 0


async def test_rejected_field_is_dropped_retried_and_reported_once(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=5, rejected_fields=("health_status",))
    sim = await start_sim(scenario)
    policy = FieldPolicy(metrics)
    client = make_client(sim)
    numbers = await fetch_waba(client, first_waba(scenario), policy, FillMemory())
    assert len(numbers) == 5 and all(n.health_status is None for n in numbers)
    assert all(n.status is not None for n in numbers)
    assert policy.rejected == {"health_status"}
    assert counter(metrics, "whatsapp_monitor_graph_field_rejected", field="health_status") == 1
    assert sim.world.request_count("phone_numbers") == 2  # the rejected one, then the retry
    sim.world.reset_counts()
    await fetch_waba(client, first_waba(scenario), policy, FillMemory())
    assert sim.world.request_count("phone_numbers") == 1  # never asked for again


async def test_fields_the_edge_omits_are_filled_per_number_once(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=4, edge_omits_fields=("health_status",))
    sim = await start_sim(scenario)
    ids = [n.id for _, n in scenario.numbers()]
    client, memory, policy = make_client(sim), FillMemory(), FieldPolicy(metrics)
    numbers = await fetch_waba(client, first_waba(scenario), policy, memory)
    assert all(n.health_status is not None for n in numbers)
    assert sim.world.request_count("phone_number") == 4
    # A field that the node lacks too is learned, and not asked for per number again.
    for number_id in ids:
        sim.world.set_number_fields(number_id, {"health_status": None})
    await fetch_waba(client, first_waba(scenario), policy, memory)
    sim.world.reset_counts()
    await fetch_waba(client, first_waba(scenario), policy, memory)
    assert sim.world.request_count("phone_number") == 0


@pytest.mark.parametrize(
    ("fault", "kind", "retried"),
    [
        ({"kind": "http_error", "status": 500}, ErrorKind.TRANSIENT, True),
        ({"kind": "http_error", "status": 503, "code": 2}, ErrorKind.TRANSIENT, True),
        ({"kind": "reset"}, ErrorKind.NETWORK, True),
        ({"kind": "malformed_json"}, ErrorKind.PAYLOAD, True),
        ({"kind": "html_200"}, ErrorKind.PAYLOAD, True),
        ({"kind": "empty_body"}, ErrorKind.PAYLOAD, True),
        ({"kind": "data_not_list"}, ErrorKind.PAYLOAD, True),
        ({"kind": "http_error", "status": 400, "code": 80008}, ErrorKind.THROTTLED, True),
        ({"kind": "http_error", "status": 401, "code": 190, "subcode": 463}, ErrorKind.AUTH,
         False),
        ({"kind": "http_error", "status": 403, "code": 200}, ErrorKind.PERMISSION, False),
        ({"kind": "http_error", "status": 400, "code": 100, "subcode": 33}, ErrorKind.NOT_FOUND,
         False),
        ({"kind": "http_error", "status": 400, "code": 100, "message": "(#100) Invalid"},
         ErrorKind.BAD_REQUEST, False),
    ],
)
async def test_error_classes_retry_or_not(
    fault: dict[str, Any], kind: ErrorKind, retried: bool, start_sim: StartSim,
    make_client: Callable[..., GraphClient], metrics: SelfMetrics, sleep: RecordingSleep
) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    sim = await start_sim(scenario)
    waba = first_waba(scenario)
    client = make_client(sim, max_retries=2)
    # A single fault: retried kinds recover on the next attempt.
    sim.world.inject_fault(Fault(target=waba, count=1, **fault))
    if retried:
        numbers = await fetch_waba(client, waba, FieldPolicy(metrics), FillMemory())
        assert len(numbers) == 3
        assert sim.world.request_count("phone_numbers") == 2
        # aiohttp itself re-sends a GET once when a pooled connection was reset under it.
        assert len(sleep.delays) == (0 if kind is ErrorKind.NETWORK else 1)
    else:
        with pytest.raises(GraphError) as caught:
            await fetch_waba(client, waba, FieldPolicy(metrics), FillMemory())
        assert caught.value.kind is kind
        assert sim.world.request_count("phone_numbers") == 1
        assert sleep.delays == []
    # A lasting fault of a retried kind gives up after max_retries, with that kind.
    if retried:
        sim.world.reset_counts()
        sim.world.inject_fault(Fault(target=waba, count=-1, **fault))
        with pytest.raises(GraphError) as caught:
            await fetch_waba(client, waba, FieldPolicy(metrics), FillMemory())
        assert caught.value.kind is kind
        assert len(sleep.delays) == (2 if kind is ErrorKind.NETWORK else 3)  # max_retries
        if kind is not ErrorKind.NETWORK:
            assert sim.world.request_count("phone_numbers") == 3  # 1 + max_retries


async def test_throttling_waits_as_the_usage_header_says(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics,
    sleep: RecordingSleep
) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    scenario = dataclasses.replace(
        scenario, budget=dataclasses.replace(scenario.budget, default_per_hour=2,
                                             active_per_hour=2))
    sim = await start_sim(scenario)
    waba = first_waba(scenario)
    client = make_client(sim, max_throttle_wait=3600)
    policy = FieldPolicy(metrics)
    await fetch_waba(client, waba, policy, FillMemory())
    await fetch_waba(client, waba, policy, FillMemory())
    # Third poll is over budget: the client waits the header's regain time (whole minutes)...
    accounting = start_accounting()
    with pytest.raises(GraphError) as caught:
        await fetch_waba(client, waba, policy, FillMemory())
    assert caught.value.kind is ErrorKind.THROTTLED
    assert sleep.delays and all(d >= 60 and d % 60 == 0 for d in sleep.delays)
    reading = accounting.usage[(waba, "whatsapp_business_management")]
    assert reading.call_count >= 100 and reading.regain_access_seconds >= 60
    # ...and with a short max_throttle_wait it does not wait in line at all.
    sleep.delays.clear()
    short = make_client(sim, max_throttle_wait=1)
    with pytest.raises(GraphError) as caught:
        await fetch_waba(short, waba, policy, FillMemory())
    assert caught.value.retry_after is not None and caught.value.retry_after >= 60
    assert sleep.delays == []


async def test_one_waba_failing_leaves_the_others_fresh(
    start_sim: StartSim, make_monitor: Callable[..., Monitor]
) -> None:
    scenario = small_fleet(numbers_per_waba=3, wabas=3)
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario, max_retries=0)
    await monitor.run_once()
    wabas = [w.id for _, w in scenario.wabas()]
    assert all(monitor.store.waba(w).up for w in wabas)  # type: ignore[union-attr]
    good_before = monitor.store.waba(wabas[0])
    sim.world.inject_fault(Fault(target=wabas[1], kind="http_error", status=500, count=-1))
    await monitor.poll_all(monitor.targets())
    failed, fine = monitor.store.waba(wabas[1]), monitor.store.waba(wabas[0])
    assert failed is not None and fine is not None and good_before is not None
    assert not failed.up and failed.failures == 1 and len(failed.numbers) == 3
    assert fine.up and fine.last_success is not None
    assert good_before.last_success is not None
    assert fine.last_success >= good_before.last_success
    text = monitor.store.body().text.decode()
    up = "whatsapp_monitor_waba_up{{business_id=\"{}\",waba_id=\"{}\"}} {}"
    assert up.format(failed.business_id, wabas[1], 0) in text
    assert up.format(fine.business_id, wabas[0], 1) in text


async def test_throttled_waba_skips_polls_until_regained(
    start_sim: StartSim, make_monitor: Callable[..., Monitor]
) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    scenario = dataclasses.replace(
        scenario, budget=dataclasses.replace(scenario.budget, default_per_hour=2,
                                             active_per_hour=2))
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario, max_retries=0, max_throttle_wait=1)
    await monitor.run_once()  # the WABA node and one list page: the hourly budget of 2
    target = monitor.targets()[0]
    failed = await monitor.poll_waba(target)
    assert failed is not None and not failed.up
    before = sim.world.request_count()
    assert await monitor.poll_waba(target) is None  # skipped, no request sent
    assert sim.world.request_count() == before


async def test_auth_failure_clears_auth_ok_until_a_poll_succeeds(
    start_sim: StartSim, make_monitor: Callable[..., Monitor], metrics: SelfMetrics
) -> None:
    scenario = small_fleet(numbers_per_waba=1)
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario, token="wrong-token-123")
    await monitor.run_once()
    assert counter(metrics, "whatsapp_monitor_graph_auth_ok") == 0
    assert not monitor.store.wabas()[0].up
    assert sim.world.request_count("phone_numbers") == 1  # no retry on auth errors
    good = make_monitor(sim, scenario)
    await good.poll_waba(Target(*next((w.business_id, w.waba_id) for w in
                                      monitor.store.wabas())))
    assert counter(metrics, "whatsapp_monitor_graph_auth_ok") == 1


async def test_a_large_page_is_read_whole_without_retry(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics,
    sleep: RecordingSleep
) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    sim = await start_sim(scenario)
    waba = first_waba(scenario)
    sim.world.inject_fault(Fault(target=waba, kind="huge_page", size=5000))
    numbers = await fetch_waba(make_client(sim), waba, FieldPolicy(metrics), FillMemory())
    assert len(numbers) == 5000  # a multi-megabyte body arrives in many chunks
    assert sim.world.request_count("phone_numbers") == 1
    assert sleep.delays == []


def test_v24_never_mixes_the_deprecated_per_number_limit_in() -> None:
    from monitor.model import phone_number_fields

    assert "messaging_limit_tier" not in phone_number_fields("v24.0")
    assert "whatsapp_business_manager_messaging_limit" in phone_number_fields("v25.0")
    legacy = phone_number_fields("v23.0")
    assert "messaging_limit_tier" in legacy
    assert "whatsapp_business_manager_messaging_limit" not in legacy
