"""Soak: the real daemon process (``python -m monitor run``) polls every 0.2 s for a bounded
time while faults come and go (seeded), scrapes and webhooks arrive in parallel, and its
memory, threads and open files are sampled from /proc. Nothing may grow without bound, no
request may fail, nothing may crash, and everything must come back once the faults stop.

``SOAK_SECONDS`` (default 24) sets how long the faults cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from monitor.simulator import Fault, World, start_simulator
from monitor.webhooks import sign
from tests.conftest import TOKEN
from tests.faultkit import UP, Scrape, daemon_config, fleet, parse_metrics

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "24"))
APP_SECRET = "soak-app-secret-5e1f0c"
REPO = Path(__file__).resolve().parents[1]
WARM_UP = 0.25  # fraction of the run not used for the growth comparison
FAULTS: list[dict[str, Any]] = [
    {"kind": "http_error", "status": 500},
    {"kind": "http_error", "status": 503, "code": 1},
    {"kind": "timeout", "delay": 1.5},
    {"kind": "hang"},
    {"kind": "reset"},
    {"kind": "malformed_json"},
    {"kind": "html_200"},
    {"kind": "empty_body"},
    {"kind": "data_not_list"},
    {"kind": "cursor_loop"},
    {"kind": "http_error", "status": 401, "code": 190},
    {"kind": "http_error", "status": 403, "code": 200},
    {"kind": "http_error", "status": 400, "code": 100, "subcode": 33},
    {"kind": "http_error", "status": 400, "code": 80008},
    {"kind": "huge_page", "size": 300},
]


@dataclass
class Sample:
    at: float
    rss_kb: int
    threads: int
    fds: int


@dataclass
class Soak:
    pid: int
    url: str = ""
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    webhooks: int = 0
    faults: int = 0


def proc_sample(pid: int) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(values["VmRSS"].split()[0])
    threads = int(values["Threads"])
    return Sample(time.monotonic(), rss_kb, threads, len(os.listdir(f"/proc/{pid}/fd")))


def started_url(log: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """The daemon logs ``started`` with the address it bound (port 0 picks one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"daemon exited early:\n{log.read_text()[-3000:]}"
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "started":
                    return f"http://{event['listen']}"
        time.sleep(0.1)
    raise AssertionError(f"daemon did not start:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def daemon_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WABA_MONITOR_")}
    env.update(WABA_MONITOR_ACCESS_TOKEN=TOKEN, WABA_MONITOR_APP_SECRET=APP_SECRET)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def scraper(soak: Soak, session: aiohttp.ClientSession, rng: random.Random,
                  until: float) -> None:
    paths = [
        ("/metrics", {}),
        ("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0",
                      "Accept-Encoding": "gzip"}),
        ("/metrics", {"Accept-Encoding": "gzip"}),
        ("/", {}),
        ("/-/healthy", {}),
        ("/-/ready", {}),
        ("/api/v1/transitions?since=0&limit=50", {}),
    ]
    while time.monotonic() < until:
        path, headers = rng.choice(paths)
        try:
            async with session.get(soak.url + path, headers=headers,
                                   auto_decompress=False) as resp:
                body = await resp.read()
                if resp.status != 200:
                    soak.problems.append(f"{path}: HTTP {resp.status}")
                elif resp.headers.get("Content-Encoding") == "gzip":
                    gzip.decompress(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            soak.problems.append(f"{path}: {type(exc).__name__}: {exc}")
        soak.requests += 1
        await asyncio.sleep(0.01)


async def webhook_sender(soak: Soak, session: aiohttp.ClientSession, rng: random.Random,
                         wabas: list[str], until: float) -> None:
    while time.monotonic() < until:
        waba = rng.choice(wabas)
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": waba, "time": int(time.time()), "changes": [{
                "field": "account_update",
                "value": {"event": "ACCOUNT_VIOLATION", "nonce": rng.random()}}]}]}).encode()
        try:
            async with session.post(soak.url + "/webhooks/whatsapp", data=body, headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(body, APP_SECRET)}) as resp:
                await resp.read()
                if resp.status != 200:
                    soak.problems.append(f"webhook: HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            soak.problems.append(f"webhook: {type(exc).__name__}: {exc}")
        soak.webhooks += 1
        await asyncio.sleep(0.5)


async def chaos(soak: Soak, world: World, rng: random.Random, wabas: list[str],
                until: float) -> None:
    """Every 0.4 s: clear everything (sometimes), or break a WABA (rarely all of them)."""
    while time.monotonic() < until:
        if rng.random() < 0.25 or len(world.faults()) >= 4:
            world.clear_faults()
        else:
            spec = dict(rng.choice(FAULTS))
            target = "*" if rng.random() < 0.1 else rng.choice(wabas)
            if spec.get("code") == 80008:
                usage = {"type": "whatsapp_business_management", "call_count": 100,
                         "estimated_time_to_regain_access": rng.choice([0, 0.01, 0.03])}
                owner = wabas[0] if target == "*" else target
                spec["headers"] = {"X-Business-Use-Case-Usage": json.dumps({owner: [usage]})}
            world.inject_fault(Fault(target=target, count=rng.choice([-1, 1, 2, 4]), **spec))
            soak.faults += 1
        await asyncio.sleep(0.4)


async def sampler(soak: Soak, until: float) -> None:
    while time.monotonic() < until:
        soak.samples.append(proc_sample(soak.pid))
        await asyncio.sleep(0.25)


async def scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        return parse_metrics(await resp.text(), ("whatsapp_monitor_",))


def all_up(scrape: Scrape, business_id: str, wabas: list[str]) -> bool:
    return all(scrape.get(UP, business_id=business_id, waba_id=w) == 1 for w in wabas)


def thirds(samples: list[Sample], start: float, end: float) -> tuple[list[Sample], list[Sample]]:
    begin = start + WARM_UP * (end - start)
    kept = [s for s in samples if s.at >= begin]
    third = (end - begin) / 3
    first = [s for s in kept if s.at < begin + third]
    last = [s for s in kept if s.at >= end - third]
    return first, last


async def test_soak_under_cycling_faults(tmp_path: Path) -> None:
    scenario = fleet(wabas=6, numbers=15)
    scenario_business = scenario.businesses[0].id
    wabas = [w.id for w in scenario.businesses[0].wabas]
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    config = daemon_config(sim_url, scenario, graph={"page_limit": 10}, extra={
        "state": {"directory": str(tmp_path / "state")},
        "logging": {"level": "info", "format": "json"},
        "webhooks": {"repoll_delay": "100ms"},
    })
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    rng = random.Random(20261125)
    try:
        with daemon_process(config_path, log) as proc:
            soak = Soak(pid=proc.pid)
            soak.url = await asyncio.to_thread(started_url, log, proc)
            timeout = aiohttp.ClientTimeout(total=10)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                deadline = time.monotonic() + 15
                while not all_up(await scrape(session, soak.url), scenario_business, wabas):
                    assert time.monotonic() < deadline, "never came up"
                    await asyncio.sleep(0.1)
                start = time.monotonic()
                until = start + SOAK_SECONDS
                await asyncio.gather(
                    chaos(soak, world, random.Random(rng.random()), wabas, until),
                    sampler(soak, until),
                    webhook_sender(soak, session, random.Random(rng.random()), wabas, until),
                    *(scraper(soak, session, random.Random(rng.random()), until)
                      for _ in range(4)),
                )
                end = time.monotonic()
                world.clear_faults()
                before_recovery = await scrape(session, soak.url)
                deadline = time.monotonic() + 15
                while not all_up(final := await scrape(session, soak.url), scenario_business,
                                 wabas):
                    assert time.monotonic() < deadline, f"no recovery after the faults: " \
                        f"{final.matching(UP)}"
                    await asyncio.sleep(0.1)
            assert proc.poll() is None, "the daemon died"
            soak.samples.append(proc_sample(proc.pid))
            log_text = log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        world.clear_faults()
        await runner.cleanup()

    # It really was a soak: many polls, many failures, many scrapes and webhooks.
    polls = before_recovery.total("whatsapp_monitor_waba_polls_total")
    failures = before_recovery.total("whatsapp_monitor_waba_poll_failures_total")
    assert polls >= len(wabas) * SOAK_SECONDS * 2, polls
    assert failures >= 20, failures
    assert soak.faults >= SOAK_SECONDS, soak.faults
    assert soak.requests >= SOAK_SECONDS * 50 and soak.webhooks >= SOAK_SECONDS
    assert soak.problems == [], soak.problems[:20]
    for bad in ("Traceback", "waba_poll_crashed", "Task exception was never retrieved",
                "Unclosed", "state_write_failed"):
        assert bad not in log_text, f"{bad!r} in the daemon log"

    first, last = thirds(soak.samples, start, end)
    assert len(first) >= 5 and len(last) >= 5
    rss_first = max(s.rss_kb for s in first)
    rss_last = max(s.rss_kb for s in last)
    summary = (f"rss first {rss_first} kB last {rss_last} kB; fds {[s.fds for s in last][-5:]}; "
               f"threads {[s.threads for s in last][-5:]}")
    assert rss_last <= rss_first * 1.2 + 4096, summary
    assert max(s.fds for s in last) <= max(s.fds for s in first) + 8, summary
    assert max(s.threads for s in last) <= max(s.threads for s in first) + 2, summary
    assert max(s.fds for s in soak.samples) < 200, summary
    assert max(s.threads for s in soak.samples) < 40, summary
    print(summary, [(round(x.at - start, 1), x.rss_kb, x.fds, x.threads)
                    for x in soak.samples[::8]])
