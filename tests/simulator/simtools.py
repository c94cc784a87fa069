"""Helpers shared by the simulator tests (imported by module name, not via conftest)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from monitor.simulator import World, builtin_scenario, scenario_from_yaml

T0 = 1_800_000_000.0
AUTH = {"Authorization": "Bearer demo-token"}


class FakeTime:
    """A wall clock that only moves when told, so budgets and timelines are deterministic."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make_world(yaml_text: str | None = None) -> World:
    scenario = builtin_scenario() if yaml_text is None else scenario_from_yaml(yaml_text)
    return World(scenario, time_source=FakeTime())


SMALL = """
budget: {default_per_hour: 3, active_per_hour: 5}
businesses:
  - id: "11"
    name: Small Co
    verification_status: verified
    messaging_limit: TIER_2K
    wabas:
      - id: "21"
        name: Active WABA
        numbers:
          - {id: "31", display_phone_number: "+1 555-000-0001", verified_name: One,
             status: CONNECTED, quality_rating: GREEN, platform_type: CLOUD_API,
             throughput: {level: HIGH}}
          - {id: "32", display_phone_number: "+1 555-000-0002", verified_name: Two,
             status: PENDING, platform_type: NOT_APPLICABLE}
      - id: "22"
        name: Idle WABA
        numbers:
          - {id: "33", display_phone_number: "+1 555-000-0003", status: PENDING,
             platform_type: NOT_APPLICABLE}
      - id: "23"
        name: Empty WABA
"""


async def get_json(
    client: TestClient[Any, Any], path: str, *, headers: dict[str, str] | None = None, **params: Any
) -> tuple[int, Any, Any]:
    """GET with the demo token; returns status, decoded JSON body and headers."""
    resp = await client.get(path, params=params, headers=AUTH if headers is None else headers)
    return resp.status, await resp.json(content_type=None), resp.headers
