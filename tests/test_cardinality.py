"""Cardinality control: compact enums and family allow/deny lists, counted per number."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import ConfigError, load_settings
from monitor.exposition import ExpositionOptions
from monitor.families import FAMILY_NAMES
from monitor.model import BusinessState, WabaState, parse_phone_number
from monitor.runtime import exposition_options
from monitor.store import Store
from tests.conftest import write_config

FULL_NUMBER = {
    "id": "3", "display_phone_number": "+1 555", "verified_name": "A", "status": "CONNECTED",
    "quality_rating": "GREEN", "name_status": "APPROVED", "throughput": {"level": "STANDARD"},
    "code_verification_status": "VERIFIED", "platform_type": "CLOUD_API", "account_mode": "LIVE",
    "is_official_business_account": False, "whatsapp_business_manager_messaging_limit": "TIER_2K",
    "health_status": {"can_send_message": "AVAILABLE"},
}


def per_number_series(options: ExpositionOptions) -> dict[str, int]:
    store = Store(options)
    store.put_business(BusinessState("1"))
    store.put_waba(WabaState("1", "2", numbers=(parse_phone_number(FULL_NUMBER),), up=True,
                             polled=True, status_changed_at={"3": 1.0}))
    text = store.body().text.decode()
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("phone_number_id") == "3":
                counts[sample.name] = counts.get(sample.name, 0) + 1
    return counts


def test_series_per_number_in_each_mode() -> None:
    full = per_number_series(ExpositionOptions())
    compact = per_number_series(ExpositionOptions(compact=True))
    assert full["whatsapp_phone_number_status"] == 11
    assert compact["whatsapp_phone_number_status"] == 1
    # These totals are the README's "series per number" figures.
    assert sum(full.values()) == 48
    assert sum(compact.values()) == 13


def test_unknown_value_still_shows_in_compact_mode() -> None:
    store = Store(ExpositionOptions(compact=True))
    store.put_waba(WabaState("1", "2", numbers=(parse_phone_number(
        {"id": "3", "status": "OFFLINE"}),), up=True, polled=True))
    assert 'status="OFFLINE"} 1' in store.body().text.decode()


def test_include_and_exclude_select_families(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {
        "businesses": [{"id": "1"}],
        "metrics": {"enum_mode": "compact", "include": ["whatsapp_phone_number_*"],
                    "exclude": ["whatsapp_phone_number_code_verification_status"]},
    }), environ={}, family_names=FAMILY_NAMES)
    options = exposition_options(settings)
    assert options.compact
    counts = per_number_series(options)
    assert "whatsapp_phone_number_code_verification_status" not in counts
    assert counts["whatsapp_phone_number_status"] == 1
    store = Store(options)
    store.put_waba(WabaState("1", "2", up=True, polled=True))
    assert "whatsapp_monitor_waba_up" not in store.body().text.decode()


def test_unknown_family_pattern_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.exclude.*matches no metric family"):
        load_settings(write_config(tmp_path, {
            "businesses": [{"id": "1"}], "metrics": {"exclude": ["whatsapp_nope_*"]}}),
            environ={}, family_names=FAMILY_NAMES)


def test_switching_mode_rerenders_everything() -> None:
    store = Store()
    store.put_waba(WabaState("1", "2", numbers=(parse_phone_number(FULL_NUMBER),), up=True,
                             polled=True))
    assert store.body().text.decode().count("whatsapp_phone_number_status{") == 11
    store.set_options(ExpositionOptions(compact=True))
    assert store.body().text.decode().count("whatsapp_phone_number_status{") == 1
