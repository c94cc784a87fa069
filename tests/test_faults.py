"""The daemon against a misbehaving Graph API: every fault the simulator can inject.

Each test runs a real daemon (``Runtime`` on a free port, no state file, 0.2 s scan interval,
one retry, 1 s request timeout) against the simulator with a fleet of three WABAs, breaks one
WABA (or everything, where that is what the fault means), and checks that

(a) the daemon stays up: ``/-/healthy`` and ``/metrics`` answer 200 throughout;
(b) the other WABAs keep fresh data: ``waba_up`` 1 and a last success that keeps moving;
(c) the failing WABA shows ``waba_up`` 0 and keeps its last good values, and its
    last-success timestamp stands still;
(d) the error counters move, with the right ``code`` label;
(e) it recovers by itself once the fault ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Fault
from tests.faultkit import (
    AUTH_OK,
    ERRORS,
    LAST_POLL_REQUESTS,
    PHONE_NUMBERS,
    Daemon,
    Prober,
    Scrape,
    captured_logs,
    fleet,
    log_events,
    running_daemon,
)

FRESH = 3.0  # seconds: a healthy WABA polled every 0.2 s is never older than this
BUC_TYPE = "whatsapp_business_management"
# An empty X-Business-Use-Case-Usage replaces the simulator's own: "no usage information".
NO_USAGE = {"X-Business-Use-Case-Usage": ""}
# Where the fault is a request that never answers, a shorter request timeout keeps it quick.
FAST_TIMEOUT = {"timeout": "500ms"}


@dataclass(frozen=True)
class Case:
    id: str
    fault: Mapping[str, Any]
    code: str  # the expected ``code`` label of the error counter
    retried: bool | None  # requests of a failed poll: 2 when retried once, 1 when not
    graph: Mapping[str, Any] = field(default_factory=dict)  # graph settings for this case


CASES = [
    Case("http_500", {"kind": "http_error"}, "2", True),
    Case("http_503_code_1", {"kind": "http_error", "status": 503, "code": 1}, "1", True),
    Case("timeout", {"kind": "timeout", "delay": 2.0}, "network", True, FAST_TIMEOUT),
    Case("hang", {"kind": "hang"}, "network", True, FAST_TIMEOUT),
    Case("reset", {"kind": "reset"}, "network", True),
    Case("malformed_json", {"kind": "malformed_json"}, "payload", True),
    Case("html_200", {"kind": "html_200"}, "payload", True),
    Case("empty_body", {"kind": "empty_body"}, "payload", True),
    Case("data_not_list", {"kind": "data_not_list"}, "payload", True),
    Case("cursor_loop", {"kind": "cursor_loop"}, "cursor_loop", None),
    *[
        Case(f"throttled_{code}_no_usage_header",
             {"kind": "http_error", "status": 400, "code": code, "headers": NO_USAGE},
             str(code), True)
        for code in (4, 80007, 80008, 613)
    ],
    Case("permission_removed_200",
         {"kind": "http_error", "status": 403, "code": 200,
          "message": "(#200) Requires whatsapp_business_management permission"}, "200", False),
    Case("not_found_100_33",
         {"kind": "http_error", "status": 400, "code": 100, "subcode": 33,
          "type": "GraphMethodException",
          "message": "Unsupported get request. Object with ID '1' does not exist"}, "100", False),
    Case("not_found_803",
         {"kind": "http_error", "status": 404, "code": 803,
          "message": "(#803) Some of the aliases you requested do not exist"}, "803", False),
]


def assert_fresh(d: Daemon, scrapes: list[Scrape], wabas: list[str]) -> None:
    """(b): in every scrape, the given WABAs are up and were polled successfully lately."""
    assert scrapes, "no scrape was taken"
    for scrape in scrapes:
        for waba in wabas:
            assert d.up(scrape, waba) == 1, f"WABA {waba} went down at {scrape.at}"
            age = scrape.at - d.last_success(scrape, waba)
            assert age < FRESH, f"WABA {waba} data {age:.1f}s old at {scrape.at}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_one_waba_failing(case: Case, tmp_path: Path) -> None:
    async with running_daemon(tmp_path, fleet(), graph=case.graph) as d, \
            Prober(d.url) as prober:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        before = await d.all_up()
        d.world.inject_fault(Fault(target=bad, count=-1, **case.fault))
        down = await d.wait_for("the faulted WABA down", lambda s: d.up(s, bad) == 0)
        # (c) its last good values stay, unchanged, and so does its last success
        assert down.numbers_of(bad) == before.numbers_of(bad)
        assert len(down.numbers_of(bad)) > 0
        frozen = d.last_success(down, bad)
        assert frozen > 0
        failed = d.failures(down, bad)
        assert failed >= 1
        others = {w: d.last_success(down, w) for w in good}
        later = await d.wait_for(
            "another failed poll and fresh polls of the other WABAs",
            lambda s: d.failures(s, bad) >= failed + 1
            and all(d.last_success(s, w) > others[w] for w in good))
        assert d.up(later, bad) == 0
        assert later.numbers_of(bad) == before.numbers_of(bad)
        assert d.last_success(later, bad) == frozen
        assert later.get(PHONE_NUMBERS, **d.labels(bad)) == 3
        # (d) the right error code is counted, and the poll failures
        assert later.total(ERRORS, code=case.code) > before.total(ERRORS, code=case.code)
        assert later.total(ERRORS, endpoint="phone_numbers", code=case.code) > 0
        assert d.failures(later, bad) > d.failures(before, bad)
        if case.retried is not None:
            assert later.get(LAST_POLL_REQUESTS, **d.labels(bad)) == (2 if case.retried else 1)
        assert later.get(AUTH_OK) == 1, "a non-auth failure must not clear graph_auth_ok"
        # (b) the others never went down nor stale while this one failed
        cleared_at = time.time()
        d.world.clear_faults()
        # (e) recovery once the fault ends
        recovered = await d.wait_for(
            "recovery", lambda s: d.up(s, bad) == 1 and d.last_success(s, bad) > frozen)
        assert recovered.numbers_of(bad).keys() == before.numbers_of(bad).keys()
        window = [s for s in prober.since(before.at) if s.at <= cleared_at]
    assert_fresh(d, window, good)
    assert prober.problems == []  # (a)
    assert prober.rounds >= 3


async def test_5xx_burst_ends_and_the_waba_recovers_untouched(tmp_path: Path) -> None:
    """A burst of six 500s is three failed polls (one retry each), then it heals alone."""
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        before = await d.all_up()
        d.world.inject_fault(Fault(target=bad, kind="http_error", status=500, count=6))
        await d.wait_for("the burst used up", lambda s: not d.world.faults(), timeout=15)
        after = await d.wait_for(
            "recovery after the burst",
            lambda s: d.up(s, bad) == 1 and d.last_success(s, bad) > d.last_success(before, bad))
    assert d.failures(after, bad) - d.failures(before, bad) == 3
    assert after.total(ERRORS, code="2") - before.total(ERRORS, code="2") == 6
    assert any(d.up(s, bad) == 0 for s in prober.scrapes), "the burst was never visible"
    assert_fresh(d, prober.since(before.at), good)
    assert prober.problems == []


@pytest.mark.parametrize("code", [4, 80007, 80008, 613])
async def test_throttled_with_regain_estimate_skips_polls_until_then(
    code: int, tmp_path: Path
) -> None:
    """``estimated_time_to_regain_access`` longer than ``max_throttle_wait`` (1 s): the WABA
    sends nothing until then (2.4 s), the others carry on, and it comes back by itself."""
    regain_minutes = 0.04  # 2.4 s; the header counts in minutes
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        usage = {bad: [{"type": BUC_TYPE, "call_count": 100, "total_cputime": 40,
                        "total_time": 40, "estimated_time_to_regain_access": regain_minutes}]}
        before = await d.all_up()
        d.world.inject_fault(Fault(
            target=bad, kind="http_error", status=400, code=code, count=-1,
            headers={"X-Business-Use-Case-Usage": json.dumps(usage)}))
        down = await d.wait_for("throttled", lambda s: d.up(s, bad) == 0)
        seen_down = time.monotonic()
        assert down.get("whatsapp_monitor_graph_business_use_case_regain_access_seconds",
                        object_id=bad, type=BUC_TYPE) == pytest.approx(2.4)
        assert down.get("whatsapp_monitor_graph_business_use_case_usage_ratio",
                        object_id=bad, type=BUC_TYPE, measure="call_count") == 1.0
        # No in-line wait, no retry: one throttled answer. (Not the poll's request count: a
        # poll that read a page before the fault was injected counts that page too.)
        assert down.total(ERRORS, code=str(code)) - before.total(ERRORS, code=str(code)) == 1
        sent = d.world.request_count(object_id=bad)
        others = {w: d.world.request_count(object_id=w) for w in good}
        await asyncio.sleep(1.2)
        assert d.world.request_count(object_id=bad) == sent, "requests sent while throttled"
        for w in good:
            assert d.world.request_count(object_id=w) >= others[w] + 4, "others slowed down"
        waiting = await d.scrape()
        assert d.up(waiting, bad) == 0
        assert waiting.numbers_of(bad) == before.numbers_of(bad)
        assert d.last_success(waiting, bad) == d.last_success(down, bad)
        assert waiting.total(ERRORS, code=str(code)) > before.total(ERRORS, code=str(code))
        d.world.clear_faults()
        await d.wait_for("recovery after the regain time",
                         lambda s: d.up(s, bad) == 1, timeout=8)
        assert time.monotonic() - seen_down >= 2.0, "polled again before the regain time"
    assert_fresh(d, prober.since(before.at), good)
    assert prober.problems == []


async def test_token_expiring_mid_run_clears_auth_ok_until_it_works_again(
    tmp_path: Path,
) -> None:
    """Every call answers 190 (HTTP 401): all WABAs down, values kept, no retries, auth_ok 0
    for as long as it lasts; a working token again brings everything back and auth_ok 1."""
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        before = await d.all_up()
        assert before.get(AUTH_OK) == 1
        d.world.inject_fault(Fault(
            target="*", kind="http_error", status=401, code=190, subcode=463, count=-1,
            message="Error validating access token: Session has expired on Tuesday"))
        down = await d.wait_for(
            "every WABA down and auth_ok 0",
            lambda s: s.get(AUTH_OK) == 0 and all(d.up(s, w) == 0 for w in d.waba_ids))
        failed = {w: d.failures(down, w) for w in d.waba_ids}
        later = await d.wait_for(
            "more failed polls",
            lambda s: all(d.failures(s, w) >= failed[w] + 2 for w in d.waba_ids))
        window_end = time.time()
        for w in d.waba_ids:
            assert d.up(later, w) == 0
            assert later.numbers_of(w) == before.numbers_of(w)
            assert d.last_success(later, w) == d.last_success(down, w)
            assert later.get(LAST_POLL_REQUESTS, **d.labels(w)) == 1  # 190 is not retried
        assert later.total(ERRORS, code="190") > 0
        assert later.get(AUTH_OK) == 0
        d.world.clear_faults()
        after = await d.wait_for(
            "recovery", lambda s: s.get(AUTH_OK) == 1
            and all(d.up(s, w) == 1 and d.last_success(s, w) > d.last_success(later, w)
                    for w in d.waba_ids))
        assert after.get(AUTH_OK) == 1
        during = [s for s in prober.since(down.at) if s.at <= window_end]
    assert during and all(s.get(AUTH_OK) == 0 for s in during), "auth_ok flapped while 190"
    assert prober.problems == []


async def test_waba_removed_from_the_api(tmp_path: Path) -> None:
    """A configured WABA that vanishes (the API answers code 100, subcode 33).

    What the daemon does: the WABA stays exported with ``waba_up`` 0 and its last numbers,
    its last success stands still, it is still polled every scan interval (it is in the
    configuration), with one request per poll and no retry; the others are unaffected.
    """
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        before = await d.all_up()
        d.world.remove_waba(bad)
        down = await d.wait_for("the removed WABA down", lambda s: d.up(s, bad) == 0)
        polls = d.polls(down, bad)
        others = {w: d.last_success(down, w) for w in good}
        later = await d.wait_for(
            "more polls", lambda s: d.polls(s, bad) >= polls + 2
            and all(d.last_success(s, w) > others[w] for w in good))
        assert d.up(later, bad) == 0
        assert later.numbers_of(bad) == before.numbers_of(bad)
        assert d.last_success(later, bad) == d.last_success(down, bad)
        assert later.get(LAST_POLL_REQUESTS, **d.labels(bad)) == 1
        assert later.total(ERRORS, endpoint="phone_numbers", code="100") >= 3
        assert d.failures(later, bad) >= d.failures(before, bad) + 3
    assert_fresh(d, prober.since(before.at), good)
    assert prober.problems == []


async def test_simulator_killed_and_restarted(tmp_path: Path) -> None:
    """The Graph API goes away (connection refused) and comes back on the same port."""
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        before = await d.all_up()
        await d.stop_simulator()
        down = await d.wait_for("every WABA down",
                                lambda s: all(d.up(s, w) == 0 for w in d.waba_ids))
        await asyncio.sleep(1.0)
        gone = await d.scrape()
        for w in d.waba_ids:
            assert gone.numbers_of(w) == before.numbers_of(w)
            assert d.last_success(gone, w) == d.last_success(down, w)
            assert d.failures(gone, w) > d.failures(down, w)
        assert gone.total(ERRORS, code="network") > before.total(ERRORS, code="network")
        await d.start_simulator()
        back = await d.wait_for(
            "recovery after the restart",
            lambda s: all(d.up(s, w) == 1 and d.last_success(s, w) > d.last_success(gone, w)
                          for w in d.waba_ids))
        for w in d.waba_ids:
            assert back.numbers_of(w).keys() == before.numbers_of(w).keys()
    assert prober.problems == []
    assert prober.rounds >= 10


async def test_a_page_of_thousands_is_ingested(tmp_path: Path) -> None:
    """Not a failure: a 2,000-number page in one answer is read whole, exported, and the
    other WABAs do not notice."""
    size = 2000
    # Only the lines these checks need are parsed: the test shares the daemon's event loop.
    lines = ("whatsapp_monitor_", "whatsapp_phone_number_info", "whatsapp_phone_number_connected")
    async with running_daemon(tmp_path, fleet()) as d, Prober(d.url) as prober:
        bad, good = d.waba_ids[0], d.waba_ids[1:]
        before = await d.all_up(prefixes=lines)
        d.world.inject_fault(Fault(target=bad, kind="huge_page", size=size, count=-1))
        big = await d.wait_for(
            "the big page exported",
            lambda s: s.get(PHONE_NUMBERS, **d.labels(bad)) == size, timeout=20, prefixes=lines)
        assert d.up(big, bad) == 1
        assert len(big.matching("whatsapp_phone_number_info", waba_id=bad)) == size
        assert len(big.matching("whatsapp_phone_number_connected", waba_id=bad)) == size
        assert big.total(ERRORS) == before.total(ERRORS)
        assert d.failures(big, bad) == d.failures(before, bad)
        assert big.get(LAST_POLL_REQUESTS, **d.labels(bad)) == 1
        d.world.clear_faults()
        back = await d.wait_for(
            "back to three numbers", lambda s: s.get(PHONE_NUMBERS, **d.labels(bad)) == 3,
            prefixes=lines)
        assert back.numbers_of(bad).keys() == before.numbers_of(bad).keys()
    assert_fresh(d, prober.since(before.at), good)
    assert prober.problems == []


async def test_stopping_while_every_poll_hangs_is_quick_and_quiet(tmp_path: Path) -> None:
    """A shutdown (SIGTERM) while the Graph API hangs: stop returns at once, leaves no task
    behind, and logs no error — in-flight polls are not failures worth a traceback."""
    with captured_logs("info") as logs:
        async with running_daemon(tmp_path, fleet(), graph={"timeout": "10s"}) as d:
            await d.all_up()
            d.world.inject_fault(Fault(target="*", kind="hang", count=-1))
            await asyncio.sleep(0.6)  # every WABA's poll now waits on a request that hangs
            assert d.world.request_count() > 0
            started = time.monotonic()
            await d.stop_daemon()
            took = time.monotonic() - started
            await asyncio.sleep(0.2)
            current = asyncio.current_task()
            leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()
                         and "monitor/simulator" not in repr(t)]
    assert took < 2.0
    assert leftovers == []
    events = log_events(logs.getvalue())
    assert any(e["event"] == "stopped" for e in events)
    errors = [e for e in events if e.get("level") in ("error", "critical")]
    assert errors == [], [(e["event"], e.get("exception", "")[-300:]) for e in errors]
