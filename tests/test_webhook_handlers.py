"""The handler table and the outcome helper: the seams a new webhook field plugs into.

Adding a field is one module under ``monitor/webhooks/handlers/`` and one row in ``HANDLERS``;
these tests fail when the two disagree, when the receiver counts fields the table does not
know (or the other way round), or when an outcome is logged or counted anywhere but in
``record_outcome``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

import monitor.webhooks
from monitor.webhooks import handlers as handlers_pkg
from monitor.webhooks.contract import EVENT_OUTCOMES, Outcome
from monitor.webhooks.envelope import WebhookChange, resolve_waba, sign
from monitor.webhooks.handlers import HANDLERS, KNOWN_FIELDS, OTHER_FIELD, dispatch, metric_label
from monitor.webhooks.receiver import WebhookConfig, add_webhook_routes, create_webhook_metrics
from tests.test_webhooks import BUSINESS, DISPLAY, NUMBER_ID, SECRET, WABA, FakeSink, note

PATH = "/hook"
Client = TestClient[Any, Any]

# One applied, one ignored and one invalid value per handled field. A new field needs a row
# here too (test_examples_cover_every_handled_field says so).
UNWATCHED = {"waba_info": {"waba_id": "999"}}  # resolves to a WABA this process does not watch
EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "business_capability_update": {
        "applied": {"max_phone_numbers_per_business": 20},
        "ignored": {"max_daily_conversations_per_business": "TIER_2K", **UNWATCHED},
        "invalid": {"max_phone_numbers_per_business": "twenty"},
    },
    "phone_number_quality_update": {
        "applied": {"display_phone_number": DISPLAY, "event": "THROUGHPUT_UPGRADE",
                    "max_daily_conversations_per_business": "TIER_UNLIMITED"},
        "ignored": {"display_phone_number": DISPLAY, "event": "NEW_THING"},
        "invalid": {"display_phone_number": DISPLAY, "event": 5},
    },
    "account_update": {
        "applied": {"phone_number": DISPLAY, "event": "ACCOUNT_RESTRICTION"},
        "ignored": {"event": "ACCOUNT_VIOLATION", **UNWATCHED},
        "invalid": {"event": None},
    },
    "phone_number_name_update": {
        "applied": {"display_phone_number": DISPLAY, "decision": "APPROVED"},
        "ignored": {"display_phone_number": DISPLAY, "decision": "MAYBE"},
        "invalid": {"display_phone_number": DISPLAY, "decision": ["A"]},
    },
    "account_alerts": {
        "applied": {"entity_type": "PHONE_NUMBER", "entity_id": NUMBER_ID,
                    "alert_info": {"alert_type": "PROFILE_PICTURE_LOST"}},
        "ignored": {"entity_type": "PHONE_NUMBER", "entity_id": "1",
                    "alert_info": {"alert_type": "OBA_APPROVED"}, **UNWATCHED},
        "invalid": {"entity_type": "PHONE_NUMBER", "entity_id": NUMBER_ID},
    },
    "account_review_update": {
        "applied": {"decision": "APPROVED"},
        "ignored": {"decision": "APPROVED", **UNWATCHED},
        "invalid": {"decision": 7},
    },
    "message_template_status_update": {
        "applied": {"event": "PAUSED", "message_template_id": 1689556908129832,
                    "message_template_name": "promo", "message_template_language": "en-US",
                    "other_info": {"title": "FIRST_PAUSE"}},
        "ignored": {"event": "PAUSED", "message_template_id": 1, **UNWATCHED},
        "invalid": {"event": None, "message_template_id": 1},
    },
    "message_template_quality_update": {
        "applied": {"new_quality_score": "RED", "previous_quality_score": "GREEN",
                    "message_template_id": 1689556908129832},
        "ignored": {"new_quality_score": "RED", "message_template_id": 1, **UNWATCHED},
        "invalid": {"new_quality_score": None, "message_template_id": 1},
    },
    "template_category_update": {
        "applied": {"message_template_id": 1689556908129832, "new_category": "UTILITY",
                    "correct_category": "MARKETING", "category_update_timestamp": 1767225600},
        "ignored": {"message_template_id": 1, "new_category": "MARKETING", **UNWATCHED},
        "invalid": {"message_template_id": 1},
    },
    "security": {
        "applied": {"display_phone_number": DISPLAY, "event": "PIN_RESET_REQUEST",
                    "requester": "7"},
        "ignored": {"display_phone_number": DISPLAY, "event": "PIN_CHANGED", **UNWATCHED},
        "invalid": {"display_phone_number": DISPLAY, "event": None},
    },
}
HANDLER_RESULTS = ("applied", "ignored", "invalid")


def change(field_name: str, value: dict[str, Any], *, waba: str = WABA,
           obj: str = "whatsapp_business_account") -> WebhookChange:
    """A change as the envelope would give it (the WABA resolved per facts §2.2)."""
    return WebhookChange(obj, resolve_waba(value, waba), 1, field_name, value, entry_id=waba)


def field_modules() -> dict[str, Any]:
    """Every public module in monitor/webhooks/handlers/, by name."""
    return {
        info.name: importlib.import_module(f"{handlers_pkg.__name__}.{info.name}")
        for info in pkgutil.iter_modules(handlers_pkg.__path__)
        if not info.name.startswith("_")
    }


# --------------------------------------------------------------------------- the table


def test_one_module_per_field_and_one_row_per_module() -> None:
    modules = field_modules()
    assert {m.FIELD for m in modules.values()} == set(HANDLERS)
    for name, module in modules.items():
        assert name == module.FIELD, "a handler module is named after its field"
        assert HANDLERS[module.FIELD] is module.handle
    # The fields handled today; the table must not lose one in a refactoring.
    assert set(HANDLERS) == {"business_capability_update", "phone_number_quality_update",
                             "account_update", "phone_number_name_update", "account_alerts",
                             "account_review_update", "security",
                             "message_template_status_update",
                             "message_template_quality_update", "template_category_update"}


def test_handlers_are_plain_synchronous_functions() -> None:
    for handler in HANDLERS.values():
        assert callable(handler)
        assert not inspect.iscoroutinefunction(handler)
        assert list(inspect.signature(handler).parameters) == ["change", "sink"]


def test_the_receiver_counts_exactly_the_fields_in_the_table() -> None:
    assert tuple(HANDLERS) == KNOWN_FIELDS
    assert monitor.webhooks.KNOWN_FIELDS is KNOWN_FIELDS
    registry = CollectorRegistry()
    create_webhook_metrics(registry)
    labels = {
        s.labels["field"]
        for metric in registry.collect() if metric.name == "whatsapp_monitor_webhook_events"
        for s in metric.samples if s.name.endswith("_total")
    }
    assert labels == {*HANDLERS, OTHER_FIELD}
    for field_name in HANDLERS:
        assert metric_label(field_name) == field_name
    for field_name in ("messages", "statuses", "message_template_components_update", "",
                       "other"):
        assert metric_label(field_name) == OTHER_FIELD


def test_examples_cover_every_handled_field() -> None:
    assert set(EXAMPLES) == set(HANDLERS)


@pytest.mark.parametrize("field_name", list(EXAMPLES))
@pytest.mark.parametrize("result", HANDLER_RESULTS)
def test_dispatch_returns_the_handlers_outcome(field_name: str, result: str) -> None:
    sink = FakeSink()
    outcome = dispatch(change(field_name, EXAMPLES[field_name][result]), sink)
    assert isinstance(outcome, Outcome)
    assert outcome.result == result
    assert (sink.calls > 0) == (result == "applied")
    if result != "applied":
        assert isinstance(outcome.details["reason"], str)


@pytest.mark.parametrize("field_name", list(EXAMPLES))
def test_dispatch_checks_what_every_field_shares(field_name: str) -> None:
    sink = FakeSink()
    applied = EXAMPLES[field_name]["applied"]
    assert dispatch(change(field_name, applied, obj="page"), sink).result == "ignored"
    assert dispatch(change(field_name, applied, waba="abc"), sink).result == "invalid"
    assert sink.calls == 0
    assert dispatch(change("messages", applied), sink) == Outcome.ignored("field not handled")


def test_outcome_details_cannot_overwrite_the_common_keys() -> None:
    for key in ("field", "waba_id", "outcome"):
        with pytest.raises(ValueError, match=key):
            Outcome.applied(**{key: "x"})
    assert set(EVENT_OUTCOMES) == {"applied", "ignored", "duplicate", "invalid", "error"}


# --------------------------------------------------------------------------- the helper


def test_only_the_helper_logs_or_counts_webhook_events() -> None:
    """No per-field copies of the log line or the counter: one call site each."""
    package = Path(monitor.webhooks.__file__).parent
    sources = {p.relative_to(package).as_posix(): p.read_text() for p in package.rglob("*.py")}
    assert [p for p, text in sources.items() if '"webhook_event"' in text] == ["contract.py"]
    assert sources["contract.py"].count('"webhook_event"') == 1
    assert [p for p, text in sources.items() if "events.labels(" in text] == [
        "contract.py", "receiver.py"]  # receiver.py only pre-sets the labels at creation
    assert "events.labels(field=field, outcome=outcome)" in sources["receiver.py"]


@pytest.fixture
async def receiver(aiohttp_client: Any) -> tuple[Client, FakeSink, CollectorRegistry]:
    registry, sink, app = CollectorRegistry(), FakeSink(), web.Application()
    add_webhook_routes(app, WebhookConfig(path=PATH, app_secret=SECRET), sink,
                       create_webhook_metrics(registry), clock=lambda: 1.0)
    client: Client = await aiohttp_client(app)
    return client, sink, registry


async def post(client: Client, payload: Any) -> int:
    body = json.dumps(payload).encode()
    resp = await client.post(PATH, data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)})
    await resp.read()
    return resp.status


def counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.labels["field"], s.labels["outcome"]): s.value
        for metric in registry.collect() if metric.name == "whatsapp_monitor_webhook_events"
        for s in metric.samples if s.name.endswith("_total") and s.value
    }


async def test_every_field_and_outcome_logs_the_same_keys_and_counts_once(
    receiver: tuple[Client, FakeSink, CollectorRegistry],
) -> None:
    client, _, registry = receiver
    expected: dict[tuple[str, str], float] = {}
    with capture_logs() as logs:
        for field_name, examples in EXAMPLES.items():
            for result in HANDLER_RESULTS:
                assert await post(client, note(field_name, examples[result])) == 200
                expected[(field_name, result)] = 1
            assert await post(client, note(field_name, examples["applied"])) == 200
            expected[(field_name, "duplicate")] = 1
        assert await post(client, note("brand_new_field", {"a": 1})) == 200
        expected[(OTHER_FIELD, "ignored")] = 1
    assert counts(registry) == expected
    entries = [e for e in logs if e["event"] == "webhook_event"]
    assert len(entries) == sum(expected.values())
    for entry in entries:
        assert {"field", "waba_id", "outcome", "log_level"} <= set(entry)
        assert entry["log_level"] == ("warning" if entry["outcome"] == "invalid" else "info")
        if entry["outcome"] in ("ignored", "invalid"):
            assert isinstance(entry["reason"], str)
    logged = {(metric_label(e["field"]), e["outcome"]) for e in entries}
    assert logged == set(expected)
    # Every applied change names its event value; the re-poll fields log the number the same
    # way; phone-number ids come from the lookup or (account_alerts) from the payload itself.
    applied = [e for e in entries if e["outcome"] == "applied"]
    assert all("event_value" in e or e["field"] == "business_capability_update" for e in applied)
    repolled = [e for e in applied
                if e["field"] in ("phone_number_quality_update", "phone_number_name_update")]
    assert len(repolled) == 2
    assert all({"event_value", "display_phone_number", "phone_number_id"} <= set(e)
               for e in repolled)
    assert {e["phone_number_id"] for e in applied if e.get("phone_number_id")} == {NUMBER_ID}
    assert {e["business_id"] for e in applied if "business_id" in e} == {BUSINESS}


async def test_unknown_fields_are_counted_as_other_and_create_no_label(
    receiver: tuple[Client, FakeSink, CollectorRegistry],
) -> None:
    client, sink, registry = receiver
    unknown = ["statuses", "message_template_components_update", "x" * 500]
    payload = {"object": "whatsapp_business_account", "entry": [{
        "id": WABA, "time": 3, "changes": [{"field": f, "value": {"a": 1}} for f in unknown]}]}
    with capture_logs() as logs:
        assert await post(client, payload) == 200
    assert sink.calls == 0 and sink.lookups == []
    assert counts(registry) == {(OTHER_FIELD, "ignored"): len(unknown)}
    entries = [e for e in logs if e["event"] == "webhook_event"]
    assert [e["reason"] for e in entries] == ["field not handled"] * len(unknown)
    assert all(len(e["field"]) <= 81 for e in entries)  # log_text bounds what is logged


async def test_sink_failure_is_recorded_as_error_by_the_same_helper(
    receiver: tuple[Client, FakeSink, CollectorRegistry],
) -> None:
    client, sink, registry = receiver
    sink.fail = True
    with capture_logs() as logs:
        for field_name, examples in EXAMPLES.items():
            assert await post(client, note(field_name, examples["applied"])) == 200
    assert counts(registry) == {(f, "error"): 1 for f in EXAMPLES}
    entries = [e for e in logs if e["event"] == "webhook_event"]
    assert [e["field"] for e in entries] == list(EXAMPLES)
    assert all(e["log_level"] == "error" and e["exc_info"] for e in entries)
