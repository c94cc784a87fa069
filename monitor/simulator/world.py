"""The simulated Graph world: the one mutable object, built from an immutable Scenario.

Everything that changes while the simulator runs (numbers edited or removed, request
counters, the rolling call windows behind the rate limits, armed faults, the accelerated
clock, the account-level state of ``accounts.AccountsMixin``) lives here, so tests can reach
and reset all of it in one place.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

from . import errors
from .accounts import AccountsMixin, UnknownTargetError
from .actions import Action
from .errors import GraphError
from .faults import Fault
from .fields import (
    BUSINESS_KNOWN_FIELDS,
    BUSINESS_NODE,
    NUMBER_KNOWN_FIELDS,
    PHONE_NUMBER_NODE,
    WABA_KNOWN_FIELDS,
    WABA_NODE,
)
from .render import health_entity, health_status, number_values
from .scenario import (
    ActionEvent,
    BusinessSpec,
    Scenario,
    ScenarioError,
    TimelineEvent,
    WabaSpec,
    WebhookTarget,
    normalize_number_fields,
    thaw,
)
from .scenario_wiring import webhook_target
from .template_state import TemplatesMixin
from .templates import TEMPLATE_KNOWN_FIELDS, TEMPLATE_NODE
from .webhooks import (
    WATCHED_NUMBER_FIELDS,
    PendingWebhook,
    number_change_webhooks,
    onboarding_webhook,
)
from .wiring import NOT_SUBSCRIBED, WiringMixin

NodeKind = Literal["phone_number", "waba", "business"]
ENDPOINTS: tuple[str, ...] = (
    "phone_numbers",
    "phone_number",
    "waba",
    "business",
    "owned_whatsapp_business_accounts",
    "client_whatsapp_business_accounts",
    "subscribed_apps",
    "settings",
)
UNKNOWN_ENDPOINT = "unknown"
MAX_ADVANCE = 1e9  # about 30 years; keeps the clock finite however often it is advanced
MAX_WEBHOOK_RECORDS = 1_000
_ID = re.compile(r"[0-9]{1,20}")


def _copy_plain(value: Any) -> Any:
    """Deep copy of plain JSON data; much faster than ``thaw`` on the per-request hot path."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_plain(v) for k, v in value.items()}
    if kind is list:
        return [_copy_plain(v) for v in value]
    return value


class UnknownObjectError(LookupError):
    """The World has no object with that id (the control API answers 404)."""


LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"


class World(AccountsMixin, WiringMixin, TemplatesMixin):
    """Mutable simulated state. Not thread-safe: use it from one event loop."""

    def __init__(self, scenario: Scenario, *, time_source: Callable[[], float] = time.time) -> None:
        self._scenario = scenario
        self._time = time_source
        self._offset = 0.0
        self._start = self.clock()
        self._tokens = frozenset(scenario.tokens)
        self._budget = scenario.budget
        self._businesses: dict[str, BusinessSpec] = {}
        self._wabas: dict[str, WabaSpec] = {}
        self._waba_owner: dict[str, str] = {}
        self._owned: dict[str, list[str]] = {}
        self._numbers: dict[str, dict[str, Any]] = {}
        self._number_waba: dict[str, str] = {}
        self._waba_numbers: dict[str, list[str]] = {}
        self._former: dict[str, NodeKind] = {}
        for business, waba in scenario.wabas():
            self._wabas[waba.id] = waba
            self._waba_owner[waba.id] = business.id
            self._waba_numbers[waba.id] = []
            for number in waba.numbers:
                self._numbers[number.id] = thaw(number.fields)
                self._number_waba[number.id] = waba.id
                self._waba_numbers[waba.id].append(number.id)
        self._waba_fields = {w.id: thaw(w.fields) for w in self._wabas.values()}
        self._business_fields: dict[str, dict[str, Any]] = {}
        self._business_health: dict[str, dict[str, Any] | None] = {}
        self._clients: dict[str, list[str]] = {}
        self._app_health: dict[str, Any] | None = None
        self._accounts: dict[str, dict[str, Any]] = {}
        self._alerts: list[dict[str, Any]] = []
        self._caps: dict[str, dict[str, int]] = {}
        for business in scenario.businesses:
            self._businesses[business.id] = business
            self._owned[business.id] = [w.id for w in business.wabas]
            self._business_fields[business.id] = thaw(business.fields)
            self._business_health[business.id] = thaw(business.health)
            self._clients[business.id] = list(business.client_wabas)
        self._init_wiring(self._start)
        self._init_templates()
        self._actions: tuple[ActionEvent, ...] = scenario.timeline.actions
        self._action_cursor = (0, 0)  # (period index, action index) of the next step to run
        self._custom_number_fields = (
            frozenset(key for fields in self._numbers.values() for key in fields)
            - NUMBER_KNOWN_FIELDS
        )
        self._custom_waba_fields = (
            frozenset(key for w in self._wabas.values() for key in w.fields) - WABA_KNOWN_FIELDS
        )
        self._custom_business_fields = (
            frozenset(key for b in self._businesses.values() for key in b.fields)
            - BUSINESS_KNOWN_FIELDS
        )
        self._events: dict[str, list[TimelineEvent]] = {}
        for event in scenario.timeline.events:
            self._events.setdefault(event.number, []).append(event)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._batches = 0
        self._waba_calls: dict[str, deque[float]] = {}
        self._app_calls: deque[float] = deque()
        self._faults: list[tuple[Fault, int]] = []
        self._webhook_target: WebhookTarget | None = None
        self._webhook_seen: dict[str, dict[str, Any]] = {}
        self._outbox: list[PendingWebhook] = []
        self._webhooks_sent: deque[dict[str, Any]] = deque(maxlen=MAX_WEBHOOK_RECORDS)
        if scenario.webhooks is not None:
            target = scenario.webhooks
            self.set_webhook_target(
                target.url,
                target.app_secret,
                time_as_string=target.time_as_string,
                legacy_quality_events=target.legacy_quality_events,
            )

    # ------------------------------------------------------------------ clock

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    def clock(self) -> float:
        """Wall time plus the offset ``advance`` added: time-accelerated tests move it."""
        return self._time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward (never backward)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("seconds: expected a non-negative number")
        if not math.isfinite(seconds) or seconds > MAX_ADVANCE:
            raise ValueError(f"seconds: expected a finite number up to {MAX_ADVANCE:.0f}")
        self._offset += float(seconds)

    def elapsed(self) -> float:
        """Simulated seconds since the World was built (timeline time)."""
        return self.clock() - self._start

    def timeline_phase(self) -> float:
        """Position in the timeline: elapsed time, modulo ``repeat_every`` when set."""
        elapsed = max(0.0, self.elapsed())
        period = self._scenario.timeline.repeat_every
        return elapsed % period if period else elapsed

    # ------------------------------------------------------------------ counting

    def count(self, endpoint: str, object_id: str) -> None:
        self._counts[(endpoint, object_id)] += 1

    def count_batch(self) -> None:
        """One batch HTTP call; its sub-requests are counted on their own endpoints."""
        self._batches += 1

    def request_count(self, endpoint: str | None = None, object_id: str | None = None) -> int:
        """Requests that reached a Graph route, filtered by endpoint name and/or object id."""
        return sum(
            n
            for (ep, oid), n in self._counts.items()
            if (endpoint is None or ep == endpoint) and (object_id is None or oid == object_id)
        )

    def reset_counts(self) -> None:
        self._counts.clear()
        self._batches = 0

    def stats(self) -> dict[str, Any]:
        """Graph calls as Meta bills them (each batch sub-request is one call on its endpoint),
        and ``batches``: the batch HTTP calls that carried some of them."""
        by_endpoint: Counter[str] = Counter()
        by_object: Counter[str] = Counter()
        for (endpoint, object_id), n in self._counts.items():
            by_endpoint[endpoint] += n
            by_object[object_id] += n
        return {
            "total": sum(self._counts.values()),
            "by_endpoint": dict(sorted(by_endpoint.items())),
            "by_object": dict(sorted(by_object.items())),
            "batches": self._batches,
        }

    # ------------------------------------------------------------------ lookups

    def accepts_token(self, token: str) -> bool:
        return token in self._tokens

    def kind_of(self, object_id: str) -> NodeKind | None:
        if object_id in self._numbers:
            return "phone_number"
        if object_id in self._wabas:
            return "waba"
        if object_id in self._businesses:
            return "business"
        return None

    def node_endpoint(self, object_id: str) -> str:
        """Counter name for ``GET /{id}``: by current or former kind, else ``unknown``."""
        return self.kind_of(object_id) or self._former.get(object_id) or UNKNOWN_ENDPOINT

    def known_fields(self, node_type: str) -> frozenset[str]:
        if node_type == PHONE_NUMBER_NODE:
            return NUMBER_KNOWN_FIELDS | self._custom_number_fields
        if node_type == WABA_NODE:
            return WABA_KNOWN_FIELDS | self._custom_waba_fields
        if node_type == BUSINESS_NODE:
            return BUSINESS_KNOWN_FIELDS | self._custom_business_fields
        if node_type == TEMPLATE_NODE:
            return TEMPLATE_KNOWN_FIELDS
        raise ValueError(f"unknown node type {node_type!r}")

    def number_waba(self, number_id: str) -> str:
        return self._number_waba[number_id]

    def waba_owner(self, waba_id: str) -> str:
        return self._waba_owner[waba_id]

    def waba_number_ids(self, waba_id: str) -> list[str]:
        return list(self._waba_numbers[waba_id])

    def owned_waba_ids(self, business_id: str) -> list[str]:
        return [w for w in self._owned[business_id] if w in self._wabas]

    def client_waba_ids(self, business_id: str) -> list[str]:
        return [w for w in self._clients[business_id] if w in self._wabas]

    def number_view(self, number_id: str) -> dict[str, Any]:
        """A number's fields as of now: base values, then timeline events up to the phase."""
        try:
            view: dict[str, Any] = _copy_plain(self._numbers[number_id])
        except KeyError:
            raise UnknownObjectError(f"no phone number {number_id!r}") from None
        events = self._events.get(number_id)
        if events:
            phase = self.timeline_phase()
            for event in events:
                if event.at > phase:
                    break
                for key, value in event.set.items():
                    if value is None:
                        view.pop(key, None)
                    else:
                        view[key] = thaw(value)
        return view

    def context_entities(self, waba_id: str) -> list[dict[str, Any]]:
        """WABA, BUSINESS and APP health entities, as they follow a number's own entity."""
        owner = self._waba_owner[waba_id]
        return [
            health_entity("WABA", waba_id, self._waba_fields[waba_id].get("health_status")),
            health_entity("BUSINESS", owner, self._business_health[owner]),
            health_entity("APP", self._scenario.app_id, self._app_health),
        ]

    def number_values(self, number_id: str, wanted: frozenset[str]) -> dict[str, Any]:
        view = self.number_view(number_id)
        waba_id = self._number_waba[number_id]
        if "webhook_configuration" in wanted and "webhook_configuration" not in view:
            # Computed from the overrides and the app's URL unless a scenario sets it verbatim.
            view["webhook_configuration"] = self.webhook_configuration(number_id)
        if LIMIT_FIELD in wanted and LIMIT_FIELD not in view:
            # The portfolio's limit, shared by all its numbers (facts §1.2); a scenario may
            # still set a per-number value, which then wins.
            limit = self.business_limit(self._waba_owner[waba_id])
            if limit is not None:
                view[LIMIT_FIELD] = limit
        context = self.context_entities(waba_id) if "health_status" in wanted else []
        return number_values(view, number_id, wanted=wanted, context_entities=context)

    def waba_values(self, waba_id: str, wanted: frozenset[str]) -> dict[str, Any]:
        self.tick()
        fields = self._waba_fields[waba_id]
        values = {k: _copy_plain(v) for k, v in fields.items() if k in wanted}
        owner_id = self._waba_owner[waba_id]
        owner = self._business_fields[owner_id]
        for key, source in (
            ("business_verification_status", "verification_status"),
            (LIMIT_FIELD, LIMIT_FIELD),
        ):
            if key in wanted and key not in fields and owner.get(source) is not None:
                values[key] = owner[source]
        if "owner_business_info" in wanted:
            values["owner_business_info"] = {"id": owner_id, "name": owner.get("name")}
        if "health_status" in wanted:
            values["health_status"] = health_status(self.context_entities(waba_id))
        return values

    def business_values(self, business_id: str, wanted: frozenset[str]) -> dict[str, Any]:
        self.tick()
        fields = self._business_fields[business_id]
        return {k: _copy_plain(v) for k, v in fields.items() if k in wanted}

    def business_refusal(self, business_id: str) -> GraphError | None:
        """The error a read of this business node gets, if the scenario says it is refused."""
        spec = self._businesses[business_id].node_error
        if spec is None:
            return None
        subcode = spec.get("subcode")
        return GraphError(
            int(spec["status"]),
            int(spec["code"]),
            str(spec["message"]),
            type=str(spec["type"]),
            subcode=None if subcode is None else int(subcode),
        )

    # ------------------------------------------------------------------ timeline actions

    def tick(self) -> None:
        """Run the timeline's account actions that are due (each period, or once)."""
        self.expire_template_pauses()
        if not self._actions:
            return
        elapsed = max(0.0, self.elapsed())
        period = self._scenario.timeline.repeat_every
        cycle = int(elapsed // period) if period else 0
        phase = elapsed - cycle * period if period else elapsed
        at_cycle, index = self._action_cursor
        if at_cycle < cycle - 1:  # a long jump: only the last full period is replayed
            at_cycle, index = cycle - 1, 0
        while (at_cycle, index) <= (cycle, len(self._actions)):
            if index >= len(self._actions):
                at_cycle, index = at_cycle + 1, 0
                continue
            step = self._actions[index]
            if at_cycle == cycle and step.at > phase:
                break
            index += 1
            self._action_cursor = (at_cycle, index)
            if step.once and at_cycle > 0:
                continue
            # e.g. the WABA was deleted meanwhile: a timeline step never fails a request.
            with contextlib.suppress(UnknownTargetError, ValueError):
                self.apply_action(step.action)
        self._action_cursor = (at_cycle, index)

    def run_action(self, action: Action) -> dict[str, Any]:
        """``POST /_sim/actions``: perform ``action`` now (unknown ids: UnknownObjectError)."""
        self.tick()
        try:
            return self.apply_action(action)
        except UnknownTargetError as exc:
            raise UnknownObjectError(str(exc)) from None

    def is_active(self, waba_id: str) -> bool:
        """A WABA with a registered number (platform_type present, not NOT_APPLICABLE)."""
        for number_id in self._waba_numbers.get(waba_id, ()):
            platform = self._numbers[number_id].get("platform_type")
            if number_id in self._events:
                platform = self.number_view(number_id).get("platform_type")
            if platform is not None and platform != "NOT_APPLICABLE":
                return True
        return False

    # ------------------------------------------------------------------ rate limits

    def allowance(self, waba_id: str) -> int:
        """Calls per window this WABA may make (more once it has a registered number)."""
        if self.is_active(waba_id):
            return self._budget.active_per_hour
        return self._budget.default_per_hour

    def _prune(self, calls: deque[float], now: float) -> None:
        horizon = now - self._budget.window_seconds
        while calls and calls[0] <= horizon:
            calls.popleft()

    def admit(self, waba_id: str | None) -> GraphError | None:
        """Check and record one call; a throttle error if over budget (then not recorded)."""
        now = self.clock()
        waba_calls: deque[float] | None = None
        if waba_id is not None:
            waba_calls = self._waba_calls.setdefault(waba_id, deque())
            self._prune(waba_calls, now)
            if len(waba_calls) >= self.allowance(waba_id):
                return errors.buc_throttled()
        self._prune(self._app_calls, now)
        if len(self._app_calls) >= self._budget.app_per_hour:
            return errors.app_throttled()
        if waba_calls is not None:
            waba_calls.append(now)
        self._app_calls.append(now)
        return None

    def _usage(self, calls: deque[float], allowance: int, now: float) -> tuple[int, int]:
        self._prune(calls, now)
        percent = math.ceil(100 * len(calls) / allowance)
        regain = 0
        if calls and len(calls) >= allowance:
            regain = max(1, math.ceil((calls[0] + self._budget.window_seconds - now) / 60))
        return percent, regain

    def app_usage(self) -> dict[str, int]:
        percent, _ = self._usage(self._app_calls, self._budget.app_per_hour, self.clock())
        return {"call_count": percent, "total_time": percent, "total_cputime": percent}

    def buc_usage(self, waba_id: str) -> dict[str, list[dict[str, Any]]]:
        calls = self._waba_calls.setdefault(waba_id, deque())
        percent, regain = self._usage(calls, self.allowance(waba_id), self.clock())
        entry = {
            "type": "whatsapp_business_management",
            "call_count": percent,
            "total_cputime": percent,
            "total_time": percent,
            "estimated_time_to_regain_access": regain,
        }
        return {waba_id: [entry]}

    # ------------------------------------------------------------------ faults

    def inject_fault(self, fault: Fault) -> None:
        self._faults.append((fault, fault.count))

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[tuple[Fault, int]]:
        """Armed faults with their remaining hits (-1: until cleared)."""
        return list(self._faults)

    def take_fault(self, object_id: str, *, is_edge: bool,
                   edge: str | None = None) -> Fault | None:
        """The first armed fault matching this request, using up one of its hits."""
        for index, (fault, remaining) in enumerate(self._faults):
            if not fault.matches(object_id, is_edge=is_edge, edge=edge):
                continue
            if remaining == -1:
                pass
            elif remaining > 1:
                self._faults[index] = (fault, remaining - 1)
            else:
                del self._faults[index]
            return fault
        return None

    # ------------------------------------------------------------------ mutations

    def set_number_fields(self, number_id: str, fields: Mapping[str, Any]) -> None:
        """Change a number's base fields; a ``None`` value removes the field."""
        if number_id not in self._numbers:
            raise UnknownObjectError(f"no phone number {number_id!r}")
        changes = normalize_number_fields(
            fields, "fields", custom=self._custom_number_fields, allow_none=True
        )
        before = self.number_view(number_id) if self._webhook_target is not None else None
        base = self._numbers[number_id]
        for key, value in changes.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        if before is not None:
            # A timeline step not yet announced is folded into this change.
            self._note_number(number_id, self._webhook_seen.get(number_id, _watched(before)))

    def add_number(self, waba_id: str, number_id: str, fields: Mapping[str, Any]) -> None:
        """Add a phone number to a WABA (appended to its list edge)."""
        if waba_id not in self._wabas:
            raise UnknownObjectError(f"no WABA {waba_id!r}")
        if not isinstance(number_id, str) or not _ID.fullmatch(number_id):
            raise ScenarioError(f"id: expected a numeric id string, got {number_id!r}")
        if self.kind_of(number_id) is not None:
            raise ScenarioError(f"id: {number_id!r} is already in use")
        base = normalize_number_fields(fields, "fields", custom=self._custom_number_fields)
        self._numbers[number_id] = base
        self._number_waba[number_id] = waba_id
        self._waba_numbers[waba_id].append(number_id)
        self._former.pop(number_id, None)
        if self._webhook_target is not None:
            limit = self.business_limit(self._waba_owner[waba_id])
            display = base.get("display_phone_number")
            self._outbox.append(onboarding_webhook(waba_id, display, limit))
            if number_id in self._events:
                self._webhook_seen[number_id] = _watched(self.number_view(number_id))

    def remove_number(self, number_id: str) -> None:
        if number_id not in self._numbers:
            raise UnknownObjectError(f"no phone number {number_id!r}")
        waba_id = self._number_waba.pop(number_id)
        del self._numbers[number_id]
        self._waba_numbers[waba_id].remove(number_id)
        self._former[number_id] = "phone_number"
        self._webhook_seen.pop(number_id, None)
        self._forget_number_wiring(number_id)

    def remove_waba(self, waba_id: str) -> None:
        """The WABA and its numbers disappear; calls on them get the code-100/33 error."""
        if waba_id not in self._wabas:
            raise UnknownObjectError(f"no WABA {waba_id!r}")
        for number_id in list(self._waba_numbers[waba_id]):
            self.remove_number(number_id)
        del self._wabas[waba_id]
        del self._waba_numbers[waba_id]
        for template_id in self._templates.pop(waba_id, {}):
            self._template_waba.pop(template_id, None)
            self._template_paused_until.pop(template_id, None)
        self._owned[self._waba_owner.pop(waba_id)].remove(waba_id)
        self._former[waba_id] = "waba"

    # ------------------------------------------------------------------ webhooks

    @property
    def webhook_target(self) -> WebhookTarget | None:
        return self._webhook_target

    def set_webhook_target(
        self,
        url: str,
        app_secret: str,
        *,
        time_as_string: bool = False,
        legacy_quality_events: bool = True,
    ) -> None:
        """Send webhooks to ``url`` from now on; changes before this moment are not announced."""
        self.tick()  # timeline steps already due are not announced either
        self._webhook_target = webhook_target(
            url,
            app_secret,
            time_as_string=time_as_string,
            legacy_quality_events=legacy_quality_events,
        )
        self._outbox.clear()
        self._webhook_seen = {
            n: _watched(self.number_view(n)) for n in self._events if n in self._numbers
        }

    def clear_webhook_target(self) -> None:
        self._webhook_target = None
        self._outbox.clear()
        self._webhook_seen.clear()

    @property
    def webhook_time_as_string(self) -> bool:
        target = self._webhook_target
        return target is not None and target.time_as_string

    def _note_number(self, number_id: str, old: Mapping[str, Any]) -> None:
        """Queue the webhooks for a number whose watched fields were ``old`` a moment ago."""
        view = self.number_view(number_id)
        waba_id = self._number_waba[number_id]
        target = self._webhook_target
        self._outbox.extend(
            number_change_webhooks(
                waba_id,
                old,
                view,
                legacy=target is None or target.legacy_quality_events,
                portfolio_limit=self.business_limit(self._waba_owner[waba_id]),
            )
        )
        if number_id in self._webhook_seen:
            self._webhook_seen[number_id] = _watched(view)

    def collect_webhooks(self) -> list[PendingWebhook]:
        """Webhooks due since the last call, including timeline steps reached meanwhile."""
        self.tick()
        if self._webhook_target is None:
            return []
        for number_id, seen in list(self._webhook_seen.items()):
            if number_id in self._numbers and _watched(self.number_view(number_id)) != seen:
                self._note_number(number_id, seen)
        pending, self._outbox = self._outbox, []
        delivered = []
        for item in pending:
            if self.app_subscribed(item.waba_id):
                delivered.append(item)
            else:  # Meta sends nothing for a WABA the app is not subscribed to (facts §5)
                self.record_webhook(item.field, item.waba_id, None, NOT_SUBSCRIBED, item.route)
        return delivered

    def record_webhook(
        self,
        field: str,
        waba_id: str,
        status: int | None,
        error: str | None,
        route: str | None = None,
    ) -> dict[str, Any]:
        """Remember one delivery attempt (no URL, no secret) for ``GET /_sim/webhooks/sent``;
        ``route`` (message traffic only) names the override level that chose the URL."""
        record: dict[str, Any] = {
            "field": field,
            "waba_id": waba_id,
            "status": status,
            "error": error,
            "time": self.clock(),
        }
        if route is not None:
            record["route"] = route
        self._webhooks_sent.append(record)
        return dict(record)

    def webhooks_sent(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._webhooks_sent]

    # ------------------------------------------------------------------ dump

    def state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot of everything, for ``GET /_sim/state`` and debugging."""
        self.tick()
        wabas = []
        for waba_id in self._wabas:
            calls = self._waba_calls.get(waba_id, deque())
            self._prune(calls, self.clock())
            templates = self.templates_state().get(waba_id)
            extra = {} if templates is None else {"templates": templates}
            wabas.append(
                {
                    **extra,
                    "id": waba_id,
                    "owner_business_id": self._waba_owner[waba_id],
                    "fields": _copy_plain(self._waba_fields[waba_id]),
                    "account": self.account(waba_id),
                    "active": self.is_active(waba_id),
                    "allowance_per_window": self.allowance(waba_id),
                    "calls_in_window": len(calls),
                    "numbers": [
                        {"id": n, **self.number_view(n)} for n in self._waba_numbers[waba_id]
                    ],
                }
            )
        return {
            "clock": self.clock(),
            "elapsed": self.elapsed(),
            "timeline_phase": self.timeline_phase(),
            "app_id": self._scenario.app_id,
            "budget": {
                "default_per_hour": self._budget.default_per_hour,
                "active_per_hour": self._budget.active_per_hour,
                "app_per_hour": self._budget.app_per_hour,
                "window_seconds": self._budget.window_seconds,
                "app_calls_in_window": len(self._app_calls),
            },
            "businesses": [
                {
                    "id": b.id,
                    "fields": _copy_plain(self._business_fields[b.id]),
                    "health": _copy_plain(self._business_health[b.id]),
                    "node_read_refused": b.node_error is not None,
                    "capabilities": self.capabilities(b.id),
                    "owned_wabas": self.owned_waba_ids(b.id),
                    "client_wabas": self.client_waba_ids(b.id),
                }
                for b in self._businesses.values()
            ],
            "wabas": wabas,
            "app_health": _copy_plain(self._app_health),
            "alerts": self.alerts(),
            "wiring": self.wiring_state(),
            "faults": [{**f.to_json(), "remaining": n} for f, n in self._faults],
            "stats": self.stats(),
            "webhooks": {
                "target_set": self._webhook_target is not None,
                "sent": len(self._webhooks_sent),
            },
        }


def _watched(view: Mapping[str, Any]) -> dict[str, Any]:
    """The number fields whose changes are announced by webhook."""
    return {key: view.get(key) for key in WATCHED_NUMBER_FIELDS}
