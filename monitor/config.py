"""Configuration: one YAML file, environment overrides, validated once into frozen settings.

Why this shape: the daemon must either start with a configuration that is entirely valid or
refuse with every problem listed at once (one ``<path>: <message>`` line each), so that an
operator fixes a file in one round trip instead of one error per restart.

Sources, highest priority first:

1. Environment variables ``WABA_MONITOR_<SECTION>__<KEY>`` (e.g. ``WABA_MONITOR_GRAPH__BASE_URL``,
   ``WABA_MONITOR_SCHEDULE__SCAN_INTERVAL=5s``). A whole section may also be given as a JSON
   object (``WABA_MONITOR_GRAPH='{"concurrency": 8}'``); businesses only as a whole, as a JSON
   list in ``WABA_MONITOR_BUSINESSES``. Names are case-insensitive, an empty variable counts as
   unset, and the value ``null`` sets a key to null (e.g. to drop ``graph.access_token_file``).
2. The YAML file given to :func:`load_settings`.
3. Defaults.

Secrets never come from the YAML file by value: :func:`resolve_access_token` and
:func:`resolve_app_secret` read them from ``graph.*_file`` or from ``WABA_MONITOR_ACCESS_TOKEN``
/ ``WABA_MONITOR_APP_SECRET``; ``WABA_MONITOR_WEBHOOK_VERIFY_TOKEN`` is reserved as well. These
names are not configuration keys and are never reported as unknown. :func:`env_reference`
renders the full key/variable table (Markdown) for the README.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

__all__ = [
    "ACCESS_TOKEN_ENV",
    "APP_SECRET_ENV",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "SECRET_ENV_VARS",
    "WEBHOOK_VERIFY_TOKEN_ENV",
    "BusinessSettings",
    "ConfigError",
    "Duration",
    "GraphSettings",
    "LoggingSettings",
    "PositiveDuration",
    "ScheduleSettings",
    "ServerSettings",
    "Settings",
    "env_reference",
    "format_duration",
    "load_settings",
    "parse_duration",
    "resolve_access_token",
    "resolve_app_secret",
    "resolve_webhook_verify_token",
]

ENV_PREFIX = "WABA_MONITOR_"
ENV_NESTED_DELIMITER = "__"
# Names of variables, not secrets (hence the noqa).
ACCESS_TOKEN_ENV = "WABA_MONITOR_ACCESS_TOKEN"  # noqa: S105
APP_SECRET_ENV = "WABA_MONITOR_APP_SECRET"  # noqa: S105
WEBHOOK_VERIFY_TOKEN_ENV = "WABA_MONITOR_WEBHOOK_VERIFY_TOKEN"  # noqa: S105
# Secret variables share the prefix but are not config keys; they must never be rejected.
SECRET_ENV_VARS = frozenset({ACCESS_TOKEN_ENV, APP_SECRET_ENV, WEBHOOK_VERIFY_TOKEN_ENV})

_MAX_SECRET_BYTES = 64 * 1024  # a token file larger than this is surely the wrong file
_CONFLICT = "waba_config_conflict"  # pydantic error type of _conflicts()


class ConfigError(Exception):
    """Every problem found in the configuration, so that all can be fixed in one go."""

    def __init__(self, problems: Iterable[str] | str) -> None:
        items = (problems,) if isinstance(problems, str) else tuple(problems)
        if not items:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: tuple[str, ...] = items
        super().__init__("\n".join(items))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[tuple[str, ...]]]:
        return (type(self), (self.problems,))


# --- durations -------------------------------------------------------------------------------

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_SECONDS = re.compile(rf"[+-]?{_NUMBER}")
_DURATION = re.compile(rf"[+-]?(?:{_NUMBER}(?:ms|s|m|h))+")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HELP = "use seconds or a duration such as 500ms, 2s, 5m, 1h, 1h30m"


def _short(value: object) -> str:
    """repr() capped in length, for echoing a bad (non-secret) value back in a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: object) -> float:
    """Turn "500ms", "2s", "5m", "1h30m", a number of seconds or a timedelta into seconds.

    Raises ValueError (negative, non-finite or malformed), so pydantic reports it at the key.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, not a boolean; {_DURATION_HELP}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _BARE_SECONDS.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(
                float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
            )
            if text.startswith("-"):
                seconds = -seconds
        else:
            raise ValueError(f"invalid duration {_short(value)}: {_DURATION_HELP}")
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}; {_DURATION_HELP}")
    if not math.isfinite(seconds):
        raise ValueError("duration must be finite")
    if seconds < 0:
        raise ValueError(f"duration must not be negative (got {_short(value)})")
    return seconds


def _positive(seconds: float) -> float:
    """Reject zero for intervals and timeouts, where zero would mean a busy loop."""
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a user would write them ("15s", "1h30m", "500ms")."""
    if seconds < 1 and seconds != 0:
        millis = seconds * 1000
        return f"{millis:g}ms"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


# Seconds as a float; accepts "500ms", "2s", "5m", "1h", "1h30m", numbers and timedeltas.
Duration = Annotated[float, BeforeValidator(parse_duration)]
# A Duration that must be greater than zero (intervals, timeouts).
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


# --- small reusable field types --------------------------------------------------------------


def _no_bool(value: object) -> object:
    """YAML turns yes/no/on/off into booleans; never let one pass silently as 1 or 0."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


def _numeric_id(value: object) -> str:
    """Graph IDs are digit strings; YAML may hand us an int, which we turn back into one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return value.strip()
    raise ValueError(f"must be a numeric ID (digits only), got {_short(value)}")


def _registration_cap(value: object) -> object:
    """Accept "auto" or an integer >= 1, with one clear message instead of a union's two."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value)
    if number is None or number < 1:
        raise ValueError(f'must be "auto" or an integer >= 1, got {_short(value)}')
    return number


def _file_path(value: object) -> object:
    """An empty path would silently mean the current directory."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty (use null to unset)")
    return value


def _lower(value: object) -> object:
    """Accept INFO / Json from environment variables as well as lowercase."""
    return value.strip().lower() if isinstance(value, str) else value


_Int = Annotated[int, BeforeValidator(_no_bool)]
_Float = Annotated[float, BeforeValidator(_no_bool)]
NumericId = Annotated[str, BeforeValidator(_numeric_id)]
RegistrationCap = Annotated[Literal["auto"] | int, BeforeValidator(_registration_cap)]
_FilePath = Annotated[Path, BeforeValidator(_file_path)]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


# --- sections --------------------------------------------------------------------------------


class GraphSettings(BaseModel):
    """How to reach the Graph API and how hard to push it."""

    model_config = _FROZEN

    base_url: str = Field(
        "https://graph.facebook.com", description="Graph API root (http or https)."
    )
    api_version: str = Field("v24.0", description="Graph API version, like v24.0.")
    access_token_file: _FilePath | None = Field(
        None, description=f"File holding the access token; else {ACCESS_TOKEN_ENV}."
    )
    app_secret_file: _FilePath | None = Field(
        None, description=f"File holding the app secret (optional); else {APP_SECRET_ENV}."
    )
    app_id: NumericId | None = Field(
        None,
        description="Meta app ID; with the app secret it lets the monitor read the token's "
        "expiry from /debug_token.",
    )
    concurrency: _Int = Field(16, ge=1, le=512, description="Max Graph requests in flight.")
    timeout: PositiveDuration = Field(15.0, description="Timeout of one request.")
    max_retries: _Int = Field(3, ge=0, le=10, description="Retries of transient errors.")
    page_limit: _Int = Field(100, ge=1, le=100, description="Items per page on list edges.")
    max_throttle_wait: Duration = Field(
        60.0, description="Longest in-line wait when throttled; longer waits give up until later."
    )
    per_number_fill: bool = Field(
        True, description="Read single numbers for fields the list edge did not return."
    )
    budget_share: _Float = Field(
        0.5, ge=0, le=1,
        description="Share of each WABA's hourly Graph allowance (200, or 5,000 with a "
        "registered number) the monitor may spend; polls slow down to stay under it. "
        "0 turns this pacing off (usage-header slow-down and throttle waits remain).",
    )
    usage_slowdown_threshold: _Float = Field(
        0.75, gt=0, le=1,
        description="X-Business-Use-Case-Usage ratio above which a WABA is polled less often.",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        """Catch typos early; the value is not echoed because it might carry credentials."""
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://graph.facebook.com")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        return url

    @field_validator("api_version")
    @classmethod
    def _check_api_version(cls, value: str) -> str:
        """A wrong version string would make every request fail at run time."""
        if not re.fullmatch(r"v\d+\.\d+", value):
            raise ValueError(f"must look like v24.0 (^v\\d+\\.\\d+$), got {_short(value)}")
        return value


class BusinessSettings(BaseModel):
    """One business portfolio to watch, and which of its WABAs."""

    model_config = _FROZEN

    id: NumericId = Field(description="Business portfolio ID.")
    wabas: tuple[NumericId, ...] | None = Field(
        None, description="WABA IDs to poll; absent means discover them."
    )
    registration_cap: RegistrationCap = Field(
        "auto", description='"auto" or the number of phone numbers the business may register.'
    )
    discover: tuple[Literal["owned", "client"], ...] = Field(
        ("owned", "client"), description="Discovery edges used when wabas is absent."
    )

    @field_validator("wabas")
    @classmethod
    def _check_wabas(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """An empty list is ambiguous (nothing? everything?), so it is refused."""
        if value is not None and not value:
            raise ValueError("empty list: omit wabas to discover WABAs, or list at least one")
        return value

    @field_validator("discover")
    @classmethod
    def _check_discover(
        cls, value: tuple[Literal["owned", "client"], ...]
    ) -> tuple[Literal["owned", "client"], ...]:
        """Discovery with no edge would silently watch nothing."""
        if not value:
            raise ValueError("must name at least one of owned, client")
        if len(set(value)) != len(value):
            raise ValueError("lists an edge twice")
        return value

    @model_validator(mode="after")
    def _discover_needs_no_wabas(self) -> BusinessSettings:
        """Setting discover next to wabas would do nothing, which is surely not what was meant."""
        if self.wabas is not None and "discover" in self.model_fields_set:
            raise ValueError("discover is only used when wabas is absent; remove one of them")
        return self

    @property
    def configured_cap(self) -> int | None:
        """The registration cap as an int, or None for "auto"."""
        return None if self.registration_cap == "auto" else self.registration_cap


class ScheduleSettings(BaseModel):
    """How often to poll and to rediscover WABAs."""

    model_config = _FROZEN

    scan_interval: PositiveDuration = Field(60.0, description="Time between polls of one WABA.")
    jitter: _Float = Field(
        0.1, ge=0, le=1, description="Random spread of polls, as a fraction of the interval."
    )
    discovery_interval: PositiveDuration = Field(
        900.0, description="Time between WABA discoveries and business verification reads."
    )
    token_check_interval: PositiveDuration = Field(
        3600.0,
        description="Time between /debug_token reads (needs graph.app_id and the app secret).",
    )


_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LISTEN_HELP = "must be host:port, e.g. 0.0.0.0:9877 or [::]:9877"


def _split_listen(value: str) -> tuple[str, int]:
    """Split host:port (IPv6 in brackets); raises ValueError with an operator-facing message."""
    bracketed = re.fullmatch(r"\[([^\]]*)\]:([0-9]+)", value)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{_LISTEN_HELP}, got {_short(value)}")
        if ":" in host:
            raise ValueError(
                f"IPv6 addresses must be in brackets, e.g. [::]:9877, got {_short(value)}"
            )
        labels = host.rstrip(".").split(".")
        if labels[-1].isdigit():
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not a valid IPv4 address") from None
        elif len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"{_short(host)} is not a valid host name or address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {_short(port_text)}")
    return host, int(port_text)


class ServerSettings(BaseModel):
    """Where the /metrics (and later webhook) HTTP server listens."""

    model_config = _FROZEN

    listen: str = Field(
        "0.0.0.0:9877",  # all interfaces: Prometheus scrapes from another host
        description="host:port to listen on; IPv6 as [::]:9877; port 0 picks a free port.",
    )

    web_config_file: _FilePath | None = Field(
        None,
        description="TLS and basic-auth/bearer protection, in Prometheus exporter-toolkit "
        "web.yml format (plus bearer_tokens: SHA-256 digests).",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        """Parse once at load, so that .host and .port cannot fail later."""
        value = value.strip()
        _split_listen(value)
        return value

    @property
    def host(self) -> str:
        """Host to bind, without IPv6 brackets (what socket and aiohttp expect)."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Port to bind."""
        return _split_listen(self.listen)[1]


class WebhookSettings(BaseModel):
    """Meta webhook receiver on the daemon's own server."""

    model_config = _FROZEN

    path: str = Field("/webhooks/whatsapp", description="URL path Meta posts webhooks to.")
    verify_token_file: _FilePath | None = Field(
        None,
        description=f"File holding the webhook verify token; else {WEBHOOK_VERIFY_TOKEN_ENV}.",
    )
    max_body_bytes: _Int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="Largest webhook body accepted."
    )
    repoll_delay: Duration = Field(
        2.0, description="Debounce before a webhook-triggered re-poll of a WABA."
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or any(ch.isspace() for ch in value) or "?" in value:
            raise ValueError("must be an absolute URL path such as /webhooks/whatsapp")
        reserved = ("/metrics", "/-/", "/api/")
        if value == "/" or any(value.startswith(r) for r in reserved):
            raise ValueError("must not clash with /, /metrics, /-/ or /api/")
        return value


def _shard(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return _no_bool(value)


class ShardingSettings(BaseModel):
    """Horizontal sharding: this replica watches the businesses whose id hashes to it."""

    model_config = _FROZEN

    shard: Annotated[Literal["auto"] | int, BeforeValidator(_shard)] = Field(
        0,
        description="This replica's ordinal, or auto to take it from a pod name ending in -N "
        "(HOSTNAME, as a StatefulSet sets it).",
    )
    total_shards: _Int = Field(1, ge=1, le=10_000, description="How many replicas share work.")
    peers: str | tuple[str, ...] | None = Field(
        None,
        description="Where the other shards listen, so a webhook that reached the wrong shard "
        "is passed on: a URL template with {shard} (e.g. http://waba-monitor-{shard}."
        "waba-monitor-shards:9877) or a list of URLs by ordinal.",
    )

    @field_validator("peers")
    @classmethod
    def _check_peers(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        urls = [value] if isinstance(value, str) else list(value or ())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"peer URLs must start with http:// or https://, got {url!r}")
        if isinstance(value, str) and "{shard}" not in value:
            raise ValueError("a peer URL template must contain {shard}")
        return value

    def peer_url(self, ordinal: int) -> str | None:
        """Base URL of shard ``ordinal``, or None when peers are not configured."""
        if isinstance(self.peers, str):
            return self.peers.replace("{shard}", str(ordinal)).rstrip("/")
        if self.peers and ordinal < len(self.peers):
            return self.peers[ordinal].rstrip("/")
        return None

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardingSettings:
        if isinstance(self.shard, int) and not 0 <= self.shard < self.total_shards:
            raise ValueError(
                f"shard must be from 0 to total_shards - 1 ({self.total_shards - 1}), "
                f"got {self.shard}"
            )
        return self


class MetricsSettings(BaseModel):
    """Cardinality control for very large fleets."""

    model_config = _FROZEN

    enum_mode: Annotated[Literal["full", "compact"], BeforeValidator(_lower)] = Field(
        "full",
        description="full: every enum as a StateSet (each known value 0/1); compact: the "
        "current value only (one series per enum per number).",
    )
    include: tuple[str, ...] = Field(
        (), description="Data metric families to serve (names or shell globs); empty = all."
    )
    exclude: tuple[str, ...] = Field(
        (), description="Data metric families never to serve (names or shell globs)."
    )

    @field_validator("include", "exclude")
    @classmethod
    def _known_families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitor.exposition import FAMILY_NAMES

        for pattern in value:
            if not fnmatch.filter(FAMILY_NAMES, pattern):
                raise ValueError(f"{pattern!r} matches no metric family the monitor exports")
        return value

    def families(self) -> frozenset[str] | None:
        from monitor.exposition import FAMILY_NAMES

        if not self.include and not self.exclude:
            return None
        chosen = {n for n in FAMILY_NAMES
                  if not self.include or any(fnmatch.fnmatch(n, p) for p in self.include)}
        return frozenset(n for n in chosen
                         if not any(fnmatch.fnmatch(n, p) for p in self.exclude))


class StateSettings(BaseModel):
    """Where learned caps, the last snapshot and the transition history survive restarts."""

    model_config = _FROZEN

    directory: _FilePath | None = Field(
        Path("./state"),
        description="Directory of the embedded SQLite state file; null keeps state in memory.",
    )
    history_retention: PositiveDuration = Field(
        30 * 86400.0, description="How long transitions are kept."
    )


class LoggingSettings(BaseModel):
    """Log verbosity and rendering."""

    model_config = _FROZEN

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = Field(
        "info", description="debug, info, warning or error."
    )
    format: Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)] = Field(
        "auto", description="auto (json unless stderr is a TTY), json or console."
    )


def _lenient_id(value: object) -> str | None:
    """The ID if it is one, else None: conflicts are checked even where IDs are invalid."""
    try:
        return _numeric_id(value)
    except ValueError:
        return None


def _conflicts(
    businesses: Iterable[tuple[object, object]],
) -> list[tuple[tuple[int | str, ...], str]]:
    """Duplicate business IDs and WABAs listed twice, as (location under businesses, message).

    Works on raw (id, wabas) pairs too, so that a file with a bad entry still gets every clash
    reported in the same run.
    """
    found: list[tuple[tuple[int | str, ...], str]] = []
    first_id: dict[str, int] = {}
    first_waba: dict[str, str] = {}
    for index, (raw_id, raw_wabas) in enumerate(businesses):
        business_id = _lenient_id(raw_id)
        if business_id is not None and business_id in first_id:
            found.append(
                (
                    (index, "id"),
                    f"duplicate business id {business_id} "
                    f"(also businesses[{first_id[business_id]}].id)",
                )
            )
        elif business_id is not None:
            first_id[business_id] = index
        wabas = raw_wabas if isinstance(raw_wabas, list | tuple) else ()
        for waba_index, raw_waba in enumerate(wabas):
            waba = _lenient_id(raw_waba)
            here = f"businesses[{index}].wabas[{waba_index}]"
            if waba is not None and waba in first_waba:
                found.append(
                    (
                        (index, "wabas", waba_index),
                        f"WABA {waba} is also listed at {first_waba[waba]}; "
                        "a WABA belongs to one business",
                    )
                )
            elif waba is not None:
                first_waba[waba] = here
    return found


# --- the whole configuration -----------------------------------------------------------------


class Settings(BaseSettings):
    """The validated, immutable configuration of one daemon.

    Built by :func:`load_settings` (file + environment). Constructing ``Settings(...)``
    directly validates exactly the keyword arguments given and reads no environment, which is
    what tests of other modules want.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_ignore_empty=True,
        env_parse_none_str="null",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    graph: GraphSettings = Field(default_factory=GraphSettings)
    businesses: tuple[BusinessSettings, ...] = Field(
        description=f"At least one business; from the environment as a JSON list in "
        f"{ENV_PREFIX}BUSINESSES."
    )
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    sharding: ShardingSettings = Field(default_factory=ShardingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Direct construction reads nothing implicit; load_settings passes its own sources."""
        return (init_settings,)

    @field_validator("businesses", mode="before")
    @classmethod
    def _businesses_present(cls, value: object) -> object:
        """`businesses:` with nothing under it parses as null; say what is wrong in words."""
        if value is None:
            raise ValueError("must list at least one business")
        return value

    @field_validator("businesses")
    @classmethod
    def _check_businesses(cls, value: tuple[BusinessSettings, ...]) -> tuple[BusinessSettings, ...]:
        """IDs must be unique and a WABA may belong to one business only; report every clash."""
        if not value:
            raise ValueError("must list at least one business")
        conflicts = _conflicts((business.id, business.wabas) for business in value)
        if conflicts:
            # Raised as a ValidationError so that each clash keeps its own location.
            raise ValidationError.from_exception_data(
                "businesses",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(_CONFLICT, "{message}", {"message": message}),
                        loc=loc,
                        input=None,
                    )
                    for loc, message in conflicts
                ],
            )
        return value

    @property
    def business_ids(self) -> tuple[str, ...]:
        """Configured business IDs, in file order."""
        return tuple(business.id for business in self.businesses)


# --- loading ---------------------------------------------------------------------------------

_SECTIONS = tuple(Settings.model_fields)


class _Invalid:
    """Stands in for an environment value that was not valid JSON (already reported)."""


_INVALID = _Invalid()


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' env source, over a given mapping, collecting JSON errors as problems."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []
        self.invalid_fields: set[str] = set()
        self._data: dict[str, Any] | None = None
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """The given mapping instead of os.environ, so callers and tests choose the env."""
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """Bad JSON becomes a reported problem instead of an exception that hides the others."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            where = (
                f" ({exc.msg} at line {exc.lineno}, column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            variable = _env_name(field_name)
            self.problems.append(f"{field_name}: {variable} is not valid JSON{where}")
            self.invalid_fields.add(field_name)
            return _INVALID

    def __call__(self) -> dict[str, Any]:
        """Computed once: load_settings reads it too, and problems must not be recorded twice."""
        if self._data is None:
            data = super().__call__()
            self._data = {key: value for key, value in data.items() if value is not _INVALID}
        return self._data


def _env_name(*keys: str) -> str:
    """The override variable for a key path, e.g. WABA_MONITOR_GRAPH__TIMEOUT."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(key.upper() for key in keys)


def _config_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Prefixed, non-empty variables, lowercased like pydantic-settings does, minus secrets."""
    secrets = {name.lower() for name in SECRET_ENV_VARS}
    prefix = ENV_PREFIX.lower()
    return {
        name.lower(): value
        for name, value in environ.items()
        if name.lower().startswith(prefix) and value != "" and name.lower() not in secrets
    }


# Kubernetes injects <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_9877_TCP_ADDR and friends for
# every Service in the namespace; a Service named waba-monitor-state must not stop the daemon.
_SERVICE_LINK = re.compile(
    r"_(service_host|service_port(_[a-z0-9_]+)?|port(_\d+_(tcp|udp|sctp)(_(proto|port|addr))?)?)$"
)


def _check_env_names(config_env: Mapping[str, str]) -> list[str]:
    """Catch override variables that pydantic-settings would silently ignore."""
    problems: list[str] = []
    for name in sorted(config_env):
        rest = name[len(ENV_PREFIX) :]
        if ENV_NESTED_DELIMITER not in rest and _SERVICE_LINK.search(rest):
            continue
        shown = name.upper()
        if ENV_NESTED_DELIMITER in rest:
            section, _, key = rest.partition(ENV_NESTED_DELIMITER)
            if section not in _SECTIONS:
                problems.append(
                    f"{shown}: unknown section {section!r} (sections: {', '.join(_SECTIONS)})"
                )
            elif section == "businesses":
                problems.append(
                    f"{shown}: businesses can only be set as a whole, "
                    f"as a JSON list in {_env_name('businesses')}"
                )
            elif ENV_NESTED_DELIMITER in key:
                problems.append(f"{shown}: too deeply nested; use {_env_name(section, 'KEY')}")
        elif rest not in _SECTIONS:
            for section in _SECTIONS:
                if rest.startswith(section + "_"):
                    hint = _env_name(section, rest[len(section) + 1 :])
                    problems.append(f"{shown}: not a config variable; did you mean {hint}?")
                    break
            # Anything else with the prefix is left alone: it may belong to another tool.
    return problems


def _format_loc(loc: tuple[int | str, ...]) -> str:
    """("businesses", 1, "wabas", 0) -> "businesses[1].wabas[0]", as operators write it."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "config"


def _env_origin(
    loc: tuple[int | str, ...], config_env: Mapping[str, str], env_data: Mapping[str, Any]
) -> str | None:
    """The environment variable that supplied the value at loc, if one did."""
    keys: list[str] = []
    found: str | None = None
    node: object = env_data
    for part in loc:
        if not isinstance(part, str) or not isinstance(node, Mapping):
            break  # inside a list (businesses): the whole list came from one variable
        if part not in node:
            return None  # this key came from the file, even if a sibling came from env
        node = node[part]
        keys.append(part)
        if _env_name(*keys).lower() in config_env:
            found = _env_name(*keys)
    return found


_SECRET_KEY_HINTS: dict[tuple[str, ...], str] = {
    ("graph", "access_token"): f"use graph.access_token_file or {ACCESS_TOKEN_ENV}",
    ("graph", "app_secret"): f"use graph.app_secret_file or {APP_SECRET_ENV}",
}


def _message(error: ErrorDetails) -> str:
    """pydantic's message in config words; never the input value, which may be a secret."""
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _SECRET_KEY_HINTS.get(tuple(str(part) for part in error["loc"]))
        if hint:
            return f"unknown key (secrets are not configuration values; {hint})"
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _line(
    loc: tuple[int | str, ...],
    message: str,
    config_env: Mapping[str, str],
    env_data: Mapping[str, Any],
) -> str:
    """One "<path>: <message>" line, naming the environment variable if one set the value."""
    origin = _env_origin(loc, config_env, env_data)
    return f"{_format_loc(loc)}: {message}" + (f" (from {origin})" if origin else "")


def _problems(
    exc: ValidationError,
    config_env: Mapping[str, str],
    env_data: Mapping[str, Any],
    skip: set[str],
    raw_businesses: object,
) -> list[str]:
    """Every pydantic error as a line, plus the business clashes pydantic could not reach."""
    errors = exc.errors(include_url=False, include_input=False)
    problems = [
        _line(error["loc"], _message(error), config_env, env_data)
        for error in errors
        # A field whose env variable was not valid JSON is already reported.
        if not (error["loc"] and error["loc"][0] in skip)
    ]
    checked = any(error["type"] == _CONFLICT for error in errors)
    if not checked and "businesses" not in skip and isinstance(raw_businesses, list | tuple):
        # The after-validator did not run because an entry is invalid: check the raw input.
        pairs = (
            (item.get("id"), item.get("wabas")) if isinstance(item, Mapping) else (None, None)
            for item in raw_businesses
        )
        problems += [
            _line(("businesses", *loc), message, config_env, env_data)
            for loc, message in _conflicts(pairs)
        ]
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which YAML would otherwise silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it below
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {_short(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; every failure becomes a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # Only the parser's own words and position: the offending line might hold a secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{path}: invalid YAML at {where}{what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections "
            f"({', '.join(_SECTIONS)}), not a {type(data).__name__}"
        )
    # An empty section (`graph:` with everything commented out) means "all defaults".
    return {
        key: value
        for key, value in data.items()
        if not (value is None and key in _SECTIONS and key != "businesses")
    }


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file, apply WABA_MONITOR_* overrides and validate everything once.

    Raises ConfigError listing every problem found (file, environment and values together).
    """
    environ = os.environ if environ is None else environ
    data = _read_yaml(Path(path))
    config_env = _config_env(environ)
    problems = _check_env_names(config_env)
    env_source = _EnvSource(Settings, environ)
    file_source = InitSettingsSource(Settings, init_kwargs=data)
    env_data: dict[str, Any] = {}
    try:
        env_data = env_source()
        settings = Settings(_build_sources=((env_source, file_source), {}))
    except ValidationError as exc:
        raw_businesses = env_data.get("businesses", data.get("businesses"))
        problems += env_source.problems
        problems += _problems(exc, config_env, env_data, env_source.invalid_fields, raw_businesses)
        raise ConfigError(problems) from None
    except SettingsError as exc:  # anything else the env source could not turn into values
        raise ConfigError([*problems, f"environment: {exc}"]) from None
    problems += env_source.problems
    if problems:
        raise ConfigError(problems)
    return settings


# --- secrets ---------------------------------------------------------------------------------


def _read_secret_file(path: Path, key: str) -> str:
    """The file's stripped content; errors name the key and the path, never the content."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{key}: cannot read {path}: {reason}") from None
    if len(raw) > _MAX_SECRET_BYTES:
        raise ConfigError(f"{key}: {path} is larger than 64 KiB; expected a single secret")
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not valid UTF-8 text") from None
    if not secret:
        raise ConfigError(f"{key}: {path} is empty")
    if any(char.isspace() for char in secret):
        raise ConfigError(f"{key}: {path} contains whitespace; expected a single secret")
    return secret


def _env_secret(name: str, environ: Mapping[str, str]) -> str | None:
    """The stripped variable, None if unset or empty (as for config overrides)."""
    secret = environ.get(name, "").strip()
    if not secret:
        return None
    if any(char.isspace() for char in secret):
        raise ConfigError(f"{name}: contains whitespace; expected a single secret")
    return secret


def resolve_access_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The Graph access token: graph.access_token_file if set, else WABA_MONITOR_ACCESS_TOKEN."""
    environ = os.environ if environ is None else environ
    if settings.graph.access_token_file is not None:
        return _read_secret_file(settings.graph.access_token_file, "graph.access_token_file")
    token = _env_secret(ACCESS_TOKEN_ENV, environ)
    if token is None:
        raise ConfigError(
            "graph.access_token_file: no access token: "
            f"set graph.access_token_file or {ACCESS_TOKEN_ENV}"
        )
    return token


def resolve_app_secret(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The app secret: graph.app_secret_file if set, else WABA_MONITOR_APP_SECRET, else None."""
    environ = os.environ if environ is None else environ
    if settings.graph.app_secret_file is not None:
        return _read_secret_file(settings.graph.app_secret_file, "graph.app_secret_file")
    return _env_secret(APP_SECRET_ENV, environ)


def resolve_webhook_verify_token(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> str | None:
    """webhooks.verify_token_file if set, else WABA_MONITOR_WEBHOOK_VERIFY_TOKEN, else None."""
    environ = os.environ if environ is None else environ
    if settings.webhooks.verify_token_file is not None:
        return _read_secret_file(settings.webhooks.verify_token_file, "webhooks.verify_token_file")
    return _env_secret(WEBHOOK_VERIFY_TOKEN_ENV, environ)


# --- documentation ---------------------------------------------------------------------------


def _render_default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and any(
        isinstance(m, BeforeValidator) and m.func is parse_duration for m in field.metadata
    ):
        return format_duration(default)
    if isinstance(default, tuple):
        return "[" + ", ".join(str(item) for item in default) + "]"
    return str(default)


def env_reference() -> str:
    """A Markdown table of every key, its environment variable, default and meaning.

    Generated from the models so that the README cannot drift from the code.
    """
    rows = ["| key | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for section, section_field in Settings.model_fields.items():
        annotation = section_field.annotation
        if section == "businesses":
            rows.append(
                f"| businesses | `{_env_name(section)}` (JSON list) | required | "
                "At least one business portfolio. |"
            )
            for key, field in BusinessSettings.model_fields.items():
                rows.append(
                    f"| businesses[].{key} | (inside the JSON list) | "
                    f"{_render_default(field)} | {field.description} |"
                )
            continue
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        for key, field in annotation.model_fields.items():
            rows.append(
                f"| {section}.{key} | `{_env_name(section, key)}` | "
                f"{_render_default(field)} | {field.description} |"
            )
    rows += [
        f"| (secret) | `{ACCESS_TOKEN_ENV}` | | Access token, when graph.access_token_file "
        "is not set. |",
        f"| (secret) | `{APP_SECRET_ENV}` | | App secret, when graph.app_secret_file is not set. |",
        f"| (secret) | `{WEBHOOK_VERIFY_TOKEN_ENV}` | | Reserved for the webhook receiver. |",
    ]
    return "\n".join(rows) + "\n"
