"""No timestamp 0: a ``*_timestamp_seconds`` family with nothing to report is absent, never a
made-up 0 (which a ``time() - x`` alert would read as "55 years ago")."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.model import WabaState
from monitor.selfmetrics import create_self_metrics
from monitor.store import Store
from monitor.webhooks.receiver import create_webhook_metrics
from tests.faultkit import fleet, running_daemon

WEBHOOK_LAST = "whatsapp_monitor_webhook_last_event_timestamp_seconds"
TOKEN_LAST_CHECK = "whatsapp_monitor_access_token_last_check_timestamp_seconds"


def timestamps(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a ``_timestamp_seconds`` family in an exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.endswith("_timestamp_seconds")}


def test_fresh_registries_have_no_timestamp_zero() -> None:
    metrics = create_self_metrics(process_metrics=False)
    webhooks = create_webhook_metrics(metrics.registry)
    text = generate_latest(metrics.registry).decode()
    assert not [k for k, v in timestamps(text).items() if v == 0]
    assert WEBHOOK_LAST not in text and TOKEN_LAST_CHECK not in text
    # Once something happened, the time is there.
    webhooks.last_event.set(1_700_000_000.0)
    metrics.token_last_check.set(1_700_000_001.0)
    found = timestamps(generate_latest(metrics.registry).decode())
    assert found[(WEBHOOK_LAST, frozenset())] == 1_700_000_000.0
    assert found[(TOKEN_LAST_CHECK, frozenset())] == 1_700_000_001.0


async def test_a_fresh_daemon_exports_no_timestamp_zero(tmp_path: Path) -> None:
    """Scrapes from start until every WABA is up: no timestamp sample is ever 0, and the
    webhook and token-check times are absent (no webhook came, no token check is set up)."""
    async with running_daemon(tmp_path, fleet()) as d:
        seen: list[dict[tuple[str, frozenset[tuple[str, str]]], float]] = []

        for _ in range(2):  # at once, then with every WABA polled
            status, text = await d.get("/metrics")
            assert status == 200
            seen.append(timestamps(text))
            await d.all_up()
    zeros = [k for scrape in seen for k, v in scrape.items() if v == 0]
    assert zeros == []
    names = {name for scrape in seen for name, _ in scrape}
    assert WEBHOOK_LAST not in names and TOKEN_LAST_CHECK not in names
    # the WABAs' poll times appear once polled: the check did look at real timestamps
    assert "whatsapp_monitor_waba_last_success_timestamp_seconds" in names


def test_unpolled_wabas_export_no_poll_timestamps() -> None:
    store = Store()
    store.put_waba(WabaState(business_id="1", waba_id="2"))
    assert timestamps(store.body().text.decode()) == {}
