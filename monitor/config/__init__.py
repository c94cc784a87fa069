"""Configuration: one YAML file, environment overrides, validated once into frozen settings.

The package is self-contained: nothing here imports anything else from ``monitor`` (callers
pass what it must know, such as the metric family names, to :func:`load_settings`).

- :mod:`.types`: value types and validators (durations, IDs, listen addresses, paths).
- :mod:`.schema`: the settings models, one per section, and ``Settings``.
- :mod:`.loading`: YAML, environment overrides, one error line per bad key, ``load_settings``.
- :mod:`.secrets`: the access token, app secret and verify token, from files or variables.
- :mod:`.reference`: the README's table of keys and variables.
- :mod:`.context`: what callers pass to validation; :mod:`.errors`: ``ConfigError``.
"""

from __future__ import annotations

from monitor.config.errors import ConfigError
from monitor.config.loading import load_settings
from monitor.config.reference import env_reference
from monitor.config.schema import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    BusinessSettings,
    GraphSettings,
    LoggingSettings,
    MetricsSettings,
    ScheduleSettings,
    ServerSettings,
    Settings,
    ShardingSettings,
    StateSettings,
    WebhookSettings,
)
from monitor.config.secrets import (
    ACCESS_TOKEN_ENV,
    APP_SECRET_ENV,
    SECRET_ENV_VARS,
    WEBHOOK_VERIFY_TOKEN_ENV,
    resolve_access_token,
    resolve_app_secret,
    resolve_webhook_verify_token,
)
from monitor.config.types import (
    Duration,
    NumericId,
    PositiveDuration,
    RegistrationCap,
    default_state_directory,
    format_duration,
    parse_duration,
)

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
    "MetricsSettings",
    "NumericId",
    "PositiveDuration",
    "RegistrationCap",
    "ScheduleSettings",
    "ServerSettings",
    "Settings",
    "ShardingSettings",
    "StateSettings",
    "WebhookSettings",
    "default_state_directory",
    "env_reference",
    "format_duration",
    "load_settings",
    "parse_duration",
    "resolve_access_token",
    "resolve_app_secret",
    "resolve_webhook_verify_token",
]
