"""Account actions through ``POST /_sim/actions``, ``PATCH /_sim/businesses/{id}`` and the
timeline: each changes what polls read and sends Meta's signed webhook (facts §2.3-§2.8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from simtools import SMALL, T0, get_json, make_world

from monitor.simulator import ScenarioError, World, scenario_from_yaml
from monitor.simulator.app import WEBHOOKS_KEY
from monitor.webhooks import verify_signature

Client = TestClient[Any, Any]
Factory = Callable[..., Awaitable[Client]]
SECRET = "sim-account-secret-5c2e"
V = "/v24.0"
ACME = "100000000000001"
BISTRO = "100000000000002"
HELIX = "100000000000003"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"
BISTRO_WABA = "200000000000003"
PROMO_WABA = "200000000000005"
NUMBER = "300000000000001"


@dataclass
class Receiver:
    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def entries(self) -> list[dict[str, Any]]:
        """Every delivery's single entry, after checking its signature."""
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


async def call(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body)
    return resp.status, await resp.json()


async def targeted(client_for: Factory, world: World, rx: Receiver, **options: Any) -> Client:
    client = await client_for(world)
    status, _ = await call(
        client,
        "POST",
        "/_sim/webhooks/target",
        {"url": rx.url, "app_secret": SECRET, **options},
    )
    assert status == 200
    return client


async def act(client: Client, action: str, **params: Any) -> dict[str, Any]:
    status, body = await call(client, "POST", "/_sim/actions", {"action": action, **params})
    assert status == 200, body
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    result: dict[str, Any] = body
    return result


def account(world: World, waba_id: str) -> dict[str, Any]:
    return next(w["account"] for w in world.state()["wabas"] if w["id"] == waba_id)


# --------------------------------------------------------------------------- account_update


async def test_restrict_and_lift(client_for: Factory, receiver: Receiver) -> None:
    world = make_world(SMALL)  # no demo timeline steps in the way
    client = await targeted(client_for, world, receiver)
    result = await act(
        client,
        "restrict_waba",
        waba="21",
        restriction_types=["RESTRICTED_ADD_PHONE_NUMBER_ACTION", "RESTRICTED_UTILITY_TEMPLATES"],
        expires_in="2h",
        remediation="Read the policy.",
        violation_type="ADULT",
    )
    assert result == {"action": "restrict_waba", "webhooks_queued": 1}
    (got,) = receiver.entries()
    expiration = int(T0) + 7200
    assert got == {
        "id": "21",
        "time": int(T0),
        "field": "account_update",
        "value": {
            "event": "ACCOUNT_RESTRICTION",
            "violation_info": {"violation_type": "ADULT"},
            "restriction_info": [
                {
                    "restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
                    "expiration": expiration,
                    "remediation": "Read the policy.",
                },
                {
                    "restriction_type": "RESTRICTED_UTILITY_TEMPLATES",
                    "expiration": expiration,
                    "remediation": "Read the policy.",
                },
            ],
        },
    }
    assert [r["restriction_type"] for r in account(world, "21")["restrictions"]] == [
        "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
        "RESTRICTED_UTILITY_TEMPLATES",
    ]
    world.advance(7200)  # expired: gone from the state, no webhook (Meta documents none)
    assert account(world, "21")["restrictions"] == []
    await act(client, "restrict_waba", waba="21")
    await act(client, "lift_restriction", waba="21")
    _, default, lifted = receiver.entries()
    assert default["value"]["restriction_info"] == [
        {
            "restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING",
            "expiration": int(T0) + 7200 + 86400,
        }
    ]
    assert lifted["value"] == {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_TEMPLATE_ABUSE_UNBAN"},
    }
    assert account(world, "21")["restrictions"] == []


@pytest.mark.parametrize(
    ("params", "expiration"),
    [
        ({"expires_in": 60, "expiration_format": "string"}, str(int(T0) + 60)),
        ({"expires_in": 60, "expiration_format": "iso"}, "2027-01-15T08:01:00+0000"),
        ({"expiration": "1800000123"}, "1800000123"),
        ({"expiration": "2027-02-01T00:00:00Z"}, "2027-02-01T00:00:00Z"),
    ],
)
async def test_restriction_expiration_forms(
    client_for: Factory, receiver: Receiver, params: dict[str, Any], expiration: Any
) -> None:
    client = await targeted(client_for, make_world(), receiver)
    await act(client, "restrict_waba", waba=PROMO_WABA, **params)
    (got,) = receiver.entries()
    assert got["value"]["restriction_info"][0]["expiration"] == expiration


async def test_direct_send_warning_restricts_nothing(
    client_for: Factory, receiver: Receiver
) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(
        client,
        "restrict_waba",
        waba=PROMO_WABA,
        restriction_types=[],
        violation_type="DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN",
    )
    (got,) = receiver.entries()
    assert got["value"] == {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN"},
    }
    assert account(world, PROMO_WABA)["restrictions"] == []


async def test_violation_and_ban_cycle(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(client, "record_violation", waba=MAIN_WABA, violation_type="SCAM")
    await act(client, "ban_waba", waba=MAIN_WABA, state="SCHEDULE_FOR_DISABLE")
    _, node, _ = await get_json(client, f"{V}/{MAIN_WABA}", fields="health_status")
    assert node["health_status"]["can_send_message"] == "AVAILABLE"  # only a warning
    await act(client, "ban_waba", waba=MAIN_WABA, state="DISABLE", date="April 17, 2025")
    _, node, _ = await get_json(client, f"{V}/{MAIN_WABA}", fields="health_status")
    waba_entity = node["health_status"]["entities"][0]
    assert node["health_status"]["can_send_message"] == "BLOCKED"
    assert (waba_entity["entity_type"], waba_entity["can_send_message"]) == ("WABA", "BLOCKED")
    assert waba_entity["errors"][0]["error_code"] == 131031
    _, number, _ = await get_json(client, f"{V}/{NUMBER}", fields="health_status")
    assert number["health_status"]["can_send_message"] == "BLOCKED"
    await act(client, "ban_waba", waba=MAIN_WABA, state="REINSTATE")
    _, node, _ = await get_json(client, f"{V}/{MAIN_WABA}", fields="health_status")
    assert node["health_status"]["can_send_message"] == "AVAILABLE"
    values = [e["value"] for e in receiver.entries()]
    assert values == [
        {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}},
        {
            "event": "DISABLED_UPDATE",
            "ban_info": {
                "waba_ban_state": "SCHEDULE_FOR_DISABLE",
                "waba_ban_date": "January 22, 2027",
            },
        },
        {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "April 17, 2025"},
        },
        {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": "January 15, 2027"},
        },
    ]
    assert account(world, MAIN_WABA)["ban"]["waba_ban_state"] == "REINSTATE"
    assert [v["violation_type"] for v in account(world, MAIN_WABA)["violations"]] == ["SCAM"]


async def test_offboarding_and_deletion(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(client, "account_event", waba=PROMO_WABA, event="ACCOUNT_OFFBOARDED")
    assert account(world, PROMO_WABA)["offboarded"] is True
    await act(client, "account_event", waba=PROMO_WABA, event="ACCOUNT_RECONNECTED")
    assert account(world, PROMO_WABA)["offboarded"] is False
    await act(client, "account_event", waba=PROMO_WABA, event="ACCOUNT_DELETED")
    assert [(e["id"], e["value"]) for e in receiver.entries()] == [
        (PROMO_WABA, {"event": "ACCOUNT_OFFBOARDED"}),
        (PROMO_WABA, {"event": "ACCOUNT_RECONNECTED"}),
        (PROMO_WABA, {"event": "ACCOUNT_DELETED"}),
    ]
    status, body, _ = await get_json(client, f"{V}/{PROMO_WABA}")
    assert (status, body["error"]["code"], body["error"]["error_subcode"]) == (400, 100, 33)


async def test_partner_events_use_the_partner_portfolio_as_entry_id(
    client_for: Factory, receiver: Receiver
) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(client, "partner_event", waba=PROMO_WABA, event="PARTNER_ADDED", partner=HELIX)
    _, edge, _ = await get_json(client, f"{V}/{HELIX}/client_whatsapp_business_accounts")
    assert [w["id"] for w in edge["data"]] == [BISTRO_WABA, PROMO_WABA]
    await act(client, "partner_event", waba=BISTRO_WABA, event="PARTNER_APP_UNINSTALLED")
    await act(client, "partner_event", waba=PROMO_WABA, event="PARTNER_REMOVED", partner=HELIX)
    _, edge, _ = await get_json(client, f"{V}/{HELIX}/client_whatsapp_business_accounts")
    assert [w["id"] for w in edge["data"]] == [BISTRO_WABA]
    added, uninstalled, removed = receiver.entries()
    assert added == {
        "id": HELIX,
        "time": int(T0),
        "field": "account_update",
        "value": {
            "event": "PARTNER_ADDED",
            "waba_info": {
                "waba_id": PROMO_WABA,
                "owner_business_id": ACME,
                "partner_app_id": "900000000000001",
                "solution_partner_business_ids": [HELIX],
            },
        },
    }
    assert uninstalled["id"] == HELIX  # the default partner: the one managing the WABA
    assert uninstalled["value"]["waba_info"] == {
        "waba_id": BISTRO_WABA,
        "owner_business_id": BISTRO,
        "partner_app_id": "900000000000001",
    }
    assert removed["value"]["event"] == "PARTNER_REMOVED"
    assert account(world, BISTRO_WABA)["partner_app_installed"] is False
    _, sent = await call(client, "GET", "/_sim/webhooks/sent")
    assert [s["waba_id"] for s in sent["sent"]] == [PROMO_WABA, BISTRO_WABA, PROMO_WABA]


# --------------------------------------------------------------------------- other fields


async def test_review_decision_changes_the_read(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    for decision in ("REJECTED", "DEFERRED", "APPROVED"):
        await act(client, "review_waba", waba=MAIN_WABA, decision=decision)
        _, node, _ = await get_json(client, f"{V}/{MAIN_WABA}", fields="account_review_status")
        assert node["account_review_status"] == decision
    assert [(e["id"], e["field"], e["value"]) for e in receiver.entries()] == [
        (MAIN_WABA, "account_review_update", {"decision": d})
        for d in ("REJECTED", "DEFERRED", "APPROVED")
    ]


async def test_account_alerts_for_business_and_number(
    client_for: Factory, receiver: Receiver
) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(
        client,
        "account_alert",
        entity_type="BUSINESS",
        entity_id=ACME,
        alert_type="INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
        alert_severity="CRITICAL",
        alert_description="Denied.",
    )
    await act(
        client,
        "account_alert",
        entity_type="PHONE_NUMBER",
        entity_id=NUMBER,
        alert_type="OBA_APPROVED",
        alert_severity="INFORMATIONAL",
        alert_status="NONE",
    )
    business, number = receiver.entries()
    assert business == {
        "id": MAIN_WABA,  # the first WABA of the portfolio: which one Meta uses is undocumented
        "time": int(T0),
        "field": "account_alerts",
        "value": {
            "entity_type": "BUSINESS",
            "entity_id": ACME,
            "alert_info": {
                "alert_severity": "CRITICAL",
                "alert_status": "ACTIVE",
                "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
                "alert_description": "Denied.",
            },
        },
    }
    assert (number["id"], number["value"]["entity_id"]) == (MAIN_WABA, NUMBER)
    assert number["value"]["alert_info"]["alert_status"] == "NONE"
    assert [a["entity_id"] for a in world.state()["alerts"]] == [ACME, NUMBER]


async def test_portfolio_limit_and_verification(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    status, body = await call(
        client,
        "PATCH",
        f"/_sim/businesses/{BISTRO}",
        {"verification_status": "verified", "messaging_limit": "TIER_2K"},
    )
    assert status == 200
    assert body["business"] == {
        "id": BISTRO,
        "verification_status": "verified",
        "whatsapp_business_manager_messaging_limit": "TIER_2K",
    }
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    (got,) = receiver.entries()
    assert (got["id"], got["field"]) == (BISTRO_WABA, "business_capability_update")
    assert got["value"] == {"max_daily_conversations_per_business": "TIER_2K"}
    _, page, _ = await get_json(
        client,
        f"{V}/{BISTRO_WABA}/phone_numbers",
        fields="whatsapp_business_manager_messaging_limit",
    )
    assert {d["whatsapp_business_manager_messaging_limit"] for d in page["data"]} == {"TIER_2K"}
    _, waba, _ = await get_json(
        client,
        f"{V}/{BISTRO_WABA}",
        fields="business_verification_status,whatsapp_business_manager_messaging_limit",
    )
    assert waba["business_verification_status"] == "verified"
    assert waba["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
    # As an integer (-1 = unlimited); an unchanged limit sends nothing.
    await act(
        client, "set_business", business=BISTRO, messaging_limit="TIER_UNLIMITED", limit_as="int"
    )
    await act(client, "set_business", business=BISTRO, messaging_limit="TIER_UNLIMITED")
    assert [e["value"] for e in receiver.entries()][1:] == [
        {"max_daily_conversations_per_business": -1}
    ]


async def test_block_and_clear_each_entity(client_for: Factory) -> None:
    world = make_world()
    client = await client_for(world)
    for entity_type, object_id in (
        ("BUSINESS", ACME),
        ("APP", None),
        ("PHONE_NUMBER", NUMBER),
        ("WABA", MAIN_WABA),
    ):
        params: dict[str, Any] = {"entity_type": entity_type, "error_code": 141010}
        if object_id is not None:
            params["id"] = object_id
        await act(client, "block_entity", **params)
        _, node, _ = await get_json(client, f"{V}/{NUMBER}", fields="health_status")
        entity = next(
            e for e in node["health_status"]["entities"] if e["entity_type"] == entity_type
        )
        assert entity["can_send_message"] == "BLOCKED"
        assert entity["errors"] == [
            {
                "error_code": 141010,
                "error_description": "Simulated error.",
                "possible_solution": "Contact support.",
            }
        ]
        cleared = {k: v for k, v in params.items() if k != "error_code"}
        await act(client, "block_entity", **cleared, can_send_message="AVAILABLE")
        _, node, _ = await get_json(client, f"{V}/{NUMBER}", fields="health_status")
        assert node["health_status"]["can_send_message"] == "AVAILABLE"
    await act(client, "block_entity", entity_type="WABA", id=FLEET_WABA, can_send_message="LIMITED")
    _, node, _ = await get_json(client, f"{V}/{FLEET_WABA}", fields="health_status")
    assert node["health_status"]["can_send_message"] == "LIMITED"


async def test_added_number_sends_onboarding(client_for: Factory, receiver: Receiver) -> None:
    client = await targeted(client_for, make_world(), receiver)
    status, _ = await call(
        client,
        "POST",
        f"/_sim/wabas/{BISTRO_WABA}/numbers",
        {"id": "399999999999999", "display_phone_number": "+1 555-030-0009"},
    )
    assert status == 201
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    (got,) = receiver.entries()
    assert got["value"] == {
        "display_phone_number": "15550300009",
        "event": "ONBOARDING",
        "old_limit": "TIER_NOT_SET",
        "current_limit": "TIER_250",
        "max_daily_conversations_per_business": "TIER_250",
    }


async def test_time_as_string_and_no_legacy(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(
        client_for, world, receiver, time_as_string=True, legacy_quality_events=False
    )
    status, _ = await call(client, "PATCH", f"/_sim/numbers/{NUMBER}", {"status": "FLAGGED"})
    assert status == 200
    await act(client, "review_waba", waba=MAIN_WABA, decision="PENDING")
    (got,) = receiver.entries()  # no legacy FLAGGED quality event
    assert got["field"] == "account_review_update"
    assert got["time"] == str(int(T0))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"action": "explode"}, 400, "expected one of"),
        ({"waba": MAIN_WABA}, 400, "expected one of"),
        ({"action": "review_waba", "waba": MAIN_WABA}, 400, "missing key 'decision'"),
        ({"action": "review_waba", "waba": MAIN_WABA, "decision": "X", "x": 1}, 400, "unknown key"),
        ({"action": "review_waba", "waba": "abc", "decision": "X"}, 400, "numeric id"),
        ({"action": "review_waba", "waba": "999", "decision": "X"}, 404, "no WABA"),
        (
            {"action": "restrict_waba", "waba": MAIN_WABA, "expires_in": 5, "expiration": 5},
            400,
            "not both",
        ),
        (
            {"action": "restrict_waba", "waba": MAIN_WABA, "expiration_format": "roman"},
            400,
            "expiration_format",
        ),
        (
            {"action": "account_alert", "entity_type": "PHONE_NUMBER", "alert_type": "X"},
            400,
            "entity_id",
        ),
        ({"action": "partner_event", "waba": MAIN_WABA, "event": "PARTNER_ADDED"}, 400, "partner"),
        (
            {"action": "account_event", "waba": MAIN_WABA, "event": "PARTNER_ADDED"},
            400,
            "partner_event",
        ),
        ({"action": "block_entity", "entity_type": "WABA"}, 400, "id: required"),
        ({"action": "block_entity", "entity_type": "TEMPLATE", "id": "1"}, 400, "entity_type"),
        ({"action": "set_business", "business": ACME}, 400, "needs"),
        ([1], 400, "JSON object"),
    ],
)
async def test_action_validation(demo: Client, body: Any, status: int, message: str) -> None:
    got, error = await call(demo, "POST", "/_sim/actions", body)
    assert got == status
    assert message in error["error"]["message"]


async def test_patch_business_errors(demo: Client) -> None:
    assert (await call(demo, "PATCH", "/_sim/businesses/999", {"messaging_limit": "T"}))[0] == 404
    assert (await call(demo, "PATCH", f"/_sim/businesses/{ACME}", {}))[0] == 400
    assert (await call(demo, "PATCH", f"/_sim/businesses/{ACME}", {"name": "x"}))[0] == 400


async def test_actions_without_target_change_state_only(demo: Client, demo_world: World) -> None:
    result = await act(demo, "review_waba", waba=MAIN_WABA, decision="REJECTED")
    assert result == {"action": "review_waba", "webhooks_queued": 0}
    assert demo_world.webhooks_sent() == []


# --------------------------------------------------------------------------- timeline


TIMELINE = """
businesses:
  - id: "11"
    messaging_limit: TIER_250
    wabas: [{id: "21", numbers: [{id: "31", display_phone_number: "+1 555-000-0001"}]}]
timeline:
  repeat_every: 60s
  events:
    - {at: 10s, once: true, action: review_waba, waba: "21", decision: PENDING}
    - {at: 20s, action: account_alert, entity_type: PHONE_NUMBER, entity_id: "31",
       alert_type: PROFILE_PICTURE_LOST}
    - {at: 30s, once: true, action: set_business, business: "11", messaging_limit: TIER_2K}
"""


async def test_timeline_actions_run_once_or_each_period(
    client_for: Factory, receiver: Receiver
) -> None:
    world = make_world(TIMELINE)
    client = await targeted(client_for, world, receiver)
    _, node, _ = await get_json(client, f"{V}/21", fields="account_review_status")
    assert "account_review_status" not in node
    world.advance(25)
    _, node, _ = await get_json(client, f"{V}/21", fields="account_review_status")
    assert node["account_review_status"] == "PENDING"
    world.advance(60)  # into the second period, past its 20s step
    _, number, _ = await get_json(
        client, f"{V}/31", fields="whatsapp_business_manager_messaging_limit"
    )
    assert number["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    fields = [e["field"] for e in receiver.entries()]
    assert fields == [
        "account_review_update",
        "account_alerts",
        "business_capability_update",
        "account_alerts",
    ]
    # A long jump replays only the last full period and the current one; once-steps never.
    world.advance(6000)
    await get_json(client, f"{V}/21")
    await app[WEBHOOKS_KEY].drain()
    assert [e["field"] for e in receiver.entries()][4:] == ["account_alerts", "account_alerts"]


def test_timeline_actions_before_the_target_are_not_announced() -> None:
    world = make_world(TIMELINE)
    world.advance(25)
    world.set_webhook_target("http://127.0.0.1:9/hook", SECRET)
    assert world.collect_webhooks() == []
    assert world.waba_values("21", frozenset({"account_review_status"})) == {
        "account_review_status": "PENDING"
    }


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("[{at: 1s, action: nope}]", "expected one of"),
        ("[{at: 1s, action: review_waba, waba: '21'}]", "missing key 'decision'"),
        ("[{at: 1s, action: review_waba, waba: '99', decision: X}]", "unknown waba '99'"),
        ("[{at: 1s, action: review_waba, waba: '21', decision: X, once: 1}]", "once"),
        ("[{at: 1s, action: restrict_waba, waba: '21', expires_in: soon}]", "duration"),
        ("[{action: review_waba, waba: '21', decision: X}]", "missing key 'at'"),
    ],
)
def test_timeline_action_validation(events: str, message: str) -> None:
    text = TIMELINE.split("timeline:")[0] + f"timeline: {{events: {events}}}\n"
    with pytest.raises(ScenarioError, match=message):
        scenario_from_yaml(text)


def test_scenario_webhook_switches() -> None:
    text = TIMELINE + "webhooks: {url: 'http://x/h', app_secret: s, time_as_string: true}\n"
    scenario = scenario_from_yaml(text)
    assert scenario.webhooks is not None
    assert scenario.webhooks.time_as_string is True
    assert scenario.webhooks.legacy_quality_events is True
    assert World(scenario).webhook_time_as_string is True
    with pytest.raises(ScenarioError, match="legacy_quality_events"):
        scenario_from_yaml(
            TIMELINE + "webhooks: {url: 'http://x/h', app_secret: s, legacy_quality_events: 1}\n"
        )


async def test_demo_timeline_announces_its_cast(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    world.advance(50)
    await get_json(client, f"{V}/{MAIN_WABA}")
    app = client.app
    assert app is not None
    await app[WEBHOOKS_KEY].drain()
    got = [
        (
            e["id"],
            e["field"],
            e["value"].get("event")
            or e["value"].get("decision")
            or e["value"].get("new_quality_score")
            or e["value"].get("correct_category")
            or e["value"].get("new_category")
            or e["value"]["alert_info"]["alert_type"],
        )
        for e in receiver.entries()
    ]
    assert got == [
        (PROMO_WABA, "account_update", "ACCOUNT_RESTRICTION"),
        ("200000000000006", "account_update", "ACCOUNT_VIOLATION"),
        ("200000000000006", "account_update", "DISABLED_UPDATE"),
        (MAIN_WABA, "template_category_update", "MARKETING"),  # notice
        ("200000000000007", "account_review_update", "PENDING"),
        (MAIN_WABA, "security", "PIN_RESET_REQUEST"),
        (MAIN_WABA, "message_template_quality_update", "RED"),
        (MAIN_WABA, "message_template_status_update", "PAUSED"),
        (BISTRO_WABA, "account_alerts", "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED"),
        (MAIN_WABA, "message_template_status_update", "APPROVED"),  # UNPAUSE
        (MAIN_WABA, "template_category_update", "MARKETING"),  # completed
        (MAIN_WABA, "account_alerts", "PROFILE_PICTURE_LOST"),
    ]
    await asyncio.sleep(0)


async def test_caps_are_separate_facts(client_for: Factory, receiver: Receiver) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    await act(
        client,
        "set_business",
        business=BISTRO,
        max_phone_numbers_per_business=20,
        max_phone_numbers_per_waba=25,
    )
    assert [(e["id"], e["value"]) for e in receiver.entries()] == [
        (BISTRO_WABA, {"max_phone_numbers_per_business": 20}),
        (BISTRO_WABA, {"max_phone_numbers_per_waba": 25}),
    ]
    await act(client, "set_business", business=BISTRO, max_phone_numbers_per_waba=25)
    assert len(receiver.got) == 2  # unchanged: nothing sent
    caps = next(b["capabilities"] for b in world.state()["businesses"] if b["id"] == BISTRO)
    assert caps == {"max_phone_numbers_per_business": 20, "max_phone_numbers_per_waba": 25}


@pytest.mark.parametrize(
    ("sent", "tier"),
    [("TIER_10K", "TIER_10K"), (2000, "TIER_2K"), (-1, "TIER_UNLIMITED"), (1234, "TIER_250")],
)
async def test_capability_endpoint_keeps_the_limit_consistent(
    client_for: Factory, receiver: Receiver, sent: Any, tier: str
) -> None:
    world = make_world()
    client = await targeted(client_for, world, receiver)
    status, _ = await call(
        client,
        "POST",
        f"/_sim/businesses/{BISTRO}/capability",
        {"max_daily_conversations_per_business": sent},
    )
    assert status == 200
    (got,) = receiver.entries()
    assert got["value"] == {"max_daily_conversations_per_business": sent}
    _, node, _ = await get_json(
        client, f"{V}/{BISTRO}", fields="whatsapp_business_manager_messaging_limit"
    )
    assert node["whatsapp_business_manager_messaging_limit"] == tier  # 1234 names no tier
