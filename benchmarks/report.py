"""Benchmark results, and their Markdown report: the marked section of BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.scrape import ScrapeStats

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
EXTRAPOLATED = " ⁽ᵉ⁾"
# What a poll of a WABA may request: list pages, and single-number reads for missing fields.
POLL_ENDPOINTS = frozenset({"phone_numbers", "phone_number"})
SAMPLE = " ⁽ˢ⁾"


@dataclass
class Measured:
    """One exporter at one fleet size. Times in seconds, sizes in bytes, memory in MB (10⁶ B)."""

    requests: int = 0  # the poll's: list pages and per-number reads
    other_requests: int = 0  # anything else in the first cycle (business reads)
    requests_by_endpoint: dict[str, int] = field(default_factory=dict)
    concurrency: int = 1
    poll_wall: float = 0.0
    poll_cpu: float = 0.0
    extrapolated: bool = False
    sample_numbers: int = 0
    sample_requests: int = 0
    sample_wall: float = 0.0
    sample_cpu: float = 0.0
    startup_wall: float = 0.0
    startup_cpu: float = 0.0
    rss_after_poll_mb: float = 0.0
    first_scrape_ms: float = 0.0
    first_scrape_cpu: float = 0.0
    plain: ScrapeStats | None = None
    gzip: ScrapeStats | None = None
    series: int = 0
    rss_after_scrapes_mb: float = 0.0
    peak_rss_mb: float = 0.0
    cycle_cpu: float = 0.0  # first request to the end of the first cycle (templates included)
    cycle_wall: float = 0.0
    rss_after_cycle_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class SizeResult:
    numbers: int
    businesses: int
    wabas: int
    minimum_requests: int
    latency: float
    daemon: Measured | None = None
    baseline: Measured | None = None
    baseline_full_requests: int = 0
    interference: str = ""

    def bound(self, measured: Measured) -> float:
        """requests x latency / requests in flight: the poll's floor set by the latency."""
        return measured.requests * self.latency / measured.concurrency


@dataclass(frozen=True)
class RunInfo:
    command: str
    started: dt.datetime
    elapsed: float
    latency: float
    concurrency: int
    scrapes: int
    scrape_budget: float
    baseline_sample: int
    shape: str
    version: str = ""
    load_before: str = ""
    load_after: str = ""


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "ram": ram,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# --------------------------------------------------------------------------- formatting


def _t(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


Cell = Callable[[SizeResult, Measured], str]


def _mark(m: Measured) -> str:
    return EXTRAPOLATED if m.extrapolated else ""


def _scrape(m: Measured, gz: bool, show: Callable[[ScrapeStats], str]) -> str:
    stats = m.gzip if gz else m.plain
    return "—" if stats is None else show(stats)


ROWS: tuple[tuple[str, Cell], ...] = (
    ("Graph requests per full poll", lambda s, m: f"{m.requests:,}{_mark(m)}"),
    ("… by endpoint, whole first cycle (sample for ⁽ᵉ⁾)",
     lambda s, m: ", ".join(f"{k} {v:,}" for k, v in m.requests_by_endpoint.items())),
    ("… ratio to the minimum (list pages)", lambda s, m: f"{m.requests / s.minimum_requests:.2f}x"),
    ("Poll wall time", lambda s, m: _t(m.poll_wall) + _mark(m)),
    ("… bound: requests x latency / in flight (16; baseline 1)", lambda s, m: _t(s.bound(m))),
    ("… ratio to the bound", lambda s, m: f"{m.poll_wall / s.bound(m):.2f}x"),
    ("Poll CPU seconds (exporter process)", lambda s, m: f"{m.poll_cpu:.2f}{_mark(m)}"),
    ("Whole first cycle (other reads, templates): wall, CPU",
     lambda s, m: f"{_t(m.cycle_wall)}, {m.cycle_cpu:.2f} s" if m.cycle_cpu else "—"),
    ("First scrape after the poll (gzip): latency, CPU",
     lambda s, m: f"{m.first_scrape_ms:,.0f} ms, {m.first_scrape_cpu:.2f} s"),
    ("Start-up CPU before the first request", lambda s, m: f"{m.startup_cpu:.2f} s"),
    ("/metrics p50 / p99, plain (ms)",
     lambda s, m: _scrape(m, False, lambda x: f"{_ms(x.p50_ms)} / {_ms(x.p99_ms)}")),
    ("/metrics p50 / p99, gzip (ms)",
     lambda s, m: _scrape(m, True, lambda x: f"{_ms(x.p50_ms)} / {_ms(x.p99_ms)}")),
    ("Scrapes per second, plain", lambda s, m: _scrape(m, False, lambda x: _rate(x.per_second))),
    ("Scrapes per second, gzip", lambda s, m: _scrape(m, True, lambda x: _rate(x.per_second))),
    ("Scrapes measured, plain / gzip",
     lambda s, m: f"{_scrape(m, False, lambda x: str(x.scrapes))} / "
                  f"{_scrape(m, True, lambda x: str(x.scrapes))}"),
    ("Response size, plain", lambda s, m: _scrape(m, False, lambda x: _size(x.bytes))),
    ("Response size, gzip", lambda s, m: _scrape(m, True, lambda x: _size(x.bytes))),
    ("Series (samples) per scrape", lambda s, m: f"{m.series:,}"),
    ("RSS after the poll",
     lambda s, m: f"{m.rss_after_poll_mb:,.0f} MB" + (SAMPLE if m.extrapolated else "")),
    ("RSS after the gzip scrapes", lambda s, m: f"{m.rss_after_scrapes_mb:,.0f} MB"),
    ("Peak RSS (VmHWM), plain scrapes included", lambda s, m: f"{m.peak_rss_mb:,.0f} MB"),
)


def table(results: list[SizeResult]) -> list[str]:
    with_baseline = any(r.baseline is not None for r in results)
    who = ("daemon", "baseline") if with_baseline else ("daemon",)
    head = "| |" + "".join(f" {r.numbers:,} {w} |" for r in results for w in who)
    rule = "|---|" + "---:|" * (len(results) * len(who))
    out = [head, rule]
    for label, cell in ROWS:
        cells = []
        for size in results:
            for measured in (size.daemon, size.baseline)[: len(who)]:
                cells.append("—" if measured is None else cell(size, measured))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


# --------------------------------------------------------------------------- targets


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(results: list[SizeResult]) -> list[str]:
    by_size = {r.numbers: r for r in results}
    largest = by_size.get(50_000) or max(results, key=lambda r: r.numbers, default=None)
    if largest is None or largest.daemon is None:
        return ["- no daemon results"]
    out: list[str] = []
    d, b = largest.daemon, largest.baseline
    at = f"at {largest.numbers:,} numbers"
    extra = d.requests - largest.minimum_requests
    line = (f"- Requests per poll = list pages {at}: "
            f"{_verdict(extra == 0)} — {d.requests:,} requests for "
            f"{largest.minimum_requests:,} pages" + (f" ({extra:+,})" if extra else ""))
    if b is not None:
        ratio = b.requests / d.requests
        line += (f"; {ratio:.2f}x fewer than the baseline's {b.requests:,}: "
                 f"{_verdict(ratio >= 16)} (≥ 16x)")
    if d.other_requests:
        others = ", ".join(f"{k} {v:,}" for k, v in d.requests_by_endpoint.items()
                           if k not in POLL_ENDPOINTS)
        line += (f". Besides the poll, the first cycle made {d.other_requests:,} other requests "
                 f"({others}): "
                 "business reads, scheduled per business every discovery_interval")
    out.append(line + ".")
    bound = largest.bound(d)
    out.append(f"- Poll within 2x of requests x latency / concurrency {at}: "
               f"{_verdict(d.poll_wall <= 2 * bound)} — {d.poll_wall:.1f} s against "
               f"{bound:.1f} s, {d.poll_wall / bound:.2f}x the bound.")
    cpu = d.poll_cpu + d.first_scrape_cpu
    out.append(f"- Under 5 CPU-seconds for parsing, snapshot and rendering {at}: "
               f"{_verdict(cpu < 5)} — {d.poll_cpu:.2f} s over the poll (everything the process "
               f"did: HTTP client, JSON, parsing, snapshot, state file, logs) + "
               f"{d.first_scrape_cpu:.2f} s rendering the first scrape = {cpu:.2f} s"
               + (f", {cpu - 5:.2f} s over" if cpu >= 5 else "") + ".")
    ten = by_size.get(10_000)
    if ten is not None and ten.daemon is not None and ten.daemon.gzip and ten.daemon.plain:
        dz, dp = ten.daemon.gzip, ten.daemon.plain
        out.append(f"- /metrics p99 under 50 ms at 10,000 numbers: {_verdict(dz.p99_ms < 50)} "
                   f"— {dz.p99_ms:,.0f} ms as Prometheus scrapes it (gzip), "
                   f"{dp.p99_ms:,.0f} ms uncompressed ({_verdict(dp.p99_ms < 50)}).")
        tb = ten.baseline
        if tb is not None and tb.gzip and tb.plain:
            rz = dz.per_second / tb.gzip.per_second
            rp = dp.per_second / tb.plain.per_second
            out.append(f"- ≥ 20x the baseline's scrapes per second at 10,000 numbers: "
                       f"{_verdict(rz >= 20)} — {rz:.1f}x with gzip ({dz.per_second:.1f} vs "
                       f"{tb.gzip.per_second:.2f}/s), {rp:.1f}x uncompressed "
                       f"({dp.per_second:.1f} vs {tb.plain.per_second:.2f}/s; "
                       f"{_verdict(rp >= 20)}).")
    rss = max(d.rss_after_poll_mb, d.rss_after_scrapes_mb)
    out.append(f"- RSS under 400 MB {at}: {_verdict(rss < 400)} — "
               f"{d.rss_after_poll_mb:,.0f} MB after the poll "
               f"({_verdict(d.rss_after_poll_mb < 400)}), {d.rss_after_scrapes_mb:,.0f} MB once "
               f"Prometheus-style scrapes ran, peak {d.peak_rss_mb:,.0f} MB"
               + (f"; {rss - 400:,.0f} MB over" if rss >= 400 else "") + ".")
    return out


# --------------------------------------------------------------------------- linearity

LINEAR: tuple[tuple[str, Callable[[Measured], float], Callable[[float], str]], ...] = (
    ("Graph requests", lambda m: m.requests, lambda v: f"{v:,.0f}"),
    ("poll wall s", lambda m: m.poll_wall, lambda v: f"{v:.2f}"),
    ("poll CPU s", lambda m: m.poll_cpu, lambda v: f"{v:.2f}"),
    ("first-scrape render CPU s", lambda m: m.first_scrape_cpu, lambda v: f"{v:.2f}"),
    ("RSS after poll MB", lambda m: m.rss_after_poll_mb, lambda v: f"{v:,.0f}"),
    ("RSS after gzip scrapes MB", lambda m: m.rss_after_scrapes_mb, lambda v: f"{v:,.0f}"),
    ("series", lambda m: m.series, lambda v: f"{v:,.0f}"),
    ("plain scrape p50 ms", lambda m: m.plain.p50_ms if m.plain else math.nan,
     lambda v: f"{v:,.1f}"),
    ("gzip scrape p50 ms", lambda m: m.gzip.p50_ms if m.gzip else math.nan,
     lambda v: f"{v:,.1f}"),
)


def _or_dash(value: float, show: Callable[[float], str]) -> str:
    return "—" if math.isnan(value) else show(value)


def linearity(results: list[SizeResult]) -> list[str]:
    """Daemon cost at each size and the marginal cost per 1,000 numbers between sizes."""
    rows = sorted((r for r in results if r.daemon is not None), key=lambda r: r.numbers)
    if len(rows) < 2:
        return ["(needs at least two sizes)"]
    steps = list(itertools.pairwise(rows))
    head = ("| daemon | " + " | ".join(f"{r.numbers:,}" for r in rows) + " | "
            + " | ".join(f"per 1k numbers, {a.numbers:,}→{b.numbers:,}" for a, b in steps)
            + " | last step / first step |")
    out = [head, "|---|" + "---:|" * (len(rows) + len(steps) + 1)]
    for label, value, show in LINEAR:
        values = [value(r.daemon) for r in rows if r.daemon is not None]
        slopes = [(value(b.daemon) - value(a.daemon)) / (b.numbers - a.numbers) * 1000
                  for a, b in steps if a.daemon is not None and b.daemon is not None]
        growth = slopes[-1] / slopes[0] if slopes and slopes[0] else math.nan
        out.append(f"| {label} | " + " | ".join(_or_dash(v, show) for v in values) + " | "
                   + " | ".join(_or_dash(s, lambda x: f"{x:,.3g}") for s in slopes)
                   + f" | {_or_dash(growth, lambda x: f'{x:.2f}')} |")
    return out


# --------------------------------------------------------------------------- document


def report(results: list[SizeResult], run: RunInfo) -> str:
    info = machine()
    lines = [
        BEGIN,
        f"Measured {run.started.strftime('%Y-%m-%d %H:%M')} UTC ({run.elapsed / 60:.0f} min), "
        f"monitor/ at {run.version}, on "
        f"{info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Python {info['python']}, "
        f"Linux {info['kernel']}; load average {run.load_before} before, {run.load_after} "
        "after (1/5/15 min), with:",
        "",
        "```sh",
        run.command,
        "```",
        "",
        f"Fleet: {run.shape}. Simulator latency {run.latency * 1000:.0f} ms per Graph request; "
        f"daemon graph.concurrency {run.concurrency} (the default). Up to {run.scrapes} "
        f"sequential scrapes per kind, cut after {run.scrape_budget:.0f} s (at least 5). "
        "MB = 10⁶ bytes.",
        "",
        *table(results),
        "",
        f"⁽ᵉ⁾ extrapolated: the baseline's sequential poll ran on the first "
        f"{run.baseline_sample:,} numbers and is scaled by its exact request count "
        "(pages + 3 x numbers). ⁽ˢ⁾ RSS after that sample poll; its scrape rows hold the whole "
        "fleet (gauges filled by one list pass before the scrapes).",
        "",
        "### Targets",
        "",
        *targets(results),
        "",
        "### Growth with the fleet (daemon)",
        "",
        *linearity(results),
    ]
    notes = [f"- {r.numbers:,}: {r.interference}." for r in results if r.interference]
    notes += [f"- {r.numbers:,} {who}: {note}" for r in results
             for who, m in (("daemon", r.daemon), ("baseline", r.baseline)) if m
             for note in m.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines.append(END)
    return "\n".join(lines)


def write_output(path: Path, section: str, begin: str = BEGIN, end: str = END,
                 heading: str = "Results", before: str | None = None) -> None:
    """Replace the section of ``path`` between ``begin`` and ``end``.

    With none yet, a ``## heading`` section is added: before the line ``before`` when the file
    has it, else at the end.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    elif before is not None and f"\n{before}\n" in text:
        head, _, tail = text.partition(f"\n{before}\n")
        text = f"{head}\n## {heading}\n\n{section}\n\n{before}\n{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    path.write_text(text)
