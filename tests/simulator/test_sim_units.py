"""Unit tests of the plain functions: field parsing, cursors, health aggregation, faults."""

from __future__ import annotations

import base64

import pytest

from monitor.simulator import Fault, FaultError
from monitor.simulator.fields import FieldRequest, FieldSyntaxError, parse_fields, select_subfields
from monitor.simulator.paging import (
    CursorError,
    decode_cursor,
    encode_cursor,
    parse_limit,
    window,
)
from monitor.simulator.render import overall_health, render


def test_parse_fields_plain_and_dedup() -> None:
    parsed = parse_fields("id, status,,status ,quality_rating")
    assert [f.name for f in parsed] == ["id", "status", "quality_rating"]
    assert all(f.subfields is None for f in parsed)


def test_parse_fields_braces_and_modifiers() -> None:
    parsed = parse_fields("owner_business_info{id,name},health_status{entities{id}},x.limit(5)")
    assert parsed[0] == FieldRequest(
        "owner_business_info", (FieldRequest("id"), FieldRequest("name"))
    )
    assert parsed[1].subfields == (FieldRequest("entities", (FieldRequest("id"),)),)
    assert parsed[2] == FieldRequest("x")


@pytest.mark.parametrize("raw", ["id{", "id}", "a{b", "(x", "1abc", "a b", "a.limit(", "é"])
def test_parse_fields_syntax_errors(raw: str) -> None:
    with pytest.raises(FieldSyntaxError):
        parse_fields(raw)


def test_parse_fields_deep_nesting_is_a_syntax_error() -> None:
    assert parse_fields("a{" * 16 + "}" * 16)[0].name == "a"
    with pytest.raises(FieldSyntaxError, match="nesting"):
        parse_fields("a{" * 3000 + "}" * 3000)


def test_select_subfields() -> None:
    value = {"id": "1", "name": "n", "other": 2}
    assert select_subfields(value, (FieldRequest("name"), FieldRequest("missing"))) == {"name": "n"}
    assert select_subfields("scalar", (FieldRequest("x"),)) == "scalar"
    assert select_subfields(value, None) is value


def test_render_only_requested_id_always() -> None:
    values = {"status": "CONNECTED", "quality_rating": None, "extra": 1}
    out = render("7", values, (FieldRequest("status"), FieldRequest("quality_rating")))
    assert out == {"status": "CONNECTED", "id": "7"}


def test_cursor_roundtrip_and_scope() -> None:
    cursor = encode_cursor("phone_numbers/1", 41)
    assert "=" not in cursor
    assert decode_cursor("phone_numbers/1", cursor) == 41
    with pytest.raises(CursorError):
        decode_cursor("phone_numbers/2", cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "",
        "QUFB",
        base64.urlsafe_b64encode(b"wsim1:phone_numbers/1:x").decode(),
        base64.urlsafe_b64encode(b"other:phone_numbers/1:3").decode(),
        base64.urlsafe_b64encode(b"wsim1:phone_numbers/1:-5").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_garbage_cursors_rejected(cursor: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor("phone_numbers/1", cursor)


@pytest.mark.parametrize(
    ("raw", "limit"), [(None, 25), ("", 25), ("1", 1), ("100", 100), ("5000", 100)]
)
def test_parse_limit(raw: str | None, limit: int) -> None:
    assert parse_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "1.5", "1_0", "9" * 40])
def test_parse_limit_rejects(raw: str) -> None:
    with pytest.raises(CursorError):
        parse_limit(raw)


def test_window() -> None:
    first = window(130, 100, after=None, before=None)
    assert (first.start, first.stop) == (0, 100)
    second = window(130, 100, after=99, before=None)
    assert (second.start, second.stop) == (100, 130)
    back = window(130, 25, after=None, before=100)
    assert (back.start, back.stop) == (75, 100)
    past = window(10, 25, after=50, before=None)
    assert past.start == past.stop == 10


def test_overall_health() -> None:
    assert overall_health(["AVAILABLE", "AVAILABLE"]) == "AVAILABLE"
    assert overall_health(["AVAILABLE", "LIMITED"]) == "LIMITED"
    assert overall_health(["LIMITED", "BLOCKED", "AVAILABLE"]) == "BLOCKED"
    assert overall_health([]) == "AVAILABLE"


def test_fault_validation() -> None:
    Fault("1", "http_error")
    with pytest.raises(FaultError, match="kind"):
        Fault("1", "explode")  # type: ignore[arg-type]
    with pytest.raises(FaultError, match="count"):
        Fault("1", "timeout", count=0)
    with pytest.raises(FaultError, match="status"):
        Fault("1", "http_error", status=42)
    with pytest.raises(FaultError, match="target"):
        Fault("", "reset")
    with pytest.raises(FaultError, match="headers"):
        Fault("1", "http_error", headers={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(FaultError, match="unknown key 'colour'"):
        Fault.from_json({"target": "1", "kind": "reset", "colour": "red"})
    with pytest.raises(FaultError, match="missing key 'kind'"):
        Fault.from_json({"target": "1"})


def test_fault_defaults_and_overrides() -> None:
    default = Fault("1", "http_error").graph_error()
    assert (default.status, default.code, default.is_transient) == (500, 2, True)
    assert default.message == "Service temporarily unavailable"
    expired = Fault("1", "http_error", status=401, code=190, subcode=463).graph_error()
    assert (expired.status, expired.code, expired.subcode, expired.is_transient) == (
        401,
        190,
        463,
        False,
    )
    fault = Fault.from_json({"target": "*", "kind": "hang", "count": -1})
    assert fault.to_json()["count"] == -1
    assert fault.matches("anything", is_edge=False)
    assert not Fault("1", "cursor_loop").matches("1", is_edge=False)
    assert Fault("1", "cursor_loop").matches("1", is_edge=True)


def test_a_fault_limited_to_an_edge_spares_the_node() -> None:
    from monitor.simulator import Fault

    fault = Fault(target="200", kind="http_error", edge="phone_numbers")
    assert fault.matches("200", is_edge=True, edge="phone_numbers")
    assert not fault.matches("200", is_edge=False)
    assert not fault.matches("200", is_edge=True, edge="message_templates")
    assert Fault(target="200", kind="http_error").matches("200", is_edge=False)
