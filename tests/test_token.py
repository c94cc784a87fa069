"""Token health from /debug_token: expiry, permissions, absent when unknown, secrets kept."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from structlog.testing import capture_logs

from monitor.graph.client import GraphClient, RetryPolicy
from monitor.selfmetrics import create_self_metrics
from monitor.token import check_token

USER_TOKEN = "EAAB-user-token-123456"
APP_ID = "900000000000001"
APP_SECRET = "app-secret-abcdef123456"


async def fake_graph(aiohttp_server: Any, data: dict[str, Any], status: int = 200) -> tuple[
        str, list[web.Request]]:
    seen: list[web.Request] = []

    async def debug(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"data": data} if status == 200 else
                                 {"error": {"code": 2, "message": "down"}}, status=status)

    app = web.Application()
    app.router.add_get("/v24.0/debug_token", debug)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen


async def run_check(url: str) -> tuple[Any, Any]:
    metrics = create_self_metrics(process_metrics=False)
    async with aiohttp.ClientSession() as session:
        client = GraphClient(session, base_url=url, api_version="v24.0", access_token=USER_TOKEN,
                             app_secret=APP_SECRET, metrics=metrics,
                             retry=RetryPolicy(max_retries=0))
        with capture_logs() as logs:
            info = await check_token(client, access_token=USER_TOKEN, app_id=APP_ID,
                                     app_secret=APP_SECRET, metrics=metrics)
    assert USER_TOKEN not in repr(logs) and APP_SECRET not in repr(logs)
    return info, metrics.registry


async def test_expiry_and_permissions_are_exported(aiohttp_server: Any) -> None:
    url, seen = await fake_graph(aiohttp_server, {
        "is_valid": True, "type": "USER", "expires_at": 1_800_000_000,
        "data_access_expires_at": 1_900_000_000,
        "scopes": ["whatsapp_business_management", "business_management"]})
    info, registry = await run_check(url)
    assert info.expires_at == 1_800_000_000
    assert registry.get_sample_value(
        "whatsapp_monitor_access_token_expiry_timestamp_seconds") == 1_800_000_000
    assert registry.get_sample_value("whatsapp_monitor_access_token_valid") == 1
    assert registry.get_sample_value("whatsapp_monitor_access_token_permission",
                                     {"permission": "whatsapp_business_management"}) == 1
    assert registry.get_sample_value("whatsapp_monitor_access_token_permission",
                                     {"permission": "whatsapp_business_messaging"}) == 0
    (request,) = seen
    assert request.query["input_token"] == USER_TOKEN
    assert request.headers["Authorization"] == f"Bearer {APP_ID}|{APP_SECRET}"
    assert "appsecret_proof" not in request.query


async def test_a_token_that_never_expires_has_no_expiry_series(aiohttp_server: Any) -> None:
    url, _ = await fake_graph(aiohttp_server, {"is_valid": True, "expires_at": 0,
                                               "data_access_expires_at": 0, "scopes": []})
    info, registry = await run_check(url)
    assert info.expires_at is None
    assert registry.get_sample_value(
        "whatsapp_monitor_access_token_expiry_timestamp_seconds") is None
    assert registry.get_sample_value("whatsapp_monitor_access_token_permission",
                                     {"permission": "whatsapp_business_management"}) == 0


async def test_failed_check_changes_nothing(aiohttp_server: Any) -> None:
    url, _ = await fake_graph(aiohttp_server, {}, status=500)
    info, registry = await run_check(url)
    assert info is None
    assert registry.get_sample_value("whatsapp_monitor_access_token_valid") is None
    assert registry.get_sample_value("whatsapp_monitor_graph_auth_ok") == 1


async def test_every_graph_call_carries_appsecret_proof(aiohttp_server: Any) -> None:
    import hashlib
    import hmac

    seen: list[web.Request] = []

    async def edge(request: web.Request) -> web.Response:
        seen.append(request)
        if "after" in request.query:
            return web.json_response({"data": [{"id": "2"}]})
        return web.json_response({"data": [{"id": "1"}], "paging": {
            "cursors": {"after": "c1"}, "next": "https://graph/next?after=c1"}})

    app = web.Application()
    app.router.add_get("/v24.0/{waba}/phone_numbers", edge)
    server = await aiohttp_server(app)
    metrics = create_self_metrics(process_metrics=False)
    async with aiohttp.ClientSession() as session:
        client = GraphClient(session, base_url=str(server.make_url("")), api_version="v24.0",
                             access_token=USER_TOKEN, app_secret=APP_SECRET, metrics=metrics)
        pages = [page async for page in client.paginate("phone_numbers", "9/phone_numbers", {})]
    assert pages == [[{"id": "1"}], [{"id": "2"}]]
    expected = hmac.new(APP_SECRET.encode(), USER_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert [r.query.get("appsecret_proof") for r in seen] == [expected, expected]
    assert all(r.headers["Authorization"] == f"Bearer {USER_TOKEN}" for r in seen)
    assert all("access_token" not in r.query for r in seen)
