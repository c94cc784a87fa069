"""End to end: simulator -> daemon -> real Prometheus (the repository's rules) -> real
Alertmanager (the shipped config) -> a webhook receiver, all on 127.0.0.1.

The shipped configurations are copied with short timings, never edited: every rule's `for:`
becomes 2s, every Alertmanager route groups after 1s, every webhook points at the test's
receiver with send_resolved on, and the inhibit rules are kept. Prometheus scrapes and
evaluates every second, the daemon polls every second.

One stack serves the whole module. Prometheus and Alertmanager run in their own process groups
and are killed when the module ends, whatever happened; the simulator, the daemon and the
receiver run on a background event loop that is stopped the same way.

Prometheus and Alertmanager must be installed (CI installs them); without them these tests
fail, they never skip.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from monitor.simulator import BusinessSpec, Fault, NumberSpec, Scenario, WabaSpec, builtin_scenario
from tests.e2e.procs import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    RULE_FILES,
    QueryError,
    Service,
    alertmanager_binary,
    http_json,
    loaded_rule_groups,
    prom_query,
    prometheus_binary,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.e2e.promql import PARSE_VALUES, dashboard_queries, load_dashboard, substitute
from tests.e2e.stack import (
    Notification,
    Product,
    RunningProduct,
    fast_alertmanager_config,
    prometheus_config,
    short_rules,
)

pytestmark = pytest.mark.e2e

ALERT_TIMEOUT = 30.0  # seconds; an alert normally arrives within 4-7 s


def shipped_job_name() -> str:
    """The scrape job of deploy/prometheus/prometheus.yml, which the rules select on."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = [c["job_name"] for c in config["scrape_configs"]]
    assert jobs == ["waba-monitor"], jobs
    return str(jobs[0])


def registered(waba: WabaSpec) -> int:
    """Numbers that count toward the cap, as the exporter defines it."""
    return sum(1 for n in waba.numbers
               if n.fields.get("platform_type") not in (None, "NOT_APPLICABLE"))


def business_below_cap(scenario: Scenario) -> tuple[BusinessSpec, int]:
    """The business with the fewest registered numbers (at least one WABA), and that count."""
    candidates = [(sum(registered(w) for w in b.wabas), b) for b in scenario.businesses
                  if b.wabas]
    count, business = min(candidates, key=lambda c: c[0])
    return business, count


def steady_connected_number(scenario: Scenario) -> tuple[BusinessSpec, WabaSpec, NumberSpec]:
    """A CONNECTED number with a display number and name that the timeline never changes."""
    on_timeline = {event.number for event in scenario.timeline.events}
    for business, waba in scenario.wabas():
        for number in waba.numbers:
            f = number.fields
            if (number.id not in on_timeline and f.get("status") == "CONNECTED"
                    and f.get("display_phone_number") and f.get("verified_name")):
                return business, waba, number
    raise AssertionError("the demo scenario has no steady CONNECTED number")


@dataclass
class Stack:
    scenario: Scenario
    product: Product
    prometheus: Service
    alertmanager: Service
    job: str
    cap_business: BusinessSpec
    cap_registered: int  # registered numbers of cap_business in the scenario
    cap: int  # the registration_cap configured for it

    def query(self, expr: str) -> list[dict[str, Any]]:
        return prom_query(self.prometheus.url, expr)

    def describe(self, alertname: str) -> str:
        """What Prometheus and Alertmanager know about an alert, for failure messages."""
        _, prom_alerts = http_json("GET", f"{self.prometheus.url}/api/v1/alerts")
        in_prometheus = [a for a in prom_alerts.get("data", {}).get("alerts", [])
                         if a["labels"].get("alertname") == alertname]
        _, in_am = http_json("GET", f"{self.alertmanager.url}/api/v2/alerts?"
                             f"filter=alertname%3D%22{alertname}%22")
        received = [(a["status"], a["labels"]) for _, a in self.product.receiver.alerts()
                    if a["labels"].get("alertname") == alertname]
        return (f"\nPrometheus alerts {alertname}: {in_prometheus}\n"
                f"Alertmanager alerts: {in_am}\nreceived so far: {received}\n"
                f"Prometheus log:\n{self.prometheus.log_tail(2000)}\n"
                f"Alertmanager log:\n{self.alertmanager.log_tail(2000)}")

    def wait_for_alert(self, alertname: str, status: str, *, since: float,
                       **labels: str) -> tuple[Notification, dict[str, Any]]:
        """The first alert received at or after ``since`` with that name, status and labels."""

        def find() -> tuple[Notification, dict[str, Any]] | None:
            for notification, alert in self.product.receiver.alerts(since=since):
                got = alert["labels"]
                if (alert["status"] == status and got.get("alertname") == alertname
                        and all(got.get(k) == v for k, v in labels.items())):
                    return notification, alert
            return None

        found: tuple[Notification, dict[str, Any]] = wait_until(
            find, timeout=ALERT_TIMEOUT,
            message=lambda: f"no {status} {alertname} {labels} reached the receiver"
                            + self.describe(alertname))
        return found

    def wait_for_value(self, expr: str, value: float, what: str) -> None:
        def check() -> bool:
            result = self.query(expr)
            return len(result) == 1 and float(result[0]["value"][1]) == value

        wait_until(check, timeout=30,
                   message=lambda: f"{what}: {expr} != {value}; now {self.query(expr)}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary()  # fail at once, with the install hint, when a binary is missing
    alertmanager_binary()
    workdir = tmp_path_factory.mktemp("e2e")
    job = shipped_job_name()
    scenario = builtin_scenario("demo")
    cap_business, cap_registered = business_below_cap(scenario)
    cap = cap_registered + 1  # one more registered number reaches it
    # One failed Graph request, so the error panels and the error counter have data.
    fault = Fault(target=cap_business.wabas[0].id, kind="http_error", status=500, count=1,
                  edge="phone_numbers")  # the polled list, not the hourly WABA node read

    with contextlib.ExitStack() as cleanup:
        product = cleanup.enter_context(RunningProduct(
            workdir / "product", scenario, caps={cap_business.id: cap}, faults=[fault]))
        rules = short_rules(RULE_FILES, workdir / "rules", for_="2s")
        am_config = fast_alertmanager_config(
            yaml.safe_load(ALERTMANAGER_CONFIG.read_text()), product.receiver.url)
        alertmanager = cleanup.enter_context(start_alertmanager(workdir / "am", am_config))
        prometheus = cleanup.enter_context(start_prometheus(workdir / "prometheus",
            prometheus_config(rules, scrape_job=job, target=product.daemon_address,
                              alertmanager=alertmanager.address)))
        s = Stack(scenario, product, prometheus, alertmanager, job, cap_business,
                  cap_registered, cap)
        wait_until(lambda: s.query(f'up{{job="{job}"}} == 1'), timeout=20,
                   message=lambda: f"Prometheus never scraped the daemon at "
                                   f"{product.daemon_address}\n{prometheus.log_tail()}")
        _, am_status = http_json("GET", f"{alertmanager.url}/api/v2/status")
        assert product.receiver.url in am_status["config"]["original"]
        # Restrictions, ban states, violations, account events and alerts exist only in
        # Meta's webhooks: the simulator sends them, signed, for these actions.
        product.run_account_actions()
        yield s


def test_short_timing_copies_keep_every_rule_route_and_inhibition(stack: Stack) -> None:
    # Rule order within a group matters (the job-selector rule runs first); Prometheus'
    # API lists the groups themselves in its own order, so groups are compared by name.
    shipped_rules = {g["name"]: [r.get("alert") or r.get("record") for r in g["rules"]]
                     for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]}
    loaded_rules = loaded_rule_groups(stack.prometheus.url)
    assert {g["name"]: [r["name"] for r in g["rules"]] for g in loaded_rules} == shipped_rules
    assert len(loaded_rules) == len(shipped_rules)
    for group in loaded_rules:
        for rule in group["rules"]:
            if rule["type"] == "alerting":
                assert rule["duration"] == 2, rule["name"]

    shipped = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    copy = fast_alertmanager_config(shipped, stack.product.receiver.url)
    assert copy["inhibit_rules"] == shipped["inhibit_rules"]
    assert [r["matchers"] for r in copy["route"]["routes"]] == \
        [r["matchers"] for r in shipped["route"]["routes"]]
    _, status = http_json("GET", f"{stack.alertmanager.url}/api/v2/status")
    loaded = yaml.safe_load(status["config"]["original"])
    assert len(loaded["inhibit_rules"]) == len(shipped["inhibit_rules"])


def test_number_not_connected_fires_and_resolves(stack: Stack) -> None:
    business, waba, number = steady_connected_number(stack.scenario)
    selector = f'phone_number_id="{number.id}"'
    stack.wait_for_value(f"whatsapp_phone_number_connected{{{selector}}}", 1,
                         "the number is CONNECTED before the test")

    flipped = time.time()
    stack.product.control("PATCH", f"/_sim/numbers/{number.id}", {"status": "FLAGGED"})
    try:
        notification, alert = stack.wait_for_alert(
            "WhatsAppPhoneNumberNotConnected", "firing", since=flipped,
            phone_number_id=number.id)
        labels = alert["labels"]
        assert labels["business_id"] == business.id
        assert labels["waba_id"] == waba.id
        assert labels["phone_number_id"] == number.id
        assert labels["display_phone_number"] == number.fields["display_phone_number"]
        assert labels["verified_name"] == number.fields["verified_name"]
        assert labels["severity"] == "critical"
        assert labels["job"] == stack.job
        assert notification.payload["receiver"] == "page"  # critical routes to the pager
        assert notification.payload["groupLabels"] == {
            "alertname": "WhatsAppPhoneNumberNotConnected", "business_id": business.id}
        description = alert["annotations"]["description"]
        assert "FLAGGED" in description and number.fields["display_phone_number"] in description
        assert alert["annotations"]["runbook_url"].endswith("#whatsappphonenumbernotconnected")
    finally:
        restored = time.time()
        stack.product.control("PATCH", f"/_sim/numbers/{number.id}", {"status": "CONNECTED"})

    _, resolved = stack.wait_for_alert("WhatsAppPhoneNumberNotConnected", "resolved",
                                       since=restored, phone_number_id=number.id)
    assert resolved["labels"] == labels


def test_registration_cap_reached_fires_and_resolves(stack: Stack) -> None:
    business = stack.cap_business.id
    selector = f'business_id="{business}"'
    stack.wait_for_value(f"whatsapp_business_registered_phone_numbers{{{selector}}}",
                         stack.cap_registered, "registered numbers before the test")
    stack.wait_for_value(f"whatsapp_business_registered_phone_numbers_cap{{{selector}}}",
                         stack.cap, "the configured cap")
    assert stack.query(f'whatsapp_business_registered_phone_numbers_cap_info{{{selector}, '
                       f'source="config"}}')

    new_id = str(max(int(n.id) for _, n in stack.scenario.numbers()) + 1)
    waba = stack.cap_business.wabas[0].id
    added = time.time()
    stack.product.control("POST", f"/_sim/wabas/{waba}/numbers", {
        "id": new_id,
        "display_phone_number": "+1 555-099-0001",
        "verified_name": "E2E Cap Line",
        "status": "CONNECTED",
        "platform_type": "CLOUD_API",
        "quality_rating": "GREEN",
        "name_status": "APPROVED",
        "code_verification_status": "VERIFIED",
        "account_mode": "LIVE",
    })
    try:
        notification, alert = stack.wait_for_alert(
            "WhatsAppRegistrationCapReached", "firing", since=added, business_id=business)
        labels = alert["labels"]
        assert labels["severity"] == "critical"
        assert notification.payload["receiver"] == "page"
        description = " ".join(alert["annotations"]["description"].split())
        assert f"registration cap is {stack.cap} (cap source: config)" in description
        assert "+1 555-099-0001 (E2E Cap Line" in description  # registered numbers listed
    finally:
        removed = time.time()
        stack.product.control("DELETE", f"/_sim/numbers/{new_id}")

    _, resolved = stack.wait_for_alert("WhatsAppRegistrationCapReached", "resolved",
                                       since=removed, business_id=business)
    assert resolved["labels"] == labels


ACCOUNT_WABA = "200000000000008"  # untouched by the stack's own account actions


def test_account_restricted_fires_from_a_signed_webhook_and_resolves_at_expiry(
        stack: Stack) -> None:
    """Only a webhook tells of a restriction: the simulator signs and sends account_update,
    the daemon commits it, Prometheus fires, and the alert resolves when it expires."""
    restricted = time.time()
    stack.product.control("POST", "/_sim/actions", {
        "action": "restrict_waba", "waba": ACCOUNT_WABA,
        "restriction_types": ["RESTRICTED_CUSTOMER_INITIATED_MESSAGING"], "expires_in": "20s"})
    notification, alert = stack.wait_for_alert(
        "WhatsAppAccountRestricted", "firing", since=restricted, waba_id=ACCOUNT_WABA)
    labels = alert["labels"]
    assert labels["severity"] == "critical"
    assert labels["restriction_type"] == "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"
    assert notification.payload["receiver"] == "page"
    description = " ".join(alert["annotations"]["description"].split())
    assert ACCOUNT_WABA in description and "Payments" in description  # the WABA's name
    # Meta's expiration is whole seconds: the alert may end a moment before restricted + 20.
    _, resolved = stack.wait_for_alert("WhatsAppAccountRestricted", "resolved",
                                       since=restricted + 15, waba_id=ACCOUNT_WABA)
    assert resolved["labels"] == labels


def test_account_scheduled_for_disable_fires_from_a_signed_webhook_and_resolves(
        stack: Stack) -> None:
    scheduled = time.time()
    stack.product.control("POST", "/_sim/actions", {
        "action": "ban_waba", "waba": ACCOUNT_WABA, "state": "SCHEDULE_FOR_DISABLE",
        "date": "March 3, 2031"})
    try:
        notification, alert = stack.wait_for_alert(
            "WhatsAppAccountScheduledForDisable", "firing", since=scheduled,
            waba_id=ACCOUNT_WABA)
        assert alert["labels"]["severity"] == "critical"
        assert notification.payload["receiver"] == "page"
        description = " ".join(alert["annotations"]["description"].split())
        assert "2031" in description  # says the date
    finally:
        reinstated = time.time()
        stack.product.control("POST", "/_sim/actions", {
            "action": "ban_waba", "waba": ACCOUNT_WABA, "state": "REINSTATE"})
    _, resolved = stack.wait_for_alert("WhatsAppAccountScheduledForDisable", "resolved",
                                       since=reinstated, waba_id=ACCOUNT_WABA)
    assert resolved["labels"]["waba_id"] == ACCOUNT_WABA


UNSUBSCRIBED_WABA = "200000000000009"  # the demo's WABA whose subscription lacks our app
SANDBOX_NUMBER = "300000000000022"  # the demo's SANDBOX number, PENDING (not CONNECTED)


def test_webhook_subscription_missing_fires_and_resolves(stack: Stack) -> None:
    notification, alert = stack.wait_for_alert(
        "WhatsAppWebhookSubscriptionMissing", "firing", since=0, waba_id=UNSUBSCRIBED_WABA)
    assert alert["labels"]["severity"] == "critical"
    assert notification.payload["receiver"] == "page"
    subscribed = time.time()
    stack.product.control("POST", "/_sim/actions", {"action": "subscribe_app",
                                                    "waba": UNSUBSCRIBED_WABA})
    try:
        _, resolved = stack.wait_for_alert("WhatsAppWebhookSubscriptionMissing", "resolved",
                                           since=subscribed, waba_id=UNSUBSCRIBED_WABA)
        assert resolved["labels"]["waba_id"] == UNSUBSCRIBED_WABA
    finally:
        stack.product.control("POST", "/_sim/actions", {"action": "unsubscribe_app",
                                                        "waba": UNSUBSCRIBED_WABA})


def test_pin_reset_requested_fires_from_a_signed_webhook_and_resolves(stack: Stack) -> None:
    """Someone asks to turn two-step verification off: the security webhook pages at once;
    the alert ends when the number is gone (else 24 h after the request)."""
    waba = "200000000000007"
    number = str(max(int(n.id) for _, n in stack.scenario.numbers()) + 2)
    stack.product.control("POST", f"/_sim/wabas/{waba}/numbers", {
        "id": number, "display_phone_number": "+1 555-099-0002", "verified_name": "E2E Pin",
        "status": "CONNECTED", "platform_type": "CLOUD_API", "account_mode": "LIVE",
        "is_pin_enabled": True})
    stack.wait_for_value(f'whatsapp_phone_number_connected{{phone_number_id="{number}"}}', 1,
                         "the new number is polled")
    asked = time.time()
    stack.product.control("POST", "/_sim/actions", {
        "action": "security_event", "number": number, "event": "PIN_RESET_REQUEST"})
    try:
        notification, alert = stack.wait_for_alert(
            "WhatsAppPinResetRequested", "firing", since=asked, phone_number_id=number)
        assert alert["labels"]["severity"] == "critical"
        assert notification.payload["receiver"] == "page"
        assert "+1 555-099-0002" in " ".join(alert["annotations"]["description"].split())
    finally:
        removed = time.time()
        stack.product.control("DELETE", f"/_sim/numbers/{number}")
    stack.wait_for_alert("WhatsAppPinResetRequested", "resolved", since=removed,
                         phone_number_id=number)


def test_a_sandbox_number_not_connected_never_pages(stack: Stack) -> None:
    _, alert = stack.wait_for_alert("WhatsAppPhoneNumberNotConnected", "firing", since=0,
                                    phone_number_id=SANDBOX_NUMBER)
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["account_mode"] == "SANDBOX"
    critical = [a for _, a in stack.product.receiver.alerts(since=0)
                if a["labels"].get("phone_number_id") == SANDBOX_NUMBER
                and a["labels"].get("severity") == "critical"]
    assert critical == []


TEMPLATE = "400000000000001"  # the demo's healthy order_update template on WABA ...001


@pytest.mark.parametrize(("action", "alertname", "severity"), [
    ({"action": "pause_template", "template": TEMPLATE}, "WhatsAppTemplatePaused", "warning"),
    ({"action": "template_status", "template": TEMPLATE, "event": "DISABLED"},
     "WhatsAppTemplateDisabled", "critical"),
])
def test_template_alerts_fire_from_signed_webhooks_and_resolve(
        stack: Stack, action: dict[str, Any], alertname: str, severity: str) -> None:
    started = time.time()
    stack.product.control("POST", "/_sim/actions", action)
    try:
        _, alert = stack.wait_for_alert(alertname, "firing", since=started, template_id=TEMPLATE)
        assert alert["labels"]["severity"] == severity
        assert "order_update" in " ".join(alert["annotations"]["description"].split())
    finally:
        restored = time.time()
        stack.product.control("POST", "/_sim/actions", {
            "action": "template_status", "template": TEMPLATE, "event": "APPROVED"})
    stack.wait_for_alert(alertname, "resolved", since=restored, template_id=TEMPLATE)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Each dashboard expression, with the variables set to this stack's job and every
    business (concrete values, so a wrong label name in a matcher finds nothing), returns a
    non-empty result. Every panel of the demo has data: the demo fleet has numbers in bad
    states, the fixture injected a Graph error, and the queries that count things that may
    be zero (businesses at the cap, WABAs failing) end in `or vector(0)`. The WABA and
    portfolio panels have data because the fixture's account actions reached the daemon as
    signed webhooks (a restriction, a violation, a WABA scheduled for disabling, account
    events and alerts, a per-WABA cap)."""
    values = {**PARSE_VALUES, "job": stack.job,
              "business_id": "|".join(b.id for b in stack.scenario.businesses)}
    pending = {q.where: substitute(q.expr, values)
               for q in dashboard_queries(load_dashboard())}
    assert len(pending) > 30

    def all_have_data() -> bool:
        for where, expr in list(pending.items()):
            try:
                result = stack.query(expr)
            except QueryError as exc:
                pytest.fail(f"{where}: {exc}\n{expr}", pytrace=False)
            if result:
                del pending[where]
        return not pending

    wait_until(all_have_data, timeout=45, interval=1.0,
               message=lambda: "no data for:\n" + "\n".join(
                   f"{where}:\n    {expr}" for where, expr in pending.items()))
