"""Contract tests: the simulator's responses validate against Meta's own OpenAPI spec.

The spec (``openapi/business-messaging-api_v23.0.yaml``, MIT, copied unchanged from Meta's
``facebook/openapi`` repository; see ``openapi/LICENSE``) is an outside reference nobody on
this project wrote. It has known gaps, so validation is deliberately relaxed:

* every ``enum`` is dropped: the spec's enums conflict with each other and with live Graph
  (phone ``status`` is ``PENDING/LINKED/UNLINKED/...`` in one schema, while real responses
  carry ``CONNECTED``, ``FLAGGED`` and even ``OFFLINE``; quality ``NA`` vs ``UNKNOWN``;
  ``code_verification_status`` ``UNVERIFIED`` vs ``NOT_VERIFIED``; Business verification is
  lowercase live);
* fields the spec lacks are tolerated (no ``additionalProperties: false``): it has no
  ``throughput``, ``health_status``, ``platform_type``, ``name_status`` on the list item, ...;
* the list item schema requires ``status``, which Graph's default field set does not include,
  so list responses are validated for requests that ask for ``status``.

Everything else (types, required keys, nesting, ``$ref``s) is enforced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from monitor import model
from monitor.simulator import (
    Fault,
    World,
    build_app,
    builtin_scenario,
    parse_action,
    scenario_from_yaml,
)
from monitor.simulator.paging import DEFAULT_LIMIT, MAX_LIMIT

SPEC_PATH = Path(__file__).parent / "openapi" / "business-messaging-api_v23.0.yaml"
SPEC_URI = "urn:meta:business-messaging-api:v23.0"
AUTH = {"Authorization": "Bearer demo-token"}
V = "/v23.0"
MAIN_WABA = "200000000000001"
FLEET_WABA = "200000000000002"
BISTRO_WABA = "200000000000003"
ACME = "100000000000001"
HELIX = "100000000000003"

LIST_PATH = "/{Version}/{WABA-ID}/phone_numbers"
NODE_PATH = "/{Version}/{Phone-Number-ID}"
WABA_PATH = "/{Version}/{WABA-ID}"
OWNED_PATH = "/{Version}/{Business-ID}/owned_whatsapp_business_accounts"
CLIENT_PATH = "/{Version}/{Business-ID}/client_whatsapp_business_accounts"
TEMPLATES_PATH = "/{Version}/{WABA-ID}/message_templates"

# The fields the spec documents for the list edge (minus unified_cert_status, which live Graph
# rejects, and the country fields, which the simulator only returns when a scenario sets them).
SPEC_LIST_FIELDS = (
    "id,display_phone_number,verified_name,status,quality_rating,code_verification_status,"
    "account_mode,host_platform,messaging_limit_tier,is_official_business_account,username"
)

Client = TestClient[Any, Any]


# --------------------------------------------------------------------------- spec loading


def _relax(node: Any, *, property_map: bool = False) -> Any:
    """Drop ``enum`` and ``additionalProperties: false`` keywords (not property names)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not property_map and (
                key == "enum" or (key == "additionalProperties" and value is False)
            ):
                continue
            child_is_map = not property_map and key in ("properties", "patternProperties")
            out[key] = _relax(value, property_map=child_is_map)
        return out
    if isinstance(node, list):
        return [_relax(v) for v in node]
    return node


class Spec:
    """The loaded, relaxed spec plus a ``$ref``-resolving registry over all of it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.raw = document
        self.relaxed = _relax(document)
        resource = Resource.from_contents(self.relaxed, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    def validator(self, pointer: str) -> jsonschema.Draft202012Validator:
        """A validator for the schema at JSON pointer ``pointer`` (e.g. ``/components/...``)."""
        return jsonschema.Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self.registry
        )

    def response_pointer(self, path: str, status: int) -> str:
        """Pointer to the JSON schema the spec declares for ``GET path`` → ``status``."""
        escaped = path.replace("~", "~0").replace("/", "~1")
        responses = self.raw["paths"][path]["get"]["responses"]
        assert str(status) in responses, f"spec declares no {status} for GET {path}"
        return f"/paths/{escaped}/get/responses/{status}/content/application~1json/schema"

    def response_validator(self, path: str, status: int) -> jsonschema.Draft202012Validator:
        return self.validator(self.response_pointer(path, status))


@pytest.fixture(scope="module")
def spec() -> Spec:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as handle:
        document = yaml.load(handle, Loader=loader)  # noqa: S506 - a SafeLoader variant
    assert document["openapi"].startswith("3.1")
    return Spec(document)


@pytest.fixture
def world() -> World:
    return World(builtin_scenario())


@pytest.fixture
async def client(aiohttp_client: Any, world: World) -> Client:
    result: Client = await aiohttp_client(build_app(world))
    return result


async def fetch(
    client: Client, path: str, *, headers: dict[str, str] | None = None, **params: str
) -> tuple[int, Any, Any]:
    resp = await client.get(path, params=params, headers=AUTH if headers is None else headers)
    return resp.status, await resp.json(content_type=None), resp.headers


def assert_valid(validator: jsonschema.Draft202012Validator, instance: Any) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


# --------------------------------------------------------------------------- sanity of the harness


def test_spec_is_the_pristine_copy_with_license() -> None:
    assert (SPEC_PATH.parent / "LICENSE").read_text().startswith("MIT License")
    assert SPEC_PATH.stat().st_size > 1_000_000


def test_relaxed_validators_still_reject_wrong_shapes(spec: Spec) -> None:
    """Guard against a vacuous harness: broken refs or over-relaxing would accept anything."""
    listing = spec.response_validator(LIST_PATH, 200)
    assert not listing.is_valid({"data": {"oops": 1}})
    assert not listing.is_valid({"paging": {}})
    assert not listing.is_valid({"data": [{"id": 1, "display_phone_number": "x", "status": "A"}]})
    assert not listing.is_valid({"data": [{"id": "1", "status": "CONNECTED"}]})  # no display
    assert not listing.is_valid({"data": [], "paging": {"cursors": {"after": 5}}})
    assert listing.is_valid(
        {"data": [{"id": "1", "display_phone_number": "x", "status": "OFFLINE"}]}
    )
    node = spec.response_validator(NODE_PATH, 200)
    assert not node.is_valid({"id": "1", "quality_rating": 3})
    assert node.is_valid({"id": "1", "quality_rating": "UNKNOWN", "throughput": {"level": "X"}})
    error = spec.response_validator(NODE_PATH, 400)
    assert not error.is_valid({"error": {"message": "m", "type": "OAuthException"}})  # no code
    assert not error.is_valid({"error": {"message": "m", "type": "t", "code": "100"}})
    assert not error.is_valid({"message": "m"})


def test_paging_parameters_match_spec(spec: Spec) -> None:
    params = spec.raw["paths"][LIST_PATH]["get"]["parameters"]
    limit = next(p for p in params if p.get("name") == "limit")["schema"]
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (DEFAULT_LIMIT, 1, MAX_LIMIT)
    names = {p.get("name") for p in params}
    assert {"fields", "limit", "after", "before"} <= names


# --------------------------------------------------------------------------- success responses


async def pages(client: Client, waba: str, fields: str, limit: str) -> list[Any]:
    out = []
    status, body, _ = await fetch(client, f"{V}/{waba}/phone_numbers", fields=fields, limit=limit)
    while True:
        assert status == 200
        out.append(body)
        after = body.get("paging", {}).get("next") and body["paging"]["cursors"]["after"]
        if not after:
            return out
        status, body, _ = await fetch(
            client, f"{V}/{waba}/phone_numbers", fields=fields, limit=limit, after=after
        )


@pytest.mark.parametrize(
    "fields",
    [SPEC_LIST_FIELDS, ",".join(model.PHONE_NUMBER_FIELDS), "id,display_phone_number,status"],
)
@pytest.mark.parametrize("waba", [MAIN_WABA, FLEET_WABA, BISTRO_WABA])
async def test_phone_number_list_matches_spec(
    spec: Spec, client: Client, fields: str, waba: str
) -> None:
    validator = spec.response_validator(LIST_PATH, 200)
    bodies = await pages(client, waba, fields, "50")
    assert sum(len(b["data"]) for b in bodies) > 0
    for body in bodies:
        assert_valid(validator, body)


async def test_phone_number_list_last_page_and_previous_match_spec(
    spec: Spec, client: Client
) -> None:
    bodies = await pages(client, FLEET_WABA, "id,display_phone_number,status", "100")
    assert len(bodies) == 2
    assert "previous" in bodies[1]["paging"]
    assert "next" not in bodies[1]["paging"]
    for body in bodies:
        assert_valid(spec.response_validator(LIST_PATH, 200), body)


async def test_empty_phone_number_list_matches_spec(spec: Spec, aiohttp_client: Any) -> None:
    world = World(scenario_from_yaml('businesses: [{id: "1", wabas: [{id: "2"}]}]'))
    client: Client = await aiohttp_client(build_app(world))
    status, body, _ = await fetch(client, f"{V}/2/phone_numbers")
    assert status == 200
    assert_valid(spec.response_validator(LIST_PATH, 200), body)


@pytest.mark.parametrize(
    "number",
    [
        "300000000000001",
        "300000000000002",
        "300000000000004",
        "300000000000006",
        "300000000000007",
        "300000000000013",
        "300000000000021",
        "310000000000130",
    ],
)
@pytest.mark.parametrize(
    "fields",
    [
        None,
        "id,display_phone_number,verified_name,quality_rating,name_status,code_verification_status",
        ",".join(model.PHONE_NUMBER_FIELDS),
    ],
)
async def test_phone_number_node_matches_spec(
    spec: Spec, client: Client, number: str, fields: str | None
) -> None:
    params = {} if fields is None else {"fields": fields}
    status, body, _ = await fetch(client, f"{V}/{number}", **params)
    assert status == 200
    assert body["id"] == number
    assert_valid(spec.response_validator(NODE_PATH, 200), body)


@pytest.mark.parametrize("waba", [MAIN_WABA, BISTRO_WABA])
async def test_waba_node_matches_spec(spec: Spec, client: Client, waba: str) -> None:
    status, body, _ = await fetch(
        client,
        f"{V}/{waba}",
        fields="id,name,currency,timezone_id,business_verification_status,"
        "owner_business_info,health_status,whatsapp_business_manager_messaging_limit",
    )
    assert status == 200
    assert_valid(spec.response_validator(WABA_PATH, 200), body)


async def test_waba_edges_match_spec(spec: Spec, client: Client) -> None:
    status, owned, _ = await fetch(client, f"{V}/{ACME}/owned_whatsapp_business_accounts")
    assert status == 200
    assert len(owned["data"]) == 7
    assert_valid(spec.response_validator(OWNED_PATH, 200), owned)
    status, clients, _ = await fetch(
        client,
        f"{V}/{HELIX}/client_whatsapp_business_accounts",
        fields="id,name,owner_business_info",
    )
    assert status == 200
    assert len(clients["data"]) == 1
    assert_valid(spec.response_validator(CLIENT_PATH, 200), clients)


async def test_message_templates_edge_matches_spec(spec: Spec, client: Client) -> None:
    status, body, _ = await fetch(
        client,
        f"{V}/{MAIN_WABA}/message_templates",
        fields="id,name,language,status,category,quality_score,rejected_reason,previous_category",
        summary="total_count,message_template_count,message_template_limit",
        limit="2",
    )
    assert status == 200
    assert len(body["data"]) == 2 and "next" in body["paging"]
    assert_valid(spec.response_validator(TEMPLATES_PATH, 200), body)


async def test_usage_headers_match_spec_example(spec: Spec, client: Client) -> None:
    """Our header JSON has the same shape as the example in the spec's header components."""
    headers_spec = spec.raw["components"]["headers"]
    buc_example = json.loads(headers_spec["x-business-use-case-usage"]["schema"]["example"])
    app_example = json.loads(headers_spec["x-app-usage"]["schema"]["example"])
    _, _, headers = await fetch(client, f"{V}/{MAIN_WABA}/phone_numbers")
    buc = json.loads(headers["X-Business-Use-Case-Usage"])
    app = json.loads(headers["X-App-Usage"])
    assert set(app) == set(app_example)
    example_entry = next(iter(buc_example.values()))[0]
    (entry,) = buc[MAIN_WABA]
    assert set(entry) == set(example_entry)
    assert entry["type"] == example_entry["type"] == "whatsapp_business_management"
    assert all(isinstance(entry[k], int) for k in entry if k != "type")


# --------------------------------------------------------------------------- error responses


async def _error_cases(client: Client, world: World) -> list[tuple[str, int, Any]]:
    """(spec path, HTTP status, body) for each kind of error the simulator produces."""
    cases: list[tuple[str, int, Any]] = []

    async def add(spec_path: str, path: str, **kwargs: Any) -> None:
        status, body, _ = await fetch(client, path, **kwargs)
        assert status >= 400, body
        cases.append((spec_path, status, body))

    await add(NODE_PATH, f"{V}/300000000000001", headers={})  # 104 missing token
    await add(NODE_PATH, f"{V}/300000000000001", headers={"Authorization": "Bearer x"})  # 190
    await add(NODE_PATH, f"{V}/123")  # 100/33 unknown object
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers", fields="unified_cert_status")
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers", limit="0")
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers", after="garbage")
    world.inject_fault(Fault(MAIN_WABA, "http_error"))  # 500 code 2
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers")
    world.inject_fault(Fault(MAIN_WABA, "http_error", status=403, code=200))
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers")
    world.inject_fault(Fault(MAIN_WABA, "http_error", status=429, code=4, subcode=2446079))
    await add(LIST_PATH, f"{V}/{MAIN_WABA}/phone_numbers")
    return cases


async def test_error_envelopes_match_spec(spec: Spec, client: Client, world: World) -> None:
    cases = await _error_cases(client, world)
    assert {status for _, status, _ in cases} == {400, 401, 403, 429, 500}
    for spec_path, status, body in cases:
        assert_valid(spec.response_validator(spec_path, status), body)
        assert_valid(spec.validator("/components/schemas/GraphAPIError"), body)


async def test_throttle_and_not_found_errors_match_spec(spec: Spec, aiohttp_client: Any) -> None:
    world = World(
        scenario_from_yaml(
            'budget: {default_per_hour: 1}\nbusinesses: [{id: "1", wabas: [{id: "2"}]}]\n'
        )
    )
    client: Client = await aiohttp_client(build_app(world))
    await fetch(client, f"{V}/2/phone_numbers")
    status, body, _ = await fetch(client, f"{V}/2/phone_numbers")
    assert (status, body["error"]["code"]) == (400, 80008)
    assert_valid(spec.response_validator(LIST_PATH, 400), body)
    status, body, _ = await fetch(client, f"{V}/2/message_template_drafts")
    assert (status, body["error"]["code"]) == (404, 803)
    assert_valid(spec.response_validator(NODE_PATH, 404), body)


# --------------------------------------------------------------------------- account health


ACCOUNT_FIELDS = (
    "id,name,ownership_type,timezone_id,account_review_status,business_verification_status,"
    "health_status,status,owner_business_info,whatsapp_business_manager_messaging_limit"
)
BUSINESS_PATH = "/{Version}/{Business-ID}"


def test_waba_schema_checks_account_field_shapes(spec: Spec) -> None:
    """The relaxed WABA schema still rejects wrong types for the fields issue 10 reads."""
    node = spec.response_validator(WABA_PATH, 200)
    assert node.is_valid({"id": "1", "name": "n", "account_review_status": "DEFERRED"})
    assert not node.is_valid({"id": "1", "name": "n", "account_review_status": 1})
    assert not node.is_valid({"id": "1", "name": "n", "ownership_type": ["SELF_OWNED"]})
    assert not node.is_valid({"id": "1", "name": "n", "timezone_id": 1})
    assert not node.is_valid({"id": "1"})  # name is required


@pytest.mark.parametrize("waba", [w.id for _, w in builtin_scenario().wabas()])
async def test_every_demo_waba_with_account_fields_matches_spec(
    spec: Spec, client: Client, world: World, waba: str
) -> None:
    world.advance(60)  # the demo timeline's account steps (review, ban, restriction) ran
    status, body, _ = await fetch(client, f"{V}/{waba}", fields=ACCOUNT_FIELDS)
    assert status == 200
    assert {"account_review_status", "ownership_type", "health_status"} <= set(body)
    assert_valid(spec.response_validator(WABA_PATH, 200), body)


async def test_business_node_matches_spec(spec: Spec, client: Client) -> None:
    validator = spec.response_validator(BUSINESS_PATH, 200)
    assert not validator.is_valid({"id": 1})
    status, body, _ = await fetch(client, f"{V}/{ACME}", fields="id,name,verification_status")
    assert status == 200
    assert body["verification_status"] == "verified"
    assert_valid(validator, body)


# --------------------------------------------------------------------------- security and routing


SUBSCRIBED_PATH = "/{Version}/{WABA-ID}/subscribed_apps"
CARE_WABA = "200000000000009"  # the demo WABA whose subscription lacks this app


def _subscribed_examples(spec: Spec) -> dict[str, Any]:
    response = spec.raw["paths"][SUBSCRIBED_PATH]["get"]["responses"]["200"]
    examples: dict[str, Any] = response["content"]["application/json"]["examples"]
    return examples


@pytest.mark.parametrize("waba", [MAIN_WABA, CARE_WABA])
async def test_subscribed_apps_match_spec(spec: Spec, client: Client, world: World,
                                          waba: str) -> None:
    """The path's response schema, and the nesting of its own examples and SubscribedApp_1.

    Meta's spec disagrees with itself: the response schema's items (``SubscribedApp``) are
    flat ``{id, name}``, while the path's examples and ``SubscribedApp_1`` nest the app under
    ``whatsapp_business_api_data`` (as account-health facts §5 does); ``SubscribedApp_1``'s
    inner ``$ref`` points at a request schema, so the inner object is checked against
    ``SubscribedApp`` and the example's keys.
    """
    world.run_action(parse_action("set_webhook_override",
                                  {"waba": MAIN_WABA, "url": "https://override.example/h"},
                                  "test"))
    status, body, _ = await fetch(client, f"{V}/{waba}/subscribed_apps")
    assert status == 200
    assert_valid(spec.response_validator(SUBSCRIBED_PATH, 200), body)
    examples = _subscribed_examples(spec)
    example_item = examples["multiple_subscriptions"]["value"]["data"][0]
    assert set(body) == set(examples["no_subscriptions"]["value"]) == {"data"}
    entry = spec.validator("/components/schemas/SubscribedApp_1")
    inner = spec.validator("/components/schemas/SubscribedApp")
    assert body["data"]
    for item in body["data"]:
        assert_valid(entry, item)
        assert_valid(inner, item["whatsapp_business_api_data"])
        assert set(item["whatsapp_business_api_data"]) == set(
            example_item["whatsapp_business_api_data"]
        )
        assert set(item) <= {"whatsapp_business_api_data", "override_callback_uri"}
    if waba == MAIN_WABA:
        assert body["data"][0]["override_callback_uri"] == "https://override.example/h"


def test_subscribed_app_schema_still_checks_types(spec: Spec) -> None:
    entry = spec.validator("/components/schemas/SubscribedApp_1")
    assert list(entry.iter_errors({"override_callback_uri": "https://x/"}))  # required key
    assert list(entry.iter_errors({"whatsapp_business_api_data": {}, "override_callback_uri": 5}))
    inner = spec.validator("/components/schemas/SubscribedApp")
    assert list(inner.iter_errors({"id": 900000000000001}))


async def test_subscribed_apps_refusal_matches_spec(spec: Spec, aiohttp_client: Any) -> None:
    world = World(scenario_from_yaml(
        'businesses: [{id: "1", wabas: [{id: "2", refuse_subscribed_apps: true}]}]\n'))
    client: Client = await aiohttp_client(build_app(world))
    status, body, _ = await fetch(client, f"{V}/2/subscribed_apps")
    assert status == 403
    assert_valid(spec.response_validator(SUBSCRIBED_PATH, 403), body)
    example = spec.raw["paths"][SUBSCRIBED_PATH]["get"]["responses"]["403"]["content"][
        "application/json"]["example"]["error"]
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (
        example["code"], example["error_subcode"])


@pytest.mark.parametrize("number", ["300000000000001", "300000000000036", "300000000000037"])
async def test_number_node_with_security_fields_matches_spec(
    spec: Spec, client: Client, number: str
) -> None:
    fields = ",".join((*model.PHONE_NUMBER_FIELDS, "is_pin_enabled", "last_onboarded_time",
                       "webhook_configuration", "new_name_status"))
    status, body, _ = await fetch(client, f"{V}/{number}", fields=fields)
    assert status == 200
    assert "webhook_configuration" in body and "last_onboarded_time" in body
    assert_valid(spec.response_validator(NODE_PATH, 200), body)
    status, page, _ = await fetch(client, f"{V}/{MAIN_WABA}/phone_numbers", fields=fields,
                                  limit="100")
    assert status == 200
    assert_valid(spec.response_validator(LIST_PATH, 200), page)
