"""Sequential /metrics scrapes over one keep-alive connection, timed from the client side."""

from __future__ import annotations

import gzip
import http.client
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

# What Prometheus (2.5x/3.x, default scrape_protocols) sends: OpenMetrics preferred, gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
              "application/openmetrics-text;version=0.0.1;q=0.4,"
              "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}
PLAIN_HEADERS = {"Accept-Encoding": "identity"}
KINDS = {"plain": PLAIN_HEADERS, "gzip": PROMETHEUS_HEADERS}


@dataclass(frozen=True)
class ScrapeStats:
    kind: str  # "plain" (text format, identity) or "gzip" (Prometheus's own request headers)
    scrapes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    per_second: float
    bytes: int  # size of the response body as sent (compressed when gzip)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class Scraper:
    """A keep-alive HTTP/1.1 client for one exporter (what Prometheus keeps open too)."""

    def __init__(self, url: str, timeout: float = 900.0) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def close(self) -> None:
        self._conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self._conn.request("GET", path, headers=headers or {})
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def metrics(self, kind: str) -> bytes:
        status, body = self.get("/metrics", KINDS[kind])
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body

    def run(self, kind: str, count: int, budget: float, minimum: int = 5) -> ScrapeStats:
        """``count`` scrapes back to back, or fewer (at least ``minimum``) within ``budget``."""
        latencies: list[float] = []
        body = b""
        started = time.perf_counter()
        while len(latencies) < count:
            t0 = time.perf_counter()
            body = self.metrics(kind)
            latencies.append(time.perf_counter() - t0)
            if time.perf_counter() - started > budget and len(latencies) >= minimum:
                break
        total = time.perf_counter() - started
        latencies.sort()
        return ScrapeStats(
            kind=kind,
            scrapes=len(latencies),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            max_ms=latencies[-1] * 1000,
            per_second=len(latencies) / total,
            bytes=len(body),
        )


def _chunks(body: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    """The body, decompressed piece by piece when it is gzip.

    ``gzip.decompress`` copies the rest of the input once per gzip member, which is quadratic
    for a body made of many members (the daemon's is); ``GzipFile`` reads them in linear time.
    """
    if body[:2] != b"\x1f\x8b":
        yield body
        return
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
        while chunk := stream.read(size):
            yield chunk


def series_count(body: bytes) -> int:
    """Samples in a text or OpenMetrics body: lines that are neither empty nor comments."""
    lines = comments = blanks = 0
    previous = b"\n"  # a body starts like after a newline
    for chunk in _chunks(body):
        lines += chunk.count(b"\n")
        comments += chunk.count(b"\n#") + (previous == b"\n" and chunk[:1] == b"#")
        blanks += chunk.count(b"\n\n") + (previous == b"\n" and chunk[:1] == b"\n")
        previous = chunk[-1:]
    if previous not in (b"\n", b""):
        lines += 1  # a last line without its newline
    return lines - comments - blanks


def decompressed(body: bytes) -> bytes:
    return b"".join(_chunks(body))
