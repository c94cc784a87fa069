"""A webhook names a number by its display number: the store finds it through an index kept
as polls put numbers, and the index follows numbers that move, leave or come back."""

from __future__ import annotations

from monitor.model import BusinessState, PhoneNumber, WabaState
from monitor.store import Store


def waba(waba_id: str, *numbers: tuple[str, str]) -> WabaState:
    return WabaState("101", waba_id, numbers=tuple(
        PhoneNumber(ident, display_phone_number=display) for ident, display in numbers),
        up=True, polled=True)


def found(store: Store, display: str) -> tuple[str, str] | None:
    hit = store.number_by_display(display)
    return None if hit is None else (hit[0].waba_id, hit[1].id)


def test_numbers_are_found_by_their_digits_and_follow_moves_and_removals() -> None:
    store = Store()
    store.put_business(BusinessState("101"))
    store.put_waba(waba("201", ("1", "+1 555-0100"), ("2", "+1 555-0101")))
    store.put_waba(waba("202", ("3", "+44 20 7946 0000")))
    assert found(store, "15550100") == ("201", "1")
    assert found(store, "+1 (555) 0101") == ("201", "2")
    assert found(store, "442079460000") == ("202", "3")
    assert found(store, "15550199") is None

    # Number 2 moves from WABA 201 to 202 (201 is polled first, then 202).
    store.put_waba(waba("201", ("1", "+1 555-0100")))
    assert found(store, "15550101") is None
    store.put_waba(waba("202", ("3", "+44 20 7946 0000"), ("2", "+1 555-0101")))
    assert found(store, "15550101") == ("202", "2")
    # ... or 202 is polled first: 201's later poll must not drop 202's entry.
    store.put_waba(waba("202", ("3", "+44 20 7946 0000"), ("1", "+1 555-0100")))
    store.put_waba(waba("201"))
    assert found(store, "15550100") == ("202", "1")

    store.remove_waba("202")
    assert found(store, "15550100") is None and found(store, "442079460000") is None
    store.load([], [waba("203", ("4", "+1 555-0104"))])
    assert found(store, "15550104") == ("203", "4")
