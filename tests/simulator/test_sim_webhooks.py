"""The simulator's webhook sender: signatures, automatic sends on changes, control API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from simtools import AUTH, SMALL, get_json, make_world

from monitor.simulator import ScenarioError, World, build_app, scenario_from_yaml, start_simulator
from monitor.simulator.app import WEBHOOKS_KEY
from monitor.simulator.webhooks import (
    PendingWebhook,
    envelope,
    name_decision,
    number_change_webhooks,
    quality_event,
    send_webhook,
    signature,
)
from monitor.webhooks import (
    WebhookConfig,
    add_webhook_routes,
    create_webhook_metrics,
    parse_notification,
    verify_signature,
)
from tests.fakesink import FakeSink

Client = TestClient[Any, Any]
SECRET = "sim-webhook-secret-77a1"
V = "/v23.0"
ACME = "100000000000001"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def change(self) -> dict[str, Any]:
        (entry,) = self.payload["entry"]
        (change,) = entry["changes"]
        return {"waba_id": entry["id"], "time": entry["time"], **change}


@dataclass
class Receiver:
    """A stand-in webhook endpoint: records raw deliveries and answers ``status``."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        async def enough() -> None:
            while len(self.got) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.got


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    server: TestServer = await aiohttp_server(app)
    rx.url = str(server.make_url("/hook"))
    return rx


async def control(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body)
    return resp.status, await resp.json()


async def targeted(
    client_for: Callable[..., Awaitable[Client]], world: World, receiver: Receiver
) -> Client:
    client = await client_for(world)
    status, body = await control(
        client, "POST", "/_sim/webhooks/target", {"url": receiver.url, "app_secret": SECRET}
    )
    assert (status, body) == (200, {"target_set": True})
    return client


async def drain(client: Client) -> None:
    """Wait until every webhook the simulator queued so far has been delivered."""
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()


# --------------------------------------------------------------------------- pure parts


def test_signature_verifies_with_the_exporters_check() -> None:
    body = json.dumps(envelope(MAIN_WABA, "account_update", {"event": "PARTNER_ADDED"}, 5)).encode()
    assert verify_signature(body, signature(body, SECRET), SECRET)
    assert not verify_signature(body, signature(body, SECRET + "x"), SECRET)
    (change,) = parse_notification(body)
    assert (change.waba_id, change.time, change.field) == (MAIN_WABA, 5, "account_update")


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        (("CONNECTED", "GREEN"), ("FLAGGED", "GREEN"), "FLAGGED"),
        (("FLAGGED", "GREEN"), ("CONNECTED", "GREEN"), "UNFLAGGED"),
        (("FLAGGED", "RED"), ("RESTRICTED", "RED"), "DOWNGRADE"),
        (("CONNECTED", "GREEN"), ("BANNED", "GREEN"), "DOWNGRADE"),
        (("PENDING", None), ("CONNECTED", None), "UPGRADE"),
        (("CONNECTED", "GREEN"), ("CONNECTED", "YELLOW"), "FLAGGED"),
        (("CONNECTED", "YELLOW"), ("CONNECTED", "RED"), "FLAGGED"),
        (("CONNECTED", "RED"), ("CONNECTED", "GREEN"), "UNFLAGGED"),
        (("CONNECTED", "GREEN"), ("CONNECTED", "GREEN"), None),
    ],
)
def test_quality_event(old: tuple[Any, Any], new: tuple[Any, Any], event: str | None) -> None:
    assert quality_event(old[0], new[0], old[1], new[1]) == event


def test_number_change_webhooks() -> None:
    old = {"status": "CONNECTED", "quality_rating": "GREEN", "name_status": "PENDING_REVIEW"}
    new = {
        **old,
        "status": "FLAGGED",
        "name_status": "DECLINED",
        "verified_name": "Acme",
        "display_phone_number": "+1 555-010-0005",
        "messaging_limit_tier": "TIER_10K",
    }
    quality, name = number_change_webhooks(MAIN_WABA, old, new)
    assert quality == PendingWebhook(
        "phone_number_quality_update",
        MAIN_WABA,
        {"display_phone_number": "15550100005", "event": "FLAGGED", "current_limit": "TIER_10K"},
    )
    assert name == PendingWebhook(
        "phone_number_name_update",
        MAIN_WABA,
        {
            "display_phone_number": "15550100005",
            "decision": "REJECTED",
            "requested_verified_name": "Acme",
            "rejection_reason": "UNKNOWN",
        },
    )
    assert number_change_webhooks(MAIN_WABA, old, old) == []
    assert name_decision("APPROVED") == "APPROVED"
    assert name_decision("SOMETHING") == "SOMETHING"


async def test_send_webhook_posts_signed_json(receiver: Receiver) -> None:
    payload = envelope(
        MAIN_WABA,
        "business_capability_update",
        {"max_phone_numbers_per_business": 20},
        1_800_000_000,
    )
    async with aiohttp.ClientSession() as session:
        assert await send_webhook(session, receiver.url, SECRET, payload) == 200
    (got,) = receiver.got
    assert got.headers["Content-Type"] == "application/json"
    assert verify_signature(got.body, got.headers["X-Hub-Signature-256"], SECRET)
    assert got.payload == payload


# --------------------------------------------------------------------------- automatic sends


async def test_status_change_by_patch_delivers_quality_update(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    client = await targeted(client_for, demo_world, receiver)
    status, _ = await control(
        client, "PATCH", "/_sim/numbers/300000000000001", {"status": "FLAGGED"}
    )
    assert status == 200
    (got,) = await receiver.wait()
    assert verify_signature(got.body, got.headers["X-Hub-Signature-256"], SECRET)
    change = got.change
    assert change["field"] == "phone_number_quality_update"
    assert change["waba_id"] == MAIN_WABA
    assert change["value"]["display_phone_number"] == "15550100001"
    assert change["value"]["event"] == "FLAGGED"
    assert change["value"]["current_limit"] == "TIER_10K"
    assert change["time"] == int(demo_world.clock())
    await drain(client)
    _, sent = await control(client, "GET", "/_sim/webhooks/sent")
    assert sent["sent"] == [
        {
            "field": "phone_number_quality_update",
            "waba_id": MAIN_WABA,
            "status": 200,
            "error": None,
            "time": demo_world.clock(),
        }
    ]


async def test_quality_and_name_changes(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    client = await targeted(client_for, demo_world, receiver)
    await control(client, "PATCH", "/_sim/numbers/300000000000001", {"quality_rating": "RED"})
    await control(client, "PATCH", "/_sim/numbers/300000000000001", {"quality_rating": "GREEN"})
    await control(
        client, "PATCH", "/_sim/numbers/300000000000001", {"name_status": "PENDING_REVIEW"}
    )
    await control(client, "PATCH", "/_sim/numbers/300000000000001", {"throughput": "STANDARD"})
    await drain(client)
    changes = [
        (r.change["field"], r.change["value"].get("event") or r.change["value"]["decision"])
        for r in receiver.got
    ]
    assert changes == [
        ("phone_number_quality_update", "FLAGGED"),
        ("phone_number_quality_update", "UNFLAGGED"),
        ("phone_number_name_update", "PENDING"),
    ]
    assert receiver.got[2].change["value"]["requested_verified_name"] == "Acme Retail"


async def test_nothing_is_sent_without_a_target(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    client = await client_for(demo_world)
    await control(client, "PATCH", "/_sim/numbers/300000000000001", {"status": "FLAGGED"})
    status, body = await control(
        client, "POST", "/_sim/webhooks/send", {"field": "account_update", "waba_id": MAIN_WABA}
    )
    assert status == 409
    assert "target" in body["error"]["message"]
    await drain(client)
    assert receiver.got == []
    # Changes made before the target was set are not announced afterwards.
    await targeted(client_for, demo_world, receiver)
    await drain(client)
    assert receiver.got == []
    # A cleared target stops the sends again.
    await control(
        client, "POST", "/_sim/webhooks/target", {"url": receiver.url, "app_secret": SECRET}
    )
    assert await control(client, "DELETE", "/_sim/webhooks/target") == (200, {"target_set": False})
    await control(client, "PATCH", "/_sim/numbers/300000000000001", {"status": "CONNECTED"})
    await drain(client)
    assert receiver.got == []


UPGRADING = """
businesses:
  - id: "11"
    messaging_limit: TIER_UNLIMITED
    wabas: [{id: "21", numbers: [{id: "31", display_phone_number: "+1 555-000-0001",
                                  status: CONNECTED, throughput: STANDARD}]}]
timeline:
  repeat_every: 90s
  events:
    - {at: 30s, number: "31", set: {throughput: HIGH}}
    - {at: 60s, number: "31", set: {status: RESTRICTED}}
"""


async def test_timeline_step_noticed_by_a_graph_request(
    client_for: Callable[..., Awaitable[Client]], receiver: Receiver
) -> None:
    world = make_world(UPGRADING)
    client = await targeted(client_for, world, receiver)
    world.advance(30)
    status, node, _ = await get_json(client, f"{V}/31", fields="throughput")
    assert (status, node["throughput"]) == (200, {"level": "HIGH"})
    (got,) = await receiver.wait()
    assert got.change["field"] == "phone_number_quality_update"
    assert got.change["value"] == {
        "display_phone_number": "15550000001",
        "event": "THROUGHPUT_UPGRADE",
        "current_limit": "TIER_UNLIMITED",
        "max_daily_conversations_per_business": "TIER_UNLIMITED",
    }
    # Advancing through the control API is noticed too (control calls dispatch as well);
    # a status change sends the legacy event only because legacy events are on by default.
    await control(client, "POST", "/_sim/clock/advance", {"seconds": 30})
    await receiver.wait(2)
    assert receiver.got[1].change["value"]["event"] == "DOWNGRADE"
    # No further change, no further webhook.
    await get_json(client, f"{V}/31")
    await drain(client)
    assert len(receiver.got) == 2


async def test_patch_folds_in_an_unannounced_timeline_step(
    client_for: Callable[..., Awaitable[Client]], receiver: Receiver
) -> None:
    world = make_world(UPGRADING)
    client = await client_for(world)
    await control(
        client,
        "POST",
        "/_sim/webhooks/target",
        {"url": receiver.url, "app_secret": SECRET, "legacy_quality_events": False},
    )
    world.advance(30)  # the upgrade step is due, nobody has looked yet
    await control(client, "PATCH", "/_sim/numbers/31", {"quality_rating": "RED"})
    await drain(client)
    # Without legacy events a quality drop sends nothing; the folded-in upgrade is sent once.
    assert [r.change["value"]["event"] for r in receiver.got] == ["THROUGHPUT_UPGRADE"]
    await get_json(client, f"{V}/31")
    world.advance(30)  # the status step: nothing in the current model
    await get_json(client, f"{V}/31")
    await drain(client)
    assert len(receiver.got) == 1


async def test_graph_request_does_not_wait_for_a_slow_receiver(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    receiver.delay = 2.0
    client = await targeted(client_for, demo_world, receiver)
    demo_world.advance(30)
    started = time.monotonic()
    status, _, _ = await get_json(client, f"{V}/300000000000005")  # due account steps
    assert status == 200
    assert time.monotonic() - started < 1.0
    await receiver.wait()  # it did arrive, in the background


async def test_failed_sends_are_recorded_not_raised(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, unused_tcp_port: int
) -> None:
    client = await client_for(demo_world)
    await control(
        client,
        "POST",
        "/_sim/webhooks/target",
        {"url": f"http://127.0.0.1:{unused_tcp_port}/hook", "app_secret": SECRET},
    )
    status, _ = await control(
        client, "PATCH", "/_sim/numbers/300000000000001", {"status": "FLAGGED"}
    )
    assert status == 200
    await drain(client)
    status, record = await control(
        client, "POST", "/_sim/webhooks/send", {"field": "account_update", "waba_id": MAIN_WABA}
    )
    assert status == 200
    assert record["status"] is None and record["error"]
    _, sent = await control(client, "GET", "/_sim/webhooks/sent")
    assert [(r["field"], r["status"]) for r in sent["sent"]] == [
        ("phone_number_quality_update", None),
        ("account_update", None),
    ]
    assert all(r["error"] for r in sent["sent"])


# --------------------------------------------------------------------------- control API


async def test_send_arbitrary_change(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    client = await targeted(client_for, demo_world, receiver)
    receiver.status = 403
    status, record = await control(
        client,
        "POST",
        "/_sim/webhooks/send",
        {
            "field": "account_update",
            "waba_id": MAIN_WABA,
            "value": {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE"}},
        },
    )
    assert status == 200
    assert record["status"] == 403
    assert record["field"] == "account_update"
    (got,) = receiver.got
    assert got.change["value"]["ban_info"] == {"waba_ban_state": "DISABLE"}
    _, sent = await control(client, "GET", "/_sim/webhooks/sent")
    text = json.dumps(sent)
    assert SECRET not in text and receiver.url not in text
    _, state = await control(client, "GET", "/_sim/state")
    assert state["webhooks"] == {"target_set": True, "sent": 1}
    assert SECRET not in json.dumps(state)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/_sim/webhooks/target", {"url": "ftp://x", "app_secret": SECRET}, 400),
        ("/_sim/webhooks/target", {"url": "http://x/hook", "app_secret": ""}, 400),
        ("/_sim/webhooks/target", {"url": "http://x/hook"}, 400),
        ("/_sim/webhooks/target", {"url": "http://x/hook", "app_secret": "s", "x": 1}, 400),
        ("/_sim/webhooks/target", [1], 400),
        ("/_sim/webhooks/send", {"waba_id": MAIN_WABA}, 400),
        ("/_sim/webhooks/send", {"field": "f"}, 400),
        ("/_sim/webhooks/send", {"field": "f", "waba_id": MAIN_WABA, "value": [1]}, 400),
        ("/_sim/webhooks/send", {"field": "f", "waba_id": MAIN_WABA, "extra": 1}, 400),
        ("/_sim/businesses/1/capability", {"max_phone_numbers_per_business": 20}, 404),
        (f"/_sim/businesses/{MAIN_WABA}/capability", {"max_phone_numbers_per_business": 20}, 404),
        (f"/_sim/businesses/{ACME}/capability", {}, 400),
        (f"/_sim/businesses/{ACME}/capability", [20], 400),
    ],
)
async def test_webhook_control_validation(demo: Client, path: str, body: Any, status: int) -> None:
    got, error = await control(demo, "POST", path, body)
    assert got == status
    assert error["error"]["message"]


async def test_capability_endpoint_notifies_every_owned_waba(
    client_for: Callable[..., Awaitable[Client]], demo_world: World, receiver: Receiver
) -> None:
    client = await client_for(demo_world)
    status, _ = await control(
        client,
        "POST",
        f"/_sim/businesses/{ACME}/capability",
        {"max_phone_numbers_per_business": 20},
    )
    assert status == 409
    await targeted(client_for, demo_world, receiver)
    status, body = await control(
        client,
        "POST",
        f"/_sim/businesses/{ACME}/capability",
        {"max_phone_numbers_per_business": 20},
    )
    assert status == 200
    owned = demo_world.owned_waba_ids(ACME)
    assert owned[:2] == [MAIN_WABA, FLEET_WABA] and len(owned) == 7
    # The Care WABA has not subscribed this app: Meta sends it nothing.
    care = "200000000000009"
    assert [(s["waba_id"], s["status"]) for s in body["sent"]] == [
        (w, None if w == care else 200) for w in owned
    ]
    assert [r.change["waba_id"] for r in receiver.got] == [w for w in owned if w != care]
    for got in receiver.got:
        assert verify_signature(got.body, got.headers["X-Hub-Signature-256"], SECRET)
        assert got.change["field"] == "business_capability_update"
        assert got.change["value"] == {"max_phone_numbers_per_business": 20}


# --------------------------------------------------------------------------- with the receiver


def exporter_sink() -> FakeSink:
    """The exporter side: WABAs 21-23 of business 11 are watched, number 31 is known."""
    return FakeSink(wabas={"21": "11", "22": "11", "23": "11"}, businesses={"11"},
                    numbers={"15550000001": "31"})


async def test_simulator_to_exporter_receiver(
    aiohttp_server: Any, client_for: Callable[..., Awaitable[Client]]
) -> None:
    sink = exporter_sink()
    registry = CollectorRegistry()
    app = web.Application()
    add_webhook_routes(
        app,
        WebhookConfig(path="/wh", verify_token="v", app_secret=SECRET),
        sink,
        create_webhook_metrics(registry),
    )
    server: TestServer = await aiohttp_server(app)
    world = make_world(SMALL)
    client = await client_for(world)
    await control(
        client,
        "POST",
        "/_sim/webhooks/target",
        {"url": str(server.make_url("/wh")), "app_secret": SECRET},
    )
    await control(client, "PATCH", "/_sim/numbers/31", {"status": "FLAGGED"})
    _, body = await control(
        client, "POST", "/_sim/businesses/11/capability", {"max_phone_numbers_per_business": 20}
    )
    assert [s["status"] for s in body["sent"]] == [200, 200, 200]
    await drain(client)
    assert sink.repolls == [("21", "phone_number_quality_update")] + [
        (w, "business_capability_update") for w in ("21", "22", "23")]
    assert sink.caps == [(w, 20, "max_phone_numbers_per_business") for w in ("21", "22", "23")]
    assert (
        registry.get_sample_value("whatsapp_monitor_webhook_requests_total", {"result": "ok"}) == 4
    )


# --------------------------------------------------------------------------- scenario, server


def test_scenario_webhooks_block() -> None:
    text = SMALL + f"webhooks: {{url: 'http://127.0.0.1:9/hook', app_secret: {SECRET}}}\n"
    scenario = scenario_from_yaml(text)
    assert scenario.webhooks is not None
    assert scenario.webhooks.url == "http://127.0.0.1:9/hook"
    assert SECRET not in repr(scenario.webhooks)
    world = World(scenario)
    assert world.webhook_target == scenario.webhooks
    assert world.state()["webhooks"]["target_set"] is True
    with pytest.raises(ScenarioError, match="webhooks: missing key 'app_secret'"):
        scenario_from_yaml(SMALL + "webhooks: {url: 'http://x/hook'}\n")
    with pytest.raises(ScenarioError, match=r"webhooks\.url"):
        scenario_from_yaml(SMALL + "webhooks: {url: 'hook', app_secret: s}\n")
    with pytest.raises(ScenarioError, match="unknown key 'secret'"):
        scenario_from_yaml(SMALL + "webhooks: {url: 'http://x/h', app_secret: s, secret: s}\n")
    assert scenario_from_yaml(SMALL).webhooks is None


async def test_real_server_cleanup_with_a_hanging_receiver(receiver: Receiver) -> None:
    receiver.delay = 30.0
    world = make_world()
    world.set_webhook_target(receiver.url, SECRET)
    runner, url = await start_simulator(world)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.patch(
                f"{url}/_sim/numbers/300000000000001", json={"status": "FLAGGED"}
            ) as resp:
                assert resp.status == 200
            async with session.get(f"{url}{V}/300000000000001", headers=AUTH) as resp:
                assert resp.status == 200
        await receiver.wait()
    finally:
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 2


def test_build_app_has_a_sender() -> None:
    app = build_app(make_world())
    assert app[WEBHOOKS_KEY] is not None
