"""The Graph routes over HTTP: paging, fields, auth, errors, budgets, headers, timeline."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from simtools import AUTH, get_json, make_world

from monitor import model
from monitor.simulator import World

Client = TestClient[Any, Any]
V = "/v23.0"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"
BISTRO_WABA = "200000000000003"
ACME = "100000000000001"
HELIX = "100000000000003"
OFFLINE = "300000000000006"
SPARSE = "300000000000007"
CAFE = "300000000000002"
FIELDS = ",".join(model.PHONE_NUMBER_FIELDS)


def assert_graph_error(
    status: int, body: Any, *, http: int, code: int, subcode: int | None = None
) -> dict[str, Any]:
    assert status == http, body
    error = body["error"]
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    assert isinstance(error["message"], str)
    assert isinstance(error["type"], str)
    assert isinstance(error["is_transient"], bool)
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,}", error["fbtrace_id"])
    assert set(error) <= {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}
    result: dict[str, Any] = error
    return result


# --------------------------------------------------------------------------- paging


async def test_default_page_is_25_with_cursors_and_next(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/{FLEET_WABA}/phone_numbers")
    assert status == 200
    assert len(body["data"]) == 25
    paging = body["paging"]
    assert set(paging["cursors"]) == {"before", "after"}
    assert "previous" not in paging
    query = parse_qs(urlsplit(paging["next"]).query)
    assert query["access_token"] == ["demo-token"]
    assert query["limit"] == ["25"]
    assert query["after"] == [paging["cursors"]["after"]]
    assert "fields" not in query


async def test_walk_all_pages_with_max_limit(demo: Client) -> None:
    seen: list[str] = []
    url: str | None = f"{V}/{FLEET_WABA}/phone_numbers?fields=id,status&limit=500"
    pages = 0
    while url is not None:
        resp = await demo.get(url, headers=AUTH)
        assert resp.status == 200
        body = await resp.json()
        pages += 1
        assert len(body["data"]) <= 100
        seen.extend(item["id"] for item in body["data"])
        nxt = body["paging"].get("next")
        if nxt is not None:
            parts = urlsplit(nxt)
            query = parse_qs(parts.query)
            assert query["access_token"] == ["demo-token"]
            assert query["fields"] == ["id,status"]
            assert query["limit"] == ["100"]
            assert str(demo.make_url("")).rstrip("/") == f"{parts.scheme}://{parts.netloc}"
            url = f"{parts.path}?{parts.query}"
        else:
            url = None
    assert pages == 2
    assert len(seen) == 130 == len(set(seen))
    assert seen[0] == "310000000000001"
    assert seen[-1] == "310000000000130"


async def test_last_page_has_previous_but_no_next(demo: Client) -> None:
    _, first, _ = await get_json(demo, f"{V}/{FLEET_WABA}/phone_numbers", limit="100")
    after = first["paging"]["cursors"]["after"]
    status, last, _ = await get_json(
        demo, f"{V}/{FLEET_WABA}/phone_numbers", limit="100", after=after
    )
    assert status == 200
    assert len(last["data"]) == 30
    assert "next" not in last["paging"]
    previous = parse_qs(urlsplit(last["paging"]["previous"]).query)
    assert previous["before"] == [last["paging"]["cursors"]["before"]]
    # Going back with ``before`` returns the first page again.
    _, back, _ = await get_json(
        demo, f"{V}/{FLEET_WABA}/phone_numbers", limit="100", before=previous["before"][0]
    )
    assert [d["id"] for d in back["data"]] == [d["id"] for d in first["data"]]


async def test_small_waba_single_page_has_no_next(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{BISTRO_WABA}/phone_numbers")
    assert len(body["data"]) == 3
    assert "next" not in body["paging"]
    assert "previous" not in body["paging"]


async def test_empty_edge(small: Client) -> None:
    status, body, _ = await get_json(small, f"{V}/23/phone_numbers")
    assert status == 200
    assert body == {"data": []}


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "2.5"])
async def test_bad_limit_is_code_100(demo: Client, limit: str) -> None:
    status, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers", limit=limit)
    assert_graph_error(status, body, http=400, code=100)


async def test_garbage_or_foreign_cursor_is_code_100(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers", after="bm9wZQ")
    assert_graph_error(status, body, http=400, code=100)
    _, other, _ = await get_json(demo, f"{V}/{FLEET_WABA}/phone_numbers")
    cursor = other["paging"]["cursors"]["after"]
    status, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers", after=cursor)
    assert_graph_error(status, body, http=400, code=100)


# --------------------------------------------------------------------------- fields


async def test_number_node_default_fields(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/{CAFE}")
    assert status == 200
    assert body == {
        "id": CAFE,
        "display_phone_number": "+1 555-010-0002",
        "verified_name": 'Ann\'s "Café"',
        "quality_rating": "YELLOW",
        "code_verification_status": "VERIFIED",
    }


async def test_edge_default_fields(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers")
    assert set(body["data"][0]) == {
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
        "code_verification_status",
    }


async def test_only_requested_fields_returned(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/{OFFLINE}", fields="status")
    assert status == 200
    assert body == {"status": "OFFLINE", "id": OFFLINE}


async def test_all_exporter_fields_and_nested_objects(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{CAFE}", fields=FIELDS + ",host_platform,quality_score")
    assert set(body) == set(model.PHONE_NUMBER_FIELDS) | {"host_platform", "quality_score"}
    assert body["throughput"] == {"level": "STANDARD"}
    assert body["quality_score"] == {"score": "YELLOW"}
    assert body["host_platform"] == body["platform_type"] == "CLOUD_API"
    health = body["health_status"]
    assert health["can_send_message"] == "LIMITED"
    types = [e["entity_type"] for e in health["entities"]]
    assert types == ["PHONE_NUMBER", "WABA", "BUSINESS", "APP"]
    assert health["entities"][0]["id"] == CAFE
    assert health["entities"][0]["additional_info"]
    assert health["entities"][1]["id"] == MAIN_WABA
    assert health["entities"][2]["id"] == ACME
    assert model.parse_phone_number(body).health_status == "LIMITED"


async def test_absent_fields_are_absent(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{SPARSE}", fields=FIELDS + ",host_platform")
    for name in ("throughput", "health_status", "platform_type", "host_platform"):
        assert name not in body
    assert body["status"] == "CONNECTED"


async def test_subfield_braces(demo: Client) -> None:
    _, body, _ = await get_json(
        demo, f"{V}/{CAFE}", fields="health_status{can_send_message},throughput{level}"
    )
    assert body["health_status"] == {"can_send_message": "LIMITED"}
    assert body["throughput"] == {"level": "STANDARD"}


@pytest.mark.parametrize("fields", ["status,unified_cert_status", "status,no_such_field"])
async def test_bad_field_fails_whole_request(demo: Client, fields: str) -> None:
    bad = fields.split(",")[1]
    for path in (f"{V}/{MAIN_WABA}/phone_numbers", f"{V}/{CAFE}"):
        status, body, _ = await get_json(demo, path, fields=fields)
        error = assert_graph_error(status, body, http=400, code=100)
        assert error["type"] == "OAuthException"
        assert error["message"] == (
            f"(#100) Tried accessing nonexisting field ({bad}) "
            "on node type (WhatsAppBusinessPhoneNumber)"
        )


async def test_bad_field_names_right_node_type(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}", fields="id,quality_rating")
    assert body["error"]["message"].endswith("on node type (WhatsAppBusinessAccount)")
    _, body, _ = await get_json(demo, f"{V}/{ACME}/owned_whatsapp_business_accounts", fields="x")
    assert body["error"]["message"].endswith("on node type (WhatsAppBusinessAccount)")
    _, body, _ = await get_json(demo, f"{V}/{ACME}", fields="status")
    assert body["error"]["message"].endswith("on node type (Business)")


async def test_fields_syntax_error_is_code_100(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/{CAFE}", fields="status{")
    assert_graph_error(status, body, http=400, code=100)


async def test_edge_omits_fields(client_for: Any) -> None:
    world = make_world(
        """
edge_omits_fields: [health_status, throughput]
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers: [{id: "3", status: CONNECTED, throughput: HIGH, health_status: AVAILABLE}]
"""
    )
    client = await client_for(world)
    _, listed, _ = await get_json(
        client, f"{V}/2/phone_numbers", fields="status,throughput,health_status"
    )
    assert listed["data"] == [{"status": "CONNECTED", "id": "3"}]
    _, node, _ = await get_json(client, f"{V}/3", fields="status,throughput,health_status")
    assert node["throughput"] == {"level": "HIGH"}
    assert node["health_status"]["can_send_message"] == "AVAILABLE"


# --------------------------------------------------------------------------- auth


async def test_missing_token(demo: Client) -> None:
    status, body, headers = await get_json(demo, f"{V}/{CAFE}", headers={})
    error = assert_graph_error(status, body, http=400, code=104)
    assert error["message"] == "An access token is required to request this resource."
    assert error["type"] == "OAuthException"
    assert "X-App-Usage" in headers


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
async def test_wrong_token(demo: Client, headers: dict[str, str]) -> None:
    status, body, _ = await get_json(demo, f"{V}/{CAFE}", headers=headers)
    error = assert_graph_error(status, body, http=401, code=190, subcode=467)
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


async def test_token_in_query_and_appsecret_params_ignored(demo: Client) -> None:
    status, body, _ = await get_json(
        demo,
        f"{V}/{OFFLINE}",
        headers={},
        access_token="demo-token",
        appsecret_proof="ab" * 32,
        appsecret_time="1700000000",
        fields="status",
    )
    assert status == 200
    assert body["status"] == "OFFLINE"
    status, body, _ = await get_json(demo, f"{V}/{OFFLINE}", headers={}, access_token="bad")
    assert_graph_error(status, body, http=401, code=190, subcode=467)


async def test_auth_checked_before_object_lookup(demo: Client) -> None:
    status, body, _ = await get_json(demo, f"{V}/999", headers={"Authorization": "Bearer x"})
    assert_graph_error(status, body, http=401, code=190, subcode=467)


# ------------------------------------------------------------------- unknown objects & paths


@pytest.mark.parametrize(
    "path",
    [
        f"{V}/123456789",
        f"{V}/abc",
        f"{V}/123456789/phone_numbers",
        f"{V}/{CAFE}/phone_numbers",
        f"{V}/{ACME}/phone_numbers",
        f"{V}/{MAIN_WABA}/owned_whatsapp_business_accounts",
        f"{V}/{CAFE}/client_whatsapp_business_accounts",
    ],
)
async def test_unknown_object_or_wrong_type(demo: Client, path: str) -> None:
    status, body, _ = await get_json(demo, path)
    error = assert_graph_error(status, body, http=400, code=100, subcode=33)
    assert error["type"] == "GraphMethodException"
    object_id = path.split("/")[2]
    assert error["message"] == (
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api"
    )


@pytest.mark.parametrize(
    "path", ["/", "/v23/123", "/vX.0/123", f"{V}/{MAIN_WABA}/message_template_drafts", f"{V}/a/b/c"]
)
async def test_unknown_paths_are_graph_404(demo: Client, path: str) -> None:
    status, body, _ = await get_json(demo, path)
    assert_graph_error(status, body, http=404, code=803)


async def test_non_get_is_graph_error(demo: Client) -> None:
    resp = await demo.post(f"{V}/{CAFE}", headers=AUTH, data=b"{")
    body = await resp.json()
    assert resp.status == 405
    assert body["error"]["code"] == 100


# --------------------------------------------------------------------------- other nodes and edges


async def test_waba_node(demo: Client) -> None:
    status, body, headers = await get_json(
        demo,
        f"{V}/{BISTRO_WABA}",
        fields="id,name,owner_business_info{id,name},whatsapp_business_manager_messaging_limit,"
        "business_verification_status,health_status,currency",
    )
    assert status == 200
    assert body["owner_business_info"] == {"id": "100000000000002", "name": "Bistro Nova"}
    assert body["whatsapp_business_manager_messaging_limit"] == "TIER_250"
    assert body["business_verification_status"] == "not_verified"
    assert body["currency"] == "EUR"
    assert [e["entity_type"] for e in body["health_status"]["entities"]] == [
        "WABA",
        "BUSINESS",
        "APP",
    ]
    assert BISTRO_WABA in json.loads(headers["X-Business-Use-Case-Usage"])
    _, default, _ = await get_json(demo, f"{V}/{BISTRO_WABA}")
    assert default == {"id": BISTRO_WABA, "name": "Bistro Nova"}


async def test_business_node(demo: Client) -> None:
    status, body, headers = await get_json(
        demo,
        f"{V}/{ACME}",
        fields="id,name,verification_status,whatsapp_business_manager_messaging_limit",
    )
    assert status == 200
    assert body == {
        "id": ACME,
        "name": "Acme Retail Group",
        "verification_status": "verified",
        "whatsapp_business_manager_messaging_limit": "TIER_10K",
    }
    assert "X-Business-Use-Case-Usage" not in headers
    assert "X-App-Usage" in headers


async def test_owned_and_client_edges(demo: Client) -> None:
    _, owned, _ = await get_json(demo, f"{V}/{ACME}/owned_whatsapp_business_accounts")
    assert owned["data"] == [
        {"id": MAIN_WABA, "name": "Acme Retail - Main"},
        {"id": FLEET_WABA, "name": "Acme Retail - Fleet"},
        {"id": "200000000000005", "name": "Acme Retail - Promotions"},
        {"id": "200000000000006", "name": "Acme Retail - Outlet"},
        {"id": "200000000000007", "name": "Acme Retail - Pilot"},
        {"id": "200000000000008", "name": "Acme Retail - Payments"},
        {"id": "200000000000009", "name": "Acme Retail - Care"},
    ]
    _, client, _ = await get_json(
        demo,
        f"{V}/{HELIX}/client_whatsapp_business_accounts",
        fields="id,name,owner_business_info",
    )
    assert client["data"] == [
        {
            "id": BISTRO_WABA,
            "name": "Bistro Nova",
            "owner_business_info": {"id": "100000000000002", "name": "Bistro Nova"},
        }
    ]
    _, none, _ = await get_json(demo, f"{V}/{ACME}/client_whatsapp_business_accounts")
    assert none == {"data": []}
    _, paged, _ = await get_json(demo, f"{V}/{ACME}/owned_whatsapp_business_accounts", limit="1")
    assert len(paged["data"]) == 1
    assert "next" in paged["paging"]


# --------------------------------------------------------------------------- counting


async def test_request_counting_by_endpoint_and_object(demo: Client, demo_world: World) -> None:
    await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers")
    await get_json(demo, f"{V}/{MAIN_WABA}/phone_numbers", headers={})  # rejected, still counted
    await get_json(demo, f"{V}/{CAFE}")
    await get_json(demo, f"{V}/{MAIN_WABA}")
    await get_json(demo, f"{V}/{ACME}")
    await get_json(demo, f"{V}/{ACME}/owned_whatsapp_business_accounts")
    await get_json(demo, f"{V}/{HELIX}/client_whatsapp_business_accounts")
    await get_json(demo, "/nope")  # not a Graph route: not counted
    assert demo_world.request_count() == 7
    assert demo_world.request_count("phone_numbers") == 2
    assert demo_world.request_count("phone_numbers", MAIN_WABA) == 2
    assert demo_world.request_count(object_id=MAIN_WABA) == 3
    assert demo_world.request_count("phone_number", CAFE) == 1
    assert demo_world.request_count("waba") == 1
    assert demo_world.request_count("business") == 1
    assert demo_world.request_count("owned_whatsapp_business_accounts") == 1
    assert demo_world.request_count("client_whatsapp_business_accounts", HELIX) == 1
    demo_world.reset_counts()
    assert demo_world.request_count() == 0


# --------------------------------------------------------------------------- budget & headers


def buc(headers: Any, waba: str) -> dict[str, Any]:
    data = json.loads(headers["X-Business-Use-Case-Usage"])
    assert list(data) == [waba]
    (entry,) = data[waba]
    assert entry["type"] == "whatsapp_business_management"
    for key in ("call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"):
        assert isinstance(entry[key], int)
    result: dict[str, Any] = entry
    return result


async def test_usage_headers_on_waba_scoped_calls(small: Client) -> None:
    _, _, headers = await get_json(small, f"{V}/21/phone_numbers")
    assert buc(headers, "21")["call_count"] == 20  # 1 of 5 (active WABA)
    app = json.loads(headers["X-App-Usage"])
    assert set(app) == {"call_count", "total_time", "total_cputime"}
    _, _, headers = await get_json(small, f"{V}/31")  # number node → its WABA's bucket
    assert buc(headers, "21")["call_count"] == 40
    _, _, headers = await get_json(small, f"{V}/21")
    assert buc(headers, "21")["call_count"] == 60
    _, _, headers = await get_json(small, f"{V}/22")  # idle WABA: default budget of 3
    assert buc(headers, "22")["call_count"] == 34


async def test_budget_throttles_with_80008_and_recovers(small: Client, small_world: World) -> None:
    for _ in range(3):
        status, _, _ = await get_json(small, f"{V}/22/phone_numbers")
        assert status == 200
        small_world.advance(600)  # calls at t=0, 600, 1200
    small_world.advance(10)
    status, body, headers = await get_json(small, f"{V}/22/phone_numbers")
    error = assert_graph_error(status, body, http=400, code=80008)
    assert error["is_transient"] is True
    assert error["type"] == "OAuthException"
    assert error["message"] == (
        "(#80008) There have been too many calls to this WhatsApp Business account. "
        "Wait a bit and try again."
    )
    entry = buc(headers, "22")
    assert entry["call_count"] >= 100
    # Now t=1810; the oldest call (t=0) leaves the window at t=3600: 1790 s → 30 minutes.
    assert entry["estimated_time_to_regain_access"] == 30
    # The number node shares the WABA's bucket, and throttled calls do not use budget.
    status, body, _ = await get_json(small, f"{V}/33")
    assert_graph_error(status, body, http=400, code=80008)
    assert small_world.request_count(object_id="22") == 4
    small_world.advance(1789)
    status, body, headers = await get_json(small, f"{V}/22/phone_numbers")
    assert status == 400
    assert buc(headers, "22")["estimated_time_to_regain_access"] == 1
    small_world.advance(1)
    status, body, headers = await get_json(small, f"{V}/22/phone_numbers")
    assert status == 200, body
    assert buc(headers, "22")["call_count"] == 100
    assert buc(headers, "22")["estimated_time_to_regain_access"] > 0
    # Other WABAs are unaffected.
    status, _, _ = await get_json(small, f"{V}/21/phone_numbers")
    assert status == 200


async def test_active_waba_gets_larger_budget(small: Client, small_world: World) -> None:
    for _ in range(5):
        status, _, _ = await get_json(small, f"{V}/21/phone_numbers")
        assert status == 200
    status, body, _ = await get_json(small, f"{V}/21/phone_numbers")
    assert_graph_error(status, body, http=400, code=80008)
    # Deregistering its only registered number makes it a 3/h WABA.
    small_world.set_number_fields("31", {"platform_type": "NOT_APPLICABLE"})
    assert small_world.allowance("21") == 3


async def test_app_budget_code_4(client_for: Any) -> None:
    world = make_world('budget: {app_per_hour: 2}\nbusinesses: [{id: "1", wabas: [{id: "2"}]}]\n')
    client = await client_for(world)
    for _ in range(2):
        status, _, headers = await get_json(client, f"{V}/1")
    assert json.loads(headers["X-App-Usage"])["call_count"] == 100
    status, body, _ = await get_json(client, f"{V}/1")
    error = assert_graph_error(status, body, http=400, code=4)
    assert error["is_transient"] is True


# --------------------------------------------------------------------------- timeline


FLAPPING_YAML = """
businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", status: CONNECTED}]}]}]
timeline:
  repeat_every: 90s
  events:
    - {at: 30s, number: "3", set: {status: RESTRICTED}}
    - {at: 60s, number: "3", set: {status: CONNECTED}}
"""


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (0, "CONNECTED"),
        (29.9, "CONNECTED"),
        (30, "RESTRICTED"),
        (59, "RESTRICTED"),
        (60, "CONNECTED"),
        (89, "CONNECTED"),
        (90 + 31, "RESTRICTED"),
        (900 + 65, "CONNECTED"),
    ],
)
async def test_flapping_number_timeline(client_for: Any, at: float, expected: str) -> None:
    world = make_world(FLAPPING_YAML)
    client = await client_for(world)
    world.advance(at)
    _, body, _ = await get_json(client, f"{V}/3", fields="status")
    assert body["status"] == expected
    _, listed, _ = await get_json(client, f"{V}/2/phone_numbers", fields="status")
    assert {d["id"]: d["status"] for d in listed["data"]}["3"] == expected


async def test_timeline_without_repeat_and_removal(client_for: Any) -> None:
    world = make_world(
        """
businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", status: CONNECTED,
  throughput: HIGH}]}]}]
timeline:
  events:
    - {at: 10s, number: "3", set: {status: RESTRICTED}}
    - {at: 10s, number: "3", set: {status: BANNED, throughput: null}}
"""
    )
    client = await client_for(world)
    _, body, _ = await get_json(client, f"{V}/3", fields="status,throughput")
    assert body == {"status": "CONNECTED", "throughput": {"level": "HIGH"}, "id": "3"}
    world.advance(10)
    _, body, _ = await get_json(client, f"{V}/3", fields="status,throughput")
    assert body == {"status": "BANNED", "id": "3"}  # same-instant events apply in file order
    world.advance(10_000)
    _, body, _ = await get_json(client, f"{V}/3", fields="status")
    assert body["status"] == "BANNED"


async def test_latency_option(client_for: Any) -> None:
    import time

    world = make_world(None)
    client = await client_for(world, latency=0.2)
    started = time.monotonic()
    status, _, _ = await get_json(client, f"{V}/{CAFE}")
    assert status == 200
    assert time.monotonic() - started >= 0.2


async def test_every_demo_number_parses_with_the_exporter_model(demo: Client) -> None:
    """The exporter's own parser accepts every listed number, unknown enum values included."""
    parsed: dict[str, model.PhoneNumber] = {}
    for waba in (MAIN_WABA, FLEET_WABA, BISTRO_WABA, "200000000000004"):
        after: str | None = None
        while True:
            params = {"fields": FIELDS, "limit": "100", **({"after": after} if after else {})}
            status, body, _ = await get_json(demo, f"{V}/{waba}/phone_numbers", **params)
            assert status == 200
            for raw in body["data"]:
                parsed[raw["id"]] = model.parse_phone_number(raw)
            if "next" not in body["paging"]:
                break
            after = body["paging"]["cursors"]["after"]
    assert len(parsed) == 147
    assert parsed[OFFLINE].status == "OFFLINE"
    assert parsed[SPARSE].throughput_level is None
    assert parsed[SPARSE].registered is None
    assert parsed["300000000000004"].health_status == "BLOCKED"
    assert parsed["300000000000001"].throughput_level == "HIGH"
    assert parsed["300000000000013"].registered is False
