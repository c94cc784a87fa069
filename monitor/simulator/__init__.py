"""A Graph API simulator for the exporter's tests, demo mode and benchmarks.

It serves the WhatsApp Business Management endpoints the exporter polls, with Graph's paging,
errors, usage headers and rate limits, plus a ``/_sim/`` control API to change the fleet,
inject faults, move the clock and run account actions (restrictions, bans, reviews, alerts,
portfolio limits, entity health) that send Meta's signed account webhooks. Issue 11 added a
number's security and message routing: ``GET /{WABA_ID}/subscribed_apps``, ``GET
/{PHONE_NUMBER_ID}/settings``, the computed ``webhook_configuration``, PIN and ``security``
events, name decisions, onboarding and ``messages`` traffic (``wiring.py``,
``number_webhooks.py``). Graph batch requests (``POST /{version}/`` with ``batch=[…]``) run
each entry through the single-GET handling (``batch.py``). See ``scenarios/demo.yaml`` for the
scenario format and the action vocabulary.
"""

from .actions import ACTION_NAMES, Action, parse_action
from .app import WORLD_KEY, build_app, start_simulator
from .faults import FAULT_KINDS, Fault, FaultError, FaultKind
from .generate import generate_scenario
from .scenario import (
    ActionEvent,
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
    "ACTION_NAMES",
    "ENDPOINTS",
    "FAULT_KINDS",
    "WORLD_KEY",
    "Action",
    "ActionEvent",
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
    "parse_action",
    "scenario_from_yaml",
    "start_simulator",
]
