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
