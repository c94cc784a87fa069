"""The building blocks of metric families: the subjects they describe (a number in its WABA,
a WABA, a WABA's account health, a business summary, an account alert, a usage reading) and
the sample kinds (StateSet, Value, Flag). ``families.py`` declares the families with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, NamedTuple, TypeVar, cast

from monitor.accounts import AccountAlert, Template, WabaFacts, WabaNode
from monitor.caps import BusinessSummary
from monitor.graph.usage import BucUsage
from monitor.model import PhoneNumber, WabaState

S = TypeVar("S")
Sample = tuple[tuple[str | None, ...], float]
"""Values of a family's own labels (``None`` leaves that label out) and the sample value."""


class NumberInWaba(NamedTuple):
    """A phone number with the WABA it was polled in (a tuple: cheap on the hot path)."""

    waba: WabaState
    number: PhoneNumber


@dataclass(frozen=True, slots=True)
class Subject(Generic[S]):
    """The kind of object a family describes, and the labels that identify one.

    Identity labels come first in every sample and are rendered once per object, however
    many families and samples it has.
    """

    what: str
    labels: tuple[str, ...]
    identity: Callable[[S], tuple[str, ...]]


NUMBER: Subject[NumberInWaba] = Subject(
    "phone number", ("business_id", "waba_id", "phone_number_id"),
    lambda row: (row.waba.business_id, row.waba.waba_id, row.number.id))
WABA: Subject[WabaState] = Subject(
    "WABA", ("business_id", "waba_id"), lambda state: (state.business_id, state.waba_id))
BUSINESS: Subject[BusinessSummary] = Subject(
    "business portfolio", ("business_id",), lambda summary: (summary.business_id,))
class WabaAccount(NamedTuple):
    """A WABA's account-level health: its node, its webhook-only facts, and the time (an
    expired restriction is no longer exported)."""

    state: WabaState
    node: WabaNode | None
    facts: WabaFacts | None
    now: float
    subscribed: bool | None = None  # our app in the WABA's subscribed_apps
    identity_checks: Mapping[str, bool] = {}  # phone_number_id -> identity change check on
    templates: tuple[Template, ...] | None = None  # None: not read (yet)
    template_series: tuple[Template, ...] = ()  # those with series of their own
    templates_read_at: float = 0.0  # when the templates were last read
    throttled: bool = False  # waiting on a Graph API throttle (in line, or parked)


WABA_ACCOUNT: Subject[WabaAccount] = Subject(
    "WABA account", ("business_id", "waba_id"),
    lambda a: (a.state.business_id, a.state.waba_id))
ALERT: Subject[AccountAlert] = Subject(
    "account alert", ("business_id",), lambda alert: (alert.business_id,))
USAGE: Subject[BucUsage] = Subject(
    "usage reading", ("object_id", "type"), lambda entry: (entry.object_id, entry.type))


@dataclass(frozen=True, slots=True)
class StateSet(Generic[S]):
    """Samples of an enum: one 0/1 series per known value, plus the observed value when it is
    not a known one (so a new API value shows rather than vanishes). In compact mode
    (``metrics.enum_mode: compact``) only the current value is exported."""

    get: Callable[[S], str | None]
    known: tuple[str, ...]

    def __call__(self, subject: S, compact: bool = False) -> Iterator[Sample]:
        value = self.get(subject)
        if value is None:
            return
        if not compact:
            for candidate in self.known:
                yield (candidate,), 1 if candidate == value else 0
            if value in self.known:
                return
        yield (value,), 1


@dataclass(frozen=True, slots=True)
class Family(Generic[S]):
    """One metric family: what it is called and means, and how an object yields its samples.

    ``samples`` is a plain function, or one of the helpers ``StateSet``, ``Value`` and ``Flag``
    (below), which the exposition renders from text prepared once per family: most families
    are these, and the per-number ones are the hot path at 50,000 numbers.
    """

    name: str  # sample name (counters end in _total)
    type: Literal["gauge", "counter"]
    help: str
    subject: Subject[S]
    labels: tuple[str, ...]  # the family's own labels, after the subject's identity labels
    samples: Callable[[S], Iterable[Sample]]

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.subject.labels + self.labels

    def samples_of(self, subject: S, compact: bool = False) -> Iterable[Sample]:
        """The samples of one object; ``compact`` only matters to StateSets."""
        if isinstance(self.samples, StateSet):
            return cast(Iterable[Sample], self.samples(subject, compact))
        return self.samples(subject)


@dataclass(frozen=True, slots=True)
class Value(Generic[S]):
    """One unlabelled sample, left out when the value is not known (never a made-up zero)."""

    get: Callable[[S], float | None]

    def __call__(self, subject: S) -> Iterator[Sample]:
        found = self.get(subject)
        if found is not None:
            yield (), found


@dataclass(frozen=True, slots=True)
class Flag(Generic[S]):
    """1 or 0, left out when not known."""

    get: Callable[[S], bool | None]

    def __call__(self, subject: S) -> Iterator[Sample]:
        found = self.get(subject)
        if found is not None:
            yield (), 1 if found else 0
