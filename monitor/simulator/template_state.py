"""Message-template state of the World (issue 12) and the actions that change it, each with
the signed webhook Meta would send (facts §2.10-§2.12, §4.3).

A mixin of ``World``: it reads what the listing edge returns and performs ``template_status``,
``template_quality``, ``template_category`` and ``pause_template``. Quality pauses end by
themselves (3 h, then 6 h) with an UNPAUSE status webhook; a third pause disables the template.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from . import templates as tp
from .accounts import UnknownTargetError
from .fields import FieldRequest
from .render import render
from .scenario import Scenario, WebhookTarget
from .webhooks import PendingWebhook

DEFAULT_NOTICE = 86_400.0  # Meta announces a category change 24 h ahead (facts §2.12)


class TemplatesMixin:
    """Template state and actions; mixed into ``World``."""

    _scenario: Scenario
    _outbox: list[PendingWebhook]
    _webhook_target: WebhookTarget | None
    _templates: dict[str, dict[str, dict[str, Any]]]
    _template_waba: dict[str, str]
    _template_pauses: dict[str, int]
    _template_paused_until: dict[str, float]
    _waba_owner: dict[str, str]
    _business_fields: dict[str, dict[str, Any]]

    # Provided by World.
    def clock(self) -> float:
        raise NotImplementedError

    def _init_templates(self) -> None:
        self._templates = {}
        self._template_waba = {}
        self._template_pauses = {}
        self._template_paused_until = {}
        for _, waba in self._scenario.wabas():
            held: dict[str, dict[str, Any]] = {}
            for template_id, fields in waba.templates:
                held[template_id] = _plain(fields)
                self._template_waba[template_id] = waba.id
            self._templates[waba.id] = held

    # ------------------------------------------------------------------ reads

    def template_ids(self, waba_id: str) -> list[str]:
        self.expire_template_pauses()
        return list(self._templates.get(waba_id, {}))

    def template_values(self, template_id: str, wanted: Collection[str]) -> dict[str, Any]:
        fields = self._templates[self._template_waba[template_id]][template_id]
        return {k: copy.deepcopy(v) for k, v in fields.items() if k in wanted}

    def render_template(
        self, template_id: str, requested: tuple[FieldRequest, ...]
    ) -> dict[str, Any]:
        wanted = frozenset(r.name for r in requested)
        return render(template_id, self.template_values(template_id, wanted), requested)

    def template_summary(self, waba_id: str) -> dict[str, Any]:
        """``summary=`` values: the limit is 250 while unverified, 6,000 once verified (§4.1)."""
        count = len(self._templates.get(waba_id, {}))
        return {
            "total_count": count,
            "message_template_count": count,
            "message_template_limit": self.template_limit(waba_id),
        }

    def template_limit(self, waba_id: str) -> int:
        """250 unless the owner is verified (the display-name condition is not modelled)."""
        owner = self._business_fields.get(self._waba_owner.get(waba_id, ""), {})
        return 6000 if owner.get("verification_status") == "verified" else 250

    def templates_state(self) -> dict[str, Any]:
        """For ``GET /_sim/state``: templates per WABA, with pause counts and ends."""
        out: dict[str, Any] = {}
        for waba_id, held in self._templates.items():
            if not held:
                continue
            out[waba_id] = [
                {
                    "id": template_id,
                    **copy.deepcopy(fields),
                    "pauses": self._template_pauses.get(template_id, 0),
                    "paused_until": self._template_paused_until.get(template_id),
                }
                for template_id, fields in held.items()
            ]
        return out

    # ------------------------------------------------------------------ time

    def expire_template_pauses(self) -> None:
        """Quality pauses that ran out: APPROVED again, with an UNPAUSE webhook (§4.3)."""
        if not self._template_paused_until:
            return
        now = self.clock()
        for template_id, until in list(self._template_paused_until.items()):
            if until > now:
                continue
            del self._template_paused_until[template_id]
            fields = self._template(template_id)
            if fields["status"] != "PAUSED":
                continue
            fields["status"] = "APPROVED"
            self._queue_status(template_id, "APPROVED", "NONE", title="UNPAUSE")

    # ------------------------------------------------------------------ actions

    def _template(self, template_id: str) -> dict[str, Any]:
        waba_id = self._template_waba.get(template_id)
        if waba_id is None:
            raise UnknownTargetError(f"no template {template_id!r}")
        return self._templates[waba_id][template_id]

    def _queue_template(self, field: str, template_id: str, value: dict[str, Any]) -> None:
        if self._webhook_target is not None:
            waba_id = self._template_waba[template_id]
            self._outbox.append(PendingWebhook(field, waba_id, value, None))

    def _queue_status(
        self,
        template_id: str,
        event: str,
        reason: str | None,
        *,
        title: str | None = None,
        disable_date: int | None = None,
        rejection: dict[str, str] | None = None,
    ) -> None:
        fields = self._template(template_id)
        value = tp.template_status_update(
            template_id,
            fields["name"],
            fields["language"],
            event=event,
            category=fields["category"],
            reason=reason,
            other_info=None if title is None else tp.other_info(title),
            disable_date=disable_date,
            rejection_info=rejection,
        )
        self._queue_template(tp.STATUS_FIELD, template_id, value)

    def _do_template_status(self, p: dict[str, Any]) -> dict[str, Any]:
        template_id = p["template"]
        fields = self._template(template_id)
        event = p["event"]
        reason = p.get("reason", "NONE")
        if event in tp.EVENT_ONLY:
            pass  # FLAGGED, LOCKED, ...: not a status value; reads do not change (§4.2)
        else:
            fields["status"] = event
            if event == "REJECTED":
                fields["rejected_reason"] = reason
            elif event == "APPROVED":
                fields["rejected_reason"] = "NONE"
        if event != "PAUSED":
            self._template_paused_until.pop(template_id, None)
        disable_date = int(self.clock()) if event == "DISABLED" else None
        rejection = None
        if event == "REJECTED" and reason == "INVALID_FORMAT":
            rejection = {
                "reason": p.get("rejection_reason", "Invalid variable format."),
                "recommendation": "Check the variables of the template body.",
            }
        self._queue_status(
            template_id,
            event,
            None if reason == "null" else reason,
            title=p.get("title"),
            disable_date=disable_date,
            rejection=rejection,
        )
        return {"template": template_id, "status": fields["status"]}

    def _do_template_quality(self, p: dict[str, Any]) -> dict[str, Any]:
        template_id = p["template"]
        fields = self._template(template_id)
        previous = str(fields.get("quality_score", {}).get("score", "UNKNOWN"))
        score: dict[str, Any] = {"score": p["score"], "date": int(self.clock())}
        fields["quality_score"] = score
        value = tp.template_quality_update(
            template_id, fields["name"], fields["language"], previous=previous, new=p["score"]
        )
        self._queue_template(tp.QUALITY_FIELD, template_id, value)
        return {"template": template_id, "quality": p["score"], "previous": previous}

    def _do_template_category(self, p: dict[str, Any]) -> dict[str, Any]:
        """``stage: notice`` announces ``category`` (default 24 h ahead): reads show it as
        ``correct_category``; ``stage: completed`` applies it, keeping ``previous_category``."""
        template_id = p["template"]
        fields = self._template(template_id)
        new = p["category"]
        current = fields["category"]
        if p.get("stage", "completed") == "notice":
            when = int(self.clock() + p.get("effective_in", DEFAULT_NOTICE))
            fields["correct_category"] = new
            value = tp.template_category_notice(
                template_id, fields["name"], fields["language"],
                current=current, correct=new, when=when,
            )  # fmt: skip
        else:
            fields["previous_category"] = current
            fields["category"] = new
            fields.pop("correct_category", None)
            value = tp.template_category_changed(
                template_id, fields["name"], fields["language"], previous=current, new=new
            )
        self._queue_template(tp.CATEGORY_FIELD, template_id, value)
        return {"template": template_id, "category": fields["category"]}

    def _do_pause_template(self, p: dict[str, Any]) -> dict[str, Any]:
        """Meta's quality ladder (§4.3): 3 h pause, then 6 h, then DISABLED; each step sends
        ``message_template_status_update`` with ``other_info.title``. ``pacing: true`` is a
        RATE_LIMITING_PAUSE instead: off the ladder, lifted only by ``template_status``."""
        template_id = p["template"]
        fields = self._template(template_id)
        if p.get("pacing", False):
            # Pacing pauses are off the ladder and never end by themselves (§4.3).
            fields["status"] = "PAUSED"
            self._template_paused_until.pop(template_id, None)
            self._queue_status(template_id, "PAUSED", "NONE", title="RATE_LIMITING_PAUSE")
            return {"template": template_id, "status": "PAUSED", "pacing": True}
        rung = self._template_pauses.get(template_id, 0) + 1
        self._template_pauses[template_id] = rung
        now = self.clock()
        if rung >= 3:
            fields["status"] = "DISABLED"
            self._template_paused_until.pop(template_id, None)
            self._queue_status(
                template_id, "DISABLED", "NONE", title="DISABLED", disable_date=int(now)
            )
            return {"template": template_id, "status": "DISABLED", "pause": rung}
        length = tp.FIRST_PAUSE_SECONDS if rung == 1 else tp.SECOND_PAUSE_SECONDS
        fields["status"] = "PAUSED"
        self._template_paused_until[template_id] = now + length
        title = "FIRST_PAUSE" if rung == 1 else "SECOND_PAUSE"
        self._queue_status(template_id, "PAUSED", "NONE", title=title)
        return {
            "template": template_id,
            "status": "PAUSED",
            "pause": rung,
            "paused_until": now + length,
        }


def _plain(value: Any) -> Any:
    """A mutable deep copy of frozen scenario data."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
