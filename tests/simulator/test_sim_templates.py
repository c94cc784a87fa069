"""Message templates in the simulator (issue 12): the listing edge, the three template
webhooks with Meta's shapes (facts §2.10-§2.12), the actions and the pause ladder (§4.3)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from simtools import AUTH, T0, FakeTime, get_json, make_world

from monitor.simulator import ScenarioError, World, generate_scenario, scenario_from_yaml
from monitor.simulator import templates as tp
from monitor.simulator.actions import Action, parse_action
from monitor.simulator.app import WEBHOOKS_KEY
from monitor.webhooks import verify_signature

Client = TestClient[Any, Any]
Factory = Callable[..., Awaitable[Client]]
SECRET = "sim-template-secret-9a1f"
V = "/v24.0"
V23 = "/v23.0"
WABA = "21"

# 30 templates on WABA 21 (one of every status, quality and an old category), none on 22.
STATUSES = [*tp.STATUSES]
TEMPLATES = "\n".join(
    f'          - {{id: "{4000 + i}", name: t{i:02d}, status: {STATUSES[i % len(STATUSES)]}, '
    f"quality_score: {tp.QUALITY_SCORES[i % 4]}, category: {tp.CATEGORIES[i % 3]}}}"
    for i in range(30)
)
YAML = f"""
budget: {{default_per_hour: 100}}
businesses:
  - id: "11"
    verification_status: verified
    wabas:
      - id: "21"
        templates:
{TEMPLATES}
          - {{id: "5000", name: old_one, language: pt_BR, category: MARKETING,
              previous_category: TRANSACTIONAL, rejected_reason: PROMOTIONAL, status: REJECTED,
              quality_score: {{score: RED, date: 1764000000, reasons: [BLOCKED_BY_USERS]}}}}
      - id: "22"
  - id: "12"
    wabas:
      - id: "23"
        templates:
          - {{id: "6000", name: hello}}
"""


def world() -> World:
    return World(scenario_from_yaml(YAML), time_source=FakeTime())


# --------------------------------------------------------------------------- scenario


def test_scenario_templates_defaults_and_open_enums() -> None:
    scenario = scenario_from_yaml(YAML)
    (_, first), *_ = scenario.wabas()
    ids = [template_id for template_id, _ in first.templates]
    assert ids[:2] == ["4000", "4001"] and ids[-1] == "5000"
    (_, hello), *_ = list(scenario.wabas())[2][1].templates
    assert dict(hello) == {
        "name": "hello",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "quality_score": {"score": "UNKNOWN"},
        "rejected_reason": "NONE",
    }
    odd = scenario_from_yaml(
        'businesses: [{id: "1", wabas: [{id: "2", templates: [{id: "3", name: x, '
        "status: SOMETHING_NEW, category: FUTURE, quality_score: PURPLE}]}]}]"
    )
    (_, w), *_ = odd.wabas()
    assert w.templates[0][1]["status"] == "SOMETHING_NEW"


@pytest.mark.parametrize(
    ("templates", "message"),
    [
        ("[{name: x}]", "missing key 'id'"),
        ("[{id: '3'}]", "missing key 'name'"),
        ("[{id: '3', name: x, colour: red}]", "unknown key 'colour'"),
        ("[{id: 'abc', name: x}]", "numeric"),
        ("[{id: '3', name: x, quality_score: {date: 1}}]", "score"),
        ("[{id: '2', name: x}]", "already used"),
    ],
)
def test_scenario_template_validation(templates: str, message: str) -> None:
    text = f'businesses: [{{id: "1", wabas: [{{id: "2", templates: {templates}}}]}}]'
    with pytest.raises(ScenarioError, match=message):
        scenario_from_yaml(text)


def test_generate_scenario_templates_are_opt_in() -> None:
    plain = generate_scenario(businesses=1, wabas_per_business=2, numbers_per_waba=1)
    assert all(w.templates == () for _, w in plain.wabas())
    rich = generate_scenario(
        businesses=2, wabas_per_business=2, numbers_per_waba=1, templates_per_waba=20
    )
    wabas = [w for _, w in rich.wabas()]
    assert [len(w.templates) for w in wabas] == [20] * 4
    ids = [t for w in wabas for t, _ in w.templates]
    assert len(set(ids)) == 80 and all(t.startswith("4") and len(t) == 16 for t in ids)
    statuses = {f["status"] for w in wabas for _, f in w.templates}
    assert statuses == set(tp.STATUSES)
    again = generate_scenario(
        businesses=2, wabas_per_business=2, numbers_per_waba=1, templates_per_waba=20
    )
    assert again == rich
    with pytest.raises(ScenarioError, match="templates_per_waba"):
        generate_scenario(
            businesses=1, wabas_per_business=1, numbers_per_waba=1, templates_per_waba=-1
        )


# --------------------------------------------------------------------------- the edge

FIELDS = "id,name,language,status,category,quality_score,rejected_reason,previous_category"


async def test_edge_pages_with_cursors_and_fields(client_for: Factory) -> None:
    w = world()
    client = await client_for(w)
    seen: list[dict[str, Any]] = []
    status, body, headers = await get_json(
        client, f"{V}/{WABA}/message_templates", fields=FIELDS, limit="12"
    )
    pages = 1
    while True:
        assert status == 200, body
        seen.extend(body["data"])
        nxt = body["paging"].get("next")
        if nxt is None:
            break
        query = parse_qs(urlparse(nxt).query)
        assert query["fields"] == [FIELDS] and query["limit"] == ["12"]
        status, body, headers = await get_json(
            client,
            f"{V}/{WABA}/message_templates",
            fields=FIELDS,
            limit="12",
            after=query["after"][0],
        )
        pages += 1
    assert pages == 3
    assert [t["id"] for t in seen] == [str(4000 + i) for i in range(30)] + ["5000"]
    assert seen[-1] == {
        "id": "5000",
        "name": "old_one",
        "language": "pt_BR",
        "status": "REJECTED",
        "category": "MARKETING",
        "quality_score": {"score": "RED", "date": 1764000000, "reasons": ["BLOCKED_BY_USERS"]},
        "rejected_reason": "PROMOTIONAL",
        "previous_category": "TRANSACTIONAL",
    }
    assert "previous_category" not in seen[0]  # absent when unset
    assert {t["status"] for t in seen} == set(tp.STATUSES)
    assert {t["quality_score"]["score"] for t in seen} == set(tp.QUALITY_SCORES)
    assert w.request_count("message_templates") == 3
    assert w.request_count("message_templates", WABA) == 3
    usage = json.loads(headers["X-Business-Use-Case-Usage"])
    assert list(usage) == [WABA]
    assert w.state()["wabas"][0]["calls_in_window"] == 3  # the WABA's budget


async def test_edge_defaults_limit_and_subfields(client_for: Factory) -> None:
    client = await client_for(world())
    _, body, _ = await get_json(client, f"{V}/{WABA}/message_templates")
    assert len(body["data"]) == 25
    assert set(body["data"][0]) == {"id", "name", "language", "status", "category"}
    _, body, _ = await get_json(
        client, f"{V}/{WABA}/message_templates", limit="1000", fields="quality_score{score}"
    )
    assert len(body["data"]) == 31  # capped at 100
    assert body["data"][-1] == {"quality_score": {"score": "RED"}, "id": "5000"}
    _, body, _ = await get_json(client, f"{V}/22/message_templates")
    assert body == {"data": []}


async def test_edge_unknown_field_is_error_100(client_for: Factory) -> None:
    client = await client_for(world())
    status, body, _ = await get_json(client, f"{V}/{WABA}/message_templates", fields="id,colour")
    assert status == 400
    assert body["error"]["code"] == 100
    assert body["error"]["message"] == (
        f"(#100) Tried accessing nonexisting field (colour) on node type ({tp.TEMPLATE_NODE})"
    )


async def test_edge_summary(client_for: Factory) -> None:
    client = await client_for(world())
    summary = "total_count,message_template_count,message_template_limit"
    _, body, _ = await get_json(client, f"{V}/{WABA}/message_templates", summary=summary, limit="2")
    assert body["summary"] == {
        "total_count": 31,
        "message_template_count": 31,
        "message_template_limit": 6000,  # verified owner
    }
    assert len(body["data"]) == 2
    _, body, _ = await get_json(client, f"{V}/23/message_templates", summary=summary)
    assert body["summary"]["message_template_limit"] == 250  # unverified owner
    _, body, _ = await get_json(client, f"{V}/22/message_templates", summary="true")
    assert body == {"data": [], "summary": {"total_count": 0}}
    status, body, _ = await get_json(
        client, f"{V}/{WABA}/message_templates", summary="total_count,nope"
    )
    assert (status, body["error"]["code"]) == (400, 100)


async def test_invalid_cursor_is_131059_on_v24_and_100_before(client_for: Factory) -> None:
    client = await client_for(world())
    for cursor in ("garbage", "d3NpbTE6cGhvbmVfbnVtYmVycy8yMTox"):  # junk, another edge's
        status, body, _ = await get_json(client, f"{V}/{WABA}/message_templates", after=cursor)
        assert (status, body["error"]["code"]) == (400, 131059), body
        status, body, _ = await get_json(client, f"/v25.0/{WABA}/message_templates", before=cursor)
        assert (status, body["error"]["code"]) == (400, 131059)
        status, body, _ = await get_json(client, f"{V23}/{WABA}/message_templates", after=cursor)
        assert (status, body["error"]["code"]) == (400, 100)
    status, body, _ = await get_json(client, f"{V}/{WABA}/message_templates", limit="x")
    assert (status, body["error"]["code"]) == (400, 100)  # a bad limit is not a cursor


async def test_edge_not_on_numbers_and_budget_and_faults(client_for: Factory) -> None:
    w = make_world(
        'budget: {default_per_hour: 2}\nbusinesses: [{id: "1", wabas: [{id: "2", '
        'templates: [{id: "3", name: x}]}]}]\n'
    )
    client = await client_for(w)
    for _ in range(2):
        status, _, _ = await get_json(client, f"{V}/2/message_templates")
        assert status == 200
    status, body, _ = await get_json(client, f"{V}/2/message_templates")
    assert (status, body["error"]["code"]) == (400, 80008)
    status, body, _ = await get_json(client, f"{V}/3/message_templates")
    assert (status, body["error"]["code"]) == (400, 100)


async def test_edge_fault_by_edge_name(client_for: Factory) -> None:
    w = world()
    client = await client_for(w)
    resp = await client.post(
        "/_sim/faults",
        json={
            "target": "*",
            "kind": "http_error",
            "status": 500,
            "code": 2,
            "edge": "message_templates",
        },
    )
    assert resp.status in (200, 201), await resp.text()
    status, body, _ = await get_json(client, f"{V}/{WABA}/message_templates")
    assert status >= 400 and body["error"]["code"] == 2
    status, _, _ = await get_json(client, f"{V}/{WABA}/phone_numbers")
    assert status == 200


# --------------------------------------------------------------------------- payload builders


def test_status_update_shape_pause() -> None:
    value = tp.template_status_update(
        "1689556908129832",
        "spring_sale",
        "en_US",
        event="PAUSED",
        category="MARKETING",
        other_info=tp.other_info("FIRST_PAUSE"),
    )
    assert list(value) == [
        "event",
        "message_template_id",
        "message_template_name",
        "message_template_language",
        "reason",
        "message_template_category",
        "other_info",
    ]
    assert value["message_template_id"] == 1689556908129832  # a JSON number
    assert value["message_template_language"] == "en-US"
    assert value["reason"] == "NONE"
    assert set(value["other_info"]) == {"title", "description"}
    assert value["other_info"]["title"] == "FIRST_PAUSE"


def test_status_update_shape_disabled_and_rejected() -> None:
    value = tp.template_status_update(
        "7", "x", "en_US", event="DISABLED", category="UTILITY", disable_date=1_800_000_000
    )
    assert value["disable_info"] == {"disable_date": 1_800_000_000}
    assert "other_info" not in value and "rejection_info" not in value
    value = tp.template_status_update(
        "7",
        "x",
        "en_US",
        event="REJECTED",
        category="UTILITY",
        reason="INVALID_FORMAT",
        rejection_info={"reason": "r", "recommendation": "s"},
    )
    assert value["rejection_info"] == {"reason": "r", "recommendation": "s"}
    deleted = tp.template_status_update(
        "7", "x", "en_US", event="PENDING_DELETION", category="UTILITY", reason=None
    )
    assert deleted["reason"] is None


def test_quality_and_category_shapes() -> None:
    assert tp.template_quality_update("7", "x", "en_US", previous="GREEN", new="RED") == {
        "previous_quality_score": "GREEN",
        "new_quality_score": "RED",
        "message_template_id": 7,
        "message_template_name": "x",
        "message_template_language": "en-US",
    }
    notice = tp.template_category_notice(
        "7", "x", "en_US", current="UTILITY", correct="MARKETING", when=1_800_086_400
    )
    assert notice == {
        "message_template_id": 7,
        "message_template_name": "x",
        "message_template_language": "en-US",
        "new_category": "UTILITY",
        "correct_category": "MARKETING",
        "category_update_timestamp": 1_800_086_400,
    }
    done = tp.template_category_changed("7", "x", "en_US", previous="UTILITY", new="MARKETING")
    assert done == {
        "message_template_id": 7,
        "message_template_name": "x",
        "message_template_language": "en-US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    }


# --------------------------------------------------------------------------- actions


@dataclass
class Receiver:
    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.got:
            assert verify_signature(body, headers["X-Hub-Signature-256"], SECRET)
            payload = json.loads(body)
            assert payload["object"] == "whatsapp_business_account"
            (entry,) = payload["entry"]
            (change,) = entry["changes"]
            out.append({"id": entry["id"], "time": entry["time"], **change})
        return out


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    server: TestServer = await aiohttp_server(app)
    rx.url = str(server.make_url("/hook"))
    return rx


async def targeted(client_for: Factory, w: World, rx: Receiver) -> Client:
    client = await client_for(w)
    resp = await client.post("/_sim/webhooks/target", json={"url": rx.url, "app_secret": SECRET})
    assert resp.status == 200
    return client


async def act(client: Client, action: str, **params: Any) -> dict[str, Any]:
    resp = await client.post("/_sim/actions", json={"action": action, **params})
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    return body


async def read(client: Client, template_id: str, waba: str = WABA) -> dict[str, Any]:
    _, body, _ = await get_json(
        client,
        f"{V}/{waba}/message_templates",
        fields=FIELDS + ",correct_category",
        limit="100",
    )
    return next(t for t in body["data"] if t["id"] == template_id)


async def test_pause_ladder(client_for: Factory, receiver: Receiver) -> None:
    w = world()
    client = await targeted(client_for, w, receiver)
    template = "4000"  # APPROVED
    first = await act(client, "pause_template", template=template)
    assert first["pause"] == 1 and first["paused_until"] == T0 + 3 * 3600
    assert (await read(client, template))["status"] == "PAUSED"
    w.advance(3 * 3600 + 1)  # the 3 h pause ends by itself: UNPAUSE
    assert (await read(client, template))["status"] == "APPROVED"
    second = await act(client, "pause_template", template=template)
    assert second["pause"] == 2 and second["paused_until"] == w.clock() + 6 * 3600
    third = await act(client, "pause_template", template=template)
    assert third["status"] == "DISABLED"
    assert (await read(client, template))["status"] == "DISABLED"
    w.advance(7 * 3600)  # no UNPAUSE for a disabled template
    await get_json(client, f"{V}/{WABA}/message_templates")
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    got = receiver.entries()
    assert [e["id"] for e in got] == [WABA] * 4
    assert {e["field"] for e in got} == {"message_template_status_update"}
    values = [e["value"] for e in got]
    assert [(v["event"], v["other_info"]["title"]) for v in values] == [
        ("PAUSED", "FIRST_PAUSE"),
        ("APPROVED", "UNPAUSE"),
        ("PAUSED", "SECOND_PAUSE"),
        ("DISABLED", "DISABLED"),
    ]
    assert values[3]["disable_info"] == {"disable_date": int(w.clock() - 7 * 3600)}
    assert all(v["message_template_id"] == 4000 for v in values)
    assert all(v["message_template_language"] == "en-US" for v in values)
    assert all("disable_info" not in v for v in values[:3])


async def test_status_quality_category_actions(client_for: Factory, receiver: Receiver) -> None:
    w = world()
    client = await targeted(client_for, w, receiver)
    await act(client, "template_status", template="4002", event="REJECTED", reason="SCAM")
    assert (await read(client, "4002"))["rejected_reason"] == "SCAM"
    await act(client, "template_status", template="4002", event="FLAGGED")
    assert (await read(client, "4002"))["status"] == "REJECTED"  # FLAGGED is an event only
    await act(client, "template_quality", template="4002", score="YELLOW")
    assert (await read(client, "4002"))["quality_score"] == {
        "score": "YELLOW",
        "date": int(T0),
    }
    await act(client, "template_category", template="4002", category="MARKETING", stage="notice")
    row = await read(client, "4002")
    assert row["category"] == "UTILITY" and row["correct_category"] == "MARKETING"
    await act(client, "template_category", template="4002", category="MARKETING")
    row = await read(client, "4002")
    assert row["category"] == "MARKETING" and row["previous_category"] == "UTILITY"
    assert "correct_category" not in row
    got = receiver.entries()
    assert [e["field"] for e in got] == [
        "message_template_status_update",
        "message_template_status_update",
        "message_template_quality_update",
        "template_category_update",
        "template_category_update",
    ]
    assert got[0]["value"]["reason"] == "SCAM"
    assert "other_info" not in got[0]["value"]
    assert got[2]["value"]["previous_quality_score"] == "RED"  # 4002 started RED (index 2)
    assert got[2]["value"]["new_quality_score"] == "YELLOW"
    assert got[3]["value"]["category_update_timestamp"] == int(T0) + 86_400
    assert got[3]["value"]["new_category"] == "UTILITY"
    assert set(got[4]["value"]) == {
        "message_template_id",
        "message_template_name",
        "message_template_language",
        "previous_category",
        "new_category",
    }


async def test_action_validation(client_for: Factory) -> None:
    client = await client_for(world())
    for body, status in (
        ({"action": "pause_template", "template": "99"}, 404),
        ({"action": "pause_template"}, 400),
        ({"action": "template_category", "template": "4000", "category": "X", "stage": "no"}, 400),
        ({"action": "template_quality", "template": "4000"}, 400),
    ):
        resp = await client.post("/_sim/actions", json=body)
        assert resp.status == status, (body, await resp.text())


async def test_demo_templates_and_timeline(client_for: Factory, receiver: Receiver) -> None:
    w = make_world()
    client = await targeted(client_for, w, receiver)
    _, body, _ = await get_json(
        client,
        f"{V}/200000000000001/message_templates",
        fields="id,name,status,quality_score",
        headers=AUTH,
    )
    assert [t["id"] for t in body["data"]] == [f"40000000000000{i}" for i in range(1, 6)]
    w.advance(80)
    assert (await read(client, "400000000000002", "200000000000001"))["status"] == "DISABLED"
    row = await read(client, "400000000000003", "200000000000001")
    assert (row["category"], row["previous_category"]) == ("MARKETING", "UTILITY")
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    titles = [
        e["value"]["other_info"]["title"]
        for e in receiver.entries()
        if e["field"] == "message_template_status_update"
    ]
    assert titles == ["FIRST_PAUSE", "UNPAUSE", "SECOND_PAUSE", "UNPAUSE", "DISABLED"]


def test_state_shows_templates_with_pause_counts() -> None:
    w = world()
    w.run_action(_parse("pause_template", template="4000"))
    waba = next(x for x in w.state()["wabas"] if x["id"] == WABA)
    first = waba["templates"][0]
    assert first["id"] == "4000" and first["status"] == "PAUSED"
    assert (first["pauses"], first["paused_until"]) == (1, T0 + 3 * 3600)
    empty = next(x for x in w.state()["wabas"] if x["id"] == "22")
    assert "templates" not in empty


def _parse(kind: str, **params: Any) -> Action:
    return parse_action(kind, params, "test")


async def test_pacing_pause_is_off_the_ladder(client_for: Factory, receiver: Receiver) -> None:
    w = world()
    client = await targeted(client_for, w, receiver)
    result = await act(client, "pause_template", template="4000", pacing=True)
    assert result["status"] == "PAUSED" and "paused_until" not in result
    w.advance(7 * 3600)  # never unpauses by itself
    assert (await read(client, "4000"))["status"] == "PAUSED"
    first = await act(client, "pause_template", template="4000")
    assert first["pause"] == 1  # the quality ladder has not advanced
    (pacing, _) = [e["value"]["other_info"]["title"] for e in receiver.entries()]
    assert pacing == "RATE_LIMITING_PAUSE"
