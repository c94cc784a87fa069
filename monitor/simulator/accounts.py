"""Account-level state of the World (portfolio, WABA, restrictions, bans, alerts, health) and
the actions that change it, each with the signed webhook Meta would send.

A mixin of ``World`` so ``world.py`` stays small; it only touches the attributes declared
below. What polls can see and what only webhooks carry follows the facts sheet: a review
decision is readable as ``account_review_status``; a DISABLE ban blocks the WABA's health
entity; restrictions, violations, alerts and offboarding have no Graph field (facts §7,
an UNCONFIRMED absence) and are visible only in ``GET /_sim/state``.
"""

from __future__ import annotations

import copy
from typing import Any

from . import account_webhooks as aw
from .actions import Action, defaults
from .scenario import Scenario, WabaSpec, WebhookTarget
from .webhooks import PendingWebhook

LIMIT = "whatsapp_business_manager_messaging_limit"
SCHEDULE_NOTICE = 7 * 86_400.0  # display date of a SCHEDULE_FOR_DISABLE: a week ahead
# A disabled WABA's health entity. Meta's exact error for a ban is not documented in the
# facts; 131031 "Account locked" (graph-api-facts §5) is the closest listed code.
DISABLED_HEALTH: dict[str, Any] = {
    "can_send_message": "BLOCKED",
    "errors": [
        {
            "error_code": 131031,
            "error_description": "Business account has been locked.",
            "possible_solution": "Request a review of the decision in WhatsApp Manager.",
        }
    ],
}


class UnknownTargetError(LookupError):
    """An action names an object the World does not have (the control API answers 404)."""


class AccountsMixin:
    """Account-level state and actions; mixed into ``World``."""

    _scenario: Scenario
    _wabas: dict[str, WabaSpec]
    _waba_owner: dict[str, str]
    _numbers: dict[str, dict[str, Any]]
    _number_waba: dict[str, str]
    _outbox: list[PendingWebhook]
    _webhook_target: WebhookTarget | None
    _waba_fields: dict[str, dict[str, Any]]
    _business_fields: dict[str, dict[str, Any]]
    _business_health: dict[str, dict[str, Any] | None]
    _app_health: dict[str, Any] | None
    _clients: dict[str, list[str]]
    _caps: dict[str, dict[str, int]]
    _accounts: dict[str, dict[str, Any]]
    _alerts: list[dict[str, Any]]

    # Provided by World.
    def clock(self) -> float:
        raise NotImplementedError

    def owned_waba_ids(self, business_id: str) -> list[str]:
        raise NotImplementedError

    def remove_waba(self, waba_id: str) -> None:
        raise NotImplementedError

    def set_number_fields(self, number_id: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ reads

    def business_limit(self, business_id: str) -> str | None:
        """The portfolio messaging limit as of now (shared by all the business's numbers)."""
        value = self._business_fields[business_id].get(LIMIT)
        return None if value is None else str(value)

    def account(self, waba_id: str) -> dict[str, Any]:
        """The WABA's webhook-only state; expired restrictions are left out."""
        acct = self._accounts.setdefault(waba_id, _new_account())
        now = self.clock()
        active = [
            r for r in acct["restrictions"] if r["expires_at"] is None or r["expires_at"] > now
        ]
        return {
            "restrictions": copy.deepcopy(active),
            "ban": copy.deepcopy(acct["ban"]),
            "violations": copy.deepcopy(acct["violations"]),
            "offboarded": acct["offboarded"],
            "partner_app_installed": acct["partner_app_installed"],
        }

    def alerts(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._alerts)

    # ------------------------------------------------------------------ actions

    def apply_action(self, action: Action) -> dict[str, Any]:
        """Perform one action now; returns a summary. Raises UnknownTargetError or ValueError."""
        params = defaults(action)
        before = len(self._outbox)
        handler = getattr(self, f"_do_{action.kind}")
        extra = handler(params)
        result = {"action": action.kind, "webhooks_queued": len(self._outbox) - before}
        if isinstance(extra, dict):
            result.update(extra)
        return result

    def _queue(
        self, field: str, waba_id: str, value: dict[str, Any], entry_id: str | None = None
    ) -> None:
        if self._webhook_target is not None:
            self._outbox.append(PendingWebhook(field, waba_id, value, entry_id))

    def _waba(self, waba_id: str) -> str:
        if waba_id not in self._wabas:
            raise UnknownTargetError(f"no WABA {waba_id!r}")
        return waba_id

    def _business(self, business_id: str) -> str:
        if business_id not in self._business_fields:
            raise UnknownTargetError(f"no business {business_id!r}")
        return business_id

    def _number(self, number_id: str) -> str:
        if number_id not in self._numbers:
            raise UnknownTargetError(f"no phone number {number_id!r}")
        return number_id

    def _do_restrict_waba(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        acct = self._accounts.setdefault(waba_id, _new_account())
        if "expiration" in p:
            raw: int | str = p["expiration"]
            expires_at = float(raw) if isinstance(raw, int) or str(raw).isdigit() else None
        else:
            expires_at = self.clock() + p["expires_in"]
            raw = aw.expiration_value(expires_at, p["expiration_format"])
        types: list[str] = p["restriction_types"]
        if not types:  # a Direct Send warning: no restriction_info, nothing restricted (H23)
            self._queue(
                aw.ACCOUNT_UPDATE_FIELD,
                waba_id,
                aw.account_restriction(None, p.get("violation_type")),
            )
            return
        info = [aw.restriction_entry(t, raw, p.get("remediation")) for t in types]
        kept = [r for r in acct["restrictions"] if r["restriction_type"] not in types]
        acct["restrictions"] = kept + [
            {"restriction_type": t, "expiration": raw, "expires_at": expires_at} for t in types
        ]
        value = aw.account_restriction(info, p.get("violation_type"))
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, value)

    def _do_lift_restriction(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        self._accounts.setdefault(waba_id, _new_account())["restrictions"] = []
        value = aw.account_restriction(None, p["violation_type"])
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, value)

    def _do_record_violation(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        acct = self._accounts.setdefault(waba_id, _new_account())
        acct["violations"].append({"violation_type": p["violation_type"], "time": self.clock()})
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, aw.account_violation(p["violation_type"]))

    def _do_ban_waba(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        acct = self._accounts.setdefault(waba_id, _new_account())
        state: str = p["state"]
        ahead = SCHEDULE_NOTICE if state == "SCHEDULE_FOR_DISABLE" else 0.0
        date = p.get("date") or aw.ban_date_text(self.clock() + ahead)
        previous = (acct["ban"] or {}).get("waba_ban_state")
        fields = self._waba_fields[waba_id]
        if state == "DISABLE" and previous != "DISABLE":
            acct["health_before_ban"] = copy.deepcopy(fields.get("health_status"))
            fields["health_status"] = copy.deepcopy(DISABLED_HEALTH)
        elif state != "DISABLE" and previous == "DISABLE":
            restored = acct.pop("health_before_ban", None)
            if restored is None:
                fields.pop("health_status", None)
            else:
                fields["health_status"] = restored
        acct["ban"] = {"waba_ban_state": state, "waba_ban_date": date}
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, aw.disabled_update(state, date))

    def _do_review_waba(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        # The webhook's DEFERRED is not in either OpenAPI enum of the field; kept verbatim.
        self._waba_fields[waba_id]["account_review_status"] = p["decision"]
        self._queue(aw.REVIEW_FIELD, waba_id, aw.account_review_update(p["decision"]))

    def _do_account_event(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        event: str = p["event"]
        if event in aw.PARTNER_EVENTS:
            raise ValueError(f"event: use the partner_event action for {event}")
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, aw.bare_event(event))
        acct = self._accounts.setdefault(waba_id, _new_account())
        if event == "ACCOUNT_OFFBOARDED":
            acct["offboarded"] = True
        elif event == "ACCOUNT_RECONNECTED":
            acct["offboarded"] = False
        elif event == "ACCOUNT_DELETED":
            self.remove_waba(waba_id)

    def _do_partner_event(self, p: dict[str, Any]) -> None:
        waba_id = self._waba(p["waba"])
        event: str = p["event"]
        owner = self._waba_owner[waba_id]
        partner = p.get("partner") or next(
            (b for b, clients in self._clients.items() if waba_id in clients), None
        )
        if partner is None:
            raise ValueError("partner: required, no business has this WABA as a client")
        self._business(partner)
        if partner == owner:
            raise ValueError("partner: must not be the WABA's owner")
        clients = self._clients[partner]
        if event == "PARTNER_ADDED" and waba_id not in clients:
            clients.append(waba_id)
        elif event == "PARTNER_REMOVED" and waba_id in clients:
            clients.remove(waba_id)
        acct = self._accounts.setdefault(waba_id, _new_account())
        if event == "PARTNER_APP_INSTALLED":
            acct["partner_app_installed"] = True
        elif event == "PARTNER_APP_UNINSTALLED":
            acct["partner_app_installed"] = False
        value = aw.partner_event(
            event,
            waba_id=waba_id,
            owner_business_id=owner,
            partner_app_id=self._scenario.app_id,
            partner_business_id=partner,
        )
        self._queue(aw.ACCOUNT_UPDATE_FIELD, waba_id, value, entry_id=partner)

    def _do_account_alert(self, p: dict[str, Any]) -> None:
        entity_type: str = p["entity_type"]
        entity_id: str | None = p.get("entity_id")
        waba_id: str | None = p.get("waba")
        if entity_type == "PHONE_NUMBER":
            if entity_id is None:
                raise ValueError("entity_id: required for PHONE_NUMBER (a phone-number id)")
            waba_id = waba_id or self._number_waba[self._number(entity_id)]
        elif entity_type == "BUSINESS":
            if entity_id is None:
                if waba_id is None:
                    raise ValueError("entity_id or waba: required for BUSINESS")
                entity_id = self._waba_owner[self._waba(waba_id)]
            owned = self.owned_waba_ids(self._business(entity_id))
            if waba_id is None:
                if not owned:
                    raise ValueError("waba: required, the business owns no WABA")
                waba_id = owned[0]  # which WABA Meta uses as entry.id is not documented
        if waba_id is None or entity_id is None:
            raise ValueError("waba and entity_id: required for this entity_type")
        self._waba(waba_id)
        value = aw.account_alert(
            entity_type,
            entity_id,
            alert_type=p["alert_type"],
            alert_severity=p["alert_severity"],
            alert_status=p["alert_status"],
            alert_description=p["alert_description"],
        )
        self._alerts.append({"waba_id": waba_id, **copy.deepcopy(value), "time": self.clock()})
        self._queue(aw.ALERTS_FIELD, waba_id, value)

    def _do_set_business(self, p: dict[str, Any]) -> None:
        business_id = self._business(p["business"])
        fields = self._business_fields[business_id]
        if "verification_status" in p:
            # No webhook: Meta documents none for a verification change (only the partner-led
            # certification event, which is a different flow).
            fields["verification_status"] = p["verification_status"]
        limit = p.get("messaging_limit")
        if limit is not None and limit != fields.get(LIMIT):
            fields[LIMIT] = limit
            sent: int | str = aw.tier_as_int(limit) if p["limit_as"] == "int" else limit
            value = aw.capability_update(max_daily_conversations_per_business=sent)
            # One notification per owned WABA, like /_sim/businesses/{id}/capability; whether
            # Meta fans out like this is UNCONFIRMED (facts §2.6).
            for waba_id in self.owned_waba_ids(business_id):
                self._queue(aw.CAPABILITY_FIELD, waba_id, value)
        caps = self._caps.setdefault(business_id, {})
        for key in ("max_phone_numbers_per_business", "max_phone_numbers_per_waba"):
            if key in p and caps.get(key) != p[key]:
                caps[key] = p[key]
                # Each cap is its own fact and its own notification (facts §2.6, M6).
                for waba_id in self.owned_waba_ids(business_id):
                    self._queue(aw.CAPABILITY_FIELD, waba_id, aw.capability_update(**{key: p[key]}))

    def note_capability(self, business_id: str, value: dict[str, Any]) -> None:
        """Keep the state behind a hand-made ``business_capability_update`` consistent: a
        messaging limit it announces becomes the portfolio limit; caps are recorded."""
        tier = aw.tier_from_value(value.get("max_daily_conversations_per_business"))
        if tier is not None:
            self._business_fields[business_id][LIMIT] = tier
        caps = self._caps.setdefault(business_id, {})
        for key in ("max_phone_numbers_per_business", "max_phone_numbers_per_waba"):
            cap = value.get(key)
            if isinstance(cap, int) and not isinstance(cap, bool):
                caps[key] = cap

    def capabilities(self, business_id: str) -> dict[str, int]:
        return dict(self._caps.get(business_id, {}))

    def _do_block_entity(self, p: dict[str, Any]) -> None:
        entity_type: str = p["entity_type"]
        health: dict[str, Any] | None = {"can_send_message": p["can_send_message"]}
        if "error_code" in p:
            error = {
                "error_code": p["error_code"],
                "error_description": p.get("error_description", "Simulated error."),
                "possible_solution": p.get("possible_solution", "Contact support."),
            }
            assert health is not None
            health["errors"] = [error]
        elif p["can_send_message"] == "AVAILABLE":
            health = None  # back to the default AVAILABLE entity
        object_id: str | None = p.get("id")
        if entity_type == "APP":
            self._app_health = health
            return
        if object_id is None:
            raise ValueError(f"id: required for {entity_type}")
        if entity_type == "WABA":
            fields = self._waba_fields[self._waba(object_id)]
            if health is None:
                fields.pop("health_status", None)
            else:
                fields["health_status"] = health
        elif entity_type == "BUSINESS":
            self._business_health[self._business(object_id)] = health
        elif entity_type == "PHONE_NUMBER":
            own = health or {"can_send_message": "AVAILABLE"}
            self.set_number_fields(self._number(object_id), {"health_status": own})
        else:
            raise ValueError("entity_type: one of WABA, BUSINESS, APP, PHONE_NUMBER")


def _new_account() -> dict[str, Any]:
    return {
        "restrictions": [],
        "ban": None,
        "violations": [],
        "offboarded": False,
        "partner_app_installed": True,
    }
