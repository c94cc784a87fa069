"""Where the daemon's memory is (issue 14): a tracemalloc summary of a settled fleet.

``python -m benchmarks.memory --numbers 10000 [--templates 20] [--top 30] [--no-trace]``

It starts ``benchmarks.simulator`` as a child (the generated fleet, ``--templates`` per WABA),
writes the steady benchmark's configuration (``benchmarks.steady.steady_config``: discovery,
app id, scan interval) and runs the daemon **in this process** (``monitor.runtime.Runtime``,
as ``waba-monitor run`` does), so it can take a tracemalloc snapshot itself: no debug hook in
the product. It waits for ``/-/ready`` (the first full poll), then for every WABA's template,
node and subscription reads, then ``--settle`` seconds, while it reads the metrics body every
``--scrape-interval`` seconds as scrapes would; then it reads the body until it is settled,
collects, and prints:

* RSS (VmRSS, VmHWM) and the memory tracemalloc traces (started before the daemon, so
  imports are left out);
* the top ``--top`` allocation sites by line (and, with ``--frames N``, by traceback);
* gc-tracked objects by type (top 20; atoms such as str and float are not gc-tracked);
* the store's dicts and sets (and the state writer's, the monitor's, the scheduler's):
  entries and deep size (objects shared between them are
  counted under the first one that reaches them, in the order listed).

Tracemalloc makes the daemon slower and its RSS larger; ``--no-trace`` measures RSS alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import run as bench
from benchmarks.procs import Children, memory_kib
from benchmarks.simulator import TOKEN
from benchmarks.steady import APP_SECRET, VERIFY_TOKEN, steady_config

MB = 1e6


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes reachable from ``root`` through containers and slotted objects, not yet ``seen``."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, bool | type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif isinstance(obj, str | bytes | int | float):
            continue
        else:
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    with contextlib.suppress(AttributeError):
                        stack.append(getattr(obj, name))
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
    return total


def store_sizes(store: Any, seen: set[int]) -> Iterator[tuple[str, int, int]]:
    """(attribute, entries, deep bytes) of an object's containers, biggest first."""
    rows = []
    for name, value in vars(store).items() if hasattr(store, "__dict__") else ():
        if isinstance(value, dict | set | list) or type(value).__name__ == "deque":
            rows.append((name, len(value), deep_size(value, seen)))
        elif hasattr(value, "runs") and hasattr(value, "loose"):  # the store's _Runs
            rows.append((name, len(value.runs), deep_size(value, seen)))
    yield from sorted(rows, key=lambda r: -r[2])


def rss() -> str:
    mem = memory_kib(os.getpid())
    return f"VmRSS {mem['VmRSS'] * 1024 / MB:,.1f} MB, VmHWM {mem['VmHWM'] * 1024 / MB:,.1f} MB"


def report(runtime: Any, args: argparse.Namespace, started: float) -> None:
    gc.collect()
    print(f"\n## {args.numbers:,} numbers, {args.templates} templates a WABA "
          f"({time.monotonic() - started:.0f} s after start)\n")
    print(f"RSS: {rss()}")
    libc = ctypes.util.find_library("c")
    if args.trim and libc:
        ctypes.CDLL(libc).malloc_trim(0)
        print(f"RSS after malloc_trim(0) (free heap memory given back): {rss()}")
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),))
        current, peak = tracemalloc.get_traced_memory()
        print(f"tracemalloc: current {current / MB:,.1f} MB, peak {peak / MB:,.1f} MB\n")
        stats = snapshot.statistics("lineno")
        print(f"Top {args.top} by line (MB, blocks):")
        for stat in stats[: args.top]:
            frame = stat.traceback[0]
            print(f"  {stat.size / MB:8.2f} {stat.count:>9,}  "
                  f"{_short(frame.filename)}:{frame.lineno}")
        print(f"  total {sum(s.size for s in stats) / MB:,.1f} MB")
        if args.frames > 1:
            print(f"\nTop {args.top} by traceback:")
            for stat in snapshot.statistics("traceback")[: args.top]:
                print(f"  {stat.size / MB:8.2f} {stat.count:>9,}")
                for line in stat.traceback.format(most_recent_first=True)[: 2 * args.frames]:
                    print(f"      {line.strip()}")
        by_file = snapshot.statistics("filename")
        print("\nTop 15 by file (MB):")
        for stat in by_file[:15]:
            print(f"  {stat.size / MB:8.2f}  {_short(stat.traceback[0].filename)}")
    gc.unfreeze()  # the daemon froze its state: gc.get_objects() leaves frozen objects out
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    print("\ngc-tracked objects by type (top 20):")
    for name, count in counts.most_common(20):
        print(f"  {count:>10,}  {name}")
    print("\nStore containers (entries, deep MB; shared objects counted once, first listed):")
    seen: set[int] = set()
    for name, entries, size in store_sizes(runtime.store, seen):
        print(f"  {name:24} {entries:>9,} {size / MB:8.2f}")
    others = [("state writer", runtime.writer), ("monitor", runtime.monitor),
              ("jobs", runtime.jobs)]
    for what, obj in others:
        if obj is not None:
            print(f"{what} containers, what the store does not hold (entries, deep MB):")
            for name, entries, size in list(store_sizes(obj, seen))[:6]:
                print(f"  {name:24} {entries:>9,} {size / MB:8.2f}")
    members(runtime.store)


def members(store: Any) -> None:
    """The store's gzip members by family: how many, their bytes, and what Python holds."""
    fragments = [f for parts in store._waba_fragments.values() for f in parts]
    fragments += list(store._business_fragments.values())
    seen: set[int] = set()
    by_family: dict[str, list[int]] = {}
    for fragment in fragments:
        if id(fragment) in seen:
            continue
        seen.add(id(fragment))
        for name, member in fragment.items():
            row = by_family.setdefault(name, [0, 0, 0, 0])
            if id(member) in seen:
                row[3] += 1
                continue
            seen.add(id(member))
            row[0] += 1
            row[1] += len(member)
            row[2] += sys.getsizeof(member)
    dicts = {id(f): sys.getsizeof(f) for f in fragments}
    print(f"\nFragments: {len(dicts):,} distinct dicts, {sum(dicts.values()) / MB:,.2f} MB")
    print("gzip members by family (distinct, bytes MB, held MB, repeats):")
    rows = sorted(by_family.items(), key=lambda kv: -kv[1][2])
    for name, (count, size, held, repeats) in rows[:25]:
        print(f"  {count:>8,} {size / MB:7.2f} {held / MB:7.2f} {repeats:>8,}  {name}")
    total = [sum(r[i] for _, r in rows) for i in range(4)]
    print(f"  {total[0]:>8,} {total[1] / MB:7.2f} {total[2] / MB:7.2f} {total[3]:>8,}  total "
          f"in {len(rows)} families")


def _short(filename: str) -> str:
    for marker in ("/monitor/", "/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


async def run_daemon(config: Path, args: argparse.Namespace, wabas: int) -> None:
    from monitor.logs import configure_logging
    from monitor.runtime import Runtime, file_loader

    configure_logging(level="warning", fmt="json")
    environ = {**os.environ, "WABA_MONITOR_ACCESS_TOKEN": TOKEN,
               "WABA_MONITOR_APP_SECRET": APP_SECRET,
               "WABA_MONITOR_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN}
    loader = file_loader(config, environ=environ)
    loaded = loader()
    if not args.no_trace:
        tracemalloc.start(args.frames)
    started = time.monotonic()

    async def scrapes(store: Any) -> None:
        """What Prometheus does every scrape interval: read the body (not sent anywhere)."""
        while True:
            await asyncio.sleep(args.scrape_interval)
            store.body()

    async with Runtime(loaded.settings, access_token=loaded.access_token,
                       app_secret=loaded.app_secret,
                       webhook_verify_token=loaded.webhook_verify_token, shard=loaded.shard,
                       loader=loader) as runtime:
        scraping = asyncio.ensure_future(scrapes(runtime.store)) \
            if args.scrape_interval > 0 else None
        while not runtime.ready:  # noqa: ASYNC110 - polling a property, no event
            await asyncio.sleep(0.5)
        bench.log(f"ready after {time.monotonic() - started:.1f} s; {rss()}")
        store = runtime.store
        deadline = time.monotonic() + args.timeout

        def reads_done() -> bool:
            want = wabas if args.templates else 0
            return (len(store._templates) >= want and len(store._waba_nodes) >= wabas
                    and len(store._subscriptions) >= wabas)

        while not reads_done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(1.0)
        bench.log(f"reads: templates {len(store._templates):,}, nodes "
                  f"{len(store._waba_nodes):,}, subscriptions {len(store._subscriptions):,} "
                  f"after {time.monotonic() - started:.1f} s; settling {args.settle:g} s")
        await asyncio.sleep(args.settle)
        if scraping is not None:
            scraping.cancel()
        # What scrapes do: read the body (a new version with nothing changed each time);
        # a store that compresses WABAs by runs does so over the first reads.
        reads = []
        for _ in range(100):
            t0 = time.process_time()
            store.body()
            reads.append(time.process_time() - t0)
            loose = sum(len(getattr(getattr(store, k, None), "loose", ()))
                        for k in ("_number_runs", "_account_runs"))
            if not loose and len(reads) > 1:
                break
            store._version += 1  # a new version with nothing changed
        bench.log(f"body reads until every run was compressed: {len(reads)}, CPU-s each "
                  f"{', '.join(f'{r:.3f}' for r in reads)} (noisy)")
        report(runtime, args, started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--templates", type=int, default=20, help="templates per WABA")
    parser.add_argument("--scan-interval", type=float, default=60.0)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to wait after the reads (default 10)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="longest wait for the template/node reads after ready")
    parser.add_argument("--scrape-interval", type=float, default=15.0,
                        help="read the body every N seconds from the start, as scrapes do "
                        "(0: never; default 15)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--frames", type=int, default=1,
                        help="tracemalloc frames kept (>1 adds a by-traceback summary)")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, no tracemalloc")
    parser.add_argument("--trim", action="store_true",
                        help="also report RSS after glibc's malloc_trim(0): how much of it "
                        "is freed memory the allocator kept")
    args = parser.parse_args(argv)
    per_business = bench.WABAS_PER_BUSINESS * bench.NUMBERS_PER_WABA
    if args.numbers % per_business:
        raise SystemExit(f"--numbers: not a multiple of {per_business}")
    businesses = args.numbers // per_business
    wabas = businesses * bench.WABAS_PER_BUSINESS
    with Children() as children, tempfile.TemporaryDirectory(prefix="waba-mem-") as tmp:
        work = Path(tmp)
        _, sim_url = bench.start_simulator(children, work, "memory", businesses=businesses,
                                           latency=args.latency, templates=args.templates)
        config = work / "config.yaml"
        steady_config(businesses, sim_url, config, work / "state", args.scan_interval)
        bench.log(f"simulator up ({businesses} businesses, {wabas:,} WABAs); starting the "
                  f"daemon in-process{'' if args.no_trace else ' with tracemalloc'}")
        asyncio.run(run_daemon(config, args, wabas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
