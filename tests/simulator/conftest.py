"""Fixtures for the simulator tests: worlds on a frozen clock and in-process HTTP clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from simtools import SMALL, make_world

from monitor.simulator import World, build_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def demo_world() -> World:
    return make_world()


@pytest.fixture
def small_world() -> World:
    return make_world(SMALL)


@pytest.fixture
def client_for(aiohttp_client: Any) -> ClientFactory:
    """``await client_for(world)`` → a TestClient talking to that world in-process."""

    async def factory(world: World, **kwargs: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(build_app(world, **kwargs))
        return client

    return factory


@pytest.fixture
async def demo(client_for: ClientFactory, demo_world: World) -> TestClient[Any, Any]:
    return await client_for(demo_world)


@pytest.fixture
async def small(client_for: ClientFactory, small_world: World) -> TestClient[Any, Any]:
    return await client_for(small_world)
