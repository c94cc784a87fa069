"""A number's security and message routing (issue 11): app subscriptions, callback
overrides, two-step verification, the identity change check, name decisions, onboarding and
message traffic. A mixin of ``World`` (like ``accounts.AccountsMixin``).

What polls see and what webhooks say follows the facts sheets:

* ``GET /{WABA_ID}/subscribed_apps`` lists the apps subscribed to a WABA; this app's entry
  carries the WABA-level ``override_callback_uri`` (account-health facts §5).
* ``webhook_configuration`` on a number shows the number override, the WABA override (this
  app's) and the app's default URL (§3.3, H14); only the keys that are set.
* The app's default URL (``application``) is the scenario's ``app_callback_url``, else the
  webhook target's URL (that is where the simulator delivers, so it *is* the default), else
  ``DEFAULT_APP_CALLBACK``.
* A WABA without this app subscribed gets no webhooks at all (facts §2.1, §5): they are
  recorded in ``/_sim/webhooks/sent`` as not delivered. Message traffic (``messages``) follows
  overrides (number, else WABA, else the default); account, security and name fields always go
  to the default URL (§2.1; for ``security`` and ``phone_number_name_update`` inferred).
* ``GET /{PHONE_NUMBER_ID}/settings`` is inferred from the documented POST (seed: "Identity
  Change Check"); whether Graph answers a GET there is UNCONFIRMED, hence the scenario switch
  ``settings_unsupported`` that makes it answer like an unsupported request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from . import errors
from . import number_webhooks as nw
from .errors import GraphError, GraphFailure
from .fields import FieldSyntaxError, parse_fields, select_subfields
from .scenario import Scenario, WabaSpec, WebhookTarget
from .scenario_wiring import app_link
from .webhooks import PendingWebhook, webhook_digits

DEFAULT_APP_CALLBACK = "https://waba-monitor.example/webhooks"
DEFAULT_REQUESTER = "100090000000001"  # a Meta Business Suite user id on PIN_RESET_REQUEST
NOT_SUBSCRIBED = "not delivered: the app is not subscribed to this WABA"
SETTINGS_NODE = "WhatsAppBusinessPhoneNumberSettings"  # Graph's type name here is UNCONFIRMED
# Besides user_identity_change, a settings read plausibly carries the calling and local-storage
# settings that Meta documents on the same edge; their values here are UNCONFIRMED defaults.
_OTHER_SETTINGS: dict[str, Any] = {
    "calling": {"status": "DISABLED"},
    "storage_configuration": {"status": "DEFAULT"},
}


def pick_settings(values: dict[str, Any], raw: str, waba_id: str) -> dict[str, Any]:
    """Apply ``fields=`` to a settings body, with Graph's code-100 errors for a bad list."""
    if not raw.strip():
        return values
    try:
        parsed = parse_fields(raw)
    except FieldSyntaxError as exc:
        error = errors.bad_parameter(f"Syntax error in fields parameter: {exc}")
        raise GraphFailure(error, buc_waba=waba_id) from None
    for r in parsed:
        if r.name not in values:
            raise GraphFailure(errors.nonexisting_field(r.name, SETTINGS_NODE), buc_waba=waba_id)
    return {r.name: select_subfields(values[r.name], r.subfields) for r in parsed}


def meta_time(when: float) -> str:
    """Meta's datetime format for ``last_onboarded_time``: ``2023-08-22T19:05:53+0000``."""
    return dt.datetime.fromtimestamp(int(when), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class WiringMixin:
    """Subscriptions, overrides, PIN and settings state and their actions; mixed into World."""

    _scenario: Scenario
    _wabas: dict[str, WabaSpec]
    _numbers: dict[str, dict[str, Any]]
    _number_waba: dict[str, str]
    _waba_numbers: dict[str, list[str]]
    _outbox: list[PendingWebhook]
    _webhook_target: WebhookTarget | None
    _webhook_seen: dict[str, dict[str, Any]]
    _subscriptions: dict[str, list[dict[str, Any]]]
    _subscriptions_error: dict[str, GraphError]
    _number_override: dict[str, str]
    _identity_check: dict[str, bool]
    _security_events: list[dict[str, Any]]
    _message_serial: int

    # Provided by World / AccountsMixin.
    def clock(self) -> float:
        raise NotImplementedError

    def number_view(self, number_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def add_number(self, waba_id: str, number_id: str, fields: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def kind_of(self, object_id: str) -> str | None:
        raise NotImplementedError

    def _queue(
        self, field: str, waba_id: str, value: dict[str, Any], entry_id: str | None = None
    ) -> None:
        raise NotImplementedError

    def _waba(self, waba_id: str) -> str:
        raise NotImplementedError

    def _number(self, number_id: str) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ setup

    def _init_wiring(self, start: float) -> None:
        """Copy the scenario's wiring keys into state; ``start`` anchors ``onboarded_ago``."""
        self._subscriptions = {}
        self._subscriptions_error = {}
        self._number_override = {}
        self._identity_check = {}
        self._security_events = []
        self._message_serial = 0
        for _, waba in self._scenario.wabas():
            if waba.subscribed_apps is None:
                apps = [{"id": self._scenario.app_id, "link": app_link(self._scenario.app_id)}]
            else:
                apps = [_plain(a) for a in waba.subscribed_apps]
            self._subscriptions[waba.id] = apps
            spec = waba.subscribed_apps_error
            if spec is not None:
                subcode = spec.get("subcode")
                self._subscriptions_error[waba.id] = GraphError(
                    int(spec["status"]),
                    int(spec["code"]),
                    str(spec["message"]),
                    type=str(spec["type"]),
                    subcode=None if subcode is None else int(subcode),
                )
            for number in waba.numbers:
                if number.webhook_override is not None:
                    self._number_override[number.id] = number.webhook_override
                if number.identity_key_check:
                    self._identity_check[number.id] = True
                if number.onboarded_ago is not None:
                    stamp = meta_time(start - number.onboarded_ago)
                    self._numbers[number.id]["last_onboarded_time"] = stamp

    def _forget_number_wiring(self, number_id: str) -> None:
        self._number_override.pop(number_id, None)
        self._identity_check.pop(number_id, None)

    # ------------------------------------------------------------------ reads

    def app_subscribed(self, waba_id: str, app_id: str | None = None) -> bool:
        """Whether ``app_id`` (default: this app) is subscribed; unknown WABAs count as yes."""
        apps = self._subscriptions.get(waba_id)
        wanted = app_id or self._scenario.app_id
        return apps is None or any(a["id"] == wanted for a in apps)

    def subscribed_apps_refusal(self, waba_id: str) -> GraphError | None:
        return self._subscriptions_error.get(waba_id)

    def subscribed_apps(self, waba_id: str) -> dict[str, Any]:
        """``GET /{WABA_ID}/subscribed_apps``: ``{"data": [...]}`` in subscription order."""
        data = []
        for app in self._subscriptions.get(waba_id, []):
            app_id = app["id"]
            default = self._scenario.app_name if app_id == self._scenario.app_id else None
            entry: dict[str, Any] = {
                "whatsapp_business_api_data": {
                    "id": app_id,
                    "link": app["link"],
                    "name": app.get("name") or default or f"App {app_id}",
                }
            }
            if app.get("override_callback_uri"):
                entry["override_callback_uri"] = app["override_callback_uri"]
            entry.update(_plain(app.get("extra") or {}))
            data.append(entry)
        return {"data": data}

    def application_url(self) -> str:
        """The app's default callback URL (see the module docstring)."""
        if self._scenario.app_callback_url is not None:
            return self._scenario.app_callback_url
        if self._webhook_target is not None:
            return self._webhook_target.url
        return DEFAULT_APP_CALLBACK

    def waba_override(self, waba_id: str) -> str | None:
        """This app's ``override_callback_uri`` on the WABA, if any."""
        for app in self._subscriptions.get(waba_id, []):
            if app["id"] == self._scenario.app_id:
                url = app.get("override_callback_uri")
                return str(url) if url else None
        return None

    def webhook_configuration(self, number_id: str) -> dict[str, str]:
        """``{phone_number?, whatsapp_business_account?, application}`` (facts §3.3)."""
        out: dict[str, str] = {}
        number = self._number_override.get(number_id)
        if number is not None:
            out["phone_number"] = number
        waba = self.waba_override(self._number_waba[number_id])
        if waba is not None:
            out["whatsapp_business_account"] = waba
        out["application"] = self.application_url()
        return out

    def message_route(self, number_id: str) -> tuple[str, str | None]:
        """Where message traffic of a number goes: (level, URL or None for the default)."""
        number = self._number_override.get(number_id)
        if number is not None:
            return "phone_number", number
        waba = self.waba_override(self._number_waba[number_id])
        if waba is not None:
            return "whatsapp_business_account", waba
        return "application", None

    def settings_values(self, number_id: str) -> dict[str, Any]:
        """The body of ``GET /{PHONE_NUMBER_ID}/settings`` (inferred; see module docstring)."""
        check = self._identity_check.get(number_id, False)
        return {
            "user_identity_change": {"enable_identity_key_check": check},
            **_plain(_OTHER_SETTINGS),
        }

    def settings_refusal(self, number_id: str) -> GraphError | None:
        """With ``settings_unsupported``: Graph's "Unsupported get request" (code 100/33)."""
        if self._scenario.settings_unsupported:
            return errors.unknown_object(number_id)
        return None

    def wiring_state(self) -> dict[str, Any]:
        """For ``GET /_sim/state``: what differs from the defaults, plus the app's URL."""
        return {
            "app_id": self._scenario.app_id,
            "application_url_set": self._scenario.app_callback_url is not None,
            "subscribed_apps": {
                w: [a["id"] for a in apps] for w, apps in self._subscriptions.items()
            },
            "waba_overrides": sorted(w for w in self._subscriptions if self.waba_override(w)),
            "number_overrides": sorted(self._number_override),
            "identity_key_check": sorted(n for n, on in self._identity_check.items() if on),
            "security_events": [dict(e) for e in self._security_events],
        }

    # ------------------------------------------------------------------ helpers

    def _digits(self, number_id: str) -> str:
        display = self.number_view(number_id).get("display_phone_number")
        return webhook_digits(display) if isinstance(display, str) else ""

    def _set_quietly(self, number_id: str, changes: Mapping[str, Any]) -> None:
        """Change base fields without the automatic change webhooks (the action sends its
        own); a timeline step not yet announced stays pending."""
        base = self._numbers[number_id]
        seen = self._webhook_seen.get(number_id)
        for key, value in changes.items():
            base[key] = value
            if seen is not None and key in seen:
                seen[key] = value

    def _security(self, number_id: str, event: str, requester: str | None = None) -> None:
        waba_id = self._number_waba[number_id]
        value = nw.security_event(self._digits(number_id), event, requester)
        self._security_events.append({"number": number_id, "event": event, "time": self.clock()})
        self._queue(nw.SECURITY_FIELD, waba_id, value)

    # ------------------------------------------------------------------ actions

    def _do_set_pin(self, p: dict[str, Any]) -> None:
        """Enabling (or changing) the PIN sends PIN_CHANGED; turning two-step verification
        off can only happen through the reset e-mail, so it sends the success event."""
        number_id = self._number(p["number"])
        was = self.number_view(number_id).get("is_pin_enabled")
        self._set_quietly(number_id, {"is_pin_enabled": p["enabled"]})
        if p["enabled"]:
            self._security(number_id, nw.PIN_CHANGED)
        elif was is not False:
            self._security(number_id, nw.SPELLINGS[p["spelling"]])

    def _do_security_event(self, p: dict[str, Any]) -> None:
        """Send a ``security`` event; success turns the PIN off, PIN_CHANGED turns it on."""
        number_id = self._number(p["number"])
        event: str = p["event"]
        if event in nw.SUCCESS_EVENTS:
            event = nw.SPELLINGS["sdk"] if p["spelling"] == "sdk" else event
            self._set_quietly(number_id, {"is_pin_enabled": False})
        elif event == nw.PIN_CHANGED:
            self._set_quietly(number_id, {"is_pin_enabled": True})
        requester = p.get("requester", DEFAULT_REQUESTER)
        self._security(number_id, event, requester if event == nw.PIN_RESET_REQUEST else None)

    def _do_unsubscribe_app(self, p: dict[str, Any]) -> None:
        """``DELETE /{WABA_ID}/subscribed_apps``: no webhook (and none reach us after it)."""
        waba_id = self._waba(p["waba"])
        app_id = p.get("app") or self._scenario.app_id
        apps = self._subscriptions.setdefault(waba_id, [])
        apps[:] = [a for a in apps if a["id"] != app_id]

    def _do_subscribe_app(self, p: dict[str, Any]) -> None:
        """``POST /{WABA_ID}/subscribed_apps``: without ``url`` it also removes the app's
        WABA override (facts §5); with ``url`` it sets one."""
        waba_id = self._waba(p["waba"])
        app_id = p.get("app") or self._scenario.app_id
        apps = self._subscriptions.setdefault(waba_id, [])
        entry = next((a for a in apps if a["id"] == app_id), None)
        if entry is None:
            entry = {"id": app_id, "link": app_link(app_id)}
            apps.append(entry)
        if p.get("name"):
            entry["name"] = p["name"]
        if p.get("url"):
            entry["override_callback_uri"] = p["url"]
        else:
            entry.pop("override_callback_uri", None)

    def _do_set_webhook_override(self, p: dict[str, Any]) -> None:
        """A number- or WABA-level callback override, or none (``url: null``). A WABA
        override subscribes this app if it was not (it is set through subscribed_apps)."""
        url: str | None = p["url"]
        if "number" in p:
            number_id = self._number(p["number"])
            if url is None:
                self._number_override.pop(number_id, None)
            else:
                self._number_override[number_id] = url
            return
        waba_id = self._waba(p["waba"])
        if url is not None:
            self._do_subscribe_app({"waba": waba_id, "url": url})
            return
        for app in self._subscriptions.get(waba_id, []):
            if app["id"] == self._scenario.app_id:
                app.pop("override_callback_uri", None)

    def _do_set_identity_key_check(self, p: dict[str, Any]) -> None:
        """``POST /{PHONE_NUMBER_ID}/settings`` ``user_identity_change``: no webhook."""
        self._identity_check[self._number(p["number"])] = p["enabled"]

    def _do_name_decision(self, p: dict[str, Any]) -> None:
        """A display-name decision: ``phone_number_name_update`` plus the matching status.

        It applies to a requested new name when ``new_name_status`` is PENDING_REVIEW (or
        ``applies_to: new_name``), else to the name itself. An approved new name shows once
        the number re-registers (facts §2.8), so ``verified_name`` is left as it is.
        """
        number_id = self._number(p["number"])
        view = self.number_view(number_id)
        decision: str = p["decision"]
        applies_to = p.get("applies_to") or (
            "new_name" if view.get("new_name_status") == "PENDING_REVIEW" else "name"
        )
        if applies_to == "new_name":
            key = "new_name_status"
            requested = p.get("name") or view.get("new_display_name") or view.get("verified_name")
        else:
            key = "name_status"
            requested = p.get("name") or view.get("verified_name")
        status = nw.DECISION_STATUS.get(decision)  # open enum: unknown decisions change nothing
        if status is not None:
            self._set_quietly(number_id, {key: status})
        reason = p.get("reason", nw.DEFAULT_REJECTION)
        value = nw.name_update(self._digits(number_id), decision, requested, reason)
        self._queue(nw.NAME_FIELD, self._number_waba[number_id], value)

    def _do_onboard_number(self, p: dict[str, Any]) -> dict[str, Any]:
        """A new number, onboarded now: PENDING, not registered, no PIN yet (ONBOARDING)."""
        waba_id = self._waba(p["waba"])
        number_id = p.get("id") or self._free_number_id()
        fields = {
            "display_phone_number": p.get("display_phone_number")
            or f"+1 555-9{int(number_id) % 100:02d}-{int(number_id) % 10_000:04d}",
            "verified_name": p.get("verified_name") or f"New Line {number_id[-4:]}",
            "status": "PENDING",
            "quality_rating": "UNKNOWN",
            "name_status": "PENDING_REVIEW",
            "new_name_status": "NONE",
            "code_verification_status": "NOT_VERIFIED",
            "platform_type": "NOT_APPLICABLE",
            "account_mode": "LIVE",
            "is_pin_enabled": False,
            "last_onboarded_time": meta_time(self.clock()),
        }
        self.add_number(waba_id, number_id, fields)
        return {"id": number_id}

    def _free_number_id(self) -> str:
        candidate = max((int(n) for n in self._numbers), default=300_000_000_000_000) + 1
        while self.kind_of(str(candidate)) is not None:
            candidate += 1
        return str(candidate)

    def _do_message_burst(self, p: dict[str, Any]) -> dict[str, Any]:
        """``count`` message-traffic webhooks (inbound messages, statuses or both), routed as
        Meta routes them: the number's override, else the WABA's, else the app default."""
        number_id = self._number(p["number"])
        waba_id = self._number_waba[number_id]
        level, url = self.message_route(number_id)
        values = nw.traffic_values(
            self._digits(number_id),
            number_id,
            first_serial=self._message_serial + 1,
            count=p["count"],
            kind=p["kind"],
            per_request=p["per_request"],
            timestamp=int(self.clock()),
            identity_check=self._identity_check.get(number_id, False),
        )
        self._message_serial += p["count"]
        if self._webhook_target is not None:
            for value in values:
                self._outbox.append(
                    PendingWebhook(
                        nw.MESSAGES_FIELD,
                        waba_id,
                        value,
                        url=url,
                        route=level,
                        concurrency=p["concurrency"],
                    )
                )
        return {"route": level, "requests": len(values)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
