"""The ``waba-monitor`` command: run, demo, simulator, check."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import yaml

from monitor import __version__
from monitor.check import evaluate, exit_level, render_json, render_table
from monitor.config import (
    ConfigError,
    Settings,
    load_settings,
    resolve_access_token,
    resolve_app_secret,
)
from monitor.daemon import Monitor, build_client
from monitor.families import FAMILY_NAMES
from monitor.logs import configure_logging, register_secret
from monitor.runtime import Loader, Runtime, file_loader, wait_for_signal
from monitor.selfmetrics import create_self_metrics
from monitor.state import FILE_NAME as STATE_FILE
from monitor.state import StateDB, StateError
from monitor.store import Store

EXIT_CONFIG = 2
DEMO_TOKEN = "demo-token"  # noqa: S105 - the simulator's public demo credential
# The demo's large enterprise portfolio registers more than 20 numbers, which takes a cap
# raised by Meta support; the demo says so in configuration, as a real deployment would.
DEMO_CAPS = {"100000000000001": 250}
DEMO_APP_ID = "900000000000001"  # the demo scenario's app: subscribed to all WABAs but one
DEMO_IDENTITY_CHECK = frozenset({"100000000000002"})  # its numbers must have the check on
DEMO_APP_SECRET = "demo-app-secret"  # noqa: S105 - signs the simulator's demo webhooks
DEMO_VERIFY_TOKEN = "demo-verify-token"  # noqa: S105


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waba-monitor",
        description="Prometheus exporter for WhatsApp Business phone-number health.",
    )
    parser.add_argument("--version", action="version", version=f"waba-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, required=True, help="path to the YAML configuration")
    run.add_argument("--shard", help="this replica's shard ordinal, or auto (from a pod name "
                     "ending in -N); overrides sharding.shard")
    run.add_argument("--total-shards", type=int, help="number of shards; overrides "
                     "sharding.total_shards")

    demo = sub.add_parser("demo", help="run the simulator and the daemon against it")
    demo.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 9877),
                      help="where the daemon listens (default 127.0.0.1:9877)")
    demo.add_argument("--simulator-listen", type=parse_listen, default=("127.0.0.1", 0),
                      help="where the simulator listens (default: a free port on 127.0.0.1)")
    demo.add_argument("--scan-interval", default="10s", help="poll interval (default 10s)")

    sim = sub.add_parser("simulator", help="run the Graph API simulator alone")
    sim.add_argument("--scenario", type=Path, help="scenario YAML (default: the built-in demo)")
    sim.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 9878),
                     help="where the simulator listens (default 127.0.0.1:9878)")
    sim.add_argument("--latency", type=float, default=0.0,
                     help="seconds added to every Graph request")

    check = sub.add_parser("check", help="poll everything once, print a report, exit 0/1/2/3")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _load(path: Path) -> tuple[Settings, str, str | None]:
    settings = load_settings(path, family_names=FAMILY_NAMES)
    token = resolve_access_token(settings)
    app_secret = resolve_app_secret(settings)
    register_secret(token)
    register_secret(app_secret)
    return settings, token, app_secret


async def _run(loader: Loader) -> None:
    loaded = loader()
    async with Runtime(loaded.settings, access_token=loaded.access_token,
                       app_secret=loaded.app_secret,
                       webhook_verify_token=loaded.webhook_verify_token, shard=loaded.shard,
                       loader=loader) as runtime:
        await wait_for_signal(on_hangup=runtime.reload)


async def _check(settings: Settings, token: str, app_secret: str | None, fmt: str) -> int:
    metrics = create_self_metrics(process_metrics=False)
    store = Store()
    async with aiohttp.ClientSession() as session:
        client = build_client(settings, session, metrics, access_token=token,
                              app_secret=app_secret)
        monitor = Monitor(settings, client, store, metrics)
        await monitor.run_once()
    _webhook_facts(store, settings.state.directory)
    findings = evaluate(store)
    level = exit_level(store, findings)
    if fmt == "json":
        sys.stdout.write(render_json(store, findings, level))
    else:
        sys.stdout.write(render_table(store, findings))
        sys.stdout.write(f"{level.name}\n")
    return int(level)


def _webhook_facts(store: Store, directory: Path | None) -> None:
    """What only webhooks told (bans, restrictions, reviews, account alerts) comes from the
    running daemon's state file when there is one here; ``check`` never creates one."""
    if directory is None or not (directory / STATE_FILE).is_file():
        return
    db = StateDB(directory)
    try:
        for waba_id, (_, facts) in db.waba_facts().items():
            store.put_waba_facts(waba_id, facts)
        for alert in db.account_alerts():
            store.put_account_alert(alert)
    finally:
        db.close()


async def _simulator(scenario_path: Path | None, host: str, port: int, latency: float) -> None:
    from monitor.simulator import World, builtin_scenario, load_scenario, start_simulator

    scenario = load_scenario(scenario_path) if scenario_path else builtin_scenario("demo")
    runner, url = await start_simulator(World(scenario), host=host, port=port, latency=latency)
    print(f"Graph API simulator listening on {url}  (control API: {url}/_sim/state)", flush=True)
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()


async def _demo(listen: tuple[str, int], sim_listen: tuple[str, int], interval: str) -> None:
    from monitor.simulator import World, builtin_scenario, start_simulator

    scenario = builtin_scenario("demo")
    world = World(scenario)
    runner, sim_url = await start_simulator(world, host=sim_listen[0], port=sim_listen[1])
    try:
        with tempfile.TemporaryDirectory(prefix="waba-monitor-demo-") as tmp:
            host = listen[0] if listen[0] not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
            host = f"[{host}]" if ":" in host else host
            config = {
                "graph": {"base_url": sim_url, "api_version": "v24.0",
                          "app_id": DEMO_APP_ID},
                "businesses": [
                    {"id": b.id, "registration_cap": DEMO_CAPS.get(b.id, "auto"),
                     "require_identity_key_check": b.id in DEMO_IDENTITY_CHECK}
                    for b in scenario.businesses
                ],
                "schedule": {"scan_interval": interval, "jitter": 0.1,
                             "settings_interval": "10m"},
                "server": {"listen": f"{listen[0]}:{listen[1]}"},
                "state": {"directory": str(Path(tmp) / "state")},
                # The simulator's default callback is where it sends webhooks: this daemon.
                "webhooks": {"expected_callback_url":
                             f"http://{host}:{listen[1]}/webhooks/whatsapp"},
            }
            path = Path(tmp) / "demo.yaml"
            path.write_text(yaml.safe_dump(config))
            settings = load_settings(path, environ={"WABA_MONITOR_ACCESS_TOKEN": DEMO_TOKEN},
                                     family_names=FAMILY_NAMES)
            async with Runtime(settings, access_token=DEMO_TOKEN, app_secret=DEMO_APP_SECRET,
                               webhook_verify_token=DEMO_VERIFY_TOKEN) as runtime:
                # The simulator announces number changes by signed webhook, as Meta does.
                world.set_webhook_target(runtime.url + settings.webhooks.path, DEMO_APP_SECRET)
                print(_demo_banner(runtime.url, sim_url, path), flush=True)
                await wait_for_signal()
    finally:
        await runner.cleanup()


def _demo_banner(url: str, sim_url: str, config_path: Path) -> str:
    host = url.split("//", 1)[1]
    return f"""
waba-monitor demo is running against the built-in Graph API simulator.

  Status page:   {url}/
  Metrics:       {url}/metrics
  Readiness:     {url}/-/ready
  Changes:       {url}/api/v1/transitions
  Webhooks:      {url}/webhooks/whatsapp   (the simulator posts signed changes here)
  Simulator:     {sim_url}/_sim/state   (change a number: curl -X PATCH \\
                 {sim_url}/_sim/numbers/<id> -d '{{"status":"FLAGGED"}}')

Point a local Prometheus at it with this scrape job (rules: deploy/prometheus/rules/):

  scrape_configs:
    - job_name: waba-monitor
      scrape_interval: 15s
      static_configs:
        - targets: ["{host}"]

or run: prometheus --config.file=deploy/prometheus/prometheus.yml
Press Ctrl-C to stop.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            loader = file_loader(args.config, shard=args.shard, total_shards=args.total_shards)
            settings = loader().settings  # fail fast, before logging is set up
            configure_logging(level=settings.logging.level, fmt=settings.logging.format)
            asyncio.run(_run(loader))
            return 0
        if args.command == "check":
            settings, token, app_secret = _load(args.config)
            configure_logging(level="warning", fmt=settings.logging.format)
            return asyncio.run(_check(settings, token, app_secret, args.format))
        configure_logging(level="info")
        if args.command == "simulator":
            host, port = args.listen
            asyncio.run(_simulator(args.scenario, host, port, args.latency))
        elif args.command == "demo":
            asyncio.run(_demo(args.listen, args.simulator_listen, args.scan_interval))
        return 0
    except ConfigError as err:
        print(f"waba-monitor: configuration error:\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    except StateError as err:
        print(f"waba-monitor: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
