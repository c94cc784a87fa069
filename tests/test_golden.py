"""Golden exposition: a fixed fleet rendered through the real Store, compared byte for byte.

The fleet is two businesses (one with a configured cap, one whose cap is inferred), three
WABAs (one whose last poll failed) and twelve numbers that between them take every known value
of every enum plus unknown ones, parsed from recorded Graph API JSON under
``tests/fixtures/golden/`` by ``monitor.model.parse_phone_number``, with usage readings parsed
from a recorded ``X-Business-Use-Case-Usage`` header. The golden files hold the store's body
only (``/metrics`` appends the self-metrics and, in OpenMetrics, ``# EOF``).

After an intended change of the output, regenerate the files and review their diff::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from monitor import exposition
from monitor.accounts import (
    PAUSE_SECONDS,
    TemplateFact,
    WabaFacts,
    apply_account_update,
    apply_review,
    parse_account_alert,
    parse_template,
    parse_waba_node,
    record_security_event,
)
from monitor.exposition import ExpositionOptions, sample_writer
from monitor.families import FAMILIES
from monitor.graph.usage import parse_buc_usage
from monitor.model import BusinessState, WabaState, parse_phone_number
from monitor.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "golden"
GOLDEN = Path(__file__).parent / "golden"
ACME, BISTRO = "100000000000001", "100000000000002"
NOW = 1_764_240_000.0


EXPECTED_CALLBACK = "https://monitor.example.com/webhooks/whatsapp?key=s3cret"


def numbers(waba_id: str) -> tuple:
    page = json.loads((FIXTURES / f"phone_numbers_{waba_id}.json").read_text())
    return tuple(parse_phone_number(raw, expected_callback=EXPECTED_CALLBACK)
                 for raw in page["data"])


def fleet(options: ExpositionOptions) -> Store:
    usage = parse_buc_usage((FIXTURES / "business_use_case_usage.json").read_text())
    own = {u.object_id: tuple(e for e in usage if e.object_id == u.object_id) for u in usage}
    store = Store(options, clock=lambda: NOW)
    store.put_business(BusinessState(ACME, configured_cap=5, verified=True,
                                     verification_status="verified",
                                     identity_check_required=True))
    store.put_business(BusinessState(BISTRO))  # TIER_2K among its numbers: cap inferred (20)
    main = numbers("200000000000101")
    store.put_waba(WabaState(
        ACME, "200000000000101", numbers=main, up=True, polled=True, last_success=NOW,
        last_attempt=NOW, last_duration=0.25, last_requests=2, polls=41, failures=1,
        status_changed_at={main[0].id: NOW - 86_400.5, main[1].id: NOW - 60},
        usage_ratio=max(u.max_ratio for u in own["200000000000101"]), allowance_per_hour=5000,
        interval=60.0, usage=own["200000000000101"]))
    # Its last poll failed: the numbers of the poll before stay, the success time does not move.
    store.put_waba(WabaState(
        ACME, "200000000000102", numbers=numbers("200000000000102"), up=False, polled=True,
        last_success=NOW - 600, last_attempt=NOW - 5, last_error="HTTP 500", last_requests=3,
        polls=12, failures=4, usage_ratio=1.0, allowance_per_hour=5000, interval=187.5,
        slowdown=3.125, usage=own["200000000000102"]))
    bistro = numbers("200000000000201")
    store.put_waba(WabaState(
        BISTRO, "200000000000201", numbers=bistro, up=True, polled=True, last_success=NOW - 30,
        last_attempt=NOW - 30, last_requests=1, polls=3,
        status_changed_at={n.id: NOW - 3600 for n in bistro}, allowance_per_hour=200,
        interval=0.1))
    store.put_other_usage(usage)  # the business's own readings; the WABAs' are theirs
    node = json.loads((FIXTURES / "waba_200000000000101.json").read_text())
    store.put_waba_node("200000000000101", parse_waba_node(node, at=NOW - 120))
    business = store.business(ACME)
    assert business is not None
    store.put_business(dataclasses.replace(business, messaging_limit="TIER_10K",
                                           messaging_limit_source="business"))
    facts = WabaFacts(phone_numbers_cap=25)
    for change in json.loads((FIXTURES / "account_webhooks_200000000000102.json").read_text()):
        if change["field"] == "account_update":
            facts = apply_account_update(facts, change["value"], change["at"])
        elif change["field"] == "account_review_update":
            facts = apply_review(facts, change["value"], change["at"]) or facts
        elif change["field"] == "security":
            facts = record_security_event(facts, change["phone_number_id"],
                                          change["value"]["event"], change["at"])
        else:
            alert = parse_account_alert(ACME, change["value"], change["at"])
            assert alert is not None
            store.put_account_alert(alert)
    store.put_waba_facts("200000000000102", facts)
    listing = json.loads((FIXTURES / "message_templates_200000000000101.json").read_text())
    store.put_templates("200000000000101", tuple(
        t for t in map(parse_template, listing["data"]) if t is not None), at=NOW - 600)
    # Told by webhook after that read: the paused template's pause ends 3 h after it began.
    store.put_waba_facts("200000000000101", WabaFacts(templates={
        "400000000000002": TemplateFact(at=NOW - 300, status="PAUSED",
                                        paused_until=NOW - 300 + PAUSE_SECONDS["FIRST_PAUSE"])}))
    store.put_subscription("200000000000101", True)
    store.put_subscription("200000000000102", False)  # our app was unsubscribed
    store.put_number_setting("200000000000101", main[0].id, True)
    store.put_number_setting("200000000000101", main[1].id, False)
    return store


CASES = {
    "metrics.txt": (ExpositionOptions(), False),
    "metrics.openmetrics.txt": (ExpositionOptions(), True),
    "metrics.compact.txt": (ExpositionOptions(compact=True), False),
}


def rendered(name: str) -> bytes:
    options, openmetrics = CASES[name]
    body = fleet(options).body()
    text = body.openmetrics if openmetrics else body.text
    assert gzip.decompress(body.gzip(openmetrics=openmetrics)) == text
    return text


@pytest.mark.parametrize("name", sorted(CASES))
def test_exposition_matches_the_golden_file(name: str) -> None:
    got = rendered(name)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(got)
    assert got == path.read_bytes(), f"{name} differs; see this module's docstring"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_files_parse(name: str) -> None:
    text = (GOLDEN / name).read_text(encoding="utf-8")
    if CASES[name][1]:
        families = list(om_parse(text + "# EOF\n"))
        declared = {f.name.removesuffix("_total") if f.type == "counter" else f.name
                    for f in FAMILIES}
    else:
        families = list(text_string_to_metric_families(text))
        declared = {f.name for f in FAMILIES}
    names = [f.name for f in families]
    assert len(names) == len(set(names))  # each family once, samples grouped under it
    # Every family has a sample in this fleet, so the golden files cover every declaration.
    assert {n.removesuffix("_total") for n in names} == {
        n.removesuffix("_total") for n in declared}
    samples = [s for f in families for s in f.samples]
    names_seen = {s.labels.get("verified_name") for s in samples}
    assert "Ann's \"Café\" \\ Deli\nNorth" in names_seen


def test_golden_fleet_covers_the_interesting_cases() -> None:
    text = (GOLDEN / "metrics.txt").read_text(encoding="utf-8")
    for line in ('status="OFFLINE"} 1', 'rating="PURPLE"} 1', 'tier="TIER_5K"} 1',
                 f'whatsapp_business_registered_phone_numbers_cap_info{{business_id="{ACME}",'
                 'source="config"} 1',
                 f'whatsapp_business_registered_phone_numbers_cap_info{{business_id="{BISTRO}",'
                 'source="inferred"} 1',
                 'whatsapp_monitor_waba_up{business_id="100000000000001",'
                 'waba_id="200000000000102"} 0',
                 'name="Acme \\"Main\\" \\\\ EU"',
                 'restriction_type="RESTRICTED_ADD_PHONE_NUMBER_ACTION"} +Inf\n',
                 'entity_type="WABA",entity_id="200000000000101",error_code="141006"} 1\n',
                 "} +Inf\n"):
        assert line in text, line


@pytest.fixture
def reference_writers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Render with the plain writer of every family instead of the compiled fast paths."""
    monkeypatch.setattr(exposition, "_WRITERS", {False: {}, True: {}})
    monkeypatch.setattr(exposition, "compile_writer", sample_writer)
    yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_paths_match_the_declarations(name: str, reference_writers: None) -> None:
    assert rendered(name) == (GOLDEN / name).read_bytes()
