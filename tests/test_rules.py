"""The shipped monitoring: Prometheus rules, their promtool unit tests, the example Prometheus
and Alertmanager configurations, and the runbook.

promtool must be on PATH (CI installs it); without it these tests fail, they never skip.
Alertmanager's config is checked with amtool, or, where amtool is missing, by starting
Alertmanager itself on a free local port.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.procs import http_json

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"

RUNBOOK_URL_PREFIX = "https://github.com/waba-monitor/waba-monitor/blob/main/docs/runbook.md#"
WEBHOOK_URL = "http://127.0.0.1:9095/alerts"
SEVERITIES = {"critical", "warning", "info"}

# The public contract: every alert name, with the severities its rules must have.
REQUIRED_ALERTS: dict[str, set[str]] = {
    "WhatsAppPhoneNumberNotConnected": {"critical", "warning"},
    "WhatsAppRegistrationCapApproaching": {"warning"},
    "WhatsAppRegistrationCapReached": {"critical"},
    "WhatsAppQualityRatingLow": {"warning", "critical"},
    "WhatsAppDisplayNameRejected": {"warning"},
    "WhatsAppDisplayNameCertificateExpired": {"warning"},
    "WhatsAppCannotSendMessages": {"warning", "critical"},
    "WhatsAppMessagingLimitDecreased": {"warning"},
    "WhatsAppMonitorDown": {"critical"},
    "WhatsAppMonitorPollFailing": {"warning"},
    "WhatsAppMonitorDataStale": {"warning"},
    "WhatsAppMonitorGraphAuthFailing": {"critical"},
    "WhatsAppMonitorAccessTokenExpiringSoon": {"warning", "critical"},
    "WhatsAppMonitorShardingMismatch": {"critical"},
    "WhatsAppMonitorShardsMissing": {"critical"},
    "WhatsAppMonitorRateLimitNearlyExhausted": {"warning"},
    "WhatsAppAccountRestricted": {"critical"},
    "WhatsAppAccountScheduledForDisable": {"critical"},
    "WhatsAppAccountDisabled": {"critical"},
    "WhatsAppAccountReviewNotApproved": {"warning"},
    "WhatsAppAccountViolation": {"warning"},
    "WhatsAppAccountAlert": {"critical", "warning", "info"},
    "WhatsAppTwoStepVerificationDisabled": {"warning"},
    "WhatsAppPinResetRequested": {"critical", "warning"},
    "WhatsAppIdentityKeyCheckDisabled": {"warning"},
    "WhatsAppWebhookSubscriptionMissing": {"critical", "warning"},
    "WhatsAppWebhookMisrouted": {"warning"},
    "WhatsAppTemplatePaused": {"warning"},
    "WhatsAppTemplateDisabled": {"critical"},
    "WhatsAppTemplateQualityLow": {"warning"},
    "WhatsAppTemplateCategoryChanging": {"warning"},
    "WhatsAppTemplateRejected": {"warning"},
}

# SANDBOX numbers never page. A critical rule about numbers (its expression reads a
# per-number family) leaves them out with `unless on (...) <SANDBOX numbers>`; its warning twin
# carries the static label account_mode="SANDBOX" and keeps only them with `and on (...)`.
SANDBOX_SELECTOR = 'whatsapp_phone_number_info{account_mode="SANDBOX"}'
SANDBOX_CLAUSE = re.compile(
    r"(unless|and) on \([^)]*\) [(\s]*(?:count by \([^)]*\) \(|label_replace\()?"
    + re.escape(SANDBOX_SELECTOR)
)

# Since 7 Oct 2025 the messaging limit belongs to the business portfolio; the per-number
# families are deprecated (not in the default include list) and no rule may use them.
DEPRECATED_METRICS = (
    "whatsapp_phone_number_messaging_limit_tier",
    "whatsapp_phone_number_messaging_limit_per_day",
)
# Portfolio-level alerts have no waba_id label; their description lists the portfolio's WABAs
# and names from whatsapp_waba_info instead.
PORTFOLIO_ALERT_METRICS = (
    "whatsapp_business_messaging_limit_per_day",
    "whatsapp_account_alert_timestamp_seconds",
)

PROMTOOL_MISSING = (
    "promtool is not on PATH. These tests need it and do not skip: install Prometheus' "
    "promtool (Debian/Ubuntu: `apt-get install prometheus`, or the release tarball from "
    "https://prometheus.io/download/) and run the tests again."
)


# --- helpers ---------------------------------------------------------------------------------


def _run(cmd: Sequence[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail with its full output if it fails."""
    proc = subprocess.run(
        list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _rules() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in RULE_FILES:
        for group in _load_yaml(path)["groups"]:
            for rule in group["rules"]:
                yield path, group["name"], rule


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for _, _, rule in _rules() if "alert" in rule]


def _alert_rule_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule.get('labels', {}).get('severity', 'no-severity')}"


def _github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    anchors: set[str] = set()
    in_fence = False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match and not in_fence:
            anchors.add(_github_anchor(match.group(1)))
    return anchors


def _rule_tests() -> Iterator[dict[str, Any]]:
    for path in RULE_TEST_FILES:
        yield from _load_yaml(path)["tests"]


# --- promtool --------------------------------------------------------------------------------


def _promtool() -> str:
    """promtool's path; a missing promtool fails the calling test (never skips it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    return path


def test_rule_and_test_files_exist() -> None:
    names = {p.name for p in RULE_FILES}
    assert {"waba-monitor-alerts.yml", "waba-monitor-recording.yml"} <= names, names
    assert RULE_TEST_FILES, "no tests/rules/*.test.yml found"


def test_promtool_check_rules() -> None:
    promtool = _promtool()
    _run([promtool, "check", "rules", *(str(p.relative_to(ROOT)) for p in RULE_FILES)])


def test_promtool_unit_tests() -> None:
    promtool = _promtool()
    _run([promtool, "test", "rules", *(str(p.relative_to(ROOT)) for p in RULE_TEST_FILES)])


def test_promtool_check_prometheus_config() -> None:
    promtool = _promtool()
    # Also checks the rule files the config loads (rules/*.yml, relative to the config).
    proc = _run([promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))])
    assert f"{len(RULE_FILES)} rule files found" in proc.stdout, proc.stdout


# --- structure of the alert rules --------------------------------------------------------------


def test_required_alerts_exist_with_their_severities() -> None:
    found: dict[str, set[str]] = {}
    for rule in _alert_rules():
        found.setdefault(rule["alert"], set()).add(rule.get("labels", {}).get("severity"))
    missing = sorted(set(REQUIRED_ALERTS) - set(found))
    assert not missing, f"alerts missing from the rule files: {missing}"
    for name, severities in REQUIRED_ALERTS.items():
        assert found[name] == severities, f"{name}: severities {found[name]} != {severities}"


@pytest.mark.parametrize("rule", _alert_rules(), ids=_alert_rule_id)
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"WhatsApp[A-Z][A-Za-z]+", name), f"{name}: not WhatsApp<CamelCase>"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: bad severity"
    assert "for" in rule, f"{name}: no `for:`"

    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: annotation {key!r} missing or empty"
    assert "{{" in annotations["description"], f"{name}: description is not templated"

    url = annotations["runbook_url"]
    assert url == RUNBOOK_URL_PREFIX + name.lower(), f"{name}: runbook_url {url!r}"
    anchor = url.split("#", 1)[1]
    assert anchor in _runbook_anchors(), f"{name}: docs/runbook.md has no heading #{anchor}"


def _is_per_number(rule: dict[str, Any]) -> bool:
    """The alert is about a number: its expression starts from a per-number family (other
    rules may read whatsapp_phone_number_info only to leave SANDBOX numbers out)."""
    return re.match(r"[\s(]*whatsapp_phone_number_", rule["expr"]) is not None


@pytest.mark.parametrize(
    "rule",
    [r for r in _alert_rules() if _is_per_number(r)],
    ids=_alert_rule_id,
)
def test_phone_number_alert_names_the_number(rule: dict[str, Any]) -> None:
    """Per-number alerts join the info metric and name business, WABA, number and name."""
    expr = " ".join(rule["expr"].split())
    assert re.search(
        r"group_left \(display_phone_number, verified_name\) whatsapp_phone_number_info", expr
    ), f"{rule['alert']}: expr does not join whatsapp_phone_number_info"
    description = rule["annotations"]["description"]
    for label in ("business_id", "waba_id", "display_phone_number", "verified_name"):
        assert f"$labels.{label}" in description, f"{rule['alert']}: description lacks {label}"


@pytest.mark.parametrize(
    "rule",
    [r for r in _alert_rules() if "whatsapp_waba_" in r["expr"]],
    ids=_alert_rule_id,
)
def test_waba_alert_names_the_waba(rule: dict[str, Any]) -> None:
    """WABA alerts join the WABA info metric and name business, WABA and WABA name."""
    expr = " ".join(rule["expr"].split())
    assert re.search(
        r"\* on \(job, instance, business_id, waba_id\) group_left \(name\) whatsapp_waba_info$",
        expr,
    ), f"{rule['alert']}: expr does not end with the whatsapp_waba_info join"
    for key in ("summary", "description"):
        text = rule["annotations"][key]
        for label in ("waba_id", "name"):
            assert f"$labels.{label}" in text, f"{rule['alert']}: {key} lacks {label}"
    assert "$labels.business_id" in rule["annotations"]["description"], rule["alert"]


@pytest.mark.parametrize(
    "rule",
    [r for r in _alert_rules() if any(m in r["expr"] for m in PORTFOLIO_ALERT_METRICS)],
    ids=_alert_rule_id,
)
def test_portfolio_alert_lists_its_wabas(rule: dict[str, Any]) -> None:
    description = rule["annotations"]["description"]
    assert "$labels.business_id" in description, rule["alert"]
    assert re.search(r"whatsapp_waba_info\{business_id=%q\}", description), (
        f"{rule['alert']}: description does not list the portfolio's WABAs"
    )
    assert ".Labels.name" in description, f"{rule['alert']}: no WABA names"


@pytest.mark.parametrize(
    "rule",
    [
        r
        for r in _alert_rules()
        if "whatsapp_phone_number_" in r["expr"] or "whatsapp_account_alert_" in r["expr"]
    ],
    ids=_alert_rule_id,
)
def test_sandbox_numbers_never_page(rule: dict[str, Any]) -> None:
    expr = " ".join(rule["expr"].split())
    labels = rule.get("labels", {})
    clauses = [m.group(1) for m in SANDBOX_CLAUSE.finditer(expr)]
    if labels.get("severity") == "critical":
        assert clauses == ["unless"], f"{rule['alert']}: critical without `unless` SANDBOX"
    elif labels.get("account_mode") == "SANDBOX":
        assert labels.get("severity") == "warning", rule["alert"]
        assert clauses == ["and"], f"{rule['alert']}: SANDBOX twin without `and` SANDBOX"
    else:
        assert not clauses, f"{rule['alert']}: SANDBOX filter without account_mode label"


def test_every_critical_number_alert_has_a_sandbox_warning_twin() -> None:
    rules = [r for r in _alert_rules() if SANDBOX_SELECTOR in r["expr"]]
    critical = {r["alert"] for r in rules if r["labels"]["severity"] == "critical"}
    twins = {r["alert"] for r in rules if r["labels"].get("account_mode") == "SANDBOX"}
    assert critical == twins, (critical, twins)


def test_no_rule_uses_the_deprecated_per_number_messaging_limit() -> None:
    for path, group, rule in _rules():
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        for metric in DEPRECATED_METRICS:
            assert not any(metric in t for t in texts), (
                f"{path.name}/{group}/{rule.get('alert') or rule.get('record')} uses {metric}"
            )


def test_no_alert_text_describes_the_pre_october_2025_model() -> None:
    """No Flagged state and no quality-driven limit downgrade since 7 Oct 2025."""
    for rule in _alert_rules():
        text = " ".join(rule["annotations"].values())
        for phrase in ("may be FLAGGED", "lose messaging limit", "limit is lowered",
                       "business-initiated conversations"):
            assert phrase not in text, f"{rule['alert']}: {phrase!r}"


def test_job_selector_is_in_one_place() -> None:
    """Only the whatsapp_monitor:up recording rule selects on `job`, and it matches the
    job_name of the example scrape config."""
    selector = re.compile(r"\bjob\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")
    hits = [
        (rule.get("record") or rule.get("alert"), m)
        for _, _, rule in _rules()
        for m in selector.finditer(rule["expr"])
    ]
    assert [name for name, _ in hits] == ["whatsapp_monitor:up"], hits
    op, pattern = hits[0][1].groups()
    jobs = [sc["job_name"] for sc in _load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]]
    assert "waba-monitor" in jobs
    matches = re.fullmatch(pattern, "waba-monitor") if op == "=~" else pattern == "waba-monitor"
    assert matches, f"job selector {op}{pattern!r} does not match job_name waba-monitor"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for test in _rule_tests():
        for case in test.get("alert_rule_test", []):
            alerts = case.get("exp_alerts") or []
            if not alerts:
                silent.add(case["alertname"])
            for alert in alerts:
                firing.add((case["alertname"], alert["exp_labels"]["severity"]))
                assert alert.get("exp_annotations"), f"{case['alertname']}: no exp_annotations"
    for name, severities in REQUIRED_ALERTS.items():
        for severity in severities:
            assert (name, severity) in firing, f"no test sees {name} ({severity}) firing"
        assert name in silent, f"no test checks that {name} is not firing"


def test_every_recording_rule_is_unit_tested() -> None:
    records = {rule["record"] for _, _, rule in _rules() if "record" in rule}
    tested = {
        case["expr"].strip() for test in _rule_tests() for case in test.get("promql_expr_test", [])
    }
    untested = sorted(records - tested)
    assert not untested, f"recording rules without a promql_expr_test: {untested}"


def test_recording_rule_names_follow_convention() -> None:
    for path, group, rule in _rules():
        if "record" in rule:
            assert re.fullmatch(r"whatsapp(_monitor)?:[a-z0-9_]+(:[a-z0-9_]+)?", rule["record"]), (
                f"{path.name}/{group}: {rule['record']}"
            )


# --- runbook ---------------------------------------------------------------------------------


def test_runbook_has_a_section_per_alert_and_no_dangling_links() -> None:
    anchors = _runbook_anchors()
    for name in REQUIRED_ALERTS:
        assert name.lower() in anchors, f"docs/runbook.md has no '## {name}' section"
    text = RUNBOOK.read_text(encoding="utf-8")
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, f"docs/runbook.md links to missing #{link}"


# --- example Prometheus config ---------------------------------------------------------------


def test_prometheus_config_scrapes_exporter_and_loads_rules() -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    assert "rules/*.yml" in config["rule_files"]
    job = next(sc for sc in config["scrape_configs"] if sc["job_name"] == "waba-monitor")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["localhost:9877"]
    am_targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert am_targets == ["localhost:9093"]


# --- Alertmanager ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _running_alertmanager(binary: str, config: Path) -> Iterator[int]:
    """Alertmanager on a free local port with the config; yields the port once
    /-/ready answers, stops it afterwards."""
    with tempfile.TemporaryDirectory(prefix="waba-monitor-am-") as tmp:
        port = _free_port()
        log_path = Path(tmp) / "alertmanager.log"
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={Path(tmp) / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 30
                ready = False
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        url = f"http://127.0.0.1:{port}/-/ready"
                        with urllib.request.urlopen(url, timeout=1) as response:
                            if response.status == 200:
                                ready = True
                                break
                    except (urllib.error.URLError, OSError):
                        time.sleep(0.2)
                if not ready:
                    pytest.fail(
                        f"Alertmanager did not become ready with {config} "
                        f"(exit code {proc.poll()}):\n{log_path.read_text(encoding='utf-8')}",
                        pytrace=False,
                    )
                yield port
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)


def _alertmanager_binary() -> str:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail(
            "prometheus-alertmanager/alertmanager is not on PATH; install Alertmanager "
            "(Debian/Ubuntu: `apt-get install prometheus-alertmanager`)",
            pytrace=False,
        )
    return binary


def _check_by_starting_alertmanager(binary: str, config: Path) -> None:
    """Start Alertmanager on a free local port with the config, wait for /-/ready, stop it."""
    with _running_alertmanager(binary, config):
        pass


def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is not None:
        _run([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
        return
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail(
            "neither amtool nor prometheus-alertmanager/alertmanager is on PATH; install "
            "Alertmanager (Debian/Ubuntu: `apt-get install prometheus-alertmanager`)",
            pytrace=False,
        )
    _check_by_starting_alertmanager(binary, ALERTMANAGER_CONFIG)


def test_alertmanager_routes_by_severity() -> None:
    config = _load_yaml(ALERTMANAGER_CONFIG)
    route = config["route"]
    assert route["group_by"] == ["alertname", "business_id"]
    assert route["receiver"] == "default"
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route, key
    by_severity = {tuple(r["matchers"]): r["receiver"] for r in route["routes"]}
    assert by_severity[('severity="critical"',)] == "page"
    assert by_severity[('severity="warning"',)] == "ticket"

    amtool = shutil.which("amtool")
    if amtool is not None:  # also ask Alertmanager's own routing code
        for severity, receiver in [
            ("critical", "page"),
            ("warning", "ticket"),
            ("info", "default"),
        ]:
            proc = _run(
                [
                    amtool,
                    "config",
                    "routes",
                    "test",
                    f"--config.file={ALERTMANAGER_CONFIG}",
                    f"severity={severity}",
                    "alertname=WhatsAppPhoneNumberNotConnected",
                ]
            )
            assert proc.stdout.strip() == receiver, (severity, proc.stdout)


def test_alertmanager_inhibit_rules() -> None:
    rules = _load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]

    def inhibits(source: set[str], target: set[str], equal: set[str]) -> bool:
        return any(
            source <= set(r["source_matchers"])
            and target <= set(r["target_matchers"])
            and equal <= set(r["equal"])
            for r in rules
        )

    assert inhibits(
        {'alertname="WhatsAppRegistrationCapReached"'},
        {'alertname="WhatsAppRegistrationCapApproaching"'},
        {"business_id"},
    )
    down = next(r for r in rules if r["source_matchers"] == ['alertname="WhatsAppMonitorDown"'])
    target = re.fullmatch(r'alertname=~"(.*)"', down["target_matchers"][0])
    assert target is not None
    for name in (
        "WhatsAppMonitorDataStale",
        "WhatsAppMonitorPollFailing",
        "WhatsAppPhoneNumberNotConnected",
    ):
        assert re.fullmatch(target.group(1), name), name
    assert 'alertname!="WhatsAppMonitorDown"' in down["target_matchers"]
    assert {"job", "instance"} <= set(down["equal"])
    assert inhibits(
        {'alertname="WhatsAppQualityRatingLow"', 'rating="RED"'},
        {'alertname="WhatsAppQualityRatingLow"', 'rating="YELLOW"'},
        {"phone_number_id"},
    )
    assert inhibits(
        {'alertname="WhatsAppCannotSendMessages"', 'can_send_message="BLOCKED"'},
        {'alertname="WhatsAppCannotSendMessages"', 'can_send_message="LIMITED"'},
        {"phone_number_id"},
    )
    disabled = next(
        r for r in rules if r["source_matchers"] == ['alertname="WhatsAppAccountDisabled"']
    )
    assert set(disabled["equal"]) == {"business_id", "waba_id"}
    target = re.fullmatch(r'alertname=~"(.*)"', disabled["target_matchers"][0])
    assert target is not None
    for name in (
        "WhatsAppPhoneNumberNotConnected",
        "WhatsAppCannotSendMessages",
        "WhatsAppAccountScheduledForDisable",
    ):
        assert re.fullmatch(target.group(1), name), name
    assert not re.fullmatch(target.group(1), "WhatsAppAccountDisabled")
    assert inhibits(
        {'alertname="WhatsAppWebhookSubscriptionMissing"'},
        {'alertname="WhatsAppWebhookMisrouted"'},
        {"business_id", "waba_id"},
    )
    assert inhibits(
        {'alertname="WhatsAppPinResetRequested"'},
        {'alertname="WhatsAppTwoStepVerificationDisabled"'},
        {"business_id", "waba_id", "phone_number_id"},
    )


# Alerts as Prometheus would send them (only the labels inhibition looks at), and whether the
# shipped inhibit_rules must mute each one while all of them fire.
_B, _B2, _W, _W2 = "506914307656634", "506914307656640", "102290129340398", "102290129340399"
INHIBITION_CASES: list[tuple[dict[str, str], bool]] = [
    # WABA W of business B is disabled: its numbers' NotConnected / CannotSend and its
    # ScheduledForDisable are muted, nothing else is.
    ({"alertname": "WhatsAppAccountDisabled", "severity": "critical", "business_id": _B,
      "waba_id": _W, "state": "DISABLE"}, False),
    ({"alertname": "WhatsAppPhoneNumberNotConnected", "severity": "critical",
      "business_id": _B, "waba_id": _W, "phone_number_id": "1"}, True),
    ({"alertname": "WhatsAppCannotSendMessages", "severity": "critical", "business_id": _B,
      "waba_id": _W, "phone_number_id": "1", "can_send_message": "BLOCKED"}, True),
    ({"alertname": "WhatsAppAccountScheduledForDisable", "severity": "critical",
      "business_id": _B, "waba_id": _W, "state": "SCHEDULE_FOR_DISABLE"}, True),
    ({"alertname": "WhatsAppAccountRestricted", "severity": "critical", "business_id": _B,
      "waba_id": _W, "restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING"}, False),
    ({"alertname": "WhatsAppQualityRatingLow", "severity": "critical", "business_id": _B,
      "waba_id": _W, "phone_number_id": "1", "rating": "RED"}, False),
    # Another WABA of the same business, and the same WABA id under another business.
    ({"alertname": "WhatsAppPhoneNumberNotConnected", "severity": "critical",
      "business_id": _B, "waba_id": _W2, "phone_number_id": "2"}, False),
    ({"alertname": "WhatsAppCannotSendMessages", "severity": "critical", "business_id": _B2,
      "waba_id": _W, "phone_number_id": "3", "can_send_message": "BLOCKED"}, False),
    # A CRITICAL account alert mutes a WARNING one of the same type and entity only.
    ({"alertname": "WhatsAppAccountAlert", "severity": "critical", "business_id": _B,
      "entity_type": "BUSINESS", "entity_id": _B,
      "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
      "alert_severity": "CRITICAL"}, False),
    ({"alertname": "WhatsAppAccountAlert", "severity": "warning", "business_id": _B,
      "entity_type": "BUSINESS", "entity_id": _B,
      "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
      "alert_severity": "WARNING"}, True),
    ({"alertname": "WhatsAppAccountAlert", "severity": "warning", "business_id": _B,
      "entity_type": "BUSINESS", "entity_id": _B,
      "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
      "alert_severity": "WARNING"}, False),
    # A WABA without the app's subscription: its numbers' Misrouted is muted (no webhook
    # reaches any URL, and re-subscribing may change the routing); another WABA's is not.
    ({"alertname": "WhatsAppWebhookSubscriptionMissing", "severity": "critical",
      "business_id": _B, "waba_id": _W2}, False),
    ({"alertname": "WhatsAppWebhookMisrouted", "severity": "warning", "business_id": _B,
      "waba_id": _W2, "phone_number_id": "4"}, True),
    ({"alertname": "WhatsAppWebhookMisrouted", "severity": "warning", "business_id": _B,
      "waba_id": _W, "phone_number_id": "1"}, False),
    # A PIN reset (request or completion) explains two-step verification being off for that
    # number only.
    ({"alertname": "WhatsAppPinResetRequested", "severity": "critical", "business_id": _B,
      "waba_id": _W2, "phone_number_id": "4", "event": "PIN_REQUEST_SUCCESS"}, False),
    ({"alertname": "WhatsAppTwoStepVerificationDisabled", "severity": "warning",
      "business_id": _B, "waba_id": _W2, "phone_number_id": "4"}, True),
    ({"alertname": "WhatsAppTwoStepVerificationDisabled", "severity": "warning",
      "business_id": _B, "waba_id": _W2, "phone_number_id": "5"}, False),
    # The older inhibitions still work.
    ({"alertname": "WhatsAppRegistrationCapReached", "severity": "critical",
      "business_id": _B2}, False),
    ({"alertname": "WhatsAppRegistrationCapApproaching", "severity": "warning",
      "business_id": _B2}, True),
]


def test_alertmanager_inhibitions_in_a_running_alertmanager() -> None:
    """Post the alerts above to a real Alertmanager running the shipped config and ask it
    which ones it mutes (Alertmanager's own inhibition code, not a reading of the YAML)."""
    with _running_alertmanager(_alertmanager_binary(), ALERTMANAGER_CONFIG) as port:
        api = f"http://127.0.0.1:{port}/api/v2/alerts"
        alerts = [{"labels": labels} for labels, _ in INHIBITION_CASES]
        status, answer = http_json("POST", api, alerts)
        assert status == 200, answer

        def states() -> dict[tuple[tuple[str, str], ...], bool]:
            status, alerts = http_json("GET", api)
            assert status == 200, alerts
            return {
                tuple(sorted(a["labels"].items())): bool(a["status"]["inhibitedBy"])
                for a in alerts
            }

        expected = {tuple(sorted(labels.items())): muted for labels, muted in INHIBITION_CASES}
        # The inhibitor learns the source alerts asynchronously: wait for the expected state.
        deadline = time.monotonic() + 15
        got = states()
        while got != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            got = states()
        wrong = [(dict(k), "muted" if got.get(k) else "not muted") for k in expected
                 if got.get(k) != expected[k]]
        assert not wrong, f"unexpected inhibition state: {wrong}"


def test_inhibit_rules_name_shipped_alerts() -> None:
    names = {rule["alert"] for rule in _alert_rules()}
    for rule in _load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname(=~|=)"(.*)"', matcher)
            if m and m.group(1) == "=":
                assert m.group(2) in names, matcher
            elif m and "|" in m.group(2):
                for alt in m.group(2).split("|"):
                    assert alt in names, f"{matcher}: {alt} is not an alert"


def test_alertmanager_webhook_url_is_in_one_place() -> None:
    text = ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    assert text.count(WEBHOOK_URL) == 1, "the webhook URL should be written exactly once"
    receivers = {r["name"]: r for r in _load_yaml(ALERTMANAGER_CONFIG)["receivers"]}
    assert set(receivers) == {"default", "page", "ticket"}
    for name, receiver in receivers.items():
        urls = [w["url"] for w in receiver.get("webhook_configs", [])]
        assert urls == [WEBHOOK_URL], f"receiver {name}: {urls}"
