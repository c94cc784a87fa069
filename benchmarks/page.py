"""The status page at fleet scale: HTML size, and ``/`` and ``/api/v1/status`` latency.

``python -m benchmarks.page [--sizes 10000,50000] [--requests 200] [--output BENCHMARKS.md]``

The store is filled in-process from the simulator's generated fleet (the same fleet as
``benchmarks.run``: 5 numbers per WABA, 10 WABAs per business; every number parsed as a poll
would parse it, about half of them with a problem), then the daemon's own aiohttp app serves
it on a loopback port and a client requests each URL in turn, sequentially. Times are from
the client: HTTP on loopback included. The section "Status page (issue 13)" is appended at
the end of the output file (an older copy of it is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from monitor.model import BusinessState, WabaState, parse_phone_number
from monitor.simulator import generate_scenario
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
                                     polled=True, last_success=now, interval=60.0,
                                     status_changed_at={n.id: now for n in parsed}))
    return store


async def measure(store: Store, requests: int) -> list[tuple[str, int, float, float]]:
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
                times.sort()
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                out.append((label, size, statistics.median(times) * 1000, p99 * 1000))
    finally:
        await runner.cleanup()
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


def report(results: dict[int, list[tuple[str, int, float, float]]], requests: int) -> str:
    lines = [
        HEADING, "",
        f"`python -m benchmarks.page` on {machine()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}. The store is "
        "filled in-process from the simulator's generated fleet (5 numbers per WABA, 10 WABAs "
        "per business, about half the numbers with a problem: the worst case for the "
        "problems list), served by the daemon's own aiohttp app on loopback; "
        f"{requests} sequential requests per URL after 5 warm-up requests (they fill the "
        "per-WABA cache, as the first page view after a poll does). A shared 2-core machine: "
        "timings are noisy.", "",
        "| numbers | URL | response size | p50 | p99 |", "|---:|---|---:|---:|---:|",
    ]
    for numbers, rows in results.items():
        for label, size, p50, p99 in rows:
            lines.append(f"| {numbers:,} | {label} | {size / 1000:,.1f} kB | {p50:.1f} ms | "
                         f"{p99:.1f} ms |")
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
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        store = fill(size)
        print(f"{size:,} numbers filled in {time.perf_counter() - started:.1f} s", flush=True)
        results[size] = asyncio.run(measure(store, args.requests))
        for row in results[size]:
            print(f"  {row[0]}: {row[1]:,} B, p50 {row[2]:.1f} ms, p99 {row[3]:.1f} ms",
                  flush=True)
    section = report(results, args.requests)
    if args.output == "-":
        print(section)
    else:
        write(Path(args.output), section)


if __name__ == "__main__":
    main()
