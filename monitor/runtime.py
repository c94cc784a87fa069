"""Wiring for a running daemon: one HTTP client session, the scheduler and the web server.

``Runtime`` is an async context manager so tests can start a real daemon on port 0, talk to
it, and tear every task and socket down afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import aiohttp
import structlog
from aiohttp import web
from apscheduler.triggers.interval import IntervalTrigger

from monitor import __version__
from monitor.config import (
    ConfigError,
    Settings,
    load_settings,
    resolve_access_token,
    resolve_app_secret,
    resolve_webhook_verify_token,
)
from monitor.daemon import Monitor, build_client
from monitor.exposition import FAMILY_NAMES, ExpositionOptions
from monitor.graph.client import GraphClient
from monitor.logs import register_secret
from monitor.model import BusinessState
from monitor.scheduler import Jobs
from monitor.selfmetrics import SelfMetrics, create_self_metrics
from monitor.sharding import Shard, resolve_shard
from monitor.state import StateDB, StateError, StateWriter
from monitor.store import Store, Transition
from monitor.token import check_token
from monitor.web import build_app
from monitor.webconfig import (
    OPEN_PATHS,
    Authenticator,
    WebConfig,
    auth_middleware,
    load_web_config,
    ssl_context,
)
from monitor.webconfig import startup_warnings as web_startup_warnings
from monitor.webhooks import (
    FORWARDED_HEADER,
    SIGNATURE_HEADER,
    WebhookConfig,
    add_webhook_routes,
    create_webhook_metrics,
    startup_warnings,
)

FLUSH_INTERVAL = 1.0
# Keys read only at start: a reload that changes them says a restart is needed.
RESTART_KEYS = (("server", "listen"), ("state", "directory"), ("webhooks", "path"),
                ("webhooks", "max_body_bytes"), ("server", "web_config_file"))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Everything one configuration load yields: settings, secrets and the shard."""

    settings: Settings
    access_token: str
    app_secret: str | None
    webhook_verify_token: str | None
    shard: Shard


Loader = Callable[[], LoadedConfig]


def file_loader(path: Path, *, shard: str | None = None, total_shards: int | None = None,
                environ: Mapping[str, str] | None = None) -> Loader:
    """Load from a file and the environment, the same way at start and at every reload."""

    def load() -> LoadedConfig:
        settings = load_settings(path, environ, family_names=FAMILY_NAMES)
        loaded = LoadedConfig(
            settings=settings,
            access_token=resolve_access_token(settings, environ),
            app_secret=resolve_app_secret(settings, environ),
            webhook_verify_token=resolve_webhook_verify_token(settings, environ),
            shard=resolve_shard(settings.sharding, shard=shard, total_shards=total_shards,
                                environ=environ),
        )
        for secret in (loaded.access_token, loaded.app_secret, loaded.webhook_verify_token):
            register_secret(secret)
        return loaded

    return load


def exposition_options(settings: Settings) -> ExpositionOptions:
    return ExpositionOptions(compact=settings.metrics.enum_mode == "compact",
                             families=settings.metrics.families(FAMILY_NAMES))


class WebhookBridge:
    """What the webhook receiver drives: caps go to the monitor, re-polls to the scheduler."""

    def __init__(self, monitor: Monitor, jobs: Jobs) -> None:
        self._monitor = monitor
        self._jobs = jobs

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None:
        self._monitor.learn_cap(waba_id=waba_id, cap=cap, source_field=source_field)

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        self._jobs.request_repoll(waba_id=waba_id, reason=reason)

    def phone_number_id_for(self, display_phone_number: str) -> str | None:
        return self._monitor.phone_number_id_for(display_phone_number)


def restore(store: Store, db: StateDB) -> int:
    """Load the last known state, so it is served before the first new poll finishes.

    Restored WABAs keep their real last-success timestamps; they count as not yet polled,
    so readiness still waits for a fresh poll.
    """
    caps = {c.business_id: c for c in db.learned_caps()}
    verified = db.verified()
    wabas = [dataclasses.replace(w, polled=False) for w in db.wabas()]
    ids = set(caps) | set(verified) | {w.business_id for w in wabas}
    store.load(
        [BusinessState(b, learned_cap=caps[b].cap if b in caps else None,
                       verified=verified.get(b)) for b in sorted(ids)],
        wabas,
    )
    store.recent.extend(db.transitions(limit=store.recent.maxlen or 200))
    return len(wabas)

log = structlog.get_logger("monitor.runtime")


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        access_token: str,
        app_secret: str | None = None,
        webhook_verify_token: str | None = None,
        metrics: SelfMetrics | None = None,
        host: str | None = None,
        port: int | None = None,
        shard: Shard | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.settings = settings
        for secret in (access_token, app_secret, webhook_verify_token):
            register_secret(secret)
        self._loader = loader
        self._reload_lock = asyncio.Lock()
        self._update_webhooks: Callable[[WebhookConfig], None] | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self.web_config = (load_web_config(settings.server.web_config_file)
                           if settings.server.web_config_file else WebConfig())
        self._auth = Authenticator(self.web_config)
        for warning in web_startup_warnings(self.web_config):
            log.warning("web_config_warning", problem=warning)
        self.shard = shard if shard is not None else resolve_shard(settings.sharding)
        self._token = access_token
        self._app_secret = app_secret
        self._verify_token = webhook_verify_token
        self.metrics = metrics or create_self_metrics()
        self.store = Store(exposition_options(settings))
        self.host = host if host is not None else settings.server.host
        self.port = port if port is not None else settings.server.port
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.monitor: Monitor | None = None
        self.jobs: Jobs | None = None
        self.db: StateDB | None = None
        self._writer: StateWriter | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.web_config.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        graph = self.settings.graph
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=graph.concurrency, limit_per_host=0),
            headers={"User-Agent": f"waba-monitor/{__version__}"},
        )
        client = build_client(self.settings, self._session, self.metrics,
                              access_token=self._token, app_secret=self._app_secret,
                              usage_sink=self.store.put_other_usage)
        self.monitor = Monitor(self.settings, client, self.store, self.metrics, shard=self.shard)
        self._open_state(self.monitor)
        self.jobs = Jobs(self.monitor)
        app = build_app(self.monitor, transitions=self._transitions if self.db else None,
                        reload=self.reload)
        self._add_webhooks(app, self.monitor, self.jobs)
        app.middlewares.append(auth_middleware(
            self._auth, OPEN_PATHS | {self.settings.webhooks.path}))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        context = ssl_context(self.web_config.tls) if self.web_config.tls else None
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                           ssl_context=context)
        await site.start()
        sockets = [s for s in (self._runner.addresses or [])]
        if sockets and self.port == 0:
            self.port = int(sockets[0][1])
        self.jobs.start()
        self._schedule_token_checks(client)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_timestamp.set(time.time())
        log.info("started", version=__version__, listen=f"{self.host}:{self.port}",
                 shard=self.shard.ordinal, total_shards=self.shard.total,
                 businesses=len(self.settings.businesses),
                 scan_interval_seconds=self.settings.schedule.scan_interval)

    async def reload(self) -> tuple[bool, str]:
        """Load the configuration again and apply it whole, or keep the running one.

        Returns (applied, message). Nothing changes unless the new file is valid.
        """
        async with self._reload_lock:
            if self._loader is None:
                return False, "no configuration file to reload from"
            try:
                loaded = await asyncio.to_thread(self._loader)
                path = loaded.settings.server.web_config_file
                web_config = await asyncio.to_thread(load_web_config, path) if path else None
            except (ConfigError, StateError) as err:
                self.metrics.reload_ok.set(0)
                log.error("config_reload_rejected", problems=str(err),
                          action="keeping the running configuration")
                return False, str(err)
            self._apply(loaded)
            if web_config is not None:
                self._auth.replace(web_config)  # users and tokens; TLS needs a restart
            self.metrics.reload_ok.set(1)
            self.metrics.reload_timestamp.set(time.time())
            log.info("config_reloaded", businesses=len(loaded.settings.businesses),
                     shard=loaded.shard.ordinal, total_shards=loaded.shard.total)
            return True, "configuration reloaded"

    def _apply(self, loaded: LoadedConfig) -> None:
        assert self.monitor is not None and self.jobs is not None and self._session is not None
        old, new = self.settings, loaded.settings
        for section, key in RESTART_KEYS:
            if getattr(getattr(old, section), key) != getattr(getattr(new, section), key):
                log.warning("config_change_needs_restart", key=f"{section}.{key}")
        client = None
        if (new.graph != old.graph or loaded.access_token != self._token
                or loaded.app_secret != self._app_secret):
            client = build_client(new, self._session, self.metrics,
                                  access_token=loaded.access_token,
                                  app_secret=loaded.app_secret,
                                  usage_sink=self.store.put_other_usage)
        self.settings = new
        for secret in (loaded.access_token, loaded.app_secret, loaded.webhook_verify_token):
            register_secret(secret)
        self._token, self._app_secret = loaded.access_token, loaded.app_secret
        self._verify_token = loaded.webhook_verify_token
        self.shard = loaded.shard
        self.monitor.configure(new, loaded.shard, client)
        self.store.set_options(exposition_options(new))
        self.jobs.reconcile(
            interval_changed=new.schedule.scan_interval != old.schedule.scan_interval
            or new.schedule.jitter != old.schedule.jitter)
        if self._update_webhooks is not None:
            self._update_webhooks(self._webhook_config())
        self._schedule_token_checks(self.monitor.client)

    def _webhook_config(self) -> WebhookConfig:
        settings = self.settings.webhooks
        return WebhookConfig(path=settings.path, verify_token=self._verify_token,
                             app_secret=self._app_secret, max_body_bytes=settings.max_body_bytes)

    def _add_webhooks(self, app: web.Application, monitor: Monitor, jobs: Jobs) -> None:
        config = self._webhook_config()
        self._update_webhooks = add_webhook_routes(
            app, config, WebhookBridge(monitor, jobs),
            create_webhook_metrics(self.metrics.registry), forward=self._forward)
        for warning in startup_warnings(config):
            log.warning("webhooks_misconfigured", problem=warning)

    def _forward(self, body: bytes, signature: str, waba_ids: frozenset[str]) -> None:
        """Meta posts to one URL: pass a webhook about WABAs this shard does not watch on to
        the other shards, unchanged (body and signature), marked as forwarded."""
        if self.shard.total == 1 or self._session is None:
            return
        if all(self.store.waba(waba_id) is not None for waba_id in waba_ids):
            return
        for ordinal in range(self.shard.total):
            base = self.settings.sharding.peer_url(ordinal)
            if ordinal == self.shard.ordinal or base is None:
                continue
            task = asyncio.create_task(self._post_forward(base + self.settings.webhooks.path,
                                                          body, signature))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)

    async def _post_forward(self, url: str, body: bytes, signature: str) -> None:
        assert self._session is not None
        headers = {SIGNATURE_HEADER: signature, FORWARDED_HEADER: "1",
                   "Content-Type": "application/json"}
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=10)) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook_forward_failed", peer=url, error=type(exc).__name__)
            return
        log.info("webhook_forwarded", peer=url, status=status)

    def _schedule_token_checks(self, client: GraphClient) -> None:
        app_id = self.settings.graph.app_id
        assert self.jobs is not None
        if self.jobs.scheduler.get_job("token") is not None:
            self.jobs.scheduler.remove_job("token")
        if app_id is None or self._app_secret is None:
            log.info("token_check_disabled", reason="graph.app_id and the app secret are "
                     "needed to read the token's expiry from /debug_token")
            return
        secret = self._app_secret
        register_secret(f"{app_id}|{secret}")

        async def check() -> None:
            await check_token(client, access_token=self._token, app_id=app_id,
                              app_secret=secret, metrics=self.metrics)

        assert self.jobs is not None
        self.jobs.scheduler.add_job(
            check, IntervalTrigger(seconds=self.settings.schedule.token_check_interval),
            id="token", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            misfire_grace_time=None, replace_existing=True)

    def _open_state(self, monitor: Monitor) -> None:
        directory = self.settings.state.directory
        if directory is None:
            return
        self.db = db = StateDB(directory)
        restored = restore(self.store, db)
        log.info("state_restored", path=str(db.path), wabas=restored,
                 learned_caps=len(db.learned_caps()))
        self._writer = writer = StateWriter(db, retention=self.settings.state.history_retention)
        self.store.on_change.append(writer.on_change)
        self.store.on_remove.append(writer.on_remove)
        monitor.on_cap_learned.append(db.save_cap)
        monitor.on_verified.append(db.save_verified)
        self._flusher = asyncio.create_task(self._flush_forever())

    async def _transitions(self, since: float, limit: int) -> list[Transition]:
        assert self.db is not None
        return await asyncio.to_thread(self.db.transitions, since=since, limit=limit)

    async def flush(self) -> None:
        """Write what changed since the last flush (in a worker thread)."""
        if self._writer is None or not self._writer.dirty:
            return
        batch = self._writer.take()
        await asyncio.to_thread(self._writer.write, batch, time.time())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("state_write_failed")

    async def stop(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
            for _ in range(3):  # let cancelled polls unwind before their session closes
                await asyncio.sleep(0)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            try:
                await self.flush()
            except Exception:
                log.exception("state_write_failed")
        if self.db is not None:
            self.db.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        log.info("stopped")

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def wait_for_signal(on_hangup: Callable[[], Awaitable[object]] | None = None) -> None:
    """Block until SIGTERM or SIGINT (a clean shutdown); SIGHUP calls ``on_hangup``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    pending: set[asyncio.Task[object]] = set()

    def hangup() -> None:
        if on_hangup is not None:
            task: asyncio.Task[object] = asyncio.ensure_future(on_hangup())
            pending.add(task)
            task.add_done_callback(pending.discard)

    signals = [signal.SIGTERM, signal.SIGINT]
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    if on_hangup is not None:
        signals.append(signal.SIGHUP)
        loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
