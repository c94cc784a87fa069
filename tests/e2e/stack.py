"""The product for end-to-end tests: the Graph API simulator, the daemon and a webhook receiver,
served from one asyncio loop in a background thread.

The daemon has an app secret and is the simulator's webhook target (registered through the
simulator's control API, ``POST /_sim/webhooks/target``, as an operator subscribes the callback
URL): every change the simulator announces reaches the daemon as a signed Meta webhook, the
account facts that only webhooks carry (restrictions, ban states, violations, account events
and alerts, per-WABA caps) included. ``run_account_actions`` produces one of each.

A background loop keeps serving while the test thread blocks (waiting on Prometheus,
Alertmanager or ``time.sleep``), so Prometheus' scrapes and Alertmanager's notifications are
answered at any time, between tests too. Tests change the simulated fleet through the
simulator's HTTP control API (``/_sim/...``), which runs on that loop, so the World is only
ever touched from its own thread.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from aiohttp import web

from monitor.config import load_settings
from monitor.runtime import Runtime
from monitor.simulator import Fault, Scenario, World, start_simulator
from tests.e2e.procs import http_json, wait_until

T = TypeVar("T")
DEMO_TOKEN = "demo-token"
APP_SECRET = "e2e-app-secret"  # signs the simulator's webhooks to the daemon

# Account actions on the demo scenario (POST /_sim/actions), each announced by a signed webhook,
# so that every WABA and portfolio family has data. They leave alone the WABA and numbers the
# alerting tests change (tests/test_e2e_alerting.py: a steady number of the main WABA and the
# business with the fewest registered numbers, Helix).
ACCOUNT_ACTIONS: tuple[dict[str, Any], ...] = (
    {"action": "restrict_waba", "waba": "200000000000005",
     "restriction_types": ["RESTRICTED_BIZ_INITIATED_MESSAGING"], "expires_in": "168h",
     "remediation": "Review the WhatsApp Business Messaging Policy."},
    {"action": "record_violation", "waba": "200000000000006", "violation_type": "SCAM"},
    {"action": "ban_waba", "waba": "200000000000006", "state": "SCHEDULE_FOR_DISABLE"},
    {"action": "review_waba", "waba": "200000000000007", "decision": "PENDING"},
    {"action": "account_event", "waba": "200000000000005", "event": "ACCOUNT_OFFBOARDED"},
    {"action": "account_event", "waba": "200000000000005", "event": "ACCOUNT_RECONNECTED"},
    {"action": "account_alert", "entity_type": "BUSINESS", "entity_id": "100000000000002",
     "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED", "alert_severity": "WARNING"},
    {"action": "account_alert", "entity_type": "PHONE_NUMBER", "entity_id": "300000000000005",
     "alert_type": "PROFILE_PICTURE_LOST", "alert_severity": "INFORMATIONAL"},
    {"action": "set_business", "business": "100000000000002", "max_phone_numbers_per_waba": 25},
)
# What only those webhooks produce: the daemon's /metrics has a sample of each afterwards.
WEBHOOK_FAMILIES: tuple[str, ...] = (
    "whatsapp_waba_restriction_expiry_timestamp_seconds",
    "whatsapp_waba_violations_total",
    "whatsapp_waba_ban_state",
    "whatsapp_waba_ban_date_timestamp_seconds",
    "whatsapp_waba_account_event_timestamp_seconds",
    "whatsapp_account_alert_timestamp_seconds",
    "whatsapp_waba_phone_numbers_cap",
)


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="e2e-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(cancel_rest(), timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=15)
            if not self._thread.is_alive():
                self.loop.close()


@dataclass
class Notification:
    received: float  # time.time() when it arrived
    payload: dict[str, Any]


class WebhookReceiver:
    """Records every Alertmanager webhook notification POSTed to ``/alerts``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notifications: list[Notification] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/alerts"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        with self._lock:
            self._notifications.append(Notification(time.time(), payload))
        return web.json_response({"ok": True})

    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)

    def alerts(self, *, since: float = 0.0) -> list[tuple[Notification, dict[str, Any]]]:
        """Every alert of every notification received at or after ``since``."""
        return [(n, alert) for n in self.notifications() if n.received >= since
                for alert in n.payload.get("alerts", [])]


@dataclass
class Product:
    """What a running Product exposes to tests."""

    world: World
    sim_url: str
    daemon_url: str
    receiver: WebhookReceiver
    config_path: Path
    webhook_path: str

    @property
    def daemon_address(self) -> str:
        return self.daemon_url.removeprefix("http://")

    def subscribe_webhooks(self) -> None:
        """Make the daemon the simulator's webhook target, signed with APP_SECRET."""
        answer = self.control("POST", "/_sim/webhooks/target", {
            "url": f"{self.daemon_url}{self.webhook_path}", "app_secret": APP_SECRET})
        assert answer == {"target_set": True}, answer

    def run_account_actions(self) -> None:
        """Perform ACCOUNT_ACTIONS and wait until the simulator delivered their webhooks, each
        answered 200 by the daemon."""
        before = len(self.control("GET", "/_sim/webhooks/sent")["sent"])
        queued = sum(self.control("POST", "/_sim/actions", dict(action))["webhooks_queued"]
                     for action in ACCOUNT_ACTIONS)
        assert queued >= len(ACCOUNT_ACTIONS), f"only {queued} webhooks queued: no target?"

        def delivered() -> list[dict[str, Any]] | None:
            sent: list[dict[str, Any]] = self.control("GET", "/_sim/webhooks/sent")["sent"]
            return sent[before:] if len(sent) - before >= queued else None

        sent = wait_until(delivered, timeout=20,
                          message="the simulator did not deliver the account webhooks")
        refused = [s for s in sent if s["status"] != 200]
        assert not refused, f"the daemon refused webhooks: {refused}"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the simulator's control API; fails the test on an error status."""
        status, answer = http_json(method, f"{self.sim_url}{path}", body)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {answer}"
        return answer


def daemon_config(sim_url: str, scenario: Scenario, *,
                  caps: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Every business of the scenario, WABAs discovered, polled every second."""
    caps = caps or {}
    return {
        # The demo's app: its subscriptions are read at the discovery cadence, here 2 s.
        "graph": {"base_url": sim_url, "max_retries": 1, "timeout": "3s",
                  "app_id": "900000000000001"},
        "businesses": [
            {"id": b.id, **({"registration_cap": caps[b.id]} if b.id in caps else {})}
            for b in scenario.businesses
        ],
        "schedule": {"scan_interval": "1s", "jitter": 0, "discovery_interval": "2s"},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": None},  # every run starts from the simulator, not a state file
    }


class RunningProduct:
    """Context manager: simulator + daemon (+ webhook receiver) on a background loop."""

    def __init__(self, workdir: Path, scenario: Scenario, *,
                 caps: Mapping[str, int] | None = None,
                 faults: Sequence[Fault] = ()) -> None:
        self._workdir = workdir
        self._scenario = scenario
        self._caps = dict(caps or {})
        self._faults = list(faults)
        self._loop: LoopThread | None = None
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    async def _start(self) -> Product:
        world = World(self._scenario)
        for fault in self._faults:
            world.inject_fault(fault)
        runner, sim_url = await start_simulator(world)
        self._cleanups.append(runner.cleanup)
        receiver = WebhookReceiver()
        await receiver.start()
        self._cleanups.append(receiver.stop)
        self._workdir.mkdir(parents=True, exist_ok=True)
        config_path = self._workdir / "waba-monitor.yaml"
        config_path.write_text(yaml.safe_dump(
            daemon_config(sim_url, self._scenario, caps=self._caps)))
        settings = load_settings(config_path, environ={})
        runtime = Runtime(settings, access_token=DEMO_TOKEN, app_secret=APP_SECRET, port=0)
        await runtime.start()
        self._cleanups.append(runtime.stop)
        return Product(world=world, sim_url=sim_url, daemon_url=runtime.url,
                       receiver=receiver, config_path=config_path,
                       webhook_path=settings.webhooks.path)

    async def _stop(self) -> None:
        errors: list[BaseException] = []
        for cleanup in reversed(self._cleanups):
            try:
                await cleanup()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
        self._cleanups.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> Product:
        self._loop = LoopThread()
        try:
            product = self._loop.run(self._start())
            wait_daemon_ready(product.daemon_url)
            product.subscribe_webhooks()
        except BaseException:
            self._close()
            raise
        return product

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close()

    def _close(self) -> None:
        if self._loop is None:
            return
        try:
            self._loop.run(self._stop(), timeout=30)
        finally:
            self._loop.close()
            self._loop = None


def wait_daemon_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = http_json("GET", f"{url}/-/ready", timeout=2)
        except OSError:
            status = 0
        if status == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"the daemon at {url} was not ready after {timeout:.0f}s")


# --------------------------------------------------------------------------- configurations


def short_rules(rule_files: Sequence[Path], out_dir: Path, *, for_: str = "2s") -> list[Path]:
    """Copies of the rule files with every ``for:`` set to ``for_`` and no group interval."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in rule_files:
        with path.open(encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for group in doc.get("groups", []):
            group.pop("interval", None)
            for rule in group.get("rules", []):
                if "alert" in rule and "for" in rule:
                    rule["for"] = for_
        target = out_dir / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        paths.append(target)
    return paths


def fast_alertmanager_config(shipped: Mapping[str, Any], webhook_url: str) -> dict[str, Any]:
    """The shipped Alertmanager config with every webhook pointed at ``webhook_url``, fast
    grouping timers on every route, resolved notifications on, and the inhibit rules kept."""
    config = copy.deepcopy(dict(shipped))

    def fast(route: dict[str, Any]) -> None:
        route["group_wait"] = "1s"
        route["group_interval"] = "1s"
        route["repeat_interval"] = "1h"
        for child in route.get("routes", []) or []:
            fast(child)

    fast(config["route"])
    webhooks = 0
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []) or []:
            hook["url"] = webhook_url
            hook["send_resolved"] = True
            webhooks += 1
    assert webhooks, "the shipped Alertmanager config has no webhook receiver to point here"
    return config


def prometheus_config(rule_files: Sequence[Path], *, scrape_job: str | None = None,
                      target: str | None = None, alertmanager: str | None = None
                      ) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager]}]}]}
    if scrape_job and target:
        config["scrape_configs"] = [{"job_name": scrape_job,
                                     "static_configs": [{"targets": [target]}]}]
    return config
