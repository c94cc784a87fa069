"""Metrics about the monitor itself, kept in an injected prometheus_client registry.

Per-WABA freshness lives in the snapshot fragments instead (see exposition.py), so that a
scrape of a large fleet does not walk thousands of prometheus_client children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from monitor import __version__

ENDPOINTS = (
    "debug_token",
    "phone_numbers",
    "phone_number",
    "owned_whatsapp_business_accounts",
    "client_whatsapp_business_accounts",
    "waba",
    "business",
    "subscribed_apps",
    "settings",
    "message_templates",
)
# Reads whose result may be missing without failing a poll: why it is missing is counted.
OPTIONAL_READS = ("subscribed_apps", "settings")
USAGE_MEASURES = ("call_count", "total_cputime", "total_time")
TOKEN_PERMISSIONS = ("whatsapp_business_management", "whatsapp_business_messaging",
                     "business_management")


class OptionalGauge(Collector):
    """A gauge with no series at all until it has a value (absent means "not known")."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.value: float | None = None
        registry.register(self)

    def set(self, value: float | None) -> None:
        self.value = value

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.value is None:
            return []
        return [GaugeMetricFamily(self.name, self.documentation, value=self.value)]


@dataclass(frozen=True, slots=True)
class SelfMetrics:
    registry: CollectorRegistry
    graph_requests: Counter
    graph_errors: Counter
    poll_duration: Histogram
    field_rejected: Gauge
    auth_ok: Gauge
    app_usage: Gauge
    scan_interval: Gauge
    businesses: Gauge
    wabas: Gauge
    token_expiry: OptionalGauge
    token_data_access_expiry: OptionalGauge
    token_valid: OptionalGauge
    token_permission: Gauge
    token_last_check: OptionalGauge
    shard_ordinal: Gauge
    total_shards: Gauge
    reload_ok: Gauge
    reload_timestamp: OptionalGauge
    unreadable: Counter


def create_self_metrics(
    registry: CollectorRegistry | None = None, *, process_metrics: bool = True
) -> SelfMetrics:
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    if process_metrics:
        ProcessCollector(registry=registry)
    build = Gauge(
        "whatsapp_monitor_build_info",
        "Always 1; the version of waba-monitor that is running.",
        ["version"],
        registry=registry,
    )
    build.labels(version=__version__).set(1)
    requests = Counter(
        "whatsapp_monitor_graph_requests",
        "Graph API requests sent, by endpoint (each retry counts).",
        ["endpoint"],
        registry=registry,
    )
    for endpoint in ENDPOINTS:
        requests.labels(endpoint=endpoint)
    unreadable = Counter(
        "whatsapp_monitor_optional_read_failures",
        "Optional reads (a WABA's subscribed apps, a number's settings) that gave no answer, "
        "by read and reason (Graph error kind or code); their series are absent meanwhile.",
        ["read", "reason"],
        registry=registry,
    )
    metrics = SelfMetrics(
        unreadable=unreadable,
        registry=registry,
        graph_requests=requests,
        graph_errors=Counter(
            "whatsapp_monitor_graph_request_errors",
            "Graph API requests that failed, by endpoint and Graph error code "
            "(or http_<status>, network, payload, cursor_loop).",
            ["endpoint", "code"],
            registry=registry,
        ),
        poll_duration=Histogram(
            "whatsapp_monitor_poll_duration_seconds",
            "Wall time of one poll of one WABA, including retries and per-number reads.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        ),
        field_rejected=Gauge(
            "whatsapp_monitor_graph_field_rejected",
            "1 for each phone-number field the Graph API rejected as nonexisting; "
            "it is no longer requested.",
            ["field"],
            registry=registry,
        ),
        auth_ok=Gauge(
            "whatsapp_monitor_graph_auth_ok",
            "0 after the Graph API rejected the access token, until a poll succeeds again.",
            registry=registry,
        ),
        app_usage=Gauge(
            "whatsapp_monitor_graph_app_usage_ratio",
            "Last X-App-Usage reading, as a ratio of the app's hourly allowance.",
            ["measure"],
            registry=registry,
        ),
        scan_interval=Gauge(
            "whatsapp_monitor_scan_interval_seconds",
            "The configured interval between polls of one WABA.",
            registry=registry,
        ),
        businesses=Gauge(
            "whatsapp_monitor_businesses",
            "Business portfolios this monitor is configured to watch.",
            registry=registry,
        ),
        wabas=Gauge(
            "whatsapp_monitor_wabas",
            "WABAs this monitor polls (configured or discovered).",
            registry=registry,
        ),
        token_expiry=OptionalGauge(
            "whatsapp_monitor_access_token_expiry_timestamp_seconds",
            "When the access token expires, from /debug_token; absent for a token that never "
            "expires or when no app id and secret are configured.",
            registry,
        ),
        token_data_access_expiry=OptionalGauge(
            "whatsapp_monitor_access_token_data_access_expiry_timestamp_seconds",
            "When the token's data access expires, from /debug_token; absent when it does not.",
            registry,
        ),
        token_valid=OptionalGauge(
            "whatsapp_monitor_access_token_valid",
            "1 when /debug_token says the access token is valid; absent when never checked.",
            registry,
        ),
        token_permission=Gauge(
            "whatsapp_monitor_access_token_permission",
            "1 when the access token has the permission (scope), from /debug_token.",
            ["permission"],
            registry=registry,
        ),
        token_last_check=OptionalGauge(
            "whatsapp_monitor_access_token_last_check_timestamp_seconds",
            "When /debug_token last answered; absent until it has (or when no app id and "
            "secret are configured).",
            registry,
        ),
        shard_ordinal=Gauge(
            "whatsapp_monitor_shard_ordinal",
            "This replica's shard number (also as the shard_ordinal label, for the "
            "missing-shard alert).",
            ["shard_ordinal"],
            registry=registry,
        ),
        total_shards=Gauge(
            "whatsapp_monitor_total_shards",
            "How many shards the businesses are spread over.",
            registry=registry,
        ),
        reload_ok=Gauge(
            "whatsapp_monitor_config_last_reload_successful",
            "1 if the last configuration load (start or reload) succeeded; 0 means a reload "
            "was rejected and the previous configuration is still running.",
            registry=registry,
        ),
        reload_timestamp=OptionalGauge(
            "whatsapp_monitor_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded; absent until the daemon has started.",
            registry,
        ),
    )
    metrics.auth_ok.set(1)
    for permission in TOKEN_PERMISSIONS:
        metrics.token_permission.labels(permission=permission)
    for measure in USAGE_MEASURES:
        metrics.app_usage.labels(measure=measure)
    return metrics
