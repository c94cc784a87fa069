"""Benchmark harness: simulator, daemon and naive baseline, each in its own process.

``python -m benchmarks.run [--sizes 1000,10000,50000] [--latency 0.05] [--scrapes 200]
[--templates 20] [--skip-baseline] [--output BENCHMARKS.md]``

``python -m benchmarks.run --steady [--sizes ...] [--duration 900] [--scan-interval 60]`` runs
the steady-state benchmark instead (:mod:`benchmarks.steady`).

For every fleet size (20, 200, 1,000 businesses x 10 WABAs x 5 numbers) it starts
``benchmarks.simulator`` with that generated fleet and the per-request latency, then:

1. the daemon, ``python -m monitor run`` (explicit ``wabas``, scan interval 1h, jitter 0, so
   exactly one full poll runs, with no discovery): Graph requests counted by the simulator;
   poll wall time from the simulator seeing the first Graph request to ``/-/ready`` turning
   200; CPU seconds over the same span (utime+stime from ``/proc``, the start reading taken
   by the simulator on the first request, so imports and start-up are excluded and reported
   apart); RSS after the poll; then the first scrape (it renders the snapshot), and sequential
   keep-alive scrapes of ``/metrics``, plain and gzip;
2. the naive baseline (:mod:`benchmarks.baseline`), same simulator, same measurements; above
   ``--baseline-full-max`` numbers its sequential poll runs on a sample of the first
   ``--baseline-sample`` numbers and is extrapolated linearly by request count (its request
   count is exact: pages + 3 x numbers), and its gauges are filled for the whole fleet by one
   list pass before the scrapes.

The results table between the ``<!-- results:begin -->`` / ``<!-- results:end -->`` markers of
``--output`` is replaced (the rest of the file is left as is) and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks.procs import (
    Children,
    cpu_seconds,
    machine_busy_seconds,
    memory_kib,
    own_cpu_seconds,
    python_argv,
    wait_until,
)
from benchmarks.profile import Recorder
from benchmarks.report import (
    POLL_ENDPOINTS,
    Measured,
    RunInfo,
    SizeResult,
    load_average,
    report,
    write_output,
)
from benchmarks.scrape import Scraper, decompressed, series_count
from benchmarks.simulator import TOKEN
from monitor.simulator import generate_scenario

WABAS_PER_BUSINESS = 10
NUMBERS_PER_WABA = 5
DEFAULT_CONCURRENCY = 16  # graph.concurrency default; the config leaves it unset
DAEMON_PAGE_LIMIT = 100
GRAPH_DEFAULT_PAGE_LIMIT = 25  # what the baseline gets by not passing limit=
READY_POLL = 0.01
REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- small helpers


def http_json(url: str, body: object | None = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a local URL: {url!r}")
    request = urllib.request.Request(  # noqa: S310 - checked above: our own processes
        url, data=data, method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())


def read_url_file(path: Path) -> str | None:
    try:
        url: str = json.loads(path.read_text())["url"]
        return url
    except (OSError, ValueError, KeyError):
        return None


def start_simulator(children: Children, work: Path, tag: str, *, businesses: int,
                    latency: float, templates: int) -> tuple[Any, str]:
    """``benchmarks.simulator`` as a child with the generated fleet, once it listens: the
    process and its URL (files ``simulator-{tag}.json`` and ``.log`` in ``work``)."""
    url_file, sim_log = work / f"simulator-{tag}.json", work / f"simulator-{tag}.log"
    sim = children.start(python_argv(
        "-m", "benchmarks.simulator", "--businesses", str(businesses),
        "--wabas-per-business", str(WABAS_PER_BUSINESS),
        "--numbers-per-waba", str(NUMBERS_PER_WABA), "--latency", str(latency),
        "--templates-per-waba", str(templates), "--url-file", str(url_file)),
        log=sim_log, env=child_env(), cwd=work)
    try:
        def listening() -> bool:
            alive(sim, "simulator", sim_log)
            return read_url_file(url_file) is not None

        wait_until(listening, 300, "the simulator to start")
    except BaseException:
        children.stop(sim)
        raise
    url = read_url_file(url_file)
    assert url is not None
    return sim, url


def daemon_port(log_path: Path) -> int | None:
    """The port from the daemon's ``started`` log event (it listens on port 0)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if '"started"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError, AttributeError):
            event = json.loads(line)
            if event.get("event") == "started":
                return int(str(event["listen"]).rpartition(":")[2])
    return None


SOURCE: list[Path] = [REPO]  # where children import ``monitor`` from (see snapshot_source)


def child_env(**extra: str) -> dict[str, str]:
    """Children run in the work directory and import the snapshot of ``monitor``."""
    parts = [str(p) for p in dict.fromkeys([*SOURCE, REPO])]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(parts), **extra}


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def snapshot_source(work: Path, root: Path = REPO) -> str:
    """Copy ``root/monitor`` into the work directory, so that one run measures one version.

    The package may change under a long run (it is being worked on); every child imports the
    copy. Returns a description of the version: the commit, and whether ``monitor/`` had
    uncommitted changes.
    """
    if not (root / "monitor" / "__init__.py").is_file():
        raise SystemExit(f"--source: no monitor package in {root}")
    target = work / "src"
    shutil.copytree(root / "monitor", target / "monitor",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    SOURCE[:] = [target]
    commit = _git(root, "rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = _git(root, "status", "--porcelain", "--", "monitor")
    where = "" if root == REPO else f" (from {root})"
    return f"{commit}{where}" + (" with uncommitted changes in monitor/" if dirty else "")


def mb(kib: int) -> float:
    return kib * 1024 / 1e6


def alive(proc: Any, what: str, log_path: Path) -> None:
    if proc.poll() is not None:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} exited with status {proc.returncode}; log tail:\n{tail}")


# --------------------------------------------------------------------------- fleet + config


APP_ID = "900000000000001"  # the simulator's default app id for generated fleets


def fleet_config(businesses: int, sim_url: str, path: Path, state: Path, *,
                 templates: int = 0, template_series: str = "problems") -> int:
    """Write the daemon's config for the generated fleet; returns the number of WABAs.

    The state directory is a fresh one per run: nothing is restored, and a benchmark never
    writes into the user's default state directory (~/.local/state/waba-monitor). With
    templates in the fleet the template poll keeps its default interval: its first run starts
    min(scan interval, 30 s) after the daemon does, inside the measured first cycle; without
    them ``template_interval: 0`` turns it off.
    """
    scenario = generate_scenario(businesses=businesses, wabas_per_business=WABAS_PER_BUSINESS,
                                 numbers_per_waba=0, token=TOKEN)
    schedule: dict[str, Any] = {"scan_interval": "1h", "jitter": 0}
    if templates == 0:
        schedule["template_interval"] = 0
    config = {
        # With the scenario's app id, WABA subscriptions are read too (discovery cadence).
        "graph": {"base_url": sim_url, "api_version": "v24.0", "app_id": APP_ID},
        "businesses": [{"id": b.id, "wabas": [w.id for w in b.wabas]}
                       for b in scenario.businesses],
        "schedule": schedule,
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": str(state)},
    }
    if templates and template_series != "problems":
        config["templates"] = {"series": template_series}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return sum(len(b.wabas) for b in scenario.businesses)


def wait_cycle(proc: Any, log_path: Path, sim_url: str, wabas: int, templates: bool,
               timeout: float = 900.0) -> None:
    """Wait until the first cycle's per-WABA reads are done: every WABA's node and
    subscriptions read once (after the first poll), and its templates when they are on (one
    page each at 20 a WABA). A quiet spell alone is not enough: on a busy machine the daemon
    can pause for seconds between them."""
    wanted = {"waba": wabas, "subscribed_apps": wabas}
    if templates:
        wanted["message_templates"] = wabas

    def done() -> bool:
        alive(proc, "daemon", log_path)
        by_path = http_json(f"{sim_url}/_bench/timing")["by_path"]
        return all(int(by_path.get(k, 0)) >= n for k, n in wanted.items())

    wait_until(done, timeout, "the first cycle's WABA reads", interval=0.5)


# --------------------------------------------------------------------------- measuring




def measure_scrapes(result: Measured, pid: int, url: str, args: argparse.Namespace,
                    dump: Path | None = None) -> None:
    """The first scrape after the poll, then the gzip series, then the plain one.

    The first scrape and the gzip series use Prometheus's own request headers, as the scrapes
    that matter. Plain (uncompressed) scrapes come last and each may take at most
    ``--plain-timeout`` seconds: an exporter that cannot answer one in time is left alone.
    """
    scraper = Scraper(url)
    try:
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        body = scraper.metrics("gzip")
        result.first_scrape_ms = (time.perf_counter() - t0) * 1000
        result.first_scrape_cpu = cpu_seconds(pid) - cpu0
        result.series = series_count(body)
        if dump is not None:
            dump.write_bytes(decompressed(body))
        del body
        result.gzip = scraper.run("gzip", args.scrapes, args.scrape_budget)
    finally:
        scraper.close()
    result.rss_after_scrapes_mb = mb(memory_kib(pid)["VmRSS"])
    plain = Scraper(url, timeout=args.plain_timeout)
    try:
        result.plain = plain.run("plain", args.scrapes, args.scrape_budget)
    except TimeoutError:
        result.notes.append(f"an uncompressed scrape did not finish within "
                            f"{args.plain_timeout:.0f} s; no plain results")
        log(f"plain scrape timed out after {args.plain_timeout:.0f} s")
    finally:
        plain.close()
        result.peak_rss_mb = mb(memory_kib(pid)["VmHWM"])


def wait_ready(proc: Any, log_path: Path, url: str, sim_url: str, size: SizeResult) -> None:
    """Return as soon as the daemon's ``/-/ready`` answers 200.

    Probing is cheap for the daemon but not free (readiness looks at every WABA), so it is
    probed once a second until the simulator has served the minimum number of requests, and
    every 10 ms from then on: the end of the poll is timed to about 10 ms without the probes
    adding measurable CPU to it.
    """
    ready = Scraper(url, timeout=60)
    timeout = max(600.0, 20 * size.minimum_requests * size.latency / DEFAULT_CONCURRENCY)
    deadline = time.monotonic() + timeout
    last_probe = 0.0
    try:
        while True:
            alive(proc, "daemon", log_path)
            now = time.monotonic()
            near_end = http_json(f"{sim_url}/_bench/timing")["requests"] >= size.minimum_requests
            if near_end or now - last_probe >= 1.0:
                last_probe = now
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if ready.get("/-/ready")[0] == 200:
                        return
            if now > deadline:
                raise TimeoutError(f"daemon not ready after {timeout:.0f}s")
            time.sleep(READY_POLL if near_end else 0.1)
    finally:
        ready.close()


def settle(sim_url: str, quiet: float = 2.0, limit: float = 300.0) -> None:
    """Wait until the simulator has seen no request for ``quiet`` seconds.

    Work scheduled beside the first poll (business reads) may still be running when the daemon
    turns ready; it is counted, and kept out of the scrape measurements.
    """
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        # Settings reads trickle all day (each number once per settings_interval): not counted.
        by_path = http_json(f"{sim_url}/_bench/timing")["by_path"]
        count = sum(int(n) for k, n in by_path.items() if k != "settings")
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)


def measure_daemon(children: Children, sim_url: str, config: Path, work: Path,
                   size: SizeResult, args: argparse.Namespace) -> Measured:
    result = Measured(concurrency=DEFAULT_CONCURRENCY)
    http_json(f"{sim_url}/_sim/stats/reset", {})
    log_path = work / f"daemon-{size.numbers}.log"
    spawned = time.time()
    proc = children.start(python_argv("-m", "monitor", "run", "--config", str(config)),
                          log=log_path, env=child_env(WABA_MONITOR_ACCESS_TOKEN=TOKEN), cwd=work)
    recorder: Recorder | None = None
    try:
        http_json(f"{sim_url}/_bench/watch", {"pid": proc.pid})
        if args.profile is not None:
            recorder = Recorder(children, proc.pid,
                                args.profile / f"daemon-{size.numbers}-poll.txt",
                                work / f"py-spy-{size.numbers}-poll.log")

        def started() -> bool:
            alive(proc, "daemon", log_path)
            return daemon_port(log_path) is not None

        wait_until(started, 300, "the daemon to start")
        url = f"http://127.0.0.1:{daemon_port(log_path)}"
        wait_ready(proc, log_path, url, sim_url, size)
        ready_at, cpu_ready = time.time(), cpu_seconds(proc.pid)
        result.rss_after_poll_mb = mb(memory_kib(proc.pid)["VmRSS"])
        timing = http_json(f"{sim_url}/_bench/timing")
        if timing["pid"] != proc.pid or timing["cpu_at_first_request"] is None:
            raise RuntimeError(f"the simulator did not time the daemon's first request: {timing}")
        result.poll_wall = ready_at - timing["first_request"]
        result.poll_cpu = cpu_ready - timing["cpu_at_first_request"]
        result.startup_wall = timing["first_request"] - spawned
        result.startup_cpu = timing["cpu_at_first_request"]
        if recorder is not None:
            log(f"profile: {recorder.stop()}")
            recorder = None
        wait_cycle(proc, log_path, sim_url, size.wabas, bool(args.templates))
        settle(sim_url)
        timing = http_json(f"{sim_url}/_bench/timing")
        # The whole first cycle: the poll, WABA/business/subscription reads, one template poll
        # (the settle's quiet seconds are in it: an idle daemon costs next to nothing).
        result.cycle_cpu = cpu_seconds(proc.pid) - timing["cpu_at_first_request"]
        result.cycle_wall = (timing["last_request"] or ready_at) - timing["first_request"]
        result.rss_after_cycle_mb = mb(memory_kib(proc.pid)["VmRSS"])
        by_endpoint = dict(http_json(f"{sim_url}/_sim/stats")["by_endpoint"])
        result.requests_by_endpoint = by_endpoint
        result.requests = sum(n for e, n in by_endpoint.items() if e in POLL_ENDPOINTS)
        result.other_requests = sum(n for e, n in by_endpoint.items() if e not in POLL_ENDPOINTS)
        log(f"daemon {size.numbers}: {result.requests} poll requests (+{result.other_requests} "
            f"other), poll {result.poll_wall:.2f}s wall, {result.poll_cpu:.2f}s CPU, "
            f"RSS {result.rss_after_poll_mb:.0f} MB")
        if args.profile is not None:
            recorder = Recorder(children, proc.pid,
                                args.profile / f"daemon-{size.numbers}-scrapes.txt",
                                work / f"py-spy-{size.numbers}-scrapes.log")
        try:
            measure_scrapes(result, proc.pid, url, args,
                            work / f"metrics-daemon-{size.numbers}.txt" if args.keep else None)
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            result.notes.append(f"scrapes failed: {type(exc).__name__}: {exc}")
            log(f"daemon {size.numbers}: scrapes failed: {exc!r}")
        after = http_json(f"{sim_url}/_sim/stats")["total"]
        if after != sum(by_endpoint.values()):
            result.notes.append(f"{after - sum(by_endpoint.values())} Graph requests during "
                                "the scrapes")
    finally:
        if recorder is not None:
            log(f"profile: {recorder.stop()}")
        status = children.stop(proc)
        if status not in (0, None):
            result.notes.append(f"the daemon exited with status {status}"
                                + (" (still busy 10 s after SIGTERM, so killed)"
                                   if status == -9 else ""))
    return result


def measure_baseline(children: Children, sim_url: str, config: Path, work: Path,
                     size: SizeResult, args: argparse.Namespace) -> Measured:
    result = Measured()
    sample_wabas: int | None = None
    if size.numbers > args.baseline_full_max:
        sample_wabas = max(1, args.baseline_sample // NUMBERS_PER_WABA)
        result.extrapolated = True
    http_json(f"{sim_url}/_sim/stats/reset", {})
    log_path = work / f"baseline-{size.numbers}.log"
    url_file = work / f"baseline-{size.numbers}.json"
    argv = ["-m", "benchmarks.baseline", "--config", str(config), "--url-file", str(url_file)]
    if sample_wabas is not None:
        argv += ["--max-wabas", str(sample_wabas)]
    spawned = time.time()
    proc = children.start(python_argv(*argv), log=log_path,
                          env=child_env(WABA_MONITOR_ACCESS_TOKEN=TOKEN), cwd=work)
    try:
        http_json(f"{sim_url}/_bench/watch", {"pid": proc.pid})

        def listening() -> bool:
            alive(proc, "baseline", log_path)
            return read_url_file(url_file) is not None

        wait_until(listening, 300, "the baseline to start")
        url = read_url_file(url_file)
        assert url is not None
        polled_numbers = (sample_wabas or size.wabas) * NUMBERS_PER_WABA
        expected = polled_numbers * 3 + (sample_wabas or size.wabas)
        timeout = 600 + expected * (args.latency + 0.05)

        def state_is(*wanted: str) -> bool:
            alive(proc, "baseline", log_path)
            state = http_json(f"{url}/bench/status")
            if state["state"] == "failed":
                raise RuntimeError(f"baseline failed: {state['error']}")
            return state["state"] in wanted

        log(f"baseline {size.numbers}: sequential poll of {polled_numbers} numbers "
            f"(~{expected * args.latency / 60:.1f} min at the latency alone)")
        wait_until(lambda: state_is("polled"), timeout, "the baseline's poll", interval=0.5)
        status = http_json(f"{url}/bench/status")
        stats = http_json(f"{sim_url}/_sim/stats")
        timing = http_json(f"{sim_url}/_bench/timing")
        poll = status["poll"]
        wall = poll["wall_end"] - poll["wall_start"]
        cpu = poll["cpu_end"] - poll["cpu_start"]
        result.requests_by_endpoint = dict(stats["by_endpoint"])
        result.sample_requests = int(stats["total"])
        if result.sample_requests != poll["requests"]:
            result.notes.append(f"simulator counted {result.sample_requests}, "
                                f"baseline sent {poll['requests']}")
        result.startup_wall = poll["wall_start"] - spawned
        result.startup_cpu = timing["cpu_at_first_request"] or poll["cpu_start"]
        result.rss_after_poll_mb = mb(memory_kib(proc.pid)["VmRSS"])
        if sample_wabas is None:
            result.requests, result.poll_wall, result.poll_cpu = result.sample_requests, wall, cpu
        else:
            factor = size.baseline_full_requests / result.sample_requests
            result.requests = size.baseline_full_requests
            result.sample_numbers = int(poll["numbers"])
            result.sample_wall, result.sample_cpu = wall, cpu
            result.poll_wall, result.poll_cpu = wall * factor, cpu * factor
        log(f"baseline {size.numbers}: {result.sample_requests} requests in {wall:.1f}s wall, "
            f"{cpu:.2f}s CPU" + (" (sample)" if sample_wabas else ""))
        http_json(f"{url}/bench/populate", {})
        wait_until(lambda: state_is("populated"), 1800, "the baseline's gauges", interval=0.5)
        populated = http_json(f"{url}/bench/status")["populate"]
        log(f"baseline {size.numbers}: gauges filled for {populated['numbers']} numbers in "
            f"{populated['wall_end'] - populated['wall_start']:.1f}s")
        try:
            measure_scrapes(result, proc.pid, url, args,
                            work / f"metrics-baseline-{size.numbers}.txt" if args.keep else None)
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            result.notes.append(f"scrapes failed: {type(exc).__name__}: {exc}")
            log(f"baseline {size.numbers}: scrapes failed: {exc!r}")
    finally:
        status_code = children.stop(proc)
        if status_code not in (0, None):
            result.notes.append(f"the baseline exited with status {status_code}"
                                + (" (still busy 10 s after SIGTERM, so killed)"
                                   if status_code == -9 else ""))
    return result


def run_size(children: Children, numbers: int, work: Path,
             args: argparse.Namespace) -> SizeResult:
    per_business = WABAS_PER_BUSINESS * NUMBERS_PER_WABA
    if numbers % per_business:
        raise SystemExit(f"--sizes: {numbers} is not a multiple of {per_business}")
    businesses = numbers // per_business
    wabas = businesses * WABAS_PER_BUSINESS
    minimum = wabas * math.ceil(NUMBERS_PER_WABA / DAEMON_PAGE_LIMIT)
    size = SizeResult(
        numbers=numbers, businesses=businesses, wabas=wabas, minimum_requests=minimum,
        latency=args.latency,
        baseline_full_requests=wabas * math.ceil(NUMBERS_PER_WABA / GRAPH_DEFAULT_PAGE_LIMIT)
        + 3 * numbers,
    )
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    log(f"=== {numbers} numbers: {businesses} businesses x {WABAS_PER_BUSINESS} WABAs x "
        f"{NUMBERS_PER_WABA} numbers, latency {args.latency * 1000:.0f} ms")
    sim, sim_url = start_simulator(children, work, str(numbers), businesses=businesses,
                                   latency=args.latency, templates=args.templates)
    try:
        config = work / f"config-{numbers}.yaml"
        fleet_config(businesses, sim_url, config, work / f"state-{numbers}",
                     templates=args.templates, template_series=args.template_series)
        try:
            size.daemon = measure_daemon(children, sim_url, config, work, size, args)
        except Exception as exc:  # keep going: a failure at one size is a result too
            log(f"daemon {numbers} failed:\n{traceback.format_exc()}")
            size.daemon = Measured(concurrency=DEFAULT_CONCURRENCY,
                                   notes=[f"FAILED: {type(exc).__name__}: {exc}"[:2000]])
            args.keep = True
        if not args.skip_baseline:
            try:
                size.baseline = measure_baseline(children, sim_url, config, work, size, args)
            except Exception as exc:
                log(f"baseline {numbers} failed:\n{traceback.format_exc()}")
                size.baseline = Measured(notes=[f"FAILED: {type(exc).__name__}: {exc}"[:2000]])
                args.keep = True
    finally:
        children.stop(sim)
    # Everything we started has been waited for, so its CPU is in own_cpu_seconds().
    other = max(0.0, (machine_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    wall = time.monotonic() - wall0
    share = 100 * other / wall / len(os.sched_getaffinity(0))
    size.interference = (f"processes other than the benchmark's used {other:.0f} CPU-s over "
                         f"these {wall:.0f} s ({share:.0f} % of the machine)")
    log(f"{numbers}: {size.interference}")
    return size


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000",
                        help="fleet sizes in numbers, multiples of 50 (default 1000,10000,50000)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the simulator adds to each Graph request (default 0.05)")
    parser.add_argument("--scrapes", type=int, default=200,
                        help="sequential scrapes per kind, plain and gzip (default 200)")
    parser.add_argument("--scrape-budget", type=float, default=60.0,
                        help="stop a scrape series after this many seconds (default 60)")
    parser.add_argument("--plain-timeout", type=float, default=120.0,
                        help="give up on an uncompressed scrape after this many seconds "
                             "(default 120)")
    parser.add_argument("--templates", type=int, default=20,
                        help="message templates per WABA in the fleet (default 20); 0 also "
                             "turns the daemon's template poll off (schedule.template_interval 0)")
    parser.add_argument("--template-series", choices=("problems", "all", "none"),
                        default="problems",
                        help="the daemon's templates.series (default problems, its default)")
    parser.add_argument("--skip-baseline", action="store_true", help="measure the daemon only")
    parser.add_argument("--baseline-full-max", type=int, default=1000,
                        help="largest fleet the baseline polls in full (default 1000)")
    parser.add_argument("--baseline-sample", type=int, default=1000,
                        help="numbers the baseline polls above that, to extrapolate (default 1000)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md",
                        help="Markdown file whose results section is replaced (default "
                             "BENCHMARKS.md); '-' prints only")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record py-spy profiles of the daemon's poll and scrapes into DIR "
                             "(perturbs the numbers: use for diagnosis, not for the table)")
    parser.add_argument("--source", type=Path, default=REPO, metavar="DIR",
                        help="measure the monitor package of another checkout or worktree "
                             "(default: this one); it is copied at start either way")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (configs, process logs, one scrape each)")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected numbers separated by commas, got {args.sizes!r}")
    if not args.size_list or any(n <= 0 for n in args.size_list):
        parser.error("--sizes: expected positive numbers")
    if args.templates < 0:
        parser.error("--templates must be >= 0")
    if args.latency < 0 or args.scrapes < 1:
        parser.error("--latency must be >= 0 and --scrapes >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if "--steady" in given:  # the steady-state benchmark (issue 14): benchmarks.steady
        from benchmarks import steady

        return steady.main([a for a in given if a != "--steady"],
                           prefix="python -m benchmarks.run --steady")
    args = parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = dt.datetime.now(dt.UTC)
    load_before = load_average()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="waba-bench-"))
    log(f"work directory {work}")
    version = snapshot_source(work, args.source.resolve())
    log(f"measuring monitor/ at {version} (copied to {SOURCE[0]})")
    results: list[SizeResult] = []
    ok = False
    try:
        with Children() as children:
            for numbers in args.size_list:
                results.append(run_size(children, numbers, work, args))
        ok = True
    finally:
        if args.json is not None and results:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")
    run = RunInfo(
        command=command.strip(), started=started, elapsed=time.monotonic() - t0,
        latency=args.latency, concurrency=DEFAULT_CONCURRENCY, scrapes=args.scrapes,
        scrape_budget=args.scrape_budget, baseline_sample=args.baseline_sample,
        load_before=load_before, load_after=load_average(), version=version,
        shape=f"businesses x {WABAS_PER_BUSINESS} WABAs x {NUMBERS_PER_WABA} numbers "
              f"(1,000 = 20 x 10 x 5; 10,000 = 200 x 10 x 5; 50,000 = 1,000 x 10 x 5), "
              + (f"{args.templates} message templates per WABA (templates.series "
                 f"{args.template_series})" if args.templates else
                 "no message templates (schedule.template_interval 0)"))
    section = report(results, run)
    print(section)
    if str(args.output) != "-":
        write_output(args.output, section)
        log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
