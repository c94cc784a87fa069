"""Shared fixtures: a real simulator on a free port and a real Graph client talking to it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.config import Settings, load_settings
from monitor.daemon import Monitor
from monitor.graph.client import GraphClient, RetryPolicy
from monitor.selfmetrics import SelfMetrics, create_self_metrics
from monitor.simulator import Scenario, World, build_app, builtin_scenario, generate_scenario
from monitor.store import Store

TOKEN = "sim-token-4f1d9c2ab7e8"


@dataclass
class Sim:
    world: World
    url: str


class RecordingSleep:
    """Records requested delays instead of sleeping, so retry tests are instant."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def small_fleet(numbers_per_waba: int = 3, wabas: int = 1, businesses: int = 1,
                **changes: Any) -> Scenario:
    scenario = generate_scenario(businesses=businesses, wabas_per_business=wabas,
                                 numbers_per_waba=numbers_per_waba, token=TOKEN)
    return dataclasses.replace(scenario, **changes) if changes else scenario


@pytest.fixture(autouse=True, scope="session")
def _state_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default state.directory is under $XDG_STATE_HOME: a test, or a daemon it starts as a
    subprocess, that leaves state.directory unset must not write into the user's home."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    yield
    patch.undo()


@pytest.fixture
async def start_sim(aiohttp_server: Any) -> Callable[[Scenario], Awaitable[Sim]]:
    async def start(scenario: Scenario) -> Sim:
        world = World(scenario)
        server = await aiohttp_server(build_app(world))
        return Sim(world=world, url=str(server.make_url("")).rstrip("/"))

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def metrics() -> SelfMetrics:
    return create_self_metrics(process_metrics=False)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession, metrics: SelfMetrics, sleep: RecordingSleep
) -> Callable[..., GraphClient]:
    def make(sim: Sim, *, token: str = TOKEN, max_retries: int = 3, timeout: float = 5.0,
             max_throttle_wait: float = 60.0) -> GraphClient:
        return GraphClient(
            session,
            base_url=sim.url,
            api_version="v24.0",
            access_token=token,
            metrics=metrics,
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries, max_throttle_wait=max_throttle_wait),
            sleep=sleep,
        )

    return make


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    """Write a config file; tests listen on loopback only unless they say otherwise."""
    config = {"server": {"listen": "127.0.0.1:0"}, **config}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


DemoMonitor = Callable[..., Awaitable[tuple[Sim, Monitor]]]


@pytest.fixture
def demo_monitor(start_sim: Callable[[Scenario], Awaitable[Sim]],
                 make_client: Callable[..., GraphClient], metrics: SelfMetrics,
                 tmp_path: Path) -> DemoMonitor:
    """Starts the demo scenario's simulator and a synced Monitor on it (client options
    passed to ``make_client``)."""
    async def start(**client: Any) -> tuple[Sim, Monitor]:
        scenario = builtin_scenario("demo")
        sim = await start_sim(scenario)
        monitor = Monitor(settings_for(tmp_path, sim, scenario),
                          make_client(sim, token="demo-token", **client), Store(), metrics)
        monitor.sync()
        return sim, monitor

    return start


def settings_for(tmp_path: Path, sim: Sim, scenario: Scenario, **schedule: Any) -> Settings:
    """Settings that list every WABA of the scenario explicitly (no discovery)."""
    config = {
        "graph": {"base_url": sim.url, "max_retries": 2, "timeout": "5s"},
        "businesses": [
            {"id": b.id, "wabas": [w.id for w in b.wabas]} for b in scenario.businesses if b.wabas
        ],
        "schedule": {"scan_interval": "60s", **schedule},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": None},
    }
    return load_settings(write_config(tmp_path, config), environ={})


@pytest.fixture
def make_monitor(metrics: SelfMetrics, make_client: Callable[..., GraphClient],
                 tmp_path: Path) -> Callable[..., Monitor]:
    def make(sim: Sim, scenario: Scenario, **client_args: Any) -> Monitor:
        settings = settings_for(tmp_path, sim, scenario)
        return Monitor(settings, make_client(sim, **client_args), Store(), metrics)

    return make
