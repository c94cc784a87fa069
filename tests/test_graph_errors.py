"""The error taxonomy decides retry or not; each class is pinned here."""

import pytest

from monitor.graph.errors import ErrorKind, error_from_response
from monitor.graph.usage import parse_app_usage, parse_buc_usage


def envelope(code: int, subcode: int | None = None, message: str = "m", **extra: object) -> dict:
    err: dict[str, object] = {"message": message, "type": "OAuthException", "code": code,
                              "fbtrace_id": "Abc"}
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra)
    return {"error": err}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, envelope(2, message="Service temporarily unavailable"), ErrorKind.TRANSIENT),
        (400, envelope(1), ErrorKind.TRANSIENT),
        (400, envelope(999, is_transient=True), ErrorKind.TRANSIENT),
        (503, None, ErrorKind.TRANSIENT),
        (400, envelope(4), ErrorKind.THROTTLED),
        (400, envelope(17), ErrorKind.THROTTLED),
        (400, envelope(32), ErrorKind.THROTTLED),
        (400, envelope(613), ErrorKind.THROTTLED),
        (400, envelope(80007), ErrorKind.THROTTLED),
        (400, envelope(80008), ErrorKind.THROTTLED),
        (429, None, ErrorKind.THROTTLED),
        (401, envelope(190, 463), ErrorKind.AUTH),
        (400, envelope(102), ErrorKind.AUTH),
        (400, envelope(104), ErrorKind.AUTH),
        (401, envelope(0), ErrorKind.AUTH),
        (403, envelope(10), ErrorKind.PERMISSION),
        (403, envelope(200), ErrorKind.PERMISSION),
        (403, envelope(299), ErrorKind.PERMISSION),
        (400, envelope(100, 33), ErrorKind.NOT_FOUND),
        (404, envelope(803), ErrorKind.NOT_FOUND),
        (400, envelope(100, message="(#100) Invalid parameter"), ErrorKind.BAD_REQUEST),
        (418, "not json", ErrorKind.BAD_REQUEST),
    ],
)
def test_classification(status: int, body: object, kind: ErrorKind) -> None:
    assert error_from_response("phone_numbers", status, body).kind is kind


def test_rejected_field_is_named() -> None:
    err = error_from_response(
        "phone_numbers", 400,
        envelope(100, message="(#100) Tried accessing nonexisting field (unified_cert_status) "
                              "on node type (WhatsAppBusinessPhoneNumber)"),
    )
    assert err.kind is ErrorKind.FIELD_REJECTED
    assert err.field == "unified_cert_status"
    assert err.code_label == "100"


def test_code_label_is_bounded_without_a_code() -> None:
    assert error_from_response("x", 502, b"<html>").code_label == "http_502"


def test_buc_usage_header() -> None:
    header = ('{"102290129340398":[{"type":"whatsapp_business_management","call_count":95,'
              '"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":2}]}')
    (entry,) = parse_buc_usage(header)
    assert entry.object_id == "102290129340398"
    assert entry.call_count == 95
    assert entry.regain_access_seconds == 120
    assert entry.max_ratio == pytest.approx(0.95)


@pytest.mark.parametrize("header", [None, "", "not json", "[]", '{"1": "x"}', '{"1": [3]}'])
def test_bad_usage_headers_are_ignored(header: str | None) -> None:
    assert parse_buc_usage(header) == ()


def test_app_usage() -> None:
    usage = parse_app_usage('{"call_count":28,"total_time":25,"total_cputime":"7"}')
    assert usage is not None
    assert (usage.call_count, usage.total_time, usage.total_cputime) == (28, 25, 7)
    assert parse_app_usage("{") is None
