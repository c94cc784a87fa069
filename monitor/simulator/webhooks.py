"""Meta-style webhooks sent by the simulator: envelopes, signatures, and background delivery.

The World notices changes (control API edits, timeline steps) and queues them; the sender
delivers them from one background worker, in order, so no Graph request or control call ever
waits for a receiver. The signature is computed here independently of the exporter's
``monitor.webhooks`` so that a test of one against the other is a real cross-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from .account_webhooks import NAME_FIELD, QUALITY_FIELD, throughput_event
from .number_webhooks import DEFAULT_REJECTION, name_update

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
# Number fields whose changes the simulator announces by webhook (status and quality_rating
# only in legacy mode, see ``number_change_webhooks``).
WATCHED_NUMBER_FIELDS = ("status", "quality_rating", "name_status", "throughput")
SEND_TIMEOUT = 10.0
_QUALITY_RANK = {"GREEN": 0, "YELLOW": 1, "RED": 2}
_NAME_DECISIONS = {
    "APPROVED": "APPROVED",
    "AVAILABLE_WITHOUT_REVIEW": "APPROVED",
    "DECLINED": "REJECTED",
    "REJECTED": "REJECTED",
    "PENDING_REVIEW": "PENDING",
    "PENDING": "PENDING",
    "DEFERRED": "DEFERRED",
}


@dataclass(frozen=True, slots=True)
class PendingWebhook:
    """One change waiting to be sent: field, the WABA it belongs to, and its ``value``.

    ``entry_id`` is ``entry[].id`` when it is not the WABA (the partner's portfolio on
    PARTNER_* events, facts §2.2).
    """

    field: str
    waba_id: str
    value: Mapping[str, Any]
    entry_id: str | None = None
    # Message traffic follows callback overrides: ``url`` replaces the target's URL (same
    # secret) and ``route`` names the level that chose it (wiring.message_route).
    url: str | None = None
    route: str | None = None
    # Above 1: sent by that many concurrent workers, unordered (message bursts, as Meta
    # delivers concurrently); otherwise in order by the one ordered worker.
    concurrency: int = 1


def signature(body: bytes, app_secret: str) -> str:
    """``X-Hub-Signature-256`` as Meta computes it: HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(
    entry_id: str, field: str, value: Mapping[str, Any], time: int | str
) -> dict[str, Any]:
    """The notification body Meta sends for one change; ``time`` is an int, or a digit
    string when a scenario asks for the quoted form some Meta pages show (facts §2.1)."""
    change = {"value": dict(value), "field": field}
    return {"object": WABA_OBJECT, "entry": [{"id": entry_id, "time": time, "changes": [change]}]}


async def send_webhook(
    session: aiohttp.ClientSession, url: str, app_secret: str, payload: Mapping[str, Any]
) -> int:
    """POST ``payload`` as JSON with a correct signature; returns the HTTP status."""
    body = json.dumps(dict(payload), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, app_secret)}
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
        await resp.read()
        return resp.status


def webhook_digits(display_phone_number: str) -> str:
    """Webhooks carry the display number as bare digits (``15550783881``)."""
    return re.sub(r"\D", "", display_phone_number)


def quality_event(
    old_status: object, new_status: object, old_quality: object, new_quality: object
) -> str | None:
    """The legacy (pre-Oct-2025) ``phone_number_quality_update`` event for a change, if any.

    Meta no longer sends these (facts §2.7); only ``legacy=True`` worlds use them.
    """
    if old_status != new_status:
        if new_status == "FLAGGED":
            return "FLAGGED"
        if old_status == "FLAGGED" and new_status == "CONNECTED":
            return "UNFLAGGED"
        return "UPGRADE" if new_status == "CONNECTED" else "DOWNGRADE"
    if old_quality != new_quality:
        worse = _QUALITY_RANK.get(str(new_quality), 0) > _QUALITY_RANK.get(str(old_quality), 0)
        return "FLAGGED" if worse else "UNFLAGGED"
    return None


def name_decision(name_status: object) -> str:
    """``phone_number_name_update.decision`` for a Graph ``name_status`` (unknown: as is)."""
    return _NAME_DECISIONS.get(str(name_status), str(name_status))


def _level(throughput: object) -> object:
    return throughput.get("level") if isinstance(throughput, Mapping) else throughput


def number_change_webhooks(
    waba_id: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    legacy: bool = True,
    portfolio_limit: str | None = None,
) -> list[PendingWebhook]:
    """Webhooks for a number whose watched fields go from ``old`` to ``new``.

    Current model (facts §2.7): a move to HIGH throughput sends THROUGHPUT_UPGRADE with the
    portfolio limit; a display-name decision sends ``phone_number_name_update``. With
    ``legacy`` the retired FLAGGED/UNFLAGGED/UPGRADE/DOWNGRADE events also follow status and
    quality-rating edits (kept because product tests still trigger webhooks that way).
    """
    out: list[PendingWebhook] = []
    display = new.get("display_phone_number") or old.get("display_phone_number")
    digits = webhook_digits(display) if isinstance(display, str) else None
    number = {"display_phone_number": digits} if digits is not None else {}
    if legacy:
        event = quality_event(
            old.get("status"),
            new.get("status"),
            old.get("quality_rating"),
            new.get("quality_rating"),
        )
        if event is not None:
            value: dict[str, Any] = {**number, "event": event}
            limit = new.get("whatsapp_business_manager_messaging_limit") or new.get(
                "messaging_limit_tier"
            )
            if isinstance(limit, str):
                value["current_limit"] = limit
            out.append(PendingWebhook(QUALITY_FIELD, waba_id, value))
    if _level(new.get("throughput")) == "HIGH" and _level(old.get("throughput")) != "HIGH":
        upgrade = throughput_event(
            digits or "",
            "THROUGHPUT_UPGRADE",
            portfolio_limit=portfolio_limit,
            current_limit=portfolio_limit,
        )
        out.append(PendingWebhook(QUALITY_FIELD, waba_id, upgrade))
    name_status = new.get("name_status")
    if name_status is not None and name_status != old.get("name_status"):
        value = name_update(
            digits or "", name_decision(name_status), new.get("verified_name"), DEFAULT_REJECTION
        )
        if digits is None:
            del value["display_phone_number"]
        out.append(PendingWebhook(NAME_FIELD, waba_id, value))
    return out


def onboarding_webhook(
    waba_id: str, display: object, portfolio_limit: str | None
) -> PendingWebhook:
    """ONBOARDING for a newly added number, shaped like Meta's dashboard test payload (§2.7)."""
    digits = webhook_digits(display) if isinstance(display, str) else ""
    value = throughput_event(
        digits,
        "ONBOARDING",
        portfolio_limit=portfolio_limit,
        current_limit=portfolio_limit,
        old_limit="TIER_NOT_SET",
    )
    return PendingWebhook(QUALITY_FIELD, waba_id, value)


class WebhookSender:
    """Delivers the World's queued webhooks from one background task and records each result.

    The worker task and the client session are created on first use (they need the running
    loop) and kept here, so the task is strongly referenced until ``close``.
    """

    def __init__(self, world: World, *, timeout: float = SEND_TIMEOUT) -> None:
        self._world = world
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[PendingWebhook] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._burst: asyncio.Queue[PendingWebhook] | None = None
        self._burst_workers: list[asyncio.Task[None]] = []

    def dispatch(self) -> int:
        """Queue whatever the World has noticed since the last call; returns how many."""
        pending = self._world.collect_webhooks()
        for item in pending:
            if item.concurrency > 1:
                self._start_burst_workers(item.concurrency).put_nowait(item)
            else:
                self._start_worker().put_nowait(item)
        return len(pending)

    def _start_burst_workers(self, count: int) -> asyncio.Queue[PendingWebhook]:
        if self._burst is None:
            self._burst = asyncio.Queue()
        self._burst_workers = [w for w in self._burst_workers if not w.done()]
        loop = asyncio.get_running_loop()
        while len(self._burst_workers) < count:
            self._burst_workers.append(loop.create_task(self._work(self._burst)))
        return self._burst

    def _start_worker(self) -> asyncio.Queue[PendingWebhook]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(self._queue))
        return self._queue

    async def _work(self, queue: asyncio.Queue[PendingWebhook]) -> None:
        while True:
            item = await queue.get()
            try:
                await self.deliver(item)
            except Exception:  # deliver records failures; this is only a safety net
                log.exception("webhook delivery failed unexpectedly")
            finally:
                queue.task_done()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def deliver(self, item: PendingWebhook) -> dict[str, Any]:
        """Send one change now; the record (never the secret) goes to ``World.webhooks_sent``."""
        target = self._world.webhook_target
        status: int | None = None
        error: str | None = None
        if target is None:
            error = "no webhook target set"
        else:
            now = int(self._world.clock())
            time: int | str = str(now) if self._world.webhook_time_as_string else now
            payload = envelope(item.entry_id or item.waba_id, item.field, item.value, time)
            url = item.url or target.url
            try:
                status = await send_webhook(self._client(), url, target.app_secret, payload)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                error = type(exc).__name__
        record = self._world.record_webhook(item.field, item.waba_id, status, error, item.route)
        outcome = status if error is None else error
        log.info("webhook %s for WABA %s: %s", item.field, item.waba_id, outcome)
        return record

    async def drain(self) -> None:
        """Wait until every queued webhook has been delivered (or failed)."""
        self.dispatch()
        if self._queue is not None:
            await self._queue.join()
        if self._burst is not None:
            await self._burst.join()

    async def close(self) -> None:
        """Stop the worker (pending sends are dropped) and close the client session."""
        for worker in [self._worker, *self._burst_workers]:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        self._worker = None
        self._burst_workers = []
        self._queue = None
        self._burst = None
        if self._session is not None:
            await self._session.close()
            self._session = None
