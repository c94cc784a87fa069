"""One timer for many repeating keyed runs: every WABA's polls and template reads.

Why hand-written: at 50,000 numbers (10,000 WABAs polled every 60 s, 167 runs a second) a
py-spy profile put APScheduler's per-job machinery (``_process_jobs``, the memory job store's
``update_job``/``_get_job_index``, ``IntervalTrigger.get_next_fire_time``, datetime
conversions, the executor's ``submit_job``) at 12.5 % of the daemon's samples, about 3 % of a
core, against a target of 10 % of a core for the whole daemon. Here a run costs a heap pop, a
heap push and a task. APScheduler stays for the few business jobs (15 min cadence).

The policy is the one the scheduler gave APScheduler 3 (``max_instances=1``, ``coalesce``,
``misfire_grace_time=None``, ``IntervalTrigger`` with ``jitter``), kept exactly:

- never overlapping per key: a run that comes due while the key's last run still runs is
  skipped (counted in ``skipped``), and the next one is scheduled;
- coalescing: a timer late by several intervals runs once; a late run still runs;
- the first run is at ``add`` (or ``delay`` after it); the next one is the run's due time plus
  the interval (whole intervals past now, as the trigger's missed fire times are dropped)
  plus ``uniform(0, jitter)``: like APScheduler's trigger, jitter only delays, and it counts
  from the jittered time;
- ``reschedule`` is ``Job.reschedule``: the new interval from now, plus jitter.

Times are monotonic seconds (``time.monotonic`` unless a clock is given), so a step of the
wall clock moves no run. A run that raises is logged and the cadence goes on; ``stop``
cancels the runs still going. Generic: imports nothing from ``monitor``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import structlog

log = structlog.get_logger("monitor.cadence")

EARLY = 0.001  # seconds: a due this close counts as now (the loop's timer may wake early)
RETRY = 1.0  # seconds before the loop tries again after an unexpected error of its own


@dataclass(slots=True)
class _Entry:
    """One key's schedule (mutable: its due time moves every run)."""

    func: Callable[[], Awaitable[object]]
    interval: float
    jitter: float
    due: float
    seq: int = 0  # the heap item that is current; older items for this key are stale


class Cadence:
    """Runs ``func`` of every key at its own interval, on one asyncio task and one heap."""

    def __init__(self, name: str = "cadence", *, clock: Callable[[], float] = time.monotonic,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.name = name
        self.skipped = 0  # runs not started because the key's last run still ran
        self._clock = clock
        self._uniform = uniform
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._running: dict[str, asyncio.Task[None]] = {}  # references keep them alive
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # the sleeping loop's wake-up
        self._wake_at: float | None = None  # when it wakes; None: only when poked
        self._stopping = False

    # --- queries ---------------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> Iterator[str]:
        return iter(self._entries)

    def due(self, key: str) -> float | None:
        """When the key runs next (the clock's seconds), None if it is not scheduled."""
        entry = self._entries.get(key)
        return None if entry is None else entry.due

    def interval(self, key: str) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.interval

    def running(self, key: str) -> bool:
        return key in self._running

    # --- changes ---------------------------------------------------------------------------
    def add(self, key: str, func: Callable[[], Awaitable[object]], interval: float, *,
            jitter: float = 0.0, delay: float = 0.0) -> None:
        """Schedule ``func`` every ``interval`` seconds, first ``delay`` from now; replaces
        the key's schedule (a run of the key still going is still waited for)."""
        _check(interval, jitter)
        entry = _Entry(func, interval, jitter, self._clock() + delay)
        self._entries[key] = entry
        self._push(key, entry)

    def remove(self, key: str) -> bool:
        """Stop scheduling the key (a run of it still going finishes). False if unknown."""
        return self._entries.pop(key, None) is not None  # its heap items go stale

    def run_soon(self, key: str, delay: float = 0.0) -> bool:
        """Move the key's next run to ``delay`` from now if that is earlier (never later).
        True if it moved."""
        entry = self._entries.get(key)
        when = self._clock() + delay
        if entry is None or entry.due <= when:
            return False
        entry.due = when
        self._push(key, entry)
        return True

    def reschedule(self, key: str, interval: float, *, jitter: float = 0.0) -> bool:
        """A new interval from now on: the next run is one interval (plus jitter) from now.
        False if the key is unknown."""
        _check(interval, jitter)
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.interval, entry.jitter = interval, jitter
        entry.due = self._clock() + interval + self._jitter(jitter)
        self._push(key, entry)
        return True

    # --- the timer -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the timer on the running loop (keys added before are scheduled already)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    def stop(self) -> None:
        """Stop the timer and cancel the runs still going (they end quietly)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for task in list(self._running.values()):
            task.cancel()

    def tick(self, now: float | None = None) -> float | None:
        """Start every run that is due at ``now``; the earliest due left (None: no key).

        The loop calls it; tests with a fake clock call it directly."""
        now = self._clock() if now is None else now
        heap, entries = self._heap, self._entries  # _push rebuilds the heap in place
        while heap:
            due, seq, key = heap[0]
            if due > now + EARLY:
                return due
            heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry.seq == seq:
                try:
                    self._fire(key, entry, now)
                except Exception:  # one key's trouble never holds up the others
                    log.exception("cadence_start_failed", cadence=self.name, key=key)
        return None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                earliest = self.tick()
            except Exception:  # never dies: a bug of its own costs a second, not the polls
                log.exception("cadence_tick_failed", cadence=self.name)
                earliest = self._clock() + RETRY
            waiter: asyncio.Future[None] = loop.create_future()
            handle = (None if earliest is None
                      else loop.call_later(max(0.0, earliest - self._clock()), _wake, waiter))
            self._waiter, self._wake_at = waiter, earliest
            try:
                await waiter
            finally:
                self._waiter = self._wake_at = None
                if handle is not None:
                    handle.cancel()

    def _fire(self, key: str, entry: _Entry, now: float) -> None:
        following = entry.due + entry.interval  # scheduled first: the key never falls out
        if following <= now:  # coalesce: the missed runs are dropped, not run
            following += (math.floor((now - following) / entry.interval) + 1) * entry.interval
        entry.due = following
        try:
            entry.due += self._jitter(entry.jitter)
        finally:
            self._push(key, entry)
        if key in self._running:
            self.skipped += 1
            log.debug("cadence_run_skipped", cadence=self.name, key=key)
            return
        task = asyncio.get_running_loop().create_task(self._run(key, entry.func),
                                                      name=f"{self.name}:{key}")
        self._running[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))

    async def _run(self, key: str, func: Callable[[], Awaitable[object]]) -> None:
        try:
            await func()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            log.exception("cadence_run_failed", cadence=self.name, key=key)

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    def _push(self, key: str, entry: _Entry) -> None:
        entry.seq = next(self._seq)
        if len(self._heap) > 2 * len(self._entries) + 64:  # stale items: rebuild from entries
            self._heap[:] = [(e.due, e.seq, k) for k, e in self._entries.items()
                             if e is not entry]  # in place: a tick may be walking it
            heapq.heapify(self._heap)
        heapq.heappush(self._heap, (entry.due, entry.seq, key))
        if self._waiter is not None and (self._wake_at is None or entry.due < self._wake_at):
            _wake(self._waiter)  # an earlier due than the loop sleeps for

    def _jitter(self, jitter: float) -> float:
        return self._uniform(0.0, jitter) if jitter else 0.0


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _check(interval: float, jitter: float) -> None:
    if not interval > 0 or not math.isfinite(interval):
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    if not jitter >= 0 or not math.isfinite(jitter):
        raise ValueError(f"jitter must be zero or more seconds, not {jitter!r}")
