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

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
QUALITY_FIELD = "phone_number_quality_update"
NAME_FIELD = "phone_number_name_update"
CAPABILITY_FIELD = "business_capability_update"
# Number fields whose changes Meta announces by webhook.
WATCHED_NUMBER_FIELDS = ("status", "quality_rating", "name_status")
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
    """One change waiting to be sent: field, the WABA it belongs to, and its ``value``."""

    field: str
    waba_id: str
    value: Mapping[str, Any]


def signature(body: bytes, app_secret: str) -> str:
    """``X-Hub-Signature-256`` as Meta computes it: HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(waba_id: str, field: str, value: Mapping[str, Any], time: int) -> dict[str, Any]:
    """The notification body Meta sends for one change of one WABA."""
    change = {"value": dict(value), "field": field}
    return {"object": WABA_OBJECT, "entry": [{"id": waba_id, "time": time, "changes": [change]}]}


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
    """The legacy ``phone_number_quality_update`` event that best describes a change, if any."""
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


def number_change_webhooks(
    waba_id: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[PendingWebhook]:
    """Webhooks Meta would send when a number's watched fields go from ``old`` to ``new``."""
    out: list[PendingWebhook] = []
    display = new.get("display_phone_number") or old.get("display_phone_number")
    number = {"display_phone_number": webhook_digits(display)} if isinstance(display, str) else {}
    event = quality_event(
        old.get("status"), new.get("status"), old.get("quality_rating"), new.get("quality_rating")
    )
    if event is not None:
        value: dict[str, Any] = {**number, "event": event}
        limit = new.get("whatsapp_business_manager_messaging_limit") or new.get(
            "messaging_limit_tier"
        )
        if isinstance(limit, str):
            value["current_limit"] = limit
        out.append(PendingWebhook(QUALITY_FIELD, waba_id, value))
    name_status = new.get("name_status")
    if name_status is not None and name_status != old.get("name_status"):
        decision = name_decision(name_status)
        out.append(
            PendingWebhook(
                NAME_FIELD,
                waba_id,
                {
                    **number,
                    "decision": decision,
                    "requested_verified_name": new.get("verified_name"),
                    "rejection_reason": "UNKNOWN" if decision == "REJECTED" else None,
                },
            )
        )
    return out


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

    def dispatch(self) -> int:
        """Queue whatever the World has noticed since the last call; returns how many."""
        pending = self._world.collect_webhooks()
        if pending:
            queue = self._start_worker()
            for item in pending:
                queue.put_nowait(item)
        return len(pending)

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
            payload = envelope(item.waba_id, item.field, item.value, int(self._world.clock()))
            try:
                status = await send_webhook(self._client(), target.url, target.app_secret, payload)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                error = type(exc).__name__
        record = self._world.record_webhook(item.field, item.waba_id, status, error)
        outcome = status if error is None else error
        log.info("webhook %s for WABA %s: %s", item.field, item.waba_id, outcome)
        return record

    async def drain(self) -> None:
        """Wait until every queued webhook has been delivered (or failed)."""
        self.dispatch()
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        """Stop the worker (pending sends are dropped) and close the client session."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._queue = None
        if self._session is not None:
            await self._session.close()
            self._session = None
