"""Every metric family the snapshot exports, each declared once, kube-state-metrics style.

A declaration holds the family's name, type, help text, label names and the function that
produces its samples from the object it describes: a phone number within its WABA, a WABA's
state, a business summary, or a usage reading. Formatting, headers and compression are
``exposition.py``'s business; this module only says *what* is exported.

The order of ``FAMILIES`` is the order of families in ``/metrics``: keep it stable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from monitor.accounts import (
    CATEGORY_NOTICE_SECONDS,
    KNOWN_BAN_STATE,
    KNOWN_LIMIT_TIER,
    KNOWN_REVIEW_STATUS,
    KNOWN_TEMPLATE_QUALITY,
    KNOWN_TEMPLATE_STATUS,
    KNOWN_VERIFICATION_STATUS,
    AccountAlert,
    Template,
    WabaFacts,
    review_status,
)
from monitor.family_kinds import (
    ALERT,
    BUSINESS,
    NUMBER,
    USAGE,
    WABA,
    WABA_ACCOUNT,
    Family,
    Flag,
    NumberInWaba,
    S,
    Sample,
    StateSet,
    Subject,
    Value,
    WabaAccount,
)
from monitor.graph.usage import BucUsage
from monitor.model import (
    KNOWN_CODE_VERIFICATION_STATUS,
    KNOWN_HEALTH,
    KNOWN_MESSAGING_LIMIT,
    KNOWN_NAME_STATUS,
    KNOWN_QUALITY_RATING,
    KNOWN_STATUS,
    KNOWN_THROUGHPUT_LEVEL,
    MESSAGING_LIMIT_PER_DAY,
    HealthError,
    PhoneNumber,
    WabaState,
)

__all__ = [  # the building blocks are used through this module too
    "ALERT", "ALERT_FAMILIES", "BUSINESS", "BUSINESS_FAMILIES", "DEPRECATED_FAMILIES",
    "FAMILIES", "FAMILY_NAMES", "NUMBER", "NUMBER_FAMILIES", "USAGE", "USAGE_FAMILIES", "WABA",
    "WABA_ACCOUNT", "WABA_ACCOUNT_FAMILIES", "WABA_FAMILIES", "Family", "Flag", "NumberInWaba",
    "S", "Sample", "StateSet", "Subject", "Value", "WabaAccount", "families_of",
    "health_errors",
]

_FROM_MEMORY = " Served from memory; refreshed by background polls of the Graph API."
_LAST_GOOD = " After a failed poll the last good value stays (see whatsapp_monitor_waba_up)."


def _stateset_help(what: str) -> str:
    return (
        f"{what}: one series per known value (1 for the current one, 0 otherwise), plus the "
        f"observed value when the API returns one that is not known.{_LAST_GOOD}{_FROM_MEMORY}"
    )


def _enum(name: str, what: str, label: str, get: Callable[[NumberInWaba], str | None],
          known: tuple[str, ...]) -> Family[NumberInWaba]:
    """A StateSet family of a phone-number field."""
    return Family(name, "gauge", _stateset_help(what), NUMBER, (label,), StateSet(get, known))


_INFO_LABELS = ("display_phone_number", "verified_name", "platform_type", "account_mode")
_MEASURES = ("call_count", "total_cputime", "total_time")


def _info(row: NumberInWaba) -> Iterator[Sample]:
    n = row.number
    yield (n.display_phone_number, n.verified_name, n.platform_type, n.account_mode), 1


def _connected(number: PhoneNumber) -> bool | None:
    return None if number.status is None else number.status == "CONNECTED"


def _calls_per_hour(state: WabaState) -> float | None:
    if state.interval is None:
        return None
    return 3600.0 * max(1, state.last_requests) / state.interval


def _budget_remaining(state: WabaState) -> float | None:
    return None if state.usage_ratio is None else max(0.0, 1 - state.usage_ratio)


def _usage_ratio(entry: BucUsage) -> Iterator[Sample]:
    for measure in _MEASURES:
        yield (measure,), getattr(entry, measure) / 100.0


def health_errors(account: WabaAccount) -> tuple[HealthError, ...]:
    """Every blocking or limiting error of every entity, from the WABA node and its numbers'
    ``health_status``, once each (numbers repeat their WABA's and business's entities)."""
    seen: dict[tuple[str, str, str], HealthError] = {}
    sources = [account.node.health_errors] if account.node else []
    sources.extend(n.health_errors for n in account.state.numbers if n.health_errors)
    for errors in sources:
        for error in errors:
            seen.setdefault((error.entity_type, error.entity_id, error.error_code), error)
    return tuple(seen[k] for k in sorted(seen))


def _waba_info(account: WabaAccount) -> Iterator[Sample]:
    """Present for every watched WABA, so alerts can join it for a name; what the node did
    not say (or before it was read) is left out of the labels."""
    node = account.node
    if node is None:
        yield (None, None, None), 1
    else:
        yield (node.name, node.ownership_type, node.timezone_id), 1


def _health_error_samples(account: WabaAccount) -> Iterator[Sample]:
    for error in health_errors(account):
        yield (error.entity_type, error.entity_id, error.error_code), 1


def _restrictions(account: WabaAccount) -> Iterator[Sample]:
    if account.facts is not None:
        for restriction in account.facts.active_restrictions(account.now):
            expiry = restriction.expires_at
            yield (restriction.restriction_type,), math.inf if expiry is None else expiry


def _counts(get: Callable[[WabaFacts], Mapping[str, float]]
            ) -> Callable[[WabaAccount], Iterator[Sample]]:
    def samples(account: WabaAccount) -> Iterator[Sample]:
        if account.facts is not None:
            values = get(account.facts)
            for key in sorted(values):
                yield (key,), values[key]
    return samples


def _fact(get: Callable[[WabaFacts], float | None]) -> Value[WabaAccount]:
    return Value(lambda a: None if a.facts is None else get(a.facts))


def _identity_checks(account: WabaAccount) -> Iterator[Sample]:
    for number_id in sorted(account.identity_checks):
        yield (number_id,), 1 if account.identity_checks[number_id] else 0


def _security_events(account: WabaAccount) -> Iterator[Sample]:
    if account.facts is not None:
        known = {n.id for n in account.state.numbers}
        events = account.facts.security_events
        for number_id in sorted(n for n in events if n in known):
            for event in sorted(events[number_id]):
                yield (number_id, event), events[number_id][event]


def _template_counts(get: Callable[[Template], str | None], known: tuple[str, ...]
                     ) -> Callable[[WabaAccount], Iterator[Sample]]:
    """Templates of the WABA per value (every known value, 0 included, once read)."""
    def samples(account: WabaAccount) -> Iterator[Sample]:
        if account.templates is None:
            return
        counts = Counter(get(t) or "UNKNOWN" for t in account.templates)
        for value in (*known, *sorted(v for v in counts if v not in known)):
            yield (value,), counts.get(value, 0)
    return samples


def _per_template(samples_of: Callable[[Template], Iterable[tuple[tuple[str | None, ...], float]]]
                  ) -> Callable[[WabaAccount], Iterator[Sample]]:
    def samples(account: WabaAccount) -> Iterator[Sample]:
        for template in account.template_series:
            for labels, value in samples_of(template):
                yield (template.id, template.name, template.language, *labels), value
    return samples


def _enum_samples(value: str | None, known: tuple[str, ...]
                  ) -> Iterator[tuple[tuple[str | None, ...], float]]:
    if value is None:
        return
    for candidate in known:
        yield (candidate,), 1 if candidate == value else 0
    if value not in known:
        yield (value,), 1


def _paused_until(account: WabaAccount) -> Iterator[Sample]:
    told = account.facts.templates if account.facts is not None else {}
    for t in account.template_series:
        fact = told.get(t.id)
        if t.status == "PAUSED" and fact is not None and fact.paused_until is not None:
            yield (t.id, t.name, t.language), fact.paused_until


def _category_change(account: WabaAccount) -> Iterator[Sample]:
    """When an announced change happens: Meta's time, else the read's plus the day's notice
    Meta gives (the read shows ``correct_category`` but no time)."""
    told = account.facts.templates if account.facts is not None else {}
    for t in account.template_series:
        if not t.category_change_pending:
            continue
        fact = told.get(t.id)
        when = (fact.category_change_at if fact is not None
                and fact.new_category == t.correct_category else None)
        if when is None:
            when = account.templates_read_at + CATEGORY_NOTICE_SECONDS
        yield (t.id, t.name, t.language, t.correct_category), when


_TEMPLATE_LABELS = ("template_id", "template_name", "language")
_TEMPLATE_SERIES = (" Per template only where templates.series says (default: templates with a "
                    "problem).")


def _alert(alert: AccountAlert) -> Iterator[Sample]:
    yield (alert.entity_type, alert.entity_id, alert.alert_type, alert.alert_severity), alert.at


_DEPRECATED_LIMIT = (
    " Deprecated: since 7 Oct 2025 the limit belongs to the business portfolio and every "
    "number repeats it; use whatsapp_business_messaging_limit_tier / _per_day. Not served "
    "unless metrics.include names it."
)
_LIMIT_MEANING = ("unique WhatsApp users the business may reach outside customer-service "
                  "windows in a moving 24 h")
_WEBHOOK_FACT = " Told only by webhook; kept in the state file across restarts."

FAMILIES: tuple[Family[Any], ...] = (
    Family("whatsapp_phone_number_info", "gauge",
           "Always 1; descriptive facts about a phone number, to join on phone_number_id."
           + _FROM_MEMORY, NUMBER, _INFO_LABELS, _info),
    _enum("whatsapp_phone_number_status", "Operating status", "status",
          lambda row: row.number.status, KNOWN_STATUS),
    Family("whatsapp_phone_number_status_last_change_timestamp_seconds", "gauge",
           "Unix time the number's status was last seen to change (or the number was first "
           "seen). Survives restarts through the state file.", NUMBER, (),
           Value(lambda row: row.waba.status_changed_at.get(row.number.id))),
    Family("whatsapp_phone_number_connected", "gauge",
           "1 when the number's status is CONNECTED (it can send and receive), else 0."
           + _LAST_GOOD, NUMBER, (), Flag(lambda row: _connected(row.number))),
    _enum("whatsapp_phone_number_quality_rating", "Quality rating", "rating",
          lambda row: row.number.quality_rating, KNOWN_QUALITY_RATING),
    _enum("whatsapp_phone_number_name_status", "Display-name status", "name_status",
          lambda row: row.number.name_status, KNOWN_NAME_STATUS),
    _enum("whatsapp_phone_number_throughput_level", "Throughput level", "level",
          lambda row: row.number.throughput_level, KNOWN_THROUGHPUT_LEVEL),
    _enum("whatsapp_phone_number_code_verification_status", "Code (OTP) verification status",
          "code_verification_status", lambda row: row.number.code_verification_status,
          KNOWN_CODE_VERIFICATION_STATUS),
    _enum("whatsapp_phone_number_health_status", "Overall health_status.can_send_message",
          "can_send_message", lambda row: row.number.health_status, KNOWN_HEALTH),
    _enum("whatsapp_phone_number_messaging_limit_tier",
          "Messaging limit tier of the owning portfolio, as this number reports it."
          + _DEPRECATED_LIMIT + " Per tier", "tier",
          lambda row: row.number.messaging_limit, KNOWN_MESSAGING_LIMIT),
    Family("whatsapp_phone_number_messaging_limit_per_day", "gauge",
           f"The owning portfolio's messaging limit as this number reports it: {_LIMIT_MEANING} "
           "(+Inf when unlimited)." + _DEPRECATED_LIMIT + _LAST_GOOD, NUMBER, (),
           Value(lambda row: MESSAGING_LIMIT_PER_DAY.get(row.number.messaging_limit or ""))),
    Family("whatsapp_phone_number_registered", "gauge",
           "1 when the number is registered with Cloud API or On-Premises API "
           "(platform_type other than NOT_APPLICABLE) and so counts toward the cap." + _LAST_GOOD,
           NUMBER, (), Flag(lambda row: row.number.registered)),
    Family("whatsapp_phone_number_official_business_account", "gauge",
           "1 when the number is an Official Business Account." + _LAST_GOOD, NUMBER, (),
           Flag(lambda row: row.number.is_official_business_account)),
    Family("whatsapp_phone_number_two_step_verification_enabled", "gauge",
           "1 when two-step verification (a PIN) is on for the number (is_pin_enabled), "
           "else 0." + _LAST_GOOD, NUMBER, (), Flag(lambda row: row.number.pin_enabled)),
    Family("whatsapp_phone_number_last_onboarded_timestamp_seconds", "gauge",
           "Unix time the number was last onboarded to its WABA (last_onboarded_time).",
           NUMBER, (), Value(lambda row: row.number.last_onboarded)),
    _enum("whatsapp_phone_number_new_name_status",
          "Review status of a requested new display name (new_name_status)", "name_status",
          lambda row: row.number.new_name_status, KNOWN_NAME_STATUS),
    Family("whatsapp_phone_number_webhook_override", "gauge",
           "1 for each level (phone_number, whatsapp_business_account) whose callback URL "
           "overrides the app's for this number's message webhooks.", NUMBER, ("level",),
           lambda row: [((level,), 1) for level in row.number.webhook_overrides]),
    Family("whatsapp_phone_number_webhook_callback_matches", "gauge",
           "1 when the number's effective callback URL (number override, else WABA override, "
           "else the app's) is webhooks.expected_callback_url, else 0; absent when that key is "
           "not set.", NUMBER, (), Flag(lambda row: row.number.callback_matches)),
    Family("whatsapp_business_registered_phone_numbers", "gauge",
           "Registered phone numbers across all WABAs owned by the business portfolio."
           + _FROM_MEMORY, BUSINESS, (), Value(lambda s: s.registered)),
    Family("whatsapp_business_registered_phone_numbers_cap", "gauge",
           "How many registered phone numbers the business portfolio may have.", BUSINESS, (),
           Value(lambda s: s.cap)),
    Family("whatsapp_business_registered_phone_numbers_cap_info", "gauge",
           "Always 1; where the registration cap comes from (config, webhook, inferred).",
           BUSINESS, ("source",), lambda s: [((s.cap_source,), 1)]),
    Family("whatsapp_business_phone_numbers", "gauge",
           "Phone numbers known across all WABAs owned by the business portfolio.", BUSINESS, (),
           Value(lambda s: s.numbers)),
    Family("whatsapp_business_messaging_limit_per_day", "gauge",
           f"The business portfolio's shared messaging limit: {_LIMIT_MEANING}, for all its "
           "numbers together (+Inf when unlimited). Read from the business node where the "
           "token may, else a WABA node or its numbers; a capability webhook updates it at "
           "once." + _FROM_MEMORY, BUSINESS, (),
           Value(lambda s: MESSAGING_LIMIT_PER_DAY.get(s.messaging_limit or ""))),
    Family("whatsapp_business_messaging_limit_tier", "gauge",
           _stateset_help("The business portfolio's shared messaging-limit tier"), BUSINESS,
           ("tier",), StateSet(lambda s: s.messaging_limit, KNOWN_LIMIT_TIER)),
    Family("whatsapp_business_verification_status", "gauge",
           _stateset_help("Business verification status of the portfolio (lower case)"),
           BUSINESS, ("verification_status",),
           StateSet(lambda s: s.verification_status, KNOWN_VERIFICATION_STATUS)),
    Family("whatsapp_business_identity_key_check_required", "gauge",
           "1 when the configuration requires the identity change check on every number of "
           "the business (businesses[].require_identity_key_check); absent otherwise.",
           BUSINESS, (), Value(lambda s: 1.0 if s.identity_check_required else None)),
    Family("whatsapp_account_alert_timestamp_seconds", "gauge",
           "Unix time of the last account_alerts webhook of each type for each entity of the "
           "portfolio (entity_id: a portfolio or phone-number id); alert_severity is Meta's "
           "CRITICAL, WARNING or INFORMATIONAL." + _WEBHOOK_FACT, ALERT,
           ("entity_type", "entity_id", "alert_type", "alert_severity"), _alert),
    Family("whatsapp_waba_info", "gauge",
           "Always 1, for every watched WABA; descriptive facts from its node (read at the "
           "discovery cadence; left out until known), to join on waba_id.", WABA_ACCOUNT,
           ("name", "ownership_type", "timezone_id"), _waba_info),
    Family("whatsapp_waba_account_review_status", "gauge",
           _stateset_help("Account review status of the WABA (node, or an "
                          "account_review_update webhook when newer); only APPROVED is usable"),
           WABA_ACCOUNT, ("status",),
           StateSet(lambda a: review_status(a.node, a.facts), KNOWN_REVIEW_STATUS)),
    Family("whatsapp_waba_health_status", "gauge",
           _stateset_help("The WABA node's health_status.can_send_message"), WABA_ACCOUNT,
           ("can_send_message",),
           StateSet(lambda a: a.node.can_send_message if a.node else None, KNOWN_HEALTH)),
    Family("whatsapp_health_status_error", "gauge",
           "1 for each error of each health_status entity (BUSINESS, WABA, PHONE_NUMBER, APP) "
           "that is LIMITED or BLOCKED, from the WABA node and its numbers: what stops "
           "messaging, and who must act.", WABA_ACCOUNT,
           ("entity_type", "entity_id", "error_code"), _health_error_samples),
    Family("whatsapp_waba_ban_state", "gauge",
           _stateset_help("Ban state from the last DISABLED_UPDATE account_update")
           + _WEBHOOK_FACT, WABA_ACCOUNT, ("state",),
           StateSet(lambda a: a.facts.ban_state if a.facts else None, KNOWN_BAN_STATE)),
    Family("whatsapp_waba_ban_date_timestamp_seconds", "gauge",
           "Unix time of the ban date Meta gave with the last ban-state change (the date it "
           "takes effect for SCHEDULE_FOR_DISABLE); absent when it could not be read."
           + _WEBHOOK_FACT, WABA_ACCOUNT, (), _fact(lambda f: f.ban_date)),
    Family("whatsapp_waba_restriction_expiry_timestamp_seconds", "gauge",
           "One series per active restriction of the WABA (ACCOUNT_RESTRICTION): the Unix "
           "time it ends, +Inf when Meta gave no end; gone once it has expired."
           + _WEBHOOK_FACT, WABA_ACCOUNT, ("restriction_type",), _restrictions),
    Family("whatsapp_waba_violations_total", "counter",
           "Policy violations Meta reported for the WABA (account_update violation_info), by "
           "type." + _WEBHOOK_FACT, WABA_ACCOUNT, ("violation_type",),
           _counts(lambda f: f.violations)),
    Family("whatsapp_waba_account_event_timestamp_seconds", "gauge",
           "Unix time of the last account_update event of each type for the WABA."
           + _WEBHOOK_FACT, WABA_ACCOUNT, ("event",), _counts(lambda f: f.events)),
    Family("whatsapp_waba_app_subscribed", "gauge",
           "1 when the app named by graph.app_id is in the WABA's subscribed_apps (it receives "
           "the WABA's webhooks), 0 when not; absent when unknown. Read at the discovery "
           "cadence.", WABA_ACCOUNT, (), Flag(lambda a: a.subscribed)),
    Family("whatsapp_phone_number_identity_key_check_enabled", "gauge",
           "1 when the number's identity change check (user_identity_change) is on, 0 when "
           "off; absent until read or when its settings cannot be read. Read every "
           "schedule.settings_interval.", WABA_ACCOUNT, ("phone_number_id",), _identity_checks),
    Family("whatsapp_phone_number_security_event_timestamp_seconds", "gauge",
           "Unix time of the last security webhook of each event for the number (PIN_CHANGED, "
           "PIN_RESET_REQUEST, PIN_REQUEST_SUCCESS, ...)." + _WEBHOOK_FACT, WABA_ACCOUNT,
           ("phone_number_id", "event"), _security_events),
    Family("whatsapp_waba_message_templates", "gauge",
           "Message templates of the WABA by status, at the last template read "
           "(schedule.template_interval).", WABA_ACCOUNT, ("status",),
           _template_counts(lambda t: t.status, KNOWN_TEMPLATE_STATUS)),
    Family("whatsapp_waba_message_templates_by_quality", "gauge",
           "Message templates of the WABA by quality score, at the last template read.",
           WABA_ACCOUNT, ("quality",),
           _template_counts(lambda t: t.quality, KNOWN_TEMPLATE_QUALITY)),
    Family("whatsapp_message_template_info", "gauge",
           "Always 1; a template's category." + _TEMPLATE_SERIES, WABA_ACCOUNT,
           (*_TEMPLATE_LABELS, "category"), _per_template(lambda t: [((t.category,), 1)])),
    Family("whatsapp_message_template_status", "gauge",
           _stateset_help("A template's status") + _TEMPLATE_SERIES, WABA_ACCOUNT,
           (*_TEMPLATE_LABELS, "status"),
           _per_template(lambda t: _enum_samples(t.status, KNOWN_TEMPLATE_STATUS))),
    Family("whatsapp_message_template_quality", "gauge",
           _stateset_help("A template's quality score") + _TEMPLATE_SERIES, WABA_ACCOUNT,
           (*_TEMPLATE_LABELS, "quality"),
           _per_template(lambda t: _enum_samples(t.quality, KNOWN_TEMPLATE_QUALITY))),
    Family("whatsapp_message_template_paused_until_timestamp_seconds", "gauge",
           "When a paused template's pause ends: what Meta's pause ladder implies from the "
           "pause webhook (FIRST_PAUSE 3 h, SECOND_PAUSE 6 h); absent for a pause by pacing, "
           "which does not end by itself." + _TEMPLATE_SERIES, WABA_ACCOUNT, _TEMPLATE_LABELS,
           _paused_until),
    Family("whatsapp_message_template_category_change_timestamp_seconds", "gauge",
           "When an announced category change takes effect (template_category_update's time, "
           "else a day after the read that showed it); new_category is what it becomes. Gone "
           "once changed." + _TEMPLATE_SERIES, WABA_ACCOUNT, (*_TEMPLATE_LABELS, "new_category"),
           _category_change),
    Family("whatsapp_waba_phone_numbers_cap", "gauge",
           "How many phone numbers the WABA may have (max_phone_numbers_per_waba from "
           "business_capability_update; not the portfolio's registration cap)."
           + _WEBHOOK_FACT, WABA_ACCOUNT, (), _fact(lambda f: f.phone_numbers_cap)),
    Family("whatsapp_monitor_waba_up", "gauge",
           "1 if the last poll of the WABA succeeded, else 0. After a failure the WABA's "
           "last good values stay exported and the last-success timestamp does not move.",
           WABA, (), Flag(lambda w: w.up)),
    Family("whatsapp_monitor_waba_throttled", "gauge",
           "1 while the WABA waits on a Graph API throttle: in line within a poll (at most "
           "graph.max_throttle_wait per poll in total), or parked until the regain time the "
           "usage header gave, sending nothing; 0 otherwise.", WABA_ACCOUNT, (),
           Flag(lambda a: a.throttled)),
    Family("whatsapp_monitor_waba_last_success_timestamp_seconds", "gauge",
           "Unix time of the last successful poll of the WABA.", WABA, (),
           Value(lambda w: w.last_success)),
    Family("whatsapp_monitor_waba_last_poll_timestamp_seconds", "gauge",
           "Unix time of the last poll attempt of the WABA, successful or not.", WABA, (),
           Value(lambda w: w.last_attempt)),
    Family("whatsapp_monitor_waba_phone_numbers", "gauge",
           "Phone numbers in the WABA at its last successful poll.", WABA, (),
           Value(lambda w: None if w.last_success is None else len(w.numbers))),
    Family("whatsapp_monitor_waba_last_poll_requests", "gauge",
           "Graph API requests the last poll of the WABA made (retries included).", WABA, (),
           Value(lambda w: None if w.last_attempt is None else w.last_requests)),
    Family("whatsapp_monitor_waba_poll_interval_seconds", "gauge",
           "Seconds between polls of the WABA: the scan interval, or longer to stay within its "
           "Graph API budget.", WABA, (), Value(lambda w: w.interval)),
    Family("whatsapp_monitor_waba_api_allowance_per_hour", "gauge",
           "Meta's hourly Business Use Case allowance for the WABA as the monitor reckons it: "
           "200, or 5,000 once it has a registered number.", WABA, (),
           Value(lambda w: w.allowance_per_hour)),
    Family("whatsapp_monitor_waba_api_calls_per_hour", "gauge",
           "Graph API calls an hour the monitor spends on the WABA at its current pace.",
           WABA, (), Value(_calls_per_hour)),
    Family("whatsapp_monitor_waba_api_budget_remaining_ratio", "gauge",
           "1 minus the last X-Business-Use-Case-Usage reading for the WABA (0 = throttled); "
           "absent until Meta sends one.", WABA, (), Value(_budget_remaining)),
    Family("whatsapp_monitor_graph_business_use_case_usage_ratio", "gauge",
           "Last X-Business-Use-Case-Usage reading per object and type, as a ratio of the "
           "hourly allowance (throttled at 1).", USAGE, ("measure",), _usage_ratio),
    Family("whatsapp_monitor_graph_business_use_case_regain_access_seconds", "gauge",
           "Last estimated time to regain access per object and type, from "
           "X-Business-Use-Case-Usage (0 when not throttled).", USAGE, (),
           Value(lambda e: e.regain_access_seconds)),
    Family("whatsapp_monitor_waba_polls_total", "counter", "Polls of the WABA attempted.",
           WABA, (), Value(lambda w: w.polls)),
    Family("whatsapp_monitor_waba_poll_failures_total", "counter",
           "Polls of the WABA that failed.", WABA, (), Value(lambda w: w.failures)),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def families_of(subject: Subject[S]) -> tuple[Family[S], ...]:
    """The families describing one kind of object, in exposition order."""
    return tuple(cast(Family[S], f) for f in FAMILIES if f.subject is subject)


NUMBER_FAMILIES = families_of(NUMBER)
WABA_FAMILIES = families_of(WABA)
BUSINESS_FAMILIES = families_of(BUSINESS)
USAGE_FAMILIES = families_of(USAGE)
WABA_ACCOUNT_FAMILIES = families_of(WABA_ACCOUNT)
ALERT_FAMILIES = families_of(ALERT)
# Served only when metrics.include names them (they repeat a portfolio value per number).
DEPRECATED_FAMILIES = frozenset({"whatsapp_phone_number_messaging_limit_tier",
                                 "whatsapp_phone_number_messaging_limit_per_day"})
