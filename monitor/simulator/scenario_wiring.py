"""Scenario keys for a number's security and message routing (issue 11), parsed strictly.

Kept apart from ``scenario.py`` (which calls in here) so that module stays small. The keys:

* per number: ``webhook_override`` (the number-level callback override URL),
  ``identity_key_check`` (the ``user_identity_change.enable_identity_key_check`` setting,
  default false) and ``onboarded_ago`` (a duration: ``last_onboarded_time`` is then that long
  before the World starts, so "recently onboarded" stays true whenever the demo runs);
* per WABA: ``subscribed_apps`` (the apps of ``GET /{WABA_ID}/subscribed_apps``; default: the
  scenario's own app alone) and ``refuse_subscribed_apps`` (that read fails);
* top level: ``app_name``, ``app_callback_url`` and ``settings_unsupported``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .scenario import (
    ScenarioError,
    WebhookTarget,
    _check_keys,
    _json_value,
    _list,
    _mapping,
    _node_error,
    _object_id,
    _string,
    freeze,
    parse_duration,
)

NUMBER_WIRING_KEYS = ("webhook_override", "identity_key_check", "onboarded_ago")
WABA_WIRING_KEYS = ("subscribed_apps", "refuse_subscribed_apps")
APP_KEYS = ("id", "name", "link", "override_callback_uri")
MAX_CALLBACK_LENGTH = 200  # Meta refuses a longer override_callback_uri (facts §5)

# Graph's answer to a subscribed_apps read the token may not make: the 403 example of Meta's
# OpenAPI for this path (code 200, subcode 1349174). Whether live Graph says exactly this is
# UNCONFIRMED.
DEFAULT_SUBSCRIBED_APPS_ERROR: dict[str, Any] = {
    "status": 403,
    "code": 200,
    "subcode": 1349174,
    "message": "Your app doesn't have permission to access this WhatsApp Business Account",
    "type": "OAuthException",
}


@dataclass(frozen=True, slots=True)
class NumberWiring:
    """The per-number keys; the defaults mean "not set"."""

    webhook_override: str | None = None
    identity_key_check: bool = False
    onboarded_ago: float | None = None


def app_link(app_id: str) -> str:
    """``whatsapp_business_api_data.link`` as Meta's examples show it."""
    return f"https://www.facebook.com/games/?app_id={app_id}"


def callback_url(value: object, where: str) -> str:
    """An http(s) callback URL of at most 200 characters."""
    text = _string(value, where)
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise ScenarioError(f"{where}: expected an http:// or https:// URL")
    if len(text) > MAX_CALLBACK_LENGTH:
        raise ScenarioError(f"{where}: at most {MAX_CALLBACK_LENGTH} characters (Meta's limit)")
    return text


def pop_number_wiring(data: dict[str, Any], where: str) -> NumberWiring:
    """Take the per-number wiring keys out of ``data`` (a number mapping) and check them."""
    override = data.pop("webhook_override", None)
    check = data.pop("identity_key_check", False)
    ago = data.pop("onboarded_ago", None)
    if not isinstance(check, bool):
        raise ScenarioError(f"{where}.identity_key_check: expected true or false, got {check!r}")
    seconds = None if ago is None else parse_duration(ago, f"{where}.onboarded_ago")
    if seconds is not None and "last_onboarded_time" in data:
        raise ScenarioError(f"{where}: give onboarded_ago or last_onboarded_time, not both")
    return NumberWiring(
        None if override is None else callback_url(override, f"{where}.webhook_override"),
        check,
        seconds,
    )


def parse_app(value: object, where: str) -> dict[str, Any]:
    """One subscribed app: an id, or ``{id, name, link, override_callback_uri, <extra keys>}``.

    Extra keys (e.g. the ``category`` seen on Meta-internal apps, facts §5 [U1]) are returned
    verbatim next to ``whatsapp_business_api_data``. Without ``name`` the World names it
    (``app_name`` for the scenario's own app, ``App <id>`` otherwise).
    """
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = {"id": value}
    data = _mapping(value, where)
    if "id" not in data:
        raise ScenarioError(f"{where}: missing key 'id'")
    app_id = _object_id(data["id"], f"{where}.id")
    out: dict[str, Any] = {
        "id": app_id,
        "link": _string(data.get("link", app_link(app_id)), f"{where}.link"),
    }
    if data.get("name") is not None:
        out["name"] = _string(data["name"], f"{where}.name")
    if data.get("override_callback_uri") is not None:
        out["override_callback_uri"] = callback_url(
            data["override_callback_uri"], f"{where}.override_callback_uri"
        )
    extra = {k: v for k, v in data.items() if k not in APP_KEYS}
    if extra:
        out["extra"] = _json_value(dict(extra), f"{where}")
    return out


def parse_waba_wiring(
    mapping: Mapping[str, Any], where: str
) -> tuple[tuple[Mapping[str, Any], ...] | None, Mapping[str, Any] | None]:
    """``subscribed_apps`` (None: the default, our app alone) and ``refuse_subscribed_apps``."""
    apps: tuple[Mapping[str, Any], ...] | None = None
    if mapping.get("subscribed_apps") is not None:
        raw = _list(mapping["subscribed_apps"], f"{where}.subscribed_apps")
        parsed = [parse_app(v, f"{where}.subscribed_apps[{i}]") for i, v in enumerate(raw)]
        ids = [a["id"] for a in parsed]
        if len(set(ids)) != len(ids):
            raise ScenarioError(f"{where}.subscribed_apps: an app is listed twice")
        apps = tuple(freeze(a) for a in parsed)
    refusal: Mapping[str, Any] | None = None
    raw_refusal = mapping.get("refuse_subscribed_apps")
    if raw_refusal not in (None, False):
        base = _node_error(raw_refusal, f"{where}.refuse_subscribed_apps")
        if raw_refusal is True:
            base = dict(DEFAULT_SUBSCRIBED_APPS_ERROR)
        refusal = freeze(base)
    return apps, refusal


def parse_top_level(mapping: Mapping[str, Any]) -> tuple[str, str | None, bool]:
    """``app_name`` (default waba-monitor), ``app_callback_url``, ``settings_unsupported``."""
    name = _string(mapping.get("app_name", "waba-monitor"), "app_name")
    url = mapping.get("app_callback_url")
    unsupported = mapping.get("settings_unsupported", False)
    if not isinstance(unsupported, bool):
        raise ScenarioError(f"settings_unsupported: expected true or false, got {unsupported!r}")
    return name, None if url is None else callback_url(url, "app_callback_url"), unsupported


def webhook_target(
    url: object,
    app_secret: object,
    where: str = "webhooks",
    *,
    time_as_string: object = False,
    legacy_quality_events: object = True,
) -> WebhookTarget:
    """Validate a webhook target: an http(s) URL, a non-empty app secret, two switches."""
    text = _string(url, f"{where}.url")
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise ScenarioError(f"{where}.url: expected an http:// or https:// URL")
    secret = _string(app_secret, f"{where}.app_secret")
    if not secret:
        raise ScenarioError(f"{where}.app_secret: must not be empty")
    for key, flag in (
        ("time_as_string", time_as_string),
        ("legacy_quality_events", legacy_quality_events),
    ):
        if not isinstance(flag, bool):
            raise ScenarioError(f"{where}.{key}: expected true or false, got {flag!r}")
    assert isinstance(time_as_string, bool) and isinstance(legacy_quality_events, bool)
    return WebhookTarget(text, secret, time_as_string, legacy_quality_events)


def parse_webhooks(data: object, where: str) -> WebhookTarget:
    mapping = _mapping(data, where)
    _check_keys(mapping, ("url", "app_secret", "time_as_string", "legacy_quality_events"), where)
    for key in ("url", "app_secret"):
        if key not in mapping:
            raise ScenarioError(f"{where}: missing key {key!r}")
    return webhook_target(
        mapping["url"],
        mapping["app_secret"],
        where,
        time_as_string=mapping.get("time_as_string", False),
        legacy_quality_events=mapping.get("legacy_quality_events", True),
    )
