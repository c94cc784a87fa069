"""Snapshot → exposition bytes, rendered when a WABA's state changes, not on every scrape.

Each WABA (and each business) keeps its sample lines pre-rendered per metric family, the way
kube-state-metrics keeps per-object series; a scrape joins cached bytes. Family headers differ
between the Prometheus text format and OpenMetrics only for counters, so one set of sample
lines serves both.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from monitor.caps import resolve_cap
from monitor.graph.usage import BucUsage
from monitor.model import (
    KNOWN_CODE_VERIFICATION_STATUS,
    KNOWN_HEALTH,
    KNOWN_MESSAGING_LIMIT,
    KNOWN_NAME_STATUS,
    KNOWN_QUALITY_RATING,
    KNOWN_STATUS,
    KNOWN_THROUGHPUT_LEVEL,
    MESSAGING_LIMIT_PER_DAY,
    BusinessState,
    PhoneNumber,
    WabaState,
)

Fragment = Mapping[str, bytes]  # family name -> sample lines (a gzip member once stored)
GZIP_LEVEL = 1

_FROM_MEMORY = " Served from memory; refreshed by background polls of the Graph API."
_LAST_GOOD = " After a failed poll the last good value stays (see whatsapp_monitor_waba_up)."


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # sample name (counters end in _total)
    type: str  # gauge | counter
    help: str

    def header(self, openmetrics: bool) -> bytes:
        name = self.name
        if openmetrics and self.type == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        return f"# HELP {name} {self.help}\n# TYPE {name} {self.type}\n".encode()


def _stateset_help(what: str) -> str:
    return (
        f"{what}: one series per known value (1 for the current one, 0 otherwise), plus the "
        f"observed value when the API returns one that is not known.{_LAST_GOOD}{_FROM_MEMORY}"
    )


FAMILIES: tuple[Family, ...] = (
    Family("whatsapp_phone_number_info", "gauge",
           "Always 1; descriptive facts about a phone number, to join on phone_number_id."
           + _FROM_MEMORY),
    Family("whatsapp_phone_number_status", "gauge", _stateset_help("Operating status")),
    Family("whatsapp_phone_number_status_last_change_timestamp_seconds", "gauge",
           "Unix time the number's status was last seen to change (or the number was first "
           "seen). Survives restarts through the state file."),
    Family("whatsapp_phone_number_connected", "gauge",
           "1 when the number's status is CONNECTED (it can send and receive), else 0."
           + _LAST_GOOD),
    Family("whatsapp_phone_number_quality_rating", "gauge", _stateset_help("Quality rating")),
    Family("whatsapp_phone_number_name_status", "gauge", _stateset_help("Display-name status")),
    Family("whatsapp_phone_number_throughput_level", "gauge", _stateset_help("Throughput level")),
    Family("whatsapp_phone_number_code_verification_status", "gauge",
           _stateset_help("Code (OTP) verification status")),
    Family("whatsapp_phone_number_health_status", "gauge",
           _stateset_help("Overall health_status.can_send_message")),
    Family("whatsapp_phone_number_messaging_limit_tier", "gauge",
           _stateset_help("Messaging limit tier of the owning portfolio")),
    Family("whatsapp_phone_number_messaging_limit_per_day", "gauge",
           "Business-initiated conversations allowed per 24 h by the messaging limit tier "
           "(+Inf when unlimited)." + _LAST_GOOD),
    Family("whatsapp_phone_number_registered", "gauge",
           "1 when the number is registered with Cloud API or On-Premises API "
           "(platform_type other than NOT_APPLICABLE) and so counts toward the cap." + _LAST_GOOD),
    Family("whatsapp_phone_number_official_business_account", "gauge",
           "1 when the number is an Official Business Account." + _LAST_GOOD),
    Family("whatsapp_business_registered_phone_numbers", "gauge",
           "Registered phone numbers across all WABAs owned by the business portfolio."
           + _FROM_MEMORY),
    Family("whatsapp_business_registered_phone_numbers_cap", "gauge",
           "How many registered phone numbers the business portfolio may have."),
    Family("whatsapp_business_registered_phone_numbers_cap_info", "gauge",
           "Always 1; where the registration cap comes from (config, webhook, inferred)."),
    Family("whatsapp_business_phone_numbers", "gauge",
           "Phone numbers known across all WABAs owned by the business portfolio."),
    Family("whatsapp_monitor_waba_up", "gauge",
           "1 if the last poll of the WABA succeeded, else 0. After a failure the WABA's "
           "last good values stay exported and the last-success timestamp does not move."),
    Family("whatsapp_monitor_waba_last_success_timestamp_seconds", "gauge",
           "Unix time of the last successful poll of the WABA."),
    Family("whatsapp_monitor_waba_last_poll_timestamp_seconds", "gauge",
           "Unix time of the last poll attempt of the WABA, successful or not."),
    Family("whatsapp_monitor_waba_phone_numbers", "gauge",
           "Phone numbers in the WABA at its last successful poll."),
    Family("whatsapp_monitor_waba_last_poll_requests", "gauge",
           "Graph API requests the last poll of the WABA made (retries included)."),
    Family("whatsapp_monitor_waba_poll_interval_seconds", "gauge",
           "Seconds between polls of the WABA: the scan interval, or longer to stay within its "
           "Graph API budget."),
    Family("whatsapp_monitor_waba_api_allowance_per_hour", "gauge",
           "Meta's hourly Business Use Case allowance for the WABA as the monitor reckons it: "
           "200, or 5,000 once it has a registered number."),
    Family("whatsapp_monitor_waba_api_calls_per_hour", "gauge",
           "Graph API calls an hour the monitor spends on the WABA at its current pace."),
    Family("whatsapp_monitor_waba_api_budget_remaining_ratio", "gauge",
           "1 minus the last X-Business-Use-Case-Usage reading for the WABA (0 = throttled); "
           "absent until Meta sends one."),
    Family("whatsapp_monitor_graph_business_use_case_usage_ratio", "gauge",
           "Last X-Business-Use-Case-Usage reading per object and type, as a ratio of the "
           "hourly allowance (throttled at 1)."),
    Family("whatsapp_monitor_graph_business_use_case_regain_access_seconds", "gauge",
           "Last estimated time to regain access per object and type, from "
           "X-Business-Use-Case-Usage (0 when not throttled)."),
    Family("whatsapp_monitor_waba_polls_total", "counter", "Polls of the WABA attempted."),
    Family("whatsapp_monitor_waba_poll_failures_total", "counter",
           "Polls of the WABA that failed."),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def format_value(value: float) -> str:
    """Go-style float text, as Prometheus writes it (integers without a decimal point)."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str | None]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs if v is not None)


def _stateset(out: list[str], name: str, base: str, label: str, value: str | None,
              known: tuple[str, ...]) -> None:
    if value is None:
        return
    for candidate in known:
        out.append(f'{name}{{{base},{label}="{candidate}"}} {1 if candidate == value else 0}\n')
    if value not in known:
        out.append(f'{name}{{{base},{label}="{escape(value)}"}} 1\n')


def _bool(out: list[str], name: str, base: str, value: bool | None) -> None:
    if value is not None:
        out.append(f"{name}{{{base}}} {1 if value else 0}\n")


@dataclass(frozen=True, slots=True)
class ExpositionOptions:
    """Cardinality control: compact enums (current value only) and which families to serve."""

    compact: bool = False
    families: frozenset[str] | None = None  # None: every family

    def serves(self, family: str) -> bool:
        return self.families is None or family in self.families


def _number_lines(state: WabaState, n: PhoneNumber, compact: bool = False
                  ) -> dict[str, list[str]]:
    base = _labels((("business_id", state.business_id), ("waba_id", state.waba_id),
                    ("phone_number_id", n.id)))
    lines: dict[str, list[str]] = {}

    def family(name: str) -> list[str]:
        return lines.setdefault(name, [])

    info = _labels((("display_phone_number", n.display_phone_number),
                    ("verified_name", n.verified_name), ("platform_type", n.platform_type),
                    ("account_mode", n.account_mode)))
    family("whatsapp_phone_number_info").append(
        f"whatsapp_phone_number_info{{{base}{',' if info else ''}{info}}} 1\n")
    _stateset(family("whatsapp_phone_number_status"), "whatsapp_phone_number_status", base,
              "status", n.status, () if compact else KNOWN_STATUS)
    _bool(family("whatsapp_phone_number_connected"), "whatsapp_phone_number_connected", base,
          None if n.status is None else n.status == "CONNECTED")
    _stateset(family("whatsapp_phone_number_quality_rating"),
              "whatsapp_phone_number_quality_rating", base, "rating", n.quality_rating,
              () if compact else KNOWN_QUALITY_RATING)
    _stateset(family("whatsapp_phone_number_name_status"), "whatsapp_phone_number_name_status",
              base, "name_status", n.name_status, () if compact else KNOWN_NAME_STATUS)
    _stateset(family("whatsapp_phone_number_throughput_level"),
              "whatsapp_phone_number_throughput_level", base, "level", n.throughput_level,
              () if compact else KNOWN_THROUGHPUT_LEVEL)
    _stateset(family("whatsapp_phone_number_code_verification_status"),
              "whatsapp_phone_number_code_verification_status", base,
              "code_verification_status", n.code_verification_status,
              () if compact else KNOWN_CODE_VERIFICATION_STATUS)
    _stateset(family("whatsapp_phone_number_health_status"),
              "whatsapp_phone_number_health_status", base, "can_send_message", n.health_status,
              () if compact else KNOWN_HEALTH)
    _stateset(family("whatsapp_phone_number_messaging_limit_tier"),
              "whatsapp_phone_number_messaging_limit_tier", base, "tier", n.messaging_limit,
              () if compact else KNOWN_MESSAGING_LIMIT)
    per_day = MESSAGING_LIMIT_PER_DAY.get(n.messaging_limit or "")
    if per_day is not None:
        family("whatsapp_phone_number_messaging_limit_per_day").append(
            f"whatsapp_phone_number_messaging_limit_per_day{{{base}}} {format_value(per_day)}\n")
    _bool(family("whatsapp_phone_number_registered"), "whatsapp_phone_number_registered", base,
          n.registered)
    _bool(family("whatsapp_phone_number_official_business_account"),
          "whatsapp_phone_number_official_business_account", base,
          n.is_official_business_account)
    return lines


def render_waba(state: WabaState) -> dict[str, bytes]:
    """All sample lines of one WABA, grouped by family."""
    return {**render_numbers(state), **render_waba_health(state)}


def render_numbers(state: WabaState, *, compact: bool = False) -> dict[str, bytes]:
    """The phone-number families of one WABA: unchanged between polls when nothing changed."""
    grouped: dict[str, list[str]] = {}
    changed_name = "whatsapp_phone_number_status_last_change_timestamp_seconds"
    for number in state.numbers:
        for name, lines in _number_lines(state, number, compact).items():
            grouped.setdefault(name, []).extend(lines)
        changed = state.status_changed_at.get(number.id)
        if changed is not None:
            labels = _labels((("business_id", state.business_id), ("waba_id", state.waba_id),
                              ("phone_number_id", number.id)))
            grouped.setdefault(changed_name, []).append(
                f"{changed_name}{{{labels}}} {format_value(changed)}\n")
    return {name: "".join(lines).encode() for name, lines in grouped.items()}


def render_waba_health(state: WabaState) -> dict[str, bytes]:
    """The monitor's own per-WABA families: these change with every poll."""
    grouped: dict[str, list[str]] = {}
    base = _labels((("business_id", state.business_id), ("waba_id", state.waba_id)))

    def add(name: str, value: float) -> None:
        grouped.setdefault(name, []).append(f"{name}{{{base}}} {format_value(value)}\n")

    add("whatsapp_monitor_waba_up", 1 if state.up else 0)
    if state.last_success is not None:
        add("whatsapp_monitor_waba_last_success_timestamp_seconds", state.last_success)
        add("whatsapp_monitor_waba_phone_numbers", len(state.numbers))
    if state.last_attempt is not None:
        add("whatsapp_monitor_waba_last_poll_timestamp_seconds", state.last_attempt)
        add("whatsapp_monitor_waba_last_poll_requests", state.last_requests)
    if state.interval is not None:
        add("whatsapp_monitor_waba_poll_interval_seconds", state.interval)
        add("whatsapp_monitor_waba_api_calls_per_hour",
            3600.0 * max(1, state.last_requests) / state.interval)
    if state.allowance_per_hour is not None:
        add("whatsapp_monitor_waba_api_allowance_per_hour", state.allowance_per_hour)
    if state.usage_ratio is not None:
        add("whatsapp_monitor_waba_api_budget_remaining_ratio", max(0.0, 1 - state.usage_ratio))
    for name, lines in render_usage(state.usage).items():
        grouped.setdefault(name, []).extend(lines)
    add("whatsapp_monitor_waba_polls_total", state.polls)
    add("whatsapp_monitor_waba_poll_failures_total", state.failures)
    return {name: "".join(lines).encode() for name, lines in grouped.items()}


USAGE_RATIO = "whatsapp_monitor_graph_business_use_case_usage_ratio"
USAGE_REGAIN = "whatsapp_monitor_graph_business_use_case_regain_access_seconds"


def render_usage(entries: Iterable[BucUsage]) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for entry in entries:
        base = _labels((("object_id", entry.object_id), ("type", entry.type)))
        for measure in ("call_count", "total_cputime", "total_time"):
            value = getattr(entry, measure) / 100.0
            lines.setdefault(USAGE_RATIO, []).append(
                f'{USAGE_RATIO}{{{base},measure="{measure}"}} {format_value(value)}\n')
        lines.setdefault(USAGE_REGAIN, []).append(
            f"{USAGE_REGAIN}{{{base}}} {format_value(entry.regain_access_seconds)}\n")
    return lines


def render_business(business: BusinessState, wabas: Iterable[WabaState]) -> dict[str, bytes]:
    numbers = [n for waba in wabas for n in waba.numbers]
    registered = sum(1 for n in numbers if n.registered)
    cap, cap_source = resolve_cap(business, numbers)
    base = _labels((("business_id", business.business_id),))
    source = _labels((("business_id", business.business_id), ("source", cap_source)))
    return {
        "whatsapp_business_registered_phone_numbers":
            f"whatsapp_business_registered_phone_numbers{{{base}}} {registered}\n".encode(),
        "whatsapp_business_registered_phone_numbers_cap":
            f"whatsapp_business_registered_phone_numbers_cap{{{base}}} {cap}\n".encode(),
        "whatsapp_business_registered_phone_numbers_cap_info":
            f"whatsapp_business_registered_phone_numbers_cap_info{{{source}}} 1\n".encode(),
        "whatsapp_business_phone_numbers":
            f"whatsapp_business_phone_numbers{{{base}}} {len(numbers)}\n".encode(),
    }


def gzip_member(data: bytes) -> bytes:
    """One complete gzip member (mtime 0). Members concatenate into a valid gzip stream."""
    return zlib.compress(data, GZIP_LEVEL, wbits=31)


def compress_fragment(fragment: Mapping[str, bytes]) -> dict[str, bytes]:
    """Keep each family's lines of one WABA as its own gzip member: ten times smaller in
    memory, and a scrape joins members without compressing anything."""
    return {name: gzip_member(chunk) for name, chunk in fragment.items() if chunk}


_HEADERS = {
    (family.name, openmetrics): gzip_member(family.header(openmetrics))
    for family in FAMILIES
    for openmetrics in (False, True)
}


def assemble(fragments: Iterable[Fragment], *, openmetrics: bool,
             options: ExpositionOptions | None = None) -> bytes:
    """Join compressed fragments family by family; families without samples are left out."""
    return b"".join(members(fragments, openmetrics=openmetrics, options=options))


def members(fragments: Iterable[Fragment], *, openmetrics: bool,
            options: ExpositionOptions | None = None) -> list[bytes]:
    """The gzip members of a body, in exposition order."""
    options = options or ExpositionOptions()
    parts: dict[str, list[bytes]] = {name: [] for name in FAMILY_NAMES}
    for fragment in fragments:
        for name, chunk in fragment.items():
            parts[name].append(chunk)
    out: list[bytes] = []
    for family in FAMILIES:
        chunks = parts[family.name]
        if chunks and options.serves(family.name):
            out.append(_HEADERS[(family.name, openmetrics)])
            out.extend(chunks)
    return out


class RenderedBody:
    """The data part of /metrics for one snapshot version, as gzip streams.

    Each format is joined on first use only: Prometheus asks for one of them.
    """

    def __init__(self, version: int, fragments: list[Fragment],
                 options: ExpositionOptions | None = None) -> None:
        self.version = version
        self._fragments = fragments
        self._options = options
        self._joined: dict[bool, bytes] = {}

    def gzip(self, *, openmetrics: bool) -> bytes:
        if openmetrics not in self._joined:
            self._joined[openmetrics] = assemble(self._fragments, openmetrics=openmetrics,
                                                 options=self._options)
        return self._joined[openmetrics]

    def plain_chunks(self, *, openmetrics: bool) -> Iterator[bytes]:
        """The uncompressed body, about a megabyte at a time."""
        return gunzip_chunks(members(self._fragments, openmetrics=openmetrics,
                                     options=self._options))

    @property
    def text_gzip(self) -> bytes:
        return self.gzip(openmetrics=False)

    @property
    def openmetrics_gzip(self) -> bytes:
        return self.gzip(openmetrics=True)

    @property
    def text(self) -> bytes:
        """Plain text, for the rare client that does not accept gzip."""
        return b"".join(self.plain_chunks(openmetrics=False))

    @property
    def openmetrics(self) -> bytes:
        return b"".join(self.plain_chunks(openmetrics=True))


def gunzip_chunks(gzip_members: Iterable[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Decompress members one by one (each a one-shot C call; walking one long stream would
    copy its remainder after every member), yielding about ``chunk_size`` bytes at a time."""
    pending: list[bytes] = []
    size = 0
    for member in gzip_members:
        out = zlib.decompress(member, wbits=31)
        pending.append(out)
        size += len(out)
        if size >= chunk_size:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def render_body(version: int, fragments: list[Fragment],
                options: ExpositionOptions | None = None) -> RenderedBody:
    return RenderedBody(version, fragments, options)
