"""Number security and message routing (issue 11): the phone-number fields, the
``subscribed_apps`` and ``settings`` edges, scenario keys, and the generated fleet's defaults.
Actions and webhooks are in ``test_sim_wiring_actions.py``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from simtools import AUTH, SMALL, T0, get_json, make_world

from monitor.simulator import Fault, ScenarioError, World, generate_scenario, scenario_from_yaml
from monitor.simulator.wiring import DEFAULT_APP_CALLBACK, meta_time

Client = TestClient[Any, Any]
V = "/v24.0"
APP = "900000000000001"
META_APP = "900000000000777"
MAIN_WABA = "200000000000001"
BISTRO_WABA = "200000000000003"
CARE_WABA = "200000000000009"
NO_PIN = "300000000000009"
RESET = "300000000000010"
MISROUTED = "300000000000036"
RECENT = "300000000000037"
STUCK = "300000000000013"
SANDBOX = "300000000000022"
STEADY = "300000000000001"
MISROUTED_URL = "https://crm.acme-legacy.example/whatsapp/hook?token=demo-leaked-0000"
NUMBER_FIELDS = "id,is_pin_enabled,last_onboarded_time,webhook_configuration,new_name_status"
META_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000")

WIRED = """
app_id: "900000000000042"
app_name: Our Monitor
businesses:
  - id: "11"
    wabas:
      - id: "21"
        subscribed_apps:
          - {id: "900000000000042", override_callback_uri: "https://waba.example/hook"}
          - {id: "777", name: Business Agent, category: BUSINESS_AGENT}
        refuse_subscribed_apps: {status: 400, code: 100, subcode: 33, message: nope,
                                 type: GraphMethodException}
        numbers:
          - {id: "31", display_phone_number: "+1 555-000-0001", status: CONNECTED,
             webhook_override: "https://number.example/hook", identity_key_check: true,
             onboarded_ago: 90m}
          - {id: "32", display_phone_number: "+1 555-000-0002",
             webhook_configuration: {application: "https://verbatim.example/"}}
      - id: "22"
        subscribed_apps: []
        refuse_subscribed_apps: true
"""


# --------------------------------------------------------------------------- number fields


async def test_demo_cast_fields_on_the_list_edge(demo: Client) -> None:
    status, body, _ = await get_json(
        demo, f"{V}/{MAIN_WABA}/phone_numbers", fields=NUMBER_FIELDS, limit="100"
    )
    assert status == 200
    rows = {row["id"]: row for row in body["data"]}
    assert rows[STEADY] == {
        "id": STEADY,
        "is_pin_enabled": True,
        "last_onboarded_time": "2024-03-14T09:26:53+0000",
        "webhook_configuration": {"application": DEFAULT_APP_CALLBACK},
        "new_name_status": "NONE",
    }
    assert rows[NO_PIN]["is_pin_enabled"] is False
    assert rows[RESET]["is_pin_enabled"] is True
    assert rows[MISROUTED]["webhook_configuration"] == {
        "phone_number": MISROUTED_URL,
        "application": DEFAULT_APP_CALLBACK,
    }
    assert rows[RECENT]["last_onboarded_time"] == meta_time(T0 - 2 * 3600)
    assert rows[RECENT]["is_pin_enabled"] is False
    for row in rows.values():
        assert META_TIME.fullmatch(row.get("last_onboarded_time", "2024-01-01T00:00:00+0000"))
        assert list(row["webhook_configuration"])[-1] == "application"
    assert "last_onboarded_time" not in rows["300000000000007"]  # the sparse number


async def test_demo_cast_fields_on_the_node(demo: Client) -> None:
    _, stuck, _ = await get_json(demo, f"{V}/{STUCK}", fields="status,last_onboarded_time")
    assert stuck == {
        "status": "PENDING",
        "last_onboarded_time": meta_time(T0 - 50 * 3600),
        "id": STUCK,
    }
    _, sandbox, _ = await get_json(demo, f"{V}/{SANDBOX}", fields="status,account_mode")
    assert sandbox == {"status": "PENDING", "account_mode": "SANDBOX", "id": SANDBOX}
    # Subfield selection works on the computed object too.
    picked = "webhook_configuration{phone_number}"
    _, node, _ = await get_json(demo, f"{V}/{MISROUTED}", fields=picked)
    assert node == {"webhook_configuration": {"phone_number": MISROUTED_URL}, "id": MISROUTED}
    # Not requested: not returned (the default field set has none of them).
    _, default, _ = await get_json(demo, f"{V}/{MISROUTED}")
    assert "webhook_configuration" not in default and "is_pin_enabled" not in default


async def test_webhook_configuration_levels(client_for: Any) -> None:
    world = make_world(WIRED)
    client = await client_for(world)
    _, body, _ = await get_json(client, f"{V}/21/phone_numbers", fields="webhook_configuration")
    first, second = body["data"]
    # Key order and presence as in facts §3.3: number, WABA, application.
    assert list(first["webhook_configuration"].items()) == [
        ("phone_number", "https://number.example/hook"),
        ("whatsapp_business_account", "https://waba.example/hook"),
        ("application", DEFAULT_APP_CALLBACK),
    ]
    assert second["webhook_configuration"] == {"application": "https://verbatim.example/"}
    _, node, _ = await get_json(client, f"{V}/31", fields="last_onboarded_time")
    assert node["last_onboarded_time"] == meta_time(T0 - 5400)


async def test_application_follows_the_webhook_target_unless_the_scenario_sets_it(
    client_for: Any,
) -> None:
    world = make_world(SMALL)
    client = await client_for(world)
    url = "http://127.0.0.1:9/waba-hook"
    world.set_webhook_target(url, "secret")
    _, node, _ = await get_json(client, f"{V}/31", fields="webhook_configuration")
    assert node["webhook_configuration"] == {"application": url}
    fixed = make_world(SMALL + "app_callback_url: https://fixed.example/cb\n")
    fixed.set_webhook_target(url, "secret")
    values = fixed.number_values("31", frozenset({"webhook_configuration"}))
    assert values["webhook_configuration"] == {"application": "https://fixed.example/cb"}


# --------------------------------------------------------------------------- subscribed_apps


async def test_subscribed_apps_shape(demo: Client, demo_world: World) -> None:
    status, body, headers = await get_json(demo, f"{V}/{MAIN_WABA}/subscribed_apps")
    assert status == 200
    assert body == {
        "data": [
            {
                "whatsapp_business_api_data": {
                    "id": APP,
                    "link": f"https://www.facebook.com/games/?app_id={APP}",
                    "name": "waba-monitor demo",
                }
            },
            {
                "whatsapp_business_api_data": {
                    "id": META_APP,
                    "link": f"https://www.facebook.com/games/?app_id={META_APP}",
                    "name": "WA DevX Webhook Events 1P App",
                }
            },
        ]
    }
    assert MAIN_WABA in headers["X-Business-Use-Case-Usage"]
    assert "X-App-Usage" in headers and headers["facebook-api-version"] == "v24.0"
    _, care, _ = await get_json(demo, f"{V}/{CARE_WABA}/subscribed_apps")
    ids = [a["whatsapp_business_api_data"]["id"] for a in care["data"]]
    assert ids == [META_APP]  # the monitor's app is missing here
    _, bistro, _ = await get_json(demo, f"{V}/{BISTRO_WABA}/subscribed_apps")
    assert [a["whatsapp_business_api_data"]["id"] for a in bistro["data"]] == [APP]
    assert demo_world.request_count("subscribed_apps") == 3
    assert demo_world.request_count("subscribed_apps", CARE_WABA) == 1
    assert demo_world.stats()["by_endpoint"]["subscribed_apps"] == 3


async def test_subscribed_apps_override_extra_keys_and_refusals(client_for: Any) -> None:
    # The WABA-21 refusal moved aside (into extra{}, custom fields nobody requests).
    world = make_world(WIRED.replace("refuse_subscribed_apps: {status", "extra: {status"))
    client = await client_for(world)
    _, body, _ = await get_json(client, f"{V}/21/subscribed_apps")
    assert body["data"] == [
        {
            "whatsapp_business_api_data": {
                "id": "900000000000042",
                "link": "https://www.facebook.com/games/?app_id=900000000000042",
                "name": "Our Monitor",
            },
            "override_callback_uri": "https://waba.example/hook",
        },
        {
            "whatsapp_business_api_data": {
                "id": "777",
                "link": "https://www.facebook.com/games/?app_id=777",
                "name": "Business Agent",
            },
            "category": "BUSINESS_AGENT",
        },
    ]
    status, error, headers = await get_json(client, f"{V}/22/subscribed_apps")
    assert status == 403
    assert error["error"]["code"] == 200
    assert error["error"]["error_subcode"] == 1349174
    assert error["error"]["type"] == "OAuthException"
    assert "22" in headers["X-Business-Use-Case-Usage"]
    assert world.request_count("subscribed_apps", "22") == 1


@pytest.mark.parametrize("extra", ["        x: {status", "        refuse_subscribed_apps: {status"])
def test_parse_keeps_wiring_keys(extra: str) -> None:
    text = WIRED.replace("        refuse_subscribed_apps: {status", extra)
    if extra.startswith("        x"):
        with pytest.raises(ScenarioError, match="unknown key 'x'"):
            scenario_from_yaml(text)
        return
    scenario = scenario_from_yaml(text)
    waba = next(w for _, w in scenario.wabas() if w.id == "21")
    assert waba.subscribed_apps_error is not None
    assert waba.subscribed_apps_error["code"] == 100
    number = scenario.number("31")
    assert number.webhook_override == "https://number.example/hook"
    assert number.identity_key_check is True
    assert number.onboarded_ago == 5400.0
    assert "webhook_override" not in number.fields
    assert scenario.app_name == "Our Monitor"


async def test_subscribed_apps_refused_with_scenario_error(client_for: Any) -> None:
    client = await client_for(make_world(WIRED))
    status, error, _ = await get_json(client, f"{V}/21/subscribed_apps")
    assert (status, error["error"]["code"], error["error"]["error_subcode"]) == (400, 100, 33)
    assert error["error"]["message"] == "nope"


async def test_subscribed_apps_budget_faults_and_auth(client_for: Any) -> None:
    world = make_world(SMALL)  # the idle WABA 22 may make 3 calls per window
    client = await client_for(world)
    for _ in range(3):
        assert (await get_json(client, f"{V}/22/subscribed_apps"))[0] == 200
    status, body, headers = await get_json(client, f"{V}/22/subscribed_apps")
    assert (status, body["error"]["code"]) == (400, 80008)
    assert '"call_count":100' in headers["X-Business-Use-Case-Usage"]
    world.inject_fault(Fault(target="21", kind="http_error", edge="subscribed_apps", code=2))
    status, body, _ = await get_json(client, f"{V}/21/subscribed_apps")
    assert (status, body["error"]["code"]) == (500, 2)
    assert (await get_json(client, f"{V}/21/subscribed_apps"))[0] == 200
    status, body, _ = await get_json(client, f"{V}/21/subscribed_apps", headers={})
    assert (status, body["error"]["code"]) == (400, 104)
    status, body, _ = await get_json(client, f"{V}/31/subscribed_apps")  # not a WABA
    assert (status, body["error"]["code"], body["error"]["error_subcode"]) == (400, 100, 33)


# --------------------------------------------------------------------------- settings


async def test_settings_body_count_and_fields(demo: Client, demo_world: World) -> None:
    status, body, headers = await get_json(demo, f"{V}/{STEADY}/settings")
    assert status == 200
    assert body["user_identity_change"] == {"enable_identity_key_check": False}
    assert set(body) == {"user_identity_change", "calling", "storage_configuration"}
    assert MAIN_WABA in headers["X-Business-Use-Case-Usage"]
    _, picked, _ = await get_json(demo, f"{V}/{STEADY}/settings", fields="user_identity_change")
    assert picked == {"user_identity_change": {"enable_identity_key_check": False}}
    status, error, _ = await get_json(demo, f"{V}/{STEADY}/settings", fields="nope")
    assert (status, error["error"]["code"]) == (400, 100)
    assert "nonexisting field (nope)" in error["error"]["message"]
    status, error, _ = await get_json(demo, f"{V}/{STEADY}/settings", fields="a{")
    assert (status, error["error"]["code"]) == (400, 100)
    status, error, _ = await get_json(demo, f"{V}/{MAIN_WABA}/settings")  # not a number
    assert (status, error["error"]["error_subcode"]) == (400, 33)
    assert demo_world.request_count("settings", STEADY) == 4
    assert demo_world.request_count("settings") == 5


async def test_settings_scenario_keys(client_for: Any) -> None:
    client = await client_for(make_world(WIRED))
    _, body, _ = await get_json(client, f"{V}/31/settings", fields="user_identity_change")
    assert body == {"user_identity_change": {"enable_identity_key_check": True}}
    unsupported = make_world(WIRED + "settings_unsupported: true\n")
    client = await client_for(unsupported)
    status, body, _ = await get_json(client, f"{V}/31/settings")
    assert status == 400
    error = body["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (
        100,
        33,
        "GraphMethodException",
    )
    assert error["message"].startswith("Unsupported get request. Object with ID '31'")
    assert unsupported.request_count("settings", "31") == 1


async def test_wiring_edges_only_answer_get(demo: Client) -> None:
    resp = await demo.post(f"{V}/{MAIN_WABA}/subscribed_apps", headers=AUTH)
    assert resp.status == 405


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("number_keys", "message"),
    [
        ("webhook_override: ftp://x", "webhook_override: expected an http"),
        ("webhook_override: 'https://" + "x" * 200 + "'", "at most 200"),
        ("identity_key_check: 1", "identity_key_check: expected true or false"),
        ("onboarded_ago: soon", "onboarded_ago: cannot parse duration"),
        (
            "{onboarded_ago: 1h, last_onboarded_time: '2024-01-01T00:00:00+0000'}",
            "not both",
        ),
    ],
)
def test_number_wiring_key_errors(number_keys: str, message: str) -> None:
    inner = number_keys.strip("{}")
    text = f"""
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers:
          - {{id: "3", {inner}}}
"""
    with pytest.raises(ScenarioError, match=message):
        scenario_from_yaml(text)


@pytest.mark.parametrize(
    ("waba_keys", "message"),
    [
        ("subscribed_apps: [\"5\", \"5\"]", "listed twice"),
        ("subscribed_apps: [{name: x}]", "missing key 'id'"),
        ("subscribed_apps: [abc]", "numeric id"),
        ("subscribed_apps: [{id: \"5\", override_callback_uri: nope}]", "http"),
        ("refuse_subscribed_apps: {code: 0}", "expected an integer >= 1"),
    ],
)
def test_waba_wiring_key_errors(waba_keys: str, message: str) -> None:
    text = f"""
businesses:
  - id: "1"
    wabas:
      - id: "2"
        {waba_keys}
"""
    with pytest.raises(ScenarioError, match=message):
        scenario_from_yaml(text)


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("settings_unsupported: yes please", "settings_unsupported"),
        ("app_callback_url: nope", "app_callback_url"),
        ("app_name: 5", "app_name"),
    ],
)
def test_top_level_wiring_key_errors(top: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_yaml("businesses: []\n" + top + "\n")


def test_defaults_subscribe_our_app_everywhere() -> None:
    world = make_world(SMALL)
    for waba in ("21", "22", "23"):
        assert world.app_subscribed(waba)
        assert world.subscribed_apps(waba)["data"][0]["whatsapp_business_api_data"]["name"] == (
            "waba-monitor"
        )
    assert world.scenario.settings_unsupported is False
    assert world.settings_values("31")["user_identity_change"] == {
        "enable_identity_key_check": False
    }


# --------------------------------------------------------------------------- generated fleets


def test_generated_fleet_defaults() -> None:
    scenario = generate_scenario(businesses=1, wabas_per_business=2, numbers_per_waba=100)
    numbers = [n for _, n in scenario.numbers()]
    with_pin = [n for n in numbers if n.fields["is_pin_enabled"]]
    assert 0.9 * len(numbers) <= len(with_pin) < len(numbers)  # most, not all
    times = {n.fields["last_onboarded_time"] for n in numbers}
    assert len(times) == len(numbers)  # spread out
    assert all(META_TIME.fullmatch(t) for t in times)
    assert {t[:4] for t in times} >= {"2023", "2024", "2025"}
    assert all("webhook_configuration" not in n.fields for n in numbers)
    assert all(n.fields["new_name_status"] == "NONE" for n in numbers)
    world = World(scenario)
    first = numbers[0].id
    values = world.number_values(first, frozenset({"webhook_configuration"}))
    assert values["webhook_configuration"] == {"application": DEFAULT_APP_CALLBACK}
    assert all(world.app_subscribed(w.id) for _, w in scenario.wabas())
    again = generate_scenario(businesses=1, wabas_per_business=2, numbers_per_waba=100)
    assert again == scenario  # still deterministic
