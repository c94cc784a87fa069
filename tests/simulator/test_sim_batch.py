"""Graph batch requests (``POST /{version}/``): each entry answers as its single GET would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from simtools import AUTH, SMALL, get_json, make_world

from monitor.simulator import Fault, World

Client = TestClient[Any, Any]
ClientFactory = Any
V = "/v23.0"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"
BISTRO_WABA = "200000000000003"
OFFLINE = "300000000000006"
CAFE = "300000000000002"
# The headers a single GET carries that a batch entry must carry too (with equal values).
COMPARED = ("X-App-Usage", "X-Business-Use-Case-Usage", "facebook-api-version", "Content-Type",
            "Retry-After")


async def post_batch(
    client: Client,
    items: list[Any] | str,
    *,
    path: str = f"{V}/",
    headers: dict[str, str] | None = None,
    **form: str,
) -> tuple[int, Any]:
    """POST a batch form the way the daemon does; returns status and decoded JSON."""
    data = {"batch": items if isinstance(items, str) else json.dumps(items), **form}
    resp = await client.post(path, data=data, headers=AUTH if headers is None else headers)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


def get(relative_url: str) -> dict[str, str]:
    return {"method": "GET", "relative_url": relative_url}


def entry_headers(entry: dict[str, Any]) -> dict[str, str]:
    pairs = entry["headers"]
    assert all(set(p) == {"name", "value"} for p in pairs)
    names = [p["name"] for p in pairs]
    assert len(names) == len(set(names))
    return {p["name"]: p["value"] for p in pairs}


def graph_error(entry: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(entry["body"])["error"]
    assert {"message", "type", "code", "is_transient", "fbtrace_id"} <= set(error)
    return error


async def test_a_batch_of_pages_answers_like_the_single_gets(client_for: ClientFactory) -> None:
    single_world, batch_world = make_world(), make_world()
    single: Client = await client_for(single_world)
    batched: Client = await client_for(batch_world)
    for client in (single, batched):  # the same history in both worlds
        _, first, _ = await get_json(client, f"{V}/{FLEET_WABA}/phone_numbers", limit="100")
    after = first["paging"]["cursors"]["after"]
    single_world.reset_counts()
    batch_world.reset_counts()
    urls = [
        f"{FLEET_WABA}/phone_numbers?fields=id%2Cstatus%2Cquality_rating&limit=100",
        f"{FLEET_WABA}/phone_numbers?fields=id%2Cstatus%2Cquality_rating&limit=100&after={after}",
        f"{MAIN_WABA}/phone_numbers?limit=100",
        f"{BISTRO_WABA}/phone_numbers",
        f"{OFFLINE}?fields=status,quality_rating",
        f"{MAIN_WABA}/phone_numbers?fields=nope",  # a field error, in its WABA's bucket
        "999999999999999/phone_numbers",  # an unknown object
    ]
    expected = []
    for url in urls:
        resp = await single.get(f"{V}/{url}", headers=AUTH)
        expected.append((resp.status, await resp.text(), resp.headers))
    status, answers = await post_batch(batched, [get(url) for url in urls])
    assert status == 200
    assert len(answers) == len(urls)
    single_origin = str(single.make_url("")).rstrip("/")
    batch_origin = str(batched.make_url("")).rstrip("/")
    for (code, text, headers), entry in zip(expected, answers, strict=True):
        assert entry["code"] == code
        # Paging links name the server they came from; otherwise the bodies are identical
        # (trace ids aside, which are random in both).
        want = json.loads(text.replace(single_origin, "ORIGIN"))
        got = json.loads(entry["body"].replace(batch_origin, "ORIGIN"))
        if "error" in want:
            want["error"].pop("fbtrace_id")
            got["error"].pop("fbtrace_id")
        assert got == want
        got_headers = entry_headers(entry)
        for name in COMPARED:
            assert got_headers.get(name) == headers.get(name), name
        assert got_headers["x-fb-trace-id"].startswith("A")
    assert answers[0]["code"] == 200 and "next" in json.loads(answers[0]["body"])["paging"]
    assert answers[5]["code"] == 400 and answers[6]["code"] == 400
    # Each entry counted as one call on its own endpoint and object, plus one batch call.
    single_stats, batch_stats = single_world.stats(), batch_world.stats()
    assert batch_stats["by_endpoint"] == single_stats["by_endpoint"]
    assert batch_stats["by_object"] == single_stats["by_object"]
    assert batch_stats["total"] == single_stats["total"] == len(urls)
    assert (batch_stats["batches"], single_stats["batches"]) == (1, 0)


async def test_stats_show_each_batch_call_and_reset_clears_them(
    demo: Client, demo_world: World
) -> None:
    for _ in range(2):
        status, _ = await post_batch(demo, [get(f"{OFFLINE}"), get(f"{CAFE}")])
        assert status == 200
    resp = await demo.get("/_sim/stats")
    stats = await resp.json()
    assert stats["batches"] == 2
    assert stats["by_endpoint"] == {"phone_number": 4}
    assert stats["total"] == 4
    await demo.post("/_sim/stats/reset")
    assert demo_world.stats()["batches"] == 0


async def test_the_path_without_a_trailing_slash_and_the_token_as_a_form_field(
    demo: Client,
) -> None:
    status, answers = await post_batch(
        demo, [get(f"{OFFLINE}?fields=status")], path=V, headers={},
        access_token="demo-token",
    )
    assert status == 200
    assert answers[0]["code"] == 200
    assert json.loads(answers[0]["body"]) == {"status": "OFFLINE", "id": OFFLINE}


async def test_a_leading_version_in_relative_url_is_accepted(demo: Client) -> None:
    urls = [f"{OFFLINE}?fields=status", f"v23.0/{OFFLINE}?fields=status",
            f"/v23.0/{OFFLINE}?fields=status", f"v24.0/{OFFLINE}?fields=status"]
    status, answers = await post_batch(demo, [get(url) for url in urls])
    assert status == 200
    assert [a["code"] for a in answers] == [200] * 4
    assert all(json.loads(a["body"])["status"] == "OFFLINE" for a in answers)
    versions = [entry_headers(a)["facebook-api-version"] for a in answers]
    assert versions == ["v23.0", "v23.0", "v23.0", "v24.0"]


async def test_more_than_50_entries_is_code_100(demo: Client, demo_world: World) -> None:
    status, body = await post_batch(demo, [get(OFFLINE)] * 51)
    assert status == 400
    assert body["error"]["code"] == 100
    assert body["error"]["message"] == (
        "(#100) Too many requests in batch message. Maximum batch size is 50"
    )
    assert demo_world.stats()["total"] == 0
    status, answers = await post_batch(demo, [get(OFFLINE)] * 50)
    assert status == 200
    assert len(answers) == 50
    assert demo_world.request_count("phone_number", OFFLINE) == 50


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "not json",
        '{"method": "GET", "relative_url": "1"}',
        "[1]",
        '[{"method": "GET"}]',
        '[{"method": "GET", "relative_url": 300000000000006}]',
        '[{"method": 1, "relative_url": "300000000000006"}]',
        "[" * 5000 + "]" * 5000,
    ],
)
async def test_a_malformed_batch_is_code_100(
    demo: Client, demo_world: World, raw: str | None
) -> None:
    data = {} if raw is None else {"batch": raw}
    resp = await demo.post(f"{V}/", data=data, headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == 100
    assert body["error"]["type"] == "OAuthException"
    assert demo_world.stats()["total"] == 0
    assert demo_world.stats()["batches"] == 1


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        ({"Authorization": "Bearer wrong-token"}, {}),
        ({}, {"access_token": "wrong-token"}),
        ({"Authorization": "Basic abc"}, {}),
        ({}, {}),
    ],
)
async def test_a_bad_or_missing_top_level_token_fails_like_a_get(
    demo: Client, demo_world: World, headers: dict[str, str], form: dict[str, str]
) -> None:
    status, body = await post_batch(demo, [get(OFFLINE)], headers=headers, **form)
    query = {"access_token": form["access_token"]} if form else {}
    get_status, get_body, _ = await get_json(demo, f"{V}/{OFFLINE}", headers=headers, **query)
    assert (status, body["error"]["code"]) == (get_status, get_body["error"]["code"])
    assert body["error"]["code"] in (104, 190)
    assert body["error"].get("error_subcode") == get_body["error"].get("error_subcode")
    assert demo_world.request_count() == 1  # only the GET reached its endpoint


async def test_an_entry_with_its_own_token_uses_it(demo: Client) -> None:
    urls = [f"{OFFLINE}?fields=status&access_token=wrong-token", f"{OFFLINE}?fields=status"]
    status, answers = await post_batch(demo, [get(url) for url in urls])
    assert status == 200
    assert answers[0]["code"] == 401
    assert graph_error(answers[0])["code"] == 190
    assert answers[1]["code"] == 200


async def test_a_non_get_entry_fails_alone(demo: Client, demo_world: World) -> None:
    items = [{"method": "POST", "relative_url": f"{OFFLINE}"}, get(CAFE),
             {"relative_url": f"{OFFLINE}"}]  # method defaults to GET
    status, answers = await post_batch(demo, items)
    assert status == 200
    assert answers[0]["code"] == 400
    assert graph_error(answers[0])["code"] == 100
    assert [answers[1]["code"], answers[2]["code"]] == [200, 200]
    assert demo_world.request_count("phone_number", OFFLINE) == 1
    assert demo_world.request_count("phone_number", CAFE) == 1


async def test_an_unknown_path_answers_the_404_a_get_would(demo: Client) -> None:
    status, answers = await post_batch(demo, [get(f"{OFFLINE}/nope/deeper"), get(OFFLINE)])
    assert status == 200
    assert answers[0]["code"] == 404
    assert graph_error(answers[0])["code"] == 803
    assert answers[1]["code"] == 200


async def test_a_fault_on_one_waba_shows_in_that_entry_only(
    demo: Client, demo_world: World
) -> None:
    demo_world.inject_fault(
        Fault(MAIN_WABA, "http_error", status=503, code=2, headers={"Retry-After": "7"})
    )
    urls = [f"{MAIN_WABA}/phone_numbers", f"{FLEET_WABA}/phone_numbers",
            f"{BISTRO_WABA}/phone_numbers"]
    status, answers = await post_batch(demo, [get(url) for url in urls])
    assert status == 200
    assert answers[0]["code"] == 503
    error = graph_error(answers[0])
    assert (error["code"], error["is_transient"]) == (2, True)
    headers = entry_headers(answers[0])
    assert headers["Retry-After"] == "7"
    assert MAIN_WABA in json.loads(headers["X-Business-Use-Case-Usage"])
    for entry in answers[1:]:
        assert entry["code"] == 200
        assert "Retry-After" not in entry_headers(entry)
        assert isinstance(json.loads(entry["body"])["data"], list)
    assert demo_world.faults() == []


@pytest.mark.parametrize("kind", ["reset", "hang", "timeout"])
async def test_a_fault_that_would_drop_or_hang_gives_a_null_entry(
    client_for: ClientFactory, kind: str
) -> None:
    world = make_world()
    client: Client = await client_for(world, batch_timeout=0.3)
    world.inject_fault(Fault(MAIN_WABA, kind))  # type: ignore[arg-type]
    urls = [f"{FLEET_WABA}/phone_numbers", f"{MAIN_WABA}/phone_numbers", OFFLINE]
    status, answers = await post_batch(client, [get(url) for url in urls])
    assert status == 200
    assert answers[1] is None
    assert [answers[0]["code"], answers[2]["code"]] == [200, 200]
    assert world.request_count("phone_numbers", MAIN_WABA) == 1  # it ran, then was lost
    # The batch's connection survived: the next call on it is served.
    status, answers = await post_batch(client, [get(f"{MAIN_WABA}/phone_numbers")])
    assert (status, answers[0]["code"]) == (200, 200)


async def test_a_throttled_waba_entry_carries_its_code_and_regain_time(
    client_for: ClientFactory,
) -> None:
    world = make_world(SMALL)
    client: Client = await client_for(world)
    for _ in range(3):  # the idle WABA's 3/h budget
        status, _, _ = await get_json(client, f"{V}/22/phone_numbers")
        assert status == 200
        world.advance(600)
    world.advance(10)
    _, single, single_headers = await get_json(client, f"{V}/22/phone_numbers")
    assert single["error"]["code"] == 80008
    status, answers = await post_batch(client, [get("22/phone_numbers"), get("21/phone_numbers")])
    assert status == 200
    assert answers[0]["code"] == 400
    error = graph_error(answers[0])
    assert (error["code"], error["is_transient"]) == (80008, True)
    usage = json.loads(entry_headers(answers[0])["X-Business-Use-Case-Usage"])
    (bucket,) = usage["22"]
    assert bucket["estimated_time_to_regain_access"] == 30  # oldest call leaves at t=3600
    assert usage == json.loads(single_headers["X-Business-Use-Case-Usage"])
    assert answers[1]["code"] == 200
    assert "21" in json.loads(entry_headers(answers[1])["X-Business-Use-Case-Usage"])


@pytest.mark.parametrize("value", ["false", "0"])
async def test_include_headers_false_drops_the_headers(demo: Client, value: str) -> None:
    items = [get(OFFLINE), {"method": "DELETE", "relative_url": OFFLINE}]
    status, answers = await post_batch(demo, items, include_headers=value)
    assert status == 200
    assert [set(a) for a in answers] == [{"code", "body"}] * 2
    assert json.loads(answers[0]["body"])["id"] == OFFLINE
    status, answers = await post_batch(demo, items, include_headers="true")
    assert [set(a) for a in answers] == [{"code", "headers", "body"}] * 2


async def test_the_batch_response_carries_graph_headers(demo: Client) -> None:
    data = {"batch": json.dumps([get(OFFLINE)])}
    resp = await demo.post(f"{V}/", data=data, headers=AUTH)
    assert resp.status == 200
    assert resp.headers["facebook-api-version"] == "v23.0"
    assert "X-App-Usage" in resp.headers
    assert resp.headers["x-fb-trace-id"].startswith("A")


async def test_an_empty_batch_is_an_empty_answer(demo: Client, demo_world: World) -> None:
    status, answers = await post_batch(demo, [])
    assert (status, answers) == (200, [])
    assert demo_world.stats()["total"] == 0
