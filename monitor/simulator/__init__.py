"""A Graph API simulator for the exporter's tests, demo mode and benchmarks.

It serves the WhatsApp Business Management endpoints the exporter polls, with Graph's paging,
errors, usage headers and rate limits, plus a ``/_sim/`` control API to change the fleet,
inject faults and move the clock. See ``scenarios/demo.yaml`` for the scenario format.
"""

from .app import WORLD_KEY, build_app, start_simulator
from .faults import FAULT_KINDS, Fault, FaultError, FaultKind
from .generate import generate_scenario
from .scenario import (
    Budget,
    BusinessSpec,
    NumberSpec,
    Scenario,
    ScenarioError,
    Timeline,
    TimelineEvent,
    WabaSpec,
    builtin_scenario,
    builtin_scenario_names,
    load_scenario,
    scenario_from_yaml,
)
from .world import ENDPOINTS, UnknownObjectError, World

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "WORLD_KEY",
    "Budget",
    "BusinessSpec",
    "Fault",
    "FaultError",
    "FaultKind",
    "NumberSpec",
    "Scenario",
    "ScenarioError",
    "Timeline",
    "TimelineEvent",
    "UnknownObjectError",
    "WabaSpec",
    "World",
    "build_app",
    "builtin_scenario",
    "builtin_scenario_names",
    "generate_scenario",
    "load_scenario",
    "scenario_from_yaml",
    "start_simulator",
]
