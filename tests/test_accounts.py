"""Portfolio and WABA health (Oct 2025 model): parsers of nodes and webhook facts, and the
families the store renders from them."""

from __future__ import annotations

import math
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.accounts import (
    AccountAlert,
    WabaFacts,
    apply_account_update,
    apply_review,
    facts_from_json,
    facts_to_json,
    limit_tier,
    parse_account_alert,
    parse_business_node,
    parse_waba_node,
    review_status,
    timestamp,
)
from monitor.config import load_settings
from monitor.model import BusinessState, PhoneNumber, WabaState, parse_phone_number
from monitor.runtime import exposition_options
from monitor.store import Store
from tests.conftest import write_config

HEALTH = {
    "can_send_message": "BLOCKED",
    "entities": [
        {"entity_type": "PHONE_NUMBER", "id": "301", "can_send_message": "AVAILABLE"},
        {"entity_type": "WABA", "id": "201", "can_send_message": "BLOCKED",
         "errors": [{"error_code": 141010, "error_description": "x", "possible_solution": "y"}]},
        {"entity_type": "BUSINESS", "id": "101", "can_send_message": "LIMITED"},
        {"entity_type": "APP", "id": "9", "can_send_message": "AVAILABLE"},
    ],
}


def k(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


def test_limit_tier_and_timestamps_take_every_shape_meta_sends() -> None:
    assert [limit_tier(v) for v in ("TIER_2K", 2000, "2000", -1, 250, "TIER_5K", True, None)] == [
        "TIER_2K", "TIER_2K", "TIER_2K", "TIER_UNLIMITED", "TIER_250", "TIER_5K", None, None]
    assert timestamp(1_767_225_600) == 1_767_225_600.0
    assert timestamp("1767225600") == 1_767_225_600.0
    assert timestamp("2026-01-01T00:00:00Z") == 1_767_225_600.0
    assert timestamp("January 1, 2026") == 1_767_225_600.0
    assert timestamp("soon") is None and timestamp(True) is None and timestamp(1e300) is None


def test_waba_node_keeps_review_health_errors_and_owner() -> None:
    node = parse_waba_node({
        "id": "201", "name": "Acme", "ownership_type": "CLIENT_OWNED", "timezone_id": "1",
        "account_review_status": "SOMETHING_NEW", "health_status": HEALTH,
        "owner_business_info": {"id": "101", "name": "Acme Inc"},
        "whatsapp_business_manager_messaging_limit": "TIER_10K",
    }, at=5.0)
    assert (node.name, node.ownership_type, node.account_review_status) == (
        "Acme", "CLIENT_OWNED", "SOMETHING_NEW")  # an unknown value is kept as it came
    assert node.owner_business_id == "101" and node.messaging_limit == "TIER_10K"
    assert [(e.entity_type, e.entity_id, e.error_code) for e in node.health_errors] == [
        ("WABA", "201", "141010"), ("BUSINESS", "101", "unknown")]
    assert parse_business_node({"verification_status": "VERIFIED"}).verification_status == (
        "verified")
    odd = parse_waba_node({"health_status": "BLOCKED", "name": ["x"]}, at=0.0)
    assert odd.health_errors == () and odd.name is None  # odd shapes yield nothing, no error


def test_restrictions_come_and_go_by_restriction_info_not_by_event_name() -> None:
    facts = apply_account_update(WabaFacts(), {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": "1767225600"},
            {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION"},
        ]}, at=10.0)
    assert [(r.restriction_type, r.expires_at) for r in facts.restrictions] == [
        ("RESTRICTED_ADD_PHONE_NUMBER_ACTION", None),
        ("RESTRICTED_BIZ_INITIATED_MESSAGING", 1_767_225_600.0)]
    warned = apply_account_update(facts, {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN"}}, 11.0)
    assert warned.restrictions == facts.restrictions  # a warning restricts nothing new
    assert warned.violations == {"DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN": 1}
    lifted = apply_account_update(warned, {
        "event": "ACCOUNT_RESTRICTION",
        "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_TEMPLATE_UNBAN"}}, 12.0)
    assert lifted.restrictions == ()
    assert lifted.events == {"ACCOUNT_RESTRICTION": 12.0}
    assert facts.active_restrictions(2e9) == facts.restrictions[:1]  # the dated one expired


def test_ban_review_violation_and_unknown_events() -> None:
    facts = apply_account_update(WabaFacts(), {
        "event": "DISABLED_UPDATE",
        "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE", "waba_ban_date": "April 17, 2026"},
    }, at=1.0)
    assert (facts.ban_state, facts.ban_date_text) == ("SCHEDULE_FOR_DISABLE", "April 17, 2026")
    assert facts.ban_date == timestamp("2026-04-17T00:00:00Z")
    facts = apply_account_update(facts, {"event": "ACCOUNT_VIOLATION",
                                         "violation_info": {"violation_type": "ADULT"}}, 2.0)
    facts = apply_account_update(facts, {"event": "ACCOUNT_VIOLATION",
                                         "violation_info": {"violation_type": "ADULT"}}, 3.0)
    facts = apply_account_update(facts, {"event": "BRAND_NEW_EVENT"}, 4.0)
    assert facts.violations == {"ADULT": 2}
    assert facts.events == {"DISABLED_UPDATE": 1.0, "ACCOUNT_VIOLATION": 3.0,
                            "BRAND_NEW_EVENT": 4.0}
    reviewed = apply_review(facts, {"decision": "DEFERRED"}, at=9.0)
    assert reviewed is not None and reviewed.review_status == "DEFERRED"
    assert apply_review(facts, {}, at=9.0) is None
    assert facts_from_json(facts_to_json(reviewed.remember("k1"))) == reviewed.remember("k1")
    node = parse_waba_node({"account_review_status": "APPROVED"}, at=10.0)
    assert review_status(node, reviewed) == "APPROVED"  # the node read is newer
    assert review_status(parse_waba_node({}, at=1.0), reviewed) == "DEFERRED"


def test_account_alert_entity_is_an_id_never_a_display_number() -> None:
    alert = parse_account_alert("101", {
        "entity_type": "PHONE_NUMBER", "entity_id": "301",
        "alert_info": {"alert_severity": "CRITICAL", "alert_status": "ACTIVE",
                       "alert_type": "OBA_REJECTED", "alert_description": "free text"}}, 7.0)
    assert alert == AccountAlert("101", "PHONE_NUMBER", "301", "OBA_REJECTED", "CRITICAL",
                                 "ACTIVE", 7.0)
    flat = {"entity_type": "BUSINESS", "alert_type": "X"}  # the wrong (flat) SDK shape
    assert parse_account_alert("101", flat, 7.0) is None


def fleet_store(now: list[float]) -> Store:
    store = Store(clock=lambda: now[0])
    store.put_business(BusinessState("101", verification_status="pending_need_more_info",
                                     messaging_limit="TIER_2K", messaging_limit_source="business"))
    number = parse_phone_number({"id": "301", "status": "CONNECTED", "health_status": HEALTH})
    store.put_waba(WabaState("101", "201", numbers=(number,), up=True, polled=True))
    return store


def test_store_renders_portfolio_waba_and_alert_families() -> None:
    now = [1_000.0]
    store = fleet_store(now)
    store.put_waba_node("201", parse_waba_node({
        "name": 'Acme "EU"', "ownership_type": "SELF_OWNED", "timezone_id": "42",
        "account_review_status": "PENDING", "health_status": HEALTH}, at=900.0))
    facts = apply_account_update(WabaFacts(), {
        "event": "ACCOUNT_RESTRICTION", "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 2_000},
            {"restriction_type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"}]}, at=950.0)
    facts = apply_account_update(facts, {"event": "DISABLED_UPDATE", "ban_info": {
        "waba_ban_state": "DISABLE", "waba_ban_date": "garbled"}}, at=960.0)
    store.put_waba_facts("201", facts)
    store.put_account_alert(AccountAlert("101", "BUSINESS", "101",
                                         "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
                                         "WARNING", "ACTIVE", 970.0))
    text = store.body().text.decode()
    biz = {"business_id": "101"}
    waba = {"business_id": "101", "waba_id": "201"}
    assert samples(text, "whatsapp_business_messaging_limit_per_day") == {k(**biz): 2000.0}
    assert samples(text, "whatsapp_business_messaging_limit_tier")[k(**biz, tier="TIER_2K")] == 1
    assert samples(text, "whatsapp_business_verification_status")[
        k(**biz, verification_status="pending_need_more_info")] == 1
    assert samples(text, "whatsapp_waba_info") == {
        k(**waba, name='Acme "EU"', ownership_type="SELF_OWNED", timezone_id="42"): 1.0}
    assert samples(text, "whatsapp_waba_account_review_status")[k(**waba, status="PENDING")] == 1
    assert samples(text, "whatsapp_health_status_error") == {
        k(**waba, entity_type="BUSINESS", entity_id="101", error_code="unknown"): 1.0,
        k(**waba, entity_type="WABA", entity_id="201", error_code="141010"): 1.0,
    }  # the node and the number repeat the same entities: each error once
    assert samples(text, "whatsapp_waba_ban_state")[k(**waba, state="DISABLE")] == 1
    assert "whatsapp_waba_ban_date_timestamp_seconds" not in text  # unreadable: absent
    restrictions = samples(text, "whatsapp_waba_restriction_expiry_timestamp_seconds")
    assert restrictions == {
        k(**waba, restriction_type="RESTRICTED_BIZ_INITIATED_MESSAGING"): 2000.0,
        k(**waba, restriction_type="RESTRICTED_CUSTOMER_INITIATED_MESSAGING"): math.inf}
    assert samples(text, "whatsapp_waba_account_event_timestamp_seconds") == {
        k(**waba, event="ACCOUNT_RESTRICTION"): 950.0, k(**waba, event="DISABLED_UPDATE"): 960.0}
    assert samples(text, "whatsapp_account_alert_timestamp_seconds") == {
        k(**biz, entity_type="BUSINESS", entity_id="101", alert_severity="WARNING",
          alert_type="INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED"): 970.0}
    now[0] = 2_500.0  # the dated restriction has ended: its series goes without a new poll
    later = samples(store.body().text.decode(),
                    "whatsapp_waba_restriction_expiry_timestamp_seconds")
    assert list(later) == [k(**waba, restriction_type="RESTRICTED_CUSTOMER_INITIATED_MESSAGING")]


def test_a_waba_with_nothing_known_has_only_its_info_series() -> None:
    store = Store()
    store.put_business(BusinessState("101"))
    store.put_waba(WabaState("101", "201", numbers=(PhoneNumber(id="301"),), up=True))
    text = store.body().text.decode()
    # Only the info series, without the labels the node has not told yet (alerts join it).
    assert samples(text, "whatsapp_waba_info") == {k(business_id="101", waba_id="201"): 1.0}
    for name in ("whatsapp_waba_ban_state", "whatsapp_health_status_error",
                 "whatsapp_business_messaging_limit_per_day",
                 "whatsapp_business_verification_status", "whatsapp_waba_violations_total"):
        assert name not in text  # absent, never a made-up 0


def test_the_portfolio_limit_falls_back_to_what_the_numbers_report() -> None:
    store = Store()
    store.put_business(BusinessState("101"))
    numbers = tuple(PhoneNumber(id=str(i), messaging_limit=tier)
                    for i, tier in enumerate(["TIER_10K", "TIER_10K", "TIER_1K"]))
    store.put_waba(WabaState("101", "201", numbers=numbers, up=True))
    text = store.body().text.decode()
    assert samples(text, "whatsapp_business_messaging_limit_per_day") == {
        (("business_id", "101"),): 10_000.0}


def test_deprecated_per_number_limit_is_served_only_when_included(tmp_path: Path) -> None:
    base = {"businesses": [{"id": "101", "wabas": ["201"]}]}
    default = exposition_options(load_settings(write_config(tmp_path, base), environ={}))
    assert default.families is not None
    assert "whatsapp_phone_number_messaging_limit_tier" not in default.families
    assert "whatsapp_business_messaging_limit_tier" in default.families
    asked = exposition_options(load_settings(write_config(tmp_path, {
        **base, "metrics": {"include": ["whatsapp_phone_number_messaging_limit_*",
                                        "whatsapp_business_*"]}}), environ={}))
    assert asked.families is not None
    assert "whatsapp_phone_number_messaging_limit_per_day" in asked.families


def test_check_is_critical_for_a_disabled_or_restricted_waba() -> None:
    from monitor.check import Level, evaluate

    now = [1_000.0]
    store = fleet_store(now)
    store.put_business(BusinessState("101", configured_cap=100))

    def problems() -> dict[str, Level]:
        return {f.problem: f.level for f in evaluate(store, now=now[0])
                if f.phone_number_id is None}

    assert not any("WABA" in p or "restricted" in p for p in problems())
    restricted = apply_account_update(WabaFacts(), {"event": "ACCOUNT_RESTRICTION",
                                                    "restriction_info": [{
                                                        "restriction_type": "RESTRICTED_X",
                                                        "expiration": 2_000}]}, 900.0)
    store.put_waba_facts("201", restricted)
    found = problems()
    assert found["restricted: RESTRICTED_X (until 1970-01-01 00:33 UTC)"] is Level.CRITICAL
    now[0] = 2_001.0
    assert not any(p.startswith("restricted") for p in problems())  # it ended
    store.put_waba_facts("201", apply_account_update(restricted, {
        "event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE"}}, 2_000.0))
    assert problems()["WABA disabled by Meta"] is Level.CRITICAL
    store.put_waba_node("201", parse_waba_node({"account_review_status": "REJECTED"}, 2_001.0))
    assert problems()["account review REJECTED"] is Level.WARNING
    store.put_account_alert(AccountAlert("101", "BUSINESS", "101", "OBA_REJECTED", "CRITICAL",
                                         "ACTIVE", 1_990.0))
    assert problems()["account alert OBA_REJECTED (BUSINESS 101)"] is Level.CRITICAL
    now[0] = 1_990.0 + 86_401
    assert not any(p.startswith("account alert") for p in problems())  # a day later


def test_status_page_shows_portfolio_and_waba_health() -> None:
    from monitor.web import landing_page

    now = [1_000.0]
    store = fleet_store(now)
    state = store.waba("201")
    assert state is not None
    store.put_waba(WabaState(**{**{f: getattr(state, f) for f in state.__slots__},
                                "via": "555"}))  # listed under a Solution Provider
    store.put_waba_node("201", parse_waba_node({"name": "<b>Acme</b>"}, 900.0))
    store.put_waba_facts("201", apply_account_update(WabaFacts(), {
        "event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE",
                                                 "waba_ban_date": "May 2, 2030"}}, 950.0))
    page = landing_page(store, now=lambda: now[0])
    assert "Shared messaging limit: TIER_2K (from business)" in page
    assert "verification: pending_need_more_info" in page
    assert "WABA scheduled for disabling on May 2, 2030" in page
    assert "&lt;b&gt;Acme&lt;/b&gt;" in page and "<b>Acme</b>" not in page
    assert "listed under business 555" in page


def test_status_page_lists_onboarding_and_name_decisions() -> None:
    from monitor.accounts import record_name_decision
    from monitor.web import landing_page

    now = 10 * 86_400.0
    store = Store(clock=lambda: now)
    store.put_business(BusinessState("101"))
    numbers = (PhoneNumber("1", display_phone_number="+1 555 0001", status="PENDING",
                           last_onboarded=now - 2 * 86_400),
               PhoneNumber("2", display_phone_number="+1 555 0002", status="CONNECTED",
                           last_onboarded=now - 600),
               PhoneNumber("3", display_phone_number="+1 555 0003", status="PENDING",
                           last_onboarded=now - 3_600))
    store.put_waba(WabaState("101", "201", numbers=numbers, up=True, polled=True))
    store.put_waba_facts("201", record_name_decision(WabaFacts(), "2", "REJECTED",
                                                     "NAME_FORMAT_UNACCEPTABLE"))
    page = landing_page(store, now=lambda: now)
    recent = page.split("Recently onboarded", 1)[1].split("</table>", 1)[0]
    assert recent.index("+1 555 0002") < recent.index("+1 555 0003") < recent.index("+1 555 0001")
    stuck = page.split("Still PENDING more than a day", 1)[1].split("</table>", 1)[0]
    assert "+1 555 0001" in stuck and "+1 555 0003" not in stuck  # only a day after onboarding
    assert "+1 555 0002 (WABA 201): REJECTED, reason NAME_FORMAT_UNACCEPTABLE" in page


def test_check_follows_the_security_and_sandbox_rules() -> None:
    from monitor.accounts import record_security_event
    from monitor.check import Level, evaluate

    now = 100_000.0
    store = Store(clock=lambda: now)
    store.put_business(BusinessState("101", configured_cap=100, identity_check_required=True))
    numbers = (
        PhoneNumber("1", status="PENDING", account_mode="SANDBOX", platform_type="CLOUD_API"),
        PhoneNumber("2", status="CONNECTED", name_status="EXPIRED", platform_type="CLOUD_API",
                    pin_enabled=False),
        PhoneNumber("3", status="CONNECTED", name_status="EXPIRED",
                    platform_type="NOT_APPLICABLE", callback_matches=False,
                    callback_origin="https://crm.example"),
    )
    store.put_waba(WabaState("101", "201", numbers=numbers, up=True, polled=True))
    facts = record_security_event(WabaFacts(), "2", "PIN_RESET_REQUEST", now - 3_600)
    store.put_waba_facts("201", record_security_event(facts, "1", "PIN_RESET_REQUEST",
                                                      now - 60))
    store.put_number_setting("201", "3", False)
    store.put_subscription("201", False)
    found = {(f.phone_number_id, f.problem): f.level for f in evaluate(store, now=now)}
    assert found[("1", "status PENDING [SANDBOX]")] is Level.WARNING  # never critical
    assert found[("1", "PIN reset: PIN_RESET_REQUEST in the last 24 h")] is Level.WARNING
    assert found[("2", "PIN reset: PIN_RESET_REQUEST in the last 24 h")] is Level.CRITICAL
    assert found[("2", "two-step verification off")] is Level.WARNING
    assert ("2", "display-name certificate EXPIRED (not registered yet)") not in found
    assert found[("3", "display-name certificate EXPIRED (not registered yet)")] is Level.WARNING
    assert found[("3", "webhooks go to another callback URL (https://crm.example)")] is (
        Level.WARNING)
    assert found[("3", "identity change check off (required)")] is Level.WARNING
    assert found[(None, "our app is not subscribed: no webhook arrives")] is Level.CRITICAL
