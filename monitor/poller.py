"""What to fetch for a WABA or a business, at the least API cost.

A full poll of a WABA is one list request per page with every wanted field in ``fields=``.
Per-number reads happen only for fields the list edge returned for no number at all, and a
field the single-number node does not return either is remembered, so the cost is paid once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.accounts import (
    BusinessNode,
    Template,
    WabaNode,
    parse_business_node,
    parse_template,
    parse_waba_node,
)
from monitor.graph.client import GraphClient, Page
from monitor.graph.errors import ErrorKind, GraphError
from monitor.model import PHONE_NUMBER_FIELDS, PayloadError, PhoneNumber, parse_phone_number
from monitor.selfmetrics import SelfMetrics

log = structlog.get_logger("monitor.poller")

# Fields whose loss would make the poll meaningless: never dropped.
ESSENTIAL_FIELDS = frozenset({"id"})
# Fields Meta sends only when there is something to say: their absence on every number is
# normal and never worth a read per number.
SPARSE_FIELDS = frozenset({"new_name_status"})


@dataclass
class FieldPolicy:
    """The phone-number fields still worth asking for; shared by all polls of the process.

    A field the API rejects as nonexisting is dropped for good (and reported once), since
    one bad field fails the whole request.
    """

    metrics: SelfMetrics
    wanted: tuple[str, ...] = PHONE_NUMBER_FIELDS
    rejected: set[str] = field(default_factory=set)
    _current: tuple[tuple[str, ...], frozenset[str], tuple[str, ...]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def current(self) -> tuple[str, ...]:
        """The fields to ask for (asked on every poll: kept until ``wanted`` or ``rejected``
        change)."""
        cached = self._current
        if cached is None or cached[0] is not self.wanted or cached[1] != self.rejected:
            fields = tuple(f for f in self.wanted if f not in self.rejected)
            cached = self._current = (self.wanted, frozenset(self.rejected), fields)
        return cached[2]

    def reject(self, name: str | None) -> bool:
        """Drop a field; False when it cannot be dropped (so the error must stand)."""
        if name is None or name in ESSENTIAL_FIELDS or name not in self.current():
            return False
        self.rejected.add(name)
        self.metrics.field_rejected.labels(field=name).set(1)
        log.warning("graph_field_rejected", field=name, action="dropped from requests")
        return True


@dataclass(frozen=True, slots=True)
class Listing:
    """A WABA's last parsed listing of one edge: what was asked, each page's digest and next
    cursor, and what was parsed from it (numbers or templates; the store holds the same
    objects: no extra memory)."""

    key: tuple[object, ...]
    pages: tuple[tuple[bytes, str | None], ...]
    parsed: tuple[Any, ...]

    @staticmethod
    def of(key: tuple[object, ...], pages: Iterable[Page], parsed: tuple[Any, ...]) -> Listing:
        return Listing(key, tuple((p.digest, p.after) for p in pages), parsed)


@dataclass
class ListingMemory:
    """Per WABA the last parsed listing of one edge, so a listing whose bytes did not change
    (the usual poll, and the usual template read) is neither decoded nor parsed again and
    hands back the same objects: the store then renders nothing again."""

    listings: dict[str, Listing] = field(default_factory=dict)
    parsed: int = 0  # listings parsed
    unchanged: int = 0  # listings that were the same bytes as last time (not parsed)

    def reused(self, last: Listing | None, pages: list[Page]) -> tuple[Any, ...] | None:
        """What ``last`` parsed, when every page is the same bytes again (counted)."""
        if last is not None and pages and all(page.unchanged for page in pages):
            self.unchanged += 1
            return last.parsed
        return None

    def forget(self, waba_id: str) -> None:
        """A WABA no longer watched."""
        self.listings.pop(waba_id, None)


@dataclass
class FillMemory(ListingMemory):
    """A WABA's number listings, and the fields that neither the list edge nor the single
    node returned (not read per number again)."""

    node_absent: dict[str, set[str]] = field(default_factory=dict)

    def skip(self, waba_id: str) -> set[str]:
        return self.node_absent.setdefault(waba_id, set())

    def forget(self, waba_id: str) -> None:
        super().forget(waba_id)
        self.node_absent.pop(waba_id, None)


async def list_pages(
    client: GraphClient, waba_id: str, policy: FieldPolicy, *, page_limit: int = 100,
    last: Listing | None = None, extra_key: tuple[object, ...] = (),
    edge: str = "phone_numbers",
) -> tuple[tuple[object, ...], list[Page]]:
    """A WABA's pages of an ``edge`` (numbers, templates) and the key they answer (fields,
    limit, ``extra_key``); pages with the same bytes as ``last`` (same key) are not decoded.
    Restarts paging if a field must be dropped."""
    while True:
        fields = policy.current()
        key = (fields, page_limit, *extra_key)
        known = last.pages if last is not None and last.key == key else ()
        params = {"fields": ",".join(fields), "limit": str(page_limit)}
        try:
            return key, await client.page_list(edge, f"{waba_id}/{edge}", params, known)
        except GraphError as err:
            if err.kind is ErrorKind.FIELD_REJECTED and policy.reject(err.field):
                continue
            raise


def page_rows(pages: Iterable[Page]) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for page in pages:
        for entry in page.rows():
            if not isinstance(entry, Mapping):
                raise GraphError(kind=ErrorKind.PAYLOAD, endpoint="phone_numbers",
                                 message="a 'data' entry is not an object")
            rows.append(shared_strings(entry))
    return rows


SHARED_MAX = 40  # enum values, tiers, entity types; not names, numbers or URLs
# Values of one number alone, and ids (all digits): never shared, so not interned. The
# interpreter's table of interned strings never shrinks; with every number's id, display
# number, name and onboarding time in it, it was about 2 MB per 10,000 numbers.
UNIQUE = frozenset({"id", "display_phone_number", "verified_name", "last_onboarded_time"})


def shared_strings(value: Any) -> Any:
    """The same payload with its short enum-like strings interned: every number of a fleet says
    CONNECTED, GREEN, TIER_1K, CLOUD_API..., and the parsed numbers keep these strings, so
    50,000 numbers would otherwise hold half a million copies of a few dozen words."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                out[key] = _intern(item) if len(item) <= SHARED_MAX and key not in UNIQUE \
                    and not item.isdigit() else item
            elif kind is dict or kind is list:
                out[key] = shared_strings(item)
            else:
                out[key] = item
        return out
    if kind is list:
        return [shared_strings(item) for item in value]
    if kind is str:
        return _intern(value) if len(value) <= SHARED_MAX and not value.isdigit() else value
    return value


_intern = sys.intern


async def list_phone_numbers(
    client: GraphClient, waba_id: str, policy: FieldPolicy, *, page_limit: int = 100
) -> list[Mapping[str, Any]]:
    """Every number of a WABA as raw payloads; restarts paging if a field must be dropped."""
    _, pages = await list_pages(client, waba_id, policy, page_limit=page_limit)
    return page_rows(pages)


async def fill_missing(
    client: GraphClient,
    waba_id: str,
    rows: list[Mapping[str, Any]],
    policy: FieldPolicy,
    memory: FillMemory,
) -> list[Mapping[str, Any]]:
    """Read single numbers for fields the list returned for no number at all."""
    if not rows:
        return rows
    skip = memory.skip(waba_id)
    missing = [
        f
        for f in policy.current()
        if f != "id" and f not in skip and f not in SPARSE_FIELDS
        and all(row.get(f) is None for row in rows)
    ]
    if not missing:
        return rows

    async def read(row: Mapping[str, Any]) -> Mapping[str, Any]:
        while True:
            wanted = [f for f in missing if f not in policy.rejected]
            if not wanted:
                return row
            try:
                node = await client.get(
                    "phone_number", str(row["id"]), {"fields": ",".join(["id", *wanted])}
                )
            except GraphError as err:
                if err.kind is ErrorKind.FIELD_REJECTED and policy.reject(err.field):
                    continue
                raise
            return {**row, **{k: v for k, v in node.items() if k in wanted and v is not None}}

    filled = list(await asyncio.gather(*(read(row) for row in rows)))
    for name in missing:
        if all(row.get(name) is None for row in filled):
            skip.add(name)
            log.info("graph_field_absent", waba_id=waba_id, field=name,
                     action="not read per number again for this WABA")
    return filled


def parse_numbers(rows: Iterable[Mapping[str, Any]], endpoint: str, *,
                  expected_callback: str | None = None) -> tuple[PhoneNumber, ...]:
    """Parse every row; one malformed row fails the poll rather than silently losing a number."""
    numbers: dict[str, PhoneNumber] = {}
    for row in rows:
        try:
            number = parse_phone_number(row, expected_callback=expected_callback)
        except PayloadError as exc:
            raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint, message=str(exc)) from None
        numbers[number.id] = number
    return tuple(numbers.values())


async def fetch_waba(
    client: GraphClient,
    waba_id: str,
    policy: FieldPolicy,
    memory: FillMemory,
    *,
    page_limit: int = 100,
    per_number_fill: bool = True,
    expected_callback: str | None = None,
) -> tuple[PhoneNumber, ...]:
    """A WABA's numbers. A listing whose every page is the same bytes as the last parsed
    one (same request) returns that parse: no JSON, no parsing, and the store sees the same
    objects, so nothing is diffed or rendered again. Only a listing that needed no
    per-number read is kept: those reads may change while the list does not."""
    last = memory.listings.get(waba_id)
    key, pages = await list_pages(client, waba_id, policy, page_limit=page_limit, last=last,
                                  extra_key=(per_number_fill, expected_callback))
    reused = memory.reused(last, pages)
    if reused is not None:
        return reused
    listed = page_rows(pages)
    rows = await fill_missing(client, waba_id, listed, policy, memory) if per_number_fill \
        else listed
    numbers = parse_numbers(rows, "phone_numbers", expected_callback=expected_callback)
    memory.parsed += 1
    if rows is listed:
        memory.listings[waba_id] = Listing.of(key, pages, numbers)
    else:
        memory.listings.pop(waba_id, None)
    return numbers


@dataclass(frozen=True, slots=True)
class DiscoveredWaba:
    waba_id: str
    owner_business_id: str | None


async def discover_wabas(
    client: GraphClient, business_id: str, edges: Iterable[str]
) -> tuple[DiscoveredWaba, ...]:
    """List a business's owned and/or client WABAs, with their owner where the API says it."""
    found: dict[str, DiscoveredWaba] = {}
    for edge in edges:
        endpoint = f"{edge}_whatsapp_business_accounts"
        fields = "id,owner_business_info"
        while True:
            try:
                async for page in client.paginate(
                    endpoint, f"{business_id}/{endpoint}", {"fields": fields, "limit": "100"}
                ):
                    for entry in page:
                        waba = _parse_discovered(entry, endpoint)
                        found.setdefault(waba.waba_id, waba)
                break
            except GraphError as err:
                if err.kind is ErrorKind.FIELD_REJECTED and fields != "id":
                    fields = "id"
                    continue
                raise
    return tuple(found.values())


def _parse_discovered(entry: object, endpoint: str) -> DiscoveredWaba:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str | int):
        raise GraphError(kind=ErrorKind.PAYLOAD, endpoint=endpoint,
                         message="a WABA entry has no id")
    owner = entry.get("owner_business_info")
    owner_id = owner.get("id") if isinstance(owner, Mapping) else None
    return DiscoveredWaba(
        waba_id=str(entry["id"]),
        owner_business_id=str(owner_id) if isinstance(owner_id, str | int) else None,
    )


async def read_node(client: GraphClient, endpoint: str, node_id: str,
                    policy: FieldPolicy) -> Mapping[str, Any]:
    """One node read with the policy's fields; a rejected field is dropped and asked again."""
    while True:
        try:
            return await client.get(endpoint, node_id, {"fields": ",".join(policy.current())})
        except GraphError as err:
            if err.kind is ErrorKind.FIELD_REJECTED and policy.reject(err.field):
                continue
            raise


async def read_waba_node(client: GraphClient, waba_id: str, policy: FieldPolicy,
                         at: float) -> WabaNode:
    """``GET /{WABA_ID}``: review, health, ownership and the portfolio's limit (one request,
    at the discovery cadence: the poll stays at one request per page of numbers)."""
    return parse_waba_node(await read_node(client, "waba", waba_id, policy), at)


async def read_business_node(client: GraphClient, business_id: str,
                             policy: FieldPolicy) -> BusinessNode:
    """``GET /{BUSINESS_ID}``: verification and the portfolio's shared messaging limit."""
    return parse_business_node(await read_node(client, "business", business_id, policy))


async def read_subscribed_apps(client: GraphClient, waba_id: str) -> frozenset[str]:
    """``GET /{WABA_ID}/subscribed_apps``: the ids of the apps that receive the WABA's
    webhooks (facts §5). Other apps (Meta's own among them) may be listed too."""
    body = await client.get("subscribed_apps", f"{waba_id}/subscribed_apps", {})
    data = body.get("data")
    if not isinstance(data, list):
        raise GraphError(kind=ErrorKind.PAYLOAD, endpoint="subscribed_apps",
                         message="no 'data' list")
    ids: set[str] = set()
    for entry in data:
        app = entry.get("whatsapp_business_api_data") if isinstance(entry, Mapping) else None
        ident = app.get("id") if isinstance(app, Mapping) else None
        if isinstance(ident, str | int) and not isinstance(ident, bool):
            ids.add(str(ident))
    return frozenset(ids)


async def read_identity_key_check(client: GraphClient, phone_number_id: str) -> bool | None:
    """``GET /{PHONE_NUMBER_ID}/settings``: whether the identity change check is on. Only
    the POST is documented; None when the answer does not carry the setting."""
    body = await client.get("settings", f"{phone_number_id}/settings", {})
    change = body.get("user_identity_change")
    value = change.get("enable_identity_key_check") if isinstance(change, Mapping) else None
    return value if isinstance(value, bool) else None


async def list_templates(client: GraphClient, waba_id: str, policy: FieldPolicy, *,
                         page_limit: int = 100,
                         memory: ListingMemory | None = None) -> tuple[Template, ...]:
    """Every template of a WABA (paged, only the fields needed); a rejected field is dropped
    and the listing starts again, as for the numbers. With ``memory``, a listing whose every
    page is the same bytes as last time returns the same templates, not parsed again."""
    last = memory.listings.get(waba_id) if memory is not None else None
    key, pages = await list_pages(client, waba_id, policy, page_limit=page_limit, last=last,
                                  edge="message_templates")
    reused = memory.reused(last, pages) if memory is not None else None
    if reused is not None:
        return reused
    found = tuple(t for page in pages for t in map(parse_template, page.rows()) if t is not None)
    if memory is not None:
        memory.parsed += 1
        memory.listings[waba_id] = Listing.of(key, pages, found)
    return found
