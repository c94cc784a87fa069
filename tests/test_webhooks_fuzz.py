"""Property tests: whatever arrives, the receiver never answers 5xx and never acts unsigned.

One receiver per test serves every example (starting a server per example would dominate
the run time); the fake sink is cleared before each example, and the (one-entry) dedupe memory
carrying over between examples only turns some outcomes into ``duplicate``, which is allowed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.webhooks import (
    KNOWN_FIELDS,
    WebhookConfig,
    WebhookPayloadError,
    add_webhook_routes,
    create_webhook_metrics,
    parse_notification,
    sign,
)
from tests.fakesink import FakeSink

SECRET = "fuzz-app-secret-31d4"
PATH = "/hook"
Client = TestClient[Any, Any]

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class CountingSink(FakeSink):
    """The fake sink, checking that what handlers pass on is sane whatever arrived."""

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None:
        assert isinstance(cap, int) and not isinstance(cap, bool) and cap > 0
        super().learn_cap(waba_id=waba_id, cap=cap, source_field=source_field)

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        assert waba_id.isdigit() and reason in KNOWN_FIELDS
        super().request_repoll(waba_id=waba_id, reason=reason)

    def set_messaging_limit(self, *, waba_id: str, limit: str, source_field: str) -> None:
        assert isinstance(limit, str) and 0 < len(limit) <= 64
        super().set_messaging_limit(waba_id=waba_id, limit=limit, source_field=source_field)

    def clear(self) -> None:
        self.actions.clear()
        self.lookups.clear()

    @property
    def untouched(self) -> bool:
        return not self.actions and not self.lookups


@dataclass
class Target:
    client: Client
    sink: CountingSink
    registry: CollectorRegistry

    def error_events(self) -> float:
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "whatsapp_monitor_webhook_events_total" and (
                    sample.labels.get("outcome") == "error"
                ):
                    total += sample.value
        return total


@pytest.fixture
async def target(aiohttp_client: Any) -> AsyncIterator[Target]:
    registry = CollectorRegistry()
    sink = CountingSink()
    app = web.Application()
    config = WebhookConfig(
        path=PATH, verify_token="v-token-1234", app_secret=SECRET, max_body_bytes=64 * 1024
    )
    # A one-entry dedupe memory: examples repeat a lot, and repeats should still reach the sink.
    add_webhook_routes(app, config, sink, create_webhook_metrics(registry), dedupe_capacity=1)
    client: Client = await aiohttp_client(app)
    yield Target(client, sink, registry)


async def post(target: Target, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    resp = await target.client.post(PATH, data=body, headers=headers)
    await resp.read()
    return resp.status


# --------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from([*KNOWN_FIELDS, "messages", "", "x"]) | st.text(max_size=12)
event_words = st.sampled_from(
    [
        "FLAGGED",
        "UNFLAGGED",
        "DOWNGRADE",
        "UPGRADE",
        "ONBOARDING",
        "THROUGHPUT_UPGRADE",
        "APPROVED",
        "REJECTED",
        "DISABLED_UPDATE",
        "PARTNER_ADDED",
        "OBA_APPROVED",
        "NOPE",
    ]
)
value_dicts = st.fixed_dictionaries(
    {},
    optional={
        "display_phone_number": st.sampled_from(["15550783881", "+1 555-000-0001"]) | json_values,
        "phone_number": st.text(max_size=15) | json_values,
        "event": event_words | json_values,
        "decision": event_words | json_values,
        "max_phone_numbers_per_business": st.integers(-5, 50) | st.text(max_size=4) | json_values,
        "max_phone_numbers_per_waba": st.integers(-5, 50) | json_values,
        "entity_type": st.sampled_from(["PHONE_NUMBER", "BUSINESS"]) | json_values,
        "entity_id": st.text(max_size=15) | json_values,
        "alert_info": st.fixed_dictionaries({}, optional={"alert_type": event_words | json_values})
        | json_values,
    },
)
extras = st.dictionaries(st.text(max_size=8), json_values, max_size=2)


def realistic(field_name: str, required: dict[str, st.SearchStrategy[Any]]) -> Any:
    """A change of ``field_name`` shaped like Meta's, plus random extra keys."""
    value = st.tuples(st.fixed_dictionaries(required), extras).map(lambda p: {**p[1], **p[0]})
    return st.fixed_dictionaries({"field": st.just(field_name), "value": value})


numbers = st.sampled_from(["15550783881", "+1 555-000-0001", "49 30 1234"]) | st.text(max_size=12)
good_changes = st.one_of(
    realistic(
        "phone_number_quality_update", {"display_phone_number": numbers, "event": event_words}
    ),
    realistic(
        "phone_number_name_update", {"display_phone_number": numbers, "decision": event_words}
    ),
    realistic("account_update", {"event": event_words}),
    realistic(
        "account_alerts",
        {
            "entity_type": st.sampled_from(["PHONE_NUMBER", "BUSINESS"]) | json_values,
            "entity_id": numbers,
            "alert_info": st.fixed_dictionaries({"alert_type": event_words}),
        },
    ),
    realistic(
        "business_capability_update",
        {
            "max_phone_numbers_per_business": st.integers(-5, 50) | st.text(max_size=4),
        },
    ),
    realistic(
        "business_capability_update",
        {
            "max_phone_numbers_per_waba": st.integers(-5, 50) | st.text(max_size=4),
        },
    ),
    st.fixed_dictionaries({"field": field_names.filter(bool), "value": value_dicts}),
)
# Envelopes with every key present and of the right type: these reach the sink.
good_envelopes = st.fixed_dictionaries(
    {
        "object": st.sampled_from(["whatsapp_business_account"] * 4 + ["page"]),
        "entry": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from(["102290129340398", "7", "8", "9"]) | st.text(min_size=1),
                    "changes": st.lists(good_changes, min_size=1, max_size=4),
                },
                optional={"time": st.integers(0, 2**40) | st.none()},
            ),
            min_size=1,
            max_size=3,
        ),
    }
)
# Envelopes where any key may be missing or of any type: these exercise the validation.
changes = (
    st.fixed_dictionaries(
        {},
        optional={"field": field_names | json_values, "value": value_dicts | json_values},
    )
    | json_values
)
entries = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from(["102290129340398", "7", "", "abc"])
            | st.integers()
            | json_values,
            "time": st.integers(0, 2**40) | st.floats() | json_values,
            "changes": st.lists(changes, max_size=4) | json_values,
        },
    )
    | json_values
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "object": st.sampled_from(["whatsapp_business_account", "page", ""]) | json_values,
        "entry": st.lists(entries, max_size=3) | json_values,
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda v: json.dumps(v).encode())
    | good_envelopes.map(lambda v: json.dumps(v).encode())
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
bad_signatures = (
    st.none()
    | header_text
    | header_text.map(lambda t: "sha256=" + t)
    | st.binary(min_size=32, max_size=32).map(lambda b: "sha256=" + b.hex())
)


# --------------------------------------------------------------------------- properties


@FUZZ
@given(body=bodies, signature=bad_signatures)
async def test_unsigned_or_wrongly_signed_never_acts(
    target: Target, body: bytes, signature: str | None
) -> None:
    target.sink.clear()
    status = await post(target, body, signature)
    assert status in (401, 403)
    assert target.sink.untouched


@FUZZ
@given(body=bodies, other_secret=st.text(min_size=1, max_size=20).filter(lambda s: s != SECRET))
async def test_signed_with_another_secret_never_acts(
    target: Target, body: bytes, other_secret: str
) -> None:
    target.sink.clear()
    assert await post(target, body, sign(body, other_secret)) == 403
    assert target.sink.untouched


@FUZZ
@given(
    body=st.booleans().flatmap(
        lambda good: good_envelopes.map(lambda v: json.dumps(v).encode()) if good else bodies
    )
)
async def test_correctly_signed_is_200_or_400_and_never_raises(target: Target, body: bytes) -> None:
    target.sink.clear()
    status = await post(target, body, sign(body, SECRET))
    try:
        parse_notification(body)
    except WebhookPayloadError:
        assert status == 400
        assert target.sink.untouched
    else:
        assert status == 200
    # The handler itself never failed on a change (sink assertions would count as errors too).
    assert target.error_events() == 0


@FUZZ
@given(body=bodies)
def test_parse_notification_raises_only_payload_errors(body: bytes) -> None:
    try:
        changes = parse_notification(body)
    except WebhookPayloadError as exc:
        assert str(exc)
    else:
        for change in changes:
            assert isinstance(change.value, Mapping)
            assert change.field and change.waba_id and change.object
            assert change.time is None or isinstance(change.time, int)
