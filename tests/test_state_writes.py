"""The state file is not rewritten for a poll that changed nothing but freshness, yet its
last-success time never lags by more than the writer's refresh interval."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monitor.graph.usage import BucUsage
from monitor.model import PhoneNumber, WabaState
from monitor.state import StateDB, StateWriter, only_fresher, waba_from_json, waba_to_json

NUMBERS = (PhoneNumber(id="1", status="CONNECTED"), PhoneNumber(id="2", status="CONNECTED"))


def polled(state: WabaState, at: float) -> WabaState:
    """The next poll of ``state`` that found the same numbers (the same objects)."""
    return dataclasses.replace(state, last_success=at, last_attempt=at, polls=state.polls + 1,
                               last_duration=0.1, usage_ratio=0.2,
                               usage=(BucUsage("w", "MGMT", 1, 2, 3, 0),))


def test_only_freshness_changed() -> None:
    old = WabaState("b", "w", numbers=NUMBERS, up=True, polled=True, last_success=1.0)
    assert only_fresher(old, polled(old, 2.0))
    equal_copy = tuple(dataclasses.replace(n) for n in NUMBERS)
    assert only_fresher(old, dataclasses.replace(polled(old, 2.0), numbers=equal_copy))
    changed = (NUMBERS[0], dataclasses.replace(NUMBERS[1], status="FLAGGED"))
    assert not only_fresher(old, dataclasses.replace(old, numbers=changed))
    assert not only_fresher(old, dataclasses.replace(old, up=False, last_error="network"))
    assert not only_fresher(old, dataclasses.replace(old, interval=120.0))


def test_freshness_is_written_at_most_every_refresh_interval(tmp_path: Path) -> None:
    now = [0.0]
    db = StateDB(tmp_path)
    writer = StateWriter(db, retention=86_400, refresh=300.0, clock=lambda: now[0])
    state = WabaState("b", "w", numbers=NUMBERS, up=True, polled=True, last_success=100.0)
    writer.on_change(state, [])
    first = writer.take()
    assert first[0] == [state]
    writer.write(first, 100.0)

    for minute in range(1, 5):  # polls every minute that found the same numbers
        now[0] = 60.0 * minute
        state = polled(state, 100.0 + now[0])
        writer.on_change(state, [])
        assert not writer.dirty
    now[0] = 300.0
    state = polled(state, 400.0)
    writer.on_change(state, [])
    batch = writer.take()
    assert batch[0] == [state]  # the refresh interval passed: written
    writer.write(batch, 400.0)
    assert db.wabas()[0].last_success == 400.0

    now[0] = 310.0  # a real change is written at once
    changed = dataclasses.replace(polled(state, 410.0), numbers=NUMBERS[:1])
    writer.on_change(changed, [])
    assert writer.take()[0] == [changed]

    now[0] = 320.0  # a pending state is replaced by a newer one, never dropped
    writer.on_change(dataclasses.replace(changed, up=False, last_error="network"), [])
    newer = polled(dataclasses.replace(changed, up=False, last_error="network"), 420.0)
    writer.on_change(newer, [])
    assert writer.take()[0] == [newer]
    db.close()


async def test_a_clean_stop_writes_the_held_back_freshness(tmp_path: Path) -> None:
    """Only kill -9 loses the freshness held back: the final flush writes it."""
    from monitor.state import flushing

    now = [0.0]
    db = StateDB(tmp_path)
    writer = StateWriter(db, retention=86_400, refresh=300.0, clock=lambda: now[0])
    state = WabaState("b", "w", numbers=NUMBERS, up=True, polled=True, last_success=100.0)
    async with flushing(writer, interval=3600.0, clock=lambda: 1_000.0):
        writer.on_change(state, [])
        writer.write(writer.take(), 1_000.0)
        now[0] = 60.0
        writer.on_change(polled(state, 160.0), [])
        assert not writer.dirty and writer.deferred == 1
        assert db.wabas()[0].last_success == 100.0  # held back while running
    assert db.wabas()[0].last_success == 160.0  # written at the stop
    db.close()


async def test_a_committed_change_is_not_written_again_by_the_batch(tmp_path: Path) -> None:
    db = StateDB(tmp_path)
    writer = StateWriter(db, retention=86_400, clock=lambda: 0.0)
    state = WabaState("b", "w", numbers=NUMBERS, up=True, polled=True, last_success=1.0)
    await writer.commit(state, [])
    writer.on_change(state, [])
    assert not writer.dirty
    writer.on_remove("w")
    writer.on_change(state, [])  # watched again: written
    assert writer.take()[0] == [state]
    db.close()


def test_state_json_round_trips() -> None:
    state = polled(WabaState("b", "w", numbers=NUMBERS, up=True, polled=True,
                             status_changed_at={"1": 5.0}), 7.5)
    assert waba_from_json(waba_to_json(state)) == state
