"""Passing a webhook on to the shards that may watch its WABAs.

Meta posts every notification of an app to one callback URL, so it reaches whichever replica
the ingress picked. When that replica does not watch every WABA a verified notification names,
it passes the notification on to every other shard with a peer URL, unchanged (raw body and
signature, so the peer verifies it as if it came from Meta) and marked with
``FORWARDED_HEADER``, so a peer never passes it on again. Forwards are best effort and run in
the background: the local 200 never waits for a peer.

``ShardForwarder`` reads what it needs (the current shard and settings, whether a WABA is
watched, the HTTP session) through callables, so it follows configuration reloads without
knowing the runtime. Its lifecycle is aiohttp's ``cleanup_ctx``: forwards are accepted once it
has started, and shutdown cancels and awaits the forwards still in flight, so a peer that never
answers cannot keep a task alive after the server stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp import web

from monitor.config import Settings
from monitor.sharding.shard import Shard
from monitor.webhooks.envelope import SIGNATURE_HEADER
from monitor.webhooks.receiver import FORWARDED_HEADER

__all__ = ["FORWARD_TIMEOUT", "ShardForwarder"]

log = structlog.get_logger("monitor.sharding")

FORWARD_TIMEOUT = 10.0  # seconds for one forward, connect to response


class ShardForwarder:
    """A ``monitor.webhooks.receiver.Forwarder`` that posts to peer shards in background tasks.

    Call ``start()`` before and ``await close()`` after serving, or register ``cleanup_ctx``
    on the aiohttp application, which does both. Outside that window forwards are dropped.
    """

    def __init__(
        self,
        *,
        shard: Callable[[], Shard],
        settings: Callable[[], Settings],
        watches: Callable[[str], bool],
        session: Callable[[], aiohttp.ClientSession | None],
        timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self._shard = shard
        self._settings = settings
        self._watches = watches
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def in_flight(self) -> int:
        """Forwards started and not yet finished."""
        return len(self._tasks)

    def __call__(self, body: bytes, signature: str, waba_ids: frozenset[str]) -> None:
        """Pass a verified notification naming ``waba_ids`` on, unless this shard watches all."""
        shard = self._shard()
        if shard.total == 1:
            return
        session = self._session()
        if session is None:
            return
        if all(self._watches(waba_id) for waba_id in waba_ids):
            return
        if not self._running:
            log.warning("webhook_forward_skipped", reason="forwarder not running")
            return
        settings = self._settings()
        for ordinal in range(shard.total):
            base = settings.sharding.peer_url(ordinal)
            if ordinal == shard.ordinal or base is None:
                continue
            task = asyncio.create_task(
                self._post(session, base + settings.webhooks.path, body, signature),
                name=f"webhook-forward-{ordinal}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(
        self, session: aiohttp.ClientSession, url: str, body: bytes, signature: str
    ) -> None:
        headers = {
            SIGNATURE_HEADER: signature,
            FORWARDED_HEADER: "1",
            "Content-Type": "application/json",
        }
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook_forward_failed", peer=url, error=type(exc).__name__)
            return
        log.info("webhook_forwarded", peer=url, status=status)

    def start(self) -> None:
        """Accept forwards from now on."""
        self._running = True

    async def close(self) -> None:
        """Stop accepting forwards, cancel the ones in flight and wait until they are gone."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("webhook_forwards_cancelled", count=len(tasks))

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: start with the application, close on its cleanup."""
        self.start()
        try:
            yield
        finally:
            await self.close()
