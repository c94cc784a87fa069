"""Family declarations: sane, fast paths equal to the declarations, and every family served."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor import exposition
from monitor.families import (
    FAMILIES,
    FAMILY_NAMES,
    NUMBER,
    NUMBER_FAMILIES,
    Family,
    NumberInWaba,
    StateSet,
)
from monitor.model import PhoneNumber, WabaState
from monitor.runtime import Runtime
from monitor.simulator import World, builtin_scenario, start_simulator
from tests.test_end_to_end import DEMO_TOKEN, demo_config, wait_ready

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def test_declarations_are_consistent() -> None:
    assert exposition.FAMILY_NAMES == FAMILY_NAMES  # re-exported for the config
    assert len(set(FAMILY_NAMES)) == len(FAMILY_NAMES)
    for family in FAMILIES:
        assert NAME.fullmatch(family.name), family.name
        assert family.type in ("gauge", "counter")
        assert (family.type == "counter") == family.name.endswith("_total"), family.name
        assert family.help and "\n" not in family.help
        assert len(set(family.label_names)) == len(family.label_names), family.name
        if isinstance(family.samples, StateSet):
            assert len(family.labels) == 1, family.name


STATESETS = [f for f in NUMBER_FAMILIES if isinstance(f.samples, StateSet)]
FIELD = {"whatsapp_phone_number_status": "status",
         "whatsapp_phone_number_quality_rating": "quality_rating",
         "whatsapp_phone_number_name_status": "name_status",
         "whatsapp_phone_number_throughput_level": "throughput_level",
         "whatsapp_phone_number_code_verification_status": "code_verification_status",
         "whatsapp_phone_number_health_status": "health_status",
         "whatsapp_phone_number_messaging_limit_tier": "messaging_limit",
         "whatsapp_phone_number_new_name_status": "new_name_status"}


def test_every_phone_number_enum_is_a_stateset() -> None:
    assert {f.name for f in STATESETS} == set(FIELD)


@pytest.mark.parametrize("family", STATESETS, ids=lambda f: f.name)
@pytest.mark.parametrize("compact", [False, True])
def test_stateset_fast_path_matches_the_declaration(family: Family[NumberInWaba],
                                                    compact: bool) -> None:
    samples = family.samples
    assert isinstance(samples, StateSet)
    waba = WabaState("1", "2")
    for value in (*samples.known, None, "OFFLINE", 'we"ird\\va\nlue', ""):
        row = NumberInWaba(waba, PhoneNumber("3", **{FIELD[family.name]: value}))
        base = exposition.identity_labels(NUMBER, row)
        fast = exposition.compile_writer(family, compact)(base, row)
        assert fast == exposition.sample_writer(family, compact)(base, row), value
        if value is None:
            expected = 0
        elif compact:
            expected = 1
        else:
            expected = len(samples.known) + (value not in samples.known)
        assert fast.count("\n") == expected


APP_SECRET = "every-family-app-secret"


async def _send_account_webhooks(session: aiohttp.ClientSession, sim: str, daemon: str) -> None:
    """Have the simulator sign and send what only webhooks tell (it also runs the demo
    timeline, but this does not wait for it)."""
    async def post(path: str, body: dict[str, object]) -> None:
        async with session.post(f"{sim}{path}", json=body) as resp:
            assert resp.status < 300, await resp.text()

    await post("/_sim/webhooks/target", {"url": f"{daemon}/webhooks/whatsapp",
                                          "app_secret": APP_SECRET})
    for action in (
        {"action": "restrict_waba", "waba": "200000000000005", "expires_in": "168h"},
        {"action": "record_violation", "waba": "200000000000006", "violation_type": "SCAM"},
        {"action": "ban_waba", "waba": "200000000000006", "state": "SCHEDULE_FOR_DISABLE",
         "date": "April 17, 2030"},
        {"action": "account_alert", "entity_type": "BUSINESS", "entity_id": "100000000000002",
         "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
         "alert_severity": "WARNING"},
        {"action": "set_business", "business": "100000000000002",
         "max_phone_numbers_per_waba": 25},
        {"action": "security_event", "number": "300000000000010", "event": "PIN_RESET_REQUEST"},
        {"action": "pause_template", "template": "400000000000002"},
        {"action": "template_category", "template": "400000000000001", "category": "MARKETING",
         "stage": "notice"},
    ):
        await post("/_sim/actions", action)


def sample_families(registry_metrics: list) -> set[str]:
    """Sample names a prometheus_client registry may expose, from its collected families."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                "_created"), "summary": ("", "_count", "_sum", "_created"), "info": ("_info",),
                "gaugehistogram": ("_bucket", "_gcount", "_gsum")}
    return {m.name + suffix for m in registry_metrics for suffix in suffixes.get(m.type, ("",))}


async def test_demo_scenario_serves_every_declared_family_and_nothing_else() -> None:
    """The demo fleet polled by the real daemon, and the simulator's signed account webhooks
    received by it, show every family families.py declares (deprecated ones included when
    asked for), and every other series comes from the self-metrics registry."""
    from monitor.config import load_settings

    runner, sim_url = await start_simulator(World(builtin_scenario("demo")))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = demo_config(Path(tmp), sim_url, app_id="900000000000001")
            doc = yaml.safe_load(config.read_text())
            doc["metrics"] = {"include": ["*"]}  # deprecated families too
            doc["schedule"]["settings_interval"] = "2s"
            doc["businesses"][1]["require_identity_key_check"] = True
            doc["webhooks"] = {"expected_callback_url": "https://monitor.example/webhooks"}
            config.write_text(yaml.safe_dump(doc))
            settings = load_settings(config, environ={})
            async with Runtime(settings, access_token=DEMO_TOKEN, app_secret=APP_SECRET,
                               port=0) as runtime, aiohttp.ClientSession() as session:
                await wait_ready(runtime.url)
                await _send_account_webhooks(session, sim_url, runtime.url)
                text = ""
                for _ in range(100):  # webhooks are applied as they arrive
                    async with session.get(f"{runtime.url}/metrics") as resp:
                        assert resp.status == 200
                        text = await resp.text()
                    if all(f"{name}{{" in text or f"{name} " in text for name in FAMILY_NAMES):
                        break
                    await asyncio.sleep(0.1)
                registry = list(runtime.metrics.registry.collect())
    finally:
        await runner.cleanup()
    served: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            served[sample.name] = served.get(sample.name, 0) + 1
    missing = [name for name in FAMILY_NAMES if name not in served]
    assert not missing, f"declared but not served with the demo scenario: {missing}"
    assert any(m.name.startswith("whatsapp_monitor_webhook_") for m in registry)
    declared = set(FAMILY_NAMES) | sample_families(registry)
    undeclared = sorted(set(served) - declared)
    assert not undeclared, f"served but not declared: {undeclared}"
