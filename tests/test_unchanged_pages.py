"""A listing whose bytes did not change since the last poll is neither decoded nor parsed
again (the steady state's cost), while freshness still advances and changes still show."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import monitor.graph.client as client_module
from monitor.daemon import Monitor
from monitor.graph.client import GraphClient
from monitor.graph.errors import ErrorKind, GraphError
from monitor.poller import FieldPolicy, FillMemory, fetch_waba
from monitor.selfmetrics import SelfMetrics
from monitor.simulator import Scenario
from monitor.simulator.actions import Action
from monitor.store import Store
from tests.conftest import DemoMonitor, Sim, small_fleet

StartSim = Callable[[Scenario], Awaitable[Sim]]
TEMPLATES_WABA = "200000000000001"  # the demo WABA with templates


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts JSON bodies the Graph client decodes."""
    count = [0]
    real = client_module._decode

    def counting(raw: bytes) -> object:
        count[0] += 1
        return real(raw)

    monkeypatch.setattr(client_module, "_decode", counting)
    return count


async def test_an_unchanged_listing_is_not_parsed_again(
    start_sim: StartSim, make_monitor: Callable[..., Monitor], decodes: list[int]
) -> None:
    scenario = small_fleet(numbers_per_waba=4, wabas=3, businesses=2)
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario)
    monitor.sync()
    wabas = len(monitor.targets())
    assert wabas == 6

    first = await monitor.poll_all(monitor.targets())
    assert monitor.fill_memory.parsed == wabas
    assert decodes[0] == wabas
    before = {s.waba_id: s for s in first if s is not None}

    second = await monitor.poll_all(monitor.targets())
    assert monitor.fill_memory.parsed == wabas  # no listing parsed again
    assert monitor.fill_memory.unchanged == wabas
    assert decodes[0] == wabas  # nor decoded
    assert sim.world.request_count("phone_numbers") == 2 * wabas  # but every one was asked
    for state in second:
        assert state is not None and state.up
        old = before[state.waba_id]
        assert state.numbers is old.numbers
        assert state.polls == old.polls + 1
        assert state.last_success is not None and old.last_success is not None
        assert state.last_success >= old.last_success
        assert state.last_attempt is not None and old.last_attempt is not None
        assert state.last_attempt >= old.last_attempt

    # One number changes: only its WABA is parsed again, and the change shows.
    changed_waba = sorted(before)[2]
    number_id = sim.world.waba_number_ids(changed_waba)[1]
    sim.world.set_number_fields(number_id, {"status": "FLAGGED"})
    third = await monitor.poll_all(monitor.targets())
    assert monitor.fill_memory.parsed == wabas + 1
    assert monitor.fill_memory.unchanged == 2 * wabas - 1
    states = {s.waba_id: s for s in third if s is not None}
    assert {n.id: n.status for n in states[changed_waba].numbers}[number_id] == "FLAGGED"
    assert any(t.field == "status" and t.phone_number_id == number_id
               for t in monitor.store.recent)


async def test_a_paged_listing_is_compared_page_by_page(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics,
    decodes: list[int],
) -> None:
    """Three pages: unchanged, none is decoded; the last page changed, the earlier pages'
    bytes (kept for the poll only) are decoded after all and every number is there."""
    scenario = small_fleet(numbers_per_waba=25)
    sim = await start_sim(scenario)
    client, memory, policy = make_client(sim), FillMemory(), FieldPolicy(metrics)
    waba = scenario.businesses[0].wabas[0].id

    async def poll() -> tuple[Any, ...]:
        return await fetch_waba(client, waba, policy, memory, page_limit=10)

    first = await poll()
    assert len(first) == 25 and decodes[0] == 3 and memory.parsed == 1
    assert await poll() is first
    assert decodes[0] == 3 and memory.parsed == 1 and memory.unchanged == 1
    assert sim.world.request_count("phone_numbers") == 6

    last_id = first[-1].id
    sim.world.set_number_fields(last_id, {"quality_rating": "RED"})
    third = await poll()
    assert memory.parsed == 2
    assert decodes[0] == 6  # the third page changed: the two unchanged ones decoded too
    assert [n.id for n in third] == [n.id for n in first]
    assert {n.id: n.quality_rating for n in third}[last_id] == "RED"
    assert sim.world.request_count("phone_numbers") == 9  # no page asked twice


async def test_a_different_request_is_not_matched_with_the_last_listing(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    """The request is part of the page's identity: another page size or another expected
    callback parses again even where the bytes could compare equal."""
    scenario = small_fleet(numbers_per_waba=3)
    sim = await start_sim(scenario)
    client, memory, policy = make_client(sim), FillMemory(), FieldPolicy(metrics)
    waba = scenario.businesses[0].wabas[0].id
    await fetch_waba(client, waba, policy, memory)
    await fetch_waba(client, waba, policy, memory, page_limit=50)
    await fetch_waba(client, waba, policy, memory, page_limit=50,
                     expected_callback="https://example.test/hook")
    assert memory.parsed == 3 and memory.unchanged == 0
    await fetch_waba(client, waba, policy, memory, page_limit=50,
                     expected_callback="https://example.test/hook")
    assert memory.parsed == 3 and memory.unchanged == 1


async def test_an_unchanged_bad_listing_stays_an_error(
    aiohttp_server: Any, session: aiohttp.ClientSession, metrics: SelfMetrics
) -> None:
    """Only a listing that parsed is remembered: the same bad bytes fail every poll."""
    body = [b'{"data": [{"id": "1", "status": {"not": "a string"}}]}']

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=body[0], content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app)
    client = GraphClient(session, base_url=str(server.make_url("")).rstrip("/"),
                         api_version="v24.0", access_token="t", metrics=metrics)
    memory, policy = FillMemory(), FieldPolicy(metrics)
    for _ in range(2):
        with pytest.raises(GraphError) as caught:
            await fetch_waba(client, "9", policy, memory, per_number_fill=False)
        assert caught.value.kind is ErrorKind.PAYLOAD
    assert memory.parsed == 0 and memory.unchanged == 0
    body[0] = b'{"data": [{"id": "1", "status": "CONNECTED"}]}'
    good = await fetch_waba(client, "9", policy, memory, per_number_fill=False)
    assert [n.status for n in good] == ["CONNECTED"]
    assert await fetch_waba(client, "9", policy, memory, per_number_fill=False) is good
    assert memory.parsed == 1 and memory.unchanged == 1


def test_forgetting_a_waba_drops_its_listing() -> None:
    memory = FillMemory()
    memory.skip("1").add("x")
    memory.forget("1")
    memory.forget("2")
    assert memory.node_absent == {} and memory.listings == {}


def test_a_business_is_summarized_once_per_read_not_per_waba(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten WABAs put one by one make one summary at the next read; a repeated poll that
    found the same numbers makes none, while its own series still move on."""
    import monitor.store as store_module
    from monitor.model import BusinessState, PhoneNumber, WabaState

    calls = [0]
    real = store_module.summarize

    def counting(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(store_module, "summarize", counting)
    store = Store(clock=lambda: 100.0)
    store.put_business(BusinessState("b"))
    states = []
    for i in range(10):
        numbers = (PhoneNumber(id=f"n{i}", status="CONNECTED", platform_type="CLOUD_API"),)
        state = WabaState("b", f"w{i}", numbers=numbers, up=True, polled=True, last_success=1.0)
        store.put_waba(state)
        states.append(state)
    summary = store.summary("b")
    assert calls[0] == 1 and summary is not None and summary.registered == 10
    store.body()
    assert calls[0] == 1

    again = WabaState("b", "w3", numbers=states[3].numbers, up=True, polled=True,
                      last_success=2.0, polls=1)
    store.put_waba(again)
    shown = [line for line in store.body().text.decode().splitlines()
             if line.startswith("whatsapp_monitor_waba_last_success") and '"w3"' in line]
    assert [float(line.rsplit(" ", 1)[1]) for line in shown] == [2.0]  # freshness moves on
    assert calls[0] == 1
    store.put_waba(WabaState("b", "w3", numbers=(), up=True, polled=True, last_success=3.0))
    assert store.summary("b").registered == 9  # type: ignore[union-attr]
    assert calls[0] == 2


async def test_parsed_numbers_share_their_short_strings(
    start_sim: StartSim, make_client: Callable[..., GraphClient], metrics: SelfMetrics
) -> None:
    """Enum values are one object across a fleet's numbers, not one copy per number."""
    from monitor.poller import SHARED_MAX, shared_strings

    scenario = small_fleet(numbers_per_waba=4)
    sim = await start_sim(scenario)
    numbers = await fetch_waba(make_client(sim), scenario.businesses[0].wabas[0].id,
                               FieldPolicy(metrics), FillMemory())
    statuses = [n.status for n in numbers]
    assert statuses[0] is not None and all(s == statuses[0] for s in statuses)
    assert all(s is statuses[0] for s in statuses)
    long = "x" * (SHARED_MAX + 1)
    row = {"a": ["".join(["CONN", "ECTED"])], "b": {"c": long}, "d": 1, "e": None}
    shared = shared_strings(row)
    assert shared == row and shared["a"][0] is sys.intern("CONNECTED")


async def test_an_unchanged_template_listing_is_not_parsed_or_rendered_again(
    demo_monitor: DemoMonitor, decodes: list[int],
) -> None:
    sim, monitor = await demo_monitor(max_retries=0)
    target = next(t for t in monitor.targets() if t.waba_id == TEMPLATES_WABA)
    assert await monitor.poll_templates(target)
    first = monitor.store.templates(TEMPLATES_WABA)
    assert first and monitor.template_memory.parsed == 1
    decoded, version = decodes[0], monitor.store.version
    renders = count_calls(monitor.store, "_render")

    sim.world.reset_counts()
    assert await monitor.poll_templates(target)
    assert sim.world.request_count("message_templates", object_id=TEMPLATES_WABA) >= 1
    assert monitor.template_memory.parsed == 1 and monitor.template_memory.unchanged == 1
    assert decodes[0] == decoded  # not decoded
    assert monitor.store.templates(TEMPLATES_WABA) is first  # the same objects
    assert monitor.store.version == version and renders == [0]  # nothing rendered again
    assert monitor.store.template_reads_unchanged == 1

    # A template changes: the listing is parsed again, and the change shows.
    template = next(t for t in first if t.quality == "GREEN")
    sim.world.apply_action(Action("template_quality", {"template": template.id,
                                                       "score": "RED"}))
    assert await monitor.poll_templates(target)
    assert monitor.template_memory.parsed == 2
    now = {t.id: t.quality for t in monitor.store.templates(TEMPLATES_WABA) or ()}
    assert now[template.id] == "RED"
    assert renders == [1] and monitor.store.version > version
    assert (template.id, "template_quality", "GREEN", "RED") in {
        (t.template_id, t.field, t.old, t.new) for t in monitor.store.recent}

    monitor.store.remove_waba(TEMPLATES_WABA)
    assert TEMPLATES_WABA not in monitor.template_memory.listings


def count_calls(obj: object, name: str) -> list[int]:
    """Counts calls of ``obj.name`` from now on (a one-element list, read after)."""
    count = [0]
    real = getattr(obj, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    setattr(obj, name, counting)
    return count
