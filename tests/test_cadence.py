"""The cadence: APScheduler's policy (no overlap, coalescing, positive jitter) on one timer.

Most tests drive ``tick`` with a fake clock and count runs; the ones about the timer itself use
the real loop with long intervals and wait for a count, never for a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from monitor.cadence import Cadence


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_runs() -> dict[str, int]:
    return {}


def counter(runs: dict[str, int], key: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        runs[key] = runs.get(key, 0) + 1
    return run


async def settle() -> None:
    """Let the tasks the last tick started run to their end (they await nothing slow)."""
    for _ in range(5):
        await asyncio.sleep(0)


def fake(clock: Clock) -> Cadence:
    return Cadence(clock=clock, uniform=lambda low, high: high)  # jitter: always its maximum


async def test_first_run_now_or_after_delay_then_every_interval_plus_jitter() -> None:
    clock, runs = Clock(), no_runs()
    cadence = fake(clock)
    cadence.add("a", counter(runs, "a"), 10.0, jitter=1.0)
    cadence.add("b", counter(runs, "b"), 10.0, delay=5.0)
    assert cadence.tick() == 1005.0  # a ran; b is the earliest left
    await settle()
    assert runs == {"a": 1}
    assert cadence.due("a") == 1011.0  # due + interval + jitter
    clock.now = 1005.0
    cadence.tick()
    await settle()
    assert runs == {"a": 1, "b": 1} and cadence.due("b") == 1015.0
    clock.now = 1011.0
    cadence.tick()
    await settle()
    assert runs == {"a": 2, "b": 1}
    assert cadence.due("a") == 1022.0  # the jitter counts from the jittered time


async def test_jitter_only_delays_and_stays_within_its_fraction() -> None:
    clock = Clock()
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return (low + high) / 2

    cadence = Cadence(clock=clock, uniform=uniform)
    cadence.add("a", counter({}, "a"), 60.0, jitter=6.0)
    cadence.add("b", counter({}, "b"), 60.0)  # no jitter: no draw
    cadence.tick()
    await settle()
    assert draws == [(0.0, 6.0)]
    assert cadence.due("a") == 1063.0 and cadence.due("b") == 1060.0


SlowRun = tuple[Clock, Cadence, list[float], asyncio.Event, Callable[[], Awaitable[None]]]


async def slow_run_started() -> SlowRun:
    """A cadence whose key "a" (``slow`` every 10 s) has started a run that lasts until
    ``release`` is set; the start times are listed."""
    clock, started = Clock(), []
    release = asyncio.Event()

    async def slow() -> None:
        started.append(clock.now)
        await release.wait()

    cadence = fake(clock)
    cadence.add("a", slow, 10.0)
    cadence.tick()
    await settle()
    return clock, cadence, started, release, slow


async def test_a_slow_run_is_never_started_twice() -> None:
    clock, cadence, started, release, _slow = await slow_run_started()
    for now in (1010.0, 1020.0):  # due twice while the first run still runs: skipped
        clock.now = now
        cadence.tick()
        await settle()
    assert started == [1000.0] and cadence.skipped == 2 and cadence.running("a")
    assert cadence.due("a") == 1030.0  # the next run is scheduled all the same
    release.set()
    await settle()
    assert not cadence.running("a")
    clock.now = 1030.0
    cadence.tick()
    await settle()
    assert started == [1000.0, 1030.0]


async def test_a_late_timer_runs_once_and_keeps_its_phase() -> None:
    clock, runs = Clock(), no_runs()
    cadence = fake(clock)
    cadence.add("a", counter(runs, "a"), 10.0)
    cadence.tick()
    await settle()
    clock.now = 1055.0  # late by 4.5 intervals: the runs due at 1010 ... 1050 coalesce
    cadence.tick()
    await settle()
    assert runs == {"a": 2}
    assert cadence.due("a") == 1060.0  # like APScheduler: the last missed time + interval


async def test_run_soon_moves_earlier_never_later() -> None:
    clock, runs = Clock(), no_runs()
    cadence = fake(clock)
    cadence.add("a", counter(runs, "a"), 60.0, delay=60.0)
    assert cadence.run_soon("a", 5.0) and cadence.due("a") == 1005.0
    assert not cadence.run_soon("a", 30.0) and cadence.due("a") == 1005.0
    assert not cadence.run_soon("unknown", 0.0) and "unknown" not in cadence
    clock.now = 1005.0
    cadence.tick()
    await settle()
    assert runs == {"a": 1}
    assert cadence.due("a") == 1065.0  # paced from the early run
    clock.now = 1060.0
    assert cadence.tick() == 1065.0  # the stale item at 1060 runs nothing
    await settle()
    assert runs == {"a": 1}


async def test_remove_stops_a_key_and_a_running_run_finishes() -> None:
    clock, runs, done = Clock(), no_runs(), []
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()
        done.append(1)

    cadence = fake(clock)
    cadence.add("a", counter(runs, "a"), 10.0)
    cadence.add("slow", slow, 10.0)
    cadence.tick()
    await settle()
    assert cadence.remove("a") and cadence.remove("slow") and not cadence.remove("a")
    assert len(cadence) == 0 and cadence.due("a") is None
    release.set()
    await settle()
    assert done == [1]  # not cancelled
    clock.now = 2000.0
    assert cadence.tick() is None
    await settle()
    assert runs == {"a": 1}


async def test_a_key_added_again_waits_for_its_run_still_going() -> None:
    _clock, cadence, started, _release, slow = await slow_run_started()
    cadence.add("a", slow, 10.0)  # replaced (say a new target) while its run still runs
    cadence.tick()
    await settle()
    assert started == [1000.0] and cadence.skipped == 1


async def test_a_raising_run_is_logged_and_everything_goes_on() -> None:
    clock, runs = Clock(), no_runs()

    async def broken() -> None:
        runs["broken"] = runs.get("broken", 0) + 1
        raise RuntimeError("boom")

    cadence = fake(clock)
    cadence.add("broken", broken, 10.0)
    cadence.add("fine", counter(runs, "fine"), 10.0)
    with capture_logs() as logs:
        for now in (1000.0, 1010.0):
            clock.now = now
            cadence.tick()
            await settle()
    assert runs == {"broken": 2, "fine": 2}
    failures = [e for e in logs if e["event"] == "cadence_run_failed"]
    assert [e["key"] for e in failures] == ["broken", "broken"]
    assert all(e["log_level"] == "error" and e.get("exc_info") for e in failures)


async def test_reschedule_paces_from_now() -> None:
    clock, runs = Clock(), no_runs()
    cadence = fake(clock)
    cadence.add("a", counter(runs, "a"), 10.0)
    cadence.tick()
    await settle()
    clock.now = 1003.0
    assert cadence.reschedule("a", 40.0, jitter=2.0)
    assert cadence.due("a") == 1045.0 and cadence.interval("a") == 40.0
    assert not cadence.reschedule("unknown", 40.0)
    clock.now = 1010.0
    cadence.tick()  # the old due time is stale
    await settle()
    assert runs == {"a": 1}
    clock.now = 1045.0
    cadence.tick()
    await settle()
    assert runs == {"a": 2} and cadence.due("a") == 1087.0


def test_bad_intervals_are_refused() -> None:
    cadence = Cadence()
    for interval, jitter in ((0.0, 0.0), (-1.0, 0.0), (float("nan"), 0.0), (1.0, -0.5)):
        with pytest.raises(ValueError):
            cadence.add("a", counter({}, "a"), interval, jitter=jitter)
    assert len(cadence) == 0


async def test_a_thousand_keys_spread_over_an_interval_each_run_once() -> None:
    clock, runs = Clock(), no_runs()
    cadence = fake(clock)
    for i in range(1000):
        cadence.add(str(i), counter(runs, str(i)), 60.0, delay=i * 0.059)  # within 59 s
    while clock.now < 1060.0:  # one interval, in 1 s steps
        cadence.tick()
        await settle()
        clock.now += 1.0
    assert len(runs) == 1000 and set(runs.values()) == {1}


async def test_the_heap_stays_bounded_under_many_repolls() -> None:
    clock = Clock()
    cadence = fake(clock)
    for i in range(100):
        cadence.add(str(i), counter({}, str(i)), 60.0, delay=60.0)
    for step in range(1, 50):  # every key moved earlier 49 times
        for i in range(100):
            cadence.run_soon(str(i), 60.0 - step)
    assert len(cadence._heap) <= 2 * len(cadence) + 65
    assert cadence.tick() == 1011.0  # the earliest current due, stale items skipped


# --- the timer on the real loop -------------------------------------------------------------
async def wait_for_count(runs: dict[str, int], total: int) -> None:
    async def reached() -> None:
        while sum(runs.values()) < total:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(reached(), 10)


async def test_the_timer_runs_many_keys_and_wakes_for_an_earlier_due() -> None:
    runs: dict[str, int] = {}
    cadence = Cadence()
    for i in range(1000):
        cadence.add(str(i), counter(runs, str(i)), 3600.0)
    cadence.add("later", counter(runs, "later"), 3600.0, delay=3600.0)
    cadence.start()
    try:
        await wait_for_count(runs, 1000)
        assert set(runs) == {str(i) for i in range(1000)} and set(runs.values()) == {1}
        # The timer sleeps for an hour now; a key added with an earlier due wakes it.
        cadence.add("new", counter(runs, "new"), 3600.0)
        await wait_for_count(runs, 1001)
        assert cadence.run_soon("later")  # and so does a repoll
        await wait_for_count(runs, 1002)
        assert runs["new"] == runs["later"] == 1
    finally:
        cadence.stop()


async def test_the_timer_sleeps_until_the_earliest_due() -> None:
    ticks = []

    class Counting(Cadence):
        def tick(self, now: float | None = None) -> float | None:
            ticks.append(1)
            return super().tick(now)

    cadence = Counting()
    cadence.add("a", counter({}, "a"), 3600.0, delay=3600.0)
    cadence.start()
    try:
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert len(ticks) == 1  # one look, then asleep: no busy loop
    finally:
        cadence.stop()


async def test_the_timer_survives_raising_runs_and_stop_cancels_quietly() -> None:
    runs: dict[str, int] = {}
    release = asyncio.Event()
    cancelled = []

    async def broken() -> None:
        runs["broken"] = runs.get("broken", 0) + 1
        raise RuntimeError("boom")

    async def hanging() -> None:
        runs["hanging"] = 1
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    cadence = Cadence()
    cadence.add("hanging", hanging, 3600.0)
    with capture_logs() as logs:
        for i in range(3):
            cadence.add(f"broken{i}", broken, 3600.0)
        cadence.start()
        await wait_for_count(runs, 4)
        cadence.add("after", counter(runs, "after"), 3600.0)  # the timer is still alive
        await wait_for_count(runs, 5)
        assert cadence.running("hanging")
        cadence.stop()
        await settle()
    assert cancelled == [1] and not cadence.running("hanging")
    assert [e["event"] for e in logs].count("cadence_run_failed") == 3
    assert "cadence_tick_failed" not in [e["event"] for e in logs]


async def test_a_start_that_fails_keeps_the_key_and_the_others_running() -> None:
    clock, runs = Clock(), no_runs()
    fail = [True]

    def uniform(low: float, high: float) -> float:
        if fail.pop() if fail else False:
            raise RuntimeError("no randomness today")
        return high

    cadence = Cadence(clock=clock, uniform=uniform)
    cadence.add("a", counter(runs, "a"), 10.0, jitter=1.0)
    cadence.add("b", counter(runs, "b"), 10.0, jitter=1.0)
    with capture_logs() as logs:
        cadence.tick()
        await settle()
    assert [e["event"] for e in logs] == ["cadence_start_failed"]
    assert runs == {"b": 1} and cadence.due("a") == 1010.0  # still scheduled, without jitter
    clock.now = 1011.0
    cadence.tick()
    await settle()
    assert runs == {"a": 1, "b": 2}
