"""What keeps a fleet's state small (issue 14): counted structure, never bytes or timings."""

import sys

from monitor.model import PhoneNumber
from monitor.poller import shared_strings


def test_ids_are_not_interned_but_enum_values_are() -> None:
    """Interned strings are shared for good; an id is one number's alone, so only the
    enum-like values go through the interpreter's table."""
    canonical_id = sys.intern("3000000000000042")
    canonical_display = sys.intern("+1 555-000-0042")
    row = {"id": "".join(["3000000000000", "042"]), "status": "".join(["CONN", "ECTED"]),
           "display_phone_number": "".join(["+1 555-", "000-0042"]),
           "health_status": {"entities": [{"id": "".join(["3000000000000", "042"]),
                                           "can_send_message": "".join(["LIMI", "TED"])}]}}
    shared = shared_strings(row)
    assert shared == row
    assert shared["status"] is sys.intern("CONNECTED")
    assert shared["health_status"]["entities"][0]["can_send_message"] is sys.intern("LIMITED")
    assert shared["id"] is not canonical_id and shared["id"] is row["id"]
    assert shared["display_phone_number"] is not canonical_display
    assert shared["health_status"]["entities"][0]["id"] is not canonical_id


def test_parsed_nodes_and_numbers_share_their_repeated_strings() -> None:
    """A fleet's WABA nodes say the same few enum values, and its numbers the same callback
    origin: one string each, however many parsed."""
    from monitor.accounts import parse_waba_node
    from monitor.model import parse_phone_number

    def node(n: int) -> dict[str, object]:
        return {"name": f"WABA {n}", "ownership_type": "".join(["CLIENT", "_OWNED"]),
                "account_review_status": "".join(["APPR", "OVED"]),
                "timezone_id": "".join(["1", "1"]),
                "owner_business_info": {"id": "".join(["1000", "42"])},
                "health_status": {"can_send_message": "".join(["AVAIL", "ABLE"])}}

    a, b = parse_waba_node(node(1), 0.0), parse_waba_node(node(2), 0.0)
    for name in ("ownership_type", "account_review_status", "timezone_id",
                 "owner_business_id", "can_send_message"):
        assert getattr(a, name) is not None and getattr(a, name) is getattr(b, name), name
    assert a.name != b.name

    def number(n: int) -> PhoneNumber:
        url = "".join(["https://hooks.example.com/wa?n=", str(n)])
        return parse_phone_number({"id": f"3{n}", "webhook_configuration": {"application": url}})

    x, y = number(1), number(2)
    assert x.callback_origin == "https://hooks.example.com"
    assert x.callback_origin is y.callback_origin
