"""The status page and /api/v1/status from an in-memory store: order, folding, the filter,
escaping, the CSP, the JSON shape, and that every problem links to a real runbook entry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from monitor.accounts import Template, WabaFacts, apply_account_update, parse_waba_node
from monitor.model import BusinessState, PhoneNumber, Transition, WabaState
from monitor.statuspage import CONTENT_SECURITY_POLICY, PageCache, build, model, render, to_json
from monitor.store import Store
from monitor.web import StatusView, build_app

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_800_000_000.0
HOSTILE = '<script>alert(1)</script>"><img src=x onerror="alert(2)">'


def number(i: int, **fields: Any) -> PhoneNumber:
    base: dict[str, Any] = {
        "display_phone_number": f"+1 555-{i // 10_000:03d}-{i % 10_000:04d}",
        "verified_name": f"Line {i}", "status": "CONNECTED", "quality_rating": "GREEN",
        "name_status": "APPROVED", "health_status": "AVAILABLE", "account_mode": "LIVE",
        "platform_type": "CLOUD_API", "pin_enabled": True}
    return PhoneNumber(id=f"3{i:014d}", **{**base, **fields})


def fleet(numbers_per_waba: int, wabas: int, *, businesses: int = 1,
          bad: dict[int, dict[str, Any]] | None = None) -> Store:
    store = Store(clock=lambda: NOW)
    serial = 0
    for b in range(businesses):
        business_id = f"1{b:04d}"
        store.put_business(BusinessState(business_id, configured_cap=100_000))
        for w in range(wabas):
            numbers = []
            for _ in range(numbers_per_waba):
                serial += 1
                numbers.append(number(serial, **(bad or {}).get(serial, {})))
            store.put_waba(WabaState(business_id, f"2{b:04d}{w:05d}", numbers=tuple(numbers),
                                     up=True, polled=True, last_success=NOW - 5,
                                     status_changed_at={n.id: NOW - 3_600 for n in numbers}))
    return store


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, tuple(attrs)))


def page(store: Store, **kwargs: Any) -> model.StatusPage:
    return build(store, PageCache(), NOW, **kwargs)


def test_problems_come_first_most_severe_first_with_where_since_and_runbook() -> None:
    store = fleet(5, 2, bad={2: {"quality_rating": "YELLOW"}, 3: {"status": "BANNED"},
                             7: {"name_status": "DECLINED", "verified_name": "Name Seven"},
                             9: {"status": "PENDING", "account_mode": "SANDBOX"}})
    p = page(store)
    assert [(x.level.name, x.problem) for x in p.problems] == [
        ("CRITICAL", "status BANNED"), ("WARNING", "quality YELLOW"),
        ("WARNING", "display name DECLINED")]
    banned = p.problems[0]
    assert banned.display_phone_number == "+1 555-000-0003" and banned.since == NOW - 3_600
    assert banned.runbook_url.endswith("runbook.md#whatsappphonenumbernotconnected")
    assert p.problems[2].verified_name == "Name Seven"
    # The SANDBOX number is apart, as a warning with the mark stripped.
    assert [(x.level.name, x.problem, x.sandbox) for x in p.sandbox] == [
        ("WARNING", "status PENDING", True)]
    html = render(p)
    attention = html.split('id="attention"', 1)[1].split('id="fleet"', 1)[0]
    assert attention.index("status BANNED") < attention.index("quality YELLOW")
    assert attention.index("quality YELLOW") < attention.index("SANDBOX numbers")


def test_a_problem_is_dated_by_the_change_history_when_it_knows() -> None:
    store = fleet(3, 1)
    state = store.wabas()[0]
    numbers = (state.numbers[0], number(2, quality_rating="RED"), state.numbers[2])
    store.put_waba(WabaState(state.business_id, state.waba_id, numbers=numbers, up=True,
                             polled=True, last_success=NOW - 1, last_attempt=NOW - 60,
                             status_changed_at=state.status_changed_at))
    (red,) = page(store).problems
    assert red.problem == "quality RED" and red.since == NOW - 60


def test_nothing_wrong_says_so_with_the_last_successful_poll() -> None:
    html = render(page(fleet(4, 3)))
    assert "Nothing needs attention. Last successful poll" in html
    assert 'title="2027-01-15 07:59:55 UTC">5 s ago</time>' in html
    assert "<title>waba-monitor: nothing needs attention</title>" in html


def test_values_from_the_graph_api_and_the_query_are_escaped() -> None:
    store = fleet(2, 1, bad={1: {"verified_name": HOSTILE, "status": "BANNED",
                                 "display_phone_number": HOSTILE}})
    waba_id = store.wabas()[0].waba_id
    store.put_waba_node(waba_id, parse_waba_node({"name": HOSTILE}, NOW))
    html = render(page(store, query=HOSTILE[:40]))
    html += render(page(store, query="banned"))
    assert "<script>alert" not in html and "<img" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x") >= 4
    # parsed as a browser would: the only script is the static file, no event handler or
    # style attribute, no image
    tags = Tags()
    tags.feed(html)
    assert [t for t in tags.seen if t[0] in ("script", "img", "style")] == [
        ("script", (("src", "/static/status.js"), ("defer", None)))] * 2
    assert not [t for t in tags.seen
                if any(k.startswith("on") or k == "style" for k, _ in t[1])]


def test_the_filter_is_paged_on_the_server_and_matches_every_field() -> None:
    store = fleet(100, 30, businesses=2, bad={4242: {"verified_name": "Café Lumière"},
                                              5000: {"status": "BANNED"}})
    assert store.summaries()[0].numbers == 3_000

    def ids(query: str, page_no: int = 1) -> tuple[int, list[str]]:
        found = model.search(store, PageCache(), model.parse_query(query), page_no)
        return found.total, [r.id for r in found.rows]

    assert ids("lumière") == (1, ["300000000004242"])
    assert ids("5550004242") == (1, ["300000000004242"])  # digits of +1 555-000-4242
    assert ids("+1 555-000-4242") == (1, ["300000000004242"])
    assert ids("300000000004242") == (1, ["300000000004242"])
    assert ids("status:banned") == (1, ["300000000005000"])
    assert ids("banned") == (1, ["300000000005000"])
    total, first = ids("business:10001")
    assert total == 3_000 and len(first) == model.PAGE_SIZE
    total, last = ids("business:10001", 60)
    assert last == [f"3{i:014d}" for i in range(5_951, 6_001)]
    assert ids("café 4242 status:connected") == (1, ["300000000004242"])
    assert ids("status:connected line 4242 waba:nope") == (0, [])
    assert ids("   ") == (0, [])


def test_a_large_fleet_folds_healthy_numbers_wabas_and_businesses() -> None:
    bad = {i: {"status": "BANNED"} for i in range(7, 10_000, 97)}
    store = fleet(5, 100, businesses=20, bad=bad)
    p = page(store)
    html = render(p)
    assert len(html.encode()) < 200_000
    assert p.numbers_total == 10_000 and p.problems_total == len(bad)
    assert len(p.problems) == model.PROBLEMS_SHOWN and p.problems_pages == 3
    assert "300000000000001" not in html  # a healthy number: counted, not listed
    assert 'href="/?q=waba%3A' in html  # counts lead to the filter
    listed = sum(len(b.wabas) for b in p.businesses)
    assert listed <= model.BUSINESSES_SHOWN * model.WABAS_SHOWN
    assert all(w.critical for b in p.businesses for w in b.wabas)
    last = page(store, problems_page=3)
    assert len(last.problems) == len(bad) - 2 * model.PROBLEMS_SHOWN
    assert dict(((a, c) for a, _, c in p.problems_by_alert)) == {
        "WhatsAppPhoneNumberNotConnected": len(bad)}


def test_per_number_checks_run_once_per_poll_not_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = fleet(10, 10)
    calls = []
    original = model.number_findings

    def counting(*args: Any) -> Any:
        calls.append(args[2].id)
        return original(*args)

    monkeypatch.setattr(model, "number_findings", counting)
    cache = PageCache()
    for _ in range(3):
        build(store, cache, NOW, query="line")
    assert len(calls) == 100
    state = store.wabas()[0]
    store.put_waba(WabaState(state.business_id, state.waba_id,
                             numbers=(*state.numbers[:9], number(999, status="BANNED")),
                             up=True, polled=True, last_success=NOW))
    assert [x.problem for x in build(store, cache, NOW).problems] == ["status BANNED"]
    assert len(calls) == 110  # only the re-polled WABA was checked again
    # A poll that changed nothing (new but equal objects) is not checked again either.
    for state in store.wabas():
        store.put_waba(WabaState(state.business_id, state.waba_id,
                                 numbers=tuple(replace(n) for n in state.numbers), up=True,
                                 polled=True, last_success=NOW + 60))
    assert [x.problem for x in build(store, cache, NOW + 60).problems] == ["status BANNED"]
    assert len(calls) == 110


def test_template_problems_are_found_again_only_when_a_read_or_a_webhook_replaced_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = fleet(2, 3)
    first = store.wabas()[0]
    store.put_templates(first.waba_id, (Template("41", "promo", "en_US", "PAUSED"),
                                        Template("42", "hello", "en_US", "APPROVED")), at=NOW)
    original = store.effective_templates
    calls: list[str] = []

    def counting(waba_id: str) -> tuple[Template, ...]:
        calls.append(waba_id)
        return original(waba_id)

    monkeypatch.setattr(store, "effective_templates", counting)
    cache = PageCache()
    assert [t.template.name for t in build(store, cache, NOW).templates] == ["promo"]
    assert set(calls) == {w.waba_id for w in store.wabas()}
    looked = len(calls)
    for _ in range(2):
        p = build(store, cache, NOW)
        assert [t.template.name for t in p.templates] == ["promo"]
        rows = {w.waba_id: w for w in p.businesses[0].wabas}
        assert [t.name for t in rows[first.waba_id].template_problems] == ["promo"]
    assert len(calls) == looked  # later views look at no template again
    store.put_waba_facts(first.waba_id, apply_account_update(WabaFacts(), {
        "event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE",
                                                 "waba_ban_date": "May 2, 2030"}}, NOW + 1))
    build(store, cache, NOW + 1)
    assert len(calls) > looked and set(calls[looked:]) == {first.waba_id}  # that WABA only
    looked = len(calls)
    store.put_templates(first.waba_id, (Template("41", "promo", "en_US", "APPROVED"),),
                        at=NOW + 2)
    assert build(store, cache, NOW + 2).templates == ()
    assert len(calls) > looked and set(calls[looked:]) == {first.waba_id}


def test_template_problems_are_all_counted_and_the_first_shown() -> None:
    store = fleet(1, 3)
    wanted = model.PROBLEMS_SHOWN + 7
    for i, state in enumerate(store.wabas()):
        store.put_templates(state.waba_id, tuple(
            Template(f"{i}{k}", f"t{i}_{k}", "en_US", "PAUSED") for k in range(wanted // 3 + 1)),
            at=NOW)
    p = page(store)
    assert p.templates_total == 3 * (wanted // 3 + 1)
    assert len(p.templates) == model.PROBLEMS_SHOWN
    first = store.wabas()[0].waba_id
    assert [t.waba_id for t in p.templates[: wanted // 3 + 1]] == [first] * (wanted // 3 + 1)


def test_cached_sums_follow_the_clock_and_webhook_facts() -> None:
    store = fleet(3, 2)
    first = store.wabas()[0]
    store.put_waba(WabaState(first.business_id, first.waba_id, numbers=first.numbers, up=True,
                             polled=True, last_success=NOW - 5, interval=60.0))
    cache = PageCache()
    assert build(store, cache, NOW).problems_total == 0
    # Nothing changed in the store, but time passed: the data is stale now.
    (stale,) = build(store, cache, NOW + 400).problems
    assert stale.alert == "WhatsAppMonitorDataStale" and stale.since == NOW - 5
    assert '<span class="warning">stale</span>, last success' in render(
        build(store, cache, NOW + 400))
    # A poll that succeeds again (equal numbers) clears it without recomputing anything.
    store.put_waba(WabaState(first.business_id, first.waba_id, numbers=first.numbers, up=True,
                             polled=True, last_success=NOW + 390, interval=60.0))
    assert build(store, cache, NOW + 400).problems_total == 0
    # A restriction told by webhook shows at once and goes when it ends.
    store.put_waba_facts(first.waba_id, apply_account_update(WabaFacts(), {
        "event": "ACCOUNT_RESTRICTION", "restriction_info": [
            {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
             "expiration": int(NOW + 100)}]}, NOW))
    assert [p.alert for p in build(store, cache, NOW + 10).problems] == [
        "WhatsAppAccountRestricted"]
    assert build(store, cache, NOW + 101).problems_total == 0
    # A WABA's name read later is on its numbers' lines too.
    store.put_waba(WabaState(first.business_id, first.waba_id,
                             numbers=(number(1, status="BANNED"),), up=True, polled=True,
                             last_success=NOW))
    assert build(store, cache, NOW).problems[0].waba_name is None
    store.put_waba_node(first.waba_id, parse_waba_node({"name": "Main"}, NOW))
    assert build(store, cache, NOW).problems[0].waba_name == "Main"


@dataclass(frozen=True)
class TemplateChange:
    """A transition as it looks once template changes are recorded (template_id set)."""

    at: float
    business_id: str
    waba_id: str
    phone_number_id: str
    field: str
    old: str | None
    new: str | None
    template_id: str = ""


def test_recent_changes_name_the_number_or_the_template() -> None:
    store = fleet(2, 1)
    waba_id = store.wabas()[0].waba_id
    store.recent.appendleft(Transition(NOW - 30, "10000", waba_id, "300000000000001",
                                       "status", "CONNECTED", "FLAGGED"))
    store.recent.appendleft(cast(Transition, TemplateChange(
        NOW - 10, "10000", waba_id, "", "status", "APPROVED", "PAUSED", "4001")))
    changes = page(store).changes
    assert [(c.subject, c.field, c.old, c.new) for c in changes] == [
        ("template 4001", "status", "APPROVED", "PAUSED"),
        ("+1 555-000-0001 (Line 1)", "status", "CONNECTED", "FLAGGED")]
    html = render(page(store))
    assert "10 s ago" in html and "30 s ago" in html and "CONNECTED → FLAGGED" in html


def test_waba_rows_show_poll_review_enforcement_and_templates() -> None:
    store = fleet(3, 2)
    first, second = store.wabas()
    store.put_waba(WabaState(second.business_id, second.waba_id, numbers=second.numbers,
                             up=False, polled=True, last_success=NOW - 900,
                             last_error="throttled"))
    store.put_waba_node(first.waba_id, parse_waba_node(
        {"name": "Main", "account_review_status": "PENDING"}, NOW))
    store.put_waba_facts(first.waba_id, apply_account_update(WabaFacts(), {
        "event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE",
                                                 "waba_ban_date": "May 2, 2030"}}, NOW - 120))
    store.put_templates(first.waba_id, (Template("41", "promo", "en_US", "PAUSED",
                                                 "MARKETING", "RED"),), at=NOW - 50)
    p = page(store)
    what = {(x.alert, x.problem, x.since) for x in p.problems}
    assert ("WhatsAppAccountScheduledForDisable", "WABA scheduled for disabling on May 2, 2030",
            NOW - 120) in what
    assert ("WhatsAppMonitorPollFailing", "poll failed (throttled)", NOW - 900) in what
    assert ("WhatsAppTemplatePaused", "template promo (en_US) PAUSED", None) in what
    assert ("WhatsAppAccountReviewNotApproved", "account review PENDING", None) in what
    rows = {w.waba_id: w for w in p.businesses[0].wabas}
    assert rows[first.waba_id].review_status == "PENDING"
    assert rows[first.waba_id].ban_state == "SCHEDULE_FOR_DISABLE"
    assert [t.name for t in rows[first.waba_id].template_problems] == ["promo"]
    assert not rows[second.waba_id].up
    html = render(p)
    assert "down</span> (throttled), last success" in html
    assert "promo (en_US): PAUSED, quality RED" in html


def test_every_alert_the_page_names_has_a_rule_and_a_runbook_entry() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {m.lower() for m in re.findall(r"^## (\w+)$", runbook, re.M)}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/waba-monitor-alerts.yml")
                           .read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for alert in model.ALERTS:
        assert alert in alerts and alert.lower() in anchors, alert
    for text in ("status BANNED", "quality RED", "display name DECLINED",
                 "display-name certificate EXPIRED (not registered yet)",
                 "cannot send messages (BLOCKED)", "can send messages only LIMITED",
                 "two-step verification off", "webhooks go to another callback URL",
                 "WABA disabled by Meta", "restricted: X (no end given)",
                 "account review PENDING", "WABA can send messages: BLOCKED (x)",
                 "template a (en_US) DISABLED", "template a (en_US) PAUSED",
                 "template a (en_US) quality RED", "template a (en_US) will become MARKETING",
                 "our app is not subscribed: no webhook arrives", "PIN reset: X in the last 24 h",
                 "identity change check off (required)", "account alert X (BUSINESS 1)",
                 "registration cap reached (2/2)", "registration cap approaching (1/2)",
                 "poll failed (throttled)", "data stale: no successful poll in 3 poll intervals"):
        assert model.alert_of(text), text


@pytest.fixture
def view() -> Iterator[StatusView]:
    store = fleet(5, 3, bad={4: {"status": "BANNED", "verified_name": HOSTILE}})
    yield StatusView(store=store, registry=cast(Any, None), ready=lambda: True)


async def test_the_page_is_served_with_a_csp_and_its_own_static_files(
        view: StatusView, aiohttp_client: Any) -> None:
    client = await aiohttp_client(build_app(view))
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    assert 'data-refresh="10"' in html
    assert 'data-refresh="2"' in await (await client.get("/?refresh=2")).text()
    assert 'data-refresh="0"' in await (await client.get("/?refresh=0")).text()
    script = await client.get("/static/status.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "data-refresh" in await script.text()
    style = await client.get("/static/status.css")
    assert style.headers["Content-Type"].startswith("text/css")
    assert (await client.get("/static/nope.js")).status == 404
    assert (await client.get("/static/../web.py")).status == 404
    # bad paging parameters fall back, never fail
    assert (await client.get("/?page=x&ppage=-3&q=banned")).status == 200


async def test_the_json_twin_has_the_documented_shape(view: StatusView,
                                                      aiohttp_client: Any) -> None:
    client = await aiohttp_client(build_app(view))
    response = await client.get("/api/v1/status", params={"q": "banned"})
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    doc = await response.json()
    assert doc["status"] == "success"
    data = doc["data"]
    assert set(data) == {"generated_at", "ready", "last_success", "counts", "problems",
                         "sandbox", "businesses", "businesses_folded", "search", "changes"}
    assert data["counts"] == {"critical": 1, "warning": 0, "sandbox": 0, "businesses": 1,
                              "wabas": 3, "wabas_up": 3, "numbers": 15,
                              "numbers_by_status": {"CONNECTED": 14, "BANNED": 1}}
    problems = data["problems"]
    assert {k: problems[k] for k in ("total", "page", "pages", "page_size")} == {
        "total": 1, "page": 1, "pages": 1, "page_size": model.PROBLEMS_SHOWN}
    assert problems["by_alert"] == [{"alert": "WhatsAppPhoneNumberNotConnected",
                                     "level": "critical", "count": 1}]
    assert problems["items"] == [{
        "level": "critical", "alert": "WhatsAppPhoneNumberNotConnected",
        "runbook_url": model.RUNBOOK + "#whatsappphonenumbernotconnected",
        "problem": "status BANNED", "business_id": "10000", "waba_id": "2000000000",
        "waba_name": None, "phone_number_id": "300000000000004",
        "display_phone_number": "+1 555-000-0004", "verified_name": HOSTILE,
        "since": NOW - 3_600, "sandbox": False}]
    business = data["businesses"][0]
    assert set(business) == {"business_id", "registered", "cap", "cap_source",
                             "messaging_limit", "messaging_limit_source",
                             "verification_status", "numbers", "wabas", "wabas_up",
                             "critical", "warning", "wabas_listed", "wabas_folded"}
    assert set(business["wabas_listed"][0]) == {
        "waba_id", "name", "listed_under", "up", "polled", "stale", "last_success",
        "last_error", "review_status", "ban_state", "restrictions", "can_send_message",
        "template_problems", "numbers", "numbers_by_status", "critical", "warning"}
    search = data["search"]
    assert {k: search[k] for k in ("q", "page", "pages", "page_size", "total")} == {
        "q": "banned", "page": 1, "pages": 1, "page_size": model.PAGE_SIZE, "total": 1}
    assert search["numbers"][0]["problems"] == ["status BANNED"]
    assert to_json(page(view.store))["data"]["search"]["total"] == 0  # no query: no rows


def _shape(value: Any) -> Any:
    """Keys all the way down (first item of each list): what the README's example pins."""
    if isinstance(value, dict):  # counts by status are keyed by data, not by the shape
        return {k: {} if k == "numbers_by_status" else _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_the_readmes_json_example_has_the_served_shape() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### `/api/v1/status`", 1)[1]
    example = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    store = fleet(3, 1, bad={1: {"status": "BANNED"}})
    state = store.wabas()[0]
    store.put_templates(state.waba_id, (Template("41", "promo", "en_US", "REJECTED"),),
                        at=NOW)
    store.recent.appendleft(Transition(NOW, "10000", state.waba_id, "300000000000001",
                                       "status", "CONNECTED", "BANNED"))
    served = to_json(build(store, PageCache(), NOW, query="banned"))
    served["data"]["sandbox"] = []
    assert _shape(example) == _shape(served)
