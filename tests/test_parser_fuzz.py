"""Property tests for every parser of Graph API input: whatever arrives, each returns a result
or raises its own documented error, never anything else.

* ``parse_phone_number``: a ``PhoneNumber`` or ``PayloadError``;
* ``parse_numbers``: the numbers or ``GraphError`` (kind ``payload``);
* ``error_from_response``: always returns a ``GraphError`` (it never raises);
* ``parse_buc_usage`` / ``parse_app_usage``: "anything unreadable is ignored": never raise;
* ``parse_debug_token``: a ``TokenInfo`` or ``ValueError``;
* the real ``GraphClient`` given any bytes, status and usage headers: a dict or ``GraphError``.

Values are JSON-ish: whatever ``json.loads`` can produce (NaN and infinities included, and
integers up to Python's 4,300-digit limit, since JSON numbers are unbounded).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.graph.client import GraphClient, RetryPolicy
from monitor.graph.errors import ErrorKind, GraphError, error_from_response
from monitor.graph.usage import AppUsage, BucUsage, parse_app_usage, parse_buc_usage
from monitor.model import PHONE_NUMBER_FIELDS, PayloadError, PhoneNumber, parse_phone_number
from monitor.poller import parse_numbers
from monitor.selfmetrics import create_self_metrics
from monitor.token import TokenInfo, parse_debug_token

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BIG = 10**400  # a JSON number json.loads reads as an int, too large for a float

# The ``code`` label of the error counter: an integer code, else one of these; never free text.
LABELS = {"network", "payload", "cursor_loop", *(kind.value for kind in ErrorKind)}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**700), max_value=10**700)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "-", "--1", "²", "١٢", "0x10", "1e400", "NaN", " 7 ", "true"])
)
keys = (
    st.sampled_from([*PHONE_NUMBER_FIELDS, "host_platform", "can_send_message", "level",
                     "error", "code", "error_subcode", "message", "is_transient", "fbtrace_id",
                     "data", "scopes", "expires_at", "data_access_expires_at", "is_valid",
                     "type", "call_count", "total_cputime", "total_time",
                     "estimated_time_to_regain_access"])
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)
number_like = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=20) | json_scalars},
    optional={name: json_values for name in (*PHONE_NUMBER_FIELDS[1:], "host_platform")},
)
envelopes = st.fixed_dictionaries({}, optional={
    "error": st.fixed_dictionaries({}, optional={
        "code": json_scalars, "error_subcode": json_scalars, "message": json_values,
        "is_transient": json_values, "fbtrace_id": json_values, "type": json_values,
    }) | json_values,
})
usage_entries = st.fixed_dictionaries({}, optional={
    name: json_values for name in ("type", "call_count", "total_cputime", "total_time",
                                   "estimated_time_to_regain_access")
})
buc_headers = (
    st.none()
    | st.text(max_size=60)
    | st.dictionaries(st.text(max_size=16), st.lists(usage_entries | json_values, max_size=3)
                      | json_values, max_size=3).map(json.dumps)
    | json_values.map(json.dumps)
)
app_headers = (
    st.none()
    | st.text(max_size=60)
    | usage_entries.map(json.dumps)
    | json_values.map(json.dumps)
)


# --------------------------------------------------------------------------- pure parsers


@FUZZ
@given(raw=number_like | json_values)
@example(raw={"id": "1", "status": BIG})
@example(raw={"id": BIG})
@example(raw={"id": "1", "throughput": {"level": math.nan}})
def test_parse_phone_number(raw: Any) -> None:
    try:
        number = parse_phone_number(raw)
    except PayloadError:
        return
    assert isinstance(number, PhoneNumber) and isinstance(number.id, str) and number.id
    for name in ("display_phone_number", "status", "quality_rating", "throughput_level",
                 "messaging_limit", "health_status", "platform_type"):
        assert getattr(number, name) is None or isinstance(getattr(number, name), str)
    assert number.is_official_business_account in (None, True, False)


@settings(FUZZ, max_examples=75)
@given(rows=st.lists(number_like | json_values, max_size=4))
def test_parse_numbers(rows: list[Any]) -> None:
    try:
        numbers = parse_numbers(rows, "phone_numbers")
    except GraphError as err:
        assert err.kind is ErrorKind.PAYLOAD
        return
    assert all(isinstance(n, PhoneNumber) for n in numbers)
    assert len({n.id for n in numbers}) == len(numbers)


@FUZZ
@given(status=st.integers(min_value=100, max_value=599), body=envelopes | json_values)
@example(status=400, body={"error": {"code": "²"}})
@example(status=400, body={"error": {"code": "--1"}})
@example(status=400, body={"error": {"code": "1", "error_subcode": "-²"}})
@example(status=500, body={"error": {"code": "9" * 5000}})
def test_error_from_response_always_returns_a_graph_error(status: int, body: Any) -> None:
    err = error_from_response("phone_numbers", status, body)
    assert isinstance(err, GraphError)
    assert isinstance(err.kind, ErrorKind)
    label = err.code_label
    assert label.lstrip("-").isdecimal() or label in LABELS or label.startswith("http_"), label
    assert isinstance(str(err), str)


@FUZZ
@given(header=buc_headers)
@example(header="[" * 5000)
@example(header=json.dumps({"1": [{"call_count": BIG}]}))
@example(header=json.dumps({"1": [{"estimated_time_to_regain_access": -BIG}]}))
@example(header='{"1": [{"total_time": NaN, "call_count": Infinity}]}')
def test_parse_buc_usage_never_raises(header: str | None) -> None:
    entries = parse_buc_usage(header)
    assert isinstance(entries, tuple) and all(isinstance(e, BucUsage) for e in entries)
    for entry in entries:
        assert isinstance(entry.object_id, str) and isinstance(entry.type, str)
        for value in (entry.call_count, entry.total_cputime, entry.total_time,
                      entry.regain_access_seconds):
            assert isinstance(value, float)


@FUZZ
@given(header=app_headers)
@example(header="{" * 5000)
@example(header=json.dumps({"call_count": BIG}))
def test_parse_app_usage_never_raises(header: str | None) -> None:
    usage = parse_app_usage(header)
    assert usage is None or isinstance(usage, AppUsage)


@FUZZ
@given(body=st.dictionaries(keys, json_values, max_size=4)
       | st.fixed_dictionaries({"data": st.dictionaries(keys, json_values, max_size=8)
                                | json_values}))
@example(body={"data": {"expires_at": BIG}})
@example(body={"data": {"data_access_expires_at": BIG, "is_valid": True}})
@example(body={"data": {"expires_at": math.inf}})
def test_parse_debug_token(body: dict[str, Any]) -> None:
    try:
        info = parse_debug_token(body)
    except ValueError:
        return
    assert isinstance(info, TokenInfo)
    assert isinstance(info.is_valid, bool)
    for value in (info.expires_at, info.data_access_expires_at):
        assert value is None or isinstance(value, float)


# --------------------------------------------------------------------------- real client


@dataclass
class Canned:
    """What the tiny Graph stand-in answers next."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stand:
    canned: Canned
    client: GraphClient


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def stand() -> AsyncIterator[Stand]:
    canned = Canned()

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=canned.status, body=canned.body, headers=canned.headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        client = GraphClient(
            session, base_url=str(server.make_url("")).rstrip("/"), api_version="v24.0",
            access_token="fuzz-token-0001", metrics=create_self_metrics(process_metrics=False),
            timeout=10, retry=RetryPolicy(max_retries=1, max_throttle_wait=0.0),
            sleep=_no_sleep)
        yield Stand(canned, client)
    await server.close()


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
usage_header_values = st.none() | header_text | buc_headers.filter(
    lambda h: h is None or (h.isascii() and h.isprintable()))
bodies = (
    st.binary(max_size=3000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"data": st.lists(number_like | json_values, max_size=4)},
                            optional={"paging": json_values}).map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda v: json.dumps(v).encode())
)


@FUZZ
@given(body=bodies, status=st.sampled_from([200, 400, 401, 403, 404, 429, 500, 503]),
       buc=usage_header_values, app=st.none() | header_text)
@example(body=b"[" * 100_000, status=200, buc=None, app=None)
@example(body=b'{"error": ' * 50_000, status=400, buc=None, app=None)
@example(body=b'{"error": {"code": "\xc2\xb2"}}', status=400, buc=None, app=None)
@example(body=b"{}", status=200, buc="[" * 5000, app=None)
@example(body=b"{}", status=200, buc=json.dumps({"1": [{"call_count": BIG}]}), app=None)
@example(body=b"{}", status=200, buc=None, app=json.dumps({"call_count": BIG}))
async def test_client_answers_a_dict_or_a_graph_error(
    stand: Stand, body: bytes, status: int, buc: str | None, app: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if buc is not None:
        headers["X-Business-Use-Case-Usage"] = buc
    if app is not None:
        headers["X-App-Usage"] = app
    stand.canned.status, stand.canned.body, stand.canned.headers = status, body, headers
    try:
        result = await stand.client.get("phone_numbers", "1/phone_numbers", {"limit": "100"})
    except GraphError as err:
        assert isinstance(err.kind, ErrorKind)
    else:
        assert isinstance(result, dict) and 200 <= status < 300
    try:
        async for page in stand.client.paginate("phone_numbers", "1/phone_numbers", {}):
            assert isinstance(page, list)
    except GraphError as err:
        assert isinstance(err.kind, ErrorKind)
