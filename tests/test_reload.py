"""Live reload: SIGHUP and POST /-/reload apply a new file whole, or keep the old one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from monitor.runtime import Runtime, file_loader
from monitor.simulator import World, start_simulator
from tests.conftest import TOKEN, small_fleet
from tests.test_end_to_end import free_port, simulator_process  # noqa: F401 - fixture
from tests.test_webhook_flow import get_text, wait_until


def config(sim_url: str, businesses: list[dict[str, Any]], **schedule: Any) -> dict[str, Any]:
    return {
        "graph": {"base_url": sim_url},
        "businesses": businesses,
        "schedule": {"scan_interval": "1h", **schedule},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": None},
    }


async def metrics_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        return await resp.text()


async def post_reload(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(f"{url}/-/reload") as resp:
        return resp.status, await resp.json()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_reload_adds_removes_and_rejects_bad_files(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=2, wabas=1, businesses=2)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    first, second = scenario.businesses
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(
        sim_url, [{"id": first.id, "wabas": [first.wabas[0].id]}])))
    loader = file_loader(path, environ={"WABA_MONITOR_ACCESS_TOKEN": TOKEN})
    loaded = loader()
    try:
        async with Runtime(loaded.settings, access_token=TOKEN, port=0, shard=loaded.shard,
                           loader=loader) as rt:
            assert rt.monitor is not None
            await until(lambda: asyncio.sleep(0, rt.ready))
            before = await metrics_text(rt.url)
            assert f'business_id="{first.id}"' in before
            assert f'business_id="{second.id}"' not in before

            # Swap business 1 for business 2, and give business 2 a configured cap.
            path.write_text(yaml.safe_dump(config(sim_url, [
                {"id": second.id, "wabas": [second.wabas[0].id], "registration_cap": 9}])))
            status, body = await post_reload(rt.url)
            assert (status, body["status"]) == (200, "success")

            async def swapped() -> bool:
                text = await metrics_text(rt.url)
                return (f'whatsapp_monitor_waba_up{{business_id="{second.id}",waba_id='
                        f'"{second.wabas[0].id}"}} 1' in text
                        and f'business_id="{first.id}"' not in text)

            await until(swapped)
            after = await metrics_text(rt.url)
            assert (f'whatsapp_business_registered_phone_numbers_cap{{business_id='
                    f'"{second.id}"}} 9') in after
            assert "whatsapp_monitor_config_last_reload_successful 1.0" in after
            assert rt.jobs.waba_ids() == {second.wabas[0].id}  # type: ignore[union-attr]
            assert rt.jobs.templates_scheduled(second.wabas[0].id)  # type: ignore[union-attr]
            assert not rt.jobs.templates_scheduled(  # type: ignore[union-attr]
                first.wabas[0].id)  # removed with its polls

            # A bad file is rejected whole; the running configuration stays.
            path.write_text("graph:\n  api_version: nope\nbusinesses: []\n")
            status, body = await post_reload(rt.url)
            assert status == 400 and "graph.api_version" in body["error"]
            text = await metrics_text(rt.url)
            assert "whatsapp_monitor_config_last_reload_successful 0.0" in text
            assert f'whatsapp_monitor_waba_up{{business_id="{second.id}"' in text
            polls = world.request_count("phone_numbers", second.wabas[0].id)
            rt.jobs.request_repoll(waba_id=second.wabas[0].id,  # type: ignore[union-attr]
                                   reason="test")
            await until(lambda: asyncio.sleep(0, world.request_count(
                "phone_numbers", second.wabas[0].id) > polls))
    finally:
        await runner.cleanup()


async def test_reload_changes_the_scan_interval(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=1)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0].id
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(sim_url, [{"id": business.id, "wabas": [waba]}])))
    loader = file_loader(path, environ={"WABA_MONITOR_ACCESS_TOKEN": TOKEN})
    loaded = loader()
    try:
        async with Runtime(loaded.settings, access_token=TOKEN, port=0, shard=loaded.shard,
                           loader=loader) as rt:
            await until(lambda: asyncio.sleep(0, world.request_count("phone_numbers") >= 1))
            path.write_text(yaml.safe_dump(config(
                sim_url, [{"id": business.id, "wabas": [waba]}], scan_interval="200ms",
                jitter=0)))
            assert (await rt.reload())[0]
            await until(lambda: asyncio.sleep(0, world.request_count("phone_numbers") >= 4))
            assert "whatsapp_monitor_scan_interval_seconds 0.2" in await metrics_text(rt.url)
    finally:
        await runner.cleanup()


def test_sighup_reloads_the_running_daemon(simulator_process: str,  # noqa: F811
                                           tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    path = tmp_path / "config.yaml"
    base = config(simulator_process, [{"id": "100000000000002",
                                       "wabas": ["200000000000003"]}])
    base["server"]["listen"] = f"127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(base))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(path)],
                            env={**os.environ, "WABA_MONITOR_ACCESS_TOKEN": "demo-token"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: get_text(f"{url}/-/ready")[0] == 200)
        base["businesses"].append({"id": "100000000000003", "wabas": ["200000000000004"]})
        path.write_text(yaml.safe_dump(base))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: 'waba_id="200000000000004"} 1' in get_text(f"{url}/metrics")[1])
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "config_reloaded" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
