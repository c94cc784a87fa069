"""Steady state (issue 14): what the daemon takes of a machine all day, with everything on.

``python -m benchmarks.run --steady --sizes 10000,50000 --duration 900 --scan-interval 60``
(or ``python -m benchmarks.steady`` with the same options)

For every fleet size it starts ``benchmarks.simulator`` (generated fleet, ``--templates``
per WABA, ``--latency`` per request) and the daemon with its defaults except:

* ``schedule.scan_interval`` (``--scan-interval``);
* businesses listed **without** ``wabas``, so WABAs are discovered and business, WABA and
  subscription reads run at the default discovery cadence (15 min), as a user's would;
* ``graph.app_id`` and an app secret and verify token (environment), so the webhook receiver
  is on and subscriptions and the token are read too.

The simulator delivers signed webhooks to the daemon's webhook endpoint. Once the first full
poll is done (``/-/ready``) it waits for the first round of the 15 min reads (every WABA's
node, subscription and templates read once: a start-up cost, reported apart; later rounds
find most bodies unchanged; ``--no-warmup`` measures from the first poll instead), then
measures for ``--duration`` seconds while it

* changes a few numbers a minute (status or quality, ``PATCH /_sim/numbers/{id}``) and now and
  then a template's quality (``POST /_sim/actions``): the simulator sends the matching webhooks;
* scrapes ``/metrics`` every ``--scrape-interval`` seconds with Prometheus's headers (gzip);
* fetches the status page ``/`` every ``--status-interval`` seconds;
* samples the daemon's utime+stime and VmRSS from ``/proc`` every second.

It reports the CPU share of one core (mean, p99 and max over 10 s windows), RSS (mean and
peak of the samples, and VmHWM), Graph requests per hour by endpoint (counted by the
simulator) and per WABA against Meta's per-WABA budget, scrape and status page latency (p50,
p99 by nearest rank). The section between ``<!-- steady:begin -->`` and ``<!-- steady:end -->``
of ``--output`` is replaced and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import itertools
import json
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks import run as bench
from benchmarks.procs import (
    Children,
    cpu_seconds,
    machine_busy_seconds,
    memory_kib,
    own_cpu_seconds,
    python_argv,
    wait_until,
)
from benchmarks.report import load_average, machine, write_output
from benchmarks.scrape import PROMETHEUS_HEADERS, Scraper, percentile
from benchmarks.simulator import BATCH, TOKEN

BEGIN, END = "<!-- steady:begin -->", "<!-- steady:end -->"
APP_SECRET = "bench-app-secret"  # noqa: S105 - shared by the local simulator and daemon only
VERIFY_TOKEN = "bench-verify-token"  # noqa: S105
WINDOW = 10.0  # seconds per CPU-share window
# Meta's Business Use Case budget for WhatsApp Business Management calls, per app and WABA
# (graph-api-facts §5): 200 an hour, 5,000 for a WABA with a registered number.
WABA_BUDGETS = (200, 5000)
STATUS_HEADERS = {"Accept": "text/html", "Accept-Encoding": "gzip"}


# --------------------------------------------------------------------------- pure maths


@dataclass(frozen=True)
class Sample:
    """One reading of the daemon: wall time (s), CPU seconds so far, VmRSS (KiB)."""

    t: float
    cpu: float
    rss_kib: int


def window_shares(samples: Sequence[Sample], window: float = WINDOW) -> list[float]:
    """CPU share of one core (1.0 = one core busy) over consecutive windows of ``window`` s.

    A window closes at the first sample at least ``window`` seconds after it opened; its
    share is CPU seconds over wall seconds between those two samples. A last, shorter window
    is dropped (too short to compare).
    """
    shares: list[float] = []
    if not samples:
        return shares
    start = samples[0]
    for sample in samples[1:]:
        if sample.t - start.t >= window:
            shares.append((sample.cpu - start.cpu) / (sample.t - start.t))
            start = sample
    return shares


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def p(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of unsorted values (NaN for none)."""
    return percentile(sorted(values), q)


# Reads on a cadence longer than the measured span, with the defaults: their rate per hour is
# what one run costs times the runs an hour, from the runs since the daemon started (the
# first runs at start, or min(scan, 30 s) after it for templates). Every other kind is a
# rate measured over the span (list pages every scan, webhook re-polls, spread settings).
CADENCE = {
    "business": 900.0,  # schedule.discovery_interval
    "owned_whatsapp_business_accounts": 900.0,
    "client_whatsapp_business_accounts": 900.0,
    "waba": 900.0,
    "subscribed_apps": 900.0,
    "message_templates": 900.0,  # schedule.template_interval
    "debug_token": 3600.0,  # schedule.token_check_interval
}
# Kinds billed to the business or the app, not to one WABA's budget.
NOT_PER_WABA = frozenset({"business", "owned_whatsapp_business_accounts",
                          "client_whatsapp_business_accounts", "debug_token"})


def per_hour(since_start: dict[str, int], in_span: dict[str, int], elapsed: float,
             span: float) -> dict[str, float]:
    """Requests an hour by kind.

    ``since_start``: counts from the daemon's start, ``elapsed`` seconds ago; ``in_span``:
    counts over the measured ``span`` seconds. A kind on a cadence of ``c`` seconds has run
    ``1 + floor(elapsed / c)`` times since start; the others are measured rates.
    """
    out: dict[str, float] = {}
    for kind in sorted(set(since_start) | set(in_span)):
        cadence = CADENCE.get(kind)
        if cadence is not None:
            runs = 1 + math.floor(elapsed / cadence)
            out[kind] = since_start.get(kind, 0) / runs * 3600 / cadence
        elif span > 0:
            out[kind] = in_span.get(kind, 0) * 3600 / span
    return out


@dataclass
class SteadyResult:
    numbers: int
    businesses: int
    wabas: int
    templates_per_waba: int
    scan_interval: float
    first_poll_wall: float = 0.0
    # The first round of the 15 min reads (every WABA's node, subscription, templates), which
    # starts right after the first poll: once per start, not all day (later rounds find
    # most bodies unchanged). None: measured from the first poll (--no-warmup).
    first_round_wall: float | None = None
    first_round_cpu: float = 0.0
    duration: float = 0.0  # measured wall seconds
    cpu_seconds: float = 0.0  # over the measured span
    shares: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    vmhwm_mb: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)  # by path kind, measured span
    requests_since_start: dict[str, int] = field(default_factory=dict)
    since_start: float = 0.0  # seconds from the daemon's first request to the span's end
    # The same counts just before the second round of the 15 min reads began, when the span
    # reached it (that round had barely started at the span's end: counting it as a whole
    # run under-counted every cadenced read), and their time since the first request.
    requests_first_round: dict[str, int] = field(default_factory=dict)
    first_round_elapsed: float = 0.0
    scrape_ms: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    status_ms: list[float] = field(default_factory=list)
    status_bytes: int = 0
    changes: int = 0
    webhooks: dict[str, int] = field(default_factory=dict)  # delivered by HTTP status
    interference: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_mean(self) -> float:
        """Mean share over the whole span (CPU seconds / wall seconds), not of the windows."""
        return self.cpu_seconds / self.duration if self.duration else math.nan

    @property
    def requests_per_hour(self) -> dict[str, float]:
        """Graph calls an hour by kind, as Meta counts them (each GET of a batch)."""
        since, elapsed = ((self.requests_first_round, self.first_round_elapsed)
                          if self.requests_first_round else
                          (self.requests_since_start, self.since_start))
        per = per_hour(since, self.requests, elapsed, self.duration)
        return {k: v for k, v in per.items() if k != BATCH}

    @property
    def batch_calls_per_hour(self) -> float:
        """Graph batch HTTP calls an hour (each carries up to graph.batch_size GETs)."""
        return self.requests.get(BATCH, 0) * 3600 / self.duration if self.duration else 0.0

    @property
    def gets_per_batch(self) -> float:
        """GETs per batch call: every GET but the token check (sent with the app token,
        alone) over the batch calls."""
        batched = sum(v for k, v in self.requests.items() if k not in (BATCH, "debug_token"))
        return batched / self.requests[BATCH] if self.requests.get(BATCH) else 0.0

    @property
    def waba_requests_per_hour(self) -> float:
        """Requests an hour per WABA: all but the business and app reads (not WABA-billed)."""
        per = self.requests_per_hour
        total = sum(v for k, v in per.items() if k not in NOT_PER_WABA)
        return total / self.wabas if self.wabas else 0.0


# --------------------------------------------------------------------------- report


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{p(values, 0.5):,.1f} / {p(values, 0.99):,.1f}"


def _pct(share: float) -> str:
    return "—" if math.isnan(share) else f"{share * 100:.1f} %"


ROWS: tuple[tuple[str, Callable[[SteadyResult], str]], ...] = (
    ("Fleet: businesses / WABAs / templates", lambda r: f"{r.businesses:,} / {r.wabas:,} / "
     f"{r.wabas * r.templates_per_waba:,}"),
    ("First full poll (start to ready), wall", lambda r: f"{r.first_poll_wall:.1f} s"),
    ("First round of the 15 min reads (start-up): wall, CPU", lambda r: "not waited for"
     if r.first_round_wall is None else f"{r.first_round_wall:.1f} s, {r.first_round_cpu:.1f} "
     "CPU-s"),
    ("Measured after it", lambda r: f"{r.duration:.0f} s"),
    ("CPU, share of one core: mean", lambda r: _pct(r.cpu_mean)),
    ("… p99 / max of 10 s windows", lambda r: f"{_pct(p(r.shares, 0.99))} / "
     f"{_pct(max(r.shares, default=math.nan))}"),
    ("RSS mean / peak (1 s samples)", lambda r: f"{mean(r.rss_mb):,.0f} / "
     f"{max(r.rss_mb, default=math.nan):,.0f} MB"),
    ("VmHWM (peak since start)", lambda r: f"{r.vmhwm_mb:,.0f} MB"),
    ("Graph requests per hour ⁽ʰ⁾", lambda r: f"{sum(r.requests_per_hour.values()):,.0f}"),
    ("… by endpoint", lambda r: ", ".join(f"{k} {v:,.0f}" for k, v in
                                          r.requests_per_hour.items())),
    ("… sent in batch calls: calls per hour (GETs per call)",
     lambda r: f"{r.batch_calls_per_hour:,.0f} ({r.gets_per_batch:.1f})"
     if r.batch_calls_per_hour else "none (batching off)"),
    ("… per WABA and hour (budget 200 / 5,000)", lambda r: f"{r.waba_requests_per_hour:.1f} "
     f"({r.waba_requests_per_hour / WABA_BUDGETS[0]:.0%} / "
     f"{r.waba_requests_per_hour / WABA_BUDGETS[1]:.1%})"),
    ("/metrics (gzip) p50 / p99 ms", lambda r: _ms(r.scrape_ms)),
    ("… scrapes, body size", lambda r: f"{len(r.scrape_ms)}, {r.scrape_bytes / 1e6:,.1f} MB"),
    ("Status page p50 / p99 ms", lambda r: _ms(r.status_ms)),
    ("… fetches, body size", lambda r: f"{len(r.status_ms)}, {r.status_bytes / 1e3:,.0f} kB"),
    ("Changes made / webhooks delivered", lambda r: f"{r.changes} / " + (", ".join(
        f"{k}: {v}" for k, v in sorted(r.webhooks.items())) or "0")),
)


def table(results: Sequence[SteadyResult]) -> list[str]:
    out = ["| |" + "".join(f" {r.numbers:,} numbers |" for r in results),
           "|---|" + "---:|" * len(results)]
    for label, cell in ROWS:
        out.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    return out


GROWTH: tuple[tuple[str, Callable[[SteadyResult], float], str], ...] = (
    ("CPU share of one core, mean (%)", lambda r: r.cpu_mean * 100, "{:.2f}"),
    ("RSS mean (MB)", lambda r: mean(r.rss_mb), "{:,.0f}"),
    ("Graph requests per hour", lambda r: sum(r.requests_per_hour.values()), "{:,.0f}"),
    ("/metrics p50 (ms)", lambda r: p(r.scrape_ms, 0.5), "{:,.1f}"),
)


def growth(results: Sequence[SteadyResult]) -> list[str]:
    """Each figure at each size, and what each 1,000 more numbers cost between sizes: linear
    growth keeps the marginal cost flat (last step / first step near 1 or below)."""
    rows = sorted(results, key=lambda r: r.numbers)
    if len(rows) < 2:
        return ["(needs at least two sizes)"]
    steps = list(itertools.pairwise(rows))
    out = ["| | " + " | ".join(f"{r.numbers:,}" for r in rows) + " | "
           + " | ".join(f"per 1k numbers, {a.numbers:,}→{b.numbers:,}" for a, b in steps)
           + " | last step / first step |",
           "|---|" + "---:|" * (len(rows) + len(steps) + 1)]
    for label, value, fmt in GROWTH:
        values = [value(r) for r in rows]
        slopes = [(value(b) - value(a)) / (b.numbers - a.numbers) * 1000 for a, b in steps]
        ratio = slopes[-1] / slopes[0] if slopes[0] else math.nan
        cells = ["—" if math.isnan(v) else fmt.format(v) for v in values]
        cells += ["—" if math.isnan(v) else f"{v:,.3g}" for v in slopes]
        cells.append("—" if math.isnan(ratio) else f"{ratio:.2f}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def report(results: Sequence[SteadyResult], command: str, started: dt.datetime,
           elapsed: float, version: str, load: tuple[str, str], args: argparse.Namespace) -> str:
    info = machine()
    lines = [
        BEGIN,
        f"Measured {started.strftime('%Y-%m-%d %H:%M')} UTC ({elapsed / 60:.0f} min), monitor/ "
        f"at {version}, on {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Python "
        f"{info['python']}, Linux {info['kernel']}; load average {load[0]} before, {load[1]} "
        "after, with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Fleet: businesses x 10 WABAs x 5 numbers, {args.templates} templates per WABA; "
        f"simulator latency {args.latency * 1000:.0f} ms. Daemon defaults but scan interval "
        f"{args.scan_interval:g} s, discovery (no `wabas` listed), app id, secret and verify "
        f"token set. {args.changes_per_minute:g} changes a minute with their signed webhooks; "
        f"gzip scrapes every {args.scrape_interval:g} s, status page every "
        f"{args.status_interval:g} s. MB = 10⁶ bytes.",
        "",
        *table(results),
        "",
        "⁽ʰ⁾ Reads every scan (list pages, webhook re-polls, settings spread over a day) are "
        "the rate measured over the span; reads on a 15 min or 1 h cadence (business, WABA, "
        "subscriptions, templates, token) are their count since the daemon started over the "
        "runs started in that time, times the runs an hour (counted just before the second "
        "15 min round began when the span reached it). Per WABA: all but business and "
        "app (token) reads.",
        "",
        "Growth with the fleet:",
        "",
        *growth(results),
    ]
    notes = [f"- {r.numbers:,}: {r.interference}." for r in results if r.interference]
    notes += [f"- {r.numbers:,}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines.append(END)
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


def steady_config(businesses: int, sim_url: str, path: Path, state: Path,
                  scan_interval: float) -> None:
    """Defaults but the scan interval; businesses without ``wabas`` (discovery)."""
    config = {
        "graph": {"base_url": sim_url, "api_version": "v24.0", "app_id": bench.APP_ID},
        "businesses": [{"id": f"1{b + 1:014d}"} for b in range(businesses)],
        "schedule": {"scan_interval": scan_interval},
        "server": {"listen": "127.0.0.1:0"},
        "state": {"directory": str(state)},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


class Loop(threading.Thread):
    """Calls ``step()`` every ``every`` seconds (on a fixed grid) until stopped."""

    def __init__(self, name: str, every: float, step: Callable[[], None],
                 errors: list[str]) -> None:
        super().__init__(name=name, daemon=True)
        self.every, self.step, self.errors = every, step, errors
        self.halt = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        for tick in itertools.count(1):
            try:
                self.step()
            except Exception as exc:
                self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}"[:300])
            wait = start + tick * self.every - time.monotonic()
            if self.halt.wait(max(0.0, wait)):
                return


def _timed_get(client: Scraper, path: str, headers: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    status, body = client.get(path, headers)
    elapsed = (time.perf_counter() - t0) * 1000
    if status != 200:
        raise RuntimeError(f"{path} answered {status}")
    return elapsed, len(body)


class Changes:
    """A trickle of changes the simulator turns into state and signed webhooks."""

    def __init__(self, sim_url: str, numbers: int, templates: int, seed: int = 0) -> None:
        self.sim_url, self.numbers, self.templates = sim_url, numbers, templates
        self.rng = random.Random(seed)
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.templates and self.count % 5 == 0:
            template = f"4{self.rng.randrange(1, self.templates + 1):015d}"
            bench.http_json(f"{self.sim_url}/_sim/actions", {
                "action": "template_quality", "template": template,
                "score": self.rng.choice(("GREEN", "YELLOW", "RED"))})
            return
        number = f"3{self.rng.randrange(1, self.numbers + 1):015d}"
        if self.count % 2:
            change: dict[str, Any] = {"status": self.rng.choice(
                ("CONNECTED", "CONNECTED", "RESTRICTED", "OFFLINE"))}
        else:
            score = self.rng.choice(("GREEN", "YELLOW", "RED"))
            change = {"quality_rating": score, "quality_score": {"score": score}}
        _patch(f"{self.sim_url}/_sim/numbers/{number}", change)


def _patch(url: str, body: dict[str, Any]) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a local URL: {url!r}")
    request = urllib.request.Request(  # noqa: S310 - checked above: our own simulator
        url, data=json.dumps(body).encode(), method="PATCH",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
        resp.read()


def measure(children: Children, numbers: int, work: Path,
            args: argparse.Namespace) -> SteadyResult:
    per_business = bench.WABAS_PER_BUSINESS * bench.NUMBERS_PER_WABA
    if numbers % per_business:
        raise SystemExit(f"--sizes: {numbers} is not a multiple of {per_business}")
    businesses = numbers // per_business
    wabas = businesses * bench.WABAS_PER_BUSINESS
    result = SteadyResult(numbers=numbers, businesses=businesses, wabas=wabas,
                          templates_per_waba=args.templates, scan_interval=args.scan_interval)
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    bench.log(f"=== steady {numbers:,} numbers ({businesses} x 10 x 5, {args.templates} "
              f"templates a WABA), scan {args.scan_interval:g} s, {args.duration:g} s")
    sim, sim_url = bench.start_simulator(children, work, str(numbers), businesses=businesses,
                                         latency=args.latency, templates=args.templates)
    proc = None
    try:
        config = work / f"config-{numbers}.yaml"
        steady_config(businesses, sim_url, config, work / f"state-{numbers}", args.scan_interval)
        log_path = work / f"daemon-{numbers}.log"
        proc = children.start(
            python_argv("-m", "monitor", "run", "--config", str(config)), log=log_path,
            env=bench.child_env(WABA_MONITOR_ACCESS_TOKEN=TOKEN,
                                WABA_MONITOR_APP_SECRET=APP_SECRET,
                                WABA_MONITOR_WEBHOOK_VERIFY_TOKEN=VERIFY_TOKEN), cwd=work)
        bench.http_json(f"{sim_url}/_bench/watch", {"pid": proc.pid})

        def started() -> bool:
            bench.alive(proc, "daemon", log_path)
            return bench.daemon_port(log_path) is not None

        wait_until(started, 300, "the daemon to start")
        url = f"http://127.0.0.1:{bench.daemon_port(log_path)}"
        bench.http_json(f"{sim_url}/_sim/webhooks/target",
                        {"url": f"{url}/webhooks/whatsapp", "app_secret": APP_SECRET})
        ready = Scraper(url, timeout=60)

        def is_ready() -> bool:
            bench.alive(proc, "daemon", log_path)
            with contextlib.suppress(OSError, http.client.HTTPException):
                return ready.get("/-/ready")[0] == 200
            return False

        wait_until(is_ready, max(900.0, numbers / 20), "the first full poll", interval=0.5)
        ready.close()
        first = bench.http_json(f"{sim_url}/_bench/timing")["first_request"]
        result.first_poll_wall = time.time() - first if first else math.nan
        bench.log(f"steady {numbers:,}: first full poll done in {result.first_poll_wall:.1f} s")
        if args.warmup:
            _first_round(result, proc.pid, sim_url, proc, log_path)
        bench.log(f"steady {numbers:,}: measuring for {args.duration:g} s")
        result = _measure_span(result, proc.pid, url, sim_url, log_path, proc, args)
        sent = bench.http_json(f"{sim_url}/_sim/webhooks/sent")["sent"]
        for record in sent:
            key = str(record.get("status") or record.get("error") or "?")
            result.webhooks[key] = result.webhooks.get(key, 0) + 1
    except Exception as exc:  # a failure at one size is a result too
        bench.log(f"steady {numbers} failed:\n{traceback.format_exc()}")
        result.notes.append(f"FAILED: {type(exc).__name__}: {exc}"[:2000])
        args.keep = True
    finally:
        if proc is not None:
            status = children.stop(proc)
            if status not in (0, None):
                result.notes.append(f"the daemon exited with status {status}")
        children.stop(sim)
    other = max(0.0, (machine_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    wall = time.monotonic() - wall0
    share = 100 * other / wall / len(os.sched_getaffinity(0))
    result.interference = (f"processes other than the benchmark's used {other:.0f} CPU-s over "
                           f"these {wall:.0f} s ({share:.0f} % of the machine)")
    bench.log(f"{numbers}: {result.interference}")
    return result


FIRST_ROUND = ("waba", "subscribed_apps", "message_templates")  # once per WABA a round


def _first_round(result: SteadyResult, pid: int, sim_url: str, proc: Any,
                 log_path: Path) -> None:
    """Wait until every WABA's node, subscription and templates were read once, and count
    the daemon's CPU meanwhile: the all-day figures are measured after that start-up."""
    t0, cpu0 = time.monotonic(), cpu_seconds(pid)
    templates = result.templates_per_waba > 0

    def done() -> bool:
        bench.alive(proc, "daemon", log_path)
        counts = bench.http_json(f"{sim_url}/_bench/timing")["by_path"]
        return all(int(counts.get(kind, 0)) >= result.wabas for kind in FIRST_ROUND
                   if templates or kind != "message_templates")

    wait_until(done, 900.0, "the first round of the 15 min reads", interval=1.0)
    result.first_round_wall = time.monotonic() - t0
    result.first_round_cpu = cpu_seconds(pid) - cpu0
    bench.log(f"steady {result.numbers:,}: first round of the 15 min reads done in "
              f"{result.first_round_wall:.1f} s, {result.first_round_cpu:.1f} CPU-s")


def _measure_span(result: SteadyResult, pid: int, url: str, sim_url: str, log_path: Path,
                  proc: Any, args: argparse.Namespace) -> SteadyResult:
    errors: list[str] = []
    samples: list[Sample] = []
    scraper, status_client = Scraper(url, timeout=120), Scraper(url, timeout=120)
    changes = Changes(sim_url, result.numbers, result.wabas * result.templates_per_waba,
                      seed=result.numbers)

    def sample() -> None:
        samples.append(Sample(time.monotonic(), cpu_seconds(pid), memory_kib(pid)["VmRSS"]))

    def scrape() -> None:
        ms, size = _timed_get(scraper, "/metrics", PROMETHEUS_HEADERS)
        result.scrape_ms.append(ms)
        result.scrape_bytes = size

    def status_page() -> None:
        ms, size = _timed_get(status_client, "/", STATUS_HEADERS)
        result.status_ms.append(ms)
        result.status_bytes = size

    started = bench.http_json(f"{sim_url}/_bench/timing")
    before = started["by_path"]  # since the start

    def first_round() -> None:
        with contextlib.suppress(OSError, ValueError):
            timing = bench.http_json(f"{sim_url}/_bench/timing")
            result.first_round_elapsed = time.time() - timing["first_request"]
            result.requests_first_round = {k: int(v) for k, v in timing["by_path"].items()}

    # Just before the second round of the 15 min reads (the shortest cadence in CADENCE).
    round_due = (started["first_request"] or time.time()) + min(CADENCE.values()) - 2.0
    round_timer = threading.Timer(round_due - time.time(), first_round)
    if 0 < round_due - time.time() < args.duration:
        round_timer.start()
    loops = [Loop("sampler", 1.0, sample, errors), Loop("scrapes", args.scrape_interval,
                                                         scrape, errors),
             Loop("status page", args.status_interval, status_page, errors)]
    if args.changes_per_minute > 0:
        loops.append(Loop("changes", 60 / args.changes_per_minute, changes.step, errors))
    t0 = time.monotonic()
    for loop in loops:
        loop.start()
    try:
        deadline = t0 + args.duration
        while time.monotonic() < deadline:
            bench.alive(proc, "daemon", log_path)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    finally:
        for loop in loops:
            loop.halt.set()
        for loop in loops:
            loop.join(timeout=180)
        round_timer.cancel()
        scraper.close()
        status_client.close()
    timing = bench.http_json(f"{sim_url}/_bench/timing")
    result.requests_since_start = {k: int(v) for k, v in timing["by_path"].items()}
    result.requests = {k: v - int(before.get(k, 0))
                       for k, v in result.requests_since_start.items()}
    result.since_start = time.time() - timing["first_request"]
    if len(samples) >= 2:
        result.duration = samples[-1].t - samples[0].t
        result.cpu_seconds = samples[-1].cpu - samples[0].cpu
    result.shares = window_shares(samples)
    result.rss_mb = [bench.mb(s.rss_kib) for s in samples]
    result.vmhwm_mb = bench.mb(memory_kib(pid)["VmHWM"])
    result.changes = changes.count
    if errors:
        result.notes.append(f"{len(errors)} harness errors, first: {errors[0]}")
    bench.log(f"steady {result.numbers:,}: CPU {result.cpu_mean * 100:.1f} % of a core "
              f"(p99 {p(result.shares, 0.99) * 100:.1f} %), RSS mean {mean(result.rss_mb):.0f} "
              f"MB, {sum(result.requests_per_hour.values()):,.0f} requests/h")
    return result


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run --steady",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000",
                        help="fleet sizes in numbers, multiples of 50 (default 10000,50000)")
    parser.add_argument("--duration", type=float, default=900.0,
                        help="seconds measured after the first full poll (default 900: "
                        "one whole 15 min discovery and template cadence)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="measure from the first full poll, not from the end of the first "
                        "round of the 15 min reads (node, subscription, template reads)")
    parser.add_argument("--scan-interval", type=float, default=60.0,
                        help="the daemon's schedule.scan_interval in seconds (default 60)")
    parser.add_argument("--templates", type=int, default=20,
                        help="message templates per WABA (default 20)")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--status-interval", type=float, default=10.0,
                        help="one open status page: it refreshes itself every 10 s")
    parser.add_argument("--changes-per-minute", type=float, default=4.0,
                        help="number/template changes (each with its webhook) a minute "
                             "(default 4)")
    parser.add_argument("--output", type=Path, default=bench.REPO / "BENCHMARKS.md",
                        help="Markdown file whose steady section is replaced; '-' prints only")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=bench.REPO, metavar="DIR")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected numbers separated by commas, got {args.sizes!r}")
    if not args.size_list or any(n <= 0 for n in args.size_list):
        parser.error("--sizes: expected positive numbers")
    if args.duration < WINDOW or args.scan_interval <= 0 or args.templates < 0:
        parser.error(f"--duration >= {WINDOW:g}, --scan-interval > 0, --templates >= 0")
    return args


def main(argv: list[str] | None = None, prefix: str = "python -m benchmarks.steady") -> int:
    args = parse_args(argv)
    command = f"{prefix} " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load0, t0 = dt.datetime.now(dt.UTC), load_average(), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="waba-bench-steady-"))
    version = bench.snapshot_source(work, args.source.resolve())
    bench.log(f"work directory {work}; monitor/ at {version}")
    results: list[SteadyResult] = []
    try:
        with Children() as children:
            for numbers in args.size_list:
                results.append(measure(children, numbers, work, args))
    finally:
        if args.json is not None and results:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
        if not args.keep and all(not r.notes for r in results):
            shutil.rmtree(work, ignore_errors=True)
        else:
            bench.log(f"logs kept in {work}")
    section = report(results, command.strip(), started, time.monotonic() - t0, version,
                     (load0, load_average()), args)
    print(section)
    if str(args.output) != "-":
        write_output(args.output, section, BEGIN, END, heading="Steady state (issue 14)")
        bench.log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
