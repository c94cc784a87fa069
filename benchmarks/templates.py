"""What message templates cost (issue 12): the one-poll benchmark with and without them.

``python -m benchmarks.templates [--sizes 10000,50000] [--templates 20] [--output BENCHMARKS.md]``

For every size, three daemon runs against one generated fleet each (``benchmarks.run``'s
``run_size``, daemon only): templates off (``--templates 0``: none in the fleet,
``schedule.template_interval: 0``), then ``--templates N`` with ``templates.series: problems``
(the default) and with ``all``. Each run covers the whole first cycle: the number poll, the
WABA/business/subscription reads, and the first template poll (which starts min(scan
interval, 30 s) after the daemon does), then a short series of scrapes. The differences are
what templates cost: Graph requests (and so requests per hour per WABA at the default 15 min
interval, against Meta's per-WABA budget), CPU over the first cycle, series, memory; the
number poll's own figures show whether templates slow it down.

The section between ``<!-- templates:begin -->`` and ``<!-- templates:end -->`` of
``--output`` is replaced and printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import run as bench
from benchmarks.procs import Children
from benchmarks.report import Measured, SizeResult, load_average, machine, write_output
from benchmarks.scrape import ScrapeStats

BEGIN, END = "<!-- templates:begin -->", "<!-- templates:end -->"
MODES = ("off", "problems", "all")
TEMPLATE_ENDPOINT = "message_templates"
DEFAULT_TEMPLATE_INTERVAL = 900.0  # schedule.template_interval's default
# Meta's Business Use Case budget for WhatsApp Business Management calls, per app and WABA
# (graph-api-facts §5): 200 an hour, 5,000 for a WABA with a registered number.
WABA_BUDGETS = (200, 5000)


@dataclass(frozen=True)
class ModeRun:
    mode: str
    size: SizeResult


def template_requests(m: Measured) -> int:
    return m.requests_by_endpoint.get(TEMPLATE_ENDPOINT, 0)


CUT = "— (cut short)"


def complete(size: SizeResult, m: Measured) -> bool:
    """Whether the measured first cycle read every WABA's node and subscriptions (runs
    before that check existed could end at a quiet spell in the middle of those reads)."""
    by = m.requests_by_endpoint
    return all(by.get(k, 0) >= size.wabas for k in ("waba", "subscribed_apps"))


def per_waba_hour(requests: int, wabas: int, interval: float = DEFAULT_TEMPLATE_INTERVAL) -> float:
    """Template requests an hour per WABA when one poll costs ``requests`` over ``wabas``."""
    return requests / wabas * 3600 / interval if wabas else 0.0


def _delta(value: float, base: float, unit: str, digits: int = 2) -> str:
    return f"{value:,.{digits}f}{unit} ({value - base:+,.{digits}f})"


def table(runs: dict[int, dict[str, SizeResult]]) -> list[str]:
    """One column per size and mode; the problems/all columns show the change from off."""
    cols = [(n, mode) for n in sorted(runs) for mode in MODES if mode in runs[n]]
    head = "| |" + "".join(f" {n:,} {mode} |" for n, mode in cols)
    out = [head, "|---|" + "---:|" * len(cols)]

    def row(label: str, cell: object) -> None:
        cells = []
        for n, mode in cols:
            size, off = runs[n][mode], runs[n].get("off")
            m, base = size.daemon, off.daemon if off else None
            if m is None or (m.notes and m.notes[0].startswith("FAILED")):
                cells.append("failed")
            else:
                cells.append(cell(size, m, base if mode != "off" else None))  # type: ignore[operator]
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    row("Template requests, first template poll",
        lambda s, m, b: f"{template_requests(m):,}")
    row("… per WABA and hour at the default 15 min (budget 200 / 5,000)",
        lambda s, m, b: f"{per_waba_hour(template_requests(m), s.wabas):.1f}"
        f" ({per_waba_hour(template_requests(m), s.wabas) / WABA_BUDGETS[0]:.0%} / "
        f"{per_waba_hour(template_requests(m), s.wabas) / WABA_BUDGETS[1]:.2%})")
    row("Number poll: requests", lambda s, m, b: f"{m.requests:,}")
    row("Number poll: wall s",
        lambda s, m, b: f"{m.poll_wall:.2f}" if b is None else _delta(m.poll_wall, b.poll_wall, ""))
    row("Number poll: CPU s",
        lambda s, m, b: f"{m.poll_cpu:.2f}" if b is None else _delta(m.poll_cpu, b.poll_cpu, ""))
    row("Whole first cycle: wall s",
        lambda s, m, b: f"{m.cycle_wall:.0f}" if complete(s, m) else CUT)
    row("Whole first cycle: CPU s (templates' extra)",
        lambda s, m, b: CUT if not complete(s, m) else f"{m.cycle_cpu:.2f}"
        if b is None or not complete(s, b) else _delta(m.cycle_cpu, b.cycle_cpu, ""))
    row("Series per scrape (extra)",
        lambda s, m, b: f"{m.series:,}" if b is None
        else f"{m.series:,} ({m.series - b.series:+,})")
    row("/metrics p50 / p99, gzip (ms)",
        lambda s, m, b: "—" if m.gzip is None else f"{m.gzip.p50_ms:,.1f} / {m.gzip.p99_ms:,.1f}")
    row("RSS after the first cycle MB",
        lambda s, m, b: f"{m.rss_after_cycle_mb:,.0f}" if b is None
        else _delta(m.rss_after_cycle_mb, b.rss_after_cycle_mb, "", 0))
    row("RSS after the gzip scrapes MB",
        lambda s, m, b: f"{m.rss_after_scrapes_mb:,.0f}" if b is None
        else _delta(m.rss_after_scrapes_mb, b.rss_after_scrapes_mb, "", 0))
    row("Peak RSS (VmHWM) MB",
        lambda s, m, b: f"{m.peak_rss_mb:,.0f}" if b is None
        else _delta(m.peak_rss_mb, b.peak_rss_mb, "", 0))
    return out


def report(runs: dict[int, dict[str, SizeResult]], command: str, started: dt.datetime,
           elapsed: float, version: str, templates: int, load: tuple[str, str]) -> str:
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
        f"Fleet: businesses x 10 WABAs x 5 numbers, {templates} templates per WABA (off: none, "
        "and schedule.template_interval 0). Simulator latency 50 ms; daemon defaults but one "
        "poll (scan 1h, explicit WABAs).",
        "",
        *table(runs),
    ]
    notes = [f"- {n:,} {mode}: {note}" for n in sorted(runs) for mode, size in runs[n].items()
             if size.daemon for note in size.daemon.notes]
    notes += [f"- {n:,} {mode}: {size.interference}." for n in sorted(runs)
              for mode, size in runs[n].items() if size.interference]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines.append(END)
    return "\n".join(lines)


def _measured(raw: dict[str, Any] | None) -> Measured | None:
    if raw is None:
        return None
    scrapes = {k: ScrapeStats(**raw[k]) if raw.get(k) else None for k in ("plain", "gzip")}
    return Measured(**{**raw, **scrapes})


def load_runs(path: Path) -> dict[int, dict[str, SizeResult]]:
    """Runs written by ``--json``, to complete them with a re-run of some modes."""
    out: dict[int, dict[str, SizeResult]] = {}
    for numbers, by_mode in json.loads(path.read_text()).items():
        for mode, raw in by_mode.items():
            size = SizeResult(**{**raw, "daemon": _measured(raw.get("daemon")),
                                 "baseline": _measured(raw.get("baseline"))})
            out.setdefault(int(numbers), {})[mode] = size
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.templates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--templates", type=int, default=20, help="per WABA (default 20)")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--scrapes", type=int, default=20,
                        help="sequential scrapes per kind after each cycle (default 20)")
    parser.add_argument("--scrape-budget", type=float, default=15.0)
    parser.add_argument("--plain-timeout", type=float, default=120.0)
    parser.add_argument("--output", type=Path, default=bench.REPO / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="which runs, of off,problems,all (default all three)")
    parser.add_argument("--merge", type=Path, default=None, metavar="JSON",
                        help="start from the runs of an earlier --json and replace the ones "
                             "measured now (e.g. re-run one mode)")
    args = parser.parse_args(argv)
    args.mode_list = [m for m in args.modes.split(",") if m]
    if not args.mode_list or set(args.mode_list) - set(MODES):
        parser.error(f"--modes: a list of {', '.join(MODES)}")
    args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.templates < 1:
        parser.error("--templates: at least 1 (the off column is measured anyway)")
    # What run_size expects besides these.
    args.skip_baseline, args.profile, args.source = True, None, bench.REPO
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.templates " + shlex.join(sys.argv[1:] if argv is None
                                                             else argv)
    started, load0, t0 = dt.datetime.now(dt.UTC), load_average(), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="waba-bench-templates-"))
    version = bench.snapshot_source(work)
    bench.log(f"work directory {work}; monitor/ at {version}")
    runs = load_runs(args.merge) if args.merge is not None else {}
    ok = False
    try:
        with Children() as children:
            for numbers in args.size_list:
                for mode in (m for m in MODES if m in args.mode_list):
                    sub = argparse.Namespace(**vars(args))
                    sub.templates = 0 if mode == "off" else args.templates
                    sub.template_series = "problems" if mode == "off" else mode
                    bench.log(f"--- templates {mode} at {numbers:,}")
                    mode_work = work / f"{numbers}-{mode}"
                    mode_work.mkdir()
                    runs.setdefault(numbers, {})[mode] = bench.run_size(children, numbers,
                                                                        mode_work, sub)
        ok = True
    finally:
        if args.json is not None and runs:
            args.json.write_text(json.dumps(
                {n: {m: asdict(r) for m, r in by.items()} for n, by in runs.items()}, indent=2))
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            bench.log(f"logs kept in {work}")
    section = report(runs, command.strip(), started, time.monotonic() - t0, version,
                     args.templates, (load0, load_average()))
    print(section)
    if str(args.output) != "-":
        write_output(args.output, section, BEGIN, END, heading="Templates (issue 12)")
        bench.log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
