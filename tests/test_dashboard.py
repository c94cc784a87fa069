"""The Grafana dashboard (grafana/): its JSON structure, its provisioning, that every PromQL
expression parses in a real Prometheus that has the repository's rules loaded, and that every
metric it reads is exported by the daemon (a real /metrics of the daemon polling the demo
simulator) or is a recording rule of deploy/prometheus/rules/.

Prometheus must be installed (CI installs it); without it the parse test fails, it never
skips. tests/test_e2e_alerting.py checks that every query also returns data.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator import Fault, builtin_scenario
from tests.e2e.procs import (
    ROOT,
    RULE_FILES,
    QueryError,
    Service,
    http_json,
    loaded_rule_groups,
    prom_query,
    start_prometheus,
    wait_until,
)
from tests.e2e.promql import (
    PARSE_VALUES,
    all_panels,
    dashboard_queries,
    load_dashboard,
    metric_names,
    recording_rule_names,
    substitute,
)
from tests.e2e.stack import WEBHOOK_FAMILIES, RunningProduct, prometheus_config

GRAFANA = ROOT / "grafana"
GENERATOR = GRAFANA / "generate.py"
DASHBOARD_FILE = GRAFANA / "dashboards" / "waba-monitor.json"
DATASOURCE_PROVISIONING = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVISIONING = GRAFANA / "provisioning" / "dashboards" / "waba-monitor.yml"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("waba_monitor_grafana_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard(DASHBOARD_FILE)


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


# --------------------------------------------------------------------------- (a) structure


def test_committed_json_is_the_generators_output() -> None:
    generator = load_generator()
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == generator.render(), (
        "grafana/dashboards/waba-monitor.json is out of date: run python grafana/generate.py")


def test_dashboard_identity_and_schema(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "waba-monitor"
    assert dashboard["id"] is None  # provisioned: Grafana assigns the numeric id
    assert 36 <= dashboard["schemaVersion"] <= 41  # Grafana 10.x / 11.x
    assert dashboard["title"]
    assert "__inputs" not in dashboard  # no import-time ${DS_...} placeholders
    assert [r["title"] for r in dashboard["panels"] if r["type"] == "row"] == [
        "Fleet overview", "Business portfolios", "WABAs", "Phone numbers", "Message templates",
        "History of status and quality", "Monitor health"]


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "business_id"}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name, metric in (("job", "whatsapp_monitor_build_info"),
                         ("business_id", "whatsapp_business_registered_phone_numbers_cap")):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE_REF
        assert variable["definition"] == variable["query"]["query"]
        assert variable["query"]["query"].startswith(f"label_values({metric}")
        assert variable["query"]["query"].endswith(f", {name})")
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def test_provisioning_loads_the_dashboard_with_the_default_datasource(
        dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load(DATASOURCE_PROVISIONING.read_text())["datasources"]
    assert len(datasources) == 1
    ds = datasources[0]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    default = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert default["current"]["value"] == ds["uid"], (
        "the dashboard's default datasource must be the provisioned datasource's uid")

    providers = yaml.safe_load(DASHBOARD_PROVISIONING.read_text())["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    # The mount documented in the provisioning file puts grafana/dashboards at that path.
    assert f"grafana/dashboards:{path}" in DASHBOARD_PROVISIONING.read_text()


def test_every_panel_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels_of(dashboard):
        assert panel.get("datasource") == DATASOURCE_REF, panel["title"]
        for t in panel["targets"]:
            assert t.get("datasource") == DATASOURCE_REF, (panel["title"], t["refId"])


def test_panel_ids_are_unique_and_every_panel_has_queries(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), ids
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for panel in panels_of(dashboard):
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no targets"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for t in targets:
            assert t.get("expr", "").strip(), (panel["title"], t["refId"])
    titles = [p["title"] for p in panels_of(dashboard)]
    assert len(titles) == len(set(titles)), "panel titles should be unique"


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_dashboard_uses_the_recording_rules(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(substitute(q.expr, PARSE_VALUES))
                         for q in dashboard_queries(dashboard)))
    for rule in ("whatsapp:phone_numbers:count_by_status",
                 "whatsapp:phone_numbers:count_by_quality_rating",
                 "whatsapp:business_registered_phone_numbers:ratio_cap",
                 "whatsapp_monitor:poll_duration_seconds:p50_5m",
                 "whatsapp_monitor:poll_duration_seconds:p95_5m",
                 "whatsapp_monitor:graph_requests:rate5m",
                 "whatsapp_monitor:graph_request_errors:rate5m",
                 "whatsapp_monitor:waba_data_age:seconds",
                 "whatsapp_monitor:graph_business_use_case_usage_ratio:max",
                 "whatsapp:business_messaging_limit_per_day:max",
                 "whatsapp:phone_numbers:count"):
        assert rule in used, rule
    # Where a recording rule exists, the dashboard does not recompute it from the raw metric.
    assert "whatsapp_monitor_poll_duration_seconds_bucket" not in used
    assert "whatsapp_monitor_graph_requests_total" not in used


PORTFOLIO_AND_WABA_FAMILIES = (
    "whatsapp_business_messaging_limit_tier",
    "whatsapp_business_verification_status",
    "whatsapp_business_registered_phone_numbers",
    "whatsapp_business_registered_phone_numbers_cap",
    "whatsapp_business_registered_phone_numbers_cap_info",
    "whatsapp_account_alert_timestamp_seconds",
    "whatsapp_waba_info",
    "whatsapp_waba_account_review_status",
    "whatsapp_waba_health_status",
    "whatsapp_health_status_error",
    "whatsapp_waba_ban_state",
    "whatsapp_waba_ban_date_timestamp_seconds",
    "whatsapp_waba_restriction_expiry_timestamp_seconds",
    "whatsapp_waba_violations_total",
    "whatsapp_waba_account_event_timestamp_seconds",
    "whatsapp_waba_phone_numbers_cap",
)


def test_dashboard_shows_the_portfolio_and_waba_families(dashboard: dict[str, Any]) -> None:
    """Every business-portfolio and WABA family has a panel, and no panel reads the
    deprecated per-number messaging-limit families (one portfolio value on every number)."""
    used = set().union(*(metric_names(substitute(q.expr, PARSE_VALUES))
                         for q in dashboard_queries(dashboard)))
    assert not set(WEBHOOK_FAMILIES) - set(PORTFOLIO_AND_WABA_FAMILIES)
    missing = [name for name in PORTFOLIO_AND_WABA_FAMILIES if name not in used]
    assert not missing, f"no panel reads {missing}"
    deprecated = {"whatsapp_phone_number_messaging_limit_tier",
                  "whatsapp_phone_number_messaging_limit_per_day"}
    assert not used & deprecated, sorted(used & deprecated)
    by_row: dict[str, set[str]] = {}
    row = ""
    for p in dashboard["panels"]:
        if p["type"] == "row":
            row = p["title"]
            continue
        for t in p["targets"]:
            by_row.setdefault(row, set()).update(
                metric_names(substitute(t["expr"], PARSE_VALUES)))
    assert {"whatsapp_business_verification_status", "whatsapp_business_messaging_limit_tier",
            "whatsapp:business_messaging_limit_per_day:max",
            "whatsapp_business_registered_phone_numbers_cap"} <= by_row["Business portfolios"]
    assert {"whatsapp_waba_account_review_status", "whatsapp_waba_ban_state",
            "whatsapp_waba_restriction_expiry_timestamp_seconds",
            "whatsapp_health_status_error"} <= by_row["WABAs"]


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (status) (whatsapp:phone_numbers:count_by_status{business_id=~"a|b", '
        'status!="on(x)"}) > 0 or on (job) vector(0) * on (job, instance) '
        "group_left (display_phone_number) max_over_time(metric_a[5m] @ end()) "
        "/ ignoring (le) rate(metric_b_total[$__rate_interval] offset 1h) + 1e3 unless Inf"
    )
    assert metric_names(substitute(expr, PARSE_VALUES)) == {
        "whatsapp:phone_numbers:count_by_status", "metric_a", "metric_b_total"}
    assert substitute("x{a=~\"$job\", b=~\"${business_id}\"}[$__range]", PARSE_VALUES) == \
        'x{a=~".*", b=~".*"}[1h]'
    # label_replace's group reference is not a Grafana variable; a misspelt variable is.
    assert substitute('label_replace(x{a=~"$job"}, "b", "$1", "c", "(.+)")', PARSE_VALUES) == \
        'label_replace(x{a=~".*"}, "b", "$1", "c", "(.+)")'
    with pytest.raises(KeyError):
        substitute("x{a=~\"$jobs\"}", PARSE_VALUES)


# --------------------------------------------------------------------------- (b) PromQL parses


@pytest.fixture(scope="module")
def rules_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real Prometheus with the repository's rule files loaded (nothing to scrape)."""
    workdir = tmp_path_factory.mktemp("prometheus-parse")
    with start_prometheus(workdir, prometheus_config(RULE_FILES)) as prometheus:
        yield prometheus


def test_every_expression_parses_in_prometheus(dashboard: dict[str, Any],
                                               rules_prometheus: Service) -> None:
    # The rule files were loaded: the recording rules the dashboard reads exist there.
    expected_groups = sum(len(yaml.safe_load(p.read_text())["groups"]) for p in RULE_FILES)
    groups = wait_until(lambda: loaded_rule_groups(rules_prometheus.url), timeout=10,
                        message="Prometheus loaded no rule groups")
    assert len(groups) == expected_groups

    queries = dashboard_queries(dashboard)
    assert len(queries) > 30
    problems = []
    for query in queries:
        expr = substitute(query.expr, PARSE_VALUES)
        try:
            prom_query(rules_prometheus.url, expr)
        except QueryError as exc:
            kind = "does not parse" if exc.error_type == "bad_data" else "fails"
            problems.append(f"{query.where} {kind}: {exc.error}\n    {expr}")
    assert not problems, "\n".join(problems)
    # The check can tell: a broken expression comes back as bad_data.
    with pytest.raises(QueryError) as bad:
        prom_query(rules_prometheus.url, "sum by (job (whatsapp_monitor_waba_up)")
    assert bad.value.error_type == "bad_data"


# --------------------------------------------------------------------------- (c) metric names


@pytest.fixture(scope="module")
def real_metrics(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of the daemon polling the demo simulator, after one Graph error (so the
    error counter, which exists only once an error happened, is in it) and after the account
    actions' signed webhooks (the WABA and portfolio facts only webhooks carry)."""
    scenario = builtin_scenario("demo")
    waba_id = [w.id for _, w in scenario.wabas()][-1]
    fault = Fault(target=waba_id, kind="http_error", status=500, count=1)
    workdir = tmp_path_factory.mktemp("daemon-metrics")
    with RunningProduct(workdir, scenario, faults=[fault]) as product:
        product.run_account_actions()

        def get() -> str:
            status, text = http_json("GET", f"{product.daemon_url}/metrics")
            assert status == 200
            return str(text)

        # What the WABA nodes say comes at the discovery cadence, after the first full poll.
        node_families = ("whatsapp_waba_health_status", "whatsapp_waba_account_review_status",
                         "whatsapp_waba_message_templates", "whatsapp_message_template_status")

        def missing(text: str) -> list[str]:
            return [name for name in (*WEBHOOK_FAMILIES, *node_families)
                    if f"\n{name}{{" not in text]

        def scrape() -> str | None:
            text = get()
            ok = ("\nwhatsapp_monitor_graph_request_errors_total{" in text
                  and "\nwhatsapp_monitor_poll_duration_seconds_count" in text
                  and not missing(text))
            return text if ok else None

        text: str = wait_until(
            scrape, timeout=20,
            message=lambda: "the daemon's /metrics never showed a Graph error and every "
                            f"webhook family; missing: {missing(get())}")
    return text


def exported_series(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names it is exported with."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_every_metric_is_exported_or_a_recording_rule(dashboard: dict[str, Any],
                                                       real_metrics: str) -> None:
    exported = exported_series(real_metrics)
    assert "whatsapp_phone_number_status" in exported  # a real scrape of the demo fleet
    rules = recording_rule_names()
    problems = []
    used: set[str] = set()
    for query in dashboard_queries(dashboard):
        names = metric_names(substitute(query.expr, PARSE_VALUES))
        assert names, f"{query.where}: no metric name found in {query.expr!r}"
        used |= names
        for name in sorted(names - set(exported) - rules):
            problems.append(f"{query.where}: {name} is neither exported nor a recording rule")
    assert not problems, "\n".join(problems)
    assert used & set(exported) and used & rules


def test_selectors_of_exported_metrics_filter_on_the_variables(dashboard: dict[str, Any],
                                                               real_metrics: str) -> None:
    """Every selector of an exported metric has job=~"$job", and business_id=~"$business_id"
    when the metric has a business_id label, so the variables filter every panel."""
    exported = exported_series(real_metrics)
    problems = []
    for query in dashboard_queries(dashboard):
        if query.where.startswith("variable job"):
            continue  # the job variable lists the jobs; it cannot filter on itself
        for name in metric_names(substitute(query.expr, PARSE_VALUES)) & set(exported):
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}\s*(\{{[^}}]*\}})?")
            for match in pattern.finditer(query.expr):
                matchers = match.group(1) or ""
                wanted = ['job=~"$job"']
                if "business_id" in exported[name]:
                    wanted.append('business_id=~"$business_id"')
                if query.where.startswith("variable business_id"):
                    wanted.remove('business_id=~"$business_id"')
                missing = [w for w in wanted if w not in matchers]
                if missing:
                    problems.append(f"{query.where}: {name}{matchers} lacks {missing}")
    assert not problems, "\n".join(problems)
