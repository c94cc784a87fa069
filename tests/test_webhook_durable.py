"""Webhook-only facts through a real daemon: signed deliveries are committed to the state file
before the 200, shown in the store after it, restored after a restart (kill -9 included), and
a redelivery after the restart is recognised as a duplicate."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from monitor.accounts import Restriction, WabaFacts
from monitor.config import Settings, load_settings
from monitor.runtime import Runtime
from monitor.simulator import Fault, World, start_simulator
from monitor.state import StateDB
from monitor.webhooks.envelope import sign
from tests.conftest import TOKEN, small_fleet, write_config
from tests.test_end_to_end import free_port, simulator_process  # noqa: F401 - fixture
from tests.test_webhook_flow import get_text, http_json, wait_until

APP_SECRET = "durable-app-secret-4411"
PARTNER = "730000000000001"
EXPIRY = 1_893_456_000


def body(entry: str, *changes: tuple[str, dict[str, Any]], at: int | str | None = None) -> bytes:
    stamp = int(time.time()) if at is None else at
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": entry, "time": stamp,
         "changes": [{"field": f, "value": v} for f, v in changes]}]}).encode()


def restriction() -> tuple[str, dict[str, Any]]:
    return ("account_update", {"event": "ACCOUNT_RESTRICTION", "restriction_info": [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": EXPIRY}]})


def violation(kind: str = "SCAM") -> tuple[str, dict[str, Any]]:
    return ("account_update", {"event": "ACCOUNT_VIOLATION",
                               "violation_info": {"violation_type": kind}})


def phone_alert(number_id: str) -> tuple[str, dict[str, Any]]:
    return ("account_alerts", {"entity_type": "PHONE_NUMBER", "entity_id": number_id,
                               "alert_info": {"alert_severity": "CRITICAL",
                                              "alert_status": "ACTIVE",
                                              "alert_type": "OBA_REJECTED"}})


def on_disk(directory: Path) -> tuple[dict[str, tuple[str, WabaFacts]], list[Any], list[Any]]:
    """What the state file holds now, read through a connection of its own."""
    db = StateDB(directory)
    try:
        return db.waba_facts(), db.account_alerts(), db.learned_caps()
    finally:
        db.close()


async def post(url: str, raw: bytes) -> int:
    async with aiohttp.ClientSession() as session, session.post(
        url + "/webhooks/whatsapp", data=raw,
        headers={"X-Hub-Signature-256": sign(raw, APP_SECRET),
                 "Content-Type": "application/json"}) as resp:
        await resp.read()
        return resp.status


def events(runtime: Runtime, field: str, outcome: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "whatsapp_monitor_webhook_events_total", {"field": field, "outcome": outcome})
    return value or 0.0


async def ready(runtime: Runtime) -> None:
    for _ in range(200):
        if runtime.ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("daemon not ready")


async def test_facts_are_committed_before_the_200_and_restored_after_a_restart(
    tmp_path: Path,
) -> None:
    scenario = small_fleet(numbers_per_waba=2)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0]
    number = waba.numbers[0].id
    state = tmp_path / "state"
    settings: Settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url, "max_retries": 0, "timeout": "30s"},
        "businesses": [{"id": business.id, "wabas": [waba.id]}],
        "schedule": {"scan_interval": "1h"},
        "state": {"directory": str(state)},
    }), environ={})
    first_body = body(waba.id, restriction(), violation())
    try:
        async with Runtime(settings, access_token=TOKEN, app_secret=APP_SECRET,
                           port=0) as first:
            await ready(first)
            # Two changes of one WABA in one body: the second builds on the first.
            assert await post(first.url, first_body) == 200
            written = on_disk(state)[0][waba.id]
            assert written == (business.id, first.store.waba_facts(waba.id))
            facts = written[1]
            assert facts.restrictions == (
                Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", float(EXPIRY)),)
            assert facts.violations == {"SCAM": 1}
            assert set(facts.events) == {"ACCOUNT_RESTRICTION", "ACCOUNT_VIOLATION"}
            # Concurrent bodies about the same WABA: neither loses the other's fact.
            statuses = await asyncio.gather(
                post(first.url, body(waba.id, violation("ADULT"))),
                post(first.url, body(waba.id, ("account_review_update",
                                               {"decision": "REJECTED"}))),
                post(first.url, body(waba.id, phone_alert(number))),
                post(first.url, body(waba.id, ("business_capability_update", {
                    "max_phone_numbers_per_business": 20, "max_phone_numbers_per_waba": 25}))))
            assert list(statuses) == [200, 200, 200, 200]
            facts_on_disk, alerts, caps = on_disk(state)
            shown = first.store.waba_facts(waba.id)
            assert shown is not None and facts_on_disk[waba.id][1] == shown
            assert shown.violations == {"SCAM": 1, "ADULT": 1}
            assert shown.review_status == "REJECTED"
            assert shown.phone_numbers_cap == 25
            assert [(a.business_id, a.entity_id, a.alert_type) for a in alerts] == [
                (business.id, number, "OBA_REJECTED")]
            assert first.store.account_alerts(business.id) == alerts
            assert [(c.business_id, c.cap) for c in caps] == [(business.id, 20)]
            owner = first.store.business(business.id)
            assert owner is not None and owner.learned_cap == 20  # not the per-WABA 25
            # A partner event: entry.id is the partner; the WABA is in waba_info.
            with capture_logs() as logs:
                assert await post(first.url, body(PARTNER, ("account_update", {
                    "event": "PARTNER_ADDED", "waba_info": {
                        "waba_id": waba.id, "owner_business_id": business.id}}))) == 200
            assert any(e["event"] == "discovery_requested" and e["business_id"] == business.id
                       for e in logs)
            assert any(e["event"] == "webhook_event" and e["waba_id"] == waba.id
                       and e.get("entry_id") == PARTNER for e in logs)
            before = first.store.waba_facts(waba.id)
        # Restart with the Graph API hanging: the facts come from the state file.
        world.inject_fault(Fault(target="*", kind="hang", count=-1))
        async with Runtime(settings, access_token=TOKEN, app_secret=APP_SECRET,
                           port=0) as second:
            await asyncio.sleep(0.2)
            assert not second.ready
            assert second.store.waba_facts(waba.id) == before
            assert second.store.account_alerts(business.id) == alerts
            restored = second.store.business(business.id)
            assert restored is not None and restored.learned_cap == 20
            # Meta redelivers for 7 days: after the restart the memory is empty, the WABA's
            # durable keys still know the body.
            assert await post(second.url, first_body) == 200
            assert events(second, "account_update", "duplicate") == 2
            assert events(second, "account_update", "applied") == 0
            assert second.store.waba_facts(waba.id) == before
    finally:
        world.clear_faults()
        await runner.cleanup()


async def test_a_failing_state_file_answers_500_and_shows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = small_fleet(numbers_per_waba=1)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0]
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        "businesses": [{"id": business.id, "wabas": [waba.id]}],
        "schedule": {"scan_interval": "1h"},
        "state": {"directory": str(tmp_path / "state")},
    }), environ={})
    try:
        async with Runtime(settings, access_token=TOKEN, app_secret=APP_SECRET,
                           port=0) as runtime:
            await ready(runtime)
            assert runtime.db is not None

            def full(*_: Any) -> None:
                raise OSError("database or disk is full")

            monkeypatch.setattr(runtime.db, "save_webhook_facts", full)
            raw = body(waba.id, restriction())
            assert await post(runtime.url, raw) == 500
            assert runtime.store.waba_facts(waba.id) is None
            monkeypatch.undo()
            assert await post(runtime.url, raw) == 200  # Meta's redelivery
            shown = runtime.store.waba_facts(waba.id)
            assert shown is not None and shown.restrictions
    finally:
        await runner.cleanup()


async def test_without_a_state_directory_facts_are_shown_at_once(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=1)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0]
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        "businesses": [{"id": business.id, "wabas": [waba.id]}],
        "schedule": {"scan_interval": "1h"},
        "state": {"directory": None},
    }), environ={})
    try:
        async with Runtime(settings, access_token=TOKEN, app_secret=APP_SECRET,
                           port=0) as runtime:
            await ready(runtime)
            raw = body(waba.id, ("account_review_update", {"decision": "PENDING"}), at="17")
            assert await post(runtime.url, raw) == 200
            shown = runtime.store.waba_facts(waba.id)
            assert shown is not None and (shown.review_status, shown.review_at) == (
                "PENDING", 17.0)
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- kill -9


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def post_signed(url: str, raw: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - local test URL
        f"{url}/webhooks/whatsapp", data=raw, method="POST",
        headers={"Content-Type": "application/json",
                 "X-Hub-Signature-256": sign(raw, APP_SECRET)})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


def test_webhook_facts_answered_200_survive_kill_9(
    simulator_process: str, tmp_path: Path,  # noqa: F811
    daemons: list[subprocess.Popen[str]],
) -> None:
    """A signed restriction and an account alert are answered 200; the daemon is SIGKILLed at
    once (no flush interval to hide behind); the state file has both, and the restarted
    daemon, with the Graph API hanging, knows them (a redelivery is a duplicate)."""
    sim = simulator_process
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    business, waba, number = "100000000000002", "200000000000003", "300000000000011"
    state = tmp_path / "state"
    config = write_config(tmp_path, {
        "graph": {"base_url": sim, "timeout": "60s", "max_retries": 0},
        "businesses": [{"id": business, "wabas": [waba]}],
        "schedule": {"scan_interval": "1h"},
        "server": {"listen": f"127.0.0.1:{port}"},
        "state": {"directory": str(state)},
    })
    env = {**os.environ, "WABA_MONITOR_ACCESS_TOKEN": "demo-token",
           "WABA_MONITOR_APP_SECRET": APP_SECRET}

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        daemons.append(proc)
        return proc

    first = start()
    wait_until(lambda: get_text(f"{url}/-/ready")[0] == 200)
    restricted = body(waba, restriction())
    assert post_signed(url, restricted) == 200
    assert post_signed(url, body(waba, phone_alert(number))) == 200
    assert post_signed(url, body(waba, ("business_capability_update",
                                        {"max_phone_numbers_per_business": 20,
                                         "max_phone_numbers_per_waba": 25}))) == 200
    first.send_signal(signal.SIGKILL)  # at once
    first.wait()

    facts, alerts, caps = on_disk(state)
    owner, kept = facts[waba]
    assert owner == business
    assert kept.restrictions == (
        Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", float(EXPIRY)),)
    assert kept.phone_numbers_cap == 25
    assert [(a.business_id, a.entity_type, a.entity_id, a.alert_type, a.alert_severity)
            for a in alerts] == [(business, "PHONE_NUMBER", number, "OBA_REJECTED", "CRITICAL")]
    assert [(c.business_id, c.cap) for c in caps] == [(business, 20)]

    http_json("POST", f"{sim}/_sim/faults", {"target": "*", "kind": "hang", "count": -1})
    try:
        start()
        wait_until(lambda: get_text(f"{url}/-/healthy")[0] == 200)
        metrics = get_text(f"{url}/metrics")[1]
        assert (f'whatsapp_business_registered_phone_numbers_cap{{business_id="{business}"}} 20'
                in metrics)
        assert post_signed(url, restricted) == 200  # Meta's redelivery after the restart
        duplicate = ('whatsapp_monitor_webhook_events_total{field="account_update",'
                     'outcome="duplicate"} 1.0')
        assert duplicate in get_text(f"{url}/metrics")[1]
        assert get_text(f"{url}/-/ready")[0] == 503  # the first new poll has not finished
    finally:
        http_json("DELETE", f"{sim}/_sim/faults")
