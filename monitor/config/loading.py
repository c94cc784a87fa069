"""Loading: one YAML file plus WABA_MONITOR_* overrides, validated once into Settings.

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
3. Defaults; ``state.directory`` defaults to ``$XDG_STATE_HOME/waba-monitor``, else
   ``~/.local/state/waba-monitor``, read from the same environment mapping.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from monitor.config.context import CONTEXT_ENVIRON, CONTEXT_FAMILY_NAMES, validation_context
from monitor.config.errors import ConfigError
from monitor.config.schema import (
    CONFLICT,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    SECTIONS,
    Settings,
    env_name,
)
from monitor.config.secrets import ACCESS_TOKEN_ENV, APP_SECRET_ENV, SECRET_ENV_VARS
from monitor.config.types import conflicts, short

__all__ = ["load_settings", "read_yaml"]


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
            variable = env_name(field_name)
            self.problems.append(f"{field_name}: {variable} is not valid JSON{where}")
            self.invalid_fields.add(field_name)
            return _INVALID

    def __call__(self) -> dict[str, Any]:
        """Computed once: load_settings reads it too, and problems must not be recorded twice."""
        if self._data is None:
            data = super().__call__()
            self._data = {key: value for key, value in data.items() if value is not _INVALID}
        return self._data


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
            if section not in SECTIONS:
                problems.append(
                    f"{shown}: unknown section {section!r} (sections: {', '.join(SECTIONS)})"
                )
            elif section == "businesses":
                problems.append(
                    f"{shown}: businesses can only be set as a whole, "
                    f"as a JSON list in {env_name('businesses')}"
                )
            elif ENV_NESTED_DELIMITER in key:
                problems.append(f"{shown}: too deeply nested; use {env_name(section, 'KEY')}")
        elif rest not in SECTIONS:
            for section in SECTIONS:
                if rest.startswith(section + "_"):
                    hint = env_name(section, rest[len(section) + 1 :])
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
        if env_name(*keys).lower() in config_env:
            found = env_name(*keys)
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
    checked = any(error["type"] == CONFLICT for error in errors)
    if not checked and "businesses" not in skip and isinstance(raw_businesses, list | tuple):
        # The after-validator did not run because an entry is invalid: check the raw input.
        pairs = (
            (item.get("id"), item.get("wabas")) if isinstance(item, Mapping) else (None, None)
            for item in raw_businesses
        )
        problems += [
            _line(("businesses", *loc), message, config_env, env_data)
            for loc, message in conflicts(pairs)
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
                    f"found duplicate key {short(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
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
            f"({', '.join(SECTIONS)}), not a {type(data).__name__}"
        )
    # An empty section (`graph:` with everything commented out) means "all defaults".
    return {
        key: value
        for key, value in data.items()
        if not (value is None and key in SECTIONS and key != "businesses")
    }


def load_settings(
    path: Path,
    environ: Mapping[str, str] | None = None,
    *,
    family_names: Collection[str] | None = None,
) -> Settings:
    """Read the YAML file, apply WABA_MONITOR_* overrides and validate everything once.

    ``family_names`` are the metric families ``metrics.include``/``exclude`` may match; the
    caller passes them so that this package depends on nothing else in ``monitor`` (None skips
    that check). ``environ`` (default: the process's) also supplies the default
    ``state.directory``. Raises ConfigError listing every problem found (file, environment
    and values together).
    """
    environ = os.environ if environ is None else environ
    data = read_yaml(Path(path))
    config_env = _config_env(environ)
    problems = _check_env_names(config_env)
    env_source = _EnvSource(Settings, environ)
    file_source = InitSettingsSource(Settings, init_kwargs=data)
    context = {
        CONTEXT_ENVIRON: environ,
        CONTEXT_FAMILY_NAMES: None if family_names is None else tuple(family_names),
    }
    env_data: dict[str, Any] = {}
    try:
        env_data = env_source()
        with validation_context(context):
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


