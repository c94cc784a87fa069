"""Message templates: read on their own job, bounded series, a failed read keeps the last."""

from __future__ import annotations

import dataclasses

from monitor.accounts import Template, parse_template
from monitor.exposition import ExpositionOptions
from monitor.model import BusinessState, WabaState
from monitor.simulator import Fault
from monitor.store import Store
from tests.conftest import DemoMonitor

MAIN = "200000000000001"  # the demo WABA with templates


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_templates_parse_leniently_and_know_their_problems() -> None:
    ok = parse_template({"id": 1, "name": "a", "language": "en-US", "status": "APPROVED",
                         "quality_score": {"score": "GREEN"}, "category": "UTILITY"})
    assert ok == Template("1", "a", "en_US", "APPROVED", "UTILITY", "GREEN")
    assert not ok.problem
    assert dataclasses.replace(ok, quality="YELLOW").problem
    assert dataclasses.replace(ok, correct_category="MARKETING").problem
    assert dataclasses.replace(ok, status="PAUSED").problem
    assert parse_template({"name": "no id"}) is None and parse_template([1]) is None


async def test_templates_are_read_by_page_and_a_failure_keeps_the_last_good(
    demo_monitor: DemoMonitor,
) -> None:
    sim, monitor = await demo_monitor(max_retries=0)
    target = next(t for t in monitor.targets() if t.waba_id == MAIN)
    sim.world.reset_counts()
    assert await monitor.poll_templates(target)
    templates = monitor.store.templates(MAIN)
    assert templates is not None and len(templates) >= 5
    pages = -(-len(templates) // monitor.settings.graph.page_limit)
    assert sim.world.request_count("message_templates", object_id=MAIN) == pages
    assert sim.world.request_count("phone_numbers") == 0  # its own job, not the poll's
    text = monitor.store.body().text.decode()
    counts = series(text, "whatsapp_waba_message_templates")
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counts
               if f'waba_id="{MAIN}"' in line) == len(templates)
    healthy = [t for t in templates if not t.problem]
    assert healthy and all(f'template_id="{t.id}"' not in text for t in healthy)
    assert all(f'template_id="{t.id}"' in text for t in templates if t.problem)
    sim.world.inject_fault(Fault(target=MAIN, kind="http_error", status=500, count=-1,
                                 edge="message_templates"))
    assert not await monitor.poll_templates(target)
    assert monitor.store.templates(MAIN) == templates  # the last good stay
    waba = monitor.store.waba(MAIN)
    assert waba is not None and not waba.polled  # the numbers were never touched


def test_series_mode_all_and_none() -> None:
    templates = (Template("1", "ok", "en_US", "APPROVED", "UTILITY", "GREEN"),
                 Template("2", "bad", "en_US", "DISABLED", "MARKETING", "RED"))
    for mode, expected in (("all", {"1", "2"}), ("problems", {"2"}), ("none", set())):
        store = Store(ExpositionOptions(template_series=mode))
        store.put_business(BusinessState("101"))
        store.put_waba(WabaState("101", "201", up=True, polled=True))
        store.put_templates("201", templates)
        text = store.body().text.decode()
        got = {line.split('template_id="')[1].split('"')[0]
               for line in series(text, "whatsapp_message_template_status")}
        assert got == expected, mode
        assert len(series(text, "whatsapp_waba_message_templates")) >= 10  # always counted




def test_template_webhooks_apply_over_an_older_read() -> None:
    from monitor.accounts import PAUSE_SECONDS, TemplateFact, WabaFacts
    from monitor.webhooks.envelope import WebhookChange
    from monitor.webhooks.handlers import dispatch
    from tests.fakesink import WABA, FakeSink

    sink = FakeSink()

    def deliver(field: str, value: dict[str, object], time: int) -> str:
        change = WebhookChange("whatsapp_business_account", WABA, time, field, value)
        return dispatch(change, sink).result

    assert deliver("message_template_status_update", {
        "event": "PAUSED", "message_template_id": 77, "message_template_language": "en-US",
        "message_template_name": "promo", "other_info": {"title": "SECOND_PAUSE"}},
        1_000) == "applied"
    assert deliver("template_category_update", {
        "message_template_id": "77", "new_category": "UTILITY",
        "correct_category": "MARKETING", "category_update_timestamp": 90_000}, 1_001) == "applied"
    fact = sink.waba_facts(WABA).templates["77"]
    assert fact == TemplateFact(at=1_001.0, name="promo", language="en_US", status="PAUSED",
                                paused_until=1_000 + PAUSE_SECONDS["SECOND_PAUSE"],
                                category="UTILITY", new_category="MARKETING",
                                category_change_at=90_000.0)
    store = Store(clock=lambda: 2_000.0)
    store.put_business(BusinessState("101"))
    store.put_waba(WabaState("101", WABA, up=True, polled=True))
    read = (Template("77", "promo", "en_US", "APPROVED", "UTILITY", "GREEN"),)
    store.put_templates(WABA, read, at=500.0)
    store.put_waba_facts(WABA, WabaFacts(templates={"77": fact}))
    text = store.body().text.decode()
    assert 'template_id="77",template_name="promo",language="en_US",status="PAUSED"} 1' in text
    assert "whatsapp_message_template_paused_until_timestamp_seconds{" in text
    assert 'new_category="MARKETING"} 90000' in text
    store.put_templates(WABA, read, at=1_500.0)  # a newer read wins over the webhook
    assert "status=\"PAUSED\"} 1" not in store.body().text.decode()


def test_check_and_status_page_show_template_problems() -> None:
    from monitor.check import Level, evaluate
    from monitor.web import landing_page

    store = Store(clock=lambda: 1_000.0)
    store.put_business(BusinessState("101", configured_cap=100))
    store.put_waba(WabaState("101", "201", up=True, polled=True))
    store.put_templates("201", (
        Template("1", "ok", "en_US", "APPROVED", "UTILITY", "GREEN"),
        Template("2", "promo", "en_US", "DISABLED", "MARKETING", "RED"),
        Template("3", "sale", "en_US", "PAUSED", "MARKETING", "RED"),
        Template("4", "alert", "fr_FR", "APPROVED", "UTILITY", "GREEN",
                 correct_category="MARKETING")), at=900.0)
    found = {f.problem: f.level for f in evaluate(store, now=1_000.0)}
    assert found["template promo (en_US) DISABLED"] is Level.CRITICAL
    assert found["template sale (en_US) PAUSED"] is Level.WARNING
    assert not any(p.startswith("template ok") for p in found)
    page = landing_page(store, now=lambda: 1_000.0).split("Message templates with a problem")[1]
    assert "promo" in page and "sale" in page and "UTILITY → MARKETING" in page
    assert "<td>ok</td>" not in page


async def test_template_reads_wait_while_the_wabas_budget_is_under_pressure(
    demo_monitor: DemoMonitor,
) -> None:
    sim, monitor = await demo_monitor()
    target = next(t for t in monitor.targets() if t.waba_id == MAIN)
    state = monitor.store.waba(MAIN)
    assert state is not None
    monitor.store.put_waba(dataclasses.replace(state, usage_ratio=0.95))
    sim.world.reset_counts()
    assert not await monitor.poll_templates(target)
    assert sim.world.request_count("message_templates") == 0
    monitor.not_before[MAIN] = monitor.clock() + 60  # throttled: also nothing
    monitor.store.put_waba(dataclasses.replace(state, usage_ratio=0.1))
    assert not await monitor.poll_templates(target)
    del monitor.not_before[MAIN]
    assert await monitor.poll_templates(target)


async def test_a_routine_poll_logs_at_debug_and_a_change_at_info(
    demo_monitor: DemoMonitor,
) -> None:
    """At 50,000 numbers an info line per poll was 14 % of the daemon's CPU: the poll that
    found the same numbers again says so at debug; the first and a changed one at info."""
    from structlog.testing import capture_logs

    sim, monitor = await demo_monitor(max_retries=0)
    target = next(t for t in monitor.targets() if t.waba_id == MAIN)

    async def level() -> str:
        with capture_logs() as logs:
            await monitor.poll_waba(target)
        return next(str(e["log_level"]) for e in logs if e["event"] == "waba_polled")

    assert await level() == "info"  # the first
    assert await level() == "debug"  # the same numbers again
    waba = monitor.store.waba(MAIN)
    assert waba is not None
    sim.world.set_number_fields(waba.numbers[0].id, {"quality_rating": "RED"})
    assert await level() == "info"  # a change


def test_parsed_templates_share_their_enum_values() -> None:
    """200,000 templates at 50,000 numbers: each decoded status is a string of its own
    unless shared (counted as objects, not timed)."""
    import json

    raw = '{"id": "%s", "name": "n%s", "status": "APPROVED", "category": "UTILITY", ' \
          '"language": "en_US", "quality_score": {"score": "GREEN"}}'
    first, second = (parse_template(json.loads(raw % (i, i))) for i in (1, 2))
    assert first is not None and second is not None
    assert first.status is second.status and first.category is second.category
    assert first.language is second.language and first.quality is second.quality
    assert first.name is not second.name  # names are not enum values
