"""Account-health payloads and reads: webhook builders (exact keys and nesting from the
account-health facts §2) and the WABA and business node routes (facts §3)."""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from simtools import SMALL, T0, get_json, make_world

from monitor.simulator import account_webhooks as aw
from monitor.simulator import scenario_from_yaml
from monitor.simulator.webhooks import envelope, number_change_webhooks, onboarding_webhook

Client = TestClient[Any, Any]
V = "/v24.0"
ACME = "100000000000001"
BISTRO = "100000000000002"
HELIX = "100000000000003"
MAIN_WABA = "200000000000001"
BISTRO_WABA = "200000000000003"
PILOT_WABA = "200000000000007"
PAYMENTS_WABA = "200000000000008"
WABA_FIELDS = (
    "id,name,ownership_type,timezone_id,account_review_status,business_verification_status,"
    "health_status,status,owner_business_info,whatsapp_business_manager_messaging_limit"
)
BUSINESS_FIELDS = "id,verification_status,whatsapp_business_manager_messaging_limit"


# --------------------------------------------------------------------------- builders


def test_account_restriction_shape() -> None:
    entry = aw.restriction_entry("RESTRICTED_ADD_PHONE_NUMBER_ACTION", 1_800_000_000, "Fix it")
    assert aw.account_restriction([entry], "ADULT") == {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "ADULT"},
        "restriction_info": [
            {
                "restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
                "expiration": 1_800_000_000,
                "remediation": "Fix it",
            }
        ],
    }
    # remediation only when given; the Direct Send variant has no restriction_info at all.
    assert aw.restriction_entry("X", 5) == {"restriction_type": "X", "expiration": 5}
    assert aw.account_restriction(None, "DIRECT_SEND_UTILITY_TEMPLATE_ABUSE_UNBAN") == {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_TEMPLATE_ABUSE_UNBAN"},
    }


def test_expiration_formats() -> None:
    assert aw.expiration_value(1_800_000_000.7) == 1_800_000_000
    assert aw.expiration_value(1_800_000_000.7, "string") == "1800000000"
    assert aw.expiration_value(1_800_000_000, "iso") == "2027-01-15T08:00:00+0000"


def test_ban_and_simple_account_events() -> None:
    april_17 = calendar.timegm((2025, 4, 17, 12, 0, 0))
    assert aw.ban_date_text(april_17) == "April 17, 2025"
    assert aw.ban_date_text(calendar.timegm((2025, 12, 5, 0, 0, 0))) == "December 5, 2025"
    assert aw.disabled_update("DISABLE", "April 17, 2025") == {
        "event": "DISABLED_UPDATE",
        "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "April 17, 2025"},
    }
    assert aw.account_violation("SCAM") == {
        "event": "ACCOUNT_VIOLATION",
        "violation_info": {"violation_type": "SCAM"},
    }
    assert aw.bare_event("ACCOUNT_OFFBOARDED") == {"event": "ACCOUNT_OFFBOARDED"}
    assert aw.account_review_update("DEFERRED") == {"decision": "DEFERRED"}


def test_partner_event_shapes() -> None:
    added = aw.partner_event(
        "PARTNER_ADDED",
        waba_id="2",
        owner_business_id="1",
        partner_app_id="9",
        partner_business_id="7",
    )
    assert added == {
        "event": "PARTNER_ADDED",
        "waba_info": {
            "waba_id": "2",
            "owner_business_id": "1",
            "partner_app_id": "9",
            "solution_partner_business_ids": ["7"],
        },
    }
    uninstalled = aw.partner_event(
        "PARTNER_APP_UNINSTALLED",
        waba_id="2",
        owner_business_id="1",
        partner_app_id="9",
        partner_business_id="7",
        solution_id="5",
    )
    assert uninstalled["waba_info"] == {
        "waba_id": "2",
        "owner_business_id": "1",
        "partner_app_id": "9",
    }


def test_account_alert_is_nested() -> None:
    assert aw.account_alert(
        "PHONE_NUMBER",
        "31",
        alert_type="PROFILE_PICTURE_LOST",
        alert_severity="INFORMATIONAL",
        alert_status="NONE",
        alert_description="gone",
    ) == {
        "entity_type": "PHONE_NUMBER",
        "entity_id": "31",
        "alert_info": {
            "alert_severity": "INFORMATIONAL",
            "alert_status": "NONE",
            "alert_type": "PROFILE_PICTURE_LOST",
            "alert_description": "gone",
        },
    }


def test_capability_update_keeps_facts_separate() -> None:
    assert aw.capability_update(max_phone_numbers_per_waba=25) == {"max_phone_numbers_per_waba": 25}
    assert aw.capability_update(max_phone_numbers_per_business=2) == {
        "max_phone_numbers_per_business": 2
    }
    assert aw.capability_update(max_daily_conversations_per_business="TIER_2K") == {
        "max_daily_conversations_per_business": "TIER_2K"
    }
    assert aw.tier_as_int("TIER_2K") == 2000
    assert aw.tier_as_int("TIER_UNLIMITED") == -1
    assert aw.tier_as_int("TIER_NEW") == "TIER_NEW"


def test_throughput_events() -> None:
    old = {"throughput": {"level": "STANDARD"}, "display_phone_number": "+1 555-000-0001"}
    new = {**old, "throughput": {"level": "HIGH"}}
    (upgrade,) = number_change_webhooks("21", old, new, portfolio_limit="TIER_UNLIMITED")
    assert (upgrade.field, upgrade.waba_id) == ("phone_number_quality_update", "21")
    assert upgrade.value == {
        "display_phone_number": "15550000001",
        "event": "THROUGHPUT_UPGRADE",
        "current_limit": "TIER_UNLIMITED",
        "max_daily_conversations_per_business": "TIER_UNLIMITED",
    }
    assert number_change_webhooks("21", new, old) == []  # no downgrade event exists
    onboarding = onboarding_webhook("21", "+1 555-000-0002", "TIER_250")
    assert onboarding.value == {
        "display_phone_number": "15550000002",
        "event": "ONBOARDING",
        "old_limit": "TIER_NOT_SET",
        "current_limit": "TIER_250",
        "max_daily_conversations_per_business": "TIER_250",
    }


def test_legacy_quality_events_only_when_asked() -> None:
    old = {"status": "CONNECTED", "quality_rating": "GREEN"}
    new = {"status": "FLAGGED", "quality_rating": "RED"}
    assert [w.value["event"] for w in number_change_webhooks("21", old, new)] == ["FLAGGED"]
    assert number_change_webhooks("21", old, new, legacy=False) == []


def test_envelope_entry_time_int_or_string() -> None:
    body = envelope("7", "account_update", {"event": "PARTNER_ADDED"}, "1800000000")
    assert body == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "7",
                "time": "1800000000",
                "changes": [{"value": {"event": "PARTNER_ADDED"}, "field": "account_update"}],
            }
        ],
    }


# --------------------------------------------------------------------------- node reads


async def test_waba_node_serves_every_field_the_product_reads(demo: Client) -> None:
    status, body, headers = await get_json(demo, f"{V}/{PAYMENTS_WABA}", fields=WABA_FIELDS)
    assert status == 200
    assert body == {
        "id": PAYMENTS_WABA,
        "name": "Acme Retail - Payments",
        "ownership_type": "SELF_OWNED",
        "account_review_status": "APPROVED",
        "business_verification_status": "verified",
        "health_status": {
            "can_send_message": "BLOCKED",
            "entities": [
                {
                    "entity_type": "WABA",
                    "id": PAYMENTS_WABA,
                    "can_send_message": "BLOCKED",
                    "errors": [
                        {
                            "error_code": 141006,
                            "error_description": "There is an error with the payment method.",
                            "possible_solution": ("Update the payment method in WhatsApp Manager."),
                        }
                    ],
                },
                {"entity_type": "BUSINESS", "id": ACME, "can_send_message": "AVAILABLE"},
                {"entity_type": "APP", "id": "900000000000001", "can_send_message": "AVAILABLE"},
            ],
        },
        "status": "ACTIVE",
        "owner_business_info": {"id": ACME, "name": "Acme Retail Group"},
        "whatsapp_business_manager_messaging_limit": "TIER_10K",
    }
    assert PAYMENTS_WABA in json.loads(headers["X-Business-Use-Case-Usage"])


async def test_client_waba_and_review_status(demo: Client) -> None:
    _, body, _ = await get_json(demo, f"{V}/{BISTRO_WABA}", fields=WABA_FIELDS)
    assert body["ownership_type"] == "CLIENT_OWNED"
    assert body["timezone_id"] == "67"
    assert body["whatsapp_business_manager_messaging_limit"] == "TIER_250"
    assert body["business_verification_status"] == "not_verified"
    _, pilot, _ = await get_json(demo, f"{V}/{PILOT_WABA}", fields="account_review_status")
    assert pilot == {"account_review_status": "PENDING", "id": PILOT_WABA}


async def test_business_node(demo: Client, demo_world: Any) -> None:
    for business, verification, limit in (
        (ACME, "verified", "TIER_10K"),
        (BISTRO, "not_verified", "TIER_250"),
        (HELIX, "verified", "TIER_100K"),
    ):
        status, body, headers = await get_json(demo, f"{V}/{business}", fields=BUSINESS_FIELDS)
        assert status == 200
        assert body == {
            "id": business,
            "verification_status": verification,
            "whatsapp_business_manager_messaging_limit": limit,
        }
        assert "X-App-Usage" in headers and "X-Business-Use-Case-Usage" not in headers
    assert demo_world.request_count("business") == 3


@pytest.mark.parametrize(
    ("object_id", "node_type"),
    [(MAIN_WABA, "WhatsAppBusinessAccount"), (ACME, "Business")],
)
async def test_unknown_field_on_account_nodes(demo: Client, object_id: str, node_type: str) -> None:
    status, body, _ = await get_json(demo, f"{V}/{object_id}", fields="id,quality_score")
    assert status == 400
    assert body["error"]["code"] == 100
    assert body["error"]["message"] == (
        f"(#100) Tried accessing nonexisting field (quality_score) on node type ({node_type})"
    )


async def test_numbers_report_the_portfolio_limit_and_full_health(demo: Client) -> None:
    _, page, _ = await get_json(
        demo,
        f"{V}/{BISTRO_WABA}/phone_numbers",
        fields="id,whatsapp_business_manager_messaging_limit,health_status",
    )
    assert {d["whatsapp_business_manager_messaging_limit"] for d in page["data"]} == {"TIER_250"}
    first = page["data"][0]
    assert [(e["entity_type"], e["id"]) for e in first["health_status"]["entities"]] == [
        ("PHONE_NUMBER", first["id"]),
        ("WABA", BISTRO_WABA),
        ("BUSINESS", BISTRO),
        ("APP", "900000000000001"),
    ]


async def test_number_level_limit_override_wins(client_for: Any) -> None:
    world = make_world(
        SMALL.replace(
            "throughput: {level: HIGH}}",
            "throughput: {level: HIGH}, whatsapp_business_manager_messaging_limit: TIER_1K}",
        )
    )
    client = await client_for(world)
    _, page, _ = await get_json(
        client, f"{V}/21/phone_numbers", fields="id,whatsapp_business_manager_messaging_limit"
    )
    assert [d["whatsapp_business_manager_messaging_limit"] for d in page["data"]] == [
        "TIER_1K",
        "TIER_2K",
    ]


REFUSING = """
businesses:
  - id: "11"
    verification_status: verified
    messaging_limit: TIER_2K
    refuse_node_read: true
    wabas: [{id: "21"}]
  - id: "12"
    messaging_limit: TIER_250
    refuse_node_read: {status: 400, code: 100, subcode: 33, type: GraphMethodException,
                       message: "Unsupported get request."}
    wabas: [{id: "22"}]
"""


async def test_business_may_refuse_its_node_read(client_for: Any) -> None:
    world = make_world(REFUSING)
    client = await client_for(world)
    status, body, _ = await get_json(client, f"{V}/11", fields=BUSINESS_FIELDS)
    assert status == 403
    error = body["error"]
    assert (error["code"], error["type"]) == (200, "OAuthException")
    assert error["message"] == "(#200) Requires business_management permission to manage the object"
    assert "error_subcode" not in error
    status, body, _ = await get_json(client, f"{V}/12")
    assert status == 400
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (100, 33)
    assert body["error"]["message"] == "Unsupported get request."
    assert world.request_count("business") == 2
    # The product's fallback: the WABA-level field still answers.
    _, waba, _ = await get_json(
        client, f"{V}/21", fields="id,whatsapp_business_manager_messaging_limit"
    )
    assert waba == {"id": "21", "whatsapp_business_manager_messaging_limit": "TIER_2K"}
    assert world.state()["businesses"][0]["node_read_refused"] is True
    with pytest.raises(ValueError, match="refuse_node_read: unknown key 'codes'"):
        scenario_from_yaml('businesses: [{id: "1", refuse_node_read: {codes: 1}}]')


async def test_waba_node_faults_and_budget(client_for: Any) -> None:
    world = make_world(SMALL)  # default_per_hour 3 for a WABA without a registered number
    client = await client_for(world)
    resp = await client.post(
        "/_sim/faults", json={"target": "22", "kind": "http_error", "status": 500, "code": 2}
    )
    assert resp.status == 201
    status, body, _ = await get_json(client, f"{V}/22", fields=WABA_FIELDS)
    assert (status, body["error"]["code"]) == (500, 2)
    codes = []
    for _ in range(4):
        status, body, _ = await get_json(client, f"{V}/22", fields="id")
        codes.append(body.get("error", {}).get("code", status))
    assert codes == [200, 200, 200, 80008]  # a faulted call never reached the budget
    assert world.request_count("waba", "22") == 5


async def test_unknown_enum_values_are_served_verbatim(client_for: Any) -> None:
    world = make_world(
        """
businesses:
  - id: "1"
    verification_status: pending_need_more_info
    messaging_limit: TIER_FUTURE
    health_status: {can_send_message: SOMETHING_NEW}
    wabas:
      - id: "2"
        account_review_status: LIMIT_REACHED
        ownership_type: ON_BEHALF_OF
        status: BRAND_NEW
"""
    )
    client = await client_for(world)
    _, body, _ = await get_json(client, f"{V}/2", fields=WABA_FIELDS)
    assert body["account_review_status"] == "LIMIT_REACHED"
    assert body["ownership_type"] == "ON_BEHALF_OF"
    assert body["status"] == "BRAND_NEW"
    assert body["business_verification_status"] == "pending_need_more_info"
    assert body["whatsapp_business_manager_messaging_limit"] == "TIER_FUTURE"
    assert body["health_status"]["can_send_message"] == "SOMETHING_NEW"
    assert world.clock() == T0
