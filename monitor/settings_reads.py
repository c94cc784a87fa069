"""Each number's settings (the identity change check), read once per interval, spread out.

``GET /{PHONE_NUMBER_ID}/settings`` costs one request per number, so it is read rarely
(``schedule.settings_interval``, a day by default) and evenly: one number every interval / N,
never in bursts. A number whose WABA is throttled or whose budget is under pressure waits its
next turn, so polls never starve. Only the POST of this edge is documented: when the API does
not answer a read (unknown whether it is readable), the series stays absent, the reason is
counted, and that number is not read again until the next reload — harmless either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
from collections.abc import Callable

import structlog

from monitor.daemon import Monitor
from monitor.graph.errors import ErrorKind, GraphError
from monitor.lifecycle import background
from monitor.poller import read_identity_key_check

log = structlog.get_logger("monitor.settings_reads")

# Errors that mean "this edge does not answer reads here", not "try later".
_UNREADABLE = frozenset({ErrorKind.FIELD_REJECTED, ErrorKind.NOT_FOUND, ErrorKind.PERMISSION,
                         ErrorKind.BAD_REQUEST})
MIN_GAP = 0.05  # seconds between two reads at the most frequent
REFRESH = 30.0  # seconds between looks for numbers that appeared


class SettingsReads:
    """The background duty; ``running`` is its lifecycle, ``reset`` follows a reload."""

    def __init__(self, monitor: Monitor, *, clock: Callable[[], float] = time.time) -> None:
        self._monitor = monitor
        self._clock = clock
        self._heap: list[tuple[float, str, str]] = []  # (last read, number, WABA)
        self._known: set[str] = set()
        self._version = -1
        self._refreshed = -math.inf
        self._last: dict[str, float] = {}  # phone_number_id -> when it was last read
        self.unreadable: set[str] = set()  # not read again until the next reload
        self._changed = asyncio.Event()

    def reset(self) -> None:
        """A reload: numbers that could not be read are tried again; a new interval holds."""
        self.unreadable.clear()
        self._heap.clear()
        self._known.clear()
        self._version = -1
        self._changed.set()

    def _interval(self) -> float:
        return self._monitor.settings.schedule.settings_interval

    def _numbers(self) -> int:
        return len(self._known)

    def _refresh(self, now: float) -> None:
        """Take in numbers that appeared since the last look (at most every REFRESH s)."""
        store = self._monitor.store
        if store.version == self._version or (self._heap and now - self._refreshed < REFRESH):
            return
        self._version, self._refreshed = store.version, now
        for waba in store.wabas():
            for number in waba.numbers:
                if number.id not in self._known:
                    self._known.add(number.id)
                    last = self._last.get(number.id, -math.inf)
                    heapq.heappush(self._heap, (last, number.id, waba.waba_id))

    def _next(self, now: float) -> tuple[str, str] | None:
        """The number read longest ago, if it is due; None when none is due now. A number
        of a WABA under pressure keeps its place for a later turn."""
        self._refresh(now)
        store, interval = self._monitor.store, self._interval()
        deferred: list[tuple[float, str, str]] = []
        found: tuple[str, str] | None = None
        while self._heap and found is None:
            last, number_id, waba_id = self._heap[0]
            if last + interval > now:
                break
            heapq.heappop(self._heap)
            state = store.waba(waba_id)
            if state is None or not any(n.id == number_id for n in state.numbers):
                self._known.discard(number_id)  # gone, or moved: the next refresh re-adds it
                continue
            if number_id in self.unreadable:
                deferred.append((now, number_id, waba_id))
            elif self._under_pressure(waba_id, now):
                deferred.append((last, number_id, waba_id))
            else:
                found = (waba_id, number_id)
                heapq.heappush(self._heap, (now, number_id, waba_id))
        for entry in deferred:
            heapq.heappush(self._heap, entry)
        return found

    def _under_pressure(self, waba_id: str, now: float) -> bool:
        """Throttled, or its usage past the slow-down threshold: polls go first."""
        if self._monitor.not_before.get(waba_id, 0.0) > now:
            return True
        state = self._monitor.store.waba(waba_id)
        threshold = self._monitor.settings.graph.usage_slowdown_threshold
        return bool(state and state.usage_ratio is not None and state.usage_ratio >= threshold)

    async def read_one(self, waba_id: str, number_id: str) -> None:
        """Read one number's settings and keep the answer (or why there is none)."""
        self._last[number_id] = self._clock()
        monitor = self._monitor
        try:
            enabled = await read_identity_key_check(monitor.client, number_id)
        except GraphError as err:
            monitor.metrics.unreadable.labels(read="settings", reason=err.code_label).inc()
            if err.kind in _UNREADABLE:
                self.unreadable.add(number_id)
                monitor.store.put_number_setting(waba_id, number_id, None)
                log.info("number_settings_unreadable", waba_id=waba_id,
                         phone_number_id=number_id, kind=err.kind.value, code=err.code,
                         action="not read again until the next reload")
            return
        if enabled is None:
            monitor.metrics.unreadable.labels(read="settings", reason="no_setting").inc()
            self.unreadable.add(number_id)
        monitor.store.put_number_setting(waba_id, number_id, enabled)

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            interval = self._interval()
            if interval <= 0:
                await self._changed.wait()
                continue
            due = self._next(self._clock())
            if due is not None:
                try:
                    await self.read_one(*due)
                except Exception:  # a bug here must not end the reads for good
                    log.exception("number_settings_read_crashed")
            gap = max(MIN_GAP, interval / max(1, self._numbers()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), gap)

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Reads run while this context is open (the duty's lifecycle)."""
        return background(self._loop)
