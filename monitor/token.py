"""Token health from ``GET /debug_token``: when it expires and what it may do.

The call needs an app access token (``app_id|app_secret``), so it runs only when both are
configured. Without it, an expired token still shows as ``whatsapp_monitor_graph_auth_ok 0``
at the next poll; with it, the expiry is visible days before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from monitor.graph.client import GraphClient
from monitor.graph.errors import GraphError
from monitor.lifecycle import background
from monitor.selfmetrics import TOKEN_PERMISSIONS, SelfMetrics

log = structlog.get_logger("monitor.token")
REQUIRED_PERMISSION = "whatsapp_business_management"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    is_valid: bool
    expires_at: float | None  # None: never expires
    data_access_expires_at: float | None
    scopes: frozenset[str]
    type: str | None


def _timestamp(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        stamp = float(value)
    except OverflowError:
        return None
    return stamp if math.isfinite(stamp) else None


def parse_debug_token(body: Mapping[str, Any]) -> TokenInfo:
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise ValueError("debug_token answer has no 'data' object")
    scopes = data.get("scopes")
    kind = data.get("type")
    return TokenInfo(
        is_valid=data.get("is_valid") is True,
        expires_at=_timestamp(data.get("expires_at")),
        data_access_expires_at=_timestamp(data.get("data_access_expires_at")),
        scopes=frozenset(s for s in scopes if isinstance(s, str))
        if isinstance(scopes, list) else frozenset(),
        type=kind if isinstance(kind, str) else None,
    )


def _validate(body: Mapping[str, Any]) -> None:
    parse_debug_token(body)


def export(info: TokenInfo, metrics: SelfMetrics) -> None:
    metrics.token_valid.set(1 if info.is_valid else 0)
    metrics.token_last_check.set(time.time())
    metrics.token_expiry.set(info.expires_at)
    metrics.token_data_access_expiry.set(info.data_access_expires_at)
    for permission in TOKEN_PERMISSIONS:
        metrics.token_permission.labels(permission=permission).set(
            1 if permission in info.scopes else 0)


async def check_token(client: GraphClient, *, access_token: str, app_id: str,
                      app_secret: str, metrics: SelfMetrics) -> TokenInfo | None:
    """Read and export token health; None (and a log line) when /debug_token failed."""
    try:
        body = await client.get("debug_token", "debug_token", {"input_token": access_token},
                                validate=_validate, bearer=f"{app_id}|{app_secret}")
    except GraphError as err:
        log.warning("token_check_failed", kind=err.kind.value, code=err.code)
        return None
    info = parse_debug_token(body)
    export(info, metrics)
    level = log.info if info.is_valid and REQUIRED_PERMISSION in info.scopes else log.warning
    level("token_checked", valid=info.is_valid, type=info.type, expires_at=info.expires_at,
          data_access_expires_at=info.data_access_expires_at,
          has_required_permission=REQUIRED_PERMISSION in info.scopes)
    return info


@dataclass(frozen=True, slots=True)
class TokenCheckPlan:
    """What to check and how often; a reload hands over a new plan."""

    client: GraphClient
    access_token: str
    app_id: str
    app_secret: str
    interval: float


class TokenChecks:
    """Reads /debug_token on its own cadence while there is a plan; a background duty with a
    start/stop lifecycle (``running``), re-planned on reload without a restart."""

    def __init__(self, metrics: SelfMetrics) -> None:
        self._metrics = metrics
        self._plan: TokenCheckPlan | None = None
        self._changed = asyncio.Event()

    def plan(self, plan: TokenCheckPlan | None) -> None:
        """Check with this plan from now on (at once), or stop checking (None)."""
        if plan is None and self._plan is not None:
            log.info("token_check_disabled", reason="graph.app_id and the app secret are "
                     "needed to read the token's expiry from /debug_token")
        self._plan = plan
        self._changed.set()

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            plan = self._plan
            if plan is not None:
                try:
                    await check_token(plan.client, access_token=plan.access_token,
                                      app_id=plan.app_id, app_secret=plan.app_secret,
                                      metrics=self._metrics)
                except Exception:  # a bug here must not end the checks for good
                    log.exception("token_check_crashed")
            wait = plan.interval if plan is not None else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Checks run while this context is open (the duty's lifecycle)."""
        return background(self._loop)
