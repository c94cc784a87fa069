"""Rendering: StateSets, absent fields, escaping, and both exposition formats parse."""

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from monitor.model import KNOWN_STATUS, BusinessState, PhoneNumber, WabaState, parse_phone_number
from monitor.store import Store


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


BASE = {"business_id": "1", "waba_id": "2"}


def store_with(*numbers: PhoneNumber, up: bool = True) -> Store:
    store = Store()
    store.put_business(BusinessState(business_id="1"))
    store.put_waba(WabaState("1", "2", numbers=numbers, up=up, polled=True, last_success=1000.0,
                             last_attempt=1000.0, polls=1))
    return store


def test_unknown_status_is_exported_as_observed() -> None:
    number = parse_phone_number({"id": "3", "status": "OFFLINE", "platform_type": "CLOUD_API"})
    got = samples(store_with(number).body().text.decode())
    labels = {**BASE, "phone_number_id": "3"}
    assert got[key("whatsapp_phone_number_status", **labels, status="OFFLINE")] == 1
    for known in KNOWN_STATUS:
        assert got[key("whatsapp_phone_number_status", **labels, status=known)] == 0
    assert got[key("whatsapp_phone_number_connected", **labels)] == 0


def test_absent_fields_are_left_out_not_zero() -> None:
    number = parse_phone_number({"id": "3", "status": "CONNECTED"})
    text = store_with(number).body().text.decode()
    got = samples(text)
    assert got[key("whatsapp_phone_number_connected", **BASE, phone_number_id="3")] == 1
    for family in ("quality_rating", "name_status", "throughput_level", "registered",
                   "health_status", "messaging_limit_per_day"):
        assert f"whatsapp_phone_number_{family}{{" not in text


def test_label_values_are_escaped() -> None:
    number = parse_phone_number({"id": "3", "verified_name": 'Ann\'s "Café" \\ 1\n2'})
    text = store_with(number).body().text.decode()
    info = [s for f in text_string_to_metric_families(text)
            if f.name == "whatsapp_phone_number_info" for s in f.samples]
    assert info[0].labels["verified_name"] == 'Ann\'s "Café" \\ 1\n2'


def test_business_counts_registered_numbers_and_cap() -> None:
    numbers = [parse_phone_number({"id": str(i), "platform_type": p})
               for i, p in enumerate(["CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE"])]
    got = samples(store_with(*numbers).body().text.decode())
    assert got[key("whatsapp_business_registered_phone_numbers", business_id="1")] == 2
    assert got[key("whatsapp_business_phone_numbers", business_id="1")] == 3
    assert got[key("whatsapp_business_registered_phone_numbers_cap", business_id="1")] == 2
    assert got[key("whatsapp_business_registered_phone_numbers_cap_info", business_id="1",
                   source="default")] == 1


def test_unlimited_messaging_limit_is_inf() -> None:
    number = parse_phone_number({"id": "3", "whatsapp_business_manager_messaging_limit":
                                 "TIER_UNLIMITED"})
    got = samples(store_with(number).body().text.decode())
    assert got[key("whatsapp_phone_number_messaging_limit_per_day", **BASE,
                   phone_number_id="3")] == float("inf")


def test_openmetrics_counters_and_parse() -> None:
    body = store_with(parse_phone_number({"id": "3", "status": "CONNECTED"})).body()
    om = body.openmetrics.decode()
    assert "# TYPE whatsapp_monitor_waba_polls counter" in om
    assert "# TYPE whatsapp_monitor_waba_polls_total counter" in body.text.decode()
    families = {f.name for f in om_parse(om + "# EOF\n")}
    assert "whatsapp_monitor_waba_polls" in families
    assert "whatsapp_phone_number_status" in families


def test_body_is_one_gzip_stream_of_many_members() -> None:
    store = Store()
    store.put_business(BusinessState(business_id="1"))
    for waba in ("2", "3"):
        store.put_waba(WabaState("1", waba, numbers=(parse_phone_number(
            {"id": waba + "0", "status": "CONNECTED"}),), up=True, polled=True))
    body = store.body()
    assert body.text_gzip.count(b"\x1f\x8b\x08") > 10  # many members, one stream
    text = body.text.decode()
    # Each family's header appears once, with both WABAs' samples grouped under it.
    assert text.count("# TYPE whatsapp_phone_number_status gauge") == 1
    status_lines = [line for line in text.splitlines()
                    if line.startswith("whatsapp_phone_number_status{")]
    assert len(status_lines) == 2 * 11
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))


def test_body_is_rendered_once_per_version() -> None:
    store = store_with(parse_phone_number({"id": "3"}))
    first = store.body()
    assert store.body() is first
    store.put_waba(WabaState("1", "2", numbers=(), up=False, polled=True))
    assert store.body() is not first


def test_failed_poll_keeps_values_and_timestamp() -> None:
    store = store_with(parse_phone_number({"id": "3", "status": "FLAGGED"}))
    old = store.waba("2")
    assert old is not None
    from dataclasses import replace
    store.put_waba(replace(old, up=False, last_attempt=2000.0, failures=1, polls=2))
    got = samples(store.body().text.decode())
    assert got[key("whatsapp_monitor_waba_up", **BASE)] == 0
    assert got[key("whatsapp_monitor_waba_last_success_timestamp_seconds", **BASE)] == 1000.0
    assert got[key("whatsapp_phone_number_status", **BASE, phone_number_id="3",
                   status="FLAGGED")] == 1
    assert got[key("whatsapp_monitor_waba_poll_failures_total", **BASE)] == 1


def test_usage_of_other_objects_is_one_family_with_the_wabas() -> None:
    from monitor.graph.usage import BucUsage

    store = store_with(parse_phone_number({"id": "3"}))
    own = BucUsage("2", "whatsapp_business_management", 40, 1, 1, 0)
    from dataclasses import replace
    store.put_waba(replace(store.waba("2"), usage=(own,)))  # type: ignore[arg-type]
    store.put_other_usage([BucUsage("1", "whatsapp_business_management", 10, 1, 1, 0),
                           BucUsage("2", "whatsapp_business_management", 99, 1, 1, 0)])
    text = store.body().text.decode()
    assert text.count("# TYPE whatsapp_monitor_graph_business_use_case_usage_ratio gauge") == 1
    got = samples(text)
    ratio = "whatsapp_monitor_graph_business_use_case_usage_ratio"
    labels = {"type": "whatsapp_business_management", "measure": "call_count"}
    assert got[key(ratio, object_id="1", **labels)] == 0.1
    assert got[key(ratio, object_id="2", **labels)] == 0.4  # the WABA's own reading wins
