"""``start_simulator``: a real TCP server, its URL, and a cleanup that never blocks."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest
from simtools import AUTH, make_world

from monitor.simulator import WORLD_KEY, Fault, build_app, start_simulator


async def test_start_serve_and_cleanup(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world = make_world()
    runner, url = await start_simulator(world)
    try:
        host, _, port = url.removeprefix("http://").rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        async with aiohttp.ClientSession() as session:
            query = "?access_token=demo-token&fields=status"
            async with session.get(f"{url}/v23.0/300000000000006{query}") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "OFFLINE"
            async with session.get(f"{url}/_sim/stats") as resp:
                assert (await resp.json())["total"] == 1
    finally:
        await runner.cleanup()
    # The access log is off, so tokens in query strings never reach the logs.
    assert "demo-token" not in caplog.text
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/_sim/stats")


async def test_cleanup_does_not_wait_for_hanging_requests() -> None:
    world = make_world()
    world.inject_fault(Fault("*", "hang", count=-1))
    runner, url = await start_simulator(world)
    session = aiohttp.ClientSession(headers=AUTH)
    pending = asyncio.ensure_future(session.get(f"{url}/v23.0/200000000000001/phone_numbers"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    started = time.monotonic()
    await runner.cleanup()
    assert time.monotonic() - started < 2
    with pytest.raises(aiohttp.ClientError):
        await pending
    await session.close()


async def test_latency_on_real_server() -> None:
    world = make_world()
    runner, url = await start_simulator(world, latency=0.15)
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            started = time.monotonic()
            async with session.get(f"{url}/v23.0/300000000000006") as resp:
                assert resp.status == 200
            assert time.monotonic() - started >= 0.15
            started = time.monotonic()
            async with session.get(f"{url}/_sim/stats") as resp:  # control calls: no latency
                assert resp.status == 200
            assert time.monotonic() - started < 0.15
    finally:
        await runner.cleanup()


def test_build_app_exposes_world_and_validates_latency() -> None:
    world = make_world()
    app = build_app(world)
    assert app[WORLD_KEY] is world
    with pytest.raises(ValueError):
        build_app(world, latency=-1)
