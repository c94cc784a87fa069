"""Number settings (identity change check): spread out, paced, and harmless when unreadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.config import load_settings
from monitor.daemon import Monitor
from monitor.graph.client import GraphClient, RetryPolicy
from monitor.model import PhoneNumber, WabaState
from monitor.selfmetrics import SelfMetrics, create_self_metrics
from monitor.settings_reads import SettingsReads
from monitor.store import Store
from tests.conftest import TOKEN, write_config


async def fake_graph(aiohttp_server: Any, answers: dict[str, tuple[int, dict[str, Any]]]) -> tuple[
        str, list[str]]:
    seen: list[str] = []

    async def settings(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        seen.append(number)
        status, body = answers[number]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/v24.0/{number}/settings", settings)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen


def monitor_for(tmp_path: Path, url: str, session: aiohttp.ClientSession,
                metrics: SelfMetrics) -> Monitor:
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": url}, "businesses": [{"id": "1", "wabas": ["2", "5"]}],
        "schedule": {"settings_interval": "1h"}}), environ={})
    client = GraphClient(session, base_url=url, api_version="v24.0", access_token=TOKEN,
                         metrics=metrics, retry=RetryPolicy(max_retries=0))
    monitor = Monitor(settings, client, Store(), metrics)
    monitor.sync()
    monitor.store.put_waba(WabaState("1", "2", numbers=(PhoneNumber("31"), PhoneNumber("32")),
                                     up=True, polled=True))
    monitor.store.put_waba(WabaState("1", "5", numbers=(PhoneNumber("51"),), up=True,
                                     polled=True))
    return monitor


def unreadable_count(metrics: SelfMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "whatsapp_monitor_optional_read_failures_total", {"read": "settings", "reason": reason})
    return value or 0.0


async def test_each_number_is_read_once_per_interval_and_unreadable_ones_stop(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    url, seen = await fake_graph(aiohttp_server, {
        "31": (200, {"user_identity_change": {"enable_identity_key_check": True}}),
        "32": (400, {"error": {"code": 100, "message": "Unsupported get request.",
                               "type": "GraphMethodException"}}),
        "51": (200, {"user_identity_change": {"enable_identity_key_check": False}}),
    })
    metrics = create_self_metrics(process_metrics=False)
    now = [1_000.0]
    async with aiohttp.ClientSession() as session:
        monitor = monitor_for(tmp_path, url, session, metrics)
        reads = SettingsReads(monitor, clock=lambda: now[0])
        for _ in range(6):  # more turns than numbers: none is read twice within the hour
            due = reads._next(now[0])
            if due is not None:
                await reads.read_one(*due)
        assert sorted(seen) == ["31", "32", "51"]
        assert dict(monitor.store.number_settings("2")) == {"31": True}
        assert dict(monitor.store.number_settings("5")) == {"51": False}
        assert reads.unreadable == {"32"} and unreadable_count(metrics, "100") == 1
        text = monitor.store.body().text.decode()
        assert ('whatsapp_phone_number_identity_key_check_enabled{business_id="1",waba_id="2",'
                'phone_number_id="31"} 1') in text
        assert 'phone_number_id="32"} ' not in text.split(
            "whatsapp_phone_number_identity_key_check_enabled", 1)[1].split("# HELP")[0]
        now[0] += 3_601  # an hour later all are due again, except the unreadable one
        seen.clear()
        for _ in range(6):
            due = reads._next(now[0])
            if due is not None:
                await reads.read_one(*due)
        assert sorted(seen) == ["31", "51"]
        reads.reset()  # a reload tries it again
        assert reads._next(now[0]) == ("2", "32")


async def test_a_throttled_waba_waits_its_turn(aiohttp_server: Any, tmp_path: Path) -> None:
    url, _ = await fake_graph(aiohttp_server, {})
    metrics = create_self_metrics(process_metrics=False)
    async with aiohttp.ClientSession() as session:
        monitor = monitor_for(tmp_path, url, session, metrics)
        reads = SettingsReads(monitor, clock=lambda: 1_000.0)
        monitor.not_before["2"] = 2_000.0  # WABA 2 is throttled
        assert reads._next(1_000.0) == ("5", "51")  # only the other WABA's number is read
        assert reads._next(1_000.0) is None
        assert {reads._next(2_001.0), reads._next(2_001.0)} == {("2", "31"), ("2", "32")}
