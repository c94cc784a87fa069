"""A scrape is written in bounded pieces from the cached gzip members, and the pieces make
the same body, gzip or plain, as the members joined."""

from __future__ import annotations

import gzip
import zlib

from monitor.exposition import STORED_BELOW, gzip_member, join_chunks
from monitor.model import PhoneNumber, WabaState
from monitor.store import Store


def fleet_store(wabas: int = 40) -> Store:
    store = Store(clock=lambda: 1000.0)
    for i in range(wabas):
        numbers = tuple(PhoneNumber(id=f"{i}{n}", status="CONNECTED", quality_rating="GREEN",
                                    display_phone_number=f"+1 555 {i:04d}{n}")
                        for n in range(5))
        store.put_waba(WabaState(f"b{i % 4}", f"w{i}", numbers=numbers, up=True, polled=True,
                                 last_success=999.0, last_attempt=998.0))
    return store


def test_gzip_chunks_are_bounded_and_make_the_body() -> None:
    body = fleet_store().body()
    for openmetrics in (False, True):
        chunks = list(body.gzip_chunks(openmetrics=openmetrics, chunk_size=4096))
        assert len(chunks) > 3
        largest_member = max(map(len, body._listed(openmetrics)[0]))
        assert all(len(c) < 4096 + largest_member for c in chunks)
        joined = b"".join(chunks)
        assert len(joined) == body.gzip_size(openmetrics=openmetrics)
        assert joined == body.gzip(openmetrics=openmetrics)
        plain = b"".join(body.plain_chunks(openmetrics=openmetrics))
        assert gzip.decompress(joined) == plain
        assert b"whatsapp_monitor_waba_up{" in plain


def test_small_members_are_stored_and_valid() -> None:
    line = b'whatsapp_monitor_waba_up{business_id="1",waba_id="2"} 1\n'
    member = gzip_member(line)
    assert len(line) < STORED_BELOW
    assert member[10] == 1  # one final stored block (BFINAL=1, BTYPE=00)
    assert zlib.decompress(member, wbits=31) == line
    big = line * 20
    assert len(gzip_member(big)) < len(big)  # larger chunks are deflated
    assert gzip.decompress(member + gzip_member(big) + member) == line + big + line


def test_join_chunks() -> None:
    parts = [bytes([i]) * 3 for i in range(10)]
    chunks = list(join_chunks(parts, chunk_size=7))
    assert b"".join(chunks) == b"".join(parts)
    assert [len(c) for c in chunks] == [9, 9, 9, 3]
    assert list(join_chunks([], chunk_size=7)) == []
