"""Template changes in the transitions history (issue 12): from the template read and from
signed template webhooks, durable before they show, and returned by /api/v1/transitions."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from monitor.accounts import Template, TemplateFact, WabaFacts
from monitor.config import load_settings
from monitor.model import BusinessState, Transition, WabaState
from monitor.runtime import Runtime
from monitor.simulator import World, builtin_scenario, start_simulator
from monitor.state import StateDB
from monitor.store import Store
from tests.conftest import write_config
from tests.test_end_to_end import DEMO_TOKEN, wait_ready

MAIN = "200000000000001"  # the demo WABA with templates
SALE = "400000000000002"  # spring_sale: APPROVED, YELLOW
ORDER = "400000000000001"  # order_update: APPROVED, GREEN
APP_SECRET = "template-history-app-secret"


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not reached in 5 s")


def changes(found: list[Transition]) -> set[tuple[str, str, str | None, str | None]]:
    return {(t.template_id, t.field, t.old, t.new) for t in found}


def test_the_history_starts_at_the_first_read_and_follows_reads_and_webhooks() -> None:
    now = [1_000.0]
    store = Store(clock=lambda: now[0])
    store.put_business(BusinessState("101"))
    store.put_waba(WabaState("101", "201", up=True, polled=True))
    ok = Template("1", "promo", "en_US", "APPROVED", "UTILITY", "GREEN")
    other = Template("2", "otp", "en_US", "APPROVED", "AUTHENTICATION", "GREEN")
    assert store.put_templates("201", (ok, other), at=1_000.0) == []  # the first read
    assert not store.recent

    now[0] = 1_100.0
    told = TemplateFact(at=1_100.0, status="PAUSED", new_category="MARKETING")
    expected = {("1", "template_status", "APPROVED", "PAUSED"),
                ("1", "template_category_pending", None, "MARKETING")}
    assert changes(store.template_changes("201", facts=WabaFacts(templates={"1": told}))) \
        == expected  # what would be recorded, before anything is put
    assert not store.recent
    store.put_waba_facts("201", WabaFacts(templates={"1": told}), at=1_100.0)
    assert changes(list(store.recent)) == expected
    assert all(t.at == 1_100.0 and t.phone_number_id == "" and t.template_name == "promo"
               and t.business_id == "101" and t.waba_id == "201" for t in store.recent)

    # A newer read wins: back to APPROVED; "2" is gone; "3" appeared; quality of "1" fell.
    fresh = Template("3", "news", "en_US", "PENDING", "MARKETING", None)
    found = store.put_templates("201", (dataclasses.replace(ok, quality="RED"), fresh),
                                at=1_200.0)
    assert changes(found) == {("1", "template_status", "PAUSED", "APPROVED"),
                              ("1", "template_category_pending", "MARKETING", None),
                              ("1", "template_quality", "GREEN", "RED"),
                              ("2", "template_status", "APPROVED", None),
                              ("3", "template_status", None, "PENDING")}
    assert list(store.recent)[:len(found)] == list(reversed(found))  # newest first
    # The same read again changes nothing.
    assert store.put_templates("201", (dataclasses.replace(ok, quality="RED"), fresh),
                               at=1_300.0) == []


def test_an_older_state_file_gains_the_template_columns(tmp_path: Path) -> None:
    """A file written before template changes existed opens, keeps its rows, and takes
    template rows; the schema version stays, so an older daemon still reads it."""
    db = StateDB(tmp_path)
    db.write([], [], [Transition(1.0, "101", "201", "301", "status", "CONNECTED", "FLAGGED")])
    db.close()
    conn = sqlite3.connect(tmp_path / db.path.name)
    conn.executescript("""
        CREATE TABLE old AS SELECT id, at, business_id, waba_id, phone_number_id, field, old,
            new FROM transitions;
        DROP TABLE transitions;
        ALTER TABLE old RENAME TO transitions;
    """)
    conn.close()
    db = StateDB(tmp_path)
    try:
        db.write([], [], [Transition(2.0, "101", "201", "", "template_status", "APPROVED",
                                     "PAUSED", template_id="77", template_name="promo")])
        number, template = db.transitions()[::-1]
        assert number == Transition(1.0, "101", "201", "301", "status", "CONNECTED", "FLAGGED")
        assert (template.template_id, template.template_name, template.phone_number_id) == (
            "77", "promo", "")
    finally:
        db.close()


async def test_template_changes_are_durable_before_they_show_and_served_by_the_api(
    tmp_path: Path,
) -> None:
    """The real daemon: a signed template webhook and a template read each write their
    change to the state file before the store (and so /api/v1/transitions) has it."""
    scenario = builtin_scenario("demo")
    quiet = dataclasses.replace(scenario, timeline=dataclasses.replace(
        scenario.timeline, actions=(), events=()))  # only this test's changes
    world = World(quiet)
    runner, sim_url = await start_simulator(world)
    state = tmp_path / "state"
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url, "max_retries": 0, "timeout": "5s"},
        "businesses": [{"id": b.id, "wabas": [w.id for w in b.wabas]}
                       for b in quiet.businesses if any(w.id == MAIN for w in b.wabas)],
        "schedule": {"scan_interval": "1h", "jitter": 0},
        "state": {"directory": str(state)},
    }), environ={})
    try:
        async with Runtime(settings, access_token=DEMO_TOKEN, app_secret=APP_SECRET,
                           port=0) as runtime, aiohttp.ClientSession() as session:
            await wait_ready(runtime.url)
            monitor = runtime.monitor
            assert monitor is not None
            target = next(t for t in monitor.targets() if t.waba_id == MAIN)
            assert await monitor.poll_templates(target)  # the first read: nothing recorded

            def on_disk() -> set[tuple[str, str, str | None, str | None]]:
                db = StateDB(state)
                try:
                    return changes([t for t in db.transitions() if t.template_id])
                finally:
                    db.close()

            assert on_disk() == set()
            store = monitor.store
            disk_when_shown: list[set[tuple[str, str, str | None, str | None]]] = []
            put_facts, put_templates = store.put_waba_facts, store.put_templates

            def facts_shown(*args: Any, **kwargs: Any) -> None:
                disk_when_shown.append(on_disk())
                put_facts(*args, **kwargs)

            def templates_shown(*args: Any, **kwargs: Any) -> list[Transition]:
                disk_when_shown.append(on_disk())
                return put_templates(*args, **kwargs)

            store.put_waba_facts = facts_shown  # type: ignore[method-assign]
            store.put_templates = templates_shown  # type: ignore[method-assign]
            async with session.post(f"{sim_url}/_sim/webhooks/target", json={
                    "url": f"{runtime.url}/webhooks/whatsapp", "app_secret": APP_SECRET}) as r:
                assert r.status < 300
            async with session.post(f"{sim_url}/_sim/actions", json={
                    "action": "pause_template", "template": SALE}) as r:
                assert r.status < 300, await r.text()
            paused = ("400000000000002", "template_status", "APPROVED", "PAUSED")
            await wait_for(lambda: paused in changes(list(store.recent)))
            assert paused in disk_when_shown[-1]  # written before the store had it

            # A change only the read sees (no webhook target now): committed, then shown.
            async with session.delete(f"{sim_url}/_sim/webhooks/target") as r:
                assert r.status < 300
            async with session.post(f"{sim_url}/_sim/actions", json={
                    "action": "template_quality", "template": ORDER, "score": "RED"}) as r:
                assert r.status < 300, await r.text()
            assert await monitor.poll_templates(target)
            red = (ORDER, "template_quality", "GREEN", "RED")
            assert red in changes(list(store.recent))
            assert red in disk_when_shown[-1]

            async with session.get(f"{runtime.url}/api/v1/transitions") as resp:
                data = (await resp.json())["data"]
            rows = {(d["template_id"], d["field"], d["old"], d["new"]): d for d in data
                    if d["template_id"]}
            assert paused in rows and red in rows
            assert rows[red]["template_name"] == "order_update"
            assert rows[red]["phone_number_id"] is None
            assert rows[red]["waba_id"] == MAIN
            assert all(d["template_id"] is None and d["phone_number_id"] for d in data
                       if not d["template_id"])
    finally:
        await runner.cleanup()
