"""Wiring for a running daemon: one HTTP client session, the scheduler and the web server.

``Runtime`` is an async context manager so tests can start a real daemon on port 0, talk to
it, and tear every task and socket down afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import structlog
from aiohttp import web

from monitor import __version__, heap
from monitor.config import (
    ConfigError,
    Settings,
    load_settings,
    resolve_access_token,
    resolve_app_secret,
    resolve_webhook_verify_token,
)
from monitor.daemon import Monitor, build_client
from monitor.exposition import ExpositionOptions
from monitor.families import DEPRECATED_FAMILIES, FAMILY_NAMES
from monitor.fleet import Fleet, Target
from monitor.graph.client import GraphClient
from monitor.lifecycle import background
from monitor.logs import register_secret
from monitor.model import BusinessState, Transition
from monitor.scheduler import Jobs
from monitor.selfmetrics import SelfMetrics, create_self_metrics
from monitor.settings_reads import SettingsReads
from monitor.sharding import Shard, resolve_shard
from monitor.sharding.forward import ShardForwarder
from monitor.sink import StagingSink
from monitor.state import StateDB, StateError, StateWriter, flushing
from monitor.store import Store
from monitor.token import TokenCheckPlan, TokenChecks
from monitor.web import StatusView, build_app
from monitor.webconfig import (
    OPEN_PATHS,
    Authenticator,
    WebConfig,
    auth_middleware,
    load_web_config,
    ssl_context,
)
from monitor.webconfig import startup_warnings as web_startup_warnings
from monitor.webhooks.receiver import (
    WebhookConfig,
    add_webhook_routes,
    create_webhook_metrics,
    startup_warnings,
)

HEAP_TRIM_INTERVAL = 300.0  # seconds between returns of free heap memory (monitor.heap)
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
    """Cardinality options; deprecated families are served only when ``metrics.include``
    names them (they repeat one portfolio value on every number)."""
    chosen = settings.metrics.families(FAMILY_NAMES)
    if not settings.metrics.include:
        chosen = (frozenset(FAMILY_NAMES) if chosen is None else chosen) - DEPRECATED_FAMILIES
    return ExpositionOptions(compact=settings.metrics.enum_mode == "compact", families=chosen,
                             template_series=settings.templates.series)


def restore(store: Store, db: StateDB, fleet: Fleet) -> int:
    """Load the last known state, so it is served before the first new poll finishes.

    Only what the current configuration and shard vouch for is loaded (the fleet decides);
    the state file's other rows are left as they are. Restored WABAs keep their real
    last-success timestamps; they count as not yet polled, so readiness still waits for a
    fresh poll.
    """
    rows = {w.waba_id: w for w in db.wabas()}
    accepted = fleet.restore((Target(w.business_id, w.waba_id), w.via) for w in rows.values())
    wabas = [dataclasses.replace(rows[a.waba_id], polled=False, business_id=a.business_id,
                                 via=a.via) for a in accepted]
    ids = fleet.business_ids({a.waba_id: a for a in accepted})
    caps = {c.business_id: c for c in db.learned_caps() if c.business_id in ids}
    verified = {b: v for b, v in db.verified().items() if b in ids}
    store.load(
        [BusinessState(b, learned_cap=caps[b].cap if b in caps else None,
                       verified=verified.get(b)) for b in sorted(ids)],
        wabas,
    )
    watched = {w.waba_id for w in wabas}
    for waba_id, (_, facts) in db.waba_facts().items():
        if waba_id in watched:
            store.put_waba_facts(waba_id, facts)
    for alert in db.account_alerts():
        store.put_account_alert(alert)  # kept only for businesses loaded above
    store.recent.extend(t for t in db.transitions(limit=store.recent.maxlen or 200)
                        if t.waba_id in watched)
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
        self.writer: StateWriter | None = None
        self.sink: StagingSink | None = None
        self._duties = contextlib.AsyncExitStack()
        self.token_checks = TokenChecks(self.metrics)
        self.settings_reads: SettingsReads | None = None

    @property
    def ready(self) -> bool:
        return self.jobs is not None and self.jobs.ready

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
        await self._open_state(self.monitor)
        self.jobs = jobs = Jobs(self.monitor)
        view = StatusView(store=self.store, registry=self.metrics.registry,
                          ready=lambda: jobs.ready)
        app = build_app(view, transitions=self._transitions if self.db else None,
                        reload=self.reload)
        self._add_webhooks(app, self.jobs)
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
        await self._duties.enter_async_context(background(self._freeze_when_ready))
        await self._duties.enter_async_context(self.token_checks.running())
        self.settings_reads = SettingsReads(self.monitor)
        await self._duties.enter_async_context(self.settings_reads.running())
        self._plan_token_checks(client)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_timestamp.set(time.time())
        log.info("started", version=__version__, listen=f"{self.host}:{self.port}",
                 shard=self.shard.ordinal, total_shards=self.shard.total,
                 businesses=len(self.settings.businesses),
                 scan_interval_seconds=self.settings.schedule.scan_interval)

    async def _freeze_when_ready(self) -> None:
        """Once the first polls are in, move everything alive to the collector's permanent
        generation (``gc.freeze``): a fleet's state is millions of long-lived objects, and a
        full collection walking them all stalled a status-page view or a scrape by about
        0.5 s at 50,000 numbers. Objects are still freed by reference counting."""
        assert self.jobs is not None
        await self.jobs.after_first_polls()
        gc.collect()
        gc.freeze()
        log.info("gc_frozen", objects=gc.get_freeze_count(), heap_trimmed=heap.give_back())
        try:
            while True:  # template reads and discovery churn the heap: give it back now and then
                await asyncio.sleep(HEAP_TRIM_INTERVAL)
                heap.give_back()
        finally:
            gc.unfreeze()  # a process that runs on (tests, embedding) collects them again

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
        self._plan_token_checks(self.monitor.client)
        if self.settings_reads is not None:
            self.settings_reads.reset()

    def _webhook_config(self) -> WebhookConfig:
        settings = self.settings.webhooks
        return WebhookConfig(path=settings.path, verify_token=self._verify_token,
                             app_secret=self._app_secret, max_body_bytes=settings.max_body_bytes)

    def _add_webhooks(self, app: web.Application, jobs: Jobs) -> None:
        config = self._webhook_config()
        forward = ShardForwarder(shard=lambda: self.shard, settings=lambda: self.settings,
                                 watches=lambda waba_id: self.store.waba(waba_id) is not None,
                                 session=lambda: self._session)
        app.cleanup_ctx.append(forward.cleanup_ctx)
        # Webhook-only facts are committed through the state writer before the 200.
        committed = ({w: f for w, (_, f) in self.db.waba_facts().items()}
                     if self.db is not None else None)
        self.sink = StagingSink(self.store, jobs, writer=self.writer, committed=committed)
        self._update_webhooks = add_webhook_routes(
            app, config, self.sink,
            create_webhook_metrics(self.metrics.registry), forward=forward)
        for warning in startup_warnings(config):
            log.warning("webhooks_misconfigured", problem=warning)

    def _plan_token_checks(self, client: GraphClient) -> None:
        app_id = self.settings.graph.app_id
        if app_id is None or self._app_secret is None:
            self.token_checks.plan(None)
            return
        register_secret(f"{app_id}|{self._app_secret}")
        self.token_checks.plan(TokenCheckPlan(
            client=client, access_token=self._token, app_id=app_id,
            app_secret=self._app_secret,
            interval=self.settings.schedule.token_check_interval))

    async def _open_state(self, monitor: Monitor) -> None:
        directory = self.settings.state.directory
        if directory is None:
            return
        self.db = db = StateDB(directory)
        restored = restore(self.store, db, monitor.fleet)
        log.info("state_restored", path=str(db.path), wabas=restored,
                 learned_caps=len(db.learned_caps()))
        self.writer = writer = StateWriter(db, retention=self.settings.state.history_retention)
        self.store.on_change.append(writer.on_change)
        self.store.on_remove.append(writer.on_remove)
        monitor.commit = writer.commit
        monitor.commit_transitions = writer.commit_transitions
        monitor.on_verified.append(db.save_verified)
        await self._duties.enter_async_context(flushing(writer))

    async def _transitions(self, since: float, limit: int) -> list[Transition]:
        assert self.db is not None
        return await asyncio.to_thread(self.db.transitions, since=since, limit=limit)

    async def stop(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
            for _ in range(3):  # let cancelled polls unwind before their session closes
                await asyncio.sleep(0)
        await self._duties.aclose()  # token checks stop; the last state batch is written
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
