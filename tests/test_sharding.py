"""Sharding: businesses spread by a stable hash; the shards' union is the single process."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import ConfigError, ShardingSettings, load_settings
from monitor.runtime import Runtime
from monitor.sharding import Shard, resolve_shard, shard_of
from monitor.simulator import World, start_simulator
from tests.conftest import TOKEN, small_fleet, write_config

# Families whose values depend on when a poll ran, not on what it found.
TIMING = ("_timestamp_seconds", "_requests", "_polls_total", "_failures_total")


def test_hash_is_stable_and_spreads() -> None:
    assert shard_of("100000000000001", 7) == shard_of("100000000000001", 7)
    assert shard_of("100000000000001", 1) == 0
    spread = {shard_of(str(10**14 + i), 4) for i in range(200)}
    assert spread == {0, 1, 2, 3}
    # A known value pins the algorithm: changing it would reshuffle every deployment.
    assert shard_of("100000000000001", 1000) == 44


def test_resolve_shard_from_pod_name_and_flags() -> None:
    settings = ShardingSettings(shard="auto", total_shards=3)
    assert resolve_shard(settings, environ={"HOSTNAME": "waba-monitor-2"}) == Shard(2, 3)
    assert resolve_shard(ShardingSettings(), shard="1", total_shards=2, environ={}) == Shard(1, 2)
    with pytest.raises(ConfigError, match="auto needs a pod name"):
        resolve_shard(settings, environ={"HOSTNAME": "laptop"})
    with pytest.raises(ConfigError, match="not below"):
        resolve_shard(settings, environ={"HOSTNAME": "waba-monitor-3"})


def data_series(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    out = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.startswith(("whatsapp_phone_number_", "whatsapp_business_",
                                      "whatsapp_monitor_waba_")):
                continue
            if s.name.endswith(TIMING):
                continue
            out.add((s.name, frozenset(s.labels.items()), s.value))
    return out


async def test_union_of_shards_equals_one_process(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=3, wabas=2, businesses=12)
    # A solution provider: business 0 also lists one WABA of each of businesses 1..3.
    clients = tuple(b.wabas[0].id for b in scenario.businesses[1:4])
    businesses = list(scenario.businesses)
    businesses[0] = dataclasses.replace(businesses[0], client_wabas=clients)
    scenario = dataclasses.replace(scenario, businesses=tuple(businesses))
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    config = write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        # Half discovered, half listed explicitly.
        "businesses": [{"id": b.id} if i % 2 == 0 else
                       {"id": b.id, "wabas": [w.id for w in b.wabas]}
                       for i, b in enumerate(scenario.businesses)],
        "schedule": {"scan_interval": "1h"},
        "state": {"directory": None},
    })
    settings = load_settings(config, environ={})
    total = 3
    runtimes = [Runtime(settings, access_token=TOKEN, port=0, shard=Shard(0, 1))] + [
        Runtime(settings, access_token=TOKEN, port=0, shard=Shard(i, total))
        for i in range(total)]
    texts = []
    try:
        for rt in runtimes:
            await rt.start()
        for _ in range(200):
            if all(rt.ready for rt in runtimes):
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            for rt in runtimes:
                async with session.get(f"{rt.url}/metrics") as resp:
                    texts.append(await resp.text())
    finally:
        for rt in runtimes:
            await rt.stop()
        await runner.cleanup()
    single, shards = data_series(texts[0]), [data_series(t) for t in texts[1:]]
    assert len(single) > 0
    assert set().union(*shards) == single
    owners = [{dict(labels)["business_id"] for _, labels, _ in s} for s in shards]
    for i in range(total):
        for j in range(i + 1, total):
            assert not owners[i] & owners[j], "a business is in two shards"
    assert all(owners), "every shard got some business (12 businesses, 3 shards)"
    assert f'whatsapp_monitor_total_shards {float(total)}' in texts[1]
    assert 'whatsapp_monitor_shard_ordinal{shard_ordinal="2"} 2.0' in texts[3]
    # Client WABAs count toward their owner wherever the owner lives.
    for waba in clients:
        owner = next(b.id for b, w in scenario.wabas() if w.id == waba)
        holders = [i for i, s in enumerate(shards)
                   if any(dict(lab).get("waba_id") == waba for _, lab, _ in s)]
        assert holders == [shard_of(owner, total)]


async def test_a_webhook_that_reaches_the_wrong_shard_is_passed_on(tmp_path: Path) -> None:
    import json

    from monitor.webhooks import sign
    from tests.test_end_to_end import free_port

    secret = "shard-app-secret-99"
    scenario = small_fleet(numbers_per_waba=1, wabas=1, businesses=8)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    total = 2
    ports = [free_port() for _ in range(total)]
    runtimes = []
    for ordinal in range(total):
        (tmp_path / str(ordinal)).mkdir()
        config = write_config(tmp_path / str(ordinal), {
            "graph": {"base_url": sim_url},
            "businesses": [{"id": b.id, "wabas": [b.wabas[0].id]} for b in scenario.businesses],
            "server": {"listen": f"127.0.0.1:{ports[ordinal]}"},
            "state": {"directory": None},
            "sharding": {"shard": ordinal, "total_shards": total,
                         "peers": [f"http://127.0.0.1:{p}" for p in ports]},
        })
        settings = load_settings(config, environ={})
        runtimes.append(Runtime(settings, access_token=TOKEN, app_secret=secret))
    business = scenario.businesses[0]
    owner = shard_of(business.id, total)
    other = 1 - owner
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": business.wabas[0].id, "time": 1, "changes": [{
            "field": "business_capability_update",
            "value": {"max_phone_numbers_per_business": 20}}]}]}).encode()
    try:
        for rt in runtimes:
            await rt.start()
        async with aiohttp.ClientSession() as session, session.post(
                runtimes[other].url + "/webhooks/whatsapp", data=body,
                headers={"X-Hub-Signature-256": sign(body, secret),
                         "Content-Type": "application/json"}) as resp:
            assert resp.status == 200
        for _ in range(100):
            learned = runtimes[owner].store.business(business.id)
            if learned is not None and learned.learned_cap == 20:
                break
            await asyncio.sleep(0.05)
        assert learned is not None and learned.learned_cap == 20
        assert runtimes[other].store.business(business.id) is None
        # A WABA nobody watches is passed on once, never bounced back and forth.
        stray = body.replace(business.wabas[0].id.encode(), b"299999999999999")
        async with aiohttp.ClientSession() as session, session.post(
                runtimes[other].url + "/webhooks/whatsapp", data=stray,
                headers={"X-Hub-Signature-256": sign(stray, secret)}) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)
        received = [rt.metrics.registry.get_sample_value(
            "whatsapp_monitor_webhook_requests_total", {"result": "ok"}) for rt in runtimes]
        assert received[other] == 2 and received[owner] == 2
    finally:
        for rt in runtimes:
            await rt.stop()
        await runner.cleanup()
