"""A routine poll writes again only the series it moved (issue 14): the WABA's own families
whose value changed, and no account-level series when nothing they are made from changed.
Whatever the path, the bytes are those of a full render."""

from __future__ import annotations

import dataclasses
import gzip
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.exposition as exposition
from monitor.accounts import Template
from monitor.exposition import health_part, render_waba_health
from monitor.graph.usage import BucUsage
from monitor.model import BusinessState, PhoneNumber, WabaState
from monitor.store import Store


def state(**changes: Any) -> WabaState:
    base = WabaState("101", "201", numbers=(PhoneNumber("9", status="CONNECTED"),), up=True,
                     polled=True, last_success=1000.0, last_attempt=999.5, last_duration=0.2,
                     last_requests=1, polls=4, interval=60.0, allowance_per_hour=5000,
                     usage=(BucUsage("201", "whatsapp_bm", 1, 2, 3, 0),), usage_ratio=0.03)
    return dataclasses.replace(base, **changes)


def plain(members: dict[str, bytes] | Any) -> dict[str, bytes]:
    return {name: gzip.decompress(member) for name, member in members.items()}


def counting_members(monkeypatch: Any) -> list[bytes]:
    made: list[bytes] = []
    real = exposition.gzip_member

    def counting(data: bytes) -> bytes:
        made.append(data)
        return real(data)

    monkeypatch.setattr(exposition, "gzip_member", counting)
    return made


def test_a_routine_poll_writes_only_the_three_moving_families(monkeypatch: Any) -> None:
    first = health_part(state())
    made = counting_members(monkeypatch)
    second = health_part(state(last_success=1060.0, last_attempt=1059.5, polls=5), first)
    assert len(made) == 3  # last success, last poll, polls; not the other eleven families
    assert all(b"last_success" in m or b"last_poll_timestamp" in m or b"polls_total" in m
               for m in made)
    assert plain(second.members) == render_waba_health(
        state(last_success=1060.0, last_attempt=1059.5, polls=5))
    made.clear()
    third = health_part(state(last_success=1060.0, last_attempt=1059.5, polls=5,
                              usage=(BucUsage("201", "whatsapp_bm", 7, 2, 3, 0),)), second)
    assert {m.split(b"{")[0] for m in made} == {
        b"whatsapp_monitor_graph_business_use_case_usage_ratio",
        b"whatsapp_monitor_graph_business_use_case_regain_access_seconds"}
    assert plain(third.members)["whatsapp_monitor_graph_business_use_case_usage_ratio"] \
        .count(b"\n") == 3


_values = st.one_of(st.none(), st.floats(0, 2e9, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "up": st.booleans(), "last_success": _values, "last_attempt": _values,
    "last_duration": _values, "last_requests": st.integers(0, 5), "polls": st.integers(0, 9),
    "failures": st.integers(0, 3),
    "interval": st.one_of(st.none(), st.floats(1, 3600)),  # pacing never gives 0
    "allowance_per_hour": st.one_of(st.none(), st.sampled_from([200, 5000])),
    "usage_ratio": st.one_of(st.none(), st.floats(0, 2)),
    "usage": st.sampled_from([(), (BucUsage("201", "whatsapp_bm", 1, 2, 3, 0),),
                              (BucUsage("201", "whatsapp_bm", 1, 2, 3, 60),)]),
    "business_id": st.sampled_from(["101", "102"]),
}), min_size=1, max_size=6))
def test_whatever_moved_the_bytes_are_a_full_render(changes: list[dict[str, Any]]) -> None:
    part = None
    for change in changes:
        current = state(**change)
        part = health_part(current, part)
        assert plain(part.members) == render_waba_health(current)


def test_a_routine_poll_does_not_work_out_the_account_series_again() -> None:
    store = Store()
    store.put_business(BusinessState("101"))
    store.put_waba(state())
    store.put_templates("201", (Template("1", "a", "en_US", "PAUSED", "UTILITY", "RED"),),
                        at=1000.0)
    store.put_subscription("201", True)
    looks = [0]
    real = store.effective_templates

    def counting(waba_id: str) -> Any:
        looks[0] += 1
        return real(waba_id)

    store.effective_templates = counting  # type: ignore[method-assign]
    routine = state(last_success=1060.0, last_attempt=1059.5, polls=5)
    store.put_waba(routine)
    assert looks == [0]  # the same sources: the series are the ones made last time
    line = b'whatsapp_waba_app_subscribed{business_id="101",waba_id="201"} '
    assert line + b"1\n" in store.body().text
    store.put_subscription("201", False)  # a source changed: worked out and rendered again
    assert looks == [1]
    assert line + b"0\n" in store.body().text
