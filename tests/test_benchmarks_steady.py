"""The steady-state and templates benchmarks' arithmetic and tables (no timings asserted)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks import steady
from benchmarks.report import Measured, SizeResult, write_output
from benchmarks.scrape import ScrapeStats
from benchmarks.simulator import path_kind
from benchmarks.steady import Sample, SteadyResult, per_hour, window_shares
from benchmarks.templates import load_runs, per_waba_hour, table
from monitor.simulator import generate_scenario
from monitor.simulator.templates import STATUSES


def test_window_shares_are_cpu_over_wall_per_window() -> None:
    # One sample a second; CPU grows 0.1 s a second for 10 s, then 0.5 s a second.
    samples = [Sample(float(t), 0.1 * min(t, 10) + 0.5 * max(0, t - 10), 0) for t in range(26)]
    shares = window_shares(samples, window=10.0)
    assert shares == pytest.approx([0.1, 0.5])  # the last 5 s are too short: dropped


def test_window_shares_close_on_the_first_sample_past_the_window() -> None:
    # Irregular sampling: the window closes at t=11 (first sample >= 10 s after t=0).
    samples = [Sample(0.0, 0.0, 0), Sample(6.0, 1.0, 0), Sample(11.0, 2.2, 0),
               Sample(22.0, 3.3, 0)]
    assert window_shares(samples, window=10.0) == pytest.approx([0.2, 0.1])
    assert window_shares([], window=10.0) == []
    assert window_shares(samples[:1], window=10.0) == []


def test_percentile_is_nearest_rank_over_unsorted_values() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1
    assert steady.p(values, 0.5) == 50.0
    assert steady.p(values, 0.99) == 99.0
    assert steady.p(values[:10], 0.99) == 100.0  # few values: p99 is the max
    assert math.isnan(steady.p([], 0.5))


def test_per_hour_measures_scan_reads_and_counts_runs_of_cadence_reads() -> None:
    since_start = {"phone_numbers": 2200, "waba": 200, "message_templates": 200,
                   "debug_token": 1}
    in_span = {"phone_numbers": 2000, "waba": 0, "message_templates": 0, "debug_token": 0}
    # 600 s measured, 620 s since the daemon started: the 15 min reads ran once.
    out = per_hour(since_start, in_span, elapsed=620.0, span=600.0)
    assert out["phone_numbers"] == pytest.approx(12_000)
    assert out["waba"] == pytest.approx(800)  # 200 a run, 4 runs an hour
    assert out["message_templates"] == pytest.approx(800)
    assert out["debug_token"] == pytest.approx(1)
    # 1,000 s since start: the 15 min reads started twice; their count is split over both.
    again = per_hour({"waba": 400}, {"waba": 200}, elapsed=1000.0, span=900.0)
    assert again["waba"] == pytest.approx(800)


def test_cadence_reads_are_counted_at_the_first_round_when_the_span_reaches_the_second(
) -> None:
    """The span ended 75 s into the second round, which had made a tenth of its reads:
    counted as two whole runs, the reads an hour came out near half of the truth."""
    result = _result(50_000, 0.1, 400.0)
    result.since_start, result.duration = 975.0, 900.0
    result.requests_since_start = {"message_templates": 11_000, "phone_numbers": 100}
    result.requests = {"message_templates": 1_000, "phone_numbers": 90}
    assert result.requests_per_hour["message_templates"] == pytest.approx(22_000)
    result.requests_first_round = {"message_templates": 10_000, "phone_numbers": 10}
    result.first_round_elapsed = 898.0
    per = result.requests_per_hour
    assert per["message_templates"] == pytest.approx(40_000)  # one read per WABA a round
    assert per["phone_numbers"] == pytest.approx(360)  # scan reads: still the span's rate


def _result(numbers: int, cpu: float, rss: float) -> SteadyResult:
    result = SteadyResult(numbers=numbers, businesses=numbers // 50, wabas=numbers // 5,
                          templates_per_waba=20, scan_interval=60.0)
    result.duration, result.cpu_seconds, result.since_start = 600.0, cpu * 600.0, 610.0
    result.shares = [cpu] * 60
    result.rss_mb = [rss, rss + 2]
    result.requests = {"phone_numbers": numbers // 5 * 10, "business": 0}
    result.requests_since_start = {"phone_numbers": numbers // 5 * 11, "waba": numbers // 5,
                                   "business": numbers // 50}
    result.scrape_ms = [10.0, 20.0, 30.0]
    result.status_ms = [5.0]
    result.changes, result.webhooks = 40, {"200": 38}
    return result


def test_steady_table_and_per_waba_budget() -> None:
    small = _result(1000, 0.01, 70.0)
    # Per WABA: 60 list pages + 4 WABA reads an hour; business reads are the business's.
    assert small.waba_requests_per_hour == pytest.approx(64.0)
    assert small.cpu_mean == pytest.approx(0.01)
    lines = steady.table([small])
    text = "\n".join(lines)
    assert lines[0] == "| | 1,000 numbers |"
    assert "| CPU, share of one core: mean | 1.0 % |" in text
    assert "| … per WABA and hour (budget 200 / 5,000) | 64.0 (32% / 1.3%) |" in text
    assert "| /metrics (gzip) p50 / p99 ms | 20.0 / 30.0 |" in text
    assert "| Changes made / webhooks delivered | 40 / 200: 38 |" in text
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_growth_shows_marginal_cost_per_thousand_numbers() -> None:
    rows = steady.growth([_result(10_000, 0.05, 100.0), _result(1000, 0.01, 70.0),
                          _result(50_000, 0.25, 300.0)])
    cpu = next(r for r in rows if r.startswith("| CPU share"))
    # 1→10k: +4 points over 9k numbers; 10→50k: +20 over 40k: 0.444 and 0.5 per 1k.
    assert cpu == ("| CPU share of one core, mean (%) | 1.00 | 5.00 | 25.00 | 0.444 | 0.5 "
                   "| 1.12 |")
    assert steady.growth([_result(1000, 0.01, 70.0)]) == ["(needs at least two sizes)"]


def test_path_kinds_name_edges_and_generated_nodes() -> None:
    assert path_kind("/v24.0/200000000000001/phone_numbers") == "phone_numbers"
    assert path_kind("/v24.0/200000000000001/message_templates") == "message_templates"
    assert path_kind("/v24.0/200000000000001") == "waba"
    assert path_kind("/v24.0/100000000000001") == "business"
    assert path_kind("/v24.0/3000000000000001") == "phone_number"
    assert path_kind("/v24.0/debug_token") == "debug_token"


def test_generated_templates_are_mostly_healthy_with_every_status() -> None:
    scenario = generate_scenario(businesses=2, wabas_per_business=10, numbers_per_waba=1,
                                 templates_per_waba=20)
    templates = [f for _, w in scenario.wabas() for _, f in w.templates]
    assert len(templates) == 400
    healthy = [f for f in templates if f["status"] == "APPROVED"
               and f["quality_score"]["score"] in ("GREEN", "UNKNOWN")
               and f.get("correct_category", f["category"]) == f["category"]]
    assert len(healthy) == 340  # 68 of every 80
    assert {f["status"] for f in templates} == set(STATUSES)
    assert {f["quality_score"]["score"] for f in templates} == {"GREEN", "UNKNOWN", "YELLOW",
                                                                  "RED"}


def test_templates_table_shows_change_from_off(tmp_path: Path) -> None:
    def size(series: int, templates: int, cpu: float) -> SizeResult:
        reads = {"message_templates": templates, "waba": 2000, "subscribed_apps": 2000}
        m = Measured(requests=2000, requests_by_endpoint=reads,
                     cycle_cpu=cpu, series=series, poll_cpu=2.0, poll_wall=8.0)
        return SizeResult(numbers=10_000, businesses=200, wabas=2000, minimum_requests=2000,
                          latency=0.05, daemon=m)

    runs = {10_000: {"off": size(500_000, 0, 3.0), "problems": size(520_000, 2000, 3.5)}}
    text = "\n".join(table(runs))
    assert "| Template requests, first template poll | 0 | 2,000 |" in text
    assert "| Series per scrape (extra) | 500,000 | 520,000 (+20,000) |" in text
    assert "| Whole first cycle: CPU s (templates' extra) | 3.00 | 3.50 (+0.50) |" in text
    assert per_waba_hour(2000, 2000) == pytest.approx(4.0)
    # A cycle that ended before every WABA's subscriptions were read is not compared.
    runs[10_000]["problems"].daemon.requests_by_endpoint["subscribed_apps"] = 5  # type: ignore[union-attr]
    assert "| 3.00 | — (cut short) |" in "\n".join(table(runs))
    runs[10_000]["problems"].daemon.requests_by_endpoint["subscribed_apps"] = 2000  # type: ignore[union-attr]
    # A --json file loads back into the same runs (to merge a re-run of one mode).
    saved = tmp_path / "runs.json"
    runs[10_000]["off"].daemon.gzip = ScrapeStats("gzip", 5, 1.0, 2.0, 3.0, 4.0, 5)  # type: ignore[union-attr]
    saved.write_text(json.dumps({n: {m: asdict(r) for m, r in by.items()}
                                 for n, by in runs.items()}))
    assert load_runs(saved) == runs


def test_write_output_adds_a_section_before_a_later_one_then_replaces_it(tmp_path: Path) -> None:
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\n## Status page (issue 13)\n\ntext\n")
    write_output(doc, "<!-- s:b -->\none\n<!-- s:e -->", "<!-- s:b -->", "<!-- s:e -->",
                 heading="Steady", before="## Status page (issue 13)")
    first = doc.read_text()
    assert first.index("## Steady") < first.index("## Status page (issue 13)")
    write_output(doc, "<!-- s:b -->\ntwo\n<!-- s:e -->", "<!-- s:b -->", "<!-- s:e -->")
    second = doc.read_text()
    assert "two" in second and "one" not in second and second.count("## Steady") == 1


def test_steady_run_end_to_end_at_50_numbers(tmp_path: Path) -> None:
    """The whole harness once, tiny: real simulator, daemon, webhooks, scrapes (~25 s)."""
    doc, raw = tmp_path / "B.md", tmp_path / "r.json"
    doc.write_text("# B\n")
    assert steady.main(["--sizes", "50", "--duration", "13", "--scrape-interval", "2",
                        "--status-interval", "2", "--changes-per-minute", "30",
                        "--output", str(doc), "--json", str(raw)]) == 0
    (result,) = json.loads(raw.read_text())
    assert result["notes"] == []
    assert result["requests_since_start"]["phone_numbers"] >= 10  # one page per WABA
    assert result["requests_since_start"]["owned_whatsapp_business_accounts"] >= 1  # discovery
    assert len(result["scrape_ms"]) >= 3 and len(result["status_ms"]) >= 3
    assert result["changes"] >= 3
    assert result["webhooks"].get("200", 0) >= 1  # signed, delivered and accepted
    assert len(result["shares"]) >= 1 and len(result["rss_mb"]) >= 5
    text = doc.read_text()
    assert "## Steady state (issue 14)" in text and "| 50 numbers |" in text
