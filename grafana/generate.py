#!/usr/bin/env python3
"""Generate grafana/dashboards/waba-monitor.json, the waba-monitor Grafana dashboard.

The committed JSON is the product (Grafana provisions it as is); this script is how it is
written, so that panel ids, the layout and the datasource references stay consistent.

    python grafana/generate.py           # rewrite the JSON
    python grafana/generate.py --check   # exit 1 if the committed JSON is out of date

tests/test_dashboard.py fails when the committed JSON differs from this script's output.

Conventions:
- Every panel and every query uses the ``${datasource}`` template variable; its default is the
  datasource uid provisioned by grafana/provisioning/datasources/prometheus.yml.
- Raw exporter metrics are filtered by ``job=~"$job"`` and, where they have it,
  ``business_id=~"$business_id"``. The ``whatsapp:`` recording rules
  (deploy/prometheus/rules/waba-monitor-recording.yml) aggregate over job and instance (two
  exporters polling the same WABA are counted once), so they are filtered by business only.
- Recording rules are used where one exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "waba-monitor.json"

UID = "waba-monitor"
TITLE = "WhatsApp Business numbers (waba-monitor)"
DATASOURCE_UID = "prometheus"  # the uid in provisioning/datasources/prometheus.yml
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
RUNBOOK = "https://github.com/waba-monitor/waba-monitor/blob/main/docs/runbook.md"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x

# Label selectors.
NUM = 'job=~"$job", business_id=~"$business_id"'  # raw per-number / per-business metrics
BIZ = 'business_id=~"$business_id"'  # whatsapp: recording rules (no job label)
JOB = 'job=~"$job"'  # monitor self-metrics without business_id
NUMBER_KEY = "business_id, waba_id, phone_number_id"

# Colours.
GREEN, YELLOW, ORANGE, RED, GREY, BLUE = "green", "yellow", "orange", "red", "#8e8e8e", "blue"

STATUS_COLORS = {"CONNECTED": GREEN, "PENDING": BLUE, "FLAGGED": ORANGE, "RESTRICTED": ORANGE,
                 "RATE_LIMITED": ORANGE, "BANNED": RED, "DISCONNECTED": RED, "DELETED": GREY,
                 "MIGRATED": GREY, "UNKNOWN": GREY, "UNVERIFIED": GREY}
RATING_COLORS = {"GREEN": GREEN, "YELLOW": YELLOW, "RED": RED, "NA": GREY, "UNKNOWN": GREY}
HEALTH_COLORS = {"AVAILABLE": GREEN, "LIMITED": ORANGE, "BLOCKED": RED}
NAME_STATUS_COLORS = {"APPROVED": GREEN, "AVAILABLE_WITHOUT_REVIEW": GREEN,
                      "PENDING_REVIEW": BLUE, "DECLINED": RED, "EXPIRED": RED}


# --------------------------------------------------------------------------- building blocks


def target(expr: str, *, ref: str = "A", legend: str = "", instant: bool = False,
           table: bool = False) -> dict[str, Any]:
    return {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "editorMode": "code",
        "range": not instant,
        "instant": instant,
        "format": "table" if table else "time_series",
    }


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in steps]}


def value_mappings(colors: dict[str, str], texts: dict[str, str] | None = None,
                   *, otherwise: str | None = None) -> list[dict[str, Any]]:
    """Value mappings from value to colour (and display text); ``otherwise`` colours the rest."""
    options = {
        value: {"color": color, "index": i, **({"text": texts[value]} if texts else {})}
        for i, (value, color) in enumerate(colors.items())
    }
    mappings: list[dict[str, Any]] = [{"type": "value", "options": options}]
    if otherwise:
        mappings.append({"type": "regex", "options": {
            "pattern": ".+", "result": {"color": otherwise, "index": len(colors)}}})
    return mappings


def color_overrides(colors: dict[str, str]) -> list[dict[str, Any]]:
    """Fixed series colours by display name (legend)."""
    return [
        {"matcher": {"id": "byName", "options": name},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
        for name, color in colors.items()
    ]


def panel(kind: str, title: str, description: str, targets: list[dict[str, Any]], *,
          w: int, h: int, defaults: dict[str, Any] | None = None,
          overrides: list[dict[str, Any]] | None = None, options: dict[str, Any] | None = None,
          transformations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w},
        "targets": targets,
        "fieldConfig": {"defaults": defaults or {}, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        out["transformations"] = transformations
    return out


def reduce_last(**extra: Any) -> dict[str, Any]:
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, **extra}


def stat(title: str, description: str, expr: str, *, steps: tuple[tuple[float | None, str], ...],
         unit: str = "none", mappings: list[dict[str, Any]] | None = None, legend: str = "",
         text_mode: str = "value", w: int = 4, h: int = 4) -> dict[str, Any]:
    return panel(
        "stat", title, description, [target(expr, legend=legend, instant=True)], w=w, h=h,
        defaults={"unit": unit, "thresholds": thresholds(*steps), "mappings": mappings or [],
                  "color": {"mode": "thresholds"}},
        options=reduce_last(colorMode="background", graphMode="none", justifyMode="auto",
                            orientation="auto", textMode=text_mode, wideLayout=True,
                            showPercentChange=False),
    )


def timeseries(title: str, description: str, targets: list[dict[str, Any]], *, unit: str,
               w: int, h: int = 8, stacked: bool = False, custom: dict[str, Any] | None = None,
               steps: tuple[tuple[float | None, str], ...] = ((None, GREEN),),
               overrides: list[dict[str, Any]] | None = None,
               extra_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    return panel(
        "timeseries", title, description, targets, w=w, h=h,
        defaults={
            "unit": unit,
            "color": {"mode": "palette-classic"},
            "thresholds": thresholds(*steps),
            "custom": {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 60 if stacked else 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
                "thresholdsStyle": {"mode": "off"},
                **(custom or {}),
            },
            **(extra_defaults or {}),
        },
        overrides=overrides,
        options={"legend": {"displayMode": "table", "placement": "right",
                            "calcs": ["lastNotNull", "max"], "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def state_timeline(title: str, description: str, expr: str, *, legend: str,
                   mappings: list[dict[str, Any]], w: int = 24, h: int = 8) -> dict[str, Any]:
    return panel(
        "state-timeline", title, description, [target(expr, legend=legend)], w=w, h=h,
        defaults={"color": {"mode": "thresholds"}, "thresholds": thresholds((None, GREY)),
                  "mappings": mappings, "custom": {"fillOpacity": 80, "lineWidth": 0}},
        options={"mergeValues": True, "showValue": "never", "alignValue": "left",
                 "rowHeight": 0.9, "legend": {"displayMode": "list", "placement": "bottom",
                                              "showLegend": False},
                 "tooltip": {"mode": "single", "sort": "none"}},
    )


def cell_colors(field: str, colors: dict[str, str], otherwise: str | None = None
                ) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": field}, "properties": [
        {"id": "mappings", "value": value_mappings(colors, otherwise=otherwise)},
        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
    ]}


def by_number(label: str, metric: str) -> str:
    """The current value of a StateSet per number, as a label (value 1)."""
    return f"max by ({NUMBER_KEY}, {label}) ({metric}{{{NUM}}} == 1)"


# --------------------------------------------------------------------------- panels


def fleet_overview() -> list[dict[str, Any]]:
    count = "whatsapp:phone_numbers:count_by"
    return [
        stat("Phone numbers", "All known phone numbers of the selected businesses.",
             f"sum(whatsapp:phone_numbers:count{{{BIZ}}})", steps=((None, BLUE),)),
        stat("Not CONNECTED",
             "Numbers whose status is known and is not CONNECTED (alert: "
             "WhatsAppPhoneNumberNotConnected). Includes numbers that are deliberately not "
             "connected (PENDING, DELETED, MIGRATED).",
             f'sum({count}_status{{{BIZ}, status!="CONNECTED"}})',
             steps=((None, GREEN), (1, RED))),
        stat("Quality RED", "Numbers with quality rating RED (alert: WhatsAppQualityRatingLow).",
             f'sum({count}_quality_rating{{{BIZ}, rating="RED"}})',
             steps=((None, GREEN), (1, RED))),
        stat("Cannot send (BLOCKED)",
             "Numbers whose health_status.can_send_message is BLOCKED (alert: "
             "WhatsAppCannotSendMessages).",
             f'sum({count}_health_status{{{BIZ}, can_send_message="BLOCKED"}})',
             steps=((None, GREEN), (1, RED))),
        stat("Businesses at their cap",
             "Business portfolios whose registered numbers reached the registration cap "
             "(alert: WhatsAppRegistrationCapReached).",
             f"count(whatsapp:business_registered_phone_numbers:ratio_cap{{{BIZ}}} >= 1) "
             "or vector(0)",
             steps=((None, GREEN), (1, RED))),
        stat("WABAs failing to poll",
             "WABAs whose last poll failed (whatsapp_monitor_waba_up == 0; alert: "
             "WhatsAppMonitorPollFailing). Their numbers show the last good values.",
             f"count(whatsapp_monitor_waba_up{{{NUM}}} == 0) or vector(0)",
             steps=((None, GREEN), (1, ORANGE))),
        panel(
            "bargauge", "Numbers by status",
            "Phone numbers per status (StateSet whatsapp_phone_number_status, recording rule "
            "whatsapp:phone_numbers:count_by_status). Values the API returns that are not in "
            "the documented enum (e.g. OFFLINE) appear as their own bar.",
            [target(f"sort_desc(sum by (status) ({count}_status{{{BIZ}}}))",
                    legend="{{status}}", instant=True)],
            w=8, h=9,
            defaults={"unit": "none", "min": 0, "color": {"mode": "fixed", "fixedColor": BLUE},
                      "thresholds": thresholds((None, BLUE))},
            overrides=color_overrides(STATUS_COLORS),
            options=reduce_last(displayMode="basic", orientation="horizontal",
                                showUnfilled=True, valueMode="color", namePlacement="left",
                                minVizHeight=10, minVizWidth=0, maxVizHeight=300, sizing="auto"),
        ),
        panel(
            "piechart", "Quality rating",
            "Phone numbers per quality rating (recording rule "
            "whatsapp:phone_numbers:count_by_quality_rating).",
            [target(f"sum by (rating) ({count}_quality_rating{{{BIZ}}})",
                    legend="{{rating}}", instant=True)],
            w=8, h=9,
            defaults={"unit": "none", "color": {"mode": "palette-classic"}},
            overrides=color_overrides(RATING_COLORS),
            options=reduce_last(pieType="donut", displayLabels=["value"],
                                legend={"displayMode": "table", "placement": "right",
                                        "values": ["value", "percent"], "showLegend": True},
                                tooltip={"mode": "single", "sort": "none"}),
        ),
        panel(
            "bargauge", "Registration cap used (registered / cap)",
            "Registered numbers as a share of each business portfolio's registration cap "
            "(recording rule whatsapp:business_registered_phone_numbers:ratio_cap), highest "
            "first. Orange from 80 % (WhatsAppRegistrationCapApproaching), red at the cap "
            "(WhatsAppRegistrationCapReached). Above 100 % means more numbers are registered "
            "than the inferred cap allows.",
            [target(f"sort_desc(whatsapp:business_registered_phone_numbers:ratio_cap{{{BIZ}}})",
                    legend="{{business_id}}", instant=True)],
            w=8, h=9,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 0,
                      "color": {"mode": "thresholds"},
                      "thresholds": thresholds((None, GREEN), (0.8, ORANGE), (1, RED))},
            options=reduce_last(displayMode="gradient", orientation="horizontal",
                                showUnfilled=True, valueMode="color", namePlacement="left",
                                minVizHeight=10, minVizWidth=0, maxVizHeight=300, sizing="auto"),
        ),
    ]


def per_business() -> list[dict[str, Any]]:
    cap_queries = [
        target(f"max by (business_id) (whatsapp_business_phone_numbers{{{NUM}}})",
               ref="A", instant=True, table=True),
        target(f"max by (business_id) (whatsapp_business_registered_phone_numbers{{{NUM}}})",
               ref="B", instant=True, table=True),
        target(f"max by (business_id) (whatsapp_business_registered_phone_numbers_cap{{{NUM}}})",
               ref="C", instant=True, table=True),
        target(f"max by (business_id) (whatsapp:business_registered_phone_numbers:headroom"
               f"{{{BIZ}}})", ref="D", instant=True, table=True),
        target("max by (business_id, source) "
               f"(whatsapp_business_registered_phone_numbers_cap_info{{{NUM}}})",
               ref="E", instant=True, table=True),
    ]
    number_queries = [
        target(f"max by ({NUMBER_KEY}, display_phone_number, verified_name) "
               f"(whatsapp_phone_number_info{{{NUM}}})", ref="A", instant=True, table=True),
        target(by_number("status", "whatsapp_phone_number_status"),
               ref="B", instant=True, table=True),
        target(by_number("rating", "whatsapp_phone_number_quality_rating"),
               ref="C", instant=True, table=True),
        target(by_number("name_status", "whatsapp_phone_number_name_status"),
               ref="D", instant=True, table=True),
        target(by_number("level", "whatsapp_phone_number_throughput_level"),
               ref="E", instant=True, table=True),
        target(by_number("can_send_message", "whatsapp_phone_number_health_status"),
               ref="F", instant=True, table=True),
        target(by_number("tier", "whatsapp_phone_number_messaging_limit_tier"),
               ref="G", instant=True, table=True),
        target(f"max by ({NUMBER_KEY}) (whatsapp_phone_number_messaging_limit_per_day{{{NUM}}})",
               ref="H", instant=True, table=True),
        target(f"max by ({NUMBER_KEY}) (whatsapp_phone_number_registered{{{NUM}}})",
               ref="I", instant=True, table=True),
    ]
    number_columns = [
        ("business_id", "Business"), ("waba_id", "WABA"), ("phone_number_id", "Phone number ID"),
        ("display_phone_number", "Number"), ("verified_name", "Verified name"),
        ("status", "Status"), ("rating", "Quality"), ("name_status", "Name status"),
        ("can_send_message", "Can send"), ("level", "Throughput"),
        ("tier", "Messaging limit tier"), ("Value #H", "Limit per day"),
        ("Value #I", "Registered"),
    ]
    return [
        panel(
            "gauge", "Registration cap",
            "Registered numbers / registration cap per business portfolio (recording rule "
            "whatsapp:business_registered_phone_numbers:ratio_cap). Orange from 80 %, red at "
            "the cap.",
            [target(f"whatsapp:business_registered_phone_numbers:ratio_cap{{{BIZ}}}",
                    legend="{{business_id}}", instant=True)],
            w=6, h=8,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 0,
                      "color": {"mode": "thresholds"},
                      "thresholds": thresholds((None, GREEN), (0.8, ORANGE), (1, RED))},
            options=reduce_last(showThresholdLabels=False, showThresholdMarkers=True,
                                orientation="auto", minVizHeight=75, minVizWidth=75,
                                sizing="auto"),
        ),
        panel(
            "table", "Registration cap by business",
            "Numbers, registered numbers, the cap and where it comes from (config, webhook, "
            "inferred from verification or messaging limit, or default), and the free slots "
            "(recording rule whatsapp:business_registered_phone_numbers:headroom).",
            cap_queries, w=18, h=8,
            defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                 "filterable": False},
                      "thresholds": thresholds((None, GREEN))},
            overrides=[{"matcher": {"id": "byName", "options": "Headroom"}, "properties": [
                {"id": "thresholds", "value": thresholds((None, RED), (1, ORANGE), (3, GREEN))},
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            ]}],
            options={"showHeader": True, "cellHeight": "sm",
                     "sortBy": [{"displayName": "Headroom", "desc": False}],
                     "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True, "Value #E": True},
                    "indexByName": {"business_id": 0, "Value #A": 1, "Value #B": 2,
                                    "Value #C": 3, "Value #D": 4, "source": 5},
                    "renameByName": {"business_id": "Business", "Value #A": "Numbers",
                                     "Value #B": "Registered", "Value #C": "Cap",
                                     "Value #D": "Headroom", "source": "Cap source"},
                }},
            ],
        ),
        panel(
            "table", "Phone numbers of the selected businesses",
            "One row per phone number: the current value of every StateSet, joined with "
            "whatsapp_phone_number_info for the display number and verified name. A field the "
            "API did not return is empty. Filter a column with its header.",
            number_queries, w=24, h=14,
            defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                 "filterable": True},
                      "thresholds": thresholds((None, GREEN))},
            overrides=[
                cell_colors("Status", {"CONNECTED": GREEN}, otherwise=RED),
                cell_colors("Quality", RATING_COLORS),
                cell_colors("Can send", HEALTH_COLORS),
                cell_colors("Name status", NAME_STATUS_COLORS),
                {"matcher": {"id": "byName", "options": "Registered"}, "properties": [
                    {"id": "mappings", "value": value_mappings(
                        {"0": GREY, "1": GREEN}, {"0": "no", "1": "yes"})},
                ]},
            ],
            options={"showHeader": True, "cellHeight": "sm",
                     "sortBy": [{"displayName": "Status", "desc": False}],
                     "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True, **{f"Value #{r}": True for r in "ABCDEFG"}},
                    "indexByName": {name: i for i, (name, _) in enumerate(number_columns)},
                    "renameByName": dict(number_columns),
                }},
            ],
        ),
    ]


def history() -> list[dict[str, Any]]:
    connected = f"whatsapp_phone_number_connected{{{NUM}}}"
    info_join = (f"* on ({NUMBER_KEY}) group_left (display_phone_number, verified_name)\n"
                 f"  max by ({NUMBER_KEY}, display_phone_number, verified_name) "
                 f"(whatsapp_phone_number_info{{{NUM}}})")
    quality = "whatsapp_phone_number_quality_rating"
    number_legend = "{{display_phone_number}} {{verified_name}} ({{phone_number_id}})"
    return [
        timeseries(
            "Numbers by status over time",
            "Phone numbers per status over time (recording rule "
            "whatsapp:phone_numbers:count_by_status); statuses with no number are left out.",
            [target(f"sum by (status) (whatsapp:phone_numbers:count_by_status{{{BIZ}}}) > 0",
                    legend="{{status}}")],
            unit="none", w=12, stacked=True, overrides=color_overrides(STATUS_COLORS),
        ),
        timeseries(
            "Numbers by quality rating over time",
            "Phone numbers per quality rating over time (recording rule "
            "whatsapp:phone_numbers:count_by_quality_rating).",
            [target("sum by (rating) "
                    f"(whatsapp:phone_numbers:count_by_quality_rating{{{BIZ}}}) > 0",
                    legend="{{rating}}")],
            unit="none", w=12, stacked=True, overrides=color_overrides(RATING_COLORS),
        ),
        state_timeline(
            "Numbers that were not CONNECTED in the time range",
            "whatsapp_phone_number_connected of every number that was not CONNECTED at some "
            "moment of the dashboard's time range: green CONNECTED, red any other status.",
            f"(\n  max by ({NUMBER_KEY}) ({connected})\n"
            f"  and on ({NUMBER_KEY})\n"
            f"  (min by ({NUMBER_KEY}) (min_over_time({connected}[$__range] @ end())) == 0)\n"
            f")\n{info_join}",
            legend=number_legend,
            mappings=value_mappings({"1": GREEN, "0": RED},
                                    {"1": "CONNECTED", "0": "NOT CONNECTED"}),
            w=12, h=10,
        ),
        state_timeline(
            "Quality of numbers that were below GREEN in the time range",
            "Quality rating of every number that was YELLOW or RED at some moment of the "
            "dashboard's time range (0 = GREEN or not rated, 1 = YELLOW, 2 = RED).",
            f"(\n  (\n    max by ({NUMBER_KEY}) ({quality}{{{NUM}, rating=\"YELLOW\"}})\n"
            f"    + 2 * max by ({NUMBER_KEY}) ({quality}{{{NUM}, rating=\"RED\"}})\n  )\n"
            f"  and on ({NUMBER_KEY})\n"
            f"  (max by ({NUMBER_KEY}) (max_over_time("
            f"{quality}{{{NUM}, rating=~\"YELLOW|RED\"}}[$__range] @ end())) == 1)\n"
            f")\n{info_join}",
            legend=number_legend,
            mappings=value_mappings({"0": GREEN, "1": YELLOW, "2": RED},
                                    {"0": "GREEN / not rated", "1": "YELLOW", "2": "RED"}),
            w=12, h=10,
        ),
    ]


def monitor_health() -> list[dict[str, Any]]:
    up_mapping = value_mappings({"1": GREEN, "0": RED}, {"1": "UP", "0": "DOWN"})
    usage_steps = ((None, GREEN), (0.8, ORANGE), (1, RED))
    usage_custom = {"thresholdsStyle": {"mode": "line+area"}, "axisSoftMin": 0,
                    "axisSoftMax": 1}
    return [
        stat("Exporter scraped",
             "Prometheus can scrape the exporter (recording rule whatsapp_monitor:up; alert: "
             "WhatsAppMonitorDown).",
             f"min(whatsapp_monitor:up{{{JOB}}})", steps=((None, RED), (1, GREEN)),
             mappings=up_mapping),
        stat("Graph API token",
             "0 after the Graph API rejected the access token, until a poll succeeds "
             "(alert: WhatsAppMonitorGraphAuthFailing).",
             f"min(whatsapp_monitor_graph_auth_ok{{{JOB}}})", steps=((None, RED), (1, GREEN)),
             mappings=value_mappings({"1": GREEN, "0": RED}, {"1": "OK", "0": "REJECTED"})),
        stat("WABAs polled OK", "WABAs whose last poll succeeded.",
             f"sum(whatsapp_monitor_waba_up{{{NUM}}})", steps=((None, BLUE),)),
        stat("WABAs watched", "WABAs the exporter polls (configured or discovered).",
             f"sum(whatsapp_monitor_wabas{{{JOB}}})", steps=((None, BLUE),)),
        stat("Scan interval", "Configured time between two polls of one WABA.",
             f"max(whatsapp_monitor_scan_interval_seconds{{{JOB}}})", unit="s",
             steps=((None, BLUE),)),
        stat("Version", "waba-monitor version(s) running.",
             f"count by (version) (whatsapp_monitor_build_info{{{JOB}}})",
             legend="{{version}}", text_mode="name", steps=((None, BLUE),)),
        timeseries(
            "Poll duration p50 / p95",
            "Wall time of one WABA poll, including retries and per-number reads, from the "
            "whatsapp_monitor_poll_duration_seconds histogram (recording rules "
            "whatsapp_monitor:poll_duration_seconds:p50_5m and :p95_5m).",
            [target(f"whatsapp_monitor:poll_duration_seconds:p50_5m{{{JOB}}}", ref="A",
                    legend="p50 {{instance}}"),
             target(f"whatsapp_monitor:poll_duration_seconds:p95_5m{{{JOB}}}", ref="B",
                    legend="p95 {{instance}}")],
            unit="s", w=12,
        ),
        state_timeline(
            "WABA polls (whatsapp_monitor_waba_up)",
            "Whether the last poll of each WABA succeeded. After a failure the WABA's last good "
            "values stay exported.",
            f"max by (business_id, waba_id) (whatsapp_monitor_waba_up{{{NUM}}})",
            legend="WABA {{waba_id}} (business {{business_id}})",
            mappings=value_mappings({"1": GREEN, "0": RED}, {"1": "OK", "0": "FAILING"}),
            w=12, h=8,
        ),
        timeseries(
            "Graph API requests by endpoint",
            "Graph API requests per second, retries included (recording rule "
            "whatsapp_monitor:graph_requests:rate5m).",
            [target(f"sum by (endpoint) (whatsapp_monitor:graph_requests:rate5m{{{JOB}}})",
                    legend="{{endpoint}}")],
            unit="reqps", w=8,
        ),
        timeseries(
            "Graph API errors by code",
            "Failed Graph API requests per second by Graph error code, or http_<status>, "
            "network, payload, cursor_loop (recording rule "
            "whatsapp_monitor:graph_request_errors:rate5m).",
            [target("sum by (code) "
                    f"(whatsapp_monitor:graph_request_errors:rate5m{{{JOB}}})",
                    legend="{{code}}")],
            unit="reqps", w=8, extra_defaults={"noValue": "no errors"},
        ),
        timeseries(
            "Graph API error ratio by endpoint",
            "Share of Graph API requests that failed, per endpoint (recording rule "
            "whatsapp_monitor:graph_request_errors:ratio_rate5m).",
            [target(f"whatsapp_monitor:graph_request_errors:ratio_rate5m{{{JOB}}}",
                    legend="{{endpoint}} {{instance}}")],
            unit="percentunit", w=8, extra_defaults={"min": 0, "noValue": "no errors"},
        ),
        timeseries(
            "Data age",
            "Time since the last successful poll of each WABA (recording rule "
            "whatsapp_monitor:waba_data_age:seconds). The dashed line is the age at which "
            "WhatsAppMonitorDataStale fires: 3 scan intervals, at least 5 minutes.",
            [target(f"whatsapp_monitor:waba_data_age:seconds{{{NUM}}}", ref="A",
                    legend="WABA {{waba_id}}"),
             target(f"max(clamp_min(3 * whatsapp_monitor_scan_interval_seconds{{{JOB}}}, 300))",
                    ref="B", legend="stale threshold")],
            unit="s", w=8,
            overrides=[{"matcher": {"id": "byName", "options": "stale threshold"},
                        "properties": [
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": RED}},
                            {"id": "custom.lineStyle",
                             "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "custom.fillOpacity", "value": 0},
                        ]}],
        ),
        timeseries(
            "Business Use Case usage",
            "Highest X-Business-Use-Case-Usage reading of any measure per Graph object "
            "(usually a WABA), as a share of its hourly allowance (recording rule "
            "whatsapp_monitor:graph_business_use_case_usage_ratio:max). "
            "WhatsAppMonitorRateLimitNearlyExhausted warns above 0.8; Meta throttles at 1.",
            [target("whatsapp_monitor:graph_business_use_case_usage_ratio:max"
                    f"{{{JOB}}}", legend="{{object_id}}")],
            unit="percentunit", w=8, steps=usage_steps, custom=usage_custom,
        ),
        timeseries(
            "App usage",
            "X-App-Usage reading per measure, as a share of the app's hourly allowance. "
            "WhatsAppMonitorRateLimitNearlyExhausted warns above 0.8; Meta throttles the whole "
            "app at 1.",
            [target(f"max by (measure) (whatsapp_monitor_graph_app_usage_ratio{{{JOB}}})",
                    legend="{{measure}}")],
            unit="percentunit", w=8, steps=usage_steps, custom=usage_custom,
        ),
        timeseries(
            "Polls and failures per WABA",
            "Polls per second and failed polls per second, per WABA.",
            [target("sum by (waba_id) "
                    f"(rate(whatsapp_monitor_waba_polls_total{{{NUM}}}[$__rate_interval]))",
                    ref="A", legend="polls {{waba_id}}"),
             target("sum by (waba_id) "
                    f"(rate(whatsapp_monitor_waba_poll_failures_total{{{NUM}}}"
                    "[$__rate_interval]))",
                    ref="B", legend="failures {{waba_id}}")],
            unit="ops", w=12,
        ),
        timeseries(
            "Graph API requests per poll",
            "Graph API requests the last poll of each WABA made (retries and per-number reads "
            "included); ⌈numbers / 100⌉ when every field comes with the list.",
            [target(f"max by (waba_id) (whatsapp_monitor_waba_last_poll_requests{{{NUM}}})",
                    legend="WABA {{waba_id}}")],
            unit="none", w=12,
        ),
    ]


# --------------------------------------------------------------------------- dashboard


def layout(sections: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Number the panels and place them left to right, one row per section."""
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for title, section in sections:
        panels.append({"type": "row", "id": next_id, "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for p in section:
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > 24:
                x, y, line_height = 0, y + line_height, 0
            p["id"] = next_id
            next_id += 1
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            line_height = max(line_height, h)
            panels.append({"id": p.pop("id"), **p})
        y += line_height
    return panels


def query_variable(name: str, label: str, query: str, description: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": DS,
        "definition": query,
        "query": {"qryType": 1, "query": query,
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
    }


def dashboard() -> dict[str, Any]:
    return {
        "id": None,
        "uid": UID,
        "title": TITLE,
        "description": "Health of WhatsApp Business phone numbers and business portfolios "
                       "as exported by waba-monitor, and the health of the monitor itself.",
        "tags": ["waba-monitor", "whatsapp"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "links": [{"title": "Runbook", "type": "link", "url": RUNBOOK, "icon": "doc",
                   "targetBlank": True, "asDropdown": False, "includeVars": False,
                   "keepTime": False, "tags": [], "tooltip": "What to do about each alert"}],
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "templating": {"list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
                "regex": "",
                "refresh": 1,
                "multi": False,
                "includeAll": False,
                "options": [],
                "hide": 0,
                "skipUrlSync": False,
            },
            query_variable("job", "Job", "label_values(whatsapp_monitor_build_info, job)",
                           "Prometheus scrape job(s) of the exporter."),
            query_variable(
                "business_id", "Business",
                'label_values(whatsapp_business_registered_phone_numbers_cap{job=~"$job"}, '
                "business_id)",
                "Business portfolio ID(s)."),
        ]},
        "panels": layout([
            ("Fleet overview", fleet_overview()),
            ("Per business", per_business()),
            ("History of status and quality", history()),
            ("Monitor health", monitor_health()),
        ]),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the committed JSON is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
