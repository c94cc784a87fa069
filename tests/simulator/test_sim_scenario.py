"""Scenario parsing and validation, the demo scenario's promises, and generated fleets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from monitor import model
from monitor.simulator import (
    Scenario,
    ScenarioError,
    World,
    builtin_scenario,
    builtin_scenario_names,
    generate_scenario,
    load_scenario,
    scenario_from_yaml,
)
from monitor.simulator.fields import NUMBER_KNOWN_FIELDS
from monitor.simulator.scenario import parse_duration

MINIMAL = """
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers:
          - {id: "3", status: CONNECTED}
"""


def numbers_by_id(scenario: Scenario) -> dict[str, dict[str, Any]]:
    return {n.id: dict(n.fields) for _, n in scenario.numbers()}


# --------------------------------------------------------------------------- demo scenario


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return builtin_scenario("demo")


def test_demo_is_listed_and_default() -> None:
    assert "demo" in builtin_scenario_names()
    assert builtin_scenario() == builtin_scenario("demo")


def test_demo_businesses_have_15_digit_ids(demo: Scenario) -> None:
    assert len(demo.businesses) >= 3
    for business in demo.businesses:
        assert re.fullmatch(r"[0-9]{15}", business.id)
    assert demo.tokens == ("demo-token",)


def test_demo_has_verified_portfolio_with_high_limit(demo: Scenario) -> None:
    high = {"TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"}
    assert any(
        b.verification_status == "verified" and b.messaging_limit in high for b in demo.businesses
    )


def test_demo_has_unverified_business_at_its_cap(demo: Scenario) -> None:
    capped = [
        b
        for b in demo.businesses
        if b.verification_status != "verified" and b.messaging_limit == "TIER_250"
    ]
    assert len(capped) == 1
    numbers = [n.fields for w in capped[0].wabas for n in w.numbers]
    registered = [f for f in numbers if f.get("platform_type") == "CLOUD_API"]
    pending = [f for f in numbers if f.get("platform_type") == "NOT_APPLICABLE"]
    assert len(registered) == 2
    assert len(pending) == 1
    assert pending[0]["status"] == "PENDING"


def test_demo_solution_provider_has_foreign_client_waba(demo: Scenario) -> None:
    owner = {w.id: b.id for b, w in demo.wabas()}
    providers = [b for b in demo.businesses if b.client_wabas]
    assert providers
    for business in providers:
        for waba_id in business.client_wabas:
            assert owner[waba_id] != business.id


def test_demo_has_a_waba_over_100_numbers(demo: Scenario) -> None:
    sizes = {w.id: len(w.numbers) for _, w in demo.wabas()}
    assert max(sizes.values()) > 100
    big = max(sizes, key=lambda k: sizes[k])
    ids = [n.id for n in next(w for _, w in demo.wabas() if w.id == big).numbers]
    assert len(set(ids)) == len(ids)


def test_demo_covers_the_interesting_values(demo: Scenario) -> None:
    fields = list(numbers_by_id(demo).values())

    def having(key: str, value: Any) -> list[dict[str, Any]]:
        return [f for f in fields if f.get(key) == value]

    assert having("status", "OFFLINE")
    assert having("quality_rating", "YELLOW")
    assert having("quality_rating", "RED")
    assert having("name_status", "DECLINED")
    assert [
        f for f in fields if (f.get("health_status") or {}).get("can_send_message") == "LIMITED"
    ]
    assert [
        f for f in fields if (f.get("health_status") or {}).get("can_send_message") == "BLOCKED"
    ]
    assert [f for f in fields if (f.get("throughput") or {}).get("level") == "HIGH"]
    sparse = [
        f
        for f in fields
        if not {"throughput", "health_status", "platform_type"} & set(f) and "status" in f
    ]
    assert sparse
    names = [str(f.get("verified_name", "")) for f in fields]
    assert any('"' in n or "\\" in n for n in names)
    assert any("\\" in n for n in names)
    for f in fields:
        assert re.fullmatch(r"\+1 555-[0-9]{3}-[0-9]{4}", f["display_phone_number"])


def test_demo_timeline_uses_the_current_model(demo: Scenario) -> None:
    """No retired Flagged model: no number is FLAGGED, the timeline runs account actions."""
    timeline = demo.timeline
    assert timeline.repeat_every == 90.0
    assert timeline.events == ()
    assert all(n.fields.get("status") != "FLAGGED" for _, n in demo.numbers())
    assert [(e.at, e.action.kind, e.once) for e in timeline.actions] == [
        (5.0, "restrict_waba", True),
        (8.0, "record_violation", True),
        (10.0, "ban_waba", True),
        (12.0, "template_category", True),
        (15.0, "review_waba", True),
        (20.0, "security_event", True),
        (25.0, "template_quality", True),
        (26.0, "pause_template", True),
        (30.0, "account_alert", False),
        (35.0, "template_status", True),
        (40.0, "template_category", True),
        (45.0, "account_alert", False),
        (52.0, "pause_template", True),
        (62.0, "template_status", True),
        (72.0, "pause_template", True),
    ]


def test_demo_world_ids_unique_across_types(demo: Scenario) -> None:
    world = World(demo)
    kinds = [world.kind_of(n.id) for _, n in demo.numbers()]
    assert set(kinds) == {"phone_number"}


# --------------------------------------------------------------------------- field sets


def test_known_number_fields_cover_exporter_fields() -> None:
    assert set(model.PHONE_NUMBER_FIELDS) <= NUMBER_KNOWN_FIELDS
    extra = {
        "new_name_status",
        "new_display_name",
        "is_on_biz_app",
        "is_pin_enabled",
        "is_preverified_number",
        "last_onboarded_time",
        "search_visibility",
        "quality_score",
        "host_platform",
        "username",
        "certificate",
    }
    assert extra <= NUMBER_KNOWN_FIELDS


# --------------------------------------------------------------------------- parsing


def test_minimal_scenario_defaults() -> None:
    scenario = scenario_from_yaml(MINIMAL)
    assert scenario.tokens == ("demo-token",)
    assert scenario.rejected_fields == ("unified_cert_status",)
    assert scenario.edge_omits_fields == ()
    assert scenario.budget.default_per_hour == 200
    assert scenario.budget.active_per_hour == 5000
    assert scenario.budget.window_seconds == 3600.0
    assert scenario.businesses[0].wabas[0].name == "WABA 2"


def test_load_scenario_from_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL + "tokens: [a, b]\n", encoding="utf-8")
    assert load_scenario(path).tokens == ("a", "b")


def test_shorthand_nested_values_normalised() -> None:
    scenario = scenario_from_yaml(
        """
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers:
          - {id: "3", throughput: HIGH, health_status: LIMITED, quality_score: RED}
          - id: "4"
            throughput: {level: STANDARD}
            health_status: {can_send_message: BLOCKED, errors: [{error_code: 1}]}
"""
    )
    numbers = numbers_by_id(scenario)
    assert dict(numbers["3"]["throughput"]) == {"level": "HIGH"}
    assert dict(numbers["3"]["health_status"]) == {"can_send_message": "LIMITED"}
    assert dict(numbers["3"]["quality_score"]) == {"score": "RED"}
    assert numbers["4"]["health_status"]["errors"][0]["error_code"] == 1


def test_generate_with_template_and_id_start() -> None:
    scenario = scenario_from_yaml(
        """
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers: [{id: "5", status: CONNECTED}]
        generate:
          count: 12
          id_start: "1000"
          display_phone_number: "+1 555-777-{n:04}"
          verified_name: "Line {n}"
          status: CONNECTED
"""
    )
    numbers = scenario.businesses[0].wabas[0].numbers
    assert [n.id for n in numbers][:3] == ["5", "1000", "1001"]
    assert numbers[-1].id == "1011"
    assert numbers[-1].fields["display_phone_number"] == "+1 555-777-0012"
    assert numbers[-1].fields["verified_name"] == "Line 12"


def test_generate_default_ids_are_derived_from_waba() -> None:
    scenario = scenario_from_yaml(
        'businesses: [{id: "1", wabas: [{id: "200", generate: {count: 2}}]}]'
    )
    ids = [n.id for n in scenario.businesses[0].wabas[0].numbers]
    assert ids == ["20000001", "20000002"]
    assert scenario.number("20000002").fields["display_phone_number"] == "+1 555-200-0002"


def test_extra_fields_kept_verbatim_and_become_known() -> None:
    scenario = scenario_from_yaml(
        """
businesses:
  - id: "1"
    wabas:
      - id: "2"
        numbers: [{id: "3", extra: {custom_flag: {a: [1, 2]}}}]
"""
    )
    assert scenario.number("3").fields["custom_flag"]["a"] == (1, 2)
    assert "custom_flag" in World(scenario).known_fields("WhatsAppBusinessPhoneNumber")


def test_x_keys_hold_anchors_and_are_ignored() -> None:
    scenario = scenario_from_yaml(
        """
x-defaults: &d {status: CONNECTED, quality_rating: GREEN}
businesses:
  - id: "1"
    wabas: [{id: "2", numbers: [{<<: *d, id: "3", quality_rating: RED}]}]
"""
    )
    assert dict(scenario.number("3").fields) == {"status": "CONNECTED", "quality_rating": "RED"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tokens: [x]\n", "missing key 'businesses'"),
        ("businesses: []\nbogus: 1\n", "unknown key 'bogus'"),
        ("businesses: {}\n", "businesses: expected a list"),
        ("businesses: [{name: x}]\n", r"businesses\[0\]: missing key 'id'"),
        ('businesses: [{id: "1b"}]\n', r"businesses\[0\]\.id: expected a numeric id"),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", qualty_rating: RED}]}]}]',
            r"businesses\[0\]\.wabas\[0\]\.numbers\[0\]: unknown key 'qualty_rating'",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", status: 7}]}]}]',
            r"numbers\[0\]\.status: expected a string, got int",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", '
            "is_official_business_account: yes-ish}]}]}]",
            r"is_official_business_account: expected true or false",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", host_platform: X}]}]}]',
            "alias of platform_type",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", throughput: {x: 1}}]}]}]',
            r"throughput: missing key 'level'",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3", status: null}]}]}]',
            "null is not allowed",
        ),
        ('businesses: [{id: "1", wabas: [{id: "1"}]}]', "already used by businesses"),
        (
            'businesses: [{id: "1", wabas: [{id: "2", numbers: [{id: "3"}, {id: "3"}]}]}]',
            "id '3' is already used",
        ),
        ('businesses: [{id: "1", client_wabas: ["9"]}]', "'9' is not a WABA"),
        (
            'businesses: [{id: "1", client_wabas: ["2"], wabas: [{id: "2"}]}]',
            "owned by this same business",
        ),
        ('businesses: [{id: "1", wabas: [{id: "2", bogus: 1}]}]', r"wabas\[0\]: unknown key"),
        (
            'businesses: [{id: "1", wabas: [{id: "2", generate: {count: -1}}]}]',
            r"generate\.count: expected an integer >= 0",
        ),
        (
            'businesses: [{id: "1", wabas: [{id: "2", generate: {count: 1, id: "5"}}]}]',
            "id_start",
        ),
        ("businesses: []\nbudget: {default_per_hour: 0}\n", r"budget\.default_per_hour"),
        ("businesses: []\nbudget: {per_day: 1}\n", "unknown key 'per_day'"),
        ("businesses: []\ntokens: []\n", "at least one non-empty token"),
        ("businesses: []\nedge_omits_fields: [nope]\n", r"edge_omits_fields\[0\]"),
        ("businesses: []\ntimeline: {repeat_every: soon}\n", "cannot parse duration"),
        (
            "businesses: []\ntimeline: {events: [{at: 1s, number: '3', set: {status: X}}]}\n",
            "unknown number '3'",
        ),
        (
            MINIMAL + "timeline: {repeat_every: 10s, events: [{at: 10s, number: '3', set: {}}]}\n",
            "must be less than repeat_every",
        ),
        (
            MINIMAL + "timeline: {events: [{at: 1s, number: '3', set: {}}]}\n",
            "must set at least one field",
        ),
        (MINIMAL + "timeline: {events: [{at: 1s, number: '3'}]}\n", "missing key 'set'"),
        ("businesses: [\n", "not valid YAML"),
        ("- just a list\n", "top level: expected a mapping"),
    ],
)
def test_validation_errors_name_the_bad_key(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        scenario_from_yaml(text)


def test_load_scenario_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("businesses: []\nwat: 1\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: top level: unknown key 'wat'"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")


def test_scenario_error_is_value_error() -> None:
    assert issubclass(ScenarioError, ValueError)


@pytest.mark.parametrize("name", ["nope", "../demo", "DEMO"])
def test_unknown_builtin(name: str) -> None:
    with pytest.raises(ScenarioError, match="no built-in scenario"):
        builtin_scenario(name)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (1.5, 1.5), ("30s", 30.0), ("1m30s", 90.0), ("250ms", 0.25), ("1h", 3600.0)],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", ["", "5 s", "5d", "-5s", True, None, -1])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ScenarioError):
        parse_duration(value, "x")


# --------------------------------------------------------------------------- generate_scenario


def test_generate_scenario_is_deterministic() -> None:
    a = generate_scenario(businesses=2, wabas_per_business=3, numbers_per_waba=40, seed=7)
    b = generate_scenario(businesses=2, wabas_per_business=3, numbers_per_waba=40, seed=7)
    c = generate_scenario(businesses=2, wabas_per_business=3, numbers_per_waba=40, seed=8)
    assert numbers_by_id(a) == numbers_by_id(b)
    assert [x.id for x in a.businesses] == [x.id for x in b.businesses]
    assert numbers_by_id(a).keys() == numbers_by_id(c).keys()
    assert numbers_by_id(a) != numbers_by_id(c)


def test_generate_scenario_shape_and_fields() -> None:
    scenario = generate_scenario(
        businesses=3, wabas_per_business=2, numbers_per_waba=5, token="bench"
    )
    assert scenario.tokens == ("bench",)
    assert len(scenario.businesses) == 3
    assert sum(1 for _ in scenario.wabas()) == 6
    numbers = numbers_by_id(scenario)
    assert len(numbers) == 30
    all_ids = [b.id for b in scenario.businesses] + [w.id for _, w in scenario.wabas()]
    all_ids += list(numbers)
    assert len(set(all_ids)) == len(all_ids)
    computed = {"webhook_configuration"}  # served from the WABA's routing, not stored
    for fields in numbers.values():
        for name in model.PHONE_NUMBER_FIELDS:
            assert name == "id" or name in fields or name in computed, name
    world = World(scenario)
    assert all(world.is_active(w.id) for _, w in scenario.wabas())


def test_generate_scenario_rejects_bad_sizes() -> None:
    with pytest.raises(ScenarioError):
        generate_scenario(businesses=-1, wabas_per_business=1, numbers_per_waba=1)
    with pytest.raises(ScenarioError):
        generate_scenario(businesses=1, wabas_per_business=1, numbers_per_waba=1, token="")
