"""A ``WebhookSink`` for receiver and handler tests: records every call, stages and commits in
memory, knows which WABAs are watched, and can be told to fail."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from monitor.accounts import AccountAlert, WabaFacts

WABA = "102290129340398"
BUSINESS = "506914307656634"
NUMBER_ID = "106540352242922"
DISPLAY = "15550783881"
NOW = 1_750_000_000.0


@dataclass
class FakeSink:
    caps: list[tuple[str, int, str]] = field(default_factory=list)
    repolls: list[tuple[str, str]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    discoveries: list[tuple[str, str | None, str]] = field(default_factory=list)
    limits: list[tuple[str, str, str]] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=lambda: {DISPLAY: NUMBER_ID})
    wabas: dict[str, str] = field(default_factory=lambda: {WABA: BUSINESS})  # watched -> owner
    businesses: set[str] = field(default_factory=lambda: {BUSINESS})
    staged_facts: dict[str, WabaFacts] = field(default_factory=dict)
    facts: dict[str, WabaFacts] = field(default_factory=dict)  # committed
    staged_alerts: list[AccountAlert] = field(default_factory=list)
    alerts: list[AccountAlert] = field(default_factory=list)  # committed
    staged_caps: list[tuple[str, int, str]] = field(default_factory=list)
    commits: int = 0
    actions: list[str] = field(default_factory=list)  # every staging and request, in order
    clock: float = NOW
    fail: bool = False
    fail_lookup: bool = False
    fail_commit: bool = False

    def _check(self, action: str | None = None) -> None:
        if self.fail:
            raise RuntimeError("sink exploded")
        if action is not None:
            self.actions.append(action)

    # --- reading
    def now(self) -> float:
        return self.clock

    def owner_of(self, waba_id: str) -> str | None:
        self._check()
        return self.wabas.get(waba_id)

    def knows_business(self, business_id: str) -> bool:
        return business_id in self.businesses

    def waba_facts(self, waba_id: str) -> WabaFacts:
        return self.staged_facts.get(waba_id) or self.facts.get(waba_id) or WabaFacts()

    def already_applied(self, waba_id: str, key: str) -> bool:
        return self.waba_facts(waba_id).seen(key)

    def phone_number_id_for(self, display_phone_number: str) -> str | None:
        self.lookups.append(display_phone_number)
        if self.fail_lookup:
            raise RuntimeError("lookup exploded")
        return self.numbers.get(re.sub(r"\D", "", display_phone_number))

    # --- staging and acting
    def stage_waba_facts(self, waba_id: str, facts: WabaFacts) -> None:
        self._check("stage_waba_facts")
        assert waba_id in self.wabas, "facts are staged only for watched WABAs"
        self.staged_facts[waba_id] = facts

    def stage_account_alert(self, alert: AccountAlert) -> None:
        self._check("stage_account_alert")
        self.staged_alerts.append(alert)

    def learn_cap(self, *, waba_id: str, cap: int, source_field: str) -> None:
        self._check("learn_cap")
        self.staged_caps.append((waba_id, cap, source_field))

    def set_messaging_limit(self, *, waba_id: str, limit: str, source_field: str) -> None:
        self._check("set_messaging_limit")
        self.limits.append((waba_id, limit, source_field))

    def request_repoll(self, *, waba_id: str, reason: str) -> None:
        self._check("request_repoll")
        self.repolls.append((waba_id, reason))

    def request_discovery(self, *, waba_id: str, owner_business_id: str | None,
                          reason: str) -> None:
        self._check("request_discovery")
        self.discoveries.append((waba_id, owner_business_id, reason))

    async def commit(self) -> None:
        if self.fail_commit:
            raise OSError("disk full")
        self.commits += 1
        self.facts.update(self.staged_facts)
        self.alerts.extend(self.staged_alerts)
        self.caps.extend(self.staged_caps)
        self.staged_facts, self.staged_alerts, self.staged_caps = {}, [], []

    # --- for assertions
    @property
    def calls(self) -> int:
        """Everything a handler did (lookups for the log aside)."""
        return len(self.actions)

    def fact(self, waba_id: str = WABA) -> WabaFacts:
        return self.waba_facts(waba_id)

    def without_keys(self, waba_id: str = WABA) -> WabaFacts:
        return dataclasses.replace(self.waba_facts(waba_id), applied=())
