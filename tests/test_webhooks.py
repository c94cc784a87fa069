"""The Meta webhook receiver: handshake, signatures, size limit, envelope, dedupe, sink, metrics."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.webhooks import (
    EVENT_OUTCOMES,
    KNOWN_FIELDS,
    OTHER_FIELD,
    REQUEST_RESULTS,
    WebhookChange,
    WebhookConfig,
    WebhookPayloadError,
    add_webhook_routes,
    change_key,
    create_webhook_metrics,
    parse_notification,
    sign,
    startup_warnings,
    verify_signature,
)
from tests.fakesink import BUSINESS, DISPLAY, NOW, NUMBER_ID, WABA, FakeSink

SECRET = "app-secret-5a1f0c93d7"
VERIFY = "verify-token-8c2e41"
PATH = "/webhooks/whatsapp"
Client = TestClient[Any, Any]
__all__ = ["BUSINESS", "DISPLAY", "NUMBER_ID", "WABA", "FakeSink", "note"]


@dataclass
class Receiver:
    client: Client
    sink: FakeSink
    registry: CollectorRegistry

    async def post(
        self,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        signature: str | None = "auto",
        headers: dict[str, str] | None = None,
    ) -> int:
        body = raw if raw is not None else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if signature == "auto":
            all_headers["X-Hub-Signature-256"] = sign(body, SECRET)
        elif signature is not None:
            all_headers["X-Hub-Signature-256"] = signature
        resp = await self.client.post(PATH, data=body, headers=all_headers)
        await resp.read()
        return resp.status

    def requests(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "whatsapp_monitor_webhook_requests_total", {"result": result}
        )
        assert value is not None
        return value

    def events(self, field_name: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "whatsapp_monitor_webhook_events_total", {"field": field_name, "outcome": outcome}
        )
        assert value is not None
        return value


MakeReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
def make_receiver(aiohttp_client: Any) -> MakeReceiver:
    async def make(
        *,
        verify_token: str | None = VERIFY,
        app_secret: str | None = SECRET,
        max_body_bytes: int = 3_145_728,
        sink: FakeSink | None = None,
        dedupe_capacity: int = 100,
    ) -> Receiver:
        config = WebhookConfig(
            path=PATH,
            verify_token=verify_token,
            app_secret=app_secret,
            max_body_bytes=max_body_bytes,
        )
        registry = CollectorRegistry()
        sink = sink or FakeSink()
        app = web.Application()
        add_webhook_routes(
            app,
            config,
            sink,
            create_webhook_metrics(registry),
            clock=lambda: NOW,
            dedupe_capacity=dedupe_capacity,
        )
        client: Client = await aiohttp_client(app)
        return Receiver(client, sink, registry)

    return make


@pytest.fixture
async def rx(make_receiver: MakeReceiver) -> AsyncIterator[Receiver]:
    yield await make_receiver()


def note(
    field_name: str,
    value: dict[str, Any],
    *,
    waba: str = WABA,
    time: int = 1748454394,
    obj: str = "whatsapp_business_account",
) -> dict[str, Any]:
    return {
        "object": obj,
        "entry": [{"id": waba, "time": time, "changes": [{"field": field_name, "value": value}]}],
    }


QUALITY = {"display_phone_number": DISPLAY, "event": "FLAGGED", "current_limit": "TIER_10K"}


# --------------------------------------------------------------------------- GET handshake


async def test_verification_echoes_the_challenge(rx: Receiver) -> None:
    resp = await rx.client.get(
        PATH,
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
    )
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert await resp.text() == "1158201444"
    assert rx.requests("verify_ok") == 1
    assert rx.requests("verify_failed") == 0


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY + "x", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
        {},
    ],
)
async def test_verification_refused(rx: Receiver, params: dict[str, str]) -> None:
    resp = await rx.client.get(PATH, params=params)
    assert resp.status == 403
    assert "1" not in await resp.text()
    assert rx.requests("verify_failed") == 1
    assert rx.requests("verify_ok") == 0


@pytest.mark.parametrize("token", ["", "None", VERIFY])
async def test_verification_without_configured_token_always_403(
    make_receiver: MakeReceiver, token: str
) -> None:
    rx = await make_receiver(verify_token=None)
    resp = await rx.client.get(
        PATH, params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "7"}
    )
    assert resp.status == 403
    assert rx.requests("verify_failed") == 1


def test_startup_warnings() -> None:
    assert startup_warnings(WebhookConfig(verify_token=VERIFY, app_secret=SECRET)) == []
    both = startup_warnings(WebhookConfig())
    assert len(both) == 2
    assert "verify token" in both[0] and "/webhooks/whatsapp" in both[0]
    assert "app secret" in both[1] and "403" in both[1]
    only = startup_warnings(WebhookConfig(verify_token="", app_secret=SECRET))
    assert len(only) == 1 and "verify token" in only[0]


# --------------------------------------------------------------------------- signatures


def test_sign_and_verify_signature() -> None:
    body = b'{"a":1}'
    header = sign(body, SECRET)
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", header)
    assert verify_signature(body, header, SECRET)
    assert verify_signature(body, header.upper().replace("SHA256", "sha256"), SECRET)
    assert verify_signature(body, f"  {header} ", SECRET)
    assert not verify_signature(body + b" ", header, SECRET)
    assert not verify_signature(body, header, SECRET + "x")
    assert not verify_signature(body, header, "")
    assert not verify_signature(body, None, SECRET)
    assert not verify_signature(body, "", SECRET)
    assert not verify_signature(body, header.removeprefix("sha256="), SECRET)
    assert not verify_signature(body, "sha1=" + header[7:], SECRET)
    assert not verify_signature(body, header[:-2], SECRET)
    assert not verify_signature(body, "sha256=" + "é" * 64, SECRET)


async def test_signed_notification_is_applied(rx: Receiver) -> None:
    assert await rx.post(note("phone_number_quality_update", QUALITY)) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    assert rx.requests("ok") == 1
    assert rx.events("phone_number_quality_update", "applied") == 1
    value = rx.registry.get_sample_value("whatsapp_monitor_webhook_last_event_timestamp_seconds")
    assert value == NOW


@pytest.mark.parametrize(
    ("signature", "status", "result"),
    [
        (None, 401, "unsigned"),
        ("", 401, "unsigned"),
        (sign(b"other body", SECRET), 403, "bad_signature"),
        ("sha256=" + "0" * 64, 403, "bad_signature"),
        ("sha256=nothex", 403, "bad_signature"),
        ("garbage", 403, "bad_signature"),
    ],
)
async def test_bad_or_missing_signature_changes_nothing(
    rx: Receiver, signature: str | None, status: int, result: str
) -> None:
    assert (
        await rx.post(note("phone_number_quality_update", QUALITY), signature=signature) == status
    )
    assert rx.sink.calls == 0
    assert rx.sink.lookups == []
    assert rx.requests(result) == 1
    assert rx.requests("ok") == 0
    assert (
        rx.registry.get_sample_value("whatsapp_monitor_webhook_last_event_timestamp_seconds")
        is None
    )


async def test_signature_from_another_secret_is_refused(rx: Receiver) -> None:
    body = json.dumps(note("business_capability_update", {"max_phone_numbers_per_business": 20}))
    raw = body.encode()
    assert await rx.post(raw=raw, signature=sign(raw, "not-the-secret")) == 403
    assert rx.sink.calls == 0


async def test_body_altered_after_signing_is_refused(rx: Receiver) -> None:
    original = json.dumps(
        note("business_capability_update", {"max_phone_numbers_per_business": 2})
    ).encode()
    tampered = original.replace(b": 2}", b": 20}")
    assert tampered != original
    assert await rx.post(raw=tampered, signature=sign(original, SECRET)) == 403
    assert rx.sink.calls == 0
    assert rx.requests("bad_signature") == 1


async def test_no_app_secret_refuses_every_post(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(app_secret=None)
    assert await rx.post(note("phone_number_quality_update", QUALITY)) == 403
    assert await rx.post(note("phone_number_quality_update", QUALITY), signature=None) == 403
    assert rx.sink.calls == 0
    assert rx.requests("refused_no_secret") == 2
    rx2 = await make_receiver(app_secret="")
    assert await rx2.post(note("phone_number_quality_update", QUALITY)) == 403


# --------------------------------------------------------------------------- size limit


async def test_oversized_body_is_413_without_processing(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(max_body_bytes=1000)
    payload = note("phone_number_quality_update", {**QUALITY, "pad": "x" * 2000})
    assert await rx.post(payload) == 413
    assert rx.sink.calls == 0
    assert rx.requests("too_large") == 1


async def test_oversized_chunked_body_is_413(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(max_body_bytes=1000)
    raw = json.dumps(note("phone_number_quality_update", {**QUALITY, "pad": "x" * 5000})).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 100):
            yield raw[i : i + 100]

    resp = await rx.client.post(
        PATH, data=chunks(), headers={"X-Hub-Signature-256": sign(raw, SECRET)}
    )
    assert resp.status == 413
    assert rx.sink.calls == 0


def test_default_limit_takes_metas_3_mb_bodies() -> None:
    from monitor.config.schema import WebhookSettings

    assert WebhookConfig().max_body_bytes == 3_145_728
    assert WebhookSettings().max_body_bytes == 3_145_728


async def test_a_body_of_nearly_3_mb_is_accepted_by_default(rx: Receiver) -> None:
    """Meta's bodies "can be up to 3 MB"; 1.47 and 2.57 MB deliveries were seen refused by a
    1 MiB limit (facts §2.1)."""
    payload = note("phone_number_quality_update", {**QUALITY, "pad": "x" * 3_000_000})
    raw = json.dumps(payload).encode()
    assert 2_900_000 < len(raw) <= 3_145_728
    assert await rx.post(raw=raw) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    too_big = json.dumps({**payload, "more": "y" * 200_000}).encode()
    assert await rx.post(raw=too_big) == 413


async def test_body_of_exactly_the_limit_is_accepted(make_receiver: MakeReceiver) -> None:
    raw = json.dumps(note("phone_number_quality_update", QUALITY)).encode()
    rx = await make_receiver(max_body_bytes=len(raw) + 10)
    padded = raw + b" " * 10
    assert await rx.post(raw=padded) == 200
    assert await rx.post(raw=padded + b" ") == 413
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]


# --------------------------------------------------------------------------- envelope


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00",
        b"[" * 100_000,
        b'{"object": NaN, "entry": []}',
        b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "time": Infinity,'
        b' "changes": []}]}',
        b'{"object":"whatsapp_business_account","entry":[{"id":'
        + b"9" * 5000
        + b',"changes":[]}]}',
    ],
)
async def test_malformed_json_is_400(rx: Receiver, raw: bytes) -> None:
    assert await rx.post(raw=raw) == 400
    assert rx.sink.calls == 0
    assert rx.requests("malformed") == 1


GOOD_CHANGE = {"field": "phone_number_quality_update", "value": QUALITY}
BAD_ENVELOPES: list[tuple[Any, str]] = [
    ([], "top level: expected an object"),
    ("text", "top level: expected an object"),
    ({"entry": []}, "object: expected a non-empty string"),
    ({"object": "", "entry": []}, "object: expected a non-empty string"),
    ({"object": 5, "entry": []}, "object: expected"),
    ({"object": "whatsapp_business_account"}, "entry: expected a list"),
    ({"object": "whatsapp_business_account", "entry": {}}, "entry: expected a list"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_ENVELOPES)
async def test_wrong_envelope_is_400_and_applies_nothing(
    rx: Receiver, payload: Any, message: str
) -> None:
    with pytest.raises(WebhookPayloadError, match=re.escape(message)):
        parse_notification(json.dumps(payload).encode())
    assert await rx.post(payload) == 400
    assert rx.sink.calls == 0
    assert rx.requests("malformed") == 1


# One unreadable entry or change next to a good one: (entries, where, field label counted).
PARTIAL: list[tuple[list[Any], str, str]] = [
    ([5], "entry[1]", OTHER_FIELD),
    ([{"changes": [GOOD_CHANGE]}], "entry[1].id", "phone_number_quality_update"),
    ([{"id": True, "changes": [GOOD_CHANGE]}], "entry[1].id", "phone_number_quality_update"),
    ([{"id": WABA}], "entry[1].changes", OTHER_FIELD),
    ([{"id": WABA, "changes": ["x"]}], "entry[1].changes[0]", OTHER_FIELD),
    ([{"id": WABA, "changes": [{"value": QUALITY}]}], "entry[1].changes[0].field", OTHER_FIELD),
    ([{"id": WABA, "changes": [{"field": "account_update", "value": [1]}]}],
     "entry[1].changes[0].value", "account_update"),
]


@pytest.mark.parametrize(("bad", "where", "label"), PARTIAL)
async def test_one_unreadable_change_never_rejects_the_others(
    rx: Receiver, bad: list[Any], where: str, label: str
) -> None:
    """Meta redelivers a refused body for 7 days: the readable changes are applied, the
    unreadable one is counted invalid, and the body is answered 200."""
    good = {"id": WABA, "time": 1, "changes": [GOOD_CHANGE]}
    payload = {"object": "whatsapp_business_account", "entry": [good, *bad]}
    with capture_logs() as logs:
        assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    assert rx.events("phone_number_quality_update", "applied") == 1
    assert rx.events(label, "invalid") == 1
    assert rx.requests("ok") == 1 and rx.requests("malformed") == 0
    invalid = [e for e in logs if e["event"] == "webhook_event" and e["outcome"] == "invalid"]
    assert [e["where"] for e in invalid] == [where]


@pytest.mark.parametrize("stamp", ["1748454394", " 1748454394", 1748454394, 1748454394.0])
def test_entry_time_may_be_a_digit_string(stamp: Any) -> None:
    body = json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": WABA, "time": stamp, "changes": [GOOD_CHANGE]}]})
    (change,) = parse_notification(body.encode())
    assert change.time == 1748454394


@pytest.mark.parametrize("stamp", ["now", "", "12.5", True, [1], {"t": 1}, None, 1e300])
async def test_an_odd_entry_time_is_no_time_and_the_change_is_applied(
    rx: Receiver, stamp: Any
) -> None:
    payload = {"object": "whatsapp_business_account",
               "entry": [{"id": WABA, "time": stamp, "changes": [GOOD_CHANGE]}]}
    (change,) = parse_notification(json.dumps(payload).encode())
    assert change.time is None
    assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]


async def test_quoted_time_body_is_applied_not_400(rx: Receiver) -> None:
    """Meta's Direct Send and coexistence pages quote ``entry.time``; the body used to be
    refused with 400 (and redelivered for days)."""
    payload = note("account_update", {"event": "ACCOUNT_VIOLATION",
                                      "violation_info": {"violation_type": "ADULT"}})
    payload["entry"][0]["time"] = "1748454394"
    assert await rx.post(payload) == 200
    assert rx.sink.facts[WABA].violations == {"ADULT": 1}
    assert rx.sink.facts[WABA].events == {"ACCOUNT_VIOLATION": 1748454394.0}


def test_parse_notification_returns_every_change() -> None:
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": WABA, "time": 17, "changes": [GOOD_CHANGE, {"field": "x", "value": {}}]},
                {"id": 42, "changes": []},
                {"id": "7", "time": 18.0, "changes": [{"field": "y", "value": {"a": [1]}}]},
            ],
        }
    ).encode()
    changes = parse_notification(body)
    assert [(c.waba_id, c.time, c.field) for c in changes] == [
        (WABA, 17, "phone_number_quality_update"),
        (WABA, 17, "x"),
        ("7", 18, "y"),
    ]
    assert changes[0].value == QUALITY
    assert changes[0].object == "whatsapp_business_account"
    with pytest.raises(TypeError):
        changes[2].value["a"] = 2  # type: ignore[index]
    assert parse_notification(b'{"object":"whatsapp_business_account","entry":[]}') == ()


def test_change_key_identifies_retries() -> None:
    a = WebhookChange("whatsapp_business_account", WABA, 1, "f", {"a": 1, "b": 2})
    assert change_key(a) == change_key(
        WebhookChange("whatsapp_business_account", WABA, 1, "f", {"b": 2, "a": 1})
    )
    for other in (
        WebhookChange("whatsapp_business_account", WABA, 2, "f", {"a": 1, "b": 2}),
        WebhookChange("whatsapp_business_account", "1", 1, "f", {"a": 1, "b": 2}),
        WebhookChange("whatsapp_business_account", WABA, 1, "g", {"a": 1, "b": 2}),
        WebhookChange("whatsapp_business_account", WABA, 1, "f", {"a": 1, "b": 3}),
        WebhookChange("whatsapp_business_account", WABA, None, "f", {"a": 1, "b": 2}),
    ):
        assert change_key(other) != change_key(a)


# --------------------------------------------------------------------------- dedupe


async def test_duplicate_delivery_is_counted_not_reapplied(rx: Receiver) -> None:
    payload = note("phone_number_quality_update", QUALITY)
    assert await rx.post(payload) == 200
    assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    assert rx.events("phone_number_quality_update", "applied") == 1
    assert rx.events("phone_number_quality_update", "duplicate") == 1
    assert rx.requests("ok") == 2
    # Same change re-batched with another one and with its keys reordered: still a duplicate.
    batch = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": 1748454394,
                "changes": [
                    {
                        "value": dict(reversed(list(QUALITY.items()))),
                        "field": "phone_number_quality_update",
                    },
                    {
                        "field": "phone_number_name_update",
                        "value": {"display_phone_number": DISPLAY, "decision": "APPROVED"},
                    },
                ],
            }
        ],
    }
    assert await rx.post(batch) == 200
    assert rx.sink.repolls == [
        (WABA, "phone_number_quality_update"),
        (WABA, "phone_number_name_update"),
    ]
    assert rx.events("phone_number_quality_update", "duplicate") == 2
    # A later event (another time) is new.
    assert await rx.post(note("phone_number_quality_update", QUALITY, time=1748454999)) == 200
    assert len(rx.sink.repolls) == 3


async def test_duplicates_inside_one_notification(rx: Receiver) -> None:
    change = {"field": "account_update", "value": {"event": "DISABLED_UPDATE"}}
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": WABA, "time": 5, "changes": [change, change]},
            {"id": WABA, "time": 5, "changes": [change]},
        ],
    }
    assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "account_update")]
    assert rx.events("account_update", "duplicate") == 2


async def test_dedupe_memory_is_bounded(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(dedupe_capacity=2)
    for t in (1, 2, 3):
        assert await rx.post(note("phone_number_quality_update", QUALITY, time=t)) == 200
    # time=1 was evicted by 2 and 3, so it is applied again; time=3 is still remembered.
    assert await rx.post(note("phone_number_quality_update", QUALITY, time=1)) == 200
    assert await rx.post(note("phone_number_quality_update", QUALITY, time=3)) == 200
    assert len(rx.sink.repolls) == 4
    assert rx.events("phone_number_quality_update", "duplicate") == 1


async def test_the_wabas_durable_keys_catch_what_the_memory_forgot(
    make_receiver: MakeReceiver,
) -> None:
    """After a restart the in-memory dedupe is empty; Meta's redelivery (up to 7 days) is
    recognised by the keys the WABA's committed facts remember, so it counts once."""
    sink = FakeSink()
    first = await make_receiver(sink=sink)
    violation = note("account_update", {"event": "ACCOUNT_VIOLATION",
                                        "violation_info": {"violation_type": "SCAM"}})
    assert await first.post(violation) == 200
    restarted = await make_receiver(sink=sink)  # an empty memory, the same durable facts
    assert await restarted.post(violation) == 200
    assert restarted.events("account_update", "duplicate") == 1
    assert restarted.events("account_update", "applied") == 0
    assert sink.facts[WABA].violations == {"SCAM": 1}
    assert len(sink.facts[WABA].applied) == 1


# --------------------------------------------------------------------------- ignored


async def test_message_traffic_is_answered_and_dropped_unread(rx: Receiver) -> None:
    """Messages and statuses reach the daemon when it is the app's only callback: 200, counted,
    never logged one by one nor handed to the sink."""
    burst = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1, "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "messages": [{"id": f"wamid.{i}", "type": "text"}]}}
        for i in range(50)]}]}
    with capture_logs() as logs:
        assert await rx.post(burst) == 200
    assert rx.sink.calls == 0 and not [e for e in logs if e["event"] == "webhook_event"]
    traffic = rx.registry.get_sample_value("whatsapp_monitor_webhook_traffic_dropped_total")
    assert traffic == 50
    assert rx.events(OTHER_FIELD, "ignored") == 0


async def test_unknown_field_is_ignored_with_200(rx: Receiver) -> None:
    with capture_logs() as logs:
        assert await rx.post(note("brand_new_field", {"messaging_product": "whatsapp"})) == 200
    assert rx.sink.calls == 0
    assert rx.events(OTHER_FIELD, "ignored") == 1
    # No label for the unknown name: cardinality stays bounded.
    assert (
        rx.registry.get_sample_value(
            "whatsapp_monitor_webhook_events_total",
            {"field": "brand_new_field", "outcome": "ignored"},
        )
        is None
    )
    event = next(e for e in logs if e["event"] == "webhook_event")
    assert event["log_level"] == "info"
    assert event["field"] == "brand_new_field"
    assert event["outcome"] == "ignored"


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("phone_number_quality_update", {"display_phone_number": DISPLAY, "event": "NEW_THING"}),
        ("phone_number_name_update", {"display_phone_number": DISPLAY, "decision": "MAYBE"}),
        ("business_capability_update", {"something_else": 1}),
    ],
)
async def test_unknown_event_values_of_repoll_fields_are_ignored(
    rx: Receiver, field_name: str, value: dict[str, Any]
) -> None:
    with capture_logs() as logs:
        assert await rx.post(note(field_name, value)) == 200
    assert rx.sink.calls == 0
    assert rx.events(field_name, "ignored") == 1
    assert [e["log_level"] for e in logs if e["event"] == "webhook_event"] == ["info"]


async def test_unknown_account_events_and_alert_types_are_kept(rx: Receiver) -> None:
    """Every enum is open (facts, preamble): what only a webhook tells is kept as it came."""
    assert await rx.post(note("account_update", {"event": "SOMETHING_NEW"})) == 200
    assert await rx.post(note("account_alerts", {
        "entity_type": "BUSINESS", "entity_id": BUSINESS,
        "alert_info": {"alert_type": "BRAND_NEW_ALERT", "alert_severity": "SEVERE"}})) == 200
    assert await rx.post(note("account_review_update", {"decision": "ON_HOLD"})) == 200
    assert rx.events("account_update", "applied") == 1
    assert rx.events("account_alerts", "applied") == 1
    assert rx.events("account_review_update", "applied") == 1
    facts = rx.sink.facts[WABA]
    assert facts.events == {"SOMETHING_NEW": 1748454394.0}
    assert facts.review_status == "ON_HOLD"
    (alert,) = rx.sink.alerts
    assert (alert.alert_type, alert.alert_severity) == ("BRAND_NEW_ALERT", "SEVERE")


async def test_other_object_is_ignored(rx: Receiver) -> None:
    assert await rx.post(note("phone_number_quality_update", QUALITY, obj="page")) == 200
    assert rx.sink.calls == 0
    assert rx.events("phone_number_quality_update", "ignored") == 1


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("phone_number_quality_update", {"display_phone_number": DISPLAY}),
        ("phone_number_quality_update", {"display_phone_number": DISPLAY, "event": 5}),
        ("account_update", {"event": None}),
        ("phone_number_name_update", {"display_phone_number": DISPLAY, "decision": ["A"]}),
        (
            "account_alerts",
            {"entity_type": "PHONE_NUMBER", "entity_id": DISPLAY, "alert_info": "OBA_APPROVED"},
        ),
        ("account_alerts", {"entity_type": "PHONE_NUMBER", "entity_id": DISPLAY}),
    ],
)
async def test_missing_event_value_is_invalid(
    rx: Receiver, field_name: str, value: dict[str, Any]
) -> None:
    assert await rx.post(note(field_name, value)) == 200
    assert rx.sink.calls == 0
    assert rx.events(field_name, "invalid") == 1


async def test_non_numeric_waba_id_is_invalid(rx: Receiver) -> None:
    assert await rx.post(note("account_update", {"event": "PARTNER_ADDED"}, waba="abc")) == 200
    assert rx.sink.calls == 0
    assert rx.events("account_update", "invalid") == 1


# --------------------------------------------------------------------------- capability


@pytest.mark.parametrize(
    ("value", "business_cap", "waba_cap", "limit"),
    [
        ({"max_phone_numbers_per_business": 20}, 20, None, None),
        ({"max_phone_numbers_per_business": "20"}, 20, None, None),
        ({"max_phone_numbers_per_waba": 25}, None, 25, None),
        (
            {
                "max_daily_conversation_per_phone": 2000,
                "max_daily_conversations_per_business": "TIER_2K",
                "max_phone_numbers_per_business": 2,
                "max_phone_numbers_per_waba": 25,
            },
            2, 25, ("TIER_2K", "max_daily_conversations_per_business"),
        ),
        (
            {"max_phone_numbers_per_business": True, "max_phone_numbers_per_waba": " 25 "},
            None, 25, None,
        ),
        ({"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25},
         None, 25, ("TIER_2K", "max_daily_conversations_per_business")),
        ({"max_daily_conversations_per_business": -1}, None, None,
         ("TIER_UNLIMITED", "max_daily_conversations_per_business")),
        ({"max_daily_conversation_per_phone": 100000}, None, None,
         ("TIER_100K", "max_daily_conversation_per_phone")),
        ({"max_daily_conversations_per_business": "TIER_NEW"}, None, None,
         ("TIER_NEW", "max_daily_conversations_per_business")),
    ],
)
async def test_capability_update_reads_every_field_on_its_own(
    rx: Receiver, value: dict[str, Any], business_cap: int | None, waba_cap: int | None,
    limit: tuple[str, str] | None,
) -> None:
    """Facts §2.6: the portfolio cap, the per-WABA cap and the limit are separate facts; a
    per-WABA cap never becomes the business's cap; every applied update re-polls."""
    assert await rx.post(note("business_capability_update", value)) == 200
    assert rx.sink.caps == ([] if business_cap is None else
                            [(WABA, business_cap, "max_phone_numbers_per_business")])
    assert rx.sink.facts[WABA].phone_numbers_cap == waba_cap
    assert rx.sink.limits == ([] if limit is None else [(WABA, *limit)])
    assert rx.sink.repolls == [(WABA, "business_capability_update")]
    assert rx.events("business_capability_update", "applied") == 1


async def test_a_per_waba_cap_leaves_the_business_cap_as_it_was(rx: Receiver) -> None:
    """Meta's own example sends ``max_phone_numbers_per_waba: 25``; it used to overwrite the
    portfolio's learned cap of 20 (facts §9)."""
    assert await rx.post(note("business_capability_update",
                              {"max_phone_numbers_per_business": 20}, time=1)) == 200
    assert await rx.post(note("business_capability_update",
                              {"max_phone_numbers_per_waba": 25}, time=2)) == 200
    assert rx.sink.caps == [(WABA, 20, "max_phone_numbers_per_business")]
    assert rx.sink.facts[WABA].phone_numbers_cap == 25


async def test_capability_update_for_a_waba_not_watched_is_ignored(rx: Receiver) -> None:
    payload = note("business_capability_update", {"max_phone_numbers_per_business": 20},
                   waba="999")
    assert await rx.post(payload) == 200
    assert rx.sink.calls == 0
    assert rx.events("business_capability_update", "ignored") == 1


@pytest.mark.parametrize(
    "cap", [True, False, None, 0, -2, 2.0, "2.5", "twenty", "", [20], {"n": 20}, 10**12]
)
async def test_garbage_cap_is_invalid(rx: Receiver, cap: Any) -> None:
    assert (
        await rx.post(note("business_capability_update", {"max_phone_numbers_per_business": cap}))
        == 200
    )
    assert rx.sink.caps == []
    assert rx.events("business_capability_update", "invalid") == 1


# --------------------------------------------------------------------------- number mapping


@pytest.mark.parametrize(
    ("field_name", "value", "looked_up", "event"),
    [
        ("phone_number_quality_update", QUALITY, DISPLAY, "FLAGGED"),
        (
            "phone_number_quality_update",
            {"display_phone_number": "+1 555-078-3881", "event": "THROUGHPUT_UPGRADE"},
            "+1 555-078-3881",
            "THROUGHPUT_UPGRADE",
        ),
        (
            "phone_number_name_update",
            {
                "display_phone_number": DISPLAY,
                "decision": "REJECTED",
                "rejection_reason": "NAME_FORMAT_UNACCEPTABLE",
            },
            DISPLAY,
            "REJECTED",
        ),
        (
            "account_update",
            {
                "phone_number": DISPLAY,
                "event": "ACCOUNT_RESTRICTION",
                "restriction_info": [
                    {
                        "restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING",
                        "expiration": 1604703058,
                    }
                ],
            },
            DISPLAY,
            "ACCOUNT_RESTRICTION",
        ),
    ],
)
async def test_repoll_fields_map_the_number_in_the_log(
    rx: Receiver, field_name: str, value: dict[str, Any], looked_up: str, event: str
) -> None:
    with capture_logs() as logs:
        assert await rx.post(note(field_name, value)) == 200
    assert rx.sink.repolls == [(WABA, field_name)]
    assert rx.sink.lookups == [looked_up]
    entries = [e for e in logs if e["event"] == "webhook_event"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["field"] == field_name
    assert entry["event_value"] == event
    assert entry["waba_id"] == WABA
    assert entry["phone_number_id"] == NUMBER_ID
    assert entry["outcome"] == "applied"


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("account_update", {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE"}}),
        (
            "account_alerts",
            {
                "entity_type": "BUSINESS",
                "entity_id": "5",
                "alert_info": {"alert_type": "OBA_APPROVED"},
            },
        ),
    ],
)
async def test_waba_level_events_repoll_without_a_number(
    rx: Receiver, field_name: str, value: dict[str, Any]
) -> None:
    with capture_logs() as logs:
        assert await rx.post(note(field_name, value)) == 200
    assert rx.sink.repolls == [(WABA, field_name)]
    assert rx.sink.lookups == []
    entry = next(e for e in logs if e["event"] == "webhook_event")
    assert entry["phone_number_id"] is None


async def test_an_alerts_entity_id_is_an_id_not_a_display_number(rx: Receiver) -> None:
    """Facts §2.4 / §9: ``entity_id`` of a PHONE_NUMBER alert is the phone-number id; it used
    to be looked up as a display number (and never found)."""
    value = {"entity_type": "PHONE_NUMBER", "entity_id": NUMBER_ID,
             "alert_info": {"alert_severity": "WARNING", "alert_status": "ACTIVE",
                            "alert_type": "PROFILE_PICTURE_LOST",
                            "alert_description": "free text {NAME}"}}
    with capture_logs() as logs:
        assert await rx.post(note("account_alerts", value)) == 200
    assert rx.sink.lookups == []
    entry = next(e for e in logs if e["event"] == "webhook_event")
    assert entry["phone_number_id"] == NUMBER_ID
    (alert,) = rx.sink.alerts
    assert (alert.business_id, alert.entity_type, alert.entity_id, alert.alert_type,
            alert.alert_severity, alert.alert_status, alert.at) == (
        BUSINESS, "PHONE_NUMBER", NUMBER_ID, "PROFILE_PICTURE_LOST", "WARNING", "ACTIVE",
        1748454394.0)
    assert rx.sink.repolls == [(WABA, "account_alerts")]


async def test_unknown_display_number_still_repolls(rx: Receiver) -> None:
    with capture_logs() as logs:
        payload = note(
            "phone_number_quality_update",
            {"display_phone_number": "19995550000", "event": "DOWNGRADE"},
        )
        assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    entry = next(e for e in logs if e["event"] == "webhook_event")
    assert entry["phone_number_id"] is None
    assert entry["display_phone_number"] == "19995550000"


@pytest.mark.parametrize(
    "event", ["DOWNGRADE", "FLAGGED", "ONBOARDING", "THROUGHPUT_UPGRADE", "UNFLAGGED", "UPGRADE"]
)
async def test_all_legacy_quality_events_are_accepted(rx: Receiver, event: str) -> None:
    payload = note("phone_number_quality_update", {"display_phone_number": DISPLAY, "event": event})
    assert await rx.post(payload) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]


# --------------------------------------------------------------------------- failures


async def test_sink_failure_is_counted_and_still_200(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(sink=FakeSink(fail=True))
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": 9,
                "changes": [
                    {
                        "field": "business_capability_update",
                        "value": {"max_phone_numbers_per_business": 20},
                    },
                    {"field": "account_update", "value": {"event": "PARTNER_ADDED"}},
                ],
            }
        ],
    }
    with capture_logs() as logs:
        assert await rx.post(payload) == 200
    assert rx.events("business_capability_update", "error") == 1
    assert rx.events("account_update", "error") == 1
    assert [e["log_level"] for e in logs if e["event"] == "webhook_event"] == ["error", "error"]
    # A failed change is not remembered: once the sink recovers, a retry applies it.
    rx.sink.fail = False
    assert await rx.post(payload) == 200
    assert rx.sink.caps == [(WABA, 20, "max_phone_numbers_per_business")]
    assert rx.sink.repolls == [(WABA, "business_capability_update"), (WABA, "account_update")]
    assert rx.events("account_update", "duplicate") == 0


async def test_a_failed_commit_is_500_and_the_redelivery_commits(rx: Receiver) -> None:
    """Never 200 for a fact that is not durable: Meta redelivers a 500, and the redelivery
    (a duplicate by then) commits what is still staged."""
    payload = note("account_update", {"event": "DISABLED_UPDATE",
                                      "ban_info": {"waba_ban_state": "DISABLE"}})
    rx.sink.fail_commit = True
    with capture_logs() as logs:
        assert await rx.post(payload) == 500
    assert rx.sink.facts == {}
    assert rx.sink.staged_facts[WABA].ban_state == "DISABLE"
    assert rx.requests("commit_failed") == 1 and rx.requests("ok") == 0
    failed = next(e for e in logs if e["event"] == "webhook_commit_failed")
    assert failed["log_level"] == "error"
    rx.sink.fail_commit = False
    assert await rx.post(payload) == 200
    assert rx.sink.facts[WABA].ban_state == "DISABLE"
    assert rx.events("account_update", "applied") == 1
    assert rx.events("account_update", "duplicate") == 1
    assert rx.requests("ok") == 1


async def test_every_body_is_committed_before_it_is_answered(rx: Receiver) -> None:
    assert await rx.post(note("phone_number_quality_update", QUALITY)) == 200
    assert await rx.post(note("brand_new_field", {})) == 200
    assert rx.sink.commits == 2
    assert await rx.post(raw=b"nope") == 400
    assert rx.sink.commits == 2


async def test_lookup_failure_does_not_stop_the_repoll(make_receiver: MakeReceiver) -> None:
    rx = await make_receiver(sink=FakeSink(fail_lookup=True))
    assert await rx.post(note("phone_number_quality_update", QUALITY)) == 200
    assert rx.sink.repolls == [(WABA, "phone_number_quality_update")]
    assert rx.events("phone_number_quality_update", "applied") == 1


# --------------------------------------------------------------------------- metrics, logs


def test_metrics_are_preinitialised() -> None:
    registry = CollectorRegistry()
    create_webhook_metrics(registry)
    for result in REQUEST_RESULTS:
        assert (
            registry.get_sample_value("whatsapp_monitor_webhook_requests_total", {"result": result})
            == 0
        )
    for field_name in (*KNOWN_FIELDS, OTHER_FIELD):
        for outcome in ("applied", "ignored", "duplicate", "invalid", "error"):
            assert outcome in EVENT_OUTCOMES
            assert (
                registry.get_sample_value(
                    "whatsapp_monitor_webhook_events_total",
                    {"field": field_name, "outcome": outcome},
                )
                == 0
            )
    # No notification yet: no timestamp at all, never a made-up 0.
    assert registry.get_sample_value(
        "whatsapp_monitor_webhook_last_event_timestamp_seconds") is None


async def test_counters_add_up_over_a_session(rx: Receiver) -> None:
    await rx.post(note("phone_number_quality_update", QUALITY))
    await rx.post(note("phone_number_quality_update", QUALITY))
    await rx.post(note("phone_number_quality_update", QUALITY), signature=None)
    await rx.post(note("phone_number_quality_update", QUALITY), signature="sha256=00")
    await rx.post(raw=b"nope")
    await rx.post(note("business_capability_update", {"max_phone_numbers_per_waba": "x"}))
    await rx.client.get(
        PATH, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "c"}
    )
    await rx.client.get(PATH)
    assert {r: rx.requests(r) for r in REQUEST_RESULTS} == {
        "ok": 3,
        "bad_signature": 1,
        "unsigned": 1,
        "too_large": 0,
        "malformed": 1,
        "refused_no_secret": 0,
        "verify_ok": 1,
        "verify_failed": 1,
        "commit_failed": 0,
    }
    assert rx.events("phone_number_quality_update", "applied") == 1
    assert rx.events("phone_number_quality_update", "duplicate") == 1
    assert rx.events("business_capability_update", "invalid") == 1


async def test_secrets_never_reach_the_logs(rx: Receiver) -> None:
    challenge = "challenge-4471-secretish"
    payload = note("phone_number_quality_update", {**QUALITY, "marker": "body-marker-xyz"})
    raw = json.dumps(payload).encode()
    good = sign(raw, SECRET)
    wrong = sign(raw, "other-secret")
    with capture_logs() as logs:
        await rx.client.get(
            PATH,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY,
                "hub.challenge": challenge,
            },
        )
        await rx.client.get(
            PATH,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "guess-" + VERIFY,
                "hub.challenge": challenge,
            },
        )
        await rx.post(raw=raw, signature=good)
        await rx.post(raw=raw, signature=wrong)
        await rx.post(raw=b'{"marker": "body-marker-xyz"')
    text = repr(logs)
    assert logs
    for secret in (SECRET, VERIFY, challenge, good[7:], wrong[7:], "body-marker-xyz"):
        assert secret not in text


def test_add_webhook_routes_validates_config() -> None:
    metrics = create_webhook_metrics(CollectorRegistry())
    with pytest.raises(ValueError, match="path"):
        add_webhook_routes(web.Application(), WebhookConfig(path="hook"), FakeSink(), metrics)
    with pytest.raises(ValueError, match="max_body_bytes"):
        add_webhook_routes(web.Application(), WebhookConfig(max_body_bytes=0), FakeSink(), metrics)


async def test_forwarding_names_the_wabas_as_resolved(aiohttp_client: Any) -> None:
    """A shard that does not watch a WABA passes its webhooks on; partner events name the WABA
    in ``waba_info`` (entry.id is the partner's portfolio), and odd changes do not stop it."""
    forwarded: list[frozenset[str]] = []
    app = web.Application()
    add_webhook_routes(app, WebhookConfig(path=PATH, app_secret=SECRET), FakeSink(wabas={}),
                       create_webhook_metrics(CollectorRegistry()),
                       forward=lambda _body, _sig, wabas: forwarded.append(wabas))
    client: Client = await aiohttp_client(app)
    payload = {"object": "whatsapp_business_account", "entry": [
        {"id": "730000000000001", "time": "1748454394", "changes": [
            {"field": "account_update", "value": {
                "event": "PARTNER_ADDED", "waba_info": {"waba_id": "888000000000001",
                                                        "owner_business_id": "777"}}},
            "not a change"]},
        {"id": WABA, "changes": [GOOD_CHANGE]}]}
    raw = json.dumps(payload).encode()
    resp = await client.post(PATH, data=raw, headers={"X-Hub-Signature-256": sign(raw, SECRET)})
    assert resp.status == 200
    assert forwarded == [frozenset({"888000000000001", WABA})]
