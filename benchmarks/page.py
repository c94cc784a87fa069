"""The status page at fleet scale: HTML size, and ``/`` and ``/api/v1/status`` latency.

``python -m benchmarks.page [--sizes 10000,50000] [--requests 200] [--output BENCHMARKS.md]``

The store is filled in-process from the simulator's generated fleet (the same fleet as
``benchmarks.run``: 5 numbers per WABA, 10 WABAs per business; every number parsed as a poll
would parse it, about half of them with a problem), then the daemon's own aiohttp app serves
it on a loopback port and a client requests each URL in turn, sequentially (wall times, HTTP
on loopback included); the handler's own work is also timed in CPU seconds, in-process.
The section "Status page (issue 13)" is appended at the end of the output file (an older
copy of it is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from monitor.model import BusinessState, WabaState, parse_phone_number
from monitor.simulator import generate_scenario
from monitor.statuspage import PageCache, build, render, to_json
from monitor.store import Store
from monitor.web import StatusView, build_app

HEADING = "## Status page (issue 13)"
URLS = (
    ("`/`", "/"),
    ("`/api/v1/status`", "/api/v1/status"),
    ("`/?q=synthetic line 4242` (filter, 1 match)", "/?q=synthetic+line+4242"),
    ("`/?q=status:BANNED&page=2` (filter, paged)", "/?q=status%3ABANNED&page=2"),
    ("`/api/v1/status?q=synthetic&page=3`", "/api/v1/status?q=synthetic&page=3"),
)


def fill(numbers: int) -> Store:
    businesses = max(1, numbers // 50)
    scenario = generate_scenario(businesses=businesses, wabas_per_business=10,
                                 numbers_per_waba=5)
    store = Store()
    now = time.time()
    for business in scenario.businesses:
        store.put_business(BusinessState(business.id, configured_cap=1_000))
        for waba in business.wabas:
            parsed = tuple(parse_phone_number({**n.fields, "id": n.id}) for n in waba.numbers)
            store.put_waba(WabaState(business.id, waba.id, numbers=parsed, up=True,
                                     polled=True, last_success=now,
                                     status_changed_at={n.id: now for n in parsed}))
    # interval None: the store is not polled during the run, so no WABA may turn stale
    # half-way through it (that would change the page being measured)
    return store


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def work_cpu(store: Store, path: str, requests: int) -> list[float]:
    """The handler's own work for ``path`` (model, then HTML or JSON), in CPU seconds of this
    process: less disturbed than wall time by other work on a shared machine."""
    url = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    cache = PageCache()
    out = []
    for i in range(requests + 5):
        start = time.process_time()
        model = build(store, cache, time.time(), query=query.get("q", ""),
                      page=int(query.get("page", "1")))
        if url.path == "/":
            render(model)
        else:
            json.dumps(to_json(model))
        if i >= 5:
            out.append(time.process_time() - start)
    return out


def churn_cpu(store: Store, views: int) -> tuple[int, list[float]]:
    """``/`` as it is viewed in steady state: before each view, a sixth of the WABAs (10 s of
    60 s polls) were polled again, with new number objects, so their derived values and their
    businesses' sums are computed again. Only the view is timed."""
    cache = PageCache()
    wabas = store.wabas()
    share = max(1, len(wabas) // 6)
    render(build(store, cache, time.time()))
    out = []
    for i in range(views):
        for state in wabas[(i * share) % len(wabas):][:share]:
            fresh = tuple(dataclasses.replace(n) for n in state.numbers)
            store.put_waba(dataclasses.replace(state, numbers=fresh, last_success=time.time()))
        start = time.process_time()
        size = len(render(build(store, cache, time.time())).encode())
        out.append(time.process_time() - start)
    return size, out


Row = tuple[str, int, float, float, float, float]


async def measure(store: Store, requests: int) -> list[Row]:
    view = StatusView(store=store, registry=None, ready=lambda: True)  # type: ignore[arg-type]
    runner = web.AppRunner(build_app(view), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = []
    try:
        async with aiohttp.ClientSession() as session:
            for label, path in URLS:
                url = f"http://127.0.0.1:{port}{path}"
                size = 0
                times = []
                for i in range(requests + 5):
                    start = time.perf_counter()
                    async with session.get(url) as response:
                        body = await response.read()
                    if i >= 5:  # the first requests fill the per-WABA cache
                        times.append(time.perf_counter() - start)
                    size = len(body)
                cpu = work_cpu(store, path, requests)
                out.append((label, size, *percentiles(times), *percentiles(cpu)))
    finally:
        await runner.cleanup()
    size, cpu = churn_cpu(store, max(10, requests // 4))
    out.append(("`/`, a sixth of the WABAs re-polled before each view (steady state)", size,
                math.nan, math.nan, *percentiles(cpu)))
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(results: dict[int, list[Row]], requests: int, load: str) -> str:
    lines = [
        HEADING, "",
        f"`python -m benchmarks.page` on {machine()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}. The store is "
        "filled in-process from the simulator's generated fleet (5 numbers per WABA, 10 WABAs "
        "per business, about half the numbers with a problem: the worst case for the "
        "problems list), served by the daemon's own aiohttp app on loopback; "
        f"{requests} sequential requests per URL after 5 warm-up requests (they fill the "
        "per-WABA cache, as the first page view after a poll does). *Wall* is the client's "
        "time per request over HTTP; *CPU* is the handler's own work (model, then HTML or "
        "JSON) timed in-process with `time.process_time`, which other work on the machine "
        "disturbs less; the last row per size re-polls a sixth of the WABAs before each of "
        "its views (new, equal number objects: what 10 s of 60 s polls that found nothing "
        "new replace), as a page left open with its 10 s refresh sees it. A shared 2-core "
        f"machine (load average {load} at the start): wall times, p99 above all, are "
        "noisy.", "",
        "| numbers | URL | response size | wall p50 | wall p99 | CPU p50 | CPU p99 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for numbers, rows in results.items():
        for label, size, p50, p99, cpu50, cpu99 in rows:
            wall = ("— | —" if math.isnan(p50) else f"{p50:.1f} ms | {p99:.1f} ms")
            lines.append(f"| {numbers:,} | {label} | {size / 1000:,.1f} kB | {wall} | "
                         f"{cpu50:.1f} ms | {cpu99:.1f} ms |")
    return "\n".join(lines) + "\n"


def write(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if HEADING in text:  # replace our own section, which is the last one
        text = text[: text.index(HEADING)].rstrip() + "\n"
    path.write_text(text.rstrip() + "\n\n" + section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default="BENCHMARKS.md", help="file, or - for stdout")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        store = fill(size)
        print(f"{size:,} numbers filled in {time.perf_counter() - started:.1f} s", flush=True)
        results[size] = asyncio.run(measure(store, args.requests))
        for row in results[size]:
            print(f"  {row[0]}: {row[1]:,} B, wall p50 {row[2]:.1f} ms, p99 {row[3]:.1f} ms;"
                  f" CPU p50 {row[4]:.1f} ms, p99 {row[5]:.1f} ms", flush=True)
    section = report(results, args.requests, load)
    if args.output == "-":
        print(section)
    else:
        write(Path(args.output), section)


if __name__ == "__main__":
    main()
