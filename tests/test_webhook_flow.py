"""Webhooks through the whole daemon: a quality update re-polls, a capability update is a cap
that survives kill -9."""

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

import pytest

from monitor.config import load_settings
from monitor.runtime import Runtime
from monitor.simulator import World, start_simulator
from tests.conftest import TOKEN, small_fleet, write_config
from tests.test_end_to_end import free_port, simulator_process  # noqa: F401 - fixture

APP_SECRET = "webhook-app-secret-0123"


async def test_quality_webhook_triggers_one_debounced_repoll(tmp_path: Path) -> None:
    scenario = small_fleet(numbers_per_waba=3)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    waba = business.wabas[0]
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        "businesses": [{"id": business.id, "wabas": [waba.id]}],
        "schedule": {"scan_interval": "1h"},
        "webhooks": {"repoll_delay": "200ms"},
        "state": {"directory": None},
    }), environ={})
    try:
        async with Runtime(settings, access_token=TOKEN, app_secret=APP_SECRET,
                           port=0) as runtime:
            assert runtime.monitor is not None
            for _ in range(100):
                if runtime.ready:
                    break
                await asyncio.sleep(0.05)
            world.set_webhook_target(runtime.url + "/webhooks/whatsapp", APP_SECRET)
            polls_before = world.request_count("phone_numbers")
            number = waba.numbers[0].id
            # Two changes in a burst: two webhooks, one re-poll.
            world.set_number_fields(number, {"quality_rating": "RED"})
            world.set_number_fields(number, {"status": "FLAGGED"})
            for _ in range(100):
                state = runtime.store.waba(waba.id)
                if state and any(n.status == "FLAGGED" for n in state.numbers):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            sent = world.webhooks_sent()
            registry = runtime.metrics.registry
            applied = registry.get_sample_value(
                "whatsapp_monitor_webhook_events_total",
                {"field": "phone_number_quality_update", "outcome": "applied"})
    finally:
        await runner.cleanup()
    assert len(sent) >= 1 and all(s["status"] == 200 for s in sent)
    assert applied is not None and applied >= 1
    assert world.request_count("phone_numbers") - polls_before == 1
    assert state is not None
    assert {n.id: n.status for n in state.numbers}[number] == "FLAGGED"


def http_json(method: str, url: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - local test URL
        return json.loads(resp.read() or b"null")


def get_text(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - local test URL
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_cap_learned_by_webhook_survives_kill_9(
    simulator_process: str, tmp_path: Path,  # noqa: F811
    daemon_factory: list[subprocess.Popen[str]],
) -> None:
    sim = simulator_process
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, {
        "graph": {"base_url": sim, "timeout": "60s", "max_retries": 0},
        "businesses": [{"id": "100000000000002", "wabas": ["200000000000003"]}],
        "schedule": {"scan_interval": "1h"},
        "server": {"listen": f"127.0.0.1:{port}"},
        "state": {"directory": str(tmp_path / "state")},
    })
    env = {**os.environ, "WABA_MONITOR_ACCESS_TOKEN": "demo-token",
           "WABA_MONITOR_APP_SECRET": APP_SECRET}

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        daemon_factory.append(proc)
        return proc

    first = start()
    wait_until(lambda: get_text(f"{url}/-/ready")[0] == 200)
    http_json("POST", f"{sim}/_sim/webhooks/target",
              {"url": f"{url}/webhooks/whatsapp", "app_secret": APP_SECRET})
    http_json("POST", f"{sim}/_sim/businesses/100000000000002/capability",
              {"max_phone_numbers_per_business": 20})
    cap_line = 'whatsapp_business_registered_phone_numbers_cap{business_id="100000000000002"} 20'
    wait_until(lambda: cap_line in get_text(f"{url}/metrics")[1])
    before = get_text(f"{url}/metrics")[1]
    time.sleep(1.5)  # one state flush interval
    first.send_signal(signal.SIGKILL)
    first.wait()

    # From now on the Graph API never answers: what is served comes from the state file.
    http_json("POST", f"{sim}/_sim/faults", {"target": "*", "kind": "hang", "count": -1})
    start()
    wait_until(lambda: get_text(f"{url}/-/healthy")[0] == 200)
    status, after = get_text(f"{url}/metrics")
    assert status == 200
    assert cap_line in after
    assert ('whatsapp_business_registered_phone_numbers_cap_info{business_id="100000000000002",'
            'source="webhook"} 1') in after
    last_success = [line for line in before.splitlines()
                    if line.startswith("whatsapp_monitor_waba_last_success_timestamp_seconds{")]
    assert last_success and all(line in after for line in last_success)
    numbers = [line for line in before.splitlines()
               if line.startswith("whatsapp_phone_number_status{")]
    assert numbers and all(line in after for line in numbers)
    assert get_text(f"{url}/-/ready")[0] == 503  # the first new poll has not finished
    http_json("DELETE", f"{sim}/_sim/faults")


def test_a_status_change_shown_is_in_the_history_after_kill_9(
    simulator_process: str, tmp_path: Path,  # noqa: F811
    daemon_factory: list[subprocess.Popen[str]],
) -> None:
    """A transition is committed before /metrics shows it: SIGKILL the moment the new status
    is visible, and the restarted daemon still serves it and lists it in the history."""
    sim = simulator_process
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    number = "300000000000011"
    config = write_config(tmp_path, {
        "graph": {"base_url": sim, "timeout": "60s", "max_retries": 0},
        "businesses": [{"id": "100000000000002", "wabas": ["200000000000003"]}],
        "schedule": {"scan_interval": "1s", "jitter": 0},
        "server": {"listen": f"127.0.0.1:{port}"},
        "state": {"directory": str(tmp_path / "state")},
    })
    env = {**os.environ, "WABA_MONITOR_ACCESS_TOKEN": "demo-token"}

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        daemon_factory.append(proc)
        return proc

    first = start()
    wait_until(lambda: get_text(f"{url}/-/ready")[0] == 200)
    http_json("PATCH", f"{sim}/_sim/numbers/{number}", {"status": "DISCONNECTED"})
    line = (f'whatsapp_phone_number_status{{business_id="100000000000002",'
            f'waba_id="200000000000003",phone_number_id="{number}",status="DISCONNECTED"}} 1')
    wait_until(lambda: line in get_text(f"{url}/metrics")[1], timeout=30)
    first.send_signal(signal.SIGKILL)  # at once: no flush interval to hide behind
    first.wait()

    http_json("POST", f"{sim}/_sim/faults", {"target": "*", "kind": "hang", "count": -1})
    try:
        start()
        wait_until(lambda: get_text(f"{url}/-/healthy")[0] == 200)
        assert line in get_text(f"{url}/metrics")[1]
        history = json.loads(get_text(f"{url}/api/v1/transitions?since=0")[1])["data"]
        assert any(t["phone_number_id"] == number and t["field"] == "status"
                   and t["new"] == "DISCONNECTED" for t in history)
    finally:
        http_json("DELETE", f"{sim}/_sim/faults")
