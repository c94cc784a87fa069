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
WABA_KEY = "business_id, waba_id"

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


def table(title: str, description: str, targets: list[dict[str, Any]], *,
          columns: list[tuple[str, str]], exclude: tuple[str, ...] = (), w: int, h: int,
          overrides: list[dict[str, Any]] | None = None, sort_by: str | None = None,
          desc: bool = False, filterable: bool = False) -> dict[str, Any]:
    """A table of instant queries merged on their common labels; ``columns`` lists (field,
    header) in display order, ``exclude`` the fields to hide."""
    return panel(
        "table", title, description, targets, w=w, h=h,
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                             "filterable": filterable},
                  "thresholds": thresholds((None, GREEN))},
        overrides=overrides,
        options={"showHeader": True, "cellHeight": "sm",
                 "sortBy": [{"displayName": sort_by, "desc": desc}] if sort_by else [],
                 "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, **{name: True for name in exclude}},
                "indexByName": {name: i for i, (name, _) in enumerate(columns)},
                "renameByName": dict(columns),
            }},
        ],
    )


# Grafana maps a value by its text, and +Inf (an unlimited limit, a restriction without end)
# reads "Infinity"; an open range cannot catch it (a missing bound counts as 0).
INFINITY = "Infinity"


def time_column(field: str) -> dict[str, Any]:
    """A column of Unix times in milliseconds shown as dates; +Inf reads "no end given"."""
    return {"matcher": {"id": "byName", "options": field}, "properties": [
        {"id": "unit", "value": "dateTimeAsIso"},
        {"id": "mappings", "value": [{"type": "value", "options": {
            INFINITY: {"text": "no end given", "index": 0}}}]},
    ]}


def by_waba(label: str, metric: str) -> str:
    """The current value of a WABA StateSet, as a label (value 1)."""
    return f"max by ({WABA_KEY}, {label}) ({metric}{{{NUM}}} == 1)"


def count_wabas(selector: str) -> str:
    """How many WABAs have a series matching ``selector`` (0 when none)."""
    return f"count(max by ({WABA_KEY}) ({selector})) or vector(0)"


# Per violation type and WABA: violations recorded in the last 7 days. A series that did not
# exist 7 days ago counts in full (a new type appears at 1, which increase() would miss); the
# counter is durable across exporter restarts, so a restart does not count old violations.
def violations(offset: str = "") -> str:
    return (f"max by ({WABA_KEY}, violation_type) "
            f"(whatsapp_waba_violations_total{{{NUM}}}{offset})")


VIOLATIONS_7D = (f"(\n  {violations()}\n  - (\n    {violations(' offset 7d')}\n"
                 f"    or {violations()} * 0\n  )\n)")


def with_waba_name(expr: str) -> str:
    """``expr`` (labels business_id, waba_id, ...) with the WABA's name from whatsapp_waba_info."""
    inner = expr.replace("\n", "\n  ")
    return (f"(\n  {inner}\n)\n* on ({WABA_KEY}) group_left (name)\n"
            f"  max by ({WABA_KEY}, name) (whatsapp_waba_info{{{NUM}}})")


def with_number_name(expr: str, keys: str) -> str:
    """``expr`` (labels ``keys``, among them entity_id) with the display number and verified
    name where entity_id is a phone-number id; other entities are kept as they are."""
    numbers = (f"max by (business_id, entity_id, display_phone_number, verified_name) (\n"
               f"    label_replace(whatsapp_phone_number_info{{{NUM}}}, "
               f"\"entity_id\", \"$1\", \"phone_number_id\", \"(.+)\")\n  )")
    inner = expr.replace("\n", "\n  ")
    return (f"(\n  {inner}\n  * on (business_id, entity_id) group_left "
            f"(display_phone_number, verified_name)\n  {numbers}\n)\n"
            f"or on ({keys})\n{expr}")


# --------------------------------------------------------------------------- portfolio row


LIMIT_TEXTS = {"250": "250 / day", "2000": "2K / day", "10000": "10K / day",
               "100000": "100K / day", INFINITY: "unlimited"}
LIMIT_COLORS = {"250": ORANGE, "2000": YELLOW, "10000": BLUE, "100000": GREEN,
                INFINITY: GREEN}
VERIFICATION_COLORS = {"verified": GREEN, "pending": BLUE, "pending_submission": BLUE,
                       "pending_need_more_info": ORANGE, "not_verified": ORANGE,
                       "rejected": RED, "failed": RED, "expired": RED, "revoked": RED,
                       "ineligible": RED}


def limit_mappings() -> list[dict[str, Any]]:
    """Daily limits as tier names (+Inf: unlimited)."""
    return value_mappings(LIMIT_COLORS, LIMIT_TEXTS)


def portfolios() -> list[dict[str, Any]]:
    portfolio_queries = [
        target("max by (business_id, verification_status) "
               f"(whatsapp_business_verification_status{{{NUM}}} == 1)",
               ref="A", instant=True, table=True),
        target(f"max by (business_id, tier) (whatsapp_business_messaging_limit_tier{{{NUM}}} == 1)",
               ref="B", instant=True, table=True),
        target(f"whatsapp:business_messaging_limit_per_day:max{{{BIZ}}}",
               ref="C", instant=True, table=True),
        target(f"max by (business_id) (whatsapp_business_phone_numbers{{{NUM}}})",
               ref="D", instant=True, table=True),
        target(f"max by (business_id) (whatsapp_business_registered_phone_numbers{{{NUM}}})",
               ref="E", instant=True, table=True),
        target(f"max by (business_id) (whatsapp_business_registered_phone_numbers_cap{{{NUM}}})",
               ref="F", instant=True, table=True),
        target(f"max by (business_id) (whatsapp:business_registered_phone_numbers:headroom"
               f"{{{BIZ}}})", ref="G", instant=True, table=True),
        target("max by (business_id, source) "
               f"(whatsapp_business_registered_phone_numbers_cap_info{{{NUM}}})",
               ref="H", instant=True, table=True),
    ]
    portfolio_columns = [
        ("business_id", "Business"), ("verification_status", "Verification"),
        ("tier", "Messaging limit tier"), ("Value #C", "Limit per day"),
        ("Value #D", "Numbers"), ("Value #E", "Registered"), ("Value #F", "Cap"),
        ("Value #G", "Headroom"), ("source", "Cap source"),
    ]
    registered = f"max by (business_id) (whatsapp_business_registered_phone_numbers{{{NUM}}})"
    cap = f"max by (business_id) (whatsapp_business_registered_phone_numbers_cap{{{NUM}}})"
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
        table(
            "Business portfolios",
            "One row per business portfolio: business verification "
            "(whatsapp_business_verification_status), the messaging limit all its numbers share "
            "since 7 Oct 2025 (whatsapp_business_messaging_limit_tier and the recording rule "
            "whatsapp:business_messaging_limit_per_day:max), its numbers, registered numbers, "
            "the registration cap and where it comes from (config, webhook, inferred or "
            "default), and the free slots (whatsapp:business_registered_phone_numbers:headroom).",
            portfolio_queries, columns=portfolio_columns, w=18, h=8,
            exclude=("Value #A", "Value #B", "Value #H"), sort_by="Headroom",
            overrides=[
                cell_colors("Verification", VERIFICATION_COLORS, otherwise=ORANGE),
                {"matcher": {"id": "byName", "options": "Limit per day"}, "properties": [
                    {"id": "mappings", "value": limit_mappings()}]},
                {"matcher": {"id": "byName", "options": "Headroom"}, "properties": [
                    {"id": "thresholds",
                     "value": thresholds((None, RED), (1, ORANGE), (3, GREEN))},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                ]},
            ],
        ),
        state_timeline(
            "Shared messaging limit over time",
            "The messaging limit each business portfolio's numbers share (unique users reached "
            "outside customer-service windows per moving 24 h; recording rule "
            "whatsapp:business_messaging_limit_per_day:max). A step down is unusual since "
            "7 Oct 2025 (alert: WhatsAppMessagingLimitDecreased); Meta denies or defers a step "
            "up with an account alert (WABAs row).",
            f"whatsapp:business_messaging_limit_per_day:max{{{BIZ}}}",
            legend="business {{business_id}}", mappings=limit_mappings(), w=12, h=8,
        ),
        timeseries(
            "Registered numbers and cap over time",
            "Registered numbers (solid) and the registration cap (dashed) of each business "
            "portfolio.",
            [target(registered, ref="A", legend="registered {{business_id}}"),
             target(cap, ref="B", legend="cap {{business_id}}")],
            unit="none", w=12,
            overrides=[{"matcher": {"id": "byRegexp", "options": "^cap .*"}, "properties": [
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                {"id": "custom.fillOpacity", "value": 0},
            ]}],
        ),
    ]


# --------------------------------------------------------------------------- WABA row


REVIEW_COLORS = {"APPROVED": GREEN, "PENDING": BLUE, "DEFERRED": ORANGE, "REJECTED": RED}
BAN_COLORS = {"SCHEDULE_FOR_DISABLE": ORANGE, "DISABLE": RED, "REINSTATE": GREEN}
SEVERITY_COLORS = {"CRITICAL": RED, "WARNING": ORANGE, "INFORMATIONAL": BLUE}


def wabas() -> list[dict[str, Any]]:
    restriction = f"whatsapp_waba_restriction_expiry_timestamp_seconds{{{NUM}}}"
    alerts = f"whatsapp_account_alert_timestamp_seconds{{{NUM}}}"
    alert_keys = "business_id, entity_type, entity_id, alert_type, alert_severity"
    error_keys = f"{WABA_KEY}, entity_type, entity_id, error_code"
    waba_queries = [
        target(f"max by ({WABA_KEY}, name, ownership_type) (whatsapp_waba_info{{{NUM}}})",
               ref="A", instant=True, table=True),
        target(by_waba("status", "whatsapp_waba_account_review_status"),
               ref="B", instant=True, table=True),
        target(by_waba("can_send_message", "whatsapp_waba_health_status"),
               ref="C", instant=True, table=True),
        target(by_waba("state", "whatsapp_waba_ban_state"), ref="D", instant=True, table=True),
        target(f"1000 * max by ({WABA_KEY}) "
               f"(whatsapp_waba_ban_date_timestamp_seconds{{{NUM}}})",
               ref="E", instant=True, table=True),
        target(f"count by ({WABA_KEY}) ({restriction} > time())",
               ref="F", instant=True, table=True),
        target(f"1000 * min by ({WABA_KEY}) ({restriction} > time())",
               ref="G", instant=True, table=True),
        target(f"sum by ({WABA_KEY}) (whatsapp:phone_numbers:count{{{BIZ}}})",
               ref="H", instant=True, table=True),
        target(f"max by ({WABA_KEY}) (whatsapp_waba_phone_numbers_cap{{{NUM}}})",
               ref="I", instant=True, table=True),
    ]
    waba_columns = [
        ("business_id", "Business"), ("waba_id", "WABA"), ("name", "Name"),
        ("ownership_type", "Ownership"), ("status", "Review"),
        ("can_send_message", "Can send"), ("state", "Ban state"), ("Value #E", "Ban date"),
        ("Value #F", "Restrictions"), ("Value #G", "Restricted until"),
        ("Value #H", "Numbers"), ("Value #I", "Number cap"),
    ]
    return [
        stat("WABAs", "WABAs of the selected businesses (whatsapp_waba_info).",
             count_wabas(f"whatsapp_waba_info{{{NUM}}}"), steps=((None, BLUE),), w=3),
        stat("Restricted",
             "WABAs with an active restriction from Meta (account_update ACCOUNT_RESTRICTION; "
             "alert: WhatsAppAccountRestricted).",
             count_wabas(f"{restriction} > time()"), steps=((None, GREEN), (1, RED)), w=3),
        stat("Scheduled for disabling",
             "WABAs Meta has scheduled to disable (ban state SCHEDULE_FOR_DISABLE; alert: "
             "WhatsAppAccountScheduledForDisable).",
             count_wabas(f'whatsapp_waba_ban_state{{{NUM}, state="SCHEDULE_FOR_DISABLE"}} == 1'),
             steps=((None, GREEN), (1, RED)), w=3),
        stat("Disabled", "WABAs Meta has disabled (ban state DISABLE; alert: "
             "WhatsAppAccountDisabled).",
             count_wabas(f'whatsapp_waba_ban_state{{{NUM}, state="DISABLE"}} == 1'),
             steps=((None, GREEN), (1, RED)), w=3),
        stat("Review not APPROVED",
             "WABAs whose account review status is not APPROVED (PENDING, DEFERRED, REJECTED; "
             "alert: WhatsAppAccountReviewNotApproved). Only APPROVED is usable.",
             count_wabas(f'whatsapp_waba_account_review_status{{{NUM}, status!="APPROVED"}} '
                         "== 1"),
             steps=((None, GREEN), (1, ORANGE)), w=3),
        stat("WABA LIMITED or BLOCKED",
             "WABAs whose own health_status entity is LIMITED or BLOCKED (every number of the "
             "WABA is affected; see Health-status errors).",
             count_wabas(f'whatsapp_waba_health_status{{{NUM}, '
                         'can_send_message=~"LIMITED|BLOCKED"} == 1'),
             steps=((None, GREEN), (1, RED)), w=3),
        stat("Violations (7 days)",
             "Policy violations Meta recorded in the last 7 days (account_update "
             "ACCOUNT_VIOLATION; alert: WhatsAppAccountViolation).",
             f"sum({VIOLATIONS_7D}) or vector(0)", steps=((None, GREEN), (1, ORANGE)), w=3),
        stat("Account alerts (24 h)",
             "account_alerts events of the last 24 hours (alert: WhatsAppAccountAlert), one per "
             "entity and alert type.",
             f"count({alerts} > time() - 86400) or vector(0)",
             steps=((None, GREEN), (1, ORANGE)), w=3),
        table(
            "WABAs of the selected businesses",
            "One row per WABA, from whatsapp_waba_info (name, ownership), the WABA node (account "
            "review status, health_status of the WABA entity) and Meta's account webhooks "
            "(ban state and date, active restrictions and the first to end); numbers from the "
            "recording rule whatsapp:phone_numbers:count and the per-WABA number cap where a "
            "business_capability_update gave one. Empty cells: nothing known.",
            waba_queries, columns=waba_columns, w=24, h=10, filterable=True,
            exclude=tuple(f"Value #{r}" for r in "ABCD"), sort_by="Review",
            overrides=[
                cell_colors("Review", REVIEW_COLORS, otherwise=ORANGE),
                cell_colors("Can send", HEALTH_COLORS),
                cell_colors("Ban state", BAN_COLORS),
                time_column("Ban date"),
                time_column("Restricted until"),
                {"matcher": {"id": "byName", "options": "Restrictions"}, "properties": [
                    {"id": "thresholds", "value": thresholds((None, GREEN), (1, RED))},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ]},
            ],
        ),
        table(
            "Active restrictions",
            "Each active restriction (account_update ACCOUNT_RESTRICTION with restriction_info) "
            "and when it ends; a restriction is gone once it has expired. Alert: "
            "WhatsAppAccountRestricted.",
            [target(with_waba_name(
                f"1000 * max by ({WABA_KEY}, restriction_type) ({restriction} > time())"),
                instant=True, table=True)],
            columns=[("business_id", "Business"), ("waba_id", "WABA"), ("name", "Name"),
                     ("restriction_type", "Restriction"), ("Value", "Ends")],
            w=12, h=8, sort_by="Ends",
            overrides=[time_column("Ends")],
        ),
        table(
            "Ban state",
            "The last ban state Meta sent for each WABA (account_update DISABLED_UPDATE) and "
            "its date: the day the WABA will be disabled for SCHEDULE_FOR_DISABLE. Alerts: "
            "WhatsAppAccountScheduledForDisable, WhatsAppAccountDisabled.",
            [target(with_waba_name(by_waba("state", "whatsapp_waba_ban_state")), ref="A",
                    instant=True, table=True),
             target(f"1000 * max by ({WABA_KEY}) "
                    f"(whatsapp_waba_ban_date_timestamp_seconds{{{NUM}}})",
                    ref="B", instant=True, table=True)],
            columns=[("business_id", "Business"), ("waba_id", "WABA"), ("name", "Name"),
                     ("state", "Ban state"), ("Value #B", "Ban date")],
            exclude=("Value #A",), w=12, h=8, sort_by="Ban state",
            overrides=[cell_colors("Ban state", BAN_COLORS), time_column("Ban date")],
        ),
        table(
            "Health-status errors",
            "Each error of each health_status entity (business, WABA, phone number, app) that "
            "is LIMITED or BLOCKED (whatsapp_health_status_error): who is blocked and Meta's "
            "error code (the runbook lists the usual codes). A phone-number entity shows its "
            "display number.",
            [target(with_waba_name(with_number_name(
                f"max by ({error_keys}) (whatsapp_health_status_error{{{NUM}}})", error_keys)),
                instant=True, table=True)],
            columns=[("business_id", "Business"), ("waba_id", "WABA"), ("name", "WABA name"),
                     ("entity_type", "Entity"), ("entity_id", "Entity ID"),
                     ("display_phone_number", "Number"), ("verified_name", "Verified name"),
                     ("error_code", "Error code")],
            exclude=("Value",), w=12, h=8, sort_by="Entity",
        ),
        panel(
            "bargauge", "Violations in the last 7 days",
            "Policy violations Meta recorded per WABA and violation type in the last 7 days "
            "(whatsapp_waba_violations_total; a type first seen in that window counts in "
            "full). Alert: WhatsAppAccountViolation.",
            [target(with_waba_name(f"{VIOLATIONS_7D} > 0"),
                    legend="{{name}} ({{waba_id}}): {{violation_type}}", instant=True)],
            w=12, h=8,
            defaults={"unit": "none", "min": 0, "decimals": 0,
                      "color": {"mode": "thresholds"},
                      "thresholds": thresholds((None, ORANGE), (3, RED))},
            options=reduce_last(displayMode="basic", orientation="horizontal",
                                showUnfilled=True, valueMode="color", namePlacement="left",
                                minVizHeight=10, minVizWidth=0, maxVizHeight=300, sizing="auto"),
        ),
        table(
            "Account alerts of the last 7 days",
            "The last account_alerts event of each type for each entity (portfolio or phone "
            "number) in the last 7 days: scaling deferred or denied, more verification needed, "
            "OBA decisions, profile picture lost. Meta's text is in Business Support Home. "
            "Alert: WhatsAppAccountAlert (24 h).",
            [target(with_number_name(
                f"1000 * max by ({alert_keys}) ({alerts} > time() - 7 * 86400)", alert_keys),
                instant=True, table=True)],
            columns=[("Value", "Time"), ("business_id", "Business"),
                     ("entity_type", "Entity"), ("entity_id", "Entity ID"),
                     ("display_phone_number", "Number"), ("alert_type", "Alert type"),
                     ("alert_severity", "Severity")],
            w=12, h=8, sort_by="Time", desc=True,
            overrides=[time_column("Time"), cell_colors("Severity", SEVERITY_COLORS)],
        ),
        panel(
            "bargauge", "WABA numbers / per-WABA cap",
            "Phone numbers of each WABA (recording rule whatsapp:phone_numbers:count) as a "
            "share of its own number cap (max_phone_numbers_per_waba from "
            "business_capability_update), for the WABAs whose cap Meta announced. The "
            "portfolio's registration cap is a separate limit (Business portfolios row).",
            [target("sort_desc(\n  " + with_waba_name(
                f"sum by ({WABA_KEY}) (whatsapp:phone_numbers:count{{{BIZ}}})\n"
                f"/ on ({WABA_KEY})\n"
                f"max by ({WABA_KEY}) (whatsapp_waba_phone_numbers_cap{{{NUM}}})")
                .replace("\n", "\n  ") + "\n)",
                legend="{{name}} ({{waba_id}})", instant=True)],
            w=12, h=8,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 0,
                      "color": {"mode": "thresholds"},
                      "thresholds": thresholds((None, GREEN), (0.8, ORANGE), (1, RED))},
            options=reduce_last(displayMode="gradient", orientation="horizontal",
                                showUnfilled=True, valueMode="color", namePlacement="left",
                                minVizHeight=10, minVizWidth=0, maxVizHeight=300, sizing="auto"),
        ),
        panel(
            "state-timeline", "Account events",
            "The last account_update event of each type per WABA "
            "(whatsapp_waba_account_event_timestamp_seconds): a bar starts when the event "
            "arrived and shows its time; a new event of the same type starts a new bar. "
            "Restrictions, violations, ban-state changes, offboarding and reconnection, partner "
            "and deletion events.",
            [target(with_waba_name(
                f"1000 * max by ({WABA_KEY}, event) "
                f"(whatsapp_waba_account_event_timestamp_seconds{{{NUM}}})"),
                legend="{{name}} ({{waba_id}}): {{event}}")],
            w=24, h=8,
            defaults={"unit": "dateTimeAsIso", "color": {"mode": "fixed", "fixedColor": BLUE},
                      "thresholds": thresholds((None, BLUE)),
                      "custom": {"fillOpacity": 70, "lineWidth": 1}},
            options={"mergeValues": True, "showValue": "auto", "alignValue": "left",
                     "rowHeight": 0.8, "legend": {"displayMode": "list", "placement": "bottom",
                                                  "showLegend": False},
                     "tooltip": {"mode": "single", "sort": "none"}},
        ),
    ]


# --------------------------------------------------------------------------- numbers


def phone_numbers() -> list[dict[str, Any]]:
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
        target(f"max by ({NUMBER_KEY}) (whatsapp_phone_number_registered{{{NUM}}})",
               ref="G", instant=True, table=True),
    ]
    number_columns = [
        ("business_id", "Business"), ("waba_id", "WABA"), ("phone_number_id", "Phone number ID"),
        ("display_phone_number", "Number"), ("verified_name", "Verified name"),
        ("status", "Status"), ("rating", "Quality"), ("name_status", "Name status"),
        ("can_send_message", "Can send"), ("level", "Throughput"),
        ("Value #G", "Registered"),
    ]
    return [
        panel(
            "table", "Phone numbers of the selected businesses",
            "One row per phone number: the current value of every StateSet, joined with "
            "whatsapp_phone_number_info for the display number and verified name. A field the "
            "API did not return is empty. Filter a column with its header. The messaging "
            "limit belongs to the portfolio (Business portfolios row); the per-number limit "
            "families are deprecated.",
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
                    "excludeByName": {"Time": True, **{f"Value #{r}": True for r in "ABCDEF"}},
                    "indexByName": {name: i for i, (name, _) in enumerate(number_columns)},
                    "renameByName": dict(number_columns),
                }},
            ],
        ),
    ]




def templates() -> list[dict[str, Any]]:
    """Message templates: counts over time, and the templates with a problem (the per-template
    series exist only for those, by default)."""
    problem = (f"max by ({WABA_KEY}, template_id, template_name, language, status) "
               f"(whatsapp_message_template_status{{{NUM}}} == 1)")
    quality = (f"max by ({WABA_KEY}, template_id, template_name, language, quality) "
               f"(whatsapp_message_template_quality{{{NUM}}} == 1)")
    return [
        timeseries("Templates by status",
                   "Message templates of the selected businesses per status, at each WABA's "
                   "last template read (schedule.template_interval).",
                   [target(f"sum by (status) (whatsapp_waba_message_templates{{{NUM}}})",
                           legend="{{status}}")], unit="none", w=12, stacked=True),
        timeseries("Templates by quality",
                   "Message templates per quality score; RED ones are paused by Meta (3 h, "
                   "then 6 h, then disabled).",
                   [target(f"sum by (quality) (whatsapp_waba_message_templates_by_quality"
                           f"{{{NUM}}})", legend="{{quality}}")], unit="none", w=12,
                   stacked=True),
        table("Templates with a problem",
              "Templates not APPROVED, with quality other than GREEN/UNKNOWN, or with a "
              "category change announced (templates.series: problems).",
              [target(with_waba_name(problem), ref="A", instant=True),
               target(quality, ref="B", instant=True)],
              columns=[("name", "WABA"), ("template_name", "Template"),
                       ("language", "Language"), ("status", "Status"),
                       ("quality", "Quality")],
              exclude=("Value #A", "Value #B", "business_id", "waba_id", "template_id"),
              w=24, h=8, filterable=True),
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
        state_timeline(
            "WABA polls (whatsapp_monitor_waba_up)",
            "Whether the last poll of each WABA succeeded. After a failure the WABA's last good "
            "values stay exported.",
            f"max by (business_id, waba_id) (whatsapp_monitor_waba_up{{{NUM}}})",
            legend="WABA {{waba_id}} (business {{business_id}})",
            mappings=value_mappings({"1": GREEN, "0": RED}, {"1": "OK", "0": "FAILING"}),
            w=12, h=8,
        ),
        state_timeline(
            "Throttled WABAs (whatsapp_monitor_waba_throttled)",
            "Whether each WABA waits on a Graph API throttle: in line within a poll (at most "
            "graph.max_throttle_wait per poll in total) or parked until the regain time "
            "Meta's usage header gave. A throttled WABA's data ages meanwhile while "
            "whatsapp_monitor_waba_up may still show its last poll's result.",
            f"max by (business_id, waba_id) (whatsapp_monitor_waba_throttled{{{NUM}}})",
            legend="WABA {{waba_id}} (business {{business_id}})",
            mappings=value_mappings({"1": ORANGE, "0": GREEN},
                                    {"1": "THROTTLED", "0": "not throttled"}),
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
            "Poll duration p50 / p95",
            "Wall time of one WABA poll, including retries and per-number reads, from the "
            "whatsapp_monitor_poll_duration_seconds histogram (recording rules "
            "whatsapp_monitor:poll_duration_seconds:p50_5m and :p95_5m).",
            [target(f"whatsapp_monitor:poll_duration_seconds:p50_5m{{{JOB}}}", ref="A",
                    legend="p50 {{instance}}"),
             target(f"whatsapp_monitor:poll_duration_seconds:p95_5m{{{JOB}}}", ref="B",
                    legend="p95 {{instance}}")],
            unit="s", w=8,
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
            unit="ops", w=8,
        ),
        timeseries(
            "Graph API requests per poll",
            "Graph API requests the last poll of each WABA made (retries and per-number reads "
            "included); ⌈numbers / 100⌉ when every field comes with the list.",
            [target(f"max by (waba_id) (whatsapp_monitor_waba_last_poll_requests{{{NUM}}})",
                    legend="WABA {{waba_id}}")],
            unit="none", w=8,
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
        "description": "Health of WhatsApp Business portfolios, WABAs and phone numbers as "
                       "exported by waba-monitor, and the health of the monitor itself.",
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
            ("Business portfolios", portfolios()),
            ("WABAs", wabas()),
            ("Phone numbers", phone_numbers()),
            ("Message templates", templates()),
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
