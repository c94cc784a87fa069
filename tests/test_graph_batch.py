"""Graph batch calls in the client: many GETs, one HTTP call, each caller its own answer.

A small fake Graph (not the simulator) lets each test decide what the batch call answers,
and counts the HTTP calls and the GETs inside them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from monitor.graph.batch import Batcher, Reply, replies_from_body
from monitor.graph.client import GraphClient, RetryPolicy, start_accounting
from monitor.graph.errors import ErrorKind, GraphError
from monitor.graph.usage import BucUsage
from monitor.selfmetrics import SelfMetrics

TOKEN = "batch-test-token"
SECRET = "batch-test-secret"

Entry = Callable[[str, dict[str, str]], "dict[str, Any] | None"]


def ok_entry(path: str, query: dict[str, str]) -> dict[str, Any] | None:
    waba = path.split("/")[0]
    usage = {waba: [{"type": "whatsapp_business_management", "call_count": 7,
                     "total_cputime": 1, "total_time": 1,
                     "estimated_time_to_regain_access": 0}]}
    return {"code": 200,
            "headers": [{"name": "X-Business-Use-Case-Usage", "value": json.dumps(usage)},
                        {"name": "Content-Type", "value": "application/json"}],
            "body": json.dumps({"data": [{"id": f"{waba}-n"}], "asked": query.get("fields")})}


@dataclass
class FakeGraph:
    """Answers batch calls entry by entry with ``entry``, or the whole call with ``whole``."""

    entry: Entry = ok_entry
    whole: web.Response | None = None
    stall: float = 0.0  # seconds each batch call takes before it answers
    hang: set[str] = field(default_factory=set)  # objects whose reads never answer
    top_headers: dict[str, str] = field(default_factory=dict)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v24.0/", self._batch)
        app.router.add_get("/v24.0/{path:.+}", self._get)
        return app

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        items = json.loads(form["batch"])
        self.batches.append(items)
        if self.stall:
            await asyncio.sleep(self.stall)
        if any(item["relative_url"].split("/")[0] in self.hang for item in items):
            await asyncio.sleep(3600)
        if self.whole is not None:
            return self.whole
        out = []
        for item in items:
            parts = urlsplit(item["relative_url"])
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            out.append(self.entry(parts.path, query))
        return web.json_response(out, headers=self.top_headers)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.gets.append(request.match_info["path"])
        waba = request.match_info["path"].split("/")[0]
        if waba in self.hang:
            await asyncio.sleep(3600)
        return web.json_response({"data": [{"id": f"{waba}-n"}], "alone": True})


@pytest.fixture
async def fake(aiohttp_server: Any) -> Callable[..., Awaitable[tuple[FakeGraph, str]]]:
    async def start(**kwargs: Any) -> tuple[FakeGraph, str]:
        graph = FakeGraph(**kwargs)
        server = await aiohttp_server(graph.app())
        return graph, str(server.make_url("")).rstrip("/")
    return start


def client(session: aiohttp.ClientSession, url: str, metrics: SelfMetrics, *,
           batch_size: int = 50, wait: float = 0.05, secret: str | None = None,
           timeout: float = 5.0,
           sink: Callable[[tuple[BucUsage, ...]], None] | None = None) -> GraphClient:
    async def no_sleep(_: float) -> None:
        return None
    return GraphClient(session, base_url=url, api_version="v24.0", access_token=TOKEN,
                       metrics=metrics, app_secret=secret, batch_size=batch_size,
                       batch_wait=wait, retry=RetryPolicy(max_retries=2), sleep=no_sleep,
                       timeout=timeout,
                       usage_sink=sink)


async def many(graph: GraphClient, count: int) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(
        graph.get("phone_numbers", f"{1000 + i}/phone_numbers", {"fields": "id,status"})
        for i in range(count))))


async def test_concurrent_gets_share_batch_calls_of_at_most_fifty(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    graph, url = await fake()
    bodies = await many(client(session, url, metrics), 120)
    assert [len(b) for b in graph.batches] == [50, 50, 20]
    assert graph.gets == []
    # every caller got the answer to its own GET
    assert [b["data"][0]["id"] for b in bodies] == [f"{1000 + i}-n" for i in range(120)]
    assert all(b["asked"] == "id,status" for b in bodies)
    urls = [item["relative_url"] for batch in graph.batches for item in batch]
    assert urls[0] == "1000/phone_numbers?fields=id%2Cstatus"
    assert all(item["method"] == "GET" for batch in graph.batches for item in batch)
    # each GET counts as one request, as Meta counts it
    assert metrics.graph_requests.labels(endpoint="phone_numbers")._value.get() == 120


async def test_batch_size_one_sends_every_get_alone(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    graph, url = await fake()
    await many(client(session, url, metrics, batch_size=1), 5)
    assert graph.batches == []
    assert len(graph.gets) == 5


async def test_appsecret_proof_once_at_top_level_and_no_token_in_urls(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    graph, url = await fake()
    await many(client(session, url, metrics, secret=SECRET), 3)
    form = graph.forms[0]
    assert len(form["appsecret_proof"]) == 64
    assert form["include_headers"] == "true"
    for item in graph.batches[0]:
        assert "appsecret_proof" not in item["relative_url"]
        assert TOKEN not in item["relative_url"]
    assert TOKEN not in json.dumps(graph.forms)


async def test_an_entrys_error_is_its_callers_alone(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    def entry(path: str, query: dict[str, str]) -> dict[str, Any] | None:
        if path.startswith("1001/"):
            return {"code": 400, "headers": [], "body": json.dumps(
                {"error": {"message": "(#100) Unknown path", "type": "OAuthException",
                           "code": 100, "fbtrace_id": "x"}})}
        return ok_entry(path, query)
    _graph, url = await fake(entry=entry)
    results = await asyncio.gather(*(
        client(session, url, metrics).get("phone_numbers", f"{1000 + i}/phone_numbers", {})
        for i in range(3)), return_exceptions=True)
    assert isinstance(results[1], GraphError) and results[1].code == 100
    assert isinstance(results[0], dict) and isinstance(results[2], dict)


async def test_an_entry_that_did_not_run_is_retried(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    seen: dict[str, int] = {}

    def entry(path: str, query: dict[str, str]) -> dict[str, Any] | None:
        seen[path] = seen.get(path, 0) + 1
        if path.startswith("1002/") and seen[path] == 1:
            return None  # Graph's partial completion
        return ok_entry(path, query)
    graph, url = await fake(entry=entry)
    bodies = await many(client(session, url, metrics), 4)
    assert bodies[2]["data"][0]["id"] == "1002-n"
    assert seen["1002/phone_numbers"] == 2
    assert len(graph.batches) == 2 and len(graph.batches[1]) == 1
    assert metrics.graph_errors.labels(endpoint="phone_numbers", code="network")._value.get() == 1


async def test_a_failed_batch_call_fails_each_get_with_its_error(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    expired = web.json_response({"error": {"message": "Error validating access token",
                                           "type": "OAuthException", "code": 190,
                                           "fbtrace_id": "x"}}, status=401)
    graph, url = await fake(whole=expired)
    graph_client = client(session, url, metrics)
    results = await asyncio.gather(*(
        graph_client.get("phone_numbers", f"{i}/phone_numbers", {}) for i in range(3)),
        return_exceptions=True)
    assert all(isinstance(r, GraphError) and r.kind is ErrorKind.AUTH for r in results)
    assert len(graph.batches) == 1 and graph.gets == []
    graph.whole = None  # batching stays on: the token was the trouble, not the batch
    await many(graph_client, 2)
    assert len(graph.batches) == 2 and graph.gets == []


async def test_gets_of_a_batch_call_that_timed_out_retry_alone(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    graph, url = await fake(stall=1.0)  # one slow GET holds up the whole call
    bodies = await many(client(session, url, metrics, timeout=0.3), 3)
    assert [b["alone"] for b in bodies] == [True, True, True]
    assert len(graph.batches) == 1 and len(graph.gets) == 3
    assert metrics.graph_errors.labels(endpoint="phone_numbers", code="network")._value.get() == 3


async def test_an_object_that_hangs_alone_too_is_read_alone_until_it_answers(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    graph, url = await fake(hang={"1001"})
    graph_client = client(session, url, metrics, timeout=0.3)
    results = await asyncio.gather(*(
        graph_client.get("phone_numbers", f"{1000 + i}/phone_numbers", {}) for i in range(3)),
        return_exceptions=True)
    assert isinstance(results[1], GraphError) and results[1].kind is ErrorKind.NETWORK
    assert [len(b) for b in graph.batches] == [3]
    # Its neighbours' next reads share a batch call without it; it goes alone.
    results = await asyncio.gather(*(
        graph_client.get("phone_numbers", f"{1000 + i}/phone_numbers", {}) for i in range(3)),
        return_exceptions=True)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert [len(b) for b in graph.batches] == [3, 2]
    assert "1001" not in json.dumps(graph.batches[1])
    graph.hang.clear()  # it answers again: back into batch calls after one good read alone
    await graph_client.get("phone_numbers", "1001/phone_numbers", {})
    await graph_client.get("phone_numbers", "1001/phone_numbers", {})
    assert "1001" in json.dumps(graph.batches[-1])


@pytest.mark.parametrize("refusal", [
    web.json_response({"error": {"message": "(#100) Unsupported post request",
                                 "type": "GraphMethodException", "code": 100,
                                 "fbtrace_id": "x"}}, status=400),
    web.Response(status=404, text="not found"),
    web.json_response({"id": "not a batch answer"}),
])
async def test_an_api_that_refuses_batches_gets_every_get_alone(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics,
        refusal: web.Response) -> None:
    graph, url = await fake(whole=refusal)
    graph_client = client(session, url, metrics)
    bodies = await many(graph_client, 3)
    assert [b["alone"] for b in bodies] == [True, True, True]  # nothing lost
    assert len(graph.batches) == 1
    await many(graph_client, 2)
    assert len(graph.batches) == 1 and len(graph.gets) == 5  # no second try


async def test_each_entrys_usage_goes_to_its_own_poll_and_the_batchs_to_the_sink(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    top = {"999": [{"type": "whatsapp_business_management", "call_count": 3,
                    "total_cputime": 1, "total_time": 1}]}
    _graph, url = await fake(top_headers={"X-Business-Use-Case-Usage": json.dumps(top)})
    sunk: list[tuple[BucUsage, ...]] = []
    graph_client = client(session, url, metrics, sink=sunk.append)

    async def poll(waba: str) -> set[str]:
        acct = start_accounting()
        await graph_client.get("phone_numbers", f"{waba}/phone_numbers", {})
        return {object_id for object_id, _ in acct.usage}
    assert await asyncio.gather(poll("501"), poll("502")) == [{"501"}, {"502"}]
    assert [entry.object_id for batch in sunk for entry in batch] == ["999"]


async def test_usage_told_only_for_the_whole_batch_call_reaches_each_wabas_poll(
        fake: Any, session: aiohttp.ClientSession, metrics: SelfMetrics) -> None:
    def bare(path: str, query: dict[str, str]) -> dict[str, Any] | None:
        return {"code": 200, "headers": [], "body": json.dumps({"data": []})}
    top = {waba: [{"type": "whatsapp_business_management", "call_count": int(waba) - 500,
                   "total_cputime": 1, "total_time": 1}] for waba in ("501", "502")}
    graph, url = await fake(entry=bare,
                            top_headers={"X-Business-Use-Case-Usage": json.dumps(top)})
    graph_client = client(session, url, metrics)

    async def poll(waba: str) -> int:
        acct = start_accounting()
        await graph_client.get("phone_numbers", f"{waba}/phone_numbers", {})
        return acct.usage[(waba, "whatsapp_business_management")].call_count
    assert await asyncio.gather(poll("501"), poll("502")) == [1, 2]
    assert len(graph.batches) == 1


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    release = asyncio.Event()

    async def send(urls: list[str]) -> list[Reply | None]:
        await release.wait()
        return [Reply(200, None, None, None, url.encode()) for url in urls]
    batcher = Batcher(send, size=3, wait=10.0)
    first = asyncio.ensure_future(batcher.get("a"))
    second = asyncio.ensure_future(batcher.get("b"))
    third = asyncio.ensure_future(batcher.get("c"))  # the third fills the batch: sent now
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert (await second).body == b"b" and (await third).body == b"c"
    assert first.cancelled() and batcher.sent == 1


def test_batch_answers_that_are_not_lists_of_the_right_length_are_refused() -> None:
    assert replies_from_body(b'{"data": []}', 1) is None
    assert replies_from_body(b"[null]", 2) is None
    assert replies_from_body(b"not json", 1) is None
    entries = replies_from_body(b'[null, {"code": "200"}, {"code": 200, "body": "{}"}]', 3)
    assert entries is not None
    assert entries[0] is None and entries[1] is None
    assert entries[2] == Reply(200, None, None, None, b"{}")


@pytest.mark.parametrize("query", [
    {"fields": "id,status,name_status,throughput{level}", "limit": "100"},
    {"after": "QVFIUm5=/+ x&y", "fields": "id"},
    {"q": "ünïcode ✓", "empty": ""},
])
def test_relative_urls_encode_their_queries_as_urlencode_does(query: dict[str, str]) -> None:
    from urllib.parse import urlencode

    from monitor.graph.client import _query_string
    assert _query_string(query) == urlencode(query)
    assert _query_string(query) == urlencode(query)  # the remembered encodings too


@pytest.mark.parametrize("fields", [
    {"batch": '[{"method":"GET","relative_url":"1/phone_numbers?fields=id%2Cstatus&x=a+b"}]',
     "include_headers": "true", "appsecret_proof": "ab12"},
    {"batch": "~ .-_!*'()<>#[]{}|\\^`\"", "x": " "},
    {"batch": "ünïcode"},
])
def test_a_batch_body_is_the_form_urlencode_writes(fields: dict[str, str]) -> None:
    from urllib.parse import urlencode

    from monitor.graph.batch import form_body
    assert form_body(fields) == urlencode(fields).encode()
