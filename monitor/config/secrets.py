"""Secrets: read from files or from their own environment variables, never from the YAML.

The variable names share the ``WABA_MONITOR_`` prefix but are not configuration keys, so the
loader must never report them as unknown (hence :data:`SECRET_ENV_VARS`). Errors name the key
and the file, never the secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config.errors import ConfigError

if TYPE_CHECKING:  # the schema imports the variable names from here
    from monitor.config.schema import Settings

__all__ = [
    "ACCESS_TOKEN_ENV",
    "APP_SECRET_ENV",
    "SECRET_ENV_VARS",
    "WEBHOOK_VERIFY_TOKEN_ENV",
    "read_secret_file",
    "resolve_access_token",
    "resolve_app_secret",
    "resolve_webhook_verify_token",
]

# Names of variables, not secrets (hence the noqa).
ACCESS_TOKEN_ENV = "WABA_MONITOR_ACCESS_TOKEN"  # noqa: S105
APP_SECRET_ENV = "WABA_MONITOR_APP_SECRET"  # noqa: S105
WEBHOOK_VERIFY_TOKEN_ENV = "WABA_MONITOR_WEBHOOK_VERIFY_TOKEN"  # noqa: S105
# Secret variables share the prefix but are not config keys; they must never be rejected.
SECRET_ENV_VARS = frozenset({ACCESS_TOKEN_ENV, APP_SECRET_ENV, WEBHOOK_VERIFY_TOKEN_ENV})

_MAX_SECRET_BYTES = 64 * 1024  # a token file larger than this is surely the wrong file


def read_secret_file(path: Path, key: str) -> str:
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
        return read_secret_file(settings.graph.access_token_file, "graph.access_token_file")
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
        return read_secret_file(settings.graph.app_secret_file, "graph.app_secret_file")
    return _env_secret(APP_SECRET_ENV, environ)


def resolve_webhook_verify_token(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> str | None:
    """webhooks.verify_token_file if set, else WABA_MONITOR_WEBHOOK_VERIFY_TOKEN, else None."""
    environ = os.environ if environ is None else environ
    if settings.webhooks.verify_token_file is not None:
        return read_secret_file(settings.webhooks.verify_token_file, "webhooks.verify_token_file")
    return _env_secret(WEBHOOK_VERIFY_TOKEN_ENV, environ)
