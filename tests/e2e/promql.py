"""The PromQL in the Grafana dashboard: extract it, fill in template variables, find the
metric names it reads, and the recording rules the repository defines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.procs import ROOT, RULE_FILES

DASHBOARD = ROOT / "grafana" / "dashboards" / "waba-monitor.json"

# Grafana's variables as the parse check fills them in. Multi-value variables become a regex
# alternation in Grafana, so `.*` stands for "All".
PARSE_VALUES: dict[str, str] = {
    "job": ".*",
    "business_id": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
})
KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan",
})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),)?\s*(\w+)\s*\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard and where it is."""

    where: str
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every panel target's expr, plus the metric selector of every label_values variable."""
    queries: list[Query] = []
    for panel in all_panels(dashboard):
        for t in panel.get("targets", []):
            where = f"panel {panel.get('id')} {panel.get('title')!r} target {t.get('refId')}"
            queries.append(Query(where, t["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text or "")
        if match is None:
            raise AssertionError(f"variable {variable['name']}: unsupported query {text!r}")
        if match.group(1):
            queries.append(Query(f"variable {variable['name']}", match.group(1)))
    return queries


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana's ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]``."""

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name.isdigit():  # label_replace's $1: Grafana leaves what is not a variable
            return match.group(0)
        if name not in values:
            raise KeyError(f"unknown template variable {name!r} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression selects.

    Strings, label matchers, ranges and label lists are removed first; of the identifiers
    left, functions (followed by a parenthesis), aggregation operators and keywords are not
    metric names. What remains is.
    """
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(r" \1 ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in AGGREGATIONS or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def recording_rule_names(rule_files: list[Path] = RULE_FILES) -> set[str]:
    names = set()
    for path in rule_files:
        with path.open(encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    names.add(rule["record"])
    return names
