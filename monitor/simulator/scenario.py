"""Scenarios: the immutable description of a simulated fleet, parsed strictly from YAML.

A scenario is read once and never changes; ``World`` copies it into mutable state. Parsing is
strict (unknown keys and wrong types are errors naming the key) because a typo in a test
scenario would otherwise silently produce a fleet the test did not mean.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .fields import (
    BUSINESS_SETTABLE_FIELDS,
    DEFAULT_REJECTED_FIELDS,
    NUMBER_ALIASES,
    NUMBER_BOOL_FIELDS,
    NUMBER_KNOWN_FIELDS,
    NUMBER_OBJECT_FIELDS,
    NUMBER_SETTABLE_FIELDS,
    NUMBER_STRING_FIELDS,
    NUMBER_WRAPPED_FIELDS,
    WABA_SETTABLE_FIELDS,
)

DEFAULT_TOKEN = "demo-token"  # noqa: S105 - the simulator's public demo token
DEFAULT_APP_ID = "900000000000001"
MAX_GENERATED = 100_000

_ID = re.compile(r"[0-9]{1,20}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TEMPLATE_N = re.compile(r"\{n(?::0?(\d+)d?)?\}")
_BUILTIN_NAME = re.compile(r"[a-z0-9_-]+")


class ScenarioError(ValueError):
    """A scenario file or value is invalid; the message names the offending key."""


# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True, slots=True)
class Budget:
    """Rolling-window call allowances (per WABA, and for the whole app)."""

    default_per_hour: int = 200
    active_per_hour: int = 5_000
    app_per_hour: int = 1_000_000
    window_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class NumberSpec:
    """A phone number as the scenario defines it; ``fields`` excludes ``id``."""

    id: str
    fields: Mapping[str, Any]
    # Routing and security state that is not a number field (see scenario_wiring).
    webhook_override: str | None = None
    identity_key_check: bool = False
    onboarded_ago: float | None = None


@dataclass(frozen=True, slots=True)
class WabaSpec:
    """A WABA; ``fields`` holds scenario-set node fields (``name`` always present)."""

    id: str
    fields: Mapping[str, Any]
    numbers: tuple[NumberSpec, ...] = ()
    subscribed_apps: tuple[Mapping[str, Any], ...] | None = None  # None: our app alone
    subscribed_apps_error: Mapping[str, Any] | None = None
    # Message templates (issue 12): (id, fields) pairs, see templates.parse_template.
    templates: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @property
    def name(self) -> str:
        return str(self.fields["name"])


@dataclass(frozen=True, slots=True)
class BusinessSpec:
    """A business portfolio; ``health`` feeds the BUSINESS entity of ``health_status``."""

    id: str
    fields: Mapping[str, Any]
    wabas: tuple[WabaSpec, ...] = ()
    client_wabas: tuple[str, ...] = ()
    health: Mapping[str, Any] | None = None
    # The Graph error a node read gets (e.g. a client portfolio read with a partner token).
    node_error: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.fields["name"])

    @property
    def verification_status(self) -> str | None:
        value = self.fields.get("verification_status")
        return None if value is None else str(value)

    @property
    def messaging_limit(self) -> str | None:
        value = self.fields.get("whatsapp_business_manager_messaging_limit")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """At ``at`` seconds after start (modulo the period), overlay ``set`` on a number."""

    at: float
    number: str
    set: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """At ``at`` seconds (each period, or only the first with ``once``), perform an action.

    ``action`` is an ``actions.Action``; typed loosely here to keep the import one-way.
    """

    at: float
    action: Any
    once: bool = False


@dataclass(frozen=True, slots=True)
class Timeline:
    events: tuple[TimelineEvent, ...] = ()
    repeat_every: float | None = None
    actions: tuple[ActionEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where the simulator POSTs Meta-style webhooks, and the app secret it signs them with.

    ``time_as_string`` sends ``entry[].time`` quoted, as some Meta pages show it (facts §2.1);
    ``legacy_quality_events`` keeps the retired FLAGGED/UNFLAGGED/UPGRADE/DOWNGRADE events on
    status and quality-rating edits (see ``webhooks.number_change_webhooks``).
    """

    url: str
    app_secret: str = field(repr=False)
    time_as_string: bool = False
    legacy_quality_events: bool = True


@dataclass(frozen=True, slots=True)
class Scenario:
    """The whole simulated fleet plus API behaviour knobs."""

    businesses: tuple[BusinessSpec, ...] = ()
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    app_id: str = DEFAULT_APP_ID
    budget: Budget = field(default_factory=Budget)
    rejected_fields: tuple[str, ...] = DEFAULT_REJECTED_FIELDS
    edge_omits_fields: tuple[str, ...] = ()
    timeline: Timeline = field(default_factory=Timeline)
    description: str = ""
    webhooks: WebhookTarget | None = None
    app_name: str = "waba-monitor"
    app_callback_url: str | None = None  # None: the webhook target's URL (scenario_wiring)
    settings_unsupported: bool = False

    def wabas(self) -> Iterator[tuple[BusinessSpec, WabaSpec]]:
        """Every WABA with its owner, in scenario order."""
        for business in self.businesses:
            for waba in business.wabas:
                yield business, waba

    def numbers(self) -> Iterator[tuple[WabaSpec, NumberSpec]]:
        """Every phone number with its WABA, in scenario order."""
        for _, waba in self.wabas():
            for number in waba.numbers:
                yield waba, number

    def number(self, number_id: str) -> NumberSpec:
        for _, number in self.numbers():
            if number.id == number_id:
                return number
        raise KeyError(number_id)


# --------------------------------------------------------------------------- helpers


def freeze(value: Any) -> Any:
    """Deep-freeze parsed data so scenario value objects are really immutable."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Deep copy of frozen (or plain) data into plain dicts and lists, JSON-serialisable."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def parse_duration(value: object, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"1m30s"``, ``"250ms"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ScenarioError(f"{where}: cannot parse duration {value!r} (use e.g. '30s', '5m')")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ScenarioError(f"{where}: expected a duration like '30s', got {type(value).__name__}")
    if seconds < 0:
        raise ScenarioError(f"{where}: duration must not be negative")
    return seconds


def _object_id(value: object, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ScenarioError(f"{where}: expected a numeric id string, got {value!r}")
    return value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(f"{where}: keys must be strings, got {key!r}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(
            f"{where}: expected a string, got {type(value).__name__} {value!r} (quote it in YAML)"
        )
    return value


def _string_list(value: object, where: str) -> tuple[str, ...]:
    return tuple(_string(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _positive_int(value: object, where: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScenarioError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _check_keys(
    data: Mapping[str, Any], allowed: Sequence[str] | frozenset[str], where: str
) -> None:
    for key in data:
        if key not in allowed:
            hint = ""
            if key in NUMBER_ALIASES:
                hint = f" ({key} is an alias of {NUMBER_ALIASES[key]}; set that instead)"
            raise ScenarioError(
                f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(sorted(allowed))}"
            )


def _json_value(value: object, where: str) -> Any:
    """Check a verbatim value is JSON-representable (YAML can produce dates, sets...)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _json_value(v, f"{where}.{k}") for k, v in _mapping(value, where).items()}
    raise ScenarioError(f"{where}: {type(value).__name__} is not a JSON value (quote it in YAML)")


def _wrapped(value: object, inner: str, where: str) -> dict[str, Any]:
    """``HIGH`` or ``{level: HIGH, ...}`` → ``{"level": "HIGH", ...}``."""
    if isinstance(value, str):
        return {inner: value}
    data = _mapping(value, where)
    if inner not in data:
        raise ScenarioError(f"{where}: missing key {inner!r}")
    _string(data[inner], f"{where}.{inner}")
    return {k: _json_value(v, f"{where}.{k}") for k, v in data.items()}


def normalize_health(value: object, where: str) -> dict[str, Any]:
    """Health given as ``LIMITED`` or ``{can_send_message: LIMITED, additional_info: [..]}``."""
    return _wrapped(value, "can_send_message", where)


def normalize_number_value(key: str, value: object, where: str) -> Any:
    """Type-check one phone-number field value and bring it to its stored form."""
    if key in NUMBER_STRING_FIELDS:
        return _string(value, where)
    if key in NUMBER_BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        return value
    if key in NUMBER_WRAPPED_FIELDS:
        return _wrapped(value, NUMBER_WRAPPED_FIELDS[key], where)
    if key in NUMBER_OBJECT_FIELDS:
        return _json_value(_mapping(value, where), where)
    return _json_value(value, where)


def normalize_number_fields(
    raw: Mapping[str, Any],
    where: str,
    *,
    custom: frozenset[str] = frozenset(),
    allow_none: bool = False,
) -> dict[str, Any]:
    """Validate a mapping of phone-number fields (no ``id``); ``None`` means remove.

    ``custom`` names extra fields the scenario declared; with ``allow_none`` a ``None``
    value is kept (as a removal marker), otherwise it is an error.
    """
    data = _mapping(raw, where)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "id":
            raise ScenarioError(f"{where}: 'id' cannot be set here")
        if key not in NUMBER_SETTABLE_FIELDS and key not in custom:
            _check_keys({key: value}, NUMBER_SETTABLE_FIELDS | custom, where)
        if value is None:
            if not allow_none:
                raise ScenarioError(f"{where}.{key}: null is not allowed here; leave the key out")
            out[key] = None
            continue
        out[key] = normalize_number_value(key, value, f"{where}.{key}")
    return out


def _split_extra(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the ``extra:`` block (custom verbatim fields) from the rest."""
    rest = dict(data)
    extra_raw = rest.pop("extra", None)
    if extra_raw is None:
        return rest, {}
    extra = _json_value(_mapping(extra_raw, f"{where}.extra"), f"{where}.extra")
    assert isinstance(extra, dict)
    return rest, extra


# --------------------------------------------------------------------------- parsing


def _parse_number(data: object, where: str) -> tuple[NumberSpec, frozenset[str]]:
    from .scenario_wiring import pop_number_wiring  # it imports this module

    mapping = _mapping(data, where)
    if "id" not in mapping:
        raise ScenarioError(f"{where}: missing key 'id'")
    number_id = _object_id(mapping["id"], f"{where}.id")
    rest, extra = _split_extra(mapping, where)
    del rest["id"]
    wiring = pop_number_wiring(rest, where)
    fields = normalize_number_fields(rest, where)
    clash = set(extra) & (NUMBER_KNOWN_FIELDS)
    if clash:
        raise ScenarioError(
            f"{where}.extra: {sorted(clash)[0]!r} is a standard field; set it directly"
        )
    fields.update(extra)
    spec = NumberSpec(
        number_id, freeze(fields), wiring.webhook_override, wiring.identity_key_check,
        wiring.onboarded_ago,
    )
    return spec, frozenset(extra)


def _fill_template(value: Any, n: int) -> Any:
    if isinstance(value, str):
        return _TEMPLATE_N.sub(lambda m: str(n).zfill(int(m.group(1) or 0)), value)
    return value


def _generate_numbers(data: object, waba_id: str, where: str) -> list[NumberSpec]:
    mapping = dict(_mapping(data, where))
    if "count" not in mapping:
        raise ScenarioError(f"{where}: missing key 'count'")
    count = _positive_int(mapping.pop("count"), f"{where}.count", minimum=0)
    if count > MAX_GENERATED:
        raise ScenarioError(f"{where}.count: at most {MAX_GENERATED}")
    if "id_start" in mapping:
        start = int(_object_id(mapping.pop("id_start"), f"{where}.id_start"))
    else:
        start = int(waba_id) * 100_000 + 1
    mapping.setdefault("display_phone_number", f"+1 555-{waba_id[-3:]}-{{n:04}}")
    if "extra" in mapping:
        raise ScenarioError(f"{where}: 'extra' is not supported in generate templates")
    if "id" in mapping:
        raise ScenarioError(f"{where}: use 'id_start' rather than 'id' in generate")
    template = normalize_number_fields(mapping, where)
    out: list[NumberSpec] = []
    for n in range(1, count + 1):
        fields = {k: _fill_template(v, n) for k, v in template.items()}
        out.append(NumberSpec(str(start + n - 1), freeze(fields)))
    return out


def _parse_waba(
    data: object, business: Mapping[str, Any], where: str, custom: set[str]
) -> WabaSpec:
    from .scenario_wiring import WABA_WIRING_KEYS, parse_waba_wiring
    from .templates import parse_template

    mapping = _mapping(data, where)
    structural = {"id", "numbers", "generate", "extra", "templates", *WABA_WIRING_KEYS}
    _check_keys(mapping, WABA_SETTABLE_FIELDS | structural, where)
    if "id" not in mapping:
        raise ScenarioError(f"{where}: missing key 'id'")
    waba_id = _object_id(mapping["id"], f"{where}.id")
    fields: dict[str, Any] = {"name": f"WABA {waba_id}"}
    for key, value in mapping.items():
        if key in structural:
            continue
        if key == "health_status":
            fields[key] = normalize_health(value, f"{where}.{key}")
        elif key == "is_enabled_for_insights":
            if not isinstance(value, bool):
                raise ScenarioError(f"{where}.{key}: expected true or false, got {value!r}")
            fields[key] = value
        elif key == "on_behalf_of_business_info":
            fields[key] = _json_value(_mapping(value, f"{where}.{key}"), f"{where}.{key}")
        else:
            fields[key] = _string(value, f"{where}.{key}")
    # business_verification_status and the messaging limit are read from the owner at
    # request time (World) unless set here, so portfolio changes show on the WABA too.
    _, extra = _split_extra(mapping, where)
    fields.update(extra)
    numbers: list[NumberSpec] = []
    for i, raw in enumerate(_list(mapping.get("numbers", []), f"{where}.numbers")):
        number, number_custom = _parse_number(raw, f"{where}.numbers[{i}]")
        custom.update(number_custom)
        numbers.append(number)
    if "generate" in mapping:
        numbers.extend(_generate_numbers(mapping["generate"], waba_id, f"{where}.generate"))
    apps, refusal = parse_waba_wiring(mapping, where)
    templates = tuple(
        parse_template(raw, f"{where}.templates[{i}]")
        for i, raw in enumerate(_list(mapping.get("templates", []), f"{where}.templates"))
    )
    return WabaSpec(waba_id, freeze(fields), tuple(numbers), apps, refusal, templates)


def _parse_business(data: object, where: str, custom: set[str]) -> BusinessSpec:
    mapping = _mapping(data, where)
    structural = {
        "id",
        "wabas",
        "client_wabas",
        "extra",
        "health_status",
        "messaging_limit",
        "refuse_node_read",
    }
    _check_keys(mapping, BUSINESS_SETTABLE_FIELDS | structural, where)
    if "id" not in mapping:
        raise ScenarioError(f"{where}: missing key 'id'")
    business_id = _object_id(mapping["id"], f"{where}.id")
    if "messaging_limit" in mapping and "whatsapp_business_manager_messaging_limit" in mapping:
        raise ScenarioError(
            f"{where}: give messaging_limit or whatsapp_business_manager_messaging_limit, not both"
        )
    fields: dict[str, Any] = {"name": f"Business {business_id}"}
    for key, value in mapping.items():
        if key in structural - {"messaging_limit"}:
            continue
        target = "whatsapp_business_manager_messaging_limit" if key == "messaging_limit" else key
        if key == "is_hidden":
            if not isinstance(value, bool):
                raise ScenarioError(f"{where}.{key}: expected true or false, got {value!r}")
            fields[key] = value
        else:
            fields[target] = _string(value, f"{where}.{key}")
    _, extra = _split_extra(mapping, where)
    fields.update(extra)
    health = (
        normalize_health(mapping["health_status"], f"{where}.health_status")
        if "health_status" in mapping
        else None
    )
    wabas = tuple(
        _parse_waba(raw, fields, f"{where}.wabas[{i}]", custom)
        for i, raw in enumerate(_list(mapping.get("wabas", []), f"{where}.wabas"))
    )
    clients = tuple(
        _object_id(v, f"{where}.client_wabas[{i}]")
        for i, v in enumerate(_list(mapping.get("client_wabas", []), f"{where}.client_wabas"))
    )
    refusal = (
        _node_error(mapping["refuse_node_read"], f"{where}.refuse_node_read")
        if mapping.get("refuse_node_read") not in (None, False)
        else None
    )
    return BusinessSpec(
        business_id,
        freeze(fields),
        wabas,
        clients,
        None if health is None else freeze(health),
        None if refusal is None else freeze(refusal),
    )


# Graph's answer to a business read without business_management (codes 200-299 are HTTP 403,
# graph-api-facts §5); the exact message Meta uses for a client portfolio is UNCONFIRMED.
DEFAULT_NODE_ERROR: dict[str, Any] = {
    "status": 403,
    "code": 200,
    "message": "(#200) Requires business_management permission to manage the object",
    "type": "OAuthException",
}


def _node_error(value: object, where: str) -> dict[str, Any]:
    """``true`` (the default permission error) or ``{status, code, message, type, subcode}``."""
    if value is True:
        return dict(DEFAULT_NODE_ERROR)
    data = _mapping(value, where)
    _check_keys(data, ("status", "code", "message", "type", "subcode"), where)
    out = dict(DEFAULT_NODE_ERROR)
    for key in ("status", "code", "subcode"):
        if key in data:
            out[key] = _positive_int(data[key], f"{where}.{key}")
    for key in ("message", "type"):
        if key in data:
            out[key] = _string(data[key], f"{where}.{key}")
    return out


def _parse_budget(data: object, where: str) -> Budget:
    mapping = _mapping(data, where)
    _check_keys(mapping, ("default_per_hour", "active_per_hour", "app_per_hour", "window"), where)
    base = Budget()
    return Budget(
        default_per_hour=_positive_int(
            mapping.get("default_per_hour", base.default_per_hour), f"{where}.default_per_hour"
        ),
        active_per_hour=_positive_int(
            mapping.get("active_per_hour", base.active_per_hour), f"{where}.active_per_hour"
        ),
        app_per_hour=_positive_int(
            mapping.get("app_per_hour", base.app_per_hour), f"{where}.app_per_hour"
        ),
        window_seconds=_window(mapping.get("window", base.window_seconds), f"{where}.window"),
    )


def _window(value: object, where: str) -> float:
    seconds = parse_duration(value, where)
    if seconds <= 0:
        raise ScenarioError(f"{where}: must be positive")
    return seconds


def _parse_timeline(data: object, where: str, custom: frozenset[str]) -> Timeline:
    from .actions import parse_action  # actions imports this module

    mapping = _mapping(data, where)
    _check_keys(mapping, ("repeat_every", "events"), where)
    period: float | None = None
    if mapping.get("repeat_every") is not None:
        period = _window(mapping["repeat_every"], f"{where}.repeat_every")
    events: list[TimelineEvent] = []
    actions: list[ActionEvent] = []
    for i, raw in enumerate(_list(mapping.get("events", []), f"{where}.events")):
        at_where = f"{where}.events[{i}]"
        event = _mapping(raw, at_where)
        if "at" not in event:
            raise ScenarioError(f"{at_where}: missing key 'at'")
        at = parse_duration(event["at"], f"{at_where}.at")
        if period is not None and at >= period:
            raise ScenarioError(f"{at_where}.at: must be less than repeat_every ({period:g}s)")
        if "action" in event:
            params = {k: v for k, v in event.items() if k not in ("at", "action", "once")}
            once = event.get("once", False)
            if not isinstance(once, bool):
                raise ScenarioError(f"{at_where}.once: expected true or false")
            actions.append(ActionEvent(at, parse_action(event["action"], params, at_where), once))
            continue
        _check_keys(event, ("at", "number", "set"), at_where)
        for key in ("number", "set"):
            if key not in event:
                raise ScenarioError(f"{at_where}: missing key {key!r}")
        changes = normalize_number_fields(
            event["set"], f"{at_where}.set", custom=custom, allow_none=True
        )
        if not changes:
            raise ScenarioError(f"{at_where}.set: must set at least one field")
        number = _object_id(event["number"], f"{at_where}.number")
        events.append(TimelineEvent(at, number, freeze(changes)))
    # Stable sort keeps file order for events at the same instant.
    events.sort(key=lambda e: e.at)
    actions.sort(key=lambda e: e.at)
    return Timeline(tuple(events), period, tuple(actions))


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    """Build a Scenario from already-loaded YAML/JSON data, validating everything."""
    try:
        return _parse_scenario(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


_TOP_KEYS = (
    "description",
    "tokens",
    "app_id",
    "budget",
    "rejected_fields",
    "edge_omits_fields",
    "businesses",
    "timeline",
    "webhooks",
    "app_name",
    "app_callback_url",
    "settings_unsupported",
)


def _parse_scenario(data: object) -> Scenario:
    from .scenario_wiring import parse_top_level, parse_webhooks

    # Top-level keys starting with "x-" are ignored: a place to hold YAML anchors.
    mapping = {k: v for k, v in _mapping(data, "top level").items() if not str(k).startswith("x-")}
    _check_keys(mapping, _TOP_KEYS, "top level")
    if "businesses" not in mapping:
        raise ScenarioError("top level: missing key 'businesses'")
    tokens = _string_list(mapping.get("tokens", [DEFAULT_TOKEN]), "tokens")
    if not tokens or any(not t for t in tokens):
        raise ScenarioError("tokens: need at least one non-empty token")
    custom: set[str] = set()
    businesses = tuple(
        _parse_business(raw, f"businesses[{i}]", custom)
        for i, raw in enumerate(_list(mapping["businesses"], "businesses"))
    )
    _check_ids(businesses)
    edge_omits = _string_list(mapping.get("edge_omits_fields", []), "edge_omits_fields")
    for i, name in enumerate(edge_omits):
        if name == "id" or (name not in NUMBER_KNOWN_FIELDS and name not in custom):
            raise ScenarioError(
                f"edge_omits_fields[{i}]: {name!r} is not an omittable number field"
            )
    timeline = _parse_timeline(mapping.get("timeline", {}), "timeline", frozenset(custom))
    number_ids = {n.id for b in businesses for w in b.wabas for n in w.numbers}
    for i, event in enumerate(timeline.events):
        if event.number not in number_ids:
            raise ScenarioError(
                f"timeline.events: event #{i} names unknown number {event.number!r}"
            )
    known = number_ids | {b.id for b in businesses} | {w.id for b in businesses for w in b.wabas}
    for i, step in enumerate(timeline.actions):
        for key in ("waba", "business", "partner", "number"):
            value = step.action.params.get(key)
            if value is not None and value not in known:
                raise ScenarioError(
                    f"timeline.events: {step.action.kind} step #{i} names unknown {key} {value!r}"
                )
    description = mapping.get("description", "")
    app_name, app_callback_url, settings_unsupported = parse_top_level(mapping)
    return Scenario(
        businesses=businesses,
        tokens=tokens,
        app_id=_object_id(mapping.get("app_id", DEFAULT_APP_ID), "app_id"),
        budget=_parse_budget(mapping.get("budget", {}), "budget"),
        rejected_fields=_string_list(
            mapping.get("rejected_fields", list(DEFAULT_REJECTED_FIELDS)), "rejected_fields"
        ),
        edge_omits_fields=edge_omits,
        timeline=timeline,
        description=_string(description, "description"),
        webhooks=(
            parse_webhooks(mapping["webhooks"], "webhooks")
            if mapping.get("webhooks") is not None
            else None
        ),
        app_name=app_name,
        app_callback_url=app_callback_url,
        settings_unsupported=settings_unsupported,
    )


def _check_ids(businesses: tuple[BusinessSpec, ...]) -> None:
    """Ids must be unique across all node types, since one route dispatches on the id."""
    where: dict[str, str] = {}

    def claim(object_id: str, label: str) -> None:
        if object_id in where:
            raise ScenarioError(f"{label}: id {object_id!r} is already used by {where[object_id]}")
        where[object_id] = label

    owner: dict[str, str] = {}
    for b_index, business in enumerate(businesses):
        claim(business.id, f"businesses[{b_index}]")
        for w_index, waba in enumerate(business.wabas):
            claim(waba.id, f"businesses[{b_index}].wabas[{w_index}]")
            owner[waba.id] = business.id
            for n_index, number in enumerate(waba.numbers):
                claim(number.id, f"businesses[{b_index}].wabas[{w_index}].numbers[{n_index}]")
            for t_index, (template_id, _) in enumerate(waba.templates):
                claim(template_id, f"businesses[{b_index}].wabas[{w_index}].templates[{t_index}]")
    for b_index, business in enumerate(businesses):
        seen: set[str] = set()
        for c_index, waba_id in enumerate(business.client_wabas):
            label = f"businesses[{b_index}].client_wabas[{c_index}]"
            if waba_id not in owner:
                raise ScenarioError(f"{label}: {waba_id!r} is not a WABA of this scenario")
            if owner[waba_id] == business.id:
                raise ScenarioError(f"{label}: {waba_id!r} is owned by this same business")
            if waba_id in seen:
                raise ScenarioError(f"{label}: {waba_id!r} is listed twice")
            seen.add(waba_id)


# --------------------------------------------------------------------------- entry points


def scenario_from_yaml(text: str, source: str = "scenario") -> Scenario:
    """Parse scenario YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
    return parse_scenario(data, source)


def load_scenario(path: Path) -> Scenario:
    """Load and validate a scenario file; raises ScenarioError naming the bad key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from None
    return scenario_from_yaml(text, str(path))


def builtin_scenario_names() -> tuple[str, ...]:
    """Names of the scenarios shipped in ``monitor/simulator/scenarios/``."""
    folder = resources.files("monitor.simulator").joinpath("scenarios")
    return tuple(
        sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    )


def builtin_scenario(name: str = "demo") -> Scenario:
    """Load a scenario shipped with the package (e.g. ``demo``)."""
    if not _BUILTIN_NAME.fullmatch(name) or name not in builtin_scenario_names():
        raise ScenarioError(
            f"no built-in scenario {name!r}; available: {', '.join(builtin_scenario_names())}"
        )
    resource = resources.files("monitor.simulator").joinpath("scenarios", f"{name}.yaml")
    return scenario_from_yaml(resource.read_text(encoding="utf-8"), f"builtin:{name}")
