"""The daemon's webhook sink: staged facts are committed to the state file before the store
shows them, in order, and a failed or slower commit never shows (or keeps) an older value."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from monitor.accounts import AccountAlert, Restriction, WabaFacts
from monitor.config import Settings
from monitor.fleet import Fleet
from monitor.model import BusinessState, LearnedCap, WabaState
from monitor.scheduler import Jobs
from monitor.sink import StagingSink
from monitor.state import StateDB, StateWriter
from monitor.store import Store

BUSINESS = "100000000000001"
OTHER = "100000000000009"
WABA = "200000000000001"
ALERT = AccountAlert(BUSINESS, "BUSINESS", BUSINESS, "OBA_APPROVED", "INFORMATIONAL",
                     "ACTIVE", 1_790_000_000.0)


@dataclass
class FakeJobs:
    """What the sink asks of the scheduler."""

    fleet: Fleet
    repolls: list[tuple[str, str]] = field(default_factory=list)
    discoveries: list[str] = field(default_factory=list)

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        self.repolls.append((waba_id, reason))

    def request_discovery(self, *, business_id: str, reason: str) -> None:
        self.discoveries.append(business_id)


def facts(n: int) -> WabaFacts:
    return WabaFacts(violations={"SCAM": n}, applied=(f"key-{n}",))


def make_store() -> Store:
    store = Store()
    store.put_business(BusinessState(BUSINESS))
    store.put_waba(WabaState(BUSINESS, WABA, via=BUSINESS))
    return store


def make_jobs() -> FakeJobs:
    settings = Settings(businesses=[{"id": BUSINESS, "wabas": [WABA]}, {"id": OTHER}])
    return FakeJobs(Fleet(settings))


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(tmp_path)


def make_sink(store: Store, db: StateDB | None, jobs: FakeJobs | None = None) -> StagingSink:
    writer = StateWriter(db, retention=86_400 * 365) if db is not None else None
    return StagingSink(store, cast(Jobs, jobs or make_jobs()), writer=writer,
                       clock=lambda: 1_790_000_100.0)


def on_disk(path: Path) -> tuple[dict[str, WabaFacts], list[AccountAlert], list[LearnedCap]]:
    """What another process would read from the state file now."""
    other = StateDB(path)
    try:
        return ({w: f for w, (_, f) in other.waba_facts().items()}, other.account_alerts(),
                other.learned_caps())
    finally:
        other.close()


async def test_staged_facts_are_read_back_but_shown_only_once_committed(
    db: StateDB, tmp_path: Path,
) -> None:
    store = make_store()
    sink = make_sink(store, db)
    sink.stage_waba_facts(WABA, facts(1))
    sink.stage_account_alert(ALERT)
    sink.learn_cap(waba_id=WABA, cap=20, source_field="max_phone_numbers_per_business")
    assert sink.waba_facts(WABA) == facts(1)
    assert sink.already_applied(WABA, "key-1")
    assert store.waba_facts(WABA) is None and store.account_alerts(BUSINESS) == []
    assert store.business(BUSINESS).learned_cap is None  # type: ignore[union-attr]
    assert on_disk(tmp_path) == ({}, [], [])
    await sink.commit()
    written, alerts, caps = on_disk(tmp_path)
    assert written == {WABA: facts(1)} and alerts == [ALERT]
    assert [(c.business_id, c.cap) for c in caps] == [(BUSINESS, 20)]
    assert store.waba_facts(WABA) == facts(1)
    assert store.account_alerts(BUSINESS) == [ALERT]
    assert store.business(BUSINESS).learned_cap == 20  # type: ignore[union-attr]
    assert sink.pending == 0


async def test_a_failed_write_shows_nothing_and_keeps_everything_staged(
    db: StateDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_store()
    sink = make_sink(store, db)
    sink.stage_waba_facts(WABA, facts(1))

    def broken(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(db, "save_webhook_facts", broken)
    with pytest.raises(OSError, match="disk full"):
        await sink.commit()
    assert store.waba_facts(WABA) is None
    assert sink.waba_facts(WABA) == facts(1) and sink.pending == 1
    monkeypatch.undo()
    await sink.commit()  # Meta's redelivery: whatever is staged is written now
    assert on_disk(tmp_path)[0] == {WABA: facts(1)}
    assert store.waba_facts(WABA) == facts(1)


async def test_a_slower_commit_never_shows_an_older_value_after_a_newer_one(
    db: StateDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Body A stages v1 and commits slowly; body B stages v2 (built on v1) meanwhile and
    commits after. Readers see v2 from the moment it is staged; the store ends at v2 and
    never goes back; the file too."""
    store = make_store()
    sink = make_sink(store, db)
    release = threading.Event()
    real = db.save_webhook_facts
    writes: list[WabaFacts] = []

    def slow(*args: Any) -> None:
        writes.append(next(iter(args[0]))[2])
        if len(writes) == 1:
            release.wait(10)
        real(*args)

    monkeypatch.setattr(db, "save_webhook_facts", slow)
    shown: list[WabaFacts | None] = []
    sink.stage_waba_facts(WABA, facts(1))
    first = asyncio.create_task(sink.commit())
    await asyncio.sleep(0.05)
    assert writes == [facts(1)]
    sink.stage_waba_facts(WABA, facts(2))  # a later body, while the first write runs
    assert sink.waba_facts(WABA) == facts(2)
    second = asyncio.create_task(sink.commit())
    await asyncio.sleep(0.05)
    assert writes == [facts(1)]  # the second waits for the first (one writer lock)
    release.set()
    await first
    shown.append(store.waba_facts(WABA))
    assert sink.waba_facts(WABA) == facts(2)  # still staged: the first commit wrote v1 only
    await second
    shown.append(store.waba_facts(WABA))
    assert writes == [facts(1), facts(2)]
    assert shown == [facts(1), facts(2)]
    assert on_disk(tmp_path)[0] == {WABA: facts(2)}
    assert sink.pending == 0


async def test_commits_wait_for_the_state_writers_batches(db: StateDB) -> None:
    store = make_store()
    writer = StateWriter(db, retention=86_400)
    sink = StagingSink(store, cast(Jobs, make_jobs()), writer=writer)
    sink.stage_waba_facts(WABA, facts(1))
    async with writer.lock:  # a batch being written
        commit = asyncio.create_task(sink.commit())
        await asyncio.sleep(0.05)
        assert not commit.done() and store.waba_facts(WABA) is None
    await commit
    assert store.waba_facts(WABA) == facts(1)
    async with writer.lock:  # a body that told no fact does not wait for the writer
        await asyncio.wait_for(sink.commit(), 1)


async def test_without_a_state_directory_commit_only_shows(tmp_path: Path) -> None:
    store = make_store()
    sink = make_sink(store, None)
    sink.stage_waba_facts(WABA, facts(3))
    await sink.commit()
    assert store.waba_facts(WABA) == facts(3) and sink.pending == 0
    assert list(tmp_path.iterdir()) == []


async def test_committed_facts_of_a_waba_watched_later_are_shown_and_built_on(
    db: StateDB,
) -> None:
    """A WABA with facts in the state file but not in the store at start (configured, never
    flushed before a crash; or found by a later discovery) gets them as soon as it appears,
    and a new change builds on them instead of on nothing."""
    store = Store()
    store.put_business(BusinessState(BUSINESS))
    sink = StagingSink(store, cast(Jobs, make_jobs()), writer=StateWriter(db, retention=1.0),
                       committed={WABA: facts(4)})
    assert sink.waba_facts(WABA) == facts(4)
    store.put_waba(WabaState(BUSINESS, WABA))
    assert store.waba_facts(WABA) == facts(4)


def test_the_per_waba_cap_is_a_waba_fact_and_the_limit_is_shown_at_once() -> None:
    store = make_store()
    sink = make_sink(store, None)
    sink.set_messaging_limit(waba_id=WABA, limit="TIER_10K",
                             source_field="max_daily_conversations_per_business")
    business = store.business(BUSINESS)
    assert business is not None
    assert (business.messaging_limit, business.messaging_limit_source,
            business.messaging_limit_at) == ("TIER_10K", "webhook", 1_790_000_100.0)
    assert business.learned_cap is None
    sink.set_messaging_limit(waba_id="999", limit="TIER_2K", source_field="x")  # not watched
    sink.learn_cap(waba_id="999", cap=5, source_field="max_phone_numbers_per_business")
    sink.stage_waba_facts("999", facts(1))
    assert sink.pending == 0


def test_discovery_goes_to_the_business_that_watches_else_the_owner_else_all() -> None:
    store = make_store()
    jobs = make_jobs()
    sink = make_sink(store, None, jobs)
    sink.request_discovery(waba_id=WABA, owner_business_id="123", reason="x")
    assert jobs.discoveries == [BUSINESS]
    jobs.discoveries.clear()
    sink.request_discovery(waba_id="999", owner_business_id=OTHER, reason="x")
    assert jobs.discoveries == [OTHER]
    jobs.discoveries.clear()
    sink.request_discovery(waba_id="999", owner_business_id="555", reason="x")
    assert jobs.discoveries == [OTHER]  # every configured business that discovers
    sink.request_repoll(waba_id=WABA, reason="account_update")
    assert jobs.repolls == [(WABA, "account_update")]


def test_restriction_round_trip_through_the_file(db: StateDB, tmp_path: Path) -> None:
    rich = WabaFacts(ban_state="SCHEDULE_FOR_DISABLE", ban_date=1_744_848_000.0,
                     ban_date_text="April 17, 2025",
                     restrictions=(Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", None),),
                     events={"ACCOUNT_RESTRICTION": 5.0}, review_status="REJECTED",
                     review_at=6.0, phone_numbers_cap=25, applied=("a", "b"))
    db.save_webhook_facts([(WABA, BUSINESS, rich)], [ALERT], [])
    assert on_disk(tmp_path) == ({WABA: rich}, [ALERT], [])
