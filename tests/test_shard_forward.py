"""Shard forwarding: who gets a webhook this shard does not watch, and a clean shutdown.

The forwarder is driven directly (no Runtime): a fake "watched" rule, real peers on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from monitor.config import Settings
from monitor.sharding import Shard
from monitor.sharding.forward import ShardForwarder
from monitor.webhooks.envelope import SIGNATURE_HEADER, sign
from monitor.webhooks.receiver import FORWARDED_HEADER

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
SIGNATURE = sign(BODY, "forward-secret-1")
PATH = "/webhooks/whatsapp"


def settings(peers: list[str] | str | None) -> Settings:
    return Settings(businesses=[{"id": "100000000000001"}],
                    sharding={"shard": 0, "total_shards": 3, "peers": peers})


def forward_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("webhook-forward-")]


@dataclass
class Peers:
    """One loopback server standing in for every peer; records what each was sent."""

    url: str
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def base(self, name: str) -> str:
        return f"{self.url}/{name}"


@pytest.fixture
async def peers(aiohttp_server: Any) -> Peers:
    recorded = Peers("")

    async def hook(request: web.Request) -> web.Response:
        recorded.received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    server = await aiohttp_server(app)
    recorded.url = str(server.make_url("")).rstrip("/")
    return recorded


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make(session: aiohttp.ClientSession | None, conf: Settings, *, total: int = 3,
         watched: Callable[[str], bool] = lambda _: False, timeout: float = 10.0
         ) -> ShardForwarder:
    return ShardForwarder(shard=lambda: Shard(0, total), settings=lambda: conf,
                          watches=watched, session=lambda: session, timeout=timeout)


async def settle(forwarder: ShardForwarder) -> None:
    for _ in range(200):
        if not forwarder.in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("forwards did not finish")


async def test_passes_the_webhook_on_unchanged_to_every_other_peer(
    peers: Peers, session: aiohttp.ClientSession
) -> None:
    conf = settings([peers.base("zero"), peers.base("one"), peers.base("two")])
    forwarder = make(session, conf, watched=lambda waba: waba == "1")
    forwarder.start()
    with capture_logs() as logs:
        forwarder(BODY, SIGNATURE, frozenset({"1", "2"}))
        assert forwarder.in_flight == 2
        await settle(forwarder)
    assert sorted(path for path, _, _ in peers.received) == [f"/one{PATH}", f"/two{PATH}"]
    for _, body, headers in peers.received:
        assert body == BODY
        assert headers[SIGNATURE_HEADER] == SIGNATURE
        assert headers[FORWARDED_HEADER] == "1"
        assert headers["Content-Type"] == "application/json"
    assert sorted(e["peer"] for e in logs if e["event"] == "webhook_forwarded") == [
        peers.base("one") + PATH, peers.base("two") + PATH]
    await forwarder.close()


@pytest.mark.parametrize("case", ["single shard", "all watched", "no session", "not started",
                                  "closed"])
async def test_nothing_is_forwarded_when_there_is_nothing_to_do(
    peers: Peers, session: aiohttp.ClientSession, case: str
) -> None:
    conf = settings(peers.base("p{shard}"))
    forwarder = make(None if case == "no session" else session, conf,
                     total=1 if case == "single shard" else 3,
                     watched=(lambda _: True) if case == "all watched" else (lambda _: False))
    if case != "not started":
        forwarder.start()
    if case == "closed":
        await forwarder.close()
    with capture_logs() as logs:
        forwarder(BODY, SIGNATURE, frozenset({"1"}))
    assert forwarder.in_flight == 0 and forward_tasks() == []
    skipped = [e for e in logs if e["event"] == "webhook_forward_skipped"]
    assert len(skipped) == (1 if case in ("not started", "closed") else 0)
    await asyncio.sleep(0.05)
    assert peers.received == []


async def test_peers_without_a_url_are_skipped(
    peers: Peers, session: aiohttp.ClientSession
) -> None:
    forwarder = make(session, settings([peers.base("zero"), peers.base("one")]))  # none for 2
    forwarder.start()
    forwarder(BODY, SIGNATURE, frozenset({"1"}))
    await settle(forwarder)
    assert [path for path, _, _ in peers.received] == [f"/one{PATH}"]
    await forwarder.close()


async def test_an_unreachable_peer_is_logged_and_forgotten(session: aiohttp.ClientSession) -> None:
    from tests.test_end_to_end import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    forwarder = make(session, settings([dead, dead, dead]))
    forwarder.start()
    with capture_logs() as logs:
        forwarder(BODY, SIGNATURE, frozenset({"1"}))
        await settle(forwarder)
    failed = [e for e in logs if e["event"] == "webhook_forward_failed"]
    assert len(failed) == 2 and all(e["log_level"] == "warning" for e in failed)
    await forwarder.close()


async def test_shutdown_cancels_forwards_to_a_peer_that_never_answers(
    session: aiohttp.ClientSession,
) -> None:
    """The forwarder's cleanup_ctx, run by the app's cleanup, leaves no task behind."""
    requests_seen = asyncio.Event()
    connections: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[Any]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await reader.readuntil(b"\r\n\r\n")
        if len(connections) == 2:
            requests_seen.set()
        await asyncio.Event().wait()  # never answer

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    forwarder = make(session, settings(f"http://127.0.0.1:{port}/shard-{{shard}}"),
                     timeout=60.0)
    app = web.Application()
    app.cleanup_ctx.append(forwarder.cleanup_ctx)
    runner = web.AppRunner(app)
    await runner.setup()  # starts the forwarder
    try:
        forwarder(BODY, SIGNATURE, frozenset({"1"}))
        await asyncio.wait_for(requests_seen.wait(), 5)
        assert forwarder.in_flight == 2 and len(forward_tasks()) == 2
        with capture_logs() as logs:
            await asyncio.wait_for(runner.cleanup(), 5)  # far below the 60 s forward timeout
        assert forwarder.in_flight == 0
        assert forward_tasks() == []
        assert [e["count"] for e in logs if e["event"] == "webhook_forwards_cancelled"] == [2]
        assert not [e for e in logs if e["event"] in ("webhook_forwarded",
                                                       "webhook_forward_failed")]
        # Closed for good: a late forward starts nothing.
        forwarder(BODY, SIGNATURE, frozenset({"1"}))
        assert forwarder.in_flight == 0
    finally:
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
