"""The settings models: one frozen pydantic model per section, and ``Settings`` for all.

Why frozen: a loaded configuration is shared by the poller, the scheduler and the web server;
a reload builds a new one instead of changing the old in place.

Two things depend on the caller, who passes them as a validation context (see
:mod:`monitor.config.context` and :func:`monitor.config.loading.load_settings`): the metric
family names that ``metrics.include``/``exclude`` may match (passed in, so that this package
imports nothing else from ``monitor``), and the environment that the default
``state.directory`` is read from.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.context import CONTEXT_ENVIRON, CONTEXT_FAMILY_NAMES, context_value
from monitor.config.secrets import ACCESS_TOKEN_ENV, APP_SECRET_ENV, WEBHOOK_VERIFY_TOKEN_ENV
from monitor.config.types import (
    ApiVersion,
    BaseUrl,
    CallbackUrl,
    Duration,
    FilePath,
    Float,
    Int,
    ListenAddress,
    NumericId,
    Peers,
    PositiveDuration,
    RegistrationCap,
    ShardOrdinal,
    WebhookPath,
    conflicts,
    default_state_directory,
    lower,
    split_listen,
)

__all__ = [
    "CONFLICT",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "SECTIONS",
    "BusinessSettings",
    "GraphSettings",
    "LoggingSettings",
    "MetricsSettings",
    "ScheduleSettings",
    "ServerSettings",
    "Settings",
    "ShardingSettings",
    "StateSettings",
    "WebhookSettings",
    "env_name",
    "state_directory_default",
]

ENV_PREFIX = "WABA_MONITOR_"
ENV_NESTED_DELIMITER = "__"
CONFLICT = "waba_config_conflict"  # pydantic error type of a business clash

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def env_name(*keys: str) -> str:
    """The override variable for a key path, e.g. WABA_MONITOR_GRAPH__TIMEOUT."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(key.upper() for key in keys)


def state_directory_default() -> Path:
    """Default state.directory: from the loader's environment, else the process's; not cwd."""
    environ: Mapping[str, str] | None = context_value(CONTEXT_ENVIRON)
    return default_state_directory(environ)


# --- sections --------------------------------------------------------------------------------


class GraphSettings(BaseModel):
    """How to reach the Graph API and how hard to push it."""

    model_config = _FROZEN

    base_url: BaseUrl = Field(
        "https://graph.facebook.com", description="Graph API root (http or https)."
    )
    api_version: ApiVersion = Field("v24.0", description="Graph API version, like v24.0.")
    access_token_file: FilePath | None = Field(
        None, description=f"File holding the access token; else {ACCESS_TOKEN_ENV}."
    )
    app_secret_file: FilePath | None = Field(
        None, description=f"File holding the app secret (optional); else {APP_SECRET_ENV}."
    )
    app_id: NumericId | None = Field(
        None,
        description="Meta app ID; with the app secret it lets the monitor read the token's "
        "expiry from /debug_token.",
    )
    concurrency: Int = Field(
        16, ge=1, le=512,
        description="Max Graph HTTP requests in flight (a batch call is one request).")
    timeout: PositiveDuration = Field(15.0, description="Timeout of one request.")
    max_retries: Int = Field(3, ge=0, le=10, description="Retries of transient errors.")
    page_limit: Int = Field(100, ge=1, le=100, description="Items per page on list edges.")
    max_throttle_wait: Duration = Field(
        60.0, description="Longest in-line wait on throttles in one poll of a WABA, all its "
        "retries together; a throttle that does not fit gives the poll up and the WABA sends "
        "nothing until its regain time."
    )
    batch_size: Int = Field(
        50, ge=1, le=50,
        description="GETs sent together in one Graph batch call (at most 50). Each still "
        "counts as one call against every rate limit: batching saves the monitor's CPU, not "
        "quota. 1 sends every GET alone; so does the monitor if the API refuses batches.",
    )
    batch_wait: Duration = Field(
        0.1, ge=0, le=5,
        description="How long a GET may wait for others to share its batch call.",
    )
    per_number_fill: bool = Field(
        True, description="Read single numbers for fields the list edge did not return."
    )
    budget_share: Float = Field(
        0.5, ge=0, le=1,
        description="Share of each WABA's hourly Graph allowance (200, or 5,000 with a "
        "registered number) the monitor may spend; polls slow down to stay under it. "
        "0 turns this pacing off (usage-header slow-down and throttle waits remain).",
    )
    usage_slowdown_threshold: Float = Field(
        0.75, gt=0, le=1,
        description="X-Business-Use-Case-Usage ratio above which a WABA is polled less often.",
    )


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
    require_identity_key_check: bool = Field(
        False, description="The business's numbers must have the identity change check on "
        "(WhatsAppIdentityKeyCheckDisabled warns for those that do not).",
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
    jitter: Float = Field(
        0.1, ge=0, le=1, description="Random spread of polls, as a fraction of the interval."
    )
    discovery_interval: PositiveDuration = Field(
        900.0, description="Time between WABA discoveries and business verification reads."
    )
    token_check_interval: PositiveDuration = Field(
        3600.0,
        description="Time between /debug_token reads (needs graph.app_id and the app secret).",
    )
    template_interval: Duration = Field(
        900.0, ge=0,
        description="Time between reads of each WABA's message templates; 0 turns them off.",
    )
    settings_interval: Duration = Field(
        86400.0, ge=0,
        description="Time between reads of each number's settings (identity key check), "
        "spread over the interval and paced in each WABA's budget; 0 turns them off.",
    )


class ServerSettings(BaseModel):
    """Where the /metrics (and later webhook) HTTP server listens."""

    model_config = _FROZEN

    listen: ListenAddress = Field(
        "0.0.0.0:9877",  # all interfaces: Prometheus scrapes from another host
        description="host:port to listen on; IPv6 as [::]:9877; port 0 picks a free port.",
    )

    web_config_file: FilePath | None = Field(
        None,
        description="TLS and basic-auth/bearer protection, in Prometheus exporter-toolkit "
        "web.yml format (plus bearer_tokens: SHA-256 digests).",
    )

    @property
    def host(self) -> str:
        """Host to bind, without IPv6 brackets (what socket and aiohttp expect)."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Port to bind."""
        return split_listen(self.listen)[1]


class WebhookSettings(BaseModel):
    """Meta webhook receiver on the daemon's own server."""

    model_config = _FROZEN

    path: WebhookPath = Field("/webhooks/whatsapp", description="URL path Meta posts webhooks to.")
    verify_token_file: FilePath | None = Field(
        None,
        description=f"File holding the webhook verify token; else {WEBHOOK_VERIFY_TOKEN_ENV}.",
    )
    max_body_bytes: Int = Field(
        3_145_728, ge=1024, le=64 * 1_048_576,
        description="Largest webhook body accepted (Meta sends up to 3 MB).",
    )
    repoll_delay: Duration = Field(
        2.0, description="Debounce before a webhook-triggered re-poll of a WABA."
    )
    expected_callback_url: CallbackUrl | None = Field(
        None,
        description="The callback URL every number's webhooks should reach (the daemon's, or "
        "the messaging backend's); compared with each number's effective URL, never logged.",
    )


class ShardingSettings(BaseModel):
    """Horizontal sharding: this replica watches the businesses whose id hashes to it."""

    model_config = _FROZEN

    shard: ShardOrdinal = Field(
        0,
        description="This replica's ordinal, or auto to take it from a pod name ending in -N "
        "(HOSTNAME, as a StatefulSet sets it).",
    )
    total_shards: Int = Field(1, ge=1, le=10_000, description="How many replicas share work.")
    peers: Peers = Field(
        None,
        description="Where the other shards listen, so a webhook that reached the wrong shard "
        "is passed on: a URL template with {shard} (e.g. http://waba-monitor-{shard}."
        "waba-monitor-shards:9877) or a list of URLs by ordinal.",
    )

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


class TemplatesSettings(BaseModel):
    """Message templates: thousands per WABA at large Solution Providers, so per-template
    series are exported only where they matter, by default."""

    model_config = _FROZEN

    series: Annotated[Literal["problems", "all", "none"], BeforeValidator(lower)] = Field(
        "problems",
        description="Per-template series: problems (not APPROVED, quality not GREEN/UNKNOWN, "
        "or a category change pending), all, or none; the per-WABA counts are always served.",
    )


class MetricsSettings(BaseModel):
    """Cardinality control for very large fleets."""

    model_config = _FROZEN

    enum_mode: Annotated[Literal["full", "compact"], BeforeValidator(lower)] = Field(
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
    def _known_families(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        """A pattern matching nothing is surely a typo; checked only when names are given."""
        names: Collection[str] | None = context_value(CONTEXT_FAMILY_NAMES, info)
        if names is None:
            return value
        for pattern in value:
            if not fnmatch.filter(names, pattern):
                raise ValueError(f"{pattern!r} matches no metric family the monitor exports")
        return value

    def families(self, names: Collection[str]) -> frozenset[str] | None:
        """The chosen ones among ``names`` (every family exported), or None for all."""
        if not self.include and not self.exclude:
            return None
        chosen = {n for n in names
                  if not self.include or any(fnmatch.fnmatch(n, p) for p in self.include)}
        return frozenset(n for n in chosen
                         if not any(fnmatch.fnmatch(n, p) for p in self.exclude))


class StateSettings(BaseModel):
    """Where learned caps, the last snapshot and the transition history survive restarts."""

    model_config = _FROZEN

    directory: FilePath | None = Field(
        default_factory=state_directory_default,
        description="Directory of the embedded SQLite state file; null keeps state in memory.",
    )
    history_retention: PositiveDuration = Field(
        30 * 86400.0, description="How long transitions are kept."
    )


class LoggingSettings(BaseModel):
    """Log verbosity and rendering."""

    model_config = _FROZEN

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(lower)] = Field(
        "info", description="debug, info, warning or error."
    )
    format: Annotated[Literal["auto", "json", "console"], BeforeValidator(lower)] = Field(
        "auto", description="auto (json unless stderr is a TTY), json or console."
    )


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
    templates: TemplatesSettings = Field(default_factory=TemplatesSettings)
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
        clashes = conflicts((business.id, business.wabas) for business in value)
        if clashes:
            # Raised as a ValidationError so that each clash keeps its own location.
            raise ValidationError.from_exception_data(
                "businesses",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(CONFLICT, "{message}", {"message": message}),
                        loc=loc,
                        input=None,
                    )
                    for loc, message in clashes
                ],
            )
        return value

    @property
    def business_ids(self) -> tuple[str, ...]:
        """Configured business IDs, in file order."""
        return tuple(business.id for business in self.businesses)




SECTIONS = tuple(Settings.model_fields)
