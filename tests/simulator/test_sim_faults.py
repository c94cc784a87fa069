"""Each fault kind, targeting rules and hit counting."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from simtools import AUTH, get_json

from monitor.simulator import Fault, World

Client = TestClient[Any, Any]
V = "/v23.0"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"
CAFE = "300000000000002"
EDGE = f"{V}/{MAIN_WABA}/phone_numbers"


async def test_http_error_default(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "http_error"))
    status, body, headers = await get_json(demo, EDGE)
    assert status == 500
    assert body["error"]["code"] == 2
    assert body["error"]["is_transient"] is True
    assert body["error"]["message"] == "Service temporarily unavailable"
    assert "fbtrace_id" in body["error"]
    assert "X-App-Usage" in headers
    assert MAIN_WABA in json.loads(headers["X-Business-Use-Case-Usage"])
    status, _, _ = await get_json(demo, EDGE)  # count=1: used up
    assert status == 200
    assert demo_world.faults() == []


async def test_http_error_overrides_and_count(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(
        Fault(
            MAIN_WABA,
            "http_error",
            count=2,
            status=401,
            code=190,
            subcode=463,
            message="Error validating access token: Session has expired",
            headers={"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'},
        )
    )
    for path in (EDGE, f"{V}/{MAIN_WABA}"):  # the WABA node is hit as well as the edge
        status, body, headers = await get_json(demo, path)
        assert status == 401
        assert body["error"]["code"] == 190
        assert body["error"]["error_subcode"] == 463
        assert body["error"]["is_transient"] is False
        assert headers["WWW-Authenticate"].startswith("OAuth")
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200


async def test_fault_until_cleared_and_wildcard(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault("*", "http_error", count=-1, status=403, code=200))
    for path in (EDGE, f"{V}/{CAFE}", f"{V}/100000000000001"):
        for _ in range(2):
            status, body, _ = await get_json(demo, path)
            assert status == 403
            assert body["error"]["code"] == 200
    demo_world.clear_faults()
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200


async def test_number_target_hits_only_the_number_node(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(CAFE, "http_error"))
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200
    status, _, _ = await get_json(demo, f"{V}/{CAFE}")
    assert status == 500


async def test_faults_are_counted_but_use_no_budget(small: Client, small_world: World) -> None:
    small_world.inject_fault(Fault("22", "http_error", count=10))
    for _ in range(10):
        status, _, _ = await get_json(small, f"{V}/22/phone_numbers")
        assert status == 500
    assert small_world.request_count("phone_numbers", "22") == 10
    status, _, _ = await get_json(small, f"{V}/22/phone_numbers")
    assert status == 200  # the 3/h budget was not consumed by the faulted calls


async def test_timeout_delays_then_answers(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(CAFE, "timeout", delay=0.3))
    started = time.monotonic()
    status, body, _ = await get_json(demo, f"{V}/{CAFE}")
    assert time.monotonic() - started >= 0.3
    assert status == 200
    assert body["id"] == CAFE


async def test_timeout_trips_client_timeout(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(CAFE, "timeout"))  # default 30 s
    with pytest.raises(asyncio.TimeoutError):
        await demo.get(f"{V}/{CAFE}", headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.2))


async def test_hang_never_answers(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "hang"))
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await demo.get(EDGE, headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.3))
    assert time.monotonic() - started < 2
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200


async def test_reset_drops_the_connection(demo: Client, demo_world: World) -> None:
    # TestClient disables aiohttp's automatic single retry of idempotent requests after a
    # dropped connection; a plain ClientSession would retry once (use count=2 there).
    demo_world.inject_fault(Fault(MAIN_WABA, "reset"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with demo.session.get(demo.make_url(EDGE), headers=AUTH) as resp:
            await resp.read()
    assert demo_world.request_count("phone_numbers", MAIN_WABA) == 1
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200


async def test_malformed_json(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "malformed_json"))
    resp = await demo.get(EDGE, headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    text = await resp.text()
    assert text == '{"data": [{"id": "1'
    with pytest.raises(ValueError):
        json.loads(text)


async def test_html_200(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "html_200"))
    resp = await demo.get(EDGE, headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert await resp.text() == "<html><body>Sorry, something went wrong.</body></html>"


async def test_empty_body(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "empty_body"))
    resp = await demo.get(EDGE, headers=AUTH)
    assert resp.status == 200
    assert await resp.read() == b""


async def test_data_not_list_only_on_edges(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "data_not_list"))
    status, body, _ = await get_json(demo, f"{V}/{MAIN_WABA}")  # node call: not consumed
    assert status == 200
    assert body["id"] == MAIN_WABA
    status, body, _ = await get_json(demo, EDGE)
    assert status == 200
    assert body == {"data": {"oops": 1}}


async def test_cursor_loop_points_back_at_the_used_cursor(demo: Client, demo_world: World) -> None:
    edge = f"{V}/{FLEET_WABA}/phone_numbers"
    _, first, _ = await get_json(demo, edge, limit="50")
    cursor = first["paging"]["cursors"]["after"]
    demo_world.inject_fault(Fault(FLEET_WABA, "cursor_loop", count=-1))
    _, looped, _ = await get_json(demo, edge, limit="50", after=cursor)
    assert looped["data"][0]["id"] == "310000000000051"  # the page itself is served normally
    assert looped["paging"]["cursors"]["after"] == cursor
    assert parse_qs(urlsplit(looped["paging"]["next"]).query)["after"] == [cursor]
    # Following it yields the same page again, forever.
    _, again, _ = await get_json(demo, edge, limit="50", after=cursor)
    assert again["data"] == looped["data"]
    # On the first page, ``next`` leads back to the first page.
    _, page1, _ = await get_json(demo, edge, limit="50")
    after = page1["paging"]["cursors"]["after"]
    _, page1_again, _ = await get_json(demo, edge, limit="50", after=after)
    assert page1_again["data"] == page1["data"]


async def test_cursor_loop_even_on_last_page(small: Client, small_world: World) -> None:
    small_world.inject_fault(Fault("21", "cursor_loop"))
    _, body, _ = await get_json(small, f"{V}/21/phone_numbers")
    assert len(body["data"]) == 2
    assert "next" in body["paging"]


async def test_huge_page(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "huge_page"))
    _, body, _ = await get_json(demo, EDGE, fields="id,status,health_status", limit="10")
    assert len(body["data"]) == 5000
    assert len({d["id"] for d in body["data"]}) == 5000
    assert "next" not in body["paging"]
    assert all("status" in d and "health_status" in d for d in body["data"])
    demo_world.inject_fault(Fault(MAIN_WABA, "huge_page", size=7))
    _, body, _ = await get_json(demo, EDGE)
    assert len(body["data"]) == 7
    assert set(body["data"][0]) == {
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
        "code_verification_status",
    }


async def test_first_matching_fault_wins(demo: Client, demo_world: World) -> None:
    demo_world.inject_fault(Fault(MAIN_WABA, "http_error", status=502))
    demo_world.inject_fault(Fault("*", "http_error", status=503))
    status, _, _ = await get_json(demo, EDGE)
    assert status == 502
    status, _, _ = await get_json(demo, EDGE)
    assert status == 503
    status, _, _ = await get_json(demo, EDGE)
    assert status == 200
