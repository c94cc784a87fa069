"""Account-health webhooks with Meta's payload shapes (account-health-facts §2.2 to §2.7), through
the envelope and each field's handler, with the fake sink: what is staged, re-polled,
discovered, and what a change resolves to."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.accounts import Restriction
from monitor.webhooks.contract import Outcome
from monitor.webhooks.envelope import change_key, parse_body
from monitor.webhooks.handlers import dispatch
from tests.fakesink import BUSINESS, NUMBER_ID, WABA, FakeSink

PARTNER = "730000000000001"  # the solution partner's portfolio: entry.id of partner events
T = 1_790_000_000  # entry.time
EXPIRY = 1_893_456_000  # 2030-01-01T00:00:00Z


def deliver(sink: FakeSink, field_name: str, value: dict[str, Any], *, entry: str = WABA,
            time: object = T) -> Outcome:
    """One change as Meta sends it: parsed (the WABA resolved), keyed, dispatched."""
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": entry, "time": time,
                       "changes": [{"field": field_name, "value": value}]}]}
    (change,) = parse_body(json.dumps(body).encode()).changes
    return dispatch(dataclasses.replace(change, key=change_key(change)), sink)


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


# --------------------------------------------------------------------------- account_update


@pytest.mark.parametrize("expiration", [EXPIRY, str(EXPIRY), "2030-01-01T00:00:00Z",
                                        "2030-01-01T00:00:00+00:00"])
def test_restriction_with_its_expiry_in_any_of_metas_forms(sink: FakeSink,
                                                           expiration: object) -> None:
    value = {"event": "ACCOUNT_RESTRICTION", "restriction_info": [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": expiration},
        {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": expiration,
         "remediation": "Review the policy"}]}
    outcome = deliver(sink, "account_update", value)
    assert outcome.result == "applied"
    facts = sink.fact()
    assert facts.restrictions == (
        Restriction("RESTRICTED_ADD_PHONE_NUMBER_ACTION", float(EXPIRY)),
        Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", float(EXPIRY)))
    assert facts.events == {"ACCOUNT_RESTRICTION": float(T)}
    assert len(facts.applied) == 1
    assert sink.repolls == [(WABA, "account_update")]
    assert sink.discoveries == []


def test_a_restriction_with_an_unreadable_expiry_has_no_known_end(sink: FakeSink) -> None:
    value = {"event": "ACCOUNT_RESTRICTION", "restriction_info": [
        {"restriction_type": "RESTRICTED_USER_INITIATED_CALLING", "expiration": "<unix>"}]}
    assert deliver(sink, "account_update", value).result == "applied"
    assert sink.fact().restrictions == (Restriction("RESTRICTED_USER_INITIATED_CALLING", None),)


def test_direct_send_stages_restrict_only_with_restriction_info(sink: FakeSink) -> None:
    """Facts §2.3: the presence of ``restriction_info``, not the event name, decides."""
    warn = {"event": "ACCOUNT_RESTRICTION",
            "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN"}}
    assert deliver(sink, "account_update", warn, time=T).result == "applied"
    assert sink.fact().restrictions == ()
    assert sink.fact().violations == {"DIRECT_SEND_UTILITY_CATEGORY_ABUSE_WARN": 1}
    strike = {"event": "ACCOUNT_RESTRICTION",
              "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_TEMPLATE_STRIKE_1"},
              "restriction_info": [{"restriction_type": "RESTRICTED_DIRECT_SEND_UTILITY_TEMPLATES",
                                    "expiration": EXPIRY}]}
    assert deliver(sink, "account_update", strike, time=T + 1).result == "applied"
    assert [r.restriction_type for r in sink.fact().restrictions] == [
        "RESTRICTED_DIRECT_SEND_UTILITY_TEMPLATES"]
    unban = {"event": "ACCOUNT_RESTRICTION",
             "violation_info": {"violation_type": "DIRECT_SEND_UTILITY_TEMPLATE_UNBAN"}}
    assert deliver(sink, "account_update", unban, time=T + 2).result == "applied"
    assert sink.fact().restrictions == ()
    assert sink.fact().events == {"ACCOUNT_RESTRICTION": float(T + 2)}
    assert len(sink.fact().applied) == 3


@pytest.mark.parametrize(("raw", "expected"), [
    ("April 17, 2025", datetime(2025, 4, 17, tzinfo=UTC).timestamp()),
    ("Apr 17, 2025", datetime(2025, 4, 17, tzinfo=UTC).timestamp()),
    ("sometime soon", None),
])
def test_ban_state_and_its_display_date(sink: FakeSink, raw: str,
                                        expected: float | None) -> None:
    value = {"event": "DISABLED_UPDATE",
             "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE", "waba_ban_date": raw}}
    assert deliver(sink, "account_update", value).result == "applied"
    facts = sink.fact()
    assert (facts.ban_state, facts.ban_date, facts.ban_date_text) == (
        "SCHEDULE_FOR_DISABLE", expected, raw)
    assert deliver(sink, "account_update", {"event": "DISABLED_UPDATE", "ban_info": {
        "waba_ban_state": "DISABLE", "waba_ban_date": raw}}, time=T + 1).result == "applied"
    assert sink.fact().ban_state == "DISABLE"


def test_violations_count_each_event_once(sink: FakeSink) -> None:
    value = {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}}
    assert deliver(sink, "account_update", value, time=T).result == "applied"
    assert deliver(sink, "account_update", value, time=T + 60).result == "applied"
    assert sink.fact().violations == {"ADULT": 2}


@pytest.mark.parametrize("event", ["PARTNER_ADDED", "PARTNER_APP_INSTALLED",
                                   "PARTNER_APP_UNINSTALLED", "PARTNER_REMOVED"])
def test_partner_events_find_the_waba_in_waba_info(sink: FakeSink, event: str) -> None:
    """entry.id is the partner's portfolio (facts §2.2); it used to be taken as the WABA, so
    the re-poll and the shard forwarding targeted a non-WABA."""
    info: dict[str, Any] = {"waba_id": WABA, "owner_business_id": BUSINESS,
                            "partner_app_id": "1234"}
    if event != "PARTNER_APP_UNINSTALLED":
        info |= {"solution_id": "99", "solution_partner_business_ids": [PARTNER]}
    outcome = deliver(sink, "account_update", {"event": event, "waba_info": info},
                      entry=PARTNER)
    assert outcome.result == "applied"
    assert sink.fact().events == {event: float(T)}
    assert sink.repolls == [(WABA, "account_update")]
    assert sink.discoveries == [(WABA, BUSINESS, f"account_update {event}")]


@pytest.mark.parametrize("event", ["AD_ACCOUNT_LINKED", "MM_LITE_TERMS_SIGNED"])
def test_marketing_events_resolve_the_waba_but_need_no_discovery(sink: FakeSink,
                                                                 event: str) -> None:
    value = {"event": event, "waba_info": {"waba_id": WABA, "owner_business_id": BUSINESS,
                                           "ad_account_linked": "act_1"}}
    assert deliver(sink, "account_update", value, entry=PARTNER).result == "applied"
    assert sink.fact().events == {event: float(T)}
    assert sink.discoveries == []


def test_a_partner_event_without_waba_info_is_never_invalid(sink: FakeSink) -> None:
    """entry.id may be a partner portfolio: not watched here, so discovery only."""
    outcome = deliver(sink, "account_update", {"event": "PARTNER_ADDED"}, entry=PARTNER)
    assert outcome.result == "applied"
    assert outcome.details["watched"] is False
    assert sink.discoveries == [(PARTNER, None, "account_update PARTNER_ADDED")]
    other = deliver(sink, "account_update", {"event": "MM_LITE_TERMS_SIGNED"}, entry=PARTNER)
    assert other.result == "ignored"
    assert sink.staged_facts == {} and sink.repolls == []


def test_a_new_waba_of_a_partner_event_asks_its_owner_to_discover(sink: FakeSink) -> None:
    value = {"event": "PARTNER_ADDED",
             "waba_info": {"waba_id": "888000000000001", "owner_business_id": "777"}}
    outcome = deliver(sink, "account_update", value, entry=PARTNER)
    assert outcome.result == "applied"
    assert sink.discoveries == [("888000000000001", "777", "account_update PARTNER_ADDED")]
    assert sink.staged_facts == {} and sink.repolls == []


def test_coexistence_partner_removed_names_the_waba_in_entry_id(sink: FakeSink) -> None:
    value = {"event": "PARTNER_REMOVED", "phone_number": "15550783881",
             "disconnection_info": {"reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"}}
    assert deliver(sink, "account_update", value).result == "applied"
    assert sink.discoveries == [(WABA, None, "account_update PARTNER_REMOVED")]
    assert sink.lookups == ["15550783881"]


@pytest.mark.parametrize("event", ["ACCOUNT_DELETED", "ACCOUNT_OFFBOARDED",
                                   "ACCOUNT_RECONNECTED"])
def test_deletion_and_offboarding_run_discovery_at_once(sink: FakeSink, event: str) -> None:
    assert deliver(sink, "account_update", {"event": event}).result == "applied"
    assert sink.fact().events == {event: float(T)}
    assert sink.discoveries == [(WABA, None, f"account_update {event}")]
    assert sink.repolls == [(WABA, "account_update")]


def test_an_unknown_event_is_kept_and_counted_applied(sink: FakeSink) -> None:
    outcome = deliver(sink, "account_update", {"event": "BRAND_NEW_EVENT", "x": {"y": 1}})
    assert outcome.result == "applied" and outcome.details["known_event"] is False
    assert sink.fact().events == {"BRAND_NEW_EVENT": float(T)}


def test_an_entry_without_a_usable_time_is_stamped_now(sink: FakeSink) -> None:
    assert deliver(sink, "account_update", {"event": "ACCOUNT_VIOLATION"},
                   time="soon").result == "applied"
    assert sink.fact().events == {"ACCOUNT_VIOLATION": sink.clock}
    sink2 = FakeSink()
    assert deliver(sink2, "account_update", {"event": "ACCOUNT_VIOLATION"},
                   time=str(T)).result == "applied"
    assert sink2.fact().events == {"ACCOUNT_VIOLATION": float(T)}


# --------------------------------------------------------------------------- account_review_update


@pytest.mark.parametrize("decision", ["APPROVED", "REJECTED", "PENDING", "DEFERRED"])
def test_review_decision_applies_at_once(sink: FakeSink, decision: str) -> None:
    outcome = deliver(sink, "account_review_update", {"decision": decision})
    assert outcome.result == "applied" and outcome.details["known_event"] is True
    assert (sink.fact().review_status, sink.fact().review_at) == (decision, float(T))
    assert len(sink.fact().applied) == 1


def test_an_older_review_decision_does_not_replace_a_newer_one(sink: FakeSink) -> None:
    assert deliver(sink, "account_review_update", {"decision": "APPROVED"},
                   time=T + 10).result == "applied"
    late = deliver(sink, "account_review_update", {"decision": "PENDING"}, time=T)
    assert late.result == "ignored"
    assert sink.fact().review_status == "APPROVED"


@pytest.mark.parametrize("value", [{}, {"decision": None}, {"decision": 3}, {"decision": " "}])
def test_a_review_without_a_decision_is_invalid(sink: FakeSink, value: dict[str, Any]) -> None:
    assert deliver(sink, "account_review_update", value).result == "invalid"
    assert sink.calls == 0


def test_a_review_of_a_waba_not_watched_is_ignored(sink: FakeSink) -> None:
    assert deliver(sink, "account_review_update", {"decision": "REJECTED"},
                   entry="999").result == "ignored"
    assert sink.calls == 0


# --------------------------------------------------------------------------- account_alerts


def alert(entity_type: str, entity_id: str, alert_type: str,
          severity: str = "WARNING") -> dict[str, Any]:
    return {"entity_type": entity_type, "entity_id": entity_id,
            "alert_info": {"alert_severity": severity, "alert_status": "ACTIVE",
                           "alert_type": alert_type,
                           "alert_description": "<BUSINESS_PORTFOLIO_NAME> free text"}}


def test_a_business_alert_belongs_to_the_portfolio(sink: FakeSink) -> None:
    value = alert("BUSINESS", BUSINESS, "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED")
    assert deliver(sink, "account_alerts", value).result == "applied"
    (staged,) = sink.staged_alerts
    assert (staged.business_id, staged.entity_type, staged.entity_id, staged.alert_type,
            staged.alert_severity, staged.alert_status, staged.at) == (
        BUSINESS, "BUSINESS", BUSINESS, "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
        "WARNING", "ACTIVE", float(T))
    assert sink.lookups == []
    assert len(sink.fact().applied) == 1  # the change is remembered with the WABA


def test_a_phone_number_alert_names_the_number_by_id(sink: FakeSink) -> None:
    value = alert("PHONE_NUMBER", NUMBER_ID, "OBA_REJECTED", "CRITICAL")
    outcome = deliver(sink, "account_alerts", value)
    assert outcome.result == "applied" and outcome.details["phone_number_id"] == NUMBER_ID
    (staged,) = sink.staged_alerts
    assert (staged.business_id, staged.entity_id, staged.alert_severity) == (
        BUSINESS, NUMBER_ID, "CRITICAL")
    assert sink.lookups == []


def test_a_business_alert_about_a_waba_not_watched_goes_to_a_known_portfolio(
    sink: FakeSink,
) -> None:
    value = alert("BUSINESS", BUSINESS, "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO")
    assert deliver(sink, "account_alerts", value, entry="999").result == "applied"
    assert [a.business_id for a in sink.staged_alerts] == [BUSINESS]
    assert sink.repolls == [] and sink.staged_facts == {}
    unknown = alert("BUSINESS", "123", "OBA_APPROVED")
    assert deliver(sink, "account_alerts", unknown, entry="999").result == "ignored"


def test_an_alert_without_entity_id_falls_back_to_its_business(sink: FakeSink) -> None:
    value = alert("BUSINESS", BUSINESS, "OBA_APPROVED", "INFORMATIONAL")
    del value["entity_id"]
    assert deliver(sink, "account_alerts", value).result == "applied"
    assert sink.staged_alerts[0].entity_id == BUSINESS


# --------------------------------------------------------------------------- capability, quality


def test_metas_capability_example_sets_the_waba_cap_and_the_limit_not_the_business_cap(
    sink: FakeSink,
) -> None:
    value = {"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25}
    assert deliver(sink, "business_capability_update", value).result == "applied"
    assert sink.staged_caps == [] and sink.caps == []
    assert sink.fact().phone_numbers_cap == 25
    assert sink.limits == [(WABA, "TIER_2K", "max_daily_conversations_per_business")]
    assert sink.repolls == [(WABA, "business_capability_update")]


@pytest.mark.parametrize(("value", "limit"), [
    ({"event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_100K",
      "max_daily_conversations_per_business": "TIER_UNLIMITED"},
     ("TIER_UNLIMITED", "max_daily_conversations_per_business")),
    ({"event": "THROUGHPUT_UPGRADE", "old_limit": "TIER_100K", "current_limit": "TIER_UNLIMITED"},
     ("TIER_UNLIMITED", "current_limit")),
    ({"event": "ONBOARDING", "old_limit": "TIER_NOT_SET", "current_limit": "TIER_250",
      "max_daily_conversations_per_business": "TIER_250"},
     ("TIER_250", "max_daily_conversations_per_business")),
    ({"event": "ONBOARDING", "current_limit": "TIER_NOT_SET"}, None),
    ({"event": "DOWNGRADE", "current_limit": "TIER_250"}, None),
    ({"event": "FLAGGED", "current_limit": "TIER_1K"}, None),
])
def test_quality_update_is_throughput_and_carries_the_portfolio_limit(
    sink: FakeSink, value: dict[str, Any], limit: tuple[str, str] | None,
) -> None:
    outcome = deliver(sink, "phone_number_quality_update",
                      {"display_phone_number": "15550783881", **value})
    assert outcome.result == "applied"
    assert outcome.details["legacy_event"] is (value["event"] in ("DOWNGRADE", "FLAGGED"))
    assert sink.limits == ([] if limit is None else [(WABA, *limit)])
    assert sink.repolls == [(WABA, "phone_number_quality_update")]


def test_an_alert_with_status_none_raises_nothing(sink: FakeSink) -> None:
    value = alert("BUSINESS", BUSINESS, "OBA_REJECTED", "CRITICAL")
    value["alert_info"]["alert_status"] = "NONE"
    outcome = deliver(sink, "account_alerts", value)
    assert outcome.result == "ignored" and sink.staged_alerts == []
