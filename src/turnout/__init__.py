"""turnout: route each request to one of several coordinator engines, safely."""

from turnout.admin import admin_app
from turnout.config import TurnoutConfig
from turnout.context import RoutingContext, current_context, current_decision
from turnout.decision import Decision, Reason
from turnout.decorators import BoundEngine, experiment
from turnout.errors import ConfigError, TurnoutError
from turnout.ofrep import ofrep_app
from turnout.router import Turnout
from turnout.types import Intent
from turnout.workflow import Workflow

__all__ = [
    "BoundEngine",
    "ConfigError",
    "Decision",
    "Intent",
    "Reason",
    "RoutingContext",
    "Turnout",
    "TurnoutConfig",
    "TurnoutError",
    "Workflow",
    "admin_app",
    "current_context",
    "current_decision",
    "experiment",
    "ofrep_app",
]

__version__ = "0.1.0"
