"""The fleet: one owner of what is watched; restored state only where the configuration
vouches for it (the restart with a business removed is the bug this guards)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from monitor.config import Settings, load_settings
from monitor.fleet import Fleet, Reason, Target
from monitor.runtime import Runtime
from monitor.sharding import Shard, shard_of
from monitor.simulator import World, start_simulator
from tests.conftest import TOKEN, small_fleet, write_config


def settings(tmp_path: Path, businesses: list[dict[str, Any]], **extra: Any) -> Settings:
    return load_settings(write_config(tmp_path, {"businesses": businesses, **extra}),
                         environ={})


def test_configured_outranks_discovered_outranks_restored(tmp_path: Path) -> None:
    fleet = Fleet(settings(tmp_path, [{"id": "1", "wabas": ["11"]}, {"id": "2"}]))
    accepted = fleet.restore([(Target("2", "21"), "2"), (Target("2", "11"), "2")])
    assert {a.waba_id: a.reason for a in accepted} == {"21": Reason.RESTORED,
                                                       "11": Reason.CONFIGURED}
    fleet.discovered("2", [Target("9", "21"), Target("2", "22")])
    desired = fleet.desired()
    assert {w: (d.business_id, d.via, d.reason) for w, d in desired.items()} == {
        "11": ("1", "1", Reason.CONFIGURED),
        "21": ("9", "2", Reason.DISCOVERED),  # attributed to its owner, found through 2
        "22": ("2", "2", Reason.DISCOVERED),
    }
    assert fleet.business_ids() == {"1", "2", "9"}


def test_restored_waba_of_an_unconfigured_business_is_refused(tmp_path: Path) -> None:
    fleet = Fleet(settings(tmp_path, [{"id": "1", "wabas": ["11"]}]))
    accepted = fleet.restore([(Target("1", "11"), "1"), (Target("2", "21"), "2"),
                              (Target("2", "22"), None), (Target("1", "12"), "1")])
    # 21/22: business 2 is gone; 12: business 1 lists its WABAs and 12 is not among them.
    assert [a.waba_id for a in accepted] == ["11"]
    assert set(fleet.desired()) == {"11"}
    assert fleet.business_ids() == {"1"}


def test_restored_wabas_wait_for_their_business_discovery(tmp_path: Path) -> None:
    fleet = Fleet(settings(tmp_path, [{"id": "1"}, {"id": "2"}]))
    fleet.restore([(Target("1", "11"), "1"), (Target("1", "12"), "1"),
                   (Target("7", "71"), "2")])  # 71: a client WABA found through 2
    assert set(fleet.desired()) == {"11", "12", "71"}
    assert not fleet.discovery_complete
    fleet.discovered("1", None)  # failed: keep what we had
    assert set(fleet.desired()) == {"11", "12", "71"}
    fleet.discovered("1", [Target("1", "11")])
    assert set(fleet.desired()) == {"11", "71"}  # 12 was not found again
    fleet.discovered("2", [])
    assert set(fleet.desired()) == {"11"} and fleet.discovery_complete


def test_reconfiguring_drops_what_the_new_configuration_does_not_vouch_for(
        tmp_path: Path) -> None:
    fleet = Fleet(settings(tmp_path, [{"id": "1"}, {"id": "2"}]))
    fleet.restore([(Target("2", "21"), "2")])
    fleet.discovered("1", [Target("1", "11")])
    (tmp_path / "b").mkdir()
    fleet.configure(settings(tmp_path / "b", [{"id": "1"}]), Shard())
    assert set(fleet.desired()) == {"11"}
    assert fleet.business_ids() == {"1"}


def test_a_shard_keeps_only_the_wabas_of_its_businesses(tmp_path: Path) -> None:
    ids = [str(100000000000000 + i) for i in range(40)]
    mine = next(b for b in ids if shard_of(b, 2) == 0)
    theirs = next(b for b in ids if shard_of(b, 2) == 1)
    fleet = Fleet(settings(tmp_path, [{"id": "5"}]), Shard(ordinal=0, total=2))
    fleet.restore([(Target(theirs, "1"), "5"), (Target(mine, "2"), "5")])
    fleet.discovered("5", [Target(theirs, "3"), Target(mine, "4")])
    assert set(fleet.desired()) == {"4"}


async def _wait_ready(runtime: Runtime) -> None:
    for _ in range(200):
        if runtime.ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("daemon never became ready")


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_a_business_removed_from_the_configuration_stays_gone_after_restart(
    tmp_path: Path,
) -> None:
    """Run with A (listed WABAs) and B (discovered), stop, drop B, start again from the same
    state directory: B's WABAs are never requested nor shown anywhere; A is unaffected."""
    scenario = small_fleet(numbers_per_waba=2, wabas=2, businesses=2)
    a, b = scenario.businesses
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    state = {"directory": str(tmp_path / "state")}
    graph = {"base_url": sim_url, "max_retries": 0}
    both = settings(tmp_path, [{"id": a.id, "wabas": [w.id for w in a.wabas]}, {"id": b.id}],
                    graph=graph, state=state, schedule={"scan_interval": "1h"})
    later = tmp_path / "later"
    later.mkdir()
    only_a_config = write_config(later, {
        "businesses": [{"id": a.id, "wabas": [w.id for w in a.wabas]}], "graph": graph,
        "state": state, "schedule": {"scan_interval": "1h"}})
    only_a = load_settings(only_a_config, environ={})
    try:
        async with Runtime(both, access_token=TOKEN, port=0) as first:
            await _wait_ready(first)
            before = await _get(first.url + "/metrics")
        assert all(w.id in before for w in b.wabas)  # B was watched and exported
        world.reset_counts()
        async with Runtime(only_a, access_token=TOKEN, port=0) as second:
            served_at_start = await _get(second.url + "/metrics")
            await _wait_ready(second)
            metrics = await _get(second.url + "/metrics")
            page = await _get(second.url + "/")
            assert second.jobs is not None
            polled = second.jobs.waba_ids()
            templates = {w.id for w in (*a.wabas, *b.wabas)
                         if second.jobs.templates_scheduled(w.id)}
            businesses = {j.id for j in second.jobs.scheduler.get_jobs()}
        # check runs in a child process while this loop keeps serving the simulator
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "check", "--config", str(only_a_config),
            "--format", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "WABA_MONITOR_ACCESS_TOKEN": TOKEN})
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await runner.cleanup()
    for waba in b.wabas:
        assert world.request_count(object_id=waba.id) == 0
        for text in (served_at_start, metrics, page, out.decode()):
            assert waba.id not in text
        assert waba.id not in polled and waba.id not in templates
    assert polled == {w.id for w in a.wabas} == templates
    assert businesses == {f"business:{a.id}"}
    assert b.id not in metrics and b.id not in page
    for waba in a.wabas:
        assert world.request_count("phone_numbers", object_id=waba.id) == 2  # daemon, check
        assert f'waba_id="{waba.id}"' in served_at_start  # restored, served before polling
        assert f'whatsapp_monitor_waba_up{{business_id="{a.id}",waba_id="{waba.id}"}} 1' in metrics
    report = json.loads(out.decode())
    assert proc.returncode in (0, 1, 2), err.decode()  # 3 would be "could not poll"
    assert {w["waba_id"] for bus in report["businesses"] for w in bus["wabas"]} == {
        w.id for w in a.wabas}


def test_a_listed_client_waba_counts_toward_its_owner(tmp_path: Path) -> None:
    fleet = Fleet(settings(tmp_path, [{"id": "1", "wabas": ["11", "12"]}]))
    assert fleet.attribute("11", "7") and not fleet.attribute("11", "7")
    assert not fleet.attribute("99", "7")  # not listed: discovery attributes those
    # Owned by the business that lists it: nothing changes, nothing to sync.
    assert not fleet.attribute("12", "1") and fleet.owners() == {"11": "7"}
    desired = fleet.desired()
    assert (desired["11"].business_id, desired["11"].via) == ("7", "1")
    assert desired["12"].business_id == "1"
    assert fleet.business_ids() == {"1", "7"}
    assert fleet.attribute("11", "1") and fleet.owners() == {}  # moved back to its lister
    assert fleet.attribute("11", "7")
    again = Fleet(settings(tmp_path, [{"id": "1", "wabas": ["11", "12"]}]))
    again.restore([(Target("7", "11"), "1")])  # the attribution survives a restart
    assert again.desired()["11"].business_id == "7"


async def test_a_configured_client_waba_counts_toward_its_owner_through_the_real_poll(
    start_sim: Any, make_client: Any, metrics: Any, tmp_path: Path
) -> None:
    """A Solution Provider lists its client's WABA: after the WABA node is read, the WABA
    carries the owner's business_id and counts toward the owner's registered numbers."""
    from monitor.daemon import Monitor
    from monitor.simulator import builtin_scenario
    from monitor.store import Store

    scenario = builtin_scenario("demo")
    provider = next(b for b in scenario.businesses if b.client_wabas)
    client_waba = provider.client_wabas[0]
    owner = next(b for b in scenario.businesses if any(w.id == client_waba for w in b.wabas))
    sim = await start_sim(scenario)
    config = settings(tmp_path, [{"id": provider.id, "wabas": [client_waba]}],
                      graph={"base_url": sim.url})
    monitor = Monitor(config, make_client(sim, token="demo-token"), Store(), metrics)
    await monitor.run_once()
    waba = monitor.store.waba(client_waba)
    assert waba is not None and (waba.business_id, waba.via) == (owner.id, provider.id)
    registered = sum(1 for n in waba.numbers if n.registered)
    summary = monitor.store.summary(owner.id)
    assert summary is not None and summary.registered == registered > 0
    provider_summary = monitor.store.summary(provider.id)
    assert provider_summary is not None and provider_summary.registered == 0
