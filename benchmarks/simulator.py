"""The Graph API simulator as its own process, serving a generated fleet, with timing hooks.

``python -m benchmarks.simulator --businesses 200 --latency 0.05 [--templates-per-waba 20]
--url-file PATH``

It is ``monitor.simulator`` unchanged (same app, same per-request latency, same counters in
``GET /_sim/stats``) plus a small ``/_bench/`` API the harness uses to time a poll:

* ``POST /_bench/watch`` with ``{"pid": N}``: when the next Graph request arrives, record the
  wall-clock time and the CPU seconds process N has used so far (from ``/proc``). That is the
  start of a poll, with the client's start-up cost excluded.
* ``GET /_bench/timing``: first and last Graph request times since the watch, that CPU
  reading, and the number of Graph requests since the watch, in all and by path kind (the
  edge, e.g. ``message_templates``, or ``node`` for a node read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from benchmarks.procs import cpu_seconds
from monitor.simulator import World, build_app, generate_scenario

TOKEN = "demo-token"  # noqa: S105 - the simulator's public demo credential


@dataclass
class Watch:
    pid: int | None = None
    first_request: float | None = None
    last_request: float | None = None
    cpu_at_first_request: float | None = None
    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)


# Generated fleets' id prefixes (monitor.simulator.generate): 1 business, 2 WABA, 3 number.
_NODE_KINDS = {"1": "business", "2": "waba", "3": "phone_number", "4": "template"}


def path_kind(path: str) -> str:
    """The kind of a Graph path: its edge (``/v24.0/{id}/{edge}``), or for a node read what
    the generated id names (``business``, ``waba``, ``phone_number``) or the path's own name
    (``debug_token``).

    Cheap enough to run on every request, unlike ``/_sim/stats`` (which lists every object).
    """
    parts = path.strip("/").split("/")
    if len(parts) >= 3:
        return parts[2]
    node = parts[-1]
    return _NODE_KINDS.get(node[:1], "node") if node.isdigit() else node


BATCH = "batch"  # by_path's count of batch HTTP calls (not Graph calls: not in ``requests``)
WATCH_KEY: web.AppKey[Watch] = web.AppKey("bench_watch", Watch)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(("/_sim", "/_bench")):
        watch = request.app[WATCH_KEY]
        now = time.time()
        if watch.first_request is None:
            watch.first_request = now
            if watch.pid is not None:
                with contextlib.suppress(OSError):
                    watch.cpu_at_first_request = cpu_seconds(watch.pid)
        watch.last_request = now
        if request.method == "POST":  # a Graph batch call: its GETs are counted one by one
            watch.by_path[BATCH] += 1
        else:
            watch.requests += 1
            watch.by_path[path_kind(request.path)] += 1
    return await handler(request)


async def _watch(request: web.Request) -> web.Response:
    body = await request.json()
    pid = body.get("pid")
    if not isinstance(pid, int):
        raise web.HTTPBadRequest(text="pid: expected an integer")
    watch = request.app[WATCH_KEY]
    watch.pid, watch.first_request, watch.last_request = pid, None, None
    watch.cpu_at_first_request, watch.requests = None, 0
    watch.by_path = Counter()
    return web.json_response({"ok": True})


async def _timing_view(request: web.Request) -> web.Response:
    watch = request.app[WATCH_KEY]
    return web.json_response(
        {
            "pid": watch.pid,
            "first_request": watch.first_request,
            "last_request": watch.last_request,
            "cpu_at_first_request": watch.cpu_at_first_request,
            "requests": watch.requests,
            "by_path": dict(sorted(watch.by_path.items())),
        }
    )


def build_bench_app(world: World, latency: float) -> web.Application:
    app = build_app(world, latency=latency)
    app.middlewares.append(_timing)
    app[WATCH_KEY] = Watch()
    app.router.add_post("/_bench/watch", _watch)
    app.router.add_get("/_bench/timing", _timing_view)
    return app


async def serve(args: argparse.Namespace) -> None:
    scenario = generate_scenario(
        businesses=args.businesses,
        wabas_per_business=args.wabas_per_business,
        numbers_per_waba=args.numbers_per_waba,
        seed=args.seed,
        token=TOKEN,
        templates_per_waba=args.templates_per_waba,
    )
    world = World(scenario)
    # Like monitor.simulator.start_simulator, but with the /_bench/ hooks added.
    runner = web.AppRunner(
        build_bench_app(world, args.latency), access_log=None, shutdown_timeout=5.0
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        tmp = args.url_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url}))
        tmp.replace(args.url_file)
        print(f"benchmark simulator on {url}: {scenario.description}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--businesses", type=int, required=True)
    parser.add_argument("--wabas-per-business", type=int, default=10)
    parser.add_argument("--numbers-per-waba", type=int, default=5)
    parser.add_argument("--templates-per-waba", type=int, default=0,
                        help="message templates in every WABA (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds added to every Graph request (default 0.05)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url-file", type=Path, required=True,
                        help="where to write {\"url\": ...} once listening")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
