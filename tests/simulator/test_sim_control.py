"""The ``/_sim/`` control API and the World's mutation methods."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from simtools import get_json

from monitor.simulator import ScenarioError, UnknownObjectError, World

Client = TestClient[Any, Any]
V = "/v23.0"
MAIN_WABA = "200000000000001"
BISTRO_WABA = "200000000000003"
ACME = "100000000000001"
HELIX = "100000000000003"
CAFE = "300000000000002"


async def control(
    client: Client, method: str, path: str, body: Any = None, *, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    resp = await client.request(method, path, data=data)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


async def test_stats_and_reset(demo: Client) -> None:
    await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers")
    await get_json(demo, f"{V}/{CAFE}")
    await get_json(demo, f"{V}/{CAFE}")
    status, stats = await control(demo, "GET", "/_sim/stats")
    assert status == 200
    assert stats == {
        "total": 3,
        "by_endpoint": {"phone_number": 2, "phone_numbers": 1},
        "by_object": {CAFE: 2, MAIN_WABA: 1},
        "batches": 0,
    }
    status, _ = await control(demo, "POST", "/_sim/stats/reset")
    assert status == 200
    _, stats = await control(demo, "GET", "/_sim/stats")
    assert stats["total"] == 0


async def test_patch_number(demo: Client) -> None:
    status, body = await control(
        demo, "PATCH", f"/_sim/numbers/{CAFE}", {"status": "RESTRICTED", "throughput": None}
    )
    assert status == 200
    assert body["status"] == "RESTRICTED"
    assert "throughput" not in body
    _, node, _ = await get_json(demo, f"{V}/{CAFE}", fields="status,throughput")
    assert node == {"status": "RESTRICTED", "id": CAFE}


@pytest.mark.parametrize(
    ("body", "raw", "status"),
    [
        ({"bogus": 1}, None, 400),
        ({"status": 5}, None, 400),
        ({"id": "9"}, None, 400),
        ({"health_status": {"no": 1}}, None, 400),
        ([1, 2], None, 400),
        (None, b"{not json", 400),
        (None, b"\xff\xfe", 400),
        (None, b"[" * 100_000, 400),
    ],
)
async def test_patch_number_bad_input(
    demo: Client, body: Any, raw: bytes | None, status: int
) -> None:
    got, error = await control(demo, "PATCH", f"/_sim/numbers/{CAFE}", body, raw=raw)
    assert got == status
    assert error["error"]["message"]


async def test_patch_unknown_number_is_404(demo: Client) -> None:
    status, error = await control(demo, "PATCH", "/_sim/numbers/42", {"status": "X"})
    assert status == 404
    assert "42" in error["error"]["message"]


async def test_add_number(demo: Client, demo_world: World) -> None:
    status, body = await control(
        demo,
        "POST",
        f"/_sim/wabas/{BISTRO_WABA}/numbers",
        {"id": "300000000000099", "status": "CONNECTED", "platform_type": "CLOUD_API"},
    )
    assert status == 201
    assert body == {"id": "300000000000099", "status": "CONNECTED", "platform_type": "CLOUD_API"}
    status, body = await control(
        demo,
        "POST",
        f"/_sim/wabas/{BISTRO_WABA}/numbers",
        {"id": 300000000000098, "fields": {"status": "PENDING", "throughput": "STANDARD"}},
    )
    assert status == 201
    assert body["throughput"] == {"level": "STANDARD"}
    _, listed, _ = await get_json(demo, f"{V}/{BISTRO_WABA}/phone_numbers", fields="status")
    assert [d["id"] for d in listed["data"]][-2:] == ["300000000000099", "300000000000098"]
    assert demo_world.number_waba("300000000000099") == BISTRO_WABA


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": CAFE}, 400),  # id in use
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": ACME}, 400),  # id of a business
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"status": "X"}, 400),  # no id
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": "abc"}, 400),
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": "7", "fields": [1]}, 400),
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": "7", "fields": {}, "status": "X"}, 400),
        (f"/_sim/wabas/{BISTRO_WABA}/numbers", {"id": "7", "colour": "red"}, 400),
        ("/_sim/wabas/999/numbers", {"id": "7"}, 404),
        (f"/_sim/wabas/{CAFE}/numbers", {"id": "7"}, 404),
    ],
)
async def test_add_number_bad_input(demo: Client, path: str, body: Any, status: int) -> None:
    got, error = await control(demo, "POST", path, body)
    assert got == status, error
    assert error["error"]["message"]


async def test_delete_number(demo: Client, demo_world: World) -> None:
    status, body = await control(demo, "DELETE", f"/_sim/numbers/{CAFE}")
    assert status == 200
    assert body == {"deleted": CAFE}
    _, listed, _ = await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers")
    assert CAFE not in [d["id"] for d in listed["data"]]
    status, node, _ = await get_json(demo, f"{V}/{CAFE}")
    assert status == 400
    assert node["error"]["error_subcode"] == 33
    assert demo_world.request_count("phone_number", CAFE) == 1  # still counted by kind
    status, _ = await control(demo, "DELETE", f"/_sim/numbers/{CAFE}")
    assert status == 404


async def test_delete_waba(demo: Client, demo_world: World) -> None:
    status, body = await control(demo, "DELETE", f"/_sim/wabas/{BISTRO_WABA}")
    assert status == 200
    assert body == {"deleted": BISTRO_WABA}
    for path in (f"{V}/{BISTRO_WABA}/phone_numbers", f"{V}/{BISTRO_WABA}", f"{V}/300000000000011"):
        status, error, _ = await get_json(demo, path)
        assert status == 400
        assert error["error"]["code"] == 100
        assert error["error"]["error_subcode"] == 33
    _, owned, _ = await get_json(demo, f"{V}/100000000000002/owned_whatsapp_business_accounts")
    assert owned == {"data": []}
    _, clients, _ = await get_json(demo, f"{V}/{HELIX}/client_whatsapp_business_accounts")
    assert clients == {"data": []}
    assert demo_world.request_count("phone_numbers", BISTRO_WABA) == 1
    assert demo_world.request_count("waba", BISTRO_WABA) == 1
    status, _ = await control(demo, "DELETE", f"/_sim/wabas/{BISTRO_WABA}")
    assert status == 404


async def test_faults_via_control(demo: Client) -> None:
    status, body = await control(
        demo, "POST", "/_sim/faults", {"target": CAFE, "kind": "http_error", "code": 4, "count": 2}
    )
    assert status == 201
    assert body["fault"]["kind"] == "http_error"
    _, listed = await control(demo, "GET", "/_sim/faults")
    assert listed["faults"][0]["remaining"] == 2
    status, error, _ = await get_json(demo, f"{V}/{CAFE}")
    assert status == 500
    assert error["error"]["code"] == 4
    assert error["error"]["is_transient"] is True
    status, body = await control(demo, "DELETE", "/_sim/faults")
    assert status == 200
    assert body == {"cleared": 1}
    status, _, _ = await get_json(demo, f"{V}/{CAFE}")
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"target": CAFE},
        {"kind": "reset"},
        {"target": CAFE, "kind": "meteor"},
        {"target": CAFE, "kind": "reset", "count": 0},
        {"target": CAFE, "kind": "reset", "count": "2"},
        {"target": CAFE, "kind": "timeout", "delay": -1},
        {"target": CAFE, "kind": "http_error", "status": 99},
        {"target": CAFE, "kind": "http_error", "headers": {"X": 1}},
        {"target": CAFE, "kind": "http_error", "headers": "x"},
        {"target": 5, "kind": "reset"},
        {"target": CAFE, "kind": "reset", "extra": True},
        ["not", "an", "object"],
    ],
)
async def test_bad_fault_is_400(demo: Client, body: Any) -> None:
    status, error = await control(demo, "POST", "/_sim/faults", body)
    assert status == 400
    assert error["error"]["message"]


async def test_clock_advance(demo: Client, demo_world: World) -> None:
    before = demo_world.clock()
    status, body = await control(demo, "POST", "/_sim/clock/advance", {"seconds": 30})
    assert status == 200
    assert body["clock"] == pytest.approx(before + 30)
    assert body["elapsed"] == pytest.approx(30)
    # The demo timeline's account steps due by now have run (restriction at 5s, ban at 10s).
    _, state = await control(demo, "GET", "/_sim/state")
    account = {w["id"]: w["account"] for w in state["wabas"]}
    assert account["200000000000005"]["restrictions"][0]["restriction_type"] == (
        "RESTRICTED_BIZ_INITIATED_MESSAGING"
    )
    assert account["200000000000006"]["ban"]["waba_ban_state"] == "SCHEDULE_FOR_DISABLE"


@pytest.mark.parametrize(
    "body", [{}, {"seconds": -1}, {"seconds": "x"}, {"seconds": True}, [1], {"seconds": 1e300}]
)
async def test_clock_advance_bad_input(demo: Client, body: Any) -> None:
    status, error = await control(demo, "POST", "/_sim/clock/advance", body)
    assert status == 400
    assert error["error"]["message"]


async def test_clock_advance_rejects_infinity(demo: Client) -> None:
    status, _ = await control(demo, "POST", "/_sim/clock/advance", raw=b'{"seconds": Infinity}')
    assert status == 400


async def test_state_dump(demo: Client) -> None:
    await control(demo, "POST", "/_sim/faults", {"target": "*", "kind": "reset", "count": -1})
    status, state = await control(demo, "GET", "/_sim/state")
    assert status == 200
    assert [b["id"] for b in state["businesses"]][:3] == [ACME, "100000000000002", HELIX]
    main = next(w for w in state["wabas"] if w["id"] == MAIN_WABA)
    assert main["owner_business_id"] == ACME
    assert main["active"] is True
    assert main["allowance_per_window"] == 5000
    assert {n["id"]: n.get("status") for n in main["numbers"]}["300000000000006"] == "OFFLINE"
    assert state["faults"][0]["remaining"] == -1
    assert "demo-token" not in json.dumps(state)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/_sim/nope", 404), ("POST", "/_sim/stats", 405), ("GET", "/_sim", 404)],
)
async def test_control_routing_errors_are_json(
    demo: Client, method: str, path: str, status: int
) -> None:
    got, body = await control(demo, method, path)
    assert got == status
    assert body["error"]["status"] == status


def test_world_mutations_validate(demo_world: World) -> None:
    with pytest.raises(UnknownObjectError):
        demo_world.set_number_fields("1", {"status": "X"})
    with pytest.raises(ScenarioError, match="unknown key 'nope'"):
        demo_world.set_number_fields(CAFE, {"nope": 1})
    with pytest.raises(UnknownObjectError):
        demo_world.remove_waba(CAFE)
    with pytest.raises(ValueError):
        demo_world.advance(-1)
    demo_world.set_number_fields(CAFE, {"health_status": "BLOCKED"})
    values = demo_world.number_values(CAFE, frozenset({"health_status"}))
    assert values["health_status"]["can_send_message"] == "BLOCKED"
