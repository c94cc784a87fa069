"""A real daemon against a real simulator, and ways to watch it: shared by the fault, soak,
HTTP-input and secrets tests (imported by module name, not via conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_settings
from monitor.logs import configure_logging
from monitor.runtime import Runtime
from monitor.simulator import Budget, Scenario, World, generate_scenario, start_simulator
from tests.conftest import TOKEN, write_config

# Polling as fast as the tests poll would trip the simulator's realistic per-WABA budget;
# throttling is injected explicitly where a test wants it.
BIG_BUDGET = Budget(default_per_hour=10**8, active_per_hour=10**8, app_per_hour=10**9)
SCAN_INTERVAL = 0.2
UP = "whatsapp_monitor_waba_up"
LAST_SUCCESS = "whatsapp_monitor_waba_last_success_timestamp_seconds"
POLLS = "whatsapp_monitor_waba_polls_total"
FAILURES = "whatsapp_monitor_waba_poll_failures_total"
ERRORS = "whatsapp_monitor_graph_request_errors_total"
PHONE_NUMBERS = "whatsapp_monitor_waba_phone_numbers"
LAST_POLL_REQUESTS = "whatsapp_monitor_waba_last_poll_requests"
AUTH_OK = "whatsapp_monitor_graph_auth_ok"

Key = tuple[str, frozenset[tuple[str, str]]]


def fleet(*, wabas: int = 3, numbers: int = 3, token: str = TOKEN) -> Scenario:
    """One business with ``wabas`` WABAs of ``numbers`` numbers each, and a budget that
    never throttles by itself."""
    scenario = generate_scenario(businesses=1, wabas_per_business=wabas,
                                 numbers_per_waba=numbers, token=token)
    return dataclasses.replace(scenario, budget=BIG_BUDGET)


@dataclass(frozen=True)
class Scrape:
    """One parsed /metrics answer."""

    samples: Mapping[Key, float]
    at: float

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def matching(self, name: str | None = None, **labels: str) -> dict[Key, float]:
        """Samples (of ``name``, if given) whose labels include ``labels``."""
        wanted = set(labels.items())
        return {k: v for k, v in self.samples.items()
                if (name is None or k[0] == name) and wanted <= k[1]}

    def total(self, name: str, **labels: str) -> float:
        return sum(self.matching(name, **labels).values())

    def numbers_of(self, waba_id: str) -> dict[Key, float]:
        """Every per-phone-number series of one WABA."""
        return {k: v for k, v in self.matching(waba_id=waba_id).items()
                if any(label == "phone_number_id" for label, _ in k[1])}


def parse_metrics(text: str, prefixes: tuple[str, ...] | None = None) -> Scrape:
    """Parse an exposition; with ``prefixes``, only the lines of metrics starting with one
    of them (parsing a large fleet's every line would stall the shared event loop)."""
    if prefixes is not None:
        text = "\n".join(line for line in text.splitlines() if line.startswith(prefixes))
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, time.time())


@dataclass
class Daemon:
    """A running in-process daemon (``Runtime``) and the simulator it polls."""

    world: World
    scenario: Scenario
    runtime: Runtime
    session: aiohttp.ClientSession
    sim_runner: web.AppRunner | None
    sim_port: int
    business_id: str
    waba_ids: list[str]
    stopped: bool = False

    @property
    def url(self) -> str:
        return self.runtime.url

    async def stop_daemon(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runtime.stop()

    def labels(self, waba_id: str) -> dict[str, str]:
        return {"business_id": self.business_id, "waba_id": waba_id}

    def up(self, scrape: Scrape, waba_id: str) -> float | None:
        return scrape.get(UP, **self.labels(waba_id))

    def last_success(self, scrape: Scrape, waba_id: str) -> float:
        return scrape.get(LAST_SUCCESS, **self.labels(waba_id)) or 0.0

    def failures(self, scrape: Scrape, waba_id: str) -> float:
        return scrape.get(FAILURES, **self.labels(waba_id)) or 0.0

    def polls(self, scrape: Scrape, waba_id: str) -> float:
        return scrape.get(POLLS, **self.labels(waba_id)) or 0.0

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path) as resp:
            return resp.status, await resp.text()

    async def scrape(self, prefixes: tuple[str, ...] | None = None) -> Scrape:
        status, text = await self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return parse_metrics(text, prefixes)

    async def wait_for(self, what: str, predicate: Callable[[Scrape], bool],
                       timeout: float = 10.0, prefixes: tuple[str, ...] | None = None
                       ) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            scrape = await self.scrape(prefixes)
            if predicate(scrape):
                return scrape
            if time.monotonic() > deadline:
                interesting = {k: v for k, v in scrape.samples.items()
                               if k[0] in (UP, FAILURES, POLLS, AUTH_OK, ERRORS, PHONE_NUMBERS)}
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"last scrape: {sorted(interesting.items())}")
            await asyncio.sleep(0.05)

    async def all_up(self, timeout: float = 10.0,
                     prefixes: tuple[str, ...] | None = None) -> Scrape:
        """Every WABA up, and its node read once: the reads at the discovery cadence follow
        the first full poll, so a fault injected now meets the polls alone."""
        return await self.wait_for(
            "every WABA up and its node read",
            lambda s: all(self.up(s, w) == 1 and self.world.request_count("waba", object_id=w)
                          for w in self.waba_ids), timeout, prefixes)

    async def stop_simulator(self) -> None:
        if self.sim_runner is not None:
            await self.sim_runner.cleanup()
            self.sim_runner = None

    async def start_simulator(self) -> None:
        """Start a new simulator on the same port, serving the same World."""
        assert self.sim_runner is None
        self.sim_runner, _ = await start_simulator(self.world, port=self.sim_port)


def daemon_config(sim_url: str, scenario: Scenario, *, graph: Mapping[str, Any] | None = None,
                  schedule: Mapping[str, Any] | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        # budget_share 0: polls every 0.2 s on purpose, faster than a real budget allows.
        "graph": {"base_url": sim_url, "max_retries": 1, "timeout": "1s", "page_limit": 2,
                  "max_throttle_wait": "1s", "budget_share": 0, **(graph or {})},
        "businesses": [{"id": b.id, "wabas": [w.id for w in b.wabas]}
                       for b in scenario.businesses if b.wabas],
        "schedule": {"scan_interval": f"{int(SCAN_INTERVAL * 1000)}ms", "jitter": 0,
                     **(schedule or {})},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": None},
        **(extra or {}),
    }


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    scenario: Scenario,
    *,
    access_token: str = TOKEN,
    app_secret: str | None = None,
    webhook_verify_token: str | None = None,
    graph: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AsyncIterator[Daemon]:
    world = World(scenario)
    sim_runner, sim_url = await start_simulator(world)
    sim_port = int(sim_url.rsplit(":", 1)[1])
    settings = load_settings(write_config(tmp_path, daemon_config(
        sim_url, scenario, graph=graph, schedule=schedule, extra=extra)), environ={})
    business = scenario.businesses[0]
    runtime = Runtime(settings, access_token=access_token, app_secret=app_secret,
                      webhook_verify_token=webhook_verify_token, port=0)
    daemon: Daemon | None = None
    try:
        await runtime.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            daemon = Daemon(world, scenario, runtime, session, sim_runner, sim_port,
                            business.id, [w.id for w in business.wabas])
            yield daemon
    finally:
        world.clear_faults()
        if daemon is not None:
            await daemon.stop_daemon()
        else:
            await runtime.stop()
        runner = daemon.sim_runner if daemon is not None else sim_runner
        if runner is not None:
            await runner.cleanup()


@contextlib.contextmanager
def captured_logs(level: str = "debug") -> Iterator[io.StringIO]:
    """Route every log line (structlog and stdlib) as JSON into a string buffer."""
    stream = io.StringIO()
    configure_logging(level=level, fmt="json", stream=stream)
    try:
        yield stream
    finally:
        configure_logging(level="info", fmt="json", stream=sys.stderr)


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a capture (every line must be JSON)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Prober:
    """Hits /-/healthy and /metrics every ``every`` seconds in the background and keeps what
    it saw: a daemon that stops answering, or answers 5xx, shows up in ``problems``."""

    url: str
    every: float = 0.05
    prefixes: tuple[str, ...] = ("whatsapp_monitor_",)
    problems: list[str] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    rounds: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                for path in ("/-/healthy", "/metrics"):
                    try:
                        async with session.get(self.url + path) as resp:
                            body = await resp.text()
                            if resp.status != 200:
                                self.problems.append(f"{path}: HTTP {resp.status}")
                            elif path == "/metrics":
                                self.scrapes.append(parse_metrics(body, self.prefixes))
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        self.problems.append(f"{path}: {type(exc).__name__}: {exc}")
                self.rounds += 1
                await asyncio.sleep(self.every)

    async def __aenter__(self) -> Prober:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def since(self, at: float) -> list[Scrape]:
        return [s for s in self.scrapes if s.at >= at]
