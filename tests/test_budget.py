"""Rate-limit budget: each WABA paced within its hourly allowance, slowed by the usage header,
waiting out throttles; other WABAs unaffected."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from monitor.budget import pace
from monitor.config import load_settings
from monitor.daemon import Monitor
from monitor.graph.client import GraphClient
from monitor.model import PhoneNumber
from monitor.scheduler import Jobs
from monitor.selfmetrics import SelfMetrics
from monitor.simulator import Scenario
from monitor.store import Store
from tests.conftest import Sim, small_fleet, write_config

UNREGISTERED = (PhoneNumber(id="1", platform_type="NOT_APPLICABLE"),)
REGISTERED = (PhoneNumber(id="1", platform_type="CLOUD_API"),)


@pytest.mark.parametrize(
    ("numbers", "calls", "interval", "expected"),
    [
        (UNREGISTERED, 1, 60, 60.0),  # 60 calls/h, under 100 (half of 200)
        (UNREGISTERED, 3, 60, 108.0),  # 180/h would be too many: 3 calls per 108 s = 100/h
        (REGISTERED, 3, 60, 60.0),  # 5,000/h allowance: the scan interval rules
        (REGISTERED, 100, 60, 144.0),  # 100 pages: 3600*100/2500
    ],
)
def test_pace_keeps_calls_under_the_share(numbers: tuple[PhoneNumber, ...], calls: int,
                                          interval: float, expected: float) -> None:
    paced = pace(numbers=numbers, calls_per_poll=calls, scan_interval=interval, share=0.5,
                 usage_ratio=None, threshold=0.75)
    assert paced.interval == pytest.approx(expected)
    assert paced.calls_per_hour <= paced.allowance_per_hour * 0.5 + 1e-9


def test_usage_above_threshold_slows_down_then_eases() -> None:
    kwargs = {"numbers": REGISTERED, "calls_per_poll": 1, "scan_interval": 60.0, "share": 0.5,
              "threshold": 0.75}
    first = pace(usage_ratio=0.9, **kwargs)  # type: ignore[arg-type]
    second = pace(usage_ratio=0.9, previous_slowdown=first.slowdown, **kwargs)  # type: ignore[arg-type]
    calm = pace(usage_ratio=0.1, previous_slowdown=second.slowdown, **kwargs)  # type: ignore[arg-type]
    assert (first.interval, second.interval, calm.interval) == (120.0, 240.0, 120.0)
    worst = 1.0
    for _ in range(10):
        worst = pace(usage_ratio=1.0, previous_slowdown=worst, **kwargs).slowdown  # type: ignore[arg-type]
    assert worst == 16.0


async def test_simulator_budget_drives_pacing_and_throttles_stay_per_waba(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_client: Callable[..., GraphClient],
    metrics: SelfMetrics, tmp_path: Path
) -> None:
    scenario = small_fleet(numbers_per_waba=2, wabas=2)
    # Tiny budgets: 10 calls an hour per WABA, whatever its numbers.
    scenario = dataclasses.replace(scenario, budget=dataclasses.replace(
        scenario.budget, default_per_hour=10, active_per_hour=10))
    sim = await start_sim(scenario)
    business = scenario.businesses[0]
    busy, calm = (w.id for w in business.wabas)
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim.url, "max_retries": 0, "max_throttle_wait": "1s"},
        "businesses": [{"id": business.id, "wabas": [busy, calm]}],
        "schedule": {"scan_interval": "60s"},
        "state": {"directory": None},
    }), environ={})
    monitor = Monitor(settings, make_client(sim, max_retries=0, max_throttle_wait=1), Store(),
                      metrics)
    jobs = Jobs(monitor)
    jobs.apply()  # runs for the configured WABAs, cadence not started
    busy_target = next(t for t in monitor.targets() if t.waba_id == busy)
    calm_target = next(t for t in monitor.targets() if t.waba_id == calm)
    await monitor.poll_waba(calm_target)
    # Spend the busy WABA's bucket: usage climbs past 75 %, so it slows down poll after poll.
    intervals = []
    for _ in range(10):
        state = await monitor.poll_waba(busy_target)
        assert state is not None and state.up
        intervals.append(state.interval)
    # Usage 10 %, 20 %, ... 100 %: calm up to 70 %, then twice as slow each poll.
    assert intervals == [60.0] * 7 + [120.0, 240.0, 480.0]
    assert jobs.poll_interval(busy) == intervals[-1]
    assert jobs.poll_interval(calm) == 60.0
    text = monitor.store.body().text.decode()
    assert (f'whatsapp_monitor_waba_api_budget_remaining_ratio{{business_id="{business.id}",'
            f'waba_id="{busy}"}} 0') in text
    assert f'whatsapp_monitor_waba_api_allowance_per_hour{{business_id="{business.id}",' in text
    assert (f'whatsapp_monitor_graph_business_use_case_usage_ratio{{object_id="{busy}",'
            f'type="whatsapp_business_management",measure="call_count"}} 1') in text
    # Over budget: throttled (80008); the WABA then waits out the regain time, sending nothing.
    await monitor.poll_waba(busy_target)
    throttled = monitor.store.waba(busy)
    assert throttled is not None and not throttled.up
    sent = sim.world.request_count(object_id=busy)
    assert await monitor.poll_waba(busy_target) is None
    assert sim.world.request_count(object_id=busy) == sent
    # The other WABA is unaffected: polled at once, at its own pace.
    state = await monitor.poll_waba(calm_target)
    assert state is not None and state.up and state.interval == 60.0
    assert monitor.store.waba(calm).slowdown == 1.0  # type: ignore[union-attr]


def test_share_zero_turns_budget_pacing_off() -> None:
    paced = pace(numbers=UNREGISTERED, calls_per_poll=50, scan_interval=1.0, share=0,
                 usage_ratio=None, threshold=0.75)
    assert paced.interval == 1.0
