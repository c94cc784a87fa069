"""Snapshot → exposition bytes, rendered when a WABA's state changes, not on every scrape.

What is exported is declared in ``families.py``; this module does the mechanics. Each WABA
(and each business) keeps its sample lines pre-rendered per metric family, the way
kube-state-metrics keeps per-object series; a scrape joins cached bytes. Family headers differ
between the Prometheus text format and OpenMetrics only for counters, so one set of sample
lines serves both.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from isal import isal_zlib

from monitor.accounts import AccountAlert
from monitor.caps import BusinessSummary
from monitor.families import (
    ALERT_FAMILIES,
    BUSINESS_FAMILIES,
    FAMILIES,
    FAMILY_NAMES,
    NUMBER_FAMILIES,
    USAGE_FAMILIES,
    WABA_ACCOUNT_FAMILIES,
    WABA_FAMILIES,
    Family,
    Flag,
    NumberInWaba,
    StateSet,
    Subject,
    Value,
    WabaAccount,
)
from monitor.graph.usage import BucUsage
from monitor.model import WabaState

S = TypeVar("S")
Fragment = Mapping[str, bytes]  # family name -> sample lines (a gzip member once stored)
GZIP_LEVEL = 1
# The sample lines of one object (maybe none), given its rendered identity labels.
LineWriter = Callable[[str, Any], str]


def header(family: Family[Any], openmetrics: bool) -> bytes:
    """HELP and TYPE lines; OpenMetrics names a counter family without its _total suffix."""
    name = family.name
    if openmetrics and family.type == "counter" and name.endswith("_total"):
        name = name[: -len("_total")]
    return f"# HELP {name} {family.help}\n# TYPE {name} {family.type}\n".encode()


def format_value(value: float) -> str:
    """Go-style float text, as Prometheus writes it (integers without a decimal point)."""
    if type(value) is int:  # the common case; str() is what the float path gives an int
        return str(value)
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


def _label(name: str, value: str) -> str:
    return f'{name}="{escape(value)}"'


def identity_labels(subject: Subject[S], obj: S) -> str:
    """The identity labels of one object, rendered once for all its families."""
    return ",".join(map(_label, subject.labels, subject.identity(obj)))


def _stateset_writer(name: str, label: str, spec: StateSet[Any], compact: bool) -> LineWriter:
    """The lines of a StateSet, from text prepared once per family: in full mode the lines of
    a known value are one ``str.join`` of the identity labels into fixed pieces."""
    get = spec.get
    head = name + "{"

    def tail(value: str, sample: int) -> str:
        return f',{_label(label, value)}}} {sample}\n'

    if compact:
        current = {v: tail(v, 1) for v in spec.known}

        def write_compact(base: str, subject: Any) -> str:
            value = get(subject)
            if value is None:
                return ""
            return head + base + (current.get(value) or tail(value, 1))

        return write_compact

    def pieces(value: str | None) -> list[str]:
        parts = [head] + [tail(c, 1 if c == value else 0) + head for c in spec.known]
        if value is not None:
            parts[-1] = parts[-1][: -len(head)]
        return parts

    blocks = {v: pieces(v) for v in spec.known}
    unknown = [*pieces(None), ""]  # ends with the head of the observed value's line

    def write_full(base: str, subject: Any) -> str:
        value = get(subject)
        if value is None:
            return ""
        block = blocks.get(value)
        if block is not None:
            return base.join(block)
        return base.join(unknown) + tail(value, 1)

    return write_full


def _value_writer(name: str, spec: Value[Any]) -> LineWriter:
    get = spec.get
    head = name + "{"

    def write(base: str, subject: Any) -> str:
        value = get(subject)
        return "" if value is None else f"{head}{base}}} {format_value(value)}\n"

    return write


def _flag_writer(name: str, spec: Flag[Any]) -> LineWriter:
    get = spec.get
    head = name + "{"

    def write(base: str, subject: Any) -> str:
        value = get(subject)
        if value is None:
            return ""
        return head + base + ("} 1\n" if value else "} 0\n")

    return write


def sample_writer(family: Family[Any], compact: bool) -> LineWriter:
    """Lines straight from ``family.samples_of``: the reference every fast path must match."""
    head = family.name + "{"
    own = family.labels

    def line(base: str, values: tuple[str | None, ...], value: float) -> str:
        extra = ",".join(_label(k, v) for k, v in zip(own, values, strict=True) if v is not None)
        labels = f"{base},{extra}" if base and extra else base or extra
        return f"{head}{labels}}} {format_value(value)}\n"

    def write(base: str, subject: Any) -> str:
        return "".join([line(base, values, value)
                        for values, value in family.samples_of(subject, compact)])

    return write


def compile_writer(family: Family[Any], compact: bool) -> LineWriter:
    """The fastest writer that gives the same bytes as ``sample_writer``: the declared
    helpers (StateSet, Value, Flag) are written from text prepared once per family."""
    samples = family.samples
    if isinstance(samples, StateSet) and len(family.labels) == 1:
        return _stateset_writer(family.name, family.labels[0], samples, compact)
    if isinstance(samples, Value) and not family.labels:
        return _value_writer(family.name, samples)
    if isinstance(samples, Flag) and not family.labels:
        return _flag_writer(family.name, samples)
    return sample_writer(family, compact)


_WRITERS: dict[bool, dict[str, LineWriter]] = {
    compact: {family.name: compile_writer(family, compact) for family in FAMILIES}
    for compact in (False, True)
}


def render(families: Sequence[Family[S]], objects: Sequence[S], *,
           compact: bool = False) -> dict[str, bytes]:
    """Sample lines of ``objects`` (all of the families' subject), grouped by family."""
    if not families or not objects:
        return {}
    subject = families[0].subject
    bases = [identity_labels(subject, obj) for obj in objects]
    writers = _WRITERS[compact]
    out: dict[str, bytes] = {}
    for family in families:
        write = writers.get(family.name) or compile_writer(family, compact)
        text = write(bases[0], objects[0]) if len(objects) == 1 else \
            "".join(map(write, bases, objects))
        if text:
            out[family.name] = text.encode()
    return out


@dataclass(frozen=True, slots=True)
class ExpositionOptions:
    """Cardinality control: compact enums (current value only) and which families to serve."""

    compact: bool = False
    families: frozenset[str] | None = None  # None: every family
    template_series: str = "problems"  # per-template series: problems | all | none

    def serves(self, family: str) -> bool:
        return self.families is None or family in self.families


def render_numbers(state: WabaState, *, compact: bool = False) -> dict[str, bytes]:
    """The phone-number families of one WABA: unchanged between polls when nothing changed."""
    rows = [NumberInWaba(state, number) for number in state.numbers]
    return render(NUMBER_FAMILIES, rows, compact=compact)


def render_waba_health(state: WabaState) -> dict[str, bytes]:
    """The monitor's own per-WABA families, its usage readings included: these change with
    every poll."""
    return {**render(WABA_FAMILIES, [state]), **render_usage(state.usage)}


@dataclass(frozen=True, slots=True)
class HealthPart:
    """A WABA's own families (freshness, budget, usage), compressed, with the values they
    were written from: the next poll writes again only the families whose value moved."""

    identity: tuple[str, ...]
    base: str  # the identity labels, rendered
    values: tuple[object, ...]
    usage: tuple[BucUsage, ...]
    members: Mapping[str, bytes]


def _health_getter(family: Family[Any]) -> Callable[[Any], object] | None:
    """The value a WABA family shows, when it is one unlabelled Value or Flag (None: the
    family is written on every poll)."""
    samples = family.samples
    if isinstance(samples, Value | Flag) and not family.labels:
        return samples.get
    return None


_HEALTH = tuple((family, _health_getter(family)) for family in WABA_FAMILIES)
_USAGE_NAMES = tuple(family.name for family in USAGE_FAMILIES)
_MOVES = object()  # the value of a family without a getter: never equal to the last one


def health_part(state: WabaState, last: HealthPart | None = None) -> HealthPart:
    """``render_waba_health`` compressed, reusing ``last``'s members whose value is the
    same. A routine poll moves three values (last success, last poll, polls), so it writes
    and wraps three members, not fourteen: the poll path's largest share at 50,000 numbers."""
    identity = (state.business_id, state.waba_id)
    values = tuple(_MOVES if get is None else get(state) for _, get in _HEALTH)
    if last is None or last.identity != identity:
        return HealthPart(identity, identity_labels(WABA_FAMILIES[0].subject, state), values,
                          state.usage, compress_fragment(render_waba_health(state)))
    members = dict(last.members)
    writers = _WRITERS[False]
    for (family, _), new, old in zip(_HEALTH, values, last.values, strict=True):
        if new is _MOVES or new != old:
            _replace(family.name, writers[family.name](last.base, state), members)
    if state.usage != last.usage:
        rendered = render_usage(state.usage)
        for name in _USAGE_NAMES:
            _replace(name, rendered.get(name, b""), members)
    return HealthPart(identity, last.base, values, state.usage, members)


def _replace(name: str, lines: str | bytes, members: dict[str, bytes]) -> None:
    """A family's new lines into ``members``, compressed; no lines now: dropped."""
    if lines:
        members[name] = gzip_member(lines.encode() if isinstance(lines, str) else lines)
    else:
        members.pop(name, None)


def render_waba(state: WabaState) -> dict[str, bytes]:
    """All sample lines of one WABA, grouped by family."""
    return {**render_numbers(state), **render_waba_health(state)}


def render_usage(entries: Iterable[BucUsage]) -> dict[str, bytes]:
    """X-Business-Use-Case-Usage readings, one object and type after another."""
    return render(USAGE_FAMILIES, list(entries))


def render_business(summary: BusinessSummary,
                    alerts: Sequence[AccountAlert] = ()) -> dict[str, bytes]:
    """A portfolio's families, its account alerts included."""
    return {**render(BUSINESS_FAMILIES, [summary]), **render(ALERT_FAMILIES, alerts)}


def render_waba_account(account: WabaAccount) -> dict[str, bytes]:
    """A WABA's account-level health (node, webhook facts, health errors)."""
    return render(WABA_ACCOUNT_FAMILIES, [account])


# Below this size a member is stored, not deflated: a WABA's one-line families barely shrink
# (a label set does not repeat within one line) and setting up deflate costs several times
# more than writing the header and checksum around the bytes. They change with every poll.
STORED_BELOW = 160
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, mtime 0, OS unknown
_STORED_HEAD = _GZIP_HEADER + b"\x01"  # then one final stored block
_pack_lengths = struct.Struct("<HH").pack
_pack_trailer = struct.Struct("<II").pack


def gzip_member(data: bytes) -> bytes:
    """One complete gzip member (mtime 0). Members concatenate into a valid gzip stream."""
    size = len(data)
    if size < STORED_BELOW:
        # RFC 1952 member around one final stored deflate block (RFC 1951 §3.2.4).
        return b"%b%b%b%b" % (_STORED_HEAD, _pack_lengths(size, size ^ 0xFFFF), data,
                              _pack_trailer(zlib.crc32(data), size))
    # ISA-L's deflate: twice zlib's speed at its level 1 for the same size (a first poll
    # compresses some 40 kB of StateSet lines per WABA).
    return isal_zlib.compress(data, GZIP_LEVEL, wbits=31)


def compress_fragment(fragment: Mapping[str, bytes]) -> dict[str, bytes]:
    """Keep each family's lines of one WABA as its own gzip member: ten times smaller in
    memory, and a scrape joins members without compressing anything."""
    return {name: gzip_member(chunk) for name, chunk in fragment.items() if chunk}


_HEADERS = {
    (family.name, openmetrics): gzip_member(header(family, openmetrics))
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
    """The data part of /metrics for one snapshot version, as gzip members in exposition
    order (listed on first use per format: Prometheus asks for one of them).

    Nothing is joined ahead of a scrape: a scrape writes the members about a megabyte at a
    time. A joined copy was one more body-sized buffer (tens of MB at 50,000 numbers), and
    in the steady state every poll makes a new version, so it was rebuilt for most scrapes
    anyway.
    """

    def __init__(self, version: int, fragments: list[Fragment],
                 options: ExpositionOptions | None = None) -> None:
        self.version = version
        self._fragments = fragments
        self._options = options
        self._members: dict[bool, tuple[list[bytes], int]] = {}

    def _listed(self, openmetrics: bool) -> tuple[list[bytes], int]:
        listed = self._members.get(openmetrics)
        if listed is None:
            parts = members(self._fragments, openmetrics=openmetrics, options=self._options)
            listed = self._members[openmetrics] = (parts, sum(map(len, parts)))
        return listed

    def gzip_size(self, *, openmetrics: bool) -> int:
        """Bytes of the gzip stream ``gzip_chunks`` yields."""
        return self._listed(openmetrics)[1]

    def gzip_chunks(self, *, openmetrics: bool, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The gzip stream, about ``chunk_size`` bytes at a time."""
        return join_chunks(self._listed(openmetrics)[0], chunk_size)

    def gzip(self, *, openmetrics: bool) -> bytes:
        return b"".join(self._listed(openmetrics)[0])

    def plain_chunks(self, *, openmetrics: bool) -> Iterator[bytes]:
        """The uncompressed body, about a megabyte at a time."""
        return gunzip_chunks(self._listed(openmetrics)[0])

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


def join_chunks(parts: Iterable[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Small byte strings joined into pieces of about ``chunk_size`` bytes."""
    pending: list[bytes] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= chunk_size:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def gunzip_chunks(gzip_members: Iterable[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Decompress members one by one (each a one-shot C call; walking one long stream would
    copy its remainder after every member), yielding about ``chunk_size`` bytes at a time."""
    pending: list[bytes] = []
    size = 0
    for member in gzip_members:
        out = isal_zlib.decompress(member, wbits=31)
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
