"""Issue-11 actions through ``POST /_sim/actions`` and the timeline, and their webhooks: the
state polls see changes and the signed payload Meta would send goes out (exact keys and
nesting from account-health facts §2.8, §2.9 and Meta's ``messages`` references)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from simtools import SMALL, T0, get_json, make_world

from monitor.simulator import ScenarioError, World, parse_action
from monitor.simulator import number_webhooks as nw
from monitor.simulator.app import WEBHOOKS_KEY
from monitor.simulator.wiring import NOT_SUBSCRIBED, meta_time
from monitor.webhooks import verify_signature

Client = TestClient[Any, Any]
SECRET = "sim-wiring-secret-91d0"
V = "/v24.0"
APP = "900000000000001"
MAIN_WABA = "200000000000001"
CARE_WABA = "200000000000009"
STEADY = "300000000000001"
STEADY_DIGITS = "15550100001"
NO_PIN = "300000000000009"
RESET = "300000000000010"
MISROUTED = "300000000000036"
CARE = "300000000000035"
PIN = "is_pin_enabled"


@dataclass
class Receiver:
    """Webhook endpoints at ``/hook`` (the app's default) and ``/other`` (an override)."""

    url: str = ""
    other: str = ""
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.path, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def changes(self, path: str = "/hook") -> list[dict[str, Any]]:
        """Each delivery's single change with ``entry.id``, after checking its signature."""
        out = []
        for got_path, headers, body in self.got:
            if got_path != path:
                continue
            assert verify_signature(body, headers["X-Hub-Signature-256"], SECRET)
            assert headers["Content-Type"] == "application/json"
            payload = json.loads(body)
            assert set(payload) == {"object", "entry"}
            assert payload["object"] == "whatsapp_business_account"
            (entry,) = payload["entry"]
            assert set(entry) == {"id", "time", "changes"}
            (change,) = entry["changes"]
            assert set(change) == {"value", "field"}
            out.append({"id": entry["id"], **change})
        return out


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    app.router.add_post("/other", rx.handle)
    server: TestServer = await aiohttp_server(app)
    rx.url = str(server.make_url("/hook"))
    rx.other = str(server.make_url("/other"))
    return rx


async def setup(client_for: Any, receiver: Receiver, world: World | None = None) -> Client:
    client: Client = await client_for(world or make_world())
    resp = await client.post("/_sim/webhooks/target", json={"url": receiver.url,
                                                            "app_secret": SECRET})
    assert resp.status == 200
    return client


async def act(client: Client, action: str, **params: Any) -> dict[str, Any]:
    resp = await client.post("/_sim/actions", json={"action": action, **params})
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    await drain(client)
    return body


async def drain(client: Client) -> None:
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()


async def field_of(client: Client, number: str, name: str) -> Any:
    _, body, _ = await get_json(client, f"{V}/{number}", fields=name)
    return body.get(name)


# --------------------------------------------------------------------------- builders


def test_security_builder_shapes() -> None:
    assert nw.security_event("15550100001", "PIN_RESET_REQUEST", "100090000000001") == {
        "display_phone_number": "15550100001",
        "event": "PIN_RESET_REQUEST",
        "requester": "100090000000001",
    }
    # requester only on reset requests.
    for event in ("PIN_CHANGED", "PIN_REQUEST_SUCCESS", "PIN_RESET_SUCCESS"):
        assert nw.security_event("1", event, "9") == {"display_phone_number": "1", "event": event}
    assert nw.security_event("1", "PIN_RESET_REQUEST") == {
        "display_phone_number": "1",
        "event": "PIN_RESET_REQUEST",
    }


def test_name_update_builder_shape() -> None:
    assert nw.name_update("15550783881", "APPROVED", "Lucky Shrub", "UNKNOWN") == {
        "display_phone_number": "15550783881",
        "decision": "APPROVED",
        "requested_verified_name": "Lucky Shrub",
        "rejection_reason": None,
    }
    rejected = nw.name_update("1", "REJECTED", "Bob", "NAME_INDIVIDUAL_ISSUE")
    assert rejected["rejection_reason"] == "NAME_INDIVIDUAL_ISSUE"
    assert list(rejected) == [
        "display_phone_number",
        "decision",
        "requested_verified_name",
        "rejection_reason",
    ]


def test_messages_builder_shapes() -> None:
    contact, message = nw.inbound_message(7, 1_800_000_000)
    assert contact == {"profile": {"name": "Customer 7"}, "wa_id": "16505550007"}
    assert set(message) == {"from", "id", "timestamp", "type", "text"}
    assert message["from"] == "16505550007" and message["timestamp"] == "1800000000"
    assert message["id"].startswith("wamid.") and message["text"] == {"body": "Hello"}
    status = nw.message_status(8, 1_800_000_000)
    assert set(status) == {"id", "status", "timestamp", "recipient_id", "pricing"}
    assert set(status["pricing"]) == {"billable", "pricing_model", "category", "type"}
    value = nw.messages_value("15550100001", "301", contacts=[contact], messages=[message])
    assert value == {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100001", "phone_number_id": "301"},
        "contacts": [contact],
        "messages": [message],
    }
    only_status = nw.messages_value("1", "2", statuses=[status])
    assert set(only_status) == {"messaging_product", "metadata", "statuses"}
    # The identity change check adds the customer's hash (seed document).
    checked, _ = nw.inbound_message(7, 0, identity_check=True)
    assert checked["identity_key_hash"] == nw.identity_key_hash("16505550007")
    assert "recipient_identity_key_hash" in nw.message_status(8, 0, identity_check=True)
    assert nw.message_id(1) != nw.message_id(2)


def test_traffic_batches() -> None:
    values = nw.traffic_values(
        "1", "2", first_serial=1, count=5, kind="mixed", per_request=2, timestamp=0
    )
    assert len(values) == 3
    assert [len(v.get("messages", [])) + len(v.get("statuses", [])) for v in values] == [2, 2, 1]
    assert "statuses" in values[0] and "messages" in values[0]
    inbound = nw.traffic_values(
        "1", "2", first_serial=1, count=3, kind="messages", per_request=10, timestamp=0
    )
    (only,) = inbound
    assert len(only["messages"]) == len(only["contacts"]) == 3 and "statuses" not in only


# --------------------------------------------------------------------------- PIN and security


async def test_set_pin(client_for: Any, receiver: Receiver) -> None:
    client = await setup(client_for, receiver)
    result = await act(client, "set_pin", number=STEADY, enabled=False)
    assert result == {"action": "set_pin", "webhooks_queued": 1}
    assert await field_of(client, STEADY, PIN) is False
    await act(client, "set_pin", number=STEADY, enabled=False)  # already off: nothing sent
    await act(client, "set_pin", number=STEADY, enabled=True)
    assert await field_of(client, STEADY, PIN) is True
    await act(client, "set_pin", number=STEADY, enabled=False, spelling="sdk")
    assert [(c["id"], c["field"], c["value"]) for c in receiver.changes()] == [
        (MAIN_WABA, "security", {"display_phone_number": STEADY_DIGITS,
                                 "event": "PIN_REQUEST_SUCCESS"}),
        (MAIN_WABA, "security", {"display_phone_number": STEADY_DIGITS, "event": "PIN_CHANGED"}),
        (MAIN_WABA, "security", {"display_phone_number": STEADY_DIGITS,
                                 "event": "PIN_RESET_SUCCESS"}),
    ]


async def test_security_events(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    await act(client, "security_event", number=RESET, event="PIN_RESET_REQUEST")
    assert await field_of(client, RESET, PIN) is True  # a request changes nothing yet
    await act(client, "security_event", number=RESET, event="PIN_REQUEST_SUCCESS", spelling="sdk")
    assert await field_of(client, RESET, PIN) is False
    await act(client, "security_event", number=RESET, event="PIN_CHANGED", requester="5")
    assert await field_of(client, RESET, PIN) is True
    await act(client, "security_event", number=RESET, event="PIN_RESET_SUCCESS")
    assert await field_of(client, RESET, PIN) is False
    await act(client, "security_event", number=RESET, event="SOMETHING_NEW")  # open enum
    values = [c["value"] for c in receiver.changes()]
    assert values == [
        {"display_phone_number": "15550100010", "event": "PIN_RESET_REQUEST",
         "requester": "100090000000001"},
        {"display_phone_number": "15550100010", "event": "PIN_RESET_SUCCESS"},
        {"display_phone_number": "15550100010", "event": "PIN_CHANGED"},
        {"display_phone_number": "15550100010", "event": "PIN_RESET_SUCCESS"},
        {"display_phone_number": "15550100010", "event": "SOMETHING_NEW"},
    ]
    events = world.state()["wiring"]["security_events"]
    assert [e["event"] for e in events][:2] == ["PIN_RESET_REQUEST", "PIN_RESET_SUCCESS"]


async def test_demo_timeline_requests_a_pin_reset(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    world.advance(21)
    await get_json(client, f"{V}/{MAIN_WABA}")
    await drain(client)
    security = [c for c in receiver.changes() if c["field"] == "security"]
    assert security == [
        {
            "id": MAIN_WABA,
            "field": "security",
            "value": {
                "display_phone_number": "15550100010",
                "event": "PIN_RESET_REQUEST",
                "requester": "100090000000001",
            },
        }
    ]


# --------------------------------------------------------------------------- subscriptions


async def test_unsubscribe_and_subscribe(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    assert (await act(client, "unsubscribe_app", waba=MAIN_WABA))["webhooks_queued"] == 0
    _, body, _ = await get_json(client, f"{V}/{MAIN_WABA}/subscribed_apps")
    assert APP not in [a["whatsapp_business_api_data"]["id"] for a in body["data"]]
    assert not world.app_subscribed(MAIN_WABA)
    # Nothing reaches the app for that WABA now; the attempt is recorded, not sent.
    await act(client, "set_pin", number=STEADY, enabled=False)
    assert receiver.got == []
    sent = world.webhooks_sent()[-1]
    assert (sent["field"], sent["status"], sent["error"]) == ("security", None, NOT_SUBSCRIBED)
    await act(client, "subscribe_app", waba=MAIN_WABA)
    _, body, _ = await get_json(client, f"{V}/{MAIN_WABA}/subscribed_apps")
    assert [a["whatsapp_business_api_data"]["id"] for a in body["data"]][-1] == APP
    await act(client, "set_pin", number=STEADY, enabled=True)
    assert [c["value"]["event"] for c in receiver.changes()] == ["PIN_CHANGED"]
    # Other apps: subscribe a named one, then remove the Meta-internal one.
    await act(client, "subscribe_app", waba=CARE_WABA, app="123", name="Helper")
    await act(client, "unsubscribe_app", waba=CARE_WABA, app="900000000000777")
    _, care, _ = await get_json(client, f"{V}/{CARE_WABA}/subscribed_apps")
    assert care["data"] == [
        {
            "whatsapp_business_api_data": {
                "id": "123",
                "link": "https://www.facebook.com/games/?app_id=123",
                "name": "Helper",
            }
        }
    ]


async def test_demo_care_waba_gets_no_webhooks(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    await act(client, "set_pin", number=CARE, enabled=False)
    assert receiver.got == []
    await act(client, "subscribe_app", waba=CARE_WABA)
    await act(client, "set_pin", number=CARE, enabled=True)
    assert [(c["id"], c["value"]["event"]) for c in receiver.changes()] == [
        (CARE_WABA, "PIN_CHANGED")
    ]


async def test_webhook_overrides(client_for: Any, receiver: Receiver) -> None:
    client = await setup(client_for, receiver)
    wc = "webhook_configuration"
    await act(client, "set_webhook_override", waba=MAIN_WABA, url="https://waba.example/h")
    _, apps, _ = await get_json(client, f"{V}/{MAIN_WABA}/subscribed_apps")
    assert apps["data"][0]["override_callback_uri"] == "https://waba.example/h"
    assert await field_of(client, STEADY, wc) == {
        "whatsapp_business_account": "https://waba.example/h",
        "application": receiver.url,
    }
    await act(client, "set_webhook_override", number=STEADY, url="https://n.example/h")
    assert list(await field_of(client, STEADY, wc)) == [
        "phone_number",
        "whatsapp_business_account",
        "application",
    ]
    await act(client, "set_webhook_override", number=STEADY, url=None)
    await act(client, "set_webhook_override", waba=MAIN_WABA, url=None)
    assert await field_of(client, STEADY, wc) == {"application": receiver.url}
    # POST subscribed_apps without a body removes the WABA override (facts §5).
    await act(client, "subscribe_app", waba=MAIN_WABA, url="https://again.example/")
    await act(client, "subscribe_app", waba=MAIN_WABA)
    assert await field_of(client, STEADY, wc) == {"application": receiver.url}
    # A WABA override on a WABA the app had left subscribes it again.
    await act(client, "unsubscribe_app", waba=CARE_WABA)
    await act(client, "set_webhook_override", waba=CARE_WABA, url="https://c.example/")
    _, care, _ = await get_json(client, f"{V}/{CARE_WABA}/subscribed_apps")
    assert care["data"][-1]["override_callback_uri"] == "https://c.example/"
    assert receiver.got == []  # overrides are silent


async def test_identity_key_check(client_for: Any, receiver: Receiver) -> None:
    client = await setup(client_for, receiver)
    await act(client, "set_identity_key_check", number=STEADY, enabled=True)
    _, body, _ = await get_json(client, f"{V}/{STEADY}/settings")
    assert body["user_identity_change"] == {"enable_identity_key_check": True}
    await act(client, "message_burst", number=STEADY, count=2, kind="mixed", per_request=2)
    (change,) = receiver.changes()
    assert "identity_key_hash" in change["value"]["contacts"][0]
    assert "recipient_identity_key_hash" in change["value"]["statuses"][0]
    await act(client, "set_identity_key_check", number=STEADY, enabled=False)
    _, body, _ = await get_json(client, f"{V}/{STEADY}/settings")
    assert body["user_identity_change"] == {"enable_identity_key_check": False}


# --------------------------------------------------------------------------- names


async def test_name_decisions(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    world.set_number_fields(STEADY, {"new_name_status": "PENDING_REVIEW",
                                     "new_display_name": "Acme Retail Plus"})
    await drain(client)
    receiver.got.clear()
    await act(client, "name_decision", number=STEADY, decision="REJECTED",
              reason="NAME_FORMAT_UNACCEPTABLE")
    assert await field_of(client, STEADY, "new_name_status") == "DECLINED"
    assert await field_of(client, STEADY, "name_status") == "APPROVED"  # the old name stays
    await act(client, "name_decision", number=STEADY, decision="APPROVED",
              applies_to="new_name")
    assert await field_of(client, STEADY, "new_name_status") == "APPROVED"
    assert await field_of(client, STEADY, "verified_name") == "Acme Retail"  # until re-register
    await act(client, "name_decision", number=NO_PIN, decision="REJECTED")
    assert await field_of(client, NO_PIN, "name_status") == "DECLINED"
    await act(client, "name_decision", number=NO_PIN, decision="DEFERRED", name="Acme Help")
    assert await field_of(client, NO_PIN, "name_status") == "PENDING_REVIEW"
    # One webhook per decision: the automatic name_status watcher does not double it.
    assert [c["value"] for c in receiver.changes()] == [
        {"display_phone_number": STEADY_DIGITS, "decision": "REJECTED",
         "requested_verified_name": "Acme Retail Plus",
         "rejection_reason": "NAME_FORMAT_UNACCEPTABLE"},
        {"display_phone_number": STEADY_DIGITS, "decision": "APPROVED",
         "requested_verified_name": "Acme Retail Plus", "rejection_reason": None},
        {"display_phone_number": "15550100009", "decision": "REJECTED",
         "requested_verified_name": "Acme Support", "rejection_reason": "UNKNOWN"},
        {"display_phone_number": "15550100009", "decision": "DEFERRED",
         "requested_verified_name": "Acme Help", "rejection_reason": None},
    ]
    assert {c["field"] for c in receiver.changes()} == {"phone_number_name_update"}


async def test_name_decision_on_a_timeline_number_is_not_doubled(
    client_for: Any, receiver: Receiver
) -> None:
    text = SMALL + """
timeline:
  events:
    - {at: 100s, number: "31", set: {quality_rating: YELLOW}}
"""
    world = make_world(text)
    client = await setup(client_for, receiver, world)
    await act(client, "name_decision", number="31", decision="APPROVED")
    world.advance(1)
    await get_json(client, f"{V}/31")
    await drain(client)
    assert [c["field"] for c in receiver.changes()] == ["phone_number_name_update"]


# --------------------------------------------------------------------------- onboarding


async def test_onboard_number(client_for: Any, receiver: Receiver) -> None:
    world = make_world(SMALL)
    client = await setup(client_for, receiver, world)
    result = await act(client, "onboard_number", waba="21")
    new = result["id"]
    assert result["webhooks_queued"] == 1 and world.kind_of(new) == "phone_number"
    _, body, _ = await get_json(
        client, f"{V}/{new}", fields="status,last_onboarded_time,is_pin_enabled,platform_type"
    )
    assert body == {
        "status": "PENDING",
        "last_onboarded_time": meta_time(T0),
        "is_pin_enabled": False,
        "platform_type": "NOT_APPLICABLE",
        "id": new,
    }
    _, listed, _ = await get_json(client, f"{V}/21/phone_numbers")
    assert new in [row["id"] for row in listed["data"]]
    (change,) = receiver.changes()
    assert change["field"] == "phone_number_quality_update"
    assert change["value"]["event"] == "ONBOARDING"
    named = await act(client, "onboard_number", waba="21", id="3999",
                      display_phone_number="+1 555-777-0001", verified_name="Fresh")
    assert named["id"] == "3999"
    _, fresh, _ = await get_json(client, f"{V}/3999", fields="display_phone_number,verified_name")
    assert fresh["verified_name"] == "Fresh"
    assert receiver.changes()[-1]["value"]["display_phone_number"] == "15557770001"
    resp = await client.post("/_sim/actions", json={"action": "onboard_number", "waba": "21",
                                                    "id": "3999"})
    assert resp.status == 400  # id in use
    resp = await client.post("/_sim/actions", json={"action": "onboard_number", "waba": "99"})
    assert resp.status == 404


# --------------------------------------------------------------------------- message traffic


async def test_message_burst_goes_to_the_default(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    result = await act(client, "message_burst", number=STEADY, count=5)
    assert result == {"action": "message_burst", "webhooks_queued": 5, "route": "application",
                      "requests": 5}
    changes = receiver.changes()
    assert len(changes) == 5
    for change in changes:
        assert change["id"] == MAIN_WABA and change["field"] == "messages"
        value = change["value"]
        assert list(value) == ["messaging_product", "metadata", "contacts", "messages"]
        assert value["metadata"] == {"display_phone_number": STEADY_DIGITS,
                                     "phone_number_id": STEADY}
        (message,) = value["messages"]
        assert message["type"] == "text"
    ids = {c["value"]["messages"][0]["id"] for c in changes}
    assert len(ids) == 5
    records = [r for r in world.webhooks_sent() if r["field"] == "messages"]
    assert [(r["status"], r["route"]) for r in records] == [(200, "application")] * 5
    await act(client, "message_burst", number=STEADY, count=250, kind="statuses",
              per_request=100)
    batched = receiver.changes()[5:]
    assert [len(c["value"]["statuses"]) for c in batched] == [100, 100, 50]
    all_ids = [s["id"] for c in batched for s in c["value"]["statuses"]]
    assert len(set(all_ids)) == 250 and not ids & set(all_ids)


async def test_concurrent_burst(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    result = await act(client, "message_burst", number=STEADY, count=200, concurrency=8,
                       kind="mixed")
    assert result["requests"] == 200
    changes = receiver.changes()
    assert len(changes) == 200
    ids = {item["id"] for c in changes
           for item in c["value"].get("messages", []) + c["value"].get("statuses", [])}
    assert len(ids) == 200
    app = client.app
    assert app is not None
    assert 1 < len(app[WEBHOOKS_KEY]._burst_workers) <= 8
    # Ordered webhooks still go through the one ordered worker afterwards.
    await act(client, "set_pin", number=STEADY, enabled=False)
    assert receiver.changes()[-1]["field"] == "security"


async def test_message_traffic_follows_overrides(client_for: Any, receiver: Receiver) -> None:
    world = make_world()
    client = await setup(client_for, receiver, world)
    await act(client, "set_webhook_override", number=STEADY, url=receiver.other)
    result = await act(client, "message_burst", number=STEADY, count=2)
    assert result["route"] == "phone_number"
    assert receiver.changes("/hook") == [] and len(receiver.changes("/other")) == 2
    # Account and security fields ignore overrides: still the app's default URL.
    await act(client, "set_pin", number=STEADY, enabled=False)
    assert [c["field"] for c in receiver.changes("/hook")] == ["security"]
    await act(client, "set_webhook_override", number=STEADY, url=None)
    await act(client, "set_webhook_override", waba=MAIN_WABA, url=receiver.other)
    assert (await act(client, "message_burst", number=STEADY))["route"] == (
        "whatsapp_business_account"
    )
    assert len(receiver.changes("/other")) == 3
    # The demo's misrouted number sends its traffic to an unreachable host: recorded failed.
    assert (await act(client, "message_burst", number=MISROUTED))["route"] == "phone_number"
    record = world.webhooks_sent()[-1]
    assert record["status"] is None and record["error"] and record["route"] == "phone_number"
    assert "token" not in json.dumps(world.webhooks_sent())  # no URL in the records


async def test_burst_without_target_changes_nothing(demo: Client, demo_world: World) -> None:
    resp = await demo.post("/_sim/actions", json={"action": "message_burst", "number": STEADY,
                                                  "count": 3})
    assert resp.status == 200
    assert (await resp.json())["webhooks_queued"] == 0
    assert demo_world.webhooks_sent() == []


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("set_pin", {"number": "1"}, "missing key 'enabled'"),
        ("set_pin", {"number": "1", "enabled": "yes"}, "true or false"),
        ("set_pin", {"number": "1", "enabled": True, "spelling": "x"}, "meta, sdk"),
        ("security_event", {"number": "1", "event": ""}, "non-empty string"),
        ("set_webhook_override", {"url": None}, "number or waba"),
        ("set_webhook_override", {"url": None, "number": "1", "waba": "2"}, "number or waba"),
        ("set_webhook_override", {"url": "ftp://x", "number": "1"}, "http"),
        ("set_webhook_override", {"url": "https://" + "x" * 200, "number": "1"}, "200"),
        ("message_burst", {"number": "1", "count": 0}, "from 1 to"),
        ("message_burst", {"number": "1", "concurrency": 65}, "from 1 to 64"),
        ("message_burst", {"number": "1", "kind": "calls"}, "messages, statuses, mixed"),
        ("name_decision", {"number": "1", "decision": "APPROVED", "applies_to": "x"}, "name"),
        ("subscribe_app", {"waba": "1", "app": "abc"}, "numeric id"),
        ("onboard_number", {"waba": "1", "status": "X"}, "unknown key 'status'"),
    ],
)
def test_action_validation(kind: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_action(kind, params, "body")


@pytest.mark.parametrize(
    "body",
    [
        {"action": "set_pin", "number": "999", "enabled": True},
        {"action": "unsubscribe_app", "waba": "999"},
        {"action": "message_burst", "number": "999"},
        {"action": "set_webhook_override", "waba": "999", "url": None},
    ],
)
async def test_unknown_targets_are_404(demo: Client, body: dict[str, Any]) -> None:
    resp = await demo.post("/_sim/actions", json=body)
    assert resp.status == 404


def test_timeline_steps_name_known_numbers() -> None:
    text = SMALL + """
timeline:
  events:
    - {at: 1s, action: set_pin, number: "99", enabled: false}
"""
    with pytest.raises(ScenarioError, match="unknown number '99'"):
        make_world(text)
