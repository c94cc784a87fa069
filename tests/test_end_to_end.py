"""The whole daemon against the simulator: demo scenario, CLI commands, secrets, shutdown."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.logs import configure_logging, register_secret
from monitor.runtime import Runtime
from monitor.simulator import Fault, World, builtin_scenario, start_simulator
from tests.conftest import write_config

DEMO_TOKEN = "demo-token"
PER_NUMBER_FAMILIES = {
    "status": "whatsapp_phone_number_status",
    "quality_rating": "whatsapp_phone_number_quality_rating",
    "name_status": "whatsapp_phone_number_name_status",
    "throughput": "whatsapp_phone_number_throughput_level",
    "platform_type": "whatsapp_phone_number_registered",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s")


def demo_config(tmp_path: Path, sim_url: str, **graph: object) -> Path:
    scenario = builtin_scenario("demo")
    return write_config(tmp_path, {
        "graph": {"base_url": sim_url, "max_retries": 1, "timeout": "3s", **graph},
        "businesses": [{"id": b.id} for b in scenario.businesses],
        "schedule": {"scan_interval": "1s", "jitter": 0},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": str(tmp_path / "state")},
    })


async def test_demo_scenario_exports_every_family_for_every_number(tmp_path: Path) -> None:
    from monitor.config import load_settings

    scenario = builtin_scenario("demo")
    runner, sim_url = await start_simulator(World(scenario))
    try:
        settings = load_settings(demo_config(tmp_path, sim_url), environ={})
        async with Runtime(settings, access_token=DEMO_TOKEN, port=0) as runtime:
            await wait_ready(runtime.url)
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{runtime.url}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
            async with aiohttp.ClientSession() as session, session.get(runtime.url) as resp:
                page = await resp.text()
    finally:
        await runner.cleanup()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "phone_number_id" in sample.labels:
                series.setdefault(sample.name, set()).add(sample.labels["phone_number_id"])
    numbers = list(scenario.numbers())
    assert len(numbers) > 100
    all_ids = {n.id for _, n in numbers}
    for name in ("whatsapp_phone_number_info", "whatsapp_phone_number_connected",
                 "whatsapp_phone_number_status"):
        assert series[name] >= {n.id for _, n in numbers if "status" in n.fields} or \
            name == "whatsapp_phone_number_info"
    assert series["whatsapp_phone_number_info"] == all_ids
    for field, family in PER_NUMBER_FAMILIES.items():
        having = {n.id for _, n in numbers if n.fields.get(field) is not None}
        assert having, field
        assert series[family] == having, family
    for family in ("whatsapp_business_registered_phone_numbers",
                   "whatsapp_business_registered_phone_numbers_cap",
                   "whatsapp_monitor_waba_up",
                   "whatsapp_monitor_waba_last_success_timestamp_seconds",
                   "whatsapp_monitor_graph_requests_total",
                   "whatsapp_monitor_poll_duration_seconds_count",
                   "whatsapp_monitor_build_info"):
        assert f"\n{family}" in text, family
    assert 'status="OFFLINE"} 1' in text
    assert "<h2>Business" in page and "OFFLINE" in page


@pytest.fixture
def simulator_process() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_check_prints_the_table_and_exits_critical(simulator_process: str,
                                                   tmp_path: Path) -> None:
    config = demo_config(tmp_path, simulator_process)
    result = run_cli("check", "--config", str(config),
                     env={"WABA_MONITOR_ACCESS_TOKEN": DEMO_TOKEN})
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert out.splitlines()[0].split()[:3] == ["BUSINESS", "WABA", "NUMBER"]
    assert "OFFLINE" in out and "status OFFLINE" in out
    assert "registration cap reached" in out
    assert out.rstrip().endswith("CRITICAL")

    as_json = run_cli("check", "--config", str(config), "--format", "json",
                      env={"WABA_MONITOR_ACCESS_TOKEN": DEMO_TOKEN})
    assert as_json.returncode == 2
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "CRITICAL"
    numbers = [n for b in doc["businesses"] for w in b["wabas"] for n in w["numbers"]]
    assert len(numbers) == len(list(builtin_scenario("demo").numbers()))


def test_check_exits_3_when_nothing_could_be_polled(simulator_process: str,
                                                   tmp_path: Path) -> None:
    config = demo_config(tmp_path, simulator_process)
    result = run_cli("check", "--config", str(config),
                     env={"WABA_MONITOR_ACCESS_TOKEN": "not-the-token-xyz"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not-the-token-xyz" not in result.stdout + result.stderr


def test_check_exits_0_when_everything_is_healthy(simulator_process: str,
                                                 tmp_path: Path) -> None:
    scenario = builtin_scenario("demo")
    healthy = [
        w.id for b in scenario.businesses for w in b.wabas
        if all(n.fields.get("status") == "CONNECTED"
               and n.fields.get("quality_rating") in (None, "GREEN")
               and n.fields.get("name_status") not in ("DECLINED", "EXPIRED")
               and (n.fields.get("health_status") or {}).get("can_send_message") != "BLOCKED"
               and (n.fields.get("health_status") or {}).get("can_send_message") != "LIMITED"
               for n in w.numbers) and w.numbers
    ]
    assert healthy
    owner = next(b.id for b in scenario.businesses if any(w.id == healthy[0] for w in b.wabas))
    # Listed under the business that owns it: a WABA listed elsewhere counts toward its
    # owner's cap, whatever cap the listing business has.
    config = write_config(tmp_path, {
        "graph": {"base_url": simulator_process},
        "businesses": [{"id": owner, "wabas": healthy[:1], "registration_cap": 1000}],
    })
    result = run_cli("check", "--config", str(config),
                     env={"WABA_MONITOR_ACCESS_TOKEN": DEMO_TOKEN})
    # The timeline may flip the flapping number; only a WABA without it is used here.
    assert result.returncode == 0, result.stdout
    assert result.stdout.rstrip().endswith("OK")


def test_bad_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "graph:\n  api_version: latest\n  bogus: 1\n"
        "businesses:\n  - id: '1'\n  - id: '2'\n    wabas: ['x1']\n"
        "schedule:\n  scan_interval: -5s\n")
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 2
    for path in ("graph.api_version", "graph.bogus", "businesses[1].wabas[0]",
                 "schedule.scan_interval"):
        assert path in result.stderr, path


async def test_token_never_reaches_logs_metrics_or_pages(tmp_path: Path) -> None:
    from monitor.config import load_settings

    token = "EAAG-secret-demo-token-0123456789"
    scenario = builtin_scenario("demo")
    import dataclasses
    scenario = dataclasses.replace(scenario, tokens=(token,))
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    stream = io.StringIO()
    register_secret(token)
    configure_logging(level="debug", fmt="json", stream=stream)
    waba_ids = [w.id for _, w in scenario.wabas()]
    for i, kind in enumerate(["http_error", "malformed_json", "reset", "html_200",
                              "cursor_loop", "data_not_list"]):
        target = waba_ids[i % len(waba_ids)]
        world.inject_fault(Fault(target=target, kind=kind, count=3))  # type: ignore[arg-type]
    world.inject_fault(Fault(target=waba_ids[-1], kind="http_error", status=401, code=190,
                             message=f"Invalid OAuth access token {token}", count=2))
    try:
        settings = load_settings(demo_config(tmp_path, sim_url), environ={})
        async with Runtime(settings, access_token=token, port=0) as runtime:
            await wait_ready(runtime.url)
            await asyncio.sleep(1.5)  # a few more polls, through the faults
            async with aiohttp.ClientSession() as session:
                bodies = []
                for path in ("/metrics", "/", "/-/ready", "/-/healthy", "/nope"):
                    async with session.get(runtime.url + path) as resp:
                        bodies.append(await resp.text())
    finally:
        await runner.cleanup()
        configure_logging(level="info", fmt="json", stream=sys.stderr)
    logs = stream.getvalue()
    assert "waba_polled" in logs and "graph_retry" in logs
    assert token not in logs
    for body in bodies:
        assert token not in body


def test_demo_command_serves_metrics_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url))
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert b"whatsapp_phone_number_status{" in data
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert f"{url}/metrics" in out
        assert "scrape_configs" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
