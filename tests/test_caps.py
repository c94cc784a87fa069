"""Cap precedence: config, then webhook, then inferred from verification or messaging limit."""

import pytest

from monitor.caps import resolve_cap
from monitor.model import BusinessState, PhoneNumber


def numbers(*limits: str | None) -> list[PhoneNumber]:
    return [PhoneNumber(id=str(i), messaging_limit=lim) for i, lim in enumerate(limits)]


@pytest.mark.parametrize(
    ("business", "limits", "expected"),
    [
        (BusinessState("1", configured_cap=5, learned_cap=20, verified=True), (), (5, "config")),
        (BusinessState("1", learned_cap=20), ("TIER_250",), (20, "webhook")),
        (BusinessState("1", verified=True), ("TIER_250",), (20, "inferred")),
        (BusinessState("1"), ("TIER_250", "TIER_2K"), (20, "inferred")),
        (BusinessState("1"), ("TIER_UNLIMITED",), (20, "inferred")),
        (BusinessState("1"), ("TIER_250",), (2, "inferred")),
        (BusinessState("1"), (None,), (2, "default")),
        (BusinessState("1", verified=False), (), (2, "inferred")),
    ],
)
def test_precedence(business: BusinessState, limits: tuple, expected: tuple[int, str]) -> None:
    assert resolve_cap(business, numbers(*limits)) == expected


def test_store_keeps_one_summary_per_business_up_to_date() -> None:
    from dataclasses import replace

    from monitor.caps import BusinessSummary
    from monitor.model import WabaState
    from monitor.store import Store

    store = Store()
    store.put_business(BusinessState("1"))
    assert store.summary("1") == BusinessSummary("1", 0, 0, 2, "default", 0, 0)
    cloud = PhoneNumber("3", platform_type="CLOUD_API", messaging_limit="TIER_2K")
    pending = PhoneNumber("4", platform_type="NOT_APPLICABLE")
    store.put_waba(WabaState("1", "2", numbers=(cloud, pending), up=True, polled=True))
    store.put_waba(WabaState("1", "5", up=False, polled=True))
    summary = store.summary("1")
    assert summary == BusinessSummary("1", registered=1, numbers=2, cap=20,
                                      cap_source="inferred", wabas=2, wabas_up=1,
                                      messaging_limit="TIER_2K",
                                      messaging_limit_source="numbers")
    # The cap and count agree with resolve_cap, which stays the rule.
    business = store.business("1")
    assert business is not None
    assert (summary.cap, summary.cap_source) == resolve_cap(business, [cloud, pending])
    store.put_business(replace(business, configured_cap=7))
    assert store.summaries() == [replace(summary, cap=7, cap_source="config")]
    store.put_waba(WabaState("9", "2", numbers=(cloud,), up=True, polled=True))  # moved away
    assert store.summary("1") == BusinessSummary("1", 0, 0, 7, "config", 1, 0)
    store.remove_business("1")
    assert store.summary("1") is None and store.summaries() == []
