"""The naive baseline: the exporter a newcomer would write first, kept honest for comparison.

``python -m benchmarks.baseline --config cfg.yaml --url-file PATH [--max-wabas K]``

What it does, literally:

* reads the same YAML as the daemon (``graph.base_url``, ``graph.api_version``, the businesses
  and their ``wabas``) and the token from ``WABA_MONITOR_ACCESS_TOKEN``;
* polls **sequentially**, one request at a time: for each WABA it pages
  ``GET /{WABA_ID}/phone_numbers`` with the default fields (following ``paging.next``), then for
  every number makes three single-field reads, ``GET /{PHONE_NUMBER_ID}?fields=status``,
  ``?fields=throughput`` and ``?fields=name_status``;
* keeps the values in ``prometheus_client`` Gauges in the default registry, set in place, and
  serves them with the stock ``prometheus_client.aiohttp.make_aiohttp_handler`` (so every scrape
  runs ``generate_latest`` over every series, and aiohttp gzips the body when asked).

No sleeps, no artificial slowness: the one cost it carries is its design. The gauges use the
daemon's metric names and StateSet layout (every known value 0/1, plus an observed one), so a
scrape of either exporter holding the same data returns the same per-number series.

Benchmark hooks (not part of the "design"): ``GET /bench/status`` reports the poll's wall and
CPU times (taken in-process with ``time.time()`` / ``time.process_time()``) and request count;
``--max-wabas K`` polls only the first K WABAs (a sample, for extrapolation); ``POST
/bench/populate`` clears the gauges and refills them for **every** WABA from one list pass with
all fields (16 list requests in flight), so that scrapes can be measured at full fleet size
without waiting hours for the sequential poll. Scrape cost depends only on what the gauges
hold, not on how it was fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client import REGISTRY, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.model import (
    KNOWN_CODE_VERIFICATION_STATUS,
    KNOWN_HEALTH,
    KNOWN_MESSAGING_LIMIT,
    KNOWN_NAME_STATUS,
    KNOWN_QUALITY_RATING,
    KNOWN_STATUS,
    KNOWN_THROUGHPUT_LEVEL,
    MESSAGING_LIMIT_PER_DAY,
    PHONE_NUMBER_FIELDS,
)

BASE = ["business_id", "waba_id", "phone_number_id"]
PER_NUMBER_FIELDS = ("status", "throughput", "name_status")
POPULATE_CONCURRENCY = 16

# --------------------------------------------------------------------------- the gauges

INFO = Gauge("whatsapp_phone_number_info", "Always 1; descriptive facts about a phone number.",
             [*BASE, "display_phone_number", "verified_name", "platform_type", "account_mode"])
STATUS = Gauge("whatsapp_phone_number_status", "Operating status (StateSet).", [*BASE, "status"])
CONNECTED = Gauge("whatsapp_phone_number_connected", "1 when status is CONNECTED.", BASE)
QUALITY = Gauge("whatsapp_phone_number_quality_rating", "Quality rating (StateSet).",
                [*BASE, "rating"])
NAME_STATUS = Gauge("whatsapp_phone_number_name_status", "Display-name status (StateSet).",
                    [*BASE, "name_status"])
THROUGHPUT = Gauge("whatsapp_phone_number_throughput_level", "Throughput level (StateSet).",
                   [*BASE, "level"])
CODE_VERIFICATION = Gauge("whatsapp_phone_number_code_verification_status",
                          "Code verification status (StateSet).",
                          [*BASE, "code_verification_status"])
HEALTH = Gauge("whatsapp_phone_number_health_status", "health_status.can_send_message (StateSet).",
               [*BASE, "can_send_message"])
TIER = Gauge("whatsapp_phone_number_messaging_limit_tier", "Messaging limit tier (StateSet).",
             [*BASE, "tier"])
PER_DAY = Gauge("whatsapp_phone_number_messaging_limit_per_day",
                "Conversations per 24 h allowed by the tier.", BASE)
REGISTERED = Gauge("whatsapp_phone_number_registered", "1 when platform_type is not "
                   "NOT_APPLICABLE.", BASE)
OBA = Gauge("whatsapp_phone_number_official_business_account",
            "1 for an Official Business Account.", BASE)
ALL_GAUGES = (INFO, STATUS, CONNECTED, QUALITY, NAME_STATUS, THROUGHPUT, CODE_VERIFICATION,
              HEALTH, TIER, PER_DAY, REGISTERED, OBA)


def _text(value: Any) -> str | None:
    if isinstance(value, Mapping):  # throughput {"level": ...}, health_status {...}
        value = value.get("level", value.get("can_send_message"))
    return None if value is None else str(value)


def _stateset(gauge: Gauge, base: tuple[str, str, str], value: str | None,
              known: tuple[str, ...]) -> None:
    if value is None:
        return
    for candidate in known:
        gauge.labels(*base, candidate).set(1 if candidate == value else 0)
    if value not in known:
        gauge.labels(*base, value).set(1)


def export(business_id: str, waba_id: str, number: Mapping[str, Any]) -> None:
    """Set the gauges for whatever fields ``number`` carries (absent fields are left alone)."""
    base = (business_id, waba_id, str(number["id"]))
    if "display_phone_number" in number or "verified_name" in number:
        INFO.labels(*base, number.get("display_phone_number") or "",
                    number.get("verified_name") or "", number.get("platform_type") or "",
                    number.get("account_mode") or "").set(1)
    status = _text(number.get("status"))
    _stateset(STATUS, base, status, KNOWN_STATUS)
    if status is not None:
        CONNECTED.labels(*base).set(1 if status == "CONNECTED" else 0)
    _stateset(QUALITY, base, _text(number.get("quality_rating")), KNOWN_QUALITY_RATING)
    _stateset(NAME_STATUS, base, _text(number.get("name_status")), KNOWN_NAME_STATUS)
    _stateset(THROUGHPUT, base, _text(number.get("throughput")), KNOWN_THROUGHPUT_LEVEL)
    _stateset(CODE_VERIFICATION, base, _text(number.get("code_verification_status")),
              KNOWN_CODE_VERIFICATION_STATUS)
    health = number.get("health_status")
    if isinstance(health, Mapping):
        _stateset(HEALTH, base, _text(health.get("can_send_message")), KNOWN_HEALTH)
    tier = _text(number.get("whatsapp_business_manager_messaging_limit")
                 or number.get("messaging_limit_tier"))
    _stateset(TIER, base, tier, KNOWN_MESSAGING_LIMIT)
    per_day = MESSAGING_LIMIT_PER_DAY.get(tier or "")
    if per_day is not None:
        PER_DAY.labels(*base).set(per_day)
    platform = _text(number.get("platform_type"))
    if platform is not None:
        REGISTERED.labels(*base).set(1 if platform != "NOT_APPLICABLE" else 0)
    oba = number.get("is_official_business_account")
    if oba is not None:
        OBA.labels(*base).set(1 if oba else 0)


# --------------------------------------------------------------------------- polling


@dataclass
class Phase:
    wall_start: float = 0.0
    wall_end: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    requests: int = 0
    wabas: int = 0
    numbers: int = 0

    def begin(self) -> None:
        self.wall_start, self.cpu_start = time.time(), time.process_time()

    def end(self) -> None:
        self.wall_end, self.cpu_end = time.time(), time.process_time()


@dataclass
class Status:
    state: str = "starting"
    error: str | None = None
    poll: Phase = field(default_factory=Phase)
    populate: Phase = field(default_factory=Phase)


@dataclass(frozen=True)
class Config:
    root: str
    token: str
    targets: tuple[tuple[str, str], ...]  # (business_id, waba_id)


def load_config(path: Path, token: str) -> Config:
    raw = yaml.safe_load(path.read_text())
    graph = raw.get("graph", {})
    base = str(graph.get("base_url", "https://graph.facebook.com")).rstrip("/")
    root = f"{base}/{graph.get('api_version', 'v24.0')}/"
    targets = tuple((str(b["id"]), str(w)) for b in raw["businesses"] for w in b["wabas"])
    return Config(root=root, token=token, targets=targets)


async def get_json(session: aiohttp.ClientSession, url: str, phase: Phase,
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:
    phase.requests += 1
    async with session.get(url, params=params) as resp:
        resp.raise_for_status()
        body: dict[str, Any] = await resp.json()
        return body


async def list_numbers(session: aiohttp.ClientSession, cfg: Config, waba_id: str, phase: Phase,
                       params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    numbers: list[dict[str, Any]] = []
    url: str | None = f"{cfg.root}{waba_id}/phone_numbers"
    while url:
        page = await get_json(session, url, phase, params)
        numbers.extend(page["data"])
        url = page.get("paging", {}).get("next")  # the next link already carries the query
        params = None
    return numbers


async def poll(session: aiohttp.ClientSession, cfg: Config, phase: Phase) -> None:
    """The newcomer's poll: list with default fields, then 3 reads per number, one at a time."""
    for business_id, waba_id in cfg.targets:
        numbers = await list_numbers(session, cfg, waba_id, phase)
        for number in numbers:
            export(business_id, waba_id, number)
            for name in PER_NUMBER_FIELDS:
                node = await get_json(session, f"{cfg.root}{number['id']}", phase,
                                      {"fields": name})
                export(business_id, waba_id, {"id": number["id"], name: node.get(name)})
        phase.wabas += 1
        phase.numbers += len(numbers)


async def populate(session: aiohttp.ClientSession, cfg: Config, phase: Phase) -> None:
    """Benchmark set-up, not part of the design: every field of every number, 16 in flight."""
    for gauge in ALL_GAUGES:
        gauge.clear()
    limit = asyncio.Semaphore(POPULATE_CONCURRENCY)
    params = {"fields": ",".join(PHONE_NUMBER_FIELDS), "limit": "100"}

    async def one(business_id: str, waba_id: str) -> None:
        async with limit:
            numbers = await list_numbers(session, cfg, waba_id, phase, params)
        for number in numbers:
            export(business_id, waba_id, number)
        phase.wabas += 1
        phase.numbers += len(numbers)

    await asyncio.gather(*(one(b, w) for b, w in cfg.targets))


# --------------------------------------------------------------------------- process


STATUS_KEY: web.AppKey[Status] = web.AppKey("bench_status", Status)


async def _status_view(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[STATUS_KEY]))


async def run(args: argparse.Namespace) -> None:
    token = os.environ.get("WABA_MONITOR_ACCESS_TOKEN", "")
    cfg = load_config(args.config, token)
    if args.max_wabas is not None:
        cfg = Config(cfg.root, cfg.token, cfg.targets[: args.max_wabas])
    full = load_config(args.config, token)
    status = Status()
    stop = asyncio.Event()
    populate_requested = asyncio.Event()

    async def _populate_view(_: web.Request) -> web.Response:
        populate_requested.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app[STATUS_KEY] = status
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    app.router.add_get("/bench/status", _status_view)
    app.router.add_post("/bench/populate", _populate_view)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal() -> None:
        stop.set()
        main_task.cancel()  # also interrupts a poll in progress

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {cfg.token}"})
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        tmp = args.url_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url}))
        tmp.replace(args.url_file)
        try:
            status.state = "polling"
            status.poll.begin()
            await poll(session, cfg, status.poll)
            status.poll.end()
            status.state = "polled"
            waiter = asyncio.ensure_future(populate_requested.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if populate_requested.is_set() and not stop.is_set():
                status.state = "populating"
                status.populate.begin()
                await populate(session, full, status.populate)
                status.populate.end()
                status.state = "populated"
        except Exception as exc:  # report it to the harness, keep serving
            status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
        await stop.wait()
    finally:
        await session.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the daemon's YAML config")
    parser.add_argument("--url-file", type=Path, required=True,
                        help="where to write {\"url\": ...} once listening")
    parser.add_argument("--max-wabas", type=int, default=None,
                        help="poll only the first K WABAs (a sample for extrapolation)")
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
