"""The shipped forwarding example: a backend forwards what is not traffic, the daemon takes it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from monitor.webhooks.envelope import sign
from tests.fakesink import DISPLAY, WABA

EXAMPLE = Path(__file__).parent.parent / "deploy" / "examples" / "forward_webhooks.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forward_webhooks", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def body(field: str, value: dict[str, Any]) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": WABA, "time": 1, "changes": [{"field": field, "value": value}]}]}).encode()


async def test_the_example_forwards_account_fields_unchanged_and_keeps_traffic(
        aiohttp_server: Any) -> None:
    from aiohttp import web

    got: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((await request.read(), request.headers["X-Hub-Signature-256"]))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", hook)
    server = await aiohttp_server(app)
    url = str(server.make_url("/webhooks/whatsapp"))
    forward = example().forward_if_not_traffic
    account = body("security", {"display_phone_number": DISPLAY, "event": "PIN_CHANGED"})
    traffic = body("messages", {"messages": [{"id": "wamid.1"}]})
    status = await asyncio.to_thread(forward, account, sign(account, "s3cret"), url)
    assert status == 200
    assert await asyncio.to_thread(forward, traffic, sign(traffic, "s3cret"), url) is None
    assert got == [(account, sign(account, "s3cret"))]  # body and signature unchanged


def test_the_example_drops_exactly_what_the_receiver_drops() -> None:
    from monitor.webhooks.receiver import TRAFFIC_FIELDS

    assert example().TRAFFIC_FIELDS == TRAFFIC_FIELDS  # a standalone copy: kept in step
