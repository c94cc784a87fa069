"""State file: round trips, restore before the first poll, transitions history and its API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_settings
from monitor.model import LearnedCap, PhoneNumber, Transition, WabaState
from monitor.runtime import Runtime
from monitor.simulator import Fault, World, start_simulator
from monitor.state import StateDB, StateError, waba_from_json, waba_to_json
from tests.conftest import TOKEN, small_fleet, write_config


def test_waba_state_round_trips_through_json() -> None:
    state = WabaState("1", "2", numbers=(PhoneNumber(id="3", status="FLAGGED",
                                                     is_official_business_account=True),),
                      up=True, polled=True, last_success=12.5, polls=3,
                      status_changed_at={"3": 11.0})
    assert waba_from_json(waba_to_json(state)) == state


def test_db_keeps_caps_states_and_transitions(tmp_path: Path) -> None:
    db = StateDB(tmp_path)
    db.save_cap(LearnedCap("1", 20, "max_phone_numbers_per_business", 100.0))
    db.save_verified("1", True)
    state = WabaState("1", "2", numbers=(PhoneNumber(id="3"),), up=True, last_success=5.0)
    change = Transition(50.0, "1", "2", "3", "status", "CONNECTED", "FLAGGED")
    old = Transition(1.0, "1", "2", "3", "status", None, "CONNECTED")
    db.write([state], [], [old, change], prune_before=10.0)
    db.close()
    again = StateDB(tmp_path)
    assert again.learned_caps() == [LearnedCap("1", 20, "max_phone_numbers_per_business", 100.0)]
    assert again.verified() == {"1": True}
    assert again.wabas() == [state]
    assert again.transitions() == [change]  # the old one was pruned
    again.write([], ["2"], [])
    assert again.wabas() == []


def test_unusable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match=r"state\.directory: cannot open"):
        StateDB(blocker)


def metric_values(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


async def scrape(url: str, path: str = "/metrics") -> str:
    async with aiohttp.ClientSession() as session, session.get(url + path) as resp:
        return await resp.text()


async def test_restart_serves_last_snapshot_and_learned_cap_before_polling(
    tmp_path: Path,
) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0]
    config = write_config(tmp_path, {
        "graph": {"base_url": sim_url, "max_retries": 0, "timeout": "30s"},
        "businesses": [{"id": business.id, "wabas": [waba.id]}],
        "schedule": {"scan_interval": "1h"},
        "state": {"directory": str(tmp_path / "state")},
    })
    settings = load_settings(config, environ={})
    number = waba.numbers[0].id
    try:
        async with Runtime(settings, access_token=TOKEN, port=0) as first:
            assert first.monitor is not None
            for _ in range(100):
                if first.ready:
                    break
                await asyncio.sleep(0.05)
            world.set_number_fields(number, {"status": "FLAGGED"})
            await first.monitor.poll_all(first.monitor.targets())
            assert first.sink is not None
            first.sink.learn_cap(waba_id=waba.id, cap=7,
                                 source_field="max_phone_numbers_per_business")
            await first.sink.commit()
            before = await scrape(first.url)
        # The Graph API now never answers: whatever is served comes from the state file.
        world.inject_fault(Fault(target="*", kind="hang", count=-1))
        async with Runtime(settings, access_token=TOKEN, port=0) as second:
            await asyncio.sleep(0.2)
            assert second.monitor is not None and not second.ready
            after = await scrape(second.url)
            history = await scrape(second.url, "/api/v1/transitions?since=0")
            page = await scrape(second.url, "/")
            api = json.loads(await scrape(second.url, "/api/v1/status"))
    finally:
        world.clear_faults()
        await runner.cleanup()
    name = "whatsapp_monitor_waba_last_success_timestamp_seconds"
    assert metric_values(after, name) == metric_values(before, name)
    status = metric_values(after, "whatsapp_phone_number_status")
    key = frozenset({"business_id": business.id, "waba_id": waba.id, "phone_number_id": number,
                     "status": "FLAGGED"}.items())
    assert status[key] == 1
    caps = metric_values(after, "whatsapp_business_registered_phone_numbers_cap")
    assert caps == {frozenset({"business_id": business.id}.items()): 7}
    assert metric_values(after, "whatsapp_business_registered_phone_numbers_cap_info") == {
        frozenset({"business_id": business.id, "source": "webhook"}.items()): 1}
    changed = metric_values(after, "whatsapp_phone_number_status_last_change_timestamp_seconds")
    assert changed == metric_values(
        before, "whatsapp_phone_number_status_last_change_timestamp_seconds")
    assert '"field": "status"' in history and '"new": "FLAGGED"' in history
    latest = page.split("Recent changes", 1)[1]
    assert "FLAGGED" in latest
    assert any(c["phone_number_id"] == number and c["new"] == "FLAGGED"
               for c in api["data"]["changes"])


async def test_transitions_api_validates_its_parameters(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=1)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        "businesses": [{"id": business.id, "wabas": [business.wabas[0].id]}],
        "state": {"directory": None},
    }), environ={})
    try:
        async with Runtime(settings, access_token=TOKEN, port=0) as rt, \
                aiohttp.ClientSession() as session:
            for query, status in [("since=yesterday", 400), ("limit=0", 400),
                                  ("limit=x", 400), ("since=2026-01-01T00:00:00", 400),
                                  ("since=2026-01-01T00:00:00Z&limit=5", 200)]:
                async with session.get(f"{rt.url}/api/v1/transitions?{query}") as resp:
                    assert resp.status == status, query
                    body = await resp.json()
                    assert body["status"] == ("success" if status == 200 else "error")
    finally:
        await runner.cleanup()
