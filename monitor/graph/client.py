"""The one place that talks HTTP to the Graph API: auth, retries, throttling, paging, usage.

The access token travels only in the Authorization header, never in a URL we build, and no
URL is ever logged (Graph's own ``paging.next`` links carry the token, so we page with the
cursor instead of following them).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import hmac
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import parse_qs, quote_plus, urlsplit

import aiohttp
import orjson
import structlog

from monitor.graph.batch import (
    Batcher,
    BatchUnusable,
    EntryLost,
    Reply,
    batch_form,
    form_body,
    replies_from_body,
)
from monitor.graph.errors import RETRYABLE, ErrorKind, GraphError, error_from_response
from monitor.graph.usage import AppUsage, BucUsage, parse_app_usage, parse_buc_usage
from monitor.selfmetrics import SelfMetrics

log = structlog.get_logger("monitor.graph")

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_PAGES = 100_000
MAX_SOLO = 10_000  # objects remembered as read alone (bounded: removed WABAs linger)

Sleep = Callable[[float], Awaitable[None]]
Validator = Callable[[Mapping[str, Any]], None]

# Counts requests made on behalf of the current poll; tasks spawned by a poll share the list.
_poll_requests: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "poll_requests", default=None
)
# Collects usage readings seen by the current poll.
_poll_usage: contextvars.ContextVar[dict[tuple[str, str], BucUsage] | None] = (
    contextvars.ContextVar("poll_usage", default=None)
)
# The in-line throttle wait of the current poll (all its pages, reads and retries).
_poll_throttle: contextvars.ContextVar[ThrottleWaits | None] = contextvars.ContextVar(
    "poll_throttle", default=None
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_throttle_wait: float = 60.0  # in-line throttle wait of one poll, in total

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential back-off: spreads retries of many WABAs apart."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class PollAccounting:
    """What one poll cost; filled by the client while the poll's context is active."""

    requests: list[int]
    usage: dict[tuple[str, str], BucUsage]

    @property
    def request_count(self) -> int:
        return self.requests[0]


def start_accounting() -> PollAccounting:
    """Begin counting requests for the calling task (and the tasks it spawns)."""
    acct = PollAccounting(requests=[0], usage={})
    _poll_requests.set(acct.requests)
    _poll_usage.set(acct.usage)
    return acct


@dataclass(slots=True)
class ThrottleWaits:
    """The in-line throttle waits of one poll: what they spent (bounded in total by
    ``max_throttle_wait``) and who to tell when a wait starts and ends, so a scrape taken
    meanwhile shows the WABA throttled. Tasks spawned by the poll share it."""

    notify: Callable[[bool], None] | None = None
    spent: float = 0.0  # seconds waited (or being waited) so far
    count: int = 0  # in-line waits taken
    waiting: int = 0  # waits under way now (a poll's per-number reads run concurrently)

    def enter(self) -> None:
        self.waiting += 1
        if self.waiting == 1 and self.notify is not None:
            self.notify(True)

    def leave(self) -> None:
        self.waiting -= 1
        if self.waiting == 0 and self.notify is not None:
            self.notify(False)


@contextlib.contextmanager
def throttle_scope(notify: Callable[[bool], None] | None = None) -> Iterator[ThrottleWaits]:
    """Share one in-line throttle allowance among every request made inside (one poll);
    outside any scope each request has an allowance of its own."""
    waits = ThrottleWaits(notify)
    token = _poll_throttle.set(waits)
    try:
        yield waits
    finally:
        _poll_throttle.reset(token)


def appsecret_proof(token: str, app_secret: str) -> str:
    """The classic proof: HMAC-SHA256 of the token keyed with the app secret, hex."""
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


class GraphClient:
    """A small, stateless-by-design wrapper; concurrency is bounded by one semaphore."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_version: str,
        access_token: str,
        metrics: SelfMetrics,
        app_secret: str | None = None,
        concurrency: int = 16,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        usage_sink: Callable[[tuple[BucUsage, ...]], None] | None = None,
        batch_size: int = 1,
        batch_wait: float = 0.1,
    ) -> None:
        self._session = session
        self._root = f"{base_url.rstrip('/')}/{api_version}/"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._form_headers = {**self._headers,
                              "Content-Type": "application/x-www-form-urlencoded"}
        self._proof = appsecret_proof(access_token, app_secret) if app_secret else None
        self._metrics = metrics
        self._semaphore = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        # Usage headers seen outside a WABA poll (discovery, business, token reads).
        self._usage_sink = usage_sink
        # Per-request work kept small: the request counter's children by endpoint, and the
        # last X-App-Usage header (the same text on most answers: parsed and set once).
        self._request_counters: dict[str, Any] = {}
        self._app_header: str | None = None
        # GETs with the access token go out in Graph batch calls when batch_size > 1.
        self._batcher = (Batcher(self._send_batch, size=batch_size, wait=batch_wait)
                         if batch_size > 1 else None)
        self._solo: set[str] = set()  # objects read alone: their GETs failed in transport

    @property
    def batches_sent(self) -> int:
        """Batch calls made so far (each carries up to ``batch_size`` GETs)."""
        return self._batcher.sent if self._batcher is not None else 0

    async def get(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str],
        *,
        validate: Validator | None = None,
        bearer: str | None = None,
        digest: BodyDigest | None = None,
    ) -> dict[str, Any]:
        """GET one Graph object; retries what is worth retrying, raises GraphError otherwise.

        ``bearer`` replaces the access token for this call (the app token of /debug_token).
        ``digest`` records the body's digest; a 2xx body with the ``known`` digest is not
        decoded (``{}`` is returned and ``digest.raw`` keeps the bytes).
        """
        attempt = 0
        waits: ThrottleWaits | None = None  # the poll's, else this request's own (on need)
        alone = False  # after a batch call failed as a whole, this GET retries on its own
        while True:
            try:
                return await self._attempt(endpoint, path, params, validate, bearer, digest,
                                           alone=alone)
            except GraphError as err:
                alone = alone or isinstance(err, BatchCallFailed)
                self._metrics.graph_errors.labels(endpoint=endpoint, code=err.code_label).inc()
                if err.kind is ErrorKind.AUTH and bearer is None:
                    self._metrics.auth_ok.set(0)
                if waits is None:
                    waits = _poll_throttle.get() or ThrottleWaits()
                delay = self._delay_for(err, attempt, waits)
                if delay is None:
                    raise
                log.info(
                    "graph_retry",
                    endpoint=endpoint,
                    kind=err.kind.value,
                    code=err.code,
                    error=err.message,
                    attempt=attempt + 1,
                    delay_seconds=round(delay, 3),
                )
                attempt += 1
                if err.kind is ErrorKind.THROTTLED:
                    await self._wait_throttled(delay, waits)
                else:
                    await self._sleep(delay)

    def _delay_for(self, err: GraphError, attempt: int, waits: ThrottleWaits) -> float | None:
        if attempt >= self._retry.max_retries:
            return None
        if err.kind in RETRYABLE:
            return self._retry.backoff(attempt, self._rng)
        if err.kind is ErrorKind.THROTTLED:
            wait = err.retry_after if err.retry_after else self._retry.backoff(attempt, self._rng)
            # The poll's in-line waits together stay within max_throttle_wait: a wait that
            # does not fit gives the poll up (the WABA is parked until the regain time).
            return wait if waits.spent + wait <= self._retry.max_throttle_wait else None
        return None

    async def _wait_throttled(self, delay: float, waits: ThrottleWaits) -> None:
        """Wait out a throttle in line, charged to the poll's allowance before it starts
        (concurrent waits of one poll cannot overspend it)."""
        waits.spent += delay
        waits.count += 1
        waits.enter()
        try:
            await self._sleep(delay)
        finally:
            waits.leave()

    async def _attempt(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str],
        validate: Validator | None,
        bearer: str | None = None,
        digest: BodyDigest | None = None,
        *,
        alone: bool = False,
    ) -> dict[str, Any]:
        query = dict(params)
        if self._proof and bearer is None:
            query["appsecret_proof"] = self._proof
        headers = self._headers if bearer is None else {"Authorization": f"Bearer {bearer}"}
        counter = _poll_requests.get()
        if counter is not None:
            counter[0] += 1
        requests = self._request_counters.get(endpoint)
        if requests is None:
            requests = self._metrics.graph_requests.labels(endpoint=endpoint)
            self._request_counters[endpoint] = requests
        requests.inc()
        reply = await self._exchange(endpoint, path, query, headers,
                                     batchable=bearer is None and not alone)
        status, raw = reply.status, reply.body
        buc = parse_buc_usage(reply.buc)
        app = self._new_app_usage(reply.app)
        retry_after_header = reply.retry_after
        self._record_usage(buc, app)
        if len(raw) > MAX_BODY_BYTES:
            raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint, http_status=status,
                             message="response body too large")
        if digest is not None and 200 <= status < 300:
            digest.seen = hashlib.blake2b(raw, digest_size=16).digest()
            if digest.seen == digest.known:
                digest.raw = raw  # the same bytes as a body that was valid: not decoded
                return {}
        body = _decode(raw)
        if not 200 <= status < 300:
            err = error_from_response(endpoint, status, body)
            if err.kind is ErrorKind.THROTTLED:
                err = _with_retry_after(err, buc, retry_after_header)
            raise err
        if not isinstance(body, dict):
            raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint, http_status=status,
                             message="response is not a JSON object")
        if validate is not None:
            try:
                validate(body)
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint, http_status=status,
                                 message=str(exc)[:200]) from None
        return body

    async def _exchange(self, endpoint: str, path: str, query: dict[str, str],
                        headers: Mapping[str, str], *, batchable: bool) -> Reply:
        """One GET's answer: inside a batch call when batching is on (and the API has not
        refused batches), else alone. Transport failures become NETWORK errors.

        One GET that hangs holds up its whole batch call. So the GETs of a batch call that
        failed as a whole retry alone, and an object whose GET then fails alone too (the
        one that hangs) is read alone until a read of it succeeds: its neighbours' polls do
        not wait on it again."""
        target = path.partition("/")[0]
        try:
            if batchable and self._batcher is not None and target not in self._solo:
                query.pop("appsecret_proof", None)  # sent once, with the batch
                try:
                    return await self._batcher.get(f"{path}?{_query_string(query)}")
                except BatchUnusable:
                    if self._proof:
                        query["appsecret_proof"] = self._proof
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise BatchCallFailed(kind=ErrorKind.NETWORK, endpoint=endpoint,
                                          message=type(exc).__name__) from None
            try:
                reply = await self._get_alone(path, query, headers)
            except (aiohttp.ClientError, TimeoutError):
                if self._batcher is not None and len(self._solo) < MAX_SOLO:
                    self._solo.add(target)
                raise
            self._solo.discard(target)
            return reply
        except (aiohttp.ClientError, TimeoutError, EntryLost) as exc:
            raise GraphError(kind=ErrorKind.NETWORK, endpoint=endpoint,
                             message=type(exc).__name__) from None

    async def _get_alone(self, path: str, query: Mapping[str, str],
                         headers: Mapping[str, str]) -> Reply:
        async with self._semaphore, self._session.get(
            self._root + path, params=query, headers=headers, timeout=self._timeout,
            allow_redirects=False,
        ) as resp:
            got = resp.headers
            return Reply(resp.status, got.get("X-Business-Use-Case-Usage"),
                         got.get("X-App-Usage"), got.get("Retry-After"),
                         await _read_body(resp.content))

    async def _send_batch(self, relative_urls: list[str]) -> Sequence[Reply | None] | Reply:
        """One batch call. Its entries, or, when the call itself failed, one reply that
        stands for every entry (each caller then handles the error as its own)."""
        form = {"batch": batch_form(relative_urls), "include_headers": "true"}
        if self._proof:
            form["appsecret_proof"] = self._proof
        async with self._semaphore, self._session.post(
            self._root, data=form_body(form), headers=self._form_headers,
            timeout=self._timeout, allow_redirects=False,
        ) as resp:
            got = resp.headers
            whole = Reply(resp.status, got.get("X-Business-Use-Case-Usage"),
                          got.get("X-App-Usage"), got.get("Retry-After"),
                          await _read_body(resp.content))
        app = self._new_app_usage(whole.app)
        if app is not None:
            self._set_app_usage(app)
        if not 200 <= whole.status < 300:
            if _refuses_batch(whole):
                self._refused_batch()
            return whole  # each caller reads its usage header as its own answer's
        entries = replies_from_body(whole.body, len(relative_urls))
        if entries is None:  # a 2xx that is not a batch answer: the API does not batch
            self._refused_batch()
        if whole.buc:
            # Whether Meta repeats X-Business-Use-Case-Usage in each entry is not
            # documented. The header is keyed by object id, so an entry without one gets
            # the batch call's: each poll keeps its own WABA's readings from it. (This task
            # runs in the context of whichever poll filled the batch: nothing is recorded
            # here for that poll.)
            if any(e is not None and e.buc is None for e in entries):
                entries = [e if e is None or e.buc is not None
                           else dataclasses.replace(e, buc=whole.buc) for e in entries]
            elif self._usage_sink is not None:
                self._usage_sink(parse_buc_usage(whole.buc))
        return entries

    def _refused_batch(self) -> NoReturn:
        """The API does not take batch calls: every GET from now on goes alone."""
        if self._batcher is not None:
            log.warning("graph_batch_refused", action="requests sent one by one from now on")
            self._batcher = None
        raise BatchUnusable

    def _new_app_usage(self, header: str | None) -> AppUsage | None:
        """The app's usage when its header differs from the last one seen, else None (the
        gauges already show it)."""
        if header is None or header == self._app_header:
            return None
        self._app_header = header
        return parse_app_usage(header)

    def _record_usage(self, buc: tuple[BucUsage, ...], app: AppUsage | None) -> None:
        usage = _poll_usage.get()
        if usage is not None:
            for entry in buc:
                usage[(entry.object_id, entry.type)] = entry
        elif buc and self._usage_sink is not None:
            self._usage_sink(buc)
        if app is not None:
            self._set_app_usage(app)

    def _set_app_usage(self, app: AppUsage) -> None:
        for measure in ("call_count", "total_cputime", "total_time"):
            self._metrics.app_usage.labels(measure=measure).set(getattr(app, measure) / 100.0)

    async def paginate(
        self, endpoint: str, path: str, params: Mapping[str, str]
    ) -> AsyncIterator[list[Any]]:
        """Yield each page's ``data`` list, following cursors until there is no ``next``."""
        for page in await self.page_list(endpoint, path, params):
            yield page.rows()

    async def page_list(
        self, endpoint: str, path: str, params: Mapping[str, str],
        known: Sequence[tuple[bytes, str | None]] = (),
    ) -> list[Page]:
        """Every page with its body's digest, following cursors until there is no ``next``.

        ``known`` is what the same request chain returned last time, page by page: (digest,
        next cursor). A page whose bytes are the same is not decoded; its cursor is the one
        it had (same bytes, same cursor), so a listing that did not change costs no JSON.
        A coroutine, not an async generator: a poll runs 167 times a second at 50,000
        numbers, and each generator cost the event loop's bookkeeping (a weak set entry and
        its finalizer) for nothing.
        """
        found: list[Page] = []
        seen: set[str] = set()
        after: str | None = None
        for index in range(MAX_PAGES):
            query = dict(params)
            if after is not None:
                query["after"] = after
            last = known[index] if index < len(known) else None
            digest = BodyDigest(known=last[0] if last else None)
            body = await self.get(endpoint, path, query, validate=_validate_page, digest=digest)
            if digest.raw is not None and last is not None:
                after = last[1]
                found.append(Page(digest=digest.known or b"", after=after, raw=digest.raw))
            else:
                after = _next_cursor(endpoint, body)
                found.append(Page(digest=digest.seen or b"", after=after, data=body["data"]))
            if after is None:
                return found
            if after in seen:
                self._metrics.graph_errors.labels(endpoint=endpoint, code="cursor_loop").inc()
                raise GraphError(kind=ErrorKind.CURSOR_LOOP, endpoint=endpoint,
                                 message="the API returned a cursor it had returned before")
            seen.add(after)
        raise GraphError(kind=ErrorKind.CURSOR_LOOP, endpoint=endpoint,
                         message=f"more than {MAX_PAGES} pages")


@dataclass(eq=False)
class BatchCallFailed(GraphError):
    """The batch call that carried a GET failed as a whole (transport or timeout)."""


@dataclass(slots=True)
class BodyDigest:
    """Asks one read for its body's digest (``seen``), and not to decode a body whose digest
    is ``known``: then the read returns ``{}`` and ``raw`` holds the bytes."""

    known: bytes | None = None
    seen: bytes | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: its digest, its next cursor, and its rows (decoded, or the raw
    bytes of a page that was the same as last time, decoded only if asked)."""

    digest: bytes
    after: str | None
    data: list[Any] | None = None
    raw: bytes | None = None

    @property
    def unchanged(self) -> bool:
        return self.data is None

    def rows(self) -> list[Any]:
        if self.data is not None:
            return self.data
        body = _decode(self.raw or b"")
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, list) else []


async def _read_body(stream: aiohttp.StreamReader) -> bytes:
    """The whole body, but never more than MAX_BODY_BYTES + 1 bytes of it in memory."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = await stream.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@functools.lru_cache(maxsize=1024)
def _quoted(value: str) -> str:
    """A query value, percent-encoded; the same few (the fields list, the limit) come back
    on every poll, and quoting the fields list character by character was 10 % of the
    daemon's CPU at 10,000 WABAs."""
    return quote_plus(value, safe="")


def _query_string(query: Mapping[str, str]) -> str:
    """``urlencode(query)``, with each value's encoding remembered."""
    return "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in query.items())


def _refuses_batch(reply: Reply) -> bool:
    """A batch call's own error that is about batching, not about the token or the rate
    (invalid parameter or unknown path: code 100 or an HTTP 404/405)."""
    if reply.status in (404, 405):
        return True
    body = _decode(reply.body)
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == 100


def _decode(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return orjson.loads(raw)  # same types as json.loads, several times faster
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None


def _validate_page(body: Mapping[str, Any]) -> None:
    if not isinstance(body.get("data"), list):
        raise ValueError("page has no 'data' list")
    paging = body.get("paging")
    if paging is not None and not isinstance(paging, Mapping):
        raise ValueError("'paging' is not an object")


def _next_cursor(endpoint: str, body: Mapping[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, Mapping) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    if isinstance(cursors, Mapping) and isinstance(cursors.get("after"), str):
        after: str = cursors["after"]
        return after
    nxt = paging.get("next")
    if isinstance(nxt, str):
        values = parse_qs(urlsplit(nxt).query).get("after")
        if values:
            return values[0]
    raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint,
                     message="'next' page without an 'after' cursor")


MAX_REGAIN_WAIT = 3600.0  # a bogus "regain in 10^9 minutes" must not park a WABA for good


def _with_retry_after(err: GraphError, buc: tuple[BucUsage, ...], header: str | None) -> GraphError:
    wait = max((entry.regain_access_seconds for entry in buc), default=0.0)
    if not wait and header:
        try:
            wait = float(header)
        except (ValueError, OverflowError):
            wait = 0.0
    if not math.isfinite(wait) or wait < 0:
        wait = 0.0
    wait = min(wait, MAX_REGAIN_WAIT)
    return dataclasses.replace(err, retry_after=wait) if wait else err
