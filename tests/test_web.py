"""HTTP endpoints: negotiation, gzip, readiness, landing page, change events."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from typing import Any

from structlog.testing import capture_logs

from monitor.daemon import Monitor
from monitor.simulator import Scenario
from monitor.web import StatusView, build_app, wants_openmetrics
from tests.conftest import Sim, small_fleet


async def test_metrics_negotiation_gzip_and_readiness(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_monitor: Callable[..., Monitor],
    aiohttp_client: Any
) -> None:
    scenario = small_fleet(numbers_per_waba=2)
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario)
    monitor.sync()  # WABAs known, not yet polled: the store is not ready
    view = StatusView(store=monitor.store, registry=monitor.metrics.registry,
                      ready=lambda: monitor.store.ready)
    client = await aiohttp_client(build_app(view))
    assert (await client.get("/-/ready")).status == 503
    assert (await client.get("/-/healthy")).status == 200
    await monitor.run_once()
    assert (await client.get("/-/ready")).status == 200
    before = sim.world.request_count()

    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await plain.text()
    assert "# TYPE whatsapp_monitor_waba_polls_total counter" in text
    assert "whatsapp_phone_number_status{" in text

    om = await client.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    om_text = await om.text()
    assert om_text.endswith("# EOF\n") and "# TYPE whatsapp_monitor_waba_polls counter" in om_text

    raw = await client.get("/metrics", headers={"Accept-Encoding": "gzip"},
                           auto_decompress=False)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert "whatsapp_phone_number_status{" in gzip.decompress(await raw.read()).decode()
    # Scrapes are served from memory: no Graph request was made for them.
    assert sim.world.request_count() == before

    page = await (await client.get("/")).text()
    number = next(scenario.numbers())[1]
    assert "registered numbers used" in page
    found = await (await client.get("/", params={"q": number.id})).text()
    assert number.id in found.split('id="results"', 1)[1]  # healthy numbers: by the filter
    assert (await client.get("/nope")).status == 404
    assert (await client.post("/metrics")).status == 405


def test_openmetrics_only_when_accepted() -> None:
    assert wants_openmetrics("application/openmetrics-text; version=1.0.0")
    assert not wants_openmetrics("application/openmetrics-text;q=0, text/plain")
    assert not wants_openmetrics("text/plain;version=0.0.4")
    assert not wants_openmetrics("")


async def test_status_change_is_logged_as_its_own_event(
    start_sim: Callable[[Scenario], Awaitable[Sim]], make_monitor: Callable[..., Monitor]
) -> None:
    scenario = small_fleet(numbers_per_waba=2)
    sim = await start_sim(scenario)
    monitor = make_monitor(sim, scenario)
    await monitor.run_once()
    number = next(scenario.numbers())[1]
    sim.world.set_number_fields(number.id, {"status": "FLAGGED"})
    with capture_logs() as logs:
        await monitor.poll_all(monitor.targets())
    changes = [e for e in logs if e["event"] == "phone_number_changed"]
    assert changes == [{
        "event": "phone_number_changed", "log_level": "info",
        "business_id": scenario.businesses[0].id, "waba_id": next(scenario.wabas())[1].id,
        "phone_number_id": number.id, "field": "status",
        "old": number.fields["status"], "new": "FLAGGED",
    }]
    polled = [e for e in logs if e["event"] == "waba_polled"]
    assert len(polled) == 1 and polled[0]["requests"] == 1 and "duration_seconds" in polled[0]
